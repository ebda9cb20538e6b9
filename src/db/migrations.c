/* SPDX-License-Identifier: MIT */
/*
 * The database schema, as numbered migrations. Never edit a migration that has
 * shipped: add the next one. PRAGMA user_version holds the number of the last
 * migration applied; each migration and the version bump commit together, so a
 * crash leaves the database at a whole version.
 *
 * Enums are stored as the integer values of job.h and db.h; the CHECK
 * constraints and partial indexes below spell those values out, and the
 * static asserts in this file keep the two in step.
 *
 * Version 1:
 *   accounts(id)                           32-hex ids
 *   credentials(hash → account, scope)     SHA-256 of the secret; email set
 *                                          for a legacy X-Auth-Key
 *   jobs(id, account, ...)                 one row per capture (job.h Job)
 *   parts(job_id, agent, ...)              one row per agent share (JobPart)
 *   buckets(id, account, destination_conf) ownership challenges
 *   agents(name, ...)                      agents ever seen
 *
 * Version 2 (what both API dialects need of a capture):
 *   jobs.filter_model                      the filter model, neutral JSON
 *                                          (NULL in older rows: made from
 *                                          filter_json when read)
 *   jobs.snaplen                           bytes per packet, 0 = whole
 *   jobs.outputs                           JSON [{kind, target}], replacing
 *                                          destination_conf (copied over)
 *   jobs.continuous, file_count, file_size, session_limit
 *                                          continuous mode: 0 off, 1 keep
 *                                          every file, 2 ring buffer
 *
 * Version 3 (the part state "captured", between running and uploading):
 *   parts.state                            0 assigned, 1 running, 2 captured,
 *                                          3 uploading, 4 done, 5 failed,
 *                                          6 lost (stored 2..5 become 3..6;
 *                                          the table is rebuilt for its CHECK)
 *
 * Version 4:
 *   jobs.echo_json                         what the creating dialect renders
 *                                          back as it was asked (job.h)
 *
 * Version 5 (named captures, what the Azure dialect shows):
 *   jobs.started_ns                        when the first agent captured
 *   jobs.name_group, name_watcher, name    a named resource's name (NULL for
 *                                          captures known by id only), unique
 *                                          per account, group and watcher
 *                                          without regard to case
 *   jobs.request                           the creating dialect's request,
 *                                          canonical, echoed back
 *   parts.failure                          why a failed part failed (job.h
 *                                          PartFailure, 0..4)
 * Version 6 (agent identity, issue 8):
 *   enroll_tokens(hash → account, name_pattern, colo, expires_ns)
 *                                          what `pcapd agent --enroll-token`
 *                                          exchanges for a key; account NULL:
 *                                          an operator's (its agents serve
 *                                          every account)
 *   agent_keys(name → hash, account, colo) one secret per enrolled agent,
 *                                          bound to its name (and, when the
 *                                          enrolment said so, to its colo)
 *   bucket_shares(bucket_id, account)      accounts a validated bucket's
 *                                          owner shares it with
 *
 * Version 7 (object stores): parts.state upload_failed (7), parts.attempt,
 *   buckets.match_key (a bucket's identity).
 *
 * Version 8 (several controllers over one database):
 *   agents.account                         the account the agent's key
 *                                          serves ("" an operator's; NULL in
 *                                          rows written before)
 *   agents.history                         its last reported history status
 *                                          (JSON), for every controller
 *   samples(job_id, agent → pcap)          sample answers, served by any
 *                                          controller
 *
 * Version 9:
 *   jobs.tally                             the job's parts counted by state,
 *                                          with their sums (db_rows.h
 *                                          DbJobTally), kept by
 *                                          db_part_modify; NULL: count again
 */
#include <errno.h>
#include <stdio.h>

#include "db/db.h"
#include "db/db_sqlite_int.h"
#include "db/migrations.h"

_Static_assert(JOB_SUCCESS == 4 && JOB_FAILED == 5, "terminal job statuses are spelt 4 and 5 in the schema");
_Static_assert(PART_CAPTURED == 2 && PART_DONE == 4 && PART_FAILED == 5 && PART_LOST == 6 && PART_UPLOAD_FAILED == 7,
	       "part states are 0..7, the terminal ones 4, 5, 6 and 7 (since version 7)");
_Static_assert(JOB_SIMPLE == 0 && JOB_FULL == 1, "job types are 0 and 1");
_Static_assert(SCOPE_READ == 1 && SCOPE_AGENT == 3, "scopes are 1..3");
_Static_assert(PART_FAIL_NONE == 0 && PART_FAIL_INTERNAL == 4, "part failures are 0..4");

static const char *const migrations[] = {
	/* 1: the first schema. */
	"CREATE TABLE accounts ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  created_ns INTEGER NOT NULL"
	");"
	"CREATE TABLE credentials ("
	"  hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),"
	"  email TEXT COLLATE NOCASE," /* NULL: bearer token; else legacy key of this email */
	"  account TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  scope INTEGER NOT NULL CHECK (scope BETWEEN 1 AND 3),"
	"  created_ns INTEGER NOT NULL"
	");"
	"CREATE TABLE jobs ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  account TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  type INTEGER NOT NULL CHECK (type IN (0, 1)),"
	"  status INTEGER NOT NULL CHECK (status BETWEEN 0 AND 5),"
	"  filter_json TEXT,"
	"  time_limit INTEGER NOT NULL,"
	"  packet_limit INTEGER NOT NULL,"
	"  byte_limit INTEGER NOT NULL,"
	"  colo_name TEXT,"
	"  destination_conf TEXT,"
	"  offset_time_ns INTEGER NOT NULL,"
	"  submitted_ns INTEGER NOT NULL,"
	"  stop_requested_ns INTEGER NOT NULL,"
	"  stop_reason INTEGER NOT NULL,"
	"  error_message TEXT,"
	"  packets INTEGER NOT NULL,"
	"  bytes INTEGER NOT NULL,"
	"  drops INTEGER NOT NULL,"
	"  finished_ns INTEGER NOT NULL"
	");"
	/* The list (newest first) and the sample-interval check. */
	"CREATE INDEX jobs_by_account ON jobs(account, submitted_ns DESC, id DESC);"
	"CREATE INDEX jobs_by_account_type ON jobs(account, type, submitted_ns DESC);"
	/* Only the few live jobs: the scheduler's scan and the full-capture limit. */
	"CREATE INDEX jobs_active ON jobs(account, type) WHERE status NOT IN (4, 5);"
	"CREATE TABLE parts ("
	"  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
	"  agent TEXT NOT NULL,"
	"  state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 5),"
	"  packets INTEGER NOT NULL,"
	"  bytes INTEGER NOT NULL,"
	"  drops INTEGER NOT NULL,"
	"  stop_reason INTEGER NOT NULL,"
	"  object TEXT,"
	"  error TEXT,"
	"  updated_ns INTEGER NOT NULL,"
	"  PRIMARY KEY (job_id, agent)"
	");"
	"CREATE INDEX parts_active ON parts(agent, job_id) WHERE state NOT IN (3, 4, 5);"
	"CREATE TABLE buckets ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  account TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  destination_conf TEXT NOT NULL,"
	"  filename TEXT,"
	"  challenge TEXT,"
	"  status INTEGER NOT NULL CHECK (status BETWEEN 0 AND 2),"
	"  submitted_ns INTEGER NOT NULL,"
	"  validated_ns INTEGER NOT NULL,"
	"  UNIQUE (account, destination_conf)"
	");"
	"CREATE INDEX buckets_by_account ON buckets(account, submitted_ns);"
	"CREATE TABLE agents ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  colo TEXT NOT NULL,"
	"  interfaces TEXT,"
	"  version TEXT,"
	"  first_seen_ns INTEGER NOT NULL,"
	"  last_seen_ns INTEGER NOT NULL"
	");",
	/* 2: snaplen, several outputs, continuous mode, the neutral filter. */
	"ALTER TABLE jobs ADD COLUMN filter_model TEXT;"
	"ALTER TABLE jobs ADD COLUMN snaplen INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN outputs TEXT;"
	"ALTER TABLE jobs ADD COLUMN continuous INTEGER NOT NULL DEFAULT 0 CHECK (continuous BETWEEN 0 AND 2);"
	"ALTER TABLE jobs ADD COLUMN file_count INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN file_size INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN session_limit INTEGER NOT NULL DEFAULT 0;"
	"UPDATE jobs SET outputs = json_array(json_object('kind', 'bucket', 'target', destination_conf)) "
	"  WHERE destination_conf IS NOT NULL;"
	"ALTER TABLE jobs DROP COLUMN destination_conf;",
	/* 3: the part state "captured" (2); uploading, done, failed, lost move up. */
	"CREATE TABLE parts_v3 ("
	"  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
	"  agent TEXT NOT NULL,"
	"  state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 6),"
	"  packets INTEGER NOT NULL,"
	"  bytes INTEGER NOT NULL,"
	"  drops INTEGER NOT NULL,"
	"  stop_reason INTEGER NOT NULL,"
	"  object TEXT,"
	"  error TEXT,"
	"  updated_ns INTEGER NOT NULL,"
	"  PRIMARY KEY (job_id, agent)"
	");"
	"INSERT INTO parts_v3 SELECT job_id, agent, CASE WHEN state >= 2 THEN state + 1 ELSE state END, packets, "
	"  bytes, drops, stop_reason, object, error, updated_ns FROM parts;"
	"DROP TABLE parts;"
	"ALTER TABLE parts_v3 RENAME TO parts;"
	"CREATE INDEX parts_active ON parts(agent, job_id) WHERE state NOT IN (4, 5, 6);",
	/* 4: the request's own spellings, for its dialect to echo. */
	"ALTER TABLE jobs ADD COLUMN echo_json TEXT;",
	/* 5: named captures, start time, why a part failed. */
	"ALTER TABLE jobs ADD COLUMN started_ns INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN name_group TEXT;"
	"ALTER TABLE jobs ADD COLUMN name_watcher TEXT;"
	"ALTER TABLE jobs ADD COLUMN name TEXT;"
	"ALTER TABLE jobs ADD COLUMN request TEXT;"
	"ALTER TABLE parts ADD COLUMN failure INTEGER NOT NULL DEFAULT 0 CHECK (failure BETWEEN 0 AND 4);"
	"CREATE UNIQUE INDEX jobs_by_name ON jobs(account, name_group COLLATE NOCASE, "
	"  name_watcher COLLATE NOCASE, name COLLATE NOCASE) WHERE name IS NOT NULL;",
	/* 6: enrolment and per-agent keys. */
	"CREATE TABLE enroll_tokens ("
	"  hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),"
	"  account TEXT REFERENCES accounts(id) ON DELETE CASCADE," /* NULL: operator */
	"  name_pattern TEXT,"
	"  colo TEXT,"
	"  expires_ns INTEGER NOT NULL," /* 0: never */
	"  created_ns INTEGER NOT NULL"
	");"
	"CREATE TABLE agent_keys ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),"
	"  account TEXT REFERENCES accounts(id) ON DELETE CASCADE," /* NULL: operator agent */
	"  colo TEXT,"
	"  enrolled_ns INTEGER NOT NULL"
	");"
	"CREATE INDEX agent_keys_by_account ON agent_keys(account);"
	/* The accounts a bucket's owner lets use it too. */
	"CREATE TABLE bucket_shares ("
	"  bucket_id TEXT NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,"
	"  account TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  PRIMARY KEY (bucket_id, account)"
	");",
	/* 7: object stores: the part state upload_failed (7), the upload's
	 * attempt, and a bucket's identity. SQLite cannot change a CHECK: the table is made
	 * anew. */
	"CREATE TABLE parts_v7 ("
	"  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
	"  agent TEXT NOT NULL,"
	"  state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 7),"
	"  packets INTEGER NOT NULL,"
	"  bytes INTEGER NOT NULL,"
	"  drops INTEGER NOT NULL,"
	"  stop_reason INTEGER NOT NULL,"
	"  object TEXT,"
	"  error TEXT,"
	"  updated_ns INTEGER NOT NULL,"
	"  failure INTEGER NOT NULL DEFAULT 0 CHECK (failure BETWEEN 0 AND 4),"
	"  attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),"
	"  PRIMARY KEY (job_id, agent)"
	");"
	"INSERT INTO parts_v7 (job_id, agent, state, packets, bytes, drops, stop_reason, object, error, updated_ns, "
	"  failure) SELECT job_id, agent, state, packets, bytes, drops, stop_reason, object, error, updated_ns, "
	"  failure FROM parts;"
	"DROP TABLE parts;"
	"ALTER TABLE parts_v7 RENAME TO parts;"
	"CREATE INDEX parts_active ON parts(agent, job_id) WHERE state NOT IN (4, 5, 6, 7);"
	/* A bucket's identity (bucket_uri_match_key): one row per identity and
	 * account, and the owner lookup. Every earlier row is a file:// URI in
	 * its normal form, which is its identity. */
	"ALTER TABLE buckets ADD COLUMN match_key TEXT;"
	"UPDATE buckets SET match_key = destination_conf;"
	"CREATE UNIQUE INDEX buckets_by_key ON buckets(account, match_key);"
	"CREATE INDEX buckets_by_identity ON buckets(match_key);",
	/* 8: several controllers over one database. */
	"ALTER TABLE agents ADD COLUMN account TEXT;"
	"ALTER TABLE agents ADD COLUMN history TEXT;"
	"CREATE TABLE samples ("
	"  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
	"  agent TEXT NOT NULL,"
	"  pcap BLOB NOT NULL,"
	"  PRIMARY KEY (job_id, agent)"
	");",
	/* 9: a job's parts counted, so that one answer of 1,000 reads one part. */
	"ALTER TABLE jobs ADD COLUMN tally TEXT;",
};

_Static_assert(ARRAY_SIZE(migrations) == DB_SCHEMA_VERSION, "a migration is numbered in every backend");

int db_schema_version(void)
{
	return (int)ARRAY_SIZE(migrations);
}

static int exec(sqlite3 *h, const char *sql, const char *what, ErrBuf *err)
{
	int rc = sqlite3_exec(h, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return errbuf_set(err, dbs_errno(rc), "db: %s: %s", what, sqlite3_errmsg(h));
	return 0;
}

static int user_version(sqlite3 *h, int *ret, ErrBuf *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		int r = errbuf_set(err, dbs_errno(rc), "db: reading the schema version: %s", sqlite3_errmsg(h));
		sqlite3_finalize(st);
		return r;
	}
	*ret = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return 0;
}

static int too_new(int have, ErrBuf *err)
{
	return errbuf_set(err, -ENOTSUP,
			  "db: the database has schema version %d, newer than this pcapd knows (%d); "
			  "use a newer pcapd",
			  have, db_schema_version());
}

int db_migrate(sqlite3 *h, ErrBuf *err)
{
	int have, r;

	r = user_version(h, &have, err);
	if (r < 0)
		return r;
	if (have > db_schema_version())
		return too_new(have, err);
	while (have < db_schema_version()) {
		char bump[64];
		int next;

		/* IMMEDIATE: another process (pcapd token create) may be
		 * migrating the same file; re-read the version under the lock. */
		r = exec(h, "BEGIN IMMEDIATE", "starting a migration", err);
		if (r < 0)
			return r;
		r = user_version(h, &have, err);
		if (r < 0)
			goto rollback;
		if (have > db_schema_version()) {
			r = too_new(have, err);
			goto rollback;
		}
		if (have == db_schema_version()) {
			r = exec(h, "COMMIT", "ending a migration", err);
			if (r < 0)
				goto rollback;
			break;
		}
		next = have + 1;
		r = snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", next);
		if (r < 0 || (size_t)r >= sizeof(bump)) {
			r = errbuf_set(err, -EOVERFLOW, "db: migration %d: version statement too long", next);
			goto rollback;
		}
		r = exec(h, migrations[have], "applying a schema migration", err);
		if (r < 0)
			goto rollback;
		r = exec(h, bump, "recording the schema version", err);
		if (r < 0)
			goto rollback;
		r = exec(h, "COMMIT", "committing a schema migration", err);
		if (r < 0)
			goto rollback;
		have = next;
	}
	return 0;

rollback:
	sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

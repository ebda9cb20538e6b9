/* SPDX-License-Identifier: MIT */
/*
 * The PostgreSQL schema, as numbered migrations: migration k makes the same
 * change as migrations.c's migration k does in SQLite (read its comment for
 * what each version holds), spelt in PostgreSQL's dialect. Never edit a
 * migration that has shipped: add the next one, to both files.
 *
 * Differences of spelling, not of meaning:
 *  - integers are BIGINT (SQLite's INTEGER is 64-bit), hashes BYTEA;
 *  - text that is ordered or compared is COLLATE "C", so ids and names sort
 *    bytewise as in SQLite whatever the database's locale;
 *  - SQLite's COLLATE NOCASE becomes lower() in the index and the queries
 *    (names are ASCII, validated before they are stored);
 *  - the version is the one row of pcapd_schema (SQLite: PRAGMA
 *    user_version), and migrating takes a transaction-scoped advisory lock,
 *    so several controllers starting at once migrate once.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "db/db_pg_int.h"
#include "db/migrations.h"

#define T "TEXT COLLATE \"C\""

/* Any number; the lock that serialises migrations of one database. */
#define MIGRATION_LOCK "7243501"

static const char *const migrations[] = {
	/* 1: the first schema. */
	"CREATE TABLE accounts ("
	"  id " T " PRIMARY KEY NOT NULL,"
	"  created_ns BIGINT NOT NULL"
	");"
	"CREATE TABLE credentials ("
	"  hash BYTEA PRIMARY KEY NOT NULL CHECK (length(hash) = 32),"
	"  email " T "," /* NULL: bearer token; else legacy key of this email (compared with lower()) */
	"  account " T " NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  scope INTEGER NOT NULL CHECK (scope BETWEEN 1 AND 3),"
	"  created_ns BIGINT NOT NULL"
	");"
	"CREATE TABLE jobs ("
	"  id " T " PRIMARY KEY NOT NULL,"
	"  account " T " NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  type INTEGER NOT NULL CHECK (type IN (0, 1)),"
	"  status INTEGER NOT NULL CHECK (status BETWEEN 0 AND 5),"
	"  filter_json TEXT,"
	"  time_limit BIGINT NOT NULL,"
	"  packet_limit BIGINT NOT NULL,"
	"  byte_limit BIGINT NOT NULL,"
	"  colo_name TEXT,"
	"  destination_conf TEXT,"
	"  offset_time_ns BIGINT NOT NULL,"
	"  submitted_ns BIGINT NOT NULL,"
	"  stop_requested_ns BIGINT NOT NULL,"
	"  stop_reason INTEGER NOT NULL,"
	"  error_message TEXT,"
	"  packets BIGINT NOT NULL,"
	"  bytes BIGINT NOT NULL,"
	"  drops BIGINT NOT NULL,"
	"  finished_ns BIGINT NOT NULL"
	");"
	"CREATE INDEX jobs_by_account ON jobs(account, submitted_ns DESC, id DESC);"
	"CREATE INDEX jobs_by_account_type ON jobs(account, type, submitted_ns DESC);"
	"CREATE INDEX jobs_active ON jobs(account, type) WHERE status NOT IN (4, 5);"
	"CREATE TABLE parts ("
	"  job_id " T " NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
	"  agent " T " NOT NULL,"
	"  state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 5),"
	"  packets BIGINT NOT NULL,"
	"  bytes BIGINT NOT NULL,"
	"  drops BIGINT NOT NULL,"
	"  stop_reason INTEGER NOT NULL,"
	"  object TEXT,"
	"  error TEXT,"
	"  updated_ns BIGINT NOT NULL,"
	"  PRIMARY KEY (job_id, agent)"
	");"
	"CREATE INDEX parts_active ON parts(agent, job_id) WHERE state NOT IN (3, 4, 5);"
	"CREATE TABLE buckets ("
	"  id " T " PRIMARY KEY NOT NULL,"
	"  account " T " NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  destination_conf " T " NOT NULL,"
	"  filename TEXT,"
	"  challenge TEXT,"
	"  status INTEGER NOT NULL CHECK (status BETWEEN 0 AND 2),"
	"  submitted_ns BIGINT NOT NULL,"
	"  validated_ns BIGINT NOT NULL,"
	"  UNIQUE (account, destination_conf)"
	");"
	"CREATE INDEX buckets_by_account ON buckets(account, submitted_ns);"
	"CREATE TABLE agents ("
	"  name " T " PRIMARY KEY NOT NULL,"
	"  colo " T " NOT NULL,"
	"  interfaces TEXT,"
	"  version TEXT,"
	"  first_seen_ns BIGINT NOT NULL,"
	"  last_seen_ns BIGINT NOT NULL"
	");",
	/* 2: snaplen, several outputs, continuous mode, the neutral filter. */
	"ALTER TABLE jobs ADD COLUMN filter_model TEXT;"
	"ALTER TABLE jobs ADD COLUMN snaplen BIGINT NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN outputs TEXT;"
	"ALTER TABLE jobs ADD COLUMN continuous INTEGER NOT NULL DEFAULT 0 CHECK (continuous BETWEEN 0 AND 2);"
	"ALTER TABLE jobs ADD COLUMN file_count BIGINT NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN file_size BIGINT NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN session_limit BIGINT NOT NULL DEFAULT 0;"
	"UPDATE jobs SET outputs = json_build_array(json_build_object('kind', 'bucket', 'target', destination_conf))"
	"  ::text WHERE destination_conf IS NOT NULL;"
	"ALTER TABLE jobs DROP COLUMN destination_conf;",
	/* 3: the part state "captured" (2); uploading, done, failed, lost move up. */
	"ALTER TABLE parts DROP CONSTRAINT parts_state_check;" /* the name PostgreSQL gave it in 1 */
	"UPDATE parts SET state = state + 1 WHERE state >= 2;"
	"ALTER TABLE parts ADD CONSTRAINT parts_state_check CHECK (state BETWEEN 0 AND 6);"
	"DROP INDEX parts_active;"
	"CREATE INDEX parts_active ON parts(agent, job_id) WHERE state NOT IN (4, 5, 6);",
	/* 4: the request's own spellings, for its dialect to echo. */
	"ALTER TABLE jobs ADD COLUMN echo_json TEXT;",
	/* 5: named captures, start time, why a part failed. */
	"ALTER TABLE jobs ADD COLUMN started_ns BIGINT NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN name_group " T ";"
	"ALTER TABLE jobs ADD COLUMN name_watcher " T ";"
	"ALTER TABLE jobs ADD COLUMN name " T ";"
	"ALTER TABLE jobs ADD COLUMN request TEXT;"
	"ALTER TABLE parts ADD COLUMN failure INTEGER NOT NULL DEFAULT 0 CHECK (failure BETWEEN 0 AND 4);"
	"CREATE UNIQUE INDEX jobs_by_name ON jobs(account, lower(name_group), lower(name_watcher), lower(name)) "
	"  WHERE name IS NOT NULL;",
	/* 6: enrolment and per-agent keys. */
	"CREATE TABLE enroll_tokens ("
	"  hash BYTEA PRIMARY KEY NOT NULL CHECK (length(hash) = 32),"
	"  account " T " REFERENCES accounts(id) ON DELETE CASCADE," /* NULL: operator */
	"  name_pattern TEXT,"
	"  colo TEXT,"
	"  expires_ns BIGINT NOT NULL," /* 0: never */
	"  created_ns BIGINT NOT NULL"
	");"
	"CREATE TABLE agent_keys ("
	"  name " T " PRIMARY KEY NOT NULL,"
	"  hash BYTEA NOT NULL UNIQUE CHECK (length(hash) = 32),"
	"  account " T " REFERENCES accounts(id) ON DELETE CASCADE," /* NULL: operator agent */
	"  colo " T ","
	"  enrolled_ns BIGINT NOT NULL"
	");"
	"CREATE INDEX agent_keys_by_account ON agent_keys(account);"
	"CREATE TABLE bucket_shares ("
	"  bucket_id " T " NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,"
	"  account " T " NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  PRIMARY KEY (bucket_id, account)"
	");",
	/* 7: object stores: the part state upload_failed (7), the upload's
	 * attempt, and a bucket's identity (every earlier bucket is a file://
	 * URI in its normal form, which is its identity). */
	"ALTER TABLE parts DROP CONSTRAINT parts_state_check;"
	"ALTER TABLE parts ADD CONSTRAINT parts_state_check CHECK (state BETWEEN 0 AND 7);"
	"ALTER TABLE parts ADD COLUMN attempt BIGINT NOT NULL DEFAULT 0 CHECK (attempt >= 0);"
	"DROP INDEX parts_active;"
	"CREATE INDEX parts_active ON parts(agent, job_id) WHERE state NOT IN (4, 5, 6, 7);"
	"ALTER TABLE buckets ADD COLUMN match_key TEXT;"
	"UPDATE buckets SET match_key = destination_conf;"
	"CREATE UNIQUE INDEX buckets_by_key ON buckets(account, match_key);"
	"CREATE INDEX buckets_by_identity ON buckets(match_key);",
	/* 8: several controllers over one database. */
	"ALTER TABLE agents ADD COLUMN account " T ";"
	"ALTER TABLE agents ADD COLUMN history TEXT;"
	"CREATE TABLE samples ("
	"  job_id " T " NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
	"  agent " T " NOT NULL,"
	"  pcap BYTEA NOT NULL,"
	"  PRIMARY KEY (job_id, agent)"
	");",
	/* 9: a job's parts counted (migrations.c). */
	"ALTER TABLE jobs ADD COLUMN tally TEXT;",
};

_Static_assert(ARRAY_SIZE(migrations) == DB_SCHEMA_VERSION, "a migration is numbered in every backend");

static int exec(PGconn *h, const char *sql, const char *what, ErrBuf *err)
{
	PGresult *res = PQexec(h, sql);
	int r = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

		r = errbuf_set(err, dbp_errno(res), "db: %s: %.160s", what, m ? m : PQerrorMessage(h));
	}
	PQclear(res);
	return r;
}

/* The schema version, inside the migration transaction (0: a new database). */
static int schema_version(PGconn *h, int *ret, ErrBuf *err)
{
	PGresult *res = PQexec(h, "SELECT version FROM pcapd_schema");
	uint64_t v = 0;
	int r = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		r = errbuf_set(err, dbp_errno(res), "db: reading the schema version: %.160s", PQerrorMessage(h));
	} else if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0) ||
		   parse_u64(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), 0, 1000000, &v) < 0) {
		r = errbuf_set(err, -EIO, "db: pcapd_schema does not hold one version");
	}
	PQclear(res);
	if (r == 0)
		*ret = (int)v;
	return r;
}

int dbp_migrate(PGconn *h, ErrBuf *err)
{
	int have = 0, r;

	for (;;) {
		char bump[64];

		r = exec(h, "BEGIN", "starting a migration", err);
		if (r < 0)
			return r;
		/* One migrating process at a time; the others wait here and then
		 * see the version it left. */
		r = exec(h, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", "locking the schema", err);
		if (r == 0)
			r = exec(h,
				 "CREATE TABLE IF NOT EXISTS pcapd_schema (version INTEGER NOT NULL);"
				 "INSERT INTO pcapd_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM pcapd_schema)",
				 "creating the schema version", err);
		if (r == 0)
			r = schema_version(h, &have, err);
		if (r < 0)
			goto rollback;
		if (have > DB_SCHEMA_VERSION) {
			r = errbuf_set(err, -ENOTSUP,
				       "db: the database has schema version %d, newer than this pcapd knows (%d); "
				       "use a newer pcapd",
				       have, DB_SCHEMA_VERSION);
			goto rollback;
		}
		if (have == DB_SCHEMA_VERSION)
			return exec(h, "COMMIT", "ending a migration", err);
		r = exec(h, migrations[have], "applying a schema migration", err);
		if (r < 0)
			goto rollback;
		snprintf(bump, sizeof(bump), "UPDATE pcapd_schema SET version = %d", have + 1);
		r = exec(h, bump, "recording the schema version", err);
		if (r == 0)
			r = exec(h, "COMMIT", "committing a schema migration", err);
		if (r < 0)
			goto rollback;
	}

rollback:
	exec(h, "ROLLBACK", "rolling back", NULL);
	return r;
}

/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/db, run against each backend: every function
 * round-trips, rows are scoped by account, the limits of db_job_insert hold
 * under a race, and the schema migrates, survives a reopen and refuses a
 * newer database.
 *
 * SQLite (default): each test gets a fresh database file in a temporary
 * directory. PostgreSQL: with PCAPD_TEST_PG set to a libpq URI of an empty
 * database (tests/unit/db/with-postgres.py starts a server and sets it), each
 * test starts from an empty schema in that database.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "db/db.h"
#include "db/migrations.h"
#include "dbtest.h"

static int raw_user_version(const char *path)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	int v;

	assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

/* The schema version the database records (outside pcapd). */
static int raw_version(const T *t)
{
	if (pg_uri) {
		PGconn *h = PQconnectdb(pg_uri);
		PGresult *res = PQexec(h, "SELECT version FROM pcapd_schema");
		uint64_t v = 0;

		assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
		assert_int_equal(PQntuples(res), 1);
		assert_int_equal(parse_u64(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), 0, 100000, &v), 0);
		PQclear(res);
		PQfinish(h);
		return (int)v;
	}
	return raw_user_version(t->path);
}

/* ---- open, migrate, reopen ---- */

static void test_open_reopen(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	Job j = make_job(ACC_A, JOB_FULL, 100 * SEC), got;
	uint8_t h[32];
	char account[JOB_ID_LEN + 1];
	TokenScope scope;
	struct stat st;

	hash_of(h, 1);
	assert_int_equal(db_credential_add(t->db, h, NULL, ACC_A, SCOPE_WRITE, &err), 0);
	assert_int_equal(db_job_insert(t->db, &j, NULL, 0, NULL, NULL, &err), 0);
	db_close(t->db);
	t->db = NULL;
	assert_int_equal(raw_version(t), db_schema_version());
	if (!pg_uri) {
		/* It holds credential hashes: only the owner reads it. */
		assert_int_equal(stat(t->path, &st), 0);
		assert_int_equal(st.st_mode & 0077, 0);
	}

	assert_int_equal(db_open(t->url, &t->db, &err), 0);
	assert_true(db_account_exists(t->db, ACC_A));
	assert_int_equal(db_credential_find(t->db, h, NULL, account, &scope, &err), 0);
	assert_string_equal(account, ACC_A);
	assert_int_equal(scope, SCOPE_WRITE);
	assert_int_equal(db_job_get(t->db, ACC_A, j.id, &got, &err), 0);
	assert_job_equal(&got, &j);
	job_done(&got);
}

static void test_newer_schema_refused(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	sqlite3 *h;
	Db *db = NULL;

	db_close(t->db);
	t->db = NULL;
	if (pg_uri) {
		pg_raw("UPDATE pcapd_schema SET version = 999");
	} else {
		assert_int_equal(sqlite3_open(t->path, &h), SQLITE_OK);
		assert_int_equal(sqlite3_exec(h, "PRAGMA user_version = 999", NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(h);
	}
	assert_int_equal(db_open(t->url, &db, &err), -ENOTSUP);
	assert_null(db);
	assert_non_null(strstr(err.msg, "schema version 999, newer"));
	assert_int_equal(raw_version(t), 999);
}

/* A database of schema version 1 (as the first release wrote it) is migrated
 * to the newest: destination_conf becomes the one bucket output, the filter
 * model is made from filter_json (2), and the part states of version 1
 * (2 uploading, 3 done, 4 failed, 5 lost) keep their meaning (3); it has no
 * name, request, start time or part failure kind (5). */
static void test_migration_2(void **state)
{
	static const char v1[] =
		"CREATE TABLE accounts (id TEXT PRIMARY KEY NOT NULL, created_ns INTEGER NOT NULL);"
		"CREATE TABLE jobs (id TEXT PRIMARY KEY NOT NULL,"
		"  account TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
		"  type INTEGER NOT NULL CHECK (type IN (0, 1)), status INTEGER NOT NULL CHECK (status BETWEEN 0 AND "
		"5),"
		"  filter_json TEXT, time_limit INTEGER NOT NULL, packet_limit INTEGER NOT NULL,"
		"  byte_limit INTEGER NOT NULL, colo_name TEXT, destination_conf TEXT, offset_time_ns INTEGER NOT NULL,"
		"  submitted_ns INTEGER NOT NULL, stop_requested_ns INTEGER NOT NULL, stop_reason INTEGER NOT NULL,"
		"  error_message TEXT, packets INTEGER NOT NULL, bytes INTEGER NOT NULL, drops INTEGER NOT NULL,"
		"  finished_ns INTEGER NOT NULL);"
		"CREATE TABLE buckets (id TEXT PRIMARY KEY NOT NULL,"
		"  account TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE, destination_conf TEXT NOT NULL,"
		"  filename TEXT, challenge TEXT, status INTEGER NOT NULL CHECK (status BETWEEN 0 AND 2),"
		"  submitted_ns INTEGER NOT NULL, validated_ns INTEGER NOT NULL, UNIQUE (account, destination_conf));"
		"INSERT INTO accounts VALUES ('" ACC_A "', 1);"
		"INSERT INTO buckets VALUES ('11111111111111111111111111111111', '" ACC_A "', 'file:///srv/b', 'f',"
		"  'c', 1, 2, 3);"
		"INSERT INTO jobs VALUES ('0123456789abcdef0123456789abcdef', '" ACC_A "', 1, 1,"
		"  '{\"destination_port\":80}', 60, 0, 0, 'web01', 'file:///srv/b', 0, 5, 0, 0, NULL, 0, 0, 0, 0);"
		"CREATE TABLE parts (job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
		"  agent TEXT NOT NULL, state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 5),"
		"  packets INTEGER NOT NULL, bytes INTEGER NOT NULL, drops INTEGER NOT NULL,"
		"  stop_reason INTEGER NOT NULL, object TEXT, error TEXT, updated_ns INTEGER NOT NULL,"
		"  PRIMARY KEY (job_id, agent));"
		"CREATE INDEX parts_active ON parts(agent, job_id) WHERE state NOT IN (3, 4, 5);"
		"CREATE TABLE agents (name TEXT PRIMARY KEY NOT NULL, colo TEXT NOT NULL, interfaces TEXT,"
		"  version TEXT, first_seen_ns INTEGER NOT NULL, last_seen_ns INTEGER NOT NULL);"
		"INSERT INTO parts VALUES ('0123456789abcdef0123456789abcdef', 'a0', 0, 0, 0, 0, 0, NULL, NULL, 1),"
		"  ('0123456789abcdef0123456789abcdef', 'a1', 1, 0, 0, 0, 0, NULL, NULL, 1),"
		"  ('0123456789abcdef0123456789abcdef', 'a2', 2, 0, 0, 0, 0, NULL, NULL, 1),"
		"  ('0123456789abcdef0123456789abcdef', 'a3', 3, 7, 0, 0, 1, 'o', NULL, 1),"
		"  ('0123456789abcdef0123456789abcdef', 'a4', 4, 0, 0, 0, 6, NULL, 'boom', 1),"
		"  ('0123456789abcdef0123456789abcdef', 'a5', 5, 0, 0, 0, 5, NULL, 'gone', 1);";
	/* a0..a5, as version 1 stored them 0..5 */
	static const PartState want[] = {PART_ASSIGNED, PART_RUNNING, PART_UPLOADING,
					 PART_DONE,     PART_FAILED,  PART_LOST};
	T *t = *state;
	ErrBuf err = {{0}};
	Job got = {0};
	JobPart *parts = NULL;
	size_t n = 0;
	sqlite3 *h;

	db_close(t->db);
	t->db = NULL;
	if (pg_uri) {
		/* The same version-1 tables; the version where PostgreSQL keeps it. */
		pg_raw("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
		pg_raw(v1);
		/* The rest of version 1, which PostgreSQL needs for the
		 * references of later versions (SQLite checks them on use). */
		pg_raw("CREATE TABLE credentials (hash BYTEA PRIMARY KEY NOT NULL, email TEXT,"
		       "  account TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE, scope INTEGER NOT NULL,"
		       "  created_ns BIGINT NOT NULL)");
		pg_raw("CREATE TABLE pcapd_schema (version INTEGER NOT NULL); INSERT INTO pcapd_schema VALUES (1)");
	} else {
		rm_db_files(t->path);
		assert_int_equal(sqlite3_open(t->path, &h), SQLITE_OK);
		assert_int_equal(sqlite3_exec(h, v1, NULL, NULL, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_exec(h, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(h);
	}
	if (db_open(t->url, &t->db, &err) < 0)
		fail_msg("db_open: %s", err.msg);
	assert_int_equal(raw_version(t), db_schema_version());
	assert_int_equal(db_job_get(t->db, ACC_A, "0123456789abcdef0123456789abcdef", &got, &err), 0);
	/* 5: no name, not started as far as anyone knows, parts without a failure kind */
	assert_null(got.name.name);
	assert_null(got.request);
	assert_int_equal(got.started_ns, 0);
	assert_int_equal(db_part_list(t->db, got.id, &parts, &n, &err), 0);
	assert_int_equal(n, 6);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(parts[i].failure, PART_FAIL_NONE);
	parts_free(parts, n);
	assert_int_equal(got.n_outputs, 1);
	assert_int_equal(got.outputs[0].kind, JOB_OUTPUT_BUCKET);
	assert_string_equal(got.outputs[0].target, "file:///srv/b");
	assert_string_equal(got.filter_model, "{\"clauses\":[{\"dport\":[\"80\"]}]}");
	assert_int_equal(got.snaplen, 0);
	assert_false(got.continuous.on);
	assert_null(got.echo_json);
	job_done(&got);
	assert_int_equal(db_part_list(t->db, "0123456789abcdef0123456789abcdef", &parts, &n, &err), 0);
	assert_int_equal(n, 6);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(parts[i].state, want[i]);
	assert_string_equal(parts[3].object, "o");
	parts_free(parts, n);
	/* the parts an agent still has to do: the renumbered terminal ones are not */
	for (int k = 0; k < 6; k++) {
		char agent[8];

		snprintf(agent, sizeof(agent), "a%d", k);
		assert_int_equal(db_part_list_for_agent(t->db, agent, &parts, &n, &err), 0);
		assert_int_equal(n, k <= 2 ? 1 : 0);
		parts_free(parts, n);
	}
	/* 7: a bucket's identity is its URI (every earlier one is file://) */
	{
		BucketRow b = {0};

		assert_int_equal(db_bucket_find(t->db, ACC_A, "file:///srv/b", &b, &err), 0);
		assert_string_equal(b.match_key, "file:///srv/b");
		bucket_row_done(&b);
	}
	/* 7: attempt 0 on every kept row; the state upload_failed fits, is
	 * terminal and keeps its attempt. */
	assert_int_equal(db_job_get(t->db, ACC_A, "0123456789abcdef0123456789abcdef", &got, &err), 0);
	assert_int_equal(db_part_list(t->db, "0123456789abcdef0123456789abcdef", &parts, &n, &err), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(parts[i].attempt, 0);
	parts[2].state = PART_UPLOAD_FAILED; /* a2: uploading */
	parts[2].attempt = 2;
	assert_int_equal(store_job(t->db, &got, &parts[2], 1, &err), 0);
	parts_free(parts, n);
	assert_int_equal(db_part_list_for_agent(t->db, "a2", &parts, &n, &err), 0);
	assert_int_equal(n, 0);
	parts_free(parts, n);
	assert_int_equal(db_part_list(t->db, "0123456789abcdef0123456789abcdef", &parts, &n, &err), 0);
	assert_int_equal(parts[2].state, PART_UPLOAD_FAILED);
	assert_int_equal(parts[2].attempt, 2);
	parts_free(parts, n);
	job_done(&got);
}

static void test_open_bad_path(void **state)
{
	ErrBuf err = {{0}};
	Db *db = NULL;

	(void)state;
	assert_int_equal(db_open("/nonexistent-dir/x/state.db", &db, &err), -ENOENT);
	assert_null(db);
	assert_non_null(strstr(err.msg, "/nonexistent-dir/x/state.db"));
	assert_int_equal(db_open("", &db, &err), -EINVAL);
}

/* "sqlite:PATH" and a bare PATH open the same file; an unknown scheme is
 * refused by name, never taken for a file name. */
static void test_open_url(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	char url[160];
	Db *db = NULL;

	snprintf(url, sizeof(url), "sqlite:%s", t->path);
	assert_int_equal(db_open(url, &db, &err), 0);
	assert_true(db_account_exists(db, ACC_A));
	db_close(db);
	db = NULL;
	snprintf(url, sizeof(url), "SQLite:%s", t->path);
	assert_int_equal(db_open(url, &db, &err), 0);
	db_close(db);
	db = NULL;
	assert_int_equal(db_open("mysql://localhost/pcapd", &db, &err), -EINVAL);
	assert_null(db);
	assert_non_null(strstr(err.msg, "\"mysql\""));
	assert_int_equal(db_open("sqlite:", &db, &err), -EINVAL);
	assert_null(db);
}

static void test_open_not_a_database(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	Db *db = NULL;
	FILE *f;

	db_close(t->db);
	t->db = NULL;
	rm_db_files(t->path);
	f = fopen(t->path, "we");
	assert_non_null(f);
	for (int i = 0; i < 1024; i++)
		fputs("this is not an SQLite database\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(db_open(t->path, &db, &err), -EIO);
	assert_null(db);
	assert_non_null(strstr(err.msg, "not a database"));
}

/* PostgreSQL: a malformed URI is -EINVAL, a server that is not there
 * -ECONNREFUSED, both saying so. */
static void test_pg_open_errors(void **state)
{
	ErrBuf err = {{0}};
	Db *db = NULL;

	(void)state;
	assert_int_equal(db_open("postgres://u@/db?nosuchoption=1", &db, &err), -EINVAL);
	assert_null(db);
	assert_non_null(strstr(err.msg, "not a PostgreSQL URI"));
	assert_int_equal(db_open("postgresql:///db?host=/nonexistent-dir&connect_timeout=5", &db, &err), -ECONNREFUSED);
	assert_null(db);
	assert_non_null(strstr(err.msg, "connecting to PostgreSQL"));
}

/* ---- accounts and credentials ---- */

static void test_scope_strings(void **state)
{
	TokenScope s;

	(void)state;
	assert_string_equal(token_scope_to_string(SCOPE_READ), "read");
	assert_string_equal(token_scope_to_string(SCOPE_WRITE), "write");
	assert_string_equal(token_scope_to_string(SCOPE_AGENT), "agent");
	assert_string_equal(token_scope_to_string((TokenScope)0), "unknown");
	assert_string_equal(token_scope_to_string((TokenScope)9), "unknown");
	assert_int_equal(token_scope_from_string("write", &s), 0);
	assert_int_equal(s, SCOPE_WRITE);
	assert_int_equal(token_scope_from_string("agent", &s), 0);
	assert_int_equal(s, SCOPE_AGENT);
	assert_int_equal(token_scope_from_string("Write", &s), -EINVAL);
	assert_int_equal(token_scope_from_string("", &s), -EINVAL);
	assert_int_equal(token_scope_from_string(NULL, &s), -EINVAL);
	assert_string_equal(bucket_status_to_string(BUCKET_PENDING), "pending");
	assert_string_equal(bucket_status_to_string(BUCKET_SUCCESS), "success");
	assert_string_equal(bucket_status_to_string(BUCKET_FAILED), "failed");
}

static void test_accounts(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};

	assert_true(db_account_exists(t->db, ACC_A));
	assert_false(db_account_exists(t->db, "cccccccccccccccccccccccccccccccc"));
	assert_false(db_account_exists(t->db, NULL));
	assert_int_equal(db_account_ensure(t->db, ACC_A, &err), 0); /* idempotent */
	assert_int_equal(db_account_ensure(t->db, "cccccccccccccccccccccccccccccccc", &err), 0);
	assert_true(db_account_exists(t->db, "cccccccccccccccccccccccccccccccc"));
	assert_int_equal(db_account_ensure(t->db, "", &err), -EINVAL);
}

static void test_credentials(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	uint8_t tok[32], key[32], other[32];
	char account[JOB_ID_LEN + 1] = "untouched";
	TokenScope scope = SCOPE_READ;

	hash_of(tok, 1);
	hash_of(key, 2);
	hash_of(other, 3);
	assert_int_equal(db_credential_add(t->db, tok, NULL, ACC_A, SCOPE_READ, &err), 0);
	assert_int_equal(db_credential_add(t->db, key, "User@Example.com", ACC_B, SCOPE_WRITE, &err), 0);

	assert_int_equal(db_credential_find(t->db, tok, NULL, account, &scope, &err), 0);
	assert_string_equal(account, ACC_A);
	assert_int_equal(scope, SCOPE_READ);
	/* A legacy key needs its email (compared without case), a token none. */
	assert_int_equal(db_credential_find(t->db, key, "user@example.com", account, &scope, &err), 0);
	assert_string_equal(account, ACC_B);
	assert_int_equal(scope, SCOPE_WRITE);
	snprintf(account, sizeof(account), "untouched");
	assert_int_equal(db_credential_find(t->db, key, NULL, account, &scope, &err), -ENOENT);
	assert_int_equal(db_credential_find(t->db, key, "other@example.com", account, &scope, &err), -ENOENT);
	assert_int_equal(db_credential_find(t->db, tok, "user@example.com", account, &scope, &err), -ENOENT);
	assert_int_equal(db_credential_find(t->db, other, NULL, account, &scope, &err), -ENOENT);
	assert_string_equal(account, "untouched");
	assert_int_equal(scope, SCOPE_WRITE);

	assert_int_equal(db_credential_add(t->db, tok, NULL, ACC_B, SCOPE_WRITE, &err), -EEXIST);
	assert_int_equal(db_credential_add(t->db, other, NULL, "cccccccccccccccccccccccccccccccc", SCOPE_READ, &err),
			 -ENOENT);
	assert_int_equal(db_credential_add(t->db, other, NULL, ACC_A, (TokenScope)0, &err), -EINVAL);
	assert_int_equal(db_credential_add(t->db, other, NULL, ACC_A, (TokenScope)4, &err), -EINVAL);
	assert_int_equal(db_credential_add(t->db, other, "", ACC_A, SCOPE_READ, &err), -EINVAL);
	assert_int_equal(db_credential_add(t->db, other, NULL, ACC_A, SCOPE_AGENT, &err), 0);
	assert_int_equal(db_credential_find(t->db, other, NULL, account, &scope, &err), 0);
	assert_int_equal(scope, SCOPE_AGENT);
}

/* ---- jobs ---- */

static void test_job_roundtrip(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	Job full = make_job(ACC_A, JOB_FULL, 100 * SEC), simple = make_job(ACC_A, JOB_SIMPLE, 101 * SEC), got;

	full.packets = 5;
	full.bytes = (uint64_t)1 << 40;
	full.drops = 2;
	full.stop_requested_ns = 3;
	full.stop_reason = JOB_STOP_USER;
	full.error_message = (char *)"agent x: boom";
	full.finished_ns = 7;
	full.started_ns = 6;
	full.status = JOB_CONVERSION_RUNNING;
	full.request = (char *)"{\"target\":\"vm1\"}";
	assert_int_equal(db_job_insert(t->db, &full, NULL, 0, NULL, NULL, &err), 0);
	assert_int_equal(db_job_insert(t->db, &simple, NULL, 0, NULL, NULL, &err), 0);

	assert_int_equal(db_job_get(t->db, ACC_A, full.id, &got, &err), 0);
	assert_job_equal(&got, &full);
	job_done(&got);
	assert_int_equal(db_job_get(t->db, NULL, simple.id, &got, &err), 0);
	assert_job_equal(&got, &simple);
	assert_null(got.filter_json);
	assert_null(got.colo_name);
	assert_int_equal(got.n_outputs, 0);
	assert_null(got.error_message);
	job_done(&got);

	/* Account scoping, unknown ids, duplicates, unknown accounts. */
	memset(&got, 0x5a, sizeof(got));
	assert_int_equal(db_job_get(t->db, ACC_B, full.id, &got, &err), -ENOENT);
	assert_int_equal(got.type, 0x5a5a5a5a); /* untouched */
	assert_int_equal(db_job_get(t->db, ACC_A, "00000000000000000000000000000000", &got, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no job 00000000000000000000000000000000"));
	assert_int_equal(db_job_insert(t->db, &full, NULL, 0, NULL, NULL, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "exists already"));
	Job orphan = make_job("cccccccccccccccccccccccccccccccc", JOB_FULL, 1);
	assert_int_equal(db_job_insert(t->db, &orphan, NULL, 0, NULL, NULL, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "account cccccccccccccccccccccccccccccccc does not exist"));
}

static Job named_job(const char *account, int64_t submitted_ns, const char *group, const char *watcher,
		     const char *name)
{
	Job j = make_job(account, JOB_FULL, submitted_ns);

	j.name = (JobName){(char *)group, (char *)watcher, (char *)name};
	return j;
}

static void test_named_jobs(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	Job a = named_job(ACC_A, 100 * SEC, "rg1", "nw1", "pc1"), b = named_job(ACC_A, 101 * SEC, "rg1", "nw1", "pc2");
	Job c = named_job(ACC_A, 102 * SEC, "rg1", "nw2", "pc1"), d = named_job(ACC_B, 103 * SEC, "rg1", "nw1", "pc1");
	Job dup = named_job(ACC_A, 104 * SEC, "RG1", "NW1", "PC1"), plain = make_job(ACC_A, JOB_FULL, 105 * SEC);
	Job e = named_job(ACC_A, 101 * SEC, "rg1", "nw1", "pc3"), got, *v;
	JobName key = {"Rg1", "nW1", "Pc2"};
	JobCursor cur;
	size_t n;

	assert_int_equal(db_job_insert(t->db, &a, NULL, 0, NULL, NULL, &err), 0);
	assert_int_equal(db_job_insert(t->db, &b, NULL, 0, NULL, NULL, &err), 0);
	assert_int_equal(db_job_insert(t->db, &c, NULL, 0, NULL, NULL, &err), 0); /* another watcher */
	assert_int_equal(db_job_insert(t->db, &d, NULL, 0, NULL, NULL, &err), 0); /* another account */
	assert_int_equal(db_job_insert(t->db, &e, NULL, 0, NULL, NULL, &err), 0); /* same time as b */
	assert_int_equal(db_job_insert(t->db, &plain, NULL, 0, NULL, NULL, &err), 0);
	/* names compare without regard to case */
	assert_int_equal(db_job_insert(t->db, &dup, NULL, 0, NULL, NULL, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "named PC1 in RG1/NW1 already"));

	assert_int_equal(db_job_find_named(t->db, ACC_A, &key, &got, &err), 0);
	assert_job_equal(&got, &b);
	job_done(&got);
	assert_int_equal(db_job_find_named(t->db, ACC_B, &key, &got, &err), -ENOENT);

	/* newest first, a page at a time, ties broken by id */
	assert_int_equal(db_job_list_named(t->db, ACC_A, "RG1", "nw1", NULL, 2, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_true(v[0].submitted_ns == 101 * SEC && v[1].submitted_ns == 101 * SEC);
	assert_true(strcmp(v[0].id, v[1].id) > 0);
	cur.submitted_ns = v[1].submitted_ns;
	memcpy(cur.id, v[1].id, sizeof(cur.id));
	jobs_free(v, n);
	assert_int_equal(db_job_list_named(t->db, ACC_A, "rg1", "nw1", &cur, 2, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, a.id);
	jobs_free(v, n);

	/* unnamed: gone from the names, still a job; the name is free again */
	assert_int_equal(db_job_unname(t->db, ACC_A, a.id, &err), 0);
	assert_int_equal(db_job_unname(t->db, ACC_A, a.id, &err), -ENOENT);
	assert_int_equal(db_job_find_named(t->db, ACC_A, &(JobName){"rg1", "nw1", "pc1"}, &got, &err), -ENOENT);
	assert_int_equal(db_job_get(t->db, ACC_A, a.id, &got, &err), 0);
	assert_null(got.name.name);
	assert_null(got.name.group);
	job_done(&got);
	assert_int_equal(db_job_insert(t->db, &dup, NULL, 0, NULL, NULL, &err), 0);
	assert_int_equal(db_job_unname(t->db, ACC_B, dup.id, &err), -ENOENT); /* scoped by account */
}

static void test_job_list(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	uint64_t total = 0;
	Job a[5];
	Job *v;
	size_t n;

	for (int i = 0; i < 5; i++) {
		a[i] = make_job(ACC_A, i % 2 ? JOB_SIMPLE : JOB_FULL, (100 + i) * SEC);
		assert_int_equal(db_job_insert(t->db, &a[i], NULL, 0, NULL, NULL, &err), 0);
	}
	Job b = make_job(ACC_B, JOB_FULL, 200 * SEC);
	assert_int_equal(db_job_insert(t->db, &b, NULL, 0, NULL, NULL, &err), 0);

	assert_int_equal(db_job_list(t->db, ACC_A, 0, 100, &v, &n, &total, &err), 0);
	assert_int_equal(n, 5);
	assert_int_equal(total, 5);
	for (size_t i = 0; i < n; i++)
		assert_job_equal(&v[i], &a[4 - i]); /* newest first */
	jobs_free(v, n);
	/* pages: the total is every job of the account, whichever page */
	assert_int_equal(db_job_list(t->db, ACC_A, 0, 2, &v, &n, &total, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(total, 5);
	assert_string_equal(v[0].id, a[4].id);
	assert_string_equal(v[1].id, a[3].id);
	jobs_free(v, n);
	assert_int_equal(db_job_list(t->db, ACC_A, 2, 2, &v, &n, &total, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, a[2].id);
	assert_string_equal(v[1].id, a[1].id);
	jobs_free(v, n);
	assert_int_equal(db_job_list(t->db, ACC_A, 4, 2, &v, &n, NULL, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, a[0].id);
	jobs_free(v, n);
	assert_int_equal(db_job_list(t->db, ACC_A, 6, 2, &v, &n, &total, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(total, 5);
	jobs_free(v, n);
	assert_int_equal(db_job_list(t->db, ACC_B, 0, 100, &v, &n, &total, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(total, 1);
	assert_string_equal(v[0].id, b.id);
	jobs_free(v, n);
	assert_int_equal(db_job_list(t->db, "cccccccccccccccccccccccccccccccc", 0, 100, &v, &n, &total, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(total, 0);
	jobs_free(v, n);

	/* Active: every non-terminal job of every account, oldest first. */
	a[1].status = JOB_SUCCESS;
	a[3].status = JOB_FAILED;
	a[2].status = JOB_RUNNING;
	assert_int_equal(store_job(t->db, &a[1], NULL, 0, &err), 0);
	assert_int_equal(store_job(t->db, &a[2], NULL, 0, &err), 0);
	assert_int_equal(store_job(t->db, &a[3], NULL, 0, &err), 0);
	assert_int_equal(db_job_list_active(t->db, &v, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_string_equal(v[0].id, a[0].id);
	assert_string_equal(v[1].id, a[2].id);
	assert_int_equal(v[1].status, JOB_RUNNING);
	assert_string_equal(v[2].id, a[4].id);
	assert_string_equal(v[3].id, b.id);
	jobs_free(v, n);
}

static void test_job_count_by_status(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	JobStatus st[] = {JOB_RUNNING, JOB_SUCCESS, JOB_SUCCESS, JOB_FAILED};
	JobStatusCount *c = NULL;
	size_t n = 1;

	assert_int_equal(db_job_count_by_status(t->db, NULL, &c, &n, &err), 0);
	assert_int_equal(n, 0); /* no jobs: no rows */
	free(c);
	for (size_t i = 0; i < ARRAY_SIZE(st); i++) {
		Job j = make_job(ACC_A, JOB_FULL, (int64_t)(100 + i) * SEC);

		j.status = st[i];
		assert_int_equal(db_job_insert(t->db, &j, NULL, 0, NULL, NULL, &err), 0);
	}
	Job b = make_job(ACC_B, JOB_SIMPLE, 300 * SEC);
	assert_int_equal(db_job_insert(t->db, &b, NULL, 0, NULL, NULL, &err), 0);

	assert_int_equal(db_job_count_by_status(t->db, NULL, &c, &n, &err), 0);
	/* ordered by account, then status; only statuses that have jobs */
	assert_int_equal(n, 4);
	assert_string_equal(c[0].account, ACC_A);
	assert_int_equal(c[0].status, JOB_RUNNING);
	assert_int_equal(c[0].count, 1);
	assert_int_equal(c[1].status, JOB_SUCCESS);
	assert_int_equal(c[1].count, 2);
	assert_int_equal(c[2].status, JOB_FAILED);
	assert_int_equal(c[2].count, 1);
	assert_string_equal(c[3].account, ACC_B);
	assert_int_equal(c[3].status, JOB_PENDING);
	assert_int_equal(c[3].count, 1);
	free(c);
	assert_int_equal(db_job_count_by_status(t->db, ACC_B, &c, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(c[0].account, ACC_B);
	free(c);
}

static void test_job_update(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	Job j = make_job(ACC_A, JOB_FULL, 100 * SEC), got;

	assert_int_equal(db_job_insert(t->db, &j, NULL, 0, NULL, NULL, &err), 0);
	j.status = JOB_FAILED;
	j.stop_requested_ns = 150 * SEC;
	j.stop_reason = JOB_STOP_ERROR;
	j.error_message = (char *)"agent a1: interface eth9 vanished";
	j.packets = 10;
	j.bytes = 1000;
	j.drops = 1;
	j.finished_ns = 160 * SEC;
	assert_int_equal(store_job(t->db, &j, NULL, 0, &err), 0);
	assert_int_equal(db_job_get(t->db, ACC_A, j.id, &got, &err), 0);
	assert_job_equal(&got, &j);
	job_done(&got);

	/* Back to NULL. */
	j.error_message = NULL;
	assert_int_equal(store_job(t->db, &j, NULL, 0, &err), 0);
	assert_int_equal(db_job_get(t->db, ACC_A, j.id, &got, &err), 0);
	assert_null(got.error_message);
	job_done(&got);

	/* Immutable fields are never written: test-db-fleet.c. */
	Job other = j;
	snprintf(other.account, sizeof(other.account), "%s", ACC_B);
	assert_int_equal(store_job(t->db, &other, NULL, 0, &err), -ENOENT);
	Job missing = make_job(ACC_A, JOB_FULL, 1);
	assert_int_equal(store_job(t->db, &missing, NULL, 0, &err), -ENOENT);
	assert_non_null(strstr(err.msg, missing.id));
}

static void test_parts(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	Job j = make_job(ACC_A, JOB_FULL, 100 * SEC), k = make_job(ACC_B, JOB_FULL, 101 * SEC), got;
	JobPart p[3], q[2], *v;
	size_t n;

	p[0] = make_part(&j, "zeta", PART_ASSIGNED);
	p[1] = make_part(&j, "alpha", PART_RUNNING);
	p[1].packets = 3;
	p[1].bytes = 300;
	p[1].drops = 1;
	p[2] = make_part(&j, "mid", PART_DONE);
	p[2].object = (char *)"pcap_x_mid.pcap";
	p[2].stop_reason = JOB_STOP_TIME;
	q[0] = make_part(&k, "alpha", PART_FAILED);
	q[0].error = (char *)"no such interface";
	q[0].failure = PART_FAIL_CAPTURE;
	q[1] = make_part(&k, "beta", PART_UPLOADING);
	assert_int_equal(db_job_insert(t->db, &j, p, 3, NULL, NULL, &err), 0);
	assert_int_equal(db_job_insert(t->db, &k, q, 2, NULL, NULL, &err), 0);

	assert_int_equal(db_part_list(t->db, j.id, &v, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_part_equal(&v[0], &p[1]); /* by agent name */
	assert_part_equal(&v[1], &p[2]);
	assert_part_equal(&v[2], &p[0]);
	parts_free(v, n);

	/* Only what the agent should still be doing. */
	assert_int_equal(db_part_list_for_agent(t->db, "alpha", &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_part_equal(&v[0], &p[1]);
	parts_free(v, n);
	assert_int_equal(db_part_list_for_agent(t->db, "mid", &v, &n, &err), 0);
	assert_int_equal(n, 0);
	parts_free(v, n);
	assert_int_equal(db_part_list_for_agent(t->db, "beta", &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_part_equal(&v[0], &q[1]);
	parts_free(v, n);

	/* The job and its parts change together (db_job_modify). */
	p[1].state = PART_DONE;
	p[1].object = (char *)"pcap_x_alpha.pcap";
	p[0].state = PART_LOST;
	p[0].error = (char *)"no heartbeat for 30 s";
	JobPart upd[2] = {p[0], p[1]};
	j.status = JOB_RUNNING;
	j.packets = 3;
	assert_int_equal(store_job(t->db, &j, upd, 2, &err), 0);
	assert_int_equal(db_job_get(t->db, ACC_A, j.id, &got, &err), 0);
	assert_job_equal(&got, &j);
	job_done(&got);
	assert_int_equal(db_part_list(t->db, j.id, &v, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_part_equal(&v[0], &p[1]);
	assert_part_equal(&v[1], &p[2]);
	assert_part_equal(&v[2], &p[0]);
	parts_free(v, n);
	assert_int_equal(db_part_list_for_agent(t->db, "alpha", &v, &n, &err), 0);
	assert_int_equal(n, 0);
	parts_free(v, n);

	/* A missing job changes nothing. */
	Job missing = make_job(ACC_A, JOB_FULL, 1);
	JobPart mp = make_part(&missing, "alpha", PART_RUNNING);
	assert_int_equal(store_job(t->db, &missing, &mp, 1, &err), -ENOENT);
	assert_int_equal(db_part_list(t->db, k.id, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	parts_free(v, n);
	assert_int_equal(db_part_list(t->db, "00000000000000000000000000000000", &v, &n, &err), 0);
	assert_int_equal(n, 0);
	parts_free(v, n);

	/* A duplicate agent in one insert fails the whole insert. */
	Job dup = make_job(ACC_A, JOB_FULL, 200 * SEC);
	JobPart dp[2] = {make_part(&dup, "a", PART_ASSIGNED), make_part(&dup, "a", PART_ASSIGNED)};
	assert_int_equal(db_job_insert(t->db, &dup, dp, 2, NULL, NULL, &err), -EEXIST);
	assert_int_equal(db_job_get(t->db, ACC_A, dup.id, &got, &err), -ENOENT);
}

/* ---- limits ---- */

static void test_limit_full(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	JobLimits lim = {.max_active_full = 1, .sample_interval_ns = 0};
	Job a = make_job(ACC_A, JOB_FULL, 100 * SEC), b = make_job(ACC_A, JOB_FULL, 101 * SEC), got;
	Job other = make_job(ACC_B, JOB_FULL, 101 * SEC), s = make_job(ACC_A, JOB_SIMPLE, 102 * SEC);
	int64_t wait = -1;

	assert_int_equal(db_job_insert(t->db, &a, NULL, 0, &lim, &wait, &err), 0);
	assert_int_equal(wait, -1); /* untouched: no limit hit */
	assert_int_equal(db_job_insert(t->db, &b, NULL, 0, &lim, &wait, &err), -EBUSY);
	assert_string_equal(err.msg, "only 1 pending or running full capture(s) per account");
	/* a (submitted at 100 s, time limit 60 s) ends by 160 s */
	assert_int_equal(wait, 160 * SEC);
	assert_int_equal(db_job_get(t->db, ACC_A, b.id, &got, &err), -ENOENT);
	assert_int_equal(db_job_insert(t->db, &other, NULL, 0, &lim, NULL, &err), 0); /* per account */
	assert_int_equal(db_job_insert(t->db, &s, NULL, 0, &lim, NULL, &err), 0);     /* simple not counted */
	assert_int_equal(db_job_insert(t->db, &b, NULL, 0, NULL, NULL, &err), 0);     /* no limits */

	lim.max_active_full = 2;
	Job c = make_job(ACC_A, JOB_FULL, 103 * SEC);
	assert_int_equal(db_job_insert(t->db, &c, NULL, 0, &lim, &wait, &err), -EBUSY);
	assert_string_equal(err.msg, "only 2 pending or running full capture(s) per account");
	assert_int_equal(wait, 160 * SEC); /* the soonest of a (160 s) and b (161 s) */
	a.status = JOB_SUCCESS;
	assert_int_equal(store_job(t->db, &a, NULL, 0, &err), 0);
	assert_int_equal(db_job_insert(t->db, &c, NULL, 0, &lim, NULL, &err), 0);

	/* active captures without a time limit: no known time */
	Job open = make_job(ACC_C, JOB_FULL, 100 * SEC), next = make_job(ACC_C, JOB_FULL, 200 * SEC);

	open.time_limit_s = 0;
	lim.max_active_full = 1;
	assert_int_equal(db_account_ensure(t->db, ACC_C, &err), 0);
	assert_int_equal(db_job_insert(t->db, &open, NULL, 0, &lim, NULL, &err), 0);
	wait = -1;
	assert_int_equal(db_job_insert(t->db, &next, NULL, 0, &lim, &wait, &err), -EBUSY);
	assert_int_equal(wait, 0);
}

static void test_limit_sample(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	JobLimits lim = {.max_active_full = 0, .sample_interval_ns = 60 * SEC};
	Job a = make_job(ACC_A, JOB_SIMPLE, 1000 * SEC), b = make_job(ACC_A, JOB_SIMPLE, 1020 * SEC);
	int64_t wait = 0;

	assert_int_equal(db_job_insert(t->db, &a, NULL, 0, &lim, NULL, &err), 0);
	assert_int_equal(db_job_insert(t->db, &b, NULL, 0, &lim, &wait, &err), -EBUSY);
	assert_string_equal(err.msg, "one sample capture per 60 seconds per account");
	assert_int_equal(wait, 1060 * SEC);
	b.submitted_ns = 1059 * SEC + 1;
	assert_int_equal(db_job_insert(t->db, &b, NULL, 0, &lim, &wait, &err), -EBUSY);
	assert_int_equal(wait, 1060 * SEC);
	Job f = make_job(ACC_A, JOB_FULL, 1021 * SEC);
	assert_int_equal(db_job_insert(t->db, &f, NULL, 0, &lim, NULL, &err), 0); /* full not counted */
	Job other = make_job(ACC_B, JOB_SIMPLE, 1020 * SEC);
	assert_int_equal(db_job_insert(t->db, &other, NULL, 0, &lim, NULL, &err), 0);
	b.submitted_ns = 1060 * SEC;
	assert_int_equal(db_job_insert(t->db, &b, NULL, 0, &lim, NULL, &err), 0);
	/* A clock that went back counts as "just now". */
	Job c = make_job(ACC_A, JOB_SIMPLE, 900 * SEC);
	assert_int_equal(db_job_insert(t->db, &c, NULL, 0, &lim, &wait, &err), -EBUSY);
	assert_int_equal(wait, 960 * SEC);
}

typedef struct Racer {
	Db *db;
	pthread_barrier_t *go;
	Job job;
	JobLimits lim;
	int r;
	char msg[256];
} Racer;

static void *race_insert(void *arg)
{
	Racer *x = arg;
	ErrBuf err = {{0}};

	pthread_barrier_wait(x->go);
	x->r = db_job_insert(x->db, &x->job, NULL, 0, &x->lim, NULL, &err);
	memcpy(x->msg, err.msg, sizeof(x->msg));
	return NULL;
}

/* Holds what db_job_insert waits for: SQLite's write lock, or in
 * PostgreSQL the account's row (a holder's transaction). */
static void hold_begin(sqlite3 *h, PGconn *pg, const char *account)
{
	char sql[128];
	PGresult *res;

	if (h) {
		assert_int_equal(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
		return;
	}
	snprintf(sql, sizeof(sql), "BEGIN; SELECT 1 FROM accounts WHERE id = '%s' FOR UPDATE", account);
	res = PQexec(pg, sql);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
}

static void hold_end(sqlite3 *h, PGconn *pg)
{
	PGresult *res;

	if (h) {
		assert_int_equal(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
		return;
	}
	res = PQexec(pg, "COMMIT");
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
}

/* Two threads (two connections) create at the same instant: the check and
 * the insert are one transaction, so exactly one wins, every round. In half
 * the rounds a third connection holds the write lock while both threads
 * start, so both are surely inside db_job_insert at once: had the check run
 * outside the write transaction, both would pass it and both would insert. */
static void test_limit_race(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	int wins = 0, busy = 0;
	sqlite3 *holder = NULL;
	PGconn *pg_holder = NULL;

	if (pg_uri) {
		pg_holder = PQconnectdb(pg_uri);
		assert_int_equal(PQstatus(pg_holder), CONNECTION_OK);
	} else {
		assert_int_equal(sqlite3_open(t->path, &holder), SQLITE_OK);
		sqlite3_busy_timeout(holder, 5000);
	}
	for (int round = 0; round < 40; round++) {
		char account[JOB_ID_LEN + 1];
		pthread_barrier_t go;
		pthread_t th[2];
		Racer x[2];
		bool hold = round % 4 >= 2;

		snprintf(account, sizeof(account), "%032x", round + 1);
		assert_int_equal(db_account_ensure(t->db, account, &err), 0);
		assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
		for (int i = 0; i < 2; i++) {
			memset(&x[i], 0, sizeof(x[i]));
			x[i].db = t->db;
			x[i].go = &go;
			x[i].job = round % 2 ? make_job(account, JOB_FULL, (100 + i) * SEC)
					     : make_job(account, JOB_SIMPLE, (100 + i) * SEC);
			x[i].lim.max_active_full = 1;
			x[i].lim.sample_interval_ns = 60 * SEC;
		}
		if (hold)
			hold_begin(holder, pg_holder, account);
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&th[i], NULL, race_insert, &x[i]), 0);
		if (hold) {
			usleep(30 * 1000); /* both threads are now waiting for the lock */
			hold_end(holder, pg_holder);
		}
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_join(th[i], NULL), 0);
		pthread_barrier_destroy(&go);
		for (int i = 0; i < 2; i++) {
			if (x[i].r == 0) {
				wins++;
			} else {
				assert_int_equal(x[i].r, -EBUSY);
				assert_non_null(strstr(x[i].msg, round % 2 ? "full capture" : "sample capture"));
				busy++;
			}
		}
		Job *v;
		size_t n;
		assert_int_equal(db_job_list(t->db, account, 0, 10, &v, &n, NULL, &err), 0);
		assert_int_equal(n, 1);
		jobs_free(v, n);
	}
	sqlite3_close(holder);
	PQfinish(pg_holder);
	assert_int_equal(wins, 40);
	assert_int_equal(busy, 40);
}

/* ---- buckets ---- */

static BucketRow make_bucket(const char *account, const char *id, const char *uri, int64_t submitted_ns)
{
	BucketRow b = {0};

	snprintf(b.id, sizeof(b.id), "%s", id);
	snprintf(b.account, sizeof(b.account), "%s", account);
	b.destination_conf = (char *)uri;
	b.match_key = (char *)uri;
	b.filename = (char *)"ownership-challenge-x.txt";
	b.challenge = (char *)"secret-token";
	b.status = BUCKET_PENDING;
	b.submitted_ns = submitted_ns;
	return b;
}

static void assert_bucket_equal(const BucketRow *a, const BucketRow *b)
{
	assert_string_equal(a->id, b->id);
	assert_string_equal(a->account, b->account);
	assert_str_or_null(a->destination_conf, b->destination_conf);
	assert_str_or_null(a->filename, b->filename);
	assert_str_or_null(a->challenge, b->challenge);
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->submitted_ns, b->submitted_ns);
	assert_int_equal(a->validated_ns, b->validated_ns);
}

static void test_buckets(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	BucketRow a = make_bucket(ACC_A, "11111111111111111111111111111111", "file:///b/one", 20);
	BucketRow b = make_bucket(ACC_A, "22222222222222222222222222222222", "file:///b/two", 10);
	BucketRow c = make_bucket(ACC_B, "33333333333333333333333333333333", "file:///b/one", 30);
	BucketRow got, *v;
	size_t n;

	b.filename = NULL;
	b.challenge = NULL;
	assert_int_equal(db_bucket_insert(t->db, &a, 0, &err), 0);
	assert_int_equal(db_bucket_insert(t->db, &b, 0, &err), 0);
	assert_int_equal(db_bucket_insert(t->db, &c, 0, &err), 0); /* same URI, other account */

	assert_int_equal(db_bucket_get(t->db, ACC_A, a.id, &got, &err), 0);
	assert_bucket_equal(&got, &a);
	bucket_row_done(&got);
	assert_int_equal(db_bucket_get(t->db, ACC_A, b.id, &got, &err), 0);
	assert_bucket_equal(&got, &b);
	bucket_row_done(&got);
	assert_int_equal(db_bucket_get(t->db, ACC_B, a.id, &got, &err), -ENOENT);
	assert_int_equal(db_bucket_get(t->db, ACC_B, c.id, &got, &err), 0);
	assert_bucket_equal(&got, &c);
	bucket_row_done(&got);

	BucketRow dup = make_bucket(ACC_A, "44444444444444444444444444444444", "file:///b/one", 40);
	assert_int_equal(db_bucket_insert(t->db, &dup, 0, &err), -EEXIST);
	BucketRow dupid = make_bucket(ACC_A, a.id, "file:///b/three", 40);
	assert_int_equal(db_bucket_insert(t->db, &dupid, 0, &err), -EEXIST);
	BucketRow orphan = make_bucket("cccccccccccccccccccccccccccccccc", "5555", "file:///b/x", 1);
	assert_int_equal(db_bucket_insert(t->db, &orphan, 0, &err), -ENOENT);

	assert_int_equal(db_bucket_list(t->db, ACC_A, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_bucket_equal(&v[0], &a); /* newest first, as the jobs */
	assert_bucket_equal(&v[1], &b);
	bucket_rows_free(v, n);

	a.status = BUCKET_SUCCESS;
	a.validated_ns = 99;
	assert_int_equal(db_bucket_update(t->db, &a, &err), 0);
	assert_int_equal(db_bucket_get(t->db, ACC_A, a.id, &got, &err), 0);
	assert_bucket_equal(&got, &a);
	bucket_row_done(&got);
	BucketRow wrong = a;
	snprintf(wrong.account, sizeof(wrong.account), "%s", ACC_B);
	assert_int_equal(db_bucket_update(t->db, &wrong, &err), -ENOENT);

	assert_int_equal(db_bucket_delete(t->db, ACC_B, a.id, &err), -ENOENT);
	assert_int_equal(db_bucket_delete(t->db, ACC_A, a.id, &err), 0);
	assert_int_equal(db_bucket_delete(t->db, ACC_A, a.id, &err), -ENOENT);
	assert_int_equal(db_bucket_get(t->db, ACC_A, a.id, &got, &err), -ENOENT);
	assert_int_equal(db_bucket_insert(t->db, &dup, 0, &err), 0); /* URI free again */
	bucket_row_done(NULL);

	/* the per-account bound: A has two, B one */
	BucketRow third = make_bucket(ACC_A, "66666666666666666666666666666666", "file:///b/six", 50);
	assert_int_equal(db_bucket_insert(t->db, &third, 2, &err), -EDQUOT);
	assert_string_equal(err.msg, "db: account " ACC_A " has 2 buckets already");
	assert_int_equal(db_bucket_get(t->db, ACC_A, third.id, &got, &err), -ENOENT);
	BucketRow other = make_bucket(ACC_B, "77777777777777777777777777777777", "file:///b/seven", 50);
	assert_int_equal(db_bucket_insert(t->db, &other, 2, &err), 0);
	assert_int_equal(db_bucket_insert(t->db, &third, 3, &err), 0);
}

/* ---- agents ---- */

static void test_agents(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	AgentRow a = {.name = "web-2",
		      .colo = "ORD",
		      .interfaces = (char *)"eth0,lo",
		      .version = (char *)"0.1.0",
		      .first_seen_ns = 10,
		      .last_seen_ns = 10};
	AgentRow b = {.name = "db-1", .colo = "LHR", .first_seen_ns = 5, .last_seen_ns = 6};
	AgentRow *v;
	size_t n;

	assert_int_equal(db_agent_upsert(t->db, &a, &err), 0);
	assert_int_equal(db_agent_upsert(t->db, &b, &err), 0);
	a.first_seen_ns = 50; /* ignored for an existing row */
	a.last_seen_ns = 60;
	a.version = (char *)"0.2.0";
	a.interfaces = NULL;
	snprintf(a.colo, sizeof(a.colo), "SFO");
	assert_int_equal(db_agent_upsert(t->db, &a, &err), 0);

	assert_int_equal(db_agent_list(t->db, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "db-1");
	assert_string_equal(v[0].colo, "LHR");
	assert_null(v[0].interfaces);
	assert_null(v[0].version);
	assert_int_equal(v[0].first_seen_ns, 5);
	assert_int_equal(v[0].last_seen_ns, 6);
	assert_string_equal(v[1].name, "web-2");
	assert_string_equal(v[1].colo, "SFO");
	assert_null(v[1].interfaces);
	assert_string_equal(v[1].version, "0.2.0");
	assert_int_equal(v[1].first_seen_ns, 10);
	assert_int_equal(v[1].last_seen_ns, 60);
	agent_rows_free(v, n);

	AgentRow noname = {.colo = "X"};
	assert_int_equal(db_agent_upsert(t->db, &noname, &err), -EINVAL);
	agent_row_done(NULL);
}

/* A validated bucket belongs to its account; another one sees it as owned
 * elsewhere until the owner shares it. */
static void test_bucket_owner(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	char owner[JOB_ID_LEN + 1] = "";
	BucketRow a = {.id = "0123456789abcdef0123456789abcdef",
		       .account = ACC_A,
		       .destination_conf = (char *)"file:///b1",
		       .match_key = (char *)"file:///b1",
		       .status = BUCKET_PENDING};

	assert_int_equal(db_bucket_insert(t->db, &a, 0, &err), 0);
	/* pending: nobody owns it yet */
	assert_int_equal(db_bucket_owned_elsewhere(t->db, ACC_B, "file:///b1", owner, &err), 0);
	a.status = BUCKET_SUCCESS;
	a.validated_ns = 5;
	assert_int_equal(db_bucket_update(t->db, &a, &err), 0);
	assert_int_equal(db_bucket_owned_elsewhere(t->db, ACC_B, "file:///b1", owner, &err), 1);
	assert_string_equal(owner, ACC_A);
	assert_int_equal(db_bucket_owned_elsewhere(t->db, ACC_A, "file:///b1", owner, &err), 0);
	assert_int_equal(db_bucket_share(t->db, a.id, ACC_B, &err), 0);
	assert_int_equal(db_bucket_share(t->db, a.id, ACC_B, &err), 0); /* idempotent */
	assert_int_equal(db_bucket_owned_elsewhere(t->db, ACC_B, "file:///b1", owner, &err), 0);
	assert_int_equal(db_bucket_share(t->db, a.id, "ffffffffffffffffffffffffffffffff", &err), -ENOENT);
}

/* Enrolment tokens and agent keys: bound to a name, unique by name, counted
 * per account (operator agents are not), found by the hash of the secret. */
static void test_enrolment(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	uint8_t h1[32], h2[32], h3[32], h4[32];
	EnrollToken tok = {.account = ACC_A, .name_pattern = "rt*", .colo = "LAB", .expires_ns = 99}, got = {0};
	AgentKey k1 = {.name = "rt01", .account = ACC_A, .colo = "LAB", .enrolled_ns = 7}, k = {0};
	AgentKey k2 = {.name = "rt02", .account = ACC_A}, op = {.name = "local"};

	hash_of(h1, 11);
	hash_of(h2, 12);
	hash_of(h3, 13);
	hash_of(h4, 14);
	assert_int_equal(db_enroll_token_add(t->db, h1, &tok, &err), 0);
	assert_int_equal(db_enroll_token_add(t->db, h1, &tok, &err), -EEXIST);
	assert_int_equal(db_enroll_token_find(t->db, h1, &got, &err), 0);
	assert_string_equal(got.account, ACC_A);
	assert_string_equal(got.name_pattern, "rt*");
	assert_string_equal(got.colo, "LAB");
	assert_int_equal(got.expires_ns, 99);
	assert_int_equal(db_enroll_token_find(t->db, h2, &got, &err), -ENOENT);
	EnrollToken optok = {.expires_ns = 0};
	assert_int_equal(db_enroll_token_add(t->db, h2, &optok, &err), 0);
	assert_int_equal(db_enroll_token_find(t->db, h2, &got, &err), 0);
	assert_string_equal(got.account, "");
	assert_string_equal(got.name_pattern, "");

	assert_int_equal(db_agent_key_add(t->db, h1, &k1, 1, &err), 0);
	assert_int_equal(db_agent_key_add(t->db, h2, &k1, 0, &err), -EEXIST); /* the name */
	assert_int_equal(db_agent_key_add(t->db, h2, &k2, 1, &err), -EDQUOT); /* A has 1 of 1 */
	assert_int_equal(db_agent_key_add(t->db, h3, &op, 1, &err), 0);       /* operator: not counted */
	assert_int_equal(db_agent_key_find(t->db, h1, &k, &err), 0);
	assert_string_equal(k.name, "rt01");
	assert_string_equal(k.account, ACC_A);
	assert_string_equal(k.colo, "LAB");
	assert_int_equal(k.enrolled_ns, 7);
	assert_int_equal(db_agent_key_get(t->db, "local", &k, &err), 0);
	assert_string_equal(k.account, "");
	assert_int_equal(db_agent_key_find(t->db, h4, &k, &err), -ENOENT);
	assert_int_equal(db_agent_key_delete(t->db, "rt01", &err), 0);
	assert_int_equal(db_agent_key_delete(t->db, "rt01", &err), -ENOENT);
	assert_int_equal(db_agent_key_find(t->db, h1, &k, &err), -ENOENT);
	assert_int_equal(db_agent_key_add(t->db, h4, &k1, 1, &err), 0); /* re-enrolled after the revoke */
}

/* ---- concurrency ---- */

typedef struct Worker {
	Db *db;
	const char *job_id;
	const uint8_t *hash;
	volatile int *stop;
	long reads;
	int fail;
} Worker;

static void *reader(void *arg)
{
	Worker *w = arg;

	while (!*w->stop) {
		ErrBuf err = {{0}};
		char account[JOB_ID_LEN + 1];
		TokenScope scope;
		Job j;
		Job *v;
		size_t n;

		if (db_credential_find(w->db, w->hash, NULL, account, &scope, &err) < 0 || strcmp(account, ACC_A) != 0)
			w->fail++;
		if (db_job_get(w->db, ACC_A, w->job_id, &j, &err) < 0)
			w->fail++;
		else
			job_done(&j);
		if (db_job_list(w->db, ACC_A, 0, 20, &v, &n, NULL, &err) < 0 || n == 0)
			w->fail++;
		else
			jobs_free(v, n);
		w->reads++;
	}
	return NULL;
}

/* Four threads read (each on its own connection) while this one writes. */
static void test_concurrency(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	uint8_t h[32];
	volatile int stop = 0;
	Job first = make_job(ACC_A, JOB_FULL, 1);
	pthread_t th[4];
	Worker w[4];

	hash_of(h, 9);
	assert_int_equal(db_credential_add(t->db, h, NULL, ACC_A, SCOPE_READ, &err), 0);
	assert_int_equal(db_job_insert(t->db, &first, NULL, 0, NULL, NULL, &err), 0);
	for (int i = 0; i < 4; i++) {
		w[i] = (Worker){.db = t->db, .job_id = first.id, .hash = h, .stop = &stop};
		assert_int_equal(pthread_create(&th[i], NULL, reader, &w[i]), 0);
	}
	for (int i = 0; i < 200; i++) {
		Job j = make_job(i % 2 ? ACC_A : ACC_B, JOB_FULL, 10 + i);
		JobPart p = make_part(&j, "agent", PART_RUNNING);

		assert_int_equal(db_job_insert(t->db, &j, &p, 1, NULL, NULL, &err), 0);
		j.status = JOB_RUNNING;
		p.packets = (uint64_t)i;
		assert_int_equal(store_job(t->db, &j, &p, 1, &err), 0);
	}
	stop = 1;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].fail, 0);
		assert_true(w[i].reads > 0);
	}
	/* The readers' connections closed as their threads ended; a new one opens. */
	Job *v;
	size_t n;
	assert_int_equal(db_job_list(t->db, ACC_A, 0, 1000, &v, &n, NULL, &err), 0);
	assert_int_equal(n, 101);
	jobs_free(v, n);
}

int main(void)
{
	/* What only one backend has. */
	const struct CMUnitTest sqlite_tests[] = {
		cmocka_unit_test(test_open_bad_path),
		cmocka_unit_test_setup_teardown(test_open_url, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_not_a_database, setup, teardown),
	};
	const struct CMUnitTest pg_tests[] = {
		cmocka_unit_test(test_pg_open_errors),
	};
	/* Every backend. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_2, setup, teardown),
		cmocka_unit_test(test_scope_strings),
		cmocka_unit_test_setup_teardown(test_accounts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credentials, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_named_jobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_count_by_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_update, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_sample, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buckets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enrolment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bucket_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
	};
	struct CMUnitTest all[ARRAY_SIZE(sqlite_tests) + ARRAY_SIZE(tests) + DB_FLEET_MAX];
	size_t n = 0;

	pg_uri = getenv("PCAPD_TEST_PG");
	if (pg_uri && !*pg_uri)
		pg_uri = NULL;
	_Static_assert(ARRAY_SIZE(pg_tests) <= ARRAY_SIZE(sqlite_tests), "all[] holds either");
	if (pg_uri) {
		memcpy(all, pg_tests, sizeof(pg_tests));
		n = ARRAY_SIZE(pg_tests);
	} else {
		memcpy(all, sqlite_tests, sizeof(sqlite_tests));
		n = ARRAY_SIZE(sqlite_tests);
	}
	memcpy(all + n, tests, sizeof(tests));
	n += ARRAY_SIZE(tests);
	memcpy(all + n, db_fleet_tests, db_fleet_n * sizeof(*db_fleet_tests));
	n += db_fleet_n;
	return _cmocka_run_group_tests(pg_uri ? "db (postgresql)" : "db (sqlite)", all, n, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the db unit tests share (dbtest.c): the per-test database on the
 * backend under test (setup/teardown), and makers and comparisons of rows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "db/db.h"

#define ACC_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ACC_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define ACC_C "cccccccccccccccccccccccccccccccc" /* made by the tests that need it */
#define SEC ((int64_t)NSEC_PER_SEC)

typedef struct T {
	char dir[64];
	char path[128];
	char url[600]; /* what db_open gets: path, or the PostgreSQL URI */
	Db *db;
} T;

extern const char *pg_uri; /* PCAPD_TEST_PG: the PostgreSQL leg; NULL: SQLite */

/* Runs sql on the test's PostgreSQL database, outside pcapd. */
void pg_raw(const char *sql);
void rm_db_files(const char *path);
/* A fresh database with accounts ACC_A and ACC_B (state: a T). */
int setup(void **state);
int teardown(void **state);
/* A job with every string set (full) or none (simple). The strings are
 * literals: never job_done() a job made here. */
Job make_job(const char *account, JobType type, int64_t submitted_ns);
JobPart make_part(const Job *j, const char *agent, PartState state);
void assert_str_or_null(const char *a, const char *b);
void assert_job_equal(const Job *a, const Job *b);
void assert_part_equal(const JobPart *a, const JobPart *b);
void hash_of(uint8_t h[32], uint8_t seed);
/* Puts a stored job in j's state through db_job_modify: j's mutable fields
 * (status, stop, error, counters, times), and of each of parts[0..n) that
 * the job has (by agent) its mutable fields. -ENOENT if there is no such
 * job (in j's account). */
int store_job(Db *db, const Job *j, const JobPart *parts, size_t n, ErrBuf *err);

/* test-db-fleet.c: what several controllers over one database rely on. */
#define DB_FLEET_MAX 16
extern const struct CMUnitTest db_fleet_tests[];
extern const size_t db_fleet_n; /* at most DB_FLEET_MAX */

/* SPDX-License-Identifier: MIT */
/*
 * What several controllers over one database rely on, on each backend: a
 * job's read-modify-write (db_job_modify) loses no writer's change when
 * threads on connections of their own (as two controllers are) modify one
 * job at once; a sample answer stored inside it commits with it; one
 * agent's part changes alone (db_part_modify) with the same guarantees; agents'
 * account and history round-trip; and, in PostgreSQL, notices reach another
 * session and the lease is held by one session at a time, freed when it
 * closes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db_pg_int.h"
#include "dbtest.h"

/* fn of db_job_modify: one more packet on the job and on agent `arg`'s part. */
static bool add_packet(Job *j, JobPart *parts, size_t n, void *arg)
{
	const char *agent = arg;

	j->packets++;
	for (size_t i = 0; i < n; i++)
		if (strcmp(parts[i].agent, agent) == 0)
			parts[i].packets++;
	return true;
}

static bool change_nothing(Job *j, JobPart *parts, size_t n, void *arg)
{
	(void)parts;
	(void)n;
	j->packets = 999; /* not written: the function says nothing changed */
	*(int *)arg += 1;
	return false;
}

static bool change_immutable(Job *j, JobPart *parts, size_t n, void *arg)
{
	(void)parts;
	(void)n;
	(void)arg;
	j->time_limit_s = 1;
	j->packet_limit = 7;
	j->packets = 5; /* this one is written */
	return true;
}

static void test_job_modify(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	Job j = make_job(ACC_A, JOB_FULL, 10 * SEC), got = {0};
	JobPart p[2] = {make_part(&j, "a1", PART_RUNNING), make_part(&j, "a2", PART_RUNNING)};
	JobPart *parts = NULL;
	size_t n = 0;
	int calls = 0;

	assert_int_equal(db_job_insert(t->db, &j, p, 2, NULL, NULL, &err), 0);
	assert_int_equal(db_job_modify(t->db, ACC_A, j.id, add_packet, (void *)"a2", &got, &err), 0);
	assert_int_equal(got.packets, 1);
	assert_string_equal(got.id, j.id);
	job_done(&got);
	assert_int_equal(db_part_list(t->db, j.id, &parts, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(parts[0].packets, 0);
	assert_int_equal(parts[1].packets, 1);
	parts_free(parts, n);

	/* Nothing changed: nothing written, the job as stored comes back. */
	assert_int_equal(db_job_modify(t->db, NULL, j.id, change_nothing, &calls, &got, &err), 0);
	assert_int_equal(calls, 1);
	job_done(&got);
	assert_int_equal(db_job_get(t->db, ACC_A, j.id, &got, &err), 0);
	assert_int_equal(got.packets, 1);
	job_done(&got);

	/* Only the mutable fields are written. */
	assert_int_equal(db_job_modify(t->db, ACC_A, j.id, change_immutable, NULL, NULL, &err), 0);
	assert_int_equal(db_job_get(t->db, ACC_A, j.id, &got, &err), 0);
	assert_int_equal(got.time_limit_s, j.time_limit_s);
	assert_int_equal(got.packet_limit, j.packet_limit);
	assert_int_equal(got.packets, 5);
	job_done(&got);

	/* Scoped by account; an unknown job is -ENOENT, fn never called. */
	assert_int_equal(db_job_modify(t->db, ACC_B, j.id, change_nothing, &calls, NULL, &err), -ENOENT);
	assert_int_equal(
		db_job_modify(t->db, NULL, "0123456789abcdef0123456789abcdef", change_nothing, &calls, NULL, &err),
		-ENOENT);
	assert_int_equal(calls, 1);
}

typedef struct Modifier {
	Db *db;
	const char *id, *agent;
	pthread_barrier_t *go;
	int rounds, failed;
	char msg[256];
} Modifier;

static void *modifier(void *arg)
{
	Modifier *m = arg;
	ErrBuf err = {{0}};

	pthread_barrier_wait(m->go);
	for (int i = 0; i < m->rounds; i++)
		if (db_job_modify(m->db, NULL, m->id, add_packet, (void *)m->agent, NULL, &err) < 0) {
			m->failed++;
			memcpy(m->msg, err.msg, sizeof(m->msg));
		}
	return NULL;
}

/* Four threads, each on its own connection (as four controllers would be),
 * add to one job at once: every change is there at the end. Without the row
 * lock, two would read the same count and one increment would be lost. */
static void test_job_modify_race(void **state)
{
	enum { THREADS = 4, ROUNDS = 50 };
	T *t = *state;
	ErrBuf err = {{0}};
	Job j = make_job(ACC_A, JOB_FULL, 10 * SEC), got = {0};
	JobPart p[2] = {make_part(&j, "a1", PART_RUNNING), make_part(&j, "a2", PART_RUNNING)};
	JobPart *parts = NULL;
	pthread_barrier_t go;
	pthread_t th[THREADS];
	Modifier m[THREADS];
	size_t n = 0;

	assert_int_equal(db_job_insert(t->db, &j, p, 2, NULL, NULL, &err), 0);
	assert_int_equal(pthread_barrier_init(&go, NULL, THREADS), 0);
	for (int i = 0; i < THREADS; i++) {
		m[i] = (Modifier){.db = t->db, .id = j.id, .agent = i % 2 ? "a2" : "a1", .go = &go, .rounds = ROUNDS};
		assert_int_equal(pthread_create(&th[i], NULL, modifier, &m[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		if (m[i].failed)
			fail_msg("thread %d: %d failed: %s", i, m[i].failed, m[i].msg);
	}
	pthread_barrier_destroy(&go);
	assert_int_equal(db_job_get(t->db, NULL, j.id, &got, &err), 0);
	assert_int_equal(got.packets, THREADS * ROUNDS);
	job_done(&got);
	assert_int_equal(db_part_list(t->db, j.id, &parts, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(parts[0].packets, THREADS / 2 * ROUNDS);
	assert_int_equal(parts[1].packets, THREADS / 2 * ROUNDS);
	parts_free(parts, n);
}

typedef struct SampleArg {
	Db *db;
	const char *id;
	int r;
} SampleArg;

/* Stores the answer inside the job's transaction and marks the part done. */
static bool answer(Job *j, JobPart *parts, size_t n, void *arg)
{
	static const uint8_t pcap[] = {0xd4, 0xc3, 0xb2, 0xa1, 0, 0, 1, 2};
	SampleArg *a = arg;
	ErrBuf err = {{0}};

	(void)j;
	a->r = db_sample_put(a->db, a->id, "s1", pcap, sizeof(pcap), &err);
	if (a->r < 0 || n != 1)
		return false;
	parts[0].state = PART_DONE;
	return true;
}

static void test_samples(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	Job j = make_job(ACC_A, JOB_SIMPLE, 10 * SEC);
	JobPart p = make_part(&j, "s1", PART_ASSIGNED);
	SampleArg a = {.db = t->db, .id = j.id};
	JobPart *parts = NULL;
	uint8_t *v = NULL;
	size_t n = 0;

	assert_int_equal(db_job_insert(t->db, &j, &p, 1, NULL, NULL, &err), 0);
	assert_int_equal(db_sample_get(t->db, j.id, "s1", &v, &n, &err), -ENOENT);
	assert_int_equal(db_job_modify(t->db, NULL, j.id, answer, &a, NULL, &err), 0);
	assert_int_equal(a.r, 0);
	assert_int_equal(db_sample_get(t->db, j.id, "s1", &v, &n, &err), 0);
	assert_int_equal(n, 8);
	assert_int_equal(v[0], 0xd4);
	assert_int_equal(v[7], 2);
	free(v);
	assert_int_equal(db_part_list(t->db, j.id, &parts, &n, &err), 0);
	assert_int_equal(parts[0].state, PART_DONE);
	parts_free(parts, n);
	/* One answer per agent and job; none for a job that does not exist. */
	assert_int_equal(db_sample_put(t->db, j.id, "s1", (const uint8_t *)"x", 1, &err), -EEXIST);
	assert_int_equal(db_sample_put(t->db, "0123456789abcdef0123456789abcdef", "s1", (const uint8_t *)"x", 1, &err),
			 -ENOENT);
	/* An empty answer round-trips too. */
	assert_int_equal(db_sample_put(t->db, j.id, "s2", NULL, 0, &err), 0);
	assert_int_equal(db_sample_get(t->db, j.id, "s2", &v, &n, &err), 0);
	assert_int_equal(n, 0);
	free(v);
}

typedef struct PartArg {
	Db *db;
	const char *id, *agent;
	uint64_t packets;
	PartState state;
	bool got_part;
	int r;
} PartArg;

/* The answer db_part_modify stores with the change. */
static const uint8_t answer_pcap[] = {0xd4, 0xc3, 0xb2, 0xa1};
static const DbSample the_answer = {.pcap = answer_pcap, .n = sizeof(answer_pcap)};

/* fn of db_part_modify: an answer of a->packets. */
static bool answer_part(const Job *j, JobPart *part, void *arg)
{
	PartArg *a = arg;

	a->got_part = part != NULL;
	if (!part || j->type != JOB_SIMPLE)
		return false;
	part->state = a->state;
	part->packets = a->packets;
	part->bytes = a->packets * 100;
	return true;
}

/* One agent's part changed without the others: the job's counters and
 * status come from a count of the parts, and from all of them (failure
 * message included) when the last part ends; fn gets NULL for an agent the
 * job has no part for. */
static void test_part_modify(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	Job j = make_job(ACC_A, JOB_SIMPLE, 10 * SEC), got = {0};
	JobPart p[3] = {make_part(&j, "s1", PART_ASSIGNED), make_part(&j, "s2", PART_ASSIGNED),
			make_part(&j, "s3", PART_ASSIGNED)};
	PartArg a = {.db = t->db, .id = j.id, .agent = "s2", .packets = 7, .state = PART_DONE};
	JobPart *parts = NULL;
	uint8_t *v = NULL;
	size_t n = 0;

	j.packet_limit = 20;
	assert_int_equal(db_job_insert(t->db, &j, p, 3, NULL, NULL, &err), 0);
	assert_int_equal(db_part_modify(t->db, j.id, "s2", answer_part, &a, &the_answer, &got, &err), 0);
	assert_true(a.got_part);
	assert_int_equal(got.status, JOB_RUNNING);
	assert_int_equal(got.packets, 7);
	assert_int_equal(got.bytes, 700);
	job_done(&got);
	/* The answer was stored with the change. */
	assert_int_equal(db_sample_get(t->db, j.id, "s2", &v, &n, &err), 0);
	assert_int_equal(n, sizeof(answer_pcap));
	free(v);
	v = NULL;
	assert_int_equal(db_job_get(t->db, NULL, j.id, &got, &err), 0);
	assert_int_equal(got.status, JOB_RUNNING);
	assert_int_equal(got.packets, 7);
	assert_true(got.started_ns > 0);
	job_done(&got);

	/* Not asked of this agent: fn is told so, nothing is stored. */
	a.agent = "s9";
	assert_int_equal(db_part_modify(t->db, j.id, "s9", answer_part, &a, &the_answer, NULL, &err), 0);
	assert_false(a.got_part);
	assert_int_equal(db_sample_get(t->db, j.id, "s9", &v, &n, &err), -ENOENT);
	assert_int_equal(db_part_modify(t->db, "0123456789abcdef0123456789abcdef", "s1", answer_part, &a, &the_answer,
					NULL, &err),
			 -ENOENT);

	/* Past the packet limit: the job holds the limit. */
	a.agent = "s1";
	a.packets = 30;
	assert_int_equal(db_part_modify(t->db, j.id, "s1", answer_part, &a, &the_answer, &got, &err), 0);
	assert_int_equal(got.status, JOB_RUNNING);
	assert_int_equal(got.packets, 20);
	assert_int_equal(got.stop_reason, JOB_STOP_PACKETS);
	job_done(&got);

	/* The last part ends it: every part read, the lost one named. */
	a.agent = "s3";
	a.state = PART_LOST;
	a.packets = 0;
	assert_int_equal(db_part_modify(t->db, j.id, "s3", answer_part, &a, &the_answer, &got, &err), 0);
	assert_int_equal(got.status, JOB_SUCCESS);
	assert_int_equal(got.packets, 20);
	assert_true(got.finished_ns > 0);
	job_done(&got);
	assert_int_equal(db_part_list(t->db, j.id, &parts, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(parts[0].packets, 30);
	assert_int_equal(parts[1].state, PART_DONE);
	assert_int_equal(parts[2].state, PART_LOST);
	parts_free(parts, n);

	/* Sums past what the tally query counts exactly (2^53): the parts
	 * are read instead, and the sum is exact. */
	{
		Job k = make_job(ACC_A, JOB_SIMPLE, 12 * SEC);
		JobPart q[3] = {make_part(&k, "s1", PART_DONE), make_part(&k, "s2", PART_ASSIGNED),
				make_part(&k, "s3", PART_ASSIGNED)};
		PartArg b = {.db = t->db, .id = k.id, .agent = "s2", .packets = 7, .state = PART_DONE};

		k.packet_limit = 0;
		q[0].packets = UINT64_C(1) << 62;
		assert_int_equal(db_job_insert(t->db, &k, q, 3, NULL, NULL, &err), 0);
		assert_int_equal(db_part_modify(t->db, k.id, "s2", answer_part, &b, &the_answer, &got, &err), 0);
		assert_int_equal(got.status, JOB_RUNNING);
		assert_true(got.packets == (UINT64_C(1) << 62) + 7);
		job_done(&got);
	}

	/* A change through db_job_modify in between: the stored tally is
	 * dropped and the parts counted again (a stale one would say 15). */
	{
		Job k = make_job(ACC_A, JOB_SIMPLE, 13 * SEC);
		JobPart q[3] = {make_part(&k, "s1", PART_ASSIGNED), make_part(&k, "s2", PART_RUNNING),
				make_part(&k, "s3", PART_ASSIGNED)};
		PartArg b = {.db = t->db, .id = k.id, .agent = "s1", .packets = 5, .state = PART_DONE};

		k.packet_limit = 1000;
		assert_int_equal(db_job_insert(t->db, &k, q, 3, NULL, NULL, &err), 0);
		assert_int_equal(db_part_modify(t->db, k.id, "s1", answer_part, &b, &the_answer, &got, &err), 0);
		assert_int_equal(got.packets, 5);
		job_done(&got);
		assert_int_equal(db_job_modify(t->db, NULL, k.id, add_packet, (void *)"s2", NULL, &err), 0);
		b.agent = "s3";
		b.packets = 10;
		assert_int_equal(db_part_modify(t->db, k.id, "s3", answer_part, &b, &the_answer, &got, &err), 0);
		assert_int_equal(got.status, JOB_RUNNING);
		assert_int_equal(got.packets, 16);
		job_done(&got);
	}

	/* All lost but one that answered nothing: failed, naming them. */
	{
		Job k = make_job(ACC_A, JOB_SIMPLE, 11 * SEC);
		JobPart q[2] = {make_part(&k, "s1", PART_LOST), make_part(&k, "s2", PART_ASSIGNED)};
		PartArg b = {.db = t->db, .id = k.id, .agent = "s2", .packets = 0, .state = PART_DONE};

		assert_int_equal(db_job_insert(t->db, &k, q, 2, NULL, NULL, &err), 0);
		assert_int_equal(db_part_modify(t->db, k.id, "s2", answer_part, &b, &the_answer, &got, &err), 0);
		assert_int_equal(got.status, JOB_FAILED);
		assert_non_null(got.error_message);
		assert_non_null(strstr(got.error_message, "agent s1: lost"));
		job_done(&got);
	}
}

/* PostgreSQL's pipelines (db_part_modify's round trips): a failing step
 * stops the steps after it, names itself, and leaves the session usable
 * once rolled back; a good pipeline returns every step's rows. */
static void test_pg_pipeline(void **state)
{
	static const uint8_t pcap[] = {1, 2, 3};
	T *t = *state;
	ErrBuf err = {{0}};
	Job j = make_job(ACC_A, JOB_SIMPLE, 10 * SEC);
	JobPart p = make_part(&j, "s1", PART_ASSIGNED);
	PgParams put, get;
	PgStep bad[4], good[3];
	PgConn *c = NULL;

	if (!pg_uri)
		return; /* a PostgreSQL session's own mode: its leg runs it */
	assert_int_equal(db_job_insert(t->db, &j, &p, 1, NULL, NULL, &err), 0);
	assert_int_equal(db_sample_put(t->db, j.id, "s1", pcap, sizeof(pcap), &err), 0);
	assert_int_equal(dbp_conn(t->db, &c, &err), 0);
	put = (PgParams){0};
	dbp_text(&put, j.id);
	dbp_text(&put, "s1");
	dbp_bytes(&put, pcap, (int)sizeof(pcap));
	get = (PgParams){0};
	dbp_text(&get, j.id);
	bad[0] = (PgStep){.id = PG_BEGIN, .what = "starting"};
	bad[1] = (PgStep){.id = PG_SAMPLE_PUT, .p = &put, .what = "storing an answer twice"};
	bad[2] = (PgStep){.id = PG_JOB_LOCK_TALLY, .p = &get, .what = "reading a job"};
	bad[3] = (PgStep){.id = PG_COMMIT, .what = "committing"};
	assert_int_equal(dbp_pipeline(c, bad, 4, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "storing an answer twice"));
	for (int i = 0; i < 4; i++)
		assert_null(bad[i].res);
	dbp_rollback(c);

	good[0] = (PgStep){.id = PG_BEGIN, .what = "starting"};
	good[1] = (PgStep){.id = PG_JOB_LOCK_TALLY, .p = &get, .what = "reading a job"};
	good[2] = (PgStep){.id = PG_COMMIT, .what = "committing"};
	assert_int_equal(dbp_pipeline(c, good, 3, &err), 0);
	assert_non_null(good[1].res);
	assert_int_equal(PQntuples(good[1].res), 1);
	for (int i = 0; i < 3; i++)
		PQclear(good[i].res);
	/* And the session goes on outside a pipeline. */
	assert_int_equal(db_sample_put(t->db, j.id, "s2", pcap, sizeof(pcap), &err), 0);
}

typedef struct PartModifier {
	Db *db;
	const char *id;
	pthread_barrier_t *go;
	int first, count, failed;
	char msg[256];
} PartModifier;

static void *part_modifier(void *arg)
{
	PartModifier *m = arg;
	ErrBuf err = {{0}};

	pthread_barrier_wait(m->go);
	for (int i = m->first; i < m->first + m->count; i++) {
		char agent[16];
		PartArg a = {.db = m->db, .id = m->id, .agent = agent, .packets = 1, .state = PART_DONE};

		snprintf(agent, sizeof(agent), "s%02d", i);
		if (db_part_modify(m->db, m->id, agent, answer_part, &a, &the_answer, NULL, &err) < 0 || a.r < 0) {
			m->failed++;
			memcpy(m->msg, err.msg, sizeof(m->msg));
		}
	}
	return NULL;
}

/* Four threads on connections of their own answer for 40 agents of one
 * sample at once: the job ends success with every answer counted once. */
static void test_part_modify_race(void **state)
{
	enum { THREADS = 4, EACH = 10 };
	T *t = *state;
	ErrBuf err = {{0}};
	Job j = make_job(ACC_A, JOB_SIMPLE, 10 * SEC), got = {0};
	JobPart p[THREADS * EACH];
	pthread_barrier_t go;
	pthread_t th[THREADS];
	PartModifier m[THREADS];

	j.packet_limit = 1000;
	for (int i = 0; i < THREADS * EACH; i++) {
		char agent[16];

		snprintf(agent, sizeof(agent), "s%02d", i);
		p[i] = make_part(&j, agent, PART_ASSIGNED);
	}
	assert_int_equal(db_job_insert(t->db, &j, p, THREADS * EACH, NULL, NULL, &err), 0);
	assert_int_equal(pthread_barrier_init(&go, NULL, THREADS), 0);
	for (int i = 0; i < THREADS; i++) {
		m[i] = (PartModifier){.db = t->db, .id = j.id, .go = &go, .first = i * EACH, .count = EACH};
		assert_int_equal(pthread_create(&th[i], NULL, part_modifier, &m[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		if (m[i].failed)
			fail_msg("thread %d: %d failed: %s", i, m[i].failed, m[i].msg);
	}
	pthread_barrier_destroy(&go);
	assert_int_equal(db_job_get(t->db, NULL, j.id, &got, &err), 0);
	assert_int_equal(got.status, JOB_SUCCESS);
	assert_int_equal(got.packets, THREADS * EACH);
	assert_int_equal(got.bytes, THREADS * EACH * 100);
	job_done(&got);
}

static void test_agent_account_history(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	AgentRow a = {.name = "op-1", .colo = "ORD", .first_seen_ns = 1, .last_seen_ns = 2};
	AgentRow *v = NULL;
	size_t n = 0;

	a.account = (char *)"";
	a.history = (char *)"{\"recording\":true}";
	assert_int_equal(db_agent_upsert(t->db, &a, &err), 0);
	a.account = (char *)ACC_A;
	a.history = NULL; /* keeps the stored one */
	a.last_seen_ns = 3;
	assert_int_equal(db_agent_upsert(t->db, &a, &err), 0);
	assert_int_equal(db_agent_list(t->db, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].account, ACC_A);
	assert_string_equal(v[0].history, "{\"recording\":true}");
	assert_int_equal(v[0].last_seen_ns, 3);
	agent_rows_free(v, n);
}

/* Heartbeats in one statement: last-seen (never lowered) and history
 * (kept when not given; quotes and backslashes survive the array); no row
 * made, and a forgotten agent is not brought back. */
static void test_agent_beats(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	AgentRow a = {.name = "op-1", .colo = "ORD", .first_seen_ns = 1, .last_seen_ns = 2};
	AgentRow b = {.name = "op-2", .colo = "ORD", .first_seen_ns = 1, .last_seen_ns = 2};
	AgentBeat v[3] = {{.name = "op-1", .seen_ns = 10, .history = (char *)"{\"e\":\"a \\\"q\\\" b\\\\c\"}"},
			  {.name = "op-2", .seen_ns = 1},
			  {.name = "op-3", .seen_ns = 10}};
	AgentRow *rows = NULL;
	size_t n = 0;

	a.history = (char *)"{\"recording\":true}";
	assert_int_equal(db_agent_upsert(t->db, &a, &err), 0);
	assert_int_equal(db_agent_upsert(t->db, &b, &err), 0);
	assert_int_equal(db_agent_beats(t->db, v, 3, &err), 0);
	assert_int_equal(db_agent_list(t->db, &rows, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(rows[0].last_seen_ns, 10);
	assert_string_equal(rows[0].history, v[0].history);
	assert_int_equal(rows[1].last_seen_ns, 2); /* not lowered */
	agent_rows_free(rows, n);

	/* Several beats of one agent in one batch: the newest last-seen, the
	 * last history given. */
	AgentBeat w[4] = {{.name = "op-1", .seen_ns = 30, .history = (char *)"{\"n\":1}"},
			  {.name = "op-1", .seen_ns = 25},
			  {.name = "op-1", .seen_ns = 31, .history = (char *)"{\"n\":2}"},
			  {.name = "op-1", .seen_ns = 29, .history = (char *)"{\"n\":3}"}};

	assert_int_equal(db_agent_beats(t->db, w, 2, &err), 0);
	assert_int_equal(db_agent_list(t->db, &rows, &n, &err), 0);
	assert_int_equal(rows[0].last_seen_ns, 30);
	assert_string_equal(rows[0].history, "{\"n\":1}");
	agent_rows_free(rows, n);
	assert_int_equal(db_agent_beats(t->db, w, 4, &err), 0);
	assert_int_equal(db_agent_list(t->db, &rows, &n, &err), 0);
	assert_int_equal(rows[0].last_seen_ns, 31);
	assert_string_equal(rows[0].history, "{\"n\":3}");
	agent_rows_free(rows, n);

	assert_int_equal(db_agent_forget(t->db, "cli", "op-2", &err), 0);
	v[1].seen_ns = 20;
	assert_int_equal(db_agent_beats(t->db, &v[1], 1, &err), 0);
	assert_int_equal(db_agent_list(t->db, &rows, &n, &err), 0);
	assert_int_equal(rows[1].last_seen_ns, 0);
	agent_rows_free(rows, n);
}

static void test_watch(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	DbWatch *w1 = NULL, *w2 = NULL;
	char text[DB_NOTICE_MAX + 1];
	char big[DB_NOTICE_MAX + 2];
	int r = 0;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(db_notify(t->db, big, &err), -EINVAL);
	if (!pg_uri) {
		/* One controller per SQLite file: nothing to tell anyone. */
		assert_int_equal(db_watch_open(t->db, &w1, &err), -EOPNOTSUPP);
		assert_int_equal(db_notify(t->db, "x wake a", &err), 0);
		assert_int_equal(db_agent_forget(t->db, "cli", "op-9", &err), 0);
		return;
	}
	assert_int_equal(db_watch_open(t->db, &w1, &err), 0);
	assert_int_equal(db_watch_open(t->db, &w2, &err), 0);
	assert_int_equal(db_watch_next(w1, 0, text, &err), 0);
	assert_int_equal(db_notify(t->db, "abc wake agent-1", &err), 0);
	/* Delivered at the sender's commit: waited for, not timed. */
	while (r == 0)
		r = db_watch_next(w2, 1000, text, &err);
	assert_int_equal(r, 1);
	assert_string_equal(text, "abc wake agent-1");

	/* A revoked agent: marked never seen, and every watcher told. */
	{
		AgentRow a = {.name = "op-9", .colo = "ORD", .first_seen_ns = 1, .last_seen_ns = 5};
		AgentRow *v = NULL;
		size_t n = 0;

		assert_int_equal(db_agent_upsert(t->db, &a, &err), 0);
		assert_int_equal(db_agent_forget(t->db, "cli", "op-9", &err), 0);
		r = 0;
		while (r == 0)
			r = db_watch_next(w2, 1000, text, &err);
		assert_int_equal(r, 1);
		assert_string_equal(text, "cli forget op-9");
		assert_int_equal(db_agent_list(t->db, &v, &n, &err), 0);
		assert_int_equal(n, 1);
		assert_int_equal(v[0].last_seen_ns, 0);
		agent_rows_free(v, n);
	}

	/* One holder at a time; the session's end frees the lease. */
	assert_int_equal(db_watch_lease(w1, 42, &err), 1);
	assert_int_equal(db_watch_lease(w1, 42, &err), 1);
	assert_int_equal(db_watch_lease(w2, 42, &err), 0);
	db_watch_close(w1);
	r = 0;
	while ((r = db_watch_lease(w2, 42, &err)) == 0)
		usleep(10 * 1000);
	assert_int_equal(r, 1);
	db_watch_close(w2);
	db_watch_close(NULL);
}

const struct CMUnitTest db_fleet_tests[] = {
	cmocka_unit_test_setup_teardown(test_job_modify, setup, teardown),
	cmocka_unit_test_setup_teardown(test_job_modify_race, setup, teardown),
	cmocka_unit_test_setup_teardown(test_samples, setup, teardown),
	cmocka_unit_test_setup_teardown(test_part_modify, setup, teardown),
	cmocka_unit_test_setup_teardown(test_part_modify_race, setup, teardown),
	cmocka_unit_test_setup_teardown(test_pg_pipeline, setup, teardown),
	cmocka_unit_test_setup_teardown(test_agent_account_history, setup, teardown),
	cmocka_unit_test_setup_teardown(test_agent_beats, setup, teardown),
	cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
};
const size_t db_fleet_n = ARRAY_SIZE(db_fleet_tests);
_Static_assert(ARRAY_SIZE(db_fleet_tests) <= DB_FLEET_MAX, "test-db.c's table holds them");

/* SPDX-License-Identifier: MIT */
/* The db unit tests' shared harness (dbtest.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "dbtest.h"

const char *pg_uri;

/* Runs sql on the test's PostgreSQL database, outside pcapd. */
void pg_raw(const char *sql)
{
	PGconn *h = PQconnectdb(pg_uri);
	PGresult *res;

	if (PQstatus(h) != CONNECTION_OK)
		fail_msg("connecting to %s: %s", pg_uri, PQerrorMessage(h));
	PQclear(PQexec(h, "SET client_min_messages = warning")); /* no "drop cascades to" notices */
	res = PQexec(h, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(h));
	PQclear(res);
	PQfinish(h);
}

void rm_db_files(const char *path)
{
	char p[160];
	static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};

	for (size_t i = 0; i < ARRAY_SIZE(suffix); i++) {
		int n = snprintf(p, sizeof(p), "%s%s", path, suffix[i]);

		if (n > 0 && (size_t)n < sizeof(p))
			unlink(p);
	}
}

int setup(void **state)
{
	T *t = calloc(1, sizeof(*t));
	ErrBuf err = {{0}};

	assert_non_null(t);
	snprintf(t->dir, sizeof(t->dir), "/tmp/test-db-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/state.db", t->dir);
	if (pg_uri) {
		pg_raw("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
		snprintf(t->url, sizeof(t->url), "%s", pg_uri);
	} else {
		snprintf(t->url, sizeof(t->url), "%s", t->path);
	}
	if (db_open(t->url, &t->db, &err) < 0)
		fail_msg("db_open: %s", err.msg);
	assert_int_equal(db_account_ensure(t->db, ACC_A, &err), 0);
	assert_int_equal(db_account_ensure(t->db, ACC_B, &err), 0);
	*state = t;
	return 0;
}

int teardown(void **state)
{
	T *t = *state;

	db_close(t->db);
	rm_db_files(t->path);
	rmdir(t->dir);
	free(t);
	return 0;
}

/* A job with every string set (full) or none (simple). The strings are
 * literals: never job_done() a job made here. */
Job make_job(const char *account, JobType type, int64_t submitted_ns)
{
	Job j = {0};

	assert_int_equal(job_new_id(j.id), 0);
	snprintf(j.account, sizeof(j.account), "%s", account);
	j.type = type;
	j.status = JOB_PENDING;
	j.time_limit_s = 60;
	j.submitted_ns = submitted_ns;
	if (type == JOB_FULL) {
		j.filter_json = (char *)"{\"protocol\":6}";
		j.filter_model = (char *)"{\"clauses\":[{\"proto\":6}]}";
		j.echo_json = (char *)"{\"colo\":\"ORD\"}";
		j.snaplen = 96;
		j.packet_limit = 10000;
		j.byte_limit = 4294967295u;
		j.colo_name = (char *)"ORD";
		j.outputs[0] = (JobOutput){JOB_OUTPUT_BUCKET, (char *)"file:///var/buckets/x"};
		j.outputs[1] = (JobOutput){JOB_OUTPUT_FILE, (char *)"/var/captures/x.cap"};
		j.n_outputs = 2;
		j.continuous = (JobContinuous){
			.on = true, .ring = true, .file_count = 10, .file_size = 104857600, .session_limit_s = 604800};
	} else {
		j.offset_time_ns = submitted_ns - 5 * SEC;
	}
	return j;
}

JobPart make_part(const Job *j, const char *agent, PartState state)
{
	JobPart p = {0};

	snprintf(p.job_id, sizeof(p.job_id), "%s", j->id);
	snprintf(p.agent, sizeof(p.agent), "%s", agent);
	p.state = state;
	p.updated_ns = j->submitted_ns;
	return p;
}

void assert_str_or_null(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

void assert_job_equal(const Job *a, const Job *b)
{
	assert_string_equal(a->id, b->id);
	assert_string_equal(a->account, b->account);
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->status, b->status);
	assert_str_or_null(a->filter_json, b->filter_json);
	assert_int_equal(a->time_limit_s, b->time_limit_s);
	assert_int_equal(a->packet_limit, b->packet_limit);
	assert_int_equal(a->byte_limit, b->byte_limit);
	assert_str_or_null(a->colo_name, b->colo_name);
	assert_str_or_null(a->filter_model, b->filter_model);
	assert_str_or_null(a->echo_json, b->echo_json);
	assert_int_equal(a->snaplen, b->snaplen);
	assert_int_equal(a->n_outputs, b->n_outputs);
	for (size_t i = 0; i < a->n_outputs; i++) {
		assert_int_equal(a->outputs[i].kind, b->outputs[i].kind);
		assert_string_equal(a->outputs[i].target, b->outputs[i].target);
	}
	assert_int_equal(a->continuous.on, b->continuous.on);
	assert_int_equal(a->continuous.ring, b->continuous.ring);
	assert_int_equal(a->continuous.file_count, b->continuous.file_count);
	assert_int_equal(a->continuous.file_size, b->continuous.file_size);
	assert_int_equal(a->continuous.session_limit_s, b->continuous.session_limit_s);
	assert_int_equal(a->offset_time_ns, b->offset_time_ns);
	assert_int_equal(a->submitted_ns, b->submitted_ns);
	assert_int_equal(a->stop_requested_ns, b->stop_requested_ns);
	assert_int_equal(a->stop_reason, b->stop_reason);
	assert_str_or_null(a->error_message, b->error_message);
	assert_int_equal(a->packets, b->packets);
	assert_int_equal(a->bytes, b->bytes);
	assert_int_equal(a->drops, b->drops);
	assert_int_equal(a->finished_ns, b->finished_ns);
	assert_int_equal(a->started_ns, b->started_ns);
	assert_str_or_null(a->name.group, b->name.group);
	assert_str_or_null(a->name.watcher, b->name.watcher);
	assert_str_or_null(a->name.name, b->name.name);
	assert_str_or_null(a->request, b->request);
}

void assert_part_equal(const JobPart *a, const JobPart *b)
{
	assert_string_equal(a->job_id, b->job_id);
	assert_string_equal(a->agent, b->agent);
	assert_int_equal(a->state, b->state);
	assert_int_equal(a->failure, b->failure);
	assert_int_equal(a->packets, b->packets);
	assert_int_equal(a->bytes, b->bytes);
	assert_int_equal(a->drops, b->drops);
	assert_int_equal(a->stop_reason, b->stop_reason);
	assert_str_or_null(a->object, b->object);
	assert_str_or_null(a->error, b->error);
	assert_int_equal(a->updated_ns, b->updated_ns);
}

void hash_of(uint8_t h[32], uint8_t seed)
{
	for (int i = 0; i < 32; i++)
		h[i] = (uint8_t)(seed + i * 7);
}

typedef struct Store {
	const Job *j;
	const JobPart *parts;
	size_t n;
} Store;

/* A copy of s (NULL stays NULL) in *slot, the old value freed. */
static void set_str(char **slot, const char *s)
{
	free(*slot);
	*slot = s ? strdup(s) : NULL;
	if (s)
		assert_non_null(*slot);
}

static bool store_fn(Job *j, JobPart *parts, size_t n, void *arg)
{
	const Store *st = arg;

	j->status = st->j->status;
	j->stop_requested_ns = st->j->stop_requested_ns;
	j->stop_reason = st->j->stop_reason;
	set_str(&j->error_message, st->j->error_message);
	j->packets = st->j->packets;
	j->bytes = st->j->bytes;
	j->drops = st->j->drops;
	j->finished_ns = st->j->finished_ns;
	j->started_ns = st->j->started_ns;
	for (size_t i = 0; i < st->n; i++)
		for (size_t k = 0; k < n; k++) {
			const JobPart *src = &st->parts[i];
			JobPart *p = &parts[k];

			if (strcmp(p->agent, src->agent) != 0)
				continue;
			p->state = src->state;
			p->packets = src->packets;
			p->bytes = src->bytes;
			p->drops = src->drops;
			p->stop_reason = src->stop_reason;
			set_str(&p->object, src->object);
			set_str(&p->error, src->error);
			p->updated_ns = src->updated_ns;
			p->failure = src->failure;
			p->attempt = src->attempt;
		}
	return true;
}

int store_job(Db *db, const Job *j, const JobPart *parts, size_t n, ErrBuf *err)
{
	Store st = {.j = j, .parts = parts, .n = n};

	return db_job_modify(db, j->account, j->id, store_fn, &st, NULL, err);
}

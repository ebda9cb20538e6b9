/* SPDX-License-Identifier: MIT */
/*
 * The row readers and job limits both backends share (db_rows.h). Enum
 * columns are stored as the integer values of job.h and db.h (migrations
 * assert them).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_rows.h"
#include "model/filterjson.h"
#include "model/filtermodel.h"

int dbr_fixed(const DbRow *r, int i, char *out, size_t cap)
{
	size_t n = 0;
	int rc = 0;
	const char *s = r->text(r, i, &n, &rc);

	if (rc < 0)
		return rc;
	if (!s)
		n = 0;
	if (n >= cap)
		return -EIO;
	if (n)
		memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

int dbr_dup(const DbRow *r, int i, char **ret)
{
	size_t n = 0;
	int rc = 0;
	const char *s = r->text(r, i, &n, &rc);
	char *d;

	if (rc < 0)
		return rc;
	if (!s) {
		*ret = NULL;
		return 0;
	}
	d = malloc(n + 1);
	if (!d)
		return -ENOMEM;
	memcpy(d, s, n);
	d[n] = '\0';
	*ret = d;
	return 0;
}

/* Integer readers that keep the first error in *rc (so a row reader checks
 * once). */
static int64_t col_i64(const DbRow *r, int i, int *rc)
{
	int64_t v = 0;

	if (*rc == 0 && r->i64(r, i, &v) < 0)
		*rc = -EIO;
	return v;
}

static uint64_t col_u64(const DbRow *r, int i, int *rc)
{
	int64_t v = col_i64(r, i, rc);

	return v < 0 ? 0 : (uint64_t)v;
}

static uint32_t col_u32(const DbRow *r, int i, int *rc)
{
	int64_t v = col_i64(r, i, rc);

	return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static int col_int(const DbRow *r, int i, int *rc)
{
	int64_t v = col_i64(r, i, rc);

	if (v < INT32_MIN || v > INT32_MAX) {
		*rc = -EIO;
		return 0;
	}
	return (int)v;
}

int dbr_row_fail(int r, const char *what, ErrBuf *err)
{
	if (r == -ENOMEM)
		return errbuf_set(err, r, "db: reading %s: out of memory", what);
	return errbuf_set(err, r, "db: reading %s: a stored value does not fit (corrupt row?)", what);
}

int dbr_grow(void **v, size_t elem, size_t n, size_t *cap)
{
	void *nv;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	if (ncap > SIZE_MAX / elem)
		return -ENOMEM;
	nv = realloc(*v, ncap * elem);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = ncap;
	return 0;
}

/* ---- jobs and parts ---- */

/* A row written before migration 2 has no filter_model: it is made from
 * filter_json, the only form there was then. */
static int legacy_filter_model(Job *j)
{
	Filter f = {0};
	ErrBuf err;
	int r;

	if (j->filter_model || !j->filter_json)
		return 0;
	r = filterjson_parse_text(j->filter_json, &f, &err);
	if (r == 0)
		r = filtermodel_to_text(&f, &j->filter_model, &err);
	filter_done(&f);
	return r == -ENOMEM ? r : 0; /* unreadable: left NULL, an agent then captures everything it is told */
}

/* Reads a DB_JOB_COLS row into a Job. */
static int row_job(const DbRow *row, void *ret)
{
	char *outputs = NULL;
	Job j = {0};
	int r, cont;

	r = dbr_fixed(row, 0, j.id, sizeof(j.id));
	if (r == 0)
		r = dbr_fixed(row, 1, j.account, sizeof(j.account));
	if (r == 0)
		r = dbr_dup(row, 4, &j.filter_json);
	if (r == 0)
		r = dbr_dup(row, 8, &j.colo_name);
	if (r == 0)
		r = dbr_dup(row, 14, &j.error_message);
	if (r == 0)
		r = dbr_dup(row, 19, &j.filter_model);
	if (r == 0)
		r = dbr_dup(row, 26, &j.name.group);
	if (r == 0)
		r = dbr_dup(row, 27, &j.name.watcher);
	if (r == 0)
		r = dbr_dup(row, 28, &j.name.name);
	if (r == 0)
		r = dbr_dup(row, 29, &j.request);
	if (r == 0)
		r = dbr_dup(row, 30, &j.echo_json);
	if (r == 0)
		r = dbr_dup(row, 9, &outputs);
	if (r == 0 && outputs)
		r = job_outputs_from_text(outputs, &j);
	free(outputs);
	if (r == 0)
		r = legacy_filter_model(&j);
	if (r == 0) {
		j.type = (JobType)col_int(row, 2, &r);
		j.status = (JobStatus)col_int(row, 3, &r);
		j.time_limit_s = col_u32(row, 5, &r);
		j.packet_limit = col_u32(row, 6, &r);
		j.byte_limit = col_u64(row, 7, &r);
		j.offset_time_ns = col_i64(row, 10, &r);
		j.submitted_ns = col_i64(row, 11, &r);
		j.stop_requested_ns = col_i64(row, 12, &r);
		j.stop_reason = (JobStop)col_int(row, 13, &r);
		j.packets = col_u64(row, 15, &r);
		j.bytes = col_u64(row, 16, &r);
		j.drops = col_u64(row, 17, &r);
		j.finished_ns = col_i64(row, 18, &r);
		j.snaplen = col_u32(row, 20, &r);
		cont = col_int(row, 21, &r);
		j.continuous = (JobContinuous){.on = cont != 0,
					       .ring = cont == 2,
					       .file_count = col_u32(row, 22, &r),
					       .file_size = col_u64(row, 23, &r),
					       .session_limit_s = col_u32(row, 24, &r)};
		j.started_ns = col_i64(row, 25, &r);
	}
	if (r < 0) {
		job_done(&j);
		return r;
	}
	*(Job *)ret = j;
	return 0;
}

static void job_rows_free(void *v, size_t n)
{
	jobs_free(v, n);
}

const RowKind dbr_jobs = {.size = sizeof(Job),
			  .read = row_job,
			  .free_all = job_rows_free,
			  .name = "job",
			  .a_name = "a job",
			  .reading = "reading a job",
			  .listing = "listing jobs",
			  .binding = "binding a job list"};

/* Reads a DB_PART_COLS row into a JobPart. */
static int row_part(const DbRow *row, void *ret)
{
	JobPart p = {0};
	int r;

	r = dbr_fixed(row, 0, p.job_id, sizeof(p.job_id));
	if (r == 0)
		r = dbr_fixed(row, 1, p.agent, sizeof(p.agent));
	if (r == 0)
		r = dbr_dup(row, 7, &p.object);
	if (r == 0)
		r = dbr_dup(row, 8, &p.error);
	if (r == 0) {
		p.state = (PartState)col_int(row, 2, &r);
		p.packets = col_u64(row, 3, &r);
		p.bytes = col_u64(row, 4, &r);
		p.drops = col_u64(row, 5, &r);
		p.stop_reason = (JobStop)col_int(row, 6, &r);
		p.updated_ns = col_i64(row, 9, &r);
		p.failure = (PartFailure)col_int(row, 10, &r);
		p.attempt = (uint32_t)col_u64(row, 11, &r);
	}
	if (r < 0) {
		part_done(&p);
		return r;
	}
	*(JobPart *)ret = p;
	return 0;
}

static void part_rows_free(void *v, size_t n)
{
	parts_free(v, n);
}

const RowKind dbr_parts = {.size = sizeof(JobPart),
			   .read = row_part,
			   .free_all = part_rows_free,
			   .name = "part",
			   .a_name = "a part",
			   .reading = "reading a part",
			   .listing = "listing parts",
			   .binding = "binding a part list"};

/* Reads an (account, status, count) row into a JobStatusCount. */
static int row_status_count(const DbRow *row, void *ret)
{
	JobStatusCount *c = ret;
	int64_t n;
	int r = dbr_fixed(row, 0, c->account, sizeof(c->account));

	if (r < 0)
		return r;
	c->status = (JobStatus)col_int(row, 1, &r);
	n = col_i64(row, 2, &r);
	if (r < 0 || n < 0)
		return -EIO;
	c->count = (uint64_t)n;
	return 0;
}

static void free_array(void *v, size_t n)
{
	(void)n;
	free(v);
}

const RowKind dbr_status_counts = {.size = sizeof(JobStatusCount),
				   .read = row_status_count,
				   .free_all = free_array,
				   .name = "job count",
				   .a_name = "a job count",
				   .reading = "reading a job count",
				   .listing = "counting jobs",
				   .binding = "binding a job count"};

static int row_tally(const DbRow *row, void *ret)
{
	DbTallyRow *t = ret;
	int r = 0;

	t->state = col_i64(row, 0, &r);
	t->count = col_i64(row, 1, &r);
	t->packets = col_i64(row, 2, &r);
	t->bytes = col_i64(row, 3, &r);
	t->drops = col_i64(row, 4, &r);
	if (r < 0 || t->state < 0 || t->state > PART_UPLOAD_FAILED || t->count < 0 || t->packets < 0 || t->bytes < 0 ||
	    t->drops < 0)
		return -EIO;
	return 0;
}

const RowKind dbr_tally_rows = {.size = sizeof(DbTallyRow),
				.read = row_tally,
				.free_all = free_array,
				.name = "part count",
				.a_name = "a part count",
				.reading = "reading a part count",
				.listing = "counting parts",
				.binding = "binding a part count"};

_Static_assert(PART_UPLOAD_FAILED == 7, "jobs.tally counts 8 part states");

/* Below the cap, each sum is exact and no sum of a few of them wraps. */
static bool tally_exact(const PartTally *t)
{
	return t->packets < DB_TALLY_CAP && t->bytes < DB_TALLY_CAP && t->drops < DB_TALLY_CAP;
}

static int tally_from_rows(const DbTallyRow *v, size_t n, PartTally *ret)
{
	PartTally t = {0};

	for (size_t i = 0; i < n; i++) {
		t.n += (uint64_t)v[i].count;
		t.in[v[i].state] += (uint64_t)v[i].count;
		t.packets += (uint64_t)v[i].packets; /* each below 2^53, at most 8 rows */
		t.bytes += (uint64_t)v[i].bytes;
		t.drops += (uint64_t)v[i].drops;
	}
	*ret = t;
	return tally_exact(&t) ? 0 : -EAGAIN;
}

/* The part's move from before to after, in a known tally. */
static void tally_move(DbJobTally *jt, const JobPart *before, const JobPart *after)
{
	PartTally *t = &jt->t;

	if ((unsigned)before->state > PART_UPLOAD_FAILED || t->in[before->state] == 0 || t->n == 0 ||
	    t->packets < before->packets || t->bytes < before->bytes || t->drops < before->drops) {
		jt->known = false; /* not what the tally counted: count again */
		return;
	}
	t->in[before->state]--;
	t->n--;
	t->packets -= before->packets;
	t->bytes -= before->bytes;
	t->drops -= before->drops;
	part_tally_add(t, after);
	jt->known = tally_exact(t);
}

int db_rows_part_aggregate(DbJobTally *jt, const JobPart *before, const JobPart *after, DbTallyCountFn count_fn,
			   DbPartListFn list_fn, void *ctx, ErrBuf *err)
{
	int64_t now = (int64_t)now_realtime_ns();
	JobPart *parts = NULL;
	size_t n = 0;
	int r;

	if (jt->known)
		tally_move(jt, before, after);
	if (!jt->known) {
		DbTallyRow *rows = NULL;

		r = count_fn(ctx, &rows, &n, err);
		if (r < 0)
			return r;
		jt->known = tally_from_rows(rows, n, &jt->t) == 0;
		free(rows);
	}
	if (jt->known && job_aggregate_tally(&jt->j, &jt->t, now) != -EAGAIN)
		return 0;
	r = list_fn(ctx, &parts, &n, err);
	if (r < 0)
		return r;
	job_aggregate(&jt->j, parts, n, now);
	jt->t = (PartTally){0};
	for (size_t i = 0; i < n; i++)
		part_tally_add(&jt->t, &parts[i]);
	jt->known = tally_exact(&jt->t);
	parts_free(parts, n);
	return 0;
}

static int row_job_tally(const DbRow *row, void *ret)
{
	DbJobTally *jt = ret;
	unsigned long long v[11];
	size_t len = 0;
	char text[DB_TALLY_TEXT_MAX];
	const char *s;
	int r = row_job(row, &jt->j), n = 0;

	if (r < 0)
		return r;
	jt->known = false;
	s = row->text(row, DB_JOB_NCOLS, &len, &r);
	if (r < 0) {
		job_done(&jt->j);
		return r;
	}
	/* Anything but the text dbr_tally_text writes reads as not known: the
	 * parts are counted again. */
	if (!s || len >= sizeof(text))
		return 0;
	memcpy(text, s, len);
	text[len] = '\0';
	if (sscanf(text, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu%n", &v[0], &v[1], &v[2], &v[3], &v[4],
		   &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &n) != 11 ||
	    (size_t)n != len)
		return 0;
	jt->t = (PartTally){0};
	for (int i = 0; i <= PART_UPLOAD_FAILED; i++) {
		jt->t.in[i] = v[i];
		jt->t.n += v[i];
	}
	jt->t.packets = v[8];
	jt->t.bytes = v[9];
	jt->t.drops = v[10];
	jt->known = tally_exact(&jt->t);
	return 0;
}

static void job_tally_rows_free(void *v, size_t n)
{
	DbJobTally *jt = v;

	for (size_t i = 0; i < n; i++)
		job_done(&jt[i].j);
	free(v);
}

const RowKind dbr_jobs_tally = {.size = sizeof(DbJobTally),
				.read = row_job_tally,
				.free_all = job_tally_rows_free,
				.name = "job",
				.a_name = "a job",
				.reading = "reading a job",
				.listing = "listing jobs",
				.binding = "binding a job id"};

const char *dbr_tally_text(const DbJobTally *jt, char out[DB_TALLY_TEXT_MAX])
{
	const PartTally *t = &jt->t;

	if (!jt->known)
		return NULL;
	snprintf(out, DB_TALLY_TEXT_MAX, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
		 (unsigned long long)t->in[0], (unsigned long long)t->in[1], (unsigned long long)t->in[2],
		 (unsigned long long)t->in[3], (unsigned long long)t->in[4], (unsigned long long)t->in[5],
		 (unsigned long long)t->in[6], (unsigned long long)t->in[7], (unsigned long long)t->packets,
		 (unsigned long long)t->bytes, (unsigned long long)t->drops);
	return out;
}

/* ---- buckets and agents ---- */

/* Reads a DB_BUCKET_COLS row into a BucketRow. */
static int row_bucket(const DbRow *row, void *ret)
{
	BucketRow b = {0};
	int r;

	r = dbr_fixed(row, 0, b.id, sizeof(b.id));
	if (r == 0)
		r = dbr_fixed(row, 1, b.account, sizeof(b.account));
	if (r == 0)
		r = dbr_dup(row, 2, &b.destination_conf);
	if (r == 0)
		r = dbr_dup(row, 3, &b.filename);
	if (r == 0)
		r = dbr_dup(row, 4, &b.challenge);
	if (r == 0)
		r = dbr_dup(row, 8, &b.match_key);
	if (r == 0) {
		b.status = (BucketStatus)col_int(row, 5, &r);
		b.submitted_ns = col_i64(row, 6, &r);
		b.validated_ns = col_i64(row, 7, &r);
	}
	if (r < 0) {
		bucket_row_done(&b);
		return r;
	}
	*(BucketRow *)ret = b;
	return 0;
}

static void bucket_rows_free_v(void *v, size_t n)
{
	bucket_rows_free(v, n);
}

const RowKind dbr_buckets = {.size = sizeof(BucketRow),
			     .read = row_bucket,
			     .free_all = bucket_rows_free_v,
			     .name = "bucket",
			     .a_name = "a bucket",
			     .reading = "reading a bucket",
			     .listing = "listing buckets",
			     .binding = "binding a bucket list"};

static int row_owner(const DbRow *row, void *ret)
{
	return dbr_fixed(row, 0, ret, JOB_ID_LEN + 1);
}

const RowKind dbr_owners = {.size = JOB_ID_LEN + 1,
			    .read = row_owner,
			    .free_all = free_array,
			    .name = "owner of",
			    .a_name = "a bucket's owner",
			    .reading = "looking up a bucket's owner"};

/* Reads a DB_AGENT_COLS row into an AgentRow. */
static int row_agent(const DbRow *row, void *ret)
{
	AgentRow a = {0};
	int r;

	r = dbr_fixed(row, 0, a.name, sizeof(a.name));
	if (r == 0)
		r = dbr_fixed(row, 1, a.colo, sizeof(a.colo));
	if (r == 0)
		r = dbr_dup(row, 2, &a.interfaces);
	if (r == 0)
		r = dbr_dup(row, 3, &a.version);
	if (r == 0) {
		a.first_seen_ns = col_i64(row, 4, &r);
		a.last_seen_ns = col_i64(row, 5, &r);
	}
	if (r == 0)
		r = dbr_dup(row, 6, &a.account);
	if (r == 0)
		r = dbr_dup(row, 7, &a.history);
	if (r < 0) {
		agent_row_done(&a);
		return r;
	}
	*(AgentRow *)ret = a;
	return 0;
}

static void agent_rows_free_v(void *v, size_t n)
{
	agent_rows_free(v, n);
}

const RowKind dbr_agents = {.size = sizeof(AgentRow),
			    .read = row_agent,
			    .free_all = agent_rows_free_v,
			    .name = "agent",
			    .a_name = "an agent",
			    .reading = "reading an agent",
			    .listing = "listing agents",
			    .binding = "binding an agent list"};

/* ---- enrolment ---- */

/* Reads a DB_ENROLL_COLS row (NULLs read as "") into an EnrollToken. */
static int row_enroll(const DbRow *row, void *ret)
{
	EnrollToken t = {0};
	int r;

	r = dbr_fixed(row, 0, t.account, sizeof(t.account));
	if (r == 0)
		r = dbr_fixed(row, 1, t.name_pattern, sizeof(t.name_pattern));
	if (r == 0)
		r = dbr_fixed(row, 2, t.colo, sizeof(t.colo));
	if (r == 0)
		t.expires_ns = col_i64(row, 3, &r);
	if (r < 0)
		return r;
	*(EnrollToken *)ret = t;
	return 0;
}

const RowKind dbr_enroll_tokens = {.size = sizeof(EnrollToken),
				   .read = row_enroll,
				   .free_all = free_array,
				   .name = "enrolment token",
				   .a_name = "an enrolment token",
				   .reading = "reading an enrolment token"};

/* Reads a DB_KEY_COLS row (NULLs read as "") into an AgentKey. */
static int row_key(const DbRow *row, void *ret)
{
	AgentKey k = {0};
	int r;

	r = dbr_fixed(row, 0, k.name, sizeof(k.name));
	if (r == 0)
		r = dbr_fixed(row, 1, k.account, sizeof(k.account));
	if (r == 0)
		r = dbr_fixed(row, 2, k.colo, sizeof(k.colo));
	if (r == 0)
		k.enrolled_ns = col_i64(row, 3, &r);
	if (r < 0)
		return r;
	*(AgentKey *)ret = k;
	return 0;
}

const RowKind dbr_agent_keys = {.size = sizeof(AgentKey),
				.read = row_key,
				.free_all = free_array,
				.name = "agent key",
				.a_name = "an agent key",
				.reading = "reading an agent key"};

/* ---- limits ---- */

int dbr_check_limits(const Job *j, const JobLimits *lim, DbLimitQueryFn query, void *ctx, int64_t *ret_after_ns,
		     ErrBuf *err)
{
	bool found;
	int64_t v;
	int r;

	*ret_after_ns = 0;
	if (j->type == JOB_FULL && lim->max_active_full > 0) {
		r = query(ctx, DB_LQ_ACTIVE_FULL, j->account, &found, &v, err);
		if (r < 0)
			return r;
		if (!found || v < 0 || (uint64_t)v < lim->max_active_full)
			return 0;
		r = query(ctx, DB_LQ_ACTIVE_FULL_END, j->account, &found, &v, err);
		if (r < 0)
			return r;
		if (found && v > 0) /* NULL (none has a time limit) reads as 0 */
			*ret_after_ns = v;
		return errbuf_set(err, -EBUSY, "only %zu pending or running full capture(s) per account",
				  lim->max_active_full);
	}
	if (j->type == JOB_SIMPLE && lim->sample_interval_ns > 0) {
		int64_t elapsed;

		r = query(ctx, DB_LQ_LAST_SIMPLE, j->account, &found, &v, err);
		if (r < 0)
			return r;
		if (!found)
			return 0;
		if (__builtin_sub_overflow(j->submitted_ns, v, &elapsed))
			elapsed = j->submitted_ns > v ? INT64_MAX : 0;
		if (elapsed < 0)
			elapsed = 0; /* the clock went back: count the last one as just now */
		if (elapsed >= lim->sample_interval_ns)
			return 0;
		*ret_after_ns = j->submitted_ns + (lim->sample_interval_ns - elapsed);
		return errbuf_set(
			err, -EBUSY, "one sample capture per %lld seconds per account",
			(long long)((lim->sample_interval_ns + (int64_t)NSEC_PER_SEC - 1) / (int64_t)NSEC_PER_SEC));
	}
	return 0;
}

int db_rows_modify(Job *j, JobPart *parts, size_t n, DbJobFn fn, void *arg, size_t *ret_n, ErrBuf *err)
{
	JobPart *before = NULL;
	int r = 0;

	if (parts_copy(parts, n, &before) < 0)
		return errbuf_set(err, -ENOMEM, "out of memory");
	if (fn(j, parts, n, arg)) {
		*ret_n = parts_changed_first(parts, before, n);
		r = 1;
	}
	parts_free(before, n);
	return r;
}

/* SPDX-License-Identifier: MIT */
/*
 * db.h's front: chooses a backend by the database URL and dispatches every
 * operation through the Db's ops table (db_backend.h). What does not depend
 * on a backend (enum names, freeing rows) lives here too.
 *
 * URLs: "sqlite:PATH" is the SQLite file PATH; "postgres://..." and
 * "postgresql://..." are libpq URIs, given to libpq whole. A string that
 * does not start with a scheme ("letters:") is a bare path, also SQLite (what
 * --data and older --db values give). An unknown scheme is refused, never taken for a
 * file name.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/db_backend.h"

static const DbBackend *const backends[] = {&db_backend_sqlite, &db_backend_postgres, &db_backend_postgresql};

/* The length of url's scheme ("sqlite" of "sqlite:x"): 0 when url does not
 * start with one (a bare path). A scheme is a letter and then letters,
 * digits, '+', '-' or '.' up to the first ':' (RFC 3986). */
static size_t url_scheme_len(const char *url)
{
	size_t i;

	if (!((url[0] >= 'a' && url[0] <= 'z') || (url[0] >= 'A' && url[0] <= 'Z')))
		return 0;
	for (i = 1; url[i] && url[i] != ':'; i++) {
		char ch = url[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '+' ||
		      ch == '-' || ch == '.'))
			return 0;
	}
	return url[i] == ':' ? i : 0;
}

int db_open(const char *url, Db **ret, ErrBuf *err)
{
	size_t n;

	if (!url || !*url)
		return errbuf_set(err, -EINVAL, "db: no database URL or path");
	n = url_scheme_len(url);
	if (n == 0)
		return db_backend_sqlite.open_db(url, ret, err);
	for (size_t i = 0; i < ARRAY_SIZE(backends); i++) {
		const DbBackend *b = backends[i];

		if (strlen(b->scheme) == n && strncasecmp(url, b->scheme, n) == 0)
			return b->open_db(b->target_is_url ? url : url + n + 1, ret, err);
	}
	return errbuf_set(err, -EINVAL, "db: unknown database URL scheme \"%.*s\" (use sqlite:PATH or postgres://...)",
			  (int)(n > 32 ? 32 : n), url);
}

/* ---- what does not depend on a backend ---- */

static const char *const scope_names[] = {[SCOPE_READ] = "read", [SCOPE_WRITE] = "write", [SCOPE_AGENT] = "agent"};

const char *token_scope_to_string(TokenScope s)
{
	return (unsigned)s < ARRAY_SIZE(scope_names) && scope_names[s] ? scope_names[s] : "unknown";
}

int token_scope_from_string(const char *s, TokenScope *ret)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(scope_names); i++) {
		if (scope_names[i] && strcmp(scope_names[i], s) == 0) {
			*ret = (TokenScope)i;
			return 0;
		}
	}
	return -EINVAL;
}

static const char *const bucket_status_names[] = {"pending", "success", "failed"};

const char *bucket_status_to_string(BucketStatus s)
{
	return (unsigned)s < ARRAY_SIZE(bucket_status_names) ? bucket_status_names[s] : "unknown";
}

void bucket_row_done(BucketRow *b)
{
	if (!b)
		return;
	free(b->destination_conf);
	free(b->match_key);
	free(b->filename);
	free(b->challenge);
	memset(b, 0, sizeof(*b));
}

void bucket_rows_free(BucketRow *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		bucket_row_done(&v[i]);
	free(v);
}

void agent_row_done(AgentRow *a)
{
	if (!a)
		return;
	free(a->interfaces);
	free(a->version);
	free(a->account);
	free(a->history);
	memset(a, 0, sizeof(*a));
}

void agent_rows_free(AgentRow *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		agent_row_done(&v[i]);
	free(v);
}

/* ---- dispatch ---- */

void db_close(Db *db)
{
	if (db)
		db->ops->close(db);
}

int db_account_ensure(Db *db, const char *account, ErrBuf *err)
{
	return db->ops->account_ensure(db, account, err);
}

bool db_account_exists(Db *db, const char *account)
{
	return db->ops->account_exists(db, account);
}

int db_credential_add(Db *db, const uint8_t hash[32], const char *email, const char *account, TokenScope scope,
		      ErrBuf *err)
{
	return db->ops->credential_add(db, hash, email, account, scope, err);
}

int db_credential_find(Db *db, const uint8_t hash[32], const char *email, char ret_account[JOB_ID_LEN + 1],
		       TokenScope *ret_scope, ErrBuf *err)
{
	return db->ops->credential_find(db, hash, email, ret_account, ret_scope, err);
}

int db_job_insert(Db *db, const Job *j, const JobPart *parts, size_t n, const JobLimits *lim, int64_t *ret_after_ns,
		  ErrBuf *err)
{
	return db->ops->job_insert(db, j, parts, n, lim, ret_after_ns, err);
}

int db_job_get(Db *db, const char *account, const char *id, Job *ret, ErrBuf *err)
{
	return db->ops->job_get(db, account, id, ret, err);
}

int db_job_list(Db *db, const char *account, size_t offset, size_t limit, Job **ret, size_t *ret_n, uint64_t *ret_total,
		ErrBuf *err)
{
	return db->ops->job_list(db, account, offset, limit, ret, ret_n, ret_total, err);
}

int db_job_list_active(Db *db, Job **ret, size_t *ret_n, ErrBuf *err)
{
	return db->ops->job_list_active(db, ret, ret_n, err);
}

int db_job_modify(Db *db, const char *account, const char *id, DbJobFn fn, void *arg, Job *ret_job, ErrBuf *err)
{
	return db->ops->job_modify(db, account, id, fn, arg, ret_job, err);
}

int db_part_modify(Db *db, const char *id, const char *agent, DbPartFn fn, void *arg, const DbSample *answer,
		   Job *ret_job, ErrBuf *err)
{
	return db->ops->part_modify(db, id, agent, fn, arg, answer, ret_job, err);
}

int db_sample_put(Db *db, const char *job_id, const char *agent, const uint8_t *pcap, size_t n, ErrBuf *err)
{
	return db->ops->sample_put(db, job_id, agent, pcap, n, err);
}

int db_sample_get(Db *db, const char *job_id, const char *agent, uint8_t **ret, size_t *ret_n, ErrBuf *err)
{
	return db->ops->sample_get(db, job_id, agent, ret, ret_n, err);
}

int db_notify(Db *db, const char *text, ErrBuf *err)
{
	if (strlen(text) > DB_NOTICE_MAX)
		return errbuf_set(err, -EINVAL, "db: a notice of %zu bytes (at most %u)", strlen(text), DB_NOTICE_MAX);
	return db->ops->notify ? db->ops->notify(db, text, err) : 0;
}

int db_watch_open(Db *db, DbWatch **ret, ErrBuf *err)
{
	if (!db->ops->watch_open)
		return errbuf_set(err, -EOPNOTSUPP,
				  "db: this database has no notices (one controller per SQLite file)");
	return db->ops->watch_open(db, ret, err);
}

void db_watch_close(DbWatch *w)
{
	if (w)
		w->ops->close(w);
}

int db_watch_next(DbWatch *w, int timeout_ms, char *ret, ErrBuf *err)
{
	return w->ops->next(w, timeout_ms, ret, err);
}

int db_watch_lease(DbWatch *w, int64_t key, ErrBuf *err)
{
	return w->ops->lease(w, key, err);
}

int db_job_find_named(Db *db, const char *account, const JobName *n, Job *ret, ErrBuf *err)
{
	return db->ops->job_find_named(db, account, n, ret, err);
}

int db_job_list_named(Db *db, const char *account, const char *group, const char *watcher, const JobCursor *after,
		      size_t limit, Job **ret, size_t *ret_n, ErrBuf *err)
{
	return db->ops->job_list_named(db, account, group, watcher, after, limit, ret, ret_n, err);
}

int db_job_unname(Db *db, const char *account, const char *id, ErrBuf *err)
{
	return db->ops->job_unname(db, account, id, err);
}

int db_job_count_by_status(Db *db, const char *account, JobStatusCount **ret, size_t *ret_n, ErrBuf *err)
{
	return db->ops->job_count_by_status(db, account, ret, ret_n, err);
}

int db_part_list(Db *db, const char *job_id, JobPart **ret, size_t *ret_n, ErrBuf *err)
{
	return db->ops->part_list(db, job_id, ret, ret_n, err);
}

int db_part_list_for_agent(Db *db, const char *agent, JobPart **ret, size_t *ret_n, ErrBuf *err)
{
	return db->ops->part_list_for_agent(db, agent, ret, ret_n, err);
}

int db_bucket_insert(Db *db, const BucketRow *b, size_t max_per_account, ErrBuf *err)
{
	return db->ops->bucket_insert(db, b, max_per_account, err);
}

int db_bucket_get(Db *db, const char *account, const char *id, BucketRow *ret, ErrBuf *err)
{
	return db->ops->bucket_get(db, account, id, ret, err);
}

int db_bucket_find(Db *db, const char *account, const char *destination_conf, BucketRow *ret, ErrBuf *err)
{
	return db->ops->bucket_find(db, account, destination_conf, ret, err);
}

int db_bucket_list(Db *db, const char *account, BucketRow **ret, size_t *ret_n, ErrBuf *err)
{
	return db->ops->bucket_list(db, account, ret, ret_n, err);
}

int db_bucket_update(Db *db, const BucketRow *b, ErrBuf *err)
{
	return db->ops->bucket_update(db, b, err);
}

int db_bucket_delete(Db *db, const char *account, const char *id, ErrBuf *err)
{
	return db->ops->bucket_delete(db, account, id, err);
}

int db_bucket_share(Db *db, const char *bucket_id, const char *account, ErrBuf *err)
{
	return db->ops->bucket_share(db, bucket_id, account, err);
}

int db_bucket_owned_elsewhere(Db *db, const char *account, const char *destination_conf, char *ret_owner, ErrBuf *err)
{
	return db->ops->bucket_owned_elsewhere(db, account, destination_conf, ret_owner, err);
}

int db_agent_upsert(Db *db, const AgentRow *a, ErrBuf *err)
{
	return db->ops->agent_upsert(db, a, err);
}

int db_agent_beats(Db *db, const AgentBeat *v, size_t n, ErrBuf *err)
{
	return n ? db->ops->agent_beats(db, v, n, err) : 0;
}

int db_agent_forget(Db *db, const char *sender, const char *name, ErrBuf *err)
{
	char text[DB_NOTICE_MAX + 1];
	AgentRow row = {0};
	int r;

	if (snprintf(row.name, sizeof(row.name), "%s", name) >= (int)sizeof(row.name) ||
	    snprintf(text, sizeof(text), "%s forget %s", sender, name) >= (int)sizeof(text))
		return errbuf_set(err, -EINVAL, "name: '%s' is too long for an agent", name);
	r = db->ops->agent_upsert(db, &row, err);
	if (r < 0) {
		/* The notice still goes: the others' key caches forget. */
		ErrBuf ignored = {{0}};

		db_notify(db, text, &ignored);
		return r;
	}
	return db_notify(db, text, err);
}

int db_agent_list(Db *db, AgentRow **ret, size_t *ret_n, ErrBuf *err)
{
	return db->ops->agent_list(db, ret, ret_n, err);
}

int db_enroll_token_add(Db *db, const uint8_t hash[32], const EnrollToken *t, ErrBuf *err)
{
	return db->ops->enroll_token_add(db, hash, t, err);
}

int db_enroll_token_find(Db *db, const uint8_t hash[32], EnrollToken *ret, ErrBuf *err)
{
	return db->ops->enroll_token_find(db, hash, ret, err);
}

int db_agent_key_add(Db *db, const uint8_t hash[32], const AgentKey *k, size_t max_per_account, ErrBuf *err)
{
	return db->ops->agent_key_add(db, hash, k, max_per_account, err);
}

int db_agent_key_find(Db *db, const uint8_t hash[32], AgentKey *ret, ErrBuf *err)
{
	return db->ops->agent_key_find(db, hash, ret, err);
}

int db_agent_key_get(Db *db, const char *name, AgentKey *ret, ErrBuf *err)
{
	return db->ops->agent_key_get(db, name, ret, err);
}

int db_agent_key_delete(Db *db, const char *name, ErrBuf *err)
{
	return db->ops->agent_key_delete(db, name, err);
}

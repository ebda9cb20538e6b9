/* SPDX-License-Identifier: MIT */
/*
 * db.h's operations over PostgreSQL (the plumbing is db_pg.c, db_pg_int.h):
 * the statement table and one function per DbOps entry, each meaning what
 * the SQLite backend's does (the same tests run against both).
 *
 * Where SQLite relies on its single writer, this file does not: the limited
 * inserts (jobs, buckets, agent keys) lock the account's row first, in a
 * transaction, and then count and insert; the page of a job list and its
 * total are read in one REPEATABLE READ snapshot.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_backend.h"
#include "db/db_pg_int.h"

/* A part tally's columns (db_rows.h DbTallyRow), its sums capped at
 * DB_TALLY_CAP. */
#define TALLY_SUM(col) "LEAST(sum(" col "), " DB_STR(DB_TALLY_CAP) ")"
#define TALLY_COLS "state, count(*), " TALLY_SUM("packets") ", " TALLY_SUM("bytes") ", " TALLY_SUM("drops")

/* Statuses 4 and 5 (success, failed) and part states 4..6 are terminal
 * (migrations.c asserts the values). */
const char *const dbp_stmt_sql[PG_STMT_COUNT] = {
	[PG_BEGIN] = "BEGIN",
	[PG_BEGIN_READ] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	[PG_COMMIT] = "COMMIT",
	[PG_ROLLBACK] = "ROLLBACK",
	/* Serialises the limited inserts of one account across every writer. */
	[PG_ACCOUNT_LOCK] = "SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE",
	[PG_ACCOUNT_ENSURE] = "INSERT INTO accounts (id, created_ns) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
	[PG_ACCOUNT_EXISTS] = "SELECT 1 FROM accounts WHERE id = $1",
	[PG_CRED_ADD] = "INSERT INTO credentials (hash, email, account, scope, created_ns) VALUES ($1, $2, $3, $4, $5)",
	/* A bearer token (email NULL) never matches a legacy key's row. */
	[PG_CRED_FIND] = "SELECT account, scope FROM credentials WHERE hash = $1 "
			 "AND lower(email) IS NOT DISTINCT FROM lower($2::text)",
	[PG_JOB_INSERT] = "INSERT INTO jobs (" DB_JOB_COLS ") VALUES "
			  "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, "
			  "$21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31)",
	[PG_JOB_GET] = "SELECT " DB_JOB_COLS " FROM jobs WHERE id = $1 AND account = $2",
	[PG_JOB_GET_ANY] = "SELECT " DB_JOB_COLS " FROM jobs WHERE id = $1",
	/* db_job_modify: the job's row stays locked until the commit. */
	[PG_JOB_LOCK] = "SELECT " DB_JOB_COLS " FROM jobs WHERE id = $1 AND account = $2 FOR UPDATE",
	[PG_JOB_LOCK_ANY] = "SELECT " DB_JOB_COLS " FROM jobs WHERE id = $1 FOR UPDATE",
	[PG_JOB_LOCK_TALLY] = "SELECT " DB_JOB_TALLY_COLS " FROM jobs WHERE id = $1 FOR UPDATE",
	[PG_JOB_LIST] = "SELECT " DB_JOB_COLS " FROM jobs WHERE account = $1 ORDER BY submitted_ns DESC, id DESC "
			"LIMIT $2 OFFSET $3",
	[PG_JOB_COUNT] = "SELECT count(*) FROM jobs WHERE account = $1",
	[PG_JOB_LIST_ACTIVE] = "SELECT " DB_JOB_COLS " FROM jobs WHERE status NOT IN (4, 5) ORDER BY submitted_ns, id",
	[PG_JOB_UPDATE] = "UPDATE jobs SET status = $3, stop_requested_ns = $4, stop_reason = $5, error_message = $6, "
			  "packets = $7, bytes = $8, drops = $9, finished_ns = $10, started_ns = $11, tally = $12 "
			  "WHERE id = $1 AND account = $2",
	[PG_JOB_COUNT_ACTIVE_FULL] = "SELECT count(*) FROM jobs WHERE account = $1 AND type = 1 "
				     "AND status NOT IN (4, 5)",
	[PG_JOB_ACTIVE_FULL_END] = "SELECT min(submitted_ns + time_limit * 1000000000) FROM jobs "
				   "WHERE account = $1 AND type = 1 AND status NOT IN (4, 5) AND time_limit > 0",
	[PG_JOB_LAST_SIMPLE] = "SELECT submitted_ns FROM jobs WHERE account = $1 AND type = 0 "
			       "ORDER BY submitted_ns DESC LIMIT 1",
	/* Named captures: the lower() comparisons use the index jobs_by_name. */
	[PG_JOB_FIND_NAMED] = "SELECT " DB_JOB_COLS " FROM jobs WHERE account = $1 AND lower(name_group) = lower($2) "
			      "AND lower(name_watcher) = lower($3) AND lower(name) = lower($4) AND name IS NOT NULL",
	[PG_JOB_LIST_NAMED] = "SELECT " DB_JOB_COLS " FROM jobs WHERE account = $1 AND lower(name_group) = lower($2) "
			      "AND lower(name_watcher) = lower($3) AND name IS NOT NULL "
			      "AND (submitted_ns < $4 OR (submitted_ns = $4 AND id < $5)) "
			      "ORDER BY submitted_ns DESC, id DESC LIMIT $6",
	[PG_JOB_UNNAME] = "UPDATE jobs SET name_group = NULL, name_watcher = NULL, name = NULL "
			  "WHERE account = $1 AND id = $2 AND name IS NOT NULL",
	[PG_JOB_COUNT_STATUS] = "SELECT account, status, count(*) FROM jobs GROUP BY account, status "
				"ORDER BY account, status",
	[PG_JOB_COUNT_STATUS_ACCOUNT] = "SELECT account, status, count(*) FROM jobs WHERE account = $1 "
					"GROUP BY account, status ORDER BY account, status",
	[PG_PART_INSERT] =
		"INSERT INTO parts (" DB_PART_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
	[PG_PART_UPSERT] =
		"INSERT INTO parts (" DB_PART_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
		"ON CONFLICT (job_id, agent) DO UPDATE SET state = excluded.state, "
		"packets = excluded.packets, bytes = excluded.bytes, drops = excluded.drops, "
		"stop_reason = excluded.stop_reason, object = excluded.object, error = excluded.error, "
		"updated_ns = excluded.updated_ns, failure = excluded.failure, attempt = excluded.attempt",
	[PG_PART_LIST] = "SELECT " DB_PART_COLS " FROM parts WHERE job_id = $1 ORDER BY agent",
	[PG_PART_LIST_AGENT] = "SELECT " DB_PART_COLS " FROM parts WHERE agent = $1 AND state NOT IN (4, 5, 6, 7) "
			       "ORDER BY job_id",
	[PG_PART_GET] = "SELECT " DB_PART_COLS " FROM parts WHERE job_id = $1 AND agent = $2",
	[PG_PART_TALLY] = "SELECT " TALLY_COLS " FROM parts WHERE job_id = $1 GROUP BY state",
	/* Run after PG_ACCOUNT_LOCK in one transaction (db_bucket_insert):
	 * nothing is inserted at $10 buckets (0 = no limit). */
	[PG_BUCKET_INSERT] =
		"INSERT INTO buckets (" DB_BUCKET_COLS ") SELECT $1::text, $2::text, $3::text, $4::text, "
		"$5::text, $6::integer, $7::bigint, $8::bigint, $9::text "
		"WHERE $10::bigint = 0 OR (SELECT count(*) FROM buckets WHERE account = $2::text) < $10::bigint",
	[PG_BUCKET_GET] = "SELECT " DB_BUCKET_COLS " FROM buckets WHERE id = $2 AND account = $1",
	[PG_BUCKET_FIND] = "SELECT " DB_BUCKET_COLS " FROM buckets WHERE account = $1 AND match_key = $2",
	[PG_BUCKET_LIST] = "SELECT " DB_BUCKET_COLS " FROM buckets WHERE account = $1 "
			   "ORDER BY submitted_ns DESC, id DESC",
	[PG_BUCKET_UPDATE] = "UPDATE buckets SET status = $3, validated_ns = $4 WHERE account = $1 AND id = $2",
	[PG_BUCKET_DELETE] = "DELETE FROM buckets WHERE account = $1 AND id = $2",
	[PG_BUCKET_OWNER] = "SELECT account FROM buckets WHERE match_key = $2 AND account != $1 AND status = 1 "
			    "AND NOT EXISTS (SELECT 1 FROM bucket_shares s WHERE s.bucket_id = buckets.id "
			    "AND s.account = $1) ORDER BY validated_ns LIMIT 1",
	[PG_BUCKET_SHARE] = "INSERT INTO bucket_shares (bucket_id, account) VALUES ($1, $2) ON CONFLICT DO NOTHING",
	[PG_AGENT_UPSERT] = "INSERT INTO agents (" DB_AGENT_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
			    "ON CONFLICT (name) DO UPDATE SET colo = excluded.colo, interfaces = excluded.interfaces, "
			    "version = excluded.version, last_seen_ns = excluded.last_seen_ns, "
			    "account = excluded.account, history = coalesce(excluded.history, agents.history)",
	[PG_AGENT_LIST] = "SELECT " DB_AGENT_COLS " FROM agents ORDER BY name",
	/* One source row per agent (an UPDATE applies one of several matches,
	 * any): its newest beat, and the last history given, in array order. */
	[PG_AGENT_BEATS] =
		"UPDATE agents SET last_seen_ns = greatest(agents.last_seen_ns, b.seen), "
		"history = coalesce(b.history, agents.history) "
		"FROM (SELECT name, max(seen) AS seen, (array_agg(history ORDER BY i DESC) "
		"FILTER (WHERE history IS NOT NULL))[1] AS history "
		"FROM unnest($1::text[], $2::bigint[], $3::text[]) WITH ORDINALITY AS u(name, seen, history, i) "
		"GROUP BY name) AS b "
		"WHERE agents.name = b.name AND agents.last_seen_ns > 0",
	[PG_ENROLL_ADD] = "INSERT INTO enroll_tokens (hash, account, name_pattern, colo, expires_ns, created_ns) "
			  "VALUES ($1, $2, $3, $4, $5, $6)",
	[PG_ENROLL_FIND] = "SELECT " DB_ENROLL_COLS " FROM enroll_tokens WHERE hash = $1",
	/* As for buckets, after PG_ACCOUNT_LOCK: nothing is inserted at $6
	 * agents of the account (0 = no limit; operator agents, account NULL,
	 * are not counted). */
	[PG_KEY_ADD] = "INSERT INTO agent_keys (name, hash, account, colo, enrolled_ns) SELECT $1::text, $2::bytea, "
		       "$3::text, $4::text, $5::bigint WHERE $6::bigint = 0 OR $3::text IS NULL "
		       "OR (SELECT count(*) FROM agent_keys WHERE account = $3::text) < $6::bigint",
	[PG_KEY_FIND] = "SELECT " DB_KEY_COLS " FROM agent_keys WHERE hash = $1",
	[PG_KEY_GET] = "SELECT " DB_KEY_COLS " FROM agent_keys WHERE name = $1",
	[PG_KEY_DELETE] = "DELETE FROM agent_keys WHERE name = $1",
	[PG_SAMPLE_PUT] = "INSERT INTO samples (job_id, agent, pcap) VALUES ($1, $2, $3)",
	[PG_SAMPLE_GET] = "SELECT pcap FROM samples WHERE job_id = $1 AND agent = $2",
	[PG_NOTIFY] = "SELECT pg_notify('pcapd', $1)",
};

static const char *or_null(const char *s)
{
	return s && s[0] ? s : NULL;
}

static PgParams params1(const char *a)
{
	PgParams p = {0};

	dbp_text(&p, a);
	return p;
}

static PgParams params2(const char *a, const char *b)
{
	PgParams p = params1(a);

	dbp_text(&p, b);
	return p;
}

/* Runs statement id, after locking account's row, in one transaction: the
 * limited inserts. *ret_changed: the rows it inserted. */
static int insert_locked(Db *db, const char *account, PgStmtId id, const PgParams *p, const char *what,
			 uint64_t *ret_changed, ErrBuf *err)
{
	PgParams lp = params1(account);
	PgConn *c;
	int r;

	r = dbp_conn(db, &c, err);
	if (r < 0)
		return r;
	r = dbp_begin(c, err);
	if (r < 0)
		return r;
	r = dbp_run(c, PG_ACCOUNT_LOCK, &lp, "locking the account", NULL, NULL, err);
	if (r == 0)
		r = dbp_run(c, id, p, what, NULL, ret_changed, err);
	if (r == 0)
		r = dbp_commit(c, err);
	if (r < 0)
		dbp_rollback(c);
	return r;
}

/* ---- accounts and credentials ---- */

static int pg_account_ensure(Db *db, const char *account, ErrBuf *err)
{
	PgParams p;

	if (!account || !*account)
		return errbuf_set(err, -EINVAL, "db: empty account id");
	p = params1(account);
	dbp_i64(&p, (int64_t)now_realtime_ns());
	return dbp_exec(db, PG_ACCOUNT_ENSURE, &p, "storing an account", NULL, NULL, err);
}

static bool pg_account_exists(Db *db, const char *account)
{
	PgParams p = params1(account);
	PGresult *res = NULL;
	bool found;

	if (!account || dbp_exec(db, PG_ACCOUNT_EXISTS, &p, "looking up an account", &res, NULL, NULL) < 0)
		return false;
	found = PQntuples(res) > 0;
	PQclear(res);
	return found;
}

static int pg_credential_add(Db *db, const uint8_t hash[32], const char *email, const char *account, TokenScope scope,
			     ErrBuf *err)
{
	PgParams p = {0};
	int r;

	if (scope < SCOPE_READ || scope > SCOPE_AGENT)
		return errbuf_set(err, -EINVAL, "db: invalid token scope %d", (int)scope);
	if (!account || (email && !*email))
		return errbuf_set(err, -EINVAL, "db: a credential needs an account (and a non-empty email, if any)");
	dbp_hash(&p, hash);
	dbp_text(&p, email);
	dbp_text(&p, account);
	dbp_i64(&p, (int64_t)scope);
	dbp_i64(&p, (int64_t)now_realtime_ns());
	r = dbp_exec(db, PG_CRED_ADD, &p, "storing a credential", NULL, NULL, err);
	if (r == -EEXIST)
		return errbuf_set(err, r, "db: this credential exists already");
	if (r == -ENOENT)
		return errbuf_set(err, r, "db: account %s does not exist", account);
	return r;
}

/* (account, scope) of a credential. */
typedef struct CredRow {
	char account[JOB_ID_LEN + 1];
	int64_t scope;
} CredRow;

static int row_cred(const DbRow *row, void *ret)
{
	CredRow *c = ret;
	int r = dbr_fixed(row, 0, c->account, sizeof(c->account));

	return r < 0 ? r : row->i64(row, 1, &c->scope);
}

static const RowKind cred_rows = {.size = sizeof(CredRow),
				  .read = row_cred,
				  .name = "credential",
				  .a_name = "a credential",
				  .reading = "looking up a credential"};

static int pg_credential_find(Db *db, const uint8_t hash[32], const char *email, char ret_account[JOB_ID_LEN + 1],
			      TokenScope *ret_scope, ErrBuf *err)
{
	PgParams p = {0};
	CredRow c;
	int r;

	dbp_hash(&p, hash);
	dbp_text(&p, email);
	r = dbp_get_row(db, PG_CRED_FIND, &p, &cred_rows, "", &c, err);
	if (r == -ENOENT)
		return errbuf_set(err, r, "db: unknown credential");
	if (r < 0)
		return r;
	memcpy(ret_account, c.account, sizeof(c.account));
	*ret_scope = (TokenScope)c.scope;
	return 0;
}

/* ---- jobs ---- */

/* outputs: j's outputs as job_outputs_to_text() wrote them (NULL: none). */
static void job_params(PgParams *p, const Job *j, const char *outputs)
{
	const JobContinuous *c = &j->continuous;

	dbp_text(p, j->id);
	dbp_text(p, j->account);
	dbp_i64(p, (int64_t)j->type);
	dbp_i64(p, (int64_t)j->status);
	dbp_text(p, j->filter_json);
	dbp_i64(p, j->time_limit_s);
	dbp_i64(p, j->packet_limit);
	dbp_u64(p, j->byte_limit);
	dbp_text(p, j->colo_name);
	dbp_text(p, outputs);
	dbp_i64(p, j->offset_time_ns);
	dbp_i64(p, j->submitted_ns);
	dbp_i64(p, j->stop_requested_ns);
	dbp_i64(p, (int64_t)j->stop_reason);
	dbp_text(p, j->error_message);
	dbp_u64(p, j->packets);
	dbp_u64(p, j->bytes);
	dbp_u64(p, j->drops);
	dbp_i64(p, j->finished_ns);
	dbp_text(p, j->filter_model);
	dbp_i64(p, j->snaplen);
	dbp_i64(p, c->on ? (c->ring ? 2 : 1) : 0);
	dbp_i64(p, c->file_count);
	dbp_u64(p, c->file_size);
	dbp_i64(p, c->session_limit_s);
	dbp_i64(p, j->started_ns);
	dbp_text(p, j->name.group);
	dbp_text(p, j->name.watcher);
	dbp_text(p, j->name.name);
	dbp_text(p, j->request);
	dbp_text(p, j->echo_json);
}

static void part_params(PgParams *p, const JobPart *part)
{
	dbp_text(p, part->job_id);
	dbp_text(p, part->agent);
	dbp_i64(p, (int64_t)part->state);
	dbp_u64(p, part->packets);
	dbp_u64(p, part->bytes);
	dbp_u64(p, part->drops);
	dbp_i64(p, (int64_t)part->stop_reason);
	dbp_text(p, part->object);
	dbp_text(p, part->error);
	dbp_i64(p, part->updated_ns);
	dbp_i64(p, (int64_t)part->failure);
	dbp_i64(p, (int64_t)part->attempt);
}

/* dbr_check_limits's queries, on this connection. */
static int limit_query(void *ctx, DbLimitQuery q, const char *account, bool *ret_found, int64_t *ret, ErrBuf *err)
{
	static const struct {
		PgStmtId id;
		const char *what;
	} qs[] = {
		[DB_LQ_ACTIVE_FULL] = {PG_JOB_COUNT_ACTIVE_FULL, "counting active captures"},
		[DB_LQ_ACTIVE_FULL_END] = {PG_JOB_ACTIVE_FULL_END, "finding when active captures end"},
		[DB_LQ_LAST_SIMPLE] = {PG_JOB_LAST_SIMPLE, "finding the last sample capture"},
	};
	PgParams p = params1(account);

	return dbp_query_i64(ctx, qs[q].id, &p, qs[q].what, ret_found, ret, err);
}

/* Inserts (or with upsert, writes) parts of job j inside a transaction. */
static int write_parts(PgConn *c, const Job *j, const JobPart *parts, size_t n, bool upsert, ErrBuf *err)
{
	for (size_t i = 0; i < n; i++) {
		PgParams p = {0};
		int r;

		if (strcmp(parts[i].job_id, j->id) != 0)
			return errbuf_set(err, -EINVAL, "db: part %zu belongs to job %s, not %s", i, parts[i].job_id,
					  j->id);
		part_params(&p, &parts[i]);
		r = dbp_run(c, upsert ? PG_PART_UPSERT : PG_PART_INSERT, &p, "storing a part", NULL, NULL, err);
		if (r == -EEXIST)
			return errbuf_set(err, r, "db: job %s lists agent %s twice", j->id, parts[i].agent);
		if (r < 0)
			return r;
	}
	return 0;
}

static int pg_job_insert(Db *db, const Job *j, const JobPart *parts, size_t n, const JobLimits *lim,
			 int64_t *ret_after_ns, ErrBuf *err)
{
	int64_t after_ns = 0;
	char *outputs = NULL;
	PgParams p = {0};
	PgConn *c;
	int r;

	r = dbp_conn(db, &c, err);
	if (r < 0)
		return r;
	if (job_outputs_to_text(j, &outputs) < 0)
		return errbuf_set(err, -ENOMEM, "db: out of memory");
	r = dbp_begin(c, err);
	if (r < 0)
		goto out;
	if (lim) {
		/* Every writer's insert for this account waits here for the
		 * one before it to commit, then counts what it left. */
		PgParams lp = params1(j->account);

		r = dbp_run(c, PG_ACCOUNT_LOCK, &lp, "locking the account", NULL, NULL, err);
		if (r == 0)
			r = dbr_check_limits(j, lim, limit_query, c, &after_ns, err);
		if (r == -EBUSY && ret_after_ns)
			*ret_after_ns = after_ns;
		if (r < 0)
			goto rollback;
	}
	job_params(&p, j, outputs);
	r = dbp_run(c, PG_JOB_INSERT, &p, "storing a job", NULL, NULL, err);
	if (r == -EEXIST && job_named(j))
		errbuf_set(err, r, "db: the account has a capture named %s in %s/%s already", j->name.name,
			   j->name.group, j->name.watcher);
	else if (r == -EEXIST)
		errbuf_set(err, r, "db: job %s exists already", j->id);
	else if (r == -ENOENT)
		errbuf_set(err, r, "db: account %s does not exist", j->account);
	if (r == 0)
		r = write_parts(c, j, parts, n, false, err);
	if (r == 0)
		r = dbp_commit(c, err);
rollback:
	if (r < 0)
		dbp_rollback(c);
out:
	free(outputs);
	return r;
}

static int pg_job_get(Db *db, const char *account, const char *id, Job *ret, ErrBuf *err)
{
	PgParams p = params2(id, account);

	if (!account)
		p.n = 1;
	return dbp_get_row(db, account ? PG_JOB_GET : PG_JOB_GET_ANY, &p, &dbr_jobs, id, ret, err);
}

static int64_t clamp_i64(size_t v)
{
	return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

static int pg_job_list(Db *db, const char *account, size_t offset, size_t limit, Job **ret, size_t *ret_n,
		       uint64_t *ret_total, ErrBuf *err)
{
	PgParams p = params1(account), cp = params1(account);
	Job *v = NULL;
	size_t n = 0;
	int64_t total = 0;
	bool found = false;
	PgConn *c;
	int r;

	r = dbp_conn(db, &c, err);
	if (r < 0)
		return r;
	/* One snapshot: the page and the total count the same jobs. */
	r = dbp_run(c, PG_BEGIN_READ, NULL, "starting a read", NULL, NULL, err);
	if (r < 0)
		return r;
	dbp_i64(&p, clamp_i64(limit));
	dbp_i64(&p, clamp_i64(offset));
	r = dbp_list_rows_c(c, PG_JOB_LIST, &p, &dbr_jobs, (void **)&v, &n, err);
	if (r == 0 && ret_total)
		r = dbp_query_i64(c, PG_JOB_COUNT, &cp, "counting jobs", &found, &total, err);
	if (r == 0)
		r = dbp_commit(c, err);
	if (r < 0) {
		dbp_rollback(c);
		jobs_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	if (ret_total)
		*ret_total = found && total > 0 ? (uint64_t)total : 0;
	return 0;
}

static int pg_job_list_active(Db *db, Job **ret, size_t *ret_n, ErrBuf *err)
{
	return dbp_list_rows(db, PG_JOB_LIST_ACTIVE, NULL, &dbr_jobs, (void **)ret, ret_n, err);
}

/* PG_JOB_UPDATE's parameters: the job's mutable fields and its parts' tally
 * (NULL: not known). */
static void job_update_params(PgParams *p, const Job *j, const char *tally)
{
	*p = params2(j->id, j->account);
	dbp_i64(p, (int64_t)j->status);
	dbp_i64(p, j->stop_requested_ns);
	dbp_i64(p, (int64_t)j->stop_reason);
	dbp_text(p, j->error_message);
	dbp_u64(p, j->packets);
	dbp_u64(p, j->bytes);
	dbp_u64(p, j->drops);
	dbp_i64(p, j->finished_ns);
	dbp_i64(p, j->started_ns);
	dbp_text(p, tally);
}

static int update_job(PgConn *c, const Job *j, ErrBuf *err)
{
	PgParams p;
	uint64_t n = 0;
	int r;

	job_update_params(&p, j, NULL);
	r = dbp_run(c, PG_JOB_UPDATE, &p, "updating a job", NULL, &n, err);
	if (r == 0 && n == 0)
		r = errbuf_set(err, -ENOENT, "db: no job %s", j->id);
	return r;
}

/* The start of db_job_modify's transaction: this
 * thread's connection, BEGIN, and the job (account NULL: of any account)
 * read with its row locked, so that a second writer of this job waits here
 * until this transaction ends and then reads what it committed. Rolled back
 * on failure. */
static int modify_begin(Db *db, const char *account, const char *id, Job *j, PgConn **ret_c, ErrBuf *err)
{
	PgParams p = params2(id, account);
	PgConn *c;
	int r;

	if (!account)
		p.n = 1;
	r = dbp_conn(db, &c, err);
	if (r < 0)
		return r;
	r = dbp_begin(c, err);
	if (r < 0)
		return r;
	r = dbp_get_row_c(c, account ? PG_JOB_LOCK : PG_JOB_LOCK_ANY, &p, &dbr_jobs, id, j, err);
	if (r < 0) {
		dbp_rollback(c);
		return r;
	}
	*ret_c = c;
	return 0;
}

/* The end of db_job_modify's and db_part_modify's transactions: commits
 * after r == 0 (unless committed already), rolls back otherwise; hands j
 * over to ret_job (may be NULL) on success and frees it. Returns r or the
 * commit's error. */
static int modify_end(PgConn *c, int r, bool committed, Job *j, Job *ret_job, ErrBuf *err)
{
	if (r == 0 && !committed)
		r = dbp_commit(c, err);
	if (r < 0)
		dbp_rollback(c);
	if (r == 0 && ret_job) {
		*ret_job = *j;
		memset(j, 0, sizeof(*j));
	}
	job_done(j);
	return r;
}

static int pg_job_modify(Db *db, const char *account, const char *id, DbJobFn fn, void *arg, Job *ret_job, ErrBuf *err)
{
	PgParams pp = params1(id);
	JobPart *parts = NULL;
	size_t n = 0, w = 0;
	Job j = {0};
	PgConn *c;
	int r;

	r = modify_begin(db, account, id, &j, &c, err);
	if (r < 0)
		return r;
	r = dbp_list_rows_c(c, PG_PART_LIST, &pp, &dbr_parts, (void **)&parts, &n, err);
	if (r == 0)
		r = db_rows_modify(&j, parts, n, fn, arg, &w, err);
	if (r == 1) {
		/* The parts' tally is not kept here: the next db_part_modify
		 * counts them again. */
		r = update_job(c, &j, err);
		if (r == 0)
			r = write_parts(c, &j, parts, w, true, err);
	}
	parts_free(parts, n);
	return modify_end(c, r, false, &j, ret_job, err);
}

/* db_part_modify's transaction, in three round trips: BEGIN, the job's
 * row locked and the part read, sent together; fn (with the sample answer
 * it stores, one more); then the part's write, the job's update and the
 * COMMIT together, when the tally kept in the job's row suffices. Where the
 * parts must be counted or read (db_rows_part_aggregate's callbacks), the
 * part is written first, on its own. */
typedef struct PartTx {
	PgConn *c;
	const char *id;
	const DbJobTally *jt;
	const JobPart *part;
	bool written; /* the part is written already */
} PartTx;

static int part_write_now(PartTx *t, ErrBuf *err)
{
	int r;

	if (t->written)
		return 0;
	r = write_parts(t->c, &t->jt->j, t->part, 1, true, err);
	t->written = r == 0;
	return r;
}

static int count_parts(void *ctx, DbTallyRow **ret, size_t *ret_n, ErrBuf *err)
{
	PartTx *t = ctx;
	PgParams p = params1(t->id);
	int r = part_write_now(t, err);

	return r < 0 ? r : dbp_list_rows_c(t->c, PG_PART_TALLY, &p, &dbr_tally_rows, (void **)ret, ret_n, err);
}

static int list_parts(void *ctx, JobPart **ret, size_t *ret_n, ErrBuf *err)
{
	PartTx *t = ctx;
	PgParams p = params1(t->id);
	int r = part_write_now(t, err);

	return r < 0 ? r : dbp_list_rows_c(t->c, PG_PART_LIST, &p, &dbr_parts, (void **)ret, ret_n, err);
}

/* The answer, the part's write (unless done), the job's update and the
 * COMMIT. */
static int part_tx_commit(PartTx *t, const DbSample *answer, const char *tally, ErrBuf *err)
{
	PgParams pa, pp = {0}, pj;
	PgStep steps[4];
	size_t n = 0;
	int r;

	if (answer) {
		if (answer->n > INT_MAX)
			return errbuf_set(err, -EFBIG, "db: a sample answer of %zu bytes", answer->n);
		pa = params2(t->id, t->part->agent);
		dbp_bytes(&pa, answer->pcap, (int)answer->n);
		steps[n++] = (PgStep){.id = PG_SAMPLE_PUT, .p = &pa, .what = "storing a sample answer"};
	}
	if (!t->written) {
		part_params(&pp, t->part);
		steps[n++] = (PgStep){.id = PG_PART_UPSERT, .p = &pp, .what = "storing a part"};
	}
	job_update_params(&pj, &t->jt->j, tally);
	steps[n++] = (PgStep){.id = PG_JOB_UPDATE, .p = &pj, .what = "updating a job"};
	steps[n++] = (PgStep){.id = PG_COMMIT, .what = "committing"};
	r = dbp_pipeline(t->c, steps, n, err);
	for (size_t i = 0; i < n; i++)
		PQclear(steps[i].res);
	return r;
}

static int pg_part_modify(Db *db, const char *id, const char *agent, DbPartFn fn, void *arg, const DbSample *answer,
			  Job *ret_job, ErrBuf *err)
{
	PgParams pj = params1(id), pp = params2(id, agent);
	PgStep first[] = {{.id = PG_BEGIN, .what = "starting a transaction"},
			  {.id = PG_JOB_LOCK_TALLY, .p = &pj, .what = "reading a job"},
			  {.id = PG_PART_GET, .p = &pp, .what = "reading a part"}};
	JobPart part = {0}, before;
	DbJobTally jt = {0};
	PartTx t = {.id = id, .jt = &jt, .part = &part};
	char text[DB_TALLY_TEXT_MAX];
	bool found = false, committed = false;
	ErrBuf none;
	int r;

	r = dbp_conn(db, &t.c, err);
	if (r < 0)
		return r;
	r = dbp_pipeline(t.c, first, ARRAY_SIZE(first), err);
	if (r == 0)
		r = dbp_res_row(first[1].res, &dbr_jobs_tally, id, &jt, err);
	if (r == 0) {
		r = dbp_res_row(first[2].res, &dbr_parts, agent, &part, &none);
		found = r == 0;
		if (r == -ENOENT)
			r = 0;
		else if (r < 0)
			*err = none;
	}
	for (size_t i = 0; i < ARRAY_SIZE(first); i++)
		PQclear(first[i].res);
	/* What the stored tally counted of it (fn may free its strings). */
	before = (JobPart){.state = part.state, .packets = part.packets, .bytes = part.bytes, .drops = part.drops};
	/* fn has nothing to change without a part. */
	if (r == 0 && fn(&jt.j, found ? &part : NULL, arg) && found) {
		r = db_rows_part_aggregate(&jt, &before, &part, count_parts, list_parts, &t, err);
		if (r == 0)
			r = part_tx_commit(&t, answer, dbr_tally_text(&jt, text), err);
		committed = r == 0;
	}
	part_done(&part);
	return modify_end(t.c, r, committed, &jt.j, ret_job, err);
}

static int pg_job_find_named(Db *db, const char *account, const JobName *n, Job *ret, ErrBuf *err)
{
	PgParams p = params2(account, n->group);

	dbp_text(&p, n->watcher);
	dbp_text(&p, n->name);
	return dbp_get_row(db, PG_JOB_FIND_NAMED, &p, &dbr_jobs, n->name, ret, err);
}

static int pg_job_list_named(Db *db, const char *account, const char *group, const char *watcher,
			     const JobCursor *after, size_t limit, Job **ret, size_t *ret_n, ErrBuf *err)
{
	PgParams p = params2(account, group);

	dbp_text(&p, watcher);
	/* No cursor: everything before the end of time. */
	dbp_i64(&p, after ? after->submitted_ns : INT64_MAX);
	dbp_text(&p, after ? after->id : "~");
	dbp_i64(&p, clamp_i64(limit));
	return dbp_list_rows(db, PG_JOB_LIST_NAMED, &p, &dbr_jobs, (void **)ret, ret_n, err);
}

static int pg_job_unname(Db *db, const char *account, const char *id, ErrBuf *err)
{
	PgParams p = params2(account, id);

	return dbp_exec_one(db, PG_JOB_UNNAME, &p, "removing a capture's name", "named job", id, err);
}

static int pg_job_count_by_status(Db *db, const char *account, JobStatusCount **ret, size_t *ret_n, ErrBuf *err)
{
	PgParams p = params1(account);

	return dbp_list_rows(db, account ? PG_JOB_COUNT_STATUS_ACCOUNT : PG_JOB_COUNT_STATUS, account ? &p : NULL,
			     &dbr_status_counts, (void **)ret, ret_n, err);
}

static int pg_part_list(Db *db, const char *job_id, JobPart **ret, size_t *ret_n, ErrBuf *err)
{
	PgParams p = params1(job_id);

	return dbp_list_rows(db, PG_PART_LIST, &p, &dbr_parts, (void **)ret, ret_n, err);
}

static int pg_part_list_for_agent(Db *db, const char *agent, JobPart **ret, size_t *ret_n, ErrBuf *err)
{
	PgParams p = params1(agent);

	return dbp_list_rows(db, PG_PART_LIST_AGENT, &p, &dbr_parts, (void **)ret, ret_n, err);
}

/* ---- buckets ---- */

static int pg_bucket_insert(Db *db, const BucketRow *b, size_t max_per_account, ErrBuf *err)
{
	PgParams p = params2(b->id, b->account);
	uint64_t n = 0;
	int r;

	if (!b->destination_conf || !b->match_key)
		return errbuf_set(err, -EINVAL, "db: a bucket needs a destination_conf and its identity");
	dbp_text(&p, b->destination_conf);
	dbp_text(&p, b->filename);
	dbp_text(&p, b->challenge);
	dbp_i64(&p, (int64_t)b->status);
	dbp_i64(&p, b->submitted_ns);
	dbp_i64(&p, b->validated_ns);
	dbp_text(&p, b->match_key);
	dbp_u64(&p, max_per_account);
	r = insert_locked(db, b->account, PG_BUCKET_INSERT, &p, "storing a bucket", &n, err);
	if (r == -EEXIST)
		return errbuf_set(err, r, "db: bucket %s or its identity exists already", b->id);
	if (r == -ENOENT)
		return errbuf_set(err, r, "db: account %s does not exist", b->account);
	if (r == 0 && n == 0)
		return errbuf_set(err, -EDQUOT, "db: account %s has %zu buckets already", b->account, max_per_account);
	return r;
}

static int pg_bucket_get(Db *db, const char *account, const char *id, BucketRow *ret, ErrBuf *err)
{
	PgParams p = params2(account, id);

	return dbp_get_row(db, PG_BUCKET_GET, &p, &dbr_buckets, id, ret, err);
}

static int pg_bucket_find(Db *db, const char *account, const char *match_key, BucketRow *ret, ErrBuf *err)
{
	PgParams p = params2(account, match_key);

	return dbp_get_row(db, PG_BUCKET_FIND, &p, &dbr_buckets, match_key, ret, err);
}

static int pg_bucket_list(Db *db, const char *account, BucketRow **ret, size_t *ret_n, ErrBuf *err)
{
	PgParams p = params1(account);

	return dbp_list_rows(db, PG_BUCKET_LIST, &p, &dbr_buckets, (void **)ret, ret_n, err);
}

static int pg_bucket_update(Db *db, const BucketRow *b, ErrBuf *err)
{
	PgParams p = params2(b->account, b->id);

	dbp_i64(&p, (int64_t)b->status);
	dbp_i64(&p, b->validated_ns);
	return dbp_exec_one(db, PG_BUCKET_UPDATE, &p, "updating a bucket", "bucket", b->id, err);
}

static int pg_bucket_delete(Db *db, const char *account, const char *id, ErrBuf *err)
{
	PgParams p = params2(account, id);

	return dbp_exec_one(db, PG_BUCKET_DELETE, &p, "deleting a bucket", "bucket", id, err);
}

static int pg_bucket_share(Db *db, const char *bucket_id, const char *account, ErrBuf *err)
{
	PgParams p = params2(bucket_id, account);
	int r = dbp_exec(db, PG_BUCKET_SHARE, &p, "storing a bucket share", NULL, NULL, err);

	if (r == -ENOENT)
		return errbuf_set(err, r, "db: no bucket %s or no account %s", bucket_id, account);
	return r;
}

static int pg_bucket_owned_elsewhere(Db *db, const char *account, const char *match_key, char *ret_owner, ErrBuf *err)
{
	PgParams p = params2(account, match_key);
	int r = dbp_get_row(db, PG_BUCKET_OWNER, &p, &dbr_owners, match_key, ret_owner, err);

	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

/* ---- agents ---- */

static int pg_agent_upsert(Db *db, const AgentRow *a, ErrBuf *err)
{
	PgParams p = params2(a->name, a->colo);

	if (!a->name[0])
		return errbuf_set(err, -EINVAL, "db: an agent needs a name");
	dbp_text(&p, a->interfaces);
	dbp_text(&p, a->version);
	dbp_i64(&p, a->first_seen_ns);
	dbp_i64(&p, a->last_seen_ns);
	dbp_text(&p, a->account);
	dbp_text(&p, a->history);
	return dbp_exec(db, PG_AGENT_UPSERT, &p, "storing an agent", NULL, NULL, err);
}

static int pg_agent_list(Db *db, AgentRow **ret, size_t *ret_n, ErrBuf *err)
{
	return dbp_list_rows(db, PG_AGENT_LIST, NULL, &dbr_agents, (void **)ret, ret_n, err);
}

/* ---- sample answers ---- */

/* Appends s to a PostgreSQL array literal: quoted, `"` and `\` escaped;
 * NULL as NULL. -ENOMEM. */
static int array_add(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t need = *len + 2 + (s ? 2 * strlen(s) + 2 : 4) + 1;

	if (need > *cap) {
		size_t c = *cap ? *cap : 4096;
		char *p;

		while (c < need)
			c *= 2;
		p = realloc(*buf, c);
		if (!p)
			return -ENOMEM;
		*buf = p;
		*cap = c;
	}
	if (*len)
		(*buf)[(*len)++] = ',';
	if (!s) {
		memcpy(*buf + *len, "NULL", 4);
		*len += 4;
	} else {
		(*buf)[(*len)++] = '"';
		for (; *s; s++) {
			if (*s == '"' || *s == '\\')
				(*buf)[(*len)++] = '\\';
			(*buf)[(*len)++] = *s;
		}
		(*buf)[(*len)++] = '"';
	}
	(*buf)[*len] = '\0';
	return 0;
}

/* The three arrays as literals ({...}) into a[0..2]; -ENOMEM. */
static int beats_arrays(const AgentBeat *v, size_t n, char *a[3])
{
	size_t len[3] = {0}, cap[3] = {0};
	int r = 0;

	for (size_t i = 0; r == 0 && i < n; i++) {
		char seen[24];

		snprintf(seen, sizeof(seen), "%lld", (long long)v[i].seen_ns);
		r = array_add(&a[0], &len[0], &cap[0], v[i].name);
		if (r == 0)
			r = array_add(&a[1], &len[1], &cap[1], seen);
		if (r == 0)
			r = array_add(&a[2], &len[2], &cap[2], v[i].history);
	}
	for (int k = 0; r == 0 && k < 3; k++) {
		char *p = malloc(len[k] + 3);

		if (!p) {
			r = -ENOMEM;
			break;
		}
		p[0] = '{';
		memcpy(p + 1, a[k], len[k]);
		memcpy(p + 1 + len[k], "}", 2);
		free(a[k]);
		a[k] = p;
	}
	return r;
}

static int pg_agent_beats(Db *db, const AgentBeat *v, size_t n, ErrBuf *err)
{
	char *a[3] = {NULL, NULL, NULL};
	PgParams p = {0};
	int r = beats_arrays(v, n, a);

	if (r < 0)
		r = errbuf_set(err, r, "db: out of memory");
	if (r == 0) {
		dbp_text(&p, a[0]);
		dbp_text(&p, a[1]);
		dbp_text(&p, a[2]);
		r = dbp_exec(db, PG_AGENT_BEATS, &p, "storing agents' heartbeats", NULL, NULL, err);
	}
	for (int k = 0; k < 3; k++)
		free(a[k]);
	return r;
}

static int pg_sample_put(Db *db, const char *job_id, const char *agent, const uint8_t *pcap, size_t n, ErrBuf *err)
{
	PgParams p = params2(job_id, agent);
	int r;

	if (n > INT_MAX)
		return errbuf_set(err, -EFBIG, "db: a sample answer of %zu bytes", n);
	dbp_bytes(&p, pcap, (int)n);
	r = dbp_exec(db, PG_SAMPLE_PUT, &p, "storing a sample answer", NULL, NULL, err);
	if (r == -EEXIST)
		return errbuf_set(err, r, "db: agent %s answered sample %s already", agent, job_id);
	if (r == -ENOENT)
		return errbuf_set(err, r, "db: no job %s", job_id);
	return r;
}

static int pg_sample_get(Db *db, const char *job_id, const char *agent, uint8_t **ret, size_t *ret_n, ErrBuf *err)
{
	PgParams p = params2(job_id, agent);
	PGresult *res = NULL;
	unsigned char *raw;
	uint8_t *v = NULL;
	size_t n = 0;
	int r;

	r = dbp_exec(db, PG_SAMPLE_GET, &p, "reading a sample answer", &res, NULL, err);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return errbuf_set(err, -ENOENT, "db: no answer of agent %s to sample %s", agent, job_id);
	}
	/* Results come as text: bytea in its escaped form. */
	raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 0), &n);
	PQclear(res);
	if (raw)
		v = malloc(n ? n : 1);
	if (v && n)
		memcpy(v, raw, n);
	PQfreemem(raw);
	if (!v)
		return errbuf_set(err, -ENOMEM, "db: out of memory");
	*ret = v;
	*ret_n = n;
	return 0;
}

/* ---- notices ---- */

static int pg_notify(Db *db, const char *text, ErrBuf *err)
{
	PgParams p = params1(text);

	return dbp_exec(db, PG_NOTIFY, &p, "sending a notice", NULL, NULL, err);
}

/* ---- enrolment (an empty account, pattern or colo is stored as NULL) ---- */

static int pg_enroll_token_add(Db *db, const uint8_t hash[32], const EnrollToken *t, ErrBuf *err)
{
	PgParams p = {0};
	int r;

	dbp_hash(&p, hash);
	dbp_text(&p, or_null(t->account));
	dbp_text(&p, or_null(t->name_pattern));
	dbp_text(&p, or_null(t->colo));
	dbp_i64(&p, t->expires_ns);
	dbp_i64(&p, (int64_t)now_realtime_ns());
	r = dbp_exec(db, PG_ENROLL_ADD, &p, "storing an enrolment token", NULL, NULL, err);
	if (r == -EEXIST)
		return errbuf_set(err, r, "db: this enrolment token exists already");
	if (r == -ENOENT)
		return errbuf_set(err, r, "db: account %s does not exist", t->account);
	return r;
}

static int pg_enroll_token_find(Db *db, const uint8_t hash[32], EnrollToken *ret, ErrBuf *err)
{
	PgParams p = {0};

	dbp_hash(&p, hash);
	return dbp_get_row(db, PG_ENROLL_FIND, &p, &dbr_enroll_tokens, "(by hash)", ret, err);
}

static int pg_agent_key_add(Db *db, const uint8_t hash[32], const AgentKey *k, size_t max_per_account, ErrBuf *err)
{
	PgParams p = params1(k->name);
	uint64_t n = 0;
	int r;

	if (!k->name[0])
		return errbuf_set(err, -EINVAL, "db: an agent key needs a name");
	dbp_hash(&p, hash);
	dbp_text(&p, or_null(k->account));
	dbp_text(&p, or_null(k->colo));
	dbp_i64(&p, k->enrolled_ns);
	dbp_u64(&p, max_per_account);
	if (max_per_account > 0 && or_null(k->account))
		r = insert_locked(db, k->account, PG_KEY_ADD, &p, "storing an agent key", &n, err);
	else
		r = dbp_exec(db, PG_KEY_ADD, &p, "storing an agent key", NULL, &n, err);
	if (r == -EEXIST)
		return errbuf_set(err, r, "db: agent %s is enrolled already", k->name);
	if (r == -ENOENT)
		return errbuf_set(err, r, "db: account %s does not exist", k->account);
	if (r == 0 && n == 0)
		return errbuf_set(err, -EDQUOT, "db: account %s has %zu agents already", k->account, max_per_account);
	return r;
}

static int pg_agent_key_find(Db *db, const uint8_t hash[32], AgentKey *ret, ErrBuf *err)
{
	PgParams p = {0};

	dbp_hash(&p, hash);
	return dbp_get_row(db, PG_KEY_FIND, &p, &dbr_agent_keys, "(by hash)", ret, err);
}

static int pg_agent_key_get(Db *db, const char *name, AgentKey *ret, ErrBuf *err)
{
	PgParams p = params1(name);

	return dbp_get_row(db, PG_KEY_GET, &p, &dbr_agent_keys, name, ret, err);
}

static int pg_agent_key_delete(Db *db, const char *name, ErrBuf *err)
{
	PgParams p = params1(name);

	return dbp_exec_one(db, PG_KEY_DELETE, &p, "deleting an agent key", "agent", name, err);
}

const DbOps dbp_ops = {
	.close = dbp_close,
	.account_ensure = pg_account_ensure,
	.account_exists = pg_account_exists,
	.credential_add = pg_credential_add,
	.credential_find = pg_credential_find,
	.job_insert = pg_job_insert,
	.job_get = pg_job_get,
	.job_list = pg_job_list,
	.job_list_active = pg_job_list_active,
	.job_modify = pg_job_modify,
	.part_modify = pg_part_modify,
	.job_find_named = pg_job_find_named,
	.job_list_named = pg_job_list_named,
	.job_unname = pg_job_unname,
	.job_count_by_status = pg_job_count_by_status,
	.part_list = pg_part_list,
	.part_list_for_agent = pg_part_list_for_agent,
	.bucket_insert = pg_bucket_insert,
	.bucket_get = pg_bucket_get,
	.bucket_find = pg_bucket_find,
	.bucket_list = pg_bucket_list,
	.bucket_update = pg_bucket_update,
	.bucket_delete = pg_bucket_delete,
	.bucket_share = pg_bucket_share,
	.bucket_owned_elsewhere = pg_bucket_owned_elsewhere,
	.sample_put = pg_sample_put,
	.sample_get = pg_sample_get,
	.notify = pg_notify,
	.watch_open = dbp_watch_open,
	.agent_upsert = pg_agent_upsert,
	.agent_beats = pg_agent_beats,
	.agent_list = pg_agent_list,
	.enroll_token_add = pg_enroll_token_add,
	.enroll_token_find = pg_enroll_token_find,
	.agent_key_add = pg_agent_key_add,
	.agent_key_find = pg_agent_key_find,
	.agent_key_get = pg_agent_key_get,
	.agent_key_delete = pg_agent_key_delete,
};

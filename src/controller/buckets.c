/* SPDX-License-Identifier: MIT */
/*
 * Bucket ownership (see service.h): before a full capture may write into a
 * bucket, its account registers the bucket's URI, the controller writes a
 * challenge file with a random token into it, and the user proves they can
 * read the bucket by sending the token (or the file's name) back.
 *
 * The challenge file is named after the bucket's id (as in Cloudflare's
 * example) and written under the URI's prefix; the token inside is a
 * second, independent random value. The row is what counts: files are
 * written before it and removed after it, best effort, so no row ever
 * points at a challenge that was not written. A bucket the controller
 * cannot write (wrong keys, no such bucket, the store away) is refused at
 * registration with the store's answer; validation reads the file back, so
 * a bucket is only validated while the controller can still read it.
 *
 * Which bucket a destination_conf means: its identity
 * (bucket_uri_match_key), the URI without credentials. The URI as
 * registered, with its keys, stays in the row (the database is the
 * controller's user's alone); any spelling of the same bucket, with or
 * without keys or REDACTED, finds that row, and a second registration of
 * one identity is refused (a unique index on the account and the
 * identity). A bucket serves the account that validated it first, and those
 * it shares it with: another account's registration or validation of the
 * same identity, with credentials of its own or none, is refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket/bucket_uri.h"
#include "controller/service-int.h"

#define CHALLENGE_PREFIX "ownership-challenge-"
#define CHALLENGE_MAX 4096u /* bound of a challenge file read back */

static const char *trim_space(const char *s, size_t *n);

/* Opens the bucket at uri; a failure is the client's (a path outside the
 * bucket root, an unwritable directory), so it names the field. */
static int open_bucket(Service *s, const char *uri, Bucket **ret, ApiError *e)
{
	ErrBuf err = {{0}};
	int r;

	r = bucket_open(uri, service_buckets(s), ret, &err);
	if (r < 0) /* bucket.h words its messages with Cloudflare's name for the field */
		apierror_with_field(e, API_ERR_INVALID, "destination", "destination_conf", err.msg);
	return r < 0 ? apierror_errno(API_ERR_INVALID) : 0;
}

int service_bucket_uri(const char *uri, char ret[BUCKET_URI_MAX + 1], char ret_key[BUCKET_URI_MAX + 1], ApiError *e)
{
	ErrBuf err = {{0}};
	int r = bucket_uri_normalize(uri, ret, BUCKET_URI_MAX + 1, &err);

	if (r == 0 && ret_key)
		r = bucket_uri_match_key(ret, strlen(ret), ret_key, BUCKET_URI_MAX + 1, &err);
	if (r < 0) /* bucket.h words its messages with Cloudflare's name for the field */
		return apierror_with_field(e, API_ERR_INVALID, "destination", "destination_conf", err.msg);
	return 0;
}

int service_bucket_find(Service *s, const char *account, const char *given, BucketRow *ret, ApiError *e)
{
	char uri[BUCKET_URI_MAX + 1], key[BUCKET_URI_MAX + 1];
	ErrBuf err = {{0}};
	int r;

	r = service_bucket_uri(given, uri, key, e);
	if (r < 0)
		return r;
	r = db_bucket_find(service_db(s), account, key, ret, &err);
	if (r == -ENOENT)
		return apierror_set(e, API_ERR_NOT_FOUND, "destination", "no bucket registered with this URI");
	return r < 0 ? service_internal(e, r, &err) : 0;
}

static int too_many(ApiError *e, size_t max)
{
	return apierror_set(e, API_ERR_INVALID, "destination",
			    "this account has %zu buckets registered, the most allowed; delete one first", max);
}

/* The bound on an account's buckets, before anything is made for one more. */
static int room_for_one(Service *s, const char *account, ApiError *e)
{
	size_t max = s->cfg.max_buckets, n = 0;
	BucketRow *rows = NULL;
	ErrBuf err = {{0}};
	int r;

	if (!max)
		return 0;
	r = db_bucket_list(service_db(s), account, &rows, &n, &err);
	bucket_rows_free(rows, n);
	if (r < 0)
		return service_internal(e, r, &err);
	return n >= max ? too_many(e, max) : 0;
}

static int already_registered(Service *s, const char *account, const char *uri, ApiError *e)
{
	BucketRow old = {0};
	int r;

	r = service_bucket_find(s, account, uri, &old, e);
	if (r == 0)
		r = apierror_set(e, API_ERR_INVALID, "destination",
				 "already registered (id %s); delete it first to register again", old.id);
	else if (r == -ENOENT)
		r = 0;
	bucket_row_done(&old);
	return r;
}

/* API_ERR_FORBIDDEN when another account validated the bucket of this
 * identity (key, with or without anyone's credentials): proving ownership
 * once more (anyone who may read the bucket could) does not make it this
 * account's. */
static int owned_elsewhere(Service *s, const char *account, const char *key, ApiError *e)
{
	char owner[JOB_ID_LEN + 1];
	ErrBuf err = {{0}};
	int r = db_bucket_owned_elsewhere(service_db(s), account, key, owner, &err);

	if (r < 0)
		return service_internal(e, r, &err);
	if (r > 0)
		return apierror_set(e, API_ERR_FORBIDDEN, "destination",
				    "another account validated this bucket already; a bucket serves one account");
	return 0;
}

int service_bucket_register(Service *s, const char *account, const char *given, BucketRow *ret, ApiError *e)
{
	char token[JOB_ID_LEN + 2];
	char filename[sizeof(CHALLENGE_PREFIX) + JOB_ID_LEN + 4];
	char uri[BUCKET_URI_MAX + 1], key[BUCKET_URI_MAX + 1];
	Bucket *bucket = NULL;
	ErrBuf err = {{0}};
	BucketRow b = {0};
	int r, again = 0;

	r = service_bucket_uri(given, uri, key, e);
	if (r < 0)
		return r;
	r = already_registered(s, account, uri, e);
	if (r == 0)
		r = owned_elsewhere(s, account, key, e);
	if (r == 0)
		r = room_for_one(s, account, e);
	if (r < 0)
		return r;
	r = open_bucket(s, uri, &bucket, e);
	if (r < 0)
		return r;
	if (job_new_id(b.id) < 0 || job_new_id(token) < 0) {
		r = apierror_set(e, API_ERR_INTERNAL, NULL, "no random numbers");
		goto out;
	}
	r = snprintf(filename, sizeof(filename), CHALLENGE_PREFIX "%s.txt", b.id);
	if (r < 0 || (size_t)r >= sizeof(filename)) {
		r = apierror_set(e, API_ERR_INTERNAL, NULL, "challenge name");
		goto out;
	}
	memcpy(b.account, account, sizeof(b.account));
	b.destination_conf = strdup(uri);
	b.match_key = strdup(key);
	b.filename = strdup(filename);
	b.challenge = strdup(token);
	if (!b.destination_conf || !b.match_key || !b.filename || !b.challenge) {
		r = apierror_set(e, API_ERR_INTERNAL, NULL, "out of memory");
		goto out;
	}
	b.status = BUCKET_PENDING;
	b.submitted_ns = (int64_t)now_realtime_ns();

	token[JOB_ID_LEN] = '\n';
	r = bucket_put_bytes(bucket, filename, token, JOB_ID_LEN + 1, &err);
	token[JOB_ID_LEN] = '\0';
	if (r < 0) {
		char shown[BUCKET_URI_MAX + 1];

		bucket_uri_redact(uri, shown, sizeof(shown));
		r = apierror_set(e, API_ERR_INVALID, "destination", "cannot write the challenge file %s into %s: %s",
				 filename, shown, err.msg);
		goto out;
	}
	r = db_bucket_insert(service_db(s), &b, s->cfg.max_buckets, &err);
	if (r < 0) {
		ErrBuf rerr;

		bucket_remove(bucket, filename, &rerr); /* best effort: the row is what counts */
		/* Registered by a concurrent request since we looked? */
		if (r == -EEXIST)
			again = already_registered(s, account, uri, e);
		if (r == -EDQUOT)
			again = too_many(e, s->cfg.max_buckets);
		r = again < 0 ? again : service_internal(e, r, &err);
		goto out;
	}
	*ret = b;
	memset(&b, 0, sizeof(b));
	r = 0;
out:
	bucket_free(bucket);
	bucket_row_done(&b);
	return r;
}

int service_bucket_list(Service *s, const char *account, BucketRow **ret, size_t *ret_n, ApiError *e)
{
	ErrBuf err = {{0}};
	int r = db_bucket_list(service_db(s), account, ret, ret_n, &err);

	return r < 0 ? service_internal(e, r, &err) : 0;
}

/* Reads the challenge file back from the bucket: it must still hold the
 * token. A store that cannot be read, or a file gone or changed, fails. */
static int read_back(Service *s, const BucketRow *b, ApiError *e)
{
	char shown[BUCKET_URI_MAX + 1];
	Bucket *bucket = NULL;
	uint8_t *data = NULL;
	ErrBuf err = {{0}};
	size_t n = 0, tn;
	const char *t;
	int r;

	bucket_uri_redact(b->destination_conf, shown, sizeof(shown));
	r = bucket_open(b->destination_conf, service_buckets(s), &bucket, &err);
	if (r == 0)
		r = bucket_get_bytes(bucket, b->filename, CHALLENGE_MAX, &data, &n, &err);
	bucket_free(bucket);
	if (r < 0)
		return apierror_set(e, API_ERR_INVALID, "destination",
				    "cannot read the challenge file %s back from %s: %s", b->filename, shown, err.msg);
	tn = n;
	t = trim_space((const char *)data, &tn);
	r = b->challenge && tn == strlen(b->challenge) && memcmp(t, b->challenge, tn) == 0
		    ? 0
		    : apierror_set(e, API_ERR_MISMATCH, "challenge",
				   "the challenge file %s in %s no longer holds the token it was given", b->filename,
				   shown);
	free(data);
	return r;
}

int service_bucket_validate(Service *s, const char *account, const char *given, const char *challenge, BucketRow *ret,
			    ApiError *e)
{
	ErrBuf err = {{0}};
	BucketRow b = {0};
	int r;

	r = service_bucket_find(s, account, given, &b, e);
	if (r < 0)
		return r;
	r = owned_elsewhere(s, account, b.match_key, e);
	if (r < 0)
		goto out;
	if (!service_challenge_matches(&b, challenge, strlen(challenge))) {
		r = apierror_set(e, API_ERR_MISMATCH, "challenge", "does not match the token in %s",
				 b.filename ? b.filename : "the challenge file");
		goto out;
	}
	r = read_back(s, &b, e);
	if (r < 0)
		goto out;
	/* Validating again is harmless and keeps the first validation time. */
	if (b.status != BUCKET_SUCCESS || !b.validated_ns) {
		b.status = BUCKET_SUCCESS;
		b.validated_ns = (int64_t)now_realtime_ns();
		r = db_bucket_update(service_db(s), &b, &err);
		if (r < 0) {
			service_internal(e, r, &err);
			goto out;
		}
	}
	*ret = b;
	return 0;
out:
	bucket_row_done(&b);
	return r;
}

int service_bucket_share(Service *s, const char *account, const char *given, const char *other, BucketRow *ret,
			 ApiError *e)
{
	ErrBuf err = {{0}};
	BucketRow b = {0};
	int r;

	if (strcmp(account, other) == 0)
		return apierror_set(e, API_ERR_INVALID, "account", "is this account");
	r = service_bucket_find(s, account, given, &b, e);
	if (r < 0)
		return r;
	if (b.status != BUCKET_SUCCESS) {
		r = apierror_set(e, API_ERR_CONFLICT, "destination", "not validated yet: validate it, then share it");
		goto out;
	}
	r = db_bucket_share(service_db(s), b.id, other, &err);
	if (r == -ENOENT) {
		r = apierror_set(e, API_ERR_INVALID, "account", "no account %s", other);
		goto out;
	}
	if (r < 0) {
		r = service_internal(e, r, &err);
		goto out;
	}
	*ret = b;
	return 0;
out:
	bucket_row_done(&b);
	return r;
}

int service_bucket_delete(Service *s, const char *account, const char *id, ApiError *e)
{
	ErrBuf err = {{0}};
	BucketRow b = {0};
	Bucket *bucket = NULL;
	int r;

	r = db_bucket_get(service_db(s), account, id, &b, &err);
	if (r == 0)
		r = db_bucket_delete(service_db(s), account, id, &err);
	if (r == -ENOENT) {
		r = apierror_set(e, API_ERR_NOT_FOUND, "id", "no bucket with id %s", id);
		goto out;
	}
	if (r < 0) {
		service_internal(e, r, &err);
		goto out;
	}
	/* The challenge file is ours to tidy, but a bucket that has gone away
	 * must not keep its row alive: best effort, after the delete. */
	if (b.filename && bucket_open(b.destination_conf, service_buckets(s), &bucket, &err) == 0)
		bucket_remove(bucket, b.filename, &err);
out:
	bucket_free(bucket);
	bucket_row_done(&b);
	return r;
}

static const char *trim_space(const char *s, size_t *n)
{
	while (*n > 0 && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
		s++;
		(*n)--;
	}
	while (*n > 0 && (s[*n - 1] == ' ' || s[*n - 1] == '\t' || s[*n - 1] == '\r' || s[*n - 1] == '\n'))
		(*n)--;
	return s;
}

static bool same(const char *a, size_t an, const char *b)
{
	size_t bn;

	if (!b)
		return false;
	bn = strlen(b);
	b = trim_space(b, &bn);
	return an > 0 && an == bn && memcmp(a, b, an) == 0;
}

bool service_challenge_matches(const BucketRow *b, const char *given, size_t n)
{
	if (!given)
		return false;
	given = trim_space(given, &n);
	return same(given, n, b->challenge);
}

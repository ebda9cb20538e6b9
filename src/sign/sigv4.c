/* SPDX-License-Identifier: MIT */
/*
 * AWS Signature Version 4 (sigv4.h): the canonical request, the string to
 * sign, the derived key and the signature. Strings are built in a growing
 * buffer (SBuf) that records the first allocation failure, so the building
 * code reads as the specification does and the failure is checked once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sign/digest.h"
#include "common/sbuf.h"
#include "sign/sigv4.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

/* ---- parameters and headers in canonical form ---- */

typedef struct Pair {
	char *name;  /* encoded query name, or lower-cased header name */
	char *value; /* encoded query value, or trimmed header value */
	size_t order;
} Pair;

static int pair_cmp(const void *a, const void *b)
{
	const Pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Query pairs sort by name, then by value. */
static int query_cmp(const void *a, const void *b)
{
	const Pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

static void pairs_free(Pair *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].value);
	}
}

static char *encode_dup(const char *p, bool keep_slash)
{
	SBuf s = {0};

	sbuf_encode(&s, p, strlen(p), keep_slash);
	return sbuf_take(&s);
}

/* Lower-case name; value trimmed, inner runs of blanks made one space. */
static int header_pair(const SigV4Param *h, size_t order, Pair *ret, ErrBuf *err)
{
	size_t n = strlen(h->name), o = 0;
	const char *v = h->value;
	char *name, *value;

	if (n == 0 || strpbrk(h->name, " \t\r\n:"))
		return errbuf_set(err, -EINVAL, "sigv4: header name '%.40s' is not a token", h->name);
	if (strpbrk(v, "\r\n"))
		return errbuf_set(err, -EINVAL, "sigv4: header %.40s has a line break in its value", h->name);
	name = malloc(n + 1);
	value = malloc(strlen(v) + 1);
	if (!name || !value) {
		free(name);
		free(value);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i <= n; i++)
		name[i] = (h->name[i] >= 'A' && h->name[i] <= 'Z') ? (char)(h->name[i] - 'A' + 'a') : h->name[i];
	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			if (o > 0 && value[o - 1] != ' ')
				value[o++] = ' ';
		} else {
			value[o++] = *v;
		}
	}
	while (o > 0 && value[o - 1] == ' ')
		o--;
	value[o] = '\0';
	*ret = (Pair){.name = name, .value = value, .order = order};
	return 0;
}

/* ---- time and key ---- */

static int format_time(time_t t, char amz_date[17], ErrBuf *err)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(amz_date, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
		return errbuf_set(err, -EINVAL, "sigv4: time %lld cannot be formatted", (long long)t);
	return 0;
}

static int check_key(const SigV4Key *k, ErrBuf *err)
{
	if (!k->access_key_id || !*k->access_key_id)
		return errbuf_set(err, -EINVAL, "sigv4: no access key id");
	if (!k->secret_access_key || !*k->secret_access_key)
		return errbuf_set(err, -EINVAL, "sigv4: no secret access key");
	if (!k->region || !*k->region || strpbrk(k->region, "/ \r\n"))
		return errbuf_set(err, -EINVAL, "sigv4: no valid region");
	if (!k->service || !*k->service || strpbrk(k->service, "/ \r\n"))
		return errbuf_set(err, -EINVAL, "sigv4: no valid service");
	if (strpbrk(k->access_key_id, "/ \r\n"))
		return errbuf_set(err, -EINVAL, "sigv4: the access key id holds '/', a blank or a line break");
	if (k->session_token && strpbrk(k->session_token, "\r\n"))
		return errbuf_set(err, -EINVAL, "sigv4: the session token holds a line break");
	return 0;
}

/* signature = hex(HMAC(kSigning, sts)), kSigning derived from the secret. */
static int sign_sts(const SigV4Key *k, const char *date8, const char *sts, char out[65])
{
	uint8_t a[DIGEST_SHA256_LEN], b[DIGEST_SHA256_LEN];
	size_t sn = strlen(k->secret_access_key);
	char *secret = malloc(sn + 5);
	int r;

	if (!secret)
		return -ENOMEM;
	memcpy(secret, "AWS4", 4);
	memcpy(secret + 4, k->secret_access_key, sn + 1);
	r = digest_hmac_sha256(secret, sn + 4, date8, 8, a);
	explicit_bzero(secret, sn + 4);
	free(secret);
	if (r == 0)
		r = digest_hmac_sha256(a, sizeof(a), k->region, strlen(k->region), b);
	if (r == 0)
		r = digest_hmac_sha256(b, sizeof(b), k->service, strlen(k->service), a);
	if (r == 0)
		r = digest_hmac_sha256(a, sizeof(a), "aws4_request", 12, b);
	if (r == 0)
		r = digest_hmac_sha256(b, sizeof(b), sts, strlen(sts), a);
	if (r == 0)
		digest_hex(a, sizeof(a), out);
	explicit_bzero(a, sizeof(a));
	explicit_bzero(b, sizeof(b));
	return r;
}

/* ---- the whole computation ---- */

typedef struct Work {
	Pair query[SIGV4_MAX_PARAMS + 8];
	size_t nq;
	Pair headers[SIGV4_MAX_PARAMS + 3];
	size_t nh;
} Work;

static int add_query(Work *w, const char *name, const char *value, ErrBuf *err)
{
	Pair *p = &w->query[w->nq];

	p->name = encode_dup(name, false);
	p->value = encode_dup(value, false);
	if (!p->name || !p->value) {
		free(p->name);
		free(p->value);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	w->nq++;
	return 0;
}

static int add_header(Work *w, const char *name, const char *value, ErrBuf *err)
{
	SigV4Param h = {.name = name, .value = value};
	int r = header_pair(&h, w->nh, &w->headers[w->nh], err);

	if (r == 0)
		w->nh++;
	return r;
}

/* Builds the canonical request and the string to sign, then signs. presign:
 * the X-Amz-* parameters are added to the query, else the host, date and
 * token headers to the headers. */
static int compute(const SigV4Key *k, const SigV4Request *q, bool presign, uint32_t expires_s, SigV4Signed *ret,
		   ErrBuf *err)
{
	char amz_date[17], scope[256], hash[DIGEST_SHA256_HEX_LEN + 1], sig[65], num[16];
	const char *payload = q->payload_hash ? q->payload_hash : presign ? SIGV4_UNSIGNED_PAYLOAD : SIGV4_EMPTY_SHA256;
	SBuf creq = {0}, sts = {0}, signed_names = {0}, credential = {0}, out = {0};
	Work *w;
	int r, n;

	r = check_key(k, err);
	if (r < 0)
		return r;
	if (!q->method || !*q->method || !q->host || !*q->host || !q->path || q->path[0] != '/')
		return errbuf_set(err, -EINVAL, "sigv4: a request needs a method, a host and an absolute path");
	if (q->n_query > SIGV4_MAX_PARAMS || q->n_headers > SIGV4_MAX_PARAMS)
		return errbuf_set(err, -EINVAL, "sigv4: more than %u query parameters or headers", SIGV4_MAX_PARAMS);
	if (strpbrk(q->host, " \r\n/") || strpbrk(payload, " \r\n"))
		return errbuf_set(err, -EINVAL, "sigv4: blank or line break in the host or payload hash");
	r = format_time(q->when, amz_date, err);
	if (r < 0)
		return r;
	n = snprintf(scope, sizeof(scope), "%.8s/%s/%s/aws4_request", amz_date, k->region, k->service);
	if (n < 0 || (size_t)n >= sizeof(scope))
		return errbuf_set(err, -EINVAL, "sigv4: region or service too long");
	w = calloc(1, sizeof(*w));
	if (!w)
		return errbuf_set(err, -ENOMEM, "out of memory");

	for (size_t i = 0; i < q->n_headers && r == 0; i++)
		r = add_header(w, q->headers[i].name, q->headers[i].value, err);
	if (r == 0)
		r = add_header(w, "host", q->host, err);
	if (r == 0 && !presign)
		r = add_header(w, "x-amz-date", amz_date, err);
	if (r == 0 && !presign && k->session_token)
		r = add_header(w, "x-amz-security-token", k->session_token, err);
	if (r < 0)
		goto out;
	qsort(w->headers, w->nh, sizeof(w->headers[0]), pair_cmp);
	for (size_t i = 0; i < w->nh; i++) {
		if (i > 0 && strcmp(w->headers[i].name, w->headers[i - 1].name) == 0)
			continue;
		if (signed_names.n)
			sbuf_add(&signed_names, ";");
		sbuf_add(&signed_names, w->headers[i].name);
	}

	for (size_t i = 0; i < q->n_query && r == 0; i++)
		r = add_query(w, q->query[i].name, q->query[i].value ? q->query[i].value : "", err);
	if (r == 0 && presign) {
		if (expires_s == 0 || expires_s > SIGV4_PRESIGN_MAX_S) {
			r = errbuf_set(err, -EINVAL, "sigv4: a presigned URL expires after 1 to %u seconds",
				       SIGV4_PRESIGN_MAX_S);
			goto out;
		}
		snprintf(num, sizeof(num), "%u", expires_s);
		sbuf_add(&credential, k->access_key_id);
		sbuf_add(&credential, "/");
		sbuf_add(&credential, scope);
		if (credential.nomem || signed_names.nomem) {
			r = errbuf_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		r = add_query(w, "X-Amz-Algorithm", ALGORITHM, err);
		if (r == 0)
			r = add_query(w, "X-Amz-Credential", credential.p, err);
		if (r == 0)
			r = add_query(w, "X-Amz-Date", amz_date, err);
		if (r == 0)
			r = add_query(w, "X-Amz-Expires", num, err);
		if (r == 0 && k->session_token)
			r = add_query(w, "X-Amz-Security-Token", k->session_token, err);
		if (r == 0)
			r = add_query(w, "X-Amz-SignedHeaders", signed_names.p, err);
	}
	if (r < 0)
		goto out;
	qsort(w->query, w->nq, sizeof(w->query[0]), query_cmp);

	/* The canonical request. */
	sbuf_add(&creq, q->method);
	sbuf_add(&creq, "\n");
	sbuf_encode(&creq, q->path, strlen(q->path), true);
	sbuf_add(&creq, "\n");
	for (size_t i = 0; i < w->nq; i++) {
		if (i > 0)
			sbuf_add(&creq, "&");
		sbuf_add(&creq, w->query[i].name);
		sbuf_add(&creq, "=");
		sbuf_add(&creq, w->query[i].value);
	}
	sbuf_add(&creq, "\n");
	for (size_t i = 0; i < w->nh; i++) {
		bool first = i == 0 || strcmp(w->headers[i].name, w->headers[i - 1].name) != 0;
		bool last = i + 1 == w->nh || strcmp(w->headers[i].name, w->headers[i + 1].name) != 0;

		if (first) {
			sbuf_add(&creq, w->headers[i].name);
			sbuf_add(&creq, ":");
		} else {
			sbuf_add(&creq, ",");
		}
		sbuf_add(&creq, w->headers[i].value);
		if (last)
			sbuf_add(&creq, "\n");
	}
	sbuf_add(&creq, "\n");
	sbuf_add(&creq, signed_names.p ? signed_names.p : "");
	sbuf_add(&creq, "\n");
	sbuf_add(&creq, payload);
	if (creq.nomem || signed_names.nomem) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
		goto out;
	}

	/* The string to sign, the signature. */
	r = digest_sha256_hex(creq.p, creq.n, hash);
	if (r < 0) {
		r = errbuf_set(err, r, "sigv4: SHA-256 failed");
		goto out;
	}
	sbuf_add(&sts, ALGORITHM "\n");
	sbuf_add(&sts, amz_date);
	sbuf_add(&sts, "\n");
	sbuf_add(&sts, scope);
	sbuf_add(&sts, "\n");
	sbuf_add(&sts, hash);
	if (sts.nomem) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = sign_sts(k, amz_date, sts.p, sig);
	if (r < 0) {
		r = errbuf_set(err, r, "sigv4: HMAC-SHA-256 failed");
		goto out;
	}

	/* What the caller sends. */
	if (presign) {
		for (size_t i = 0; i < w->nq; i++) {
			sbuf_add(&out, w->query[i].name);
			sbuf_add(&out, "=");
			sbuf_add(&out, w->query[i].value);
			sbuf_add(&out, "&");
		}
		sbuf_add(&out, "X-Amz-Signature=");
		sbuf_add(&out, sig);
	} else {
		sbuf_add(&out, ALGORITHM " Credential=");
		sbuf_add(&out, k->access_key_id);
		sbuf_add(&out, "/");
		sbuf_add(&out, scope);
		sbuf_add(&out, ", SignedHeaders=");
		sbuf_add(&out, signed_names.p);
		sbuf_add(&out, ", Signature=");
		sbuf_add(&out, sig);
	}
	if (out.nomem) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	*ret = (SigV4Signed){
		.authorization = presign ? NULL : out.p,
		.query = presign ? out.p : NULL,
		.canonical_request = creq.p,
		.string_to_sign = sts.p,
	};
	memcpy(ret->amz_date, amz_date, sizeof(amz_date));
	memcpy(ret->signature, sig, sizeof(sig));
	out.p = creq.p = sts.p = NULL;
	r = 0;
out:
	pairs_free(w->query, w->nq);
	pairs_free(w->headers, w->nh);
	free(w);
	free(creq.p);
	free(sts.p);
	free(signed_names.p);
	free(credential.p);
	free(out.p);
	return r;
}

int sigv4_sign(const SigV4Key *key, const SigV4Request *req, SigV4Signed *ret, ErrBuf *err)
{
	return compute(key, req, false, 0, ret, err);
}

int sigv4_presign(const SigV4Key *key, const SigV4Request *req, uint32_t expires_s, SigV4Signed *ret, ErrBuf *err)
{
	return compute(key, req, true, expires_s, ret, err);
}

void sigv4_signed_done(SigV4Signed *s)
{
	if (!s)
		return;
	free(s->authorization);
	free(s->query);
	free(s->canonical_request);
	free(s->string_to_sign);
	*s = (SigV4Signed){0};
}

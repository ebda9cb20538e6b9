/* SPDX-License-Identifier: MIT */
/* Azure Storage Shared Key and service SAS (azsign.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sign/azsign.h"
#include "sign/digest.h"
#include "common/sbuf.h"

/* A header's value as canonicalized: trimmed, inner blanks collapsed. */
static void str_add_value(SBuf *s, const char *v)
{
	bool space = false, any = false;

	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			space = any;
			continue;
		}
		if (space)
			sbuf_addn(s, " ", 1);
		sbuf_addn(s, v, 1);
		space = false;
		any = true;
	}
}

static const char *find_header(const AzRequest *q, const char *name)
{
	for (size_t i = 0; i < q->n_headers; i++)
		if (strcasecmp(q->headers[i].name, name) == 0)
			return q->headers[i].value;
	return NULL;
}

/* Signs sts with the key: base64(HMAC-SHA256). */
static int hmac_b64(const AzKey *k, const char *sts, char **ret, ErrBuf *err)
{
	uint8_t mac[DIGEST_SHA256_LEN];
	char *b;

	if (digest_hmac_sha256(k->key, k->key_n, sts, strlen(sts), mac) < 0)
		return errbuf_set(err, -EIO, "azure: HMAC-SHA-256 failed");
	b = digest_base64(mac, sizeof(mac));
	explicit_bzero(mac, sizeof(mac));
	if (!b)
		return errbuf_set(err, -ENOMEM, "out of memory");
	*ret = b;
	return 0;
}

static int check_key(const AzKey *k, ErrBuf *err)
{
	if (!k->account || !*k->account || strpbrk(k->account, "/:\r\n "))
		return errbuf_set(err, -EINVAL, "azure: no valid account name");
	if (!k->key || k->key_n == 0)
		return errbuf_set(err, -EINVAL, "azure: no account key");
	return 0;
}

typedef struct Sorted {
	const char *name; /* lower-cased copy */
	const char *value;
	char *own;
} Sorted;

static int sorted_cmp(const void *a, const void *b)
{
	const Sorted *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

static char *lower_dup(const char *s)
{
	char *d = strdup(s);

	for (char *p = d; p && *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

/* Sorted, lower-cased copies of params (only names starting with prefix). */
static int sort_params(const AzParam *v, size_t n, const char *prefix, Sorted *out, size_t *ret_n, ErrBuf *err)
{
	size_t k = 0, pn = prefix ? strlen(prefix) : 0;

	for (size_t i = 0; i < n; i++) {
		if (prefix && strncasecmp(v[i].name, prefix, pn) != 0)
			continue;
		if (strpbrk(v[i].name, "\r\n:") || strpbrk(v[i].value ? v[i].value : "", "\r\n")) {
			for (size_t j = 0; j < k; j++)
				free(out[j].own);
			return errbuf_set(err, -EINVAL, "azure: line break or ':' in parameter %.40s", v[i].name);
		}
		out[k].own = lower_dup(v[i].name);
		if (!out[k].own) {
			for (size_t j = 0; j < k; j++)
				free(out[j].own);
			return errbuf_set(err, -ENOMEM, "out of memory");
		}
		out[k].name = out[k].own;
		out[k].value = v[i].value ? v[i].value : "";
		k++;
	}
	qsort(out, k, sizeof(out[0]), sorted_cmp);
	*ret_n = k;
	return 0;
}

int azsign_shared_key(const AzKey *key, const AzRequest *q, char **ret, char **ret_sts, ErrBuf *err)
{
	static const char *const standard[] = {"Content-Encoding",
					       "Content-Language",
					       NULL /* length */,
					       "Content-MD5",
					       "Content-Type",
					       "Date",
					       "If-Modified-Since",
					       "If-Match",
					       "If-None-Match",
					       "If-Unmodified-Since",
					       "Range"};
	Sorted hs[AZSIGN_MAX_PARAMS], qs[AZSIGN_MAX_PARAMS];
	size_t nh = 0, nq = 0;
	SBuf sts = {0}, auth = {0};
	char num[24], *sig = NULL;
	int r;

	r = check_key(key, err);
	if (r < 0)
		return r;
	if (!q->method || !q->path || q->path[0] != '/')
		return errbuf_set(err, -EINVAL, "azure: a request needs a method and an absolute path");
	if (q->n_headers > AZSIGN_MAX_PARAMS || q->n_query > AZSIGN_MAX_PARAMS)
		return errbuf_set(err, -EINVAL, "azure: more than %u headers or query parameters", AZSIGN_MAX_PARAMS);
	r = sort_params(q->headers, q->n_headers, "x-ms-", hs, &nh, err);
	if (r < 0)
		return r;
	r = sort_params(q->query, q->n_query, NULL, qs, &nq, err);
	if (r < 0)
		goto out;

	sbuf_add(&sts, q->method);
	sbuf_add(&sts, "\n");
	for (size_t i = 0; i < ARRAY_SIZE(standard); i++) {
		if (standard[i]) {
			const char *v = find_header(q, standard[i]);

			if (v)
				str_add_value(&sts, v);
		} else if (q->content_length > 0) {
			snprintf(num, sizeof(num), "%llu", (unsigned long long)q->content_length);
			sbuf_add(&sts, num);
		}
		sbuf_add(&sts, "\n");
	}
	for (size_t i = 0; i < nh; i++) {
		sbuf_add(&sts, hs[i].name);
		sbuf_add(&sts, ":");
		str_add_value(&sts, hs[i].value);
		sbuf_add(&sts, "\n");
	}
	sbuf_add(&sts, "/");
	sbuf_add(&sts, key->account);
	sbuf_add(&sts, q->path);
	for (size_t i = 0; i < nq; i++) {
		if (i > 0 && strcmp(qs[i].name, qs[i - 1].name) == 0) {
			sbuf_add(&sts, ",");
		} else {
			sbuf_add(&sts, "\n");
			sbuf_add(&sts, qs[i].name);
			sbuf_add(&sts, ":");
		}
		sbuf_add(&sts, qs[i].value);
	}
	if (sts.nomem) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = hmac_b64(key, sts.p, &sig, err);
	if (r < 0)
		goto out;
	sbuf_add(&auth, "SharedKey ");
	sbuf_add(&auth, key->account);
	sbuf_add(&auth, ":");
	sbuf_add(&auth, sig);
	if (auth.nomem) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	*ret = auth.p;
	auth.p = NULL;
	if (ret_sts) {
		*ret_sts = sts.p;
		sts.p = NULL;
	}
	r = 0;
out:
	for (size_t i = 0; i < nh; i++)
		free(hs[i].own);
	for (size_t i = 0; i < nq; i++)
		free(qs[i].own);
	free(sig);
	free(sts.p);
	free(auth.p);
	return r;
}

int azsign_http_date(time_t t, char out[30])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(out, 30, "%a, %d %b %Y %H:%M:%S GMT", &tm) != 29)
		return -EINVAL;
	return 0;
}

/* ISO 8601 UTC, seconds: "2024-05-27T10:00:00Z". */
static int iso_time(time_t t, char out[21])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) != 20)
		return -EINVAL;
	return 0;
}

/* Appends "&name=" + encoded value (or "name=" first). */
static void add_qp(SBuf *s, const char *name, const char *value)
{
	if (s->n)
		sbuf_add(s, "&");
	sbuf_add(s, name);
	sbuf_add(s, "=");
	sbuf_encode(s, value, strlen(value), false);
}

int azsign_sas(const AzKey *key, const AzSas *sas, char **ret, char **ret_sts, ErrBuf *err)
{
	char st[21] = "", se[21], *sig = NULL;
	const char *sr = sas->blob ? "b" : "c";
	SBuf sts = {0}, out = {0};
	int r;

	r = check_key(key, err);
	if (r < 0)
		return r;
	if (!sas->permissions || !*sas->permissions ||
	    strspn(sas->permissions, "racwdxltmeop") != strlen(sas->permissions))
		return errbuf_set(err, -EINVAL, "azure: SAS permissions must be letters of racwdxltmeop");
	if (!sas->container || !*sas->container || strpbrk(sas->container, "/\r\n") ||
	    (sas->blob && (!*sas->blob || strpbrk(sas->blob, "\r\n"))))
		return errbuf_set(err, -EINVAL, "azure: a SAS needs a container (and a blob name without line breaks)");
	if (!sas->protocol || (strcmp(sas->protocol, "https") != 0 && strcmp(sas->protocol, "https,http") != 0))
		return errbuf_set(err, -EINVAL, "azure: SAS protocol must be https or https,http");
	if ((sas->start && iso_time(sas->start, st) < 0) || iso_time(sas->expiry, se) < 0 ||
	    (sas->start && sas->start >= sas->expiry))
		return errbuf_set(err, -EINVAL, "azure: SAS start and expiry are not a valid interval");

	sbuf_add(&sts, sas->permissions);
	sbuf_add(&sts, "\n");
	sbuf_add(&sts, st);
	sbuf_add(&sts, "\n");
	sbuf_add(&sts, se);
	sbuf_add(&sts, "\n/blob/");
	sbuf_add(&sts, key->account);
	sbuf_add(&sts, "/");
	sbuf_add(&sts, sas->container);
	if (sas->blob) {
		sbuf_add(&sts, "/");
		sbuf_add(&sts, sas->blob);
	}
	sbuf_add(&sts, "\n\n\n"); /* signedIdentifier, signedIP */
	sbuf_add(&sts, sas->protocol);
	sbuf_add(&sts, "\n" AZSIGN_SAS_VERSION "\n");
	sbuf_add(&sts, sr);
	sbuf_add(&sts, "\n\n\n\n\n\n\n"); /* snapshot, encryption scope, rscc, rscd, rsce, rscl, rsct */
	if (sts.nomem)
		goto nomem;
	r = hmac_b64(key, sts.p, &sig, err);
	if (r < 0)
		goto out;
	add_qp(&out, "sv", AZSIGN_SAS_VERSION);
	add_qp(&out, "spr", sas->protocol);
	if (sas->start)
		add_qp(&out, "st", st);
	add_qp(&out, "se", se);
	add_qp(&out, "sr", sr);
	add_qp(&out, "sp", sas->permissions);
	add_qp(&out, "sig", sig);
	if (out.nomem)
		goto nomem;
	*ret = out.p;
	out.p = NULL;
	if (ret_sts) {
		*ret_sts = sts.p;
		sts.p = NULL;
	}
	r = 0;
	goto out;
nomem:
	r = errbuf_set(err, -ENOMEM, "out of memory");
out:
	free(sig);
	free(sts.p);
	free(out.p);
	return r;
}

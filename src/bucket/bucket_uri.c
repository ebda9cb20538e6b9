/* SPDX-License-Identifier: MIT */
/*
 * The destination_conf grammar (bucket_uri.h) and its REDACTED form. Pure:
 * strings in, strings out.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bucket/bucket.h"
#include "bucket/bucket_uri.h"
#include "sign/digest.h"

#define FILE_EXPECTED "expected file:///absolute/dir"
#define ANY_EXPECTED                                                                                                   \
	"expected file:///DIR, s3://BUCKET, r2://BUCKET, gs://BUCKET, azblob://ACCOUNT/CONTAINER or "                  \
	"https://ACCOUNT" AZURE_HOST_SUFFIX "/CONTAINER"
#define AZURE_HOST_SUFFIX ".blob.core.windows.net"
#define REDACTED "REDACTED"

/* Query keys each scheme takes (NULL-terminated). */
static const char *const keys_s3[] = {"region", "endpoint", "access-key-id", "secret-access-key", NULL};
static const char *const keys_r2[] = {"account-id", "access-key-id", "secret-access-key", "endpoint", NULL};
static const char *const keys_azblob[] = {"key", "sas", "endpoint", NULL};
static const char *const keys_azurl[] = {"key", "sas", NULL};

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool word_eq(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

const char *bucket_scheme_name(BucketScheme s)
{
	static const char *const names[] = {
		[BUCKET_SCHEME_FILE] = "file", [BUCKET_SCHEME_S3] = "s3",       [BUCKET_SCHEME_R2] = "r2",
		[BUCKET_SCHEME_GS] = "gs",     [BUCKET_SCHEME_AZURE] = "azure",
	};
	return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "unknown";
}

void bucket_uri_done(BucketUri *u)
{
	if (!u)
		return;
	free(u->path);
	free(u->bucket);
	free(u->prefix);
	free(u->region);
	free(u->endpoint);
	free(u->access_key_id);
	if (u->secret_access_key)
		explicit_bzero(u->secret_access_key, strlen(u->secret_access_key));
	free(u->secret_access_key);
	free(u->account_id);
	free(u->account);
	if (u->key)
		explicit_bzero(u->key, strlen(u->key));
	free(u->key);
	if (u->sas)
		explicit_bzero(u->sas, strlen(u->sas));
	free(u->sas);
	*u = (BucketUri){0};
}

/* ---- file:// ---- */

/* The path of a file URI (after "file://"): absolute, no query, fragment,
 * escapes or control characters. */
static int check_file_path(const char *p, size_t n, ErrBuf *err)
{
	if (n == 0)
		return errbuf_set(err, -EINVAL, "destination_conf: empty path; " FILE_EXPECTED);
	if (p[0] != '/')
		return errbuf_set(err, -EINVAL, "destination_conf: a file URI takes no host; " FILE_EXPECTED);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '%')
			return errbuf_set(err, -EINVAL,
					  "destination_conf: percent-escapes ('%%') are not supported in file URIs");
		if (c == '?')
			return errbuf_set(err, -EINVAL, "destination_conf: a file URI takes no query ('?')");
		if (c == '#')
			return errbuf_set(err, -EINVAL, "destination_conf: a file URI takes no fragment ('#')");
		if (c < 0x20 || c == 0x7f)
			return errbuf_set(err, -EINVAL, "destination_conf: control character (0x%02x) in the path", c);
	}
	return 0;
}

/* ---- the scheme ---- */

typedef enum Form { FORM_FILE, FORM_S3, FORM_R2, FORM_GS, FORM_AZBLOB, FORM_AZURL } Form;

/* The URI's form, and where its part after "://" starts. */
static int parse_scheme(const char *uri, size_t n, Form *ret, size_t *ret_rest, ErrBuf *err)
{
	size_t i = 0, rest;

	if (n == 0 || !is_alpha(uri[0]))
		return errbuf_set(err, -EINVAL, "destination_conf: not a URI; " ANY_EXPECTED);
	while (i < n && (is_alpha(uri[i]) || is_digit(uri[i]) || uri[i] == '+' || uri[i] == '-' || uri[i] == '.'))
		i++;
	if (n - i < 3 || memcmp(uri + i, "://", 3) != 0)
		return errbuf_set(err, -EINVAL, "destination_conf: not a URI; " ANY_EXPECTED);
	rest = i + 3;

	if (word_eq(uri, i, "file")) {
		*ret = FORM_FILE;
	} else if (word_eq(uri, i, "s3")) {
		*ret = FORM_S3;
	} else if (word_eq(uri, i, "gs")) {
		*ret = FORM_GS;
	} else if (word_eq(uri, i, "r2")) {
		*ret = FORM_R2;
	} else if (word_eq(uri, i, "azblob")) {
		*ret = FORM_AZBLOB;
	} else if (word_eq(uri, i, "https")) {
		const char *host = uri + rest;
		size_t hn = 0, sn = strlen(AZURE_HOST_SUFFIX);

		while (rest + hn < n && host[hn] != '/' && host[hn] != '?' && host[hn] != '#')
			hn++;
		if (hn <= sn || strncasecmp(host + hn - sn, AZURE_HOST_SUFFIX, sn) != 0)
			return errbuf_set(err, -EINVAL,
					  "destination_conf: an https URI must be an Azure blob container "
					  "(https://ACCOUNT" AZURE_HOST_SUFFIX "/CONTAINER)");
		*ret = FORM_AZURL;
	} else {
		return errbuf_set(err, -EINVAL, "destination_conf: unknown scheme '%.*s'; " ANY_EXPECTED,
				  i > 16 ? 16 : (int)i, uri);
	}
	*ret_rest = rest;
	return 0;
}

/* ---- pieces ---- */

static int dup_n(const char *p, size_t n, char **ret, ErrBuf *err)
{
	char *s = strndup(p, n);

	if (!s)
		return errbuf_set(err, -ENOMEM, "out of memory");
	*ret = s;
	return 0;
}

/* Percent-decodes a query value into a new string; control bytes refused. */
static int decode_value(const char *key, const char *p, size_t n, char **ret, ErrBuf *err)
{
	char *out = malloc(n + 1);
	size_t o = 0;

	if (!out)
		return errbuf_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '%') {
			int hi = i + 2 < n ? hex_digit(p[i + 1]) : -1, lo = i + 2 < n ? hex_digit(p[i + 2]) : -1;

			if (hi < 0 || lo < 0) {
				free(out);
				return errbuf_set(err, -EINVAL, "destination_conf: %s: a bad percent-escape", key);
			}
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f) {
			free(out);
			return errbuf_set(err, -EINVAL, "destination_conf: %s: a control character", key);
		}
		out[o++] = (char)c;
	}
	out[o] = '\0';
	*ret = out;
	return 0;
}

/* Bucket names: 1..255 of [A-Za-z0-9._-], not starting with '.'. */
static int check_bucket(const char *scheme, const char *p, size_t n, ErrBuf *err)
{
	if (n == 0)
		return errbuf_set(err, -EINVAL, "destination_conf: the %s URI names no bucket", scheme);
	if (n > 255 || p[0] == '.')
		return errbuf_set(err, -EINVAL, "destination_conf: '%.*s' is not a bucket name", n > 64 ? 64 : (int)n,
				  p);
	for (size_t i = 0; i < n; i++)
		if (!is_alpha(p[i]) && !is_digit(p[i]) && p[i] != '.' && p[i] != '_' && p[i] != '-')
			return errbuf_set(err, -EINVAL,
					  "destination_conf: bucket name '%.*s' has a byte outside [A-Za-z0-9._-]",
					  n > 64 ? 64 : (int)n, p);
	return 0;
}

/* p[0..n): lower-case letters and digits (and '-' when dash), min..max long. */
static int check_lower(const char *what, const char *p, size_t n, size_t min, size_t max, bool dash, ErrBuf *err)
{
	bool ok = n >= min && n <= max;

	for (size_t i = 0; ok && i < n; i++)
		ok = (p[i] >= 'a' && p[i] <= 'z') || is_digit(p[i]) || (dash && p[i] == '-');
	if (!ok)
		return errbuf_set(err, -EINVAL,
				  "destination_conf: '%.*s' is not an Azure %s name (%zu..%zu of [a-z0-9%s])",
				  n > 64 ? 64 : (int)n, p, what, min, max, dash ? "-" : "");
	return 0;
}

/* The prefix after the bucket: segments of [A-Za-z0-9._~-] joined by '/';
 * a trailing '/' is dropped. *ret gets "" or "seg/seg/". */
static int parse_prefix(const char *p, size_t n, char **ret, ErrBuf *err)
{
	char *out;
	size_t seg = 0;

	while (n > 0 && p[n - 1] == '/')
		n--;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || p[i] == '/') {
			size_t len = i - seg;

			if (len == 0 || (len == 1 && p[seg] == '.') || (len == 2 && p[seg] == '.' && p[seg + 1] == '.'))
				return n == 0 ? dup_n("", 0, ret, err)
					      : errbuf_set(err, -EINVAL,
							   "destination_conf: the prefix has an empty, '.' or '..' "
							   "segment");
			seg = i + 1;
			continue;
		}
		if (p[i] == '%')
			return errbuf_set(err, -EINVAL,
					  "destination_conf: percent-escapes ('%%') are not supported in the path");
		if (!is_alpha(p[i]) && !is_digit(p[i]) && p[i] != '.' && p[i] != '_' && p[i] != '~' && p[i] != '-')
			return errbuf_set(err, -EINVAL,
					  "destination_conf: the prefix has a byte outside [A-Za-z0-9._~/-]");
	}
	out = malloc(n + 2);
	if (!out)
		return errbuf_set(err, -ENOMEM, "out of memory");
	memcpy(out, p, n);
	out[n] = '/';
	out[n + 1] = '\0';
	*ret = out;
	return 0;
}

/* endpoint=: http(s)://host[:port][/path], no user info; trailing '/' dropped. */
static int check_endpoint(char *e, ErrBuf *err)
{
	size_t n = strlen(e);
	const char *host;

	if (strncasecmp(e, "http://", 7) == 0)
		host = e + 7;
	else if (strncasecmp(e, "https://", 8) == 0)
		host = e + 8;
	else
		return errbuf_set(err, -EINVAL, "destination_conf: endpoint: not an http:// or https:// URL");
	if (*host == '\0' || *host == '/' || *host == ':')
		return errbuf_set(err, -EINVAL, "destination_conf: endpoint: no host");
	if (strpbrk(e, "?#@ \\"))
		return errbuf_set(err, -EINVAL,
				  "destination_conf: endpoint: a query, fragment, user info or blank is not allowed");
	while (n > 0 && e[n - 1] == '/')
		e[--n] = '\0';
	return 0;
}

/* A query value fit for a header or an URL: printable ASCII, no blanks. */
static int check_token(const char *what, const char *v, size_t max, ErrBuf *err)
{
	size_t n = strlen(v);

	if (n > max)
		return errbuf_set(err, -EINVAL, "destination_conf: %s: longer than %zu bytes", what, max);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
			return errbuf_set(err, -EINVAL, "destination_conf: %s: a blank or non-ASCII byte", what);
	return 0;
}

static bool in_list(const char *const *list, const char *p, size_t n)
{
	for (; *list; list++)
		if (strlen(*list) == n && memcmp(*list, p, n) == 0)
			return true;
	return false;
}

/* The field of u a query key fills. */
static char **field_of(BucketUri *u, const char *key)
{
	if (strcmp(key, "region") == 0)
		return &u->region;
	if (strcmp(key, "endpoint") == 0)
		return &u->endpoint;
	if (strcmp(key, "access-key-id") == 0)
		return &u->access_key_id;
	if (strcmp(key, "secret-access-key") == 0)
		return &u->secret_access_key;
	if (strcmp(key, "account-id") == 0)
		return &u->account_id;
	if (strcmp(key, "key") == 0)
		return &u->key;
	return &u->sas;
}

static int parse_query(const char *q, size_t n, const char *const *keys, const char *scheme, BucketUri *u, ErrBuf *err)
{
	size_t i = 0;

	while (i < n) {
		size_t end = i, eq;
		char key[32], **field;
		int r;

		while (end < n && q[end] != '&')
			end++;
		eq = i;
		while (eq < end && q[eq] != '=')
			eq++;
		if (eq == i)
			return errbuf_set(err, -EINVAL, "destination_conf: an empty query key");
		if (!in_list(keys, q + i, eq - i))
			return errbuf_set(err, -EINVAL, "destination_conf: unknown query key '%.*s' for %s",
					  eq - i > 32 ? 32 : (int)(eq - i), q + i, scheme);
		memcpy(key, q + i, eq - i);
		key[eq - i] = '\0';
		if (eq == end || eq + 1 == end)
			return errbuf_set(err, -EINVAL, "destination_conf: %s has no value", key);
		field = field_of(u, key);
		if (*field)
			return errbuf_set(err, -EINVAL, "destination_conf: %s is given twice", key);
		r = decode_value(key, q + eq + 1, end - eq - 1, field, err);
		if (r < 0)
			return r;
		i = end + 1;
	}
	return 0;
}

/* Checks the values a query gave, by scheme. lenient: the URI had its
 * credentials taken out (bucket_uri_match_key), so none are required. */
static int check_values(Form form, BucketUri *u, bool lenient, ErrBuf *err)
{
	int r = 0;

	if (u->endpoint)
		r = check_endpoint(u->endpoint, err);
	if (r == 0 && u->region) {
		size_t n = strlen(u->region);

		for (size_t i = 0; i < n && r == 0; i++)
			if (!(u->region[i] >= 'a' && u->region[i] <= 'z') && !is_digit(u->region[i]) &&
			    u->region[i] != '-')
				r = errbuf_set(err, -EINVAL, "destination_conf: region: not of [a-z0-9-]");
		if (r == 0 && n > 64)
			r = errbuf_set(err, -EINVAL, "destination_conf: region: longer than 64 bytes");
	}
	if (r == 0 && u->access_key_id)
		r = check_token("access-key-id", u->access_key_id, 256, err);
	if (r == 0 && u->secret_access_key)
		r = check_token("secret-access-key", u->secret_access_key, 256, err);
	if (r == 0 && u->account_id)
		r = check_token("account-id", u->account_id, 64, err);
	if (r == 0 && u->account_id && strpbrk(u->account_id, "./:"))
		r = errbuf_set(err, -EINVAL, "destination_conf: account-id: not a Cloudflare account id");
	if (r == 0 && u->key)
		r = check_token("key", u->key, 256, err);
	if (r == 0 && u->sas)
		r = check_token("sas", u->sas, 1024, err);
	if (r < 0)
		return r;
	if (lenient)
		return 0;
	if ((u->access_key_id != NULL) != (u->secret_access_key != NULL))
		return errbuf_set(err, -EINVAL, "destination_conf: access-key-id and secret-access-key go together");
	if (form == FORM_R2 && !u->access_key_id)
		return errbuf_set(err, -EINVAL,
				  "destination_conf: an r2 URI needs access-key-id and secret-access-key");
	if (form == FORM_R2 && !u->account_id && !u->endpoint)
		return errbuf_set(err, -EINVAL, "destination_conf: an r2 URI needs account-id (or endpoint)");
	if (u->key && u->sas)
		return errbuf_set(err, -EINVAL, "destination_conf: key and sas exclude each other");
	if (u->sas && !strstr(u->sas, "sig="))
		return errbuf_set(err, -EINVAL, "destination_conf: sas: not a SAS token (no sig=)");
	return 0;
}

static int parse_impl(const char *uri, size_t n, bool lenient, BucketUri *ret, ErrBuf *err)
{
	static const char *const scheme_word[] = {
		[FORM_S3] = "s3", [FORM_R2] = "r2", [FORM_GS] = "gs", [FORM_AZBLOB] = "azblob", [FORM_AZURL] = "https",
	};
	BucketUri u = {0};
	size_t rest = 0, pe, qs, seg;
	const char *path;
	Form form = FORM_FILE;
	int r;

	if (!uri || n == 0)
		return errbuf_set(err, -EINVAL, "destination_conf: empty");
	if (n > BUCKET_URI_MAX)
		return errbuf_set(err, -EINVAL, "destination_conf: longer than %u bytes", BUCKET_URI_MAX);
	if (memchr(uri, '\0', n))
		return errbuf_set(err, -EINVAL, "destination_conf: contains a NUL byte");
	r = parse_scheme(uri, n, &form, &rest, err);
	if (r < 0)
		return r;
	if (form == FORM_FILE) {
		r = check_file_path(uri + rest, n - rest, err);
		if (r == 0)
			r = dup_n(uri + rest, n - rest, &u.path, err);
		if (r < 0)
			return r;
		u.scheme = BUCKET_SCHEME_FILE;
		*ret = u;
		return 0;
	}

	for (size_t i = rest; i < n; i++) {
		unsigned char c = (unsigned char)uri[i];

		if (c == '#')
			return errbuf_set(err, -EINVAL, "destination_conf: a fragment ('#') is not allowed");
		if (c <= 0x20 || c >= 0x7f)
			return errbuf_set(err, -EINVAL, "destination_conf: a blank, control or non-ASCII byte (0x%02x)",
					  c);
	}
	pe = rest;
	while (pe < n && uri[pe] != '?')
		pe++;
	qs = pe < n ? pe + 1 : n;
	path = uri + rest;
	seg = 0;
	while (rest + seg < pe && path[seg] != '/')
		seg++;

	switch (form) {
	case FORM_S3:
	case FORM_R2:
	case FORM_GS:
		u.scheme = form == FORM_S3 ? BUCKET_SCHEME_S3 : form == FORM_R2 ? BUCKET_SCHEME_R2 : BUCKET_SCHEME_GS;
		r = check_bucket(scheme_word[form], path, seg, err);
		if (r == 0)
			r = dup_n(path, seg, &u.bucket, err);
		if (r == 0)
			r = parse_prefix(path + seg + (rest + seg < pe), pe - rest - seg - (rest + seg < pe), &u.prefix,
					 err);
		if (r == 0)
			r = parse_query(uri + qs, n - qs, form == FORM_R2 ? keys_r2 : keys_s3, scheme_word[form], &u,
					err);
		break;
	case FORM_AZBLOB:
	case FORM_AZURL: {
		const char *c;
		size_t cn = 0, after;

		u.scheme = BUCKET_SCHEME_AZURE;
		if (form == FORM_AZURL) {
			/* The account is the host's first label. */
			size_t an = 0;

			while (an < seg && path[an] != '.')
				an++;
			if (seg != an + strlen(AZURE_HOST_SUFFIX)) {
				r = errbuf_set(err, -EINVAL,
					       "destination_conf: an https URI must be an Azure blob container "
					       "(https://ACCOUNT" AZURE_HOST_SUFFIX "/CONTAINER)");
				break;
			}
			/* Host names ignore case: the account is its lower-case form. */
			r = dup_n(path, an, &u.account, err);
			for (size_t i = 0; r == 0 && u.account[i]; i++)
				if (u.account[i] >= 'A' && u.account[i] <= 'Z')
					u.account[i] = (char)(u.account[i] - 'A' + 'a');
			if (r == 0)
				r = check_lower("account", u.account, an, 3, 24, false, err);
		} else {
			r = check_lower("account", path, seg, 3, 24, false, err);
			if (r == 0)
				r = dup_n(path, seg, &u.account, err);
		}
		if (r < 0)
			break;
		c = path + seg + (rest + seg < pe);
		while (c + cn < uri + pe && c[cn] != '/')
			cn++;
		if (cn == 0) {
			r = errbuf_set(err, -EINVAL, "destination_conf: the Azure URI names no container");
			break;
		}
		r = check_lower("container", c, cn, 3, 63, true, err);
		if (r == 0)
			r = dup_n(c, cn, &u.bucket, err);
		after = (size_t)(c + cn - uri);
		if (r == 0)
			r = parse_prefix(uri + after + (after < pe), pe - after - (after < pe), &u.prefix, err);
		if (r == 0)
			r = parse_query(uri + qs, n - qs, form == FORM_AZURL ? keys_azurl : keys_azblob,
					scheme_word[form], &u, err);
		break;
	}
	case FORM_FILE:
		break;
	}
	if (r == 0)
		r = check_values(form, &u, lenient, err);
	if (r < 0) {
		bucket_uri_done(&u);
		return r;
	}
	*ret = u;
	return 0;
}

int bucket_uri_parse(const char *uri, size_t n, BucketUri *ret, ErrBuf *err)
{
	return parse_impl(uri, n, false, ret, err);
}

/* ---- the bucket's identity ---- */

/* Query keys that carry credentials: they do not name the bucket. */
static bool credential_key(const char *k, size_t n)
{
	static const char *const keys[] = {"access-key-id", "secret-access-key", "key", "sas", NULL};

	return in_list(keys, k, n);
}

/* Appends the lexical normal form of the absolute path p to out: no "." or
 * ".." components, no repeated or trailing '/' ("/" for the root). */
static void normal_path(const char *p, char *out, size_t *o)
{
	size_t start = *o;

	while (*p) {
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);

		if (len == 2 && p[0] == '.' && p[1] == '.') {
			while (*o > start && out[*o - 1] != '/')
				(*o)--;
			if (*o > start)
				(*o)--; /* the '/' before the dropped component */
		} else if (len > 0 && !(len == 1 && p[0] == '.')) {
			out[(*o)++] = '/';
			memcpy(out + *o, p, len);
			*o += len;
		}
		p = *end ? end + 1 : end;
	}
	if (*o == start)
		out[(*o)++] = '/';
	out[*o] = '\0';
}

int bucket_uri_match_key(const char *uri, size_t n, char *ret, size_t cap, ErrBuf *err)
{
	char copy[BUCKET_URI_MAX + 1], ep[BUCKET_URI_MAX + 1];
	size_t o = 0, q, i;
	BucketUri u;
	int r, k;

	if (!uri || n == 0)
		return errbuf_set(err, -EINVAL, "destination_conf: empty");
	if (n > BUCKET_URI_MAX)
		return errbuf_set(err, -EINVAL, "destination_conf: longer than %u bytes", BUCKET_URI_MAX);
	if (cap < BUCKET_URI_MAX + 1)
		return errbuf_set(err, -ENAMETOOLONG, "destination_conf: no room for its identity");
	/* The URI without its credentials (whatever their values: a REDACTED
	 * form names the same bucket), then parsed as usual. */
	q = 0;
	while (q < n && uri[q] != '?')
		q++;
	memcpy(copy, uri, q);
	o = q;
	for (i = q + 1; i < n;) {
		size_t end = i, eq;

		while (end < n && uri[end] != '&')
			end++;
		eq = i;
		while (eq < end && uri[eq] != '=')
			eq++;
		if (!credential_key(uri + i, eq - i)) {
			char sep = o == q ? '?' : '&';

			copy[o++] = sep;
			memcpy(copy + o, uri + i, end - i);
			o += end - i;
		}
		i = end + 1;
	}
	copy[o] = '\0';
	r = parse_impl(copy, o, true, &u, err);
	explicit_bzero(copy, sizeof(copy));
	if (r < 0)
		return r;
	if (u.scheme == BUCKET_SCHEME_FILE) {
		memcpy(ret, "file://", 7);
		o = 7;
		normal_path(u.path, ret, &o); /* never longer than the path */
		bucket_uri_done(&u);
		return 0;
	}
	ep[0] = '\0';
	if (u.endpoint) {
		/* Scheme and host ignore case. */
		size_t h = strstr(u.endpoint, "://") ? (size_t)(strstr(u.endpoint, "://") - u.endpoint) + 3 : 0;
		size_t he = h + strcspn(u.endpoint + h, "/");

		for (i = 0; u.endpoint[i]; i++)
			ep[i] = i < he && u.endpoint[i] >= 'A' && u.endpoint[i] <= 'Z' ? (char)(u.endpoint[i] + 32)
										       : u.endpoint[i];
		ep[i] = '\0';
	}
	if (u.scheme == BUCKET_SCHEME_AZURE)
		k = snprintf(ret, cap, "azblob://%s/%s/%s%s%s", u.account, u.bucket, u.prefix,
			     ep[0] ? "?endpoint=" : "", ep);
	else
		k = snprintf(ret, cap, "%s://%s/%s%s%s%s%s%s", bucket_scheme_name(u.scheme), u.bucket, u.prefix,
			     ep[0] || u.account_id ? "?" : "", ep[0] ? "endpoint=" : "", ep,
			     !u.account_id ? ""
			     : ep[0]       ? "&account-id="
					   : "account-id=",
			     u.account_id ? u.account_id : "");
	bucket_uri_done(&u);
	if (k < 0 || (size_t)k >= cap)
		return errbuf_set(err, -ENAMETOOLONG, "destination_conf: no room for its identity");
	return 0;
}

bool bucket_uri_same(const char *a, const char *b)
{
	char ka[BUCKET_URI_MAX + 1], kb[BUCKET_URI_MAX + 1];

	if (!a || !b || bucket_uri_match_key(a, strlen(a), ka, sizeof(ka), NULL) < 0 ||
	    bucket_uri_match_key(b, strlen(b), kb, sizeof(kb), NULL) < 0)
		return false;
	return strcmp(ka, kb) == 0;
}

int bucket_azure_account_parse(const char *arg, char **ret_copy, BucketAzureAccount *ret, ErrBuf *err)
{
	char *copy, *eq, *at;
	uint8_t *raw;
	size_t raw_n;
	int r;

	copy = strdup(arg);
	if (!copy)
		return errbuf_set(err, -ENOMEM, "out of memory");
	eq = strchr(copy, '=');
	if (!eq) {
		r = errbuf_set(err, -EINVAL, "--azure-storage: expected ACCOUNT=KEY[@BLOB_ENDPOINT]");
		goto fail;
	}
	*eq = '\0';
	r = check_lower("account", copy, strlen(copy), 3, 24, false, err);
	if (r < 0) {
		r = errbuf_set(err, -EINVAL,
			       "--azure-storage: '%.24s' is not an Azure account name (3..24 of [a-z0-9])", copy);
		goto fail;
	}
	at = strchr(eq + 1, '@');
	if (at) {
		*at = '\0';
		r = check_endpoint(at + 1, err);
		if (r < 0) {
			r = errbuf_set(err, -EINVAL, "--azure-storage %s: the blob endpoint is not an http(s) URL",
				       copy);
			goto fail;
		}
	}
	if (digest_unbase64(eq + 1, strlen(eq + 1), &raw, &raw_n) < 0) {
		r = errbuf_set(err, -EINVAL, "--azure-storage %s: the key is not base64", copy);
		goto fail;
	}
	explicit_bzero(raw, raw_n);
	free(raw);
	*ret = (BucketAzureAccount){.account = copy, .key = eq + 1, .endpoint = at ? at + 1 : NULL};
	*ret_copy = copy;
	return 0;
fail:
	explicit_bzero(copy, strlen(arg));
	free(copy);
	return r;
}

/* ---- REDACTED ---- */

static bool secret_key(const char *k, size_t n)
{
	static const char *const secret[] = {"secret-access-key",    "key",   "sas",      "sig",    "x-amz-signature",
					     "x-amz-security-token", "token", "password", "secret", NULL};

	for (const char *const *s = secret; *s; s++)
		if (strlen(*s) == n && strncasecmp(*s, k, n) == 0)
			return true;
	return false;
}

/* Appends p[0..n) to out if it fits whole; false (and nothing) if not. */
static bool put(char *out, size_t cap, size_t *o, const char *p, size_t n)
{
	if (*o + n + 1 > cap)
		return false;
	memcpy(out + *o, p, n);
	*o += n;
	out[*o] = '\0';
	return true;
}

int bucket_uri_redact(const char *uri, char *out, size_t cap)
{
	size_t n = strlen(uri), o = 0, i = 0, auth, auth_end, q;
	const char *sep = strstr(uri, "://");

	if (cap == 0)
		return -ENAMETOOLONG;
	out[0] = '\0';
	/* User info in the authority: "scheme://user:pass@host" keeps "scheme://REDACTED@host". */
	auth = sep ? (size_t)(sep - uri) + 3 : 0;
	auth_end = auth;
	while (auth_end < n && uri[auth_end] != '/' && uri[auth_end] != '?' && uri[auth_end] != '#')
		auth_end++;
	q = auth_end;
	while (q < n && uri[q] != '?')
		q++;
	if (sep) {
		const char *at = memchr(uri + auth, '@', auth_end - auth);

		if (at) {
			if (!put(out, cap, &o, uri, auth) || !put(out, cap, &o, REDACTED, strlen(REDACTED)))
				return -ENAMETOOLONG;
			i = (size_t)(at - uri);
		}
	}
	if (!put(out, cap, &o, uri + i, (q < n ? q + 1 : n) - i))
		return -ENAMETOOLONG;
	/* The query: every secret value replaced (also inside a decoded sas=). */
	i = q + 1;
	while (i < n) {
		size_t end = i, eq;

		while (end < n && uri[end] != '&' && uri[end] != '#')
			end++;
		eq = i;
		while (eq < end && uri[eq] != '=')
			eq++;
		if (eq < end && secret_key(uri + i, eq - i)) {
			if (!put(out, cap, &o, uri + i, eq + 1 - i) || !put(out, cap, &o, REDACTED, strlen(REDACTED)))
				return -ENAMETOOLONG;
		} else if (!put(out, cap, &o, uri + i, end - i)) {
			return -ENAMETOOLONG;
		}
		if (end < n && !put(out, cap, &o, uri + end, 1))
			return -ENAMETOOLONG;
		i = end + 1;
		if (end < n && uri[end] == '#') /* a fragment is not a query: dropped */
			break;
	}
	return 0;
}

char *bucket_uri_redact_dup(const char *uri)
{
	/* REDACTED may be longer than what it replaces ("key=a"): allow for it. */
	size_t cap = strlen(uri) + 1, k = 0;
	char *out;

	for (const char *p = uri; *p; p++)
		if (*p == '=' || *p == '@')
			k++;
	cap += k * strlen(REDACTED);
	out = malloc(cap);
	if (out && bucket_uri_redact(uri, out, cap) < 0) {
		free(out);
		return NULL;
	}
	return out;
}

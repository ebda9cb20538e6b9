/* SPDX-License-Identifier: MIT */
/*
 * Buckets: the destination_conf parser (pure: it touches no file) and the
 * dispatch of a Bucket's operations to its scheme. Object names are checked
 * here, once, for every scheme.
 *
 * Recognised URIs:
 *   file:///absolute/dir                       supported (bucket_file.c)
 *   s3://bucket[/dir][?region=...]             Cloudflare's forms, answered
 *   gs://bucket[/dir]                          "not supported yet" until their
 *   r2://bucket?account-id=...                 scheme files exist
 *   https://ACCOUNT.blob.core.windows.net/...  (Azure blob)
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "bucket/bucket_int.h"

#define FILE_EXPECTED "expected file:///absolute/dir"
#define AZURE_HOST_SUFFIX ".blob.core.windows.net"

typedef enum Scheme {
	SCHEME_FILE,
	SCHEME_S3,
	SCHEME_GS,
	SCHEME_R2,
	SCHEME_AZURE,
} Scheme;

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* s[0..n) equals the lowercase word w, without regard to case. */
static bool word_eq(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

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

/* The URI's scheme, and where its part after "://" starts. */
static int parse_scheme(const char *uri, size_t n, Scheme *ret, size_t *ret_rest, ErrBuf *err)
{
	size_t i = 0, rest;

	if (n == 0 || !is_alpha(uri[0]))
		return errbuf_set(err, -EINVAL, "destination_conf: not a URI; " FILE_EXPECTED);
	while (i < n && (is_alpha(uri[i]) || is_digit(uri[i]) || uri[i] == '+' || uri[i] == '-' || uri[i] == '.'))
		i++;
	if (n - i < 3 || memcmp(uri + i, "://", 3) != 0)
		return errbuf_set(err, -EINVAL, "destination_conf: not a URI; " FILE_EXPECTED);
	rest = i + 3;

	if (word_eq(uri, i, "file")) {
		*ret = SCHEME_FILE;
	} else if (word_eq(uri, i, "s3")) {
		*ret = SCHEME_S3;
	} else if (word_eq(uri, i, "gs")) {
		*ret = SCHEME_GS;
	} else if (word_eq(uri, i, "r2")) {
		*ret = SCHEME_R2;
	} else if (word_eq(uri, i, "https")) {
		const char *host = uri + rest;
		size_t hn = 0, sn = strlen(AZURE_HOST_SUFFIX);

		while (rest + hn < n && host[hn] != '/' && host[hn] != '?' && host[hn] != '#')
			hn++;
		if (hn <= sn || strncasecmp(host + hn - sn, AZURE_HOST_SUFFIX, sn) != 0)
			return errbuf_set(err, -EINVAL,
					  "destination_conf: an https URI must be an Azure blob container "
					  "(https://ACCOUNT" AZURE_HOST_SUFFIX "/CONTAINER)");
		*ret = SCHEME_AZURE;
	} else {
		return errbuf_set(err, -EINVAL, "destination_conf: unknown scheme '%.*s'; " FILE_EXPECTED,
				  i > 16 ? 16 : (int)i, uri);
	}
	*ret_rest = rest;
	return 0;
}

int bucket_uri_check(const char *uri, size_t n, ErrBuf *err)
{
	static const char *const names[] = {
		[SCHEME_S3] = "s3",
		[SCHEME_GS] = "gs",
		[SCHEME_R2] = "r2",
	};
	Scheme scheme;
	size_t rest, bn = 0;
	int r;

	if (!uri || n == 0)
		return errbuf_set(err, -EINVAL, "destination_conf: empty");
	if (n > BUCKET_URI_MAX)
		return errbuf_set(err, -EINVAL, "destination_conf: longer than %u bytes", BUCKET_URI_MAX);
	if (memchr(uri, '\0', n))
		return errbuf_set(err, -EINVAL, "destination_conf: contains a NUL byte");
	r = parse_scheme(uri, n, &scheme, &rest, err);
	if (r < 0)
		return r;
	switch (scheme) {
	case SCHEME_FILE:
		return check_file_path(uri + rest, n - rest, err);
	case SCHEME_AZURE:
		return errbuf_set(err, -EPROTONOSUPPORT,
				  "destination_conf: Azure blob storage is not supported by this controller yet");
	case SCHEME_S3:
	case SCHEME_GS:
	case SCHEME_R2:
		while (rest + bn < n && uri[rest + bn] != '/' && uri[rest + bn] != '?')
			bn++;
		if (bn == 0)
			return errbuf_set(err, -EINVAL, "destination_conf: the %s URI names no bucket", names[scheme]);
		return errbuf_set(err, -EPROTONOSUPPORT,
				  "destination_conf: scheme '%s' is not supported by this controller yet",
				  names[scheme]);
	}
	return errbuf_set(err, -EINVAL, "destination_conf: unknown scheme");
}

int bucket_uri_normalize(const char *uri, char *ret, size_t cap, ErrBuf *err)
{
	static const char prefix[] = "file://";
	size_t n = uri ? strlen(uri) : 0, rest, o;
	const char *p, *end;
	Scheme scheme;
	int r;

	r = bucket_uri_check(uri, n, err);
	if (r < 0)
		return r;
	r = parse_scheme(uri, n, &scheme, &rest, err);
	if (r < 0)
		return r;
	if (cap < n + 1 || cap < sizeof(prefix) + 1)
		return errbuf_set(err, -ENAMETOOLONG, "destination_conf: no room for its normal form");
	if (scheme != SCHEME_FILE) {
		memcpy(ret, uri, n + 1);
		return 0;
	}
	/* The normal form is never longer than the URI: components are only
	 * dropped, and the prefix's length stays. */
	memcpy(ret, prefix, sizeof(prefix) - 1);
	o = sizeof(prefix) - 1;
	for (p = uri + rest; *p; p = *end ? end + 1 : end) {
		size_t len;

		end = strchrnul(p, '/');
		len = (size_t)(end - p);
		if (len == 0 || (len == 1 && p[0] == '.'))
			continue;
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			while (o > sizeof(prefix) - 1 && ret[o - 1] != '/')
				o--;
			if (o > sizeof(prefix) - 1)
				o--; /* the '/' before the dropped component */
			continue;
		}
		ret[o++] = '/';
		memcpy(ret + o, p, len);
		o += len;
	}
	if (o == sizeof(prefix) - 1)
		ret[o++] = '/'; /* the root itself */
	ret[o] = '\0';
	return 0;
}

int bucket_open(const char *uri, const BucketConfig *cfg, Bucket **ret, ErrBuf *err)
{
	Scheme scheme;
	size_t rest;
	int r;

	r = bucket_uri_check(uri, uri ? strlen(uri) : 0, err);
	if (r < 0)
		return r;
	r = parse_scheme(uri, strlen(uri), &scheme, &rest, err);
	if (r < 0)
		return r;
	if (scheme != SCHEME_FILE) /* bucket_uri_check refused it already */
		return errbuf_set(err, -EPROTONOSUPPORT, "destination_conf: scheme not supported");
	return bucket_file_open(uri + rest, cfg, ret, err);
}

void bucket_free(Bucket *b)
{
	if (b)
		b->ops->free(b);
}

/* Object names: 1..200 bytes of [A-Za-z0-9._-], not starting with '.' (so
 * never "." or "..", and never a temporary file's name). */
static int check_name(const char *name, ErrBuf *err)
{
	size_t n;

	if (!name || !*name)
		return errbuf_set(err, -EINVAL, "bucket: empty object name");
	n = strnlen(name, 201);
	if (n > 200)
		return errbuf_set(err, -EINVAL, "bucket: object name longer than 200 bytes");
	if (name[0] == '.')
		return errbuf_set(err, -EINVAL, "bucket: object name '%s' starts with '.'", name);
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!is_alpha(c) && !is_digit(c) && c != '.' && c != '_' && c != '-')
			return errbuf_set(err, -EINVAL,
					  "bucket: object name '%s' has a byte outside [A-Za-z0-9._-] at offset %zu",
					  name, i);
	}
	return 0;
}

int bucket_put_bytes(Bucket *b, const char *name, const void *data, size_t n, ErrBuf *err)
{
	int r = check_name(name, err);

	return r < 0 ? r : b->ops->put_bytes(b, name, data, n, err);
}

int bucket_put_file(Bucket *b, const char *name, const char *path, ErrBuf *err)
{
	int r = check_name(name, err);

	if (r < 0)
		return r;
	if (!path || !*path)
		return errbuf_set(err, -EINVAL, "bucket: no source file for object %s", name);
	return b->ops->put_file(b, name, path, err);
}

int bucket_get_bytes(Bucket *b, const char *name, size_t max, uint8_t **ret, size_t *ret_n, ErrBuf *err)
{
	int r = check_name(name, err);

	return r < 0 ? r : b->ops->get_bytes(b, name, max, ret, ret_n, err);
}

int bucket_local_path(Bucket *b, const char *name, char *ret, size_t cap, ErrBuf *err)
{
	int r = check_name(name, err);

	return r < 0 ? r : b->ops->local_path(b, name, ret, cap, err);
}

int bucket_remove(Bucket *b, const char *name, ErrBuf *err)
{
	int r = check_name(name, err);

	return r < 0 ? r : b->ops->remove(b, name, err);
}

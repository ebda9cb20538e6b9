/* SPDX-License-Identifier: MIT */
/*
 * The neutral API error (see apierror.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "model/apierror.h"

static const struct {
	const char *name;
	int code;
} kinds[] = {
	[API_ERR_NONE] = {"none", 0},
	[API_ERR_INTERNAL] = {"internal", -EIO},
	[API_ERR_BAD_BODY] = {"bad_body", -EBADMSG},
	[API_ERR_INVALID] = {"invalid", -EINVAL},
	[API_ERR_UNVERIFIED] = {"unverified", -EPERM},
	[API_ERR_NO_TARGET] = {"no_target", -ENODEV},
	[API_ERR_MISMATCH] = {"mismatch", -EACCES},
	[API_ERR_UNAUTHENTICATED] = {"unauthenticated", -EACCES},
	[API_ERR_FORBIDDEN] = {"forbidden", -EPERM},
	[API_ERR_NOT_FOUND] = {"not_found", -ENOENT},
	[API_ERR_NO_ROUTE] = {"no_route", -ENOENT},
	[API_ERR_METHOD] = {"method", -EOPNOTSUPP},
	[API_ERR_CONFLICT] = {"conflict", -EALREADY},
	[API_ERR_TOO_LARGE] = {"too_large", -E2BIG},
	[API_ERR_UNSUPPORTED_MEDIA] = {"unsupported_media", -EPROTONOSUPPORT},
	[API_ERR_BUSY] = {"busy", -EBUSY},
	[API_ERR_UNAVAILABLE] = {"unavailable", -ESHUTDOWN},
	[API_ERR_URI_TOO_LONG] = {"uri_too_long", -ENAMETOOLONG},
	[API_ERR_HEADERS_TOO_LARGE] = {"headers_too_large", -EMSGSIZE},
};

int apierror_errno(ApiErrorKind kind)
{
	return (unsigned)kind < ARRAY_SIZE(kinds) ? kinds[kind].code : -EIO;
}

const char *apierror_kind_name(ApiErrorKind kind)
{
	return (unsigned)kind < ARRAY_SIZE(kinds) ? kinds[kind].name : "unknown";
}

static void set_field(ApiError *e, const char *field, size_t n)
{
	if (n >= sizeof(e->field))
		n = sizeof(e->field) - 1;
	memcpy(e->field, field, n);
	e->field[n] = '\0';
}

static void start(ApiError *e, ApiErrorKind kind)
{
	e->kind = kind;
	e->retry_after_s = 0;
	e->allow = NULL;
	e->field[0] = '\0';
	e->msg[0] = '\0';
}

int apierror_set(ApiError *e, ApiErrorKind kind, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return apierror_errno(kind);
	start(e, kind);
	if (field)
		set_field(e, field, strlen(field));
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return apierror_errno(kind);
}

static bool field_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
	       c == '[' || c == ']';
}

/* The length of a leading "<field path>: " in msg, the path alone in *ret_n;
 * 0 when msg does not start so. */
static size_t field_prefix(const char *msg, size_t *ret_n)
{
	size_t n = 0;

	while (field_char(msg[n]))
		n++;
	if (n == 0 || msg[n] != ':' || msg[n + 1] != ' ')
		return 0;
	*ret_n = n;
	return n + 2;
}

static void set_msg(ApiError *e, const char *msg)
{
	snprintf(e->msg, sizeof(e->msg), "%s", msg);
}

int apierror_from_msg(ApiError *e, ApiErrorKind kind, const char *msg)
{
	size_t n = 0, skip;

	if (!e)
		return apierror_errno(kind);
	start(e, kind);
	skip = field_prefix(msg, &n);
	if (skip)
		set_field(e, msg, n);
	set_msg(e, msg + skip);
	return apierror_errno(kind);
}

static bool starts_with_field(const char *msg, const char *name)
{
	size_t n = 0;

	return name && field_prefix(msg, &n) && n == strlen(name) && strncmp(msg, name, n) == 0;
}

int apierror_with_field(ApiError *e, ApiErrorKind kind, const char *field, const char *alias, const char *msg)
{
	size_t skip = 0;

	if (!e)
		return apierror_errno(kind);
	start(e, kind);
	set_field(e, field, strlen(field));
	if (starts_with_field(msg, field))
		skip = strlen(field) + 2;
	else if (starts_with_field(msg, alias))
		skip = strlen(alias) + 2;
	set_msg(e, msg + skip);
	return apierror_errno(kind);
}

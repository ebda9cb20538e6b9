/* SPDX-License-Identifier: MIT */
/* Text for people from API objects (render.h). */
#include "pcapctl/render.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

char *render_clean_dup(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(n + 1);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch == 0x7f) {
			out[o++] = '?';
		} else if (ch == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
			   (unsigned char)s[i + 1] <= 0x9f) {
			/* U+0080..U+009F: C1 controls (CSI is U+009B) */
			out[o++] = '?';
			i++;
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
	return out;
}

size_t render_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

char *render_value(const json_t *v)
{
	char num[64];
	char *dump, *out;
	int r;

	switch (v ? json_typeof(v) : JSON_NULL) {
	case JSON_STRING:
		/* An empty string ("validated" while pending) shows as unset. */
		return render_clean_dup(json_string_length(v) ? json_string_value(v) : "-");
	case JSON_INTEGER:
		r = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		r = snprintf(num, sizeof(num), "%.15g", json_real_value(v));
		break;
	case JSON_TRUE:
		return strdup("true");
	case JSON_FALSE:
		return strdup("false");
	case JSON_OBJECT:
	case JSON_ARRAY:
		dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!dump)
			return NULL;
		out = render_clean_dup(dump);
		free(dump);
		return out;
	case JSON_NULL:
	default:
		return strdup("-");
	}
	if (r < 0 || (size_t)r >= sizeof(num))
		return strdup("?");
	return strdup(num);
}

char *render_short_time(const char *s)
{
	/* YYYY-MM-DDTHH:MM:SS.ffffffZ: drop ".ffffff" when a 'Z' ends it. */
	const char *dot = strlen(s) > 19 && s[19] == '.' ? s + 19 : NULL;
	size_t k = 1;
	char *tmp, *out;

	if (!dot)
		return render_clean_dup(s);
	while (dot[k] >= '0' && dot[k] <= '9')
		k++;
	if (k == 1 || (dot[k] != 'Z' && dot[k] != 'z') || dot[k + 1] != '\0')
		return render_clean_dup(s);
	tmp = malloc(19 + 2);
	if (!tmp)
		return NULL;
	memcpy(tmp, s, 19);
	tmp[19] = 'Z';
	tmp[20] = '\0';
	out = render_clean_dup(tmp);
	free(tmp);
	return out;
}

int render_object(FILE *f, const json_t *obj)
{
	const char *key;
	json_t *v;
	size_t width = 0;

	json_object_foreach((json_t *)obj, key, v)
	{
		size_t w = render_width(key);

		if (w > width)
			width = w;
	}
	json_object_foreach((json_t *)obj, key, v)
	{
		char *k = render_clean_dup(key);
		char *text = render_value(v);
		int r = -ENOMEM;

		if (k && text)
			r = fprintf(f, "%s:%*s %s\n", k, (int)(width - render_width(key)), "", text) < 0 ? -EIO : 0;
		free(k);
		free(text);
		if (r < 0)
			return r;
	}
	return 0;
}

static bool shell_safe(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       strchr("@%+=:,./_-", ch) != NULL;
}

char *render_shell_quote(const char *s)
{
	size_t n = strlen(s), quotes = 0, o = 0;
	bool safe = n > 0;
	char *out;

	for (size_t i = 0; i < n; i++) {
		if (!shell_safe((unsigned char)s[i]))
			safe = false;
		if (s[i] == '\'')
			quotes++;
	}
	if (safe)
		return strdup(s);
	out = malloc(n + 3 * quotes + 3);
	if (!out)
		return NULL;
	out[o++] = '\'';
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\'') {
			memcpy(out + o, "'\\''", 4);
			o += 4;
		} else {
			out[o++] = s[i];
		}
	}
	out[o++] = '\'';
	out[o] = '\0';
	return out;
}

void render_bytes(unsigned long long n, char *out, size_t cap)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	size_t u = 0;
	int r;

	if (cap == 0)
		return;
	if (n < 1024) {
		r = snprintf(out, cap, "%llu B", n);
	} else {
		v /= 1024;
		while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
			v /= 1024;
			u++;
		}
		r = snprintf(out, cap, "%.1f %s", v, units[u]);
	}
	if (r < 0 || (size_t)r >= cap)
		out[0] = '\0';
}

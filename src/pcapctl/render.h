/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Text for people from API objects: pure helpers shared by pcapctl's commands
 * and its tables. Whatever the server sends is cleaned before it reaches a
 * terminal: control characters (C0, DEL and the C1 range in UTF-8) become
 * '?', so an answer cannot move the cursor or retitle the window.
 */

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

/* malloc'd copy of s with control characters replaced by '?'; NULL on ENOMEM. */
char *render_clean_dup(const char *s);

/* Display width of UTF-8 text: code points (continuation bytes do not count). */
size_t render_width(const char *s);

/* A JSON value as display text (malloc'd, cleaned): strings as they are
 * ("-" when empty), numbers in decimal, true/false, "-" for null or absent (v NULL),
 * objects and arrays as compact JSON. NULL on ENOMEM. */
char *render_value(const json_t *v);

/* "2021-12-20T17:29:20.641845Z" → "2021-12-20T17:29:20Z": a table needs no
 * microseconds. Anything else is copied unchanged. malloc'd, cleaned. */
char *render_short_time(const char *s);

/* Writes every member of obj as "key:  value" lines, values aligned, in the
 * object's order. Returns 0 or -ENOMEM / -EIO. */
int render_object(FILE *f, const json_t *obj);

/* s quoted for a POSIX shell when it needs it (malloc'd): safe strings stay
 * bare, the rest is single-quoted with ' written as '\''. */
char *render_shell_quote(const char *s);

/* "12.3 MiB" style size into out (always terminated). */
void render_bytes(unsigned long long n, char *out, size_t cap);

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The web dashboard's files, built into the binary, and their answers.
 *
 * The files live in web/ at the top of the tree (HTML, CSS, JavaScript
 * modules, no build step of their own). At build time src/web/embed.py turns
 * them, and js/bounds.js (written by src/web/bounds.c from the API's own
 * constants), into one C table (webassets.c in the build directory): nothing
 * is read from disk or fetched at run time.
 *
 * Every answer carries the page's security policy: a Content-Security-Policy
 * that allows only the controller's own scripts, styles, images and API (no
 * inline script or style, no framing, no form posts elsewhere),
 * X-Content-Type-Options: nosniff, X-Frame-Options: DENY and
 * Referrer-Policy: no-referrer. Answers revalidate (Cache-Control: no-cache)
 * against a strong ETag made from the content, so a new controller is never
 * paired with an old cached script.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"

typedef struct WebAsset {
	const char *path;         /* "/index.html", "/js/app.js", ... */
	const char *content_type; /* with charset for text */
	const uint8_t *data;
	size_t len;
	const char *etag; /* "\"<hex>\"", of the content */
} WebAsset;

/* The generated table (webassets.c), sorted by path. */
extern const WebAsset web_assets[];
extern const size_t web_assets_count;

#define WEB_CSP                                                                                                        \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "                \
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* The asset served at path: "/" is /index.html; NULL if none. */
const WebAsset *web_asset_find(const char *path);

/* If path names a dashboard file, answers req and returns true: GET and HEAD
 * get the file (or 304 when If-None-Match holds its ETag), any other method
 * 405 with Allow. Else returns false and leaves req alone. */
bool web_serve(HttpRequest *req, const char *path);

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The HTTP face of the controller: one handler (api_handle) that routes every
 * request to a dialect. Routes:
 *   /client/v4/accounts/{account}/pcaps…  and  /accounts/{account}/pcaps…
 *                      Cloudflare PCAPs (cloudflare.c)
 *   /client/v4/accounts/{account}/tokens/verify  and  /accounts/{account}/tokens/verify
 *                      Cloudflare's token check, with pcapd's scope (tokens.c)
 *   /agent/v1/…        the agent protocol (agentapi.c, docs/AGENT-PROTOCOL.md)
 *   /healthz           liveness: 200 "ok"
 *   /, /app.css, /js/… the web dashboard (src/web, built into the binary)
 * Anything else: 404 with the Cloudflare envelope (code 7003).
 */

#include "controller/service.h"
#include "http/http.h"

/* Request bodies of the public API are small JSON objects: give this to
 * HttpConfig.max_body; a larger body is answered 413 (code 1005). */
#define API_MAX_BODY (64u * 1024u)
#define API_MAX_SAMPLE_BODY (64u * 1024u * 1024u) /* an agent's answer to a sample (a pcap) */

typedef struct ApiConfig {
	Service *svc;      /* borrowed */
	size_t list_limit; /* newest jobs in a list answer; 0 = 50 (Cloudflare's) */
} ApiConfig;

typedef struct Api Api;

int api_new(const ApiConfig *cfg, Api **ret, ErrBuf *err);
void api_free(Api *a); /* NULL is fine */
/* The HttpHandler: ctx is the Api. */
void api_handle(void *ctx, HttpRequest *req);
/* HttpConfig.body_limit: API_MAX_SAMPLE_BODY for agents' sample answers,
 * API_MAX_BODY for everything else. */
size_t api_body_limit(void *ctx, const char *method, const char *path);

/* Dialect entry points (called by api_handle; sub is the path after the prefix). */
void cloudflare_handle(Api *a, HttpRequest *req, const char *account, const char *sub);
void agentapi_handle(Api *a, HttpRequest *req, const char *sub);
void tokens_handle(Api *a, HttpRequest *req, const char *account, const char *sub);
Service *api_service(Api *a);
/* The list cache: answers req (200) from the account's cached list if it was
 * rendered at jobs generation gen; else false. */
bool api_list_cached(Api *a, HttpRequest *req, const char *account, uint64_t gen);
/* Keeps body (malloc'd, taken) as the account's list at generation gen. */
void api_list_store(Api *a, const char *account, uint64_t gen, char *body, size_t len);
size_t api_list_limit(Api *a);

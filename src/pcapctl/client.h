/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * pcapctl's HTTP client for the Cloudflare PCAPs API as pcapd serves it:
 * src/httpc underneath, the envelope {success, errors, messages, result} parsed
 * here, so that commands see either a result or one ClientError.
 *
 * Every request goes to {url}/client/v4/accounts/{account}{path}, with
 * "Authorization: Bearer {token}". JSON answers are buffered up to
 * CLIENT_MAX_JSON bytes (a larger one is an error, never a bigger buffer);
 * downloads are streamed to a descriptor and never held in memory.
 *
 * Not thread-safe: one Client per thread (pcapctl has one).
 */

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLIENT_MAX_JSON (16u << 20)      /* bytes of a JSON answer we buffer */
#define CLIENT_MAX_ERROR_BODY (1u << 20) /* bytes of an error answer to a download */

typedef struct ClientConfig {
	const char *url;                     /* http:// or https:// base; "/client/v4" at its end is fine */
	const char *account;                 /* account id, percent-encoded into the path */
	const char *token;                   /* bearer token; no CR/LF */
	const char *cacert;                  /* CA file for https, or NULL for the system's */
	bool insecure;                       /* skip certificate and host name checks */
	const volatile sig_atomic_t *cancel; /* when non-zero, a transfer in flight is aborted; may be NULL */
} ClientConfig;

typedef enum ClientErrorKind {
	CLIENT_ERR_NONE,
	CLIENT_ERR_TRANSPORT, /* no answer, or the transfer broke: "cannot reach URL: ..." */
	CLIENT_ERR_API,       /* the server answered with an error (status, code, message) */
	CLIENT_ERR_PROTOCOL,  /* the answer is not what the API promises (not JSON, too large) */
	CLIENT_ERR_LOCAL,     /* our side failed: memory, writing the output */
	CLIENT_ERR_CANCELLED, /* *cancel became non-zero */
} ClientErrorKind;

typedef struct ClientError {
	ClientErrorKind kind;
	long http_status;  /* 0 when there was no answer */
	long code;         /* errors[0].code of an API error, 0 if none */
	char message[512]; /* the server's words for CLIENT_ERR_API (raw: sanitise before printing) */
} ClientError;

typedef struct Client Client;

/* Validates cfg (URL scheme, token characters) and prepares an HTTP client.
 * -EINVAL for a bad configuration (err->kind CLIENT_ERR_LOCAL, message names
 * what is wrong), -ENOMEM. */
int client_new(const ClientConfig *cfg, Client **ret, ClientError *err);
void client_free(Client *c); /* NULL is fine */

/* The base URL as the user gave it, without trailing '/' (for messages). */
const char *client_url(const Client *c);

/* method is GET, POST, PUT or DELETE; path starts with '/' and is relative to
 * the account ("/pcaps", "/pcaps/ID/stop"); body (may be NULL) is sent as
 * JSON. On a 2xx answer whose envelope says success, *ret_result gets a new
 * reference to `result` (JSON null when absent, NULL for an empty answer such
 * as 204). Returns 0, or -errno with err filled. */
int client_call(Client *c, const char *method, const char *path, json_t *body, json_t **ret_result, ClientError *err);

/* Called after each chunk written by client_download, with the running total. */
typedef void (*ClientProgressFn)(void *ctx, uint64_t bytes);

/* GETs path with "Accept: application/vnd.tcpdump.pcap" and writes a 2xx body
 * to fd as it arrives (out_name names fd in messages). A non-2xx answer is
 * parsed as an envelope into err and nothing is written. *ret_bytes (may be
 * NULL) gets the bytes written on success. Returns 0 or -errno. */
int client_download(Client *c, const char *path, int fd, const char *out_name, ClientProgressFn progress,
		    void *progress_ctx, uint64_t *ret_bytes, ClientError *err);

/* client_download of a live stream (Accept: application/x-pcapng): the body
 * goes to fd until the stream ends; ret_end[end_cap] gets the server's word
 * on how it ended (its Pcapd-Stream-End trailer: "complete..." or "cut: ..."),
 * "" if none came. */
int client_stream(Client *c, const char *path, int fd, const char *out_name, uint64_t *ret_bytes, char *ret_end,
		  size_t end_cap, ClientError *err);

/* Pure: interprets an answer of the given HTTP status whose body is p[0..n).
 * 2xx with success true (or absent) → 0 and *ret_result as client_call; an
 * error envelope, or any non-2xx → -EREMOTEIO with kind CLIENT_ERR_API and
 * errors[0]'s code and message (or the first line of a non-JSON body); a 2xx
 * answer that is not an envelope → -EPROTO, CLIENT_ERR_PROTOCOL. */
int client_parse_envelope(const char *p, size_t n, long status, json_t **ret_result, ClientError *err);

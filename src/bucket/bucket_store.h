/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/bucket: what the object-store schemes (bucket_s3.c,
 * bucket_azure.c) share — endpoint URLs taken apart, the store's answer turned
 * into an error, small XML readers, file bodies streamed and hashed.
 *
 * Errors from a store's answer (store_fail): the message names the method,
 * host, path, HTTP status and the store's error code and message
 * ("PUT 127.0.0.1:7480/b/o: HTTP 403 SignatureDoesNotMatch: ..."); the code
 * tells callers what to do:
 *   404 -> -ENOENT, 401/403 -> -EACCES, 400/405/411/413 -> -EINVAL,
 *   409/412 -> -EEXIST, 429 and 5xx -> -EAGAIN (worth a retry), else -EPROTO.
 * Transport failures keep httpc's codes (-ECONNREFUSED, -ETIMEDOUT, ...).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bucket/bucket_int.h"
#include "httpc/httpc.h"

#define STORE_MAX_ANSWER (1u << 20)        /* bound of an answer we parse (XML) */
#define STORE_TIMEOUT_MS 120000u           /* a small request: its whole time */
#define STORE_STALL_MS 60000u              /* a transfer that moves no byte this long fails */
#define STORE_SINGLE_PUT_MAX (64ull << 20) /* put_file above this goes in parts */
#define STORE_PART_SIZE (16u << 20)        /* part size of put_file's uploads */

/* An endpoint URL taken apart: "https://h:9000/base" -> scheme "https",
 * hostport "h:9000", path "/base" (or ""). */
typedef struct StoreEndpoint {
	char *scheme;
	char *hostport;
	char *path;
} StoreEndpoint;

int store_endpoint_parse(const char *url, StoreEndpoint *ret, ErrBuf *err);
void store_endpoint_done(StoreEndpoint *e);

/* A new Httpc for a store (TLS settings from cfg). */
int store_http_new(const BucketConfig *cfg, Httpc **ret, ErrBuf *err);

/* The first <tag>value</tag> of an XML answer, entities decoded, into
 * out[cap]. false when absent or too long. */
bool store_xml_value(const char *xml, const char *tag, char *out, size_t cap);

/* Words a refused request (see above) and returns the code for its status.
 * code_hdr names a header holding the store's error code when the answer
 * has no body (Azure's x-ms-error-code for HEAD), or NULL. */
int store_fail(ErrBuf *err, const char *method, const char *url, const HttpcResponse *resp, const char *code_hdr);

/* Reads a regular file for a streamed body: open, size, and a read
 * callback over pread. */
typedef struct StoreFile {
	int fd;
	uint64_t size;
	uint64_t base; /* the body starts here (a part of a file) */
	int err;       /* errno of a failed pread */
} StoreFile;

int store_file_open(const char *path, StoreFile *ret, ErrBuf *err);
void store_file_close(StoreFile *f);
ssize_t store_file_read(void *ctx, uint64_t off, void *buf, size_t n); /* HttpcReadFn */
/* Hex SHA-256 of bytes [off, off+n) of the file. */
int store_file_sha256(StoreFile *f, uint64_t off, uint64_t n, char out[65], ErrBuf *err);

/* A write callback into a caller's buffer of cap bytes (ranged reads). */
typedef struct StoreBuf {
	uint8_t *p;
	size_t n, cap;
} StoreBuf;
int store_buf_write(void *ctx, const void *p, size_t n); /* HttpcWriteFn; -EMSGSIZE past cap */

/* What a store request carries and where its answer goes; both schemes'
 * calls embed it. */
typedef struct StoreIo {
	const void *body; /* a body in memory (body_n bytes), or */
	size_t body_n;
	StoreFile *file; /* a file (part) streamed: read_size bytes */
	uint64_t read_size;
	HttpcWriteFn write; /* a streamed answer; NULL: buffered */
	void *write_ctx;
	size_t max_body; /* bound of a buffered answer; 0 = STORE_MAX_ANSWER */
} StoreIo;

/* Sends one request with the stores' one policy: an answer buffered up to
 * its bound; a transfer that stalls for STORE_STALL_MS fails; a small request
 * has STORE_TIMEOUT_MS in all, while a streamed or large body or answer has
 * no overall limit and a large body waits for 100-continue. */
int store_request(Httpc *h, const char *method, const char *url, const char *const *headers, const StoreIo *io,
		  HttpcResponse *ret, ErrBuf *err);

/* Checks an answer: 2xx hands it to *ret (or drops it when ret is NULL);
 * anything else is store_fail's error. r is the request's own result. */
int store_expect_2xx(int r, const char *method, const char *url, HttpcResponse *resp, HttpcResponse *ret,
		     const char *code_hdr, ErrBuf *err);

/* What the shared operations need from a scheme: a GET (with an optional
 * Range, its body streamed to write or buffered up to max_body) and a HEAD,
 * both answering 2xx or failing as store_fail, and a label for messages. */
typedef struct StoreFns {
	int (*get)(Bucket *b, const char *name, const char *range, HttpcWriteFn write, void *write_ctx, size_t max_body,
		   HttpcResponse *ret, ErrBuf *err);
	int (*head)(Bucket *b, const char *name, HttpcResponse *ret, ErrBuf *err);
	const char *(*label)(const Bucket *b);
} StoreFns;

/* bucket_get_bytes over fns->get. */
int store_get_bytes(Bucket *b, const StoreFns *fns, const char *name, size_t max, uint8_t **ret, size_t *ret_n,
		    ErrBuf *err);
/* The object's size from a HEAD; -ENOENT ("no object NAME in LABEL") if absent. */
int store_size(Bucket *b, const StoreFns *fns, const char *name, uint64_t *ret, ErrBuf *err);
/* A BucketReader: store_size at open, one ranged GET per read. */
int store_reader_open(Bucket *b, const StoreFns *fns, const char *name, BucketReader **ret, ErrBuf *err);
/* put_file of a big file: an upload in parts of STORE_PART_SIZE (aborted on failure). */
int store_put_file_parts(Bucket *b, const char *name, StoreFile *f, ErrBuf *err);

/* Azure block ids: base64 of "<upload id>-<part, 5 digits>", all of one
 * length for one upload, as Azure requires. */
int store_azure_block_id(const char *upload_id, unsigned part, char *out, size_t cap);

/* SPDX-License-Identifier: MIT */
/* What the object-store schemes share (bucket_store.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bucket/bucket_store.h"
#include "sign/digest.h"

#define HASH_CHUNK (1u << 20)

int store_endpoint_parse(const char *url, StoreEndpoint *ret, ErrBuf *err)
{
	const char *sep = strstr(url, "://"), *host, *slash;
	StoreEndpoint e = {0};

	if (!sep)
		return errbuf_set(err, -EINVAL, "bucket: endpoint '%.64s' is not a URL", url);
	host = sep + 3;
	slash = strchr(host, '/');
	e.scheme = strndup(url, (size_t)(sep - url));
	e.hostport = slash ? strndup(host, (size_t)(slash - host)) : strdup(host);
	e.path = strdup(slash ? slash : "");
	if (!e.scheme || !e.hostport || !e.path) {
		store_endpoint_done(&e);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	for (char *p = e.scheme; *p; p++)
		*p = (char)(*p | 0x20);
	*ret = e;
	return 0;
}

void store_endpoint_done(StoreEndpoint *e)
{
	if (!e)
		return;
	free(e->scheme);
	free(e->hostport);
	free(e->path);
	*e = (StoreEndpoint){0};
}

int store_http_new(const BucketConfig *cfg, Httpc **ret, ErrBuf *err)
{
	HttpcConfig hc = {
		.cafile = cfg->cafile,
		.insecure = cfg->insecure,
		.user_agent = "pcapd/" PCAPD_VERSION,
	};

	return httpc_new(&hc, ret, err);
}

/* Decodes XML's five entities in place. */
static void xml_unescape(char *s)
{
	static const struct {
		const char *ent;
		char c;
	} ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
	char *o = s;

	for (const char *p = s; *p;) {
		bool done = false;

		for (size_t i = 0; i < ARRAY_SIZE(ents) && *p == '&'; i++) {
			size_t n = strlen(ents[i].ent);

			if (strncmp(p, ents[i].ent, n) == 0) {
				*o++ = ents[i].c;
				p += n;
				done = true;
				break;
			}
		}
		if (!done)
			*o++ = *p++;
	}
	*o = '\0';
}

bool store_xml_value(const char *xml, const char *tag, char *out, size_t cap)
{
	char open[64], close[64];
	const char *a, *b;
	size_t n;

	if (!xml || snprintf(open, sizeof(open), "<%s>", tag) >= (int)sizeof(open) ||
	    snprintf(close, sizeof(close), "</%s>", tag) >= (int)sizeof(close))
		return false;
	a = strstr(xml, open);
	if (!a)
		return false;
	a += strlen(open);
	b = strstr(a, close);
	if (!b)
		return false;
	n = (size_t)(b - a);
	if (n >= cap)
		return false;
	memcpy(out, a, n);
	out[n] = '\0';
	xml_unescape(out);
	return true;
}

int store_fail(ErrBuf *err, const char *method, const char *url, const HttpcResponse *resp, const char *code_hdr)
{
	char code[128] = "", msg[256] = "";
	long st = resp->status;
	int e;

	if (!store_xml_value(resp->body, "Code", code, sizeof(code)) && code_hdr) {
		const char *h = httpc_header(resp, code_hdr);

		if (h && strlen(h) < sizeof(code))
			memcpy(code, h, strlen(h) + 1);
	}
	store_xml_value(resp->body, "Message", msg, sizeof(msg));
	if (st == 404)
		e = -ENOENT;
	else if (st == 401 || st == 403)
		e = -EACCES;
	else if (st == 400 || st == 405 || st == 411 || st == 413)
		e = -EINVAL;
	else if (st == 409 || st == 412)
		e = -EEXIST;
	else if (st == 429 || st >= 500)
		e = -EAGAIN;
	else
		e = -EPROTO;
	return httpc_status_error(err, e, method, url, st, code, msg);
}

int bucket_answer_error(ErrBuf *err, const char *method, const char *url, const HttpcResponse *resp)
{
	return store_fail(err, method, url, resp, "x-ms-error-code");
}

bool bucket_xml_value(const char *xml, const char *tag, char *out, size_t cap)
{
	return store_xml_value(xml, tag, out, cap);
}

int store_file_open(const char *path, StoreFile *ret, ErrBuf *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errbuf_errno(err, "bucket: reading %s", path);
	if (fstat(fd, &st) < 0) {
		int r = errbuf_errno(err, "bucket: %s", path);

		close(fd);
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return errbuf_set(err, -EINVAL, "bucket: %s is not a regular file", path);
	}
	*ret = (StoreFile){.fd = fd, .size = (uint64_t)st.st_size};
	return 0;
}

void store_file_close(StoreFile *f)
{
	if (f && f->fd >= 0)
		close(f->fd);
	if (f)
		f->fd = -1;
}

ssize_t store_file_read(void *ctx, uint64_t off, void *buf, size_t n)
{
	StoreFile *f = ctx;
	ssize_t k;

	do
		k = pread(f->fd, buf, n, (off_t)(f->base + off));
	while (k < 0 && errno == EINTR);
	if (k <= 0) {
		f->err = k < 0 ? errno : EIO; /* a file that shrank broke the promised size */
		return -(f->err);
	}
	return k;
}

int store_file_sha256(StoreFile *f, uint64_t off, uint64_t n, char out[65], ErrBuf *err)
{
	uint8_t *buf = malloc(HASH_CHUNK);
	DigestSha256 *d = NULL;
	uint64_t done = 0;
	int r;

	if (!buf)
		return errbuf_set(err, -ENOMEM, "out of memory");
	r = digest_sha256_begin(&d);
	while (r == 0 && done < n) {
		size_t want = n - done > HASH_CHUNK ? HASH_CHUNK : (size_t)(n - done);
		ssize_t k = pread(f->fd, buf, want, (off_t)(off + done));

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = errbuf_set(err, k < 0 ? -errno : -EIO, "bucket: reading the file to upload: %s",
				       k < 0 ? strerror(errno) : "it shrank");
			break;
		}
		r = digest_sha256_update(d, buf, (size_t)k);
		done += (uint64_t)k;
	}
	free(buf);
	if (r < 0) {
		digest_sha256_free(d);
		return r == -EIO ? errbuf_set(err, r, "bucket: SHA-256 failed") : r;
	}
	return digest_sha256_end_hex(d, out);
}

int store_buf_write(void *ctx, const void *p, size_t n)
{
	StoreBuf *b = ctx;

	if (n > b->cap - b->n)
		return -EMSGSIZE;
	memcpy(b->p + b->n, p, n);
	b->n += n;
	return 0;
}

int store_azure_block_id(const char *upload_id, unsigned part, char *out, size_t cap)
{
	char raw[64];
	char *b;
	int n = snprintf(raw, sizeof(raw), "%s-%05u", upload_id, part);

	if (n < 0 || (size_t)n >= sizeof(raw))
		return -ENAMETOOLONG;
	b = digest_base64((const uint8_t *)raw, (size_t)n);
	if (!b)
		return -ENOMEM;
	if (strlen(b) >= cap) {
		free(b);
		return -ENAMETOOLONG;
	}
	memcpy(out, b, strlen(b) + 1);
	free(b);
	return 0;
}

#define STORE_LARGE_BODY (1u << 20) /* a body this big waits for 100-continue, without a time limit */

int store_request(Httpc *h, const char *method, const char *url, const char *const *headers, const StoreIo *io,
		  HttpcResponse *ret, ErrBuf *err)
{
	bool large = io->file || io->body_n > STORE_LARGE_BODY;
	HttpcRequest hq = {
		.method = method,
		.url = url,
		.headers = headers,
		.body = io->file ? NULL : io->body,
		.body_n = io->file ? 0 : io->body_n,
		.read = io->file ? store_file_read : NULL,
		.read_ctx = io->file,
		.read_size = io->read_size,
		.write = io->write,
		.write_ctx = io->write_ctx,
		.max_body = io->max_body ? io->max_body : STORE_MAX_ANSWER,
		.stall_ms = STORE_STALL_MS,
		.timeout_ms = (large || io->write) ? 0 : STORE_TIMEOUT_MS,
		.expect_continue = large,
	};

	return httpc_request(h, &hq, ret, err);
}

int store_expect_2xx(int r, const char *method, const char *url, HttpcResponse *resp, HttpcResponse *ret,
		     const char *code_hdr, ErrBuf *err)
{
	if (r < 0)
		return r;
	if (resp->status < 200 || resp->status >= 300) {
		r = store_fail(err, method, url, resp, code_hdr);
		httpc_response_done(resp);
		return r;
	}
	if (ret)
		*ret = *resp;
	else
		httpc_response_done(resp);
	return 0;
}

int store_get_bytes(Bucket *b, const StoreFns *fns, const char *name, size_t max, uint8_t **ret, size_t *ret_n,
		    ErrBuf *err)
{
	HttpcResponse resp;
	int r = fns->get(b, name, NULL, NULL, NULL, max ? max : 1, &resp, err);

	if (r == -EMSGSIZE)
		return errbuf_set(err, -EFBIG, "bucket: object %s has more than %zu bytes", name, max);
	if (r < 0)
		return r;
	if (max == 0 && resp.n > 0) {
		httpc_response_done(&resp);
		return errbuf_set(err, -EFBIG, "bucket: object %s has more than 0 bytes", name);
	}
	*ret = (uint8_t *)resp.body;
	*ret_n = resp.n;
	resp.body = NULL;
	httpc_response_done(&resp);
	return 0;
}

int store_size(Bucket *b, const StoreFns *fns, const char *name, uint64_t *ret, ErrBuf *err)
{
	HttpcResponse resp;
	const char *len;
	uint64_t size;
	int r = fns->head(b, name, &resp, err);

	if (r == -ENOENT)
		return errbuf_set(err, -ENOENT, "bucket: no object %s in %s", name, fns->label(b));
	if (r < 0)
		return r;
	len = httpc_header(&resp, "content-length");
	if (!len || parse_u64(len, strlen(len), 0, UINT64_MAX, &size) < 0) {
		httpc_response_done(&resp);
		return errbuf_set(err, -EPROTO, "bucket: %s: HEAD of %s gave no Content-Length", fns->label(b), name);
	}
	httpc_response_done(&resp);
	*ret = size;
	return 0;
}

typedef struct StoreReader {
	BucketReader base; /* first */
	Bucket *b;
	const StoreFns *fns;
	char *name;
} StoreReader;

static ssize_t store_reader_pread(BucketReader *br, void *buf, size_t n, uint64_t off, ErrBuf *err)
{
	StoreReader *rd = (StoreReader *)br;
	char range[64];
	StoreBuf sb = {.p = buf, .cap = n};
	HttpcResponse resp;
	int r;

	snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off, (unsigned long long)(off + n - 1));
	r = rd->fns->get(rd->b, rd->name, range, store_buf_write, &sb, 0, &resp, err);
	if (r < 0)
		return r;
	if (resp.status != 206 && !(resp.status == 200 && off == 0)) {
		httpc_response_done(&resp);
		return errbuf_set(err, -EPROTO, "bucket: %s: a ranged GET of %s answered %ld", rd->fns->label(rd->b),
				  rd->name, resp.status);
	}
	httpc_response_done(&resp);
	return (ssize_t)sb.n;
}

/* Counts what a ranged GET streams on to the sink, so that a short or long
 * body is noticed. */
typedef struct CopySink {
	BucketSinkFn sink;
	void *ctx;
	uint64_t n, want;
} CopySink;

static int copy_write(void *ctx, const void *p, size_t n)
{
	CopySink *c = ctx;

	if (n > c->want - c->n)
		return -EPROTO; /* more than the range asked for */
	c->n += n;
	return c->sink(c->ctx, p, n);
}

static int store_reader_copy(BucketReader *br, uint64_t off, uint64_t n, BucketSinkFn sink, void *ctx, ErrBuf *err)
{
	StoreReader *rd = (StoreReader *)br;
	CopySink cs = {.sink = sink, .ctx = ctx, .want = n};
	char range[64];
	HttpcResponse resp;
	int r;

	snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off, (unsigned long long)(off + n - 1));
	r = rd->fns->get(rd->b, rd->name, range, copy_write, &cs, 0, &resp, err);
	if (r < 0)
		return r;
	if ((resp.status != 206 && !(resp.status == 200 && off == 0 && n == br->size)) || cs.n != n) {
		r = errbuf_set(err, -EPROTO, "bucket: %s: a ranged GET of %s answered %ld with %llu of %llu bytes",
			       rd->fns->label(rd->b), rd->name, resp.status, (unsigned long long)cs.n,
			       (unsigned long long)n);
	}
	httpc_response_done(&resp);
	return r;
}

static void store_reader_close(BucketReader *br)
{
	StoreReader *rd = (StoreReader *)br;

	free(rd->name);
	free(rd);
}

static const BucketReaderOps store_reader_ops = {
	.pread = store_reader_pread,
	.copy = store_reader_copy,
	.close = store_reader_close,
};

int store_reader_open(Bucket *b, const StoreFns *fns, const char *name, BucketReader **ret, ErrBuf *err)
{
	StoreReader *rd;
	uint64_t size;
	int r = store_size(b, fns, name, &size, err);

	if (r < 0)
		return r;
	rd = calloc(1, sizeof(*rd));
	if (!rd || !(rd->name = strdup(name))) {
		free(rd);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	rd->base = (BucketReader){.ops = &store_reader_ops, .size = size};
	rd->b = b;
	rd->fns = fns;
	*ret = &rd->base;
	return 0;
}

int store_put_file_parts(Bucket *b, const char *name, StoreFile *f, ErrBuf *err)
{
	BucketUpload *u;
	uint8_t *buf = malloc(STORE_PART_SIZE);
	unsigned part = 0;
	uint64_t off = 0;
	int r;

	if (!buf)
		return errbuf_set(err, -ENOMEM, "out of memory");
	r = bucket_upload_begin(b, name, &u, err);
	if (r < 0) {
		free(buf);
		return r;
	}
	while (r == 0 && off < f->size) {
		size_t n = f->size - off > STORE_PART_SIZE ? STORE_PART_SIZE : (size_t)(f->size - off), got = 0;

		while (r == 0 && got < n) {
			ssize_t k = store_file_read(f, off + got, buf + got, n - got);

			if (k < 0)
				r = errbuf_set(err, (int)k, "bucket: reading the file for %s: %s", name,
					       strerror((int)-k));
			else
				got += (size_t)k;
		}
		if (r == 0)
			r = bucket_upload_part(u, ++part, buf, n, err);
		off += n;
	}
	if (r == 0) {
		r = bucket_upload_complete(u, err);
	} else {
		ErrBuf ignored;

		bucket_upload_abort(u, &ignored); /* leave nothing half-made; the first error is the news */
	}
	bucket_upload_free(u);
	free(buf);
	return r;
}

/* ---- completion bodies (public: agents build them for presigned URLs) ---- */

int bucket_complete_body(BucketKind kind, const char *upload_id, const char *const *etags, size_t n, char **ret,
			 ErrBuf *err)
{
	size_t cap, o = 0;
	char *out;

	if (n == 0 || n > BUCKET_PART_MAX)
		return errbuf_set(err, -EINVAL, "bucket: an upload completes with 1..%u parts", BUCKET_PART_MAX);
	if (kind != BUCKET_KIND_S3 && kind != BUCKET_KIND_AZURE)
		return errbuf_set(err, -EINVAL, "bucket: a file:// upload has no completion body");
	cap = 128 + n * 160;
	for (size_t i = 0; kind == BUCKET_KIND_S3 && i < n; i++) {
		if (!etags || !etags[i] || strpbrk(etags[i], "<>&\r\n") || strlen(etags[i]) > 128)
			return errbuf_set(err, -EINVAL, "bucket: part %zu has no valid ETag", i + 1);
	}
	out = malloc(cap);
	if (!out)
		return errbuf_set(err, -ENOMEM, "out of memory");
	if (kind == BUCKET_KIND_S3) {
		o += (size_t)snprintf(out + o, cap - o, "<CompleteMultipartUpload>");
		for (size_t i = 0; i < n; i++)
			o += (size_t)snprintf(out + o, cap - o,
					      "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>", i + 1,
					      etags[i]);
		snprintf(out + o, cap - o, "</CompleteMultipartUpload>");
	} else {
		const char *id = upload_id;

		/* Azure: the block ids derive from the upload id. */
		if (!id || strlen(id) > 32 || strpbrk(id, "<>&\r\n")) {
			free(out);
			return errbuf_set(err, -EINVAL, "bucket: an Azure block list needs the upload id");
		}
		o += (size_t)snprintf(out + o, cap - o, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
		for (size_t i = 0; i < n; i++) {
			char bid[96];

			if (store_azure_block_id(id, (unsigned)(i + 1), bid, sizeof(bid)) < 0) {
				free(out);
				return errbuf_set(err, -EINVAL, "bucket: block id of part %zu", i + 1);
			}
			o += (size_t)snprintf(out + o, cap - o, "<Latest>%s</Latest>", bid);
		}
		snprintf(out + o, cap - o, "</BlockList>");
	}
	*ret = out;
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * bucket-tool: every src/bucket operation from the command line, for the
 * integration tests against real stores (tests/integration/test_stores.py).
 * Built with the tests, never installed.
 *
 *   bucket-tool URI put NAME FILE         bucket_put_file
 *   bucket-tool URI put-bytes NAME TEXT   bucket_put_bytes
 *   bucket-tool URI get NAME [MAX]        bucket_get_bytes to stdout
 *   bucket-tool URI read NAME OFF LEN     a BucketReader: size on stderr, bytes to stdout
 *   bucket-tool URI size NAME             a BucketReader's size
 *   bucket-tool URI rm NAME               bucket_remove
 *   bucket-tool URI upload NAME FILE PARTSIZE [abort]
 *                                         begin, parts, complete (or abort after the parts)
 *   bucket-tool URI presign OP NAME [UPLOAD_ID [PART]]
 *                                         "METHOD URL[ HEADER]" on stdout, valid 300 s;
 *                                         OP: get put delete create part complete abort
 *   bucket-tool URI begin NAME            an upload id (Azure: local; S3: none needed, use presign create)
 *   bucket-tool body KIND UPLOAD_ID [ETAG...]   bucket_complete_body (KIND s3 or azure, N parts)
 *   bucket-tool redact TEXT               bucket_uri_redact
 *
 * Configuration as the CLI passes it: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN, AWS_ENDPOINT_URL_S3, GOOGLE_HMAC_ACCESS_ID,
 * GOOGLE_HMAC_SECRET and --azure-storage ACCOUNT=KEY[@ENDPOINT] as the first
 * arguments. BUCKET_TOOL_NOW (seconds) fixes presign's signing time (to compare
 * signatures with another implementation's). On failure: "bucket-tool: E<NAME>: message" on stderr, exit 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bucket/bucket.h"
#include "bucket/bucket_uri.h"
#include "httpc/httpc.h"

static const char *errname(int e)
{
	switch (-e) {
	case ENOENT:
		return "ENOENT";
	case EACCES:
		return "EACCES";
	case EINVAL:
		return "EINVAL";
	case EAGAIN:
		return "EAGAIN";
	case EEXIST:
		return "EEXIST";
	case EFBIG:
		return "EFBIG";
	case EPROTO:
		return "EPROTO";
	case ECONNREFUSED:
		return "ECONNREFUSED";
	case EOPNOTSUPP:
		return "EOPNOTSUPP";
	default:
		return "E?";
	}
}

static int fail(int r, const ErrBuf *err)
{
	fprintf(stderr, "bucket-tool: %s: %s\n", errname(r), err->msg);
	return 1;
}

static int write_all(const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t k = write(STDOUT_FILENO, c, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		c += k;
		n -= (size_t)k;
	}
	return 0;
}

static int cmd_upload(Bucket *b, char **argv, int argc, ErrBuf *err)
{
	FILE *f = fopen(argv[1], "rbe");
	unsigned long part_size = strtoul(argv[2], NULL, 10);
	bool abort_it = argc > 3 && strcmp(argv[3], "abort") == 0;
	BucketUpload *u = NULL;
	unsigned part = 0;
	uint8_t *buf;
	int r;

	if (!f)
		return errbuf_errno(err, "%s", argv[1]);
	buf = malloc(part_size ? part_size : 1);
	r = bucket_upload_begin(b, argv[0], &u, err);
	while (r == 0) {
		size_t n = fread(buf, 1, part_size, f);

		if (n == 0)
			break;
		r = bucket_upload_part(u, ++part, buf, n, err);
	}
	if (r == 0)
		r = abort_it ? bucket_upload_abort(u, err) : bucket_upload_complete(u, err);
	if (u)
		printf("%s\n", bucket_upload_id(u));
	bucket_upload_free(u);
	free(buf);
	fclose(f);
	return r;
}

static int cmd_presign(Bucket *b, char **argv, int argc, ErrBuf *err)
{
	static const struct {
		const char *word;
		BucketUrlOp op;
	} ops[] = {
		{"get", BUCKET_URL_GET},
		{"put", BUCKET_URL_PUT},
		{"delete", BUCKET_URL_DELETE},
		{"create", BUCKET_URL_UPLOAD_CREATE},
		{"part", BUCKET_URL_UPLOAD_PART},
		{"complete", BUCKET_URL_UPLOAD_COMPLETE},
		{"abort", BUCKET_URL_UPLOAD_ABORT},
	};
	const char *now = getenv("BUCKET_TOOL_NOW");
	BucketUrlRequest q = {
		.name = argv[1], .expires_s = 300, .now = now ? (time_t)strtoll(now, NULL, 10) : time(NULL)};
	BucketSignedUrl u;
	size_t i;
	int r;

	for (i = 0; i < ARRAY_SIZE(ops); i++)
		if (strcmp(argv[0], ops[i].word) == 0)
			break;
	if (i == ARRAY_SIZE(ops))
		return errbuf_set(err, -EINVAL, "unknown operation %s", argv[0]);
	q.op = ops[i].op;
	q.upload_id = argc > 2 ? argv[2] : NULL;
	q.part = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 0;
	r = bucket_presign(b, &q, &u, err);
	if (r < 0)
		return r;
	printf("%s %s%s%s\n", u.method, u.url, u.header ? " " : "", u.header ? u.header : "");
	bucket_signed_url_done(&u);
	return 0;
}

static int run(Bucket *b, const char *cmd, char **argv, int argc, ErrBuf *err)
{
	if (strcmp(cmd, "put") == 0 && argc == 2)
		return bucket_put_file(b, argv[0], argv[1], err);
	if (strcmp(cmd, "put-bytes") == 0 && argc == 2)
		return bucket_put_bytes(b, argv[0], argv[1], strlen(argv[1]), err);
	if (strcmp(cmd, "get") == 0 && (argc == 1 || argc == 2)) {
		uint8_t *p;
		size_t n;
		int r = bucket_get_bytes(b, argv[0], argc == 2 ? strtoul(argv[1], NULL, 10) : 64u << 20, &p, &n, err);

		if (r == 0) {
			r = write_all(p, n);
			free(p);
		}
		return r;
	}
	if ((strcmp(cmd, "read") == 0 && argc == 3) || (strcmp(cmd, "size") == 0 && argc == 1)) {
		BucketReader *rd;
		int r = bucket_reader_open(b, argv[0], &rd, err);

		if (r < 0)
			return r;
		if (argc == 1) {
			printf("%llu\n", (unsigned long long)bucket_reader_size(rd));
		} else {
			size_t len = strtoul(argv[2], NULL, 10);
			uint8_t *buf = malloc(len ? len : 1);
			ssize_t k = bucket_reader_pread(rd, buf, len, strtoull(argv[1], NULL, 10), err);

			fprintf(stderr, "size %llu\n", (unsigned long long)bucket_reader_size(rd));
			r = k < 0 ? (int)k : write_all(buf, (size_t)k);
			free(buf);
		}
		bucket_reader_close(rd);
		return r;
	}
	if (strcmp(cmd, "rm") == 0 && argc == 1)
		return bucket_remove(b, argv[0], err);
	if (strcmp(cmd, "upload") == 0 && argc >= 3)
		return cmd_upload(b, argv, argc, err);
	if (strcmp(cmd, "presign") == 0 && argc >= 2)
		return cmd_presign(b, argv, argc, err);
	if (strcmp(cmd, "begin") == 0 && argc == 1) {
		BucketUpload *u;
		int r = bucket_upload_begin(b, argv[0], &u, err);

		if (r == 0)
			printf("%s\n", bucket_upload_id(u));
		bucket_upload_free(u);
		return r;
	}
	return errbuf_set(err, -EINVAL, "unknown command or wrong arguments: %s", cmd);
}

int main(int argc, char **argv)
{
	BucketAzureAccount az[4];
	char *copies[4] = {0};
	size_t naz = 0;
	BucketConfig cfg = {
		.aws_access_key_id = getenv("AWS_ACCESS_KEY_ID"),
		.aws_secret_access_key = getenv("AWS_SECRET_ACCESS_KEY"),
		.aws_session_token = getenv("AWS_SESSION_TOKEN"),
		.aws_endpoint_url_s3 = getenv("AWS_ENDPOINT_URL_S3"),
		.google_hmac_access_id = getenv("GOOGLE_HMAC_ACCESS_ID"),
		.google_hmac_secret = getenv("GOOGLE_HMAC_SECRET"),
		.root = "/",
	};
	Bucket *b = NULL;
	ErrBuf err = {{0}};
	int i = 1, r;

	while (i + 1 < argc && strcmp(argv[i], "--azure-storage") == 0 && naz < ARRAY_SIZE(az)) {
		r = bucket_azure_account_parse(argv[i + 1], &copies[naz], &az[naz], &err);
		if (r < 0)
			return fail(r, &err);
		naz++;
		i += 2;
	}
	cfg.azure = az;
	cfg.n_azure = naz;
	if (argc - i == 2 && strcmp(argv[i], "redact") == 0) {
		char *s = bucket_uri_redact_dup(argv[i + 1]);

		printf("%s\n", s ? s : "(out of memory)");
		free(s);
		return s ? 0 : 1;
	}
	if (argc - i >= 3 && strcmp(argv[i], "body") == 0) {
		BucketKind kind = strcmp(argv[i + 1], "s3") == 0 ? BUCKET_KIND_S3 : BUCKET_KIND_AZURE;
		size_t n = kind == BUCKET_KIND_S3 ? (size_t)(argc - i - 3) : strtoul(argv[i + 3], NULL, 10);
		char *body;

		r = bucket_complete_body(kind, argv[i + 2], (const char *const *)argv + i + 3, n, &body, &err);
		if (r < 0)
			return fail(r, &err);
		printf("%s", body);
		free(body);
		return 0;
	}
	if (argc - i < 3) {
		fprintf(stderr,
			"usage: bucket-tool [--azure-storage A=K[@E]]... URI COMMAND ARGS... (see the source)\n");
		return 2;
	}
	if (httpc_global_init(&err) < 0)
		return fail(-EIO, &err);
	r = bucket_open(argv[i], &cfg, &b, &err);
	if (r == 0)
		r = run(b, argv[i + 1], argv + i + 2, argc - i - 2, &err);
	bucket_free(b);
	httpc_global_cleanup();
	for (size_t k = 0; k < naz; k++)
		free(copies[k]);
	return r < 0 ? fail(r, &err) : 0;
}

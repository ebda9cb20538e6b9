/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/sign against published vectors:
 *
 *  - SHA-256: FIPS 180-2 appendix B ("abc") and the empty string;
 *    HMAC-SHA-256: RFC 4231 test cases 1 and 2; base64: RFC 4648 section 10.
 *  - SigV4, AWS's "Signature Version 4 test suite" (AWS General Reference;
 *    credentials AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY,
 *    us-east-1, service "service", 2015-08-30T12:36:00Z): each case's inputs
 *    and its published Authorization value (.authz), and for some the
 *    canonical request (.creq) and string to sign (.sts).
 *  - SigV4 for S3, the worked examples of the Amazon S3 API reference
 *    ("Examples: Signature Calculations" for header-based auth and "Example:
 *    presigned URL" for query auth; AKIAIOSFODNN7EXAMPLE /
 *    wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, examplebucket, 2013-05-24):
 *    GET with Range, PUT with a payload, GET ?lifecycle, list with
 *    max-keys/prefix, and the presigned GET of test.txt.
 *  - Azure: the Shared Key string to sign and the service SAS string to sign
 *    as Microsoft's documented rules lay them out (the signatures themselves
 *    are checked against Azurite and @azure/storage-blob in
 *    tests/integration/test_stores.py).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sign/azsign.h"
#include "sign/digest.h"
#include "sign/sigv4.h"

/* ---- digests ---- */

static void test_digests(void **state)
{
	static const uint8_t key2[] = "Jefe";
	static const char data2[] = "what do ya want for nothing?";
	uint8_t key1[20], mac[32];
	char hex[65], *b;
	uint8_t *d;
	size_t n;

	(void)state;
	assert_int_equal(digest_sha256_hex("abc", 3, hex), 0);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(digest_sha256_hex("", 0, hex), 0);
	assert_string_equal(hex, SIGV4_EMPTY_SHA256);

	memset(key1, 0x0b, sizeof(key1));
	assert_int_equal(digest_hmac_sha256(key1, sizeof(key1), "Hi There", 8, mac), 0);
	digest_hex(mac, sizeof(mac), hex);
	assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	assert_int_equal(digest_hmac_sha256(key2, 4, data2, strlen(data2), mac), 0);
	digest_hex(mac, sizeof(mac), hex);
	assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

	/* Incremental: the same digest in pieces. */
	{
		DigestSha256 *ds;

		assert_int_equal(digest_sha256_begin(&ds), 0);
		assert_int_equal(digest_sha256_update(ds, "a", 1), 0);
		assert_int_equal(digest_sha256_update(ds, "bc", 2), 0);
		assert_int_equal(digest_sha256_end_hex(ds, hex), 0);
		assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	}

	b = digest_base64((const uint8_t *)"foobar", 6);
	assert_string_equal(b, "Zm9vYmFy");
	free(b);
	b = digest_base64((const uint8_t *)"fo", 2);
	assert_string_equal(b, "Zm8=");
	free(b);
	assert_int_equal(digest_unbase64("Zm9vYg==", 8, &d, &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(d, "foob", 4);
	free(d);
	assert_int_equal(digest_unbase64("Zm9v!mFy", 8, &d, &n), -EINVAL);
	assert_int_equal(digest_unbase64("", 0, &d, &n), -EINVAL);
}

/* ---- AWS's SigV4 test suite ---- */

#define SUITE_TIME 1440938160 /* 2015-08-30T12:36:00Z */
#define SUITE_HOST "example.amazonaws.com"

static const SigV4Key suite_key = {
	.access_key_id = "AKIDEXAMPLE",
	.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	.region = "us-east-1",
	.service = "service",
};

typedef struct SuiteCase {
	const char *name;
	const char *method;
	const char *path;
	SigV4Param query[3];
	size_t nq;
	SigV4Param headers[4];
	size_t nh;
	const char *body;
	const char *signed_headers;
	const char *signature;
} SuiteCase;

static const SuiteCase suite[] = {
	{"get-vanilla",
	 "GET",
	 "/",
	 {{0}},
	 0,
	 {{0}},
	 0,
	 NULL,
	 "host;x-amz-date",
	 "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
	{"get-header-key-duplicate",
	 "GET",
	 "/",
	 {{0}},
	 0,
	 {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}},
	 3,
	 NULL,
	 "host;my-header1;x-amz-date",
	 "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
	{"get-header-value-order",
	 "GET",
	 "/",
	 {{0}},
	 0,
	 {{"My-Header1", "value4"}, {"My-Header1", "value1"}, {"My-Header1", "value3"}, {"My-Header1", "value2"}},
	 4,
	 NULL,
	 "host;my-header1;x-amz-date",
	 "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
	{"get-header-value-trim",
	 "GET",
	 "/",
	 {{0}},
	 0,
	 {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}},
	 2,
	 NULL,
	 "host;my-header1;my-header2;x-amz-date",
	 "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
	{"get-unreserved",
	 "GET",
	 "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
	 {{0}},
	 0,
	 {{0}},
	 0,
	 NULL,
	 "host;x-amz-date",
	 "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
	{"get-utf8",
	 "GET",
	 "/\xe1\x88\xb4",
	 {{0}},
	 0,
	 {{0}},
	 0,
	 NULL,
	 "host;x-amz-date",
	 "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
	{"get-vanilla-empty-query-key",
	 "GET",
	 "/",
	 {{"Param1", "value1"}},
	 1,
	 {{0}},
	 0,
	 NULL,
	 "host;x-amz-date",
	 "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
	{"get-vanilla-query-order-key-case",
	 "GET",
	 "/",
	 {{"Param2", "value2"}, {"Param1", "value1"}},
	 2,
	 {{0}},
	 0,
	 NULL,
	 "host;x-amz-date",
	 "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
	{"get-vanilla-query-order-key",
	 "GET",
	 "/",
	 {{"Param1", "value2"}, {"Param1", "Value1"}},
	 2,
	 {{0}},
	 0,
	 NULL,
	 "host;x-amz-date",
	 "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"},
	{"get-vanilla-query-unreserved",
	 "GET",
	 "/",
	 {{"-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
	   "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"}},
	 1,
	 {{0}},
	 0,
	 NULL,
	 "host;x-amz-date",
	 "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
	{"get-vanilla-utf8-query",
	 "GET",
	 "/",
	 {{"\xe1\x88\xb4", "bar"}},
	 1,
	 {{0}},
	 0,
	 NULL,
	 "host;x-amz-date",
	 "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
	{"post-header-key-sort",
	 "POST",
	 "/",
	 {{0}},
	 0,
	 {{"My-Header1", "value1"}},
	 1,
	 NULL,
	 "host;my-header1;x-amz-date",
	 "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
	{"post-header-value-case",
	 "POST",
	 "/",
	 {{0}},
	 0,
	 {{"My-Header1", "VALUE1"}},
	 1,
	 NULL,
	 "host;my-header1;x-amz-date",
	 "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
	{"post-vanilla",
	 "POST",
	 "/",
	 {{0}},
	 0,
	 {{0}},
	 0,
	 NULL,
	 "host;x-amz-date",
	 "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
	{"post-vanilla-query",
	 "POST",
	 "/",
	 {{"Param1", "value1"}},
	 1,
	 {{0}},
	 0,
	 NULL,
	 "host;x-amz-date",
	 "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
	{"post-vanilla-query-nonunreserved",
	 "POST",
	 "/",
	 {{"@#$%^", ""}, {"+", "/,?><`\";:\\|][{}"}},
	 2,
	 {{0}},
	 0,
	 NULL,
	 "host;x-amz-date",
	 "66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e"},
	{"post-vanilla-query-space",
	 "POST",
	 "/",
	 {{"p", ""}},
	 1,
	 {{0}},
	 0,
	 NULL,
	 "host;x-amz-date",
	 "e71688addb58a26418614085fb730ba3faa623b461c17f48f2fbdb9361b94a9b"},
	{"post-x-www-form-urlencoded",
	 "POST",
	 "/",
	 {{0}},
	 0,
	 {{"Content-Type", "application/x-www-form-urlencoded"}},
	 1,
	 "Param1=value1",
	 "content-type;host;x-amz-date",
	 "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
	{"post-x-www-form-urlencoded-parameters",
	 "POST",
	 "/",
	 {{0}},
	 0,
	 {{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"}},
	 1,
	 "Param1=value1",
	 "content-type;host;x-amz-date",
	 "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"},
};

static void sign_case(const SigV4Key *key, const SuiteCase *c, SigV4Signed *out)
{
	char hash[65];
	SigV4Request q = {
		.method = c->method,
		.host = SUITE_HOST,
		.path = c->path,
		.query = c->query,
		.n_query = c->nq,
		.headers = c->headers,
		.n_headers = c->nh,
		.when = SUITE_TIME,
	};
	ErrBuf err;

	if (c->body) {
		assert_int_equal(digest_sha256_hex(c->body, strlen(c->body), hash), 0);
		q.payload_hash = hash;
	}
	if (sigv4_sign(key, &q, out, &err) < 0)
		fail_msg("%s: %s", c->name, err.msg);
}

static void test_sigv4_suite(void **state)
{
	char want[512];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(suite); i++) {
		const SuiteCase *c = &suite[i];
		SigV4Signed s;

		sign_case(&suite_key, c, &s);
		snprintf(want, sizeof(want),
			 "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
			 "SignedHeaders=%s, Signature=%s",
			 c->signed_headers, c->signature);
		if (strcmp(s.authorization, want) != 0)
			fail_msg("%s:\n got  %s\n want %s\ncanonical request:\n%s", c->name, s.authorization, want,
				 s.canonical_request);
		assert_string_equal(s.amz_date, "20150830T123600Z");
		sigv4_signed_done(&s);
	}
}

static void test_sigv4_suite_creq(void **state)
{
	SigV4Signed s;

	(void)state;
	/* get-vanilla-query-order-key: the published .creq and .sts. */
	sign_case(&suite_key, &suite[8], &s);
	assert_string_equal(s.canonical_request, "GET\n/\nParam1=Value1&Param1=value2\nhost:example.amazonaws.com\n"
						 "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" SIGV4_EMPTY_SHA256);
	assert_string_equal(s.string_to_sign,
			    "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
			    "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89");
	sigv4_signed_done(&s);

	/* post-x-www-form-urlencoded: the published .creq. */
	sign_case(&suite_key, &suite[17], &s);
	assert_string_equal(s.canonical_request,
			    "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
			    "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n"
			    "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
	sigv4_signed_done(&s);

	/* Repeated header names keep the order given (get-header-value-order). */
	sign_case(&suite_key, &suite[2], &s);
	assert_non_null(strstr(s.canonical_request, "\nmy-header1:value4,value1,value3,value2\n"));
	sigv4_signed_done(&s);

	/* get-header-value-trim: "a   b   c" becomes "a b c". */
	sign_case(&suite_key, &suite[3], &s);
	assert_non_null(strstr(s.canonical_request, "\nmy-header1:value1\nmy-header2:\"a b c\"\n"));
	sigv4_signed_done(&s);
}

static void test_sigv4_suite_session_token(void **state)
{
	/* post-sts-header-before: the token is a signed header. */
	static const char token[] =
		"AQoDYXdzEPT//////////"
		"wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD"
		"8YUuwthAx7mSEI/qkPpKPi/"
		"kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8"
		"Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3"
		"iSIlTJabIQwj2ICCR/oLxBA==";
	SigV4Key k = suite_key;
	SigV4Signed s;

	(void)state;
	k.session_token = token;
	sign_case(&k, &suite[13] /* post-vanilla */, &s);
	assert_string_equal(s.authorization,
			    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
			    "SignedHeaders=host;x-amz-date;x-amz-security-token, "
			    "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead");
	sigv4_signed_done(&s);
}

/* ---- the S3 API reference's worked examples ---- */

#define S3_TIME 1369353600 /* 2013-05-24T00:00:00Z */
#define S3_HOST "examplebucket.s3.amazonaws.com"

static const SigV4Key s3_key = {
	.access_key_id = "AKIAIOSFODNN7EXAMPLE",
	.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	.region = "us-east-1",
	.service = "s3",
};

static void test_sigv4_s3_examples(void **state)
{
	SigV4Param get_h[] = {{"Range", "bytes=0-9"}, {"x-amz-content-sha256", SIGV4_EMPTY_SHA256}};
	SigV4Param put_h[] = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
			      {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
			      {"x-amz-content-sha256", NULL}};
	SigV4Param empty_h[] = {{"x-amz-content-sha256", SIGV4_EMPTY_SHA256}};
	SigV4Param lifecycle[] = {{"lifecycle", ""}}, list[] = {{"prefix", "J"}, {"max-keys", "2"}};
	SigV4Request q = {.method = "GET", .host = S3_HOST, .path = "/test.txt", .when = S3_TIME};
	char put_hash[65];
	SigV4Signed s;
	ErrBuf err;

	(void)state;
	/* GET Object with a Range. */
	q.headers = get_h;
	q.n_headers = ARRAY_SIZE(get_h);
	q.payload_hash = SIGV4_EMPTY_SHA256;
	assert_int_equal(sigv4_sign(&s3_key, &q, &s, &err), 0);
	assert_string_equal(
		s.canonical_request,
		"GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
		"range:bytes=0-9\nx-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\n"
		"x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n" SIGV4_EMPTY_SHA256);
	assert_string_equal(s.string_to_sign, "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
					      "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
	assert_string_equal(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	sigv4_signed_done(&s);

	/* PUT Object with a payload; the key's '$' is encoded. */
	assert_int_equal(digest_sha256_hex("Welcome to Amazon S3.", 21, put_hash), 0);
	assert_string_equal(put_hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
	put_h[2].value = put_hash;
	q = (SigV4Request){.method = "PUT",
			   .host = S3_HOST,
			   .path = "/test$file.text",
			   .headers = put_h,
			   .n_headers = ARRAY_SIZE(put_h),
			   .payload_hash = put_hash,
			   .when = S3_TIME};
	assert_int_equal(sigv4_sign(&s3_key, &q, &s, &err), 0);
	assert_non_null(strstr(s.canonical_request, "PUT\n/test%24file.text\n"));
	assert_string_equal(s.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
	assert_string_equal(s.authorization,
			    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
			    "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
			    "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
	sigv4_signed_done(&s);

	/* GET Bucket Lifecycle: a query key without a value. */
	q = (SigV4Request){.method = "GET",
			   .host = S3_HOST,
			   .path = "/",
			   .query = lifecycle,
			   .n_query = 1,
			   .headers = empty_h,
			   .n_headers = 1,
			   .payload_hash = SIGV4_EMPTY_SHA256,
			   .when = S3_TIME};
	assert_int_equal(sigv4_sign(&s3_key, &q, &s, &err), 0);
	assert_non_null(strstr(s.canonical_request, "GET\n/\nlifecycle=\n"));
	assert_string_equal(s.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
	sigv4_signed_done(&s);

	/* GET Bucket (List Objects): query sorted. */
	q.query = list;
	q.n_query = ARRAY_SIZE(list);
	assert_int_equal(sigv4_sign(&s3_key, &q, &s, &err), 0);
	assert_non_null(strstr(s.canonical_request, "GET\n/\nmax-keys=2&prefix=J\n"));
	assert_string_equal(s.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
	sigv4_signed_done(&s);
}

static void test_sigv4_s3_presigned(void **state)
{
	SigV4Request q = {.method = "GET", .host = S3_HOST, .path = "/test.txt", .when = S3_TIME};
	SigV4Key k = s3_key;
	SigV4Signed s;
	ErrBuf err;

	(void)state;
	assert_int_equal(sigv4_presign(&s3_key, &q, 86400, &s, &err), 0);
	assert_string_equal(s.query,
			    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
			    "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&"
			    "X-Amz-SignedHeaders=host&X-Amz-Signature="
			    "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
	assert_null(s.authorization);
	sigv4_signed_done(&s);

	/* The bounds on expiry, and a session token goes into the query. */
	assert_int_equal(sigv4_presign(&s3_key, &q, 0, &s, &err), -EINVAL);
	assert_int_equal(sigv4_presign(&s3_key, &q, SIGV4_PRESIGN_MAX_S + 1, &s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "expires"));
	k.session_token = "tok/en";
	assert_int_equal(sigv4_presign(&k, &q, 60, &s, &err), 0);
	assert_non_null(strstr(s.query, "&X-Amz-Security-Token=tok%2Fen&"));
	assert_non_null(strstr(s.canonical_request, "X-Amz-Security-Token=tok%2Fen"));
	sigv4_signed_done(&s);
}

static void test_sigv4_refuses(void **state)
{
	SigV4Param bad_h[] = {{"X-Bad", "a\r\nInjected: yes"}};
	SigV4Request q = {.method = "GET", .host = S3_HOST, .path = "/x", .when = S3_TIME};
	SigV4Key k = s3_key;
	SigV4Signed s;
	ErrBuf err;

	(void)state;
	k.secret_access_key = "";
	assert_int_equal(sigv4_sign(&k, &q, &s, &err), -EINVAL);
	assert_string_equal(err.msg, "sigv4: no secret access key");
	q.headers = bad_h;
	q.n_headers = 1;
	assert_int_equal(sigv4_sign(&s3_key, &q, &s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "line break"));
	q.n_headers = 0;
	q.path = "relative";
	assert_int_equal(sigv4_sign(&s3_key, &q, &s, &err), -EINVAL);
}

/* ---- Azure ---- */

/* Azurite's development account (its README publishes the key). */
#define AZ_ACCOUNT "devstoreaccount1"
#define AZ_KEY_B64 "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

static AzKey az_key(uint8_t **raw)
{
	size_t n;

	assert_int_equal(digest_unbase64(AZ_KEY_B64, strlen(AZ_KEY_B64), raw, &n), 0);
	return (AzKey){.account = AZ_ACCOUNT, .key = *raw, .key_n = n};
}

static void test_azure_shared_key(void **state)
{
	AzParam h[] = {{"x-ms-version", "2021-08-06"},
		       {"X-Ms-Date", "Fri, 26 Jun 2015 23:39:12 GMT"},
		       {"Content-Type", "application/octet-stream"},
		       {"x-ms-blob-type", "BlockBlob"},
		       {"x-ms-meta-note", "  two   words "}};
	AzParam qp[] = {{"comp", "block"}, {"blockid", "AAAA/w=="}, {"Restype", "x"}};
	AzRequest q = {.method = "PUT",
		       .path = "/devstoreaccount1/c/blob.pcap",
		       .query = qp,
		       .n_query = ARRAY_SIZE(qp),
		       .headers = h,
		       .n_headers = ARRAY_SIZE(h),
		       .content_length = 1234};
	uint8_t *raw;
	AzKey k = az_key(&raw);
	char *auth, *sts, *again;
	ErrBuf err;

	(void)state;
	assert_int_equal(azsign_shared_key(&k, &q, &auth, &sts, &err), 0);
	assert_string_equal(sts,
			    "PUT\n\n\n1234\n\napplication/octet-stream\n\n\n\n\n\n\n"
			    "x-ms-blob-type:BlockBlob\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\n"
			    "x-ms-meta-note:two words\nx-ms-version:2021-08-06\n"
			    "/devstoreaccount1/devstoreaccount1/c/blob.pcap\nblockid:AAAA/w==\ncomp:block\nrestype:x");
	assert_true(strncmp(auth, "SharedKey devstoreaccount1:", 27) == 0);
	/* The signature is HMAC-SHA256 of exactly that string, base64. */
	{
		uint8_t mac[32];
		char *b64;

		assert_int_equal(digest_hmac_sha256(raw, 64, sts, strlen(sts), mac), 0);
		b64 = digest_base64(mac, 32);
		assert_string_equal(auth + 27, b64);
		free(b64);
	}
	free(sts);

	/* Content-Length 0 is an empty line; the same request signs the same. */
	q.content_length = 0;
	assert_int_equal(azsign_shared_key(&k, &q, &again, &sts, &err), 0);
	assert_non_null(strstr(sts, "PUT\n\n\n\n\napplication/octet-stream\n"));
	assert_string_not_equal(again, auth);
	free(again);
	free(sts);
	free(auth);

	h[0].value = "a\nb";
	assert_int_equal(azsign_shared_key(&k, &q, &auth, NULL, &err), -EINVAL);
	free(raw);
}

static void test_azure_sas(void **state)
{
	AzSas sas = {.permissions = "rcw",
		     .start = 1716800400, /* 2024-05-27T09:00:00Z */
		     .expiry = 1716804000,
		     .container = "caps",
		     .blob = "pre/pcap_x.pcap",
		     .protocol = "https,http"};
	uint8_t *raw;
	AzKey k = az_key(&raw);
	char *tok, *sts;
	ErrBuf err;

	(void)state;
	assert_int_equal(azsign_sas(&k, &sas, &tok, &sts, &err), 0);
	assert_string_equal(sts, "rcw\n2024-05-27T09:00:00Z\n2024-05-27T10:00:00Z\n"
				 "/blob/devstoreaccount1/caps/pre/pcap_x.pcap\n\n\nhttps,http\n" AZSIGN_SAS_VERSION
				 "\nb\n\n\n\n\n\n\n");
	assert_true(strncmp(tok,
			    "sv=" AZSIGN_SAS_VERSION "&spr=https%2Chttp&st=2024-05-27T09%3A00%3A00Z&"
			    "se=2024-05-27T10%3A00%3A00Z&sr=b&sp=rcw&sig=",
			    strlen("sv=" AZSIGN_SAS_VERSION "&spr=https%2Chttp&st=2024-05-27T09%3A00%3A00Z&"
				   "se=2024-05-27T10%3A00%3A00Z&sr=b&sp=rcw&sig=")) == 0);
	free(tok);
	free(sts);

	/* A container SAS, no start. */
	sas.blob = NULL;
	sas.start = 0;
	sas.permissions = "r";
	assert_int_equal(azsign_sas(&k, &sas, &tok, &sts, &err), 0);
	assert_string_equal(
		sts, "r\n\n2024-05-27T10:00:00Z\n/blob/devstoreaccount1/caps\n\n\nhttps,http\n" AZSIGN_SAS_VERSION
		     "\nc\n\n\n\n\n\n\n");
	assert_null(strstr(tok, "st="));
	free(tok);
	free(sts);

	sas.permissions = "rz";
	assert_int_equal(azsign_sas(&k, &sas, &tok, NULL, &err), -EINVAL);
	sas.permissions = "r";
	sas.protocol = "http";
	assert_int_equal(azsign_sas(&k, &sas, &tok, NULL, &err), -EINVAL);
	free(raw);

	{
		char d[30];

		assert_int_equal(azsign_http_date(1435361952, d), 0);
		assert_string_equal(d, "Fri, 26 Jun 2015 23:39:12 GMT");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digests),           cmocka_unit_test(test_sigv4_suite),
		cmocka_unit_test(test_sigv4_suite_creq),  cmocka_unit_test(test_sigv4_suite_session_token),
		cmocka_unit_test(test_sigv4_s3_examples), cmocka_unit_test(test_sigv4_s3_presigned),
		cmocka_unit_test(test_sigv4_refuses),     cmocka_unit_test(test_azure_shared_key),
		cmocka_unit_test(test_azure_sas),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/bucket/bucket_uri.c: every destination_conf form the
 * issue lists, parsed into its parts (values percent-decoded, prefixes
 * normalised), a table of bad ones with their exact messages (never quoting a
 * secret), the REDACTED form, --azure-storage's parser, the completion bodies,
 * the bucket's identity (what matches a REDACTED or key-less form), and
 * opening with the controller's fallback credentials.
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

#include "bucket/bucket.h"
#include "bucket/bucket_uri.h"

#define AZ_KEY "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

static BucketUri parse_ok(const char *s)
{
	BucketUri u;
	ErrBuf err = {{0}};

	if (bucket_uri_parse(s, strlen(s), &u, &err) < 0)
		fail_msg("%s: %s", s, err.msg);
	return u;
}

static void str_eq(const char *got, const char *want)
{
	if (!want)
		assert_null(got);
	else
		assert_string_equal(got ? got : "(null)", want);
}

static void test_parse_forms(void **state)
{
	BucketUri u;

	(void)state;
	u = parse_ok("s3://pcaps-bucket?region=us-east-1");
	assert_int_equal(u.scheme, BUCKET_SCHEME_S3);
	str_eq(u.bucket, "pcaps-bucket");
	str_eq(u.prefix, "");
	str_eq(u.region, "us-east-1");
	str_eq(u.endpoint, NULL);
	bucket_uri_done(&u);

	u = parse_ok("S3://b/dir/sub/?endpoint=http%3A%2F%2F127.0.0.1%3A7480%2F&access-key-id=AK"
		     "&secret-access-key=a%2Bb%2Fc%3D");
	str_eq(u.prefix, "dir/sub/");
	str_eq(u.endpoint, "http://127.0.0.1:7480"); /* decoded, trailing '/' dropped */
	str_eq(u.access_key_id, "AK");
	str_eq(u.secret_access_key, "a+b/c=");
	bucket_uri_done(&u);

	/* '+' stays '+' (base64 keys). */
	u = parse_ok("s3://b?access-key-id=A&secret-access-key=x+y");
	str_eq(u.secret_access_key, "x+y");
	bucket_uri_done(&u);

	u = parse_ok("r2://logs/p?account-id=0123abcd&access-key-id=K&secret-access-key=S");
	assert_int_equal(u.scheme, BUCKET_SCHEME_R2);
	str_eq(u.account_id, "0123abcd");
	str_eq(u.prefix, "p/");
	bucket_uri_done(&u);

	u = parse_ok("r2://logs?access-key-id=K&secret-access-key=S&endpoint=http://127.0.0.1:1");
	str_eq(u.account_id, NULL);
	bucket_uri_done(&u);

	u = parse_ok("gs://bucket-test/a");
	assert_int_equal(u.scheme, BUCKET_SCHEME_GS);
	str_eq(u.prefix, "a/");
	bucket_uri_done(&u);

	u = parse_ok("azblob://devstoreaccount1/caps/x/y?endpoint=http://127.0.0.1:10000/devstoreaccount1&key=" AZ_KEY);
	assert_int_equal(u.scheme, BUCKET_SCHEME_AZURE);
	str_eq(u.account, "devstoreaccount1");
	str_eq(u.bucket, "caps");
	str_eq(u.prefix, "x/y/");
	str_eq(u.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
	str_eq(u.key, AZ_KEY);
	bucket_uri_done(&u);

	u = parse_ok("https://Acct01.blob.core.windows.net/caps?sas=sv%3D2022-11-02%26sig%3Dab%252Bc");
	str_eq(u.account, "acct01");
	str_eq(u.bucket, "caps");
	str_eq(u.sas, "sv=2022-11-02&sig=ab%2Bc");
	bucket_uri_done(&u);

	u = parse_ok("file:///srv/pcaps");
	assert_int_equal(u.scheme, BUCKET_SCHEME_FILE);
	str_eq(u.path, "/srv/pcaps");
	bucket_uri_done(&u);
}

typedef struct Bad {
	const char *uri;
	const char *msg;
} Bad;

static void test_parse_errors(void **state)
{
	static const Bad bad[] = {
		{"s3://b?regoin=x", "destination_conf: unknown query key 'regoin' for s3"},
		{"s3://b?region=a&region=b", "destination_conf: region is given twice"},
		{"s3://b?region=", "destination_conf: region has no value"},
		{"s3://b?region", "destination_conf: region has no value"},
		{"s3://b?=x", "destination_conf: an empty query key"},
		{"s3://b?region=US_EAST", "destination_conf: region: not of [a-z0-9-]"},
		{"s3://b?secret-access-key=%zz&access-key-id=a",
		 "destination_conf: secret-access-key: a bad percent-escape"},
		{"s3://b?secret-access-key=%0a&access-key-id=a",
		 "destination_conf: secret-access-key: a control character"},
		{"s3://b?access-key-id=a", "destination_conf: access-key-id and secret-access-key go together"},
		{"s3://b?endpoint=ftp://x", "destination_conf: endpoint: not an http:// or https:// URL"},
		{"s3://b?endpoint=http://u:p%40h/",
		 "destination_conf: endpoint: a query, fragment, user info or blank is "
		 "not allowed"},
		{"s3://b?endpoint=http://", "destination_conf: endpoint: no host"},
		{"s3://b/a//c", "destination_conf: the prefix has an empty, '.' or '..' segment"},
		{"s3://b/a/../c", "destination_conf: the prefix has an empty, '.' or '..' segment"},
		{"s3://b/a%20b", "destination_conf: percent-escapes ('%') are not supported in the path"},
		{"s3://b/a:b", "destination_conf: the prefix has a byte outside [A-Za-z0-9._~/-]"},
		{"s3://b#x", "destination_conf: a fragment ('#') is not allowed"},
		{"s3://b c", "destination_conf: a blank, control or non-ASCII byte (0x20)"},
		{"s3://.b", "destination_conf: '.b' is not a bucket name"},
		{"s3://b!x", "destination_conf: bucket name 'b!x' has a byte outside [A-Za-z0-9._-]"},
		{"s3://", "destination_conf: the s3 URI names no bucket"},
		{"gs:///dir", "destination_conf: the gs URI names no bucket"},
		{"gs://b?account-id=1", "destination_conf: unknown query key 'account-id' for gs"},
		{"r2://b?account-id=1", "destination_conf: an r2 URI needs access-key-id and secret-access-key"},
		{"r2://b?access-key-id=K&secret-access-key=S",
		 "destination_conf: an r2 URI needs account-id (or endpoint)"},
		{"r2://b?account-id=a.b&access-key-id=K&secret-access-key=S",
		 "destination_conf: account-id: not a Cloudflare account id"},
		{"azblob://ACCT/caps", "destination_conf: 'ACCT' is not an Azure account name (3..24 of [a-z0-9])"},
		{"azblob://acct", "destination_conf: the Azure URI names no container"},
		{"azblob://acct/Caps", "destination_conf: 'Caps' is not an Azure container name (3..63 of [a-z0-9-])"},
		{"azblob://acct/caps?key=a&sas=sig%3Db", "destination_conf: key and sas exclude each other"},
		{"azblob://acct/caps?sas=sv%3D1", "destination_conf: sas: not a SAS token (no sig=)"},
		{"azblob://acct/caps?region=x", "destination_conf: unknown query key 'region' for azblob"},
		{"https://acct.blob.core.windows.net/caps?endpoint=http://x",
		 "destination_conf: unknown query key 'endpoint' for https"},
		{"https://a.b.blob.core.windows.net/caps", "destination_conf: an https URI must be an Azure blob "
							   "container (https://ACCOUNT.blob.core.windows.net/"
							   "CONTAINER)"},
		{"https://example.com/pcaps", "destination_conf: an https URI must be an Azure blob container "
					      "(https://ACCOUNT.blob.core.windows.net/CONTAINER)"},
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		BucketUri u;
		ErrBuf err = {{0}};
		int r = bucket_uri_parse(bad[i].uri, strlen(bad[i].uri), &u, &err);

		if (r != -EINVAL)
			fail_msg("%s: got %d (%s), want -EINVAL", bad[i].uri, r, err.msg);
		if (strcmp(err.msg, bad[i].msg) != 0)
			fail_msg("%s:\n got  %s\n want %s", bad[i].uri, err.msg, bad[i].msg);
	}
}

static void test_secrets_never_in_errors(void **state)
{
	static const char *const uris[] = {
		"s3://b?secret-access-key=TOPSECRET&access-key-id=a&regoin=x",
		"s3://b?secret-access-key=TOPSECRET&secret-access-key=TOPSECRET",
		"s3://b?secret-access-key=TOP%zzSECRET&access-key-id=a",
		"s3://b?secret-access-key=TOPSECRET",
		"azblob://acct/caps?key=TOPSECRET&sas=TOPSECRET",
		"azblob://acct/caps?sas=TOPSECRET",
		"azblob://acct/caps?key=TOP%20SECRET",
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(uris); i++) {
		BucketUri u;
		ErrBuf err = {{0}};

		assert_int_equal(bucket_uri_parse(uris[i], strlen(uris[i]), &u, &err), -EINVAL);
		if (strstr(err.msg, "SECRET"))
			fail_msg("%s: the message quotes the secret: %s", uris[i], err.msg);
	}
}

static void test_redact(void **state)
{
	static const char *const cases[][2] = {
		{"s3://b/p?region=us-east-1&access-key-id=AKIA1&secret-access-key=abc%2Bdef",
		 "s3://b/p?region=us-east-1&access-key-id=AKIA1&secret-access-key=REDACTED"},
		{"azblob://a1b/caps?key=" AZ_KEY "&endpoint=http://127.0.0.1:1/x",
		 "azblob://a1b/caps?key=REDACTED&endpoint=http://127.0.0.1:1/x"},
		{"https://acct.blob.core.windows.net/caps?sas=sv%3D1%26sig%3Dx",
		 "https://acct.blob.core.windows.net/caps?sas=REDACTED"},
		/* A raw SAS pasted without encoding: its sig is still hidden. */
		{"https://acct.blob.core.windows.net/caps?sv=2022&se=x&sig=abc",
		 "https://acct.blob.core.windows.net/caps?sv=2022&se=x&sig=REDACTED"},
		{"s3://user:pass@b/x", "s3://REDACTED@b/x"},
		{"file:///srv/pcaps", "file:///srv/pcaps"},
		{"not a uri ?key=1", "not a uri ?key=REDACTED"},
		{"s3://b?X-Amz-Signature=abc&Secret=1&TOKEN=2",
		 "s3://b?X-Amz-Signature=REDACTED&Secret=REDACTED&TOKEN=REDACTED"},
		{"s3://b?secret-access-key", "s3://b?secret-access-key"},
	};
	char small[24];
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *got = bucket_uri_redact_dup(cases[i][0]);

		assert_non_null(got);
		if (strcmp(got, cases[i][1]) != 0)
			fail_msg("%s:\n got  %s\n want %s", cases[i][0], got, cases[i][1]);
		free(got);
	}
	/* Too small: a prefix, never a partial secret. */
	assert_int_equal(bucket_uri_redact("s3://b?secret-access-key=abcdefghij", small, sizeof(small)), -ENAMETOOLONG);
	assert_null(strstr(small, "abc"));
}

static void test_azure_account_arg(void **state)
{
	BucketAzureAccount a;
	char *copy;
	ErrBuf err = {{0}};

	(void)state;
	assert_int_equal(bucket_azure_account_parse("devstoreaccount1=" AZ_KEY, &copy, &a, &err), 0);
	assert_string_equal(a.account, "devstoreaccount1");
	assert_string_equal(a.key, AZ_KEY);
	assert_null(a.endpoint);
	free(copy);
	assert_int_equal(bucket_azure_account_parse("acct=" AZ_KEY "@http://127.0.0.1:10000/acct/", &copy, &a, &err),
			 0);
	assert_string_equal(a.endpoint, "http://127.0.0.1:10000/acct");
	free(copy);
	assert_int_equal(bucket_azure_account_parse("acct", &copy, &a, &err), -EINVAL);
	assert_string_equal(err.msg, "--azure-storage: expected ACCOUNT=KEY[@BLOB_ENDPOINT]");
	assert_int_equal(bucket_azure_account_parse("Acct=" AZ_KEY, &copy, &a, &err), -EINVAL);
	assert_int_equal(bucket_azure_account_parse("acct=SECRET!!", &copy, &a, &err), -EINVAL);
	assert_string_equal(err.msg, "--azure-storage acct: the key is not base64");
	assert_int_equal(bucket_azure_account_parse("acct=" AZ_KEY "@ftp://x", &copy, &a, &err), -EINVAL);
}

static void test_complete_body(void **state)
{
	const char *etags[] = {"\"e1\"", "\"e2\""};
	char *body;
	ErrBuf err = {{0}};

	(void)state;
	assert_int_equal(bucket_complete_body(BUCKET_KIND_S3, NULL, etags, 2, &body, &err), 0);
	assert_string_equal(body,
			    "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"e1\"</ETag></Part>"
			    "<Part><PartNumber>2</PartNumber><ETag>\"e2\"</ETag></Part></CompleteMultipartUpload>");
	free(body);
	/* Block ids: base64 of "<id>-<5 digits>", one length for all. */
	assert_int_equal(bucket_complete_body(BUCKET_KIND_AZURE, "abc", NULL, 2, &body, &err), 0);
	assert_string_equal(body, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>YWJjLTAwMDAx</Latest>"
				  "<Latest>YWJjLTAwMDAy</Latest></BlockList>");
	free(body);
	assert_int_equal(bucket_complete_body(BUCKET_KIND_S3, NULL, etags, 0, &body, &err), -EINVAL);
	etags[1] = "<x>";
	assert_int_equal(bucket_complete_body(BUCKET_KIND_S3, NULL, etags, 2, &body, &err), -EINVAL);
	assert_int_equal(bucket_complete_body(BUCKET_KIND_FILE, NULL, etags, 1, &body, &err), -EINVAL);
}

static void key_is(const char *uri, const char *want)
{
	char key[BUCKET_URI_MAX + 1];
	ErrBuf err = {{0}};

	if (bucket_uri_match_key(uri, strlen(uri), key, sizeof(key), &err) < 0)
		fail_msg("%s: %s", uri, err.msg);
	assert_string_equal(key, want);
}

/* One identity per bucket: keys, REDACTED, region and spelling aside. */
static void test_match_key(void **state)
{
	char key[BUCKET_URI_MAX + 1];
	ErrBuf err = {{0}};

	(void)state;
	key_is("file:///r/./x/../b1/", "file:///r/b1");
	key_is("FILE:///r//b1", "file:///r/b1");
	key_is("file:///", "file:///");
	key_is("file:///..", "file:///");
	key_is("s3://b?region=us-east-1", "s3://b/");
	key_is("S3://b/dir?region=eu-west-1&endpoint=HTTP://H:1/&access-key-id=K&secret-access-key=S",
	       "s3://b/dir/?endpoint=http://h:1");
	key_is("s3://b/dir/?endpoint=http%3A%2F%2Fh%3A1&access-key-id=K&secret-access-key=REDACTED",
	       "s3://b/dir/?endpoint=http://h:1");
	key_is("s3://b/Dir?endpoint=http://h:1/Base", "s3://b/Dir/?endpoint=http://h:1/Base");
	key_is("r2://b?account-id=A&access-key-id=K&secret-access-key=S", "r2://b/?account-id=A");
	key_is("r2://b?account-id=A", "r2://b/?account-id=A");
	key_is("r2://b?endpoint=http://h&account-id=A&access-key-id=K&secret-access-key=REDACTED",
	       "r2://b/?endpoint=http://h&account-id=A");
	key_is("gs://b/p/q?access-key-id=K&secret-access-key=S", "gs://b/p/q/");
	key_is("azblob://acct/caps/x?key=" AZ_KEY, "azblob://acct/caps/x/");
	key_is("https://ACCT.blob.core.windows.net/caps/x?sas=REDACTED", "azblob://acct/caps/x/");
	key_is("azblob://acct/caps?sas=sv%3D1%26sig%3Dabc&endpoint=http://127.0.0.1:10000/devstoreaccount1",
	       "azblob://acct/caps/?endpoint=http://127.0.0.1:10000/devstoreaccount1");
	assert_true(bucket_uri_same("s3://b?access-key-id=K&secret-access-key=S", "s3://b?region=us-east-1"));
	assert_false(bucket_uri_same("s3://b", "s3://b/p"));
	assert_false(bucket_uri_same("s3://b", "gs://b"));
	assert_false(bucket_uri_same("s3://b?regoin=x", "s3://b?regoin=x"));
	/* Still the grammar: unknown keys named, never a value quoted. */
	assert_int_equal(bucket_uri_match_key("s3://b?x=SECRET", 15, key, sizeof(key), &err), -EINVAL);
	assert_string_equal(err.msg, "destination_conf: unknown query key 'x' for s3");
	assert_int_equal(bucket_uri_match_key("s3://b", 6, key, 10, &err), -ENAMETOOLONG);
}

static void test_check_and_open(void **state)
{
	BucketConfig on = {0};
	Bucket *b = NULL;
	ErrBuf err = {{0}};

	(void)state;
	/* The API's check: every scheme, unknown keys named. */
	assert_int_equal(bucket_uri_check("s3://b?region=us-east-1", 23, &err), 0);
	assert_int_equal(bucket_uri_check("azblob://acct/caps", 18, &err), 0);
	assert_int_equal(bucket_uri_check("s3://b?regoin=x", 15, &err), -EINVAL);
	assert_string_equal(err.msg, "destination_conf: unknown query key 'regoin' for s3");

	/* Credentials are resolved at open, nothing is sent. */
	assert_int_equal(bucket_open("s3://b", &on, &b, &err), -EINVAL);
	assert_string_equal(err.msg, "destination_conf: s3://b has no access-key-id/secret-access-key and the "
				     "controller has none for s3 (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");
	on.aws_access_key_id = "AK";
	on.aws_secret_access_key = "SK";
	assert_int_equal(bucket_open("s3://b/p", &on, &b, &err), 0);
	assert_int_equal(bucket_kind(b), BUCKET_KIND_S3);
	/* A presigned URL on AWS: virtual-host style, the prefix in the key. */
	{
		BucketUrlRequest q = {.op = BUCKET_URL_GET, .name = "pcap_1", .expires_s = 60, .now = 1369353600};
		BucketSignedUrl u;

		assert_int_equal(bucket_presign(b, &q, &u, &err), 0);
		assert_string_equal(u.method, "GET");
		assert_true(strncmp(u.url, "https://b.s3.us-east-1.amazonaws.com/p/pcap_1?X-Amz-Algorithm=", 62) == 0);
		bucket_signed_url_done(&u);
		q.op = BUCKET_URL_UPLOAD_PART;
		q.part = 1;
		assert_int_equal(bucket_presign(b, &q, &u, &err), -EINVAL); /* no upload id */
		q.part = 0;
		assert_int_equal(bucket_presign(b, &q, &u, &err), -EINVAL);
	}
	bucket_free(b);
	assert_int_equal(bucket_open("gs://b", &on, &b, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "GOOGLE_HMAC_ACCESS_ID"));
	assert_int_equal(bucket_open("azblob://acct/caps", &on, &b, &err), -EINVAL);
	assert_string_equal(err.msg, "destination_conf: Azure account acct has no key= or sas= and the controller has "
				     "no --azure-storage acct=KEY");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_forms),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_secrets_never_in_errors),
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_azure_account_arg),
		cmocka_unit_test(test_complete_body),
		cmocka_unit_test(test_match_key),
		cmocka_unit_test(test_check_and_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the pure half of the Azure dialect (src/api/azure/azure.h):
 * subscription ids and names, api-versions, the PacketCapture request (one
 * table: every property's type, bound and enum, good and bad, with the exact
 * message and so the ARM target), what a request becomes in the model, its
 * canonical echo, blob URLs, and the objects rendered for the SDK. No HTTP
 * and no database here.
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

#include "api/azure/azure.h"

#define ACC "0123456789abcdef0123456789abcdef"
#define SUB "01234567-89ab-cdef-0123-456789abcdef"
#define VM "\"target\":\"/subscriptions/" SUB "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1\""
#define VMSS                                                                                                           \
	"\"target\":\"/subscriptions/" SUB "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/"   \
	"ss\""
#define FILEPATH "\"storageLocation\":{\"filePath\":\"/var/captures/a.cap\"}"
#define LOCALPATH "\"storageLocation\":{\"localPath\":\"/var/captures/ring.cap\"}"
/* 115 bytes: the longest blob name of a continuous capture (111 and ".cap") */
#define B10 "bbbbbbbbbb"
#define B115 B10 B10 B10 B10 B10 B10 B10 B10 B10 B10 B10 "b.cap"
#define P(x) "{\"properties\":{" x "}}"

static void test_names(void **state)
{
	char acc[JOB_ID_LEN + 1], sub[AZ_SUBSCRIPTION_LEN + 1];

	(void)state;
	assert_true(azure_account_of(SUB, strlen(SUB), acc));
	assert_string_equal(acc, ACC);
	assert_true(azure_account_of("01234567-89AB-CDEF-0123-456789ABCDEF", 36, acc));
	assert_string_equal(acc, ACC);
	assert_false(azure_account_of(ACC, 32, acc));                                    /* dashes required */
	assert_false(azure_account_of("01234567-89ab-cdef-0123-456789abcdeg", 36, acc)); /* not hex */
	assert_false(azure_account_of("0123456789-ab-cdef-0123-456789abcdef", 36, acc)); /* dash misplaced */
	azure_subscription_of(ACC, sub);
	assert_string_equal(sub, SUB);

	assert_int_equal(azure_api_version_check(NULL), -ENOENT);
	assert_int_equal(azure_api_version_check("2026-01-01"), 0);
	assert_int_equal(azure_api_version_check("2023-11-01"), 0);
	assert_int_equal(azure_api_version_check("2024-02-29"), 0);
	assert_int_equal(azure_api_version_check("2025-01-01-preview"), 0);
	assert_int_equal(azure_api_version_check("2023-10-31"), -ERANGE);
	assert_int_equal(azure_api_version_check("2020-11-01"), -ERANGE);
	assert_int_equal(azure_api_version_check("2025-02-29"), -EINVAL);
	assert_int_equal(azure_api_version_check("2025-13-01"), -EINVAL);
	assert_int_equal(azure_api_version_check("2025-1-01"), -EINVAL);
	assert_int_equal(azure_api_version_check("2025-01-01-beta"), -EINVAL);
	assert_int_equal(azure_api_version_check(""), -EINVAL);
	assert_int_equal(azure_api_version_check("latest"), -EINVAL);

	assert_true(azure_group_valid("rg_1-(prod).x"));
	assert_false(azure_group_valid("rg."));
	assert_false(azure_group_valid(""));
	assert_false(azure_group_valid("rg 1"));
	assert_true(azure_name_valid("nw1.prod-eu_2"));
	assert_false(azure_name_valid("-nw"));
	assert_false(azure_name_valid("nw("));
	assert_false(azure_name_valid("pc1."));
}

typedef struct Case {
	const char *body;
	const char *msg; /* NULL: accepted; else the exact message, field first */
} Case;

static const Case cases[] = {
	/* accepted */
	{P(VM "," FILEPATH), NULL},
	{P(VM "," FILEPATH ",\"scope\":null,\"filters\":null,\"continuousCapture\":null"), NULL},
	{P(VM "," FILEPATH ",\"targetType\":\"azurevm\",\"bytesToCapturePerPacket\":4294967295,"
	      "\"totalBytesPerSession\":0,\"timeLimitInSeconds\":18000"),
	 NULL},
	{P(VM "," FILEPATH ",\"filters\":[{\"protocol\":\"tcp\",\"localIPAddress\":\"10.0.0.1-10.0.0.9\","
	      "\"remoteIPAddress\":\"1.1.1.1;2.2.2.2;\",\"localPort\":\"80-85\",\"remotePort\":\"20;80;443\"},"
	      "{\"protocol\":\"All\",\"localIPAddress\":\"\"}]"),
	 NULL},
	{P(VMSS "," LOCALPATH ",\"targetType\":\"AzureVMSS\",\"scope\":{\"include\":[\"a\"],\"exclude\":[]},"
		"\"continuousCapture\":false"),
	 NULL},
	{"{\"name\":\"pc1\",\"id\":\"x\",\"etag\":\"y\",\"properties\":{" VM "," FILEPATH
	 ",\"provisioningState\":\"Succeeded\"}}",
	 NULL},
	{"{\"Properties\":{\"TARGET\":\"/SUBSCRIPTIONS/" SUB "/resourcegroups/rg/PROVIDERS/microsoft.compute/"
	 "VIRTUALMACHINES/vm1\",\"storagelocation\":{\"FILEPATH\":\"/var/captures/A.CAP\"}}}",
	 NULL},

	/* the body */
	{"{}", "properties: required"},
	{"{\"properties\":{" VM "," FILEPATH "},\"location\":\"x\"}", "body.location: unknown property"},
	{"{\"properties\":[]}", "properties: must be an object"},
	{P(VM "," FILEPATH ",\"timeLimitInSecond\":5"), "properties.timeLimitInSecond: unknown property"},
	{"{\"properties\":{" VM ",\"Target\":\"x\"," FILEPATH "}}", "properties.target: given twice"},

	/* target */
	{P(FILEPATH), "properties.target: required"},
	{P("\"target\":5," FILEPATH), "properties.target: must be a string (a virtual machine's resource id)"},
	{P("\"target\":\"vm1\"," FILEPATH),
	 "properties.target: must be /subscriptions/{subscriptionId}/resourceGroups/{group}/providers/"
	 "Microsoft.Compute/virtualMachines/{name} (or virtualMachineScaleSets/{name})"},
	{P("\"target\":\"/subscriptions/" SUB "/resourceGroups/rg/providers/Microsoft.Compute/disks/d1\"," FILEPATH),
	 "properties.target: must be /subscriptions/{subscriptionId}/resourceGroups/{group}/providers/"
	 "Microsoft.Compute/virtualMachines/{name} (or virtualMachineScaleSets/{name})"},
	{P("\"target\":\"/subscriptions/" SUB
	   "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1/x\"," FILEPATH),
	 "properties.target: must be /subscriptions/{subscriptionId}/resourceGroups/{group}/providers/"
	 "Microsoft.Compute/virtualMachines/{name} (or virtualMachineScaleSets/{name})"},
	{P("\"target\":\"/subscriptions/sub1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/"
	   "vm1\"," FILEPATH),
	 "properties.target: 'sub1' is not a subscription id (a UUID)"},
	{P("\"target\":\"/subscriptions/11111111-89ab-cdef-0123-456789abcdef/resourceGroups/rg/providers/"
	   "Microsoft.Compute/virtualMachines/vm1\"," FILEPATH),
	 "properties.target: must be in this subscription, not 11111111-89ab-cdef-0123-456789abcdef"},
	{P("\"target\":\"/subscriptions/" SUB
	   "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm+1\"," FILEPATH),
	 "properties.target: 'vm+1' is not a pcapd agent's name (1..63 of [A-Za-z0-9._-])"},

	/* targetType */
	{P(VM ",\"targetType\":\"AzureVMSS\"," FILEPATH),
	 "properties.targetType: AzureVMSS does not match the target, a virtual machine (AzureVM)"},
	{P(VMSS ",\"targetType\":\"AzureVM\"," FILEPATH),
	 "properties.targetType: AzureVM does not match the target, a virtual machine scale set (AzureVMSS)"},
	{P(VM ",\"targetType\":\"Pod\"," FILEPATH), "properties.targetType: 'Pod' is not AzureVM or AzureVMSS"},
	{P(VM ",\"targetType\":1," FILEPATH), "properties.targetType: must be AzureVM or AzureVMSS"},

	/* scope */
	{P(VM ",\"scope\":{\"include\":[\"a\"]}," FILEPATH),
	 "properties.scope: only for a virtual machine scale set target (AzureVMSS)"},
	{P(VMSS ",\"scope\":{\"include\":\"a\"}," FILEPATH),
	 "properties.scope.include: must be an array of instance (agent) names"},
	{P(VMSS ",\"scope\":{\"exclude\":[\"a\",\"b c\"]}," FILEPATH),
	 "properties.scope.exclude[1]: must be an agent's name (1..63 of [A-Za-z0-9._-])"},
	{P(VMSS ",\"scope\":{\"include\":[\"a\"],\"exclude\":[\"A\"]}," FILEPATH),
	 "properties.scope.exclude: a is also included"},
	{P(VMSS ",\"scope\":{\"only\":[]}," FILEPATH), "properties.scope.only: unknown property"},

	/* limits */
	{P(VM "," FILEPATH ",\"bytesToCapturePerPacket\":-1"),
	 "properties.bytesToCapturePerPacket: -1 is outside 0..4294967295"},
	{P(VM "," FILEPATH ",\"bytesToCapturePerPacket\":4294967296"),
	 "properties.bytesToCapturePerPacket: 4294967296 is outside 0..4294967295"},
	{P(VM "," FILEPATH ",\"bytesToCapturePerPacket\":\"100\""),
	 "properties.bytesToCapturePerPacket: must be a whole number in 0..4294967295"},
	{P(VM "," FILEPATH ",\"totalBytesPerSession\":4294967296"),
	 "properties.totalBytesPerSession: 4294967296 is outside 0..4294967295"},
	{P(VM "," FILEPATH ",\"totalBytesPerSession\":1.5"),
	 "properties.totalBytesPerSession: 1.5 is not a whole number"},
	{P(VM "," FILEPATH ",\"timeLimitInSeconds\":18001"),
	 "properties.timeLimitInSeconds: 18001 is outside 0..18000"},
	{P(VM "," FILEPATH ",\"timeLimitInSeconds\":true"),
	 "properties.timeLimitInSeconds: must be a whole number in 0..18000"},

	/* storage */
	{P(VM), "properties.storageLocation: required"},
	{P(VM ",\"storageLocation\":{}"),
	 "properties.storageLocation: give filePath (a file below /var/captures on the target), storagePath or "
	 "storageId"},
	{P(VM ",\"storageLocation\":{\"filePath\":\"\"}"),
	 "properties.storageLocation: give filePath (a file below /var/captures on the target), storagePath or "
	 "storageId"},
	{P(VM ",\"storageLocation\":\"/var/captures/a.cap\""), "properties.storageLocation: must be an object"},
	{P(VM ",\"storageLocation\":{\"filePath\":\"C:\\\\Captures\\\\a.cap\"}"),
	 "properties.storageLocation.filePath: must be a file below /var/captures (Linux), such as "
	 "/var/captures/capture.cap"},
	{P(VM ",\"storageLocation\":{\"filePath\":\"/var/captures\"}"),
	 "properties.storageLocation.filePath: must be a file below /var/captures (Linux), such as "
	 "/var/captures/capture.cap"},
	{P(VM ",\"storageLocation\":{\"filePath\":\"/var/captures/../etc/a.cap\"}"),
	 "properties.storageLocation.filePath: empty, '.' and '..' path segments are not allowed"},
	{P(VM ",\"storageLocation\":{\"filePath\":\"/var/captures/x//a.cap\"}"),
	 "properties.storageLocation.filePath: empty, '.' and '..' path segments are not allowed"},
	{P(VM ",\"storageLocation\":{\"filePath\":\"/var/captures/a.pcap\"}"),
	 "properties.storageLocation.filePath: the file's name must end in .cap"},
	{P(VM ",\"storageLocation\":{\"filePath\":\"/var/captures/.cap\"}"),
	 "properties.storageLocation.filePath: the file's name must end in .cap"},
	{P(VM ",\"storageLocation\":{\"filePath\":\"/var/captures/a\\u0001.cap\"}"),
	 "properties.storageLocation.filePath: only printable ASCII without '\\' is allowed"},
	{P(VM ",\"storageLocation\":{\"filePath\":7}"),
	 "properties.storageLocation.filePath: must be a string (a file below /var/captures, such as "
	 "/var/captures/capture.cap)"},
	{P(VM ",\"storageLocation\":{\"localPath\":\"/var/captures/a.cap\"}"),
	 "properties.storageLocation.localPath: only for continuous captures (continuousCapture true or false); "
	 "use filePath"},
	{P(VM ",\"storageLocation\":{\"filePath\":\"/var/captures/a.cap\"},\"continuousCapture\":true"),
	 "properties.storageLocation.filePath: not for continuous captures; use localPath"},
	{P(VM ",\"storageLocation\":{\"storagePath\":\"http://acct.blob.core.windows.net/c1c/b\"}"),
	 "properties.storageLocation.storagePath: must be a blob URL https://ACCOUNT.blob.core.windows.net/CONTAINER/"
	 "BLOB"},
	{P(VM ",\"storageLocation\":{\"storagePath\":\"https://Acct.blob.core.windows.net/c1c/b\"}"),
	 "properties.storageLocation.storagePath: a storage account name is 3..24 lowercase letters and digits"},
	{P(VM ",\"storageLocation\":{\"storagePath\":\"https://acct.blob.core.windows.net/a--b/b\"}"),
	 "properties.storageLocation.storagePath: a container name is 3..63 lowercase letters, digits and single "
	 "'-' inside"},
	{P(VM ",\"storageLocation\":{\"storagePath\":\"https://acct.blob.core.windows.net/cont/b?sv=1\"}"),
	 "properties.storageLocation.storagePath: the blob name must be 1..1024 bytes without '?' or '#'"},
	{P(VM ",\"storageLocation\":{\"storagePath\":\"https://acct.blob.core.windows.net/cont/a b.cap\"}"),
	 "properties.storageLocation.storagePath: pcapd writes blobs whose names hold only A-Z a-z 0-9 . _ - and '/' "
	 "between directories"},
	{P(VM ",\"storageLocation\":{\"storagePath\":\"https://acct.blob.core.windows.net/cont/dir/\"}"),
	 "properties.storageLocation.storagePath: the blob's name after its last '/' must be 1..136 bytes, not "
	 "starting with '.'"},
	{P(VM ",\"storageLocation\":{\"storagePath\":\"https://acct.blob.core.windows.net/cont/a//b.cap\"}"),
	 "properties.storageLocation.storagePath: empty, '.' and '..' directories are not allowed"},
	{P(VM ",\"storageLocation\":{\"storagePath\":\"https://acct.blob.core.windows.net/cont/../b.cap\"}"),
	 "properties.storageLocation.storagePath: empty, '.' and '..' directories are not allowed"},
	{P(VM ",\"storageLocation\":{\"storageId\":\"/subscriptions/" SUB "/resourceGroups/rg/providers/"
	      "Microsoft.Storage/storageAccounts/acct\"}"),
	 "properties.storageLocation.storageId: give storagePath too, the blob "
	 "https://acct.blob.core.windows.net/CONTAINER/BLOB to write"},
	{P(VM ",\"storageLocation\":{\"storageId\":\"/subscriptions/" SUB "/resourceGroups/rg/providers/"
	      "Microsoft.Storage/storageAccounts/acct\",\"storagePath\":\"https://other.blob.core.windows.net/cont/"
	      "b.cap\"}"),
	 "properties.storageLocation.storageId: names storage account acct, but storagePath is a blob of account "
	 "other"},
	/* continuous into blobs: the name leaves room for _<agent> and _<N> */
	{P(VM ",\"storageLocation\":{\"storagePath\":\"https://acct.blob.core.windows.net/cont/r.cap\","
	      "\"localPath\":\"/var/captures/r.cap\"},\"continuousCapture\":true"),
	 NULL},
	{P(VM ",\"storageLocation\":{\"storagePath\":\"https://acct.blob.core.windows.net/cont/d/" B115 "\"},"
	      "\"continuousCapture\":false"),
	 NULL},
	{P(VM ",\"storageLocation\":{\"storagePath\":\"https://acct.blob.core.windows.net/cont/d/" B115 "x\"},"
	      "\"continuousCapture\":false"),
	 "properties.storageLocation.storagePath: the blob's name after its last '/' must be 1..115 bytes, not "
	 "starting with '.' (a continuous capture's blobs add _<agent> and _<N> to it)"},
	{P(VM ",\"storageLocation\":{\"storagePath\":\"https://acct.blob.core.windows.net/cont/d/" B115 "x\"}"), NULL},
	{P(VM ",\"storageLocation\":{\"storageId\":\"/subscriptions/" SUB "/resourceGroups/rg/providers/"
	      "Microsoft.Compute/storageAccounts/acct\"}"),
	 "properties.storageLocation.storageId: must be /subscriptions/{subscriptionId}/resourceGroups/{group}/"
	 "providers/Microsoft.Storage/storageAccounts/{account}"},

	/* filters */
	{P(VM "," FILEPATH ",\"filters\":{}"), "properties.filters: must be an array of filters"},
	{P(VM "," FILEPATH ",\"filters\":[5]"), "properties.filters[0]: must be an object"},
	{P(VM "," FILEPATH ",\"filters\":[{},{\"protocol\":\"ICMP\"}]"),
	 "properties.filters[1].protocol: must be TCP, UDP or Any"},
	{P(VM "," FILEPATH ",\"filters\":[{\"localPort\":\"70000\"}]"),
	 "properties.filters[0].localPort: 70000 is outside 0..65535"},
	{P(VM "," FILEPATH ",\"filters\":[{\"remoteIPAddress\":\"1.1.1.300\"}]"),
	 "properties.filters[0].remoteIPAddress: \"1.1.1.300\" is not an IPv4 or IPv6 address"},
	{P(VM "," FILEPATH ",\"filters\":[{\"remotePort\":80}]"),
	 "properties.filters[0].remotePort: must be a string (ports: 80, 80-90 or 80;443)"},
	{P(VM "," FILEPATH ",\"filters\":[{\"localIPAddress\":\"10.0.0.1\",\"direction\":\"in\"}]"),
	 "properties.filters[0].direction: unknown property"},

	/* continuous */
	{P(VM ",\"continuousCapture\":\"yes\"," LOCALPATH),
	 "properties.continuousCapture: must be true (a ring of files), false (files kept) or null (a classic "
	 "capture)"},
	{P(VM "," FILEPATH ",\"captureSettings\":{\"fileCount\":2}"),
	 "properties.captureSettings: only for continuous captures (continuousCapture true or false)"},
	{P(VM "," LOCALPATH ",\"continuousCapture\":true,\"captureSettings\":{\"fileCount\":0}"),
	 "properties.captureSettings.fileCount: a ring buffer (continuousCapture true) keeps 1..10000 files"},
	{P(VM "," LOCALPATH ",\"continuousCapture\":false,\"captureSettings\":{\"fileCount\":10001}"),
	 "properties.captureSettings.fileCount: 10001 is outside 0..10000"},
	{P(VM "," LOCALPATH ",\"continuousCapture\":false,\"captureSettings\":{\"fileSizeInBytes\":4294967296}"),
	 "properties.captureSettings.fileSizeInBytes: 4294967296 is outside 0..4294967295"},
	{P(VM "," LOCALPATH ",\"continuousCapture\":false,\"captureSettings\":{\"sessionTimeLimitInSeconds\":604801}"),
	 "properties.captureSettings.sessionTimeLimitInSeconds: 604801 is outside 0..604800"},
	{P(VM "," LOCALPATH ",\"continuousCapture\":false,\"captureSettings\":{\"files\":1}"),
	 "properties.captureSettings.files: unknown property"},
};

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_error_t jerr;
		json_t *body = json_loads(cases[i].body, 0, &jerr);
		ErrBuf err = {{0}};
		AzCreate more;
		Job j = {0};
		int r;

		if (!body)
			fail_msg("case %zu: bad JSON %s: %s", i, cases[i].body, jerr.text);
		r = azure_parse_create(body, ACC, &j, &more, &err);
		json_decref(body);
		if (!cases[i].msg) {
			if (r != 0)
				fail_msg("case %zu: %s refused: %s", i, cases[i].body, err.msg);
		} else if (r != -EINVAL || strcmp(err.msg, cases[i].msg) != 0) {
			fail_msg("case %zu: %s\n  got  %d \"%s\"\n  want \"%s\"", i, cases[i].body, r, err.msg,
				 cases[i].msg);
		}
		job_done(&j);
	}
}

static Job parse_ok(const char *text, AzCreate *more)
{
	json_t *body = json_loads(text, 0, NULL);
	ErrBuf err = {{0}};
	Job j = {0};

	assert_non_null(body);
	if (azure_parse_create(body, ACC, &j, more, &err) < 0)
		fail_msg("%s: %s", text, err.msg);
	json_decref(body);
	return j;
}

static void test_model(void **state)
{
	AzCreate more;
	Job j;

	(void)state;
	/* a classic capture: defaults, an agent target, a file, both directions */
	j = parse_ok(P(VM "," FILEPATH ",\"filters\":[{\"protocol\":\"TCP\",\"localIPAddress\":\"10.0.0.1\","
			  "\"remotePort\":\"80;443\"}]"),
		     &more);
	assert_int_equal(j.type, JOB_FULL);
	assert_int_equal(j.target_kind, JOB_TARGET_AGENT);
	assert_string_equal(j.colo_name, "vm1");
	assert_int_equal(j.snaplen, 0);
	assert_int_equal(j.byte_limit, AZ_DEFAULT_TOTAL_BYTES);
	assert_int_equal(j.time_limit_s, 18000);
	assert_int_equal(j.n_outputs, 1);
	assert_int_equal(j.outputs[0].kind, JOB_OUTPUT_FILE);
	assert_string_equal(j.outputs[0].target, "/var/captures/a.cap");
	assert_false(j.continuous.on);
	assert_null(j.filter_json);
	assert_string_equal(
		j.filter_model,
		"{\"clauses\":[{\"src\":[\"10.0.0.1\"],\"dport\":[\"80\",\"443\"],\"proto\":6,\"both\":true}]}");
	/* the echo: the SDK's order, defaults filled */
	assert_string_equal(j.request,
			    "{\"target\":\"/subscriptions/" SUB "/resourceGroups/rg/providers/Microsoft.Compute/"
			    "virtualMachines/vm1\",\"targetType\":\"AzureVM\",\"bytesToCapturePerPacket\":0,"
			    "\"totalBytesPerSession\":1073741824,\"timeLimitInSeconds\":18000,\"storageLocation\":{"
			    "\"filePath\":\"/var/captures/a.cap\"},\"filters\":[{\"protocol\":\"TCP\","
			    "\"localIPAddress\":\"10.0.0.1\",\"remotePort\":\"80;443\"}]}");
	assert_false(more.has_blob);
	job_done(&j);

	/* 0 limits: whole packets, no byte bound, the longest time */
	j = parse_ok(P(VM "," FILEPATH ",\"bytesToCapturePerPacket\":34,\"totalBytesPerSession\":0,"
			  "\"timeLimitInSeconds\":0"),
		     &more);
	assert_int_equal(j.snaplen, 34);
	assert_int_equal(j.byte_limit, 0);
	assert_int_equal(j.time_limit_s, 18000);
	assert_string_equal(j.filter_model, "{}");
	job_done(&j);

	/* a ring on a scale set: the session limit, no byte bound, the files */
	j = parse_ok(P(VMSS "," LOCALPATH ",\"scope\":{\"include\":[\"a\",\"b\"],\"exclude\":[\"c\"]},"
			    "\"continuousCapture\":true,\"captureSettings\":{\"fileCount\":3,"
			    "\"fileSizeInBytes\":1000,\"sessionTimeLimitInSeconds\":0}"),
		     &more);
	assert_int_equal(j.target_kind, JOB_TARGET_COLO);
	assert_string_equal(j.colo_name, "ss");
	assert_string_equal(j.target_include, "a,b");
	assert_string_equal(j.target_exclude, "c");
	assert_true(j.continuous.on && j.continuous.ring);
	assert_int_equal(j.continuous.file_count, 3);
	assert_int_equal(j.continuous.file_size, 1000);
	assert_int_equal(j.continuous.session_limit_s, AZ_SESSION_LIMIT_MAX);
	assert_int_equal(j.byte_limit, 0);
	assert_int_equal(j.time_limit_s, 0);
	assert_non_null(strstr(j.request, "\"continuousCapture\":true,\"captureSettings\":{\"fileCount\":3,"
					  "\"fileSizeInBytes\":1000,\"sessionTimeLimitInSeconds\":0}"));
	assert_non_null(strstr(j.request, "\"scope\":{\"include\":[\"a\",\"b\"],\"exclude\":[\"c\"]}"));
	job_done(&j);

	/* continuous false keeps every file: the byte bound applies; defaults */
	j = parse_ok(P(VM "," LOCALPATH ",\"continuousCapture\":false,\"totalBytesPerSession\":5000"), &more);
	assert_false(j.continuous.ring);
	assert_int_equal(j.byte_limit, 5000);
	assert_int_equal(j.continuous.file_count, AZ_DEFAULT_FILE_COUNT);
	assert_int_equal(j.continuous.file_size, AZ_DEFAULT_FILE_SIZE);
	assert_int_equal(j.continuous.session_limit_s, AZ_DEFAULT_SESSION_LIMIT);
	job_done(&j);

	/* a blob: parsed, left to the caller */
	j = parse_ok(P(VM ",\"storageLocation\":{\"storagePath\":\"https://acct1.blob.core.windows.net/"
			  "network-watcher-logs/sub/pc1.cap\"}"),
		     &more);
	assert_true(more.has_blob);
	assert_string_equal(more.blob.account, "acct1");
	assert_string_equal(more.blob.container, "network-watcher-logs");
	assert_int_equal(more.blob.blob_len, strlen("sub/pc1.cap"));
	/* a held bucket output: the blob's directories are the prefix, its name the object */
	assert_int_equal(j.n_outputs, 1);
	assert_int_equal(j.outputs[0].kind, JOB_OUTPUT_BUCKET);
	assert_string_equal(j.outputs[0].target, "azblob://acct1/network-watcher-logs/sub/");
	assert_string_equal(j.outputs[0].object, "pc1.cap");
	assert_true(j.outputs[0].held);
	assert_non_null(strstr(j.request, "\"storageLocation\":{\"storagePath\":\"https://acct1.blob.core.windows.net/"
					  "network-watcher-logs/sub/pc1.cap\"}"));
	job_done(&j);

	/* a blob and a file on the agent, with the storage account's id: both outputs */
	j = parse_ok(
		P(VM ",\"storageLocation\":{\"storageId\":\"/subscriptions/" SUB "/resourceGroups/rg/providers/"
		     "Microsoft.Storage/storageAccounts/acct1\",\"storagePath\":\"https://acct1.blob.core.windows.net/"
		     "caps/pc1.cap\",\"filePath\":\"/var/captures/pc1.cap\"}"),
		&more);
	assert_true(more.has_blob && more.has_storage_id);
	assert_int_equal(j.n_outputs, 2);
	assert_string_equal(j.outputs[0].target, "azblob://acct1/caps/");
	assert_string_equal(j.outputs[0].object, "pc1.cap");
	assert_int_equal(j.outputs[1].kind, JOB_OUTPUT_FILE);
	assert_string_equal(j.outputs[1].target, "/var/captures/pc1.cap");
	job_done(&j);
}

static Job named(JobStatus status, int64_t started, uint64_t packets)
{
	Job j = {0};

	memcpy(j.account, ACC, sizeof(j.account));
	memcpy(j.id, "ffffffffffffffffffffffffffffffff", JOB_ID_LEN + 1);
	j.type = JOB_FULL;
	j.status = status;
	j.started_ns = started;
	j.packets = packets;
	j.name = (JobName){(char *)"rg1", (char *)"nw1", (char *)"pc1"};
	j.request = (char *)"{\"target\":\"t\"}";
	return j;
}

static void test_render(void **state)
{
	JobPart parts[2] = {{.state = PART_DONE}, {.state = PART_FAILED, .failure = PART_FAIL_FILE}};
	Job j = named(JOB_PENDING, 0, 0);
	json_t *o, *props;
	char *text;

	(void)state;
	strcpy(parts[0].agent, "a");
	strcpy(parts[1].agent, "b");
	assert_string_equal(azure_provisioning_state(&j), "Updating");
	o = azure_render_capture(&j, NULL, 0);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "id")),
			    "/subscriptions/" SUB "/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/nw1/"
			    "packetCaptures/pc1");
	assert_string_equal(json_string_value(json_object_get(o, "name")), "pc1");
	text = (char *)json_string_value(json_object_get(o, "etag"));
	assert_int_equal(strlen(text), strlen("W/\"00000000-0000-0000-0000-000000000000\""));
	assert_true(strncmp(text, "W/\"", 3) == 0);
	props = json_object_get(o, "properties");
	assert_string_equal(json_string_value(json_object_get(props, "target")), "t");
	assert_string_equal(json_string_value(json_object_get(props, "provisioningState")), "Updating");
	assert_string_equal(json_string_value(json_object_get(json_object_get(props, "pcapd"), "status")), "pending");
	json_decref(o);

	o = azure_render_status(&j, NULL, 0);
	assert_string_equal(json_string_value(json_object_get(o, "packetCaptureStatus")), "NotStarted");
	assert_null(json_object_get(o, "captureStartTime"));
	json_decref(o);

	/* started, stopped by time: Succeeded, Stopped, TimeExceeded, ms times */
	j = named(JOB_SUCCESS, 1714564800123456789LL, 5);
	j.stop_reason = JOB_STOP_TIME;
	assert_string_equal(azure_provisioning_state(&j), "Succeeded");
	o = azure_render_status(&j, parts, 1);
	assert_string_equal(json_string_value(json_object_get(o, "packetCaptureStatus")), "Stopped");
	assert_string_equal(json_string_value(json_object_get(o, "stopReason")), "TimeExceeded");
	assert_string_equal(json_string_value(json_object_get(o, "captureStartTime")), "2024-05-01T12:00:00.123Z");
	assert_int_equal(json_array_size(json_object_get(o, "packetCaptureError")), 0);
	json_decref(o);

	/* "failed" only because nothing matched: Azure shows a stopped session */
	j = named(JOB_FAILED, 5, 0);
	j.stop_reason = JOB_STOP_BYTES;
	o = azure_render_status(&j, parts, 1);
	assert_string_equal(json_string_value(json_object_get(o, "packetCaptureStatus")), "Stopped");
	assert_string_equal(json_string_value(json_object_get(o, "stopReason")), "TotalBytesExceeded");
	json_decref(o);

	/* a part failed writing its file: Error, LocalFileFailed */
	o = azure_render_status(&j, parts, 2);
	assert_string_equal(json_string_value(json_object_get(o, "packetCaptureStatus")), "Error");
	assert_string_equal(json_string_value(json_object_get(o, "stopReason")), "");
	assert_string_equal(json_string_value(json_array_get(json_object_get(o, "packetCaptureError"), 0)),
			    "LocalFileFailed");
	json_decref(o);

	/* failed before any agent started: provisioning failed */
	j = named(JOB_FAILED, 0, 0);
	assert_string_equal(azure_provisioning_state(&j), "Failed");
	parts[0].state = PART_LOST;
	o = azure_render_status(&j, parts, 2);
	assert_string_equal(json_string_value(json_array_get(json_object_get(o, "packetCaptureError"), 0)),
			    "AgentStopped");
	assert_string_equal(json_string_value(json_array_get(json_object_get(o, "packetCaptureError"), 1)),
			    "LocalFileFailed");
	json_decref(o);

	/* a continuous share still running whose file did not reach its blob:
	 * Running with StorageFailed; without an error, no error */
	j = named(JOB_RUNNING, 5, 1);
	parts[0].state = PART_RUNNING;
	parts[0].error = (char *)"r_3.cap did not reach the store: HTTP 404";
	o = azure_render_status(&j, parts, 1);
	assert_string_equal(json_string_value(json_object_get(o, "packetCaptureStatus")), "Running");
	assert_int_equal(json_array_size(json_object_get(o, "packetCaptureError")), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(o, "packetCaptureError"), 0)),
			    "StorageFailed");
	json_decref(o);
	parts[0].error = NULL;
	o = azure_render_status(&j, parts, 1);
	assert_int_equal(json_array_size(json_object_get(o, "packetCaptureError")), 0);
	json_decref(o);

	/* running (both conversion statuses: the files are still being
	 * delivered); stopped by a user; by the agent's shutdown */
	j = named(JOB_CONVERSION_RUNNING, 5, 1);
	o = azure_render_status(&j, NULL, 0);
	assert_string_equal(json_string_value(json_object_get(o, "packetCaptureStatus")), "Running");
	json_decref(o);
	j = named(JOB_CONVERSION_PENDING, 5, 1);
	o = azure_render_status(&j, NULL, 0);
	assert_string_equal(json_string_value(json_object_get(o, "packetCaptureStatus")), "Running");
	assert_string_equal(json_string_value(json_object_get(o, "stopReason")), "");
	json_decref(o);
	j = named(JOB_SUCCESS, 5, 1);
	j.stop_reason = JOB_STOP_USER;
	o = azure_render_status(&j, NULL, 0);
	assert_string_equal(json_string_value(json_object_get(o, "stopReason")), "StoppedByUser");
	json_decref(o);
	j = named(JOB_SUCCESS, 5, 1);
	j.stop_reason = JOB_STOP_SHUTDOWN;
	o = azure_render_status(&j, NULL, 0);
	assert_string_equal(json_string_value(json_object_get(o, "packetCaptureStatus")), "Stopped");
	assert_string_equal(json_string_value(json_object_get(o, "stopReason")), "AgentStopped");
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_render),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * A PacketCapture request into the capture model (azure.h).
 *
 * Rules every property follows, as ARM takes them:
 *  - property names compare without regard to case; one given twice (in any
 *    case) is refused; an unknown one is refused naming it;
 *  - JSON null, and "" for a string, are the same as an absent property (the
 *    SDK sends nulls for options left unset, and Azure shows "" for them);
 *  - numbers are whole and within the contract's bounds;
 *  - the first failure in a fixed order is the answer: target, targetType,
 *    scope, continuousCapture, bytesToCapturePerPacket,
 *    totalBytesPerSession, timeLimitInSeconds, captureSettings without
 *    continuous mode, storageLocation, filters, captureSettings' values.
 *
 * Meanings (README, "The Azure dialect"): bytesToCapturePerPacket 0 keeps
 * whole packets; totalBytesPerSession 0 sets no byte bound;
 * timeLimitInSeconds and sessionTimeLimitInSeconds 0 mean their maximum
 * (18,000 s and 604,800 s); a continuous capture ends by its session limit
 * (timeLimitInSeconds is kept and shown, not applied), and a ring
 * (continuousCapture true) is bounded by its files, not by
 * totalBytesPerSession. Each filter matches both directions (local and
 * remote are source and destination either way round); several are OR-ed.
 *
 * storageLocation: filePath (localPath when continuous) is a file output on
 * the agent; storagePath a blob https://ACCOUNT.blob.core.windows.net/
 * CONTAINER/[DIRS/]NAME, a held bucket output azblob://ACCOUNT/CONTAINER/DIRS/
 * with object NAME (each agent of a scale set writes NAME with _<agent>
 * before its extension; a VM writes NAME), whose account the caller checks
 * against --azure-storage; both together are both outputs of one capture.
 * storageId is taken with storagePath only, naming the same account.
 * A continuous capture's files are blobs too, each published as it is
 * finished: NAME's base with _<N> before its extension, after the share's
 * _<agent> for a scale set (job_file_object: ring1.cap → ring1_1.cap;
 * ring1_vm1_1.cap), so NAME's last segment leaves room for both.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/azure/azure.h"
#include "api/jsonval.h"
#include "filter/filter.h"
#include "model/filtermodel.h"
#include "pcap/record.h"

#define AGENT_CHARS "._-"

/* ---- JSON helpers ---- */

/* Collects obj's members by their names[] (without regard to case) into
 * vals[] (null and "" left out). An unknown or repeated name is an error
 * naming it below where. */
static int collect(const json_t *obj, const char *where, const char *const *names, size_t n, const json_t **vals,
		   ErrBuf *err)
{
	bool seen[16] = {false};
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return errbuf_set(err, -EINVAL, "%s: must be an object", where);
	memset(vals, 0, n * sizeof(*vals));
	json_object_foreach((json_t *)obj, key, v)
	{
		size_t i;

		for (i = 0; i < n; i++)
			if (strcasecmp(key, names[i]) == 0)
				break;
		if (i == n)
			return errbuf_set(err, -EINVAL, "%s.%.64s: unknown property", where, key);
		if (seen[i])
			return errbuf_set(err, -EINVAL, "%s.%s: given twice", where, names[i]);
		seen[i] = true;
		if (json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
			continue;
		vals[i] = v;
	}
	return 0;
}

static int need_string(const char *field, const json_t *v, const char *what, ErrBuf *err)
{
	if (!json_is_string(v))
		return errbuf_set(err, -EINVAL, "%s: must be a string (%s)", field, what);
	return 0;
}

/* Each setter below takes a new reference; true on failure. */
static bool put(json_t *o, const char *key, json_t *v)
{
	return !v || json_object_set_new(o, key, v) < 0;
}

static int oom(ErrBuf *err)
{
	return errbuf_set(err, -ENOMEM, "out of memory");
}

/* ---- ARM ids ---- */

/* Splits an ARM id "/a/b/c" into at most max segments (pointers into a copy
 * in buf). Returns the count, or -1 for an empty segment, a missing leading
 * '/', too many segments or one that does not fit. */
static int segments(const char *s, size_t n, char *buf, size_t cap, char **seg, int max)
{
	int k = 0;

	if (n == 0 || n >= cap || s[0] != '/')
		return -1;
	memcpy(buf, s + 1, n - 1);
	buf[n - 1] = '\0';
	for (char *p = buf; p;) {
		char *slash = strchr(p, '/');

		if (slash)
			*slash = '\0';
		if (!*p || k == max)
			return -1;
		seg[k++] = p;
		p = slash ? slash + 1 : NULL;
	}
	return k;
}

/* 1..AGENT_NAME_MAX of [A-Za-z0-9._-]: what an agent is called. */
static bool agent_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > AGENT_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr(AGENT_CHARS, c)))
			return false;
	}
	return true;
}

/* /subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{type}/{name}: 1
 * with *ret_type and *ret_name pointing into buf; 0 for another shape (no
 * message); -EINVAL naming field for a subscription that is not the
 * account's. */
static int parse_arm_id(const char *field, const json_t *v, const char *account, const char *ns, char *buf, size_t cap,
			const char **ret_type, const char **ret_name, ErrBuf *err)
{
	char acct[JOB_ID_LEN + 1];
	char *seg[8];
	int k = segments(json_string_value(v), json_string_length(v), buf, cap, seg, 8);

	if (k != 8 || strcasecmp(seg[0], "subscriptions") != 0 || strcasecmp(seg[2], "resourceGroups") != 0 ||
	    strcasecmp(seg[4], "providers") != 0 || strcasecmp(seg[5], ns) != 0 || !azure_group_valid(seg[3]))
		return 0;
	if (!azure_account_of(seg[1], strlen(seg[1]), acct))
		return errbuf_set(err, -EINVAL, "%s: '%.40s' is not a subscription id (a UUID)", field, seg[1]);
	if (strcmp(acct, account) != 0)
		return errbuf_set(err, -EINVAL, "%s: must be in this subscription, not %.40s", field, seg[1]);
	*ret_type = seg[6];
	*ret_name = seg[7];
	return 1;
}

/* ---- the target ---- */

static int get_target(const json_t *v, const char *account, Job *j, bool *ret_vmss, ErrBuf *err)
{
	static const char field[] = "properties.target";
	char buf[512];
	const char *type, *name;
	int r;

	if (!v)
		return errbuf_set(err, -EINVAL, "%s: required", field);
	r = need_string(field, v, "a virtual machine's resource id", err);
	if (r < 0)
		return r;
	r = parse_arm_id(field, v, account, "Microsoft.Compute", buf, sizeof(buf), &type, &name, err);
	if (r < 0)
		return r;
	if (r == 0 || (strcasecmp(type, "virtualMachines") != 0 && strcasecmp(type, "virtualMachineScaleSets") != 0))
		return errbuf_set(err, -EINVAL,
				  "%s: must be /subscriptions/{subscriptionId}/resourceGroups/{group}/providers/"
				  "Microsoft.Compute/virtualMachines/{name} (or virtualMachineScaleSets/{name})",
				  field);
	if (!agent_name_valid(name))
		return errbuf_set(err, -EINVAL, "%s: '%.80s' is not a pcapd agent's name (1..%u of [A-Za-z0-9._-])",
				  field, name, AGENT_NAME_MAX);
	*ret_vmss = strcasecmp(type, "virtualMachineScaleSets") == 0;
	j->target_kind = *ret_vmss ? JOB_TARGET_COLO : JOB_TARGET_AGENT;
	j->colo_name = strdup(name);
	return j->colo_name ? 0 : oom(err);
}

static int get_target_type(const json_t *v, bool vmss, const char **ret, ErrBuf *err)
{
	static const char field[] = "properties.targetType";
	const char *s;

	*ret = vmss ? "AzureVMSS" : "AzureVM";
	if (!v)
		return 0;
	if (!json_is_string(v))
		return errbuf_set(err, -EINVAL, "%s: must be AzureVM or AzureVMSS", field);
	s = json_string_value(v);
	if (strcasecmp(s, "AzureVM") != 0 && strcasecmp(s, "AzureVMSS") != 0)
		return errbuf_set(err, -EINVAL, "%s: '%.32s' is not AzureVM or AzureVMSS", field, s);
	if ((strcasecmp(s, "AzureVMSS") == 0) != vmss)
		return errbuf_set(err, -EINVAL, "%s: %s does not match the target, a %s", field, s,
				  vmss ? "virtual machine scale set (AzureVMSS)" : "virtual machine (AzureVM)");
	return 0;
}

/* scope.include or scope.exclude: agent names, comma-joined into *ret
 * (NULL when empty) and echoed into echo. */
static int get_names(const char *field, const json_t *v, char **ret, json_t *echo, ErrBuf *err)
{
	size_t i, len = 0, o = 0;
	const json_t *x;
	char *joined;

	*ret = NULL;
	if (!v)
		return 0;
	if (!json_is_array(v))
		return errbuf_set(err, -EINVAL, "%s: must be an array of instance (agent) names", field);
	if (json_array_size(v) > AZ_SCOPE_MAX)
		return errbuf_set(err, -EINVAL, "%s: more than %u names", field, AZ_SCOPE_MAX);
	json_array_foreach(v, i, x)
	{
		if (!json_is_string(x) || !agent_name_valid(json_string_value(x)))
			return errbuf_set(err, -EINVAL, "%s[%zu]: must be an agent's name (1..%u of [A-Za-z0-9._-])",
					  field, i, AGENT_NAME_MAX);
		len += json_string_length(x) + 1;
	}
	if (json_array_size(v) == 0)
		return 0;
	joined = malloc(len);
	if (!joined)
		return oom(err);
	json_array_foreach(v, i, x)
	{
		size_t n = json_string_length(x);

		if (o)
			joined[o++] = ',';
		memcpy(joined + o, json_string_value(x), n);
		o += n;
		if (json_array_append_new(echo, json_string(json_string_value(x))) < 0) {
			free(joined);
			return oom(err);
		}
	}
	joined[o] = '\0';
	*ret = joined;
	return 0;
}

/* A name of list (comma-joined) in other, or NULL. */
static const char *shared_name(const char *list, const char *other, char *buf, size_t cap)
{
	for (const char *p = list; p && *p;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		for (const char *q = other; q && *q;) {
			const char *qe = strchr(q, ',');
			size_t m = qe ? (size_t)(qe - q) : strlen(q);

			if (m == n && strncasecmp(p, q, n) == 0 && n < cap) {
				memcpy(buf, p, n);
				buf[n] = '\0';
				return buf;
			}
			q = qe ? qe + 1 : NULL;
		}
		p = end ? end + 1 : NULL;
	}
	return NULL;
}

static int get_scope(const json_t *v, bool vmss, Job *j, json_t *props, ErrBuf *err)
{
	static const char *const names[] = {"include", "exclude"};
	const json_t *vals[2];
	json_t *scope, *inc, *exc;
	char shared[AGENT_NAME_MAX + 1];
	int r;

	if (!v)
		return 0;
	r = collect(v, "properties.scope", names, 2, vals, err);
	if (r < 0)
		return r;
	scope = json_object();
	inc = json_array();
	exc = json_array();
	if (!scope || !inc || !exc) {
		json_decref(scope);
		json_decref(inc);
		json_decref(exc);
		return oom(err);
	}
	r = get_names("properties.scope.include", vals[0], &j->target_include, inc, err);
	if (r == 0)
		r = get_names("properties.scope.exclude", vals[1], &j->target_exclude, exc, err);
	if (r == 0 && !vmss && (j->target_include || j->target_exclude))
		r = errbuf_set(err, -EINVAL,
			       "properties.scope: only for a virtual machine scale set target (AzureVMSS)");
	if (r == 0 && shared_name(j->target_include, j->target_exclude, shared, sizeof(shared)))
		r = errbuf_set(err, -EINVAL, "properties.scope.exclude: %s is also included", shared);
	if (r == 0 && (put(scope, "include", inc) || put(scope, "exclude", exc) || put(props, "scope", scope))) {
		inc = exc = scope = NULL;
		r = oom(err);
	}
	if (r < 0) {
		json_decref(inc);
		json_decref(exc);
		json_decref(scope);
	}
	return r;
}

/* ---- storage ---- */

static bool lower_or_digit(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int azure_blob_parse(const char *field, const char *url, size_t n, AzBlob *ret, ErrBuf *err)
{
	static const char scheme[] = "https://", host[] = ".blob.core.windows.net/";
	AzBlob b = {{0}};
	const char *p = url, *end = url + n, *dot, *slash;
	size_t len;

	if (n < sizeof(scheme) - 1 || strncasecmp(p, scheme, sizeof(scheme) - 1) != 0)
		goto bad;
	p += sizeof(scheme) - 1;
	dot = memchr(p, '.', (size_t)(end - p));
	if (!dot || (size_t)(end - dot) < sizeof(host) - 1 || strncasecmp(dot, host, sizeof(host) - 1) != 0)
		goto bad;
	len = (size_t)(dot - p);
	if (len < 3 || len > 24)
		return errbuf_set(err, -EINVAL, "%s: a storage account name is 3..24 lowercase letters and digits",
				  field);
	for (size_t i = 0; i < len; i++) {
		if (!lower_or_digit(p[i]))
			return errbuf_set(err, -EINVAL,
					  "%s: a storage account name is 3..24 lowercase letters and digits", field);
		b.account[i] = p[i];
	}
	p = dot + sizeof(host) - 1;
	slash = memchr(p, '/', (size_t)(end - p));
	if (!slash)
		goto bad;
	len = (size_t)(slash - p);
	if (len < 3 || len > 63 || p[0] == '-' || p[len - 1] == '-')
		goto bad_container;
	for (size_t i = 0; i < len; i++) {
		if (!(lower_or_digit(p[i]) || p[i] == '-') || (p[i] == '-' && i > 0 && p[i - 1] == '-'))
			goto bad_container;
		b.container[i] = p[i];
	}
	b.blob = slash + 1;
	b.blob_len = (size_t)(end - b.blob);
	if (b.blob_len == 0 || b.blob_len > 1024 || memchr(b.blob, '?', b.blob_len) || memchr(b.blob, '#', b.blob_len))
		return errbuf_set(err, -EINVAL, "%s: the blob name must be 1..1024 bytes without '?' or '#'", field);
	for (size_t i = 0; i < b.blob_len; i++)
		if ((unsigned char)b.blob[i] < 0x20 || b.blob[i] == 0x7f)
			return errbuf_set(err, -EINVAL, "%s: the blob name holds a control character", field);
	*ret = b;
	return 0;
bad_container:
	return errbuf_set(err, -EINVAL, "%s: a container name is 3..63 lowercase letters, digits and single '-' inside",
			  field);
bad:
	return errbuf_set(err, -EINVAL, "%s: must be a blob URL https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB",
			  field);
}

/* A file on the target below AZ_FILE_ROOT, named *.cap: printable bytes,
 * no "." or ".." segment, no empty one. */
static int check_local_path(const char *field, const json_t *v, ErrBuf *err)
{
	static const char root[] = AZ_FILE_ROOT "/";
	const char *s, *base;
	size_t n;
	int r;

	r = need_string(field, v, "a file below " AZ_FILE_ROOT ", such as " AZ_FILE_ROOT "/capture.cap", err);
	if (r < 0)
		return r;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n > AZ_PATH_MAX)
		return errbuf_set(err, -EINVAL, "%s: longer than %u bytes", field, AZ_PATH_MAX);
	if (n <= sizeof(root) - 1 || strncmp(s, root, sizeof(root) - 1) != 0)
		return errbuf_set(err, -EINVAL,
				  "%s: must be a file below " AZ_FILE_ROOT " (Linux), such as " AZ_FILE_ROOT
				  "/capture.cap",
				  field);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '\\')
			return errbuf_set(err, -EINVAL, "%s: only printable ASCII without '\\' is allowed", field);
	for (const char *p = s + sizeof(root) - 1; *p;) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return errbuf_set(err, -EINVAL, "%s: empty, '.' and '..' path segments are not allowed", field);
		p = end ? end + 1 : p + len;
	}
	base = strrchr(s, '/') + 1;
	n = strlen(base);
	if (n < 5 || strcasecmp(base + n - 4, ".cap") != 0)
		return errbuf_set(err, -EINVAL, "%s: the file's name must end in .cap", field);
	return 0;
}

/* The blob as a bucket output: azblob://ACCOUNT/CONTAINER[/DIRS] (the blob's
 * directories as the bucket's prefix) and its last segment as the object,
 * which the service names each agent's share after (job_part_object). Its
 * bytes are the ones object names take, short enough for "_<agent>" (and a
 * continuous capture's "_<N>": job_file_object). */
static int add_blob_output(const AzBlob *b, bool continuous, Job *j, ErrBuf *err)
{
	static const char field[] = "properties.storageLocation.storagePath";
	const char *base = b->blob, *end = b->blob + b->blob_len;
	char uri[JOB_OUTPUT_TARGET_MAX + 1], name[AZ_BLOB_BASE_MAX + 1];
	unsigned base_max = continuous ? AZ_BLOB_BASE_MAX_CONTINUOUS : AZ_BLOB_BASE_MAX;
	int n;

	for (const char *p = b->blob; p < end; p++)
		if (*p == '/')
			base = p + 1;
	for (const char *p = b->blob; p < end; p++) {
		bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			  *p == '.' || *p == '_' || *p == '-' || (*p == '/' && p < base);

		if (!ok)
			return errbuf_set(err, -EINVAL,
					  "%s: pcapd writes blobs whose names hold only A-Z a-z 0-9 . _ - and '/' "
					  "between directories",
					  field);
	}
	if (base == end || *base == '.' || (size_t)(end - base) > base_max)
		return errbuf_set(err, -EINVAL,
				  "%s: the blob's name after its last '/' must be 1..%u bytes, not starting with '.'%s",
				  field, base_max,
				  continuous ? " (a continuous capture's blobs add _<agent> and _<N> to it)" : "");
	for (const char *p = b->blob; p < base;) {
		const char *slash = memchr(p, '/', (size_t)(base - p));
		size_t len = (size_t)(slash - p);

		if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return errbuf_set(err, -EINVAL, "%s: empty, '.' and '..' directories are not allowed", field);
		p = slash + 1;
	}
	n = snprintf(uri, sizeof(uri), "azblob://%s/%s/%.*s", b->account, b->container, (int)(base - b->blob), b->blob);
	if (n < 0 || (size_t)n >= sizeof(uri))
		return errbuf_set(err, -EINVAL, "%s: longer than %u bytes", field, JOB_OUTPUT_TARGET_MAX);
	snprintf(name, sizeof(name), "%.*s", (int)(end - base), base);
	if (job_add_named_object(j, uri, name, true) < 0)
		return oom(err);
	return 0;
}

/* /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{account} */
static int check_storage_id(const json_t *v, const char *account, char ret_account[25], ErrBuf *err)
{
	static const char field[] = "properties.storageLocation.storageId";
	char buf[512];
	const char *type, *name;
	int r;

	r = need_string(field, v, "a storage account's resource id", err);
	if (r < 0)
		return r;
	r = parse_arm_id(field, v, account, "Microsoft.Storage", buf, sizeof(buf), &type, &name, err);
	if (r < 0)
		return r;
	if (r == 0 || strcasecmp(type, "storageAccounts") != 0 || strlen(name) < 3 || strlen(name) > 24)
		return errbuf_set(err, -EINVAL,
				  "%s: must be /subscriptions/{subscriptionId}/resourceGroups/{group}/providers/"
				  "Microsoft.Storage/storageAccounts/{account}",
				  field);
	snprintf(ret_account, 25, "%s", name);
	return 0;
}

static int get_storage(const json_t *v, const char *account, bool continuous, Job *j, AzCreate *more, json_t *props,
		       ErrBuf *err)
{
	static const char *const names[] = {"storageId", "storagePath", "filePath", "localPath"};
	const char *file_field = continuous ? "localPath" : "filePath";
	const json_t *vals[4];
	json_t *echo;
	int r;

	if (!v)
		return errbuf_set(err, -EINVAL, "properties.storageLocation: required");
	static const char *const what[] = {"a storage account's resource id", "a blob URL",
					   "a file below " AZ_FILE_ROOT ", such as " AZ_FILE_ROOT "/capture.cap",
					   "a file below " AZ_FILE_ROOT ", such as " AZ_FILE_ROOT "/capture.cap"};

	r = collect(v, "properties.storageLocation", names, 4, vals, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < 4; i++) {
		char field[64];

		snprintf(field, sizeof(field), "properties.storageLocation.%s", names[i]);
		if (vals[i] && (r = need_string(field, vals[i], what[i], err)) < 0)
			return r;
	}
	if (!continuous && vals[3])
		return errbuf_set(err, -EINVAL,
				  "properties.storageLocation.localPath: only for continuous captures "
				  "(continuousCapture true or false); use filePath");
	if (continuous && vals[2])
		return errbuf_set(err, -EINVAL,
				  "properties.storageLocation.filePath: not for continuous captures; use localPath");
	if (!vals[0] && !vals[1] && !vals[continuous ? 3 : 2])
		return errbuf_set(err, -EINVAL,
				  "properties.storageLocation: give %s (a file below " AZ_FILE_ROOT
				  " on the target), storagePath or storageId",
				  file_field);
	if (vals[0] && (r = check_storage_id(vals[0], account, more->storage_id_account, err)) < 0)
		return r;
	if (vals[0] && !vals[1])
		return errbuf_set(err, -EINVAL,
				  "properties.storageLocation.storageId: give storagePath too, the blob "
				  "https://%s.blob.core.windows.net/CONTAINER/BLOB to write",
				  more->storage_id_account);
	if (vals[1]) {
		r = need_string("properties.storageLocation.storagePath", vals[1], "a blob URL", err);
		if (r == 0)
			r = azure_blob_parse("properties.storageLocation.storagePath", json_string_value(vals[1]),
					     json_string_length(vals[1]), &more->blob, err);
		if (r == 0 && vals[0] && strcasecmp(more->storage_id_account, more->blob.account) != 0)
			r = errbuf_set(
				err, -EINVAL,
				"properties.storageLocation.storageId: names storage account %s, but storagePath "
				"is a blob of account %s",
				more->storage_id_account, more->blob.account);
		if (r == 0)
			r = add_blob_output(&more->blob, continuous, j, err);
		if (r < 0)
			return r;
		more->has_blob = true;
	}
	more->has_storage_id = vals[0] != NULL;
	echo = json_object();
	if (!echo)
		return oom(err);
	for (size_t i = 0; i < 4; i++)
		if (vals[i] && put(echo, names[i], json_string(json_string_value(vals[i])))) {
			json_decref(echo);
			return oom(err);
		}
	if (put(props, "storageLocation", echo))
		return oom(err);
	if (vals[continuous ? 3 : 2]) {
		char field[64];

		snprintf(field, sizeof(field), "properties.storageLocation.%s", file_field);
		r = check_local_path(field, vals[continuous ? 3 : 2], err);
		if (r < 0)
			return r;
		if (job_add_output(j, JOB_OUTPUT_FILE, json_string_value(vals[continuous ? 3 : 2])) < 0)
			return oom(err);
	}
	return 0;
}

/* ---- filters ---- */

static int get_filter(const json_t *v, size_t i, FilterClause *c, json_t *echo, ErrBuf *err)
{
	static const char *const names[] = {"protocol", "localIPAddress", "remoteIPAddress", "localPort", "remotePort"};
	const json_t *vals[5];
	const char *proto = "Any";
	char where[48], field[96];
	int r;

	snprintf(where, sizeof(where), "properties.filters[%zu]", i);
	r = collect(v, where, names, 5, vals, err);
	if (r < 0)
		return r;
	c->both_directions = true;
	if (vals[0]) {
		const char *s = json_string_value(vals[0]);

		if (s && strcasecmp(s, "TCP") == 0) {
			proto = "TCP";
			c->proto = 6;
		} else if (s && strcasecmp(s, "UDP") == 0) {
			proto = "UDP";
			c->proto = 17;
		} else if (!s || (strcasecmp(s, "Any") != 0 && strcasecmp(s, "All") != 0)) {
			return errbuf_set(err, -EINVAL, "%s.protocol: must be TCP, UDP or Any", where);
		}
	}
	if (put(echo, "protocol", json_string(proto)))
		return oom(err);
	for (size_t k = 1; k < 5; k++) {
		const char *s;
		size_t n;

		if (!vals[k])
			continue;
		snprintf(field, sizeof(field), "%s.%s", where, names[k]);
		r = need_string(field, vals[k],
				k < 3 ? "addresses: 10.0.0.1, a range a-b or a list a;b" : "ports: 80, 80-90 or 80;443",
				err);
		if (r < 0)
			return r;
		s = json_string_value(vals[k]);
		n = json_string_length(vals[k]);
		if (k == 1)
			r = filter_parse_addrs(field, s, n, &c->src, err);
		else if (k == 2)
			r = filter_parse_addrs(field, s, n, &c->dst, err);
		else if (k == 3)
			r = filter_parse_ports(field, s, n, &c->sport, err);
		else
			r = filter_parse_ports(field, s, n, &c->dport, err);
		if (r < 0)
			return r;
		if (put(echo, names[k], json_string(s)))
			return oom(err);
	}
	return 0;
}

/* filters[] into the filter model's text (every clause both directions),
 * compiled once so that a filter the kernel cannot take fails now. */
static int get_filters(const json_t *v, Job *j, json_t *props, ErrBuf *err)
{
	CbpfProgram prog = {0};
	ErrBuf cerr = {{0}};
	Filter f = {0};
	json_t *echo = json_array(), *x;
	size_t i;
	int r = 0;

	if (!echo)
		return oom(err);
	if (v && !json_is_array(v))
		r = errbuf_set(err, -EINVAL, "properties.filters: must be an array of filters");
	else if (v && json_array_size(v) > FILTER_MAX_CLAUSES)
		r = errbuf_set(err, -EINVAL, "properties.filters: more than %u filters", FILTER_MAX_CLAUSES);
	if (r < 0) {
		json_decref(echo);
		return r;
	}
	/* json_array_foreach reads no member of an absent (NULL) array. */
	json_array_foreach((json_t *)v, i, x)
	{
		FilterClause c;
		json_t *one = json_object();

		filter_clause_init(&c);
		if (!one)
			r = oom(err);
		else if (json_array_append_new(echo, one) < 0)
			r = oom(err);
		if (r == 0)
			r = get_filter(x, i, &c, one, err);
		if (r == 0)
			r = filter_add_clause(&f, &c, err);
		filter_clause_done(&c);
		if (r < 0)
			break;
	}
	if (r == 0) {
		r = filter_compile(&f, LINKTYPE_ETHERNET, PCAP_MAX_SNAPLEN, &prog, &cerr);
		cbpf_program_free(&prog);
		if (r < 0)
			r = errbuf_set(err, r == -ENOMEM ? r : -EINVAL, "properties.filters: %s", cerr.msg);
	}
	if (r == 0) {
		r = filtermodel_to_text(&f, &j->filter_model, &cerr);
		if (r < 0)
			r = errbuf_set(err, r == -ENOMEM ? r : -EINVAL, "properties.filters: %s", cerr.msg);
	}
	if (r == 0 && put(props, "filters", echo)) {
		echo = NULL;
		r = oom(err);
	} else if (r < 0) {
		json_decref(echo);
	}
	filter_done(&f);
	return r;
}

/* ---- continuous ---- */

static int get_settings(const json_t *v, bool ring, Job *j, json_t *props, ErrBuf *err)
{
	static const char *const names[] = {"fileCount", "fileSizeInBytes", "sessionTimeLimitInSeconds"};
	const json_t *vals[3] = {NULL, NULL, NULL};
	uint64_t count = AZ_DEFAULT_FILE_COUNT, size = AZ_DEFAULT_FILE_SIZE, session = AZ_DEFAULT_SESSION_LIMIT;
	int r;

	if (v && (r = collect(v, "properties.captureSettings", names, 3, vals, err)) < 0)
		return r;
	if (vals[0] &&
	    (r = jsonval_whole("properties.captureSettings.fileCount", vals[0], 0, AZ_FILE_COUNT_MAX, &count, err)) < 0)
		return r;
	if (ring && count == 0)
		return errbuf_set(err, -EINVAL,
				  "properties.captureSettings.fileCount: a ring buffer (continuousCapture true) "
				  "keeps 1..%u files",
				  AZ_FILE_COUNT_MAX);
	if (vals[1] &&
	    (r = jsonval_whole("properties.captureSettings.fileSizeInBytes", vals[1], 0, AZ_U32_MAX, &size, err)) < 0)
		return r;
	if (vals[2] && (r = jsonval_whole("properties.captureSettings.sessionTimeLimitInSeconds", vals[2], 0,
					  AZ_SESSION_LIMIT_MAX, &session, err)) < 0)
		return r;
	j->continuous = (JobContinuous){
		.on = true,
		.ring = ring,
		.file_count = (uint32_t)count,
		.file_size = size,
		.session_limit_s = session ? (uint32_t)session : AZ_SESSION_LIMIT_MAX,
	};
	if (put(props, "continuousCapture", json_boolean(ring)) ||
	    put(props, "captureSettings",
		json_pack("{s:I, s:I, s:I}", "fileCount", (json_int_t)count, "fileSizeInBytes", (json_int_t)size,
			  "sessionTimeLimitInSeconds", (json_int_t)session)))
		return oom(err);
	return 0;
}

/* ---- the request ---- */

enum {
	P_TARGET,
	P_SCOPE,
	P_TARGET_TYPE,
	P_BYTES_PER_PACKET,
	P_TOTAL_BYTES,
	P_TIME_LIMIT,
	P_STORAGE,
	P_FILTERS,
	P_CONTINUOUS,
	P_SETTINGS,
	P_PROVISIONING,
	P_COUNT,
};

static const char *const prop_names[P_COUNT] = {
	[P_TARGET] = "target",
	[P_SCOPE] = "scope",
	[P_TARGET_TYPE] = "targetType",
	[P_BYTES_PER_PACKET] = "bytesToCapturePerPacket",
	[P_TOTAL_BYTES] = "totalBytesPerSession",
	[P_TIME_LIMIT] = "timeLimitInSeconds",
	[P_STORAGE] = "storageLocation",
	[P_FILTERS] = "filters",
	[P_CONTINUOUS] = "continuousCapture",
	[P_SETTINGS] = "captureSettings",
	[P_PROVISIONING] = "provisioningState", /* read-only: sent back from a GET, ignored */
};

/* The limits, after the target (the echo's order is the SDK's). */
static int get_limits(const json_t *const *vals, bool continuous, bool ring, Job *j, json_t *props, ErrBuf *err)
{
	uint64_t snap = 0, total = AZ_DEFAULT_TOTAL_BYTES, time = AZ_TIME_LIMIT_MAX;
	int r;

	if (vals[P_BYTES_PER_PACKET] && (r = jsonval_whole("properties.bytesToCapturePerPacket",
							   vals[P_BYTES_PER_PACKET], 0, AZ_U32_MAX, &snap, err)) < 0)
		return r;
	if (vals[P_TOTAL_BYTES] &&
	    (r = jsonval_whole("properties.totalBytesPerSession", vals[P_TOTAL_BYTES], 0, AZ_U32_MAX, &total, err)) < 0)
		return r;
	if (vals[P_TIME_LIMIT] && (r = jsonval_whole("properties.timeLimitInSeconds", vals[P_TIME_LIMIT], 0,
						     AZ_TIME_LIMIT_MAX, &time, err)) < 0)
		return r;
	j->snaplen = (uint32_t)snap;
	/* A ring is bounded by its files: a week-long ring must not end at 1 GiB. */
	j->byte_limit = continuous && ring ? 0 : total;
	j->time_limit_s = continuous ? 0 : (time ? (uint32_t)time : AZ_TIME_LIMIT_MAX);
	if (put(props, "bytesToCapturePerPacket", json_integer((json_int_t)snap)) ||
	    put(props, "totalBytesPerSession", json_integer((json_int_t)total)) ||
	    put(props, "timeLimitInSeconds", json_integer((json_int_t)time)))
		return oom(err);
	return 0;
}

static int parse_properties(const json_t *p, const char *account, Job *j, AzCreate *more, json_t *props, ErrBuf *err)
{
	const json_t *vals[P_COUNT];
	const char *target_type;
	bool vmss = false, continuous = false, ring = false;
	int r;

	r = collect(p, "properties", prop_names, P_COUNT, vals, err);
	if (r < 0)
		return r;
	r = get_target(vals[P_TARGET], account, j, &vmss, err);
	if (r < 0)
		return r;
	if (put(props, "target", json_string(json_string_value(vals[P_TARGET]))))
		return oom(err);
	r = get_target_type(vals[P_TARGET_TYPE], vmss, &target_type, err);
	if (r < 0)
		return r;
	r = get_scope(vals[P_SCOPE], vmss, j, props, err);
	if (r < 0)
		return r;
	if (put(props, "targetType", json_string(target_type)))
		return oom(err);
	if (vals[P_CONTINUOUS]) {
		if (!json_is_boolean(vals[P_CONTINUOUS]))
			return errbuf_set(err, -EINVAL,
					  "properties.continuousCapture: must be true (a ring of files), false (files "
					  "kept) or null (a classic capture)");
		continuous = true;
		ring = json_is_true(vals[P_CONTINUOUS]);
	}
	r = get_limits(vals, continuous, ring, j, props, err);
	if (r < 0)
		return r;
	if (!continuous && vals[P_SETTINGS])
		return errbuf_set(err, -EINVAL,
				  "properties.captureSettings: only for continuous captures (continuousCapture true "
				  "or false)");
	r = get_storage(vals[P_STORAGE], account, continuous, j, more, props, err);
	if (r < 0)
		return r;
	r = get_filters(vals[P_FILTERS], j, props, err);
	if (r < 0)
		return r;
	if (continuous)
		r = get_settings(vals[P_SETTINGS], ring, j, props, err);
	return r;
}

int azure_parse_create(const json_t *body, const char *account, Job *ret, AzCreate *ret_more, ErrBuf *err)
{
	static const char *const top[] = {"properties", "name", "id", "etag", "type"};
	const json_t *vals[ARRAY_SIZE(top)];
	AzCreate more = {0};
	json_t *props = NULL;
	Job j = {0};
	int r;

	r = collect(body, "body", top, ARRAY_SIZE(top), vals, err);
	if (r < 0)
		return r;
	if (!vals[0])
		return errbuf_set(err, -EINVAL, "properties: required");
	props = json_object();
	if (!props)
		return oom(err);
	j.type = JOB_FULL;
	r = parse_properties(vals[0], account, &j, &more, props, err);
	if (r == 0) {
		j.request = json_dumps(props, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (!j.request)
			r = oom(err);
	}
	json_decref(props);
	if (r < 0) {
		job_done(&j);
		return r;
	}
	*ret = j;
	*ret_more = more;
	return 0;
}

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The pure half of the Azure Network Watcher dialect (README, "The Azure
 * dialect"), apart from the handlers (azure.c) so that tests run it without
 * HTTP or a database:
 *   - names: subscription ids (the pcapd account as a UUID), resource group,
 *     network watcher and capture names, api-versions (names.c);
 *   - a PacketCapture request into a Job and its canonical echo (parse.c);
 *   - a storagePath blob URL (parse.c);
 *   - the objects the SDK reads: PacketCaptureResult, the query status, the
 *     operation status, etags (render.c).
 *
 * Validation messages name the field first, in ARM's words and paths
 * ("properties.timeLimitInSeconds: 18001 is outside 0..18000"), so that the
 * field becomes the ARM error's target.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/util.h"
#include "model/job.h"

#define AZ_API_VERSION_MIN "2023-11-01" /* every version from this one on is taken */
#define AZ_SUBSCRIPTION_LEN 36          /* 8-4-4-4-12 hex digits */
#define AZ_GROUP_MAX 90u                /* resource group names (ARM) */
#define AZ_NAME_MAX 80u                 /* network watcher and capture names */
#define AZ_FILE_ROOT JOB_FILE_ROOT      /* filePath and localPath live below it */
#define AZ_PATH_MAX 1024u               /* bytes of a filePath or localPath */
#define AZ_SCOPE_MAX 1024u              /* names in scope.include or scope.exclude */
#define AZ_TIME_LIMIT_MAX 18000u
#define AZ_SESSION_LIMIT_MAX 604800u
#define AZ_FILE_COUNT_MAX 10000u
#define AZ_U32_MAX 4294967295u             /* bytesToCapturePerPacket, totalBytesPerSession, fileSizeInBytes */
#define AZ_DEFAULT_TOTAL_BYTES 1073741824u /* totalBytesPerSession: 1 GiB */
#define AZ_DEFAULT_FILE_COUNT 10u
#define AZ_DEFAULT_FILE_SIZE 104857600u /* fileSizeInBytes: 100 MiB */
#define AZ_DEFAULT_SESSION_LIMIT 86400u /* sessionTimeLimitInSeconds: one day */
/* Bytes of a storagePath blob's last segment: room for "_<agent>" after it. */
#define AZ_BLOB_BASE_MAX (JOB_OBJECT_MAX - 1u - AGENT_NAME_MAX)
/* A continuous capture's: room for "_<agent>" and a file's "_<N>" too. */
#define AZ_BLOB_BASE_MAX_CONTINUOUS (AZ_BLOB_BASE_MAX - JOB_FILE_SUFFIX_MAX)

/* ---- names (names.c) ---- */

/* The account of a subscription id: a UUID (8-4-4-4-12 hex digits, any
 * case) whose 32 digits are the account. false for anything else. */
bool azure_account_of(const char *sub, size_t n, char ret[JOB_ID_LEN + 1]);
/* The subscription id of an account (lowercase UUID form). */
void azure_subscription_of(const char *account, char ret[AZ_SUBSCRIPTION_LEN + 1]);

/* An api-version: NULL → -ENOENT (missing); not YYYY-MM-DD[-preview] with a
 * real date → -EINVAL; before AZ_API_VERSION_MIN → -ERANGE. 0 when taken. */
int azure_api_version_check(const char *v);

/* Resource group: 1..90 of letters, digits, '_', '-', '.', '(', ')', not
 * ending in '.'. Watcher and capture names: 1..80 of letters, digits, '_',
 * '-', '.', starting with a letter or digit, not ending in '.'. */
bool azure_group_valid(const char *s);
bool azure_name_valid(const char *s);

/* ---- requests (parse.c) ---- */

/* The parts of a blob URL https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB
 * (the only form Azure takes), pointing into the caller's buffer. */
typedef struct AzBlob {
	char account[25];   /* 3..24 of [a-z0-9] */
	char container[64]; /* 3..63 of [a-z0-9-], no "--", not starting or ending with '-' */
	const char *blob;   /* the rest: 1..1024 bytes, no '?' or '#' */
	size_t blob_len;
} AzBlob;

/* Parses a storagePath (field names the field in messages). -EINVAL. */
int azure_blob_parse(const char *field, const char *url, size_t n, AzBlob *ret, ErrBuf *err);

/* What a create request asks besides the Job. */
typedef struct AzCreate {
	bool has_blob; /* storagePath given (parsed into blob; a held bucket output of j) */
	AzBlob blob;   /* points into the body */
	bool has_storage_id;
	char storage_id_account[25]; /* the account storageId names */
} AzCreate;

/* Validates a PacketCapture body ({"properties": {...}}; name, id, etag and
 * provisioningState, which clients send back from a GET, are ignored) for
 * the account (the subscription the path names) and fills *ret: type full,
 * colo_name and target_kind (an agent for virtualMachines/{name}, a colo
 * for virtualMachineScaleSets/{name}), target_include/exclude (scope),
 * snaplen, byte_limit, time_limit_s, outputs (filePath and localPath as file
 * outputs; storagePath as a held bucket output azblob://ACCOUNT/CONTAINER/DIRS/
 * whose object is the blob's last segment), continuous, filter_model (every filter a clause with both
 * directions, compiled once), and request: the canonical properties to echo
 * back (defaults filled). *ret_more says what is left for the caller to
 * decide (a blob needs a storage account the controller knows). Names,
 * account, id and status are left to the caller and the service. */
int azure_parse_create(const json_t *body, const char *account, Job *ret, AzCreate *ret_more, ErrBuf *err);

/* ---- rendering (render.c) ---- */

/* provisioningState: "Updating" while no agent has started, "Failed" when
 * the capture failed before any did, else "Succeeded". */
const char *azure_provisioning_state(const Job *j);

/* The ARM id of a named job: /subscriptions/{sub}/resourceGroups/{group}/
 * providers/Microsoft.Network/networkWatchers/{watcher}/packetCaptures/{name}.
 * NULL: out of memory or not named. */
char *azure_capture_id(const Job *j);

/* PacketCaptureResult of a named job: name, id, etag, properties (the
 * stored request, provisioningState) and the pcapd extension "pcapd" in
 * properties: the capture's id, status, counters and, with parts, each
 * agent's share. NULL: out of memory. */
json_t *azure_render_capture(const Job *j, const JobPart *parts, size_t n_parts);

/* PacketCaptureQueryStatusResult: name, id, captureStartTime,
 * packetCaptureStatus (NotStarted, Running, Stopped, Error), stopReason,
 * packetCaptureError (AgentStopped, CaptureFailed, LocalFileFailed,
 * StorageFailed, InternalError), and "pcapd" as above. */
json_t *azure_render_status(const Job *j, const JobPart *parts, size_t n_parts);

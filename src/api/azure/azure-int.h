/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Shared by the Azure dialect's handlers (azure.c, ops.c) only: ARM's
 * answers (arm.c) and what one request is about once routed.
 */

#include "api/api-int.h"
#include "api/azure/azure.h"

#define AZ_OP_MAX 96 /* bytes of an operation id: "query-<32 hex>-<ms>" */

/* What one request is about, once routed, authenticated and named. */
typedef struct AzCall {
	Api *api;
	Service *svc;
	HttpRequest *req;
	char account[JOB_ID_LEN + 1];      /* the subscription's account */
	char sub[AZ_SUBSCRIPTION_LEN + 1]; /* its canonical (lowercase) subscription id */
	const char *version;               /* the request's api-version (checked) */
	char group[AZ_GROUP_MAX + 1];      /* resource group, as the path wrote it */
	char watcher[AZ_NAME_MAX + 1];     /* network watcher */
	char name[AZ_NAME_MAX + 1];        /* capture ("" for the list) */
	char op[AZ_OP_MAX + 1];            /* operation id (operation routes) */
} AzCall;

/* ---- ARM's answers (arm.c) ---- */

/* {"error":{"code","message","target"}} with e's status (api_error_status)
 * and, for 405, Allow. code NULL: the kind's usual code (arm.c's table);
 * target NULL: e's field ("" leaves target out). */
void arm_error(HttpRequest *req, const ApiError *e, const char *code, const char *target);
/* A validator's ErrBuf ("properties.x: message") as a 400
 * InvalidRequestFormat (500 for -ENOMEM). */
void arm_invalid(HttpRequest *req, int r, const ErrBuf *err);
/* A JSON answer (doc taken; NULL: 500). */
void arm_json(HttpRequest *req, unsigned status, json_t *doc);

/* The base of absolute URLs back to this server, "https://HOST", from the
 * request's Host header and transport; "" when the Host header is missing
 * or not a plain host[:port] (the URLs are then relative). */
void arm_base_url(HttpRequest *req, char *out, size_t cap);

/* ---- long-running operations (ops.c) ---- */

typedef enum AzOpKind {
	AZ_OP_CREATE, /* Azure-AsyncOperation: {"status": InProgress|Succeeded|Failed} */
	AZ_OP_QUERY,  /* Location: 202 while gathering, then 200 + the status */
	AZ_OP_STOP,   /* Location: 202 until the capture ended, then 200 */
	AZ_OP_DELETE, /* Location: 202 until the capture ended, then 204 */
} AzOpKind;

/* Adds the header that points at operation kind of job id (Azure-AsyncOperation
 * for a create, Location otherwise) and Retry-After: 1. */
void azure_op_headers(AzCall *c, AzOpKind kind, const char *id);
/* GET …/locations/{loc}/operations/{op} (async) or …/operationResults/{op}. */
void azure_op_answer(AzCall *c, bool async);

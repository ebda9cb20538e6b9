/* SPDX-License-Identifier: MIT */
/*
 * Upload grants: the signed requests an agent sends to an object store for
 * its share of a full capture (docs/AGENT-PROTOCOL.md). The keys stay here;
 * an agent gets URLs valid for GRANT_EXPIRES_S, for its own object only,
 * while its share is running or uploading in the attempt the controller
 * knows. Signing is local (no request to the store).
 *
 * A continuous capture's share is a series of files, each its own object
 * (job_file_object: the share's object with _N before its extension), asked
 * for by number ("file"); the agent uploads each one as it is finished and,
 * in a ring, deletes the one that left the ring ("delete", for a ring's
 * file only: the share's own object, and the files of a capture that keeps
 * them all, are never deleted through a grant).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bucket/bucket_uri.h"
#include "controller/service-int.h"

#define GRANT_EXPIRES_S 900u
#define GRANT_PART_SIZE (8ull << 20)

/* Azure's block ids of an upload: the job's and the attempt's (1..16 of
 * [A-Za-z0-9]), so that a retry never mixes blocks with an earlier one. */
static void azure_prefix(const char *job_id, uint32_t attempt, char *out, size_t cap)
{
	snprintf(out, cap, "%.9s%u", job_id, attempt);
}

static int sign(Bucket *b, BucketUrlOp op, const char *object, const char *upload_id, unsigned part, time_t now,
		AgentSignedRequest *ret, ErrBuf *err)
{
	BucketUrlRequest q = {.op = op,
			      .name = object,
			      .upload_id = upload_id,
			      .part = part,
			      .expires_s = GRANT_EXPIRES_S,
			      .now = now};
	BucketSignedUrl u = {0};
	int r;

	r = bucket_presign(b, &q, &u, err);
	if (r == -EOPNOTSUPP)
		return 0; /* the store needs no such request (Azure: create, abort) */
	if (r < 0)
		return r;
	snprintf(ret->method, sizeof(ret->method), "%s", u.method);
	if (u.header && snprintf(ret->header, sizeof(ret->header), "%s", u.header) >= (int)sizeof(ret->header)) {
		bucket_signed_url_done(&u);
		return errbuf_set(err, -EOVERFLOW, "bucket: signed header too long");
	}
	ret->url = u.url;
	u.url = NULL;
	bucket_signed_url_done(&u);
	return 0;
}

int service_grant_sign(Service *s, const Job *j, const JobPart *p, const AgentUploadRequest *q, AgentUploadGrant *ret,
		       ErrBuf *err)
{
	AgentUploadGrant g = {.expires_in_s = GRANT_EXPIRES_S, .part_size = GRANT_PART_SIZE};
	const char *uri = job_bucket(j), *object = p->object;
	char file[AGENTPROTO_OBJECT_MAX + 1];
	time_t now = time(NULL);
	Bucket *b = NULL;
	ErrBuf e = {{0}};
	int r;

	if (!uri)
		return errbuf_set(err, -ENOENT, "id: capture %s has no bucket output", j->id);
	if (q->file && !j->continuous.on)
		return errbuf_set(err, -EINVAL, "file: capture %s is not continuous; it has one object", j->id);
	if (q->remove && !j->continuous.ring)
		return errbuf_set(err, -EINVAL, "delete: capture %s keeps every file (not a ring)", j->id);
	if (q->file && !p->object)
		return errbuf_set(err, -ENOENT, "id: agent %s's share of capture %s names no object", p->agent, j->id);
	if (q->file && job_file_object(p->object, q->file, file, sizeof(file)) < 0)
		return errbuf_set(err, -EINVAL, "file: %s with _%llu is longer than %u bytes", p->object,
				  (unsigned long long)q->file, AGENTPROTO_OBJECT_MAX);
	if (q->file)
		object = file;
	r = bucket_open(uri, service_buckets(s), &b, &e);
	if (r < 0) {
		char shown[BUCKET_URI_MAX + 1];

		bucket_uri_redact(uri, shown, sizeof(shown));
		return errbuf_set(err, r, "bucket %s: %s", shown, e.msg);
	}
	if (bucket_kind(b) == BUCKET_KIND_FILE) {
		bucket_free(b);
		return errbuf_set(err, -EOPNOTSUPP, "id: file:// buckets are written by the agent, not through grants");
	}
	if (bucket_kind(b) == BUCKET_KIND_AZURE) {
		g.store = AGENT_STORE_AZURE;
		azure_prefix(j->id, p->attempt, g.upload_id, sizeof(g.upload_id));
	} else {
		g.store = AGENT_STORE_S3;
		memcpy(g.upload_id, q->upload_id, sizeof(g.upload_id));
	}
	if (q->create)
		r = sign(b, BUCKET_URL_UPLOAD_CREATE, object, NULL, 0, now, &g.create, &e);
	if (r == 0 && q->check)
		r = sign(b, BUCKET_URL_GET, object, NULL, 0, now, &g.check, &e);
	if (r == 0 && q->remove)
		r = sign(b, BUCKET_URL_DELETE, object, NULL, 0, now, &g.remove, &e);
	/* The rest needs S3's UploadId (Azure: the controller's prefix). */
	if (r == 0 && g.upload_id[0] && q->complete)
		r = sign(b, BUCKET_URL_UPLOAD_COMPLETE, object, g.upload_id, 0, now, &g.complete, &e);
	if (r == 0 && g.upload_id[0] && q->abort)
		r = sign(b, BUCKET_URL_UPLOAD_ABORT, object, g.upload_id, 0, now, &g.abort, &e);
	if (r == 0 && g.upload_id[0] && q->n_parts) {
		g.parts = calloc(q->n_parts, sizeof(*g.parts));
		if (!g.parts)
			r = errbuf_set(&e, -ENOMEM, "out of memory");
		g.first_part = q->first_part;
		for (uint32_t i = 0; r == 0 && i < q->n_parts; i++) {
			r = sign(b, BUCKET_URL_UPLOAD_PART, object, g.upload_id, q->first_part + i, now, &g.parts[i],
				 &e);
			if (r == 0)
				g.n_parts++;
		}
	}
	bucket_free(b);
	if (r < 0) {
		agentproto_grant_done(&g);
		return errbuf_set(err, r, "%s", e.msg);
	}
	*ret = g;
	return 0;
}

int service_upload_grant(Service *s, const char *agent, const char *id, const AgentUploadRequest *q,
			 AgentUploadGrant *ret, ApiError *e)
{
	ErrBuf err = {{0}};
	JobPart *parts = NULL;
	const JobPart *mine = NULL;
	size_t np = 0;
	Job j = {0};
	int r;

	r = db_job_get(service_db(s), NULL, id, &j, &err);
	if (r == -ENOENT) {
		r = apierror_set(e, API_ERR_NOT_FOUND, "id", "no capture %s", id);
		goto out;
	}
	if (r < 0) {
		r = service_internal(e, r, &err);
		goto out;
	}
	r = db_part_list(service_db(s), id, &parts, &np, &err);
	if (r < 0) {
		r = service_internal(e, r, &err);
		goto out;
	}
	for (size_t i = 0; i < np; i++)
		if (strcmp(parts[i].agent, agent) == 0)
			mine = &parts[i];
	/* Only the agent whose share it is, while it may upload, in the attempt
	 * the controller knows: a grant names one object. */
	if (j.type != JOB_FULL || !mine) {
		r = apierror_set(e, API_ERR_NOT_FOUND, "id", "capture %s has no share of agent %s to upload", id,
				 agent);
		goto out;
	}
	if (part_state_terminal(mine->state)) {
		r = apierror_set(e, API_ERR_CONFLICT, "id", "the share of agent %s in capture %s is %s", agent, id,
				 part_state_to_string(mine->state));
		goto out;
	}
	if (q->attempt != mine->attempt) {
		r = apierror_set(e, API_ERR_CONFLICT, "attempt", "%u is not the upload's attempt (%u)", q->attempt,
				 mine->attempt);
		goto out;
	}
	r = service_grant_sign(s, &j, mine, q, ret, &err);
	if (r == -EOPNOTSUPP || r == -ENOENT || r == -EINVAL)
		r = apierror_from_msg(e, API_ERR_INVALID, err.msg);
	else if (r < 0)
		r = service_internal(e, r, &err);
out:
	parts_free(parts, np);
	job_done(&j);
	return r;
}

/* SPDX-License-Identifier: MIT */
/*
 * Agents' answers to sample jobs. Each answer is checked whole before it is
 * kept (a pcap or pcapng stream, nothing after its last record, link types
 * pcapd knows, no record longer than its wire length, at most the job's
 * packet_limit records). Then, under the service's jobs lock, the part is
 * checked (asked of this agent, not final yet), the answer published as
 * DATA/samples/<id>/<agent>.pcap (temporary name, fsync, rename, fsync dir)
 * and the part marked done, so that of two answers to one part exactly one is
 * kept, file and record together: the file always exists for a done part,
 * and a refused answer never replaces it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/io.h"
#include "controller/service-int.h"
#include "pcap/decode.h"

typedef struct Answer {
	Service *s;
	const char *agent, *id;
	const uint8_t *pcap;
	size_t n;
	uint64_t packets, bytes;
	int r; /* 0, or why the answer was refused (err) */
	ErrBuf *err;
} Answer;

/* DATA/samples/<id>/<agent>.pcap, its directory created. */
static int answer_path(Answer *a, char *path, size_t cap)
{
	char dir[4096];
	int r;

	r = service_data_path(a->s, "samples", dir, sizeof(dir), a->err);
	if (r < 0)
		return r;
	if (snprintf(path, cap, "%s/%s", dir, a->id) >= (int)cap || (mkdir(path, 0700) < 0 && errno != EEXIST))
		return errbuf_errno(a->err, "cannot create %s", path);
	if (snprintf(path, cap, "%s/%s/%s.pcap", dir, a->id, a->agent) >= (int)cap)
		return errbuf_set(a->err, -ENAMETOOLONG, "path too long");
	return 0;
}

/* Under the jobs lock (service_update_job): check, publish, record. */
static bool apply_answer(Job *j, JobPart *parts, size_t n, void *arg)
{
	Answer *a = arg;
	char object[AGENT_NAME_MAX + 8], path[4200];
	JobPart *mine = NULL;
	struct iovec iov = {.iov_base = (void *)a->pcap, .iov_len = a->n};

	if (j->type != JOB_SIMPLE) {
		a->r = errbuf_set(a->err, -EINVAL, "id: %s is a full capture, not a sample", a->id);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(parts[i].agent, a->agent) == 0)
			mine = &parts[i];
	if (!mine) {
		a->r = errbuf_set(a->err, -ENOENT, "id: sample %s was not asked of agent %s", a->id, a->agent);
		return false;
	}
	if (part_state_terminal(mine->state)) {
		a->r = errbuf_set(a->err, -EALREADY, "id: the answer of %s to sample %s is final (%s)", a->agent, a->id,
				  part_state_to_string(mine->state));
		return false;
	}
	if (a->packets > j->packet_limit) {
		a->r = errbuf_set(a->err, -EINVAL, "body: %llu packets, more than the sample's packet_limit %u",
				  (unsigned long long)a->packets, j->packet_limit);
		return false;
	}
	a->r = answer_path(a, path, sizeof(path));
	if (a->r == 0)
		a->r = io_publish(&io_posix, path, &iov, 1, 0600, a->err);
	if (a->r < 0)
		return false;
	snprintf(object, sizeof(object), "%s.pcap", a->agent);
	return part_apply(mine, PART_DONE, a->packets, a->bytes, 0, JOB_STOP_NONE, object, NULL,
			  (int64_t)now_realtime_ns());
}

static int store_sample(Service *s, const char *agent, const char *id, const uint8_t *pcap, size_t n, ErrBuf *err)
{
	Answer a = {.s = s, .agent = agent, .id = id, .pcap = pcap, .n = n, .err = err};
	Job j = {0};
	int r;

	/* An unknown id costs no parsing; the whole body is then checked
	 * outside the lock, the part under it. */
	r = db_job_get(service_db(s), NULL, id, &j, err);
	job_done(&j);
	if (r < 0)
		return r == -ENOENT ? errbuf_set(err, r, "id: no sample capture %s", id) : r;
	r = pcapdec_check_stream(pcap, n, &a.packets, &a.bytes, err);
	if (r < 0)
		return r;
	r = service_update_job(s, NULL, id, apply_answer, &a, NULL, err);
	if (r == -ENOENT)
		return errbuf_set(err, r, "id: no sample capture %s", id);
	return r < 0 ? r : a.r;
}

int service_sample_store(Service *s, const char *agent, const char *id, const uint8_t *pcap, size_t n, ApiError *e)
{
	ErrBuf err = {{0}};
	int r = store_sample(s, agent, id, pcap, n, &err);

	if (r >= 0)
		return r;
	/* The messages above name their field first. */
	switch (r) {
	case -ENOENT:
		return apierror_from_msg(e, API_ERR_NOT_FOUND, err.msg);
	case -EALREADY:
		return apierror_from_msg(e, API_ERR_CONFLICT, err.msg);
	case -EINVAL:
		return apierror_from_msg(e, API_ERR_INVALID, err.msg);
	default:
		return service_internal(e, r, &err);
	}
}

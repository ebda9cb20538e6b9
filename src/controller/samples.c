/* SPDX-License-Identifier: MIT */
/*
 * Agents' answers to sample jobs. Each answer is checked whole before it is
 * kept (a pcap or pcapng stream, nothing after its last record, at most the
 * job's packet_limit records), then published as DATA/samples/<id>/<agent>.pcap
 * (temporary name, fsync, rename, fsync dir) before the part is marked done:
 * the file always exists for a done part.
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

/* Counts the records of a whole pcap/pcapng stream; -EINVAL with err if it is
 * not one or is cut short. */
static int count_records(const uint8_t *p, size_t n, uint64_t *ret_packets, uint64_t *ret_bytes, ErrBuf *err)
{
	PcapDecoder *d = NULL;
	uint64_t packets = 0, bytes = 0;
	size_t off = 0;
	int r;

	r = pcapdec_new(&d);
	if (r < 0)
		return errbuf_set(err, r, "out of memory");
	while (off < n) {
		PcapRecord rec;
		size_t used;

		r = pcapdec_next(d, p + off, n - off, &rec, &used, err);
		if (r == -EAGAIN) {
			r = errbuf_set(err, -EINVAL, "body: truncated pcap (%zu bytes missing at offset %zu)",
				       used - (n - off), off);
			goto out;
		}
		if (r < 0) {
			r = -EINVAL;
			goto out;
		}
		if (r == PCAPDEC_RECORD) {
			packets++;
			bytes += rec.caplen;
		}
		off += used;
	}
	if (off == 0) {
		r = errbuf_set(err, -EINVAL, "body: empty; expected a pcap file");
		goto out;
	}
	*ret_packets = packets;
	*ret_bytes = bytes;
	r = 0;
out:
	pcapdec_free(d);
	return r;
}

typedef struct Answer {
	const char *agent;
	uint64_t packets, bytes;
	bool applied;
} Answer;

static bool apply_answer(Job *j, JobPart *parts, size_t n, void *arg)
{
	Answer *a = arg;
	char object[AGENT_NAME_MAX + 8];

	(void)j;
	snprintf(object, sizeof(object), "%s.pcap", a->agent);
	for (size_t i = 0; i < n; i++)
		if (strcmp(parts[i].agent, a->agent) == 0) {
			a->applied = part_apply(&parts[i], PART_DONE, a->packets, a->bytes, 0, JOB_STOP_NONE, object,
						NULL, (int64_t)now_realtime_ns());
			return a->applied;
		}
	return false;
}

static int store_sample(Service *s, const char *agent, const char *id, const uint8_t *pcap, size_t n, ErrBuf *err)
{
	char dir[4096], path[4200];
	JobPart *parts = NULL;
	const JobPart *mine = NULL;
	size_t np = 0;
	Answer a = {.agent = agent};
	Job j = {0};
	int r;

	r = db_job_get(service_db(s), NULL, id, &j, err);
	if (r < 0)
		return r == -ENOENT ? errbuf_set(err, r, "id: no sample capture %s", id) : r;
	if (j.type != JOB_SIMPLE) {
		r = errbuf_set(err, -EINVAL, "id: %s is a full capture, not a sample", id);
		goto out;
	}
	r = db_part_list(service_db(s), id, &parts, &np, err);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < np; i++)
		if (strcmp(parts[i].agent, agent) == 0)
			mine = &parts[i];
	if (!mine) {
		r = errbuf_set(err, -ENOENT, "id: sample %s was not asked of agent %s", id, agent);
		goto out;
	}
	if (part_state_terminal(mine->state)) {
		r = errbuf_set(err, -EALREADY, "id: the answer of %s to sample %s is final (%s)", agent, id,
			       part_state_to_string(mine->state));
		goto out;
	}
	r = count_records(pcap, n, &a.packets, &a.bytes, err);
	if (r < 0)
		goto out;
	if (a.packets > j.packet_limit) {
		r = errbuf_set(err, -EINVAL, "body: %llu packets, more than the sample's packet_limit %u",
			       (unsigned long long)a.packets, j.packet_limit);
		goto out;
	}
	r = service_data_path(s, "samples", dir, sizeof(dir), err);
	if (r < 0)
		goto out;
	if (snprintf(path, sizeof(path), "%s/%s", dir, id) >= (int)sizeof(path) ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST)) {
		r = errbuf_errno(err, "cannot create %s", path);
		goto out;
	}
	if (snprintf(path, sizeof(path), "%s/%s/%s.pcap", dir, id, agent) >= (int)sizeof(path)) {
		r = errbuf_set(err, -ENAMETOOLONG, "path too long");
		goto out;
	}
	{
		struct iovec iov = {.iov_base = (void *)pcap, .iov_len = n};

		r = io_publish(&io_posix, path, &iov, 1, 0600, err);
	}
	if (r < 0)
		goto out;
	r = service_update_job(s, NULL, id, apply_answer, &a, NULL, err);
	if (r >= 0 && !a.applied)
		r = errbuf_set(err, -EALREADY, "id: the deadline of sample %s passed before the answer of %s", id,
			       agent);
out:
	parts_free(parts, np);
	job_done(&j);
	return r;
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

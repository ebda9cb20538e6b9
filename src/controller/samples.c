/* SPDX-License-Identifier: MIT */
/*
 * Agents' answers to sample jobs. Each answer is checked whole before it is
 * kept (a pcap or pcapng stream, nothing after its last record, link types
 * pcapd knows, no record longer than its wire length, at most the job's
 * packet_limit records). Then, in one transaction that holds the job's row
 * (db_part_modify: this agent's part only, the job's status from a count of
 * the others), the part is checked (asked of this agent, not final yet), the
 * answer stored in the database (db_part_modify's answer) and the part
 * marked done, so that of two answers to one part exactly one is kept, answer and
 * record together, whichever controllers they reached: the answer always
 * exists for a done part, and a refused answer never replaces it. Any
 * controller over the database serves the download (service_sample_open).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "controller/service-int.h"
#include "pcap/decode.h"

typedef struct Answer {
	const char *agent, *id;
	uint64_t packets, bytes;
	int r; /* 0, or why the answer was refused (err) */
	bool changed;
	ErrBuf *err;
} Answer;

/* In the part's transaction (db_part_modify): check, store, record. */
static bool apply_answer(const Job *j, JobPart *mine, void *arg)
{
	Answer *a = arg;
	char object[AGENT_NAME_MAX + 8];

	if (j->type != JOB_SIMPLE) {
		a->r = errbuf_set(a->err, -EINVAL, "id: %s is a full capture, not a sample", a->id);
		return false;
	}
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
	/* The answer is stored with the change (db_part_modify's answer): if
	 * and only if the part is done. */
	snprintf(object, sizeof(object), "%s.pcap", a->agent);
	a->changed = part_apply(mine, PART_DONE, a->packets, a->bytes, 0, JOB_STOP_NONE, object, NULL,
				(int64_t)now_realtime_ns());
	return a->changed;
}

static int store_sample(Service *s, const char *agent, const char *id, const uint8_t *pcap, size_t n, ErrBuf *err)
{
	Answer a = {.agent = agent, .id = id, .err = err};
	Job j = {0};
	int r;

	/* An unknown id costs no parsing; the whole body is then checked
	 * outside the transaction, the part inside it. A sample that ended
	 * (its deadline passed, or every agent answered) never changes again:
	 * a late answer is refused here, without the transaction and its row
	 * lock (a thousand late answers would otherwise queue before the
	 * job's other changes). */
	r = db_job_get(service_db(s), NULL, id, &j, err);
	if (r == 0 && j.type == JOB_SIMPLE && job_status_terminal(j.status))
		r = errbuf_set(err, -EALREADY, "id: sample %s is final (%s); the answer of %s came too late", id,
			       job_status_to_string(j.status), agent);
	job_done(&j);
	if (r < 0)
		return r == -ENOENT ? errbuf_set(err, r, "id: no sample capture %s", id) : r;
	r = pcapdec_check_stream(pcap, n, &a.packets, &a.bytes, err);
	if (r < 0)
		return r;
	/* Only this agent's part is read and written; the job's status and
	 * counters come from a count of the others (db_part_modify). */
	r = db_part_modify(service_db(s), id, agent, apply_answer, &a, &(DbSample){.pcap = pcap, .n = n}, NULL, err);
	if (r == -ENOENT)
		return errbuf_set(err, r, "id: no sample capture %s", id);
	if (r == 0 && a.changed)
		service_jobs_changed(s);
	return r < 0 ? r : a.r;
}

int service_sample_open(Service *s, const char *id, const char *agent, int *ret_fd, ErrBuf *err)
{
	uint8_t *pcap = NULL;
	size_t n = 0, off = 0;
	int fd, r;

	r = db_sample_get(service_db(s), id, agent, &pcap, &n, err);
	if (r < 0)
		return r;
	fd = memfd_create("pcapd-sample", MFD_CLOEXEC);
	if (fd < 0) {
		free(pcap);
		return errbuf_errno(err, "cannot hold agent %s's answer", agent);
	}
	while (off < n) {
		ssize_t k = write(fd, pcap + off, n - off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = errbuf_errno(err, "cannot hold agent %s's answer", agent);
			close(fd);
			free(pcap);
			return r;
		}
		off += (size_t)k;
	}
	free(pcap);
	*ret_fd = fd;
	return 0;
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

/* SPDX-License-Identifier: MIT */
/*
 * One sample job (type "simple"): the recorder's history queried for the
 * controller's window, filter and packet_limit into
 * DATA/spool/<id>.sample.pcap, then that file sent as the answer,
 * POST /agent/v1/sample?name=NAME&id=ID, within the start's deadline_ms
 * (docs/AGENT-PROTOCOL.md). Phases and locking in agent-int.h.
 *
 * Speed matters here: the whole round trip (a user's POST, the controller's
 * long-poll answer, this, the controller's merge) aims at 250 ms. So a sample
 * writes no job record before it ends, the poller does not hold its next poll
 * for a "running" report of it, and the HTTP clients of finished samples are
 * kept for the next one (their connection stays open).
 *
 * Outcomes: the controller stored the answer (200) → done, with the packet
 * count; anything else → failed with the reason. A controller that already
 * closed this agent's part (409: its deadline passed) acknowledges the failed
 * report and ignores it, as it does a done report for a part the answer
 * already completed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent-int.h"
#include "common/log.h"
#include "filter/filter.h"
#include "history/hist.h"
#include "model/filtermodel.h"

#define SAMPLE_PATH "/agent/v1/sample"
#define PCAP_CONTENT_TYPE "application/vnd.tcpdump.pcap"
#define MIN_POST_TIMEOUT_MS 1000u
#define BUSY_FIRST_MS 250u /* first wait after a 503 */

static uint64_t now_ms(void)
{
	return now_monotonic_ns() / 1000000u;
}

/* An idle client, or a new one. */
static int client_get(Agent *a, CtlClient **ret, ErrBuf *err)
{
	CtlClient *c = NULL;

	pthread_mutex_lock(&a->lock);
	if (a->n_idle_clients > 0)
		c = a->idle_clients[--a->n_idle_clients];
	pthread_mutex_unlock(&a->lock);
	if (c) {
		*ret = c;
		return 0;
	}
	return ctlclient_new(&a->client_cfg, ret, err);
}

/* Keeps c for the next sample (with its connection), or frees it. */
static void client_put(Agent *a, CtlClient *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&a->lock);
	if (a->n_idle_clients < ARRAY_SIZE(a->idle_clients)) {
		a->idle_clients[a->n_idle_clients++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&a->lock);
	ctlclient_free(c);
}

void samplerun_free_clients(Agent *a)
{
	for (size_t i = 0; i < a->n_idle_clients; i++)
		ctlclient_free(a->idle_clients[i]);
	a->n_idle_clients = 0;
}

/* Puts "what: " before the message in err. */
static int prefix_err(ErrBuf *err, int r, const char *what)
{
	ErrBuf old = *err;

	return errbuf_set(err, r, "%s: %s", what, old.msg);
}

/* Sends the answer in fd (size bytes) before the deadline. A 503 (the
 * controller's body budget is taken by other uploads) is tried again, after
 * BUSY_FIRST_MS and then twice as long each time, while the deadline allows.
 * A request that fails on the way is sent again on a new connection, at
 * once the first time: the kept one may have been closed by the
 * controller's idle time-out just as it was reused (clients wait between
 * samples about as long as that time-out), and libcurl does not always
 * notice in time to retry itself. A new connection that fails too (a
 * controller too busy to finish a TLS handshake before its time-out) is
 * tried again after the same growing waits, while the deadline allows. */
static void sleep_ms(uint32_t ms)
{
	struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int post_answer(AgentJob *job, int fd, uint64_t size, uint64_t t0_ms, ErrBuf *err)
{
	Agent *a = job->agent;
	CtlResponse resp = {0};
	CtlClient *c = NULL;
	uint32_t timeout_ms, wait_ms = BUSY_FIRST_MS;
	bool fresh = false;
	char path[256], msg[160];
	int r;

	if (snprintf(path, sizeof(path), SAMPLE_PATH "?name=%s&id=%s", a->cfg->name, job->spec.id) >= (int)sizeof(path))
		return errbuf_set(err, -ENAMETOOLONG, "sample path too long");
	for (;;) {
		uint64_t spent = now_ms() - t0_ms;

		/* The controller's deadline counts from its poll answer, which
		 * came a moment ago; past it, a last try of a second still gets
		 * a clear 409. */
		timeout_ms = job->spec.deadline_ms > spent ? job->spec.deadline_ms - (uint32_t)spent : 0;
		if (timeout_ms < MIN_POST_TIMEOUT_MS)
			timeout_ms = MIN_POST_TIMEOUT_MS;
		r = fresh ? ctlclient_new(&a->client_cfg, &c, err) : client_get(a, &c, err);
		if (r < 0)
			return r;
		r = ctlclient_post_file(c, path, PCAP_CONTENT_TYPE, fd, size, timeout_ms, &resp, err);
		if (r < 0 && r != -ECANCELED && now_ms() - t0_ms + (fresh ? wait_ms : 0) < job->spec.deadline_ms) {
			log_info("sample %s: %s; sending it again on a new connection%s", job->spec.id, err->msg,
				 fresh ? " shortly" : "");
			ctlclient_free(c); /* its connection is gone: not kept for later */
			c = NULL;
			if (fresh) {
				sleep_ms(wait_ms);
				wait_ms *= 2;
			}
			fresh = true;
			continue;
		}
		client_put(a, c);
		if (r < 0)
			return prefix_err(err, r, "answer not delivered");
		if (resp.status != 503 || spent + wait_ms >= job->spec.deadline_ms)
			break;
		ctlclient_response_done(&resp);
		log_info("sample %s: the controller is busy; trying again in %u ms", job->spec.id, wait_ms);
		sleep_ms(wait_ms);
		wait_ms *= 2;
	}
	agentproto_error_message(resp.body, resp.n, msg, sizeof(msg));
	if (resp.status == 200)
		r = 0;
	else if (resp.status == 409)
		r = errbuf_set(err, -ETIME, "answer too late: %s", msg[0] ? msg : "the controller's deadline passed");
	else
		r = errbuf_set(err, -EIO, "the controller refused the answer (%ld)%s%s", resp.status,
			       msg[0] ? ": " : "", msg);
	ctlclient_response_done(&resp);
	return r;
}

/* The query into the spool file, then the answer; counters in *res. */
static int answer(AgentJob *job, uint64_t t0_ms, HistQueryResult *res, ErrBuf *err)
{
	Agent *a = job->agent;
	const AgentJobSpec *spec = &job->spec;
	Filter filter = {0};
	HistQuery q = {0};
	char path[PATH_MAX];
	struct stat st;
	int fd = -1, r;

	r = filtermodel_parse(spec->filter, strlen(spec->filter), &filter, err);
	if (r < 0)
		return prefix_err(err, r, "filter");
	if (jobstore_sample_path(a->store, spec->id, path, sizeof(path)) < 0) {
		r = errbuf_set(err, -ENAMETOOLONG, "spool path too long");
		goto out;
	}
	q.from_ns = spec->from_ns;
	q.to_ns = spec->to_ns;
	q.filter = &filter;
	q.max_packets = spec->packet_limit < HIST_MAX_QUERY_PACKETS ? spec->packet_limit : HIST_MAX_QUERY_PACKETS;
	/* Not fsynced: it lives for one request, and a crash forgets the sample. */
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = errbuf_errno(err, "cannot write %s", path);
		goto out;
	}
	r = recorder_query(a->recorder, &q, fd, res, err);
	if (r < 0) {
		if (r != -EAGAIN && r != -ENODATA && r != -ESHUTDOWN)
			prefix_err(err, r, "history query");
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		r = errbuf_errno(err, "%s", path);
		goto out;
	}
	if ((uint64_t)st.st_size > AGENTPROTO_MAX_SAMPLE_BODY) {
		r = errbuf_set(err, -EFBIG,
			       "the answer (%llu packets, %llu bytes) is over the controller's %u MiB: ask for fewer "
			       "packets",
			       (unsigned long long)res->packets, (unsigned long long)st.st_size,
			       AGENTPROTO_MAX_SAMPLE_BODY >> 20);
		goto out;
	}
	r = post_answer(job, fd, (uint64_t)st.st_size, t0_ms, err);
out:
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	filter_done(&filter);
	return r;
}

void *samplerun_main(void *arg)
{
	AgentJob *job = arg;
	Agent *a = job->agent;
	uint64_t t0 = now_ms();
	HistQueryResult res = {0};
	ErrBuf err = {{0}};
	int r;

	if (job->spec.error[0]) {
		jobrun_finish(job, PART_FAILED, JOB_STOP_ERROR, job->spec.error);
		return NULL;
	}
	if (job->spec.deadline_ms == 0) {
		/* A start delivered again after its deadline (a new session):
		 * the controller would refuse the answer. */
		jobrun_finish(job, PART_FAILED, JOB_STOP_ERROR,
			      "the sample's deadline passed before it reached the agent");
		return NULL;
	}
	if (!a->recorder) {
		jobrun_finish(job, PART_FAILED, JOB_STOP_ERROR, "no history: the recorder is off (--sample-rate 0)");
		return NULL;
	}
	r = answer(job, t0, &res, &err);
	if (r < 0) {
		jobrun_finish(job, PART_FAILED, JOB_STOP_ERROR, err.msg);
		return NULL;
	}
	pthread_mutex_lock(&a->lock);
	job->rep.packets = res.packets;
	job->rep.bytes = res.bytes;
	pthread_mutex_unlock(&a->lock);
	jobrun_finish(job, PART_DONE, res.limited ? JOB_STOP_PACKETS : JOB_STOP_NONE, NULL);
	return NULL;
}

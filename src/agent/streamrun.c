/* SPDX-License-Identifier: MIT */
/*
 * Live streams on the agent (docs/AGENT-PROTOCOL.md, "Live streams"). A
 * stream order names a running capture and a tap of the controller; one
 * thread per order reads the capture's spool file as it grows, from its first
 * byte, and POSTs it in chunks of whole items (file header, records, pcapng
 * blocks: the pcap decoder finds their ends), each with a watermark, until
 * the capture ended and the file was sent to its end, or the controller says
 * stop. The capture never waits for a stream: the thread only reads the file
 * the capture writes (the spool writer makes it end on whole records), and
 * holds it open, so that the upload removing it changes nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent-int.h"
#include "common/log.h"
#include "pcap/decode.h"

#define STREAM_LOOK_MS 50u            /* how often a thread looks for new bytes at the file's end */
#define STREAM_REFUSED_MAX_MS 2000u   /* a chunk not taken goes again after a nap doubling up to this */
#define STREAM_POST_TIMEOUT_MS 30000u /* one chunk's POST */

typedef struct StreamRun {
	Agent *a;
	AgentStreamOrder o;
	CtlClient *c;
	size_t slot;
} StreamRun;

/* Waits on a->cond (a->lock held) for ms or a signal. */
static void nap_locked(Agent *a, uint32_t ms)
{
	uint64_t deadline = now_monotonic_ns() / 1000000u + ms;
	struct timespec ts = {.tv_sec = (time_t)(deadline / 1000u), .tv_nsec = (long)(deadline % 1000u) * 1000000L};

	pthread_cond_timedwait(&a->cond, &a->lock, &ts);
}

static int post_chunk(CtlClient *c, const AgentStreamChunk *ch, const uint8_t *body, size_t n, AgentStreamAnswer *ans,
		      ErrBuf *err)
{
	char path[512];
	CtlResponse resp = {0};
	int r;

	if (agentproto_stream_path(ch, path, sizeof(path)) < 0)
		return errbuf_set(err, -ENAMETOOLONG, "stream path too long");
	r = ctlclient_post(c, path, "application/octet-stream", body, n, STREAM_POST_TIMEOUT_MS, &resp, err);
	if (r == 0 && resp.status != 200) {
		ErrBuf e = {{0}};

		agentproto_error_message(resp.body, resp.n, e.msg, sizeof(e.msg));
		r = errbuf_set(err, -EPROTO, "stream chunk: HTTP %ld: %s", resp.status, e.msg);
	}
	if (r == 0)
		r = agentproto_stream_answer_parse(resp.body, resp.n, ans, err);
	ctlclient_response_done(&resp);
	return r;
}

/* The job's phase, or FINISHED when the agent does not know it (any more). */
static JobPhase phase_of(Agent *a, const char *id, bool *ret_known)
{
	AgentJob *job;
	JobPhase p = JOB_PHASE_FINISHED;

	pthread_mutex_lock(&a->lock);
	job = jobtable_get(&a->table, id);
	if (ret_known)
		*ret_known = job && !job->spec.sample;
	if (job)
		p = job->phase;
	pthread_mutex_unlock(&a->lock);
	return p;
}

/* Opens the capture's file once its capture started; an error (in *ret_err)
 * if there is none to stream. */
static int open_capture(Agent *a, const char *id, AgentStreamError *ret_err)
{
	char spool[PATH_MAX];
	bool known;
	JobPhase p = phase_of(a, id, &known);
	int fd;

	while (known && p == JOB_PHASE_STARTING) {
		pthread_mutex_lock(&a->lock);
		nap_locked(a, STREAM_LOOK_MS);
		pthread_mutex_unlock(&a->lock);
		p = phase_of(a, id, &known);
	}
	if (!known) {
		*ret_err = AGENT_STREAM_UNKNOWN;
		return -1;
	}
	if (p == JOB_PHASE_FINISHED || jobstore_spool_path(a->store, id, spool, sizeof(spool)) < 0) {
		*ret_err = AGENT_STREAM_GONE;
		return -1;
	}
	fd = open(spool, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		*ret_err = errno == ENOENT ? AGENT_STREAM_GONE : AGENT_STREAM_READ;
	return fd;
}

/* Streams the file on fd until its end is sent or the controller says stop. */
static void stream_file(StreamRun *sr, AgentStreamChunk *ch, int fd, uint8_t *buf, PcapDecoder *dec)
{
	Agent *a = sr->a;
	size_t have = 0, whole = 0;
	uint64_t sent = 0, last_post = 0;
	uint32_t refused_ms = STREAM_LOOK_MS; /* the next nap after a chunk not taken */
	ErrBuf err = {{0}};

	for (;;) {
		AgentStreamAnswer ans = {0};
		bool done = phase_of(a, sr->o.id, NULL) >= JOB_PHASE_UPLOADING; /* before the read: all is in */
		uint64_t t_read = now_realtime_ns(), now;
		ssize_t k = pread(fd, buf + have, AGENTPROTO_STREAM_CHUNK_MAX - have, (off_t)(sent + have));
		bool eof;

		if (k < 0) {
			log_warning("stream of job %s: reading its file: %s", sr->o.id, strerror(errno));
			ch->error = AGENT_STREAM_READ;
			(void)post_chunk(sr->c, ch, NULL, 0, &ans, &err);
			return;
		}
		have += (size_t)k;
		eof = have < AGENTPROTO_STREAM_CHUNK_MAX;
		while (whole < have) {
			PcapRecord rec;
			size_t used;
			int r = pcapdec_next(dec, buf + whole, have - whole, &rec, &used, &err);

			if (r == -EAGAIN)
				break;
			if (r < 0) {
				log_warning("stream of job %s: %s", sr->o.id, err.msg);
				ch->error = AGENT_STREAM_READ;
				(void)post_chunk(sr->c, ch, NULL, 0, &ans, &err);
				return;
			}
			whole += used;
		}
		now = now_monotonic_ns() / 1000000u;
		ch->offset = sent;
		ch->end = done && eof; /* a truncated tail of a finished file is never sent */
		/* Everything stamped before the read began is in the file, up to
		 * the writer's lag (the slack), when the body reaches its end. */
		ch->watermark_ns = !ch->end && eof && whole == have && t_read > AGENTPROTO_STREAM_SLACK_MS * 1000000ull
					   ? t_read - AGENTPROTO_STREAM_SLACK_MS * 1000000ull
					   : 0;
		if (whole > 0 || ch->end || now - last_post >= AGENTPROTO_STREAM_IDLE_MS) {
			int r = post_chunk(sr->c, ch, buf, whole, &ans, &err);

			if (r < 0) {
				if (r != -ECANCELED)
					log_warning("stream of job %s to tap %s ends: %s", sr->o.id, sr->o.tap,
						    err.msg);
				return;
			}
			if (!ans.more) {
				log_info("stream of job %s to tap %s ends: %s", sr->o.id, sr->o.tap,
					 ch->end ? "its end was sent" : ans.reason);
				return;
			}
			if (ans.offset == sent && whole > 0) {
				/* Not taken (the reader is behind): again after a nap,
				 * longer each time it is refused, with whatever more the
				 * file holds by then. */
				pthread_mutex_lock(&a->lock);
				nap_locked(a, refused_ms);
				pthread_mutex_unlock(&a->lock);
				refused_ms =
					refused_ms * 2 < STREAM_REFUSED_MAX_MS ? refused_ms * 2 : STREAM_REFUSED_MAX_MS;
				continue;
			}
			refused_ms = STREAM_LOOK_MS;
			if (ans.offset != sent + whole) {
				log_warning("stream of job %s to tap %s ends: the controller asks for byte %llu, "
					    "not %llu",
					    sr->o.id, sr->o.tap, (unsigned long long)ans.offset,
					    (unsigned long long)(sent + whole));
				return;
			}
			memmove(buf, buf + whole, have - whole);
			have -= whole;
			sent += whole;
			whole = 0;
			last_post = now;
			if (!eof)
				continue; /* more is there already */
		} else if (!eof && whole == 0) {
			log_warning("stream of job %s: an item over %u bytes", sr->o.id, AGENTPROTO_STREAM_CHUNK_MAX);
			ch->error = AGENT_STREAM_READ;
			(void)post_chunk(sr->c, ch, NULL, 0, &ans, &err);
			return;
		}
		pthread_mutex_lock(&a->lock);
		nap_locked(a, STREAM_LOOK_MS);
		pthread_mutex_unlock(&a->lock);
	}
}

static void *stream_main(void *arg)
{
	StreamRun *sr = arg;
	Agent *a = sr->a;
	AgentStreamChunk ch = {0};
	AgentStreamAnswer ans;
	AgentStreamError why = AGENT_STREAM_OK;
	PcapDecoder *dec = NULL;
	uint8_t *buf = malloc(AGENTPROTO_STREAM_CHUNK_MAX);
	ErrBuf err = {{0}};
	int fd;

	memcpy(ch.name, a->cfg->name, strlen(a->cfg->name) + 1);
	memcpy(ch.id, sr->o.id, sizeof(ch.id));
	memcpy(ch.tap, sr->o.tap, sizeof(ch.tap));
	fd = open_capture(a, sr->o.id, &why);
	if (fd >= 0 && (!buf || pcapdec_new(&dec) < 0))
		why = AGENT_STREAM_READ;
	if (why != AGENT_STREAM_OK) {
		ch.error = why;
		log_info("stream of job %s to tap %s: nothing to stream (%s)", sr->o.id, sr->o.tap,
			 agentproto_stream_error_to_string(why));
		if (post_chunk(sr->c, &ch, NULL, 0, &ans, &err) < 0)
			log_warning("stream of job %s: %s", sr->o.id, err.msg);
	} else {
		log_info("stream of job %s to tap %s: starting", sr->o.id, sr->o.tap);
		stream_file(sr, &ch, fd, buf, dec);
	}
	if (fd >= 0)
		close(fd);
	pcapdec_free(dec);
	free(buf);
	/* The client goes before the count: shutdown waits for the count, then
	 * cleans up libcurl. */
	pthread_mutex_lock(&a->lock);
	a->stream_clients[sr->slot] = NULL;
	pthread_mutex_unlock(&a->lock);
	ctlclient_free(sr->c);
	free(sr);
	pthread_mutex_lock(&a->lock);
	a->n_streams--;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

void streamrun_start(Agent *a, const AgentStreamOrder *o)
{
	AgentStreamChunk ch = {0};
	AgentStreamAnswer ans;
	StreamRun *sr = calloc(1, sizeof(*sr));
	ErrBuf err = {{0}};
	pthread_attr_t attr;
	pthread_t t;
	size_t slot = AGENT_MAX_STREAMS;
	int r;

	if (sr && ctlclient_new(&a->client_cfg, &sr->c, &err) < 0) {
		free(sr);
		sr = NULL;
	}
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < AGENT_MAX_STREAMS && !a->exiting; i++)
		if (!a->stream_clients[i]) {
			slot = i;
			break;
		}
	if (sr && slot < AGENT_MAX_STREAMS) {
		sr->a = a;
		sr->o = *o;
		sr->slot = slot;
		a->stream_clients[slot] = sr->c;
		a->n_streams++;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		r = -pthread_create(&t, &attr, stream_main, sr);
		pthread_attr_destroy(&attr);
		if (r == 0) {
			pthread_mutex_unlock(&a->lock);
			return;
		}
		a->stream_clients[slot] = NULL;
		a->n_streams--;
	}
	pthread_mutex_unlock(&a->lock);
	if (sr) {
		ctlclient_free(sr->c);
		free(sr);
	}
	/* Told on the poller's connection: the tap then does not wait for us. */
	log_warning("stream of job %s to tap %s refused: %u streams run already, or no memory", o->id, o->tap,
		    AGENT_MAX_STREAMS);
	memcpy(ch.name, a->cfg->name, strlen(a->cfg->name) + 1);
	memcpy(ch.id, o->id, sizeof(ch.id));
	memcpy(ch.tap, o->tap, sizeof(ch.tap));
	ch.error = AGENT_STREAM_BUSY;
	if (post_chunk(a->poll_client, &ch, NULL, 0, &ans, &err) < 0)
		log_warning("stream of job %s: %s", o->id, err.msg);
}

void streamrun_stop_all(Agent *a)
{
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < AGENT_MAX_STREAMS; i++)
		if (a->stream_clients[i])
			ctlclient_cancel(a->stream_clients[i]);
	while (a->n_streams > 0)
		pthread_cond_wait(&a->cond, &a->lock);
	pthread_mutex_unlock(&a->lock);
}

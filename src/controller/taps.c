/* SPDX-License-Identifier: MIT */
/*
 * Live streams (service.h, "live streams"; docs/AGENT-PROTOCOL.md, "Live
 * streams"). A tap is one reader of one running full capture: its inputs are
 * the capture's agents whose parts still capture, each sending its growing
 * capture file in chunks (service_tap_chunk); a merger thread decodes each
 * input's bytes, merges the records by time (pcap/livemerge.h, a bounded
 * reorder window) and writes one pcapng (an interface per agent and input
 * interface) to the reader's sink.
 *
 * Bounds and back-pressure: an input queues at most TAP_INPUT_MAX bytes, and
 * the queues of all taps together hold at most cfg.stream_memory: a tap
 * reserves TAP_INPUT_FLOOR per input when it opens (429 when that does not
 * fit), which always holds a chunk and the rest of a record, and a queue
 * grows past it only while the total allows; a queue that has drained gives
 * its growth back within a tick. The merger copies records out under the
 * lock and writes them without it, so a slow reader blocks only the merger.
 * A chunk that does not fit is not taken (the answer asks for the same
 * offset again): the agent's streamer falls behind in the file, which its
 * capture keeps writing, and the stream lags like `tail -f` of a file
 * written faster than it is read. A reader that takes nothing for
 * TAP_STALL_NS while a queue is full is cut ("the reader is too slow"): the
 * agents are told to stop, the reader gets what was merged and the reason in
 * the trailer. Captures never wait for a reader, and their
 * files and bucket objects do not depend on any tap. A reader that left is
 * seen at the next write, or within a tick while nothing is written (the
 * sink's check: a parked connection's socket is read by nobody).
 *
 * Locking: Service.taps_lock guards the tap list and every tap's fields but
 * the merger's own (writer, scratch), which only the merger thread touches.
 * Each tap's cond wakes its merger (a chunk, a cut, shutdown).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "controller/service-int.h"
#include "pcap/decode.h"
#include "pcap/livemerge.h"
#include "pcap/writer.h"

#define TAP_MAX 32u                                     /* taps open at once on one controller */
#define TAP_INPUT_MAX (16u << 20)                       /* bytes queued per input */
#define TAP_INPUT_FLOOR SERVICE_STREAM_MEMORY_PER_AGENT /* reserved per input: a chunk, a record's rest */
#define TAP_STALL_NS (10 * (int64_t)NSEC_PER_SEC)       /* a full queue this long: the reader is too slow */
#define TAP_WINDOW_NS (2 * (int64_t)NSEC_PER_SEC)       /* the reorder window */
#define TAP_END_GRACE_NS (10 * (int64_t)NSEC_PER_SEC)   /* a final part's input silent this long has ended */
#define TAP_TICK_NS ((int64_t)NSEC_PER_SEC)             /* the merger looks at the job and keeps the reader alive */
#define TAP_SCRATCH (256u << 10)                        /* bytes of records copied out per round */
#define TAP_REASON 256u

typedef struct TapInput {
	char agent[AGENT_NAME_MAX + 1];
	bool delivered; /* the order went out in a poll answer */
	uint8_t *buf;   /* received, not yet decoded: buf[start..len) */
	size_t start, len, cap;
	uint64_t offset; /* bytes of the agent's file received */
	PcapDecoder *dec;
	uint32_t n_ifaces;            /* input interfaces mapped to output ones */
	uint32_t *ifmap;              /* input ifid → output ifid */
	uint64_t head_off, head_used; /* the head record: its data at buf + start + head_off */
	uint32_t head_caplen, head_origlen, head_ifid;
	LiveInput live;
	int64_t last_chunk;    /* monotonic ns */
	int64_t full_since;    /* monotonic ns: since when its chunks do not fit; 0 = they do */
	char note[TAP_REASON]; /* how it ended, when not by its end */
} TapInput;

struct Tap {
	Service *svc;
	char id[AGENTPROTO_STREAM_TAP_LEN + 1];
	char job[JOB_ID_LEN + 1];
	char account[JOB_ID_LEN + 1];
	char desc[PCAPWR_MAX_IFDESC]; /* every interface's if_description (job_describe) */
	bool pcapng;                  /* else classic pcap: one link type */
	TapInput *in;
	size_t n_in;
	pthread_cond_t cond;
	pthread_t thread;
	bool over;
	char cut[TAP_REASON];    /* set: end the stream with this reason */
	char reason[TAP_REASON]; /* over: what a late chunk is told */
	size_t left_out;         /* capturing agents beyond AGENTPROTO_MAX_STREAMS */
	size_t held;             /* bytes of Service.taps_mem that are this tap's */
	TapSink sink;
	/* the merger's own */
	PcapWriter *w;
	PcapBatch *batch;
	IoOps io;
	uint8_t *scratch;
	Tap *next;
};

static int64_t mono(void)
{
	return (int64_t)now_monotonic_ns();
}

/* ---- the memory of the input queues (taps_lock held) ---- */

/* What a queue of capacity cap counts against cfg.stream_memory. */
static size_t held_for(size_t cap)
{
	return cap > TAP_INPUT_FLOOR ? cap : TAP_INPUT_FLOOR;
}

/* Frees the tap's queues and gives back all it held. */
static void tap_release_locked(Service *s, Tap *t)
{
	for (size_t i = 0; i < t->n_in; i++) {
		free(t->in[i].buf);
		t->in[i].buf = NULL;
		t->in[i].start = t->in[i].len = t->in[i].cap = 0;
	}
	s->taps_mem -= t->held;
	t->held = 0;
}

/* Queues that drained to half the floor shrink back to it: what they grew
 * is there for the other inputs again. */
static void trim_inputs(Tap *t)
{
	for (size_t i = 0; i < t->n_in; i++) {
		TapInput *in = &t->in[i];
		size_t queued = in->len - in->start;
		uint8_t *b;

		if (in->cap <= TAP_INPUT_FLOOR || queued > TAP_INPUT_FLOOR / 2)
			continue;
		memmove(in->buf, in->buf + in->start, queued);
		in->start = 0;
		in->len = queued;
		b = realloc(in->buf, TAP_INPUT_FLOOR);
		if (!b)
			continue; /* the larger buffer stays, still counted */
		in->buf = b;
		t->svc->taps_mem -= in->cap - TAP_INPUT_FLOOR;
		t->held -= in->cap - TAP_INPUT_FLOOR;
		in->cap = TAP_INPUT_FLOOR;
	}
}

/* ---- the output: a pcapng writer whose "file" is the reader's sink ---- */

/* Each vector the tap's writer hands over ends on a block (records are
 * copied into its one staging area: a header vector, then the records'), and
 * the sink takes each whole or not at all: a cut leaves whole blocks. */
static ssize_t sink_writev(const IoOps *self, int fd, const struct iovec *iov, int iovcnt)
{
	Tap *t = self->state;
	size_t total = 0;

	(void)fd;
	for (int i = 0; i < iovcnt; i++) {
		int r = t->sink.write(t->sink.ctx, iov[i].iov_base, iov[i].iov_len);

		if (r < 0)
			return r;
		total += iov[i].iov_len;
	}
	return (ssize_t)total;
}

static int sink_fsync(const IoOps *self, int fd)
{
	(void)self;
	(void)fd;
	return 0;
}

static int sink_ftruncate(const IoOps *self, int fd, off_t len)
{
	(void)self;
	(void)fd;
	(void)len;
	return -ESPIPE;
}

/* An output interface for input i's interface ifid: AGENT, or AGENT/NAME
 * when the agent's file names it. Creates the writer with the first one. */
static int map_iface(Tap *t, TapInput *in, uint32_t ifid, ErrBuf *err)
{
	char name[PCAPWR_MAX_IFNAME + 1];
	PcapInterfaceInfo info;
	PcapWrInterface d;
	uint32_t *m;
	uint32_t out = 0;
	int r;

	r = pcapdec_interface(in->dec, ifid, &info);
	if (r < 0)
		return errbuf_set(err, r, "agent %s: interface %" PRIu32 " not described", in->agent, ifid);
	if (info.name) /* the agent's name whole, the interface's cut to fit */
		snprintf(name, sizeof(name), "%s/%.*s", in->agent, (int)(PCAPWR_MAX_IFNAME - strlen(in->agent) - 1),
			 info.name);
	else
		snprintf(name, sizeof(name), "%s", in->agent);
	if (info.snaplen == 0 || info.snaplen > PCAP_MAX_SNAPLEN)
		info.snaplen = PCAP_MAX_SNAPLEN;
	d = (PcapWrInterface){
		.linktype = info.linktype, .snaplen = info.snaplen, .name = name, .description = t->desc, .tsresol = 9};
	if (!t->w) {
		PcapWriterConfig wc = {.format = t->pcapng ? PCAP_FORMAT_PCAPNG : PCAP_FORMAT_PCAP_NS,
				       .linktype = d.linktype,
				       /* classic pcap: the header admits every agent's snaplen */
				       .snaplen = t->pcapng ? d.snaplen : PCAP_MAX_SNAPLEN,
				       .iface0 = t->pcapng ? &d : NULL,
				       .batch_bytes = 64u << 10,
				       .io = &t->io};

		r = pcapwr_new(-1, &wc, &t->w, err);
		if (r < 0)
			return r;
		if (pcapwr_batch_new(t->w, &t->batch) < 0) {
			pcapwr_free(t->w);
			t->w = NULL;
			return errbuf_set(err, -ENOMEM, "out of memory");
		}
	} else {
		r = pcapwr_add_interface_desc(t->w, &d, &out, err);
		if (r == -EPROTOTYPE) /* the caller names the agent */
			return errbuf_set(
				err, r,
				"link type %u: a pcap stream holds one, the first agent's; ask for format=pcapng",
				d.linktype);
		if (r < 0)
			return r;
	}
	m = realloc(in->ifmap, (ifid + 1) * sizeof(*m));
	if (!m)
		return errbuf_set(err, -ENOMEM, "out of memory");
	in->ifmap = m;
	for (uint32_t k = in->n_ifaces; k <= ifid; k++)
		m[k] = UINT32_MAX;
	m[ifid] = out;
	if (in->n_ifaces < ifid + 1)
		in->n_ifaces = ifid + 1;
	return 0;
}

/* Decodes input in up to its next record (taps_lock held). A malformed
 * input ends with a note. */
static void decode_head(Tap *t, TapInput *in)
{
	ErrBuf err = {{0}};

	while (!in->live.has_head && in->dec && in->start < in->len) {
		PcapRecord rec;
		size_t used;
		int r = pcapdec_next(in->dec, in->buf + in->start, in->len - in->start, &rec, &used, &err);

		if (r == -EAGAIN)
			return;
		/* Interfaces as soon as they are described: the reader gets the
		 * header before the first packet. */
		for (uint32_t k = in->n_ifaces; r >= 0 && k < pcapdec_interface_count(in->dec); k++)
			r = map_iface(t, in, k, &err);
		if (r < 0) {
			snprintf(in->note, sizeof(in->note), "agent %s: %.180s", in->agent, err.msg);
			in->live.ended = true;
			in->start = in->len = 0;
			pcapdec_free(in->dec);
			in->dec = NULL;
			return;
		}
		if (r != PCAPDEC_RECORD) {
			in->start += used;
			continue;
		}
		in->live.has_head = true;
		in->live.head_ts = rec.ts_ns;
		in->head_off = (uint64_t)(rec.data - (in->buf + in->start));
		in->head_used = used;
		in->head_caplen = rec.caplen;
		in->head_origlen = rec.origlen;
		in->head_ifid = in->ifmap[rec.ifid];
	}
}

/* A record copied out of an input, in the merger's scratch. */
typedef struct OutRec {
	uint64_t ts;
	uint32_t caplen, origlen, ifid;
} OutRec;

/* ---- the merger thread ---- */

/* The merger stops, also when it waits for the reader's room: a reader
 * that takes a trickle does not hold the tap (and its queues) open. */
static void tap_cut_locked(Tap *t, const char *why)
{
	if (!t->cut[0]) {
		snprintf(t->cut, sizeof(t->cut), "%s", why);
		if (!t->over && t->sink.cancel)
			t->sink.cancel(t->sink.ctx);
	}
	pthread_cond_signal(&t->cond);
}

/* Inputs whose part is final and that have been silent for the grace time
 * have ended (an agent lost, or one that never got the order). Drained
 * queues give back their growth. */
static void check_parts(Tap *t)
{
	Service *s = t->svc;
	JobPart *parts = NULL;
	size_t n = 0;
	ApiError e;
	Job j = {0};
	int64_t now = mono();

	if (service_job_get(s, t->account, t->job, &j, &parts, &n, &e) < 0) {
		pthread_mutex_lock(&s->taps_lock);
		tap_cut_locked(t, "the capture is gone");
		pthread_mutex_unlock(&s->taps_lock);
		return;
	}
	pthread_mutex_lock(&s->taps_lock);
	trim_inputs(t);
	for (size_t i = 0; i < t->n_in; i++) {
		TapInput *in = &t->in[i];

		if (in->live.ended || now - in->last_chunk < TAP_END_GRACE_NS)
			continue;
		for (size_t k = 0; k < n; k++)
			if (strcmp(parts[k].agent, in->agent) == 0 && part_state_terminal(parts[k].state)) {
				in->live.ended = true;
				snprintf(in->note, sizeof(in->note), "agent %s sent no end (its part is %s)", in->agent,
					 part_state_to_string(parts[k].state));
			}
	}
	pthread_mutex_unlock(&s->taps_lock);
	parts_free(parts, n);
	job_done(&j);
}

/* Copies records out while the merge says so, at most TAP_SCRATCH bytes
 * (taps_lock held). Returns how many; *ret_step the last step. */
static size_t take_records(Tap *t, LiveMergeStep *ret_step, int64_t *ret_until, size_t *ret_bytes)
{
	LiveInput live[AGENTPROTO_MAX_STREAMS];
	size_t n = 0, used = 0;
	bool pressure = false;

	for (;;) {
		LiveMergeStep step;
		size_t c;
		TapInput *in;
		OutRec h;

		for (size_t i = 0; i < t->n_in; i++) {
			decode_head(t, &t->in[i]);
			/* A full queue, or one refused a chunk, shortens the window:
			 * memory is bounded, the order best effort. */
			pressure = pressure || t->in[i].len - t->in[i].start > TAP_INPUT_MAX / 2 || t->in[i].full_since;
			live[i] = t->in[i].live;
		}
		step = livemerge_step(live, t->n_in, mono(), pressure ? 0 : TAP_WINDOW_NS, &c, ret_until);
		for (size_t i = 0; i < t->n_in; i++)
			t->in[i].live.blocking_since = live[i].blocking_since;
		*ret_step = step;
		if (step != LIVEMERGE_EMIT)
			break;
		in = &t->in[c];
		if (used + sizeof(h) + in->head_caplen > TAP_SCRATCH && n > 0)
			break;
		h = (OutRec){.ts = in->live.head_ts,
			     .caplen = in->head_caplen,
			     .origlen = in->head_origlen,
			     .ifid = in->head_ifid};
		memcpy(t->scratch + used, &h, sizeof(h));
		memcpy(t->scratch + used + sizeof(h), in->buf + in->start + in->head_off, h.caplen);
		used += sizeof(h) + h.caplen;
		used = (used + 7) & ~(size_t)7;
		n++;
		in->start += in->head_used;
		in->live.has_head = false;
	}
	*ret_bytes = used;
	return n;
}

/* Writes the scratch's records and flushes. 0 or -EPIPE (reader gone). */
static int write_records(Tap *t, size_t bytes, ErrBuf *err)
{
	size_t off = 0;
	int r;

	while (off < bytes) {
		OutRec h;
		struct iovec iov;

		memcpy(&h, t->scratch + off, sizeof(h));
		iov = (struct iovec){.iov_base = t->scratch + off + sizeof(h), .iov_len = h.caplen};
		r = pcapwr_queue_copy(t->batch, h.ifid, h.ts, h.origlen, &iov, 1);
		if (r < 0)
			return errbuf_set(err, r, "writing the stream: %s", strerror(-r));
		off = (off + sizeof(h) + h.caplen + 7) & ~(size_t)7;
	}
	return t->batch ? pcapwr_flush(t->batch, err) : 0;
}

/* A keep-alive when nothing was written for a tick (pcapng only: classic
 * pcap has no record that is not a packet): an Interface Statistics
 * Block without options (readers skip it), so that a reader gone is noticed
 * even while no packet flows. */
static int keepalive(Tap *t)
{
	uint64_t ts = now_realtime_ns();
	uint32_t b[6] = {5, 24, 0, (uint32_t)(ts >> 32), (uint32_t)ts, 24};

	return t->sink.write(t->sink.ctx, b, sizeof(b));
}

/* At the end: each agent's counters as ISBs of its first interface. */
static void set_stats(Tap *t)
{
	JobPart *parts = NULL;
	size_t n = 0;
	ApiError e;
	Job j = {0};
	ErrBuf err = {{0}};

	if (!t->w || service_job_get(t->svc, t->account, t->job, &j, &parts, &n, &e) < 0)
		return;
	for (size_t i = 0; i < t->n_in; i++)
		for (size_t k = 0; k < n; k++)
			if (strcmp(parts[k].agent, t->in[i].agent) == 0 && t->in[i].n_ifaces > 0 &&
			    t->in[i].ifmap[0] != UINT32_MAX) {
				PcapIfStats st = {.have = PCAP_STAT_IFRECV | PCAP_STAT_IFDROP,
						  .ifrecv = parts[k].packets + parts[k].drops,
						  .ifdrop = parts[k].drops};

				(void)pcapwr_set_interface_stats(t->w, t->in[i].ifmap[0], &st, &err);
			}
	parts_free(parts, n);
	job_done(&j);
}

/* Appends "; note" for every input that ended with one, and the agents
 * left out, to how (taps_lock held). */
static void add_notes(Tap *t, char *how, size_t cap)
{
	size_t len;

	for (size_t i = 0; i < t->n_in; i++)
		if (t->in[i].note[0] && (len = strlen(how)) < cap - 3)
			snprintf(how + len, cap - len, "; %s", t->in[i].note);
	if (t->left_out && (len = strlen(how)) < cap - 3)
		snprintf(how + len, cap - len, "; %zu more agents not in the stream (it merges at most %u)",
			 t->left_out, AGENTPROTO_MAX_STREAMS);
}

static void *merger_main(void *arg)
{
	Tap *t = arg;
	Service *s = t->svc;
	int64_t next_tick = mono() + TAP_TICK_NS;  /* a keep-alive, when nothing was written until then */
	int64_t next_check = mono() + TAP_TICK_NS; /* a look at the job's parts */
	char how[TAP_REASON * 2] = "";
	ErrBuf err = {{0}};
	bool done = false, cut = false, ok;
	int r = 0;

	while (r == 0) {
		LiveMergeStep step = LIVEMERGE_WAIT;
		int64_t until = INT64_MAX;
		size_t bytes = 0, n;
		bool had_writer;

		pthread_mutex_lock(&s->taps_lock);
		if (t->cut[0] || s->taps_stopping) {
			snprintf(how, sizeof(how), "cut: %s", t->cut[0] ? t->cut : "the controller is stopping");
			pthread_mutex_unlock(&s->taps_lock);
			cut = true;
			break;
		}
		had_writer = t->w != NULL;
		n = take_records(t, &step, &until, &bytes);
		if (n == 0 && step == LIVEMERGE_WAIT && (had_writer || !t->w)) {
			struct timespec ts;
			int64_t wake = until < next_tick ? until : next_tick;

			wake = wake < next_check ? wake : next_check;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			wake -= mono();
			if (wake > 0) {
				ts.tv_sec += wake / (int64_t)NSEC_PER_SEC;
				ts.tv_nsec += wake % (int64_t)NSEC_PER_SEC;
				if (ts.tv_nsec >= (long)NSEC_PER_SEC) {
					ts.tv_sec++;
					ts.tv_nsec -= (long)NSEC_PER_SEC;
				}
				pthread_cond_timedwait(&t->cond, &s->taps_lock, &ts);
			}
		}
		pthread_mutex_unlock(&s->taps_lock);
		if (n > 0 || (!had_writer && t->w)) {
			r = write_records(t, bytes, &err);
			next_tick = mono() + TAP_TICK_NS;
		}
		if (r < 0)
			break;
		if (step == LIVEMERGE_DONE && n == 0) {
			done = true;
			break;
		}
		if (mono() >= next_check) {
			check_parts(t);
			next_check = mono() + TAP_TICK_NS;
		}
		if (mono() >= next_tick) {
			if (t->sink.check) /* an idle reader's leaving shows only here */
				r = t->sink.check(t->sink.ctx);
			if (r == 0 && t->w && t->pcapng && (r = keepalive(t)) < 0)
				errbuf_set(&err, r, "writing the stream: %s", strerror(-r));
			next_tick = mono() + TAP_TICK_NS;
		}
	}
	if (done) {
		bool any = t->w != NULL; /* some agent's file got as far as its header */

		set_stats(t);
		if (t->batch)
			r = pcapwr_flush(t->batch, &err);
		pcapwr_batch_free(t->batch);
		t->batch = NULL;
		if (r == 0 && t->w)
			r = pcapwr_finish(t->w, false, &err);
		else
			pcapwr_free(t->w);
		t->w = NULL;
		snprintf(how, sizeof(how), "%s", any ? "complete" : "no agent sent its capture");
		if (r == 0 && !any)
			r = -ENODATA;
	}
	pcapwr_batch_free(t->batch);
	pcapwr_free(t->w);
	t->batch = NULL;
	t->w = NULL;
	pthread_mutex_lock(&s->taps_lock);
	if (r == -ECANCELED) { /* cut while the reader held the merger (the sink queued none of that write) */
		snprintf(how, sizeof(how), "cut: %s", t->cut);
		cut = true;
		r = 0;
	} else if (r < 0 && r != -EPIPE && r != -ENODATA) {
		snprintf(how, sizeof(how), "%s", err.msg);
	}
	if (done || cut)
		add_notes(t, how, sizeof(how));
	t->over = true;
	snprintf(t->reason, sizeof(t->reason), "%s",
		 r == -EPIPE ? "the reader left" : (t->cut[0] ? t->cut : "the stream is over"));
	tap_release_locked(s, t);
	pthread_mutex_unlock(&s->taps_lock);
	if (r < 0 && r != -EPIPE && r != -ECANCELED)
		log_warning("live stream of capture %s: %s", t->job, how);
	/* A cut ends well (at a block's end: the sink takes each write whole
	 * or not at all), its reason in the trailer; a reader gone, a failure,
	 * or no agent's file at all breaks the body. */
	ok = r == 0;
	t->sink.end(t->sink.ctx, ok, how);
	return NULL;
}

/* ---- the registry of taps ---- */

static void tap_free(Tap *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_in; i++) {
		free(t->in[i].buf);
		free(t->in[i].ifmap);
		pcapdec_free(t->in[i].dec);
	}
	free(t->in);
	free(t->scratch);
	pthread_cond_destroy(&t->cond);
	free(t);
}

/* Joins and frees taps whose merger ended (not under taps_lock). */
static void reap(Service *s, bool all)
{
	for (;;) {
		Tap **pp, *t = NULL;

		pthread_mutex_lock(&s->taps_lock);
		for (pp = &s->taps; *pp; pp = &(*pp)->next)
			if ((*pp)->over || all) {
				t = *pp;
				*pp = t->next;
				s->n_taps--;
				break;
			}
		pthread_mutex_unlock(&s->taps_lock);
		if (!t)
			return;
		pthread_join(t->thread, NULL); /* every tap in the list was started */
		tap_free(t);
	}
}

void service_taps_stop(Service *s)
{
	pthread_mutex_lock(&s->taps_lock);
	s->taps_stopping = true;
	for (Tap *t = s->taps; t; t = t->next)
		pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&s->taps_lock);
}

void service_taps_free(Service *s)
{
	service_taps_stop(s);
	reap(s, true);
}

int service_tap_open(Service *s, const char *account, const char *id, bool pcapng, Tap **ret, ApiError *e)
{
	pthread_condattr_t ca;
	JobPart *parts = NULL;
	size_t n = 0, k = 0;
	char tid[JOB_ID_LEN + 1];
	Job j = {0};
	Tap *t = NULL;
	int r;

	reap(s, false);
	r = service_job_get(s, account, id, &j, &parts, &n, e);
	if (r < 0)
		return r;
	if (j.type != JOB_FULL) {
		r = apierror_set(e, API_ERR_CONFLICT, "id",
				 "a sample capture is answered from the history, not streamed; download it");
		goto out;
	}
	if (j.status != JOB_PENDING && j.status != JOB_RUNNING) {
		r = apierror_set(e, API_ERR_CONFLICT, "id",
				 "capture is %s; only a pending or running capture streams (download a finished one)",
				 job_status_to_string(j.status));
		goto out;
	}
	t = calloc(1, sizeof(*t));
	if (t) {
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&t->cond, &ca);
		pthread_condattr_destroy(&ca);
		t->in = calloc(n ? n : 1, sizeof(*t->in));
		t->scratch = malloc(TAP_SCRATCH + sizeof(OutRec) + PCAP_MAX_SNAPLEN + 8);
	}
	if (!t || !t->in || !t->scratch || job_new_id(tid) < 0) {
		r = apierror_set(e, API_ERR_INTERNAL, NULL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		TapInput *in = &t->in[k];

		if (parts[i].state != PART_ASSIGNED && parts[i].state != PART_RUNNING)
			continue;
		if (k == AGENTPROTO_MAX_STREAMS) {
			t->left_out++;
			continue;
		}
		snprintf(in->agent, sizeof(in->agent), "%s", parts[i].agent);
		if (pcapdec_new(&in->dec) < 0) {
			t->n_in = k;
			r = apierror_set(e, API_ERR_INTERNAL, NULL, "out of memory");
			goto out;
		}
		in->last_chunk = mono();
		k++;
	}
	t->n_in = k;
	if (k == 0) {
		r = apierror_set(e, API_ERR_CONFLICT, "id", "no agent of the capture is capturing any more");
		goto out;
	}
	t->svc = s;
	t->pcapng = pcapng;
	memcpy(t->id, tid, AGENTPROTO_STREAM_TAP_LEN);
	t->id[AGENTPROTO_STREAM_TAP_LEN] = '\0';
	snprintf(t->job, sizeof(t->job), "%s", j.id);
	snprintf(t->account, sizeof(t->account), "%s", j.account);
	job_describe(&j, t->desc, sizeof(t->desc));
	t->io = (IoOps){.writev = sink_writev, .fsync = sink_fsync, .ftruncate = sink_ftruncate, .state = t};
	pthread_mutex_lock(&s->taps_lock);
	if (s->n_taps >= TAP_MAX || s->taps_stopping || s->taps_mem + k * TAP_INPUT_FLOOR > s->cfg.stream_memory) {
		bool stopping = s->taps_stopping, many = s->n_taps >= TAP_MAX;
		size_t held = s->taps_mem;

		pthread_mutex_unlock(&s->taps_lock);
		if (stopping)
			r = apierror_set(e, API_ERR_UNAVAILABLE, NULL, "the controller is shutting down");
		else if (many)
			r = apierror_set(e, API_ERR_BUSY, NULL, "%u live streams are open; try again later", TAP_MAX);
		else if (k * TAP_INPUT_FLOOR > s->cfg.stream_memory)
			r = apierror_set(
				e, API_ERR_BUSY, NULL,
				"a stream of %zu agents needs %zu MiB (1 MiB per agent), more than the %zu MiB "
				"this controller gives all streams (--stream-memory)",
				k, (k * TAP_INPUT_FLOOR) >> 20, s->cfg.stream_memory >> 20);
		else
			r = apierror_set(e, API_ERR_BUSY, NULL,
					 "live streams hold %zu MiB of the %zu MiB this controller gives them, and "
					 "this one needs %zu MiB (1 MiB per agent); try again later",
					 held >> 20, s->cfg.stream_memory >> 20, (k * TAP_INPUT_FLOOR) >> 20);
		e->retry_after_s = 5;
		goto out;
	}
	s->taps_mem += k * TAP_INPUT_FLOOR;
	t->held = k * TAP_INPUT_FLOOR;
	pthread_mutex_unlock(&s->taps_lock);
	*ret = t;
	t = NULL;
	r = 0;
out:
	tap_free(t);
	parts_free(parts, n);
	job_done(&j);
	return r;
}

void service_tap_cancel(Service *s, Tap *t)
{
	pthread_mutex_lock(&s->taps_lock);
	tap_release_locked(s, t);
	pthread_mutex_unlock(&s->taps_lock);
	tap_free(t);
}

int service_tap_start(Service *s, Tap *t, const TapSink *sink, ErrBuf *err)
{
	int r;

	t->sink = *sink;
	pthread_mutex_lock(&s->taps_lock);
	r = -pthread_create(&t->thread, NULL, merger_main, t);
	if (r < 0) {
		tap_release_locked(s, t);
		pthread_mutex_unlock(&s->taps_lock);
		tap_free(t);
		return errbuf_set(err, r, "cannot start a stream thread: %s", strerror(-r));
	}
	t->next = s->taps;
	s->taps = t;
	s->n_taps++;
	pthread_mutex_unlock(&s->taps_lock);
	/* The agents learn of the tap with their next poll answer. */
	for (size_t i = 0; i < t->n_in; i++)
		registry_wake(s->reg, t->in[i].agent);
	return 0;
}

size_t service_tap_count(Service *s, const char *account)
{
	size_t n = 0;

	pthread_mutex_lock(&s->taps_lock);
	for (Tap *t = s->taps; t; t = t->next)
		n += !t->over && (!account || strcmp(t->account, account) == 0);
	pthread_mutex_unlock(&s->taps_lock);
	return n;
}

size_t service_tap_memory(Service *s, const char *account)
{
	size_t n = 0;

	pthread_mutex_lock(&s->taps_lock);
	for (Tap *t = s->taps; t; t = t->next)
		if (!account || strcmp(t->account, account) == 0)
			n += t->held;
	pthread_mutex_unlock(&s->taps_lock);
	return n;
}

size_t service_tap_orders(Service *s, const char *agent, AgentStreamOrder *ret, size_t cap)
{
	size_t n = 0;

	pthread_mutex_lock(&s->taps_lock);
	for (Tap *t = s->taps; t && n < cap; t = t->next)
		for (size_t i = 0; i < t->n_in && n < cap; i++) {
			TapInput *in = &t->in[i];

			if (t->over || in->delivered || strcmp(in->agent, agent) != 0)
				continue;
			in->delivered = true;
			snprintf(ret[n].id, sizeof(ret[n].id), "%s", t->job);
			snprintf(ret[n].tap, sizeof(ret[n].tap), "%s", t->id);
			n++;
		}
	pthread_mutex_unlock(&s->taps_lock);
	return n;
}

bool service_tap_pending(Service *s, const char *agent)
{
	bool any = false;

	pthread_mutex_lock(&s->taps_lock);
	for (Tap *t = s->taps; t && !any; t = t->next)
		for (size_t i = 0; i < t->n_in && !any; i++)
			any = !t->over && !t->in[i].delivered && strcmp(t->in[i].agent, agent) == 0;
	pthread_mutex_unlock(&s->taps_lock);
	return any;
}

static void stop_answer(AgentStreamAnswer *a, const char *why)
{
	*a = (AgentStreamAnswer){.more = false};
	snprintf(a->reason, sizeof(a->reason), "%s", why);
}

/* Appends p[0..n) to the input's queue, compacting first. -ENOBUFS past
 * TAP_INPUT_MAX queued bytes, or when growing it would pass cfg.stream_memory. */
static int append(Tap *t, TapInput *in, const uint8_t *p, size_t n)
{
	size_t queued = in->len - in->start;

	if (queued + n > TAP_INPUT_MAX)
		return -ENOBUFS;
	if (in->start > 0 && in->len + n > in->cap) {
		memmove(in->buf, in->buf + in->start, queued);
		in->start = 0;
		in->len = queued;
	}
	if (in->len + n > in->cap) {
		size_t cap = in->cap ? in->cap : 64u << 10, extra;
		uint8_t *b;

		while (cap < in->len + n)
			cap *= 2;
		extra = held_for(cap) - held_for(in->cap);
		if (t->svc->taps_mem + extra > t->svc->cfg.stream_memory)
			return -ENOBUFS;
		b = realloc(in->buf, cap);
		if (!b)
			return -ENOMEM;
		in->buf = b;
		in->cap = cap;
		t->svc->taps_mem += extra;
		t->held += extra;
	}
	memcpy(in->buf + in->len, p, n);
	in->len += n;
	return 0;
}

int service_tap_chunk(Service *s, const AgentStreamChunk *c, const uint8_t *body, size_t n, AgentStreamAnswer *ret)
{
	TapInput *in = NULL;
	char why[TAP_REASON];
	Tap *t;
	int r;

	pthread_mutex_lock(&s->taps_lock);
	for (t = s->taps; t; t = t->next)
		if (strcmp(t->id, c->tap) == 0 && strcmp(t->job, c->id) == 0)
			break;
	for (size_t i = 0; t && i < t->n_in; i++)
		if (strcmp(t->in[i].agent, c->name) == 0)
			in = &t->in[i];
	if (!t || !in) {
		stop_answer(ret, !t ? "no such stream (its reader left)" : "this agent is not an input of the stream");
		goto out;
	}
	if (t->over || t->cut[0]) {
		stop_answer(ret, t->over ? t->reason : t->cut);
		goto out;
	}
	in->last_chunk = mono();
	if (in->live.ended) {
		stop_answer(ret, "this agent's part of the stream has ended");
		goto out;
	}
	if (c->error != AGENT_STREAM_OK) {
		in->live.ended = true;
		snprintf(in->note, sizeof(in->note), "agent %s: %s", in->agent,
			 c->error == AGENT_STREAM_UNKNOWN ? "no such capture"
			 : c->error == AGENT_STREAM_GONE  ? "its capture file was already delivered"
			 : c->error == AGENT_STREAM_BUSY  ? "it streams as many captures as it may"
							  : "reading its capture file failed");
		pthread_cond_signal(&t->cond);
		stop_answer(ret, "noted");
		goto out;
	}
	if (c->offset != in->offset) {
		/* A resend after a lost answer, or a gap: ask for the next byte. */
		*ret = (AgentStreamAnswer){.more = true, .offset = in->offset};
		goto out;
	}
	r = append(t, in, body, n);
	if (r == -ENOBUFS && (!in->full_since || in->last_chunk - in->full_since < TAP_STALL_NS)) {
		/* Not taken: the agent sends it again later. */
		if (!in->full_since)
			in->full_since = in->last_chunk;
		*ret = (AgentStreamAnswer){.more = true, .offset = in->offset};
		goto out;
	}
	if (r < 0) {
		snprintf(why, sizeof(why),
			 r == -ENOBUFS ? "the reader is too slow: it took nothing for %d s while %zu KiB of agent %s "
					 "waited for it"
				       : "out of memory (%d s, %zu KiB of agent %s queued)",
			 (int)(TAP_STALL_NS / (int64_t)NSEC_PER_SEC), (in->len - in->start) >> 10, in->agent);
		tap_cut_locked(t, why);
		stop_answer(ret, why);
		goto out;
	}
	in->full_since = 0;
	in->offset += n;
	if (c->watermark_ns > in->live.watermark_ns)
		in->live.watermark_ns = c->watermark_ns;
	in->live.ended = c->end;
	pthread_cond_signal(&t->cond);
	*ret = (AgentStreamAnswer){.more = !c->end, .offset = in->offset};
	if (c->end)
		snprintf(ret->reason, sizeof(ret->reason), "end noted");
out:
	pthread_mutex_unlock(&s->taps_lock);
	return 0;
}

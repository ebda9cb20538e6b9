/* SPDX-License-Identifier: MIT */
/*
 * The recorder (recorder.h): its thread owns the store and the capture; the
 * capture runs in a second thread because capture_run() returns only when
 * the capture stops, and the store needs hist_tick() meanwhile.
 *
 * Recorder states, as recorder_status() reports them:
 *
 *   starting ──► store open ──► capturing ◄──► write-error episode
 *      │ ▲            │ ▲
 *      ▼ │ 5 s        ▼ │ 5 s
 *   store failed   capture failed
 *
 * "recording" is true only while capturing outside an episode.
 *
 * Locking: Recorder.lock guards the fields marked so. The store pointer is
 * published under it once and stays until recorder_free(), which waits for
 * running queries (n_queries) before it closes the store. The sink runs in
 * the capture thread with no lock: it counts failed adds in an atomic and
 * hands over at most one message per tick through sink_lock.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/ifaces.h"
#include "agent/recorder.h"
#include "capture/capture.h"
#include "common/log.h"
#include "filter/sample.h"

/* 8 MiB of ring per interface: sampled traffic is a small share of the
 * link's, and the ring is set up (and cleared) when the recorder starts. */
#define RING_BLOCKS 8u
#define RING_BLOCK_SIZE (1u << 20)
#define IFNAMES_MAX 256u

struct Recorder {
	RecorderConfig cfg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* stopping, capture ended, last query ended */
	bool stopping;       /* under lock */

	HistStore *store;   /* under lock until set; then stable until recorder_free */
	bool store_failed;  /* under lock: the last hist_open() failed */
	ErrBuf store_err;   /* under lock: its message */
	unsigned n_queries; /* under lock: hist_query() calls running */

	Capture *cap;                   /* under lock (capture_stats from the reporter) */
	pthread_t cap_thread;           /* valid while cap_running or cap_done */
	bool cap_running;               /* under lock: the capture thread was started, not joined */
	bool cap_done;                  /* under lock: its capture_run() returned */
	int cap_result;                 /* under lock: what it returned */
	ErrBuf cap_run_err;             /* under lock: its message */
	volatile sig_atomic_t cap_stop; /* stops capture_run() */
	uint32_t linktypes[CAPTURE_MAX_IFACES];
	bool cap_failed;           /* under lock: the last capture failed to open or stopped with an error */
	ErrBuf cap_err;            /* under lock: why */
	uint64_t drops_before;     /* under lock: kernel drops of captures that ended */
	char ifnames[IFNAMES_MAX]; /* the interfaces being recorded, for logs */

	atomic_uint_fast64_t add_failures; /* hist_add() failures since the last tick */
	atomic_bool sink_msg_fresh;        /* sink_err holds a message the tick has not read */
	pthread_mutex_t sink_lock;
	ErrBuf sink_err;

	bool episode;          /* under lock: a write-error episode is on */
	ErrBuf episode_err;    /* under lock: its latest message */
	uint64_t last_fail_ms; /* recorder thread: monotonic time of the latest failure */
	uint64_t last_packets; /* recorder thread: packets written, at the previous tick */
};

static uint64_t now_ms(void)
{
	return now_monotonic_ns() / 1000000u;
}

/* Waits on r->cond (r->lock held) until deadline_ms (monotonic) or a signal. */
static void wait_until(Recorder *r, uint64_t deadline_ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(deadline_ms / 1000u);
	ts.tv_nsec = (long)(deadline_ms % 1000u) * 1000000L;
	pthread_cond_timedwait(&r->cond, &r->lock, &ts);
}

static void changed(Recorder *r)
{
	if (r->cfg.on_change)
		r->cfg.on_change(r->cfg.ctx);
}

/* ---- the store ---- */

static void log_recovery(const Recorder *r, const HistOpenReport *rep)
{
	const struct {
		unsigned n;
		const char *what;
	} items[] = {
		{rep->removed_temp, "unpublished files removed (the unsealed tail of the last run)"},
		{rep->removed_orphan, "index files without data removed"},
		{rep->removed_empty, "empty segments removed"},
		{rep->rebuilt, "indexes rebuilt"},
		{rep->truncated, "segments cut back to their last whole packet"},
		{rep->unreadable, "unreadable files ignored"},
	};
	char text[512];
	size_t o = 0;

	for (size_t i = 0; i < ARRAY_SIZE(items); i++) {
		int k;

		if (!items[i].n)
			continue;
		k = snprintf(text + o, sizeof(text) - o, "%s%u %s", o ? ", " : "", items[i].n, items[i].what);
		if (k < 0 || (size_t)k >= sizeof(text) - o)
			break; /* what fits is said */
		o += (size_t)k;
	}
	if (o)
		log_warning("history %s: recovery: %s; %u segments kept", r->cfg.dir, text, rep->segments);
}

/* Opens the store; on failure logs the first one of a series. */
static int open_store(Recorder *r)
{
	HistConfig hc = {.dir = r->cfg.dir,
			 .snaplen = r->cfg.snaplen,
			 .max_bytes = r->cfg.max_bytes,
			 .max_age_ns = r->cfg.max_age_ns};
	HistOpenReport rep = {0};
	HistStore *s = NULL;
	ErrBuf err = {{0}};
	bool first;
	int rc;

	/* Segments much shorter than the history, so that retention by age
	 * removes it in small steps (a short --history-age as well). */
	hc.segment_age_ns = r->cfg.max_age_ns / 8;
	if (hc.segment_age_ns > HIST_DEFAULT_SEGMENT_AGE_NS)
		hc.segment_age_ns = HIST_DEFAULT_SEGMENT_AGE_NS;
	if (hc.segment_age_ns < NSEC_PER_SEC)
		hc.segment_age_ns = NSEC_PER_SEC;
	rc = hist_open(&hc, &s, &rep, &err);
	pthread_mutex_lock(&r->lock);
	first = !r->store_failed;
	if (rc == 0) {
		r->store = s;
		r->store_failed = false;
	} else {
		r->store_failed = true;
		r->store_err = err;
	}
	pthread_mutex_unlock(&r->lock);
	if (rc < 0) {
		if (first) {
			log_error("history %s: %s; retrying every %u s (samples fail until then)", r->cfg.dir, err.msg,
				  RECORDER_RETRY_MS / 1000u);
			changed(r);
		}
		return rc;
	}
	log_recovery(r, &rep);
	return 0;
}

/* ---- the capture ---- */

static int sink_packet(void *ctx, unsigned worker, const CapturePacket *p)
{
	Recorder *r = ctx;
	HistPacket hp = {.ts_ns = p->ts_ns,
			 .origlen = p->origlen,
			 .linktype = r->linktypes[p->iface],
			 .parts = p->parts,
			 .nparts = p->nparts};
	bool want_msg = !atomic_load_explicit(&r->sink_msg_fresh, memory_order_relaxed);
	ErrBuf err;

	(void)worker;
	err.msg[0] = '\0';
	/* Without a message buffer, a suspended store refuses without
	 * formatting one: no cost per dropped packet beyond the count. */
	if (hist_add(r->store, &hp, want_msg ? &err : NULL) < 0) {
		atomic_fetch_add_explicit(&r->add_failures, 1, memory_order_relaxed);
		if (want_msg) {
			pthread_mutex_lock(&r->sink_lock);
			r->sink_err = err;
			pthread_mutex_unlock(&r->sink_lock);
			atomic_store(&r->sink_msg_fresh, true);
		}
	}
	return 0; /* a write error never stops the capture: the store retries */
}

static int sink_block_done(void *ctx, unsigned worker)
{
	(void)ctx;
	(void)worker;
	return 0; /* hist_add() copied every packet already */
}

static void *capture_main(void *arg)
{
	Recorder *r = arg;
	CaptureSink sink = {.packet = sink_packet, .block_done = sink_block_done, .ctx = r};
	StopReason why = STOP_REASON_NONE;
	ErrBuf err = {{0}};
	int rc;

	rc = capture_run(r->cap, &sink, &r->cap_stop, &why, &err);
	pthread_mutex_lock(&r->lock);
	r->cap_done = true;
	r->cap_result = rc;
	r->cap_run_err = err;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void set_cap_failed(Recorder *r, const ErrBuf *err, bool *ret_first)
{
	pthread_mutex_lock(&r->lock);
	*ret_first = !r->cap_failed;
	r->cap_failed = true;
	r->cap_err = *err;
	pthread_mutex_unlock(&r->lock);
}

/* The interfaces (the configured ones, or those up now), their link types
 * and the sampling program; opens the capture and starts its thread. */
static int start_capture(Recorder *r)
{
	CbpfProgram progs[CAPTURE_MAX_IFACES] = {{0}};
	const char *names[CAPTURE_MAX_IFACES];
	CaptureConfig cc = {0};
	char **owned = NULL;
	size_t n = 0, o = 0;
	Capture *cap = NULL;
	ErrBuf err = {{0}};
	bool first, again = false;
	int rc;

	if (r->cfg.all_ifaces) {
		rc = ifaces_up(&owned, &n, &err);
		if (rc < 0)
			goto fail;
		for (size_t i = 0; i < n; i++)
			names[i] = owned[i];
	} else {
		n = r->cfg.n_ifaces;
		for (size_t i = 0; i < n; i++)
			names[i] = r->cfg.ifaces[i];
	}
	for (size_t i = 0; i < n; i++) {
		rc = filter_sample(NULL, r->cfg.sample_rate, r->cfg.snaplen, &progs[i], &err);
		if (rc < 0)
			goto fail;
	}
	cc.ifaces = names;
	cc.n_ifaces = n;
	cc.snaplen = r->cfg.snaplen;
	cc.block_size = RING_BLOCK_SIZE;
	cc.block_count = RING_BLOCKS;
	cc.workers = 1;
	cc.filters = progs;
	rc = capture_open(&cc, &cap, &err);
	if (rc < 0)
		goto fail;
	r->ifnames[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int k = snprintf(r->ifnames + o, sizeof(r->ifnames) - o, "%s%s", i ? ", " : "", names[i]);

		r->linktypes[i] = capture_linktype(cap, (unsigned)i);
		if (k > 0 && (size_t)k < sizeof(r->ifnames) - o)
			o += (size_t)k; /* a list too long for a log line stops short */
	}
	r->cap_stop = 0;
	pthread_mutex_lock(&r->lock);
	r->cap = cap;
	r->cap_done = false;
	rc = -pthread_create(&r->cap_thread, NULL, capture_main, r);
	if (rc == 0) {
		r->cap_running = true;
		again = r->cap_failed;
		r->cap_failed = false;
	} else {
		r->cap = NULL;
	}
	pthread_mutex_unlock(&r->lock);
	if (rc < 0) {
		capture_free(cap);
		errbuf_set(&err, rc, "cannot start the capture thread: %s", strerror(-rc));
		goto fail;
	}
	if (r->cfg.sample_rate == 1)
		log_info("history: %srecording every packet of %s (snaplen %" PRIu32 ") into %s",
			 again ? "capturing again, " : "", r->ifnames, r->cfg.snaplen, r->cfg.dir);
	else
		log_info("history: %srecording 1 in %" PRIu32 " packets of %s (snaplen %" PRIu32 ") into %s",
			 again ? "capturing again, " : "", r->cfg.sample_rate, r->ifnames, r->cfg.snaplen, r->cfg.dir);
	changed(r);
	goto out;
fail:
	set_cap_failed(r, &err, &first);
	if (first) {
		log_error("history: cannot capture: %s; retrying every %u s", err.msg, RECORDER_RETRY_MS / 1000u);
		changed(r);
	}
out:
	for (size_t i = 0; i < n; i++)
		cbpf_program_free(&progs[i]);
	ifaces_free(owned, r->cfg.all_ifaces ? n : 0);
	return rc;
}

/* Joins the capture thread and frees the capture (recorder thread). */
static void end_capture(Recorder *r)
{
	Capture *cap;
	CaptureStats st;
	ErrBuf err;
	int rc;
	bool first, stopping;

	r->cap_stop = 1;
	pthread_join(r->cap_thread, NULL);
	pthread_mutex_lock(&r->lock);
	cap = r->cap;
	capture_stats(cap, &st);
	r->drops_before += st.kernel_drops;
	r->cap = NULL;
	r->cap_running = false;
	r->cap_done = false;
	rc = r->cap_result;
	err = r->cap_run_err;
	stopping = r->stopping;
	pthread_mutex_unlock(&r->lock);
	capture_free(cap);
	if (stopping)
		return;
	/* It ended on its own: an error (an interface went away) or, should a
	 * limit ever be set, a normal end; both are tried again. */
	if (rc == 0)
		errbuf_set(&err, -EIO, "the capture ended");
	set_cap_failed(r, &err, &first);
	if (first)
		log_error("history: capture on %s stopped: %s; retrying every %u s", r->ifnames, err.msg,
			  RECORDER_RETRY_MS / 1000u);
	changed(r);
}

/* ---- upkeep ---- */

/* hist_tick(), then what it and the adds since the last tick tell about
 * write errors: the first failure of an episode is logged, and its end. */
static void tick(Recorder *r)
{
	HistStats st;
	ErrBuf terr = {{0}}, serr, msg = {{0}};
	uint64_t failures, now = now_ms();
	bool failing, written, stats_ok, log_start = false, log_end = false;
	int tr;

	tr = hist_tick(r->store, now_realtime_ns(), &terr);
	failures = atomic_exchange(&r->add_failures, 0);
	stats_ok = hist_stats(r->store, &st, &serr) == 0;
	failing = tr < 0 || failures > 0 || (stats_ok && !st.recording);
	written = stats_ok && st.packets > r->last_packets;
	if (stats_ok)
		r->last_packets = st.packets;
	if (failures > 0 && atomic_load(&r->sink_msg_fresh)) {
		pthread_mutex_lock(&r->sink_lock);
		msg = r->sink_err;
		pthread_mutex_unlock(&r->sink_lock);
		atomic_store(&r->sink_msg_fresh, false);
	}
	/* The store's own words while it is suspended, else the add's, else the tick's. */
	if (stats_ok && !st.recording && st.error_msg[0])
		memcpy(msg.msg, st.error_msg, sizeof(msg.msg));
	else if (!msg.msg[0] && tr < 0)
		msg = terr;
	if (!msg.msg[0])
		errbuf_set(&msg, -EIO, "write error");

	pthread_mutex_lock(&r->lock);
	if (failing) {
		r->last_fail_ms = now;
		log_start = !r->episode;
		r->episode = true;
		r->episode_err = msg;
	} else if (r->episode && (written || now - r->last_fail_ms >= RECORDER_CLEAR_MS)) {
		/* Written blocks prove that writing works again; without traffic,
		 * a quiet stretch has to do. */
		r->episode = false;
		log_end = true;
	}
	pthread_mutex_unlock(&r->lock);
	if (log_start)
		log_error("history %s: %s; packets are dropped, writing is retried every second", r->cfg.dir, msg.msg);
	if (log_end)
		log_info("history %s: recording again", r->cfg.dir);
	if (log_start || log_end)
		changed(r);
}

static void *recorder_main(void *arg)
{
	Recorder *r = arg;
	uint64_t next_open = 0, next_cap = 0, next_tick = 0;
	ErrBuf err = {{0}};

	pthread_mutex_lock(&r->lock);
	while (!r->stopping) {
		uint64_t now = now_ms(), due;

		if (!r->store && now >= next_open) {
			pthread_mutex_unlock(&r->lock);
			if (open_store(r) < 0)
				next_open = now_ms() + RECORDER_RETRY_MS;
			pthread_mutex_lock(&r->lock);
			continue;
		}
		if (r->cap_done) {
			pthread_mutex_unlock(&r->lock);
			end_capture(r);
			next_cap = now_ms() + RECORDER_RETRY_MS;
			pthread_mutex_lock(&r->lock);
			continue;
		}
		if (r->store && !r->cap_running && now >= next_cap) {
			pthread_mutex_unlock(&r->lock);
			if (start_capture(r) < 0)
				next_cap = now_ms() + RECORDER_RETRY_MS;
			pthread_mutex_lock(&r->lock);
			continue;
		}
		if (r->store && now >= next_tick) {
			pthread_mutex_unlock(&r->lock);
			tick(r);
			next_tick = now_ms() + RECORDER_TICK_MS;
			pthread_mutex_lock(&r->lock);
			continue;
		}
		due = r->store ? next_tick : next_open;
		if (r->store && !r->cap_running && next_cap < due)
			due = next_cap;
		wait_until(r, due);
	}
	pthread_mutex_unlock(&r->lock);

	if (r->cap_running)
		end_capture(r);
	pthread_mutex_lock(&r->lock);
	while (r->n_queries > 0)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
	if (r->store && hist_close(r->store, &err) < 0)
		log_error("history %s: sealing at shutdown: %s (recovery keeps what was written)", r->cfg.dir, err.msg);
	r->store = NULL;
	return NULL;
}

/* ---- interface ---- */

int recorder_start(const RecorderConfig *cfg, Recorder **ret, ErrBuf *err)
{
	pthread_condattr_t ca;
	Recorder *r;
	int rc;

	r = calloc(1, sizeof(*r));
	if (!r)
		return errbuf_set(err, -ENOMEM, "out of memory");
	r->cfg = *cfg;
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->sink_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&r->add_failures, 0);
	atomic_init(&r->sink_msg_fresh, false);
	rc = -pthread_create(&r->thread, NULL, recorder_main, r);
	if (rc < 0) {
		pthread_cond_destroy(&r->cond);
		pthread_mutex_destroy(&r->sink_lock);
		pthread_mutex_destroy(&r->lock);
		free(r);
		return errbuf_set(err, rc, "cannot start the recorder thread: %s", strerror(-rc));
	}
	*ret = r;
	return 0;
}

void recorder_free(Recorder *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->sink_lock);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static void copy_msg(char *out, size_t cap, const char *prefix, const char *msg)
{
	int n = snprintf(out, cap, "%s%s", prefix, msg);

	if (n < 0)
		out[0] = '\0'; /* truncation keeps the start, which is fine for a status */
}

void recorder_status(Recorder *r, AgentHistory *ret)
{
	AgentHistory h = {.sample_rate = r->cfg.sample_rate};
	HistStore *store;
	HistStats st;
	ErrBuf err;
	uint64_t drops;

	pthread_mutex_lock(&r->lock);
	store = r->store;
	drops = r->drops_before;
	if (r->cap) {
		CaptureStats cs;

		capture_stats(r->cap, &cs);
		drops += cs.kernel_drops;
	}
	if (!store && r->store_failed)
		copy_msg(h.error, sizeof(h.error), "history: ", r->store_err.msg);
	else if (!store)
		copy_msg(h.error, sizeof(h.error), "starting: opening ", r->cfg.dir);
	else if (r->cap_failed)
		copy_msg(h.error, sizeof(h.error), "capture: ", r->cap_err.msg);
	else if (!r->cap_running)
		copy_msg(h.error, sizeof(h.error), "starting: opening the capture", "");
	else if (r->episode)
		copy_msg(h.error, sizeof(h.error), "", r->episode_err.msg);
	h.recording = h.error[0] == '\0';
	pthread_mutex_unlock(&r->lock);
	/* The store stays until recorder_free(), which the caller does not race. */
	if (store && hist_stats(store, &st, &err) == 0) {
		h.packets = st.packets;
		h.bytes = st.bytes;
		h.segments = st.segments + st.open_segments;
		h.oldest_ns = st.first_ts;
		h.newest_ns = st.last_ts;
		drops += st.dropped;
	}
	h.drops = drops;
	*ret = h;
}

int recorder_query(Recorder *r, const HistQuery *q, int fd, HistQueryResult *ret, ErrBuf *err)
{
	HistStore *store = NULL;
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	if (r->stopping)
		rc = errbuf_set(err, -ESHUTDOWN, "the agent is shutting down");
	else if (r->store)
		store = r->store;
	else if (r->store_failed)
		rc = errbuf_set(err, -ENODATA, "no history: %s", r->store_err.msg);
	else
		rc = errbuf_set(err, -EAGAIN, "no history yet: %s is being opened", r->cfg.dir);
	if (store)
		r->n_queries++; /* recorder_free() waits for it before closing the store */
	pthread_mutex_unlock(&r->lock);
	if (!store)
		return rc;
	rc = hist_query(store, q, fd, ret, err);
	pthread_mutex_lock(&r->lock);
	if (--r->n_queries == 0)
		pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

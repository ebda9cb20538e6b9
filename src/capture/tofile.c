/* SPDX-License-Identifier: MIT */
/*
 * Capture to file: the capture engine's sink is the pcap writer, one PcapBatch
 * per worker (a batch is never shared between threads), flushed in
 * block_done() so that the spans into the ring stay valid exactly as long as
 * the writer needs them and every ring block becomes one write.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "capture/tofile.h"
#include "pcap/writer.h"

struct CapFile {
	CapFileConfig cfg;
	Capture *capture;
	PcapWriter *writer;                      /* set and cleared under wlock */
	pthread_mutex_t wlock;                   /* writer's lifetime against capfile_whole() */
	uint64_t whole;                          /* capfile_whole() once the writer is gone */
	unsigned workers;                        /* batches in use once started */
	PcapBatch *batches[CAPTURE_MAX_WORKERS]; /* one per worker thread */
	uint32_t ifids[CAPTURE_MAX_IFACES];      /* writer interface id per capture interface */
	ErrBuf errs[CAPTURE_MAX_WORKERS];        /* the writer's words for a failed flush */
	bool ran;
};

static int sink_packet(void *ctx, unsigned worker, const CapturePacket *p)
{
	CapFile *cf = ctx;

	return pcapwr_queue(cf->batches[worker], cf->ifids[p->iface], p->ts_ns, p->origlen, p->parts, p->nparts);
}

static int sink_block_done(void *ctx, unsigned worker)
{
	CapFile *cf = ctx;

	return pcapwr_flush(cf->batches[worker], &cf->errs[worker]);
}

int capfile_open(const CapFileConfig *cfg, CapFile **ret, ErrBuf *err)
{
	unsigned workers = cfg->capture.workers ? cfg->capture.workers : 1;
	CapFile *cf;
	int r;

	if (workers > CAPTURE_MAX_WORKERS)
		return errbuf_set(err, -EINVAL, "%u workers: at most %u", workers, CAPTURE_MAX_WORKERS);
	if (cfg->capture.n_ifaces == 0 || !cfg->capture.ifaces)
		return errbuf_set(err, -EINVAL, "no interface to capture on");
	cf = calloc(1, sizeof(*cf));
	if (!cf)
		return errbuf_set(err, -ENOMEM, "out of memory");
	cf->cfg = *cfg;
	cf->workers = workers;
	r = capture_open(&cfg->capture, &cf->capture, err);
	if (r < 0) {
		free(cf);
		return r;
	}
	pthread_mutex_init(&cf->wlock, NULL);
	*ret = cf;
	return 0;
}

uint32_t capfile_linktype(const CapFile *cf, unsigned iface)
{
	return capture_linktype(cf->capture, iface);
}

static void free_batches(CapFile *cf)
{
	for (unsigned i = 0; i < CAPTURE_MAX_WORKERS; i++) {
		pcapwr_batch_free(cf->batches[i]);
		cf->batches[i] = NULL;
	}
}

int capfile_start(CapFile *cf, int fd, ErrBuf *err)
{
	const CaptureConfig *cc = &cf->cfg.capture;
	PcapWriterConfig wcfg = {0};
	PcapWriter *w = NULL;
	int r;

	if (cf->writer)
		return errbuf_set(err, -EALREADY, "capture file already started");
	wcfg.format = cf->cfg.format;
	wcfg.linktype = capture_linktype(cf->capture, 0);
	wcfg.snaplen = cc->snaplen;
	wcfg.ifname = cc->ifaces[0];
	wcfg.direct = cf->cfg.direct;
	r = pcapwr_new(fd, &wcfg, &w, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&cf->wlock);
	cf->writer = w;
	pthread_mutex_unlock(&cf->wlock);
	for (size_t i = 1; i < cc->n_ifaces; i++) {
		r = pcapwr_add_interface(cf->writer, capture_linktype(cf->capture, (unsigned)i), cc->snaplen,
					 cc->ifaces[i], &cf->ifids[i], err);
		if (r < 0)
			goto fail;
	}
	for (unsigned i = 0; i < cf->workers; i++) {
		r = pcapwr_batch_new(cf->writer, &cf->batches[i]);
		if (r < 0) {
			errbuf_set(err, r, "writer batch: %s", strerror(-r));
			goto fail;
		}
	}
	/* The header now: a reader of a pipe can start at once and an
	 * interrupted capture still leaves a valid (empty) file. */
	r = pcapwr_flush(cf->batches[0], err);
	if (r < 0)
		goto fail;
	return 0;

fail:
	free_batches(cf);
	pthread_mutex_lock(&cf->wlock);
	cf->writer = NULL;
	pthread_mutex_unlock(&cf->wlock);
	pcapwr_free(w);
	return r;
}

int capfile_run(CapFile *cf, const volatile sig_atomic_t *stop, StopReason *ret_reason, ErrBuf *err)
{
	CaptureSink sink = {.packet = sink_packet, .block_done = sink_block_done, .ctx = cf};
	StopReason why = STOP_REASON_ERROR;
	int r;

	if (!cf->writer || cf->ran) {
		*ret_reason = STOP_REASON_ERROR;
		return errbuf_set(err, -EALREADY, "capture file not started or already run");
	}
	cf->ran = true;
	r = capture_run(cf->capture, &sink, stop, &why, err);
	if (r < 0) {
		/* The writer's own message says more than the errno the sink returned. */
		for (unsigned i = 0; i < cf->workers; i++)
			if (cf->errs[i].msg[0]) {
				if (err)
					*err = cf->errs[i];
				break;
			}
		why = STOP_REASON_ERROR;
	}
	/* Blocks end with a flush; after an error, what is left is dropped. */
	free_batches(cf);
	*ret_reason = why;
	return r;
}

void capfile_stats(CapFile *cf, CaptureStats *ret)
{
	capture_stats(cf->capture, ret);
}

int capfile_finish(CapFile *cf, bool fsync, uint64_t *ret_size, ErrBuf *err)
{
	PcapWriter *w;
	uint64_t size = 0;
	int r;

	if (!cf->writer)
		return errbuf_set(err, -EINVAL, "capture file not started");
	free_batches(cf);
	/* capfile_whole() reads what the writer had written until the end is known. */
	pthread_mutex_lock(&cf->wlock);
	w = cf->writer;
	cf->whole = pcapwr_whole(w);
	cf->writer = NULL;
	pthread_mutex_unlock(&cf->wlock);
	r = pcapwr_finish_at(w, fsync, &size, err); /* frees w either way */
	if (r < 0)
		return r;
	pthread_mutex_lock(&cf->wlock);
	cf->whole = size;
	pthread_mutex_unlock(&cf->wlock);
	if (ret_size)
		*ret_size = size;
	return 0;
}

uint64_t capfile_whole(CapFile *cf)
{
	uint64_t n;

	pthread_mutex_lock(&cf->wlock);
	n = cf->writer ? pcapwr_whole(cf->writer) : cf->whole;
	pthread_mutex_unlock(&cf->wlock);
	return n;
}

void capfile_free(CapFile *cf)
{
	if (!cf)
		return;
	free_batches(cf);
	pcapwr_free(cf->writer);
	capture_free(cf->capture);
	pthread_mutex_destroy(&cf->wlock);
	free(cf);
}

/* SPDX-License-Identifier: MIT */
/*
 * Capture into rotating files (rotate.h). One worker thread writes through
 * one PcapBatch; before a record is queued, the file's size with that record
 * (known exactly: a classic record is 16 bytes and its data, a pcapng EPB 32
 * and its data padded to 4) is compared with file_size, and a file that
 * would grow past it is finished (what is queued written, fsynced) and handed
 * to ops->close before the next one is opened. Queued spans point into ring
 * memory that stays valid until block_done(), so finishing a file in the
 * middle of a block only writes them earlier.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "capture/rotate.h"
#include "pcap/writer.h"

struct CapRotate {
	CapRotateConfig cfg;
	Capture *capture;
	/* the file being written (capture thread only) */
	PcapWriter *writer;
	PcapBatch *batch;
	int fd;
	uint64_t index;   /* of the file being written; 0 before the first */
	uint64_t size;    /* its bytes with what is queued */
	uint64_t packets; /* its records */
	uint32_t ifids[CAPTURE_MAX_IFACES];
	ErrBuf err; /* the writer's or the ops' words for a failure in the sink */
	atomic_uint_fast64_t files;
	bool ran;
};

int caprot_open(const CapRotateConfig *cfg, CapRotate **ret, ErrBuf *err)
{
	CapRotate *r;
	int rc;

	if (cfg->capture.workers > 1)
		return errbuf_set(err, -EINVAL, "rotating files: one worker, not %u", cfg->capture.workers);
	if (!cfg->ops || !cfg->ops->open || !cfg->ops->close)
		return errbuf_set(err, -EINVAL, "rotating files: no file operations");
	if (cfg->capture.n_ifaces == 0 || !cfg->capture.ifaces)
		return errbuf_set(err, -EINVAL, "no interface to capture on");
	r = calloc(1, sizeof(*r));
	if (!r)
		return errbuf_set(err, -ENOMEM, "out of memory");
	r->cfg = *cfg;
	r->fd = -1;
	rc = capture_open(&cfg->capture, &r->capture, err);
	if (rc < 0) {
		free(r);
		return rc;
	}
	*ret = r;
	return 0;
}

/* Opens file index + 1 with its header written. */
static int start_file(CapRotate *r, ErrBuf *err)
{
	const CaptureConfig *cc = &r->cfg.capture;
	PcapWriterConfig wcfg = {0};
	uint64_t index = r->index + 1;
	int fd = -1, rc;

	rc = r->cfg.ops->open(r->cfg.ctx, index, &fd, err);
	if (rc < 0)
		return rc;
	r->fd = fd;
	r->index = index;
	r->packets = 0;
	atomic_fetch_add(&r->files, 1);
	wcfg.format = r->cfg.format;
	wcfg.linktype = capture_linktype(r->capture, 0);
	wcfg.snaplen = cc->snaplen;
	wcfg.ifname = cc->ifaces[0];
	wcfg.direct = r->cfg.direct;
	rc = pcapwr_new(fd, &wcfg, &r->writer, err);
	for (size_t i = 1; rc == 0 && i < cc->n_ifaces; i++)
		rc = pcapwr_add_interface(r->writer, capture_linktype(r->capture, (unsigned)i), cc->snaplen,
					  cc->ifaces[i], &r->ifids[i], err);
	if (rc == 0 && (rc = pcapwr_batch_new(r->writer, &r->batch)) < 0)
		errbuf_set(err, rc, "writer batch: %s", strerror(-rc));
	/* The header now: the file is valid from its first moment. */
	if (rc == 0)
		rc = pcapwr_flush(r->batch, err);
	if (rc == 0)
		r->size = pcapwr_offset(r->writer);
	return rc;
}

/* Finishes the file being written (complete: what is queued written, fsync)
 * and hands it to ops->close. */
static int finish_file(CapRotate *r, bool complete, ErrBuf *err)
{
	CapRotateFile f = {.index = r->index, .packets = r->packets, .complete = complete};
	ErrBuf local = {{0}};
	int rc = 0, rc2;

	if (r->fd < 0)
		return 0;
	if (complete && r->batch)
		rc = pcapwr_flush(r->batch, err);
	pcapwr_batch_free(r->batch);
	r->batch = NULL;
	if (r->writer && complete && rc == 0) {
		rc = pcapwr_finish_at(r->writer, true, &f.size, err);
	} else if (r->writer) {
		f.size = pcapwr_offset(r->writer);
		pcapwr_free(r->writer);
	}
	r->writer = NULL;
	f.complete = complete && rc == 0;
	/* The file goes back whatever happened: the caller closes it. */
	rc2 = r->cfg.ops->close(r->cfg.ctx, r->fd, &f, rc < 0 ? &local : err);
	r->fd = -1;
	return rc < 0 ? rc : rc2;
}

static uint64_t record_size(const CapRotate *r, uint32_t caplen)
{
	if (r->cfg.format == PCAP_FORMAT_PCAPNG)
		return 32u + ((caplen + 3u) & ~3u);
	return 16u + caplen;
}

static int sink_packet(void *ctx, unsigned worker, const CapturePacket *p)
{
	CapRotate *r = ctx;
	uint64_t rec = record_size(r, p->caplen);
	int rc;

	(void)worker;
	if (!r->batch)
		return -EIO; /* a rotation failed: the capture is ending */
	if (r->cfg.file_size && r->packets > 0 && r->size + rec > r->cfg.file_size) {
		rc = finish_file(r, true, &r->err);
		if (rc == 0)
			rc = start_file(r, &r->err);
		if (rc < 0)
			return rc;
	}
	rc = pcapwr_queue(r->batch, r->ifids[p->iface], p->ts_ns, p->origlen, p->parts, p->nparts);
	if (rc < 0)
		return rc;
	r->size += rec;
	r->packets++;
	return 0;
}

static int sink_block_done(void *ctx, unsigned worker)
{
	CapRotate *r = ctx;

	(void)worker;
	return r->batch ? pcapwr_flush(r->batch, &r->err) : -EIO;
}

int caprot_run(CapRotate *r, const volatile sig_atomic_t *stop, StopReason *ret_reason, ErrBuf *err)
{
	CaptureSink sink = {.packet = sink_packet, .block_done = sink_block_done, .ctx = r};
	StopReason why = STOP_REASON_ERROR;
	ErrBuf later = {{0}}; /* a failure while cleaning up after the first one */
	int rc;

	*ret_reason = STOP_REASON_ERROR;
	if (r->ran)
		return errbuf_set(err, -EALREADY, "rotating capture already run");
	r->ran = true;
	rc = start_file(r, err);
	if (rc < 0) {
		finish_file(r, false, &later);
		return rc;
	}
	rc = capture_run(r->capture, &sink, stop, &why, err);
	if (rc < 0) {
		/* The sink's own words say more than the errno it returned. */
		if (r->err.msg[0] && err)
			*err = r->err;
		finish_file(r, false, &later);
		return rc;
	}
	rc = finish_file(r, true, err);
	if (rc < 0)
		return rc;
	*ret_reason = why;
	return 0;
}

bool caprot_sink_failed(const CapRotate *r)
{
	return r->err.msg[0] != '\0';
}

void caprot_stats(CapRotate *r, CaptureStats *ret, uint64_t *ret_files)
{
	capture_stats(r->capture, ret);
	if (ret_files)
		*ret_files = atomic_load(&r->files);
}

void caprot_free(CapRotate *r)
{
	if (!r)
		return;
	pcapwr_batch_free(r->batch);
	pcapwr_free(r->writer);
	capture_free(r->capture);
	free(r);
}

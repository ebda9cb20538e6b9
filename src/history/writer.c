/* SPDX-License-Identifier: MIT */
/*
 * Recording: packets into open segments, blocks written whole, segments
 * sealed and published.
 *
 * Open segment (one per link type, at most HIST_MAX_OPEN):
 *
 *   open-<seq>.pcap.tmp   created O_EXCL, pcap header written at once;
 *                         records gather in memory into a block (up to
 *                         block_packets / block_bytes) and each full block is
 *                         written in one pwrite at the end of the last whole
 *                         one, then entered into the segment's block list
 *                         (visible to queries from then on). A partial block
 *                         is written by hist_tick() once block_flush_ns old.
 *
 * A failed block write (ENOSPC, EIO) cuts the file back to the end of the
 * last whole block (ftruncate), drops the block's packets and suspends
 * recording; if even the cut fails, the open segment is abandoned (removed
 * from the catalogue, its file unlinked). While suspended, hist_add() drops
 * packets and returns the error; hist_tick() clears the suspension every
 * HIST_RETRY_NS, after retention had its chance to free space, and the next
 * write tells whether space is back.
 *
 * Sealing (size reached in hist_add(), age in hist_tick(), or hist_seal()):
 * the last partial block is written, the segment leaves its open slot (new
 * packets start a new segment) and is published in SealStage order:
 *
 *   fsync(data) -> write + fsync <final>.idx.tmp -> rename data to
 *   seg-<seq>-<first>-<last>.pcap -> fsync(dir) -> rename index to .idx ->
 *   fsync(dir)
 *
 * A failed step suspends recording and is retried from that step; a failed
 * fsync of the data is not retried (after a failed fsync Linux may have
 * dropped the dirty pages, and a second fsync would report success): the
 * segment is abandoned. A crash at any point leaves either temporaries
 * (removed by recovery: the segment was not sealed) or a published data file
 * with or without its index (recovery rebuilds a missing index).
 */
#include "history/hist-int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history/histseg.h"

static int seg_path(HistStore *s, const HistSeg *g, char *out, ErrBuf *err)
{
	return hist_path(s, g->name, out, PATH_MAX, err);
}

/* Removes g from the catalogue and its (unpublished) file from the disk.
 * Queries that hold it keep reading what they copied. */
static void abandon(HistStore *s, HistSeg *g)
{
	char path[PATH_MAX];

	if (seg_path(s, g, path, NULL) == 0)
		s->io->unlink(s->io, path);
	pthread_mutex_lock(&s->lock);
	s->dropped += g->info.packets;
	hist_catalog_remove(s, g);
	pthread_mutex_unlock(&s->lock);
}

static void open_reset_block(HistOpen *o)
{
	histseg_block_start(&o->cur, o->size);
	o->buf_len = 0;
	o->cur_wire = 0;
}

static void open_clear(HistOpen *o)
{
	free(o->buf);
	*o = (HistOpen){0};
}

/* Suspends recording with "<what>: <strerror>" as the reason. */
static int suspend_with(HistStore *s, int code, ErrBuf *err, const char *fmt, ...) PCAPD_PRINTF(4, 5);
static int suspend_with(HistStore *s, int code, ErrBuf *err, const char *fmt, ...)
{
	ErrBuf why;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(why.msg, sizeof(why.msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		why.msg[0] = '\0';
	else if ((size_t)n < sizeof(why.msg))
		snprintf(why.msg + n, sizeof(why.msg) - (size_t)n, ": %s", strerror(-code));
	if (err)
		*err = why;
	return hist_suspend(s, code, &why);
}

/* Writes o's current block and enters it in the segment's block list. */
static int flush_block(HistStore *s, HistOpen *o, ErrBuf *err)
{
	HistSeg *g = o->seg;
	char path[PATH_MAX];
	uint64_t bytes;
	int r, t;

	if (o->cur.packets == 0)
		return 0;
	r = hist_write_all_at(s->io, g->fd, o->buf, o->buf_len, o->size);
	if (r == 0) {
		pthread_mutex_lock(&s->lock);
		if (g->n_blocks == g->cap_blocks) {
			size_t nc = g->cap_blocks ? g->cap_blocks * 2 : 64;
			HistBlock *nv = realloc(g->blocks, nc * sizeof(*nv));

			if (!nv)
				r = -ENOMEM;
			else {
				g->blocks = nv;
				g->cap_blocks = nc;
			}
		}
		if (r == 0) {
			g->blocks[g->n_blocks++] = o->cur;
			bytes = o->cur.length - (uint64_t)o->cur.packets * HISTFMT_REC_HDR;
			if (g->info.packets == 0 || o->cur.min_ts < g->info.first_ts)
				g->info.first_ts = o->cur.min_ts;
			if (o->cur.max_ts > g->info.last_ts)
				g->info.last_ts = o->cur.max_ts;
			g->info.packets += o->cur.packets;
			g->info.bytes += bytes;
			g->info.wire_bytes += o->cur_wire;
			g->info.n_blocks = (uint32_t)g->n_blocks;
			g->info.data_size = o->size + o->buf_len;
			g->first_ts = g->info.first_ts;
			g->last_ts = g->info.last_ts;
			g->disk_bytes = g->info.data_size;
		}
		pthread_mutex_unlock(&s->lock);
		if (r == 0) {
			o->size += o->buf_len;
			open_reset_block(o);
			return 0;
		}
	}
	/* The block is lost: cut the file back to its last whole block. */
	seg_path(s, g, path, NULL);
	t = s->io->ftruncate(s->io, g->fd, (off_t)o->size);
	pthread_mutex_lock(&s->lock);
	s->dropped += o->cur.packets;
	pthread_mutex_unlock(&s->lock);
	open_reset_block(o);
	if (t < 0) {
		abandon(s, g);
		open_clear(o);
	}
	return suspend_with(s, r, err, "%s: block write", path);
}

static int open_segment(HistStore *s, uint32_t linktype, uint64_t ts, HistOpen **ret, ErrBuf *err);

static int run_seal(HistStore *s, HistSeal *j, ErrBuf *err);

static void pending_remove(HistStore *s, HistSeal *j)
{
	size_t i = (size_t)(j - s->pending);

	memmove(&s->pending[i], &s->pending[i + 1], (s->n_pending - i - 1) * sizeof(*s->pending));
	s->n_pending--;
}

/* At most this many sealed segments wait for their publication (fsyncs,
 * index, renames) before hist_add() publishes them itself. */
#define SEAL_BACKLOG 2u

/* Moves an open segment to publication. With now false (the per-packet path)
 * only queues it: hist_tick() publishes it from its own thread, so a capture
 * thread never waits for a 64 MiB fsync while its ring fills; only a backlog
 * (no one ticking, e.g. an import) is published at once. */
static int seal_open(HistStore *s, HistOpen *o, bool now, ErrBuf *err)
{
	HistSeal *j;
	HistSeg *g;
	int r;

	r = flush_block(s, o, err);
	if (r < 0 || !o->seg)
		return r;
	g = o->seg;
	if (g->info.packets == 0) {
		abandon(s, g);
		open_clear(o);
		return 0;
	}
	if (s->n_pending == s->cap_pending) {
		size_t nc = s->cap_pending ? s->cap_pending * 2 : 4;
		HistSeal *nv = realloc(s->pending, nc * sizeof(*nv));

		if (!nv)
			return errbuf_set(err, -ENOMEM, "out of memory sealing %s", g->name);
		s->pending = nv;
		s->cap_pending = nc;
	}
	j = &s->pending[s->n_pending++];
	*j = (HistSeal){.seg = g, .stage = SEAL_SYNC_DATA};
	histfmt_name(g->seq, g->info.first_ts, g->info.last_ts, false, j->data_name);
	histfmt_name(g->seq, g->info.first_ts, g->info.last_ts, true, j->index_name);
	open_clear(o);
	if (!now && s->n_pending <= SEAL_BACKLOG)
		return 0;
	return run_seal(s, j, err);
}

static int make_search_arrays(HistSeg *g)
{
	uint64_t *pmax = NULL, *smin = NULL;
	size_t n = g->n_blocks;

	if (n > 0) {
		pmax = malloc(n * sizeof(*pmax));
		smin = malloc(n * sizeof(*smin));
		if (!pmax || !smin) {
			free(pmax);
			free(smin);
			return -ENOMEM;
		}
		for (size_t i = 0; i < n; i++)
			pmax[i] = i == 0 || g->blocks[i].max_ts > pmax[i - 1] ? g->blocks[i].max_ts : pmax[i - 1];
		for (size_t i = n; i-- > 0;)
			smin[i] = i == n - 1 || g->blocks[i].min_ts < smin[i + 1] ? g->blocks[i].min_ts : smin[i + 1];
	}
	g->pmax = pmax;
	g->smin = smin;
	return 0;
}

static int run_seal_stages(HistStore *s, HistSeal *j, ErrBuf *err);

static int run_seal(HistStore *s, HistSeal *j, ErrBuf *err)
{
	ErrBuf e = {{0}};
	int r = run_seal_stages(s, j, &e);

	if (r < 0 && err)
		*err = e;
	return r;
}

/* err is never NULL here. */
static int run_seal_stages(HistStore *s, HistSeal *j, ErrBuf *err)
{
	HistSeg *g = j->seg;
	char from[PATH_MAX], to[PATH_MAX], tmp[HISTFMT_NAME_MAX + 4];
	uint8_t *buf;
	size_t len;
	int r = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", j->index_name); /* sized to fit */
	len = histfmt_index_size(g->n_blocks);
	while (j->stage != SEAL_DONE) {
		switch (j->stage) {
		case SEAL_SYNC_DATA:
			r = s->io->fsync(s->io, g->fd);
			if (r < 0) {
				seg_path(s, g, from, NULL);
				suspend_with(s, r, err, "%s: fsync (segment abandoned)", from);
				abandon(s, g);
				pending_remove(s, j);
				return r;
			}
			break;
		case SEAL_WRITE_INDEX:
			buf = malloc(len);
			if (!buf)
				return errbuf_set(err, -ENOMEM, "out of memory for the index of %s", j->data_name);
			/* The blocks of a sealing segment no longer change. */
			histfmt_index_encode(&g->info, g->blocks, g->n_blocks, buf);
			r = hist_write_file(s, tmp, buf, len, err);
			free(buf);
			if (r < 0)
				return hist_suspend(s, r, err);
			break;
		case SEAL_RENAME_DATA:
		case SEAL_RENAME_INDEX:
			if (j->stage == SEAL_RENAME_DATA)
				r = seg_path(s, g, from, err);
			else
				r = hist_path(s, tmp, from, sizeof(from), err);
			if (r == 0)
				r = hist_path(s, j->stage == SEAL_RENAME_DATA ? j->data_name : j->index_name, to,
					      sizeof(to), err);
			if (r < 0)
				return r;
			r = s->io->rename(s->io, from, to);
			if (r < 0) {
				ErrBuf why;

				errbuf_set(&why, r, "rename %s to %s: %s", from, to, strerror(-r));
				if (err)
					*err = why;
				return hist_suspend(s, r, &why);
			}
			if (j->stage == SEAL_RENAME_DATA) {
				pthread_mutex_lock(&s->lock);
				memcpy(g->name, j->data_name, sizeof(g->name));
				pthread_mutex_unlock(&s->lock);
			}
			break;
		case SEAL_SYNC_DIR1:
		case SEAL_SYNC_DIR2:
			r = hist_fsync_dir(s, err);
			if (r < 0)
				return hist_suspend(s, r, err);
			break;
		case SEAL_DONE:
			break;
		}
		j->stage++;
	}
	pthread_mutex_lock(&s->lock);
	if (make_search_arrays(g) == 0) {
		g->sealed = true;
		g->loaded = true;
		g->disk_bytes = g->info.data_size + len;
	} else {
		r = errbuf_set(err, -ENOMEM, "out of memory sealing %s", j->data_name);
	}
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		return r; /* stays pending; retried */
	pending_remove(s, j);
	return 0;
}

static HistOpen *find_open(HistStore *s, uint32_t linktype)
{
	for (unsigned i = 0; i < HIST_MAX_OPEN; i++)
		if (s->open[i].seg && s->open[i].seg->linktype == linktype)
			return &s->open[i];
	return NULL;
}

static int open_segment(HistStore *s, uint32_t linktype, uint64_t ts, HistOpen **ret, ErrBuf *err)
{
	uint8_t hdr[HISTFMT_PCAP_HDR];
	char path[PATH_MAX];
	HistOpen *o = NULL;
	HistSeg *g;
	int fd, r;

	for (unsigned i = 0; i < HIST_MAX_OPEN && !o; i++)
		if (!s->open[i].seg)
			o = &s->open[i];
	if (!o) {
		/* A fifth link type: the segment that started first makes room. */
		o = &s->open[0];
		for (unsigned i = 1; i < HIST_MAX_OPEN; i++)
			if (s->open[i].first_ts < o->first_ts)
				o = &s->open[i];
		r = seal_open(s, o, false, err);
		if (r < 0)
			return r;
		if (o->seg)
			return errbuf_set(err, -EAGAIN, "no free open segment");
	}
	g = hist_seg_new(s->next_seq);
	if (!g)
		return errbuf_set(err, -ENOMEM, "out of memory");
	histfmt_open_name(g->seq, g->name);
	r = seg_path(s, g, path, err);
	if (r < 0)
		goto fail;
	fd = s->io->open(s->io, path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0) {
		r = suspend_with(s, fd, err, "%s: cannot create", path);
		goto fail;
	}
	s->next_seq++; /* used, even if the header write fails below */
	histseg_header_encode(linktype, s->cfg.snaplen, hdr);
	r = hist_write_all_at(s->io, fd, hdr, sizeof(hdr), 0);
	if (r < 0) {
		s->io->close(s->io, fd);
		s->io->unlink(s->io, path);
		r = suspend_with(s, r, err, "%s: write", path);
		goto fail;
	}
	g->fd = fd;
	g->linktype = linktype;
	g->snaplen = s->cfg.snaplen;
	g->loaded = true;
	g->info.seq = g->seq;
	g->info.linktype = linktype;
	g->info.snaplen = s->cfg.snaplen;
	g->info.data_size = HISTFMT_PCAP_HDR;
	g->disk_bytes = HISTFMT_PCAP_HDR;
	pthread_mutex_lock(&s->lock);
	r = hist_catalog_insert(s, g);
	pthread_mutex_unlock(&s->lock);
	if (r < 0) {
		s->io->unlink(s->io, path);
		r = errbuf_set(err, r, "out of memory");
		goto fail;
	}
	*o = (HistOpen){.seg = g, .size = HISTFMT_PCAP_HDR, .first_ts = ts};
	open_reset_block(o);
	*ret = o;
	return 0;
fail:
	hist_seg_unref(s, g);
	return r;
}

static int reserve(HistOpen *o, size_t need)
{
	if (o->buf_len + need > o->buf_cap) {
		size_t nc = o->buf_cap ? o->buf_cap : 4096;
		uint8_t *nb;

		while (nc < o->buf_len + need)
			nc *= 2;
		nb = realloc(o->buf, nc);
		if (!nb)
			return -ENOMEM;
		o->buf = nb;
		o->buf_cap = nc;
	}
	return 0;
}

static int refuse_suspended(HistStore *s, ErrBuf *err)
{
	int r;

	pthread_mutex_lock(&s->lock);
	s->dropped++;
	r = s->error;
	if (err)
		*err = s->error_msg;
	pthread_mutex_unlock(&s->lock);
	return r;
}

int hist_add(HistStore *s, const HistPacket *p, ErrBuf *err)
{
	uint64_t total = 0;
	uint32_t caplen;
	uint8_t *rec;
	HistOpen *o;
	int r = 0;

	if (s->cfg.read_only)
		return errbuf_set(err, -EROFS, "%s: opened read-only", s->dir);
	for (unsigned i = 0; i < p->nparts; i++)
		total += p->parts[i].iov_len;
	caplen = total < s->cfg.snaplen ? (uint32_t)total : s->cfg.snaplen;
	pthread_mutex_lock(&s->wlock);
	if (s->suspended) {
		r = refuse_suspended(s, err);
		goto out;
	}
	o = find_open(s, p->linktype);
	if (!o) {
		r = open_segment(s, p->linktype, p->ts_ns, &o, err);
		if (r < 0)
			goto out;
	}
	if (o->cur.packets > 0 && o->cur.length + HISTFMT_REC_HDR + caplen > s->cfg.block_bytes) {
		r = flush_block(s, o, err);
		if (r < 0 || !o->seg)
			goto out;
	}
	r = reserve(o, HISTFMT_REC_HDR + caplen);
	if (r < 0) {
		r = errbuf_set(err, r, "out of memory");
		goto out;
	}
	rec = o->buf + o->buf_len;
	histseg_record_header(p->ts_ns, caplen, p->origlen, rec);
	for (unsigned i = 0, left = caplen, at = HISTFMT_REC_HDR; i < p->nparts && left > 0; i++) {
		uint32_t k = p->parts[i].iov_len < left ? (uint32_t)p->parts[i].iov_len : left;

		memcpy(rec + at, p->parts[i].iov_base, k);
		at += k;
		left -= k;
	}
	o->buf_len += HISTFMT_REC_HDR + caplen;
	if (o->cur.packets == 0)
		o->cur_first_ts = p->ts_ns;
	histseg_block_add(&o->cur, p->linktype, p->ts_ns, rec + HISTFMT_REC_HDR, caplen);
	o->cur_wire += p->origlen;
	if (o->cur.packets >= s->cfg.block_packets) {
		r = flush_block(s, o, err);
		if (r < 0 || !o->seg)
			goto out;
	}
	if (o->size + o->buf_len >= s->cfg.segment_bytes)
		r = seal_open(s, o, false, err);
out:
	pthread_mutex_unlock(&s->wlock);
	return r;
}

/* Runs publications that did not finish, oldest first; stops at a failure. */
static int run_pending(HistStore *s, ErrBuf *err)
{
	while (s->n_pending > 0) {
		int r = run_seal(s, &s->pending[0], err);

		if (r < 0)
			return r;
	}
	return 0;
}

static bool older_than(uint64_t now, uint64_t then, uint64_t age)
{
	if (age == HIST_NO_LIMIT)
		return false;
	if (now >= then)
		return now - then >= age;
	return then - now > age; /* the clock went back a long way: do not wait for it */
}

int hist_seal_all(HistStore *s, ErrBuf *err)
{
	int r = 0;

	for (unsigned i = 0; i < HIST_MAX_OPEN; i++) {
		if (s->open[i].seg) {
			int k = seal_open(s, &s->open[i], true, err);

			if (k < 0 && r == 0)
				r = k;
		}
	}
	if (r == 0)
		r = run_pending(s, err);
	return r;
}

int hist_seal(HistStore *s, ErrBuf *err)
{
	int r;

	if (s->cfg.read_only)
		return 0;
	pthread_mutex_lock(&s->wlock);
	r = hist_seal_all(s, err);
	pthread_mutex_unlock(&s->wlock);
	return r;
}

int hist_tick(HistStore *s, uint64_t now_ns, ErrBuf *err)
{
	ErrBuf rerr;
	int r = 0, k;

	if (s->cfg.read_only)
		return 0;
	pthread_mutex_lock(&s->wlock);
	s->now = now_ns;
	if (s->suspended && now_ns >= s->retry_at) {
		/* Retention first: it may be what frees the space. */
		hist_retention(s, NULL);
		pthread_mutex_lock(&s->lock);
		s->suspended = false;
		s->error = 0;
		pthread_mutex_unlock(&s->lock);
	}
	if (!s->suspended)
		r = run_pending(s, err);
	for (unsigned i = 0; i < HIST_MAX_OPEN && !s->suspended; i++) {
		HistOpen *o = &s->open[i];

		if (!o->seg)
			continue;
		if (older_than(now_ns, o->first_ts, s->cfg.segment_age_ns))
			k = seal_open(s, o, true, err);
		else if (o->cur.packets > 0 && older_than(now_ns, o->cur_first_ts, s->cfg.block_flush_ns))
			k = flush_block(s, o, err);
		else
			k = 0;
		if (k < 0 && r == 0)
			r = k;
	}
	k = hist_retention(s, &rerr);
	if (k < 0 && r == 0) {
		r = k;
		if (err)
			*err = rerr;
	}
	pthread_mutex_unlock(&s->wlock);
	return r;
}

void hist_writer_free(HistStore *s)
{
	for (unsigned i = 0; i < HIST_MAX_OPEN; i++) {
		if (s->open[i].seg)
			abandon(s, s->open[i].seg);
		open_clear(&s->open[i]);
	}
	/* Unfinished publications stay as they are on disk: recovery finishes
	 * them (a published data file gets its index) or removes them. */
	free(s->pending);
	s->pending = NULL;
	s->n_pending = 0;
}

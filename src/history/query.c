/* SPDX-License-Identifier: MIT */
/*
 * Queries: the newest N packets in [from, to] that match a filter.
 *
 *   1. references to the segments whose time range meets the window (under
 *      the catalogue lock; read-only stores load an index on first use);
 *   2. per segment, the blocks whose time range meets the window: a binary
 *      search over the prefix maximum of the blocks' max_ts and the suffix
 *      minimum of their min_ts (timestamps are nearly, not strictly, in file
 *      order), then each block's summary against the filter's clauses
 *      (histsum_may_match): blocks that cannot match are not read;
 *   3. candidate blocks newest first (by max_ts), their records tested with
 *      filter_match() (the compiled program, as the kernel runs it) and kept
 *      in a min-heap of the newest N by (timestamp, segment, offset); once the
 *      heap is full, a block whose max_ts is older than the heap's oldest
 *      entry ends the scan: nothing in it or after it can enter;
 *   4. the kept packets in time order, written to the caller's descriptor by
 *      the pcap writer straight from the mapped segment files.
 *
 * Data files are untrusted here too: a record that does not fit its block or
 * the segment's snaplen ends that block's scan.
 */
#include "history/hist-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "history/histseg.h"
#include "history/histsum.h"
#include "pcap/writer.h"

typedef struct QProg {
	uint32_t linktype;
	CbpfProgram prog;
	int rc; /* filter_compile() result */
} QProg;

typedef struct QSeg {
	HistSeg *g;  /* referenced */
	bool sealed; /* when referenced: its blocks no longer change */
	uint32_t linktype, snaplen;
	const CbpfProgram *prog; /* NULL: no filter */
	uint8_t *map;
	size_t map_len; /* bytes the candidate blocks need */
} QSeg;

typedef struct QBlock {
	uint32_t seg;
	uint32_t length;
	uint64_t offset;
	uint64_t max_ts;
	uint64_t seq;
} QBlock;

typedef struct QHit {
	uint64_t ts, seq, off;
	const uint8_t *data;
	uint32_t caplen, origlen;
	uint32_t seg;
} QHit;

typedef struct Query {
	HistStore *s;
	const HistQuery *q;
	HistQueryResult res;
	HistProbe probe;
	bool filtered;
	QProg progs[HIST_MAX_OPEN * 2];
	unsigned n_progs;
	QSeg *segs;
	size_t n_segs;
	QBlock *blocks;
	size_t n_blocks, cap_blocks;
	QHit *heap;
	size_t n_heap, cap_heap;
	uint32_t first_linktype; /* of the first segment read: an empty answer's */
} Query;

/* ------------------------------------------------------- helpers */

static bool hit_less(const QHit *a, const QHit *b)
{
	if (a->ts != b->ts)
		return a->ts < b->ts;
	if (a->seq != b->seq)
		return a->seq < b->seq;
	return a->off < b->off;
}

static void heap_down(QHit *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		QHit t;

		if (l < n && hit_less(&h[l], &h[m]))
			m = l;
		if (l + 1 < n && hit_less(&h[l + 1], &h[m]))
			m = l + 1;
		if (m == i)
			return;
		t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static int heap_offer(Query *qq, const QHit *hit)
{
	QHit *h = qq->heap;
	size_t i;

	if (qq->n_heap == qq->q->max_packets) {
		qq->res.limited = true;
		if (!hit_less(&h[0], hit))
			return 0;
		h[0] = *hit;
		heap_down(h, qq->n_heap, 0);
		return 0;
	}
	if (qq->n_heap == qq->cap_heap) {
		size_t nc = qq->cap_heap ? qq->cap_heap * 2 : 1024;
		QHit *nh;

		if (nc > qq->q->max_packets)
			nc = (size_t)qq->q->max_packets;
		nh = realloc(qq->heap, nc * sizeof(*nh));
		if (!nh)
			return -ENOMEM;
		qq->heap = h = nh;
		qq->cap_heap = nc;
	}
	i = qq->n_heap++;
	h[i] = *hit;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		QHit t;

		if (!hit_less(&h[i], &h[parent]))
			break;
		t = h[i];
		h[i] = h[parent];
		h[parent] = t;
		i = parent;
	}
	return 0;
}

static int cmp_hit(const void *a, const void *b)
{
	const QHit *x = a, *y = b;

	return hit_less(x, y) ? -1 : hit_less(y, x) ? 1 : 0;
}

static int cmp_block_newest(const void *a, const void *b)
{
	const QBlock *x = a, *y = b;

	if (x->max_ts != y->max_ts)
		return x->max_ts > y->max_ts ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq > y->seq ? -1 : 1;
	return x->offset > y->offset ? -1 : x->offset < y->offset;
}

static int push_block(Query *qq, uint32_t seg, const HistBlock *b, uint64_t seq)
{
	if (qq->n_blocks == qq->cap_blocks) {
		size_t nc = qq->cap_blocks ? qq->cap_blocks * 2 : 256;
		QBlock *nv = realloc(qq->blocks, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		qq->blocks = nv;
		qq->cap_blocks = nc;
	}
	qq->blocks[qq->n_blocks++] =
		(QBlock){.seg = seg, .length = b->length, .offset = b->offset, .max_ts = b->max_ts, .seq = seq};
	return 0;
}

static bool overlaps(uint64_t lo, uint64_t hi, const HistQuery *q)
{
	return hi >= q->from_ns && lo <= q->to_ns;
}

/* The program for a link type, compiled once per query. */
static int program_for(Query *qq, uint32_t linktype, const CbpfProgram **ret, ErrBuf *err)
{
	QProg *p;

	for (unsigned i = 0; i < qq->n_progs; i++) {
		if (qq->progs[i].linktype == linktype) {
			*ret = qq->progs[i].rc == 0 ? &qq->progs[i].prog : NULL;
			return qq->progs[i].rc;
		}
	}
	if (qq->n_progs == ARRAY_SIZE(qq->progs))
		return errbuf_set(err, -E2BIG, "query: too many link types");
	p = &qq->progs[qq->n_progs++];
	p->linktype = linktype;
	p->rc = filter_compile(qq->q->filter, linktype, PCAP_MAX_SNAPLEN, &p->prog, err);
	*ret = p->rc == 0 ? &p->prog : NULL;
	return p->rc;
}

/* ------------------------------------------------------- steps */

static int take_segments(Query *qq, ErrBuf *err)
{
	HistStore *s = qq->s;

	pthread_mutex_lock(&s->lock);
	qq->segs = calloc(s->n_segs + 1, sizeof(*qq->segs));
	if (!qq->segs) {
		pthread_mutex_unlock(&s->lock);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < s->n_segs; i++) {
		HistSeg *g = s->segs[i];
		bool meets;

		if (g->unreadable)
			continue;
		if (g->loaded)
			meets = g->info.packets > 0 && overlaps(g->info.first_ts, g->info.last_ts, qq->q);
		else
			meets = overlaps(g->first_ts, g->last_ts, qq->q); /* from its name */
		if (!meets)
			continue;
		g->refs++;
		qq->segs[qq->n_segs].sealed = g->sealed;
		qq->segs[qq->n_segs++].g = g;
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* First block whose prefix max_ts reaches from, one past the last whose
 * suffix min_ts is not after to. */
static void block_range(const HistSeg *g, const HistQuery *q, size_t *ret_lo, size_t *ret_hi)
{
	size_t lo = 0, hi = g->n_blocks, a, b;

	if (!g->pmax || !g->smin) {
		*ret_lo = 0;
		*ret_hi = g->n_blocks;
		return;
	}
	a = lo;
	b = hi;
	while (a < b) {
		size_t m = a + (b - a) / 2;

		if (g->pmax[m] < q->from_ns)
			a = m + 1;
		else
			b = m;
	}
	lo = a;
	a = lo;
	b = hi;
	while (a < b) {
		size_t m = a + (b - a) / 2;

		if (g->smin[m] <= q->to_ns)
			a = m + 1;
		else
			b = m;
	}
	*ret_lo = lo;
	*ret_hi = a;
}

/* Candidate blocks of segment i. A sealed segment's blocks are fixed (no
 * lock); an open one's are read under the lock. */
static int collect_blocks(Query *qq, uint32_t i, ErrBuf *err)
{
	QSeg *qs = &qq->segs[i];
	HistSeg *g = qs->g;
	size_t lo, hi;
	uint64_t end = 0;
	bool locked = !qs->sealed;
	int r = 0;

	if (locked)
		pthread_mutex_lock(&qq->s->lock);
	qs->linktype = g->linktype;
	qs->snaplen = g->snaplen;
	block_range(g, qq->q, &lo, &hi);
	for (size_t k = lo; k < hi && r == 0; k++) {
		const HistBlock *b = &g->blocks[k];

		if (!overlaps(b->min_ts, b->max_ts, qq->q))
			continue;
		qq->res.blocks++;
		if (!histsum_may_match(&qq->probe, b->flags, b->summary)) {
			qq->res.blocks_skipped++;
			continue;
		}
		r = push_block(qq, i, b, g->seq);
		if (b->offset + b->length > end)
			end = b->offset + b->length;
	}
	if (locked)
		pthread_mutex_unlock(&qq->s->lock);
	if (r < 0)
		return errbuf_set(err, r, "out of memory");
	qs->map_len = (size_t)end;
	if (qq->first_linktype == UINT32_MAX)
		qq->first_linktype = qs->linktype;
	return 0;
}

static int map_segment(Query *qq, QSeg *qs, ErrBuf *err)
{
	void *m;

	if (qs->map_len == 0)
		return 0;
	m = mmap(NULL, qs->map_len, PROT_READ, MAP_SHARED, qs->g->fd, 0);
	if (m == MAP_FAILED)
		return errbuf_errno(err, "%s/%s: mmap", qq->s->dir, qs->g->name);
	qs->map = m;
	return 0;
}

static int scan_block(Query *qq, const QBlock *b)
{
	const QSeg *qs = &qq->segs[b->seg];
	const uint8_t *p = qs->map + b->offset;
	size_t left = b->length;

	qq->res.blocks_read++;
	while (left > 0) {
		HistRec rec;
		size_t used;
		QHit hit;
		int r = histseg_record(p, left, qs->snaplen, &rec, &used);

		if (r <= 0)
			break; /* a damaged block: what follows in it is not read */
		if (rec.ts_ns >= qq->q->from_ns && rec.ts_ns <= qq->q->to_ns &&
		    (!qs->prog || filter_match(qs->prog, qs->linktype, rec.data, rec.caplen, rec.origlen) != 0)) {
			hit = (QHit){.ts = rec.ts_ns,
				     .seq = b->seq,
				     .off = (uint64_t)(p - qs->map),
				     .data = rec.data,
				     .caplen = rec.caplen,
				     .origlen = rec.origlen,
				     .seg = b->seg};
			r = heap_offer(qq, &hit);
			if (r < 0)
				return r;
		}
		p += used;
		left -= used;
	}
	return 0;
}

static int write_answer(Query *qq, int fd, ErrBuf *err)
{
	PcapWriterConfig wc = {0};
	PcapWriter *w = NULL;
	PcapBatch *batch = NULL;
	uint32_t ifids[HIST_MAX_OPEN * 2], lts[HIST_MAX_OPEN * 2], n_lt = 0, snaplen = qq->s->cfg.snaplen;
	int r;

	for (size_t i = 0; i < qq->n_heap; i++) {
		const QSeg *qs = &qq->segs[qq->heap[i].seg];
		bool seen = false;

		for (uint32_t k = 0; k < n_lt && !seen; k++)
			seen = lts[k] == qs->linktype;
		if (!seen && n_lt < ARRAY_SIZE(lts))
			lts[n_lt++] = qs->linktype;
		if (qs->snaplen > snaplen)
			snaplen = qs->snaplen;
	}
	if (n_lt == 0)
		lts[n_lt++] = qq->first_linktype != UINT32_MAX ? qq->first_linktype : LINKTYPE_ETHERNET;
	qq->res.pcapng = qq->q->pcapng || n_lt > 1;
	wc.format = qq->res.pcapng ? PCAP_FORMAT_PCAPNG : PCAP_FORMAT_PCAP_NS;
	wc.linktype = lts[0];
	wc.snaplen = snaplen;
	r = pcapwr_new(fd, &wc, &w, err);
	if (r < 0)
		return r;
	ifids[0] = 0;
	for (uint32_t k = 1; k < n_lt && r == 0; k++)
		r = pcapwr_add_interface(w, lts[k], snaplen, NULL, &ifids[k], err);
	if (r == 0)
		r = pcapwr_batch_new(w, &batch);
	for (size_t i = 0; i < qq->n_heap && r == 0; i++) {
		const QHit *h = &qq->heap[i];
		struct iovec part = {.iov_base = (void *)h->data, .iov_len = h->caplen};
		uint32_t ifid = 0;

		for (uint32_t k = 0; k < n_lt; k++)
			if (lts[k] == qq->segs[h->seg].linktype)
				ifid = ifids[k];
		/* origlen below caplen only in damaged input: the writer wants >= */
		r = pcapwr_queue(batch, ifid, h->ts, h->origlen < h->caplen ? h->caplen : h->origlen, &part, 1);
		if (r < 0)
			errbuf_set(err, r, "query output: %s", strerror(-r));
		else
			qq->res.bytes += h->caplen;
	}
	if (r == 0)
		r = pcapwr_flush(batch, err);
	pcapwr_batch_free(batch);
	if (r == 0) {
		r = pcapwr_finish(w, false, err);
		w = NULL;
	}
	pcapwr_free(w);
	if (r == 0)
		qq->res.packets = qq->n_heap;
	return r;
}

static void query_done(Query *qq)
{
	for (size_t i = 0; i < qq->n_segs; i++) {
		if (qq->segs[i].map)
			munmap(qq->segs[i].map, qq->segs[i].map_len);
		hist_seg_unref(qq->s, qq->segs[i].g);
	}
	for (unsigned i = 0; i < qq->n_progs; i++)
		cbpf_program_free(&qq->progs[i].prog);
	histsum_probe_done(&qq->probe);
	free(qq->segs);
	free(qq->blocks);
	free(qq->heap);
}

int hist_query(HistStore *s, const HistQuery *q, int fd, HistQueryResult *ret, ErrBuf *err)
{
	Query qq = {.s = s, .q = q, .first_linktype = UINT32_MAX};
	const CbpfProgram *dummy;
	int r;

	if (q->from_ns > q->to_ns)
		return errbuf_set(err, -EINVAL, "query: the window starts after it ends");
	if (q->max_packets == 0 || q->max_packets > HIST_MAX_QUERY_PACKETS)
		return errbuf_set(err, -EINVAL, "query: max_packets %llu is outside 1..%llu",
				  (unsigned long long)q->max_packets, HIST_MAX_QUERY_PACKETS);
	qq.filtered = q->filter && (q->filter->n_clauses > 0 || q->filter->bpf_expr);
	if (qq.filtered) {
		/* A bad expression is the caller's error, whatever is stored. */
		r = program_for(&qq, LINKTYPE_ETHERNET, &dummy, err);
		if (r < 0)
			goto out;
	}
	r = histsum_probe_new(q->filter, &qq.probe);
	if (r < 0) {
		errbuf_set(err, r, "out of memory");
		goto out;
	}
	r = take_segments(&qq, err);
	if (r < 0)
		goto out;
	qq.res.segments = qq.n_segs;
	for (size_t i = 0; i < qq.n_segs; i++) {
		QSeg *qs = &qq.segs[i];
		ErrBuf lerr;

		if (qs->sealed && hist_seg_load(s, qs->g, &lerr) < 0) {
			qq.res.segments_skipped++;
			continue;
		}
		if (qq.filtered) {
			r = program_for(&qq, qs->g->linktype, &qs->prog, &lerr);
			if (r == -EPROTONOSUPPORT) {
				qq.res.segments_skipped++; /* the filter cannot be applied: left out */
				continue;
			}
			if (r < 0) {
				if (err)
					*err = lerr;
				goto out;
			}
		}
		r = collect_blocks(&qq, (uint32_t)i, err);
		if (r == 0)
			r = map_segment(&qq, qs, err);
		if (r < 0)
			goto out;
	}
	if (qq.n_blocks > 1)
		qsort(qq.blocks, qq.n_blocks, sizeof(*qq.blocks), cmp_block_newest);
	for (size_t i = 0; i < qq.n_blocks; i++) {
		const QBlock *b = &qq.blocks[i];

		if (qq.n_heap == q->max_packets && b->max_ts < qq.heap[0].ts) {
			qq.res.limited = true;
			break; /* nothing here or after can be newer than what is kept */
		}
		r = scan_block(&qq, b);
		if (r < 0) {
			errbuf_set(err, r, "out of memory");
			goto out;
		}
	}
	if (qq.n_heap > 1)
		qsort(qq.heap, qq.n_heap, sizeof(*qq.heap), cmp_hit);
	r = write_answer(&qq, fd, err);
	if (r == 0 && ret)
		*ret = qq.res;
out:
	query_done(&qq);
	return r;
}

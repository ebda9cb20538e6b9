/* SPDX-License-Identifier: MIT */
/*
 * k-way merge. Each input holds its current record; a binary min-heap of input
 * indices is ordered by (ts_ns, input index), so equal timestamps come out in
 * input order and each input's own order is kept (an input is only advanced
 * after its current record was written, even when its next timestamp is
 * smaller). That is the order `mergecap -w` produces, but for ties across
 * inputs, where mergecap's selection loop (is_earlier() true on equality) ends
 * on the last tied input: opt->ties_last_first reverses the index tie-break
 * to reproduce it.
 *
 * Memory: one current record per input and two writer batches. Records of
 * mapped inputs are queued by reference (the mapping lives until
 * pcapmerge_free(), so past the batch's flush); records of pipes are copied,
 * since the reader reuses its buffer on the next read.
 *
 * Two threads: while the merge fills one batch, a flusher thread writes the
 * other. The kernel's copy into the page cache is about half of a merge's
 * time, and with it off the merging thread the two halves overlap. At most one
 * batch is in flight and batches are written in the order they were filled,
 * so the file is the same as with one thread.
 *
 * Output interfaces: classic pcap has one (every input interface must share
 * its link type); pcapng gets one IDB per input interface, numbered in input
 * order, interfaces described after an input's first record added as they
 * appear; names, descriptions and resolution as merge.h says, and the
 * statistics after the last packet (an input's own ISBs are read by then).
 */
#include "merge.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pcap/reader.h"
#include "pcap/writer.h"

/* Bytes per batch: with MERGE_BATCH_IOV iovecs, ~256 hand-offs per GiB
 * between the merging and the writing thread. */
#define MERGE_BATCH (4u * 1024 * 1024)
/* Iovecs per batch: merged records average ~800 bytes in ~1.6 iovecs, so with
 * the writer's default (one writev of 1023) a batch held ~470 KB and a GiB took
 * ~2,300 thread hand-offs, 15 % of the CPU. 8x more: 1 GiB merge 0.32 s ->
 * 0.25 s here. */
#define MERGE_BATCH_IOV (8u * 1024 - 1)

typedef struct Input {
	const char *name;
	PcapReader *r;
	PcapRecord cur; /* valid when has_cur */
	bool has_cur;
	uint32_t *ifmap; /* input ifid -> output ifid; UINT32_MAX = not yet added */
	uint32_t nmap;
	MergeInput note; /* the caller's annotation (all NULL: none) */
} Input;

/* First and last packet time of an output interface (pcapng output). */
typedef struct OutSpan {
	uint64_t first_ns, last_ns;
	bool seen;
} OutSpan;

struct PcapMerge {
	Input *in;
	size_t n;
	size_t *heap; /* input indices, min-heap on (cur.ts_ns, index) */
	size_t heap_len;
	PcapFormat format;
	uint32_t linktype;    /* classic pcap output */
	uint32_t snaplen;     /* classic pcap output */
	bool used;            /* pcapmerge_write() ran */
	bool ties_last_first; /* see MergeOptions */
	uint64_t skip_first;  /* see MergeOptions */
	const char *out_name; /* for messages */
	OutSpan *spans;       /* pcapng: per output interface */
	uint32_t nspans;
};

static bool before(const PcapMerge *m, size_t a, size_t b)
{
	uint64_t ta = m->in[a].cur.ts_ns, tb = m->in[b].cur.ts_ns;

	return ta < tb || (ta == tb && (m->ties_last_first ? a > b : a < b));
}

static void sift_down(PcapMerge *m, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, min = i, t;

		if (l < m->heap_len && before(m, m->heap[l], m->heap[min]))
			min = l;
		if (r < m->heap_len && before(m, m->heap[r], m->heap[min]))
			min = r;
		if (min == i)
			return;
		t = m->heap[i];
		m->heap[i] = m->heap[min];
		m->heap[min] = t;
		i = min;
	}
}

void pcapmerge_free(PcapMerge *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		pcaprd_free(m->in[i].r);
		free(m->in[i].ifmap);
	}
	free(m->in);
	free(m->heap);
	free(m->spans);
	free(m);
}

/* Decides the output format from every interface known after the first records. */
static int choose_format(PcapMerge *m, const MergeOptions *opt, ErrBuf *err)
{
	const char *first_name = NULL;
	uint32_t first_lt = 0, snaplen = 0;
	bool fine = false;
	int precision = opt->ts_precision;

	for (size_t i = 0; i < m->n; i++) {
		uint32_t count = pcaprd_interface_count(m->in[i].r);

		for (uint32_t j = 0; j < count; j++) {
			PcapInterfaceInfo info;

			if (pcaprd_interface_info(m->in[i].r, j, &info) < 0)
				continue;
			if (info.tsresol > 1000000u)
				fine = true;
			if (info.snaplen > snaplen)
				snaplen = info.snaplen;
			if (!first_name) {
				first_name = m->in[i].name;
				first_lt = info.linktype;
			} else if (info.linktype != first_lt) {
				if (opt->format == PCAP_FORMAT_PCAPNG || opt->format < 0) {
					m->format = PCAP_FORMAT_PCAPNG;
					return 0;
				}
				return errbuf_set(err, -EPROTOTYPE,
						  "%s (link type %u) and %s (link type %u) differ: classic pcap holds "
						  "one link type, use --format pcapng",
						  first_name, first_lt, m->in[i].name, info.linktype);
			}
		}
	}
	if (opt->format == PCAP_FORMAT_PCAPNG) {
		m->format = PCAP_FORMAT_PCAPNG;
		return 0;
	}
	if (precision == 0)
		precision = fine ? 9 : 6;
	m->format = precision == 9 ? PCAP_FORMAT_PCAP_NS : PCAP_FORMAT_PCAP_US;
	m->linktype = first_name ? first_lt : LINKTYPE_ETHERNET;
	m->snaplen = snaplen ? snaplen : PCAP_MAX_SNAPLEN;
	return 0;
}

int pcapmerge_open(const char *const *inputs, size_t n, const MergeOptions *opt, PcapMerge **ret, ErrBuf *err)
{
	PcapMerge *m;
	bool stdin_seen = false;
	int r;

	if (opt->format > PCAP_FORMAT_PCAPNG ||
	    (opt->ts_precision != 0 && opt->ts_precision != 6 && opt->ts_precision != 9))
		return errbuf_set(err, -EINVAL, "bad merge options");
	for (size_t i = 0; i < n; i++) {
		if (strcmp(inputs[i], "-") != 0)
			continue;
		if (stdin_seen)
			return errbuf_set(err, -EINVAL, "standard input (-) given more than once");
		stdin_seen = true;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return errbuf_set(err, -ENOMEM, "out of memory");
	m->in = calloc(n ? n : 1, sizeof(*m->in));
	m->heap = calloc(n ? n : 1, sizeof(*m->heap));
	if (!m->in || !m->heap) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	m->n = n;
	m->out_name = opt->out_name ? opt->out_name : "output";
	m->ties_last_first = opt->ties_last_first;
	m->skip_first = opt->skip_first;
	for (size_t i = 0; i < n; i++) {
		Input *in = &m->in[i];

		in->name = strcmp(inputs[i], "-") == 0 ? "standard input" : inputs[i];
		if (opt->annotations)
			in->note = opt->annotations[i];
		r = pcaprd_open(inputs[i], &in->r, err);
		if (r < 0)
			goto fail;
		r = pcaprd_next(in->r, &in->cur, err);
		if (r < 0)
			goto fail;
		in->has_cur = r == 1;
		if (in->has_cur)
			m->heap[m->heap_len++] = i;
	}
	r = choose_format(m, opt, err);
	if (r < 0)
		goto fail;
	for (size_t i = m->heap_len; i-- > 0;)
		sift_down(m, i);
	*ret = m;
	return 0;
fail:
	pcapmerge_free(m);
	return r;
}

PcapFormat pcapmerge_format(const PcapMerge *m)
{
	return m->format;
}

/* Makes in->ifmap[ifid] exist. */
static int ensure_map(Input *in, uint32_t ifid, ErrBuf *err)
{
	uint32_t cap;
	uint32_t *nm;

	if (ifid < in->nmap)
		return 0;
	cap = ifid + 1 > 2 * in->nmap ? ifid + 1 : 2 * in->nmap;
	nm = realloc(in->ifmap, cap * sizeof(*nm));
	if (!nm)
		return errbuf_set(err, -ENOMEM, "out of memory");
	for (uint32_t i = in->nmap; i < cap; i++)
		nm[i] = UINT32_MAX;
	in->ifmap = nm;
	in->nmap = cap;
	return 0;
}

/* The if_name of input interface ifid (see MergeInput.name) into buf. */
static int iface_name(const Input *in, uint32_t ifid, const PcapInterfaceInfo *info, char *buf, size_t cap,
		      const char **ret, ErrBuf *err)
{
	int n;

	if (!in->note.name) {
		*ret = info->name;
		return 0;
	}
	if (info->name)
		n = snprintf(buf, cap, "%s/%s", in->note.name, info->name);
	else if (pcaprd_interface_count(in->r) > 1)
		n = snprintf(buf, cap, "%s/%u", in->note.name, ifid);
	else
		n = snprintf(buf, cap, "%s", in->note.name);
	if (n < 0 || (size_t)n >= cap)
		return errbuf_set(err, -ENAMETOOLONG, "%s: interface name %s... longer than %u bytes", in->name,
				  in->note.name, PCAPWR_MAX_IFNAME);
	*ret = buf;
	return 0;
}

/* The IDB of input interface ifid as the output describes it; names point
 * into buf or the input. */
static int describe(const Input *in, uint32_t ifid, PcapWrInterface *ret, char *buf, size_t cap, ErrBuf *err)
{
	PcapInterfaceInfo info;
	uint64_t units = 1;
	int r;

	r = pcaprd_interface_info(in->r, ifid, &info);
	if (r < 0)
		return errbuf_set(err, r, "%s: record of unknown interface %u", in->name, ifid);
	*ret = (PcapWrInterface){.linktype = info.linktype, .snaplen = info.snaplen, .tsresol = 9};
	/* The input's resolution when it is a decimal one the ns clock holds. */
	for (unsigned e = 0; e <= 9 && !info.tsresol_bin; e++, units *= 10)
		if (units == info.tsresol) {
			ret->tsresol = e ? e : 9;
			break;
		}
	r = iface_name(in, ifid, &info, buf, cap, &ret->name, err);
	if (r < 0)
		return r;
	ret->description = in->note.description ? in->note.description : info.description;
	return 0;
}

/* Output interface for input in's ifid, added to w on first use. */
static int out_ifid(Input *in, uint32_t ifid, PcapWriter *w, uint32_t *ret, ErrBuf *err)
{
	PcapWrInterface desc;
	char name[PCAPWR_MAX_IFNAME + 1];
	ErrBuf inner;
	int r;

	r = ensure_map(in, ifid, err);
	if (r < 0)
		return r;
	if (in->ifmap[ifid] == UINT32_MAX) {
		r = describe(in, ifid, &desc, name, sizeof(name), err);
		if (r < 0)
			return r;
		r = pcapwr_add_interface_desc(w, &desc, &in->ifmap[ifid], &inner);
		if (r < 0)
			return errbuf_set(err, r, "%s: %s", in->name, inner.msg);
	}
	*ret = in->ifmap[ifid];
	return 0;
}

/* pcapng: notes the time of a packet written on output interface ifid. */
static int note_span(PcapMerge *m, uint32_t ifid, uint64_t ts_ns)
{
	OutSpan *s;

	if (ifid >= m->nspans) {
		uint32_t cap = ifid + 1 > 2 * m->nspans ? ifid + 1 : 2 * m->nspans;
		OutSpan *n = realloc(m->spans, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		memset(n + m->nspans, 0, (cap - m->nspans) * sizeof(*n));
		m->spans = n;
		m->nspans = cap;
	}
	s = &m->spans[ifid];
	if (!s->seen || ts_ns < s->first_ns)
		s->first_ns = ts_ns;
	if (!s->seen || ts_ns > s->last_ns)
		s->last_ns = ts_ns;
	s->seen = true;
	return 0;
}

/* pcapng: an ISB for every output interface with statistics (the caller's
 * for the input interface, else the input's own), times defaulting to its
 * first and last packet. */
static int write_stats(PcapMerge *m, PcapWriter *w, ErrBuf *err)
{
	for (size_t i = 0; i < m->n; i++) {
		Input *in = &m->in[i];

		for (uint32_t j = 0; j < in->nmap; j++) {
			PcapInterfaceInfo info;
			PcapIfStats st = {0};
			uint32_t o = in->ifmap[j];
			int r;

			if (o == UINT32_MAX || pcaprd_interface_info(in->r, j, &info) < 0)
				continue;
			if (in->note.stats && j < in->note.n_stats)
				st = in->note.stats[j];
			if (!st.have)
				st = info.stats;
			if (!st.have)
				continue;
			if (o < m->nspans && m->spans[o].seen) {
				if (!(st.have & PCAP_STAT_START)) {
					st.start_ns = m->spans[o].first_ns;
					st.have |= PCAP_STAT_START;
				}
				if (!(st.have & PCAP_STAT_END)) {
					st.end_ns = m->spans[o].last_ns;
					st.have |= PCAP_STAT_END;
				}
			}
			r = pcapwr_set_interface_stats(w, o, &st, err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* The flusher: writes batches handed to it, one at a time, in order. */
typedef struct Flusher {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	PcapBatch *pending; /* handed over and not written yet (being written) */
	bool quit;
	int error; /* first failed flush; later batches are not written */
	ErrBuf err;
} Flusher;

static void *flusher_main(void *arg)
{
	Flusher *f = arg;

	pthread_mutex_lock(&f->lock);
	for (;;) {
		PcapBatch *b;
		ErrBuf e;
		int r = 0;

		while (!f->pending && !f->quit)
			pthread_cond_wait(&f->cond, &f->lock);
		if (!f->pending)
			break;
		b = f->pending;
		pthread_mutex_unlock(&f->lock);
		if (!f->error) /* written only by this thread */
			r = pcapwr_flush(b, &e);
		pthread_mutex_lock(&f->lock);
		if (r < 0) {
			f->error = r;
			f->err = e;
		}
		f->pending = NULL;
		pthread_cond_broadcast(&f->cond);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

static int flusher_start(Flusher *f, ErrBuf *err)
{
	int r;

	*f = (Flusher){.pending = NULL};
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	r = pthread_create(&f->thread, NULL, flusher_main, f);
	if (r != 0) {
		pthread_cond_destroy(&f->cond);
		pthread_mutex_destroy(&f->lock);
		return errbuf_set(err, -r, "cannot start the writer thread: %s", strerror(r));
	}
	return 0;
}

/* Waits for the batch in flight (if any), then hands b over (if not NULL).
 * Returns the first write error so far, with its message in err. */
static int flusher_hand(Flusher *f, PcapBatch *b, ErrBuf *err)
{
	int r;

	pthread_mutex_lock(&f->lock);
	while (f->pending)
		pthread_cond_wait(&f->cond, &f->lock);
	r = f->error;
	if (r < 0)
		*err = f->err;
	else if (b) {
		f->pending = b;
		pthread_cond_broadcast(&f->cond);
	}
	pthread_mutex_unlock(&f->lock);
	return r;
}

/* Lets the batch in flight finish, then ends the thread. */
static void flusher_stop(Flusher *f)
{
	pthread_mutex_lock(&f->lock);
	while (f->pending)
		pthread_cond_wait(&f->cond, &f->lock);
	f->quit = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
}

int pcapmerge_write(PcapMerge *m, int out_fd, MergeStats *ret_stats, ErrBuf *err)
{
	PcapWriterConfig cfg = {.format = m->format,
				.linktype = m->linktype,
				.snaplen = m->snaplen,
				.batch_bytes = MERGE_BATCH,
				.batch_iov = MERGE_BATCH_IOV};
	PcapWriter *w = NULL;
	PcapBatch *batches[2] = {NULL, NULL}, *b;
	Flusher flusher;
	bool flushing = false;
	MergeStats st = {0};
	PcapInterfaceInfo first = {.linktype = LINKTYPE_ETHERNET, .snaplen = PCAP_MAX_SNAPLEN};
	PcapWrInterface iface0;
	char name0[PCAPWR_MAX_IFNAME + 1];
	Input *first_in = NULL;
	int r;

	if (m->used)
		return errbuf_set(err, -EINVAL, "merge already written");
	m->used = true;
	if (m->format == PCAP_FORMAT_PCAPNG) {
		/* Interface 0 of the output is the first interface of the first input that has one. */
		for (size_t i = 0; i < m->n && !first_in; i++)
			if (pcaprd_interface_info(m->in[i].r, 0, &first) == 0)
				first_in = &m->in[i];
		cfg.linktype = first.linktype;
		cfg.snaplen = first.snaplen;
		if (first_in) {
			r = describe(first_in, 0, &iface0, name0, sizeof(name0), err);
			if (r < 0)
				return r;
			cfg.iface0 = &iface0;
		}
	}
	r = pcapwr_new(out_fd, &cfg, &w, err);
	if (r < 0)
		return r;
	for (int i = 0; i < 2; i++) {
		r = pcapwr_batch_new(w, &batches[i]);
		if (r < 0) {
			errbuf_set(err, r, "out of memory");
			goto out;
		}
	}
	b = batches[0];
	r = flusher_start(&flusher, err);
	if (r < 0)
		goto out;
	flushing = true;
	/* pcapwr_new() described the first input interface as interface 0. */
	if (first_in) {
		r = ensure_map(first_in, 0, err);
		if (r < 0)
			goto out;
		first_in->ifmap[0] = 0;
	}
	/* Number every other interface known now, in input order. */
	for (size_t i = 0; i < m->n; i++) {
		uint32_t count = pcaprd_interface_count(m->in[i].r), id;

		for (uint32_t j = 0; j < count; j++) {
			r = out_ifid(&m->in[i], j, w, &id, err);
			if (r < 0)
				goto out;
		}
	}
	while (m->heap_len > 0) {
		size_t top = m->heap[0];
		Input *in = &m->in[top];
		struct iovec part = {(void *)in->cur.data, in->cur.caplen};
		uint32_t ifid;

		if (m->skip_first > 0) {
			m->skip_first--; /* older than the newest N: left out */
		} else {
			r = out_ifid(in, in->cur.ifid, w, &ifid, err);
			if (r < 0)
				goto out;
			if (m->format == PCAP_FORMAT_PCAPNG && note_span(m, ifid, in->cur.ts_ns) < 0) {
				r = errbuf_set(err, -ENOMEM, "out of memory");
				goto out;
			}
			if (pcaprd_stable(in->r))
				r = pcapwr_queue(b, ifid, in->cur.ts_ns, in->cur.origlen, &part, 1);
			else
				r = pcapwr_queue_copy(b, ifid, in->cur.ts_ns, in->cur.origlen, &part, 1);
			if (r < 0) {
				errbuf_set(err, r, "writing %s failed: %s", m->out_name, strerror(-r));
				goto out;
			}
			if (pcapwr_batch_full(b)) {
				r = flusher_hand(&flusher, b, err);
				if (r < 0)
					goto out;
				b = b == batches[0] ? batches[1] : batches[0];
			}
			st.packets++;
		}
		r = pcaprd_next(in->r, &in->cur, err);
		if (r < 0)
			goto out;
		if (r == 0) {
			in->has_cur = false;
			if (pcaprd_truncated_tail(in->r))
				st.truncated_tails++;
			m->heap[0] = m->heap[--m->heap_len];
		}
		sift_down(m, 0);
	}
	r = flusher_hand(&flusher, NULL, err);
	if (r < 0)
		goto out;
	flusher_stop(&flusher);
	flushing = false;
	r = pcapwr_flush(b, err);
	if (r < 0)
		goto out;
	for (int i = 0; i < 2; i++)
		pcapwr_batch_free(batches[i]);
	if (m->format == PCAP_FORMAT_PCAPNG) {
		r = write_stats(m, w, err);
		if (r < 0)
			goto out;
	}
	/* After finish: it writes the header of an empty merge. */
	r = pcapwr_finish_at(w, false, &st.bytes, err);
	w = NULL;
	if (r < 0)
		return r;
	*ret_stats = st;
	return 0;
out:
	if (flushing)
		flusher_stop(&flusher);
	for (int i = 0; i < 2; i++)
		pcapwr_batch_free(batches[i]);
	pcapwr_free(w);
	return r;
}

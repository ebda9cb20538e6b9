/* SPDX-License-Identifier: MIT */
/*
 * Batched pcap/pcapng writer.
 *
 * Output layouts (host byte order; readers detect it from the magic):
 *   pcap:   file header (24) then per record: sec u32, usec|nsec u32, caplen
 *           u32, origlen u32, data.
 *   pcapng: SHB (28 bytes, no options), one IDB per interface (link type,
 *           snaplen, if_name, if_description, if_tsresol: 9 (ns) unless the
 *           interface asked for a coarser decimal one), then EPBs: header
 *           (28), data, padding to 4, total length (4), timestamps in their
 *           interface's units; at the end one ISB per interface with
 *           statistics (pcapwr_set_interface_stats()).
 *
 * A batch is a list of iovecs. Record headers, padding and spans shorter than
 * PCAPWR_STAGE_MIN are copied into the batch's staging buffer (a fixed
 * allocation, so iovecs into it stay valid) and adjacent staged bytes share one
 * iovec; longer spans are referenced where they are (zero copy). The batch is
 * written once it holds batch_bytes or close to batch_iov iovecs (by the
 * next queue call, or by the caller), so every write is large (1514-byte
 * frames: 2 iovecs per record, ~740 KB per writev; 64-byte frames: one staged
 * run). By default the batch's iovecs and the header slot in front of them
 * together are at most IOV_MAX (1024): one writev() per batch unless the
 * kernel writes short. A writer that hands batches to another thread asks for
 * more (PcapWriterConfig.batch_iov): its batches are then written in several
 * writev() calls of up to IOV_MAX each, and hand-offs are fewer.
 *
 * Whole records only: the batch remembers where each record ends. When a write
 * fails part way, a regular file is truncated back to the last whole record
 * (the descriptor's offset when the writer was made, plus the whole bytes) and
 * the writer is marked failed (the descriptor's position is past the new end,
 * and the writer never seeks: later flushes return -EIO rather than leave a
 * hole). A descriptor whose offset is unknown or that appends (O_APPEND: the
 * file may grow under us) is never truncated. Pending interface descriptions
 * (pcapng interfaces added after the header went out) are written in front of
 * the next batch, all of them: its records may use any of them. The header
 * buffer is on the stack for the usual few interfaces and allocated beyond.
 *
 * Spool mode (PcapWriterConfig.direct, regular files): batches are copied
 * into a spool (spool.h), whose writer thread writes them in order, the
 * aligned middles with O_DIRECT where the file system takes it, so that the
 * capture thread never waits for the disk and the page cache's copy and
 * writeback stay out of the way (on this project's machine buffered writes
 * reach 340-560 MB/s, direct ones 1.3-2.6 GB/s). A batch that fills up before
 * its flush is copied without being committed; pcapwr_flush() commits: once
 * the spool's writer has written that job, the file ends there, on a whole
 * record. A failed write cuts the file back to the last commit point it holds.
 */
#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pcap/format.h"
#include "pcap/spool.h"

#define PCAPWR_STAGE_MIN 512u /* spans shorter than this are copied */
/* Record iovecs per batch by default: with the header slot in front, IOV_MAX
 * in all, so a batch is one writev(). */
#define PCAPWR_DEFAULT_IOV (IOV_MAX - 1u)
#define PCAPWR_MAX_BATCH_IOV (64u * IOV_MAX)
#define PCAPWR_MAX_PARTS 64u   /* parts of one record */
#define PCAPWR_HDR_STACK 4096u /* header bytes built on the stack; more are allocated */
/* ISB: fixed part 20, up to four 12-byte options, opt_endofopt 4, trailing
 * length 4. */
#define ISB_MAX (20u + 4u * 12u + 4u + 4u)

_Static_assert(IOV_MAX == 1024, "a batch plus its header slot is sized for IOV_MAX 1024");

typedef struct WrIface {
	uint32_t linktype;
	uint32_t snaplen;
	char *name;        /* if_name (owned), or NULL */
	char *description; /* if_description (owned), or NULL */
	uint8_t tsresol;   /* pcapng: timestamps in units of 10^-tsresol s */
	uint64_t ts_div;   /* ns per such unit */
	PcapIfStats stats; /* written as an ISB by pcapwr_finish() when stats.have */
} WrIface;

struct PcapWriter {
	int fd;
	const IoOps *io;
	PcapFormat format;
	size_t batch_bytes;
	unsigned batch_iov;     /* record iovecs per batch */
	bool regular;           /* a regular file at a known offset, not O_APPEND: partial writes are undone */
	uint64_t base;          /* the descriptor's offset when the writer was made */
	pthread_mutex_t lock;   /* serialises flushes and the fields below */
	pthread_mutex_t iflock; /* guards the interface table only, so that queueing
				   never waits for another batch's write */
	bool header_written;
	bool failed;     /* a write failed: nothing more is written */
	uint64_t offset; /* bytes of whole items written */
	WrIface *ifaces;
	uint32_t nifaces, cap_ifaces;
	uint32_t ifaces_written; /* pcapng: IDBs already in the file */
	Spool *spool;            /* spool mode: every write goes through it */
};

struct PcapBatch {
	PcapWriter *w;
	struct iovec *iov; /* w->batch_iov + 1 (slot 0: header bytes) */
	unsigned niov;     /* used, from slot 1 */
	uint8_t *stage;
	size_t stage_len, stage_cap;
	size_t bytes;    /* record bytes queued */
	size_t *rec_end; /* batch-relative end of each record */
	size_t nrec, cap_rec;
	uint32_t *snaplens; /* this batch's copy of the interfaces' snaplens */
	uint64_t *ts_divs;  /* and of their ns per timestamp unit */
	uint32_t nsnaplens; /* interfaces copied: refreshed under iflock only when a
			       record names a newer one, so that queueing takes no
			       lock shared with other capture threads */
};

static size_t pad4(size_t n)
{
	return (4 - (n & 3)) & 3;
}

int pcapwr_new(int fd, const PcapWriterConfig *cfg, PcapWriter **ret, ErrBuf *err)
{
	PcapWriter *w;
	struct stat st;
	uint32_t ifid;
	off_t pos;
	int r, fl;

	if (cfg->format != PCAP_FORMAT_PCAP_US && cfg->format != PCAP_FORMAT_PCAP_NS &&
	    cfg->format != PCAP_FORMAT_PCAPNG)
		return errbuf_set(err, -EINVAL, "unknown output format %d", (int)cfg->format);
	if (cfg->snaplen == 0 || cfg->snaplen > PCAP_MAX_SNAPLEN)
		return errbuf_set(err, -EINVAL, "snaplen %u is outside 1..%u", cfg->snaplen, PCAP_MAX_SNAPLEN);
	if (cfg->batch_iov && (cfg->batch_iov < PCAPWR_MAX_PARTS + 3 || cfg->batch_iov > PCAPWR_MAX_BATCH_IOV))
		return errbuf_set(err, -EINVAL, "batch_iov %u is outside %u..%u", cfg->batch_iov, PCAPWR_MAX_PARTS + 3,
				  PCAPWR_MAX_BATCH_IOV);
	w = calloc(1, sizeof(*w));
	if (!w)
		return errbuf_set(err, -ENOMEM, "out of memory");
	w->fd = fd;
	w->io = cfg->io ? cfg->io : &io_posix;
	w->format = cfg->format;
	w->batch_bytes = cfg->batch_bytes ? cfg->batch_bytes : PCAPWR_DEFAULT_BATCH;
	w->batch_iov = cfg->batch_iov ? cfg->batch_iov : PCAPWR_DEFAULT_IOV;
	/* Truncating after a failed write needs the offset the file started at
	 * (the caller may have written before us) and a file nobody else appends
	 * to; without both, a failure leaves the partial record (as on a pipe). */
	pos = lseek(fd, 0, SEEK_CUR);
	fl = fcntl(fd, F_GETFL);
	w->regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && pos >= 0 && fl >= 0 && !(fl & O_APPEND);
	w->base = pos >= 0 ? (uint64_t)pos : 0;
	r = pthread_mutex_init(&w->lock, NULL);
	if (r != 0) {
		free(w);
		return errbuf_set(err, -r, "mutex: %s", strerror(r));
	}
	r = pthread_mutex_init(&w->iflock, NULL);
	if (r != 0) {
		pthread_mutex_destroy(&w->lock);
		free(w);
		return errbuf_set(err, -r, "mutex: %s", strerror(r));
	}
	if (w->format == PCAP_FORMAT_PCAPNG && cfg->iface0) {
		r = pcapwr_add_interface_desc(w, cfg->iface0, &ifid, err);
	} else if (w->format == PCAP_FORMAT_PCAPNG) {
		r = pcapwr_add_interface(w, cfg->linktype, cfg->snaplen, cfg->ifname, &ifid, err);
	} else {
		w->ifaces = calloc(1, sizeof(*w->ifaces));
		r = w->ifaces ? 0 : errbuf_set(err, -ENOMEM, "out of memory");
		if (r == 0) {
			w->ifaces[0].linktype = cfg->linktype;
			w->ifaces[0].snaplen = cfg->snaplen;
			w->nifaces = w->cap_ifaces = 1;
		}
	}
	/* Spool mode on regular files; O_DIRECT where the file system takes it
	 * (else the spool writes through the page cache). */
	if (r == 0 && cfg->direct && w->regular) {
		SpoolConfig sc = {.io = w->io, .direct = true};

		r = spool_new(fd, w->base, &sc, &w->spool, err);
	}
	if (r < 0) {
		pcapwr_free(w);
		return r;
	}
	*ret = w;
	return 0;
}

void pcapwr_free(PcapWriter *w)
{
	if (!w)
		return;
	spool_free(w->spool);
	pthread_mutex_destroy(&w->lock);
	pthread_mutex_destroy(&w->iflock);
	for (uint32_t i = 0; i < w->nifaces; i++) {
		free(w->ifaces[i].name);
		free(w->ifaces[i].description);
	}
	free(w->ifaces);
	free(w);
}

/* A copy of an option string of at most max bytes, or NULL for none. */
static int dup_opt(const char *what, const char *v, size_t max, char **ret, ErrBuf *err)
{
	size_t len;

	*ret = NULL;
	if (!v || !*v)
		return 0;
	len = strnlen(v, max + 1);
	if (len > max)
		return errbuf_set(err, -ENAMETOOLONG, "%s longer than %zu bytes", what, max);
	*ret = strndup(v, len);
	return *ret ? 0 : errbuf_set(err, -ENOMEM, "out of memory");
}

int pcapwr_add_interface_desc(PcapWriter *w, const PcapWrInterface *d, uint32_t *ret_ifid, ErrBuf *err)
{
	WrIface ifc = {.linktype = d->linktype, .snaplen = d->snaplen};
	int r = 0;

	if (d->snaplen == 0 || d->snaplen > PCAP_MAX_SNAPLEN)
		return errbuf_set(err, -EINVAL, "snaplen %u is outside 1..%u", d->snaplen, PCAP_MAX_SNAPLEN);
	if (d->tsresol > 9)
		return errbuf_set(err, -EINVAL, "tsresol %u is outside 0..9", d->tsresol);
	if (w->format == PCAP_FORMAT_PCAPNG && d->linktype > 0xffffu) /* classic pcap's upper bits (FCS) */
		return errbuf_set(err, -EINVAL, "link type %#x does not fit a pcapng interface (16 bits)", d->linktype);
	pthread_mutex_lock(&w->iflock);
	if (w->format != PCAP_FORMAT_PCAPNG) {
		if (d->linktype != w->ifaces[0].linktype)
			r = errbuf_set(err, -EPROTOTYPE, "classic pcap holds one link type (%u), not also %u",
				       w->ifaces[0].linktype, d->linktype);
		else if (d->snaplen > w->ifaces[0].snaplen)
			r = errbuf_set(err, -EPROTOTYPE, "classic pcap snaplen %u is below %u", w->ifaces[0].snaplen,
				       d->snaplen);
		else
			*ret_ifid = 0;
		goto out;
	}
	if (w->nifaces >= 65535u) {
		r = errbuf_set(err, -E2BIG, "too many interfaces");
		goto out;
	}
	if (w->nifaces == w->cap_ifaces) {
		uint32_t cap = w->cap_ifaces ? w->cap_ifaces * 2 : 4;
		WrIface *n = realloc(w->ifaces, cap * sizeof(*n));

		if (!n) {
			r = errbuf_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		w->ifaces = n;
		w->cap_ifaces = cap;
	}
	ifc.tsresol = (uint8_t)(d->tsresol ? d->tsresol : 9);
	ifc.ts_div = 1;
	for (unsigned i = ifc.tsresol; i < 9; i++)
		ifc.ts_div *= 10;
	r = dup_opt("interface name", d->name, PCAPWR_MAX_IFNAME, &ifc.name, err);
	if (r == 0)
		r = dup_opt("interface description", d->description, PCAPWR_MAX_IFDESC, &ifc.description, err);
	if (r < 0) {
		free(ifc.name);
		goto out;
	}
	w->ifaces[w->nifaces] = ifc;
	*ret_ifid = w->nifaces++;
out:
	pthread_mutex_unlock(&w->iflock);
	return r;
}

int pcapwr_add_interface(PcapWriter *w, uint32_t linktype, uint32_t snaplen, const char *ifname, uint32_t *ret_ifid,
			 ErrBuf *err)
{
	PcapWrInterface d = {.linktype = linktype, .snaplen = snaplen, .name = ifname};

	return pcapwr_add_interface_desc(w, &d, ret_ifid, err);
}

int pcapwr_set_interface_stats(PcapWriter *w, uint32_t ifid, const PcapIfStats *st, ErrBuf *err)
{
	int r = 0;

	pthread_mutex_lock(&w->iflock);
	if (w->format != PCAP_FORMAT_PCAPNG)
		r = errbuf_set(err, -EPROTOTYPE, "classic pcap has no interface statistics");
	else if (ifid >= w->nifaces)
		r = errbuf_set(err, -ENOENT, "no interface %u", ifid);
	else
		w->ifaces[ifid].stats = *st;
	pthread_mutex_unlock(&w->iflock);
	return r;
}

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static size_t opt_size(const char *v)
{
	size_t n = v ? strlen(v) : 0;

	return n ? 4 + n + pad4(n) : 0;
}

/* Bytes of iface's IDB. */
static size_t idb_size(const WrIface *ifc)
{
	return 16 + opt_size(ifc->name) + opt_size(ifc->description) + 8 + 4 + 4;
}

static size_t put_opt(uint8_t *p, uint16_t code, const char *v)
{
	size_t n = v ? strlen(v) : 0;

	if (!n)
		return 0;
	put16(p, code);
	put16(p + 2, (uint16_t)n);
	memcpy(p + 4, v, n);
	memset(p + 4 + n, 0, pad4(n));
	return 4 + n + pad4(n);
}

/* IDB for iface into p (idb_size() of room); returns the size. */
static size_t build_idb(uint8_t *p, const WrIface *ifc)
{
	size_t o = 16;

	put32(p, NG_IDB);
	put16(p + 8, (uint16_t)ifc->linktype);
	put16(p + 10, 0);
	put32(p + 12, ifc->snaplen);
	o += put_opt(p + o, NG_OPT_IF_NAME, ifc->name);
	o += put_opt(p + o, NG_OPT_IF_DESCRIPTION, ifc->description);
	put16(p + o, NG_OPT_IF_TSRESOL); /* 10^-tsresol s */
	put16(p + o + 2, 1);
	put32(p + o + 4, 0);
	p[o + 4] = ifc->tsresol;
	o += 8;
	put32(p + o, NG_OPT_ENDOFOPT);
	o += 4;
	put32(p + 4, (uint32_t)(o + 4));
	put32(p + o, (uint32_t)(o + 4));
	return o + 4;
}

static size_t put_isb_opt(uint8_t *p, uint16_t code, uint64_t v, bool ts)
{
	put16(p, code);
	put16(p + 2, 8);
	if (ts) {
		put32(p + 4, (uint32_t)(v >> 32));
		put32(p + 8, (uint32_t)v);
	} else {
		memcpy(p + 4, &v, sizeof(v));
	}
	return 12;
}

/* ISB of interface ifid into p (ISB_MAX of room); returns the size. The
 * block's timestamp is the end time, or the start time, or 0. */
static size_t build_isb(uint8_t *p, uint32_t ifid, const WrIface *ifc)
{
	const PcapIfStats *st = &ifc->stats;
	uint64_t ts = st->have & PCAP_STAT_END ? st->end_ns : st->have & PCAP_STAT_START ? st->start_ns : 0;
	size_t o = 20;

	ts /= ifc->ts_div;
	put32(p, NG_ISB);
	put32(p + 8, ifid);
	put32(p + 12, (uint32_t)(ts >> 32));
	put32(p + 16, (uint32_t)ts);
	if (st->have & PCAP_STAT_START)
		o += put_isb_opt(p + o, NG_OPT_ISB_STARTTIME, st->start_ns / ifc->ts_div, true);
	if (st->have & PCAP_STAT_END)
		o += put_isb_opt(p + o, NG_OPT_ISB_ENDTIME, st->end_ns / ifc->ts_div, true);
	if (st->have & PCAP_STAT_IFRECV)
		o += put_isb_opt(p + o, NG_OPT_ISB_IFRECV, st->ifrecv, false);
	if (st->have & PCAP_STAT_IFDROP)
		o += put_isb_opt(p + o, NG_OPT_ISB_IFDROP, st->ifdrop, false);
	put32(p + o, NG_OPT_ENDOFOPT);
	o += 4;
	put32(p + 4, (uint32_t)(o + 4));
	put32(p + o, (uint32_t)(o + 4));
	return o + 4;
}

/* Bytes that must precede the next batch (file header, every pending IDB),
 * under iflock; an upper bound for build_header(). */
static size_t header_size(const PcapWriter *w)
{
	size_t n;

	if (w->format != PCAP_FORMAT_PCAPNG)
		return w->header_written ? 0 : PCAP_FILE_HDR;
	n = 0;
	for (uint32_t i = w->ifaces_written; i < w->nifaces; i++)
		n += idb_size(&w->ifaces[i]);
	return w->header_written ? n : NG_MIN_SHB + n;
}

/* Builds those bytes into p (header_size() of room), under iflock; returns
 * their length. *ret_nifaces is how many interfaces the file then describes. */
static size_t build_header(const PcapWriter *w, uint8_t *p, uint32_t *ret_nifaces)
{
	size_t o = 0;

	if (w->format != PCAP_FORMAT_PCAPNG) {
		if (w->header_written)
			return 0;
		put32(p, w->format == PCAP_FORMAT_PCAP_NS ? PCAP_MAGIC_NS : PCAP_MAGIC_US);
		put16(p + 4, PCAP_VERSION_MAJOR);
		put16(p + 6, PCAP_VERSION_MINOR);
		put32(p + 8, 0);  /* thiszone */
		put32(p + 12, 0); /* sigfigs */
		put32(p + 16, w->ifaces[0].snaplen);
		put32(p + 20, w->ifaces[0].linktype);
		*ret_nifaces = 1;
		return PCAP_FILE_HDR;
	}
	if (!w->header_written) {
		put32(p, NG_SHB);
		put32(p + 4, NG_MIN_SHB);
		put32(p + 8, NG_BOM);
		put16(p + 12, NG_VERSION_MAJOR);
		put16(p + 14, NG_VERSION_MINOR);
		memset(p + 16, 0xff, 8); /* section length unknown */
		put32(p + 24, NG_MIN_SHB);
		o = NG_MIN_SHB;
	}
	for (uint32_t i = w->ifaces_written; i < w->nifaces; i++)
		o += build_idb(p + o, &w->ifaces[i]);
	*ret_nifaces = w->nifaces;
	return o;
}

int pcapwr_batch_new(PcapWriter *w, PcapBatch **ret)
{
	PcapBatch *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	b->w = w;
	b->iov = calloc(w->batch_iov + 1, sizeof(*b->iov));
	/* Staged bytes stay below batch_bytes before a record is added, and one
	 * record stages at most its header, padding and caplen bytes. */
	b->stage_cap = w->batch_bytes + PCAP_MAX_SNAPLEN + 64;
	b->stage = malloc(b->stage_cap);
	if (!b->iov || !b->stage) {
		pcapwr_batch_free(b);
		return -ENOMEM;
	}
	*ret = b;
	return 0;
}

void pcapwr_batch_free(PcapBatch *b)
{
	if (!b)
		return;
	free(b->iov);
	free(b->stage);
	free(b->rec_end);
	free(b->snaplens);
	free(b->ts_divs);
	free(b);
}

static void reset(PcapBatch *b)
{
	b->niov = 0;
	b->stage_len = 0;
	b->bytes = 0;
	b->nrec = 0;
}

/* Spool mode: the header and the batch copied into the spool; committed
 * when the caller flushes (not when the batch merely filled up). */
static int flush_spool(PcapBatch *b, const uint8_t *hdr, size_t hlen, uint32_t nifaces, bool commit, ErrBuf *err)
{
	PcapWriter *w = b->w;
	int r = 0;

	if (hlen)
		r = spool_append(w->spool, hdr, hlen, err);
	if (r == 0)
		r = spool_appendv(w->spool, b->iov + 1, (int)b->niov, err);
	if (r == 0 && commit)
		r = spool_commit(w->spool, err);
	if (r < 0) {
		w->failed = true;
		w->offset = spool_whole(w->spool);
		return r;
	}
	w->offset += hlen + b->bytes;
	w->header_written = true;
	w->ifaces_written = nifaces;
	return 0;
}

static int flush_locked(PcapBatch *b, bool commit, ErrBuf *err)
{
	PcapWriter *w = b->w;
	uint8_t stack_hdr[PCAPWR_HDR_STACK], *hdr = stack_hdr, *heap_hdr = NULL;
	uint32_t nifaces = w->ifaces_written;
	size_t hlen, written = 0, whole;
	int r;

	if (w->failed)
		return errbuf_set(err, -EIO, "an earlier write failed");
	/* Sized and built in one critical section: every interface a queued
	 * record refers to was added before it, so all of them are described. */
	pthread_mutex_lock(&w->iflock);
	hlen = header_size(w);
	if (hlen > sizeof(stack_hdr)) {
		hdr = heap_hdr = malloc(hlen);
		if (!hdr) {
			pthread_mutex_unlock(&w->iflock);
			return errbuf_set(err, -ENOMEM, "out of memory");
		}
	}
	if (hlen)
		hlen = build_header(w, hdr, &nifaces);
	pthread_mutex_unlock(&w->iflock);
	if (hlen == 0 && b->niov == 0 && !(w->spool && commit))
		return 0;
	if (w->spool) {
		r = flush_spool(b, hdr, hlen, nifaces, commit, err);
		free(heap_hdr);
		return r;
	}
	b->iov[0].iov_base = hdr;
	b->iov[0].iov_len = hlen;
	r = io_writev_all(w->io, w->fd, hlen ? b->iov : b->iov + 1, (int)b->niov + (hlen ? 1 : 0), &written);
	free(heap_hdr);
	if (r == 0) {
		w->offset += hlen + b->bytes;
		w->header_written = true;
		w->ifaces_written = nifaces;
		return 0;
	}
	/* Keep what is whole: the header part only if all of it went out, then
	 * every record that ended within what was written. */
	whole = 0;
	if (written >= hlen) {
		size_t in_batch = written - hlen;

		whole = hlen;
		for (size_t i = 0; i < b->nrec && b->rec_end[i] <= in_batch; i++)
			whole = hlen + b->rec_end[i];
	}
	w->failed = true;
	if (w->regular && whole != written) {
		int t = w->io->ftruncate(w->io, w->fd, (off_t)(w->base + w->offset + whole));

		if (t < 0)
			return errbuf_set(err, r, "write failed (%s) and truncating back to whole records failed (%s)",
					  strerror(-r), strerror(-t));
	}
	if (whole >= hlen && hlen) {
		w->header_written = true;
		w->ifaces_written = nifaces;
	}
	w->offset += whole;
	return errbuf_set(err, r, "write failed: %s", strerror(-r));
}

/* commit: the caller's flush (whole records for the file); not for a batch
 * that merely filled up. */
static int flush(PcapBatch *b, bool commit, ErrBuf *err)
{
	int r;

	pthread_mutex_lock(&b->w->lock);
	r = flush_locked(b, commit, err);
	pthread_mutex_unlock(&b->w->lock);
	reset(b);
	return r;
}

int pcapwr_flush(PcapBatch *b, ErrBuf *err)
{
	return flush(b, true, err);
}

/* Appends n bytes to the staging area, extending the last iovec when it ends
 * exactly there. The caller made room. */
static void stage(PcapBatch *b, const void *p, size_t n)
{
	uint8_t *dst = b->stage + b->stage_len;
	struct iovec *last = b->niov ? &b->iov[b->niov] : NULL;

	memcpy(dst, p, n);
	b->stage_len += n;
	b->bytes += n;
	if (last && (uint8_t *)last->iov_base + last->iov_len == dst) {
		last->iov_len += n;
		return;
	}
	b->niov++;
	b->iov[b->niov].iov_base = dst;
	b->iov[b->niov].iov_len = n;
}

static void refer(PcapBatch *b, const void *p, size_t n)
{
	b->niov++;
	b->iov[b->niov].iov_base = (void *)p;
	b->iov[b->niov].iov_len = n;
	b->bytes += n;
}

/* The snaplen and timestamp divisor of interface ifid. Interfaces are only
 * ever added and never change, so the batch's copy is refreshed only for an
 * id it has not seen. */
static int iface_params(PcapBatch *b, uint32_t ifid, uint32_t *ret_snaplen, uint64_t *ret_div)
{
	PcapWriter *w = b->w;
	int r = 0;

	if (ifid >= b->nsnaplens) {
		pthread_mutex_lock(&w->iflock);
		if (ifid >= w->nifaces) {
			r = -ENOENT;
		} else {
			uint32_t *n = realloc(b->snaplens, w->nifaces * sizeof(*n));
			uint64_t *d = n ? realloc(b->ts_divs, w->nifaces * sizeof(*d)) : NULL;

			if (n)
				b->snaplens = n;
			if (d)
				b->ts_divs = d;
			if (!n || !d) {
				r = -ENOMEM;
			} else {
				for (uint32_t i = b->nsnaplens; i < w->nifaces; i++) {
					n[i] = w->ifaces[i].snaplen;
					d[i] = w->ifaces[i].ts_div ? w->ifaces[i].ts_div : 1;
				}
				b->nsnaplens = w->nifaces;
			}
		}
		pthread_mutex_unlock(&w->iflock);
		if (r < 0)
			return r;
	}
	*ret_snaplen = b->snaplens[ifid];
	*ret_div = b->ts_divs[ifid];
	return 0;
}

static int queue(PcapBatch *b, uint32_t ifid, uint64_t ts_ns, uint32_t origlen, const struct iovec *parts,
		 unsigned nparts, bool copy)
{
	PcapWriter *w = b->w;
	uint8_t hdr[NG_EPB_HDR];
	size_t caplen = 0, hlen, staged, tail;
	uint32_t snaplen;
	uint64_t div;
	int r;

	if (nparts > PCAPWR_MAX_PARTS)
		return -E2BIG;
	if (pcapwr_batch_full(b)) {
		/* Room first: a full batch is written before the record is added,
		 * so a caller that checks pcapwr_batch_full() after each queue can
		 * hand the batch to another thread instead. */
		r = flush(b, false, NULL);
		if (r < 0)
			return r;
	}
	r = iface_params(b, ifid, &snaplen, &div);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < nparts; i++) {
		caplen += parts[i].iov_len;
	}
	if (caplen > snaplen)
		return -EMSGSIZE;

	if (w->format == PCAP_FORMAT_PCAPNG) {
		uint32_t total = (uint32_t)(NG_EPB_HDR + caplen + pad4(caplen) + 4);
		uint64_t t = div == 1 ? ts_ns : ts_ns / div;

		put32(hdr, NG_EPB);
		put32(hdr + 4, total);
		put32(hdr + 8, ifid);
		put32(hdr + 12, (uint32_t)(t >> 32));
		put32(hdr + 16, (uint32_t)t);
		put32(hdr + 20, (uint32_t)caplen);
		put32(hdr + 24, origlen);
		hlen = NG_EPB_HDR;
		tail = pad4(caplen) + 4;
	} else {
		uint64_t frac = ts_ns % NSEC_PER_SEC;

		put32(hdr, (uint32_t)(ts_ns / NSEC_PER_SEC));
		put32(hdr + 4, (uint32_t)(w->format == PCAP_FORMAT_PCAP_NS ? frac : frac / NSEC_PER_USEC));
		put32(hdr + 8, (uint32_t)caplen);
		put32(hdr + 12, origlen);
		hlen = PCAP_REC_HDR;
		tail = 0;
	}
	staged = hlen + tail + caplen; /* an upper bound */
	/* Worst case iovecs: header, each part, tail. */
	if (b->stage_len + staged > b->stage_cap || b->niov + 2 + nparts > b->w->batch_iov) {
		r = flush(b, false, NULL);
		if (r < 0)
			return r;
	}
	if (b->nrec == b->cap_rec) {
		size_t cap = b->cap_rec ? b->cap_rec * 2 : 1024;
		size_t *n = realloc(b->rec_end, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		b->rec_end = n;
		b->cap_rec = cap;
	}
	stage(b, hdr, hlen);
	for (unsigned i = 0; i < nparts; i++) {
		if (parts[i].iov_len == 0)
			continue;
		if (copy || parts[i].iov_len < PCAPWR_STAGE_MIN)
			stage(b, parts[i].iov_base, parts[i].iov_len);
		else
			refer(b, parts[i].iov_base, parts[i].iov_len);
	}
	if (tail) {
		static const uint8_t zero[4];
		uint8_t t[8];

		memcpy(t, zero, 4);
		put32(t + pad4(caplen), (uint32_t)(NG_EPB_HDR + caplen + tail));
		stage(b, t, tail);
	}
	b->rec_end[b->nrec++] = b->bytes;
	return 0;
}

bool pcapwr_batch_full(const PcapBatch *b)
{
	return b->bytes >= b->w->batch_bytes || b->niov + 2 + PCAPWR_MAX_PARTS > b->w->batch_iov;
}

int pcapwr_queue(PcapBatch *b, uint32_t ifid, uint64_t ts_ns, uint32_t origlen, const struct iovec *parts,
		 unsigned nparts)
{
	return queue(b, ifid, ts_ns, origlen, parts, nparts, false);
}

int pcapwr_queue_copy(PcapBatch *b, uint32_t ifid, uint64_t ts_ns, uint32_t origlen, const struct iovec *parts,
		      unsigned nparts)
{
	return queue(b, ifid, ts_ns, origlen, parts, nparts, true);
}

int pcapwr_sync(PcapWriter *w, ErrBuf *err)
{
	int r = 0;

	if (!w->spool)
		return 0;
	pthread_mutex_lock(&w->lock);
	r = spool_sync(w->spool, err);
	if (r < 0) {
		w->failed = true;
		w->offset = spool_whole(w->spool);
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

bool pcapwr_spooled(const PcapWriter *w, bool *ret_direct)
{
	if (ret_direct)
		*ret_direct = w->spool && spool_direct(w->spool);
	return w->spool != NULL;
}

uint64_t pcapwr_offset(const PcapWriter *w)
{
	return w->offset;
}

uint64_t pcapwr_whole(PcapWriter *w)
{
	uint64_t n;

	if (w->spool)
		return w->base + spool_whole(w->spool); /* its own lock: never waits for a flush */
	pthread_mutex_lock(&w->lock);
	n = w->base + w->offset; /* plain writes are done when a flush returns */
	pthread_mutex_unlock(&w->lock);
	return n;
}

/* pcapng: the ISBs of interfaces with statistics, in a new buffer (*ret NULL
 * when there is none). */
static int build_isbs(PcapWriter *w, uint8_t **ret, size_t *ret_len)
{
	size_t n = 0, o = 0;
	uint8_t *p;

	*ret = NULL;
	*ret_len = 0;
	if (w->format != PCAP_FORMAT_PCAPNG)
		return 0;
	pthread_mutex_lock(&w->iflock);
	for (uint32_t i = 0; i < w->nifaces; i++)
		if (w->ifaces[i].stats.have)
			n++;
	p = n ? malloc(n * ISB_MAX) : NULL;
	for (uint32_t i = 0; p && i < w->nifaces; i++)
		if (w->ifaces[i].stats.have)
			o += build_isb(p + o, i, &w->ifaces[i]);
	pthread_mutex_unlock(&w->iflock);
	if (n && !p)
		return -ENOMEM;
	*ret = p;
	*ret_len = o;
	return 0;
}

int pcapwr_finish_at(PcapWriter *w, bool fsync, uint64_t *ret_offset, ErrBuf *err)
{
	PcapBatch empty = {.w = w};
	struct iovec iov[2];
	uint8_t *isbs = NULL;
	size_t isb_len = 0;
	uint64_t offset;
	int r;

	/* Slot 0: header bytes; slot 1: the statistics blocks, after every
	 * record (they describe the whole capture). */
	empty.iov = iov;
	if (build_isbs(w, &isbs, &isb_len) < 0) {
		pcapwr_free(w);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	if (isb_len) {
		empty.niov = 1;
		iov[1].iov_base = isbs;
		iov[1].iov_len = isb_len;
		empty.bytes = isb_len;
	}
	pthread_mutex_lock(&w->lock);
	r = flush_locked(&empty, true, err);
	free(isbs);
	if (r == 0 && w->spool) {
		uint64_t end = 0;

		r = spool_finish(w->spool, fsync, &end, err);
		/* As a plain write would leave it: the position at the end. */
		if (r == 0 && lseek(w->fd, (off_t)(w->base + end), SEEK_SET) < 0)
			r = errbuf_errno(err, "seeking to the end of the file");
		fsync = false;
	}
	if (r == 0 && fsync) {
		r = w->io->fsync(w->io, w->fd);
		if (r < 0)
			errbuf_set(err, r, "fsync failed: %s", strerror(-r));
	}
	offset = w->offset;
	pthread_mutex_unlock(&w->lock);
	pcapwr_free(w);
	if (r == 0 && ret_offset)
		*ret_offset = offset;
	return r;
}

int pcapwr_finish(PcapWriter *w, bool fsync, ErrBuf *err)
{
	return pcapwr_finish_at(w, fsync, NULL, err);
}

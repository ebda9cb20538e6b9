/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Writes pcap (µs or ns) or pcapng to a descriptor in large batches: records are
 * queued as spans that point at the caller's memory (ring blocks, mapped input;
 * small spans are copied into a staging area) and a flush hands the whole batch
 * to one writev() — at least 256 KiB per system call when traffic allows, never
 * one system call per packet. Spool mode (direct) copies the batches into a
 * spool (spool.h) whose writer thread writes them, past the page cache where
 * the file system allows, while the caller goes on.
 *
 * Invariants:
 *  - the file holds only whole records at every moment a flush returns: when a
 *    write fails part way on a regular file, the file is truncated back to the
 *    end of its last whole record (the writer may start at any offset of the
 *    file: bytes before it are kept); on a pipe, or a file opened O_APPEND or
 *    whose offset is unknown, nothing is truncated and the error is returned.
 *    Spool mode: a flush returns once its records are copied and queued; the
 *    file holds them whole as soon as the spool's writer has written them (in
 *    order, one job's write time later; pcapwr_finish() waits for all). A
 *    failed write cuts the file back to the last flush it holds entirely and
 *    shows as the error of a later flush or of pcapwr_finish();
 *  - memory behind queued spans must stay valid until the next pcapwr_flush()
 *    (or pcapwr_finish()) returns; queueing may flush early, which only reads
 *    spans already queued;
 *  - the writer never closes the descriptor it was given and seeks it only in
 *    spool mode, once, at pcapwr_finish(): to the end of the file, where plain
 *    writes would have left it (spool writes are positional).
 *
 * Threads: each thread that writes uses its own PcapBatch (a batch is never
 * shared). pcapwr_flush(), pcapwr_add_interface() and pcapwr_finish() may be
 * called from any thread: they are serialised inside the writer, and records
 * of different batches never interleave. pcapwr_offset() is read once no
 * flush runs (e.g. after every writing thread was joined).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/io.h"
#include "common/util.h"
#include "pcap/decode.h"
#include "pcap/record.h"

#define PCAPWR_DEFAULT_BATCH (1024u * 1024) /* bytes queued before a batch is written */

typedef struct PcapWriter PcapWriter;
typedef struct PcapBatch PcapBatch;

#define PCAPWR_MAX_IFNAME 256u  /* bytes of a pcapng if_name */
#define PCAPWR_MAX_IFDESC 1024u /* bytes of a pcapng if_description */

/* A pcapng interface as the output describes it. */
typedef struct PcapWrInterface {
	uint32_t linktype;
	uint32_t snaplen;        /* 1..PCAP_MAX_SNAPLEN */
	const char *name;        /* if_name, or NULL; at most PCAPWR_MAX_IFNAME bytes */
	const char *description; /* if_description, or NULL; at most PCAPWR_MAX_IFDESC bytes */
	unsigned tsresol;        /* timestamps in units of 10^-tsresol s, 1..9; 0 = 9 (ns) */
} PcapWrInterface;

typedef struct PcapWriterConfig {
	PcapFormat format;
	uint32_t linktype;             /* interface 0 */
	uint32_t snaplen;              /* interface 0; 1..PCAP_MAX_SNAPLEN */
	const char *ifname;            /* interface 0 name for pcapng if_name, or NULL */
	const PcapWrInterface *iface0; /* pcapng: interface 0 in full (overrides linktype, snaplen
					  and ifname), or NULL */
	size_t batch_bytes;            /* 0 = PCAPWR_DEFAULT_BATCH */
	unsigned batch_iov;            /* record iovecs per batch, 67..65536; 0 = IOV_MAX - 1, so that a
					  batch is one writev(). More means fewer, larger batches written
					  in several writev() calls: for a writer fed by another thread */
	bool direct;                   /* spool mode on a regular file (else ignored): a writer thread,
					  O_DIRECT where the file system takes it and the start is
					  aligned, preallocation. See spool.c. */
	const IoOps *io;               /* NULL = io_posix */
} PcapWriterConfig;

/* Prepares a writer for fd; the file header is written with the first flush. */
int pcapwr_new(int fd, const PcapWriterConfig *cfg, PcapWriter **ret, ErrBuf *err);
/* Adds an interface. pcapng: any link type, returns its id. Classic pcap: only
 * the link type of interface 0 (then *ret_ifid = 0); another is -EPROTOTYPE. */
int pcapwr_add_interface(PcapWriter *w, uint32_t linktype, uint32_t snaplen, const char *ifname, uint32_t *ret_ifid,
			 ErrBuf *err);

/* pcapwr_add_interface() with every IDB field: -ENAMETOOLONG for a name or
 * description over its bound (err names it). */
int pcapwr_add_interface_desc(PcapWriter *w, const PcapWrInterface *desc, uint32_t *ret_ifid, ErrBuf *err);
/* pcapng: statistics of interface ifid, written as an Interface Statistics
 * Block after the last record by pcapwr_finish() (a later call replaces).
 * Classic pcap: -EPROTOTYPE. */
int pcapwr_set_interface_stats(PcapWriter *w, uint32_t ifid, const PcapIfStats *stats, ErrBuf *err);

/* A batch bound to w; each thread that writes uses its own. */
int pcapwr_batch_new(PcapWriter *w, PcapBatch **ret);
void pcapwr_batch_free(PcapBatch *b); /* frees; does not flush. NULL is fine */

/* Queues one record: the concatenation of parts[0..nparts) (caplen = their sum,
 * which must not exceed the interface snaplen), captured at ts_ns, origlen on the
 * wire (>= caplen). Returns 0, -ENOENT (unknown ifid), -EMSGSIZE (caplen over the
 * snaplen), -E2BIG (more than 64 parts), -ENOMEM or -errno from an early flush. */
int pcapwr_queue(PcapBatch *b, uint32_t ifid, uint64_t ts_ns, uint32_t origlen, const struct iovec *parts,
		 unsigned nparts);
/* Like pcapwr_queue but copies the bytes: the caller's memory may change at once. */
int pcapwr_queue_copy(PcapBatch *b, uint32_t ifid, uint64_t ts_ns, uint32_t origlen, const struct iovec *parts,
		      unsigned nparts);
/* Whether the batch holds batch_bytes (or its iovec limit): the next queue call
 * would write it first. A producer that must not block on the write flushes a
 * full batch in another thread and goes on with a second batch. */
bool pcapwr_batch_full(const PcapBatch *b);
/* Writes the batch, after the file header if not written yet and the IDBs of
 * pcapng interfaces added since the last flush. */
int pcapwr_flush(PcapBatch *b, ErrBuf *err);

/* Spool mode: waits until every flushed record is in the file (else 0 at
 * once). Returns a failed write's error. */
int pcapwr_sync(PcapWriter *w, ErrBuf *err);
/* Whether the writer spools (a writer thread), and whether O_DIRECT is on. */
bool pcapwr_spooled(const PcapWriter *w, bool *ret_direct);

/* Bytes of whole records and headers written to the file so far (spool mode:
 * flushed, written or not yet). */
uint64_t pcapwr_offset(const PcapWriter *w);
/* Bytes from the file's start (the writer's first offset included) that hold
 * whole records and headers and keep them: written, not only flushed (spool
 * mode: the spool's last completed commit point). Any thread, any time until
 * pcapwr_finish() or pcapwr_free(): a reader of the growing file (an upload
 * while capturing) reads below this and never sees a byte change. */
uint64_t pcapwr_whole(PcapWriter *w);
/* Writes the header if nothing was written yet (an empty capture is a valid
 * file), optionally fsyncs, frees w. Does not close the descriptor. Every batch
 * must have been flushed and freed. */
int pcapwr_finish(PcapWriter *w, bool fsync, ErrBuf *err);
/* pcapwr_finish() that also returns the file's final pcapwr_offset(), header
 * of an empty capture included (ret_offset may be NULL). */
int pcapwr_finish_at(PcapWriter *w, bool fsync, uint64_t *ret_offset, ErrBuf *err);
void pcapwr_free(PcapWriter *w); /* without writing; NULL is fine */

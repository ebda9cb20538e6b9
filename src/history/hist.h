/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The history store: sampled packets recorded into time-ordered segment files
 * in one directory, and queries over them ("the newest N packets that match F
 * between T1 and T2"). docs/FORMAT.md has the byte layouts and the rules; the
 * short version:
 *
 *  - a segment is an ordinary classic pcap file (nanosecond timestamps, one
 *    link type, snaplen 160 by default) that tcpdump reads, cut into blocks
 *    of up to 256 packets / 64 KiB, plus an index sidecar with each block's
 *    offset, time range and a summary of its addresses, ports and protocols;
 *  - packets go into an open segment (open-<seq>.pcap.tmp), one write per
 *    block; a segment is sealed when it reaches segment_bytes or is
 *    segment_age_ns old: data fsynced, index written and fsynced under a
 *    temporary name, data renamed to seg-<seq>-<first>-<last>.pcap, directory
 *    fsynced, index renamed to .idx, directory fsynced. Data before index.
 *    A segment that reaches its size in hist_add() is only queued for that
 *    publication; hist_tick() (or the next hist_add() once two wait) does it,
 *    so capture threads do not wait for fsyncs;
 *  - start-up recovery (a writer's hist_open) removes unpublished (*.tmp)
 *    files and index files without data, and rebuilds a missing or invalid
 *    index from its pcap. SIGKILL at any moment loses at most the open
 *    segments (the unsealed tail, at most segment_age_ns of packets);
 *  - retention deletes whole sealed segments, oldest first, by age and by the
 *    total size of the directory, never the newest sealed one;
 *  - a failed write (ENOSPC, EIO) suspends recording: hist_add() returns the
 *    error and drops packets until hist_tick() finds it can write again.
 *
 * Threads. One store per directory per machine (a writer takes an flock on
 * DIR/.lock; read-only stores take none). hist_add(), hist_tick(), hist_seal()
 * may be called from any thread and serialise on the store's writer lock
 * (several capture workers may add concurrently). hist_query() and
 * hist_stats() may run in any number of other threads at the same time; they
 * hold the catalogue lock only to take references, never during I/O.
 *
 * What a query sees: every sealed segment, and in the process that writes,
 * also the blocks of open segments already written to their file (a partial
 * block is written once it is block_flush_ns old, so a query misses at most
 * the last second of packets). A read-only store (another process) sees the
 * segments sealed when they were listed at hist_open(); a segment deleted by
 * retention meanwhile is skipped.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/io.h"
#include "common/util.h"
#include "filter/filter.h"
#include "pcap/record.h"

#define HIST_NO_LIMIT UINT64_MAX
#define HIST_DEFAULT_SNAPLEN 160u
#define HIST_DEFAULT_SEGMENT_BYTES (64ull * 1024 * 1024)
#define HIST_DEFAULT_SEGMENT_AGE_NS (60ull * NSEC_PER_SEC)
#define HIST_DEFAULT_MAX_AGE_NS (24ull * 3600 * NSEC_PER_SEC)
#define HIST_DEFAULT_MAX_BYTES (1024ull * 1024 * 1024)
#define HIST_DEFAULT_BLOCK_PACKETS 256u
#define HIST_DEFAULT_BLOCK_BYTES (64u * 1024)
#define HIST_DEFAULT_BLOCK_FLUSH_NS (1ull * NSEC_PER_SEC)
#define HIST_MIN_SEGMENT_BYTES (64ull * 1024)
#define HIST_MAX_SEGMENT_BYTES (16ull * 1024 * 1024 * 1024) /* keeps its index well under HISTFMT_MAX_INDEX */
#define HIST_MAX_BLOCK_PACKETS 65536u
#define HIST_MAX_BLOCK_BYTES (16u * 1024 * 1024)
#define HIST_MAX_OPEN 4u                    /* open segments at once: one per link type */
#define HIST_MAX_QUERY_PACKETS 1000000ull   /* packets one query may return */
#define HIST_RETRY_NS (1ull * NSEC_PER_SEC) /* a suspended writer tries again after this */

typedef struct HistStore HistStore;

/* HIST_NO_LIMIT in a 64-bit field means no such limit: no sealing by age, no
 * retention by age or size (an import keeps what it is given). */
typedef struct HistConfig {
	const char *dir;         /* the store's directory; a writer creates it (one level) if missing */
	bool read_only;          /* no lock, no recovery, no writing: tools beside a running recorder */
	uint32_t snaplen;        /* bytes kept per packet, 1..PCAP_MAX_SNAPLEN; 0 = 160 */
	uint64_t segment_bytes;  /* seal at this data size, 64 KiB..16 GiB; 0 = 64 MiB (at most max_bytes / 4) */
	uint64_t segment_age_ns; /* seal this long after the segment's first packet (hist_tick); 0 = 60 s */
	uint64_t max_age_ns;     /* retention: segments whose last packet is older; 0 = 24 h */
	uint64_t max_bytes;      /* retention: total bytes of the directory's segments; 0 = 1 GiB */
	uint32_t block_packets;  /* index granularity, 1..65536; 0 = 256 */
	uint32_t block_bytes;    /* bytes of records per block, up to 16 MiB; 0 = 64 KiB */
	uint64_t block_flush_ns; /* a partial block is written (visible) this old (hist_tick); 0 = 1 s */
	const IoOps *io;         /* every write, fsync, rename, unlink; NULL = io_posix */
} HistConfig;

/* What start-up recovery did (writer stores). */
typedef struct HistOpenReport {
	unsigned removed_temp;   /* unpublished files (*.tmp) removed */
	unsigned removed_orphan; /* index files without their data file removed */
	unsigned removed_empty;  /* published segments without a packet removed */
	unsigned rebuilt;        /* indexes rebuilt from their pcap (missing or invalid) */
	unsigned truncated;      /* data files cut back to their last whole record */
	unsigned unreadable;     /* data files that are not pcapd segments: left alone, ignored */
	unsigned segments;       /* sealed segments in the store after recovery */
} HistOpenReport;

/* Opens (writer: creates, locks and recovers) the store. -EBUSY when another
 * writer holds the directory, -ENOENT for a read-only store whose directory
 * does not exist, -EINVAL for a bad setting (err names it). ret_report may be
 * NULL. */
int hist_open(const HistConfig *cfg, HistStore **ret, HistOpenReport *ret_report, ErrBuf *err);
/* Seals what is open (hist_seal), then frees the store; the sealing error, if
 * any, is returned (the store is freed anyway). NULL is fine. */
int hist_close(HistStore *s, ErrBuf *err);
/* Frees without sealing: open segments are abandoned (their files removed
 * where possible; recovery removes the rest). NULL is fine. */
void hist_free(HistStore *s);

/* One packet, as the capture engine's sink gets it. */
typedef struct HistPacket {
	uint64_t ts_ns;            /* ns since the epoch */
	uint32_t origlen;          /* length on the wire */
	uint32_t linktype;         /* LINKTYPE_* of its interface */
	const struct iovec *parts; /* the frame; copied (up to snaplen bytes) before return */
	unsigned nparts;
} HistPacket;

/* Records one packet (truncated to snaplen). 0, or -errno: -ENOSPC/-EIO and
 * the like when a write failed or recording is suspended (the packet is not
 * recorded; err says what failed and where), -EROFS for a read-only store,
 * Packets from the capture engine's sink can be
 * passed on directly: the spans may be released after the call. */
int hist_add(HistStore *s, const HistPacket *p, ErrBuf *err);

/* Periodic upkeep, about once a second, with the current time (ns since the
 * epoch, CLOCK_REALTIME): writes partial blocks that are block_flush_ns old,
 * seals segments that are segment_age_ns old, applies retention, and when
 * recording is suspended retries (at most every HIST_RETRY_NS). Returns 0 or
 * the -errno of a failed step (err says which); recording state is in
 * hist_stats(). */
int hist_tick(HistStore *s, uint64_t now_ns, ErrBuf *err);

/* Seals every open segment now (shutdown, end of an import). */
int hist_seal(HistStore *s, ErrBuf *err);

typedef struct HistQuery {
	uint64_t from_ns, to_ns; /* window, both ends included; from_ns <= to_ns */
	const Filter *filter;    /* NULL or empty = every packet */
	uint64_t max_packets;    /* 1..HIST_MAX_QUERY_PACKETS: the newest ones when more match */
	bool pcapng;             /* write pcapng; classic pcap (ns) otherwise, switched to
				    pcapng only when the answer holds several link types */
} HistQuery;

typedef struct HistQueryResult {
	uint64_t packets;          /* written */
	uint64_t bytes;            /* sum of their captured lengths */
	bool limited;              /* max_packets reached: older matches were left out */
	bool pcapng;               /* what was written */
	uint64_t segments;         /* segments overlapping the window */
	uint64_t segments_skipped; /* unreadable, or a link type the filter cannot be compiled for */
	uint64_t blocks;           /* blocks overlapping the window */
	uint64_t blocks_skipped;   /* ruled out by their summary */
	uint64_t blocks_read;      /* whose packets were tested */
} HistQueryResult;

/* Writes the newest q->max_packets packets within the window that match the
 * filter to fd, in time order (ties in recording order), as a pcap file
 * (empty file when nothing matches). -EINVAL (bad query or filter: err says
 * which), -errno of the output. The descriptor is neither closed nor seeked. */
int hist_query(HistStore *s, const HistQuery *q, int fd, HistQueryResult *ret, ErrBuf *err);

typedef struct HistStats {
	uint64_t segments;              /* sealed */
	uint64_t open_segments;         /* being written (writer stores) */
	uint64_t packets, bytes;        /* recorded: sealed segments and written blocks of open ones */
	uint64_t wire_bytes;            /* their original lengths */
	uint64_t disk_bytes;            /* data and index files of the store */
	uint64_t first_ts, last_ts;     /* time span, ns since the epoch; 0, 0 when empty */
	uint64_t dropped;               /* packets not recorded because of write errors, since hist_open */
	uint64_t unreadable;            /* segments skipped as unreadable */
	bool recording;                 /* false while a write error suspends recording */
	int error;                      /* that error (-errno), 0 when recording */
	char error_msg[sizeof(ErrBuf)]; /* what failed, where */
} HistStats;

int hist_stats(HistStore *s, HistStats *ret, ErrBuf *err);

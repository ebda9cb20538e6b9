/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/history: the store's state, shared by store.c (open,
 * recovery, catalogue, retention, statistics), writer.c (recording, sealing)
 * and query.c.
 *
 * Locks. `lock` guards the catalogue (segs[], each segment's refs, the block
 * arrays of open segments, the counters and the recording status). `wlock`
 * guards the writer's own state (open[], pending[], next_seq, now): hist_add,
 * hist_tick and hist_seal hold it throughout, and take `lock` inside it for
 * the moments they change the catalogue. Queries take only `lock`, only to
 * take references and copy block entries. No I/O happens under `lock`.
 *
 * Segment lifetime. A HistSeg is in segs[] from its creation (open segment)
 * or discovery (sealed one) until retention or abandonment removes it; each
 * query that uses it holds a reference, and the last reference closes its
 * descriptor. Sealed segments never change on disk, so a query may map their
 * data without a lock; an open segment's file only grows past the blocks a
 * query copied (a failed write is cut back to a block boundary, never below).
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "history/hist.h"
#include "history/histfmt.h"

typedef struct HistSeg {
	unsigned refs; /* the catalogue's and each query's; under lock */
	uint64_t seq;
	uint32_t linktype, snaplen;
	char name[HISTFMT_NAME_MAX]; /* data file: open-<seq>.pcap.tmp, then seg-...pcap */
	int fd;                      /* data file, or -1 until a query or load opens it */
	bool sealed;                 /* published: blocks and file fixed */
	bool loaded;                 /* blocks known (index checked, or rebuilt in memory) */
	bool unreadable;             /* loading failed: skipped by queries */
	uint64_t first_ts, last_ts;  /* from the name until loaded; running while open */
	HistIndexInfo info;          /* loaded: the index header; open: totals of written blocks */
	HistBlock *blocks;           /* loaded or open: written blocks in file order */
	size_t n_blocks, cap_blocks;
	uint64_t *pmax;      /* sealed and loaded: pmax[i] = max(max_ts of blocks 0..i) */
	uint64_t *smin;      /* smin[i] = min(min_ts of blocks i..n-1) */
	uint64_t disk_bytes; /* data + index files */
} HistSeg;

/* An open segment being written by this process. */
typedef struct HistOpen {
	HistSeg *seg;          /* NULL: slot unused */
	uint64_t size;         /* bytes of whole blocks in the file, header included */
	uint64_t first_ts;     /* the segment's first packet: age sealing */
	HistBlock cur;         /* the block being filled (cur.packets == 0: none) */
	uint64_t cur_first_ts; /* its first packet: partial-block flush */
	uint64_t cur_wire;     /* its packets' original lengths */
	uint8_t *buf;          /* cur's records */
	size_t buf_len, buf_cap;
} HistOpen;

/* Publication steps of a sealing segment, in order; a failed step is retried
 * from where it stopped. */
typedef enum SealStage {
	SEAL_SYNC_DATA,    /* fsync the data file */
	SEAL_WRITE_INDEX,  /* write and fsync <final>.idx.tmp */
	SEAL_RENAME_DATA,  /* open-<seq>.pcap.tmp -> seg-...pcap */
	SEAL_SYNC_DIR1,    /* make that rename durable before the index appears */
	SEAL_RENAME_INDEX, /* <final>.idx.tmp -> <final>.idx */
	SEAL_SYNC_DIR2,
	SEAL_DONE,
} SealStage;

typedef struct HistSeal {
	HistSeg *seg;
	SealStage stage;
	char data_name[HISTFMT_NAME_MAX]; /* final names */
	char index_name[HISTFMT_NAME_MAX];
} HistSeal;

struct HistStore {
	HistConfig cfg; /* defaults applied; dir points at dir below */
	char *dir;
	const IoOps *io;
	int lock_fd; /* writer: flock()ed DIR/.lock */

	pthread_mutex_t lock;
	HistSeg **segs; /* by seq: sealed, sealing and open */
	size_t n_segs, cap_segs;
	bool suspended; /* recording stopped by a write error */
	int error;      /* its -errno */
	ErrBuf error_msg;
	uint64_t dropped;
	uint64_t unreadable;

	pthread_mutex_t wlock;
	HistOpen open[HIST_MAX_OPEN];
	HistSeal *pending; /* segments whose publication has not finished */
	size_t n_pending, cap_pending;
	uint64_t next_seq;
	uint64_t now;      /* last hist_tick() time; 0 before the first */
	uint64_t retry_at; /* suspended: next attempt */
};

/* store.c */
int hist_path(const HistStore *s, const char *name, char *out, size_t cap, ErrBuf *err);
void hist_seg_unref(HistStore *s, HistSeg *g);        /* takes lock */
void hist_seg_unref_locked(HistStore *s, HistSeg *g); /* lock held */
int hist_catalog_insert(HistStore *s, HistSeg *g);    /* lock held; -ENOMEM */
void hist_catalog_remove(HistStore *s, HistSeg *g);   /* lock held; drops the catalogue's reference */
HistSeg *hist_seg_new(uint64_t seq);
/* Loads a sealed segment's blocks (index, or rebuilt in memory) if not yet:
 * read-only stores on demand. 0, or -errno (the segment is then unreadable). */
int hist_seg_load(HistStore *s, HistSeg *g, ErrBuf *err);
/* Stops recording after a write error (wlock held). Returns code. */
int hist_suspend(HistStore *s, int code, const ErrBuf *why);
/* Retention by age and size (wlock held). */
int hist_retention(HistStore *s, ErrBuf *err);
int hist_write_all_at(const IoOps *io, int fd, const void *buf, size_t len, uint64_t off);
/* Writes bytes to <name>.tmp, fsyncs, closes. */
int hist_write_file(HistStore *s, const char *tmp_name, const uint8_t *p, size_t n, ErrBuf *err);
int hist_fsync_dir(HistStore *s, ErrBuf *err);

/* writer.c */
int hist_seal_all(HistStore *s, ErrBuf *err); /* wlock held */
void hist_writer_free(HistStore *s);          /* abandons open segments */

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A live capture written to a pcap or pcapng file: the capture engine
 * (capture.h) with the pcap writer (pcap/writer.h) as its sink. Each worker
 * queues packets into its own batch and flushes it when the ring block is
 * released. On a pipe that is one large write per block; on a regular file
 * (direct mode) the flush copies the block's records into the writer's spool,
 * whose writer thread writes them in order (O_DIRECT where the file system
 * takes it) while the ring block goes straight back to the kernel. Either way
 * the file ends on a whole record whenever a block's records are written
 * (kill the process at any time and what was written reads cleanly; see
 * pcap/spool.h for the one write's window).
 *
 * Two steps, so that a caller can refuse bad interfaces or a missing
 * CAP_NET_RAW before it creates (or truncates) the output file:
 *
 *   capfile_open()   sockets, filters, rings (capture_open)
 *   capfile_start()  the writer on the caller's descriptor; header written
 *   capfile_run()    captures until a limit, the stop flag or an error
 *   capfile_finish() writes what is left, optionally fsyncs
 *   capfile_free()
 *
 * The descriptor stays the caller's: it is never closed or seeked here.
 * capfile_stats() may be called from any thread while capfile_run() runs, and
 * after it, until capfile_free().
 */

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "capture/capture.h"
#include "common/util.h"
#include "pcap/record.h"

typedef struct CapFile CapFile;

typedef struct CapFileConfig {
	CaptureConfig capture; /* interfaces, snaplen, filters, limits, ring geometry */
	PcapFormat format;     /* classic pcap needs one link type across the interfaces */
	bool direct;           /* O_DIRECT writer mode where the file allows (see pcap/writer.h) */
} CapFileConfig;

/* Opens the capture: every failure of capture_open() (unknown interface, no
 * CAP_NET_RAW, bad program) is reported here, and nothing is written yet. The
 * configuration is copied; the arrays it points to (interface names, filter
 * programs) must stay valid until capfile_free(). */
int capfile_open(const CapFileConfig *cfg, CapFile **ret, ErrBuf *err);

/* Binds the writer to fd and writes the file header at once, so that a reader
 * of a pipe can start and an interrupted capture still leaves a valid file.
 * Classic pcap with interfaces of different link types is -EPROTOTYPE. */
int capfile_start(CapFile *cf, int fd, ErrBuf *err);

/* LINKTYPE_* of interface i of the open capture. */
uint32_t capfile_linktype(const CapFile *cf, unsigned iface);

/* Captures until a limit, *stop becoming non-zero, or an error (the writer's
 * own message in err when a write failed). Returns 0 with the reason, or
 * -errno (then *ret_reason is STOP_REASON_ERROR). Once per CapFile. */
int capfile_run(CapFile *cf, const volatile sig_atomic_t *stop, StopReason *ret_reason, ErrBuf *err);

/* Counters so far (packets and bytes written, kernel drops). Thread-safe
 * against capfile_run(). */
void capfile_stats(CapFile *cf, CaptureStats *ret);

/* After a successful capfile_run(): writes the header if nothing was written,
 * fsyncs if asked, releases the writer. ret_size (may be NULL) receives the
 * file's size in bytes. */
int capfile_finish(CapFile *cf, bool fsync, uint64_t *ret_size, ErrBuf *err);

/* Bytes from the descriptor's start that hold whole records and stay so
 * (pcapwr_whole(): written, not only queued; never a preallocated or
 * half-written tail), for a reader of the growing file such as an upload
 * while capturing. Any thread, from capfile_start() until capfile_free(); after
 * capfile_finish() it is the finished file's length. */
uint64_t capfile_whole(CapFile *cf);

void capfile_free(CapFile *cf); /* NULL is fine; does not close the descriptor */

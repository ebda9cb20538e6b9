/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A live capture written to a sequence of files: the capture engine
 * (capture.h) with the pcap writer as its sink, like tofile.h, but a file
 * that would grow past file_size is finished and the next one begun, so
 * that a long capture is a series of files of bounded size, each complete
 * (header, whole records, fsynced) the moment it is handed over.
 *
 * The caller owns the files: ops->open gives the descriptor of file number
 * index (1, 2, …), ops->close takes it back once the file is finished, to
 * publish it (rename it into place, drop the oldest of a ring) or, when the
 * capture failed, to throw it away. Every file opened is closed exactly once.
 *
 *   caprot_open()   sockets, filters, rings (capture_open): nothing written
 *   caprot_run()    file 1, then captures until a limit, the stop flag or an
 *                   error, rotating; the last file is closed before it returns
 *   caprot_free()
 *
 * Sizes: a file holds at most file_size bytes, headers included, unless its
 * first record alone is larger (a record is never split). file_size 0: one
 * file for the whole capture. A file is begun only for a record that goes
 * into it, so only the first file can be empty (a capture that saw nothing).
 *
 * One writer thread: cfg.capture.workers must be 0 or 1. caprot_stats() may
 * be called from any thread while caprot_run() runs, and after it.
 */

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "capture/capture.h"
#include "common/util.h"
#include "pcap/record.h"

typedef struct CapRotate CapRotate;

/* What a finished file holds. */
typedef struct CapRotateFile {
	uint64_t index;   /* 1, 2, … */
	uint64_t size;    /* bytes, headers included */
	uint64_t packets; /* records in it */
	bool complete;    /* false: the capture failed while writing it */
} CapRotateFile;

typedef struct CapRotateOps {
	/* Opens file index for writing (empty, at offset 0): *ret_fd. */
	int (*open)(void *ctx, uint64_t index, int *ret_fd, ErrBuf *err);
	/* Takes file back (fsynced when complete) and closes fd. A failure
	 * stops the capture with it. */
	int (*close)(void *ctx, int fd, const CapRotateFile *f, ErrBuf *err);
} CapRotateOps;

typedef struct CapRotateConfig {
	CaptureConfig capture; /* interfaces, snaplen, filters, limits, ring geometry; one worker */
	PcapFormat format;     /* classic pcap needs one link type across the interfaces */
	bool direct;           /* O_DIRECT writer mode where the file allows (pcap/writer.h) */
	uint64_t file_size;    /* bytes per file before the next; 0 = one file */
	const CapRotateOps *ops;
	void *ctx;
} CapRotateConfig;

/* Opens the capture (every failure of capture_open() is reported here) and
 * checks the configuration. The arrays the configuration points to must stay
 * valid until caprot_free(). */
int caprot_open(const CapRotateConfig *cfg, CapRotate **ret, ErrBuf *err);

/* Captures into files until a limit, *stop becoming non-zero, or an error.
 * Returns 0 with the reason, or -errno (then *ret_reason is
 * STOP_REASON_ERROR) with err: the writer's or the ops' own message. Once per
 * CapRotate. */
int caprot_run(CapRotate *r, const volatile sig_atomic_t *stop, StopReason *ret_reason, ErrBuf *err);

/* After caprot_run() failed: whether writing the files failed (the writer or
 * the ops), rather than the capture itself. */
bool caprot_sink_failed(const CapRotate *r);

/* Counters so far (packets and bytes written, kernel drops) and files begun. */
void caprot_stats(CapRotate *r, CaptureStats *ret, uint64_t *ret_files);

void caprot_free(CapRotate *r); /* NULL is fine */

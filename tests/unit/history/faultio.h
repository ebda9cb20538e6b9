/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A fault-injecting IoOps for the history tests (SQLite's test6.c idea):
 * every operation but close() is counted, and the Nth can
 *  - fail once with a given error (a full disk for one call, an EIO), or
 *  - "crash": that call and every later one fail without touching the disk,
 *    as if the process had been killed right before it (close() still closes,
 *    as the kernel would). fault_power_cut() then also takes back what was
 *    never fsynced: each file the layer wrote is cut to its size at its last
 *    fsync (0 if none), which is what a power cut may leave.
 * `full` makes every write and fsync fail with ENOSPC until cleared: a disk
 * that stays full for a while.
 */

#include <stdbool.h>
#include <sys/types.h>

#include "common/io.h"

#define FAULT_MAX_FILES 256

typedef struct FaultFile {
	char path[4096];
	int fd;       /* open descriptor, or -1 */
	off_t synced; /* size at the last fsync */
	bool used;
} FaultFile;

typedef struct FaultIo {
	IoOps ops;             /* ops.state points back here */
	unsigned long calls;   /* operations so far (close excluded) */
	unsigned long fail_at; /* 0: none */
	int fail_error;        /* negative errno for fail_at */
	bool crash;            /* fail_at crashes instead of failing once */
	bool crashed;
	bool full;             /* every write and fsync: -ENOSPC */
	const char *failed_op; /* the operation fail_at hit: "open", "fsync", ... */
	FaultFile files[FAULT_MAX_FILES];
} FaultIo;

void fault_init(FaultIo *f);
/* Cuts every file the layer wrote back to its last fsynced size. */
void fault_power_cut(FaultIo *f);

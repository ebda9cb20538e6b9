/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Reads a pcap or pcapng file (or standard input) record by record, driving the
 * pure decoder. Regular files are memory-mapped, so records stay valid until the
 * reader is freed ("stable"); pipes are read in large chunks into a buffer, so a
 * record stays valid only until the next pcaprd_next() call.
 *
 * Known limitation: a regular file that shrinks while it is mapped (truncated
 * by another process) makes the next access past its new end raise SIGBUS,
 * which kills the process. Inputs are expected to be complete files, not ones
 * still being written or rewritten.
 */

#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"
#include "pcap/decode.h"
#include "pcap/record.h"

typedef struct PcapReader PcapReader;

/* Opens path ("-" means standard input) and decodes its first item (the pcap
 * file header or the pcapng SHB): a regular file is mapped, from a pipe a first
 * chunk (up to 1 MiB) is read. -EPROTONOSUPPORT if the input is neither pcap
 * nor pcapng, -EBADMSG if it is empty, its first item truncated or malformed,
 * -errno if it cannot be opened, mapped or read. */
int pcaprd_open(const char *path, PcapReader **ret, ErrBuf *err);
/* Same for an open descriptor, which the reader then owns. name is used in messages. */
int pcaprd_open_fd(int fd, const char *name, PcapReader **ret, ErrBuf *err);
void pcaprd_free(PcapReader *r); /* NULL is fine */

/* 1 with *ret filled, 0 at the end of input, -errno on a read error or malformed
 * input (err says what and at which offset). A truncated last item is not an
 * error: it ends the input and pcaprd_truncated_tail() reports it. */
int pcaprd_next(PcapReader *r, PcapRecord *ret, ErrBuf *err);

/* Bytes at the end of input that did not form a whole item; 0 for a clean file. */
uint64_t pcaprd_truncated_tail(const PcapReader *r);
/* Whether record data stays valid until pcaprd_free() (mapped input). */
bool pcaprd_stable(const PcapReader *r);
PcapFormat pcaprd_format(const PcapReader *r);
/* Interfaces seen so far, and everything known about one (link type, snaplen,
 * timestamp resolution), known once its IDB (or the pcap file header) was
 * decoded: -ENOENT for an interface not seen (yet). */
uint32_t pcaprd_interface_count(const PcapReader *r);
int pcaprd_interface_info(const PcapReader *r, uint32_t ifid, PcapInterfaceInfo *ret);

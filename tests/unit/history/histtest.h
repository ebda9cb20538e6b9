/* SPDX-License-Identifier: MIT */
#pragma once

/* Helpers of the history store tests: numbered test packets, temporary
 * directories, reading a query's answer back, listing a store directory. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "history/hist.h"

#define HT_BASE_TS 1700000000000000000ull
#define HT_FRAME_MAX 400u

/* Packet number id: an Ethernet frame of 60..~360 bytes whose addresses,
 * ports and protocol follow from id (see histtest.c) and whose payload
 * carries id, so that a stored copy (up to any snaplen >= 64) names itself. */
uint32_t ht_frame(uint32_t id, uint8_t *out);
/* The id in a stored frame, or UINT32_MAX if it is not one of ours intact
 * (every byte up to caplen is checked against ht_frame(id)). */
uint32_t ht_frame_id(const uint8_t *data, uint32_t caplen);

/* Adds packet id at ts through hist_add(). */
int ht_add(HistStore *s, uint32_t id, uint64_t ts, ErrBuf *err);

typedef struct HtPkt {
	uint64_t ts;
	uint32_t id, caplen, origlen, linktype;
} HtPkt;

/* Runs q and reads the answer back with the pcap reader. *ret malloc()ed. */
int ht_query(HistStore *s, const HistQuery *q, HtPkt **ret, size_t *ret_n, HistQueryResult *res);

/* mkdtemp under /tmp; ht_rmdir removes the directory and what is in it. */
void ht_tmpdir(char *out, size_t cap);
void ht_rmdir(const char *dir);
/* Files in dir whose name ends with suffix. */
unsigned ht_count(const char *dir, const char *suffix);

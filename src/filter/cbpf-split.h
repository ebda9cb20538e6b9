/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/filter: runs a program on a packet held in two pieces, so that
 * filter_match() can hide an inline VLAN tag from the program (as the kernel
 * does) without copying the frame. The program sees pkt->data[0..caplen)
 * followed by tail[0..tail_len).
 */

#include "filter/cbpf.h"

uint32_t cbpf_run_split(const CbpfProgram *p, const CbpfPacket *pkt, const uint8_t *tail, uint32_t tail_len);

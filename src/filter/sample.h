/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Sampling in the kernel: a 1-in-N random test spliced in front of a classic
 * BPF program, so that unsampled packets are dropped before they are queued
 * (libpcap's filter language has no random primitive; the kernel's classic
 * BPF has the ancillary load SKF_AD_RANDOM, a fresh pseudo-random u32 per run):
 *
 *     ld  [SKF_AD_OFF + SKF_AD_RANDOM]
 *     mod #N
 *     jeq #0, jt 1, jf 0       kept: on to the program
 *     ret #0                   not sampled: dropped
 *     <program>                starts with A = 0, X = 0 as a program expects
 *
 * Each packet is kept with probability 1/N (N up to 2^32 - 1; the modulo bias
 * of a u32 is below N / 2^32). cbpf_run() runs the same test with the
 * CbpfPacket's random callback, so tests can make it deterministic.
 */

#include <stdint.h>

#include "common/util.h"
#include "filter/cbpf.h"

#define FILTER_SAMPLE_INSNS 4u /* instructions the test adds */

/* Writes to *ret a new program: `in` (NULL = accept every packet with snaplen
 * bytes) behind a 1-in-rate test. rate 1 adds no test (a copy of `in`).
 * -EINVAL for rate 0 or snaplen 0, -E2BIG when the result would exceed
 * BPF_MAXINSNS, -ENOMEM; err says which. `in` is not changed. */
int filter_sample(const CbpfProgram *in, uint32_t rate, uint32_t snaplen, CbpfProgram *ret, ErrBuf *err);

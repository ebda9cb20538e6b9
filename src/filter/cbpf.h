/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Classic BPF programs: the one compiled form of every pcapd filter. The same
 * instructions are attached to AF_PACKET sockets (the kernel runs them) and run
 * here in user space by cbpf_run() on stored packets (history, files), so both
 * paths accept exactly the same packets.
 *
 * cbpf_run() implements what the kernel's classic BPF implements, including the
 * ancillary loads (SKF_AD_OFF + SKF_AD_*) for protocol, pkttype, ifindex, VLAN
 * tag/present/TPID and random; the others (payload offset, mark, queue, hatype,
 * rxhash, cpu, netlink attributes) read 0, and SKF_NET_OFF loads fail (cbpf.c
 * says why). It sees the packet as the kernel does: with the outer VLAN tag
 * taken out of the data into metadata.
 *
 * Prefix cbpf_: libpcap owns bpf_*.
 */

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"

typedef struct CbpfProgram {
	struct sock_filter *insns; /* owned, malloc()ed */
	uint16_t len;              /* 1..BPF_MAXINSNS */
} CbpfProgram;

/* The packet as a socket filter sees it. */
typedef struct CbpfPacket {
	const uint8_t *data;           /* link-layer frame, outer VLAN tag removed */
	uint32_t caplen;               /* bytes at data */
	uint32_t wirelen;              /* original length (BPF_LEN loads) */
	uint16_t protocol;             /* SKF_AD_PROTOCOL: ethertype, host order */
	uint16_t vlan_tci;             /* SKF_AD_VLAN_TAG */
	uint16_t vlan_tpid;            /* SKF_AD_VLAN_TPID */
	bool vlan_present;             /* SKF_AD_VLAN_TAG_PRESENT */
	uint8_t pkttype;               /* SKF_AD_PKTTYPE (PACKET_HOST ...) */
	uint32_t ifindex;              /* SKF_AD_IFINDEX */
	uint32_t (*random)(void *ctx); /* SKF_AD_RANDOM; NULL reads 0 */
	void *random_ctx;
} CbpfPacket;

void cbpf_program_free(CbpfProgram *p); /* frees insns, zeroes p; NULL is fine */
/* A conditional jump (jt/jf, 8-bit offsets), as opposed to BPF_JA and the rest. */
bool cbpf_is_cond_jump(uint16_t code);

/* Applies the kernel's rules for classic programs (length, opcodes, forward jumps
 * inside the program, scratch slots < BPF_MEMWORDS, no constant division by zero,
 * known ancillary offsets, last instruction a return): 0 or -EINVAL with err. */
int cbpf_check(const CbpfProgram *p, ErrBuf *err);

/* Runs a checked program; returns its result: 0 = drop, else bytes to keep. */
uint32_t cbpf_run(const CbpfProgram *p, const CbpfPacket *pkt);

/* SPDX-License-Identifier: MIT */
#pragma once

/* Test frames built byte by byte, so each test states the packet it means. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct FrameSpec {
	int fam;               /* 4, 6, 1 for an ARP frame; 0 ends a list */
	const char *src, *dst; /* addresses of family fam */
	int proto;             /* 6, 17, 132, 1, 58 */
	uint16_t sport, dport;
	int vlans;       /* inline tags: 0, 1, 2 */
	uint16_t tpid;   /* outer tag's TPID (default 0x8100); inner is 0x8100 */
	bool frag_first; /* IPv4: MF set, offset 0; IPv6: a fragment header, offset 0 */
	bool frag_later; /* offset > 0: no transport header, "ports" in the payload */
	bool v6_ext;     /* IPv6: hop-by-hop and destination options before the rest */
	bool v6_ah;      /* IPv6: an AH header before the transport header */
	bool ip_opts;    /* IPv4: IHL 6 (one word of NOP options) */
	/* Tunnels: the packet above, sent inside an outer IPv4/IPv6 packet. */
	int tun;                       /* TUN_NONE or TUN_* */
	int tun_fam;                   /* outer family, 4 or 6 */
	const char *tun_src, *tun_dst; /* outer addresses */
	uint16_t tun_port;             /* UDP destination port instead of the tunnel's own */
	uint16_t gre_flags;            /* GRE: 0x8000 checksum, 0x2000 key, 0x1000 sequence, or version bits */
	uint8_t geneve_opt_words;      /* GENEVE: option length in 4-byte words */
	int inner_vlans;               /* tags on the inner Ethernet frame: 0..2 */
} FrameSpec;

enum {
	TUN_NONE,
	TUN_VXLAN,     /* UDP 4789, Ethernet inside */
	TUN_GENEVE,    /* UDP 6081, Ethernet inside (0x6558) */
	TUN_GENEVE_IP, /* UDP 6081, IP inside (0x0800 / 0x86dd) */
	TUN_GRE,       /* IP protocol 47, IP inside */
	TUN_GRE_ETH,   /* IP protocol 47, Ethernet inside (0x6558) */
};

typedef struct Frame {
	uint8_t b[512];
	uint32_t n;
} Frame;

/* An Ethernet frame as a capture file stores it (tags inline). */
void frame_build(const FrameSpec *s, Frame *ret);
/* Whether libpcap's compiler sees the same headers we do (no tags, no IPv6
 * extension headers), so that a pcap-filter cross-check is meaningful. */
bool frame_plain(const FrameSpec *s);

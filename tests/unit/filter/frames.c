/* SPDX-License-Identifier: MIT */
#include "frames.h"

#include <arpa/inet.h>
#include <assert.h>
#include <string.h>

static void put16(Frame *f, uint16_t v)
{
	f->b[f->n++] = (uint8_t)(v >> 8);
	f->b[f->n++] = (uint8_t)v;
}

static void put8(Frame *f, uint8_t v)
{
	f->b[f->n++] = v;
}

static void put(Frame *f, const void *p, size_t n)
{
	memcpy(f->b + f->n, p, n);
	f->n += (uint32_t)n;
}

static void addr(int fam, const char *s, uint8_t out[16])
{
	int r = inet_pton(fam == 4 ? AF_INET : AF_INET6, s, out);

	assert(r == 1);
}

static uint16_t csum(const uint8_t *p, size_t n)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Transport header (or, for a later fragment, payload that looks like one). */
static void put_l4(const FrameSpec *s, Frame *f)
{
	if (s->frag_later) {
		put16(f, s->sport);
		put16(f, s->dport);
		put(f, "fragment", 8);
		return;
	}
	switch (s->proto) {
	case 6:
		put16(f, s->sport);
		put16(f, s->dport);
		put(f, "\0\0\0\1\0\0\0\0\x50\x02\xff\xff\0\0\0\0", 16);
		break;
	case 17:
		put16(f, s->sport);
		put16(f, s->dport);
		put16(f, 16);
		put16(f, 0);
		break;
	case 132:
		put16(f, s->sport);
		put16(f, s->dport);
		put(f, "\0\0\0\1\0\0\0\0", 8);
		break;
	default: /* ICMP echo request, ICMPv6 echo request */
		put8(f, s->proto == 58 ? 128 : 8);
		put(f, "\0\0\0\0\1\0\1", 7);
		break;
	}
	put(f, "payload!", 8);
}

/* The packet of s from its ethertype (with_type) or its IP header on. */
static void put_l3(const FrameSpec *s, Frame *f, bool with_type)
{
	uint8_t a[16], b[16];
	uint32_t l3;

	if (s->fam == 1) {
		put16(f, 0x0806);
		put(f, "\0\1\x08\0\6\4\0\1\2\0\0\0\0\1\xc0\0\2\1\0\0\0\0\0\0\xc0\0\2\2", 28);
		return;
	}
	addr(s->fam, s->src, a);
	addr(s->fam, s->dst, b);
	if (with_type)
		put16(f, s->fam == 4 ? 0x0800 : 0x86dd);
	l3 = f->n;
	if (s->fam == 4) {
		uint16_t frag = s->frag_first ? 0x2000 : s->frag_later ? 100 : 0;

		put8(f, s->ip_opts ? 0x46 : 0x45);
		put8(f, 0);
		put16(f, 0); /* total length, below */
		put16(f, 0x1234);
		put16(f, frag);
		put8(f, 64);
		put8(f, (uint8_t)s->proto);
		put16(f, 0);
		put(f, a, 4);
		put(f, b, 4);
		if (s->ip_opts)
			put(f, "\1\1\1\0", 4);
		put_l4(s, f);
		f->b[l3 + 2] = (uint8_t)((f->n - l3) >> 8);
		f->b[l3 + 3] = (uint8_t)(f->n - l3);
		uint16_t c = csum(f->b + l3, s->ip_opts ? 24 : 20);
		f->b[l3 + 10] = (uint8_t)(c >> 8);
		f->b[l3 + 11] = (uint8_t)c;
		return;
	}
	/* IPv6: chain of next-header values written as each header is added. */
	uint32_t nh_at = l3 + 6;

	put(f, "\x60\0\0\0\0\0", 6);
	put8(f, 0);
	put8(f, 64);
	put(f, a, 16);
	put(f, b, 16);
	if (s->v6_ext) {
		f->b[nh_at] = 0; /* hop-by-hop: 8 bytes, PadN */
		nh_at = f->n;
		put(f, "\0\0\1\4\0\0\0\0", 8);
		f->b[nh_at] = 60; /* destination options: 16 bytes (length 1) */
		nh_at = f->n;
		put(f, "\0\1\1\x0c\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	}
	if (s->frag_first || s->frag_later) {
		f->b[nh_at] = 44;
		nh_at = f->n;
		put8(f, 0);
		put8(f, 0);
		put16(f, s->frag_first ? 1 : (100 << 3) | 1);
		put(f, "\0\0\x12\x34", 4);
	}
	if (s->v6_ah && !s->frag_later) {
		f->b[nh_at] = 51; /* AH: 24 bytes, payload length field 24/4 - 2 */
		nh_at = f->n;
		put(f, "\0\4\0\0\0\0\1\0\0\0\0\1", 12);
		put(f, "icv-icv-icv-", 12);
	}
	f->b[nh_at] = (uint8_t)s->proto;
	put_l4(s, f);
	f->b[l3 + 4] = (uint8_t)((f->n - l3 - 40) >> 8);
	f->b[l3 + 5] = (uint8_t)(f->n - l3 - 40);
}

/* MAC addresses and tags of an Ethernet header (the type follows). */
static void put_macs(Frame *f, int vlans, uint16_t tpid)
{
	put(f, "\x02\0\0\0\0\x02\x02\0\0\0\0\x01", 12);
	for (int i = 0; i < vlans; i++) {
		put16(f, i == 0 && tpid ? tpid : 0x8100);
		put16(f, (uint16_t)(100 + i));
	}
}

/* s inside its tunnel: outer IP header, UDP or GRE, the tunnel header, the
 * inner frame; lengths fixed up at the end. */
static void put_tunnel(const FrameSpec *s, Frame *f)
{
	uint8_t a[16], b[16];
	bool udp = s->tun == TUN_VXLAN || s->tun == TUN_GENEVE || s->tun == TUN_GENEVE_IP;
	bool eth_inside = s->tun == TUN_VXLAN || s->tun == TUN_GENEVE || s->tun == TUN_GRE_ETH;
	uint16_t ptype = eth_inside ? 0x6558 : s->fam == 4 ? 0x0800 : 0x86dd;
	uint32_t l3, l4;

	addr(s->tun_fam, s->tun_src, a);
	addr(s->tun_fam, s->tun_dst, b);
	put16(f, s->tun_fam == 4 ? 0x0800 : 0x86dd);
	l3 = f->n;
	if (s->tun_fam == 4) {
		put(f, "\x45\0\0\0\x43\x21\0\0\x40", 9);
		put8(f, udp ? 17 : 47);
		put16(f, 0);
		put(f, a, 4);
		put(f, b, 4);
	} else {
		put(f, "\x60\0\0\0\0\0", 6);
		put8(f, udp ? 17 : 47);
		put8(f, 64);
		put(f, a, 16);
		put(f, b, 16);
	}
	l4 = f->n;
	if (udp) {
		put16(f, 40000);
		put16(f, s->tun_port ? s->tun_port : s->tun == TUN_VXLAN ? 4789 : 6081);
		put16(f, 0); /* length, below */
		put16(f, 0);
		if (s->tun == TUN_VXLAN) {
			put(f, "\x08\0\0\0\0\x12\x34\0", 8); /* I flag, VNI 0x1234 */
		} else {
			put8(f, s->geneve_opt_words); /* version 0 */
			put8(f, 0);
			put16(f, ptype);
			put(f, "\0\x12\x34\0", 4);
			for (unsigned w = 0; w < s->geneve_opt_words; w++)
				put(f, "opt!", 4);
		}
	} else {
		put16(f, s->gre_flags);
		put16(f, ptype);
		if (s->gre_flags & 0x8000)
			put(f, "\0\0\0\0", 4); /* checksum, reserved */
		if (s->gre_flags & 0x2000)
			put(f, "KEY!", 4);
		if (s->gre_flags & 0x1000)
			put(f, "\0\0\0\7", 4);
	}
	if (eth_inside) {
		put_macs(f, s->inner_vlans, 0);
		put_l3(s, f, true);
	} else {
		put_l3(s, f, false);
	}
	if (udp) {
		f->b[l4 + 4] = (uint8_t)((f->n - l4) >> 8);
		f->b[l4 + 5] = (uint8_t)(f->n - l4);
	}
	if (s->tun_fam == 4) {
		f->b[l3 + 2] = (uint8_t)((f->n - l3) >> 8);
		f->b[l3 + 3] = (uint8_t)(f->n - l3);
		uint16_t c = csum(f->b + l3, 20);
		f->b[l3 + 10] = (uint8_t)(c >> 8);
		f->b[l3 + 11] = (uint8_t)c;
	} else {
		f->b[l3 + 4] = (uint8_t)((f->n - l3 - 40) >> 8);
		f->b[l3 + 5] = (uint8_t)(f->n - l3 - 40);
	}
}

void frame_build(const FrameSpec *s, Frame *f)
{
	memset(f, 0, sizeof(*f));
	put_macs(f, s->vlans, s->tpid);
	if (s->tun)
		put_tunnel(s, f);
	else
		put_l3(s, f, true);
}

bool frame_plain(const FrameSpec *s)
{
	return !s->tun && s->vlans == 0 && !s->v6_ext && !s->v6_ah &&
	       !(s->fam == 6 && (s->frag_first || s->frag_later));
}

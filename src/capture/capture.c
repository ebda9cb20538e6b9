/* SPDX-License-Identifier: MIT */
/*
 * Live capture over AF_PACKET TPACKET_V3 rings.
 *
 * One socket per (worker, interface). Set-up order, and why:
 *  1. An AF_PACKET SOCK_RAW socket with protocol 0: it queues nothing until bind().
 *  2. PACKET_VERSION = TPACKET_V3.
 *  3. SO_ATTACH_FILTER: the interface's program, or one that accepts snaplen
 *     bytes; either way the first packet ever queued has passed it and the ring
 *     keeps at most snaplen bytes of it. Fanout sockets get a drop-all program
 *     here instead (see 7).
 *  4. PACKET_IGNORE_OUTGOING on loopback: a loopback packet passes the device
 *     twice (out, then in); tcpdump keeps one copy, so do we.
 *  5. PACKET_RX_RING and mmap().
 *  6. bind(ETH_P_ALL, ifindex): from here packets flow.
 *  7. Workers > 1: PACKET_FANOUT (hash, one group per interface). The kernel
 *     only lets a bound socket join, and a bound socket that has not joined yet
 *     receives every packet of the interface, which would duplicate packets
 *     across workers. So fanout sockets drop everything until every socket of
 *     the group has joined; only then do they all get the real program. Loopback
 *     groups need PACKET_FANOUT_FLAG_IGNORE_OUTGOING: the group's hook, not the
 *     member socket, decides whether outgoing packets are seen.
 *
 * Ring hand-off: the kernel publishes a retired block by setting TP_STATUS_USER
 * in block_status; we load it with acquire ordering so that the packet bytes we
 * then read are the ones it wrote, and give the block back by storing
 * TP_STATUS_KERNEL with release ordering once the sink is done with its spans.
 * Every offset and length in a block is checked against the block before use.
 *
 * Limits: shared counters reserve a packet slot and its bytes before a packet
 * reaches the sink, so exactly max_packets packets are delivered and max_bytes
 * is never exceeded, however many workers race.
 */
#include "capture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pcap/record.h"

#ifndef PACKET_FANOUT_FLAG_IGNORE_OUTGOING
#define PACKET_FANOUT_FLAG_IGNORE_OUTGOING 0x4000 /* Linux 6.9; older headers lack it */
#endif
#ifndef ARPHRD_RAWIP
#define ARPHRD_RAWIP 519
#endif

/* 128 MiB in 1 MiB blocks. Blocks of 2 MiB and more are allocations of the
 * order a guest's free page reporting hands back to its host (order 9 on
 * x86): on such a VM every one of their pages faults to the host when the
 * kernel zeroes the ring. Measured here (pcapd capture, idle, system CPU at
 * start): 32 x 4 MiB 0.15-0.30 s, 128 x 1 MiB 0.01 s; 7 M 64-byte frames
 * 0.050 against 0.057-0.093 us/packet; 1514-byte frames to ext4 unchanged
 * (0.31-0.33 us/packet, 1.12x dd's direct rate). */
#define CAPTURE_DEFAULT_BLOCK_SIZE (1u << 20)
#define CAPTURE_DEFAULT_BLOCK_COUNT 128u
#define CAPTURE_DEFAULT_BLOCK_TIMEOUT_MS 50u
#define CAPTURE_MAX_BLOCK_SIZE (1u << 30)
#define CAPTURE_MAX_RING_BYTES (16ull << 30) /* per socket */
#define CAPTURE_FRAME_SIZE 2048u             /* V3 ignores frames, but the request must be consistent */
#define CAPTURE_POLL_MS 100
/* A V3 frame takes at least its header plus a sockaddr_ll, aligned: more than
 * 64 bytes. So a block never holds more than block_size / 64 packets. */
#define CAPTURE_MIN_FRAME_SPACING 64u
#define VLAN_TAG_LEN 4u
#define ETH_MACS_LEN 12u

typedef struct CapIface {
	char name[IFNAMSIZ];
	int ifindex;
	unsigned short arphrd;
	uint32_t linktype;
} CapIface;

typedef struct CapSock {
	int fd;
	uint8_t *ring; /* mmap()ed blocks */
	size_t ring_len;
	unsigned iface;      /* index into Capture.ifaces */
	unsigned next_block; /* the block the kernel fills after the one before */
} CapSock;

typedef struct CapWorker {
	Capture *c;
	unsigned idx;
	CapSock *socks;      /* one per interface */
	struct pollfd *pfds; /* parallel to socks */
	uint8_t *tags;       /* 4 bytes per packet of the current block: re-inserted VLAN tags */
	size_t n_tag_slots;
	uint64_t packets; /* delivered; single writer, read with relaxed atomics */
	uint64_t bytes;
	pthread_t thread;
	int rc; /* worker_loop()'s result */
	ErrBuf err;
} CapWorker;

struct Capture {
	CapIface *ifaces;
	unsigned n_ifaces;
	CapWorker *workers;
	unsigned n_workers;
	uint32_t snaplen;
	uint32_t block_size;
	uint32_t block_count;
	uint64_t max_packets, max_bytes, max_duration_ns;

	/* set by capture_run() for the workers */
	bool ran; /* capture_run() was called: limits count from the first call only */
	const CaptureSink *sink;
	const volatile sig_atomic_t *stop;
	uint64_t deadline_ns; /* CLOCK_MONOTONIC; 0 = none */

	/* shared between workers, atomics only */
	uint64_t pkt_reserved;
	uint64_t bytes_reserved;
	int stop_reason;       /* StopReason; the first one set wins */
	uint64_t kernel_drops; /* accumulated: PACKET_STATISTICS resets on read */
};

const char *stop_reason_to_string(StopReason r)
{
	switch (r) {
	case STOP_REASON_PACKETS:
		return "packets";
	case STOP_REASON_BYTES:
		return "bytes";
	case STOP_REASON_SECONDS:
		return "seconds";
	case STOP_REASON_SIGNAL:
		return "signal";
	case STOP_REASON_ERROR:
		return "error";
	case STOP_REASON_NONE:
		break;
	}
	return "none";
}

static int linktype_from_arphrd(const char *ifname, unsigned short t, uint32_t *ret, ErrBuf *err)
{
	switch (t) {
	case ARPHRD_ETHER:
	case ARPHRD_LOOPBACK:
		*ret = LINKTYPE_ETHERNET;
		return 0;
	case ARPHRD_NONE:
	case ARPHRD_RAWIP:
		*ret = LINKTYPE_RAW;
		return 0;
	default:
		return errbuf_set(
			err, -EPROTONOSUPPORT,
			"interface %s: link type ARPHRD %u is not supported (Ethernet, loopback and raw IP are)",
			ifname, (unsigned)t);
	}
}

/* Name, index and hardware type of one interface. */
static int iface_resolve(const char *name, CapIface *ret, ErrBuf *err)
{
	CapIface ifc = {0};
	struct ifreq ifr = {0};
	size_t len = name ? strlen(name) : 0;
	int fd, r = 0;

	if (len == 0 || len >= IFNAMSIZ)
		return errbuf_set(err, -EINVAL, "interface name '%s' must be 1..%u bytes", name ? name : "",
				  (unsigned)IFNAMSIZ - 1);
	memcpy(ifc.name, name, len + 1);
	memcpy(ifr.ifr_name, name, len + 1);

	/* Any socket carries interface ioctls; a datagram one needs no privilege. */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errbuf_errno(err, "socket");
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
		r = -errno;
		if (r == -ENODEV)
			errbuf_set(err, r, "no such interface '%s'", name);
		else
			errbuf_set(err, r, "interface %s: %s", name, strerror(-r));
		goto close_fd;
	}
	ifc.ifindex = ifr.ifr_ifindex;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		r = errbuf_errno(err, "interface %s: hardware type", name);
		goto close_fd;
	}
	ifc.arphrd = ifr.ifr_hwaddr.sa_family;
	r = linktype_from_arphrd(name, ifc.arphrd, &ifc.linktype, err);
	if (r < 0)
		goto close_fd;
	*ret = ifc;
close_fd:
	close(fd);
	return r;
}

int capture_iface_linktype(const char *ifname, uint32_t *ret_linktype, ErrBuf *err)
{
	CapIface ifc;
	int r = iface_resolve(ifname, &ifc, err);

	if (r < 0)
		return r;
	*ret_linktype = ifc.linktype;
	return 0;
}

static int set_filter(int fd, const char *ifname, struct sock_filter *insns, uint16_t len, ErrBuf *err)
{
	struct sock_fprog prog = {.len = len, .filter = insns};

	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
		return errbuf_errno(err, "interface %s: the kernel refused the filter program (%u instructions)",
				    ifname, (unsigned)len);
	return 0;
}

/* The program for interface i: the caller's, or "keep snaplen bytes". */
static int set_iface_filter(Capture *c, const CbpfProgram *filters, const CapSock *s, ErrBuf *err)
{
	struct sock_filter accept = BPF_STMT(BPF_RET | BPF_K, c->snaplen);
	const CapIface *ifc = &c->ifaces[s->iface];

	if (filters)
		return set_filter(s->fd, ifc->name, filters[s->iface].insns, filters[s->iface].len, err);
	return set_filter(s->fd, ifc->name, &accept, 1, err);
}

static void sock_close(CapSock *s)
{
	if (s->ring)
		munmap(s->ring, s->ring_len);
	if (s->fd >= 0)
		close(s->fd);
	s->ring = NULL;
	s->fd = -1;
}

/* Steps 1-6 of the top comment. */
static int sock_open(Capture *c, const CbpfProgram *filters, bool fanout, const CaptureConfig *cfg, CapSock *s,
		     ErrBuf *err)
{
	const CapIface *ifc = &c->ifaces[s->iface];
	struct sock_filter drop_all = BPF_STMT(BPF_RET | BPF_K, 0);
	struct tpacket_req3 req = {0};
	struct sockaddr_ll sll = {0};
	int version = TPACKET_V3, one = 1;
	void *ring;
	int r;

	s->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		if (errno == EPERM || errno == EACCES)
			return errbuf_set(err, -EPERM,
					  "capturing on %s needs CAP_NET_RAW: run as root or grant it with "
					  "'setcap cap_net_raw+ep <path to pcapd>'",
					  ifc->name);
		return errbuf_errno(err, "packet socket");
	}
	if (setsockopt(s->fd, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) < 0)
		return errbuf_errno(err, "interface %s: TPACKET_V3", ifc->name);
	if (fanout)
		r = set_filter(s->fd, ifc->name, &drop_all, 1, err);
	else
		r = set_iface_filter(c, filters, s, err);
	if (r < 0)
		return r;
	if (ifc->arphrd == ARPHRD_LOOPBACK &&
	    setsockopt(s->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0)
		return errbuf_errno(err, "interface %s: PACKET_IGNORE_OUTGOING", ifc->name);

	req.tp_block_size = c->block_size;
	req.tp_block_nr = c->block_count;
	req.tp_frame_size = CAPTURE_FRAME_SIZE;
	req.tp_frame_nr = (c->block_size / CAPTURE_FRAME_SIZE) * c->block_count;
	req.tp_retire_blk_tov = cfg->block_timeout_ms ? cfg->block_timeout_ms : CAPTURE_DEFAULT_BLOCK_TIMEOUT_MS;
	if (setsockopt(s->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) < 0)
		return errbuf_errno(err, "interface %s: ring of %u blocks of %u bytes", ifc->name, c->block_count,
				    c->block_size);
	s->ring_len = (size_t)c->block_size * c->block_count;
	ring = mmap(NULL, s->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	if (ring == MAP_FAILED)
		return errbuf_errno(err, "interface %s: mapping the %zu-byte ring", ifc->name, s->ring_len);
	s->ring = ring;

	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = ifc->ifindex;
	if (bind(s->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		return errbuf_errno(err, "interface %s: bind", ifc->name);
	return 0;
}

/* Step 7: all workers' sockets on interface i join one group. */
static int fanout_join(Capture *c, unsigned i, ErrBuf *err)
{
	const CapIface *ifc = &c->ifaces[i];
	int flags = PACKET_FANOUT_HASH;
	int val;
	socklen_t len = sizeof(val);
	uint16_t id;

	if (ifc->arphrd == ARPHRD_LOOPBACK)
		flags |= PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
	/* The kernel picks an id no other group uses, so another capture (ours
	 * or not) can never join this group by accident. */
	val = (flags | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
	if (setsockopt(c->workers[0].socks[i].fd, SOL_PACKET, PACKET_FANOUT, &val, sizeof(val)) < 0)
		return errbuf_errno(err, "interface %s: PACKET_FANOUT", ifc->name);
	if (getsockopt(c->workers[0].socks[i].fd, SOL_PACKET, PACKET_FANOUT, &val, &len) < 0)
		return errbuf_errno(err, "interface %s: PACKET_FANOUT id", ifc->name);
	id = (uint16_t)(val & 0xffff);
	val = (flags << 16) | id;
	for (unsigned w = 1; w < c->n_workers; w++)
		if (setsockopt(c->workers[w].socks[i].fd, SOL_PACKET, PACKET_FANOUT, &val, sizeof(val)) < 0)
			return errbuf_errno(err, "interface %s: joining fanout group %u", ifc->name, (unsigned)id);
	return 0;
}

static int check_config(const CaptureConfig *cfg, uint32_t *ret_block_size, uint32_t *ret_block_count, ErrBuf *err)
{
	long page = sysconf(_SC_PAGESIZE);
	uint32_t bs = cfg->block_size ? cfg->block_size : CAPTURE_DEFAULT_BLOCK_SIZE;
	uint32_t bc = cfg->block_count ? cfg->block_count : CAPTURE_DEFAULT_BLOCK_COUNT;

	if (!cfg->ifaces || cfg->n_ifaces < 1 || cfg->n_ifaces > CAPTURE_MAX_IFACES)
		return errbuf_set(err, -EINVAL, "interfaces: %zu is outside 1..%u", cfg->n_ifaces, CAPTURE_MAX_IFACES);
	if (cfg->workers > CAPTURE_MAX_WORKERS)
		return errbuf_set(err, -EINVAL, "workers: %u is outside 1..%u", cfg->workers, CAPTURE_MAX_WORKERS);
	if (cfg->snaplen < 1 || cfg->snaplen > PCAP_MAX_SNAPLEN)
		return errbuf_set(err, -EINVAL, "snaplen: %u is outside 1..%u", cfg->snaplen, PCAP_MAX_SNAPLEN);
	if (page <= 0)
		page = 4096;
	if (bs < (uint32_t)page || bs > CAPTURE_MAX_BLOCK_SIZE || (bs & (bs - 1)) != 0)
		return errbuf_set(err, -EINVAL, "block size: %u is not a power of two in %ld..%u", bs, page,
				  CAPTURE_MAX_BLOCK_SIZE);
	if ((uint64_t)bs * bc > CAPTURE_MAX_RING_BYTES)
		return errbuf_set(err, -EINVAL, "ring: %u blocks of %u bytes exceed %llu bytes per socket", bc, bs,
				  (unsigned long long)CAPTURE_MAX_RING_BYTES);
	if (cfg->filters)
		for (size_t i = 0; i < cfg->n_ifaces; i++)
			if (!cfg->filters[i].insns || cfg->filters[i].len == 0)
				return errbuf_set(err, -EINVAL, "interface %s: empty filter program", cfg->ifaces[i]);
	*ret_block_size = bs;
	*ret_block_count = bc;
	return 0;
}

int capture_open(const CaptureConfig *cfg, Capture **ret, ErrBuf *err)
{
	Capture *c;
	bool fanout;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return errbuf_set(err, -ENOMEM, "out of memory");
	r = check_config(cfg, &c->block_size, &c->block_count, err);
	if (r < 0)
		goto fail;
	c->snaplen = cfg->snaplen;
	c->max_packets = cfg->max_packets;
	c->max_bytes = cfg->max_bytes;
	c->max_duration_ns = cfg->max_duration_ns;
	c->n_ifaces = (unsigned)cfg->n_ifaces;
	c->n_workers = cfg->workers > 1 ? cfg->workers : 1;
	fanout = c->n_workers > 1;

	c->ifaces = calloc(c->n_ifaces, sizeof(*c->ifaces));
	c->workers = calloc(c->n_workers, sizeof(*c->workers));
	if (!c->ifaces || !c->workers) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < c->n_ifaces; i++) {
		r = iface_resolve(cfg->ifaces[i], &c->ifaces[i], err);
		if (r < 0)
			goto fail;
		for (unsigned j = 0; j < i; j++)
			if (c->ifaces[j].ifindex == c->ifaces[i].ifindex) {
				r = errbuf_set(err, -EINVAL, "interface %s is given twice", c->ifaces[i].name);
				goto fail;
			}
	}
	for (unsigned w = 0; w < c->n_workers; w++) {
		CapWorker *wk = &c->workers[w];

		wk->c = c;
		wk->idx = w;
		wk->socks = calloc(c->n_ifaces, sizeof(*wk->socks));
		wk->pfds = calloc(c->n_ifaces, sizeof(*wk->pfds));
		wk->n_tag_slots = c->block_size / CAPTURE_MIN_FRAME_SPACING;
		wk->tags = malloc(wk->n_tag_slots * VLAN_TAG_LEN);
		if (!wk->socks || !wk->pfds || !wk->tags) {
			r = errbuf_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
		for (unsigned i = 0; i < c->n_ifaces; i++)
			wk->socks[i].fd = -1;
		for (unsigned i = 0; i < c->n_ifaces; i++) {
			wk->socks[i].iface = i;
			r = sock_open(c, cfg->filters, fanout, cfg, &wk->socks[i], err);
			if (r < 0)
				goto fail;
			wk->pfds[i].fd = wk->socks[i].fd;
			wk->pfds[i].events = POLLIN;
		}
	}
	if (fanout) {
		for (unsigned i = 0; i < c->n_ifaces; i++) {
			r = fanout_join(c, i, err);
			if (r < 0)
				goto fail;
		}
		for (unsigned w = 0; w < c->n_workers; w++)
			for (unsigned i = 0; i < c->n_ifaces; i++) {
				r = set_iface_filter(c, cfg->filters, &c->workers[w].socks[i], err);
				if (r < 0)
					goto fail;
			}
	}
	*ret = c;
	return 0;
fail:
	capture_free(c);
	return r;
}

void capture_free(Capture *c)
{
	if (!c)
		return;
	if (c->workers) {
		for (unsigned w = 0; w < c->n_workers; w++) {
			CapWorker *wk = &c->workers[w];

			if (wk->socks)
				for (unsigned i = 0; i < c->n_ifaces; i++)
					sock_close(&wk->socks[i]);
			free(wk->socks);
			free(wk->pfds);
			free(wk->tags);
		}
		free(c->workers);
	}
	free(c->ifaces);
	free(c);
}

uint32_t capture_linktype(const Capture *c, unsigned iface)
{
	if (iface >= c->n_ifaces)
		return 0;
	return c->ifaces[iface].linktype;
}

static void set_stop(Capture *c, StopReason r)
{
	int none = STOP_REASON_NONE;

	__atomic_compare_exchange_n(&c->stop_reason, &none, (int)r, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static bool stopping(const Capture *c)
{
	return __atomic_load_n(&c->stop_reason, __ATOMIC_ACQUIRE) != STOP_REASON_NONE;
}

/* Notices the stop flag and the deadline; true when the capture must end. */
static bool check_stop(Capture *c)
{
	if (__atomic_load_n(c->stop, __ATOMIC_RELAXED)) /* written by a signal handler, read by every worker */
		set_stop(c, STOP_REASON_SIGNAL);
	else if (c->deadline_ns && now_monotonic_ns() >= c->deadline_ns)
		set_stop(c, STOP_REASON_SECONDS);
	return stopping(c);
}

/* Reserves room for one packet of caplen bytes under the limits. Returns true
 * to deliver it, false when a limit is reached (the capture stops, the packet
 * is not delivered). *ret_reached names the limit this packet fills exactly:
 * after delivering it, the capture stops. */
static bool limits_reserve(Capture *c, uint32_t caplen, StopReason *ret_reached)
{
	uint64_t n = 0, cur;

	*ret_reached = STOP_REASON_NONE;
	if (c->max_packets) {
		n = __atomic_add_fetch(&c->pkt_reserved, 1, __ATOMIC_RELAXED);
		if (n > c->max_packets) {
			set_stop(c, STOP_REASON_PACKETS);
			return false;
		}
	}
	if (c->max_bytes) {
		cur = __atomic_load_n(&c->bytes_reserved, __ATOMIC_RELAXED);
		do {
			if (caplen > c->max_bytes - cur) {
				set_stop(c, STOP_REASON_BYTES);
				return false;
			}
		} while (!__atomic_compare_exchange_n(&c->bytes_reserved, &cur, cur + caplen, true, __ATOMIC_RELAXED,
						      __ATOMIC_RELAXED));
		if (cur + caplen == c->max_bytes)
			*ret_reached = STOP_REASON_BYTES; /* nothing more fits: every packet has caplen >= 1 */
	}
	if (c->max_packets && n == c->max_packets)
		*ret_reached = STOP_REASON_PACKETS;
	return true;
}

/* Delivers one packet of a block: h points at its header, room bytes of the
 * block remain from h. Returns 1 to go on, 0 to stop, -errno on error. */
static int deliver(CapWorker *w, const CapSock *s, const struct tpacket3_hdr *h, size_t room, size_t slot)
{
	Capture *c = w->c;
	const uint8_t *frame = (const uint8_t *)h + h->tp_mac;
	uint32_t snap = h->tp_snaplen;
	uint32_t origlen = h->tp_len;
	struct iovec parts[3];
	CapturePacket pkt;
	StopReason reached;
	bool vlan;
	int r;

	if (h->tp_mac > room || snap > room - h->tp_mac)
		return errbuf_set(&w->err, -EPROTO, "interface %s: ring frame overruns its block",
				  c->ifaces[s->iface].name);
	vlan = c->ifaces[s->iface].linktype == LINKTYPE_ETHERNET &&
	       ((h->tp_status & TP_STATUS_VLAN_VALID) || h->hv1.tp_vlan_tci != 0);

	if (vlan && snap >= ETH_MACS_LEN) {
		uint8_t *tag = w->tags + slot * VLAN_TAG_LEN;
		uint16_t tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid : ETH_P_8021Q;
		uint16_t tci = h->hv1.tp_vlan_tci;
		uint32_t budget = c->snaplen;

		tag[0] = (uint8_t)(tpid >> 8);
		tag[1] = (uint8_t)tpid;
		tag[2] = (uint8_t)(tci >> 8);
		tag[3] = (uint8_t)tci;
		/* MACs, tag, rest: each cut to what is left of snaplen. */
		parts[0].iov_base = (void *)frame;
		parts[0].iov_len = budget < ETH_MACS_LEN ? budget : ETH_MACS_LEN;
		budget -= (uint32_t)parts[0].iov_len;
		parts[1].iov_base = tag;
		parts[1].iov_len = budget < VLAN_TAG_LEN ? budget : VLAN_TAG_LEN;
		budget -= (uint32_t)parts[1].iov_len;
		parts[2].iov_base = (void *)(frame + ETH_MACS_LEN);
		parts[2].iov_len = snap - ETH_MACS_LEN < budget ? snap - ETH_MACS_LEN : budget;
		pkt.nparts = parts[2].iov_len ? 3 : parts[1].iov_len ? 2 : 1;
		pkt.caplen = (uint32_t)(parts[0].iov_len + parts[1].iov_len + parts[2].iov_len);
		origlen = origlen > UINT32_MAX - VLAN_TAG_LEN ? UINT32_MAX : origlen + VLAN_TAG_LEN;
	} else {
		/* A VLAN frame cut before its MACs ends has no room for the tag:
		 * only its length on the wire says the tag was there. */
		if (vlan)
			origlen = origlen > UINT32_MAX - VLAN_TAG_LEN ? UINT32_MAX : origlen + VLAN_TAG_LEN;
		parts[0].iov_base = (void *)frame;
		parts[0].iov_len = snap < c->snaplen ? snap : c->snaplen;
		pkt.caplen = (uint32_t)parts[0].iov_len;
		pkt.nparts = 1;
	}
	if (origlen < pkt.caplen)
		origlen = pkt.caplen;

	if (!limits_reserve(c, pkt.caplen, &reached))
		return 0;
	pkt.ts_ns = (uint64_t)h->tp_sec * NSEC_PER_SEC + h->tp_nsec;
	pkt.origlen = origlen;
	pkt.iface = s->iface;
	pkt.parts = parts;
	r = c->sink->packet(c->sink->ctx, w->idx, &pkt);
	if (r < 0)
		return errbuf_set(&w->err, r, "writing a packet: %s", strerror(-r));
	__atomic_store_n(&w->packets, w->packets + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&w->bytes, w->bytes + pkt.caplen, __ATOMIC_RELAXED);
	if (reached != STOP_REASON_NONE) {
		set_stop(c, reached);
		return 0;
	}
	return 1;
}

/* Walks the packets of one retired block. Returns 0 or -errno. */
static int walk_block(CapWorker *w, const CapSock *s, const struct tpacket_block_desc *bd)
{
	const Capture *c = w->c;
	uint32_t n = bd->hdr.bh1.num_pkts;
	size_t off = bd->hdr.bh1.offset_to_first_pkt;

	if (n > w->n_tag_slots)
		return errbuf_set(&w->err, -EPROTO, "interface %s: ring block claims %u packets",
				  c->ifaces[s->iface].name, n);
	for (uint32_t i = 0; i < n; i++) {
		const struct tpacket3_hdr *h;
		int r;

		if (off > c->block_size || c->block_size - off < sizeof(*h) || off % 4 != 0)
			return errbuf_set(&w->err, -EPROTO, "interface %s: ring packet offset %zu outside its block",
					  c->ifaces[s->iface].name, off);
		h = (const struct tpacket3_hdr *)((const uint8_t *)bd + off);
		r = deliver(w, s, h, c->block_size - off, i);
		if (r <= 0)
			return r;
		if (i + 1 < n && h->tp_next_offset == 0)
			return errbuf_set(&w->err, -EPROTO, "interface %s: ring packet without a successor",
					  c->ifaces[s->iface].name);
		off += h->tp_next_offset;
	}
	return 0;
}

/* Hands every retired block of s to the sink, at most one ring's worth per
 * call so that one busy interface cannot starve the others. Returns the number
 * of blocks handled or -errno. */
static int drain_sock(CapWorker *w, CapSock *s)
{
	Capture *c = w->c;
	int handled = 0;

	for (unsigned k = 0; k < c->block_count; k++) {
		struct tpacket_block_desc *bd =
			(struct tpacket_block_desc *)(s->ring + (size_t)s->next_block * c->block_size);
		int r, rd;

		if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
			break;
		r = walk_block(w, s, bd);
		/* The spans of this block were delivered: the sink releases them
		 * before the kernel may write over them. */
		rd = c->sink->block_done(c->sink->ctx, w->idx);
		__atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
		s->next_block = (s->next_block + 1) % c->block_count;
		handled++;
		if (r < 0)
			return r;
		if (rd < 0)
			return errbuf_set(&w->err, rd, "writing packets: %s", strerror(-rd));
		if (check_stop(c))
			break;
	}
	return handled;
}

static int poll_timeout_ms(const Capture *c)
{
	uint64_t now, left_ms;

	if (!c->deadline_ns)
		return CAPTURE_POLL_MS;
	now = now_monotonic_ns();
	if (now >= c->deadline_ns)
		return 0;
	left_ms = (c->deadline_ns - now + 999999) / 1000000;
	return left_ms < CAPTURE_POLL_MS ? (int)left_ms : CAPTURE_POLL_MS;
}

/* One worker's loop: drain its rings, sleep in poll() when they are empty. */
static int worker_loop(CapWorker *w)
{
	Capture *c = w->c;

	while (!check_stop(c)) {
		bool busy = false;

		for (unsigned i = 0; i < c->n_ifaces && !stopping(c); i++) {
			int r = drain_sock(w, &w->socks[i]);

			if (r < 0)
				return r;
			busy |= r > 0;
		}
		if (busy || stopping(c))
			continue;
		if (poll(w->pfds, c->n_ifaces, poll_timeout_ms(c)) < 0) {
			if (errno == EINTR)
				continue;
			return errbuf_errno(&w->err, "poll");
		}
		for (unsigned i = 0; i < c->n_ifaces; i++) {
			int soerr = 0;
			socklen_t len = sizeof(soerr);

			if (!(w->pfds[i].revents & POLLERR))
				continue;
			if (getsockopt(w->pfds[i].fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr != 0)
				return errbuf_set(&w->err, -soerr, "interface %s: %s", c->ifaces[i].name,
						  soerr == ENETDOWN ? "the interface went down" : strerror(soerr));
		}
	}
	return 0;
}

static void *worker_thread(void *arg)
{
	CapWorker *w = arg;

	w->rc = worker_loop(w);
	if (w->rc < 0)
		set_stop(w->c, STOP_REASON_ERROR);
	return NULL;
}

static void collect_drops(Capture *c)
{
	for (unsigned w = 0; w < c->n_workers; w++)
		for (unsigned i = 0; i < c->n_ifaces; i++) {
			struct tpacket_stats_v3 st;
			socklen_t len = sizeof(st);

			/* Reading resets the kernel's counters: add, never assign. */
			if (c->workers[w].socks[i].fd >= 0 &&
			    getsockopt(c->workers[w].socks[i].fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
				__atomic_add_fetch(&c->kernel_drops, st.tp_drops, __ATOMIC_RELAXED);
		}
}

int capture_run(Capture *c, const CaptureSink *sink, const volatile sig_atomic_t *stop, StopReason *ret_reason,
		ErrBuf *err)
{
	unsigned started = 0;
	int r = 0;

	if (c->ran) {
		*ret_reason = STOP_REASON_ERROR;
		return errbuf_set(err, -EALREADY, "a capture runs once; open a new one");
	}
	c->ran = true;
	c->sink = sink;
	c->stop = stop;
	__atomic_store_n(&c->stop_reason, STOP_REASON_NONE, __ATOMIC_RELEASE);
	c->deadline_ns = c->max_duration_ns ? now_monotonic_ns() + c->max_duration_ns : 0;

	if (c->n_workers == 1) {
		worker_thread(&c->workers[0]);
		started = 1;
	} else {
		for (; started < c->n_workers; started++) {
			int e = pthread_create(&c->workers[started].thread, NULL, worker_thread, &c->workers[started]);

			if (e != 0) {
				r = errbuf_set(err, -e, "starting capture thread %u: %s", started, strerror(e));
				set_stop(c, STOP_REASON_ERROR);
				break;
			}
		}
		for (unsigned w = 0; w < started; w++)
			pthread_join(c->workers[w].thread, NULL);
	}
	collect_drops(c);
	for (unsigned w = 0; w < started && r == 0; w++)
		if (c->workers[w].rc < 0) {
			r = c->workers[w].rc;
			if (err)
				*err = c->workers[w].err;
		}
	if (r < 0) {
		*ret_reason = STOP_REASON_ERROR;
		return r;
	}
	*ret_reason = (StopReason)__atomic_load_n(&c->stop_reason, __ATOMIC_ACQUIRE);
	return 0;
}

void capture_stats(Capture *c, CaptureStats *ret)
{
	CaptureStats st = {0};

	collect_drops(c);
	for (unsigned w = 0; w < c->n_workers; w++) {
		st.packets += __atomic_load_n(&c->workers[w].packets, __ATOMIC_RELAXED);
		st.bytes += __atomic_load_n(&c->workers[w].bytes, __ATOMIC_RELAXED);
	}
	st.kernel_drops = __atomic_load_n(&c->kernel_drops, __ATOMIC_RELAXED);
	*ret = st;
}

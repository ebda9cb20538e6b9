/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Live capture from Linux interfaces: AF_PACKET sockets with a TPACKET_V3 RX
 * ring each, the filter attached in the kernel before the socket is bound (so
 * no unfiltered packet is ever queued), PACKET_FANOUT workers when asked, and
 * kernel drop counts from PACKET_STATISTICS, which are reported, never hidden.
 *
 * Packets reach a sink as spans pointing into ring memory, VLAN tags that the
 * kernel moved to metadata re-inserted, with nanosecond timestamps. The spans
 * stay valid until the sink's block_done() for that worker returns; then the
 * ring block goes back to the kernel. A sink that batches (the pcap writer)
 * flushes in block_done(): one large writev per ring block (a pipe), or one
 * copy into its writer thread's buffer (a file), never a system call per
 * packet.
 *
 * Loopback: each packet is captured once (outgoing copies are ignored, as
 * tcpdump does), not once per direction.
 *
 * Limits (packets, bytes, duration) are enforced here, across workers: no
 * packet past a limit reaches the sink, and the run ends with that stop reason.
 *
 * Threads: capture_run() starts cfg->workers threads (the caller's thread
 * waits) when workers > 1; sink callbacks for worker w always come from the
 * same thread.
 */

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/util.h"
#include "filter/cbpf.h"

#define CAPTURE_MAX_IFACES 64u
#define CAPTURE_MAX_WORKERS 64u

typedef enum StopReason {
	STOP_REASON_NONE,
	STOP_REASON_PACKETS,
	STOP_REASON_BYTES,
	STOP_REASON_SECONDS,
	STOP_REASON_SIGNAL,
	STOP_REASON_ERROR,
} StopReason;

/* "packets", "bytes", "seconds", "signal", "error" ("none" for NONE). */
const char *stop_reason_to_string(StopReason r);

typedef struct CaptureConfig {
	const char *const *ifaces; /* interface names, 1..CAPTURE_MAX_IFACES */
	size_t n_ifaces;
	uint32_t snaplen;           /* bytes kept per packet, 1..PCAP_MAX_SNAPLEN */
	uint32_t block_size;        /* ring block bytes: a power of two, >= page size; 0 = default */
	uint32_t block_count;       /* ring blocks per socket; 0 = default */
	uint32_t block_timeout_ms;  /* a partly filled block is handed over after this; 0 = default */
	unsigned workers;           /* threads, each with one fanout socket per interface; 0 or 1 = one */
	const CbpfProgram *filters; /* one program per interface (compiled for its link type), or NULL */
	uint64_t max_packets;       /* 0 = no limit */
	uint64_t max_bytes;         /* limit on the sum of captured lengths; 0 = no limit */
	uint64_t max_duration_ns;   /* 0 = no limit */
} CaptureConfig;

typedef struct CapturePacket {
	uint64_t ts_ns;            /* kernel timestamp, ns since the epoch */
	uint32_t caplen;           /* sum of the parts */
	uint32_t origlen;          /* on the wire, VLAN tag included */
	unsigned iface;            /* index into CaptureConfig.ifaces */
	const struct iovec *parts; /* frame bytes, valid until block_done() */
	unsigned nparts;
} CapturePacket;

typedef struct CaptureSink {
	/* One packet. A negative return stops the capture with STOP_REASON_ERROR. */
	int (*packet)(void *ctx, unsigned worker, const CapturePacket *p);
	/* The spans delivered to this worker so far are about to be released. */
	int (*block_done)(void *ctx, unsigned worker);
	void *ctx;
} CaptureSink;

typedef struct CaptureStats {
	uint64_t packets;      /* delivered to the sink */
	uint64_t bytes;        /* sum of their caplen */
	uint64_t kernel_drops; /* tp_drops summed over sockets: dropped for lack of ring space */
} CaptureStats;

typedef struct Capture Capture;

/* Resolves the interfaces, opens the sockets, attaches the filters, maps the
 * rings. Every failure (unknown interface, no CAP_NET_RAW, bad program, ring too
 * large) is reported here, before a packet flows: -errno with err. */
int capture_open(const CaptureConfig *cfg, Capture **ret, ErrBuf *err);
void capture_free(Capture *c); /* NULL is fine */

/* LINKTYPE_* that capturing on ifname yields (Ethernet and loopback:
 * LINKTYPE_ETHERNET; ARPHRD_NONE and raw IP: LINKTYPE_RAW), so that a caller can
 * compile the filters that capture_open() needs. Needs no privilege. -ENODEV for
 * an unknown interface, -EPROTONOSUPPORT for another hardware type, with err. */
int capture_iface_linktype(const char *ifname, uint32_t *ret_linktype, ErrBuf *err);

/* LINKTYPE_* of interface i (what the filter for it must be compiled for). */
uint32_t capture_linktype(const Capture *c, unsigned iface);

/* Captures until a limit, *stop becoming non-zero (checked at least every
 * 100 ms; a signal handler sets it) or an error. Returns 0 with the reason, or
 * -errno with err (then *ret_reason is STOP_REASON_ERROR too). Runs once per
 * Capture (the limits count from its start): a second call is -EALREADY. */
int capture_run(Capture *c, const CaptureSink *sink, const volatile sig_atomic_t *stop, StopReason *ret_reason,
		ErrBuf *err);

/* Counters so far; callable from another thread while capture_run() runs. */
void capture_stats(Capture *c, CaptureStats *ret);

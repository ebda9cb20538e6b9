/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What a full capture of this agent is, from its start order: the
 * interfaces (the configured ones, or every one that is up now), one kernel
 * program per interface compiled from the filter model for its link type,
 * snaplen, the limits and the ring geometry, ready for capture_open() (or a
 * CapFile, or rotating files), and the file format (classic pcap when the
 * interfaces share a link type, pcapng otherwise). Shared by the bucket
 * pipeline (jobrun.c) and the agent's own files (outputs.c).
 */

#include "agent/agent.h"
#include "capture/capture.h"
#include "pcap/record.h"
#include "proto/agentproto.h"

/* 16 MiB of ring per interface. The kernel allocates and clears a ring when
 * it is set up (about 2 ms per MiB here), and that sits between the
 * controller's order and the first packet: the default rings of `pcapd
 * capture` (128 MiB) would cost a quarter of a second per job. */
#define CAPSETUP_RING_BLOCKS 8u
#define CAPSETUP_BLOCK_SIZE (2u << 20)

typedef struct CapSetup {
	CaptureConfig capture; /* points into the members below */
	PcapFormat format;
	const char *names[CAPTURE_MAX_IFACES];
	CbpfProgram progs[CAPTURE_MAX_IFACES];
	char **owned; /* "-i all": the names looked up */
	size_t n_owned;
} CapSetup;

/* Fills *s (zeroed by the caller) for spec on this agent: one worker, the
 * time limit (a continuous capture's session limit), packets and bytes.
 * Errors name what failed: "filter: …" for the filter model, the interface
 * otherwise. Free with capsetup_done() whatever it returns. */
int capsetup_init(const AgentConfig *cfg, const AgentJobSpec *spec, CapSetup *s, ErrBuf *err);
void capsetup_done(CapSetup *s);

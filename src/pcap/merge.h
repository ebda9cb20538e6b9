/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * k-way merge of pcap/pcapng inputs by timestamp, streaming: memory is bounded
 * by the number of inputs, not their size. Ties (equal timestamps) keep input
 * order (the lower input index first), and each input's own order is kept even
 * where its timestamps go backwards — the same packet order as `mergecap -w`
 * except for ties across inputs: mergecap takes the *last* of the tied inputs
 * first (MergeOptions.ties_last_first gives exactly its order).
 *
 * pcapng output keeps each input's interfaces: one IDB per input interface
 * (link type, snaplen, timestamp resolution, if_name and if_description from
 * the input or from MergeOptions.annotations), EPBs pointing at them, and one
 * ISB per interface whose statistics are known (the input's own ISBs, or the
 * caller's), after the last packet.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "pcap/decode.h"
#include "pcap/record.h"

/* What the caller knows about one input, for pcapng output: the controller
 * names each agent's file AGENT/IFACE, describes it (colo, filter) and gives
 * its counters; `pcapd merge --name/--description/--stats` does the same.
 * Every field is optional. */
typedef struct MergeInput {
	const char *name;         /* if_name of the input's interfaces: NAME for an interface
				     without a name of its own (NAME/N when the input has several),
				     NAME/OWN for one the input names OWN; NULL = the input's own
				     names. At most PCAPWR_MAX_IFNAME bytes in all */
	const char *description;  /* if_description of its interfaces; NULL = the input's own */
	const PcapIfStats *stats; /* statistics per input interface id (n_stats of them; have = 0
				     for none), written as ISBs, in place of the input's own ISBs;
				     start and end default to the interface's first and last
				     packet in the merge */
	size_t n_stats;
} MergeInput;

typedef struct MergeOptions {
	int format;                    /* PcapFormat, or -1: classic pcap if every interface has one link type
					  (ns resolution if any input has it), else pcapng. For a classic
					  format, ts_precision (when set) overrides its resolution. */
	const char *out_name;          /* for messages */
	int ts_precision;              /* with format -1 or a classic pcap format: 6 (µs), 9 (ns),
					  or 0 to decide from the inputs as above */
	bool ties_last_first;          /* equal timestamps: the higher input index first, which is
					  what mergecap (Wireshark 4.0) does; false keeps input order */
	uint64_t skip_first;           /* leave out the first (oldest) this many records of the merged
					  stream: "the newest N" of inputs that hold more */
	const MergeInput *annotations; /* NULL, or one per input (copied by pcapmerge_open();
					  strings and stats must live until pcapmerge_free()) */
} MergeOptions;

typedef struct MergeStats {
	uint64_t packets;         /* records written */
	uint64_t bytes;           /* bytes written, headers included */
	uint64_t truncated_tails; /* inputs that ended in a truncated item */
} MergeStats;

typedef struct PcapMerge PcapMerge;

/* Opens every input ("-" = standard input, at most once: -EINVAL, as for bad
 * options), decodes each one up to and including its first record and decides
 * the output format. What is checked before the caller creates its output:
 * every input opens and is pcap or pcapng with a well-formed start, and the
 * interfaces described up to each input's first record fit the output format
 * (classic pcap: one link type). What is not: the rest of each input — a
 * malformed or truncated item further on, and a pcapng interface described
 * after the input's first record, which with classic pcap output fails the
 * merge part way if its link type differs or its snaplen is larger. */
int pcapmerge_open(const char *const *inputs, size_t n, const MergeOptions *opt, PcapMerge **ret, ErrBuf *err);
/* The output format chosen by pcapmerge_open(). */
PcapFormat pcapmerge_format(const PcapMerge *m);
/* Writes the merged stream to out_fd (not fsynced, not closed). Once only.
 * On failure out_fd may hold part of the merge: the caller discards it. */
int pcapmerge_write(PcapMerge *m, int out_fd, MergeStats *ret_stats, ErrBuf *err);
void pcapmerge_free(PcapMerge *m); /* NULL is fine */

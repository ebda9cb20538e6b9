/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * On-disk constants of classic pcap and pcapng, shared by the decoder and the
 * writer so that both agree on one definition (values from libpcap's
 * pcap/pcap.h and sf-pcapng.c, and the pcapng specification).
 */

/* Classic pcap: magic of the file header, in the writer's byte order. */
#define PCAP_MAGIC_US 0xa1b2c3d4u /* microsecond timestamps */
#define PCAP_MAGIC_NS 0xa1b23c4du /* nanosecond timestamps */
#define PCAP_VERSION_MAJOR 2u
#define PCAP_VERSION_MINOR 4u
#define PCAP_FILE_HDR 24u /* file header bytes */
#define PCAP_REC_HDR 16u  /* record header bytes */

/* pcapng block types. */
#define NG_SHB 0x0a0d0d0au /* Section Header Block (same in both byte orders) */
#define NG_IDB 1u          /* Interface Description Block */
#define NG_PB 2u           /* obsolete Packet Block */
#define NG_SPB 3u          /* Simple Packet Block */
#define NG_ISB 5u          /* Interface Statistics Block */
#define NG_EPB 6u          /* Enhanced Packet Block */

/* SHB fields. */
#define NG_BOM 0x1a2b3c4du /* byte-order magic */
#define NG_VERSION_MAJOR 1u
#define NG_VERSION_MINOR 0u

/* Option codes (opt_endofopt ends every option list). */
#define NG_OPT_ENDOFOPT 0u
#define NG_OPT_IF_NAME 2u
#define NG_OPT_IF_DESCRIPTION 3u
#define NG_OPT_ISB_STARTTIME 2u
#define NG_OPT_ISB_ENDTIME 3u
#define NG_OPT_ISB_IFRECV 4u
#define NG_OPT_ISB_IFDROP 5u
#define NG_OPT_IF_TSRESOL 9u
#define NG_OPT_IF_TSOFFSET 14u

/* Smallest total_length of each block: header 8 + fixed body + trailer 4. */
#define NG_MIN_BLOCK 12u
#define NG_MIN_SHB 28u
#define NG_MIN_IDB 20u
#define NG_MIN_EPB 32u
#define NG_MIN_PB 32u
#define NG_MIN_SPB 16u
#define NG_MIN_ISB 24u

/* Fixed bytes in front of an EPB's packet data: type, length, interface id,
 * timestamp (high, low), captured length, original length. */
#define NG_EPB_HDR 28u

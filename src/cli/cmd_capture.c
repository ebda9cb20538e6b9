/* SPDX-License-Identifier: MIT */
/*
 * pcapd capture: packets from live interfaces into a pcap or pcapng file.
 *
 * Order of work, so that bad input leaves no file behind: parse every flag,
 * compile the filter for each interface's link type, open the capture (which
 * reports unknown interfaces and a missing CAP_NET_RAW), and only then create
 * the output. The writing itself is capture/tofile: one large write per ring
 * block, and the file holds whole records whenever a flush returns.
 *
 * stderr: a readiness line once sockets are bound and the file is opened (tests
 * wait for it before sending; -q drops it); then, as the last line of every run
 * that captured, one JSON object with the counters and the stop reason. A
 * failure before the capture starts (bad flag, filter, interface, privilege or
 * path) is one error line and no JSON, since nothing ran. Exit 0, 1 on a
 * runtime error, 2 on bad usage.
 *
 * Signals: SIGINT/SIGTERM set the stop flag from the first moment (before the
 * output exists, so an early Ctrl-C leaves no file); a second one kills the
 * process (SA_RESETHAND), for when a write to a stalled pipe cannot return.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture/capture.h"
#include "capture/tofile.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "common/log.h"
#include "common/util.h"
#include "filter/filter.h"
#include "pcap/record.h"

#define MAX_SECONDS (366ull * 24 * 3600)
#define MAX_RING_BLOCKS 65536u
#define MAX_BLOCK_SIZE (1ull << 30)

typedef struct CaptureArgs {
	char *iface_list; /* owned copy of -i, split in place at ',' */
	const char *ifaces[CAPTURE_MAX_IFACES];
	size_t n_ifaces;
	const char *out; /* -w */
	PcapFormat format;
	bool format_pcapng;
	bool nano;
	uint32_t snaplen;
	uint64_t packets, bytes, seconds;
	unsigned workers;
	uint32_t ring_blocks, block_size;
	bool quiet;
	Filter filter;
	FilterClause clause;
	bool have_clause;
} CaptureArgs;

enum {
	OPT_FORMAT = 0x100,
	OPT_TSPREC,
	OPT_SNAPLEN,
	OPT_PACKETS,
	OPT_BYTES,
	OPT_SECONDS,
	OPT_SRC,
	OPT_DST,
	OPT_SPORT,
	OPT_DPORT,
	OPT_PROTO,
	OPT_BPF,
	OPT_INNER,
	OPT_WORKERS,
	OPT_RING_BLOCKS,
	OPT_BLOCK_SIZE,
};

static const struct option long_options[] = {
	{"interface", required_argument, NULL, 'i'},
	{"write", required_argument, NULL, 'w'},
	{"format", required_argument, NULL, OPT_FORMAT},
	{"time-stamp-precision", required_argument, NULL, OPT_TSPREC},
	{"snaplen", required_argument, NULL, OPT_SNAPLEN},
	{"packets", required_argument, NULL, OPT_PACKETS},
	{"bytes", required_argument, NULL, OPT_BYTES},
	{"seconds", required_argument, NULL, OPT_SECONDS},
	{"src", required_argument, NULL, OPT_SRC},
	{"dst", required_argument, NULL, OPT_DST},
	{"sport", required_argument, NULL, OPT_SPORT},
	{"dport", required_argument, NULL, OPT_DPORT},
	{"proto", required_argument, NULL, OPT_PROTO},
	{"bpf", required_argument, NULL, OPT_BPF},
	{"inner", no_argument, NULL, OPT_INNER},
	{"workers", required_argument, NULL, OPT_WORKERS},
	{"ring-blocks", required_argument, NULL, OPT_RING_BLOCKS},
	{"block-size", required_argument, NULL, OPT_BLOCK_SIZE},
	{"quiet", no_argument, NULL, 'q'},
	{"help", no_argument, NULL, 'h'},
	{0},
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pcapd capture -i IFACE[,IFACE...] -w FILE|- [options]\n"
		"\n"
		"  -i, --interface IFACES      interfaces to capture on, comma-separated (up to %u)\n"
		"  -w, --write FILE|-          output file, '-' for stdout\n"
		"      --format pcap|pcapng    file format (default pcap)\n"
		"      --time-stamp-precision micro|nano\n"
		"                              pcap timestamp precision (default micro)\n"
		"      --snaplen N             bytes kept per packet, 1..%u (default %u)\n"
		"      --packets N             stop after N packets\n"
		"      --bytes N[K|M|G]        stop before the captured bytes would exceed N\n"
		"      --seconds N             stop after N seconds, 1..%llu\n"
		"      --src ADDRS, --dst ADDRS\n"
		"                              addresses: 192.0.2.1, 2001:db8::/32, a-b, 'a;b'\n"
		"      --sport PORTS, --dport PORTS\n"
		"                              ports: 80, 80-120, '80;443'\n"
		"      --proto P               IP protocol: number or name (tcp, udp, icmp, ...)\n"
		"      --bpf EXPR              pcap-filter expression, ANDed with the above\n"
		"      --inner                 --src/--dst/--sport/--dport/--proto also match the inner\n"
		"                              packet of VXLAN, GENEVE and GRE tunnels\n"
		"      --workers N             capture threads with fanout, 1..%u (default 1)\n"
		"      --ring-blocks N         ring blocks per socket, 1..%u\n"
		"      --block-size SIZE       ring block size, a power of two, 4K..1G\n"
		"  -q, --quiet                 no readiness line\n"
		"\n"
		"On exit, the last line on stderr is a JSON object with packets, bytes,\n"
		"kernel_drops and stop_reason (packets, bytes, seconds, signal or error).\n",
		CAPTURE_MAX_IFACES, PCAP_MAX_SNAPLEN, PCAP_MAX_SNAPLEN, (unsigned long long)MAX_SECONDS,
		CAPTURE_MAX_WORKERS, MAX_RING_BLOCKS);
}

/* Returns 0, or the exit status for a bad command line (after saying why). */
static int parse_args(int argc, char **argv, CaptureArgs *a)
{
	ErrBuf err = {{0}};
	uint64_t v;
	int opt, r;

	a->snaplen = PCAP_MAX_SNAPLEN;
	a->workers = 1;
	filter_clause_init(&a->clause);
	optind = 0; /* argv[0] is the subcommand; rescan from scratch */
	while ((opt = getopt_long(argc, argv, "i:w:qh", long_options, NULL)) != -1) {
		const char *flag = NULL;

		r = 0;
		switch (opt) {
		case 'i':
			r = cli_split_ifaces(optarg, false, &a->iface_list, a->ifaces, ARRAY_SIZE(a->ifaces),
					     &a->n_ifaces);
			break;
		case 'w':
			a->out = optarg;
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "pcap") == 0) {
				a->format_pcapng = false;
			} else if (strcmp(optarg, "pcapng") == 0) {
				a->format_pcapng = true;
			} else {
				log_error("--format: '%s' is not pcap or pcapng", optarg);
				r = 2;
			}
			break;
		case OPT_TSPREC:
			if (strcmp(optarg, "micro") == 0) {
				a->nano = false;
			} else if (strcmp(optarg, "nano") == 0) {
				a->nano = true;
			} else {
				log_error("--time-stamp-precision: '%s' is not micro or nano", optarg);
				r = 2;
			}
			break;
		case OPT_SNAPLEN:
			r = cli_parse_num("--snaplen", optarg, 1, PCAP_MAX_SNAPLEN, false, &v);
			if (r == 0)
				a->snaplen = (uint32_t)v;
			break;
		case OPT_PACKETS:
			r = cli_parse_num("--packets", optarg, 1, UINT64_MAX, false, &a->packets);
			break;
		case OPT_BYTES:
			r = cli_parse_num("--bytes", optarg, 1, UINT64_MAX, true, &a->bytes);
			break;
		case OPT_SECONDS:
			r = cli_parse_num("--seconds", optarg, 1, MAX_SECONDS, false, &a->seconds);
			break;
		case OPT_WORKERS:
			r = cli_parse_num("--workers", optarg, 1, CAPTURE_MAX_WORKERS, false, &v);
			if (r == 0)
				a->workers = (unsigned)v;
			break;
		case OPT_RING_BLOCKS:
			r = cli_parse_num("--ring-blocks", optarg, 1, MAX_RING_BLOCKS, false, &v);
			if (r == 0)
				a->ring_blocks = (uint32_t)v;
			break;
		case OPT_BLOCK_SIZE:
			r = cli_parse_num("--block-size", optarg, 4096, MAX_BLOCK_SIZE, true, &v);
			if (r == 0 && (v & (v - 1)) != 0) {
				log_error("--block-size: %s is not a power of two in 4096..%llu", optarg,
					  MAX_BLOCK_SIZE);
				r = 2;
			}
			if (r == 0)
				a->block_size = (uint32_t)v;
			break;
		case OPT_SRC:
			flag = "--src";
			r = filter_parse_addrs(flag, optarg, strlen(optarg), &a->clause.src, &err);
			break;
		case OPT_DST:
			flag = "--dst";
			r = filter_parse_addrs(flag, optarg, strlen(optarg), &a->clause.dst, &err);
			break;
		case OPT_SPORT:
			flag = "--sport";
			r = filter_parse_ports(flag, optarg, strlen(optarg), &a->clause.sport, &err);
			break;
		case OPT_DPORT:
			flag = "--dport";
			r = filter_parse_ports(flag, optarg, strlen(optarg), &a->clause.dport, &err);
			break;
		case OPT_PROTO:
			flag = "--proto";
			r = filter_parse_proto(flag, optarg, strlen(optarg), &a->clause.proto, &err);
			break;
		case OPT_BPF:
			flag = "--bpf";
			r = filter_set_expr(&a->filter, optarg, strlen(optarg), &err);
			break;
		case OPT_INNER:
			a->clause.inner = true;
			break;
		case 'q':
			a->quiet = true;
			break;
		case 'h':
			usage(stdout);
			return -1; /* help: exit 0 */
		default:
			usage(stderr);
			return 2;
		}
		if (flag) {
			if (r < 0) {
				log_error("%s", err.msg);
				return 2;
			}
			if (opt != OPT_BPF)
				a->have_clause = true;
			r = 0;
		}
		if (r != 0)
			return r;
	}
	if (cli_no_operands("capture", argc, argv) != 0)
		return 2;
	if (a->n_ifaces == 0 || !a->out) {
		log_error("capture: -i IFACE and -w FILE|- are required");
		usage(stderr);
		return 2;
	}
	if (a->format_pcapng)
		a->format = PCAP_FORMAT_PCAPNG;
	else
		a->format = a->nano ? PCAP_FORMAT_PCAP_NS : PCAP_FORMAT_PCAP_US;
	if (a->have_clause) {
		r = filter_add_clause(&a->filter, &a->clause, &err);
		if (r < 0) {
			log_error("%s", err.msg);
			return 2;
		}
	}
	return 0;
}

static const char *linktype_name(uint32_t lt)
{
	switch (lt) {
	case LINKTYPE_ETHERNET:
		return "EN10MB";
	case LINKTYPE_RAW:
		return "RAW";
	default:
		return "?";
	}
}

/* Writes s as a JSON string body (no quotes) into out; always terminated. */
static void json_escape(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (; *s && o + 7 < cap; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20) {
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[ch >> 4];
			out[o + 5] = hex[ch & 15];
			o += 6;
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
}

static void print_summary(const CaptureStats *st, StopReason why, const char *error)
{
	char esc[6 * sizeof(((ErrBuf *)0)->msg) + 1]; /* \u00XX per byte at worst */

	if (why == STOP_REASON_ERROR) {
		json_escape(error ? error : "unknown error", esc, sizeof(esc));
		fprintf(stderr,
			"{\"packets\":%llu,\"bytes\":%llu,\"kernel_drops\":%llu,\"stop_reason\":\"error\",\"error\":\"%"
			"s\"}\n",
			(unsigned long long)st->packets, (unsigned long long)st->bytes,
			(unsigned long long)st->kernel_drops, esc);
	} else {
		fprintf(stderr, "{\"packets\":%llu,\"bytes\":%llu,\"kernel_drops\":%llu,\"stop_reason\":\"%s\"}\n",
			(unsigned long long)st->packets, (unsigned long long)st->bytes,
			(unsigned long long)st->kernel_drops, stop_reason_to_string(why));
	}
	fflush(stderr);
}

/* "cap0 (EN10MB), cap1 (RAW)" for the readiness line. */
static void describe_ifaces(const CaptureArgs *a, const uint32_t *lts, char *out, size_t cap)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < a->n_ifaces; i++) {
		int n = snprintf(out + o, cap - o, "%s%s (%s)", i ? ", " : "", a->ifaces[i], linktype_name(lts[i]));

		if (n < 0 || (size_t)n >= cap - o) {
			/* Too many to name: the count says enough. */
			n = snprintf(out, cap, "%zu interfaces", a->n_ifaces);
			if (n < 0 || (size_t)n >= cap)
				out[0] = '\0';
			return;
		}
		o += (size_t)n;
	}
}

int cmd_capture(int argc, char **argv)
{
	CaptureArgs a = {0};
	CbpfProgram progs[CAPTURE_MAX_IFACES] = {{0}};
	uint32_t lts[CAPTURE_MAX_IFACES];
	CapFileConfig cfg = {0};
	CaptureStats st = {0};
	CapFile *cf = NULL;
	StopReason why = STOP_REASON_ERROR;
	ErrBuf err = {{0}};
	char names[512];
	bool have_filter, created = false;
	int fd = -1, r, status = 1;

	r = parse_args(argc, argv, &a);
	if (r != 0) {
		status = r < 0 ? 0 : r;
		goto free_args;
	}
	have_filter = a.have_clause || a.filter.bpf_expr;
	r = cli_catch_stop_signals();
	if (r < 0) {
		errbuf_set(&err, r, "sigaction: %s", strerror(-r));
		goto fail;
	}

	/* 1. Link types and filters, before anything is opened. */
	for (size_t i = 0; i < a.n_ifaces; i++) {
		r = capture_iface_linktype(a.ifaces[i], &lts[i], &err);
		if (r < 0)
			goto fail;
		if (a.format != PCAP_FORMAT_PCAPNG && lts[i] != lts[0]) {
			r = errbuf_set(&err, -EINVAL,
				       "%s is %s but %s is %s: a pcap file has one link type; use --format pcapng",
				       a.ifaces[0], linktype_name(lts[0]), a.ifaces[i], linktype_name(lts[i]));
			goto fail;
		}
		if (have_filter) {
			r = filter_compile(&a.filter, lts[i], a.snaplen, &progs[i], &err);
			if (r < 0) {
				log_error("%s", err.msg);
				status = 2;
				goto free_args;
			}
		}
	}

	/* 2. Sockets: unknown interfaces and a missing CAP_NET_RAW end here. */
	cfg.capture.ifaces = a.ifaces;
	cfg.capture.n_ifaces = a.n_ifaces;
	cfg.capture.snaplen = a.snaplen;
	cfg.capture.block_size = a.block_size;
	cfg.capture.block_count = a.ring_blocks;
	cfg.capture.workers = a.workers;
	cfg.capture.filters = have_filter ? progs : NULL;
	cfg.capture.max_packets = a.packets;
	cfg.capture.max_bytes = a.bytes;
	cfg.capture.max_duration_ns = a.seconds * NSEC_PER_SEC;
	cfg.format = a.format;
	cfg.direct = true; /* past the page cache where the file allows: see writer.c */
	r = capfile_open(&cfg, &cf, &err);
	if (r < 0)
		goto fail;

	/* 3. The output, last. A file pcapd creates is removed again if set-up
	 * fails from here on; an existing one is replaced, as tcpdump does, but
	 * never removed. */
	if (cli_stop_requested) {
		r = errbuf_set(&err, -EINTR, "interrupted before the capture started");
		goto fail;
	}
	if (strcmp(a.out, "-") == 0) {
		fd = STDOUT_FILENO;
	} else {
		fd = open(a.out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		created = fd >= 0;
		if (fd < 0 && errno == EEXIST)
			fd = open(a.out, O_WRONLY | O_TRUNC | O_CLOEXEC);
		if (fd < 0) {
			r = errbuf_errno(&err, "cannot write %s", a.out);
			goto fail;
		}
	}
	/* Writes the header at once, so that a reader of `-w -` can start and an
	 * interrupted capture still leaves a valid (empty) file. */
	r = capfile_start(cf, fd, &err);
	if (r < 0)
		goto fail;
	created = false; /* from here on the file holds what was captured: keep it */

	if (!a.quiet) {
		describe_ifaces(&a, lts, names, sizeof(names));
		log_info("capturing on %s, snaplen %u", names, a.snaplen);
	}
	r = capfile_run(cf, &cli_stop_requested, &why, &err);
	capfile_stats(cf, &st);
	if (r == 0) {
		r = capfile_finish(cf, false, NULL, &err);
		if (r < 0)
			why = STOP_REASON_ERROR;
	}
	if (r < 0)
		log_error("%s", err.msg);
	print_summary(&st, why, r < 0 ? err.msg : NULL);
	status = r < 0 ? 1 : 0;
	goto done;

fail:
	/* Set-up failed before any packet: one error line and no summary, since
	 * no capture ran. */
	log_error("%s", err.msg);
	status = 1;
done:
	capfile_free(cf);
	if (fd >= 0 && fd != STDOUT_FILENO) {
		if (close(fd) < 0 && status == 0) {
			log_error("closing %s: %s", a.out, strerror(errno));
			status = 1;
		}
		if (created)
			unlink(a.out); /* failed before capturing: leave nothing behind */
	}
free_args:
	for (size_t i = 0; i < a.n_ifaces; i++)
		cbpf_program_free(&progs[i]);
	filter_clause_done(&a.clause);
	filter_done(&a.filter);
	free(a.iface_list);
	return status;
}

/* SPDX-License-Identifier: MIT */
/*
 * pcapd history import|query|stats: the history store (src/history) from the
 * command line, for tests, benchmarks and forensics.
 *
 *   import --dir DIR [--sample-rate N] [--snaplen N] [--segment-size SIZE] FILE...
 *       Records the packets of pcap/pcapng files (in the order given) into
 *       DIR, as the agent's recorder would: truncated to --snaplen (default
 *       160), one packet in N kept. Sampling here is deterministic: the
 *       first packet and every Nth after it, counted over all inputs, so
 *       that tests know exactly what was kept. Segments are sealed by size
 *       only (an import has no clock), and nothing is deleted by retention.
 *       stdout: one JSON line {"packets_read","packets_recorded","segments"}.
 *
 *   query --dir DIR [--before RFC3339] [--seconds N] [--packets N]
 *         [--src --dst --sport --dport --proto --bpf] [--format pcap|pcapng] -w OUT|-
 *       The newest N (default 10000) packets in [before - seconds, before]
 *       (both ends included; before defaults to now, seconds to 300) that
 *       match the filter (as pcapd capture's flags), in time order. The
 *       store is opened read-only: a running recorder may share DIR, and
 *       the query sees the segments it had sealed. Bad flags or filters
 *       leave no output file. stderr, last line: JSON with the counters and
 *       "ms", the time from opening the store to the last byte written.
 *
 *   stats --dir DIR [--json]
 *       Time span, packets, bytes and segments of DIR.
 *
 * Exit status: 0, 1 on a runtime error, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "common/util.h"
#include "filter/filter.h"
#include "history/hist.h"
#include "pcap/reader.h"

#define MAX_SECONDS (366ull * 24 * 3600)
#define DEFAULT_SECONDS 300u
#define DEFAULT_PACKETS 10000u

enum {
	OPT_DIR = 0x100,
	OPT_SAMPLE_RATE,
	OPT_SNAPLEN,
	OPT_SEGMENT_SIZE,
	OPT_BEFORE,
	OPT_SECONDS,
	OPT_PACKETS,
	OPT_SRC,
	OPT_DST,
	OPT_SPORT,
	OPT_DPORT,
	OPT_PROTO,
	OPT_BPF,
	OPT_INNER,
	OPT_FORMAT,
	OPT_JSON,
};

static void history_usage(FILE *f)
{
	fprintf(f,
		"usage: pcapd history import --dir DIR [--sample-rate N] [--snaplen N] [--segment-size SIZE] FILE...\n"
		"       pcapd history query --dir DIR [--before RFC3339] [--seconds N] [--packets N]\n"
		"                           [--src ADDRS] [--dst ADDRS] [--sport PORTS] [--dport PORTS]\n"
		"                           [--proto P] [--bpf EXPR] [--inner] [--format pcap|pcapng] -w OUT|-\n"
		"       pcapd history stats --dir DIR [--json]\n"
		"\n"
		"import: records pcap/pcapng files into the history DIR; one packet in N kept\n"
		"        (the first and every Nth after it), truncated to --snaplen (default %u)\n"
		"query:  the newest --packets (default %u, at most %llu) packets within\n"
		"        [before - seconds, before] (default: the last %u seconds) that match\n"
		"        the filter flags (as in pcapd capture), in time order\n"
		"stats:  time span, packets, bytes and segments\n",
		HIST_DEFAULT_SNAPLEN, DEFAULT_PACKETS, HIST_MAX_QUERY_PACKETS, DEFAULT_SECONDS);
}

/* The filter flags of pcapd capture: 0, 1 if opt is not one, or 2 (said why). */
static int filter_flag(int opt, const char *arg, Filter *f, FilterClause *c, bool *have_clause)
{
	ErrBuf err = {{0}};
	const char *flag;
	int r;

	switch (opt) {
	case OPT_SRC:
		flag = "--src";
		r = filter_parse_addrs(flag, arg, strlen(arg), &c->src, &err);
		break;
	case OPT_DST:
		flag = "--dst";
		r = filter_parse_addrs(flag, arg, strlen(arg), &c->dst, &err);
		break;
	case OPT_SPORT:
		flag = "--sport";
		r = filter_parse_ports(flag, arg, strlen(arg), &c->sport, &err);
		break;
	case OPT_DPORT:
		flag = "--dport";
		r = filter_parse_ports(flag, arg, strlen(arg), &c->dport, &err);
		break;
	case OPT_PROTO:
		flag = "--proto";
		r = filter_parse_proto(flag, arg, strlen(arg), &c->proto, &err);
		break;
	case OPT_BPF:
		flag = "--bpf";
		r = filter_set_expr(f, arg, strlen(arg), &err);
		break;
	case OPT_INNER:
		c->inner = true; /* a property of the clause, not a clause of its own */
		return 0;
	default:
		return 1;
	}
	if (r < 0) {
		log_error("%s", err.msg);
		return 2;
	}
	if (opt != OPT_BPF)
		*have_clause = true;
	return 0;
}

/* ------------------------------------------------------------ import */

typedef struct ImportCounts {
	uint64_t read, recorded;
} ImportCounts;

static int import_file(HistStore *s, const char *path, uint64_t rate, ImportCounts *n)
{
	PcapReader *rd = NULL;
	ErrBuf err = {{0}};
	int r;

	r = pcaprd_open(path, &rd, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		return 1;
	}
	for (;;) {
		PcapRecord rec;
		struct iovec part;
		HistPacket p;

		r = pcaprd_next(rd, &rec, &err);
		if (r < 0) {
			log_error("%s", err.msg);
			break;
		}
		if (r == 0)
			break;
		if (n->read++ % rate != 0)
			continue;
		part = (struct iovec){.iov_base = (void *)rec.data, .iov_len = rec.caplen};
		p = (HistPacket){.ts_ns = rec.ts_ns,
				 .origlen = rec.origlen,
				 .linktype = rec.linktype,
				 .parts = &part,
				 .nparts = 1};
		r = hist_add(s, &p, &err);
		if (r < 0) {
			log_error("%s", err.msg);
			break;
		}
		n->recorded++;
	}
	if (r == 0 && pcaprd_truncated_tail(rd) > 0)
		log_warning("%s: ends in a truncated record (%llu bytes ignored)", path,
			    (unsigned long long)pcaprd_truncated_tail(rd));
	pcaprd_free(rd);
	return r < 0 ? 1 : 0;
}

static void report_recovery(const char *dir, const HistOpenReport *rep)
{
	if (rep->removed_temp || rep->removed_orphan || rep->removed_empty || rep->rebuilt || rep->truncated)
		log_info("%s: recovery removed %u unpublished and %u orphan files and %u empty segments, rebuilt %u "
			 "indexes, cut %u data files back",
			 dir, rep->removed_temp, rep->removed_orphan, rep->removed_empty, rep->rebuilt, rep->truncated);
	if (rep->unreadable)
		log_warning("%s: %u data files are not pcapd segments and are ignored", dir, rep->unreadable);
}

static int cmd_import(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"sample-rate", required_argument, NULL, OPT_SAMPLE_RATE},
		{"snaplen", required_argument, NULL, OPT_SNAPLEN},
		{"segment-size", required_argument, NULL, OPT_SEGMENT_SIZE},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	HistConfig cfg = {
		.segment_age_ns = HIST_NO_LIMIT,
		.max_age_ns = HIST_NO_LIMIT,
		.max_bytes = HIST_NO_LIMIT,
	};
	HistOpenReport rep;
	ImportCounts n = {0};
	HistStats st;
	HistStore *s = NULL;
	ErrBuf err = {{0}};
	uint64_t rate = 1, v;
	int opt, r, status = 0;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_DIR:
			cfg.dir = optarg;
			break;
		case OPT_SAMPLE_RATE:
			if (cli_parse_num("--sample-rate", optarg, 1, UINT32_MAX, false, &rate))
				return 2;
			break;
		case OPT_SNAPLEN:
			if (cli_parse_num("--snaplen", optarg, 1, PCAP_MAX_SNAPLEN, false, &v))
				return 2;
			cfg.snaplen = (uint32_t)v;
			break;
		case OPT_SEGMENT_SIZE:
			if (cli_parse_num("--segment-size", optarg, HIST_MIN_SEGMENT_BYTES, HIST_MAX_SEGMENT_BYTES,
					  true, &cfg.segment_bytes))
				return 2;
			break;
		case 'h':
			history_usage(stdout);
			return 0;
		default:
			history_usage(stderr);
			return 2;
		}
	}
	if (!cfg.dir || optind >= argc) {
		log_error("history import: --dir DIR and at least one FILE are required");
		return 2;
	}
	r = hist_open(&cfg, &s, &rep, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		return 1;
	}
	report_recovery(cfg.dir, &rep);
	for (int i = optind; i < argc && status == 0; i++)
		status = import_file(s, argv[i], rate, &n);
	r = hist_seal(s, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		status = 1;
	}
	if (hist_stats(s, &st, &err) < 0)
		st.segments = 0;
	r = hist_close(s, &err);
	if (r < 0 && status == 0) {
		log_error("%s", err.msg);
		status = 1;
	}
	printf("{\"packets_read\":%llu,\"packets_recorded\":%llu,\"segments\":%llu}\n", (unsigned long long)n.read,
	       (unsigned long long)n.recorded, (unsigned long long)st.segments);
	return status;
}

/* ------------------------------------------------------------ query */

static int cmd_query(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"before", required_argument, NULL, OPT_BEFORE},
		{"seconds", required_argument, NULL, OPT_SECONDS},
		{"packets", required_argument, NULL, OPT_PACKETS},
		{"src", required_argument, NULL, OPT_SRC},
		{"dst", required_argument, NULL, OPT_DST},
		{"sport", required_argument, NULL, OPT_SPORT},
		{"dport", required_argument, NULL, OPT_DPORT},
		{"proto", required_argument, NULL, OPT_PROTO},
		{"bpf", required_argument, NULL, OPT_BPF},
		{"inner", no_argument, NULL, OPT_INNER},
		{"format", required_argument, NULL, OPT_FORMAT},
		{"write", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	HistConfig cfg = {.read_only = true};
	HistQuery q = {.max_packets = DEFAULT_PACKETS};
	HistQueryResult res = {0};
	Filter filter = {0};
	FilterClause clause;
	CbpfProgram check = {0};
	HistStore *s = NULL;
	ErrBuf err = {{0}};
	const char *out = NULL;
	uint64_t seconds = DEFAULT_SECONDS, t0;
	int64_t before = (int64_t)now_realtime_ns();
	bool have_clause = false, created = false;
	int opt, r, status = 2, fd = -1;

	filter_clause_init(&clause);
	optind = 0;
	while ((opt = getopt_long(argc, argv, "w:h", opts, NULL)) != -1) {
		r = filter_flag(opt, optarg, &filter, &clause, &have_clause);
		if (r == 0)
			continue;
		if (r == 2)
			goto done;
		switch (opt) {
		case OPT_DIR:
			cfg.dir = optarg;
			break;
		case OPT_BEFORE:
			if (timefmt_parse_rfc3339(optarg, strlen(optarg), &before) < 0) {
				log_error("--before: '%s' is not an RFC 3339 time (e.g. 2024-01-02T03:04:05Z)", optarg);
				goto done;
			}
			break;
		case OPT_SECONDS:
			if (cli_parse_num("--seconds", optarg, 1, MAX_SECONDS, false, &seconds))
				goto done;
			break;
		case OPT_PACKETS:
			if (cli_parse_num("--packets", optarg, 1, HIST_MAX_QUERY_PACKETS, false, &q.max_packets))
				goto done;
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "pcap") == 0 || strcmp(optarg, "pcapng") == 0) {
				q.pcapng = optarg[4] == 'n';
			} else {
				log_error("--format: '%s' is not pcap or pcapng", optarg);
				goto done;
			}
			break;
		case 'w':
			out = optarg;
			break;
		case 'h':
			history_usage(stdout);
			status = 0;
			goto done;
		default:
			history_usage(stderr);
			goto done;
		}
	}
	if (!cfg.dir || !out || optind < argc) {
		log_error("history query: --dir DIR and -w OUT|- are required, and nothing else");
		goto done;
	}
	if (have_clause && filter_add_clause(&filter, &clause, &err) < 0) {
		log_error("%s", err.msg);
		goto done;
	}
	/* A bad expression is a usage error, found before any file exists. */
	if ((have_clause || filter.bpf_expr) &&
	    filter_compile(&filter, LINKTYPE_ETHERNET, PCAP_MAX_SNAPLEN, &check, &err) < 0) {
		log_error("%s", err.msg);
		goto done;
	}
	q.to_ns = before < 0 ? 0 : (uint64_t)before;
	q.from_ns = q.to_ns > seconds * NSEC_PER_SEC ? q.to_ns - seconds * NSEC_PER_SEC : 0;
	q.filter = &filter;
	status = 1;
	t0 = now_monotonic_ns();
	r = hist_open(&cfg, &s, NULL, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		goto done;
	}
	if (strcmp(out, "-") == 0) {
		fd = STDOUT_FILENO;
	} else {
		fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		created = fd >= 0;
		if (fd < 0 && errno == EEXIST)
			fd = open(out, O_WRONLY | O_TRUNC | O_CLOEXEC);
		if (fd < 0) {
			log_error("cannot write %s: %s", out, strerror(errno));
			goto done;
		}
	}
	r = hist_query(s, &q, fd, &res, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		goto done;
	}
	created = false;
	fprintf(stderr,
		"{\"packets\":%llu,\"bytes\":%llu,\"limited\":%s,\"segments\":%llu,\"segments_skipped\":%llu,"
		"\"blocks\":%llu,\"blocks_skipped\":%llu,\"blocks_read\":%llu,\"ms\":%.3f}\n",
		(unsigned long long)res.packets, (unsigned long long)res.bytes, res.limited ? "true" : "false",
		(unsigned long long)res.segments, (unsigned long long)res.segments_skipped,
		(unsigned long long)res.blocks, (unsigned long long)res.blocks_skipped,
		(unsigned long long)res.blocks_read, (double)(now_monotonic_ns() - t0) / 1e6);
	status = 0;
done:
	if (fd >= 0 && fd != STDOUT_FILENO) {
		if (close(fd) < 0 && status == 0) {
			log_error("closing %s: %s", out, strerror(errno));
			status = 1;
		}
		if (created)
			unlink(out);
	}
	hist_free(s);
	cbpf_program_free(&check);
	filter_clause_done(&clause);
	filter_done(&filter);
	return status;
}

/* ------------------------------------------------------------ stats */

static int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"json", no_argument, NULL, OPT_JSON},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	HistConfig cfg = {.read_only = true};
	HistStats st;
	HistStore *s = NULL;
	ErrBuf err = {{0}};
	char first[TIMEFMT_MAX], last[TIMEFMT_MAX];
	bool json = false;
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_DIR:
			cfg.dir = optarg;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			history_usage(stdout);
			return 0;
		default:
			history_usage(stderr);
			return 2;
		}
	}
	if (!cfg.dir || optind < argc) {
		log_error("history stats: --dir DIR is required, and nothing else");
		return 2;
	}
	r = hist_open(&cfg, &s, NULL, &err);
	if (r == 0)
		r = hist_stats(s, &st, &err);
	hist_free(s);
	if (r < 0) {
		log_error("%s", err.msg);
		return 1;
	}
	timefmt_rfc3339((int64_t)st.first_ts, first);
	timefmt_rfc3339((int64_t)st.last_ts, last);
	if (json) {
		printf("{\"segments\":%llu,\"packets\":%llu,\"bytes\":%llu,\"wire_bytes\":%llu,\"disk_bytes\":%llu,"
		       "\"first_ns\":%llu,\"last_ns\":%llu,\"first\":\"%s\",\"last\":\"%s\",\"unreadable\":%llu}\n",
		       (unsigned long long)st.segments, (unsigned long long)st.packets, (unsigned long long)st.bytes,
		       (unsigned long long)st.wire_bytes, (unsigned long long)st.disk_bytes,
		       (unsigned long long)st.first_ts, (unsigned long long)st.last_ts, st.packets ? first : "",
		       st.packets ? last : "", (unsigned long long)st.unreadable);
		return 0;
	}
	printf("segments    %llu\n", (unsigned long long)st.segments);
	printf("packets     %llu\n", (unsigned long long)st.packets);
	printf("bytes       %llu captured, %llu on the wire\n", (unsigned long long)st.bytes,
	       (unsigned long long)st.wire_bytes);
	printf("disk        %llu bytes\n", (unsigned long long)st.disk_bytes);
	if (st.packets) {
		printf("first       %s\n", first);
		printf("last        %s\n", last);
		printf("span        %.3f s\n", (double)(st.last_ts - st.first_ts) / 1e9);
	}
	if (st.unreadable)
		printf("unreadable  %llu segments\n", (unsigned long long)st.unreadable);
	return 0;
}

int cmd_history(int argc, char **argv)
{
	if (argc < 2) {
		history_usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "import") == 0)
		return cmd_import(argc - 1, argv + 1);
	if (strcmp(argv[1], "query") == 0)
		return cmd_query(argc - 1, argv + 1);
	if (strcmp(argv[1], "stats") == 0)
		return cmd_stats(argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		history_usage(stdout);
		return 0;
	}
	log_error("history: unknown subcommand '%s' (import, query, stats)", argv[1]);
	return 2;
}

/* SPDX-License-Identifier: MIT */
/*
 * pcapd merge -w OUT|- [--format pcap|pcapng] [--time-stamp-precision micro|nano]
 *             [--ties input|mergecap] [--sync] [-v]
 *             [--name NAME] [--description TEXT] [--stats RECV:DROP] IN ...
 *
 * --name, --description and --stats describe the input that follows them
 * (MergeInput in pcap/merge.h): its interfaces' if_name and if_description,
 * and the packets its interface received and dropped (an ISB). They need
 * pcapng, which they make the default.
 *
 * Every input is opened and its first record read before the output exists, so
 * a bad input leaves nothing behind. A file output is written under a hidden
 * temporary name in OUT's directory and renamed over OUT: OUT is either absent,
 * the old file, or the whole merge. Like cp and mergecap, the merge leaves
 * writeback to the kernel; --sync fsyncs the file before the rename and the
 * directory after it, for a result that must survive a power cut.
 *
 * The temporary file is first allocated to the size of the inputs (fallocate)
 * and cut to the exact size after the merge: writing into allocated blocks
 * spares ext4 its per-block delayed-allocation work, which was a quarter of
 * the writer's time (1 GiB merge: 0.40 s -> 0.32 s on this project's machine).
 * Nobody sees the file before the rename, so its size on the way is no one's
 * business; where fallocate is refused, the merge runs as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/io.h"
#include "common/log.h"
#include "pcap/merge.h"
#include "pcap/writer.h"

static void merge_usage(FILE *f)
{
	fprintf(f, "usage: pcapd merge -w OUT|- [--format pcap|pcapng] [--time-stamp-precision micro|nano]\n"
		   "                   [--ties input|mergecap] [--sync] [-v] IN...\n"
		   "\n"
		   "Merges pcap and pcapng files by timestamp into OUT. Equal timestamps keep\n"
		   "input order (--ties mergecap: the last input first, as mergecap does)\n"
		   "('-' = standard output; an input '-' is standard input, once).\n"
		   "Default output: classic pcap when every interface has one link type\n"
		   "(nanosecond when an input has finer than microsecond timestamps), else pcapng.\n"
		   "--sync makes OUT durable (fsync) before the command returns.\n"
		   "--name, --description and --stats apply to the next input (pcapng): its\n"
		   "interfaces' if_name (NAME, or NAME/OWN for an interface the input names OWN),\n"
		   "if_description, and an interface statistics block (packets received and dropped).\n");
}

/* Builds "<dir of out>/.<base of out>.XXXXXX" into buf. */
static int temp_name(const char *out, char *buf, size_t size)
{
	const char *slash = strrchr(out, '/');
	int w;

	if (slash)
		w = snprintf(buf, size, "%.*s/.%s.XXXXXX", (int)(slash - out), out, slash + 1);
	else
		w = snprintf(buf, size, ".%s.XXXXXX", out);
	return w < 0 || (size_t)w >= size ? -ENAMETOOLONG : 0;
}

/* Bytes in the regular-file inputs: about the size of the merge. */
static uint64_t input_bytes(const char *const *inputs, size_t n)
{
	uint64_t total = 0;
	struct stat st;

	for (size_t i = 0; i < n; i++)
		if (strcmp(inputs[i], "-") != 0 && stat(inputs[i], &st) == 0 && S_ISREG(st.st_mode))
			total += (uint64_t)st.st_size;
	return total;
}

static int write_file(PcapMerge *m, const char *out, uint64_t size_hint, bool sync, MergeStats *st, ErrBuf *err)
{
	char tmp[PATH_MAX];
	bool allocated;
	mode_t mask;
	int fd, r;

	r = temp_name(out, tmp, sizeof(tmp));
	if (r < 0)
		return errbuf_set(err, r, "%s: name too long", out);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return errbuf_errno(err, "cannot create %s", out);
	/* mkostemp makes 0600; give the file the mode open(0666) would. */
	mask = umask(0);
	umask(mask);
	(void)fchmod(fd, 0666 & ~mask);
	allocated = size_hint > 0 && size_hint <= INT64_MAX && fallocate(fd, 0, 0, (off_t)size_hint) == 0;
	r = pcapmerge_write(m, fd, st, err);
	if (r == 0 && allocated && ftruncate(fd, (off_t)st->bytes) < 0)
		r = errbuf_errno(err, "cannot cut %s to its %llu bytes", out, (unsigned long long)st->bytes);
	if (r == 0 && sync) {
		r = io_posix.fsync(&io_posix, fd);
		if (r < 0)
			errbuf_set(err, r, "fsync %s: %s", out, strerror(-r));
	}
	if (io_posix.close(&io_posix, fd) < 0 && r == 0)
		r = errbuf_set(err, -EIO, "close %s failed", out);
	if (r == 0) {
		r = io_posix.rename(&io_posix, tmp, out);
		if (r < 0)
			errbuf_set(err, r, "cannot rename to %s: %s", out, strerror(-r));
	}
	if (r < 0) {
		(void)io_posix.unlink(&io_posix, tmp);
		return r;
	}
	if (!sync)
		return 0;
	r = io_fsync_parent_dir(&io_posix, out);
	if (r < 0)
		return errbuf_set(err, r, "fsync of %s's directory: %s", out, strerror(-r));
	return 0;
}

/* Per-input annotations, gathered while the arguments are read. */
typedef struct Notes {
	MergeInput *v;      /* one per input */
	PcapIfStats *stats; /* one per input: v[i].stats points here */
	const char **inputs;
	size_t n;
	MergeInput pending;
	PcapIfStats pending_stats;
	bool any;
} Notes;

/* "RECV:DROP", two counts. */
static int parse_stats(const char *v, PcapIfStats *ret)
{
	const char *colon = strchr(v, ':');
	uint64_t recv, drop;

	if (!colon || parse_u64(v, (size_t)(colon - v), 0, UINT64_MAX, &recv) < 0 ||
	    parse_u64(colon + 1, strlen(colon + 1), 0, UINT64_MAX, &drop) < 0) {
		log_error("merge: --stats: '%s' is not RECV:DROP (two counts)", v);
		return 2;
	}
	*ret = (PcapIfStats){.have = PCAP_STAT_IFRECV | PCAP_STAT_IFDROP, .ifrecv = recv, .ifdrop = drop};
	return 0;
}

/* An annotation flag (c = 'N', 'D', 'X') for the next input. */
static int note_flag(Notes *nt, int c, const char *v)
{
	nt->any = true;
	switch (c) {
	case 'N':
		if (!*v || strlen(v) > PCAPWR_MAX_IFNAME) {
			log_error("merge: --name: 1..%u bytes", PCAPWR_MAX_IFNAME);
			return 2;
		}
		nt->pending.name = v;
		return 0;
	case 'D':
		if (strlen(v) > PCAPWR_MAX_IFDESC) {
			log_error("merge: --description: at most %u bytes", PCAPWR_MAX_IFDESC);
			return 2;
		}
		nt->pending.description = v;
		return 0;
	default:
		return parse_stats(v, &nt->pending_stats);
	}
}

static void note_input(Notes *nt, const char *path)
{
	nt->inputs[nt->n] = path;
	nt->stats[nt->n] = nt->pending_stats;
	nt->v[nt->n] = nt->pending;
	if (nt->pending_stats.have) {
		nt->v[nt->n].stats = &nt->stats[nt->n];
		nt->v[nt->n].n_stats = 1;
	}
	nt->n++;
	nt->pending = (MergeInput){0};
	nt->pending_stats = (PcapIfStats){0};
}

/* The inputs after getopt stopped at the first one, with the annotation
 * flags between them. 0 or 2 (said why). */
static int read_inputs(Notes *nt, int argc, char **argv, int first)
{
	static const struct {
		const char *flag;
		int c;
	} flags[] = {{"--name", 'N'}, {"--description", 'D'}, {"--stats", 'X'}};
	bool options = true;

	for (int i = first; i < argc; i++) {
		const char *a = argv[i];
		bool matched = false;

		if (options && strcmp(a, "--") == 0) {
			options = false;
			continue;
		}
		for (size_t k = 0; options && k < ARRAY_SIZE(flags) && !matched; k++) {
			size_t fl = strlen(flags[k].flag);

			if (strncmp(a, flags[k].flag, fl) != 0 || (a[fl] != '\0' && a[fl] != '='))
				continue;
			matched = true;
			if (a[fl] == '=') {
				if (note_flag(nt, flags[k].c, a + fl + 1) != 0)
					return 2;
			} else if (i + 1 >= argc) {
				log_error("merge: %s needs a value", flags[k].flag);
				return 2;
			} else if (note_flag(nt, flags[k].c, argv[++i]) != 0) {
				return 2;
			}
		}
		if (matched)
			continue;
		if (options && a[0] == '-' && a[1] != '\0') {
			log_error("merge: %s: only --name, --description and --stats may follow an input", a);
			return 2;
		}
		note_input(nt, a);
	}
	if (nt->pending.name || nt->pending.description || nt->pending_stats.have) {
		log_error("merge: --name, --description and --stats describe the input after them; none follows");
		return 2;
	}
	return 0;
}

static void notes_done(Notes *nt)
{
	free(nt->v);
	free(nt->stats);
	free(nt->inputs);
}

int cmd_merge(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"write", required_argument, NULL, 'w'},
		{"format", required_argument, NULL, 'F'},
		{"time-stamp-precision", required_argument, NULL, 'P'},
		{"ties", required_argument, NULL, 'T'},
		{"sync", no_argument, NULL, 'S'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"name", required_argument, NULL, 'N'},
		{"description", required_argument, NULL, 'D'},
		{"stats", required_argument, NULL, 'X'},
		{NULL, 0, NULL, 0},
	};
	MergeOptions opt = {.format = -1};
	Notes nt = {0};
	MergeStats st = {0};
	PcapMerge *m = NULL;
	ErrBuf err = {{0}};
	const char *out = NULL;
	bool verbose = false, sync = false;
	int c, r;

	optind = 0; /* 0 resets getopt's state: argv[0] is the subcommand */
	while ((c = getopt_long(argc, argv, "+w:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			out = optarg;
			break;
		case 'F':
			if (strcmp(optarg, "pcap") == 0) {
				opt.format = PCAP_FORMAT_PCAP_US; /* resolution from ts_precision or the inputs */
			} else if (strcmp(optarg, "pcapng") == 0) {
				opt.format = PCAP_FORMAT_PCAPNG;
			} else {
				log_error("merge: --format must be pcap or pcapng, not '%s'", optarg);
				return 2;
			}
			break;
		case 'P':
			if (strcmp(optarg, "micro") == 0) {
				opt.ts_precision = 6;
			} else if (strcmp(optarg, "nano") == 0) {
				opt.ts_precision = 9;
			} else {
				log_error("merge: --time-stamp-precision must be micro or nano, not '%s'", optarg);
				return 2;
			}
			break;
		case 'T':
			if (strcmp(optarg, "input") == 0) {
				opt.ties_last_first = false;
			} else if (strcmp(optarg, "mergecap") == 0) {
				opt.ties_last_first = true;
			} else {
				log_error("merge: --ties must be input or mergecap, not '%s'", optarg);
				return 2;
			}
			break;
		case 'S':
			sync = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'N':
		case 'D':
		case 'X':
			if (note_flag(&nt, c, optarg) != 0)
				return 2;
			break;
		case 'h':
			merge_usage(stdout);
			return 0;
		default:
			merge_usage(stderr);
			return 2;
		}
	}
	if (!out || optind >= argc) {
		log_error("merge: %s", !out ? "-w OUT is required" : "no input files");
		merge_usage(stderr);
		return 2;
	}
	nt.v = calloc((size_t)(argc - optind), sizeof(*nt.v));
	nt.stats = calloc((size_t)(argc - optind), sizeof(*nt.stats));
	nt.inputs = calloc((size_t)(argc - optind), sizeof(*nt.inputs));
	if (!nt.v || !nt.stats || !nt.inputs) {
		log_error("merge: out of memory");
		notes_done(&nt);
		return 1;
	}
	if (read_inputs(&nt, argc, argv, optind) != 0) {
		notes_done(&nt);
		return 2;
	}
	if (nt.n == 0) {
		log_error("merge: no input files");
		notes_done(&nt);
		return 2;
	}
	if (nt.any) {
		if (opt.format >= 0 && opt.format != PCAP_FORMAT_PCAPNG) {
			log_error("merge: --name, --description and --stats need --format pcapng");
			notes_done(&nt);
			return 2;
		}
		opt.format = PCAP_FORMAT_PCAPNG;
		opt.annotations = nt.v;
	}
	opt.out_name = strcmp(out, "-") == 0 ? "standard output" : out;
	if (opt.ts_precision && opt.format == PCAP_FORMAT_PCAPNG) {
		log_error("merge: --time-stamp-precision applies to --format pcap only");
		notes_done(&nt);
		return 2;
	}
	/* -EINVAL is how the library refuses its arguments (an input '-' given
	 * twice; the options were checked above): a usage error. */
	r = pcapmerge_open(nt.inputs, nt.n, &opt, &m, &err);
	if (r == -EINVAL) {
		log_error("merge: %s", err.msg);
		notes_done(&nt);
		return 2;
	}
	if (r < 0)
		goto fail;
	if (strcmp(out, "-") == 0)
		r = pcapmerge_write(m, STDOUT_FILENO, &st, &err);
	else
		r = write_file(m, out, input_bytes(nt.inputs, nt.n), sync, &st, &err);
	if (r < 0)
		goto fail;
	if (st.truncated_tails)
		log_warning("merge: %llu input(s) ended in a truncated record; their whole records were merged",
			    (unsigned long long)st.truncated_tails);
	if (verbose)
		log_info("merge: %llu packets, %llu bytes from %zu inputs into %s (%llu ended truncated)",
			 (unsigned long long)st.packets, (unsigned long long)st.bytes, nt.n, opt.out_name,
			 (unsigned long long)st.truncated_tails);
	pcapmerge_free(m);
	notes_done(&nt);
	return 0;
fail:
	log_error("merge: %s", err.msg);
	pcapmerge_free(m);
	notes_done(&nt);
	return 1;
}

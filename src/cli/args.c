/* SPDX-License-Identifier: MIT */
/* Command-line helpers the pcapd subcommands share (args.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "common/log.h"
#include "common/util.h"

volatile sig_atomic_t cli_stop_requested;

int cli_one_subcommand(const char *cmd, const char *sub, int argc, char **argv, int (*run)(int, char **),
		       void (*usage)(FILE *))
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], sub) != 0) {
		log_error("%s: unknown subcommand '%s' (expected %s)", cmd, argv[1], sub);
		return 2;
	}
	return run(argc - 1, argv + 1);
}

int cli_no_operands(const char *cmd, int argc, char **argv)
{
	if (optind < argc) {
		log_error("%s: unexpected argument '%s'", cmd, argv[optind]);
		return 2;
	}
	return 0;
}

int cli_split_ifaces(const char *list, bool all_alone, char **owned, const char **ifaces, size_t cap, size_t *n)
{
	char *p;

	free(*owned);
	*owned = strdup(list);
	if (!*owned) {
		log_error("out of memory");
		return 1;
	}
	*n = 0;
	p = *owned;
	for (;;) {
		char *comma = strchr(p, ',');

		if (comma)
			*comma = '\0';
		if (*p == '\0') {
			log_error("-i: empty interface name in '%s'", list);
			return 2;
		}
		if (all_alone && strcmp(p, "all") == 0) {
			log_error("-i: 'all' stands alone, not in a list");
			return 2;
		}
		if (*n == cap) {
			log_error("-i: more than %zu interfaces", cap);
			return 2;
		}
		ifaces[(*n)++] = p;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

int cli_make_data_dir(const char *dir)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_error("--data: cannot create %s: %s", dir, strerror(errno));
		return 1;
	}
	return 0;
}

int cli_db_open(const char *db_url, const char *data, Db **ret, ErrBuf *err)
{
	char path[4096];
	int r;

	if (db_url) {
		char msg[sizeof(err->msg)];

		r = db_open(db_url, ret, err);
		if (r < 0) {
			memcpy(msg, err->msg, sizeof(msg)); /* errbuf_set writes err->msg */
			errbuf_set(err, r, "--db: %s", msg);
		}
		return r;
	}
	if (cli_path_join(path, sizeof(path), data, "pcapd.db") < 0)
		return errbuf_set(err, -ENAMETOOLONG, "--data: path too long");
	return db_open(path, ret, err);
}

int cli_path_join(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static void on_stop_signal(int sig)
{
	(void)sig;
	cli_stop_requested = 1;
}

int cli_catch_stop_signals(void)
{
	struct sigaction sa = {0};

	sa.sa_handler = on_stop_signal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
		return -errno;
	sa.sa_handler = SIG_IGN;
	sa.sa_flags = 0;
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return -errno;
	return 0;
}

int cli_parse_num(const char *flag, const char *value, uint64_t lo, uint64_t hi, bool size, uint64_t *ret)
{
	int r = size ? parse_size(value, strlen(value), lo, hi, ret) : parse_u64(value, strlen(value), lo, hi, ret);

	if (r == 0)
		return 0;
	if (r == -ERANGE)
		log_error("%s: %s is outside %llu..%llu", flag, value, (unsigned long long)lo, (unsigned long long)hi);
	else
		log_error("%s: '%s' is not a %s", flag, value, size ? "size (a number with K, M or G)" : "number");
	return 2;
}

/* SPDX-License-Identifier: MIT */
/*
 * pcapctl: the command-line client of a pcapd controller (Cloudflare PCAPs
 * API). Connection flags may come before the command or among its options;
 * each command parses the rest (pcapctl.h).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "pcapctl/pcapctl.h"

typedef struct Command {
	const char *name;
	int (*run)(int argc, char **argv, CtlOptions *o);
	const char *synopsis;
	const char *summary;
} Command;

static const Command commands[] = {
	{"create", cmd_create, "create full|sample [FLAGS]",
	 "start a capture (--wait to follow it, -o to download it)"},
	{"list", cmd_list, "list", "list the captures of the account"},
	{"get", cmd_get, "get ID", "show one capture"},
	{"download", cmd_download, "download ID -o FILE|- [--format F]",
	 "download a capture as a pcap (or pcapng) file"},
	{"stream", cmd_stream, "stream ID [-o FILE|-] [--format pcapng|pcap]",
	 "stream a running capture live (pcapng or pcap)"},
	{"stop", cmd_stop, "stop ID", "stop a running capture"},
	{"retry-upload", cmd_retry_upload, "retry-upload ID", "upload the failed shares of a capture again"},
	{"bucket", cmd_bucket, "bucket add|validate|list|rm", "manage buckets for full captures"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: pcapctl [CONNECTION FLAGS] COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-30s %s\n", commands[i].synopsis, commands[i].summary);
	fprintf(f,
		"\n%s"
		"      --version               print the version\n"
		"\n"
		"'pcapctl COMMAND --help' describes a command. Tables are for people;\n"
		"--json prints the API's objects. Exit status: 0, 1 when the request failed,\n"
		"2 for bad input (nothing was sent), 130 when interrupted.\n",
		ctl_conn_help);
}

static const Command *find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(name, commands[i].name) == 0)
			return &commands[i];
	return NULL;
}

enum { OPT_VERSION = CTL_OPT_FIRST_COMMAND };

static const struct option long_options[] = {
	CTL_CONN_LONG_OPTIONS,
	{"version", no_argument, NULL, OPT_VERSION},
	{0},
};

int main(int argc, char **argv)
{
	CtlOptions o = {0};
	const Command *cmd;
	struct sigaction sa = {0};
	int opt;

	/* A closed pipe (pcapctl download ID -o - | head) is a write error that
	 * we report, not a silent death. */
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);

	opterr = 0;
	/* '+': stop at the command; its own flags are its business. */
	while ((opt = getopt_long(argc, argv, "+:h", long_options, NULL)) != -1) {
		if (ctl_conn_option(&o, opt, optarg))
			continue;
		switch (opt) {
		case 'h':
			usage(stdout);
			return CTL_EXIT_OK;
		case OPT_VERSION:
			printf("pcapctl %s\n", PCAPD_VERSION);
			return CTL_EXIT_OK;
		default:
			ctl_getopt_error("", opt, argv);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0) {
		char help[] = "--help";
		char *args[3] = {argv[optind + 1], help, NULL};

		if (optind + 1 >= argc) {
			usage(stdout);
			return CTL_EXIT_OK;
		}
		cmd = find(argv[optind + 1]);
		if (!cmd) {
			ctl_error("unknown command '%s'", argv[optind + 1]);
			return CTL_EXIT_USAGE;
		}
		return cmd->run(2, args, &o);
	}
	cmd = find(argv[optind]);
	if (!cmd) {
		ctl_error("unknown command '%s'", argv[optind]);
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	return cmd->run(argc - optind, argv + optind, &o);
}

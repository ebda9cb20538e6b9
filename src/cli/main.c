/* SPDX-License-Identifier: MIT */
/* pcapd: one binary, subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/util.h"

typedef struct Command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} Command;

static const Command commands[] = {
	{"capture", cmd_capture, "capture packets from interfaces into a pcap/pcapng file"},
	{"merge", cmd_merge, "merge pcap/pcapng files by timestamp into one file"},
	{"agent", cmd_agent, "take full captures on this machine for a controller"},
	{"controller", cmd_controller, "serve the API (Cloudflare PCAPs dialect) and the agents"},
	{"token", cmd_token, "create API credentials and agent enrolment tokens"},
	{"agents", cmd_agents, "revoke an agent's key"},
	{"up", cmd_up, "a controller and a local agent with embedded defaults"},
	{"history", cmd_history, "import, query and describe a sampled history directory"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: pcapd COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'pcapd COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("pcapd %s\n", PCAPD_VERSION);
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "pcapd: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}

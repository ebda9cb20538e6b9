/* SPDX-License-Identifier: MIT */
/*
 * pcapd agents revoke: forgets an agent's key (its requests are refused from
 * now on, 401) so that its name may be enrolled again. Works while the
 * controller runs (the database serialises the write); an account can do the same for the agents it
 * enrolled with DELETE /client/v4/accounts/{account}/pcaps/agents/{name}.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "common/log.h"
#include "db/db.h"
#include "proto/agentproto.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: pcapd agents revoke --data DIR|--db URL NAME\n"
		   "\n"
		   "Revokes agent NAME's key: the controller refuses the agent from now on, and the\n"
		   "name may be enrolled again (pcapd agent --enroll-token, after removing the\n"
		   "agent's DATA/agent.key). Controllers over PostgreSQL forget the agent at once;\n"
		   "one over SQLite within its agent time-out (its requests are refused at once).\n"
		   "\n"
		   "  --data DIR            the controller's --data (its database DIR/pcapd.db)\n" CLI_DB_HELP);
}

static int agents_revoke(int argc, char **argv)
{
	static const struct option opts[] = {
		{"data", required_argument, NULL, 'd'},
		{"db", required_argument, NULL, 'D'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *data = NULL, *db_url = NULL, *name;
	ErrBuf err = {{0}};
	Db *db = NULL;
	int opt, r;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			data = optarg;
			break;
		case 'D':
			db_url = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if ((!data && !db_url) || optind != argc - 1) {
		log_error("agents revoke: --data DIR (or --db URL) and one NAME are required");
		usage(stderr);
		return 2;
	}
	name = argv[optind];
	if (!agentproto_name_valid(name)) {
		log_error("NAME: '%s' is not 1..%u characters of [A-Za-z0-9._-]", name, AGENT_NAME_MAX);
		return 2;
	}
	r = cli_db_open(db_url, data, &db, &err);
	if (r == 0)
		r = db_agent_key_delete(db, name, &err);
	/* Controllers that watch the database (PostgreSQL) forget it now. */
	if (r == 0 && db_agent_forget(db, "cli", name, &err) < 0) {
		log_warning("agent %s revoked, but running controllers were not told: %s", name, err.msg);
		log_warning("they refuse its key within 30 s (their key cache) and forget the agent within their "
			    "agent time-out");
	}
	db_close(db);
	if (r == -ENOENT) {
		log_error("agents revoke: no agent '%s' is enrolled", name);
		return 1;
	}
	if (r < 0) {
		log_error("%s", err.msg);
		return 1;
	}
	printf("agent %s revoked\n", name);
	return 0;
}

int cmd_agents(int argc, char **argv)
{
	return cli_one_subcommand("agents", "revoke", argc, argv, agents_revoke, usage);
}

/* SPDX-License-Identifier: MIT */
/*
 * pcapd agent: the daemon that takes full captures on this machine for a
 * controller and answers sample captures from the sampled history it records
 * (src/agent/agent.h, src/agent/recorder.h, docs/AGENT-PROTOCOL.md).
 *
 * Order: parse and check every flag (exit 2 on bad usage), check the named
 * interfaces (exit 1), then keep only CAP_NET_RAW (exit 1, saying how to grant
 * it, when the process lacks it), then run. Once the controller accepted the
 * first report, stderr says `pcapd: agent NAME registered with URL`.
 *
 * Identity: the agent's own key, kept in DATA/agent.key (agent/agentkey.h).
 * Without one, the agent enrols first with the enrolment token of
 * --enroll-token or, so that it does not show in ps, of the environment
 * variable PCAPD_ENROLL_TOKEN (the flag wins); a token given when a key exists
 * is not used.
 *
 * Signals: SIGINT/SIGTERM stop running captures (stop reason "user"), which
 * are uploaded and reported before the agent exits 0; a second signal kills
 * it (SA_RESETHAND).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/agentkey.h"
#include "agent/caps.h"
#include "agent/ctlclient.h"
#include "capture/capture.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "common/log.h"
#include "common/util.h"
#include "model/job.h"
#include "pcap/record.h"

typedef struct AgentArgs {
	AgentConfig cfg;
	char *iface_list; /* owned copy of -i, split in place at ',' */
	const char *ifaces[CAPTURE_MAX_IFACES];
	char bucket_root[PATH_MAX]; /* made absolute */
	const char *enroll_token;
	const char *controllers[CTL_MAX_URLS]; /* every --controller, in order */
	size_t n_controllers;
	char key[AGENTKEY_SECRET_MAX + 1]; /* the agent's own key */
	char local_root[PATH_MAX];         /* made absolute */
} AgentArgs;

enum {
	OPT_CONTROLLER = 0x100,
	OPT_NAME,
	OPT_COLO,
	OPT_TOKEN,
	OPT_ENROLL_TOKEN,
	OPT_DATA,
	OPT_BUCKET_ROOT,
	OPT_LOCAL_ROOT,
	OPT_CACERT,
	OPT_INSECURE,
	OPT_SAMPLE_RATE,
	OPT_SAMPLE_SNAPLEN,
	OPT_HISTORY_SIZE,
	OPT_HISTORY_AGE,
	OPT_UPLOAD_BUDGET,
};

static const struct option long_options[] = {
	{"controller", required_argument, NULL, OPT_CONTROLLER},
	{"name", required_argument, NULL, OPT_NAME},
	{"colo", required_argument, NULL, OPT_COLO},
	{"interface", required_argument, NULL, 'i'},
	{"token", required_argument, NULL, OPT_TOKEN},
	{"enroll-token", required_argument, NULL, OPT_ENROLL_TOKEN},
	{"data", required_argument, NULL, OPT_DATA},
	{"bucket-root", required_argument, NULL, OPT_BUCKET_ROOT},
	{"local-root", required_argument, NULL, OPT_LOCAL_ROOT},
	{"cacert", required_argument, NULL, OPT_CACERT},
	{"insecure", no_argument, NULL, OPT_INSECURE},
	{"sample-rate", required_argument, NULL, OPT_SAMPLE_RATE},
	{"sample-snaplen", required_argument, NULL, OPT_SAMPLE_SNAPLEN},
	{"history-size", required_argument, NULL, OPT_HISTORY_SIZE},
	{"history-age", required_argument, NULL, OPT_HISTORY_AGE},
	{"upload-budget", required_argument, NULL, OPT_UPLOAD_BUDGET},
	{"help", no_argument, NULL, 'h'},
	{0},
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pcapd agent --controller URL --name NAME --colo COLO -i IFACES --data DIR\n"
		"                   [--enroll-token TOKEN] [--bucket-root DIR] [--local-root DIR] [--cacert FILE]\n"
		"                   [--insecure] [--upload-budget SECONDS]\n"
		"                   [--sample-rate N] [--sample-snaplen N] [--history-size SIZE] [--history-age "
		"SECONDS]\n"
		"\n"
		"      --controller URL     the controller, http://HOST:PORT or https://HOST:PORT; repeat it\n"
		"                           (up to %u) for controllers over one database: the agent moves\n"
		"                           to the next when one cannot be reached or answers 5xx\n"
		"      --name NAME          this agent's name, 1..%u of [A-Za-z0-9._-]\n"
		"      --colo COLO          its data center or group (captures go to an agent by name or colo)\n"
		"  -i, --interface IFACES   interfaces to capture on, comma-separated (up to %u),\n"
		"                           or 'all': every interface that is up when a capture starts\n"
		"      --data DIR           state: the agent's key, job records, capture spool, history\n"
		"                           (created if missing)\n"
		"      --enroll-token TOKEN enrolment token (pcapd token create --scope enroll), exchanged\n"
		"                           once for this agent's own key, kept in DATA/agent.key (0600);\n"
		"                           not needed once enrolled. Better: PCAPD_ENROLL_TOKEN\n"
		"      --bucket-root DIR    file:// buckets must lie below DIR (without it, none is written)\n"
		"      --local-root DIR     captures into files on this machine (Azure filePath, localPath):\n"
		"                           /var/captures/X is written as DIR/X (default /var/captures)\n"
		"      --cacert FILE        CA certificate(s) to verify an https controller\n"
		"      --insecure           https without verifying the controller's certificate\n"
		"      --upload-budget SECONDS  an upload to an object store gives up (upload_failed, the\n"
		"                           capture kept) after this long without progress, 1..86400\n"
		"                           (default 300)\n"
		"\n"
		"The recorder keeps a sampled history of the same interfaces in DATA/history, from which\n"
		"sample captures (type simple) are answered (with -i all: the interfaces up at start):\n"
		"      --sample-rate N      record 1 in N packets, chosen in the kernel (default %u);\n"
		"                           0 turns the recorder off\n"
		"      --sample-snaplen N   bytes kept per recorded packet, 1..%u (default %u)\n"
		"      --history-size SIZE  at most this much history, oldest removed first, K/M/G suffixes,\n"
		"                           256K or more (default 1G)\n"
		"      --history-age SECONDS  history older than this is removed, 1..%u (default %u, 24 h)\n"
		"\n"
		"Needs CAP_NET_RAW and keeps nothing else; as an ordinary user:\n"
		"  sudo setcap cap_net_raw+ep \"$(command -v pcapd)\"\n",
		CTL_MAX_URLS, AGENT_NAME_MAX, CAPTURE_MAX_IFACES, AGENT_DEFAULT_SAMPLE_RATE, PCAP_MAX_SNAPLEN,
		AGENT_DEFAULT_SAMPLE_SNAPLEN, AGENT_MAX_HISTORY_AGE_S, AGENT_DEFAULT_HISTORY_AGE_S);
}

/* -i IFACES: a list of names, or "all" alone. */
static int split_ifaces(AgentArgs *a, const char *list)
{
	a->cfg.all_ifaces = strcmp(list, "all") == 0;
	if (a->cfg.all_ifaces) {
		a->cfg.n_ifaces = 0;
		return 0;
	}
	return cli_split_ifaces(list, true, &a->iface_list, a->ifaces, ARRAY_SIZE(a->ifaces), &a->cfg.n_ifaces);
}

/* --bucket-root and --local-root as absolute paths: the agent and the
 * controller compare destination_conf paths against the first, whatever
 * their working directory, and a capture's files are named by the second. */
static int absolute_root(const char *flag, const char *dir, char out[PATH_MAX])
{
	char cwd[PATH_MAX];
	int n;

	if (dir[0] == '\0') {
		log_error("%s: empty path", flag);
		return 2;
	}
	if (dir[0] == '/') {
		n = snprintf(out, PATH_MAX, "%s", dir);
	} else {
		if (!getcwd(cwd, sizeof(cwd))) {
			log_error("%s: cannot resolve '%s': %s", flag, dir, strerror(errno));
			return 1;
		}
		n = snprintf(out, PATH_MAX, "%s/%s", cwd, dir);
	}
	if (n < 0 || n >= PATH_MAX) {
		log_error("%s: path too long", flag);
		return 2;
	}
	return 0;
}

/* Returns 0, -1 for --help, or the exit status for a bad command line. */
static int parse_args(int argc, char **argv, AgentArgs *a)
{
	const char *token_env = getenv("PCAPD_ENROLL_TOKEN");
	ErrBuf err = {{0}};
	uint64_t v = 0;
	int opt, r;

	a->cfg.sample_rate = AGENT_DEFAULT_SAMPLE_RATE;
	a->cfg.sample_snaplen = AGENT_DEFAULT_SAMPLE_SNAPLEN;
	a->cfg.history_bytes = AGENT_DEFAULT_HISTORY_BYTES;
	a->cfg.history_age_s = AGENT_DEFAULT_HISTORY_AGE_S;
	optind = 0; /* argv[0] is the subcommand; rescan from scratch */
	while ((opt = getopt_long(argc, argv, "i:h", long_options, NULL)) != -1) {
		r = 0;
		switch (opt) {
		case OPT_CONTROLLER:
			if (a->n_controllers == CTL_MAX_URLS) {
				log_error("--controller: more than %u controllers", CTL_MAX_URLS);
				return 2;
			}
			a->controllers[a->n_controllers++] = optarg;
			a->cfg.controller = a->controllers[0];
			break;
		case OPT_NAME:
			a->cfg.name = optarg;
			break;
		case OPT_COLO:
			a->cfg.colo = optarg;
			break;
		case 'i':
			r = split_ifaces(a, optarg);
			break;
		case OPT_TOKEN:
			log_error("--token: agents enrol now: pcapd token create --scope enroll, then pcapd agent "
				  "--enroll-token TOKEN (once; the agent keeps its own key in DATA/agent.key)");
			return 2;
		case OPT_ENROLL_TOKEN:
			a->enroll_token = optarg;
			break;
		case OPT_DATA:
			a->cfg.data_dir = optarg;
			break;
		case OPT_BUCKET_ROOT:
			r = absolute_root("--bucket-root", optarg, a->bucket_root);
			a->cfg.bucket_root = a->bucket_root;
			break;
		case OPT_LOCAL_ROOT:
			r = absolute_root("--local-root", optarg, a->local_root);
			a->cfg.local_root = a->local_root;
			break;
		case OPT_CACERT:
			if (access(optarg, R_OK) < 0) {
				log_error("--cacert: cannot read %s: %s", optarg, strerror(errno));
				r = 2;
			}
			a->cfg.cafile = optarg;
			break;
		case OPT_INSECURE:
			a->cfg.insecure = true;
			break;
		case OPT_SAMPLE_RATE:
			r = cli_parse_num("--sample-rate", optarg, 0, UINT32_MAX, false, &v);
			a->cfg.sample_rate = (uint32_t)v;
			break;
		case OPT_SAMPLE_SNAPLEN:
			r = cli_parse_num("--sample-snaplen", optarg, 1, PCAP_MAX_SNAPLEN, false, &v);
			a->cfg.sample_snaplen = (uint32_t)v;
			break;
		case OPT_HISTORY_SIZE:
			r = cli_parse_num("--history-size", optarg, AGENT_MIN_HISTORY_BYTES, UINT64_MAX / 2, true, &v);
			a->cfg.history_bytes = v;
			break;
		case OPT_HISTORY_AGE:
			r = cli_parse_num("--history-age", optarg, 1, AGENT_MAX_HISTORY_AGE_S, false, &v);
			a->cfg.history_age_s = v;
			break;
		case OPT_UPLOAD_BUDGET:
			r = cli_parse_num("--upload-budget", optarg, 1, 86400, false, &v);
			a->cfg.upload_budget_s = (uint32_t)v;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			usage(stderr);
			return 2;
		}
		if (r != 0)
			return r;
	}
	if (cli_no_operands("agent", argc, argv) != 0)
		return 2;
	if (!a->enroll_token && token_env && token_env[0])
		a->enroll_token = token_env;
	if (!a->cfg.controller || !a->cfg.name || !a->cfg.colo || !a->cfg.data_dir) {
		log_error("agent: %s is required", !a->cfg.controller ? "--controller URL"
						   : !a->cfg.name     ? "--name NAME"
						   : !a->cfg.colo     ? "--colo COLO"
								      : "--data DIR");
		usage(stderr);
		return 2;
	}
	if (!a->cfg.all_ifaces && a->cfg.n_ifaces == 0) {
		log_error("agent: -i IFACES (or -i all) is required");
		usage(stderr);
		return 2;
	}
	a->cfg.ifaces = a->ifaces;
	a->cfg.urls = a->controllers;
	a->cfg.n_urls = a->n_controllers;
	if (agent_config_check(&a->cfg, &err) < 0) {
		log_error("%s", err.msg);
		return 2;
	}
	return 0;
}

int cmd_agent(int argc, char **argv)
{
	AgentArgs a = {0};
	ErrBuf err = {{0}};
	int r, status;

	r = parse_args(argc, argv, &a);
	if (r != 0) {
		status = r < 0 ? 0 : r;
		goto out;
	}
	/* Named interfaces must exist now (-i all is looked up at each capture). */
	for (size_t i = 0; i < a.cfg.n_ifaces; i++) {
		uint32_t lt;

		if (capture_iface_linktype(a.ifaces[i], &lt, &err) < 0) {
			log_error("-i: %s", err.msg);
			status = 1;
			goto out;
		}
	}
	r = cli_catch_stop_signals();
	if (r < 0) {
		log_error("sigaction: %s", strerror(-r));
		status = 1;
		goto out;
	}
	{
		EnrollRequest er = {.controller = a.cfg.controller,
				    .controllers = a.cfg.urls,
				    .n_controllers = a.cfg.n_urls,
				    .token = a.enroll_token,
				    .name = a.cfg.name,
				    .colo = a.cfg.colo,
				    .cafile = a.cfg.cafile,
				    .insecure = a.cfg.insecure,
				    .data_dir = a.cfg.data_dir};

		r = agentkey_obtain(&er, &cli_stop_requested, a.key, &err);
		if (r < 0) {
			log_error("%s", err.msg);
			status = r == -ECANCELED ? 0 : 1;
			goto out;
		}
		a.cfg.token = a.key;
	}
	/* Before any thread exists: capabilities are per thread and inherited. */
	r = agentcaps_restrict(&err);
	if (r < 0) {
		log_error("%s", err.msg);
		status = 1;
		goto out;
	}
	r = agent_run(&a.cfg, &cli_stop_requested, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		status = 1;
		goto out;
	}
	status = 0;
out:
	explicit_bzero(a.key, sizeof(a.key));
	free(a.iface_list);
	return status;
}

/* SPDX-License-Identifier: MIT */
/*
 * pcapd controller: the API server. Wires the database, the service and the
 * HTTP(S) listeners together, prints one readiness line with the bound
 * addresses, and waits for SIGINT/SIGTERM (blocked in every thread, taken with
 * sigwait). Shutdown order matters: the service forgets parked polls, the HTTP
 * server resumes and answers them and stops, then the service and the database
 * go.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/api.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "common/log.h"
#include "common/util.h"
#include "controller/service.h"
#include "db/db.h"
#include "http/http.h"
#include "http/tlscert.h"

#define MAX_SECONDS_OPT (24 * 3600)

typedef struct ControllerArgs {
	const char *data;
	const char *http, *https;
	const char *cert, *key;
	const char *bucket_root;
	unsigned threads;
	uint64_t grace_s, agent_timeout_s, sample_interval_s, max_active_full;
	LogLevel log_level;
} ControllerArgs;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pcapd controller [--data DIR] [--http ADDR:PORT|off] [--https ADDR:PORT]\n"
		"                        [--tls-cert FILE --tls-key FILE] [--bucket-root DIR] [--threads N]\n"
		"                        [--grace S] [--agent-timeout S] [--sample-interval S] [--max-active-full N]\n"
		"                        [--log-level error|warning|info|debug]\n"
		"\n"
		"  --data DIR            state (pcapd.db) and download cache (default ./var)\n"
		"  --http ADDR:PORT      plain HTTP listener (default 127.0.0.1:8080; 'off' for none)\n"
		"  --https ADDR:PORT     HTTPS listener (needs --tls-cert and --tls-key)\n"
		"  --bucket-root DIR     file:// buckets must lie below DIR (default DATA/buckets)\n"
		"  --threads N           HTTP worker threads per listener (default: CPUs)\n"
		"  --grace S             after a start, wait S seconds for agents to report their\n"
		"                        running captures before failing them (default 30)\n"
		"  --agent-timeout S     an agent silent for S seconds is offline (default 15)\n"
		"  --sample-interval S   one sample capture per S seconds per account (default 60; 0 = off)\n"
		"  --max-active-full N   pending or running full captures per account (default 1; 0 = off)\n"
		"  --log-level L         what goes to stderr (default info; debug adds, e.g., the request\n"
		"                        fields the API ignored)\n");
}

static int parse_args(int argc, char **argv, ControllerArgs *a)
{
	static const struct option opts[] = {
		{"data", required_argument, NULL, 'd'},
		{"http", required_argument, NULL, 'H'},
		{"https", required_argument, NULL, 'S'},
		{"tls-cert", required_argument, NULL, 'c'},
		{"tls-key", required_argument, NULL, 'k'},
		{"bucket-root", required_argument, NULL, 'b'},
		{"threads", required_argument, NULL, 't'},
		{"grace", required_argument, NULL, 'g'},
		{"agent-timeout", required_argument, NULL, 'a'},
		{"sample-interval", required_argument, NULL, 's'},
		{"max-active-full", required_argument, NULL, 'm'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	uint64_t v;
	int opt;

	a->data = "var";
	a->http = "127.0.0.1:8080";
	a->grace_s = 30;
	a->agent_timeout_s = 15;
	a->sample_interval_s = 60;
	a->max_active_full = 1;
	a->log_level = LOG_LEVEL_INFO;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			a->data = optarg;
			break;
		case 'H':
			a->http = strcmp(optarg, "off") == 0 ? NULL : optarg;
			break;
		case 'S':
			a->https = strcmp(optarg, "off") == 0 ? NULL : optarg;
			break;
		case 'c':
			a->cert = optarg;
			break;
		case 'k':
			a->key = optarg;
			break;
		case 'b':
			a->bucket_root = optarg;
			break;
		case 't':
			if (cli_parse_num("--threads", optarg, 1, 256, false, &v))
				return 2;
			a->threads = (unsigned)v;
			break;
		case 'g':
			if (cli_parse_num("--grace", optarg, 1, MAX_SECONDS_OPT, false, &a->grace_s))
				return 2;
			break;
		case 'a':
			if (cli_parse_num("--agent-timeout", optarg, 1, MAX_SECONDS_OPT, false, &a->agent_timeout_s))
				return 2;
			break;
		case 's':
			if (cli_parse_num("--sample-interval", optarg, 0, MAX_SECONDS_OPT, false,
					  &a->sample_interval_s))
				return 2;
			break;
		case 'm':
			if (cli_parse_num("--max-active-full", optarg, 0, 1000000, false, &a->max_active_full))
				return 2;
			break;
		case 'l':
			if (log_level_from_string(optarg, &a->log_level) < 0) {
				log_error("--log-level: '%s' is not one of error, warning, info, debug", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (cli_no_operands("controller", argc, argv) != 0)
		return 2;
	if (!a->http && !a->https) {
		log_error("controller: --http off needs --https");
		return 2;
	}
	if (a->https && (!a->cert || !a->key)) {
		log_error("controller: --https needs --tls-cert FILE and --tls-key FILE");
		return 2;
	}
	if (!a->https && (a->cert || a->key)) {
		log_error("controller: --tls-cert/--tls-key given without --https ADDR:PORT");
		return 2;
	}
	return 0;
}

/* "http://127.0.0.1:8080" with the bound port. */
static void listen_url(const char *addr, uint16_t port, bool tls, char *out, size_t cap)
{
	const char *colon = strrchr(addr, ':');
	int hostlen = colon ? (int)(colon - addr) : (int)strlen(addr);

	snprintf(out, cap, "%s://%.*s:%u", tls ? "https" : "http", hostlen, addr, port);
}

int cmd_controller(int argc, char **argv)
{
	ControllerArgs a = {0};
	ServiceConfig scfg = {0};
	HttpConfig hcfg = {0};
	ApiConfig acfg = {0};
	Db *db = NULL;
	Service *svc = NULL;
	Api *api = NULL;
	HttpServer *http = NULL;
	char *cert = NULL, *key = NULL;
	char dbpath[4096], root[4096], u1[128] = "", u2[128] = "";
	ErrBuf err = {{0}};
	sigset_t set;
	int r, sig, status = 1;

	r = parse_args(argc, argv, &a);
	if (r != 0)
		return r < 0 ? 0 : r;
	log_set_level(a.log_level);

	/* Every thread started from here inherits the blocked signals; this
	 * thread takes them with sigwait. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (cli_make_data_dir(a.data) != 0)
		return 1;
	if (cli_path_join(dbpath, sizeof(dbpath), a.data, "pcapd.db") < 0 ||
	    cli_path_join(root, sizeof(root), a.data, "buckets") < 0) {
		log_error("--data: path too long");
		return 2;
	}
	if (!a.bucket_root) {
		if (mkdir(root, 0750) < 0 && errno != EEXIST) {
			log_error("cannot create %s: %s", root, strerror(errno));
			return 1;
		}
		a.bucket_root = root;
	}
	if (a.https && (tlscert_load(a.cert, &cert, &err) < 0 || tlscert_load(a.key, &key, &err) < 0)) {
		log_error("%s", err.msg);
		goto out;
	}
	r = db_open(dbpath, &db, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	scfg.db = db;
	scfg.data_dir = a.data;
	scfg.buckets.root = a.bucket_root;
	scfg.limits.max_active_full = (size_t)a.max_active_full;
	scfg.limits.sample_interval_ns = (int64_t)(a.sample_interval_s * NSEC_PER_SEC);
	scfg.grace_ns = (int64_t)(a.grace_s * NSEC_PER_SEC);
	scfg.agent_timeout_ns = (int64_t)(a.agent_timeout_s * NSEC_PER_SEC);
	r = service_start(&scfg, &svc, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	acfg.svc = svc;
	r = api_new(&acfg, &api, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	hcfg.http_addr = a.http;
	hcfg.https_addr = a.https;
	hcfg.tls_cert_pem = cert;
	hcfg.tls_key_pem = key;
	hcfg.threads = a.threads;
	hcfg.max_body = API_MAX_BODY;
	hcfg.body_limit = api_body_limit;
	hcfg.handler = api_handle;
	hcfg.ctx = api;
	r = http_server_start(&hcfg, &http, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	if (a.http)
		listen_url(a.http, http_server_port(http, false), false, u1, sizeof(u1));
	if (a.https)
		listen_url(a.https, http_server_port(http, true), true, u2, sizeof(u2));
	fprintf(stderr, "pcapd: controller listening on %s%s%s\n", u1, u1[0] && u2[0] ? " " : "", u2);
	fflush(stderr);

	if (sigwait(&set, &sig) == 0)
		log_info("%s: shutting down", strsignal(sig));
	status = 0;
out:
	service_shutdown(svc);
	http_server_stop(http);
	service_free(svc);
	api_free(api);
	db_close(db);
	free(cert);
	free(key);
	return status;
}

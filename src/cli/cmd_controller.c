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
#include "bucket/bucket_uri.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "common/log.h"
#include "common/util.h"
#include "controller/service.h"
#include "db/db.h"
#include "http/http.h"
#include "http/tlscert.h"

#define MAX_SECONDS_OPT (24 * 3600)
#define MAX_AZURE_ACCOUNTS 16
#define DEFAULT_MAX_BUCKETS 100
#define DEFAULT_MAX_AGENTS 1000
#define DEFAULT_BODY_BUDGET_MIB 256
/* The budget must hold the largest body one request may send. */
#define MIN_BODY_BUDGET_MIB ((AGENTPROTO_MAX_SAMPLE_BODY >> 20) + 1)

typedef struct ControllerArgs {
	const char *data;
	const char *db; /* --db URL; NULL: DATA/pcapd.db */
	const char *http, *https, *metrics;
	const char *cert, *key;
	const char *bucket_root;
	BucketAzureAccount azure[MAX_AZURE_ACCOUNTS]; /* --azure-storage, pointing into azure_copy[] */
	char *azure_copy[MAX_AZURE_ACCOUNTS];
	size_t n_azure;
	unsigned threads;
	uint64_t grace_s, agent_timeout_s, sample_interval_s, max_active_full;
	LogLevel log_level;
	uint64_t max_buckets, max_agents, max_conns, max_per_address, idle_timeout_s, unauth_timeout_s, body_budget_mib;
	uint64_t stream_memory_mib;
} ControllerArgs;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pcapd controller [--data DIR] [--db URL] [--http ADDR:PORT|off] [--https ADDR:PORT]\n"
		"                        [--tls-cert FILE --tls-key FILE] [--bucket-root DIR] [--threads N]\n"
		"                        [--grace S] [--agent-timeout S] [--sample-interval S] [--max-active-full N]\n"
		"                        [--azure-storage ACCOUNT=KEY[@BLOB_ENDPOINT]]...\n"
		"                        [--max-buckets N] [--max-agents N] [--max-connections N]\n"
		"                        [--max-conns-per-address N]\n"
		"                        [--idle-timeout S] [--unauth-timeout S] [--body-budget MIB]\n"
		"                        [--stream-memory MIB]\n"
		"                        [--log-level error|warning|info|debug] [--metrics ADDR:PORT]\n"
		"\n"
		"  --data DIR            state (pcapd.db) and download cache (default ./var)\n" CLI_DB_HELP
		"  --http ADDR:PORT      plain HTTP listener (default 127.0.0.1:8080; 'off' for none)\n"
		"  --https ADDR:PORT     HTTPS listener (needs --tls-cert and --tls-key)\n"
		"  --metrics ADDR:PORT   plain HTTP listener for GET /metrics (Prometheus text) without\n"
		"                        authentication (default: none; the API's listeners serve\n"
		"                        /metrics to a read-scope token)\n"
		"  --bucket-root DIR     file:// buckets must lie below DIR (default DATA/buckets)\n"
		"  --threads N           HTTP worker threads per listener (default: CPUs)\n"
		"  --grace S             after a start, wait S seconds for agents to report their\n"
		"                        running captures before failing them (default 30)\n"
		"  --agent-timeout S     an agent silent for S seconds is offline (default 15)\n"
		"  --sample-interval S   one sample capture per S seconds per account (default 60; 0 = off)\n"
		"  --max-active-full N   pending or running full captures per account (default 1; 0 = off)\n"
		"  --azure-storage ACCOUNT=KEY[@BLOB_ENDPOINT]\n"
		"                        an Azure storage account's key (and blob endpoint) for azblob://\n"
		"                        buckets that carry neither key= nor sas= (repeatable)\n"
		"  --max-buckets N       buckets (ownership) registered per account (default %u)\n"
		"  --max-agents N        agents enrolled with one account's enrolment tokens (default %u;\n"
		"                        operators' agents are not counted)\n"
		"  --max-connections N   connections per listener (default 4096)\n"
		"  --max-conns-per-address N\n"
		"                        connections from one client address, per listener (default %u)\n"
		"  --idle-timeout S      idle time-out of an authenticated connection (default 30)\n"
		"  --unauth-timeout S    idle time-out of a connection that has not sent an authenticated\n"
		"                        request yet, and the time it has from its connect to its first\n"
		"                        request line (default 10)\n"
		"  --body-budget MIB     request body bytes held at once, all clients together; a request\n"
		"                        beyond it gets 503 with Retry-After (default %u, at least %u)\n"
		"  --stream-memory MIB   agents' packets queued for live streams, all streams together;\n"
		"                        each agent of a stream reserves 1 MiB when it opens (429 when\n"
		"                        that does not fit), and queues grow past it while it lasts\n"
		"                        (default %u)\n"
		"  --log-level L         what goes to stderr (default info; debug adds, e.g., the request\n"
		"                        fields the API ignored)\n"
		"\n"
		"Object-store buckets without keys of their own use AWS_ACCESS_KEY_ID,\n"
		"AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL_S3 (s3://) and\n"
		"GOOGLE_HMAC_ACCESS_ID, GOOGLE_HMAC_SECRET (gs://) from the environment.\n",
		DEFAULT_MAX_BUCKETS, DEFAULT_MAX_AGENTS, HTTP_DEFAULT_PER_ADDRESS, DEFAULT_BODY_BUDGET_MIB,
		MIN_BODY_BUDGET_MIB, SERVICE_STREAM_MEMORY >> 20);
}

static int parse_args(int argc, char **argv, ControllerArgs *a)
{
	static const struct option opts[] = {
		{"data", required_argument, NULL, 'd'},
		{"db", required_argument, NULL, 'D'},
		{"http", required_argument, NULL, 'H'},
		{"https", required_argument, NULL, 'S'},
		{"metrics", required_argument, NULL, 'M'},
		{"tls-cert", required_argument, NULL, 'c'},
		{"tls-key", required_argument, NULL, 'k'},
		{"bucket-root", required_argument, NULL, 'b'},
		{"threads", required_argument, NULL, 't'},
		{"grace", required_argument, NULL, 'g'},
		{"agent-timeout", required_argument, NULL, 'a'},
		{"sample-interval", required_argument, NULL, 's'},
		{"max-active-full", required_argument, NULL, 'm'},
		{"azure-storage", required_argument, NULL, 'z'},
		{"log-level", required_argument, NULL, 'l'},
		{"max-buckets", required_argument, NULL, 'B'},
		{"max-agents", required_argument, NULL, 'G'},
		{"max-connections", required_argument, NULL, 'C'},
		{"max-conns-per-address", required_argument, NULL, 'P'},
		{"idle-timeout", required_argument, NULL, 'I'},
		{"unauth-timeout", required_argument, NULL, 'U'},
		{"body-budget", required_argument, NULL, 'Y'},
		{"stream-memory", required_argument, NULL, 'W'},
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
	a->max_buckets = DEFAULT_MAX_BUCKETS;
	a->max_agents = DEFAULT_MAX_AGENTS;
	a->max_conns = 4096;
	a->max_per_address = HTTP_DEFAULT_PER_ADDRESS;
	a->idle_timeout_s = 30;
	a->unauth_timeout_s = 10;
	a->body_budget_mib = DEFAULT_BODY_BUDGET_MIB;
	a->stream_memory_mib = SERVICE_STREAM_MEMORY >> 20;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			a->data = optarg;
			break;
		case 'D':
			a->db = optarg;
			break;
		case 'H':
			a->http = strcmp(optarg, "off") == 0 ? NULL : optarg;
			break;
		case 'S':
			a->https = strcmp(optarg, "off") == 0 ? NULL : optarg;
			break;
		case 'M':
			a->metrics = strcmp(optarg, "off") == 0 ? NULL : optarg;
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
		case 'z': {
			ErrBuf err = {{0}};

			if (a->n_azure == MAX_AZURE_ACCOUNTS) {
				log_error("--azure-storage: at most %d accounts", MAX_AZURE_ACCOUNTS);
				return 2;
			}
			if (bucket_azure_account_parse(optarg, &a->azure_copy[a->n_azure], &a->azure[a->n_azure],
						       &err) < 0) {
				log_error("%s", err.msg);
				return 2;
			}
			a->n_azure++;
			break;
		}
		case 'l':
			if (log_level_from_string(optarg, &a->log_level) < 0) {
				log_error("--log-level: '%s' is not one of error, warning, info, debug", optarg);
				return 2;
			}
			break;
		case 'B':
			if (cli_parse_num("--max-buckets", optarg, 1, 1000000, false, &a->max_buckets))
				return 2;
			break;
		case 'G':
			if (cli_parse_num("--max-agents", optarg, 1, 1000000, false, &a->max_agents))
				return 2;
			break;
		case 'C':
			if (cli_parse_num("--max-connections", optarg, 1, 1000000, false, &a->max_conns))
				return 2;
			break;
		case 'P':
			if (cli_parse_num("--max-conns-per-address", optarg, 1, 1000000, false, &a->max_per_address))
				return 2;
			break;
		case 'I':
			if (cli_parse_num("--idle-timeout", optarg, 1, 3600, false, &a->idle_timeout_s))
				return 2;
			break;
		case 'U':
			if (cli_parse_num("--unauth-timeout", optarg, 1, 3600, false, &a->unauth_timeout_s))
				return 2;
			break;
		case 'Y':
			if (cli_parse_num("--body-budget", optarg, MIN_BODY_BUDGET_MIB, 1024 * 1024, false,
					  &a->body_budget_mib))
				return 2;
			break;
		case 'W':
			if (cli_parse_num("--stream-memory", optarg, 1, 1024 * 1024, false, &a->stream_memory_mib))
				return 2;
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
	if (a->unauth_timeout_s > a->idle_timeout_s) {
		log_error("controller: --unauth-timeout %llu is longer than --idle-timeout %llu",
			  (unsigned long long)a->unauth_timeout_s, (unsigned long long)a->idle_timeout_s);
		return 2;
	}
	if (!a->https && (a->cert || a->key)) {
		log_error("controller: --tls-cert/--tls-key given without --https ADDR:PORT");
		return 2;
	}
	return 0;
}

static void azure_free(ControllerArgs *a)
{
	for (size_t i = 0; i < a->n_azure; i++) {
		explicit_bzero(a->azure_copy[i], strlen(a->azure_copy[i]));
		free(a->azure_copy[i]);
	}
	a->n_azure = 0;
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
	HttpServer *http = NULL, *mhttp = NULL;
	char *cert = NULL, *key = NULL;
	char root[4096], u1[128] = "", u2[128] = "", u3[128] = "";
	ErrBuf err = {{0}};
	sigset_t set;
	int r, sig, status = 1;

	r = parse_args(argc, argv, &a);
	if (r != 0) {
		azure_free(&a);
		return r < 0 ? 0 : r;
	}
	log_set_level(a.log_level);

	/* Every thread started from here inherits the blocked signals; this
	 * thread takes them with sigwait. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (cli_make_data_dir(a.data) != 0)
		goto out;
	if (cli_path_join(root, sizeof(root), a.data, "buckets") < 0) {
		log_error("--data: path too long");
		status = 2;
		goto out;
	}
	if (!a.bucket_root) {
		if (mkdir(root, 0750) < 0 && errno != EEXIST) {
			log_error("cannot create %s: %s", root, strerror(errno));
			goto out;
		}
		a.bucket_root = root;
	}
	if (a.https && (tlscert_load(a.cert, &cert, &err) < 0 || tlscert_load(a.key, &key, &err) < 0)) {
		log_error("%s", err.msg);
		goto out;
	}
	r = cli_db_open(a.db, a.data, &db, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	scfg.db = db;
	scfg.data_dir = a.data;
	scfg.buckets.root = a.bucket_root;
	/* The stores' fallback credentials: read here, at the edge (STYLE 9). */
	scfg.buckets.aws_access_key_id = getenv("AWS_ACCESS_KEY_ID");
	scfg.buckets.aws_secret_access_key = getenv("AWS_SECRET_ACCESS_KEY");
	scfg.buckets.aws_session_token = getenv("AWS_SESSION_TOKEN");
	scfg.buckets.aws_endpoint_url_s3 = getenv("AWS_ENDPOINT_URL_S3");
	scfg.buckets.google_hmac_access_id = getenv("GOOGLE_HMAC_ACCESS_ID");
	scfg.buckets.google_hmac_secret = getenv("GOOGLE_HMAC_SECRET");
	scfg.buckets.azure = a.azure;
	scfg.buckets.n_azure = a.n_azure;
	scfg.limits.max_active_full = (size_t)a.max_active_full;
	scfg.limits.sample_interval_ns = (int64_t)(a.sample_interval_s * NSEC_PER_SEC);
	scfg.grace_ns = (int64_t)(a.grace_s * NSEC_PER_SEC);
	scfg.agent_timeout_ns = (int64_t)(a.agent_timeout_s * NSEC_PER_SEC);
	scfg.max_buckets = (size_t)a.max_buckets;
	scfg.stream_memory = (size_t)a.stream_memory_mib << 20;
	scfg.max_agents = (size_t)a.max_agents;
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
	hcfg.body_budget = (size_t)a.body_budget_mib << 20;
	hcfg.max_connections = (unsigned)a.max_conns;
	hcfg.max_per_address = (unsigned)a.max_per_address;
	hcfg.timeout_s = (unsigned)a.idle_timeout_s;
	hcfg.untrusted_timeout_s = (unsigned)a.unauth_timeout_s;
	hcfg.body_limit = api_body_limit;
	hcfg.on_headers = api_on_headers;
	hcfg.refuse = api_refuse;
	hcfg.observe = api_observe;
	hcfg.handler = api_handle;
	hcfg.ctx = api;
	r = http_server_start(&hcfg, &http, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	if (a.metrics) {
		/* Scrapers only: GET without a body, few connections, two threads. */
		HttpConfig mcfg = {.http_addr = a.metrics,
				   .threads = 2,
				   .max_body = 1,
				   .max_connections = 64,
				   .max_per_address = 16,
				   .observe = api_observe,
				   .handler = api_metrics_handle,
				   .ctx = api};

		r = http_server_start(&mcfg, &mhttp, &err);
		if (r < 0) {
			log_error("--metrics: %s", err.msg);
			goto out;
		}
		listen_url(a.metrics, http_server_port(mhttp, false), false, u3, sizeof(u3));
	}
	if (a.http)
		listen_url(a.http, http_server_port(http, false), false, u1, sizeof(u1));
	if (a.https)
		listen_url(a.https, http_server_port(http, true), true, u2, sizeof(u2));
	fprintf(stderr, "pcapd: controller listening on %s%s%s\n", u1, u1[0] && u2[0] ? " " : "", u2);
	if (u3[0])
		fprintf(stderr, "pcapd: metrics on %s/metrics\n", u3);
	fflush(stderr);

	if (sigwait(&set, &sig) == 0)
		log_info("%s: shutting down", strsignal(sig));
	status = 0;
out:
	service_shutdown(svc);
	http_server_stop(mhttp);
	http_server_stop(http);
	service_free(svc);
	api_free(api);
	db_close(db);
	free(cert);
	free(key);
	azure_free(&a);
	return status;
}

/* SPDX-License-Identifier: MIT */
/*
 * pcapd up: a controller and one local agent with embedded defaults, for a
 * first look and for `make run`.
 *
 * First start (no DATA/credentials.json): an account, a write token and an
 * agent token are created and kept in DATA/credentials.json (mode 0600; the
 * database holds only their hashes), and a self-signed certificate is made for
 * HTTPS. Every start prints the account, the token and ready-to-paste examples.
 *
 * The controller and the agent are child processes (this binary again), so each
 * runs exactly as it would on its own; Ctrl-C (or SIGTERM) is passed on to both
 * and waited for. If either dies, the other is stopped and up exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/agent.h"
#include "api/auth.h"
#include "api/azure/azure.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "common/io.h"
#include "common/log.h"
#include "common/util.h"
#include "db/db.h"
#include "http/tlscert.h"
#include "model/job.h"

extern char **environ;

typedef struct UpArgs {
	const char *data, *http, *https, *name, *colo, *ifaces;
	const char *sample_rate; /* passed to the agent as it is; NULL = the agent's default */
	const char *local_root;  /* the agent's --local-root; NULL = DATA/captures */
} UpArgs;

typedef struct Creds {
	char account[JOB_ID_LEN + 1];
	char token[64];
	char agent_token[64];
} Creds;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pcapd up [--data DIR] [--http ADDR:PORT] [--https ADDR:PORT|off] [--agent-name N]\n"
		"                [--colo C] [-i IFACES] [--sample-rate N] [--local-root DIR]\n"
		"\n"
		"Starts a controller (default http://127.0.0.1:8080 and https://127.0.0.1:8443 with a\n"
		"self-signed certificate) and one local agent capturing every interface (-i all),\n"
		"data in ./var, file:// buckets below ./var/buckets, captures into files on this\n"
		"machine (Azure filePath, localPath: /var/captures/X) as ./var/captures/X\n"
		"(--local-root DIR: DIR/X). Ctrl-C stops both.\n"
		"--sample-rate N is the agent's: it records 1 in N packets for sample captures\n"
		"(default %u; 0 = no recorder).\n",
		AGENT_DEFAULT_SAMPLE_RATE);
}

static int parse_args(int argc, char **argv, UpArgs *a)
{
	static const struct option opts[] = {
		{"data", required_argument, NULL, 'd'},
		{"http", required_argument, NULL, 'H'},
		{"https", required_argument, NULL, 'S'},
		{"agent-name", required_argument, NULL, 'n'},
		{"colo", required_argument, NULL, 'c'},
		{"interface", required_argument, NULL, 'i'},
		{"sample-rate", required_argument, NULL, 'r'},
		{"local-root", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static char host[AGENT_NAME_MAX + 1];
	int opt;

	a->data = "var";
	a->http = "127.0.0.1:8080";
	a->https = "127.0.0.1:8443";
	a->colo = "local";
	a->ifaces = "all";
	if (gethostname(host, sizeof(host)) < 0 || !host[0])
		snprintf(host, sizeof(host), "local");
	host[AGENT_NAME_MAX] = '\0';
	a->name = host;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "i:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			a->data = optarg;
			break;
		case 'H':
			a->http = optarg;
			break;
		case 'S':
			a->https = strcmp(optarg, "off") == 0 ? NULL : optarg;
			break;
		case 'n':
			a->name = optarg;
			break;
		case 'c':
			a->colo = optarg;
			break;
		case 'i':
			a->ifaces = optarg;
			break;
		case 'r': {
			uint64_t v;

			/* Checked here too: a bad value should not wait for the agent to start. */
			if (cli_parse_num("--sample-rate", optarg, 0, UINT32_MAX, false, &v))
				return 2;
			a->sample_rate = optarg;
			break;
		}
		case 'l':
			if (!optarg[0]) {
				log_error("--local-root: empty path");
				return 2;
			}
			a->local_root = optarg;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			usage(stderr);
			return 2;
		}
	}
	return cli_no_operands("up", argc, argv);
}

static int load_creds(const char *path, Creds *c)
{
	json_error_t jerr;
	json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	const char *acct, *tok, *atok;
	int r = -EINVAL;

	if (!o)
		return access(path, F_OK) == 0 ? -EINVAL : -ENOENT;
	if (json_unpack(o, "{s:s, s:s, s:s}", "account", &acct, "token", &tok, "agent_token", &atok) == 0 &&
	    job_id_valid(acct, strlen(acct)) && strlen(tok) < sizeof(c->token) &&
	    strlen(atok) < sizeof(c->agent_token)) {
		snprintf(c->account, sizeof(c->account), "%s", acct);
		snprintf(c->token, sizeof(c->token), "%s", tok);
		snprintf(c->agent_token, sizeof(c->agent_token), "%s", atok);
		r = 0;
	}
	json_decref(o);
	return r;
}

/* Creates the account and both credentials, then publishes credentials.json. */
static int first_start(const char *data, const char *path, Creds *c, ErrBuf *err)
{
	char dbpath[4096], *text;
	uint8_t hash[32];
	json_t *o = NULL;
	Db *db = NULL;
	int r;

	if (cli_path_join(dbpath, sizeof(dbpath), data, "pcapd.db") < 0)
		return errbuf_set(err, -ENAMETOOLONG, "--data: path too long");
	r = job_new_id(c->account);
	if (r >= 0)
		r = auth_new_secret(c->token);
	if (r >= 0)
		r = auth_new_secret(c->agent_token);
	if (r < 0)
		return errbuf_set(err, r, "cannot draw random credentials: %s", strerror(-r));
	r = db_open(dbpath, &db, err);
	if (r < 0)
		return r;
	r = db_account_ensure(db, c->account, err);
	if (r >= 0) {
		auth_hash(c->token, strlen(c->token), hash);
		r = db_credential_add(db, hash, NULL, c->account, SCOPE_WRITE, err);
	}
	if (r >= 0) {
		auth_hash(c->agent_token, strlen(c->agent_token), hash);
		r = db_credential_add(db, hash, NULL, c->account, SCOPE_AGENT, err);
	}
	db_close(db);
	if (r < 0)
		return r;
	o = json_pack("{s:s, s:s, s:s}", "account", c->account, "token", c->token, "agent_token", c->agent_token);
	text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
	if (!text) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
	} else {
		struct iovec iov[2] = {{.iov_base = text, .iov_len = strlen(text)}, {.iov_base = "\n", .iov_len = 1}};

		/* Mode 0600: the only place the secrets exist in clear. */
		r = io_publish(&io_posix, path, iov, 2, 0600, err);
		explicit_bzero(text, strlen(text));
	}
	free(text);
	json_decref(o);
	return r;
}

/* Where this machine reaches a listener on addr ("HOST:PORT", "[V6]:PORT",
 * "*:PORT"): a wildcard host becomes loopback. Writes "HOST:PORT" (a URL's
 * authority) to out; -EINVAL if addr has no port or does not fit. */
static int local_authority(const char *addr, char *out, size_t cap)
{
	const char *colon = strrchr(addr, ':');
	size_t hl;
	int n;

	if (!colon || !colon[1])
		return -EINVAL;
	hl = (size_t)(colon - addr);
	if (hl == 0 || (hl == 1 && addr[0] == '*') || (hl == 7 && memcmp(addr, "0.0.0.0", 7) == 0))
		n = snprintf(out, cap, "127.0.0.1%s", colon);
	else if (hl == 4 && memcmp(addr, "[::]", 4) == 0)
		n = snprintf(out, cap, "[::1]%s", colon);
	else
		n = snprintf(out, cap, "%s", addr);
	return n < 0 || (size_t)n >= cap ? -EINVAL : 0;
}

/* Waits until something accepts connections at authority (any of its
 * addresses: "localhost" may resolve to ::1 first while the server listens
 * on 127.0.0.1), or child dies, or timeout_ms pass. */
static int wait_listening(const char *authority, pid_t child, int timeout_ms)
{
	char host[256];
	const char *colon = strrchr(authority, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	size_t hl;

	if (!colon || (hl = (size_t)(colon - authority)) >= sizeof(host))
		return -EINVAL;
	memcpy(host, authority, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
		return -EINVAL;
	for (int waited = 0; waited < timeout_ms; waited += 50) {
		struct timespec ts = {0, 50 * 1000000L};

		for (struct addrinfo *p = ai; p; p = p->ai_next) {
			int fd = socket(p->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
			bool ok = fd >= 0 && connect(fd, p->ai_addr, p->ai_addrlen) == 0;

			if (fd >= 0)
				close(fd);
			if (ok) {
				freeaddrinfo(ai);
				return 0;
			}
		}
		if (waitpid(child, NULL, WNOHANG) == child)
			break;
		nanosleep(&ts, NULL);
	}
	freeaddrinfo(ai);
	return -ETIMEDOUT;
}

static int spawn(char *const argv[], char *const envp[], const sigset_t *oldmask, pid_t *ret)
{
	posix_spawnattr_t at;
	int r;

	posix_spawnattr_init(&at);
	posix_spawnattr_setsigmask(&at, oldmask);
	/* Own process groups: a terminal's Ctrl-C reaches only `up`, which then
	 * stops the agent first (so it reports its last state), then the
	 * controller. */
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
	r = -posix_spawn(ret, "/proc/self/exe", NULL, &at, argv, envp);
	posix_spawnattr_destroy(&at);
	return r;
}

/* Stops a child: SIGTERM, then SIGKILL after 10 s. */
static void stop_child(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		struct timespec ts = {0, 50 * 1000000L};

		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void banner(const UpArgs *a, const Creds *c, const char *url, bool first)
{
	char sub[AZ_SUBSCRIPTION_LEN + 1];

	azure_subscription_of(c->account, sub);
	printf("\npcapd is up.\n"
	       "  account   %s   (Azure subscription %s)\n"
	       "  token     %s   (write scope%s)\n"
	       "  API       %s%s%s%s\n"
	       "  agent     %s (colo %s) capturing on -i %s\n"
	       "  buckets   file:// directories below %s/buckets\n\n",
	       c->account, sub, c->token, first ? "; kept in DATA/credentials.json" : "", url,
	       a->https ? "   https://" : "", a->https ? a->https : "",
	       a->https ? "  (self-signed: DATA/tls/cert.pem)" : "", a->name, a->colo, a->ifaces, a->data);
	printf("Try, in another terminal:\n"
	       "  export PCAPD_URL=%s PCAPD_ACCOUNT=%s PCAPD_TOKEN=%s\n"
	       "  B=file://$(realpath %s)/buckets/demo\n"
	       "  build/pcapctl bucket add $B\n"
	       "  build/pcapctl bucket validate $B \"$(cat %s/buckets/demo/ownership-challenge-*.txt)\"\n"
	       "  build/pcapctl create full --colo %s --bucket $B --time-limit 10 --wait -o demo.pcap\n"
	       "  build/pcapctl list\n"
	       "  curl -s -H \"Authorization: Bearer $PCAPD_TOKEN\" "
	       "$PCAPD_URL/client/v4/accounts/$PCAPD_ACCOUNT/pcaps\n\n",
	       url, c->account, c->token, a->data, a->data, a->colo);
	fflush(stdout);
}

int cmd_up(int argc, char **argv)
{
	UpArgs a = {0};
	Creds c = {{0}};
	char credpath[4096], tlsdir[4096], cert[4200], key[4200], agentdir[4096], root[4096], url[300];
	char captures[4096];
	char local[264];
	char envtok[128];
	ErrBuf err = {{0}};
	sigset_t set, old;
	pid_t ctl = -1, agent = -1;
	bool first = false;
	int r, status = 1, sig;

	r = parse_args(argc, argv, &a);
	if (r != 0)
		return r < 0 ? 0 : r;
	if (local_authority(a.http, local, sizeof(local)) < 0) {
		log_error("--http: '%s' is not ADDR:PORT", a.http);
		return 2;
	}
	if ((mkdir(a.data, 0750) < 0 && errno != EEXIST) ||
	    cli_path_join(credpath, sizeof(credpath), a.data, "credentials.json") < 0 ||
	    cli_path_join(tlsdir, sizeof(tlsdir), a.data, "tls") < 0 ||
	    cli_path_join(agentdir, sizeof(agentdir), a.data, "agent") < 0 ||
	    cli_path_join(root, sizeof(root), a.data, "buckets") < 0 ||
	    cli_path_join(captures, sizeof(captures), a.data, "captures") < 0) {
		log_error("--data: cannot use %s: %s", a.data, strerror(errno ? errno : ENAMETOOLONG));
		return 1;
	}
	snprintf(cert, sizeof(cert), "%s/cert.pem", tlsdir);
	snprintf(key, sizeof(key), "%s/key.pem", tlsdir);
	r = load_creds(credpath, &c);
	if (r == -ENOENT) {
		r = first_start(a.data, credpath, &c, &err);
		first = true;
	} else if (r < 0) {
		errbuf_set(&err, r, "%s is damaged; move it away to start afresh", credpath);
	}
	if (r < 0) {
		log_error("%s", err.msg);
		return 1;
	}
	if (a.https && access(cert, R_OK) != 0) {
		static const char *const alt[] = {"localhost", "127.0.0.1", "::1"};

		if ((mkdir(tlsdir, 0700) < 0 && errno != EEXIST) ||
		    tlscert_selfsigned(cert, key, "pcapd", alt, ARRAY_SIZE(alt), &err) < 0) {
			log_error("TLS certificate: %s", err.msg[0] ? err.msg : strerror(errno));
			return 1;
		}
	}

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &set, &old);

	{
		char *cargv[16];
		size_t n = 0;

		cargv[n++] = "pcapd";
		cargv[n++] = "controller";
		cargv[n++] = "--data";
		cargv[n++] = (char *)a.data;
		cargv[n++] = "--http";
		cargv[n++] = (char *)a.http;
		if (a.https) {
			cargv[n++] = "--https";
			cargv[n++] = (char *)a.https;
			cargv[n++] = "--tls-cert";
			cargv[n++] = cert;
			cargv[n++] = "--tls-key";
			cargv[n++] = key;
		}
		cargv[n] = NULL;
		r = spawn(cargv, environ, &old, &ctl);
	}
	if (r < 0 || wait_listening(local, ctl, 10000) < 0) {
		log_error("the controller did not start%s%s", r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
		goto out;
	}
	snprintf(url, sizeof(url), "http://%s", local);
	snprintf(envtok, sizeof(envtok), "PCAPD_AGENT_TOKEN=%s", c.agent_token);
	{
		char *aargv[24];
		size_t n = 0;

		aargv[n++] = "pcapd";
		aargv[n++] = "agent";
		aargv[n++] = "--controller";
		aargv[n++] = url;
		aargv[n++] = "--name";
		aargv[n++] = (char *)a.name;
		aargv[n++] = "--colo";
		aargv[n++] = (char *)a.colo;
		aargv[n++] = "-i";
		aargv[n++] = (char *)a.ifaces;
		aargv[n++] = "--data";
		aargv[n++] = agentdir;
		aargv[n++] = "--bucket-root";
		aargv[n++] = root;
		aargv[n++] = "--local-root";
		aargv[n++] = a.local_root ? (char *)a.local_root : captures;
		if (a.sample_rate) {
			aargv[n++] = "--sample-rate";
			aargv[n++] = (char *)a.sample_rate;
		}
		aargv[n] = NULL;
		char *envp[] = {envtok, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};

		r = spawn(aargv, envp, &old, &agent);
	}
	if (r < 0) {
		log_error("the agent did not start: %s", strerror(-r));
		goto out;
	}
	banner(&a, &c, url, first);

	for (;;) {
		pid_t p;
		int ws;

		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig != SIGCHLD) {
			log_info("%s: stopping the agent and the controller", strsignal(sig));
			status = 0;
			break;
		}
		p = waitpid(-1, &ws, WNOHANG);
		if (p == ctl || p == agent) {
			log_error("the %s exited (%s %d); stopping", p == ctl ? "controller" : "agent",
				  WIFEXITED(ws) ? "status" : "signal", WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws));
			if (p == ctl)
				ctl = -1;
			else
				agent = -1;
			break;
		}
	}
out:
	stop_child(agent); /* first, so it reports its last state to the controller */
	stop_child(ctl);
	explicit_bzero(&c, sizeof(c));
	explicit_bzero(envtok, sizeof(envtok));
	return status;
}

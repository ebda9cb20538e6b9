/* SPDX-License-Identifier: MIT */
/*
 * pcapd up: a controller and one local agent with embedded defaults, for a
 * first look and for `make run`.
 *
 * State lives in DATA/pcapd.db, or in the database --db names (passed on to
 * the controller). Every start makes sure the account and the token of
 * DATA/credentials.json are in that database (a new --db starts empty).
 *
 * First start (no DATA/credentials.json): an account and a write token are
 * created and kept in DATA/credentials.json (mode 0600; the database holds
 * only their hashes), and a self-signed certificate is made for HTTPS. Every
 * start enrols the local agent itself, as an operator's agent (it serves
 * every account): a new key bound to its name replaces any former one, in the
 * database and in DATA/agent/agent.key. Every start prints the account, the
 * token and ready-to-paste examples.
 *
 * The controller and the agent are child processes (this binary again), so each
 * runs exactly as it would on its own; Ctrl-C (or SIGTERM) is passed on to both
 * (the agent first, so that it reports its last state) and waited for.
 *
 * Supervision: a child that dies (killed, crashed) is started again after a
 * pause, and the other one is left alone: the agent goes on capturing while
 * its controller is away, as it does when run alone, and reports to the new
 * controller, which reconciles its captures (--grace). The pause starts at
 * RESTART_FIRST_S and doubles while the child keeps dying within
 * RESTART_STABLE_S of its start; after RESTART_GIVE_UP such quick deaths in
 * a row, up stops everything and exits 1 (a child that cannot run at all,
 * e.g. its port taken, is not restarted forever).
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
#include "agent/agentkey.h"
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

#define UP_MAX_AZURE 16
#define RESTART_FIRST_S 1
#define RESTART_MAX_S 30
#define RESTART_STABLE_S 60
#define RESTART_GIVE_UP 5

/* One supervised child. */
typedef struct Child {
	const char *what; /* "controller", "agent" */
	char **argv;
	char **envp;
	pid_t pid;              /* -1: not running */
	uint64_t started_ns;    /* monotonic */
	uint64_t restart_at_ns; /* monotonic; 0: no restart due */
	unsigned quick_deaths;  /* in a row, each within RESTART_STABLE_S of its start */
} Child;

typedef struct UpArgs {
	const char *data, *http, *https, *name, *colo, *ifaces;
	const char *db;                  /* --db URL; NULL = DATA/pcapd.db */
	const char *metrics;             /* passed to the controller's --metrics; NULL = none */
	const char *sample_rate;         /* passed to the agent as it is; NULL = the agent's default */
	const char *local_root;          /* the agent's --local-root; NULL = DATA/captures */
	const char *azure[UP_MAX_AZURE]; /* --azure-storage values, for the controller (checked there) */
	size_t n_azure;
} UpArgs;

typedef struct Creds {
	char account[JOB_ID_LEN + 1];
	char token[64];
} Creds;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pcapd up [--data DIR] [--db URL] [--http ADDR:PORT] [--https ADDR:PORT|off] [--agent-name N]\n"
		"                [--colo C] [-i IFACES] [--sample-rate N] [--local-root DIR] [--metrics ADDR:PORT]\n"
		"                [--azure-storage ACCOUNT=KEY[@URL]]...\n"
		"\n"
		"Starts a controller (default http://127.0.0.1:8080 and https://127.0.0.1:8443 with a\n"
		"self-signed certificate) and one local agent capturing every interface (-i all),\n"
		"data in ./var, file:// buckets below ./var/buckets, captures into files on this\n"
		"machine (Azure filePath, localPath: /var/captures/X) as ./var/captures/X\n"
		"(--local-root DIR: DIR/X). Ctrl-C stops both.\n"
		"--sample-rate N is the agent's: it records 1 in N packets for sample captures\n"
		"(default %u; 0 = no recorder).\n"
		"--metrics ADDR:PORT is the controller's: GET /metrics there without a token.\n"
		"--azure-storage is the controller's (see pcapd controller --help).\n"
		"--db URL is the controller's database: sqlite:PATH (default DATA/pcapd.db) or a\n"
		"PostgreSQL libpq URI (postgres://USER@HOST/DBNAME).\n",
		AGENT_DEFAULT_SAMPLE_RATE);
}

static int parse_args(int argc, char **argv, UpArgs *a)
{
	static const struct option opts[] = {
		{"data", required_argument, NULL, 'd'},
		{"db", required_argument, NULL, 'D'},
		{"http", required_argument, NULL, 'H'},
		{"https", required_argument, NULL, 'S'},
		{"agent-name", required_argument, NULL, 'n'},
		{"colo", required_argument, NULL, 'c'},
		{"interface", required_argument, NULL, 'i'},
		{"sample-rate", required_argument, NULL, 'r'},
		{"azure-storage", required_argument, NULL, 'z'},
		{"local-root", required_argument, NULL, 'l'},
		{"metrics", required_argument, NULL, 'M'},
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
		case 'D':
			a->db = optarg;
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
		case 'M':
			a->metrics = optarg;
			break;
		case 'r': {
			uint64_t v;

			/* Checked here too: a bad value should not wait for the agent to start. */
			if (cli_parse_num("--sample-rate", optarg, 0, UINT32_MAX, false, &v))
				return 2;
			a->sample_rate = optarg;
			break;
		}
		case 'z':
			if (a->n_azure == UP_MAX_AZURE) {
				log_error("--azure-storage: at most %d accounts", UP_MAX_AZURE);
				return 2;
			}
			a->azure[a->n_azure++] = optarg;
			break;
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
	const char *acct, *tok;
	int r = -EINVAL;

	if (!o)
		return access(path, F_OK) == 0 ? -EINVAL : -ENOENT;
	/* An older file's "agent_token" is ignored: the agent has its own key. */
	if (json_unpack(o, "{s:s, s:s}", "account", &acct, "token", &tok) == 0 && job_id_valid(acct, strlen(acct)) &&
	    strlen(tok) < sizeof(c->token)) {
		snprintf(c->account, sizeof(c->account), "%s", acct);
		snprintf(c->token, sizeof(c->token), "%s", tok);
		r = 0;
	}
	json_decref(o);
	return r;
}

/* Makes sure the account and the write token of c are in db (idempotent: a
 * --db that has never seen credentials.json gets them). */
static int store_creds(Db *db, const Creds *c, ErrBuf *err)
{
	uint8_t hash[32];
	int r;

	r = db_account_ensure(db, c->account, err);
	if (r < 0)
		return r;
	auth_hash(c->token, strlen(c->token), hash);
	r = db_credential_add(db, hash, NULL, c->account, SCOPE_WRITE, err);
	return r == -EEXIST ? 0 : r;
}

/* Draws the account and the write token, stores them, then publishes
 * credentials.json. */
static int first_start(Db *db, const char *path, Creds *c, ErrBuf *err)
{
	char *text;
	json_t *o = NULL;
	int r;

	r = job_new_id(c->account);
	if (r >= 0)
		r = auth_new_secret(c->token);
	if (r < 0)
		return errbuf_set(err, r, "cannot draw random credentials: %s", strerror(-r));
	r = store_creds(db, c, err);
	if (r < 0)
		return r;
	o = json_pack("{s:s, s:s}", "account", c->account, "token", c->token);
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

/* Enrols the local agent name as an operator's agent: a new key replaces
 * any former one of that name (in the database and in agentdir). */
static int enrol_local_agent(Db *db, const char *agentdir, const char *name, ErrBuf *err)
{
	char secret[64];
	AgentKey k = {0};
	uint8_t hash[32];
	int r;

	r = auth_new_secret(secret);
	if (r < 0)
		return errbuf_set(err, r, "cannot draw a random key: %s", strerror(-r));
	auth_hash(secret, strlen(secret), hash);
	snprintf(k.name, sizeof(k.name), "%s", name);
	k.enrolled_ns = (int64_t)now_realtime_ns();
	r = db_agent_key_delete(db, name, err);
	if (r == 0) {
		/* Controllers over PostgreSQL that cached the old key drop it now. */
		ErrBuf e = {{0}};

		if (db_agent_forget(db, "cli", name, &e) < 0)
			log_warning("agent %s: its former key is gone, but running controllers were not told (%s); "
				    "they refuse it within 30 s",
				    name, e.msg);
	} else if (r == -ENOENT) {
		r = 0;
	}
	if (r == 0)
		r = db_agent_key_add(db, hash, &k, 0, err);
	if (r == 0)
		r = agentkey_save(agentdir, name, secret, err);
	explicit_bzero(secret, sizeof(secret));
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
 * on 127.0.0.1), or child dies (-ECHILD: reaped), or timeout_ms pass. */
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
		if (waitpid(child, NULL, WNOHANG) == child) {
			freeaddrinfo(ai);
			return -ECHILD; /* it died (and is reaped) */
		}
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

static int child_start(Child *c, const sigset_t *oldmask)
{
	int r = spawn(c->argv, c->envp, oldmask, &c->pid);

	if (r < 0)
		c->pid = -1;
	c->started_ns = now_monotonic_ns();
	c->restart_at_ns = 0;
	return r;
}

/* Stops a child: SIGTERM, then SIGKILL after 10 s. */
static void child_stop(Child *c)
{
	if (c->pid <= 0)
		return;
	kill(c->pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		struct timespec ts = {0, 50 * 1000000L};

		if (waitpid(c->pid, NULL, WNOHANG) == c->pid) {
			c->pid = -1;
			return;
		}
		nanosleep(&ts, NULL);
	}
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
	c->pid = -1;
}

/* A child died: schedules its restart, or returns -1 to give up. */
static int child_died(Child *c, int ws)
{
	uint64_t now = now_monotonic_ns();
	unsigned delay = RESTART_FIRST_S;

	c->pid = -1;
	if (now - c->started_ns < (uint64_t)RESTART_STABLE_S * NSEC_PER_SEC)
		c->quick_deaths++;
	else
		c->quick_deaths = 0;
	if (c->quick_deaths >= RESTART_GIVE_UP) {
		log_error("the %s exited (%s %d) %u times in a row within %d s of its start; stopping", c->what,
			  WIFEXITED(ws) ? "status" : "signal", WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws),
			  c->quick_deaths, RESTART_STABLE_S);
		return -1;
	}
	for (unsigned i = 1; i < c->quick_deaths && delay < RESTART_MAX_S; i++)
		delay *= 2;
	if (delay > RESTART_MAX_S)
		delay = RESTART_MAX_S;
	c->restart_at_ns = now + (uint64_t)delay * NSEC_PER_SEC;
	log_error("the %s exited (%s %d); starting it again in %u s%s", c->what, WIFEXITED(ws) ? "status" : "signal",
		  WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws), delay,
		  strcmp(c->what, "controller") == 0 ? " (the agent goes on capturing)" : "");
	return 0;
}

/* Until Ctrl-C/SIGTERM (0) or a child that cannot stay up (1). */
static int supervise(const sigset_t *set, const sigset_t *oldmask, Child *ctl, Child *agent)
{
	Child *kids[2] = {ctl, agent};

	for (;;) {
		uint64_t now = now_monotonic_ns(), due = 0;
		siginfo_t si;
		int sig;

		for (size_t i = 0; i < 2; i++) {
			Child *c = kids[i];

			if (c->pid < 0 && c->restart_at_ns && c->restart_at_ns <= now) {
				int r = child_start(c, oldmask);

				if (r < 0) {
					log_error("starting the %s again: %s", c->what, strerror(-r));
					return 1;
				}
				log_info("the %s started again (pid %d)", c->what, (int)c->pid);
			}
			if (c->pid < 0 && c->restart_at_ns && (!due || c->restart_at_ns < due))
				due = c->restart_at_ns;
		}
		if (due) {
			uint64_t wait = due > now ? due - now : 0;
			struct timespec ts = {(time_t)(wait / NSEC_PER_SEC), (long)(wait % NSEC_PER_SEC)};

			sig = sigtimedwait(set, &si, &ts);
		} else {
			sig = sigwaitinfo(set, &si);
		}
		if (sig < 0)
			continue; /* EAGAIN: a restart is due; EINTR */
		if (sig != SIGCHLD) {
			log_info("%s: stopping the agent and the controller", strsignal(sig));
			return 0;
		}
		for (;;) {
			int ws;
			pid_t p = waitpid(-1, &ws, WNOHANG);

			if (p <= 0)
				break;
			for (size_t i = 0; i < 2; i++)
				if (p == kids[i]->pid && child_died(kids[i], ws) < 0)
					return 1;
		}
	}
}

static void banner(const UpArgs *a, const Creds *c, const char *url, bool first)
{
	char sub[AZ_SUBSCRIPTION_LEN + 1];

	azure_subscription_of(c->account, sub);
	printf("\npcapd is up%s.\n"
	       "  account   %s   (Azure subscription %s)\n"
	       "  token     %s   (write scope; kept in %s/credentials.json)\n"
	       "  API       %s%s%s%s\n"
	       "  dashboard %s/   (sign in with the account and token above)\n"
	       "  agent     %s (colo %s) capturing on -i %s\n"
	       "  buckets   file:// directories below %s/buckets\n\n",
	       first ? " (first start: account and tokens created)" : "", c->account, sub, c->token, a->data, url,
	       a->https ? "   https://" : "", a->https ? a->https : "",
	       a->https ? "  (self-signed: DATA/tls/cert.pem)" : "", url, a->name, a->colo, a->ifaces, a->data);
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
	char *cargv[18 + 2 * UP_MAX_AZURE], *aargv[24];
	char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	Child ctl = {.what = "controller", .argv = cargv, .envp = environ, .pid = -1};
	Child agent = {.what = "agent", .argv = aargv, .envp = envp, .pid = -1};
	ErrBuf err = {{0}};
	Db *db = NULL;
	sigset_t set, old;
	bool first = false;
	size_t n;
	int r, status = 1;

	r = parse_args(argc, argv, &a);
	if (r != 0)
		return r < 0 ? 0 : r;
	if (local_authority(a.http, local, sizeof(local)) < 0) {
		log_error("--http: '%s' is not ADDR:PORT", a.http);
		return 2;
	}
	if ((mkdir(a.data, 0700) < 0 && errno != EEXIST) ||
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
	r = cli_db_open(a.db, a.data, &db, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		return 1;
	}
	r = load_creds(credpath, &c);
	if (r == -ENOENT) {
		r = first_start(db, credpath, &c, &err);
		first = true;
	} else if (r < 0) {
		errbuf_set(&err, r, "%s is damaged; move it away to start afresh", credpath);
	} else {
		r = store_creds(db, &c, &err);
	}
	if (r < 0) {
		log_error("%s", err.msg);
		db_close(db);
		return 1;
	}
	r = enrol_local_agent(db, agentdir, a.name, &err);
	db_close(db);
	if (r < 0) {
		log_error("local agent: %s", err.msg);
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

	n = 0;
	cargv[n++] = "pcapd";
	cargv[n++] = "controller";
	cargv[n++] = "--data";
	cargv[n++] = (char *)a.data;
	if (a.db) {
		cargv[n++] = "--db";
		cargv[n++] = (char *)a.db;
	}
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
	if (a.metrics) {
		cargv[n++] = "--metrics";
		cargv[n++] = (char *)a.metrics;
	}
	for (size_t i = 0; i < a.n_azure; i++) {
		cargv[n++] = "--azure-storage";
		cargv[n++] = (char *)a.azure[i];
	}
	cargv[n] = NULL;
	r = child_start(&ctl, &old);
	if (r == 0 && (r = wait_listening(local, ctl.pid, 10000)) == -ECHILD)
		ctl.pid = -1;
	if (r < 0) {
		log_error("the controller did not start%s%s", r != -ECHILD && r != -ETIMEDOUT ? ": " : "",
			  r != -ECHILD && r != -ETIMEDOUT ? strerror(-r) : "");
		goto out;
	}
	snprintf(url, sizeof(url), "http://%s", local);
	n = 0;
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
	r = child_start(&agent, &old);
	if (r < 0) {
		log_error("the agent did not start: %s", strerror(-r));
		goto out;
	}
	banner(&a, &c, url, first);
	status = supervise(&set, &old, &ctl, &agent);
out:
	child_stop(&agent); /* first, so it reports its last state to the controller */
	child_stop(&ctl);
	explicit_bzero(&c, sizeof(c));
	return status;
}

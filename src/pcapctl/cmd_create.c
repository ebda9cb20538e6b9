/* SPDX-License-Identifier: MIT */
/*
 * pcapctl create full|sample: builds the request from the flags (createreq.h;
 * every value checked before anything is sent), POSTs it, and with --wait
 * polls the capture every 250 ms until it succeeds or fails, showing a live
 * progress line when stderr is a terminal (nothing otherwise). -o FILE
 * implies --wait and downloads the capture once it succeeded; the output is
 * opened before the request so that a bad path costs no capture.
 *
 * Ctrl-C while waiting stops the waiting, not the capture: pcapctl prints the
 * id and how to stop it, and exits 130.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pcapctl/createreq.h"
#include "pcapctl/pcapctl.h"
#include "pcapctl/render.h"

#define POLL_NS (250ull * 1000 * 1000)
#define POLL_RETRY_NS (30ull * NSEC_PER_SEC) /* keep polling through a controller restart this long */

static const char usage_text[] =
	"usage: pcapctl create full|sample [FLAGS]\n"
	"\n"
	"Starts a capture and prints its id. A full capture records whole packets on\n"
	"the agents of one colo into a validated bucket; a sample one is answered\n"
	"from the agents' sampled history (first 160 bytes of each packet).\n"
	"\n"
	"filter (as in pcapd capture):\n"
	"      --src ADDRS, --dst ADDRS\n"
	"                              192.0.2.1, 2001:db8::/32, a-b, 'a;b'\n"
	"      --sport PORTS, --dport PORTS\n"
	"                              80, 80-120, '80;443'\n"
	"      --proto P               IP protocol: number or name (tcp, udp, icmp, ...)\n"
	"      --bpf EXPR              pcap-filter expression, ANDed with the above\n"
	"      --inner                 the flags above also match the inner packet of\n"
	"                              VXLAN, GENEVE and GRE tunnels\n"
	"limits:\n"
	"      --time-limit S          seconds, 1..300 (default 10)\n"
	"      --packet-limit N        packets, 1..10000 (sample: default 10000)\n"
	"      --byte-limit N[K|M|G]   bytes, 1..1000000000 (full only)\n"
	"where:\n"
	"      --colo C                colo or agent name to capture on (full; required)\n"
	"      --bucket URI            validated bucket, e.g. file:///srv/pcaps (full; required)\n"
	"      --offset-time T         RFC 3339 instant to look back from (sample; default now)\n"
	"then:\n"
	"      --wait                  follow the capture until it succeeds or fails\n"
	"  -o, --output FILE|-         when it succeeded, download it (implies --wait)\n"
	"      --json                  print the capture object instead of its id\n";

enum {
	OPT_WAIT = CTL_OPT_FIRST_COMMAND,
	OPT_SRC,
	OPT_DST,
	OPT_SPORT,
	OPT_DPORT,
	OPT_PROTO,
	OPT_BPF,
	OPT_TIME_LIMIT,
	OPT_PACKET_LIMIT,
	OPT_BYTE_LIMIT,
	OPT_COLO,
	OPT_BUCKET,
	OPT_OFFSET_TIME,
	OPT_INNER,
};

static const struct option long_options[] = {
	CTL_CONN_LONG_OPTIONS,
	{"json", no_argument, NULL, CTL_OPT_JSON},
	{"wait", no_argument, NULL, OPT_WAIT},
	{"output", required_argument, NULL, 'o'},
	{"src", required_argument, NULL, OPT_SRC},
	{"dst", required_argument, NULL, OPT_DST},
	{"sport", required_argument, NULL, OPT_SPORT},
	{"dport", required_argument, NULL, OPT_DPORT},
	{"proto", required_argument, NULL, OPT_PROTO},
	{"bpf", required_argument, NULL, OPT_BPF},
	{"time-limit", required_argument, NULL, OPT_TIME_LIMIT},
	{"packet-limit", required_argument, NULL, OPT_PACKET_LIMIT},
	{"byte-limit", required_argument, NULL, OPT_BYTE_LIMIT},
	{"colo", required_argument, NULL, OPT_COLO},
	{"bucket", required_argument, NULL, OPT_BUCKET},
	{"offset-time", required_argument, NULL, OPT_OFFSET_TIME},
	{"inner", no_argument, NULL, OPT_INNER},
	{0},
};

typedef struct CreateArgs {
	CreateReq req;
	bool wait, json;
	const char *out;
} CreateArgs;

/* The flag name for a request option, or NULL. */
static const char *req_flag(int opt)
{
	for (size_t i = 0; i < ARRAY_SIZE(long_options) && long_options[i].name; i++)
		if (long_options[i].val == opt && opt >= OPT_SRC && opt <= OPT_OFFSET_TIME)
			return long_options[i].name;
	return NULL;
}

/* CTL_EXIT_OK, CTL_PARSE_HELP or CTL_EXIT_USAGE. */
static int parse_args(int argc, char **argv, CtlOptions *o, CreateArgs *a)
{
	ErrBuf err = {{0}};
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, ":ho:", long_options, NULL)) != -1) {
		const char *name = req_flag(opt);

		if (ctl_conn_option(o, opt, optarg))
			continue;
		if (name) {
			char flag[32];

			r = snprintf(flag, sizeof(flag), "--%s", name);
			if (r < 0 || (size_t)r >= sizeof(flag))
				return CTL_EXIT_USAGE;
			if (createreq_set(&a->req, flag, optarg, &err) < 0) {
				ctl_error("%s", err.msg);
				return CTL_EXIT_USAGE;
			}
			continue;
		}
		switch (opt) {
		case 'h':
			ctl_usage(stdout, usage_text);
			return CTL_PARSE_HELP;
		case CTL_OPT_JSON:
			a->json = true;
			break;
		case OPT_WAIT:
			a->wait = true;
			break;
		case OPT_INNER:
			a->req.inner = true;
			break;
		case 'o':
			a->out = optarg;
			a->wait = true;
			break;
		default:
			return ctl_getopt_error("create", opt, argv);
		}
	}
	if (optind >= argc) {
		ctl_error("create: say full or sample");
		ctl_usage_short("create", usage_text);
		return CTL_EXIT_USAGE;
	}
	if (optind + 1 < argc) {
		ctl_error("create: unexpected argument '%s'", argv[optind + 1]);
		return CTL_EXIT_USAGE;
	}
	if (createreq_set_type(&a->req, argv[optind], &err) < 0) {
		ctl_error("%s", err.msg);
		return CTL_EXIT_USAGE;
	}
	if (a->json && a->out && strcmp(a->out, "-") == 0) {
		ctl_error("create: --json and -o - would both write to standard output");
		return CTL_EXIT_USAGE;
	}
	return CTL_EXIT_OK;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / NSEC_PER_SEC), .tv_nsec = (long)(ns % NSEC_PER_SEC)};

	/* EINTR (Ctrl-C) ends the sleep early: the caller looks at the flag. */
	nanosleep(&ts, NULL);
}

static void show_progress(const char *id, const json_t *obj, uint64_t start_ns)
{
	const json_t *packets = json_object_get(obj, "packets_captured");
	const json_t *limit = json_object_get(obj, "time_limit");
	double elapsed = (double)(now_monotonic_ns() - start_ns) / 1e9;
	char *status = render_clean_dup(ctl_str(obj, "status") ? ctl_str(obj, "status") : "?");
	char pk[48] = "";
	char lim[32] = "";
	int r;

	/* Truncation only shortens a progress line: checked, then ignored. */
	if (json_is_integer(packets)) {
		r = snprintf(pk, sizeof(pk), ", %" JSON_INTEGER_FORMAT " packets", json_integer_value(packets));
		if (r < 0 || (size_t)r >= sizeof(pk))
			pk[0] = '\0';
	}
	if (json_is_number(limit)) {
		r = snprintf(lim, sizeof(lim), "/%.0fs", json_number_value(limit));
		if (r < 0 || (size_t)r >= sizeof(lim))
			lim[0] = '\0';
	}
	fprintf(stderr, "\r\033[K%s: %s%s, %.1fs%s", id, status ? status : "?", pk, elapsed, lim);
	free(status);
}

/* Polls until the capture is terminal; *ret_obj gets the last object. Exit status. */
static int wait_for(Client *c, const char *id, json_t **ret_obj)
{
	bool tty = isatty(STDERR_FILENO) == 1;
	uint64_t start = now_monotonic_ns(), failing_since = 0;
	char path[sizeof("/pcaps/") + CTL_ID_LEN];
	ClientError err = {0};
	json_t *obj = NULL;
	int r;

	r = snprintf(path, sizeof(path), "/pcaps/%s", id);
	if (r < 0 || (size_t)r >= sizeof(path))
		return CTL_EXIT_FAIL;
	ctl_catch_interrupts();
	for (;;) {
		const char *status;
		json_t *next = NULL;

		if (ctl_interrupted)
			break;
		r = client_call(c, "GET", path, NULL, &next, &err);
		if (r < 0 && err.kind == CLIENT_ERR_CANCELLED)
			break;
		if (r < 0) {
			/* A controller restart (or a 5xx while it recovers) is waited out. */
			bool transient = err.kind == CLIENT_ERR_TRANSPORT ||
					 (err.kind == CLIENT_ERR_API && err.http_status >= 500);
			uint64_t now = now_monotonic_ns();

			if (!failing_since)
				failing_since = now;
			if (!transient || now - failing_since > POLL_RETRY_NS) {
				if (tty)
					fputs("\r\033[K", stderr);
				json_decref(obj);
				return ctl_fail(&err);
			}
			if (tty)
				fprintf(stderr, "\r\033[K%s: no answer from the controller, retrying", id);
			sleep_ns(POLL_NS);
			continue;
		}
		failing_since = 0;
		if (!json_is_object(next)) {
			json_decref(next);
			json_decref(obj);
			if (tty)
				fputs("\r\033[K", stderr);
			ctl_error("the answer for capture %s is not an object", id);
			return CTL_EXIT_FAIL;
		}
		json_decref(obj);
		obj = next;
		if (tty)
			show_progress(id, obj, start);
		status = ctl_str(obj, "status");
		if (status && (strcmp(status, "success") == 0 || strcmp(status, "complete") == 0 ||
			       strcmp(status, "failed") == 0)) {
			if (tty)
				fputs("\r\033[K", stderr);
			*ret_obj = obj;
			return CTL_EXIT_OK;
		}
		sleep_ns(POLL_NS);
	}
	if (tty)
		fputs("\r\033[K", stderr);
	json_decref(obj);
	ctl_error("stopped waiting; capture %s goes on (stop it with: pcapctl stop %s)", id, id);
	return CTL_EXIT_INTERRUPTED;
}

/* The id (or the object) on stdout, or on stderr when stdout carries the pcap. */
static int print_result(const CreateArgs *a, const char *id, const json_t *obj, bool stdout_busy)
{
	if (a->json)
		return ctl_print_json(obj);
	if (stdout_busy) {
		fprintf(stderr, "%s\n", id);
		return CTL_EXIT_OK;
	}
	if (printf("%s\n", id) < 0 || fflush(stdout) == EOF) {
		ctl_error("writing standard output: %s", strerror(errno));
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}

int cmd_create(int argc, char **argv, CtlOptions *o)
{
	CreateArgs a = {0};
	CtlOutput out = {.fd = -1};
	bool have_out = false, stdout_busy;
	ClientError cerr = {0};
	json_t *body = NULL, *obj = NULL, *final = NULL;
	Client *c = NULL;
	ErrBuf err = {{0}};
	char id[CTL_ID_LEN + 1];
	const char *sid, *status;
	int r;

	createreq_init(&a.req);
	r = parse_args(argc, argv, o, &a);
	if (r != CTL_EXIT_OK) {
		r = r == CTL_PARSE_HELP ? CTL_EXIT_OK : r;
		goto out;
	}
	if (createreq_to_json(&a.req, &body, &err) < 0) {
		ctl_error("%s", err.msg);
		r = CTL_EXIT_USAGE;
		goto out;
	}
	r = ctl_connect(o, &c);
	if (r != CTL_EXIT_OK)
		goto out;
	if (a.out) {
		r = ctl_output_open(a.out, &out);
		if (r != CTL_EXIT_OK)
			goto out;
		have_out = true;
	}
	stdout_busy = have_out && out.is_stdout;

	if (client_call(c, "POST", "/pcaps", body, &obj, &cerr) < 0) {
		r = ctl_fail(&cerr);
		goto out;
	}
	sid = ctl_str(obj, "id");
	if (!sid || !ctl_id_valid(sid)) {
		ctl_error("create: the answer carries no capture id");
		r = CTL_EXIT_FAIL;
		goto out;
	}
	memcpy(id, sid, sizeof(id));
	if (!a.wait) {
		r = print_result(&a, id, obj, false);
		goto out;
	}

	r = wait_for(c, id, &final);
	if (r == CTL_EXIT_INTERRUPTED && !a.json)
		print_result(&a, id, obj, stdout_busy);
	if (r != CTL_EXIT_OK)
		goto out;
	status = ctl_str(final, "status");
	if (strcmp(status, "failed") == 0) {
		const char *why = ctl_str(final, "error_message");
		char *clean = render_clean_dup(why && why[0] ? why : "no reason given");

		if (a.json && !stdout_busy)
			ctl_print_json(final);
		ctl_error("capture %s failed: %s", id, clean ? clean : "?");
		free(clean);
		r = CTL_EXIT_FAIL;
		goto out;
	}
	if (have_out) {
		r = ctl_download_to(c, id, NULL, &out);
		have_out = false; /* committed or aborted */
		if (r != CTL_EXIT_OK)
			goto out;
	}
	r = print_result(&a, id, final, stdout_busy);
out:
	if (have_out)
		ctl_output_abort(&out);
	json_decref(final);
	json_decref(obj);
	json_decref(body);
	client_free(c);
	createreq_done(&a.req);
	return r;
}

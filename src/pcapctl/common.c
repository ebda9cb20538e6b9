/* SPDX-License-Identifier: MIT */
/* Glue every pcapctl command shares (pcapctl.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pcapctl/pcapctl.h"
#include "pcapctl/render.h"

volatile sig_atomic_t ctl_interrupted;

const char ctl_conn_help[] = "connection (flags override the environment):\n"
			     "      --url URL               controller URL (PCAPD_URL; default " CTL_DEFAULT_URL ")\n"
			     "      --account ID            account id (PCAPD_ACCOUNT)\n"
			     "      --token TOKEN           API token, sent as a Bearer token (PCAPD_TOKEN;\n"
			     "                              prefer the variable: flags show in ps)\n"
			     "      --cacert FILE           CA certificate(s) for an https:// URL (PCAPD_CACERT)\n"
			     "      --insecure              do not verify the server's certificate\n";

void ctl_error(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	if ((size_t)r >= sizeof(buf))
		memcpy(buf + sizeof(buf) - 4, "...", 4);
	/* One fprintf: the line is not interleaved with a progress line. */
	fprintf(stderr, "pcapctl: %s\n", buf);
}

bool ctl_conn_option(CtlOptions *o, int opt, const char *arg)
{
	switch (opt) {
	case CTL_OPT_URL:
		o->url = arg;
		return true;
	case CTL_OPT_ACCOUNT:
		o->account = arg;
		return true;
	case CTL_OPT_TOKEN:
		o->token = arg;
		return true;
	case CTL_OPT_CACERT:
		o->cacert = arg;
		return true;
	case CTL_OPT_INSECURE:
		o->insecure = true;
		return true;
	default:
		return false;
	}
}

int ctl_getopt_error(const char *cmd, int opt, char **argv)
{
	/* getopt leaves optind past the offending word; a short option is in optopt. */
	const char *word = optind > 0 ? argv[optind - 1] : "?";
	bool is_short = optopt > 0 && optopt < 0x80;

	const char *sep = cmd[0] ? ": " : "";

	if (opt == ':' && is_short)
		ctl_error("%s%soption '-%c' needs a value", cmd, sep, optopt);
	else if (opt == ':')
		ctl_error("%s%soption '%s' needs a value", cmd, sep, word);
	else if (is_short)
		ctl_error("%s%sunknown option '-%c'", cmd, sep, optopt);
	else
		ctl_error("%s%sunknown option '%s'", cmd, sep, word);
	ctl_error("'pcapctl %s%s--help' lists the options", cmd, cmd[0] ? " " : "");
	return CTL_EXIT_USAGE;
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* The flag's value, else the variable's; *ret_source names where it came from. */
static const char *setting(const char *flag_value, const char *flag, const char *var, const char **ret_source)
{
	const char *v;

	if (flag_value) {
		*ret_source = flag;
		return flag_value;
	}
	v = getenv(var);
	*ret_source = var;
	return v && v[0] ? v : NULL;
}

int ctl_connect(const CtlOptions *o, Client **ret)
{
	const char *url_src, *acct_src, *tok_src, *ca_src;
	const char *url = setting(o->url, "--url", "PCAPD_URL", &url_src);
	const char *account = setting(o->account, "--account", "PCAPD_ACCOUNT", &acct_src);
	const char *token = setting(o->token, "--token", "PCAPD_TOKEN", &tok_src);
	const char *cacert = setting(o->cacert, "--cacert", "PCAPD_CACERT", &ca_src);
	ClientConfig cfg;
	ClientError err = {0};
	int r;

	if (!url)
		url = CTL_DEFAULT_URL;
	if (!account || !account[0]) {
		ctl_error("no account: pass --account ID or set PCAPD_ACCOUNT");
		return CTL_EXIT_USAGE;
	}
	if (!token || !token[0]) {
		ctl_error("no token: set PCAPD_TOKEN or pass --token TOKEN");
		return CTL_EXIT_USAGE;
	}
	if (has_ctl(account)) {
		ctl_error("%s: holds control characters", acct_src);
		return CTL_EXIT_USAGE;
	}
	if (has_ctl(token)) {
		ctl_error("%s: holds control characters", tok_src);
		return CTL_EXIT_USAGE;
	}
	if (cacert) {
		int fd = open(cacert, O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			ctl_error("%s: cannot read %s: %s", ca_src, cacert, strerror(errno));
			return CTL_EXIT_USAGE;
		}
		close(fd);
	}
	cfg = (ClientConfig){
		.url = url,
		.account = account,
		.token = token,
		.cacert = cacert,
		.insecure = o->insecure,
		.cancel = &ctl_interrupted,
	};
	r = client_new(&cfg, ret, &err);
	if (r == -EINVAL) {
		const char *src = strstr(err.message, "token")     ? tok_src
				  : strstr(err.message, "account") ? acct_src
								   : url_src;

		ctl_error("%s: %s", src, err.message);
		return CTL_EXIT_USAGE;
	}
	if (r < 0)
		return ctl_fail(&err);
	return CTL_EXIT_OK;
}

int ctl_call(const CtlOptions *o, const char *method, const char *path, json_t *body, json_t **ret_result)
{
	ClientError err = {0};
	Client *c = NULL;
	int r;

	r = ctl_connect(o, &c);
	if (r != CTL_EXIT_OK)
		return r;
	r = client_call(c, method, path, body, ret_result, &err);
	client_free(c);
	return r < 0 ? ctl_fail(&err) : CTL_EXIT_OK;
}

int ctl_list_command(int argc, char **argv, CtlOptions *o, CtlSimpleArgs *a, const char *path, const TableColumn *cols,
		     size_t ncols, CtlListRow row)
{
	json_t *result = NULL, *item;
	Table *t = NULL;
	size_t i;
	int r;

	r = ctl_parse_simple(argc, argv, o, a);
	if (r != CTL_EXIT_OK)
		return r == CTL_PARSE_HELP ? CTL_EXIT_OK : r;
	r = ctl_call(o, "GET", path, NULL, &result);
	if (r != CTL_EXIT_OK)
		return r;
	if (!result || json_is_null(result)) {
		json_decref(result);
		result = json_array(); /* the schema lets the list be null */
	}
	r = CTL_EXIT_FAIL;
	if (!json_is_array(result)) {
		ctl_error("%s: the answer's result is not an array", a->cmd);
		goto out;
	}
	if (a->json) {
		r = ctl_print_json(result);
		goto out;
	}
	if (table_new(cols, ncols, &t) < 0)
		goto nomem;
	json_array_foreach(result, i, item)
	{
		if (row(t, item) < 0)
			goto nomem;
	}
	if (table_write(t, stdout) < 0 || fflush(stdout) == EOF)
		ctl_error("writing standard output failed");
	else
		r = CTL_EXIT_OK;
	goto out;
nomem:
	ctl_error("out of memory");
out:
	table_free(t);
	json_decref(result);
	return r;
}

int ctl_fail(const ClientError *e)
{
	char *msg = render_clean_dup(e->message);
	const char *m = msg ? msg : "out of memory";

	switch (e->kind) {
	case CLIENT_ERR_CANCELLED:
		ctl_error("interrupted");
		free(msg);
		return CTL_EXIT_INTERRUPTED;
	case CLIENT_ERR_API:
		if (e->code)
			ctl_error("%s (HTTP %ld, code %ld)", m, e->http_status, e->code);
		else
			ctl_error("%s (HTTP %ld)", m, e->http_status);
		break;
	case CLIENT_ERR_PROTOCOL:
		if (e->http_status)
			ctl_error("%s (HTTP %ld)", m, e->http_status);
		else
			ctl_error("%s", m);
		break;
	default:
		ctl_error("%s", m);
		break;
	}
	free(msg);
	return CTL_EXIT_FAIL;
}

bool ctl_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n != CTL_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];

		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
			return false;
	}
	return true;
}

int ctl_check_id(const char *cmd, const char *id)
{
	char *clean;

	if (ctl_id_valid(id))
		return CTL_EXIT_OK;
	clean = render_clean_dup(id);
	ctl_error("%s: '%s' is not an id (%u hex digits)", cmd, clean ? clean : "?", CTL_ID_LEN);
	free(clean);
	return CTL_EXIT_USAGE;
}

int ctl_print_json(const json_t *v)
{
	if (json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY) < 0 || fputc('\n', stdout) == EOF ||
	    fflush(stdout) == EOF) {
		ctl_error("writing standard output: %s", strerror(errno));
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}

static void on_interrupt(int sig)
{
	(void)sig;
	ctl_interrupted = 1;
}

void ctl_catch_interrupts(void)
{
	struct sigaction sa = {0};

	/* No SA_RESTART: a sleep returns EINTR and the loop sees the flag.
	 * SA_RESETHAND: a second Ctrl-C ends pcapctl at once. */
	sa.sa_handler = on_interrupt;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

const char *ctl_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

void ctl_usage(FILE *f, const char *text)
{
	fprintf(f, "%s\n%s", text, ctl_conn_help);
}

void ctl_usage_short(const char *cmd, const char *text)
{
	const char *end = strstr(text, "\n\n");
	int n = end ? (int)(end - text) : (int)strlen(text);

	fprintf(stderr, "%.*s\n('pcapctl %s --help' says more)\n", n, text, cmd);
}

int ctl_parse_simple(int argc, char **argv, CtlOptions *o, CtlSimpleArgs *a)
{
	static const struct option opts[] = {
		CTL_CONN_LONG_OPTIONS,
		{"json", no_argument, NULL, CTL_OPT_JSON},
		{"output", required_argument, NULL, 'o'},
		{"format", required_argument, NULL, CTL_OPT_FORMAT},
		{0},
	};
	size_t npos;
	int opt;

	optind = 0; /* argv[0] is the command; rescan from scratch */
	while ((opt = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
		if (ctl_conn_option(o, opt, optarg))
			continue;
		switch (opt) {
		case 'h':
			ctl_usage(stdout, a->usage);
			return CTL_PARSE_HELP;
		case CTL_OPT_JSON:
			if (!a->json_ok) {
				ctl_error("%s: no --json here (it prints nothing to format)", a->cmd);
				return CTL_EXIT_USAGE;
			}
			a->json = true;
			break;
		case 'o':
			if (!a->out_ok) {
				ctl_error("%s: no -o here; 'pcapctl %s --help' lists the options", a->cmd, a->cmd);
				return CTL_EXIT_USAGE;
			}
			a->out = optarg;
			break;
		case CTL_OPT_FORMAT:
			if (!a->format_ok) {
				ctl_error("%s: no --format here; 'pcapctl %s --help' lists the options", a->cmd,
					  a->cmd);
				return CTL_EXIT_USAGE;
			}
			if (strcmp(optarg, "pcap") != 0 && strcmp(optarg, "pcapng") != 0) {
				ctl_error("%s: --format: '%s' is not pcap or pcapng", a->cmd, optarg);
				return CTL_EXIT_USAGE;
			}
			a->format = optarg;
			break;
		default:
			return ctl_getopt_error(a->cmd, opt, argv);
		}
	}
	npos = (size_t)(argc - optind);
	if (npos != a->npos) {
		if (npos > a->npos)
			ctl_error("%s: unexpected argument '%s'", a->cmd, argv[optind + (int)a->npos]);
		else
			ctl_error("%s: missing %s", a->cmd, a->pos_names);
		ctl_usage_short(a->cmd, a->usage);
		return CTL_EXIT_USAGE;
	}
	for (size_t i = 0; i < npos && i < ARRAY_SIZE(a->pos); i++)
		a->pos[i] = argv[optind + (int)i];
	return CTL_EXIT_OK;
}

int ctl_parse_id_path(int argc, char **argv, CtlOptions *o, CtlSimpleArgs *a, const char *prefix, const char *suffix,
		      char *path, size_t cap)
{
	int r;

	r = ctl_parse_simple(argc, argv, o, a);
	if (r != CTL_EXIT_OK)
		return r;
	r = ctl_check_id(a->cmd, a->pos[0]);
	if (r != CTL_EXIT_OK)
		return r;
	r = snprintf(path, cap, "%s%s%s", prefix, a->pos[0], suffix);
	if (r < 0 || (size_t)r >= cap)
		return CTL_EXIT_USAGE; /* cannot happen: the id was checked */
	return CTL_EXIT_OK;
}

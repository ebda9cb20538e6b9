/* SPDX-License-Identifier: MIT */
/*
 * pcapd token create: a new credential, printed once, stored only as its hash.
 * Works while the controller runs (the database serialises the write).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "api/auth.h"
#include "api/azure/azure.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "db/db.h"
#include "model/job.h"
#include "proto/agentproto.h"

#define EMAIL_MAX 254

static void usage(FILE *f)
{
	fprintf(f, "usage: pcapd token create --data DIR|--db URL --account ACCOUNT_ID --scope read|write\n"
		   "                          [--email EMAIL]\n"
		   "       pcapd token create --data DIR|--db URL --scope enroll [--account ACCOUNT_ID]\n"
		   "                          [--name-pattern GLOB]\n"
		   "                          [--colo COLO] [--expires DURATION|RFC3339]\n"
		   "\n"
		   "Prints a new secret and nothing else. ACCOUNT_ID is 32 hex digits, or the same digits\n"
		   "as a UUID (the Azure dialect's subscription id); the account is created if it does not\n"
		   "exist. Scopes: read (list, get, download, status), write (also create, stop, delete,\n"
		   "buckets). With --email the secret is a legacy API key, sent as X-Auth-Key together\n"
		   "with X-Auth-Email: EMAIL.\n"
		   "\n"
		   "enroll: a token that agents exchange for their own key (pcapd agent --enroll-token),\n"
		   "once per agent name. With --account its agents serve that account only; without,\n"
		   "it is an operator's token and its agents serve every account. --name-pattern limits\n"
		   "the names it enrols (fnmatch glob, e.g. 'rt*'), --colo the colo, --expires its life\n"
		   "(e.g. 3600, 30m, 24h, 7d, or a time like 2027-01-01T00:00:00Z).\n"
		   "\n"
		   "  --data DIR            the controller's --data (its database DIR/pcapd.db)\n" CLI_DB_HELP);
}

/* --expires: a duration from now (N, Ns, Nm, Nh, Nd) or an RFC 3339 time. */
static int parse_expires(const char *s, int64_t *ret)
{
	static const struct {
		char suffix;
		uint64_t mult;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
	size_t n = strlen(s);
	uint64_t mult = 1, v = 0;
	char num[32];

	if (timefmt_parse_rfc3339(s, n, ret) == 0)
		return 0;
	for (size_t i = 0; n > 1 && i < ARRAY_SIZE(units); i++)
		if (s[n - 1] == units[i].suffix) {
			mult = units[i].mult;
			n--;
		}
	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, n);
	num[n] = '\0';
	if (parse_u64(num, n, 1, 100ull * 366 * 86400, &v) < 0 || v * mult > 100ull * 366 * 86400)
		return -EINVAL;
	*ret = (int64_t)now_realtime_ns() + (int64_t)(v * mult) * 1000000000LL;
	return 0;
}

static bool email_valid(const char *s)
{
	const char *at = strchr(s, '@');
	size_t n = strlen(s);

	if (n < 3 || n > EMAIL_MAX || !at || at == s || !at[1] || strchr(at + 1, '@'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isgraph((unsigned char)s[i]))
			return false;
	return true;
}

static int create(int argc, char **argv)
{
	static const struct option opts[] = {
		{"data", required_argument, NULL, 'd'},    {"db", required_argument, NULL, 'D'},
		{"account", required_argument, NULL, 'a'}, {"scope", required_argument, NULL, 's'},
		{"email", required_argument, NULL, 'e'},   {"name-pattern", required_argument, NULL, 'p'},
		{"colo", required_argument, NULL, 'c'},    {"expires", required_argument, NULL, 'x'},
		{"help", no_argument, NULL, 'h'},          {0},
	};
	const char *data = NULL, *db_url = NULL, *scope_s = NULL, *email = NULL, *pattern = NULL, *colo = NULL;
	EnrollToken et = {0};
	bool enroll = false;
	char account[JOB_ID_LEN + 1] = "", secret[64];
	TokenScope scope;
	uint8_t hash[32];
	ErrBuf err = {{0}};
	Db *db = NULL;
	int opt, r, status = 1;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			data = optarg;
			break;
		case 'D':
			db_url = optarg;
			break;
		case 'a':
			/* An Azure subscription id names the same account. */
			if (azure_account_of(optarg, strlen(optarg), account))
				break;
			if (!job_id_valid(optarg, strlen(optarg))) {
				log_error("--account: '%s' is neither 32 hex digits nor a UUID", optarg);
				return 2;
			}
			for (size_t i = 0; i < JOB_ID_LEN; i++)
				account[i] = (char)tolower((unsigned char)optarg[i]);
			account[JOB_ID_LEN] = '\0';
			break;
		case 's':
			scope_s = optarg;
			break;
		case 'e':
			email = optarg;
			break;
		case 'p':
			pattern = optarg;
			break;
		case 'c':
			colo = optarg;
			break;
		case 'x':
			if (parse_expires(optarg, &et.expires_ns) < 0) {
				log_error("--expires: '%s' is not a duration (3600, 30m, 24h, 7d) or an RFC 3339 time",
					  optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (cli_no_operands("token create", argc, argv) != 0)
		return 2;
	enroll = scope_s && strcmp(scope_s, "enroll") == 0;
	if ((!data && !db_url) || (!account[0] && !enroll) || !scope_s) {
		log_error("token create: --data (or --db), --scope and (but for --scope enroll) --account are "
			  "required");
		usage(stderr);
		return 2;
	}
	if (scope_s && strcmp(scope_s, "agent") == 0) {
		log_error("--scope agent: agents enrol now, each for its own key: use --scope enroll, then "
			  "pcapd agent --enroll-token TOKEN");
		return 2;
	}
	if (!enroll && token_scope_from_string(scope_s, &scope) < 0) {
		log_error("--scope: '%s' is not read, write or enroll", scope_s);
		return 2;
	}
	if (!enroll && (pattern || colo || et.expires_ns)) {
		log_error("--name-pattern, --colo and --expires are for --scope enroll");
		return 2;
	}
	if (enroll && email) {
		log_error("--email: agents authenticate with a bearer key; drop --email");
		return 2;
	}
	if (pattern && (!pattern[0] || strlen(pattern) > ENROLL_PATTERN_MAX)) {
		log_error("--name-pattern: 1..%u characters", ENROLL_PATTERN_MAX);
		return 2;
	}
	if (colo && !agentproto_name_valid(colo)) {
		log_error("--colo: '%s' is not 1..%u characters of [A-Za-z0-9._-]", colo, AGENT_NAME_MAX);
		return 2;
	}
	if (email && !email_valid(email)) {
		log_error("--email: '%s' is not an email address", email);
		return 2;
	}
	if (!db_url && cli_make_data_dir(data) != 0)
		return 1;
	r = cli_db_open(db_url, data, &db, &err);
	if (r < 0)
		goto fail;
	if (account[0])
		r = db_account_ensure(db, account, &err);
	if (r < 0)
		goto fail;
	r = auth_new_secret(secret);
	if (r < 0) {
		errbuf_set(&err, r, "cannot draw a random secret: %s", strerror(-r));
		goto fail;
	}
	auth_hash(secret, strlen(secret), hash);
	if (enroll) {
		memcpy(et.account, account, sizeof(et.account));
		snprintf(et.name_pattern, sizeof(et.name_pattern), "%s", pattern ? pattern : "");
		snprintf(et.colo, sizeof(et.colo), "%s", colo ? colo : "");
		r = db_enroll_token_add(db, hash, &et, &err);
	} else {
		r = db_credential_add(db, hash, email, account, scope, &err);
	}
	if (r < 0)
		goto fail;
	printf("%s\n", secret);
	if (fflush(stdout) != 0) {
		errbuf_errno(&err, "stdout");
		goto fail;
	}
	status = 0;
	goto out;
fail:
	log_error("%s", err.msg);
out:
	explicit_bzero(secret, sizeof(secret));
	db_close(db);
	return status;
}

int cmd_token(int argc, char **argv)
{
	return cli_one_subcommand("token", "create", argc, argv, create, usage);
}

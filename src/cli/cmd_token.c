/* SPDX-License-Identifier: MIT */
/*
 * pcapd token create: a new credential, printed once, stored only as its hash.
 * Works while the controller runs (SQLite WAL; the database serialises the
 * write).
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "api/auth.h"
#include "api/azure/azure.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "common/log.h"
#include "db/db.h"
#include "model/job.h"

#define EMAIL_MAX 254

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pcapd token create --data DIR --account ACCOUNT_ID --scope read|write|agent [--email EMAIL]\n"
		"\n"
		"Prints a new secret and nothing else. ACCOUNT_ID is 32 hex digits, or the same digits\n"
		"as a UUID (the Azure dialect's subscription id); the account is created if it does not\n"
		"exist. Scopes: read (list, get, download, status), write (also create, stop, delete,\n"
		"buckets), agent (for pcapd agent --token). With --email the secret is a legacy API\n"
		"key, sent as X-Auth-Key together with X-Auth-Email: EMAIL.\n");
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
		{"data", required_argument, NULL, 'd'},  {"account", required_argument, NULL, 'a'},
		{"scope", required_argument, NULL, 's'}, {"email", required_argument, NULL, 'e'},
		{"help", no_argument, NULL, 'h'},        {0},
	};
	const char *data = NULL, *scope_s = NULL, *email = NULL;
	char account[JOB_ID_LEN + 1] = "", path[4096], secret[64];
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
	if (!data || !account[0] || !scope_s) {
		log_error("token create: --data, --account and --scope are required");
		usage(stderr);
		return 2;
	}
	if (token_scope_from_string(scope_s, &scope) < 0) {
		log_error("--scope: '%s' is not read, write or agent", scope_s);
		return 2;
	}
	if (email && !email_valid(email)) {
		log_error("--email: '%s' is not an email address", email);
		return 2;
	}
	if (email && scope == SCOPE_AGENT) {
		log_error("--email: agents authenticate with a bearer token; drop --email");
		return 2;
	}
	if (cli_make_data_dir(data) != 0)
		return 1;
	if (cli_path_join(path, sizeof(path), data, "pcapd.db") < 0) {
		log_error("--data: path too long");
		return 2;
	}
	r = db_open(path, &db, &err);
	if (r < 0)
		goto fail;
	r = db_account_ensure(db, account, &err);
	if (r < 0)
		goto fail;
	r = auth_new_secret(secret);
	if (r < 0) {
		errbuf_set(&err, r, "cannot draw a random secret: %s", strerror(-r));
		goto fail;
	}
	auth_hash(secret, strlen(secret), hash);
	r = db_credential_add(db, hash, email, account, scope, &err);
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
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "create") != 0) {
		log_error("token: unknown subcommand '%s' (expected create)", argv[1]);
		return 2;
	}
	return create(argc - 1, argv + 1);
}

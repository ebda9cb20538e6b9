/* SPDX-License-Identifier: MIT */
/*
 * pcapctl bucket add|validate|list|rm: the ownership challenge that makes a
 * bucket usable by full captures (README, "The API"). `add` registers the
 * URI and the controller writes a challenge file holding a token into the
 * bucket; whoever can read the bucket proves it by sending the token back
 * with `validate`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcapctl/pcapctl.h"
#include "pcapctl/render.h"
#include "pcapctl/table.h"

static const char bucket_usage[] = "usage: pcapctl bucket add URI [--json]\n"
				   "       pcapctl bucket validate URI TOKEN [--json]\n"
				   "       pcapctl bucket list [--json]\n"
				   "       pcapctl bucket rm ID\n"
				   "\n"
				   "Full captures write into a bucket (such as file:///srv/pcaps) that the\n"
				   "account has proved it owns: 'add' makes the controller write a challenge\n"
				   "file into the bucket; 'validate' sends back the token read from it.\n";

static const char add_usage[] = "usage: pcapctl bucket add URI [--json]\n"
				"\n"
				"Registers a bucket; the controller writes a challenge file holding a token\n"
				"into it. Then run 'pcapctl bucket validate URI TOKEN'.\n";

static const char validate_usage[] = "usage: pcapctl bucket validate URI TOKEN [--json]\n"
				     "\n"
				     "Proves ownership of a bucket with the token from its challenge file.\n";

static const char list_usage[] = "usage: pcapctl bucket list [--json]\n"
				 "\n"
				 "Lists the account's buckets: ID, STATUS, DESTINATION, FILENAME, VALIDATED.\n";

static const char rm_usage[] = "usage: pcapctl bucket rm ID\n"
			       "\n"
			       "Removes a bucket from the account (its files stay). Prints nothing.\n";

static int check_uri(const char *cmd, const char *uri)
{
	for (const char *p = uri; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			ctl_error("%s: URI holds control characters", cmd);
			return CTL_EXIT_USAGE;
		}
	}
	if (!strstr(uri, "://")) {
		ctl_error("%s: '%s' is not a bucket URI (such as file:///srv/pcaps)", cmd, uri);
		return CTL_EXIT_USAGE;
	}
	return CTL_EXIT_OK;
}

/* For a file:// bucket, the challenge file's path, so the hint can read it. */
static char *local_challenge_path(const char *uri, const char *filename)
{
	const char *path, *end;
	size_t n, k;
	char *out;

	if (strncmp(uri, "file:///", 8) != 0 || !filename || strchr(filename, '/'))
		return NULL;
	path = uri + 7;
	end = strchr(path, '?');
	n = end ? (size_t)(end - path) : strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	k = strlen(filename);
	out = malloc(n + 1 + k + 1);
	if (!out)
		return NULL;
	memcpy(out, path, n);
	out[n] = '/';
	memcpy(out + n + 1, filename, k + 1);
	return out;
}

static int print_add(const char *uri, const json_t *obj)
{
	const char *filename = ctl_str(obj, "filename");
	char *file = render_clean_dup(filename ? filename : "the challenge file");
	char *quri = render_shell_quote(uri);
	char *local = local_challenge_path(uri, filename);
	char *qlocal = local ? render_shell_quote(local) : NULL;
	char *clean_local = qlocal ? render_clean_dup(qlocal) : NULL;
	int r = CTL_EXIT_FAIL;

	if (!file || !quri || (local && (!qlocal || !clean_local))) {
		ctl_error("out of memory");
		goto out;
	}
	if (render_object(stdout, obj) < 0)
		goto out;
	if (clean_local)
		printf("\nThe controller wrote a token into the bucket. To prove the bucket is\n"
		       "yours, send it back:\n"
		       "  pcapctl bucket validate %s \"$(cat %s)\"\n",
		       quri, clean_local);
	else
		printf("\nThe controller wrote a token into %s in the bucket.\n"
		       "Read it from there, then run:\n"
		       "  pcapctl bucket validate %s TOKEN\n",
		       file, quri);
	r = fflush(stdout) == EOF ? CTL_EXIT_FAIL : CTL_EXIT_OK;
out:
	free(file);
	free(quri);
	free(local);
	free(qlocal);
	free(clean_local);
	return r;
}

static int bucket_add(int argc, char **argv, CtlOptions *o)
{
	CtlSimpleArgs a = {.cmd = "bucket add", .usage = add_usage, .npos = 1, .pos_names = "URI", .json_ok = true};
	json_t *body = NULL, *result = NULL;
	int r;

	r = ctl_parse_simple(argc, argv, o, &a);
	if (r != CTL_EXIT_OK)
		return r == CTL_PARSE_HELP ? CTL_EXIT_OK : r;
	r = check_uri("bucket add", a.pos[0]);
	if (r != CTL_EXIT_OK)
		return r;
	body = json_pack("{s:s}", "destination_conf", a.pos[0]);
	if (!body) {
		ctl_error("out of memory");
		return CTL_EXIT_FAIL;
	}
	r = ctl_call(o, "POST", "/pcaps/ownership", body, &result);
	if (r == CTL_EXIT_OK && !json_is_object(result)) {
		ctl_error("bucket add: the answer's result is not an object");
		r = CTL_EXIT_FAIL;
	} else if (r == CTL_EXIT_OK) {
		r = a.json ? ctl_print_json(result) : print_add(a.pos[0], result);
	}
	json_decref(body);
	json_decref(result);
	return r;
}

static int bucket_validate(int argc, char **argv, CtlOptions *o)
{
	CtlSimpleArgs a = {.cmd = "bucket validate",
			   .usage = validate_usage,
			   .npos = 2,
			   .pos_names = "URI and TOKEN",
			   .json_ok = true};
	json_t *body = NULL, *result = NULL;
	const char *status;
	int r;

	r = ctl_parse_simple(argc, argv, o, &a);
	if (r != CTL_EXIT_OK)
		return r == CTL_PARSE_HELP ? CTL_EXIT_OK : r;
	r = check_uri("bucket validate", a.pos[0]);
	if (r != CTL_EXIT_OK)
		return r;
	if (a.pos[1][0] == '\0') {
		ctl_error("bucket validate: TOKEN is empty");
		return CTL_EXIT_USAGE;
	}
	body = json_pack("{s:s, s:s}", "destination_conf", a.pos[0], "ownership_challenge", a.pos[1]);
	if (!body) {
		ctl_error("bucket validate: TOKEN or URI is not valid UTF-8");
		return CTL_EXIT_USAGE;
	}
	r = ctl_call(o, "POST", "/pcaps/ownership/validate", body, &result);
	if (r != CTL_EXIT_OK)
		goto out;
	if (!json_is_object(result)) {
		ctl_error("bucket validate: the answer's result is not an object");
		r = CTL_EXIT_FAIL;
		goto out;
	}
	r = a.json ? ctl_print_json(result) : render_object(stdout, result) < 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
	status = ctl_str(result, "status");
	if (r == CTL_EXIT_OK && (!status || strcmp(status, "success") != 0)) {
		char *clean = render_clean_dup(status ? status : "none");

		ctl_error("bucket validate: the bucket is not validated (status %s)", clean ? clean : "?");
		free(clean);
		r = CTL_EXIT_FAIL;
	}
out:
	json_decref(body);
	json_decref(result);
	return r;
}

static const TableColumn list_cols[] = {
	{"ID", false}, {"STATUS", false}, {"DESTINATION", false}, {"FILENAME", false}, {"VALIDATED", false},
};

static int list_row(Table *t, const json_t *item)
{
	const char *validated = ctl_str(item, "validated");
	char *when = validated ? render_short_time(validated) : NULL;
	const char *cells[ARRAY_SIZE(list_cols)] = {
		ctl_str(item, "id"),
		ctl_str(item, "status"),
		ctl_str(item, "destination_conf"),
		ctl_str(item, "filename"),
		when,
	};
	int r = table_add_row(t, cells);

	free(when);
	return r;
}

static int bucket_list(int argc, char **argv, CtlOptions *o)
{
	CtlSimpleArgs a = {.cmd = "bucket list", .usage = list_usage, .pos_names = "", .json_ok = true};

	return ctl_list_command(argc, argv, o, &a, "/pcaps/ownership", list_cols, ARRAY_SIZE(list_cols), list_row);
}

static int bucket_rm(int argc, char **argv, CtlOptions *o)
{
	CtlSimpleArgs a = {.cmd = "bucket rm", .usage = rm_usage, .npos = 1, .pos_names = "ID"};
	char path[sizeof("/pcaps/ownership/") + CTL_ID_LEN];
	json_t *result = NULL;
	int r;

	r = ctl_parse_id_path(argc, argv, o, &a, "/pcaps/ownership/", "", path, sizeof(path));
	if (r != CTL_EXIT_OK)
		return r == CTL_PARSE_HELP ? CTL_EXIT_OK : r;
	r = ctl_call(o, "DELETE", path, NULL, &result);
	json_decref(result);
	return r;
}

int cmd_bucket(int argc, char **argv, CtlOptions *o)
{
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv, CtlOptions *o);
	} subs[] = {
		{"add", bucket_add}, {"validate", bucket_validate}, {"list", bucket_list}, {"ls", bucket_list},
		{"rm", bucket_rm},   {"delete", bucket_rm},
	};

	if (argc < 2) {
		ctl_error("bucket: say add, validate, list or rm");
		ctl_usage_short("bucket", bucket_usage);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		ctl_usage(stdout, bucket_usage);
		return CTL_EXIT_OK;
	}
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].run(argc - 1, argv + 1, o);
	ctl_error("bucket: '%s' is not add, validate, list or rm", argv[1]);
	return CTL_EXIT_USAGE;
}

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * pcapctl's commands and the glue they share: connection flags (which
 * override PCAPD_URL, PCAPD_ACCOUNT, PCAPD_TOKEN, PCAPD_CACERT), error
 * printing, id checks, output files.
 *
 * Every command takes the arguments after its name (argv[0] is the command
 * name) and returns the exit status: CTL_EXIT_OK, CTL_EXIT_FAIL (the server
 * said no, or could not be reached), CTL_EXIT_USAGE (bad input, said before
 * any request), CTL_EXIT_INTERRUPTED (Ctrl-C). Messages go to stderr as
 * "pcapctl: ..."; results to stdout.
 */

#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "common/util.h"
#include "pcapctl/client.h"
#include "pcapctl/table.h"

#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 1
#define CTL_EXIT_USAGE 2
#define CTL_EXIT_INTERRUPTED 130
#define CTL_DEFAULT_URL "http://127.0.0.1:8080"
#define CTL_ID_LEN 32 /* capture and bucket ids: 32 hex digits */

/* Connection settings from the command line; NULL = not given (then the
 * environment, then the default). Parsed command-line values: the one kind of
 * global state docs/STYLE.md allows, but passed explicitly all the same. */
typedef struct CtlOptions {
	const char *url, *account, *token, *cacert;
	bool insecure;
} CtlOptions;

enum {
	CTL_OPT_URL = 0x300,
	CTL_OPT_ACCOUNT,
	CTL_OPT_TOKEN,
	CTL_OPT_CACERT,
	CTL_OPT_INSECURE,
	CTL_OPT_JSON,
	CTL_OPT_FORMAT,
	CTL_OPT_FIRST_COMMAND, /* commands number their own options from here */
};

/* The connection flags and --help, for every command's option table. */
/* clang-format off */
#define CTL_CONN_LONG_OPTIONS \
	{"url", required_argument, NULL, CTL_OPT_URL}, \
	{"account", required_argument, NULL, CTL_OPT_ACCOUNT}, \
	{"token", required_argument, NULL, CTL_OPT_TOKEN}, \
	{"cacert", required_argument, NULL, CTL_OPT_CACERT}, \
	{"insecure", no_argument, NULL, CTL_OPT_INSECURE}, \
	{"help", no_argument, NULL, 'h'}
/* clang-format on */

/* Help text for the connection flags, shared by every usage(). */
extern const char ctl_conn_help[];

/* Set by SIGINT/SIGTERM once ctl_catch_interrupts() ran (the one shutdown flag). */
extern volatile sig_atomic_t ctl_interrupted;

/* Commands. */
int cmd_create(int argc, char **argv, CtlOptions *o);
int cmd_list(int argc, char **argv, CtlOptions *o);
int cmd_get(int argc, char **argv, CtlOptions *o);
int cmd_download(int argc, char **argv, CtlOptions *o);
int cmd_stream(int argc, char **argv, CtlOptions *o);
int cmd_stop(int argc, char **argv, CtlOptions *o);
int cmd_retry_upload(int argc, char **argv, CtlOptions *o);
int cmd_bucket(int argc, char **argv, CtlOptions *o);

/* "pcapctl: " + message + "\n" on stderr. */
void ctl_error(const char *fmt, ...) PCAPD_PRINTF(1, 2);

/* Records a connection flag; false if opt is not one. */
bool ctl_conn_option(CtlOptions *o, int opt, const char *arg);

/* Handles getopt's '?' and ':' (opt; option strings start with ':') for
 * command cmd ("create", "bucket add"): prints which option is unknown or
 * lacks its value; returns CTL_EXIT_USAGE. */
int ctl_getopt_error(const char *cmd, int opt, char **argv);

/* Prints text, then the connection flags' help. */
void ctl_usage(FILE *f, const char *text);
/* For a usage error: the synopsis lines of text (up to its first blank line)
 * and a pointer to 'pcapctl CMD --help', on stderr. */
void ctl_usage_short(const char *cmd, const char *text);

/* The arguments of the simpler commands: connection flags, --help, maybe
 * --json and -o FILE, and an exact number of positional arguments. */
typedef struct CtlSimpleArgs {
	const char *cmd;       /* "get", "bucket rm": for messages */
	const char *usage;     /* help text (ctl_usage) */
	size_t npos;           /* exact number of positional arguments, 0..2 */
	const char *pos_names; /* "ID", "URI and TOKEN": for "missing ..." */
	bool json_ok, out_ok;  /* whether --json and -o are accepted */
	bool format_ok;        /* whether --format pcap|pcapng is accepted */
	const char *format;    /* out: --format value (checked) or NULL */
	bool json;             /* out: --json given */
	const char *out;       /* out: -o value or NULL */
	char *pos[2];          /* out: positional arguments */
} CtlSimpleArgs;

#define CTL_PARSE_HELP (-1) /* ctl_parse_simple printed the help: exit 0 */

/* Parses argv into a; CTL_EXIT_OK, CTL_PARSE_HELP, or CTL_EXIT_USAGE after saying why. */
int ctl_parse_simple(int argc, char **argv, CtlOptions *o, CtlSimpleArgs *a);

/* ctl_parse_simple for a command on one id (get, stop, bucket rm; a->npos
 * 1), then ctl_check_id, then prefix + ID + suffix into path. */
int ctl_parse_id_path(int argc, char **argv, CtlOptions *o, CtlSimpleArgs *a, const char *prefix, const char *suffix,
		      char *path, size_t cap);

/* Resolves flags and environment, checks them, makes the client. Returns an
 * exit status: 0 with *ret set, or CTL_EXIT_USAGE / CTL_EXIT_FAIL after
 * printing why. */
int ctl_connect(const CtlOptions *o, Client **ret);

/* Connects (ctl_connect) and makes one client_call. Exit status, after
 * saying why; *ret_result on success. */
int ctl_call(const CtlOptions *o, const char *method, const char *path, json_t *body, json_t **ret_result);

/* Adds the table row for one element of a list. 0 or -ENOMEM. */
typedef int (*CtlListRow)(Table *t, const json_t *item);

/* A list command (list, bucket list): parses argv into a, GETs path (a null
 * result counts as an empty array; any other non-array is an error), then
 * prints the array (--json) or a table of cols with one row per element.
 * Exit status. */
int ctl_list_command(int argc, char **argv, CtlOptions *o, CtlSimpleArgs *a, const char *path, const TableColumn *cols,
		     size_t ncols, CtlListRow row);

/* Prints a client error as "pcapctl: MESSAGE (HTTP STATUS, code CODE)" and
 * returns the exit status for it. */
int ctl_fail(const ClientError *e);

/* true if id is 32 hex digits (capture and bucket ids). */
bool ctl_id_valid(const char *id);

/* Checks a command's ID argument: prints and returns CTL_EXIT_USAGE if it is
 * not an id, 0 if it is. */
int ctl_check_id(const char *cmd, const char *id);

/* Pretty-prints v (indent 2) and a newline on stdout. Exit status. */
int ctl_print_json(const json_t *v);

/* SIGINT and SIGTERM set ctl_interrupted (no SA_RESTART; a second one kills). */
void ctl_catch_interrupts(void);

/* The string member key of obj, or NULL. */
const char *ctl_str(const json_t *obj, const char *key);

/* Where a download goes: a file (written as FILE.part, renamed when
 * complete, removed on failure) or standard output. */
typedef struct CtlOutput {
	const char *path; /* as given; "-" for stdout */
	char *part;       /* owned temporary name, NULL when writing in place */
	int fd;           /* -1 when closed */
	bool is_stdout;
} CtlOutput;

/* Opens the output named by -o. Exit status (after saying why). */
int ctl_output_open(const char *arg, CtlOutput *ret);
/* Makes a complete file visible under its name (fsync, rename, fsync dir). */
int ctl_output_commit(CtlOutput *out);
/* Removes what a failed download left; fine after commit (does nothing). */
void ctl_output_abort(CtlOutput *out);

/* Streams …/pcaps/{id}/download (?format=FORMAT unless NULL) into out, with a progress line on a
 * terminal, then commits out (or aborts it on any failure). Exit status. */
int ctl_download_to(Client *c, const char *id, const char *format, CtlOutput *out);

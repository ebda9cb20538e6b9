/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the pcapd subcommands share around their command lines: the operand
 * check, the -i interface list, paths under --data, and the stop signals of
 * the long-running ones (capture, agent). Functions that can fail with a
 * message log it (log.h) and return the subcommand's exit status: 0 when all
 * is well, 1 for a runtime failure, 2 for bad usage.
 */

#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db/db.h"

/* Set by SIGINT/SIGTERM once cli_catch_stop_signals ran (the one shutdown
 * flag of a subcommand). */
extern volatile sig_atomic_t cli_stop_requested;

/* A command with one subcommand (pcapd token create, pcapd agents revoke):
 * usage on --help (0) or without one (2), "CMD: unknown subcommand" (2), or
 * run(argc - 1, argv + 1)'s status. */
int cli_one_subcommand(const char *cmd, const char *sub, int argc, char **argv, int (*run)(int, char **),
		       void (*usage)(FILE *));

/* After getopt: "CMD: unexpected argument 'X'" and 2 if an operand is left. */
int cli_no_operands(const char *cmd, int argc, char **argv);

/* Splits -i's comma-separated list (up to cap names) into ifaces[], pointing
 * into a copy that replaces *owned (the caller frees it); *n counts them.
 * With all_alone, the name "all" is refused inside a list. */
int cli_split_ifaces(const char *list, bool all_alone, char **owned, const char **ifaces, size_t cap, size_t *n);

/* A number flag: decimal in lo..hi (with K/M/G suffixes when size). 0, or
 * "FLAG: 'X' is not a number" / "FLAG: X is outside LO..HI" logged and 2. */
int cli_parse_num(const char *flag, const char *value, uint64_t lo, uint64_t hi, bool size, uint64_t *ret);

/* Creates --data DIR (mode 0700) unless it exists. */
int cli_make_data_dir(const char *dir);

/* The database of a subcommand that touches state: --db URL (db_url) when
 * given, else the SQLite file DATA/pcapd.db. On failure err says which flag
 * is at fault ("--db: ...", "--data: ...") and -errno is returned. */
int cli_db_open(const char *db_url, const char *data, Db **ret, ErrBuf *err);

/* --db's help line, shared by the subcommands that take it. */
#define CLI_DB_HELP                                                                                                    \
	"  --db URL              the database: sqlite:PATH (default sqlite:DATA/pcapd.db), or PostgreSQL\n"            \
	"                        as a libpq URI: postgres://USER@HOST/DBNAME, postgres:///DBNAME?host=SOCKDIR\n"

/* "dir/name" into out: 0, or -ENAMETOOLONG when it does not fit. */
int cli_path_join(char *out, size_t cap, const char *dir, const char *name);

/* SIGINT and SIGTERM set cli_stop_requested, without SA_RESTART (a blocking
 * call returns EINTR and its loop sees the flag) and with SA_RESETHAND (a
 * second signal ends the process even if a write or an upload never
 * returns); SIGPIPE is ignored (a closed pipe or socket is an EPIPE error).
 * 0 or -errno. */
int cli_catch_stop_signals(void);

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The SQLite schema as numbered migrations (private to src/db). Migration k
 * takes PRAGMA user_version from k-1 to k; each runs in its own transaction.
 */

#include <sqlite3.h>

#include "common/util.h"

/* Applies every migration the database lacks. -ENOTSUP (with err) if the
 * database is newer than this binary; -EIO (or -EAGAIN when locked) on an
 * SQLite error. */
int db_migrate(sqlite3 *h, ErrBuf *err);

/* The schema version this binary writes: the number of migrations, the same
 * in every backend (migration k means the same change in SQLite and in
 * PostgreSQL; each backend's table is checked against this at compile time). */
#define DB_SCHEMA_VERSION 9

/* The schema version this binary writes (DB_SCHEMA_VERSION). */
int db_schema_version(void);

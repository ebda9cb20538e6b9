/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Tables for people: a header row and rows of cells, each column as wide as
 * its widest cell (display width, render_width), two spaces between
 * columns, no padding after the last one. Cells are copied and cleaned of
 * control characters (render_clean_dup); an empty or NULL cell shows "-".
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define TABLE_MAX_COLUMNS 16u

typedef struct TableColumn {
	const char *name; /* header text */
	bool right;       /* right-aligned (numbers) */
} TableColumn;

typedef struct Table Table;

/* -EINVAL for 0 or more than TABLE_MAX_COLUMNS columns, -ENOMEM. */
int table_new(const TableColumn *cols, size_t ncols, Table **ret);
void table_free(Table *t); /* NULL is fine */

/* Appends a row of ncols cells (as given to table_new). -ENOMEM. */
int table_add_row(Table *t, const char *const *cells);

size_t table_rows(const Table *t);

/* Writes the header and the rows. 0 or -EIO. */
int table_write(const Table *t, FILE *f);

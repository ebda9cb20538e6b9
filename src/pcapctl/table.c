/* SPDX-License-Identifier: MIT */
/* Tables for people (table.h). */
#include "pcapctl/table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pcapctl/render.h"

struct Table {
	TableColumn cols[TABLE_MAX_COLUMNS];
	size_t ncols;
	char **cells; /* rows × ncols, owned, cleaned */
	size_t nrows, cap;
};

int table_new(const TableColumn *cols, size_t ncols, Table **ret)
{
	Table *t;

	if (ncols == 0 || ncols > TABLE_MAX_COLUMNS)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	memcpy(t->cols, cols, ncols * sizeof(*cols));
	t->ncols = ncols;
	*ret = t;
	return 0;
}

void table_free(Table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

size_t table_rows(const Table *t)
{
	return t->nrows;
}

int table_add_row(Table *t, const char *const *cells)
{
	char **row;

	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **nc = reallocarray(t->cells, cap * t->ncols, sizeof(*nc));

		if (!nc)
			return -ENOMEM;
		t->cells = nc;
		t->cap = cap;
	}
	row = t->cells + t->nrows * t->ncols;
	for (size_t i = 0; i < t->ncols; i++) {
		row[i] = render_clean_dup(cells[i] && cells[i][0] ? cells[i] : "-");
		if (!row[i]) {
			while (i > 0)
				free(row[--i]);
			return -ENOMEM;
		}
	}
	t->nrows++;
	return 0;
}

static int write_cell(FILE *f, const char *s, size_t width, bool right, bool last)
{
	int pad = (int)(width - render_width(s));

	if (right)
		return fprintf(f, "%*s%s", pad, "", s);
	if (last)
		return fprintf(f, "%s", s);
	return fprintf(f, "%s%*s", s, pad, "");
}

int table_write(const Table *t, FILE *f)
{
	size_t width[TABLE_MAX_COLUMNS];

	for (size_t c = 0; c < t->ncols; c++) {
		width[c] = render_width(t->cols[c].name);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t w = render_width(t->cells[r * t->ncols + c]);

			if (w > width[c])
				width[c] = w;
		}
	}
	for (size_t r = 0; r <= t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = r == 0 ? t->cols[c].name : t->cells[(r - 1) * t->ncols + c];

			if (c > 0 && fputs("  ", f) < 0)
				return -EIO;
			if (write_cell(f, s, width[c], t->cols[c].right, c + 1 == t->ncols) < 0)
				return -EIO;
		}
		if (fputc('\n', f) == EOF)
			return -EIO;
	}
	return 0;
}

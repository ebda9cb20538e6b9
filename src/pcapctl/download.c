/* SPDX-License-Identifier: MIT */
/*
 * Downloads into files that are never seen half-written: the pcap is streamed
 * to FILE.part, fsync'ed, renamed to FILE and the directory fsync'ed; any
 * failure (the server's, the network's, the disk's, Ctrl-C) removes FILE.part
 * and leaves an existing FILE as it was. An existing FILE that is not a
 * regular file (a FIFO, /dev/null) is written in place: it cannot be renamed
 * over. Standard output is streamed as it comes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/io.h"
#include "pcapctl/pcapctl.h"
#include "pcapctl/render.h"

#define PROGRESS_EVERY_NS (100ull * 1000 * 1000)

int ctl_output_open(const char *arg, CtlOutput *ret)
{
	CtlOutput out = {.path = arg, .fd = -1};
	struct stat st;
	size_t n = strlen(arg);
	int fd;

	if (n == 0) {
		ctl_error("-o: empty file name");
		return CTL_EXIT_USAGE;
	}
	if (strcmp(arg, "-") == 0) {
		if (isatty(STDOUT_FILENO)) {
			ctl_error("-o -: standard output is a terminal; redirect it or give -o FILE");
			return CTL_EXIT_USAGE;
		}
		out.fd = STDOUT_FILENO;
		out.is_stdout = true;
		*ret = out;
		return CTL_EXIT_OK;
	}
	if (stat(arg, &st) == 0 && !S_ISREG(st.st_mode)) {
		if (S_ISDIR(st.st_mode)) {
			ctl_error("-o: %s is a directory", arg);
			return CTL_EXIT_USAGE;
		}
		fd = io_posix.open(&io_posix, arg, O_WRONLY, 0);
		if (fd < 0) {
			ctl_error("-o: cannot open %s: %s", arg, strerror(-fd));
			return CTL_EXIT_FAIL;
		}
		out.fd = fd;
		*ret = out;
		return CTL_EXIT_OK;
	}
	out.part = malloc(n + sizeof(".part"));
	if (!out.part) {
		ctl_error("out of memory");
		return CTL_EXIT_FAIL;
	}
	memcpy(out.part, arg, n);
	memcpy(out.part + n, ".part", sizeof(".part"));
	fd = io_posix.open(&io_posix, out.part, O_WRONLY | O_CREAT | O_TRUNC, 0666);
	if (fd < 0) {
		ctl_error("-o: cannot create %s: %s", out.part, strerror(-fd));
		free(out.part);
		return CTL_EXIT_FAIL;
	}
	out.fd = fd;
	*ret = out;
	return CTL_EXIT_OK;
}

int ctl_output_commit(CtlOutput *out)
{
	int fd = out->fd, r;

	if (out->is_stdout) {
		out->fd = -1;
		return CTL_EXIT_OK;
	}
	out->fd = -1;
	if (!out->part) {
		r = io_posix.close(&io_posix, fd);
		if (r < 0) {
			ctl_error("writing %s: %s", out->path, strerror(-r));
			return CTL_EXIT_FAIL;
		}
		return CTL_EXIT_OK;
	}
	r = io_posix.fsync(&io_posix, fd);
	if (r < 0) {
		io_posix.close(&io_posix, fd);
		ctl_error("writing %s: %s", out->part, strerror(-r));
		goto fail;
	}
	r = io_posix.close(&io_posix, fd);
	if (r < 0) {
		ctl_error("writing %s: %s", out->part, strerror(-r));
		goto fail;
	}
	r = io_posix.rename(&io_posix, out->part, out->path);
	if (r < 0) {
		ctl_error("renaming %s to %s: %s", out->part, out->path, strerror(-r));
		goto fail;
	}
	free(out->part);
	out->part = NULL;
	/* The file is complete under its name; a lost rename after a crash is
	 * all this protects against, so a failure here is not worth an error. */
	io_fsync_parent_dir(&io_posix, out->path);
	return CTL_EXIT_OK;
fail:
	io_posix.unlink(&io_posix, out->part);
	free(out->part);
	out->part = NULL;
	return CTL_EXIT_FAIL;
}

void ctl_output_abort(CtlOutput *out)
{
	if (out->fd >= 0 && !out->is_stdout)
		io_posix.close(&io_posix, out->fd);
	out->fd = -1;
	if (out->part)
		io_posix.unlink(&io_posix, out->part);
	free(out->part);
	out->part = NULL;
}

typedef struct Progress {
	const char *id;
	bool tty;
	uint64_t last_ns;
	bool shown;
} Progress;

static void on_progress(void *ctx, uint64_t bytes)
{
	Progress *p = ctx;
	uint64_t now = now_monotonic_ns();
	char size[32];

	if (!p->tty || now - p->last_ns < PROGRESS_EVERY_NS)
		return;
	p->last_ns = now;
	p->shown = true;
	render_bytes(bytes, size, sizeof(size));
	fprintf(stderr, "\r\033[Kdownloading %s: %s", p->id, size);
}

int ctl_download_to(Client *c, const char *id, const char *format, CtlOutput *out)
{
	Progress p = {.id = id, .tty = isatty(STDERR_FILENO) == 1};
	ClientError err = {0};
	char path[sizeof("/pcaps//download?format=pcapng") + CTL_ID_LEN];
	uint64_t bytes = 0;
	char size[32];
	int r;

	r = snprintf(path, sizeof(path), "/pcaps/%s/download%s%s", id, format ? "?format=" : "", format ? format : "");
	if (r < 0 || (size_t)r >= sizeof(path)) {
		ctl_output_abort(out);
		ctl_error("download: id too long");
		return CTL_EXIT_USAGE;
	}
	r = client_download(c, path, out->fd,
			    out->is_stdout ? "standard output"
			    : out->part    ? out->part
					   : out->path,
			    on_progress, &p, &bytes, &err);
	if (p.shown)
		fputs("\r\033[K", stderr);
	if (r < 0) {
		ctl_output_abort(out);
		return ctl_fail(&err);
	}
	r = ctl_output_commit(out);
	if (r != CTL_EXIT_OK)
		return r;
	if (p.tty) {
		render_bytes(bytes, size, sizeof(size));
		fprintf(stderr, "pcapctl: downloaded %s (%s) to %s\n", id, size,
			out->is_stdout ? "standard output" : out->path);
	}
	return CTL_EXIT_OK;
}

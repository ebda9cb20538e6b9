/* SPDX-License-Identifier: MIT */
/*
 * Drives the pure decoder over a file. Two ways to hold the bytes:
 *  - regular files are mapped whole (read-only, MADV_SEQUENTIAL): records point
 *    into the mapping and stay valid until pcaprd_free(), so a merge can hand
 *    them to the writer without copying. Page tables are filled ahead of the
 *    cursor in RD_POPULATE steps (MADV_POPULATE_READ): one call per 4 MiB
 *    instead of a page fault per 64 KiB, which was most of a merge's CPU time;
 *  - anything else (pipes, sockets, terminals) is read in chunks of at least
 *    1 MiB into one buffer [start, end) that grows to hold the largest item the
 *    decoder asks for (<= PCAPDEC_MAX_ITEM + header); the unconsumed bytes are
 *    moved to the front before each refill, which is why a record is valid only
 *    until the next pcaprd_next().
 */
#include "reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define RD_CHUNK (1024u * 1024)
#define RD_POPULATE (4u * 1024 * 1024)
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14; older kernels say EINVAL and we fault as before */
#endif

struct PcapReader {
	int fd;
	char *name; /* for messages */
	PcapDecoder *dec;
	bool mapped;
	uint8_t *map; /* mapped: whole file, map_len bytes */
	size_t map_len;
	uint8_t *buf; /* read mode: buffer of buf_cap bytes */
	size_t buf_cap;
	size_t start, end; /* unconsumed bytes: buf or map [start, end) */
	size_t populated;  /* mapped: page tables filled for map[0, populated) */
	bool populate_off; /* mapped: MADV_POPULATE_READ failed once; stop asking */
	bool eof;          /* read mode: read() returned 0 */
	bool done;         /* end of input reached */
	uint64_t tail;     /* bytes of a truncated last item */
};

void pcaprd_free(PcapReader *r)
{
	if (!r)
		return;
	if (r->map)
		munmap(r->map, r->map_len);
	free(r->buf);
	pcapdec_free(r->dec);
	if (r->fd >= 0)
		close(r->fd);
	free(r->name);
	free(r);
}

/* Prefixes the decoder's message with the input name. */
static int name_err(const PcapReader *r, ErrBuf *err, int code, const ErrBuf *inner)
{
	return errbuf_set(err, code, "%s: %s", r->name, inner->msg);
}

/* Read mode: makes [start, end) hold at least want bytes, or sets eof. */
static int fill(PcapReader *r, size_t want, ErrBuf *err)
{
	size_t have = r->end - r->start;

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, have);
		r->start = 0;
		r->end = have;
	}
	if (want > r->buf_cap || r->buf_cap - r->end < RD_CHUNK / 4) {
		size_t cap = want > RD_CHUNK ? want + RD_CHUNK / 4 : RD_CHUNK;
		uint8_t *n;

		if (cap < r->buf_cap)
			cap = r->buf_cap;
		n = realloc(r->buf, cap);
		if (!n)
			return errbuf_set(err, -ENOMEM, "%s: out of memory", r->name);
		r->buf = n;
		r->buf_cap = cap;
	}
	while (r->end - r->start < want) {
		ssize_t k = read(r->fd, r->buf + r->end, r->buf_cap - r->end);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errbuf_errno(err, "%s: read failed", r->name);
		if (k == 0) {
			r->eof = true;
			break;
		}
		r->end += (size_t)k;
	}
	return 0;
}

/* Fills page tables for the next RD_POPULATE bytes once the cursor gets within
 * half of that of the populated end. Only a hint: failure changes nothing. */
static void populate_ahead(PcapReader *r)
{
	size_t len;

	if (r->populate_off || r->populated >= r->map_len || r->start + RD_POPULATE / 2 < r->populated)
		return;
	len = r->map_len - r->populated < RD_POPULATE ? r->map_len - r->populated : RD_POPULATE;
	if (madvise(r->map + r->populated, len, MADV_POPULATE_READ) < 0)
		r->populate_off = true;
	r->populated += len;
}

/* Decodes the next item: PCAPDEC_RECORD/META, 0 at the end, -errno. */
static int step(PcapReader *r, PcapRecord *rec, ErrBuf *err)
{
	if (r->mapped)
		populate_ahead(r);
	for (;;) {
		const uint8_t *base = r->mapped ? r->map : r->buf;
		size_t n = r->end - r->start, used = 0;
		ErrBuf inner;
		int k;

		if (r->done)
			return 0;
		k = pcapdec_next(r->dec, base ? base + r->start : NULL, n, rec, &used, &inner);
		if (k > 0) {
			r->start += used;
			/* The next item's header is the next load from this input; start
			 * the cache miss now so that it overlaps the caller's work on this
			 * record (mapped page-cache memory is cold: the stall was a fifth of
			 * a merge's CPU time). Reading past the end is not possible here:
			 * prefetch never faults. */
			__builtin_prefetch(base + r->start);
			return k;
		}
		if (k != -EAGAIN)
			return name_err(r, err, k, &inner);
		if (r->mapped || r->eof) {
			r->tail = n;
			r->done = true;
			return 0;
		}
		k = fill(r, used, err);
		if (k < 0)
			return k;
	}
}

int pcaprd_open_fd(int fd, const char *name, PcapReader **ret, ErrBuf *err)
{
	PcapReader *r;
	struct stat st;
	PcapRecord rec;
	int k;

	r = calloc(1, sizeof(*r));
	if (!r) {
		close(fd);
		return errbuf_set(err, -ENOMEM, "%s: out of memory", name);
	}
	r->fd = fd;
	r->name = strdup(name);
	if (!r->name) {
		k = errbuf_set(err, -ENOMEM, "%s: out of memory", name);
		goto fail;
	}
	k = pcapdec_new(&r->dec);
	if (k < 0) {
		errbuf_set(err, k, "%s: out of memory", name);
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		k = errbuf_errno(err, "%s", name);
		goto fail;
	}
	if (S_ISREG(st.st_mode)) {
		off_t pos = lseek(fd, 0, SEEK_CUR);

		r->mapped = true;
		if (st.st_size > 0) {
			if ((uint64_t)st.st_size > SIZE_MAX) {
				k = errbuf_set(err, -EFBIG, "%s: too large to map", name);
				goto fail;
			}
			r->map_len = (size_t)st.st_size;
			r->map = mmap(NULL, r->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
			if (r->map == MAP_FAILED) {
				k = errbuf_errno(err, "%s: mmap failed", name);
				r->map = NULL;
				goto fail;
			}
			(void)madvise(r->map, r->map_len, MADV_SEQUENTIAL);
		}
		/* A redirected stdin may already be past its start. */
		r->start = pos > 0 && (uint64_t)pos <= r->map_len ? (size_t)pos : 0;
		r->end = r->map_len;
	}
	k = step(r, &rec, err);
	if (k < 0)
		goto fail;
	if (k == 0) {
		k = r->start == r->end && r->tail == 0 ? errbuf_set(err, -EBADMSG, "%s: empty file", name)
						       : errbuf_set(err, -EBADMSG, "%s: truncated file header", name);
		goto fail;
	}
	*ret = r;
	return 0;
fail:
	pcaprd_free(r);
	return k;
}

int pcaprd_open(const char *path, PcapReader **ret, ErrBuf *err)
{
	int fd;

	if (strcmp(path, "-") == 0) {
		fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return errbuf_errno(err, "standard input");
		return pcaprd_open_fd(fd, "standard input", ret, err);
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errbuf_errno(err, "%s", path);
	return pcaprd_open_fd(fd, path, ret, err);
}

int pcaprd_next(PcapReader *r, PcapRecord *ret, ErrBuf *err)
{
	PcapRecord rec;
	int k;

	do {
		k = step(r, &rec, err);
		if (k < 0) {
			r->done = true;
			return k;
		}
	} while (k == PCAPDEC_META);
	if (k == 0)
		return 0;
	*ret = rec;
	return 1;
}

uint64_t pcaprd_truncated_tail(const PcapReader *r)
{
	return r->tail;
}

bool pcaprd_stable(const PcapReader *r)
{
	return r->mapped;
}

PcapFormat pcaprd_format(const PcapReader *r)
{
	return pcapdec_format(r->dec);
}

uint32_t pcaprd_interface_count(const PcapReader *r)
{
	return pcapdec_interface_count(r->dec);
}

int pcaprd_interface_info(const PcapReader *r, uint32_t ifid, PcapInterfaceInfo *ret)
{
	return pcapdec_interface(r->dec, ifid, ret);
}

/* SPDX-License-Identifier: MIT */
/*
 * The store's directory: opening (locking and start-up recovery for a writer,
 * a listing for a read-only store), the catalogue of segments, loading and
 * rebuilding indexes, retention and statistics.
 *
 * Recovery (writer stores), in this order:
 *   1. *.tmp files of ours (open-*.tmp, seg-*.tmp) are removed: they were
 *      never published (an open segment, or a seal that did not finish);
 *   2. index files whose data file is missing are removed (a crash between
 *      the two unlinks of retention);
 *   3. each data file's index is read and checked against it (sequence
 *      number, size, time range, link type); a missing or invalid index is
 *      rebuilt from the pcap. A data file that ends in a cut-short record is
 *      cut back to its last whole record first; one without a packet is
 *      removed; one whose header is not a segment's is left alone and
 *      ignored. Rebuilt indexes are published like the writer's (temporary
 *      name, fsync, rename, fsync of the directory).
 * A write that fails during recovery does not fail hist_open(): the segment
 * is kept with its index in memory and recording starts suspended, so that a
 * full disk never keeps the recorder from starting.
 */
#include "history/hist-int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "history/histseg.h"

/* ------------------------------------------------------------ helpers */

int hist_path(const HistStore *s, const char *name, char *out, size_t cap, ErrBuf *err)
{
	int n = snprintf(out, cap, "%s/%s", s->dir, name);

	if (n < 0 || (size_t)n >= cap)
		return errbuf_set(err, -ENAMETOOLONG, "%s/%s: path too long", s->dir, name);
	return 0;
}

int hist_write_all_at(const IoOps *io, int fd, const void *buf, size_t len, uint64_t off)
{
	return io_pwrite_all(io, fd, buf, len, off);
}

int hist_fsync_dir(HistStore *s, ErrBuf *err)
{
	int fd = s->io->open(s->io, s->dir, O_RDONLY | O_DIRECTORY, 0), r;

	if (fd < 0)
		return errbuf_set(err, fd, "%s: cannot open the directory: %s", s->dir, strerror(-fd));
	r = s->io->fsync(s->io, fd);
	s->io->close(s->io, fd);
	if (r < 0)
		return errbuf_set(err, r, "%s: fsync of the directory: %s", s->dir, strerror(-r));
	return 0;
}

int hist_write_file(HistStore *s, const char *tmp_name, const uint8_t *p, size_t n, ErrBuf *err)
{
	char path[PATH_MAX];
	int fd, r;

	r = hist_path(s, tmp_name, path, sizeof(path), err);
	if (r < 0)
		return r;
	fd = s->io->open(s->io, path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return errbuf_set(err, fd, "%s: cannot create: %s", path, strerror(-fd));
	r = hist_write_all_at(s->io, fd, p, n, 0);
	if (r < 0) {
		errbuf_set(err, r, "%s: write: %s", path, strerror(-r));
		goto fail;
	}
	r = s->io->fsync(s->io, fd);
	if (r < 0) {
		errbuf_set(err, r, "%s: fsync: %s", path, strerror(-r));
		goto fail;
	}
	r = s->io->close(s->io, fd);
	if (r < 0) {
		s->io->unlink(s->io, path);
		return errbuf_set(err, r, "%s: close: %s", path, strerror(-r));
	}
	return 0;
fail:
	s->io->close(s->io, fd);
	s->io->unlink(s->io, path);
	return r;
}

/* Whole file into memory, at most max bytes: -EFBIG beyond. */
static int read_whole(int fd, size_t max, uint8_t **ret, size_t *ret_n)
{
	struct stat st;
	uint8_t *p;
	size_t got = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	p = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!p)
		return -ENOMEM;
	while (got < (size_t)st.st_size) {
		ssize_t k = pread(fd, p + got, (size_t)st.st_size - got, (off_t)got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			int e = k < 0 ? -errno : -EIO;

			free(p);
			return e;
		}
		got += (size_t)k;
	}
	*ret = p;
	*ret_n = got;
	return 0;
}

/* ------------------------------------------------------------ catalogue */

HistSeg *hist_seg_new(uint64_t seq)
{
	HistSeg *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->refs = 1;
	g->seq = seq;
	g->fd = -1;
	return g;
}

static void seg_free(HistSeg *g)
{
	if (g->fd >= 0)
		close(g->fd);
	free(g->blocks);
	free(g->pmax);
	free(g->smin);
	free(g);
}

void hist_seg_unref_locked(HistStore *s, HistSeg *g)
{
	(void)s;
	if (g && --g->refs == 0)
		seg_free(g);
}

void hist_seg_unref(HistStore *s, HistSeg *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&s->lock);
	hist_seg_unref_locked(s, g);
	pthread_mutex_unlock(&s->lock);
}

int hist_catalog_insert(HistStore *s, HistSeg *g)
{
	size_t i;

	if (s->n_segs == s->cap_segs) {
		size_t nc = s->cap_segs ? s->cap_segs * 2 : 64;
		HistSeg **nv = realloc(s->segs, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		s->segs = nv;
		s->cap_segs = nc;
	}
	i = s->n_segs;
	while (i > 0 && s->segs[i - 1]->seq > g->seq)
		i--;
	memmove(&s->segs[i + 1], &s->segs[i], (s->n_segs - i) * sizeof(*s->segs));
	s->segs[i] = g;
	s->n_segs++;
	return 0;
}

void hist_catalog_remove(HistStore *s, HistSeg *g)
{
	for (size_t i = 0; i < s->n_segs; i++) {
		if (s->segs[i] == g) {
			memmove(&s->segs[i], &s->segs[i + 1], (s->n_segs - i - 1) * sizeof(*s->segs));
			s->n_segs--;
			hist_seg_unref_locked(s, g);
			return;
		}
	}
}

/* ------------------------------------------------------------ loading */

/* What loading found out, installed in the segment under the lock. */
typedef struct Loaded {
	int fd;
	HistIndexInfo info;
	HistBlock *blocks;
	uint64_t *pmax, *smin;
	uint64_t disk_bytes;
	char name[HISTFMT_NAME_MAX];
} Loaded;

static void loaded_done(Loaded *l)
{
	if (l->fd >= 0)
		close(l->fd);
	free(l->blocks);
	free(l->pmax);
	free(l->smin);
}

static int make_search_arrays(Loaded *l)
{
	size_t n = l->info.n_blocks;

	if (n == 0)
		return 0;
	l->pmax = malloc(n * sizeof(*l->pmax));
	l->smin = malloc(n * sizeof(*l->smin));
	if (!l->pmax || !l->smin)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		l->pmax[i] = i == 0 || l->blocks[i].max_ts > l->pmax[i - 1] ? l->blocks[i].max_ts : l->pmax[i - 1];
	for (size_t i = n; i-- > 0;)
		l->smin[i] = i == n - 1 || l->blocks[i].min_ts < l->smin[i + 1] ? l->blocks[i].min_ts : l->smin[i + 1];
	return 0;
}

/* Reads and checks the index of data file g (size bytes, its header says
 * linktype/snaplen): 0 when it describes the file exactly. */
static int read_index(HistStore *s, const HistSeg *g, uint64_t size, uint32_t linktype, uint32_t snaplen, Loaded *l,
		      uint64_t *ret_index_bytes, ErrBuf *err)
{
	char name[HISTFMT_NAME_MAX], path[PATH_MAX];
	uint8_t *p = NULL;
	size_t n = 0;
	int fd, r;

	histfmt_name(g->seq, g->first_ts, g->last_ts, true, name);
	r = hist_path(s, name, path, sizeof(path), err);
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errbuf_errno(err, "%s", path);
	r = read_whole(fd, HISTFMT_MAX_INDEX, &p, &n);
	close(fd);
	if (r < 0)
		return errbuf_set(err, r, "%s: %s", path, strerror(-r));
	r = histfmt_index_decode(p, n, &l->info, &l->blocks, err);
	free(p);
	if (r < 0)
		return r;
	if (l->info.seq != g->seq || l->info.data_size != size || l->info.first_ts != g->first_ts ||
	    l->info.last_ts != g->last_ts || l->info.linktype != linktype || l->info.snaplen != snaplen ||
	    l->info.packets == 0)
		return errbuf_set(err, -EBADMSG, "%s: does not describe its data file", path);
	*ret_index_bytes = n;
	return 0;
}

/* Rebuilds g's index from its data file; a writer store also repairs the file
 * and publishes the index (see the top of the file). */
static int rebuild_index(HistStore *s, const HistSeg *g, uint64_t size, Loaded *l, HistOpenReport *rep, ErrBuf *err)
{
	char old_path[PATH_MAX], path[PATH_MAX], idx_name[HISTFMT_NAME_MAX], tmp_name[HISTFMT_NAME_MAX + 4];
	uint8_t *map, *buf = NULL;
	uint64_t valid;
	size_t len;
	int r, wfd;

	r = hist_path(s, g->name, old_path, sizeof(old_path), err);
	if (r < 0)
		return r;
	if (size > SIZE_MAX)
		return errbuf_set(err, -EFBIG, "%s: too large to map", old_path);
	map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, l->fd, 0);
	if (map == MAP_FAILED)
		return errbuf_errno(err, "%s: mmap", old_path);
	free(l->blocks);
	l->blocks = NULL;
	r = histseg_index_build(map, (size_t)size, g->seq, s->cfg.block_packets, s->cfg.block_bytes, &l->info,
				&l->blocks, &valid, err);
	munmap(map, (size_t)size);
	if (r < 0)
		return r;
	if (s->cfg.read_only)
		return 0; /* in memory only; info.data_size = valid bytes */

	if (valid < size) {
		wfd = s->io->open(s->io, old_path, O_WRONLY, 0);
		r = wfd < 0 ? wfd : s->io->ftruncate(s->io, wfd, (off_t)valid);
		if (r == 0)
			r = s->io->fsync(s->io, wfd);
		if (wfd >= 0)
			s->io->close(s->io, wfd);
		if (r < 0)
			return errbuf_set(err, r, "%s: cannot cut back to %llu bytes: %s", old_path,
					  (unsigned long long)valid, strerror(-r));
		if (rep)
			rep->truncated++;
	}
	if (l->info.packets == 0) {
		s->io->unlink(s->io, old_path);
		histfmt_name(g->seq, g->first_ts, g->last_ts, true, idx_name);
		if (hist_path(s, idx_name, path, sizeof(path), NULL) == 0)
			s->io->unlink(s->io, path);
		if (rep)
			rep->removed_empty++;
		return -ENODATA;
	}
	histfmt_name(g->seq, l->info.first_ts, l->info.last_ts, false, tmp_name);
	if (strcmp(tmp_name, g->name) != 0) {
		/* The name carries the time range: it must match the contents. */
		histfmt_name(g->seq, g->first_ts, g->last_ts, true, idx_name);
		if (hist_path(s, idx_name, path, sizeof(path), NULL) == 0)
			s->io->unlink(s->io, path);
		r = hist_path(s, tmp_name, path, sizeof(path), err);
		if (r < 0)
			return r;
		r = s->io->rename(s->io, old_path, path);
		if (r < 0)
			return errbuf_set(err, r, "rename %s to %s: %s", old_path, path, strerror(-r));
		memcpy(l->name, tmp_name, sizeof(l->name));
		r = hist_fsync_dir(s, err);
		if (r < 0)
			return r;
	}
	len = histfmt_index_size(l->info.n_blocks);
	buf = malloc(len);
	if (!buf)
		return errbuf_set(err, -ENOMEM, "out of memory for an index");
	histfmt_index_encode(&l->info, l->blocks, l->info.n_blocks, buf);
	histfmt_name(g->seq, l->info.first_ts, l->info.last_ts, true, idx_name);
	snprintf(tmp_name, sizeof(tmp_name), "%s.tmp", idx_name); /* fits: sized for it */
	r = hist_write_file(s, tmp_name, buf, len, err);
	free(buf);
	if (r < 0)
		return r;
	r = hist_path(s, tmp_name, old_path, sizeof(old_path), err);
	if (r == 0)
		r = hist_path(s, idx_name, path, sizeof(path), err);
	if (r < 0)
		return r;
	r = s->io->rename(s->io, old_path, path);
	if (r < 0) {
		s->io->unlink(s->io, old_path);
		return errbuf_set(err, r, "rename %s to %s: %s", old_path, path, strerror(-r));
	}
	r = hist_fsync_dir(s, err);
	if (r < 0)
		return r;
	l->disk_bytes += len;
	if (rep)
		rep->rebuilt++;
	return 0;
}

/* Loads g: 0, -ENODATA (an empty segment, removed), or another -errno. When
 * a writer store fails to repair (write) a segment it can read, the segment is
 * loaded from memory, 0 is returned and *ret_write_err says what failed. */
static int seg_load(HistStore *s, HistSeg *g, HistOpenReport *rep, int *ret_write_err, ErrBuf *err)
{
	Loaded l = {.fd = -1};
	char path[PATH_MAX];
	uint8_t hdr[HISTFMT_PCAP_HDR];
	uint32_t linktype, snaplen;
	uint64_t index_bytes = 0;
	struct stat st;
	ErrBuf ierr;
	int r, write_err = 0;

	pthread_mutex_lock(&s->lock);
	r = g->loaded ? 1 : g->unreadable ? -EBADMSG : 0;
	pthread_mutex_unlock(&s->lock);
	if (r != 0)
		return r > 0 ? 0 : errbuf_set(err, r, "segment %s is unreadable", g->name);
	r = hist_path(s, g->name, path, sizeof(path), err);
	if (r < 0)
		goto fail;
	l.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (l.fd < 0) {
		r = errbuf_errno(err, "%s", path);
		goto fail;
	}
	if (fstat(l.fd, &st) < 0) {
		r = errbuf_errno(err, "%s", path);
		goto fail;
	}
	if (pread(l.fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr)) {
		r = errbuf_set(err, -EBADMSG, "%s: shorter than a pcap header", path);
		goto fail;
	}
	r = histseg_header_decode(hdr, sizeof(hdr), &linktype, &snaplen, &ierr);
	if (r < 0) {
		errbuf_set(err, r, "%s: %s", path, ierr.msg);
		goto fail;
	}
	memcpy(l.name, g->name, sizeof(l.name));
	l.disk_bytes = (uint64_t)st.st_size;
	if (read_index(s, g, (uint64_t)st.st_size, linktype, snaplen, &l, &index_bytes, &ierr) == 0) {
		l.disk_bytes += index_bytes;
	} else {
		r = rebuild_index(s, g, (uint64_t)st.st_size, &l, rep, err);
		if (r == -ENODATA)
			goto fail;
		if (r < 0 && (!l.blocks || l.info.packets == 0))
			goto fail;
		write_err = r < 0 ? r : 0; /* rebuilt in memory, not published */
	}
	r = make_search_arrays(&l);
	if (r < 0) {
		errbuf_set(err, r, "out of memory loading %s", path);
		goto fail;
	}
	pthread_mutex_lock(&s->lock);
	if (!g->loaded) {
		g->fd = l.fd;
		g->info = l.info;
		g->linktype = l.info.linktype;
		g->snaplen = l.info.snaplen;
		g->first_ts = l.info.first_ts;
		g->last_ts = l.info.last_ts;
		g->blocks = l.blocks;
		g->n_blocks = g->cap_blocks = l.info.n_blocks;
		g->pmax = l.pmax;
		g->smin = l.smin;
		g->disk_bytes = l.disk_bytes;
		memcpy(g->name, l.name, sizeof(g->name));
		g->loaded = true;
		l = (Loaded){.fd = -1};
	}
	pthread_mutex_unlock(&s->lock);
	loaded_done(&l);
	if (ret_write_err)
		*ret_write_err = write_err;
	return 0;
fail:
	if (r != -ENODATA) {
		pthread_mutex_lock(&s->lock);
		if (!g->unreadable && !g->loaded) {
			g->unreadable = true;
			/* Gone (retention by the writer, for a read-only store) is
			 * not damage: skipped, not counted. */
			if (r != -ENOENT)
				s->unreadable++;
		}
		pthread_mutex_unlock(&s->lock);
	}
	loaded_done(&l);
	return r;
}

int hist_seg_load(HistStore *s, HistSeg *g, ErrBuf *err)
{
	return seg_load(s, g, NULL, NULL, err);
}

/* ------------------------------------------------------------ open */

static int apply_defaults(HistConfig *c, ErrBuf *err)
{
	if (!c->dir || !c->dir[0])
		return errbuf_set(err, -EINVAL, "history: no directory given");
	if (c->snaplen == 0)
		c->snaplen = HIST_DEFAULT_SNAPLEN;
	if (c->snaplen > PCAP_MAX_SNAPLEN)
		return errbuf_set(err, -EINVAL, "snaplen: %u is outside 1..%u", c->snaplen, PCAP_MAX_SNAPLEN);
	if (c->block_packets == 0)
		c->block_packets = HIST_DEFAULT_BLOCK_PACKETS;
	if (c->block_packets > HIST_MAX_BLOCK_PACKETS)
		return errbuf_set(err, -EINVAL, "block_packets: %u is outside 1..%u", c->block_packets,
				  HIST_MAX_BLOCK_PACKETS);
	if (c->block_bytes == 0)
		c->block_bytes = HIST_DEFAULT_BLOCK_BYTES;
	if (c->block_bytes > HIST_MAX_BLOCK_BYTES)
		return errbuf_set(err, -EINVAL, "block_bytes: %u is over %u", c->block_bytes, HIST_MAX_BLOCK_BYTES);
	if (c->block_flush_ns == 0)
		c->block_flush_ns = HIST_DEFAULT_BLOCK_FLUSH_NS;
	if (c->segment_age_ns == 0)
		c->segment_age_ns = HIST_DEFAULT_SEGMENT_AGE_NS;
	if (c->max_age_ns == 0)
		c->max_age_ns = HIST_DEFAULT_MAX_AGE_NS;
	if (c->max_bytes == 0)
		c->max_bytes = HIST_DEFAULT_MAX_BYTES;
	if (c->max_bytes != HIST_NO_LIMIT && c->max_bytes < 4 * HIST_MIN_SEGMENT_BYTES)
		return errbuf_set(err, -EINVAL, "max_bytes: %llu is below %llu", (unsigned long long)c->max_bytes,
				  4 * HIST_MIN_SEGMENT_BYTES);
	if (c->segment_bytes == 0)
		c->segment_bytes = HIST_DEFAULT_SEGMENT_BYTES;
	if (c->segment_bytes < HIST_MIN_SEGMENT_BYTES || c->segment_bytes > HIST_MAX_SEGMENT_BYTES)
		return errbuf_set(err, -EINVAL, "segment_bytes: %llu is outside %llu..%llu",
				  (unsigned long long)c->segment_bytes, HIST_MIN_SEGMENT_BYTES, HIST_MAX_SEGMENT_BYTES);
	/* Retention deletes whole segments: keep them small beside the limit. */
	if (c->max_bytes != HIST_NO_LIMIT && c->segment_bytes > c->max_bytes / 4)
		c->segment_bytes = c->max_bytes / 4;
	return 0;
}

static int cmp_seq(const void *a, const void *b)
{
	const HistSeg *x = *(HistSeg *const *)a, *y = *(HistSeg *const *)b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Lists the directory: data files into the catalogue; a writer also removes
 * temporaries and orphan indexes (recovery steps 1 and 2). */
static int scan_dir(HistStore *s, HistOpenReport *rep, ErrBuf *err)
{
	struct dirent **names = NULL;
	char path[PATH_MAX];
	int n, r = 0;

	n = scandir(s->dir, &names, NULL, alphasort);
	if (n < 0)
		return errbuf_errno(err, "%s", s->dir);
	/* Data files first, so that orphan indexes can be told apart. */
	for (int i = 0; i < n && r == 0; i++) {
		const char *nm = names[i]->d_name;
		HistName hn;
		HistSeg *g;

		histfmt_name_parse(nm, strlen(nm), &hn);
		if (hn.seq >= s->next_seq && hn.kind != HIST_FILE_OTHER)
			s->next_seq = hn.seq + 1;
		if (hn.kind != HIST_FILE_DATA)
			continue;
		g = hist_seg_new(hn.seq);
		if (!g) {
			r = errbuf_set(err, -ENOMEM, "out of memory listing %s", s->dir);
			break;
		}
		g->sealed = true;
		g->first_ts = hn.first_ts;
		g->last_ts = hn.last_ts;
		memcpy(g->name, nm, strlen(nm) + 1); /* < HISTFMT_NAME_MAX: parsed as ours */
		pthread_mutex_lock(&s->lock);
		r = hist_catalog_insert(s, g);
		pthread_mutex_unlock(&s->lock);
		if (r < 0) {
			seg_free(g);
			r = errbuf_set(err, r, "out of memory listing %s", s->dir);
		}
	}
	for (int i = 0; i < n && r == 0 && !s->cfg.read_only; i++) {
		const char *nm = names[i]->d_name;
		char data[HISTFMT_NAME_MAX];
		bool orphan = true;
		HistName hn;

		histfmt_name_parse(nm, strlen(nm), &hn);
		if (hn.kind == HIST_FILE_INDEX) {
			histfmt_name(hn.seq, hn.first_ts, hn.last_ts, false, data);
			for (size_t k = 0; k < s->n_segs && orphan; k++)
				orphan = strcmp(s->segs[k]->name, data) != 0;
		}
		if (hn.kind != HIST_FILE_TEMP && !(hn.kind == HIST_FILE_INDEX && orphan))
			continue;
		r = hist_path(s, nm, path, sizeof(path), err);
		if (r < 0)
			break;
		r = s->io->unlink(s->io, path);
		if (r < 0 && r != -ENOENT) {
			r = errbuf_set(err, r, "recovery: cannot remove %s: %s", path, strerror(-r));
			break;
		}
		r = 0;
		if (hn.kind == HIST_FILE_TEMP)
			rep->removed_temp++;
		else
			rep->removed_orphan++;
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

/* Recovery step 3 (writer stores): every data file loaded and checked. */
static int recover_segments(HistStore *s, HistOpenReport *rep, ErrBuf *err)
{
	size_t i = 0;

	while (i < s->n_segs) {
		HistSeg *g = s->segs[i];
		ErrBuf lerr;
		int write_err = 0, r = seg_load(s, g, rep, &write_err, &lerr);

		if (r == -ENODATA || (r < 0 && r != -ENOMEM)) {
			if (r != -ENODATA)
				rep->unreadable++;
			pthread_mutex_lock(&s->lock);
			hist_catalog_remove(s, g);
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		if (r == -ENOMEM)
			return errbuf_set(err, r, "%s", lerr.msg);
		if (write_err < 0 && !s->suspended)
			hist_suspend(s, write_err, &lerr);
		i++;
	}
	return 0;
}

int hist_open(const HistConfig *cfg, HistStore **ret, HistOpenReport *ret_report, ErrBuf *err)
{
	HistOpenReport rep = {0};
	HistStore *s;
	char path[PATH_MAX];
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return errbuf_set(err, -ENOMEM, "out of memory");
	s->cfg = *cfg;
	s->lock_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->wlock, NULL);
	r = apply_defaults(&s->cfg, err);
	if (r < 0)
		goto fail;
	s->dir = strdup(cfg->dir);
	if (!s->dir) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	s->cfg.dir = s->dir;
	s->io = cfg->io ? cfg->io : &io_posix;
	s->next_seq = 1;
	if (!s->cfg.read_only) {
		if (mkdir(s->dir, 0700) < 0 && errno != EEXIST) {
			r = errbuf_errno(err, "cannot create %s", s->dir);
			goto fail;
		}
		r = hist_path(s, ".lock", path, sizeof(path), err);
		if (r < 0)
			goto fail;
		s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (s->lock_fd < 0) {
			r = errbuf_errno(err, "%s", path);
			goto fail;
		}
		if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
			r = errno == EWOULDBLOCK
				    ? errbuf_set(err, -EBUSY, "%s: another recorder uses this history", s->dir)
				    : errbuf_errno(err, "%s: flock", path);
			goto fail;
		}
	}
	r = scan_dir(s, &rep, err);
	if (r == -ENOENT && s->cfg.read_only)
		r = errbuf_set(err, -ENOENT, "%s: no such history directory", s->dir);
	if (r < 0)
		goto fail;
	if (s->n_segs > 1)
		qsort(s->segs, s->n_segs, sizeof(*s->segs), cmp_seq);
	if (!s->cfg.read_only) {
		r = recover_segments(s, &rep, err);
		if (r < 0)
			goto fail;
	}
	rep.segments = (unsigned)s->n_segs;
	if (ret_report)
		*ret_report = rep;
	*ret = s;
	return 0;
fail:
	hist_free(s);
	return r;
}

void hist_free(HistStore *s)
{
	if (!s)
		return;
	hist_writer_free(s);
	pthread_mutex_lock(&s->lock);
	while (s->n_segs > 0)
		hist_catalog_remove(s, s->segs[s->n_segs - 1]);
	pthread_mutex_unlock(&s->lock);
	free(s->segs);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->wlock);
	free(s->dir);
	free(s);
}

int hist_close(HistStore *s, ErrBuf *err)
{
	int r = 0;

	if (!s)
		return 0;
	if (!s->cfg.read_only) {
		pthread_mutex_lock(&s->wlock);
		r = hist_seal_all(s, err);
		pthread_mutex_unlock(&s->wlock);
	}
	hist_free(s);
	return r;
}

/* ------------------------------------------------------------ status */

int hist_suspend(HistStore *s, int code, const ErrBuf *why)
{
	pthread_mutex_lock(&s->lock);
	s->suspended = true;
	s->error = code;
	s->error_msg = *why;
	pthread_mutex_unlock(&s->lock);
	s->retry_at = s->now + HIST_RETRY_NS;
	return code;
}

/* ------------------------------------------------------------ retention */

static int cmp_age(const void *a, const void *b)
{
	const HistSeg *x = *(HistSeg *const *)a, *y = *(HistSeg *const *)b;

	if (x->last_ts != y->last_ts)
		return x->last_ts < y->last_ts ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int hist_retention(HistStore *s, ErrBuf *err)
{
	HistSeg **sealed = NULL, **victims = NULL;
	size_t n = 0, nv = 0;
	uint64_t total = 0;
	bool by_age = s->cfg.max_age_ns != HIST_NO_LIMIT && s->now > 0;
	int r = 0;

	if (s->cfg.read_only || (!by_age && s->cfg.max_bytes == HIST_NO_LIMIT))
		return 0;
	pthread_mutex_lock(&s->lock);
	sealed = malloc((s->n_segs + 1) * sizeof(*sealed));
	victims = malloc((s->n_segs + 1) * sizeof(*victims));
	if (!sealed || !victims) {
		pthread_mutex_unlock(&s->lock);
		free(sealed);
		free(victims);
		return errbuf_set(err, -ENOMEM, "retention: out of memory");
	}
	for (size_t i = 0; i < s->n_segs; i++) {
		total += s->segs[i]->disk_bytes;
		if (s->segs[i]->sealed)
			sealed[n++] = s->segs[i];
	}
	qsort(sealed, n, sizeof(*sealed), cmp_age);
	/* The newest sealed segment (last) is never deleted. */
	for (size_t i = 0; i + 1 < n; i++) {
		HistSeg *g = sealed[i];
		bool old = by_age && s->now > g->last_ts && s->now - g->last_ts > s->cfg.max_age_ns;
		bool big = s->cfg.max_bytes != HIST_NO_LIMIT && total > s->cfg.max_bytes;

		if (!old && !big)
			break; /* oldest first: what is left is newer and fits */
		total -= g->disk_bytes;
		g->refs++; /* ours, until its files are gone */
		hist_catalog_remove(s, g);
		victims[nv++] = g;
	}
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < nv; i++) {
		HistSeg *g = victims[i];
		char name[HISTFMT_NAME_MAX], path[PATH_MAX];
		int k;

		/* Data first: a crash in between leaves an orphan index, which
		 * recovery removes; the space comes back at once. */
		for (int idx = 0; idx < 2; idx++) {
			histfmt_name(g->seq, g->first_ts, g->last_ts, idx == 1, name);
			if (hist_path(s, idx ? name : g->name, path, sizeof(path), err) < 0)
				continue;
			k = s->io->unlink(s->io, path);
			if (k < 0 && k != -ENOENT && r == 0)
				r = errbuf_set(err, k, "retention: cannot remove %s: %s", path, strerror(-k));
		}
		hist_seg_unref(s, g);
	}
	free(sealed);
	free(victims);
	return r;
}

/* ------------------------------------------------------------ statistics */

int hist_stats(HistStore *s, HistStats *ret, ErrBuf *err)
{
	HistStats st = {0};
	HistSeg **segs;
	size_t n;

	/* Read-only stores load what was not needed yet (outside the lock). */
	pthread_mutex_lock(&s->lock);
	segs = malloc((s->n_segs + 1) * sizeof(*segs));
	if (!segs) {
		pthread_mutex_unlock(&s->lock);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	n = s->n_segs;
	for (size_t i = 0; i < n; i++) {
		segs[i] = s->segs[i];
		segs[i]->refs++;
	}
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < n; i++)
		if (segs[i]->sealed)
			hist_seg_load(s, segs[i], NULL);
	pthread_mutex_lock(&s->lock);
	st.first_ts = UINT64_MAX;
	for (size_t i = 0; i < n; i++) {
		const HistSeg *g = segs[i];

		if (g->unreadable)
			continue;
		if (g->sealed)
			st.segments++;
		else
			st.open_segments++;
		st.disk_bytes += g->disk_bytes;
		st.packets += g->info.packets;
		st.bytes += g->info.bytes;
		st.wire_bytes += g->info.wire_bytes;
		if (g->info.packets > 0) {
			st.first_ts = g->info.first_ts < st.first_ts ? g->info.first_ts : st.first_ts;
			st.last_ts = g->info.last_ts > st.last_ts ? g->info.last_ts : st.last_ts;
		}
	}
	if (st.first_ts == UINT64_MAX)
		st.first_ts = 0;
	st.dropped = s->dropped;
	st.unreadable = s->unreadable;
	st.recording = !s->cfg.read_only && !s->suspended;
	st.error = s->suspended ? s->error : 0;
	if (s->suspended)
		memcpy(st.error_msg, s->error_msg.msg, sizeof(st.error_msg));
	for (size_t i = 0; i < n; i++)
		hist_seg_unref_locked(s, segs[i]);
	pthread_mutex_unlock(&s->lock);
	free(segs);
	*ret = st;
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * Downloads. A full capture: Cloudflare only points at the bucket; pcapd also
 * serves one Wireshark-ready file, the agents' objects merged by time. A sample:
 * the agents' answers merged by time, the newest packet_limit of them kept. The
 * merge is written once to DATA/downloads/<id>.pcap (temporary name, fsync,
 * rename) and served from there afterwards; a finished job never changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/io.h"
#include "controller/service.h"
#include "pcap/merge.h"
#include "pcap/reader.h"
#include "pcap/writer.h"

static int open_cached(const char *path, int *ret_fd, uint64_t *ret_len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	*ret_fd = fd;
	*ret_len = (uint64_t)st.st_size;
	return 0;
}

/* Copies the records of in after the first `skip` into out_fd, same format
 * and interfaces. */
static int copy_tail(const char *in, uint64_t skip, int out_fd, ErrBuf *err)
{
	PcapWriterConfig wc = {0};
	PcapInterfaceInfo ii;
	PcapReader *rd = NULL;
	PcapWriter *w = NULL;
	PcapBatch *b = NULL;
	PcapRecord rec;
	uint64_t seen = 0;
	uint32_t nif;
	int r;

	r = pcaprd_open(in, &rd, err);
	if (r < 0)
		return r;
	/* The interfaces are known once the first record is read. */
	r = pcaprd_next(rd, &rec, err);
	if (r <= 0)
		goto out;
	wc.format = pcaprd_format(rd);
	r = pcaprd_interface_info(rd, 0, &ii);
	if (r < 0)
		goto out;
	wc.linktype = ii.linktype;
	wc.snaplen = ii.snaplen;
	r = pcapwr_new(out_fd, &wc, &w, err);
	if (r < 0)
		goto out;
	nif = pcaprd_interface_count(rd);
	for (uint32_t i = 1; i < nif && r >= 0; i++) {
		uint32_t id;

		r = pcaprd_interface_info(rd, i, &ii);
		if (r >= 0)
			r = pcapwr_add_interface(w, ii.linktype, ii.snaplen, NULL, &id, err);
	}
	if (r >= 0)
		r = pcapwr_batch_new(w, &b);
	while (r > 0 || (r >= 0 && seen == 0)) {
		if (seen++ >= skip) {
			struct iovec part = {.iov_base = (void *)rec.data, .iov_len = rec.caplen};

			r = pcapwr_queue_copy(b, rec.ifid, rec.ts_ns, rec.origlen, &part, 1);
			if (r < 0)
				break;
		}
		r = pcaprd_next(rd, &rec, err);
	}
	if (r >= 0)
		r = pcapwr_flush(b, err);
	pcapwr_batch_free(b);
	if (r >= 0) {
		r = pcapwr_finish(w, false, err);
		w = NULL;
	}
out:
	pcapwr_free(w);
	pcaprd_free(rd);
	return r < 0 ? r : 0;
}

/* Publishes the file behind fd (named tmp) as out: fsync, rename, fsync dir. */
static int publish(int fd, const char *tmp, const char *out, ErrBuf *err)
{
	if (fsync(fd) < 0)
		return errbuf_errno(err, "fsync %s", tmp);
	if (rename(tmp, out) < 0)
		return errbuf_errno(err, "rename %s", out);
	return io_fsync_parent_dir(&io_posix, out);
}

/* Merges the objects named in paths into the cache file at out; with keep > 0,
 * only the newest `keep` records (a sample's packet_limit across agents: each
 * agent answered its newest `keep`, of them all the newest `keep` stay). */
static int merge_to(const char *const *paths, size_t n, const char *dir, const char *out, uint64_t keep, ErrBuf *err)
{
	MergeOptions opt = {.format = -1, .out_name = out};
	PcapMerge *m = NULL;
	MergeStats st;
	char tmp[4096], tmp2[4096];
	int fd = -1, fd2 = -1, r;

	r = snprintf(tmp, sizeof(tmp), "%s/.merge-XXXXXX", dir);
	if (r < 0 || (size_t)r >= sizeof(tmp))
		return errbuf_set(err, -ENAMETOOLONG, "download path too long");
	memcpy(tmp2, tmp, sizeof(tmp));
	r = pcapmerge_open(paths, n, &opt, &m, err);
	if (r < 0)
		return r;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = errbuf_errno(err, "cannot create %s", tmp);
		goto out;
	}
	r = pcapmerge_write(m, fd, &st, err);
	if (r < 0)
		goto fail;
	if (!keep || st.packets <= keep) {
		r = publish(fd, tmp, out, err);
		if (r < 0)
			goto fail;
		goto out;
	}
	fd2 = mkostemp(tmp2, O_CLOEXEC);
	if (fd2 < 0) {
		r = errbuf_errno(err, "cannot create %s", tmp2);
		goto fail;
	}
	r = copy_tail(tmp, st.packets - keep, fd2, err);
	if (r >= 0)
		r = publish(fd2, tmp2, out, err);
	if (r < 0)
		unlink(tmp2);
fail:
	unlink(tmp); /* published or not, the full merge goes */
out:
	if (fd2 >= 0)
		close(fd2);
	if (fd >= 0)
		close(fd);
	pcapmerge_free(m);
	return r;
}

int service_job_download(Service *s, const char *account, const char *id, int *ret_fd, uint64_t *ret_len,
			 JobStatus *ret_status, ErrBuf *err)
{
	char dir[4096], out[4200], sdir[4096];
	char(*paths)[4096] = NULL;
	const char **argv = NULL;
	JobPart *parts = NULL;
	Bucket *b = NULL;
	size_t n = 0, k = 0;
	Job j = {0};
	int r;

	r = db_job_get(service_db(s), account, id, &j, err);
	if (r < 0)
		return r;
	*ret_status = j.status;
	if (j.status == JOB_FAILED) {
		r = errbuf_set(err, -ENODATA, "%s", j.error_message ? j.error_message : "failed");
		goto out;
	}
	if (j.status != JOB_SUCCESS) {
		r = errbuf_set(err, -EAGAIN, "capture is %s", job_status_to_string(j.status));
		goto out;
	}
	r = service_data_path(s, "downloads", dir, sizeof(dir), err);
	if (r < 0)
		goto out;
	r = snprintf(out, sizeof(out), "%s/%s.pcap", dir, j.id);
	if (r < 0 || (size_t)r >= sizeof(out)) {
		r = errbuf_set(err, -ENAMETOOLONG, "download path too long");
		goto out;
	}
	if (open_cached(out, ret_fd, ret_len) == 0) {
		r = 0;
		goto out;
	}
	r = db_part_list(service_db(s), id, &parts, &n, err);
	if (r < 0)
		goto out;
	if (j.type == JOB_FULL) {
		r = bucket_open(j.destination_conf, service_buckets(s), &b, err);
		if (r < 0)
			goto out;
	} else {
		r = service_data_path(s, "samples", sdir, sizeof(sdir), err);
		if (r < 0)
			goto out;
	}
	paths = calloc(n ? n : 1, sizeof(*paths));
	argv = calloc(n ? n : 1, sizeof(*argv));
	if (!paths || !argv) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (parts[i].state != PART_DONE || !parts[i].object)
			continue;
		if (b) {
			r = bucket_local_path(b, parts[i].object, paths[k], sizeof(paths[k]), err);
		} else {
			r = snprintf(paths[k], sizeof(paths[k]), "%s/%s/%s", sdir, j.id, parts[i].object);
			r = r < 0 || (size_t)r >= sizeof(paths[k]) ? errbuf_set(err, -ENAMETOOLONG, "path too long")
								   : 0;
		}
		if (r < 0)
			goto out;
		argv[k] = paths[k];
		k++;
	}
	if (k == 0) {
		r = errbuf_set(err, -ENODATA, "no agent delivered a file");
		goto out;
	}
	r = merge_to(argv, k, dir, out, j.type == JOB_SIMPLE ? j.packet_limit : 0, err);
	if (r >= 0) {
		r = open_cached(out, ret_fd, ret_len);
		if (r < 0)
			errbuf_set(err, r, "cannot open %s: %s", out, strerror(-r));
	}
out:
	bucket_free(b);
	free(argv);
	free(paths);
	parts_free(parts, n);
	job_done(&j);
	return r;
}

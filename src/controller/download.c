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
#include "controller/service-int.h"
#include "pcap/merge.h"

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

/* Merges the objects named in paths into the cache file at out (temporary
 * name, fsync, rename, fsync dir), leaving out the oldest `skip` records. */
static int merge_to(const char *const *paths, size_t n, const char *dir, const char *out, uint64_t skip, ErrBuf *err)
{
	MergeOptions opt = {.format = -1, .out_name = out, .skip_first = skip};
	PcapMerge *m = NULL;
	MergeStats st;
	char tmp[4096];
	int fd = -1, r;

	r = snprintf(tmp, sizeof(tmp), "%s/.merge-XXXXXX", dir);
	if (r < 0 || (size_t)r >= sizeof(tmp))
		return errbuf_set(err, -ENAMETOOLONG, "download path too long");
	r = pcapmerge_open(paths, n, &opt, &m, err);
	if (r < 0)
		return r;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = errbuf_errno(err, "cannot create %s", tmp);
		goto out;
	}
	r = pcapmerge_write(m, fd, &st, err);
	if (r >= 0 && fsync(fd) < 0)
		r = errbuf_errno(err, "fsync %s", tmp);
	if (r >= 0 && rename(tmp, out) < 0)
		r = errbuf_errno(err, "rename %s", out);
	if (r >= 0)
		r = io_fsync_parent_dir(&io_posix, out);
	if (r < 0)
		unlink(tmp);
out:
	if (fd >= 0)
		close(fd);
	pcapmerge_free(m);
	return r;
}

/* Merges the job's delivered objects into out (the cache file in dir). */
static int merge_job(Service *s, const Job *j, const char *dir, const char *out, ApiError *e)
{
	char sdir[4096];
	char(*paths)[4096] = NULL;
	const char **argv = NULL;
	JobPart *parts = NULL;
	ErrBuf err = {{0}};
	Bucket *b = NULL;
	size_t n = 0, k = 0;
	uint64_t total = 0, skip = 0;
	int r;

	r = db_part_list(service_db(s), j->id, &parts, &n, &err);
	if (r < 0)
		goto out;
	if (j->type == JOB_FULL && !job_bucket(j)) {
		r = apierror_set(e, API_ERR_CONFLICT, "id",
				 "capture has no bucket output to download from; it wrote %s on each agent",
				 j->n_outputs ? j->outputs[0].target : "nothing");
		goto done;
	}
	if (j->type == JOB_FULL)
		r = bucket_open(job_bucket(j), service_buckets(s), &b, &err);
	else
		r = service_data_path(s, "samples", sdir, sizeof(sdir), &err);
	if (r < 0)
		goto out;
	paths = calloc(n ? n : 1, sizeof(*paths));
	argv = calloc(n ? n : 1, sizeof(*argv));
	if (!paths || !argv) {
		r = errbuf_set(&err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (parts[i].state != PART_DONE || !parts[i].object)
			continue;
		if (b) {
			r = bucket_local_path(b, parts[i].object, paths[k], sizeof(paths[k]), &err);
		} else {
			/* Where service_sample_store() put it: named by the agent
			 * (a registered name), never by anything an agent sent. */
			r = snprintf(paths[k], sizeof(paths[k]), "%s/%s/%s.pcap", sdir, j->id, parts[i].agent);
			r = r < 0 || (size_t)r >= sizeof(paths[k]) ? errbuf_set(&err, -ENAMETOOLONG, "path too long")
								   : 0;
		}
		if (r < 0)
			goto out;
		argv[k] = paths[k];
		total += parts[i].packets;
		k++;
	}
	if (k == 0) {
		r = apierror_set(e, API_ERR_CONFLICT, "id", "capture failed: no agent delivered a file");
		goto done;
	}
	/* A sample keeps the newest packet_limit of all answers: each agent sent
	 * its newest packet_limit and the part holds its count. */
	if (j->type == JOB_SIMPLE && total > j->packet_limit)
		skip = total - j->packet_limit;
	r = merge_to(argv, k, dir, out, skip, &err);
out:
	if (r < 0)
		service_internal(e, r, &err);
done:
	bucket_free(b);
	free(argv);
	free(paths);
	parts_free(parts, n);
	return r;
}

int service_job_download(Service *s, const char *account, const char *id, int *ret_fd, uint64_t *ret_len, ApiError *e)
{
	char dir[4096], out[4200];
	ErrBuf err = {{0}};
	Job j = {0};
	int r;

	r = service_job_get(s, account, id, &j, NULL, NULL, e);
	if (r < 0)
		return r;
	if (j.status == JOB_FAILED) {
		r = apierror_set(e, API_ERR_CONFLICT, "id", "capture failed: %s",
				 j.error_message ? j.error_message : "failed");
		goto out;
	}
	if (j.status != JOB_SUCCESS) {
		r = apierror_set(e, API_ERR_CONFLICT, "id",
				 "capture is %s; it can be downloaded once its status is success",
				 job_status_to_string(j.status));
		goto out;
	}
	r = service_data_path(s, "downloads", dir, sizeof(dir), &err);
	if (r >= 0) {
		r = snprintf(out, sizeof(out), "%s/%s.pcap", dir, j.id);
		r = r < 0 || (size_t)r >= sizeof(out) ? errbuf_set(&err, -ENAMETOOLONG, "download path too long") : 0;
	}
	if (r < 0) {
		service_internal(e, r, &err);
		goto out;
	}
	if (open_cached(out, ret_fd, ret_len) == 0)
		goto out;
	r = merge_job(s, &j, dir, out, e);
	if (r >= 0) {
		r = open_cached(out, ret_fd, ret_len);
		if (r < 0)
			apierror_set(e, API_ERR_INTERNAL, NULL, "cannot open %s: %s", out, strerror(-r));
	}
out:
	job_done(&j);
	return r;
}

/* SPDX-License-Identifier: MIT */
/*
 * Named jobs (see service.h): the Azure dialect's resources are captures with
 * a name (group, watcher, name). A name is looked up, listed and taken away
 * here; creating a named job is service_job_create (the database keeps names
 * unique). Deleting a resource never deletes the capture: it stays in the
 * account's list, with its counters, as Azure leaves the capture's files.
 */
#include <errno.h>
#include <string.h>

#include "controller/service-int.h"

int service_job_find_named(Service *s, const char *account, const JobName *n, Job *ret, JobPart **ret_parts,
			   size_t *ret_n, ApiError *e)
{
	ErrBuf err = {{0}};
	JobPart *parts = NULL;
	size_t np = 0;
	Job j = {0};
	int r;

	r = db_job_find_named(service_db(s), account, n, &j, &err);
	if (r == -ENOENT)
		return apierror_set(e, API_ERR_NOT_FOUND, "name", "no capture named %s in %s/%s", n->name, n->group,
				    n->watcher);
	if (r < 0)
		return service_internal(e, r, &err);
	if (ret_parts) {
		r = db_part_list(service_db(s), j.id, &parts, &np, &err);
		if (r < 0) {
			job_done(&j);
			return service_internal(e, r, &err);
		}
		*ret_parts = parts;
		*ret_n = np;
	}
	*ret = j;
	return 0;
}

int service_job_list_named(Service *s, const char *account, const char *group, const char *watcher,
			   const JobCursor *after, size_t limit, Job **ret, size_t *ret_n, ApiError *e)
{
	ErrBuf err = {{0}};
	int r = db_job_list_named(service_db(s), account, group, watcher, after, limit, ret, ret_n, &err);

	return r < 0 ? service_internal(e, r, &err) : 0;
}

int service_job_delete_named(Service *s, const char *account, const JobName *n, Job *ret, ApiError *e)
{
	ErrBuf err = {{0}};
	Job j = {0}, stopped = {0};
	int r;

	r = service_job_find_named(s, account, n, &j, NULL, NULL, e);
	if (r < 0)
		return r;
	/* A finished capture has nothing to stop (API_ERR_CONFLICT): fine. */
	if (!job_status_terminal(j.status)) {
		r = service_job_stop(s, account, j.id, &stopped, e);
		if (r < 0 && e->kind != API_ERR_CONFLICT)
			goto out;
		if (r == 0) {
			job_done(&j);
			j = stopped;
			memset(&stopped, 0, sizeof(stopped));
		}
	}
	r = db_job_unname(service_db(s), account, j.id, &err);
	/* -ENOENT: a concurrent delete took the name first; the outcome is the same. */
	if (r < 0 && r != -ENOENT) {
		service_internal(e, r, &err);
		goto out;
	}
	service_jobs_changed(s);
	*ret = j;
	memset(&j, 0, sizeof(j));
	r = 0;
out:
	job_done(&stopped);
	job_done(&j);
	return r;
}

int service_job_gathered(Service *s, const char *account, const char *id, int64_t since_real_ns, bool *ret_gathered,
			 Job *ret, JobPart **ret_parts, size_t *ret_n, ApiError *e)
{
	JobPart *parts = NULL;
	bool gathered = true;
	size_t n = 0;
	Job j = {0};
	int r;

	r = service_job_get(s, account, id, &j, &parts, &n, e);
	if (r < 0)
		return r;
	for (size_t i = 0; gathered && !job_status_terminal(j.status) && i < n; i++) {
		const char *agent = parts[i].agent;

		/* Only a capturing or delivering part (running, captured,
		 * uploading) has news: an assigned one has nothing to say yet; a
		 * final one has said it. */
		if (parts[i].state == PART_ASSIGNED || part_state_terminal(parts[i].state) ||
		    !registry_online(s->reg, agent, (int64_t)now_monotonic_ns(), s->cfg.agent_timeout_ns))
			continue;
		gathered = registry_reported_since(s->reg, agent, since_real_ns);
	}
	*ret_gathered = gathered;
	*ret = j;
	if (ret_parts) {
		*ret_parts = parts;
		*ret_n = n;
	} else {
		parts_free(parts, n);
	}
	return 0;
}

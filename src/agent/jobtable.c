/* SPDX-License-Identifier: MIT */
/* Linear scans: the table holds at most JOBTABLE_MAX jobs and is touched a few
 * times per second. */
#include <errno.h>
#include <string.h>

#include "agent/jobtable.h"

void jobtable_init(JobTable *t)
{
	memset(t, 0, sizeof(*t));
}

static bool same(const char *a, const char *b)
{
	return strncmp(a, b, JOB_ID_LEN + 1) == 0;
}

bool jobtable_recent(const JobTable *t, const char *id)
{
	for (size_t i = 0; i < t->n_recent; i++)
		if (same(t->recent[i], id))
			return true;
	return false;
}

void jobtable_forget_recent(JobTable *t, const char *id)
{
	for (size_t i = 0; i < t->n_recent; i++)
		if (same(t->recent[i], id))
			t->recent[i][0] = '\0'; /* matches no id any more */
}

int jobtable_add(JobTable *t, const char *id, void *job)
{
	if (strlen(id) != JOB_ID_LEN)
		return -EINVAL;
	if (jobtable_get(t, id))
		return -EEXIST;
	if (jobtable_recent(t, id))
		return -EALREADY;
	if (t->n == JOBTABLE_MAX)
		return -ENOSPC;
	memcpy(t->v[t->n].id, id, JOB_ID_LEN + 1);
	t->v[t->n].job = job;
	t->n++;
	return 0;
}

void *jobtable_get(const JobTable *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (same(t->v[i].id, id))
			return t->v[i].job;
	return NULL;
}

void *jobtable_take(JobTable *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++) {
		void *job;

		if (!same(t->v[i].id, id))
			continue;
		job = t->v[i].job;
		t->v[i] = t->v[t->n - 1]; /* order does not matter */
		t->n--;
		memcpy(t->recent[t->recent_next], id, JOB_ID_LEN + 1);
		t->recent_next = (t->recent_next + 1) % JOBTABLE_RECENT;
		if (t->n_recent < JOBTABLE_RECENT)
			t->n_recent++;
		return job;
	}
	return NULL;
}

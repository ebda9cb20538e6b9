/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The agent's table of jobs, keyed by id. A controller may deliver a start
 * twice (a new session resends what was not acknowledged, and a poll answer
 * can be lost after the controller sent it), so starting is idempotent: an id
 * the table holds, or one finished and acknowledged recently, is not started
 * again. Pure bookkeeping: entries carry an opaque pointer; locking is the
 * caller's.
 */

#include <stdbool.h>
#include <stddef.h>

#include "model/job.h"

#define JOBTABLE_MAX 256u    /* jobs held at once (running and unacknowledged) */
#define JOBTABLE_RECENT 512u /* acknowledged ids remembered, oldest forgotten first */

typedef struct JobTableEntry {
	char id[JOB_ID_LEN + 1];
	void *job;
} JobTableEntry;

typedef struct JobTable {
	JobTableEntry v[JOBTABLE_MAX];
	size_t n;
	char recent[JOBTABLE_RECENT][JOB_ID_LEN + 1]; /* ring of acknowledged ids */
	size_t recent_next, n_recent;
} JobTable;

void jobtable_init(JobTable *t);
/* Adds id → job. -EEXIST if id is in the table, -EALREADY if it finished and
 * was acknowledged recently, -ENOSPC when the table is full. */
int jobtable_add(JobTable *t, const char *id, void *job);
/* The job for id, or NULL. */
void *jobtable_get(const JobTable *t, const char *id);
/* Removes id and remembers it as acknowledged; returns its job or NULL. */
void *jobtable_take(JobTable *t, const char *id);
/* Drops id from the acknowledged ones: a retried upload (a start with a
 * greater attempt) of a job that ended upload_failed runs again. */
void jobtable_forget_recent(JobTable *t, const char *id);
/* Whether id was taken recently. */
bool jobtable_recent(const JobTable *t, const char *id);

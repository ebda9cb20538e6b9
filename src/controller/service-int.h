/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared inside src/controller only. */

#include "controller/service.h"

/* Loads a job and its parts, lets fn change them, aggregates and stores, all
 * under the service's jobs lock. fn returns true if it changed something.
 * ret_job (may be NULL) gets the job after the change. */
typedef bool (*PartsFn)(Job *j, JobPart *parts, size_t n, void *arg);
int update_job(Service *s, const char *account, const char *id, PartsFn fn, void *arg, Job *ret_job, ErrBuf *err);

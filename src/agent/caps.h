/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The agent's privileges: it opens a new packet socket for every capture, so
 * it keeps CAP_NET_RAW (permitted and effective) for its whole life, and
 * nothing else: every other capability leaves the permitted, effective,
 * inheritable and ambient sets, and the bounding set too when the process may
 * change it (CAP_SETPCAP, i.e. when started as root); no_new_privs is set so
 * that nothing it could execute gains privileges back.
 *
 * Capabilities belong to threads on Linux and new threads inherit them: call
 * this before the process starts any thread.
 */

#include "common/util.h"

/* -EPERM with a message saying how to grant CAP_NET_RAW when the process does
 * not have it; other -errno on a failed system call. */
int agentcaps_restrict(ErrBuf *err);

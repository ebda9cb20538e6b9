/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * "-i all": the interfaces a capture on every interface uses, looked up anew
 * for each capture, since interfaces come and go (containers, VPNs) while the
 * agent runs.
 */

#include <stddef.h>

#include "common/util.h"

/* Every interface that is up (IFF_UP) and whose link type the capture engine
 * supports, in kernel index order: a malloc'd array of malloc'd names. -ENODEV
 * when there is none, -E2BIG past CAPTURE_MAX_IFACES. */
int ifaces_up(char ***ret, size_t *ret_n, ErrBuf *err);
void ifaces_free(char **v, size_t n); /* NULL is fine */

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/http: the listening sockets the server hands to
 * libmicrohttpd (MHD_OPTION_LISTEN_SOCKET).
 */

#include <stdbool.h>

#include "common/util.h"

/* A bound, listening, non-blocking socket for spec ("ADDR:PORT": an IPv4
 * literal, "[IPv6]", "localhost", or ""/"*" for every IPv4 address; "[::]"
 * is dual stack) into *ret_fd, *ret_v6 whether it is IPv6. -EINVAL naming
 * the address, or the system's errno (-EADDRINUSE, -EACCES, ...) with err. */
int http_listen_socket(const char *spec, bool *ret_v6, int *ret_fd, ErrBuf *err);

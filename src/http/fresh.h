/* SPDX-License-Identifier: MIT */
/*
 * Fresh connections: accepted, no request line yet. Internal to src/http
 * (http.c is the only user).
 *
 * Why: libmicrohttpd 0.9.75 keeps a connection whose time-out is the
 * daemon's default on a list sorted by last activity (it looks at its tail
 * only), and every other one on a "manual" list that it walks whole twice
 * per wake-up (MHD_get_timeout and the time-out sweep of MHD_epoll). So the
 * common case, a trusted agent connection kept alive, must have the default
 * time-out: the daemon's default is the trusted time-out, and a connection
 * gets the shorter untrusted one per connection. The earliest safe place to
 * set it is the first request line (MHD's URI log callback): setting it
 * from the connection-start hook breaks MHD 0.9.75's own clean-up when its
 * epoll_ctl(ADD) fails right after that hook (that path unlinks the
 * connection from the default list whatever list it is on).
 *
 * What this set adds: until its first request line, a connection is listed
 * here with the deadline connect + untrusted time-out, and a thread shuts
 * down the socket of each one that reaches its deadline (libmicrohttpd then
 * sees the hang-up and closes it). A silent connection is thus closed after
 * the untrusted time-out as before; the bound is now on the first request
 * line (TLS handshake included), counted from the connect, not on idleness.
 *
 * Invariants: a connection's entry is added by the connection-start hook and
 * freed by the connection-closed hook, both on the MHD worker thread that
 * owns the connection; libmicrohttpd closes the socket only after the
 * closed hook, so while an entry is listed (under the set's lock) its fd is
 * that connection's. The reaper only shuts a socket down, never closes it.
 */
#ifndef PCAPD_HTTP_FRESH_H
#define PCAPD_HTTP_FRESH_H

#include <stdbool.h>

#include "common/util.h"

typedef struct HttpFresh HttpFresh;         /* the set and its reaper thread */
typedef struct HttpFreshConn HttpFreshConn; /* one connection's entry */

/* Starts the reaper: connections added later are shut down timeout_s
 * seconds after their http_fresh_add() unless served first. */
int http_fresh_start(unsigned timeout_s, HttpFresh **ret, ErrBuf *err);
/* Stops the reaper and frees the set. Every entry must have been removed
 * (the daemons are stopped). Takes NULL. */
void http_fresh_free(HttpFresh *f);

/* A connection was accepted on socket fd: its entry, or NULL when out of
 * memory (the caller then shuts the socket down itself). */
HttpFreshConn *http_fresh_add(HttpFresh *f, int fd);
/* The connection's first request line is in: true the first time (the
 * caller then gives it the untrusted time-out), false afterwards. */
bool http_fresh_served(HttpFresh *f, HttpFreshConn *c);
/* The connection is closed: removes and frees its entry. Takes NULL. */
void http_fresh_remove(HttpFresh *f, HttpFreshConn *c);

#endif

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/db: the per-thread connections both backends keep. Each
 * thread that calls into a Db gets its own connection (opened by the backend
 * on first use) kept in a pthread key, so requests never share one and no
 * lock of ours is on their path; every connection is also on the registry,
 * so that a thread that exits closes its own (the key's destructor) and
 * dbtc_done closes what is left. dbtc_done must be called once no other
 * thread uses the Db or is exiting (the daemons join their workers first).
 *
 * A backend's connection struct starts with a DbThreadConn.
 */

#include <pthread.h>

#include "common/util.h"

typedef struct DbThreadConns DbThreadConns;

typedef struct DbThreadConn {
	DbThreadConns *owner;
	struct DbThreadConn *prev, *next; /* owner->head, under owner->lock */
} DbThreadConn;

struct DbThreadConns {
	pthread_key_t key;              /* this thread's DbThreadConn */
	pthread_mutex_t lock;           /* guards head */
	DbThreadConn *head;             /* every open connection */
	void (*close)(DbThreadConn *c); /* closes and frees one of the backend's connections */
};

/* 0, or -errno with err filled. */
int dbtc_init(DbThreadConns *tc, void (*close)(DbThreadConn *c), ErrBuf *err);
/* The calling thread's connection, or NULL when it has none yet. */
DbThreadConn *dbtc_get(DbThreadConns *tc);
/* Makes c the calling thread's connection. On failure (-errno, err filled)
 * the caller still owns c. */
int dbtc_add(DbThreadConns *tc, DbThreadConn *c, ErrBuf *err);
/* Closes every connection. */
void dbtc_done(DbThreadConns *tc);

/* SPDX-License-Identifier: MIT */
/*
 * The per-thread connection registry of db_threads.h.
 */
#include <errno.h>
#include <string.h>

#include "db/db_threads.h"

static void unlink_conn(DbThreadConns *tc, DbThreadConn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		tc->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* A thread exits: its connection goes with it. */
static void conn_destructor(void *p)
{
	DbThreadConn *c = p;
	DbThreadConns *tc = c->owner;

	pthread_mutex_lock(&tc->lock);
	unlink_conn(tc, c);
	pthread_mutex_unlock(&tc->lock);
	tc->close(c);
}

int dbtc_init(DbThreadConns *tc, void (*close)(DbThreadConn *c), ErrBuf *err)
{
	int r;

	memset(tc, 0, sizeof(*tc));
	tc->close = close;
	r = pthread_mutex_init(&tc->lock, NULL);
	if (r != 0)
		return errbuf_set(err, -r, "db: %s", strerror(r));
	r = pthread_key_create(&tc->key, conn_destructor);
	if (r != 0) {
		pthread_mutex_destroy(&tc->lock);
		return errbuf_set(err, -r, "db: creating the thread key: %s", strerror(r));
	}
	return 0;
}

DbThreadConn *dbtc_get(DbThreadConns *tc)
{
	return pthread_getspecific(tc->key);
}

int dbtc_add(DbThreadConns *tc, DbThreadConn *c, ErrBuf *err)
{
	int r = pthread_setspecific(tc->key, c);

	if (r != 0)
		return errbuf_set(err, -r, "db: keeping the thread's connection: %s", strerror(r));
	c->owner = tc;
	pthread_mutex_lock(&tc->lock);
	c->prev = NULL;
	c->next = tc->head;
	if (tc->head)
		tc->head->prev = c;
	tc->head = c;
	pthread_mutex_unlock(&tc->lock);
	return 0;
}

void dbtc_done(DbThreadConns *tc)
{
	DbThreadConn *c;

	/* After this no destructor runs for the key; the registry has them all. */
	pthread_key_delete(tc->key);
	pthread_mutex_lock(&tc->lock);
	c = tc->head;
	tc->head = NULL;
	pthread_mutex_unlock(&tc->lock);
	while (c) {
		DbThreadConn *next = c->next;

		tc->close(c);
		c = next;
	}
	pthread_mutex_destroy(&tc->lock);
}

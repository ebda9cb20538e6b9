/* SPDX-License-Identifier: MIT */
/* Fresh connections and their reaper: see fresh.h. */
#include "fresh.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

struct HttpFreshConn {
	HttpFreshConn *prev, *next; /* on HttpFresh's list while listed (under its lock) */
	uint64_t deadline_ns;       /* monotonic: shut down at this time unless served */
	int fd;
	bool listed; /* under the lock: neither served nor shut down yet */
	bool served; /* the worker thread's: the first request line came in */
};

struct HttpFresh {
	uint64_t timeout_ns;
	pthread_mutex_t lock;
	pthread_cond_t wake;        /* the list's head changed, or stopping */
	HttpFreshConn *head, *tail; /* by deadline: the timeout is one, so in order of adding */
	bool stopping;
	pthread_t thread;
};

static void unlink_conn(HttpFresh *f, HttpFreshConn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		f->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		f->tail = c->prev;
	c->prev = c->next = NULL;
	c->listed = false;
}

static void *reaper_main(void *arg)
{
	HttpFresh *f = arg;

	pthread_mutex_lock(&f->lock);
	while (!f->stopping) {
		uint64_t now = now_monotonic_ns();
		struct timespec ts;

		while (f->head && f->head->deadline_ns <= now) {
			HttpFreshConn *c = f->head;

			/* MHD sees the hang-up and closes the connection; its
			 * closed hook frees the entry (not listed any more). */
			shutdown(c->fd, SHUT_RDWR);
			unlink_conn(f, c);
		}
		if (!f->head) {
			pthread_cond_wait(&f->wake, &f->lock);
			continue;
		}
		ts.tv_sec = (time_t)(f->head->deadline_ns / 1000000000u);
		ts.tv_nsec = (long)(f->head->deadline_ns % 1000000000u);
		pthread_cond_timedwait(&f->wake, &f->lock, &ts);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

int http_fresh_start(unsigned timeout_s, HttpFresh **ret, ErrBuf *err)
{
	HttpFresh *f = calloc(1, sizeof(*f));
	pthread_condattr_t ca;
	int r;

	if (!f)
		return errbuf_set(err, -ENOMEM, "out of memory");
	f->timeout_ns = (uint64_t)timeout_s * 1000000000u;
	pthread_mutex_init(&f->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* deadlines from now_monotonic_ns() */
	pthread_cond_init(&f->wake, &ca);
	pthread_condattr_destroy(&ca);
	r = -pthread_create(&f->thread, NULL, reaper_main, f);
	if (r < 0) {
		pthread_cond_destroy(&f->wake);
		pthread_mutex_destroy(&f->lock);
		free(f);
		return errbuf_set(err, r, "starting the HTTP server's time-out thread: %s", strerror(-r));
	}
	*ret = f;
	return 0;
}

void http_fresh_free(HttpFresh *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stopping = true;
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	pthread_cond_destroy(&f->wake);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

HttpFreshConn *http_fresh_add(HttpFresh *f, int fd)
{
	HttpFreshConn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	pthread_mutex_lock(&f->lock);
	c->deadline_ns = now_monotonic_ns() + f->timeout_ns; /* under the lock: the list stays in order */
	c->prev = f->tail;
	if (f->tail)
		f->tail->next = c;
	else
		f->head = c;
	f->tail = c;
	c->listed = true;
	if (f->head == c)
		pthread_cond_signal(&f->wake); /* the reaper had nothing, or a later deadline */
	pthread_mutex_unlock(&f->lock);
	return c;
}

bool http_fresh_served(HttpFresh *f, HttpFreshConn *c)
{
	if (c->served)
		return false;
	c->served = true;
	pthread_mutex_lock(&f->lock);
	if (c->listed)
		unlink_conn(f, c);
	pthread_mutex_unlock(&f->lock);
	return true;
}

void http_fresh_remove(HttpFresh *f, HttpFreshConn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&f->lock);
	if (c->listed)
		unlink_conn(f, c);
	pthread_mutex_unlock(&f->lock);
	free(c);
}

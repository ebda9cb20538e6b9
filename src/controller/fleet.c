/* SPDX-License-Identifier: MIT */
/*
 * Several controllers over one database. Every controller is a stateless
 * replica: jobs, parts, sample answers, buckets and agents' last-seen live in
 * the database, and job changes are row-locked transactions there
 * (db_job_modify). What stays in a controller's memory is its own agents'
 * parked polls and what it delivered to them; this file keeps the rest in
 * step, with one thread and one database session of its own (db.h DbWatch):
 *
 *   notices   a change that gives agents work (a capture created or
 *             stopped, a retried upload) is sent as "<instance> wake
 *             <agent>,<agent>,..." (db_notify; as many names as a notice
 *             holds, so a sample for 1,000 agents is a few notices); every
 *             other controller wakes those agents' parked polls, which read
 *             their work from the database. Any notice also
 *             counts as a change of some job (list caches) and makes the
 *             lease holder look at samples' deadlines.
 *   agents    every persist interval (at most 3 s, what a stored row
 *             changes by at most), what the other controllers stored about
 *             agents (db_agent_list: last-seen, account, colo, history) is
 *             merged into the registry, so that dispatch, listings, /metrics
 *             and losses see every online agent. Each controller stores its
 *             own agents' registrations at once and their heartbeats
 *             (last-seen and history, at most every persist interval per
 *             agent: service_agent_persist) once a second, all in one
 *             statement (db_agent_beats).
 *             A revoked agent is forgotten the same way ("<instance> forget
 *             <agent>"), its row marked never seen.
 *   lease     housekeeping (lost agents, sample deadlines) runs on the
 *             controller that holds the lease LEASE_KEY (a session advisory
 *             lock in PostgreSQL: released when that controller's session
 *             ends, however it died); the others try to take it every
 *             second.
 *
 * When the watch's session breaks, this controller gives up the lease and
 * falls back to a short poll: every parked poll is answered once a second
 * (its agent polls again and reads the database) until a new session
 * listens, and once more then, for what was missed meanwhile.
 *
 * SQLite has no notices: one controller per SQLite database, which always
 * holds the lease and runs no fleet thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "controller/service-int.h"

#define LEASE_KEY 7243502                /* any number; MIGRATION_LOCK's neighbour */
#define WAIT_MS 200                      /* a wait for notices; also how soon the thread ends */
#define ROUND_NS ((int64_t)NSEC_PER_SEC) /* lease and agents, once a second */
#define PERSIST_MAX_NS (3 * (int64_t)NSEC_PER_SEC)
#define FLEET_BEATS_MAX 65536u /* heartbeats queued for one round (~5 MB) */

static int64_t mono(void)
{
	return (int64_t)now_monotonic_ns();
}

/* At most every 3 s, and at least four times per agent time-out, so that
 * another controller never takes an agent that reports for lost. */
static int64_t persist_ns(const Service *s)
{
	int64_t q = s->cfg.agent_timeout_ns / 4;

	return q < PERSIST_MAX_NS ? q : PERSIST_MAX_NS;
}

/* Sends the batch's names, if any. A lost notice costs the other
 * controllers' agents a poll's time-out at most (their polls end and read
 * the database). */
static void wake_flush(WakeBatch *b)
{
	ErrBuf err = {{0}};

	if (b->len > b->prefix)
		db_notify(service_db(b->s), b->text, &err);
	b->len = b->prefix;
	b->text[b->len] = '\0';
}

void service_wake_begin(Service *s, WakeBatch *b)
{
	b->s = s;
	b->prefix = b->len = (size_t)snprintf(b->text, sizeof(b->text), "%s wake ", s->instance);
}

void service_wake_add(WakeBatch *b, const char *agent)
{
	size_t n = strlen(agent);

	registry_wake(b->s->reg, agent);
	if (!b->s->shared)
		return;
	if (b->len + 1 + n >= sizeof(b->text))
		wake_flush(b);
	b->len += (size_t)snprintf(b->text + b->len, sizeof(b->text) - b->len, "%s%s", b->len > b->prefix ? "," : "",
				   agent);
}

void service_wake_end(WakeBatch *b)
{
	if (b->s->shared)
		wake_flush(b);
}

/* A heartbeat for the next round (beats_flush); -ENOMEM. A full queue (the
 * database stalled) drops it: the agent's next one comes within the persist
 * interval. */
static int beat_queue(Service *s, const char *name, int64_t now, char *history)
{
	AgentBeat *b;
	int r = 0;

	pthread_mutex_lock(&s->beats_lock);
	if (s->n_beats == FLEET_BEATS_MAX) {
		s->beats_dropped++;
		pthread_mutex_unlock(&s->beats_lock);
		free(history);
		return 0;
	}
	if (s->n_beats == s->cap_beats) {
		size_t cap = s->cap_beats ? 2 * s->cap_beats : 256;

		b = realloc(s->beats, cap * sizeof(*b));
		if (b) {
			s->beats = b;
			s->cap_beats = cap;
		}
	}
	if (s->n_beats < s->cap_beats) {
		b = &s->beats[s->n_beats++];
		snprintf(b->name, sizeof(b->name), "%s", name);
		b->seen_ns = now;
		b->history = history;
	} else {
		free(history);
		r = -ENOMEM;
	}
	pthread_mutex_unlock(&s->beats_lock);
	return r;
}

/* The round's heartbeats, in one statement. A failed write loses them: the
 * next beats come within the persist interval. */
static void beats_flush(Service *s)
{
	AgentBeat *v;
	size_t n, dropped;
	ErrBuf err = {{0}};

	pthread_mutex_lock(&s->beats_lock);
	v = s->beats;
	n = s->n_beats;
	dropped = s->beats_dropped;
	s->beats = NULL;
	s->n_beats = s->cap_beats = s->beats_dropped = 0;
	pthread_mutex_unlock(&s->beats_lock);
	if (dropped)
		log_warning("%zu agents' heartbeats dropped: %u were waiting for the database", dropped,
			    FLEET_BEATS_MAX);
	if (n && db_agent_beats(s->cfg.db, v, n, &err) < 0)
		log_warning("storing %zu agents' heartbeats: %s", n, err.msg);
	for (size_t i = 0; i < n; i++)
		free(v[i].history);
	free(v);
}

int service_agent_persist(Service *s, const AgentKey *k, const AgentReport *rep, ErrBuf *err)
{
	AgentRow row = {0};
	int64_t now = (int64_t)now_realtime_ns();
	char *history = NULL;
	int r;

	/* Alone on its database, a controller stores registrations only: no
	 * one else reads the heartbeats. */
	if (!rep->hello && (!s->shared || !registry_persist_due(s->reg, rep->name, mono(), persist_ns(s))))
		return 0;
	if (json_is_object(rep->history))
		history = json_dumps(rep->history, JSON_COMPACT);
	if (!rep->hello) {
		r = beat_queue(s, rep->name, now, history);
		return r < 0 ? errbuf_set(err, r, "out of memory") : 0;
	}
	snprintf(row.name, sizeof(row.name), "%s", rep->name);
	snprintf(row.colo, sizeof(row.colo), "%s", rep->colo);
	row.interfaces = (char *)rep->interfaces;
	row.version = (char *)rep->version;
	row.account = (char *)k->account;
	row.history = history;
	row.first_seen_ns = row.last_seen_ns = now;
	r = db_agent_upsert(s->cfg.db, &row, err);
	free(history);
	return r;
}

void service_agent_forget(Service *s, const char *name)
{
	ErrBuf err = {{0}};

	registry_forget(s->reg, name);
	if (s->keys)
		keycache_forget(s->keys, name);
	/* Never seen, whom it serves unknown: no controller merges it back
	 * (registry_merge), and each forgets it at the notice. */
	if (s->shared && db_agent_forget(s->cfg.db, s->instance, name, &err) < 0)
		log_warning("forgetting agent %s in the database: %s", name, err.msg);
}

/* Wakes the agents of a comma-separated list. */
static void wake_listed(Service *s, const char *list)
{
	while (*list) {
		const char *end = strchr(list, ',');
		size_t n = end ? (size_t)(end - list) : strlen(list);
		char name[AGENT_NAME_MAX + 1];

		if (n > 0 && n <= AGENT_NAME_MAX) {
			memcpy(name, list, n);
			name[n] = '\0';
			registry_wake(s->reg, name);
		}
		list += n + (end != NULL);
	}
}

/* Another controller's notice. */
static void on_notice(Service *s, const char *text)
{
	size_t n = strlen(s->instance);
	const char *agent;

	if (strncmp(text, s->instance, n) == 0 && text[n] == ' ')
		return; /* ours */
	atomic_fetch_add(&s->jobs_gen, 1);
	atomic_store(&s->samples_pending, 1); /* the lease holder looks (scan_lost) */
	if ((agent = strstr(text, " wake ")))
		wake_listed(s, agent + 6);
	else if ((agent = strstr(text, " forget ")) && agent[8]) {
		registry_forget(s->reg, agent + 8);
		keycache_forget(s->keys, agent + 8);
	}
}

static void merge_agents(Service *s)
{
	AgentRow *rows = NULL;
	ErrBuf err = {{0}};
	size_t n = 0;
	int64_t now_real = (int64_t)now_realtime_ns(), now_mono = mono();
	/* Agents seen since about when this controller started, as the
	 * registry of one controller would know them. */
	int64_t since = now_real - (now_mono - s->started_mono) - s->cfg.agent_timeout_ns;

	if (db_agent_list(s->cfg.db, &rows, &n, &err) < 0)
		return; /* again in a second */
	registry_merge(s->reg, rows, n, since, now_mono, now_real);
	agent_rows_free(rows, n);
}

static void *fleet_main(void *arg)
{
	Service *s = arg;
	DbWatch *w = NULL;
	int64_t last_round = 0, last_merge = 0;

	while (!atomic_load(&s->fleet_stopping)) {
		char text[DB_NOTICE_MAX + 1];
		ErrBuf err = {{0}};
		int64_t now = mono();
		int r;

		if (now - last_round >= ROUND_NS) {
			last_round = now;
			if (!w && db_watch_open(s->cfg.db, &w, &err) == 0) {
				/* Listening again: whatever happened meanwhile
				 * is looked at once more, and a revocation may
				 * have gone unheard. */
				keycache_hearing(s->keys, true);
				registry_wake_all(s->reg);
				atomic_fetch_add(&s->jobs_gen, 1);
			} else if (!w) {
				/* The short poll (see the top). */
				registry_wake_all(s->reg);
				atomic_fetch_add(&s->jobs_gen, 1);
			}
			r = w ? db_watch_lease(w, LEASE_KEY, &err) : 0;
			atomic_store(&s->leader, r == 1);
			if (r == -ECONNRESET) {
				keycache_hearing(s->keys, false);
				db_watch_close(w);
				w = NULL;
			}
			beats_flush(s);
			if (now - last_merge >= persist_ns(s)) {
				last_merge = now;
				merge_agents(s);
			}
		}
		if (!w) {
			struct timespec ts = {.tv_nsec = WAIT_MS * 1000000L};

			nanosleep(&ts, NULL);
			continue;
		}
		r = db_watch_next(w, WAIT_MS, text, &err);
		while (r == 1) {
			on_notice(s, text);
			r = db_watch_next(w, 0, text, &err);
		}
		if (r == -ECONNRESET) {
			atomic_store(&s->leader, false);
			keycache_hearing(s->keys, false);
			db_watch_close(w);
			w = NULL;
		}
	}
	atomic_store(&s->leader, false);
	db_watch_close(w);
	return NULL;
}

int service_fleet_start(Service *s, ErrBuf *err)
{
	char id[JOB_ID_LEN + 1];
	DbWatch *w = NULL;
	int r;

	r = db_watch_open(s->cfg.db, &w, err);
	if (r == -EOPNOTSUPP) {
		atomic_store(&s->leader, true); /* the only controller */
		return 0;
	}
	if (r < 0)
		return r;
	db_watch_close(w); /* the thread opens its own */
	r = keycache_new(&s->keys);
	if (r < 0)
		return errbuf_set(err, r, "out of memory");
	r = job_new_id(id);
	if (r < 0)
		return errbuf_set(err, r, "cannot draw a random id: %s", strerror(-r));
	snprintf(s->instance, sizeof(s->instance), "%.16s", id);
	s->shared = true;
	r = -pthread_create(&s->fleet, NULL, fleet_main, s);
	if (r < 0)
		return errbuf_set(err, r, "cannot start the fleet thread: %s", strerror(-r));
	s->fleet_running = true;
	return 0;
}

void service_fleet_stop(Service *s)
{
	if (!s->fleet_running)
		return;
	atomic_store(&s->fleet_stopping, true);
	pthread_join(s->fleet, NULL);
	s->fleet_running = false;
	beats_flush(s); /* the last round's, and the memory */
}

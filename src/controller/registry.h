/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The controller's memory of agents (internal to src/controller): who is
 * online, their parked long-poll, and what has been delivered to them in the
 * current session. Nothing here is durable: after a controller restart agents
 * re-register with their next report (hello or not) and undelivered work is
 * simply delivered again; the agent treats starts and stops idempotently.
 *
 * Several controllers over one database (fleet.c): each stores its agents'
 * last-seen (throttled, registry_persist_due) and merges what the others
 * stored (registry_merge), so that every controller knows every online agent
 * for dispatch, listings and loss; parked polls and deliveries stay with the
 * controller the agent polls.
 *
 * Missed wake-ups are impossible by a generation counter per agent: a poll
 * reads the generation, computes its work from the database without the lock,
 * and parks only if the generation is unchanged (registry_take/park return
 * -EAGAIN otherwise, and the poll recomputes). Every event that creates work
 * for an agent bumps its generation (registry_wake).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "controller/service.h"
#include "db/db.h"
#include "model/job.h"

typedef struct Registry Registry;

typedef enum DeliveryKind {
	DELIVER_START,
	DELIVER_STOP,
} DeliveryKind;

typedef struct Delivery {
	char id[JOB_ID_LEN + 1];
	DeliveryKind kind;
	bool take; /* out: not delivered before in this session; now marked delivered */
} Delivery;

int registry_new(Registry **ret);
void registry_free(Registry *r); /* NULL is fine */

/* An agent reported: creates or refreshes it; hello starts a new session
 * (everything is undelivered again). account: the account its key serves
 * ("" for an operator's agent, which serves every account). */
int registry_seen(Registry *r, const char *name, const char *account, const char *colo, const char *interfaces,
		  const char *version, bool hello, int64_t now_mono);
/* Forgets an agent (its key was revoked); its parked poll is woken. */
void registry_forget(Registry *r, const char *name);
/* The agent's last reported history status (an object; a reference is kept),
 * shown by registry_json(). NULL keeps the previous one. */
void registry_set_history(Registry *r, const char *name, json_t *history);
/* Adds to the agent's counters (AgentStats): kernel drops newly reported,
 * parts that failed. An unknown agent is ignored. */
void registry_count(Registry *r, const char *name, uint64_t kernel_drops, uint64_t parts_failed);
/* The AgentStats of every agent that serves account (NULL: every agent),
 * by registration order (free with free()). */
int registry_stats(Registry *r, const char *account, int64_t now_mono, int64_t timeout_ns, AgentStats **ret,
		   size_t *ret_n);
/* A known agent showed a sign of life (a poll). -ENOENT if unknown. */
int registry_touch(Registry *r, const char *name, int64_t now_mono);
/* Online: reported or polled within timeout_ns of now. */
bool registry_online(Registry *r, const char *name, int64_t now_mono, int64_t timeout_ns);
/* Below, account NULL means every agent; else only the agents that serve
 * the account (enrolled by it, or an operator's). */
/* Names of online agents that target (ASCII case-insensitive) picks by kind:
 * JOB_TARGET_ANY whose name or colo equals it, JOB_TARGET_AGENT whose name,
 * JOB_TARGET_COLO whose colo (target NULL: every online agent), at most cap;
 * returns how many. */
size_t registry_match(Registry *r, const char *account, JobTargetKind kind, const char *target, int64_t now_mono,
		      int64_t timeout_ns, char (*ret)[AGENT_NAME_MAX + 1], size_t cap);
/* The agent's whole report was applied (its jobs' counters are stored). */
void registry_reported(Registry *r, const char *name);
/* Whether the agent reported (registry_reported) at or after since_real_ns
 * (CLOCK_REALTIME); false for an unknown agent. */
bool registry_reported_since(Registry *r, const char *name, int64_t since_real_ns);
/* "a (colo x), b (colo y)" of online agents, or "none". */
void registry_describe(Registry *r, const char *account, int64_t now_mono, int64_t timeout_ns, char *out, size_t cap);
json_t *registry_json(Registry *r, const char *account, int64_t now_mono, int64_t timeout_ns);

/* The agent's generation; -ENOENT for an unknown agent. */
int registry_generation(Registry *r, const char *name, uint64_t *ret);
/* d[0..n) is every candidate delivery for the agent: marks take on those not yet
 * delivered (and records them as delivered), forgets deliveries no longer
 * among the candidates. Returns how many were taken, or -EAGAIN if none were
 * and the generation moved since gen, -ENOENT for an unknown agent. */
int registry_take(Registry *r, const char *name, uint64_t gen, Delivery *d, size_t n);
/* Parks a poll: park(arg) is called under the lock; wake(arg) later exactly
 * once. -EAGAIN if the generation moved, -ESHUTDOWN after registry_shutdown.
 * A poll already parked for this agent is woken first (answered empty). */
int registry_park(Registry *r, const char *name, uint64_t gen, int64_t deadline_mono, void (*park)(void *),
		  void (*wake)(void *), void *arg);
/* New work for the agent: bumps its generation and wakes its parked poll. */
void registry_wake(Registry *r, const char *name);
/* Whether the agent's last-seen is due to be stored again (at most once per
 * interval_ns; the first time, yes): true marks it stored now. */
bool registry_persist_due(Registry *r, const char *name, int64_t now_mono, int64_t interval_ns);
/* What other controllers stored about agents (db_agent_list): every row
 * seen since since_real_ns that says whom the agent serves, newer than what
 * this registry knows, refreshes (or adds) the agent: account, colo,
 * interfaces, version, history and last seen (as monotonic time by
 * now_mono - (now_real - last_seen)). Parked polls and deliveries stay this
 * controller's. */
void registry_merge(Registry *r, const AgentRow *rows, size_t n, int64_t since_real_ns, int64_t now_mono,
		    int64_t now_real);
/* Bumps every agent's generation and wakes every parked poll (after missed
 * notices: each poll looks at the database again). */
void registry_wake_all(Registry *r);
/* Wakes polls whose deadline has passed. */
void registry_expire(Registry *r, int64_t now_mono);
/* Drops every parked poll without waking it; refuses parking from now on. */
void registry_shutdown(Registry *r);

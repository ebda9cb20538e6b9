/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Agents' keys as the database last said, kept by a controller over
 * PostgreSQL so that an agent's request is authenticated without a round trip
 * to the database (1,000 agents report about 200 times a second). Only where
 * revocations are heard: every revocation sends a forget notice (db.h
 * db_agent_forget) that every controller's fleet thread passes to
 * keycache_forget, and the cache is used only while the fleet thread's
 * session listens for them (keycache_hearing). Over
 * SQLite (no notices, and a revocation may come from another process) there
 * is no cache: the lookup is a local read.
 *
 * Invariants:
 *  - an entry is used for at most KEYCACHE_TTL_NS after it was read from the
 *    database (a bound on anything missed);
 *  - a revocation heard wins over a lookup that raced it: keycache_put
 *    stores only if no forget (nor change of hearing) happened since the
 *    keycache_begin that preceded the database read;
 *  - while revocations are not heard (before the first session listens,
 *    and from a broken session to the next), nothing is cached or used;
 *  - bounded: at most KEYCACHE_MAX entries (then the oldest slot is reused).
 *
 * Thread-safe (one mutex).
 */

#include <stdbool.h>
#include <stdint.h>

#include "db/db.h"

#define KEYCACHE_TTL_NS (30 * (int64_t)NSEC_PER_SEC)
#define KEYCACHE_MAX 8192u

typedef struct KeyCache KeyCache;

int keycache_new(KeyCache **ret); /* -ENOMEM; not hearing yet */
void keycache_free(KeyCache *c);

/* The key whose secret hashes to hash, if cached and fresh at now_mono. */
bool keycache_get(KeyCache *c, const uint8_t hash[32], int64_t now_mono, AgentKey *ret);
/* Before reading a key from the database: a ticket for keycache_put. */
uint64_t keycache_begin(KeyCache *c);
/* Caches k (read at now_mono), unless a forget or clear came after ticket. */
void keycache_put(KeyCache *c, uint64_t ticket, const uint8_t hash[32], const AgentKey *k, int64_t now_mono);
/* Drops every key of agent name (a revocation). */
void keycache_forget(KeyCache *c, const char *name);
/* Whether revocations are heard from now on (a session listens). Either
 * way every key is dropped: across a gap some may have been missed. */
void keycache_hearing(KeyCache *c, bool on);

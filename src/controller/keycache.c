/* SPDX-License-Identifier: MIT */
/*
 * The agent key cache (keycache.h): an open-addressed table of KEYCACHE_MAX
 * slots indexed by the secret's hash (already a SHA-256: its first bytes
 * spread well), linear probing over at most PROBE slots, and a generation
 * counter that forget and clear raise.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "controller/keycache.h"

#define PROBE 8u

typedef struct Slot {
	bool used;
	uint8_t hash[32];
	AgentKey key;
	int64_t read_mono;
} Slot;

struct KeyCache {
	pthread_mutex_t lock;
	uint64_t gen;
	bool on; /* revocations are heard */
	Slot slot[KEYCACHE_MAX];
};

_Static_assert((KEYCACHE_MAX & (KEYCACHE_MAX - 1)) == 0, "a power of two");

static size_t home(const uint8_t hash[32])
{
	uint32_t h;

	memcpy(&h, hash, sizeof(h));
	return h & (KEYCACHE_MAX - 1);
}

int keycache_new(KeyCache **ret)
{
	KeyCache *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	*ret = c;
	return 0;
}

void keycache_free(KeyCache *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	free(c);
}

bool keycache_get(KeyCache *c, const uint8_t hash[32], int64_t now_mono, AgentKey *ret)
{
	size_t h = home(hash);
	bool found = false;

	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; c->on && i < PROBE; i++) {
		Slot *s = &c->slot[(h + i) & (KEYCACHE_MAX - 1)];

		if (s->used && memcmp(s->hash, hash, 32) == 0) {
			found = now_mono - s->read_mono < KEYCACHE_TTL_NS;
			if (found)
				*ret = s->key;
			else
				s->used = false;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return found;
}

uint64_t keycache_begin(KeyCache *c)
{
	uint64_t g;

	pthread_mutex_lock(&c->lock);
	g = c->gen;
	pthread_mutex_unlock(&c->lock);
	return g;
}

void keycache_put(KeyCache *c, uint64_t ticket, const uint8_t hash[32], const AgentKey *k, int64_t now_mono)
{
	size_t h = home(hash);
	Slot *victim = NULL;

	pthread_mutex_lock(&c->lock);
	if (ticket != c->gen || !c->on) {
		pthread_mutex_unlock(&c->lock);
		return; /* a revocation was heard meanwhile: maybe of this key */
	}
	/* The key's own slot, else a free one, else the oldest in reach. */
	for (unsigned i = 0; i < PROBE; i++) {
		Slot *s = &c->slot[(h + i) & (KEYCACHE_MAX - 1)];

		if (s->used && memcmp(s->hash, hash, 32) == 0) {
			victim = s;
			break;
		}
		if (!victim || (victim->used && (!s->used || s->read_mono < victim->read_mono)))
			victim = s;
	}
	victim->used = true;
	memcpy(victim->hash, hash, 32);
	victim->key = *k;
	victim->read_mono = now_mono;
	pthread_mutex_unlock(&c->lock);
}

void keycache_forget(KeyCache *c, const char *name)
{
	pthread_mutex_lock(&c->lock);
	c->gen++;
	for (size_t i = 0; i < KEYCACHE_MAX; i++)
		if (c->slot[i].used && strcmp(c->slot[i].key.name, name) == 0)
			c->slot[i].used = false;
	pthread_mutex_unlock(&c->lock);
}

void keycache_hearing(KeyCache *c, bool on)
{
	pthread_mutex_lock(&c->lock);
	c->gen++;
	c->on = on;
	for (size_t i = 0; i < KEYCACHE_MAX; i++)
		c->slot[i].used = false;
	pthread_mutex_unlock(&c->lock);
}

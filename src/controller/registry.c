/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/timefmt.h"
#include "common/util.h"
#include "controller/registry.h"

typedef struct Sent {
	char id[JOB_ID_LEN + 1];
	DeliveryKind kind;
} Sent;

typedef struct Agent {
	char name[AGENT_NAME_MAX + 1];
	char account[JOB_ID_LEN + 1]; /* "" = an operator's agent */
	char colo[AGENT_NAME_MAX + 1];
	char *interfaces, *version;
	json_t *history; /* last reported recorder status, or NULL */
	uint64_t kernel_drops, parts_failed;
	int64_t last_seen_mono;
	int64_t last_seen_real;
	int64_t last_report_real; /* registry_reported() */
	int64_t persisted_mono;   /* registry_persist_due() */
	uint64_t gen;
	Sent *sent; /* delivered in this session */
	size_t n_sent;
	/* the parked poll, if any */
	void (*wake)(void *);
	void *arg;
	int64_t deadline;
} Agent;

/* v holds the agents in no order; slot indexes them by name (open
 * addressing, linear probing, at most half full): index + 1, 0 = empty.
 * Every report and every merged row looks an agent up, 1,000s a second. */
struct Registry {
	pthread_mutex_t lock;
	Agent *v;
	size_t n, cap;
	uint32_t *slot;
	size_t nslot; /* a power of two, > 2 * n */
	bool shut;
};

static void reg_agent_free(Agent *a)
{
	free(a->interfaces);
	free(a->version);
	free(a->sent);
	json_decref(a->history);
}

int registry_new(Registry **ret)
{
	Registry *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	*ret = r;
	return 0;
}

void registry_free(Registry *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		reg_agent_free(&r->v[i]);
	free(r->v);
	free(r->slot);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static size_t name_hash(const char *s)
{
	uint64_t h = 14695981039346656037u; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return (size_t)h;
}

/* The slot holding name, or the empty one where it would go. */
static size_t slot_of(const Registry *r, const char *name)
{
	size_t mask = r->nslot - 1, i = name_hash(name) & mask;

	while (r->slot[i] && strcmp(r->v[r->slot[i] - 1].name, name) != 0)
		i = (i + 1) & mask;
	return i;
}

static Agent *find(Registry *r, const char *name)
{
	size_t i;

	if (!r->nslot)
		return NULL;
	i = slot_of(r, name);
	return r->slot[i] ? &r->v[r->slot[i] - 1] : NULL;
}

/* A larger index for the agents there are (-ENOMEM: the old one stays). */
static int index_grow(Registry *r)
{
	size_t nslot = r->nslot ? 2 * r->nslot : 64;
	uint32_t *slot = calloc(nslot, sizeof(*slot));

	if (!slot)
		return -ENOMEM;
	free(r->slot);
	r->slot = slot;
	r->nslot = nslot;
	for (size_t k = 0; k < r->n; k++)
		r->slot[slot_of(r, r->v[k].name)] = (uint32_t)k + 1;
	return 0;
}

/* Empties slot i, moving back the entries after it that would no longer be
 * found (linear probing's deletion). */
static void index_clear(Registry *r, size_t i)
{
	size_t mask = r->nslot - 1, j = i;

	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (!r->slot[j])
			break;
		home = name_hash(r->v[r->slot[j] - 1].name) & mask;
		/* the entry at j stays unless its home lies cyclically in (i, j] */
		if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
			r->slot[i] = r->slot[j];
			i = j;
		}
	}
	r->slot[i] = 0;
}

static void replace(char **slot, const char *s)
{
	char *c;

	if (!s || (*slot && strcmp(*slot, s) == 0))
		return;
	c = strdup(s);
	if (!c)
		return; /* keep the old description */
	free(*slot);
	*slot = c;
}

static Agent *add_locked(Registry *r, const char *name);

int registry_seen(Registry *r, const char *name, const char *account, const char *colo, const char *interfaces,
		  const char *version, bool hello, int64_t now_mono)
{
	Agent *a;
	int ret = 0;

	if (strlen(name) > AGENT_NAME_MAX || (colo && strlen(colo) > AGENT_NAME_MAX))
		return -ENAMETOOLONG;
	pthread_mutex_lock(&r->lock);
	a = find(r, name);
	if (!a) {
		a = add_locked(r, name);
		if (!a) {
			ret = -ENOMEM;
			goto out;
		}
		hello = true;
	}
	snprintf(a->account, sizeof(a->account), "%s", account ? account : "");
	if (colo)
		snprintf(a->colo, sizeof(a->colo), "%s", colo);
	replace(&a->interfaces, interfaces);
	replace(&a->version, version);
	a->last_seen_mono = now_mono;
	a->last_seen_real = (int64_t)now_realtime_ns();
	if (hello) {
		a->n_sent = 0;
		a->gen++;
	}
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* Called with the lock held. */
static void wake_locked(Agent *a);

void registry_forget(Registry *r, const char *name)
{
	Agent *a;

	pthread_mutex_lock(&r->lock);
	a = find(r, name);
	if (a) {
		wake_locked(a);
		reg_agent_free(a);
		index_clear(r, slot_of(r, name));
		if (a != &r->v[r->n - 1]) { /* the last agent takes its place */
			*a = r->v[r->n - 1];
			r->slot[slot_of(r, a->name)] = (uint32_t)(a - r->v) + 1;
		}
		r->n--;
	}
	pthread_mutex_unlock(&r->lock);
}

int registry_touch(Registry *r, const char *name, int64_t now_mono)
{
	Agent *a;

	pthread_mutex_lock(&r->lock);
	a = find(r, name);
	if (a)
		a->last_seen_mono = now_mono;
	pthread_mutex_unlock(&r->lock);
	return a ? 0 : -ENOENT;
}

void registry_set_history(Registry *r, const char *name, json_t *history)
{
	Agent *a;

	if (!history)
		return;
	pthread_mutex_lock(&r->lock);
	a = find(r, name);
	if (a) {
		json_decref(a->history);
		a->history = json_incref(history);
	}
	pthread_mutex_unlock(&r->lock);
}

static bool is_online(const Agent *a, int64_t now, int64_t timeout)
{
	return a->last_seen_mono && now - a->last_seen_mono <= timeout;
}

static bool serves(const Agent *a, const char *account)
{
	return !account || !a->account[0] || strcmp(a->account, account) == 0;
}

void registry_count(Registry *r, const char *name, uint64_t kernel_drops, uint64_t parts_failed)
{
	Agent *a;

	pthread_mutex_lock(&r->lock);
	a = find(r, name);
	if (a) {
		a->kernel_drops += kernel_drops;
		a->parts_failed += parts_failed;
	}
	pthread_mutex_unlock(&r->lock);
}

int registry_stats(Registry *r, const char *account, int64_t now_mono, int64_t timeout_ns, AgentStats **ret,
		   size_t *ret_n)
{
	AgentStats *v;
	size_t n = 0;

	pthread_mutex_lock(&r->lock);
	v = calloc(r->n ? r->n : 1, sizeof(*v));
	for (size_t i = 0; v && i < r->n; i++) {
		const Agent *a = &r->v[i];
		json_t *drops = json_object_get(a->history, "drops");

		if (!serves(a, account))
			continue;
		memcpy(v[n].name, a->name, sizeof(v[n].name));
		v[n].online = is_online(a, now_mono, timeout_ns);
		v[n].kernel_drops = a->kernel_drops;
		v[n].parts_failed = a->parts_failed;
		v[n].history_known = json_is_object(a->history);
		v[n].history_recording = json_is_true(json_object_get(a->history, "recording"));
		v[n].history_drops = json_is_integer(drops) && json_integer_value(drops) > 0
					     ? (uint64_t)json_integer_value(drops)
					     : 0;
		n++;
	}
	pthread_mutex_unlock(&r->lock);
	if (!v)
		return -ENOMEM;
	*ret = v;
	*ret_n = n;
	return 0;
}

bool registry_online(Registry *r, const char *name, int64_t now_mono, int64_t timeout_ns)
{
	Agent *a;
	bool on;

	pthread_mutex_lock(&r->lock);
	a = find(r, name);
	on = a && is_online(a, now_mono, timeout_ns);
	pthread_mutex_unlock(&r->lock);
	return on;
}

static bool picks(const Agent *a, JobTargetKind kind, const char *target)
{
	bool by_name = strcasecmp(a->name, target) == 0;
	bool by_colo = a->colo[0] && strcasecmp(a->colo, target) == 0;

	switch (kind) {
	case JOB_TARGET_AGENT:
		return by_name;
	case JOB_TARGET_COLO:
		return by_colo;
	case JOB_TARGET_ANY:
	default:
		return by_name || by_colo;
	}
}

size_t registry_match(Registry *r, const char *account, JobTargetKind kind, const char *target, int64_t now_mono,
		      int64_t timeout_ns, char (*ret)[AGENT_NAME_MAX + 1], size_t cap)
{
	size_t k = 0;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n && k < cap; i++) {
		Agent *a = &r->v[i];

		if (!is_online(a, now_mono, timeout_ns) || !serves(a, account))
			continue;
		if (!target || picks(a, kind, target))
			snprintf(ret[k++], AGENT_NAME_MAX + 1, "%s", a->name);
	}
	pthread_mutex_unlock(&r->lock);
	return k;
}

void registry_reported(Registry *r, const char *name)
{
	Agent *a;

	pthread_mutex_lock(&r->lock);
	a = find(r, name);
	if (a)
		a->last_report_real = (int64_t)now_realtime_ns();
	pthread_mutex_unlock(&r->lock);
}

bool registry_reported_since(Registry *r, const char *name, int64_t since_real_ns)
{
	Agent *a;
	bool yes;

	pthread_mutex_lock(&r->lock);
	a = find(r, name);
	yes = a && a->last_report_real && a->last_report_real >= since_real_ns;
	pthread_mutex_unlock(&r->lock);
	return yes;
}

void registry_describe(Registry *r, const char *account, int64_t now_mono, int64_t timeout_ns, char *out, size_t cap)
{
	size_t o = 0;

	snprintf(out, cap, "none");
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++) {
		Agent *a = &r->v[i];
		int n;

		if (!is_online(a, now_mono, timeout_ns) || !serves(a, account))
			continue;
		n = snprintf(out + o, cap - o, "%s%s (colo %s)", o ? ", " : "", a->name, a->colo[0] ? a->colo : "-");
		if (n < 0 || (size_t)n >= cap - o)
			break; /* the message says enough */
		o += (size_t)n;
	}
	pthread_mutex_unlock(&r->lock);
}

json_t *registry_json(Registry *r, const char *account, int64_t now_mono, int64_t timeout_ns)
{
	json_t *arr = json_array();

	if (!arr)
		return NULL;
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++) {
		Agent *a = &r->v[i];
		char ts[TIMEFMT_MAX];

		if (!serves(a, account))
			continue;
		timefmt_rfc3339(a->last_seen_real, ts);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:O?}", "name", a->name, "colo",
						     a->colo, "interfaces", a->interfaces ? a->interfaces : "",
						     "version", a->version ? a->version : "", "last_seen", ts, "online",
						     is_online(a, now_mono, timeout_ns), "history", a->history));
	}
	pthread_mutex_unlock(&r->lock);
	return arr;
}

int registry_generation(Registry *r, const char *name, uint64_t *ret)
{
	Agent *a;
	int rc = -ENOENT;

	pthread_mutex_lock(&r->lock);
	a = find(r, name);
	if (a) {
		*ret = a->gen;
		rc = 0;
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static bool was_sent(const Agent *a, const Delivery *d)
{
	for (size_t i = 0; i < a->n_sent; i++)
		if (a->sent[i].kind == d->kind && strcmp(a->sent[i].id, d->id) == 0)
			return true;
	return false;
}

int registry_take(Registry *r, const char *name, uint64_t gen, Delivery *d, size_t n)
{
	Sent *sent = NULL;
	size_t n_sent = 0;
	Agent *a;
	int taken = 0;

	pthread_mutex_lock(&r->lock);
	a = find(r, name);
	if (!a) {
		taken = -ENOENT;
		goto out;
	}
	/* The new delivered set is exactly the candidates: what was delivered
	 * before and is still wanted, plus what is taken now. */
	if (n) {
		sent = malloc(n * sizeof(*sent));
		if (!sent) {
			taken = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		d[i].take = !was_sent(a, &d[i]);
		if (d[i].take)
			taken++;
		memcpy(sent[n_sent].id, d[i].id, sizeof(sent[n_sent].id));
		sent[n_sent++].kind = d[i].kind;
	}
	free(a->sent);
	a->sent = sent;
	a->n_sent = n_sent;
	if (taken == 0 && a->gen != gen)
		taken = -EAGAIN;
out:
	pthread_mutex_unlock(&r->lock);
	return taken;
}

/* Called with the lock held. */
static void wake_locked(Agent *a)
{
	void (*wake)(void *) = a->wake;

	if (!wake)
		return;
	a->wake = NULL;
	wake(a->arg);
}

int registry_park(Registry *r, const char *name, uint64_t gen, int64_t deadline_mono, void (*park)(void *),
		  void (*wake)(void *), void *arg)
{
	Agent *a;
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	a = find(r, name);
	if (r->shut)
		rc = -ESHUTDOWN;
	else if (!a)
		rc = -ENOENT;
	else if (a->gen != gen)
		rc = -EAGAIN;
	if (rc == 0) {
		wake_locked(a);
		a->wake = wake;
		a->arg = arg;
		a->deadline = deadline_mono;
		park(arg);
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

void registry_wake(Registry *r, const char *name)
{
	Agent *a;

	pthread_mutex_lock(&r->lock);
	a = find(r, name);
	if (a) {
		a->gen++;
		wake_locked(a);
	}
	pthread_mutex_unlock(&r->lock);
}

bool registry_persist_due(Registry *r, const char *name, int64_t now_mono, int64_t interval_ns)
{
	Agent *a;
	bool due = false;

	pthread_mutex_lock(&r->lock);
	a = find(r, name);
	if (a && (!a->persisted_mono || now_mono - a->persisted_mono >= interval_ns)) {
		a->persisted_mono = now_mono;
		due = true;
	}
	pthread_mutex_unlock(&r->lock);
	return due;
}

/* Called with the lock held: a new agent, or NULL (-ENOMEM). */
static Agent *add_locked(Registry *r, const char *name)
{
	Agent *a;

	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		Agent *v = realloc(r->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		r->v = v;
		r->cap = cap;
	}
	if (2 * (r->n + 1) >= r->nslot && index_grow(r) < 0)
		return NULL;
	a = &r->v[r->n++];
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->gen = 1;
	r->slot[slot_of(r, name)] = (uint32_t)r->n;
	return a;
}

void registry_merge(Registry *r, const AgentRow *rows, size_t n, int64_t since_real_ns, int64_t now_mono,
		    int64_t now_real)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < n; i++) {
		const AgentRow *row = &rows[i];
		Agent *a;

		/* Rows written before version 8 do not say whom the agent
		 * serves: they are never taken for an operator's. */
		if (!row->account || row->last_seen_ns < since_real_ns || row->last_seen_ns > now_real)
			continue;
		a = find(r, row->name);
		if (!a)
			a = add_locked(r, row->name);
		if (!a)
			break; /* out of memory: the next round tries again */
		if (row->last_seen_ns <= a->last_seen_real)
			continue; /* what this controller saw itself is as new */
		snprintf(a->account, sizeof(a->account), "%s", row->account);
		snprintf(a->colo, sizeof(a->colo), "%s", row->colo);
		replace(&a->interfaces, row->interfaces);
		replace(&a->version, row->version);
		if (row->history) {
			json_t *h = json_loads(row->history, 0, NULL);

			if (json_is_object(h)) {
				json_decref(a->history);
				a->history = h;
			} else {
				json_decref(h);
			}
		}
		a->last_seen_real = row->last_seen_ns;
		if (now_mono - (now_real - row->last_seen_ns) > a->last_seen_mono)
			a->last_seen_mono = now_mono - (now_real - row->last_seen_ns);
	}
	pthread_mutex_unlock(&r->lock);
}

void registry_wake_all(Registry *r)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++) {
		r->v[i].gen++;
		wake_locked(&r->v[i]);
	}
	pthread_mutex_unlock(&r->lock);
}

void registry_expire(Registry *r, int64_t now_mono)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].wake && r->v[i].deadline <= now_mono)
			wake_locked(&r->v[i]);
	pthread_mutex_unlock(&r->lock);
}

void registry_shutdown(Registry *r)
{
	pthread_mutex_lock(&r->lock);
	r->shut = true;
	for (size_t i = 0; i < r->n; i++)
		r->v[i].wake = NULL;
	pthread_mutex_unlock(&r->lock);
}

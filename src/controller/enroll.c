/* SPDX-License-Identifier: MIT */
/*
 * Agent identity (service.h, docs/SECURITY.md): enrolment tokens exchanged
 * for per-agent keys, the lookups the agent protocol authenticates with, and
 * revocation. A key is bound to one agent name; the name is enrolled once.
 */
#include <errno.h>
#include <fnmatch.h>
#include <string.h>

#include "controller/service-int.h"

int service_agent_key_find(Service *s, const uint8_t hash[32], AgentKey *ret, ApiError *e)
{
	ErrBuf err = {{0}};
	uint64_t ticket = 0;
	int r;

	/* Over PostgreSQL, from the cache that revocations' notices keep
	 * true (keycache.h). */
	if (s->keys) {
		if (keycache_get(s->keys, hash, (int64_t)now_monotonic_ns(), ret))
			return 0;
		ticket = keycache_begin(s->keys);
	}
	r = db_agent_key_find(s->cfg.db, hash, ret, &err);
	if (r == 0 && s->keys)
		keycache_put(s->keys, ticket, hash, ret, (int64_t)now_monotonic_ns());

	if (r == -ENOENT)
		return apierror_set(e, API_ERR_NOT_FOUND, NULL, "no such agent key");
	return r < 0 ? service_internal(e, r, &err) : 0;
}

int service_enroll_token_find(Service *s, const uint8_t hash[32], EnrollToken *ret, ApiError *e)
{
	ErrBuf err = {{0}};
	int r = db_enroll_token_find(s->cfg.db, hash, ret, &err);

	if (r == -ENOENT)
		return apierror_set(e, API_ERR_NOT_FOUND, NULL, "no such enrolment token");
	return r < 0 ? service_internal(e, r, &err) : 0;
}

int service_agent_enroll(Service *s, const EnrollToken *t, const char *name, const char *colo, const uint8_t hash[32],
			 ApiError *e)
{
	AgentKey k = {0};
	ErrBuf err = {{0}};
	int r;

	if (t->expires_ns && (int64_t)now_realtime_ns() >= t->expires_ns)
		return apierror_set(e, API_ERR_FORBIDDEN, NULL, "Forbidden: this enrolment token has expired");
	if (t->name_pattern[0] && fnmatch(t->name_pattern, name, 0) != 0)
		return apierror_set(e, API_ERR_FORBIDDEN, "name", "'%s' does not match this enrolment token's '%s'",
				    name, t->name_pattern);
	if (t->colo[0] && strcmp(t->colo, colo) != 0)
		return apierror_set(e, API_ERR_FORBIDDEN, "colo", "this enrolment token enrols agents of colo %s only",
				    t->colo);
	snprintf(k.name, sizeof(k.name), "%s", name);
	memcpy(k.account, t->account, sizeof(k.account));
	memcpy(k.colo, t->colo, sizeof(k.colo));
	k.enrolled_ns = (int64_t)now_realtime_ns();
	r = db_agent_key_add(s->cfg.db, hash, &k, s->cfg.max_agents, &err);
	if (r == -EEXIST)
		return apierror_set(e, API_ERR_CONFLICT, "name",
				    "agent '%s' is enrolled already; revoke it first (pcapd agents revoke %s)", name,
				    name);
	if (r == -EDQUOT)
		return apierror_set(e, API_ERR_INVALID, "name", "the account has %zu agents, the most it may enrol",
				    s->cfg.max_agents);
	if (r < 0)
		return service_internal(e, r, &err);
	return 0;
}

int service_agent_revoke(Service *s, const char *account, const char *name, ApiError *e)
{
	AgentKey k = {0};
	ErrBuf err = {{0}};
	int r;

	r = db_agent_key_get(s->cfg.db, name, &k, &err);
	if (r == -ENOENT || (r == 0 && account && strcmp(k.account, account) != 0 && k.account[0]))
		return apierror_set(e, API_ERR_NOT_FOUND, "name", "no agent '%s' enrolled by this account", name);
	if (r < 0)
		return service_internal(e, r, &err);
	if (account && !k.account[0])
		return apierror_set(e, API_ERR_FORBIDDEN, NULL,
				    "Forbidden: '%s' is an operator's agent; revoke it with pcapd agents revoke", name);
	r = db_agent_key_delete(s->cfg.db, name, &err);
	if (r == -ENOENT)
		return apierror_set(e, API_ERR_NOT_FOUND, "name", "no agent '%s' enrolled by this account", name);
	if (r < 0)
		return service_internal(e, r, &err);
	service_agent_forget(s, name);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * GET /metrics (api.h): the controller's state and its HTTP statistics in
 * Prometheus' text format (metrics/promtext.h), and the route templates that
 * bound the statistics' labels. A raw path never becomes a label: it is
 * matched against the fixed templates below (segment by segment, "{…}" being
 * any one non-empty segment), and whatever matches none is "other".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-int.h"
#include "api/auth.h"
#include "web/web.h"

/* The templates, without the optional "/client/v4" (its requests count with
 * the bare ones). A literal is listed before a template that would take it as
 * an id. The last two are not matched by pattern. */
static const char *const route_names[] = {
	"/accounts/{account}/pcaps",
	"/accounts/{account}/pcaps/ownership",
	"/accounts/{account}/pcaps/ownership/validate",
	"/accounts/{account}/pcaps/ownership/{id}",
	"/accounts/{account}/pcaps/agents",
	"/accounts/{account}/pcaps/{id}",
	"/accounts/{account}/pcaps/{id}/download",
	"/accounts/{account}/pcaps/{id}/stop",
	"/accounts/{account}/tokens/verify",
	"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkWatchers/{nw}/packetCaptures",
	"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkWatchers/{nw}/packetCaptures/"
	"{name}",
	"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkWatchers/{nw}/packetCaptures/"
	"{name}/"
	"queryStatus",
	"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkWatchers/{nw}/packetCaptures/"
	"{name}/"
	"stop",
	"/subscriptions/{sub}/providers/Microsoft.Network/locations/{location}/operations/{id}",
	"/subscriptions/{sub}/providers/Microsoft.Network/locations/{location}/operationResults/{id}",
	"/agent/v1/report",
	"/agent/v1/poll",
	"/agent/v1/sample",
	"/healthz",
	"/metrics",
	"/{dashboard}",
	"other",
};
#define ROUTE_PATTERNS (ARRAY_SIZE(route_names) - 2)
#define ROUTE_DASHBOARD (ARRAY_SIZE(route_names) - 2)
#define ROUTE_OTHER (ARRAY_SIZE(route_names) - 1)

const char *const *api_route_names(size_t *ret_n)
{
	*ret_n = ARRAY_SIZE(route_names);
	return route_names;
}

static char ascii_tolower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Whether path matches pattern, "{…}" matching one non-empty segment; the
 * literal parts of an Azure path without regard to case, as the Azure
 * dialect matches them. */
static bool route_matches(const char *pattern, const char *path)
{
	bool nocase = strncmp(pattern, "/subscriptions/", 15) == 0;

	while (*pattern && *path) {
		if (*pattern == '{') {
			size_t seg = strcspn(path, "/");

			if (seg == 0)
				return false;
			path += seg;
			pattern = strchr(pattern, '}');
			if (!pattern)
				return false;
			pattern++;
		} else if (nocase ? ascii_tolower(*pattern++) != ascii_tolower(*path++) : *pattern++ != *path++) {
			return false;
		}
	}
	return *pattern == '\0' && *path == '\0';
}

size_t api_route_of(const char *path)
{
	const char *p = path ? path : "";

	if (strncmp(p, "/client/v4/", 11) == 0)
		p += 10;
	for (size_t i = 0; i < ROUTE_PATTERNS; i++)
		if (route_matches(route_names[i], p))
			return i;
	if (strncmp(path ? path : "", "/client/v4", 10) != 0 && web_asset_find(p))
		return ROUTE_DASHBOARD;
	return ROUTE_OTHER;
}

void api_observe(void *ctx, const HttpRequest *req, unsigned status, uint64_t elapsed_ns)
{
	Api *a = ctx;

	httpstats_observe(api_http_stats(a), api_route_of(http_req_path(req)), http_req_method(req), status,
			  elapsed_ns);
}

/* ---- rendering ---- */

static void render_captures(PromText *t, const JobStatusCount *c, size_t n)
{
	static const char name[] = "pcapd_captures";

	prom_family(t, name, "gauge", "Captures stored, by account and status.");
	for (size_t i = 0; i < n;) {
		uint64_t by_status[JOB_FAILED + 1] = {0};
		size_t j = i;

		/* Rows come ordered by account: every status of each account, 0s too. */
		for (; j < n && strcmp(c[j].account, c[i].account) == 0; j++)
			if ((unsigned)c[j].status <= JOB_FAILED)
				by_status[c[j].status] += c[j].count;
		for (unsigned s = 0; s <= JOB_FAILED; s++) {
			PromLabel l[] = {{"account", c[i].account}, {"status", job_status_to_string((JobStatus)s)}};

			prom_u64(t, name, l, ARRAY_SIZE(l), by_status[s]);
		}
		i = j;
	}
}

static void render_agents(PromText *t, const AgentStats *v, size_t n)
{
	uint64_t online = 0;

	for (size_t i = 0; i < n; i++)
		online += v[i].online;
	prom_family(t, "pcapd_agents_known", "gauge", "Agents that reported since the controller started.");
	prom_u64(t, "pcapd_agents_known", NULL, 0, n);
	prom_family(t, "pcapd_agents_online", "gauge", "Agents that reported or polled within --agent-timeout.");
	prom_u64(t, "pcapd_agents_online", NULL, 0, online);

	prom_family(t, "pcapd_agent_online", "gauge", "1 if the agent reported or polled within --agent-timeout.");
	for (size_t i = 0; i < n; i++)
		prom_u64(t, "pcapd_agent_online", &(PromLabel){"agent", v[i].name}, 1, v[i].online);
	prom_family(t, "pcapd_agent_kernel_drops_total", "counter",
		    "Packets the kernel dropped for lack of ring space in the agent's captures, as its reports "
		    "said (since the controller started).");
	for (size_t i = 0; i < n; i++)
		prom_u64(t, "pcapd_agent_kernel_drops_total", &(PromLabel){"agent", v[i].name}, 1, v[i].kernel_drops);
	prom_family(t, "pcapd_agent_parts_failed_total", "counter",
		    "The agent's parts of captures that failed (capture or upload to the bucket), since the "
		    "controller started.");
	for (size_t i = 0; i < n; i++)
		prom_u64(t, "pcapd_agent_parts_failed_total", &(PromLabel){"agent", v[i].name}, 1, v[i].parts_failed);
	prom_family(t, "pcapd_agent_history_recording", "gauge",
		    "1 if the agent's sampled history is recording, 0 if it is off or failed.");
	for (size_t i = 0; i < n; i++)
		if (v[i].history_known)
			prom_u64(t, "pcapd_agent_history_recording", &(PromLabel){"agent", v[i].name}, 1,
				 v[i].history_recording);
	prom_family(t, "pcapd_agent_history_drops_total", "counter",
		    "Sampled packets the agent's history could not record (ring overflow, write errors), as it "
		    "reported; restarts with the agent.");
	for (size_t i = 0; i < n; i++)
		if (v[i].history_known)
			prom_u64(t, "pcapd_agent_history_drops_total", &(PromLabel){"agent", v[i].name}, 1,
				 v[i].history_drops);
}

/* The whole text; account NULL: every account's captures. */
static int render(Api *a, const char *account, PromText *t, ApiError *e)
{
	JobStatusCount *counts = NULL;
	AgentStats *agents = NULL;
	size_t n_counts = 0, n_agents = 0;
	int r;

	r = service_job_counts(api_service(a), account, &counts, &n_counts, e);
	if (r < 0)
		return r;
	r = service_agent_stats(api_service(a), account, &agents, &n_agents, e);
	if (r < 0) {
		free(counts);
		return r;
	}
	render_captures(t, counts, n_counts);
	prom_family(t, "pcapd_live_streams", "gauge", "Live streams (GET .../stream) being merged on this controller.");
	prom_u64(t, "pcapd_live_streams", NULL, 0, service_tap_count(api_service(a), account));
	prom_family(t, "pcapd_live_stream_bytes", "gauge",
		    "Bytes of the controller's --stream-memory that those live streams hold: 1 MiB reserved per "
		    "agent, more while a queue has grown.");
	prom_u64(t, "pcapd_live_stream_bytes", NULL, 0, service_tap_memory(api_service(a), account));
	render_agents(t, agents, n_agents);
	httpstats_render(api_http_stats(a), t);
	free(counts);
	free(agents);
	r = prom_finish(t);
	if (r < 0)
		return apierror_set(e, API_ERR_INTERNAL, NULL, "metrics: %s", strerror(-r));
	return 0;
}

/* GET or HEAD: true; else answers 405 in text and returns false. */
static bool method_ok(HttpRequest *req)
{
	static const char msg[] = "method not allowed: GET or HEAD only\n";
	const char *m = http_req_method(req);

	if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
		return true;
	http_add_header(req, "Allow", "GET, HEAD");
	http_respond(req, 405, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
	return false;
}

static void answer(Api *a, HttpRequest *req, const char *account)
{
	PromText t;
	ApiError e;
	char msg[sizeof(e.msg) + 1];

	prom_init(&t, 0);
	if (render(a, account, &t, &e) < 0) {
		int n = snprintf(msg, sizeof(msg), "%s\n", e.msg);

		http_respond(req, 500, "text/plain; charset=utf-8", msg, n > 0 ? (size_t)n : 0);
	} else {
		http_respond(req, 200, PROM_CONTENT_TYPE, t.buf, t.len);
	}
	prom_done(&t);
}

void api_metrics(Api *a, HttpRequest *req, const ApiDialect *d)
{
	char account[JOB_ID_LEN + 1];
	ApiError e;

	if (strcmp(http_req_method(req), "GET") != 0 && strcmp(http_req_method(req), "HEAD") != 0) {
		apierror_set(&e, API_ERR_METHOD, NULL, "Method not allowed: /metrics takes GET");
		e.allow = "GET, HEAD";
		d->render_error(req, &e);
		return;
	}
	if (auth_check(api_service(a), req, NULL, SCOPE_READ, "metrics", account, &e) < 0) {
		d->render_error(req, &e);
		return;
	}
	answer(a, req, account);
}

void api_metrics_handle(void *ctx, HttpRequest *req)
{
	const char *path = http_req_path(req) ? http_req_path(req) : "";

	if (strcmp(path, "/metrics") == 0) {
		if (method_ok(req))
			answer(ctx, req, NULL);
	} else if (strcmp(path, "/healthz") == 0) {
		if (method_ok(req))
			http_respond(req, 200, "text/plain; charset=utf-8", "ok", 2);
	} else {
		static const char msg[] = "not found: this listener serves /metrics and /healthz\n";

		http_respond(req, 404, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
	}
}

/* SPDX-License-Identifier: MIT */
/*
 * The agent daemon: the supervisor (agent_run's thread), the reporter and the
 * poller. Threads, phases and locking are described in agent.h and
 * agent-int.h; the wire format in docs/AGENT-PROTOCOL.md.
 *
 * Sessions: a report with "hello" starts a new session on the controller,
 * which then resends starts and stops it is not sure were received. The
 * agent says hello on its first report and on the first one after any failed
 * request, since a failed request may have lost a poll answer.
 *
 * Outages: both threads retry with their own exponential backoff (100 ms
 * doubling to 5 s, jittered); the first failure of an outage is logged, and
 * the return of the controller, not each attempt. Captures go on meanwhile;
 * their final reports wait in memory and on disk.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent-int.h"
#include "agent/agentkey.h"
#include "agent/backoff.h"
#include "agent/ifaces.h"
#include "common/log.h"

#define REPORT_PATH "/agent/v1/report"
#define POLL_PATH "/agent/v1/poll"
#define ACTIVE_REPORT_MS 1000u   /* report interval while a job is active */
#define REPORT_TIMEOUT_MS 10000u /* one report, connection included */
#define POLL_SLACK_MS 10000u     /* curl waits this much longer than the hold asked for */
#define FINAL_REPORT_MS 5000u    /* time-out of the last report at shutdown */
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
#define START_WAIT_MS 2000u   /* poller waits this long for new jobs to open their sockets */
#define SUPERVISE_MS 100u     /* the stop flag is read this often */
#define MIN_EMPTY_POLL_MS 50u /* an empty answer that fast is not followed by another poll at once */
#define TOKEN_MAX 256u
#define URL_MAX 1024u
#define HISTORY_OFF "recorder off (--sample-rate 0)"

static uint64_t now_ms(void)
{
	return now_monotonic_ns() / 1000000u;
}

uint32_t agent_random_u32(void)
{
	uint32_t v;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = (uint32_t)now_monotonic_ns();
	return v;
}

/* Waits on a->cond (a->lock held) until deadline (monotonic ms) or a signal. */
static void wait_until(Agent *a, uint64_t deadline_ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(deadline_ms / 1000u);
	ts.tv_nsec = (long)(deadline_ms % 1000u) * 1000000L;
	pthread_cond_timedwait(&a->cond, &a->lock, &ts);
}

static bool url_ok(const char *u)
{
	return strncasecmp(u, "http://", 7) == 0 ? u[7] != '\0' && u[7] != '/'
						 : strncasecmp(u, "https://", 8) == 0 && u[8] != '\0' && u[8] != '/';
}

static int controller_check(const char *url, ErrBuf *err)
{
	if (!url || !url_ok(url) || strlen(url) > URL_MAX)
		return errbuf_set(err, -EINVAL, "--controller: '%s' is not an http:// or https:// URL (up to %u bytes)",
				  url ? url : "", URL_MAX);
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return errbuf_set(err, -EINVAL, "--controller: the URL contains a blank or control character");
	return 0;
}

int agent_config_check(const AgentConfig *cfg, ErrBuf *err)
{
	int r = controller_check(cfg->controller, err);

	if (r < 0)
		return r;
	if (cfg->n_urls > CTL_MAX_URLS)
		return errbuf_set(err, -EINVAL, "--controller: more than %u controllers", CTL_MAX_URLS);
	for (size_t i = 0; i < cfg->n_urls; i++) {
		r = controller_check(cfg->urls[i], err);
		if (r < 0)
			return r;
	}
	if (!agentproto_name_valid(cfg->name))
		return errbuf_set(err, -EINVAL, "--name: '%s' is not 1..%u characters of [A-Za-z0-9._-]",
				  cfg->name ? cfg->name : "", AGENT_NAME_MAX);
	if (!agentproto_name_valid(cfg->colo))
		return errbuf_set(err, -EINVAL, "--colo: '%s' is not 1..%u characters of [A-Za-z0-9._-]",
				  cfg->colo ? cfg->colo : "", AGENT_NAME_MAX);
	if (cfg->all_ifaces ? cfg->n_ifaces != 0 : cfg->n_ifaces == 0)
		return errbuf_set(err, -EINVAL, "-i: name the interfaces, or 'all'");
	if (cfg->n_ifaces > CAPTURE_MAX_IFACES)
		return errbuf_set(err, -EINVAL, "-i: more than %u interfaces", CAPTURE_MAX_IFACES);
	for (size_t i = 0; i < cfg->n_ifaces; i++) {
		size_t n = strlen(cfg->ifaces[i]);

		if (n == 0 || n >= 16 || strchr(cfg->ifaces[i], '/'))
			return errbuf_set(err, -EINVAL, "-i: '%s' is not an interface name", cfg->ifaces[i]);
	}
	/* The key (agentkey.h) may come later: the command line is checked
	 * before enrolment, agent_run() again with the key. It goes into a
	 * header line: printable ASCII only. */
	if (cfg->token && (!cfg->token[0] || strlen(cfg->token) > TOKEN_MAX))
		return errbuf_set(err, -EINVAL, "agent key: empty or longer than %u bytes", TOKEN_MAX);
	for (const char *p = cfg->token; p && *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return errbuf_set(err, -EINVAL, "agent key: contains a blank, control or non-ASCII character");
	if (!cfg->data_dir || !cfg->data_dir[0])
		return errbuf_set(err, -EINVAL, "--data: missing");
	if (cfg->bucket_root && cfg->bucket_root[0] != '/')
		return errbuf_set(err, -EINVAL, "--bucket-root: '%s' is not an absolute path", cfg->bucket_root);
	if (cfg->cafile && cfg->insecure)
		return errbuf_set(err, -EINVAL, "--cacert and --insecure: choose one");
	if (cfg->heartbeat_ms && (cfg->heartbeat_ms < 1000 || cfg->heartbeat_ms > 60000))
		return errbuf_set(err, -EINVAL, "heartbeat: %u ms is outside 1000..60000", cfg->heartbeat_ms);
	if (cfg->block_size && (cfg->block_size & (cfg->block_size - 1)))
		return errbuf_set(err, -EINVAL, "block size: %u is not a power of two", cfg->block_size);
	if (cfg->sample_snaplen > PCAP_MAX_SNAPLEN)
		return errbuf_set(err, -EINVAL, "--sample-snaplen: %u is outside 1..%u", cfg->sample_snaplen,
				  PCAP_MAX_SNAPLEN);
	if (cfg->history_bytes && cfg->history_bytes < AGENT_MIN_HISTORY_BYTES)
		return errbuf_set(err, -EINVAL, "--history-size: %llu bytes is below %llu (256K)",
				  (unsigned long long)cfg->history_bytes, AGENT_MIN_HISTORY_BYTES);
	if (cfg->history_age_s > AGENT_MAX_HISTORY_AGE_S)
		return errbuf_set(err, -EINVAL, "--history-age: %llu s is over %u (366 days)",
				  (unsigned long long)cfg->history_age_s, AGENT_MAX_HISTORY_AGE_S);
	return 0;
}

/* ---- link state, shared by both threads ---- */

static void link_failed_locked(Agent *a, const ErrBuf *err)
{
	a->outage_gen++;
	a->need_hello = true;
	if (a->online) {
		a->online = false;
		log_warning("controller %s: %s; retrying every %u ms at most", ctlroute_current(&a->route), err->msg,
			    BACKOFF_MAX_MS);
	}
}

static void link_ok_locked(Agent *a)
{
	if (a->online)
		return;
	a->online = true;
	if (a->registered)
		log_info("controller %s reachable", ctlroute_current(&a->route));
	a->report_due = true; /* the hello that starts the new session, now */
	pthread_cond_broadcast(&a->cond);
}

/* An HTTP answer other than 200, as -errno with the controller's words. */
static int http_error(const char *what, const CtlResponse *resp, ErrBuf *err)
{
	char msg[160];
	int code;

	agentproto_error_message(resp->body, resp->n, msg, sizeof(msg));
	switch (resp->status) {
	case 400:
		code = -EINVAL;
		break;
	case 401:
		code = -EACCES;
		break;
	case 403:
		code = -EPERM;
		break;
	case 404:
		code = -ENOENT;
		break;
	default:
		code = -EIO;
		break;
	}
	return errbuf_set(err, code, "%s: the controller answered %ld%s%s%s", what, resp->status,
			  resp->status == 401 || resp->status == 403 ? " (the agent's key in DATA/" AGENTKEY_FILE
								       " is not accepted: revoked? enrol again)"
								     : "",
			  msg[0] ? ": " : "", msg);
}

/* ---- reports ---- */

/* The report's job entries, live counters included (a->lock held). A job
 * still opening its sockets is left out for up to START_WAIT_MS (the
 * protocol's "running" means capturing): the poller's report after the
 * sockets are open names it. */
static int snapshot_locked(Agent *a, AgentJobReport **ret, size_t *ret_n)
{
	AgentJobReport *v = NULL;
	size_t n = 0;
	uint64_t now = now_ms();

	if (a->table.n) {
		v = calloc(a->table.n, sizeof(*v));
		if (!v)
			return -ENOMEM;
	}
	for (size_t i = 0; i < a->table.n; i++) {
		AgentJob *job = a->table.v[i].job;

		if (job->phase == JOB_PHASE_STARTING && now - job->accepted_ms < START_WAIT_MS)
			continue;
		v[n] = job->rep;
		if (job->cf || job->rot) {
			CaptureStats st;

			if (job->cf)
				capfile_stats(job->cf, &st);
			else
				caprot_stats(job->rot, &st, NULL);
			v[n].packets = st.packets;
			v[n].bytes = st.bytes;
			v[n].drops = st.kernel_drops;
		}
		n++;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* Jobs acknowledged by the controller: their records and files go (but the
 * spool of an upload that failed). */
static void forget_jobs(Agent *a, AgentJob **jobs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ErrBuf err = {{0}};

		if (jobs[i]->has_thread)
			pthread_join(jobs[i]->thread, NULL); /* finished: it published its last state */
		/* A capture the store did not take stays in the spool for a retry. */
		if (jobs[i]->rep.state == PART_UPLOAD_FAILED
			    ? jobstore_remove_record(a->store, jobs[i]->rep.id, &err) < 0
			    : jobstore_remove(a->store, jobs[i]->rep.id, &err) < 0)
			log_warning("job %s: %s", jobs[i]->rep.id, err.msg);
		jobrun_free(jobs[i]);
	}
}

/* One report: 0, or -errno with err. Serialised by a->report_lock. */
static int report_once(Agent *a, CtlClient *c, uint32_t timeout_ms, ErrBuf *err)
{
	const AgentConfig *cfg = a->cfg;
	AgentJob *acked[JOBTABLE_MAX];
	AgentJobReport *jobs = NULL;
	AgentReportAnswer ans = {0};
	CtlResponse resp = {0};
	AgentHistory hist = {0};
	AgentIdent who = {.name = cfg->name, .colo = cfg->colo, .version = PCAPD_VERSION};
	char **up = NULL, *body = NULL;
	size_t n_jobs = 0, n_up = 0, n_acked = 0;
	bool hello, first = false;
	unsigned gen;
	int r;

	pthread_mutex_lock(&a->report_lock);
	if (cfg->all_ifaces) {
		ErrBuf ignored;

		if (ifaces_up(&up, &n_up, &ignored) < 0)
			n_up = 0; /* none up right now: an empty list says so */
		who.ifaces = (const char *const *)up;
		who.n_ifaces = n_up;
	} else {
		who.ifaces = cfg->ifaces;
		who.n_ifaces = cfg->n_ifaces;
	}
	pthread_mutex_lock(&a->lock);
	hello = a->need_hello;
	gen = a->outage_gen;
	r = snapshot_locked(a, &jobs, &n_jobs);
	pthread_mutex_unlock(&a->lock);
	if (r < 0) {
		errbuf_set(err, r, "out of memory");
		goto out;
	}
	if (a->recorder)
		recorder_status(a->recorder, &hist);
	else
		memcpy(hist.error, HISTORY_OFF, sizeof(HISTORY_OFF));
	r = agentproto_report_build(&who, hello, &hist, jobs, n_jobs, &body, err);
	if (r < 0)
		goto out;
	r = ctlclient_post_json(c, REPORT_PATH, body, timeout_ms, &resp, err);
	if (r < 0)
		goto out;
	if (resp.status != 200) {
		r = http_error("report", &resp, err);
		goto out;
	}
	r = agentproto_report_answer_parse(resp.body, resp.n, &ans, err);
	if (r < 0)
		goto out;

	pthread_mutex_lock(&a->lock);
	if (hello && gen == a->outage_gen)
		a->need_hello = false;
	if (ans.heartbeat_ms)
		a->heartbeat_ms = ans.heartbeat_ms;
	if (ans.poll_timeout_ms)
		a->poll_timeout_ms = ans.poll_timeout_ms;
	for (size_t i = 0; i < ans.n_ack && n_acked < JOBTABLE_MAX; i++) {
		AgentJob *job = jobtable_get(&a->table, ans.ack[i]);

		/* Only a terminal state is acknowledged; anything else is a
		 * controller's mistake and the job stays. */
		if (job && job->phase == JOB_PHASE_FINISHED)
			acked[n_acked++] = jobtable_take(&a->table, ans.ack[i]);
	}
	first = !a->registered;
	a->registered = true;
	a->last_report_ms = now_ms();
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	forget_jobs(a, acked, n_acked);
	if (first)
		log_info("agent %s registered with %s", cfg->name, ctlroute_current(&a->route));
out:
	pthread_mutex_unlock(&a->report_lock);
	agentproto_report_answer_done(&ans);
	ctlclient_response_done(&resp);
	free(body);
	free(jobs);
	ifaces_free(up, n_up);
	return r;
}

/* Refusals that retrying cannot fix, when they come at registration. */
static bool fatal_at_registration(int r)
{
	return r == -EACCES || r == -EPERM || r == -EINVAL || r == -ENOENT || r == -EKEYREJECTED;
}

static void *reporter_main(void *arg)
{
	Agent *a = arg;
	CtlClient *c = a->report_client;
	uint64_t hold_until = 0;
	ErrBuf err = {{0}};
	Backoff b;
	int r;

	backoff_init(&b, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
	pthread_mutex_lock(&a->lock);
	for (;;) {
		uint64_t now = now_ms(), due;

		if (a->fatal || (a->exiting && a->n_active == 0))
			break;
		/* The interval follows the jobs: a start or an end wakes us to
		 * recompute it. During an outage, the backoff alone decides. */
		if (hold_until)
			due = hold_until;
		else if (a->report_due)
			due = now;
		else
			due = a->last_report_ms + (a->n_active ? ACTIVE_REPORT_MS : a->heartbeat_ms);
		if (now < due) {
			wait_until(a, due);
			continue;
		}
		a->report_due = false;
		pthread_mutex_unlock(&a->lock);
		r = report_once(a, c, REPORT_TIMEOUT_MS, &err);
		pthread_mutex_lock(&a->lock);
		if (r == 0) {
			backoff_reset(&b);
			link_ok_locked(a);
			hold_until = 0;
			continue;
		}
		if (!a->registered && fatal_at_registration(r)) {
			a->fatal = r;
			if (r == -EKEYREJECTED)
				errbuf_set(&a->fatal_err, r,
					   "%s (give the controller's CA with --cacert FILE, or --insecure)", err.msg);
			else
				a->fatal_err = err;
			pthread_cond_broadcast(&a->cond);
			break;
		}
		link_failed_locked(a, &err);
		hold_until = now_ms() + backoff_next(&b, agent_random_u32());
	}
	/* Nothing to say: never registered, or the last report succeeded and no
	 * job changed since (none runs any more). */
	r = a->fatal || !a->registered || (a->online && !a->report_due);
	pthread_mutex_unlock(&a->lock);
	if (r)
		return NULL;
	/* Shutdown: every job has its final state; one try to say so. What does
	 * not get through is on disk and reported at the next start. */
	if (report_once(a, c, FINAL_REPORT_MS, &err) < 0)
		log_warning("last report not delivered (%s); it is sent at the next start", err.msg);
	return NULL;
}

/* ---- polling ---- */

static AgentJob *job_new(Agent *a, AgentJobSpec *spec)
{
	AgentJob *job = calloc(1, sizeof(*job));

	if (!job)
		return NULL;
	job->agent = a;
	job->spec = *spec; /* ownership moves to the job */
	*spec = (AgentJobSpec){0};
	memcpy(job->rep.id, job->spec.id, sizeof(job->rep.id));
	job->rep.state = job->phase == JOB_PHASE_UPLOADING ? PART_UPLOADING : PART_RUNNING;
	job->rep.attempt = job->spec.attempt;
	job->rep.stop_reason = JOB_STOP_NONE;
	/* A sample has no socket to open: nothing to wait for before "running". */
	job->phase = job->spec.sample ? JOB_PHASE_CAPTURING : JOB_PHASE_STARTING;
	if (!job->spec.sample && job->spec.attempt > 0)
		job->phase = JOB_PHASE_UPLOADING; /* a retry: the capture is in the spool */
	job->accepted_ms = now_ms();
	return job;
}

/* Starts one job unless it is known. Returns true if a job was added. (The
 * spec's contents move to the job.) */
static bool start_job(Agent *a, AgentJobSpec *spec)
{
	char id[JOB_ID_LEN + 1];
	AgentJob *job;
	ErrBuf err = {{0}};
	bool busy;
	int r;

	memcpy(id, spec->id, sizeof(id));
	job = job_new(a, spec);
	if (!job) {
		log_error("job %s: out of memory", id);
		return false;
	}
	pthread_mutex_lock(&a->lock);
	if (job->spec.attempt > 0 && !job->spec.sample)
		jobtable_forget_recent(&a->table, id);
	r = a->exiting ? -ESHUTDOWN : jobtable_add(&a->table, id, job);
	if (r == 0) {
		a->n_active++;
		if (job->spec.sample)
			a->n_samples++;
		pthread_cond_broadcast(&a->cond); /* the reporter's interval shortens */
	}
	/* Samples and captures have their own limits: a busy agent still answers. */
	busy = job->spec.sample ? a->n_samples > AGENT_MAX_SAMPLES : a->n_active - a->n_samples > AGENT_MAX_RUNNING;
	pthread_mutex_unlock(&a->lock);
	if (r < 0) {
		/* -EEXIST, -EALREADY: a start delivered again, already handled. */
		if (r == -ENOSPC)
			log_warning("job %s: not started: %u jobs wait for the controller's acknowledgement", id,
				    JOBTABLE_MAX);
		jobrun_free(job);
		return false;
	}
	if (busy) {
		char msg[128];
		int n = job->spec.sample ? snprintf(msg, sizeof(msg), "agent %s already answers %u samples",
						    a->cfg->name, AGENT_MAX_SAMPLES)
					 : snprintf(msg, sizeof(msg), "agent %s already runs %u captures", a->cfg->name,
						    AGENT_MAX_RUNNING);

		if (n < 0 || n >= (int)sizeof(msg))
			msg[0] = '\0';
		jobrun_finish(job, PART_FAILED, JOB_STOP_ERROR, msg);
		return true;
	}
	/* Logged first: once its thread runs, the job may end and be freed.
	 * Samples are logged when they end (they take milliseconds). */
	if (!job->spec.error[0] && !job->spec.sample)
		log_info("job %s: starting (time limit %llu s, packet limit %llu, byte limit %llu)", id,
			 (unsigned long long)job->spec.time_limit_s, (unsigned long long)job->spec.packet_limit,
			 (unsigned long long)job->spec.byte_limit);
	if (jobrun_start(job, &err) < 0)
		jobrun_finish(job, PART_FAILED, JOB_STOP_ERROR, err.msg);
	return true;
}

/* Whether any of ids is still opening its capture (a->lock held). */
static bool any_starting_locked(Agent *a, char (*ids)[JOB_ID_LEN + 1], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		AgentJob *job = jobtable_get(&a->table, ids[i]);

		if (job && job->phase == JOB_PHASE_STARTING)
			return true;
	}
	return false;
}

/* Applies a poll answer; returns how many full captures were started. */
static size_t apply_poll(Agent *a, AgentPollAnswer *ans, char (*started)[JOB_ID_LEN + 1])
{
	size_t n = 0;

	if (ans->n_skipped)
		log_warning("poll: %zu start, stop or stream entries without a valid id ignored", ans->n_skipped);
	for (size_t i = 0; i < ans->n_stop; i++) {
		AgentJob *job;

		pthread_mutex_lock(&a->lock);
		job = jobtable_get(&a->table, ans->stop[i]);
		if (job && job->phase != JOB_PHASE_FINISHED && !job->stop) {
			job->stop = JOB_STOP_FLAG_USER;
			log_info("job %s: stop requested", ans->stop[i]);
		}
		pthread_mutex_unlock(&a->lock);
	}
	for (size_t i = 0; i < ans->n_start; i++) {
		char id[JOB_ID_LEN + 1];
		bool sample = ans->start[i].sample;

		memcpy(id, ans->start[i].id, sizeof(id));
		/* A sample is not reported "running" before the next poll: its
		 * answer comes first, and the report would only compete with it. */
		if (start_job(a, &ans->start[i]) && !sample)
			memcpy(started[n++], id, sizeof(id));
	}
	/* After the starts: an order may name a capture of this very answer. */
	for (size_t i = 0; i < ans->n_streams; i++)
		streamrun_start(a, &ans->streams[i]);
	return n;
}

static void *poller_main(void *arg)
{
	Agent *a = arg;
	CtlClient *c = a->poll_client;
	char(*started)[JOB_ID_LEN + 1] = NULL;
	ErrBuf err = {{0}};
	Backoff b;

	backoff_init(&b, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
	started = calloc(AGENTPROTO_MAX_STARTS, sizeof(*started));
	pthread_mutex_lock(&a->lock);
	if (!started) {
		a->fatal = errbuf_set(&a->fatal_err, -ENOMEM, "out of memory");
		pthread_cond_broadcast(&a->cond);
	}
	/* Work comes after the hello, which tells the controller who we are. */
	while (!a->registered && !a->exiting && !a->fatal)
		pthread_cond_wait(&a->cond, &a->lock);
	while (!a->exiting && !a->fatal) {
		AgentPollAnswer ans = {0};
		CtlResponse resp = {0};
		uint32_t hold = a->poll_timeout_ms;
		uint64_t t0 = now_ms();
		char path[128];
		size_t n;
		int r;

		pthread_mutex_unlock(&a->lock);
		if (snprintf(path, sizeof(path), POLL_PATH "?name=%s&timeout_ms=%u", a->cfg->name, hold) >=
		    (int)sizeof(path))
			r = errbuf_set(&err, -ENAMETOOLONG, "poll path too long");
		else
			r = ctlclient_get(c, path, hold + POLL_SLACK_MS, &resp, &err);
		if (r == -ECANCELED) {
			pthread_mutex_lock(&a->lock);
			break;
		}
		if (r == 0 && resp.status != 200)
			r = http_error("poll", &resp, &err);
		if (r == 0)
			r = agentproto_poll_parse(resp.body, resp.n, &ans, &err);
		ctlclient_response_done(&resp);
		if (r < 0) {
			pthread_mutex_lock(&a->lock);
			if (a->exiting)
				break; /* not an outage: we are leaving */
			link_failed_locked(a, &err);
			wait_until(a, now_ms() + backoff_next(&b, agent_random_u32()));
			continue;
		}
		backoff_reset(&b);
		pthread_mutex_lock(&a->lock);
		link_ok_locked(a);
		pthread_mutex_unlock(&a->lock);

		n = apply_poll(a, &ans, started);
		if (n > 0) {
			/* "running" before the next poll (the protocol asks for it), and
			 * once the sockets are open, so that it means capturing. */
			uint64_t deadline = now_ms() + START_WAIT_MS;

			pthread_mutex_lock(&a->lock);
			while (any_starting_locked(a, started, n) && now_ms() < deadline && !a->exiting)
				wait_until(a, deadline);
			pthread_mutex_unlock(&a->lock);
			r = report_once(a, c, REPORT_TIMEOUT_MS, &err);
			if (r < 0 && r != -ECANCELED) {
				pthread_mutex_lock(&a->lock);
				link_failed_locked(a, &err);
				pthread_mutex_unlock(&a->lock);
			}
		}
		pthread_mutex_lock(&a->lock);
		if (ans.n_start == 0 && ans.n_stop == 0 && ans.n_streams == 0 && now_ms() - t0 < MIN_EMPTY_POLL_MS)
			wait_until(a, t0 + MIN_EMPTY_POLL_MS); /* a controller answering at once with nothing */
		agentproto_poll_done(&ans);
	}
	pthread_mutex_unlock(&a->lock);
	free(started);
	return NULL;
}

/* ---- start-up and shutdown ---- */

/* An upload of the previous run: it goes on when its capture had ended (the
 * spool whole) and its progress was kept for the attempt the record names;
 * an S3 upload of a capture cut short is aborted. Then job->resume holds the
 * progress (*ret_abort tells which). */
static bool upload_left(Agent *a, AgentJob *job, bool *ret_abort)
{
	char spool[PATH_MAX];
	JobUpload ju = {0};
	ErrBuf err = {{0}};
	bool ended = job->rep.state == PART_CAPTURED || job->rep.state == PART_UPLOADING;
	int r;

	r = jobstore_load_upload(a->store, job->rep.id, &ju, &err);
	if (r < 0) {
		if (r != -ENOENT)
			log_warning("job %s: the upload cannot resume: %s", job->rep.id, err.msg);
		return false;
	}
	if (ju.attempt != job->rep.attempt)
		goto none;
	if (ended && jobstore_spool_path(a->store, job->rep.id, spool, sizeof(spool)) == 0 && access(spool, R_OK) == 0)
		*ret_abort = false;
	else if (ju.upload_id[0])
		*ret_abort = true;
	else
		goto none; /* Azure: uncommitted blocks expire in the store */
	job->resume = malloc(sizeof(*job->resume));
	if (!job->resume)
		goto none;
	*job->resume = ju;
	return true;
none:
	jobstore_upload_done(&ju);
	return false;
}

/* Jobs from the previous run: finished ones are reported until acknowledged;
 * the upload of a finished capture goes on, that of a capture cut short is
 * aborted (upload_left()); other ones that were running failed with the
 * agent. */
static void recover(Agent *a)
{
	AgentJobReport *v = NULL;
	AgentJob **resumed = NULL;
	const char **keep = NULL;
	bool *aborts = NULL;
	size_t n = 0, bad = 0, n_resumed = 0, n_keep = 0;
	ErrBuf err = {{0}};

	if (jobstore_load(a->store, &v, &n, &bad, &err) < 0) {
		log_warning("cannot read earlier jobs: %s", err.msg);
		return;
	}
	if (bad)
		log_warning("%zu job records could not be read and are left in place; first: %s", bad, err.msg);
	resumed = calloc(n ? n : 1, sizeof(*resumed));
	keep = calloc(n ? n : 1, sizeof(*keep));
	aborts = calloc(n ? n : 1, sizeof(*aborts));
	for (size_t i = 0; i < n; i++) {
		AgentJob *job = calloc(1, sizeof(*job));
		bool upload = false, abort = false;

		if (!job) {
			log_error("out of memory");
			break;
		}
		job->agent = a;
		job->rep = v[i];
		job->phase = JOB_PHASE_FINISHED;
		memcpy(job->spec.id, v[i].id, sizeof(job->spec.id));
		if (!part_state_terminal(job->rep.state) && resumed && keep && aborts && upload_left(a, job, &abort)) {
			upload = true;
			if (abort)
				outputs_recover(a, job->rep.id);
			job->phase = JOB_PHASE_UPLOADING;
			job->rep.state = PART_UPLOADING;
			job->spec.attempt = job->resume->attempt;
		} else if (!part_state_terminal(job->rep.state)) {
			const char *why = job->rep.state == PART_UPLOADING  ? "agent restarted during the upload"
					  : job->rep.state == PART_CAPTURED ? "agent restarted before the upload"
									    : "agent restarted during the capture";

			job->rep.state = PART_FAILED;
			job->rep.stop_reason = JOB_STOP_ERROR;
			job->rep.failure = PART_FAIL_INTERNAL;
			memcpy(job->rep.error, why, strlen(why) + 1);
			outputs_recover(a, job->rep.id);
			if (jobstore_save(a->store, &job->rep, &err) < 0)
				log_warning("job %s: %s", job->rep.id, err.msg);
			log_warning("job %s failed: %s", job->rep.id, why);
		}
		if (jobtable_add(&a->table, job->rep.id, job) < 0) {
			log_warning("job %s: not reported now: %u jobs wait already", job->rep.id, JOBTABLE_MAX);
			jobrun_free(job);
			continue;
		}
		if (upload) {
			if (!abort)
				keep[n_keep++] = job->rep.id;
			aborts[n_resumed] = abort;
			resumed[n_resumed++] = job;
		}
	}
	free(v);
	/* No capture survives a restart, and finished ones were uploaded or
	 * failed, but for the uploads that go on. */
	if (jobstore_clear_spool(a->store, keep, n_keep, &err) < 0)
		log_warning("%s", err.msg);
	for (size_t i = 0; i < n_resumed; i++) {
		AgentJob *job = resumed[i];

		pthread_mutex_lock(&a->lock);
		a->n_active++;
		pthread_mutex_unlock(&a->lock);
		if (jobrun_resume(job, aborts[i], &err) < 0)
			jobrun_finish(job, aborts[i] ? PART_FAILED : PART_UPLOAD_FAILED, job->rep.stop_reason, err.msg);
	}
	free(resumed);
	free(keep);
	free(aborts);
}

/* The recorder's status changed: the next report goes now. */
static void recorder_changed(void *ctx)
{
	Agent *a = ctx;

	pthread_mutex_lock(&a->lock);
	a->report_due = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

/* The recorder, unless it is off. It opens the store and the capture in
 * its own thread: a long recovery does not delay registration. */
static int start_recorder(Agent *a, ErrBuf *err)
{
	const AgentConfig *cfg = a->cfg;
	RecorderConfig rc = {.dir = a->history_dir,
			     .ifaces = cfg->ifaces,
			     .n_ifaces = cfg->n_ifaces,
			     .all_ifaces = cfg->all_ifaces,
			     .sample_rate = cfg->sample_rate,
			     .snaplen = cfg->sample_snaplen ? cfg->sample_snaplen : AGENT_DEFAULT_SAMPLE_SNAPLEN,
			     .max_bytes = cfg->history_bytes ? cfg->history_bytes : AGENT_DEFAULT_HISTORY_BYTES,
			     .max_age_ns = (cfg->history_age_s ? cfg->history_age_s : AGENT_DEFAULT_HISTORY_AGE_S) *
					   NSEC_PER_SEC,
			     .on_change = recorder_changed,
			     .ctx = a};
	int n;

	if (cfg->sample_rate == 0) {
		log_info("history: " HISTORY_OFF);
		return 0;
	}
	n = snprintf(a->history_dir, sizeof(a->history_dir), "%s/history", cfg->data_dir);
	if (n < 0 || (size_t)n >= sizeof(a->history_dir))
		return errbuf_set(err, -ENAMETOOLONG, "--data: path too long");
	return recorder_start(&rc, &a->recorder, err);
}

static int agent_init(Agent *a, const AgentConfig *cfg, ErrBuf *err)
{
	pthread_condattr_t ca;
	CtlClientConfig cc = {.base_url = cfg->controller,
			      .route = &a->route,
			      .token = cfg->token,
			      .cafile = cfg->cafile,
			      .insecure = cfg->insecure,
			      .user_agent = "pcapd-agent/" PCAPD_VERSION};
	int r;

	memset(a, 0, sizeof(*a));
	a->cfg = cfg;
	/* One controller, or the list (whose first is cfg->controller). */
	a->route.urls = cfg->n_urls ? cfg->urls : &cfg->controller;
	a->route.n = cfg->n_urls ? cfg->n_urls : 1;
	a->client_cfg = cc;
	a->heartbeat_ms = cfg->heartbeat_ms ? cfg->heartbeat_ms : AGENT_DEFAULT_HEARTBEAT_MS;
	a->poll_timeout_ms = AGENTPROTO_DEFAULT_POLL_MS;
	a->online = true;
	a->need_hello = true;
	jobtable_init(&a->table);
	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->report_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* deadlines from now_ms() */
	pthread_cond_init(&a->cond, &ca);
	pthread_condattr_destroy(&ca);
	r = jobstore_open(cfg->data_dir, NULL, &a->store, err);
	if (r < 0)
		return r;
	r = ctlclient_new(&cc, &a->report_client, err);
	if (r < 0)
		return r;
	return ctlclient_new(&cc, &a->poll_client, err);
}

static void agent_done(Agent *a)
{
	/* After every job: no query runs any more. */
	recorder_free(a->recorder);
	a->recorder = NULL;
	for (size_t i = 0; i < a->table.n; i++) {
		AgentJob *job = a->table.v[i].job;

		if (job->has_thread)
			pthread_join(job->thread, NULL);
		jobrun_free(job);
	}
	a->table.n = 0;
	ctlclient_free(a->report_client);
	ctlclient_free(a->poll_client);
	samplerun_free_clients(a);
	jobstore_free(a->store);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->report_lock);
	pthread_mutex_destroy(&a->lock);
}

int agent_run(const AgentConfig *cfg, const volatile sig_atomic_t *stop, ErrBuf *err)
{
	Agent *a;
	pthread_t reporter, poller;
	bool have_reporter = false, have_poller = false;
	int r;

	r = agent_config_check(cfg, err);
	if (r < 0)
		return r;
	if (!cfg->token)
		return errbuf_set(err, -ENOKEY, "agent: no key (enrol first)");
	a = calloc(1, sizeof(*a));
	if (!a)
		return errbuf_set(err, -ENOMEM, "out of memory");
	r = ctlclient_global_init(err);
	if (r < 0) {
		free(a);
		return r;
	}
	r = agent_init(a, cfg, err);
	if (r < 0)
		goto out;
	recover(a);
	r = start_recorder(a, err);
	if (r < 0)
		goto out;
	r = -pthread_create(&reporter, NULL, reporter_main, a);
	have_reporter = r == 0;
	if (r == 0) {
		r = -pthread_create(&poller, NULL, poller_main, a);
		have_poller = r == 0;
	}
	if (r < 0)
		errbuf_set(err, r, "cannot start a thread: %s", strerror(-r));

	/* Supervise until the stop flag or a fatal error. */
	pthread_mutex_lock(&a->lock);
	if (r < 0) {
		a->fatal = r;
		a->fatal_err = *err;
	}
	while (!*stop && !a->fatal)
		wait_until(a, now_ms() + SUPERVISE_MS);
	/* Shutdown: no new jobs; running ones stop (reason "agent_shutdown"
	 * unless a user's stop came first), upload and report; the reporter
	 * sends the last report once they all finished. */
	a->exiting = true;
	for (size_t i = 0; i < a->table.n; i++) {
		AgentJob *job = a->table.v[i].job;

		if (!job->stop)
			job->stop = JOB_STOP_FLAG_SHUTDOWN;
	}
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	ctlclient_cancel(a->poll_client);
	if (have_poller)
		pthread_join(poller, NULL);
	pthread_mutex_lock(&a->lock);
	while (a->n_active > 0)
		pthread_cond_wait(&a->cond, &a->lock);
	pthread_cond_broadcast(&a->cond);
	r = a->fatal;
	if (r)
		*err = a->fatal_err;
	pthread_mutex_unlock(&a->lock);
	streamrun_stop_all(a);
	if (have_reporter)
		pthread_join(reporter, NULL);
out:
	agent_done(a);
	ctlclient_global_cleanup();
	free(a);
	return r;
}

/* SPDX-License-Identifier: MIT */
/* The agent's own key and its enrolment (agentkey.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "agent/agentkey.h"
#include "agent/backoff.h"
#include "agent/ctlclient.h"
#include "common/io.h"
#include "common/log.h"
#include "proto/agentproto.h"

#define ENROLL_PATH "/agent/v1/enroll"
#define ENROLL_TIMEOUT_MS 15000u

static int key_path(const char *data_dir, char *out, size_t cap, ErrBuf *err)
{
	int n = snprintf(out, cap, "%s/%s", data_dir, AGENTKEY_FILE);

	if (n < 0 || (size_t)n >= cap)
		return errbuf_set(err, -ENAMETOOLONG, "--data: path too long");
	return 0;
}

static bool secret_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > AGENTKEY_SECRET_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

int agentkey_load(const char *data_dir, const char *name, char ret_secret[AGENTKEY_SECRET_MAX + 1], ErrBuf *err)
{
	char path[4096];
	const char *kn = NULL, *ks = NULL;
	json_error_t jerr;
	json_t *o;
	int r;

	r = key_path(data_dir, path, sizeof(path), err);
	if (r < 0)
		return r;
	o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		struct stat st;

		if (stat(path, &st) < 0 && errno == ENOENT)
			return -ENOENT;
		return errbuf_set(err, -EINVAL, "%s: %s (move it away and enrol again)", path, jerr.text);
	}
	if (json_unpack(o, "{s:s, s:s}", "name", &kn, "secret", &ks) < 0 || !secret_ok(ks))
		r = errbuf_set(err, -EINVAL, "%s: not an agent key (move it away and enrol again)", path);
	else if (strcmp(kn, name) != 0)
		r = errbuf_set(err, -EINVAL, "%s: the key of agent '%s', not '%s' (use --name %s, or another --data)",
			       path, kn, name, kn);
	else
		snprintf(ret_secret, AGENTKEY_SECRET_MAX + 1, "%s", ks);
	json_decref(o);
	return r;
}

int agentkey_save(const char *data_dir, const char *name, const char *secret, ErrBuf *err)
{
	char path[4096], *text;
	json_t *o;
	int r;

	r = key_path(data_dir, path, sizeof(path), err);
	if (r < 0)
		return r;
	if (mkdir(data_dir, 0700) < 0 && errno != EEXIST)
		return errbuf_errno(err, "%s", data_dir);
	o = json_pack("{s:s, s:s}", "name", name, "secret", secret);
	text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
	json_decref(o);
	if (!text)
		return errbuf_set(err, -ENOMEM, "out of memory");
	{
		struct iovec iov[2] = {{.iov_base = text, .iov_len = strlen(text)}, {.iov_base = "\n", .iov_len = 1}};

		r = io_publish(&io_posix, path, iov, 2, 0600, err);
	}
	explicit_bzero(text, strlen(text));
	free(text);
	return r;
}

/* One enrolment request: 0 with the secret, -EAGAIN when the controller
 * could not be reached or answered 5xx (worth retrying), another -errno for a
 * refusal. */
static int enroll_once(CtlClient *c, const EnrollRequest *req, char ret_secret[AGENTKEY_SECRET_MAX + 1], ErrBuf *err)
{
	CtlResponse resp = {0};
	const char *secret = NULL, *name = NULL;
	char msg[200], *body;
	json_t *o;
	int r;

	o = json_pack("{s:s, s:s}", "name", req->name, "colo", req->colo);
	body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body)
		return errbuf_set(err, -ENOMEM, "out of memory");
	r = ctlclient_post_json(c, ENROLL_PATH, body, ENROLL_TIMEOUT_MS, &resp, err);
	free(body);
	if (r == -ECANCELED || r == -EKEYREJECTED || r == -EPROTO)
		return r;
	if (r < 0)
		return -EAGAIN;
	if (resp.status >= 500) {
		agentproto_error_message(resp.body, resp.n, msg, sizeof(msg));
		errbuf_set(err, -EAGAIN, "enrolment: the controller answered %ld: %s", resp.status, msg);
		ctlclient_response_done(&resp);
		return -EAGAIN;
	}
	if (resp.status != 200) {
		agentproto_error_message(resp.body, resp.n, msg, sizeof(msg));
		r = errbuf_set(err, resp.status == 409 ? -EEXIST : -EPERM,
			       "enrolment refused: the controller answered %ld%s%s", resp.status, msg[0] ? ": " : "",
			       msg);
		ctlclient_response_done(&resp);
		return r;
	}
	o = json_loadb(resp.body, resp.n, JSON_REJECT_DUPLICATES, NULL);
	if (!o || json_unpack(o, "{s:s, s:s}", "name", &name, "secret", &secret) < 0 || strcmp(name, req->name) != 0 ||
	    !secret_ok(secret))
		r = errbuf_set(err, -EPROTO, "enrolment: the controller's answer is not an agent key");
	else
		snprintf(ret_secret, AGENTKEY_SECRET_MAX + 1, "%s", secret);
	if (resp.body)
		explicit_bzero(resp.body, resp.n);
	json_decref(o);
	ctlclient_response_done(&resp);
	return r;
}

static void sleep_ms(uint32_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

int agentkey_obtain(const EnrollRequest *req, const volatile sig_atomic_t *stop,
		    char ret_secret[AGENTKEY_SECRET_MAX + 1], ErrBuf *err)
{
	CtlRoute route = {.urls = req->n_controllers ? req->controllers : &req->controller,
			  .n = req->n_controllers ? req->n_controllers : 1};
	CtlClientConfig cc = {.base_url = req->controller,
			      .route = &route,
			      .token = req->token,
			      .cafile = req->cafile,
			      .insecure = req->insecure,
			      .user_agent = "pcapd-agent/" PCAPD_VERSION};
	CtlClient *c = NULL;
	bool said = false;
	Backoff b;
	int r;

	r = agentkey_load(req->data_dir, req->name, ret_secret, err);
	if (r != -ENOENT)
		return r;
	if (!req->token || !req->token[0])
		return errbuf_set(
			err, -ENOKEY,
			"agent '%s' is not enrolled (no %s/%s): give --enroll-token TOKEN (pcapd token create "
			"--scope enroll)",
			req->name, req->data_dir, AGENTKEY_FILE);
	r = ctlclient_global_init(err);
	if (r < 0)
		return r;
	r = ctlclient_new(&cc, &c, err);
	backoff_init(&b, 500, 10000);
	while (r == 0) {
		r = enroll_once(c, req, ret_secret, err);
		if (r != -EAGAIN)
			break;
		if (!said)
			log_warning("enrolment: %s; retrying", err->msg);
		said = true;
		r = 0;
		if (*stop) {
			r = errbuf_set(err, -ECANCELED, "enrolment: stopped");
			break;
		}
		sleep_ms(backoff_next(&b, (uint32_t)now_monotonic_ns()));
	}
	ctlclient_free(c);
	ctlclient_global_cleanup();
	if (r < 0)
		return r;
	r = agentkey_save(req->data_dir, req->name, ret_secret, err);
	if (r == 0)
		log_info("agent %s enrolled with %s; its key is kept in %s/%s", req->name, ctlroute_current(&route),
			 req->data_dir, AGENTKEY_FILE);
	return r;
}

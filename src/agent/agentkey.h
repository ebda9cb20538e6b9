/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The agent's own key (docs/SECURITY.md): a secret bound to the agent's name,
 * obtained once by enrolment (POST /agent/v1/enroll with an enrolment token)
 * and kept in DATA/agent.key, mode 0600, as {"name": NAME, "secret": KEY}.
 * From then on every request of the agent carries it; the enrolment token is
 * not needed any more. `pcapd up` writes its local agent's file itself.
 */

#include <signal.h>
#include <stdbool.h>

#include "common/util.h"

#define AGENTKEY_FILE "agent.key"
#define AGENTKEY_SECRET_MAX 255

/* The key of agent name kept in data_dir: -ENOENT when there is none;
 * -EINVAL (err says why) when the file is damaged or belongs to another
 * name. */
int agentkey_load(const char *data_dir, const char *name, char ret_secret[AGENTKEY_SECRET_MAX + 1], ErrBuf *err);
/* Writes the file (created with data_dir if missing; replaced atomically). */
int agentkey_save(const char *data_dir, const char *name, const char *secret, ErrBuf *err);

typedef struct EnrollRequest {
	const char *controller;         /* base URL */
	const char *const *controllers; /* or several (AgentConfig.controllers): the next on failure */
	size_t n_controllers;
	const char *token; /* the enrolment token */
	const char *name, *colo;
	const char *cafile;
	bool insecure;
	const char *data_dir; /* where the key is kept */
} EnrollRequest;

/* The agent's key: the one kept in data_dir, else (with an enrolment token)
 * a new one from the controller, kept before it is returned. The controller
 * is retried while it cannot be reached (until *stop: -ECANCELED); a refusal
 * (401, 403, 409: the name is enrolled already) is an error with the
 * controller's words. */
int agentkey_obtain(const EnrollRequest *req, const volatile sig_atomic_t *stop,
		    char ret_secret[AGENTKEY_SECRET_MAX + 1], ErrBuf *err);

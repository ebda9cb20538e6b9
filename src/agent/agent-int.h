/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Internals shared by agent.c (threads talking to the controller) and
 * jobrun.c (one thread per capture). Not an interface for anyone else.
 *
 * Locking: Agent.lock guards the job table, every AgentJob's rep, phase and
 * cf, and the Agent fields marked so. Agent.report_lock serialises reports
 * (the reporter's and the poller's "running" report after a start), so that
 * the controller sees them in order; it is taken before Agent.lock, never
 * while holding it.
 *
 * Job phases (AgentJob.phase):
 *
 *   STARTING ──► CAPTURING ──► CAPTURED ──► UPLOADING ──► FINISHED (rep.state done|failed)
 *       └────────────┴────────────┴────────────┴──────────────► FINISHED (failed)
 *
 * STARTING and CAPTURING are both reported as "running", CAPTURED (the
 * capture ended, the spool file is complete and waits for its upload) as
 * "captured", UPLOADING as "uploading" (model/job.h, part states). A FINISHED job's
 * record is on disk before the phase is published, so an acknowledgement can
 * only come for a job whose record exists; the ack removes both.
 *
 * A sample (spec.sample) starts in CAPTURING (it has no socket to wait for)
 * and goes to FINISHED: done once the controller stored its answer, failed
 * otherwise. It writes no record before it ends: a sample cut short by an
 * agent crash is simply not answered, which the controller notices at its
 * deadline.
 */

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

#include "agent/agent.h"
#include "agent/ctlclient.h"
#include "agent/jobstore.h"
#include "agent/jobtable.h"
#include "proto/agentproto.h"
#include "agent/recorder.h"
#include "capture/rotate.h"
#include "capture/tofile.h"

typedef struct Agent Agent;

typedef enum JobPhase {
	JOB_PHASE_STARTING,
	JOB_PHASE_CAPTURING,
	JOB_PHASE_CAPTURED,
	JOB_PHASE_UPLOADING,
	JOB_PHASE_FINISHED,
} JobPhase;

typedef struct AgentJob {
	Agent *agent;
	AgentJobSpec spec;          /* what the controller asked; read-only once the thread runs */
	AgentJobReport rep;         /* under Agent.lock: what the next report says */
	JobPhase phase;             /* under Agent.lock */
	CapFile *cf;                /* under Agent.lock: set while capturing, for live counters */
	CapRotate *rot;             /* under Agent.lock: the same for a capture into local files */
	volatile sig_atomic_t stop; /* JOB_STOP_FLAG_*, 0 = capture on; read by the capture */
	pthread_t thread;
	bool has_thread;      /* thread started and not joined yet */
	uint64_t accepted_ms; /* monotonic ms when the start was taken (reports wait for the sockets) */
	JobUpload *resume;    /* an upload resumed or aborted after a restart (jobrun_resume), owned; else NULL */
} AgentJob;

struct Agent {
	const AgentConfig *cfg;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* any change below: job phases, report requests, registration, shutdown */
	pthread_mutex_t report_lock;
	JobTable table;                               /* id → AgentJob *, under lock */
	JobStore *store;                              /* its own calls need no lock: each job touches only its files */
	CtlClient *report_client;                     /* the reporter's */
	CtlClient *poll_client;                       /* the poller's (also its "running" reports) */
	size_t n_active;                              /* under lock: jobs whose thread has not finished */
	size_t n_samples;                             /* under lock: the samples among them */
	Recorder *recorder;                           /* NULL when the recorder is off; stable while jobs run */
	char history_dir[4096];                       /* DATA/history */
	CtlRoute route;                               /* the controllers, shared by every client */
	CtlClientConfig client_cfg;                   /* for the sample clients */
	CtlClient *idle_clients[AGENT_MAX_SAMPLES];   /* under lock: sample clients kept for reuse */
	size_t n_idle_clients;                        /* under lock */
	CtlClient *stream_clients[AGENT_MAX_STREAMS]; /* under lock: the live streams' (streamrun.c), NULL = free */
	size_t n_streams;                             /* under lock: stream threads running */
	bool exiting;                                 /* under lock: shutdown started */
	bool report_due;                              /* under lock: report at once (a job changed phase) */
	bool registered;                              /* under lock: a report succeeded once */
	bool online;                                  /* under lock: false during an outage (logged once) */
	bool need_hello;                              /* under lock: next report says hello (start, after an outage) */
	unsigned outage_gen;                          /* under lock: bumped by every failed request */
	uint64_t last_report_ms;                      /* under lock: monotonic time of the last report that succeeded */
	uint32_t heartbeat_ms;                        /* under lock: idle report interval */
	uint32_t poll_timeout_ms;                     /* under lock: long-poll hold asked of the controller */
	int fatal;                                    /* under lock: non-zero ends the agent with fatal_err */
	ErrBuf fatal_err;
};

/* jobrun.c: starts the job's thread (job already in the table, phase
 * STARTING, n_active counted). On failure the caller finishes the job. */
int jobrun_start(AgentJob *job, ErrBuf *err);
/* Publishes a terminal state: record saved first, then phase FINISHED under
 * the lock, report requested. Used by the job thread and for jobs refused
 * before a thread exists. */
void jobrun_finish(AgentJob *job, PartState state, JobStop reason, const char *error);
/* jobrun.c: after a restart, the thread that resumes the upload of a
 * finished capture from job->resume, or (abort) aborts the upload of a
 * capture cut short and fails the job (job in the table, phase UPLOADING,
 * n_active counted, spec.id and spec.attempt set). On failure the caller
 * finishes the job. */
int jobrun_resume(AgentJob *job, bool abort, ErrBuf *err);
/* Frees a job whose thread was joined (or never started). NULL is fine. */
void jobrun_free(AgentJob *job);
/* AgentJob.stop: why the capture is told to end early. */
#define JOB_STOP_FLAG_USER 1     /* the controller relayed a stop request */
#define JOB_STOP_FLAG_SHUTDOWN 2 /* the agent is shutting down */

/* Maps the capture engine's stop reason (and, for a stop by the flag, the
 * flag's value) to the protocol's. */
JobStop jobrun_stop_reason(StopReason why, sig_atomic_t flag);

/* The job's current report as its record on disk (not terminal: a failure
 * is only logged; jobrun_finish() writes the one that matters). */
void jobrun_save_state(AgentJob *job);

/* outputs.c: captures into files on this machine (file outputs, continuous
 * mode). Whether the start is one (then outputs_main is its thread). */
bool outputs_local(const AgentJobSpec *spec);
void *outputs_main(void *arg);
/* At start-up, for a job the agent died running: removes the file it had not
 * published yet. */
void outputs_recover(Agent *a, const char *id);
/* A classic capture's file output beside its bucket (jobrun.c): plan enters
 * its directory and checks that its name is free before the capture (*ret
 * NULL when the start has no file output); publish copies the capture's
 * spool file there after it. Failures say in *ret_failure what failed (the
 * file, or internal) and in err why. free forgets the plan (NULL is fine). */
typedef struct Outputs Outputs;
int outputs_file_plan(AgentJob *job, Outputs **ret, PartFailure *ret_failure, ErrBuf *err);
int outputs_file_publish(Outputs *o, const char *spool, PartFailure *ret_failure, ErrBuf *err);
void outputs_file_free(Outputs *o);

/* streamrun.c: a thread sending the ordered capture's file to the tap (an
 * error chunk instead when it cannot); from the poller. */
void streamrun_start(Agent *a, const AgentStreamOrder *o);
/* Cancels the streams' requests and waits for their threads (shutdown). */
void streamrun_stop_all(Agent *a);

/* samplerun.c: the thread of a sample job (jobrun_start() starts it). */
void *samplerun_main(void *arg);
/* Frees the sample clients kept for reuse (shutdown). */
void samplerun_free_clients(Agent *a);

/* A random number for backoff jitter (getrandom, else the clock). */
uint32_t agent_random_u32(void);

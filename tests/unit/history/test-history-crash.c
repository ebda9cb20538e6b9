/* SPDX-License-Identifier: MIT */
/*
 * Crash safety through the fault-injecting I/O layer (faultio.h). A small
 * recording scenario (open, 2500 packets, ticks that seal by age and apply
 * retention by size, a final seal) is first run clean, noting after each call
 * which packets are in sealed segments. Then, for every I/O call N of it:
 *
 *  - kill:  the process "dies" right before call N (nothing from N on
 *           reaches the disk: a SIGKILL between any two system calls, e.g.
 *           between a write and its rename);
 *  - power: the same, and what was never fsynced is lost too;
 *  - enospc, eio: call N fails once and the scenario goes on.
 *
 * After each, start-up recovery runs and the invariants are checked: no
 * temporary file is left; every data file has its index and reads cleanly to
 * its end (tcpdump-readable); packets are intact, unique and in order; after
 * a crash in call k, every packet sealed both before and after call k in the
 * clean run is there, and nothing else (at most the unsealed tail is lost);
 * after a single failure the recorder went on and the last packet is there;
 * and the recovered store records again.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "faultio.h"
#include "history/hist.h"
#include "histtest.h"
#include "pcap/reader.h"

#define N_PACKETS 2500u
#define STEP_NS 10000000ull /* 10 ms between packets */
#define TICK_EVERY 100u     /* a tick per simulated second */
#define N_TAIL 20u          /* packets of each of the two last rounds */
#define LAST_ID (N_PACKETS + 2 * N_TAIL - 1)
#define MAX_CALLS (N_PACKETS + N_PACKETS / TICK_EVERY + 2 * N_TAIL + 8)

typedef enum Mode { MODE_KILL, MODE_POWER, MODE_ENOSPC, MODE_EIO } Mode;

static const char *const mode_names[] = {"kill", "power", "enospc", "eio"};

/* The clean run: after call k, sealed packets are ids [lo[k], hi[k]) and the
 * I/O calls made so far number ops[k]. */
typedef struct Trace {
	unsigned n_calls;
	unsigned last_round; /* first call of the last round */
	uint32_t lo[MAX_CALLS], hi[MAX_CALLS];
	unsigned long ops[MAX_CALLS];
	unsigned long total_ops;
} Trace;

static HistConfig scenario_config(const char *dir, const IoOps *io)
{
	return (HistConfig){
		.dir = dir,
		.io = io,
		.block_packets = 16,
		.segment_age_ns = 3000000000ull,
		.max_age_ns = HIST_NO_LIMIT,
		.max_bytes = 256 * 1024, /* segments of 64 KiB; retention deletes some */
	};
}

typedef struct Pkts {
	uint32_t *ids;
	size_t n;
} Pkts;

/* Every packet of the store, through a read-only store (as a query sees them). */
static void read_all(const char *dir, Pkts *ret)
{
	HistConfig cfg = {.dir = dir, .read_only = true};
	HistQuery q = {.from_ns = 0, .to_ns = UINT64_MAX, .max_packets = HIST_MAX_QUERY_PACKETS};
	HistStore *s = NULL;
	ErrBuf err = {{0}};
	HtPkt *got = NULL;
	size_t n = 0;

	if (hist_open(&cfg, &s, NULL, &err) < 0)
		fail_msg("read-only open: %s", err.msg);
	assert_int_equal(ht_query(s, &q, &got, &n, NULL), 0);
	hist_free(s);
	ret->ids = malloc((n + 1) * sizeof(*ret->ids));
	ret->n = n;
	for (size_t i = 0; i < n; i++) {
		if (got[i].id == UINT32_MAX)
			fail_msg("packet %zu of %zu is damaged", i, n);
		if (got[i].ts != HT_BASE_TS + got[i].id * STEP_NS)
			fail_msg("packet %u has timestamp %llu", got[i].id, (unsigned long long)got[i].ts);
		if (i > 0 && got[i].id <= got[i - 1].id)
			fail_msg("packet %zu: id %u after %u", i, got[i].id, got[i - 1].id);
		ret->ids[i] = got[i].id;
	}
	free(got);
}

/* The sealed interval, for the clean run. */
static void sealed_range(const char *dir, uint32_t *lo, uint32_t *hi)
{
	Pkts p;

	read_all(dir, &p);
	*lo = p.n ? p.ids[0] : 0;
	*hi = p.n ? p.ids[p.n - 1] + 1 : 0;
	if (p.n && p.n != *hi - *lo)
		fail_msg("clean run: sealed packets are not contiguous");
	free(p.ids);
}

static unsigned pcap_names(const char *dir, char *buf, size_t cap)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t o = 0;
	unsigned n = 0;

	buf[0] = '\0';
	while (d && (e = readdir(d)) != NULL) {
		if (strstr(e->d_name, ".pcap") && o + strlen(e->d_name) + 2 < cap) {
			o += (size_t)snprintf(buf + o, cap - o, "%s;", e->d_name);
			n++;
		}
	}
	if (d)
		closedir(d);
	return n;
}

/* The scenario's calls: TICK_EVERY adds then a tick, N_PACKETS / TICK_EVERY
 * times; then two rounds of a tick two seconds on and N_TAIL adds (a writer
 * suspended by a failure resumes in one of them); a seal last. */
typedef struct Call {
	enum { CALL_ADD, CALL_TICK, CALL_SEAL } kind;
	uint32_t id;  /* CALL_ADD */
	uint64_t now; /* CALL_TICK */
} Call;

static unsigned make_calls(Call *v, unsigned *ret_last_round)
{
	unsigned n = 0;
	uint32_t id;

	for (id = 0; id < N_PACKETS; id++) {
		v[n++] = (Call){.kind = CALL_ADD, .id = id};
		if ((id + 1) % TICK_EVERY == 0)
			v[n++] = (Call){.kind = CALL_TICK, .now = HT_BASE_TS + (id + 1) * STEP_NS};
	}
	for (unsigned round = 0; round < 2; round++) {
		*ret_last_round = n;
		v[n++] = (Call){.kind = CALL_TICK, .now = HT_BASE_TS + id * STEP_NS + (round + 1) * 2000000000ull};
		for (unsigned k = 0; k < N_TAIL; k++, id++)
			v[n++] = (Call){.kind = CALL_ADD, .id = id};
	}
	v[n++] = (Call){.kind = CALL_SEAL};
	return n;
}

/*
 * Runs the scenario. trace != NULL: the clean run, recorded (after call c,
 * the sealed packets and the I/O calls so far). Otherwise stops after the
 * call during which the layer crashed: a dead process makes no more calls.
 */
static void run_scenario(const char *dir, FaultIo *fio, Trace *trace)
{
	static Call calls[MAX_CALLS];
	HistConfig cfg = scenario_config(dir, &fio->ops);
	HistStore *s = NULL;
	ErrBuf err;
	char names[8192], prev[8192] = "";
	unsigned last_round, n = make_calls(calls, &last_round);

	if (hist_open(&cfg, &s, NULL, &err) < 0)
		fail_msg("scenario open: %s", err.msg);
	for (unsigned c = 0; c < n && !fio->crashed; c++) {
		switch (calls[c].kind) {
		case CALL_ADD:
			(void)ht_add(s, calls[c].id, HT_BASE_TS + calls[c].id * STEP_NS, NULL);
			break;
		case CALL_TICK:
			(void)hist_tick(s, calls[c].now, NULL);
			break;
		case CALL_SEAL:
			(void)hist_seal(s, NULL);
			break;
		}
		if (!trace)
			continue;
		trace->ops[c] = fio->calls;
		pcap_names(dir, names, sizeof(names));
		if (c > 0 && strcmp(names, prev) == 0) {
			trace->lo[c] = trace->lo[c - 1];
			trace->hi[c] = trace->hi[c - 1];
		} else {
			sealed_range(dir, &trace->lo[c], &trace->hi[c]);
			memcpy(prev, names, sizeof(prev));
		}
	}
	if (fio->crashed)
		hist_free(s); /* the dead process: every write fails */
	else
		(void)hist_close(s, NULL);
	if (trace) {
		trace->n_calls = n;
		trace->last_round = last_round;
		trace->total_ops = fio->calls;
	}
}

/* Every data file reads cleanly to its end with the pcap reader. */
static void check_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned pcaps = 0, idxs = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[4096];
		size_t l = strlen(e->d_name);

		if (e->d_name[0] == '.')
			continue;
		if (strstr(e->d_name, ".tmp"))
			fail_msg("%s left after recovery", e->d_name);
		if (l > 4 && strcmp(e->d_name + l - 4, ".idx") == 0) {
			idxs++;
			continue;
		}
		if (l > 5 && strcmp(e->d_name + l - 5, ".pcap") == 0) {
			PcapReader *rd = NULL;
			PcapRecord rec;
			ErrBuf err;
			int r;

			pcaps++;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			if (pcaprd_open(path, &rd, &err) < 0)
				fail_msg("%s: %s", path, err.msg);
			while ((r = pcaprd_next(rd, &rec, &err)) > 0)
				;
			if (r < 0 || pcaprd_truncated_tail(rd) != 0)
				fail_msg("%s does not read cleanly to its end", path);
			pcaprd_free(rd);
		}
	}
	closedir(d);
	assert_int_equal(pcaps, idxs);
}

static void clean_dir(const char *dir)
{
	ht_rmdir(dir);
	if (mkdir(dir, 0755) < 0)
		abort();
}

/* Recovery, the invariants, and one more packet recorded. */
static void recover_and_check(const char *dir, const Trace *t, Mode mode, unsigned long n, unsigned call,
			      const char *failed_op)
{
	HistConfig cfg = scenario_config(dir, NULL);
	HistOpenReport rep;
	HistStore *s = NULL;
	ErrBuf err = {{0}};
	Pkts got;

	if (hist_open(&cfg, &s, &rep, &err) < 0)
		fail_msg("%s at call %lu: recovery: %s", mode_names[mode], n, err.msg);
	hist_free(s);
	check_files(dir);
	read_all(dir, &got);
	if (mode == MODE_KILL || mode == MODE_POWER) {
		/* Crashed during scenario call `call`: between the states before and after it. */
		uint32_t lo0 = call > 0 ? t->lo[call - 1] : 0, hi0 = call > 0 ? t->hi[call - 1] : 0;
		uint32_t lo1 = t->lo[call], hi1 = t->hi[call];
		uint32_t must_lo = lo0 > lo1 ? lo0 : lo1, must_hi = hi0 < hi1 ? hi0 : hi1;
		uint32_t may_lo = lo0 < lo1 ? lo0 : lo1, may_hi = hi0 > hi1 ? hi0 : hi1;
		size_t have = 0;

		if (hi0 == 0) /* nothing sealed before: nothing is required */
			must_lo = must_hi = 0;
		for (size_t i = 0; i < got.n; i++) {
			if (got.ids[i] < may_lo || got.ids[i] >= may_hi)
				fail_msg("%s at I/O call %lu (scenario call %u): packet %u was never sealed "
					 "(sealed: %u..%u before, %u..%u after)",
					 mode_names[mode], n, call, got.ids[i], lo0, hi0, lo1, hi1);
			if (got.ids[i] >= must_lo && got.ids[i] < must_hi)
				have++;
		}
		if (must_hi > must_lo && have != must_hi - must_lo)
			fail_msg("%s at I/O call %lu (scenario call %u): %zu of the sealed packets %u..%u survived",
				 mode_names[mode], n, call, have, must_lo, must_hi);
	} else if (call < t->last_round) {
		/* After one failure, recording resumes within a round. */
		if (got.n == 0 || got.ids[got.n - 1] != LAST_ID)
			fail_msg("%s at I/O call %lu (%s, scenario call %u of %u): the recorder did not go on "
				 "(last packet %u)",
				 mode_names[mode], n, failed_op, call, t->n_calls, got.n ? got.ids[got.n - 1] : 0);
	}
	free(got.ids);
	/* The recovered store records again. */
	(void)failed_op;
	if (hist_open(&cfg, &s, NULL, &err) < 0)
		fail_msg("reopen: %s", err.msg);
	assert_int_equal(ht_add(s, 100000, HT_BASE_TS + 100000 * STEP_NS, &err), 0);
	assert_int_equal(hist_close(s, &err), 0);
	read_all(dir, &got);
	assert_true(got.n > 0 && got.ids[got.n - 1] == 100000);
	free(got.ids);
}

static void run_mode(Mode mode)
{
	char dir[64];
	static Trace t;
	FaultIo fio;
	unsigned long checked = 0;

	ht_tmpdir(dir, sizeof(dir));
	fault_init(&fio);
	run_scenario(dir, &fio, &t);
	print_message("# clean run: %u calls, %lu I/O calls, sealed %u..%u at the end\n", t.n_calls, t.total_ops,
		      t.lo[t.n_calls - 1], t.hi[t.n_calls - 1]);
	assert_true(t.hi[t.n_calls - 1] == LAST_ID + 1);
	assert_true(t.lo[t.n_calls - 1] > 0); /* retention deleted something */
	for (unsigned long n = 1; n <= t.total_ops; n++) {
		unsigned call = 0;

		clean_dir(dir);
		fault_init(&fio);
		fio.fail_at = n;
		fio.crash = mode == MODE_KILL || mode == MODE_POWER;
		fio.fail_error = mode == MODE_EIO ? -EIO : -ENOSPC;
		run_scenario(dir, &fio, NULL);
		if (mode == MODE_POWER)
			fault_power_cut(&fio);
		while (call + 1 < t.n_calls && t.ops[call] < n)
			call++; /* the call during which I/O call n was made */
		recover_and_check(dir, &t, mode, n, call, fio.failed_op ? fio.failed_op : "?");
		checked++;
	}
	print_message("# %s: %lu fault points checked\n", mode_names[mode], checked);
	ht_rmdir(dir);
}

static void test_kill(void **state)
{
	(void)state;
	run_mode(MODE_KILL);
}

static void test_power(void **state)
{
	(void)state;
	run_mode(MODE_POWER);
}

static void test_enospc(void **state)
{
	(void)state;
	run_mode(MODE_ENOSPC);
}

static void test_eio(void **state)
{
	(void)state;
	run_mode(MODE_EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill),
		cmocka_unit_test(test_power),
		cmocka_unit_test(test_enospc),
		cmocka_unit_test(test_eio),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

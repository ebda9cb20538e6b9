/* SPDX-License-Identifier: MIT */
/*
 * The history store through its interface: queries against a brute-force
 * answer (windows, filters, limits, newest first), window edges, what a
 * writer and a read-only store see, sealing by size and age, partial blocks,
 * retention by age and size, a full disk and the resumption after it,
 * start-up recovery of each kind of damage, the directory lock, several link
 * types, and queries running while packets are added.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
#include "filter/filter.h"
#include "history/hist.h"
#include "histtest.h"
#include "pcap/reader.h"

#define MS 1000000ull
#define SEC 1000000000ull

static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static HistStore *open_store(const char *dir, HistConfig *cfg, HistOpenReport *rep)
{
	HistStore *s = NULL;
	ErrBuf err = {{0}};

	cfg->dir = dir;
	if (hist_open(cfg, &s, rep, &err) < 0)
		fail_msg("hist_open %s: %s", dir, err.msg);
	return s;
}

static HistConfig small_config(void)
{
	return (HistConfig){
		.block_packets = 8,
		.segment_bytes = 64 * 1024,
		.segment_age_ns = HIST_NO_LIMIT,
		.max_age_ns = HIST_NO_LIMIT,
		.max_bytes = HIST_NO_LIMIT,
	};
}

static void add(HistStore *s, uint32_t id, uint64_t ts)
{
	ErrBuf err = {{0}};

	if (ht_add(s, id, ts, &err) < 0)
		fail_msg("hist_add %u: %s", id, err.msg);
}

static void parse_filter(Filter *f, const char *src, const char *dst, const char *dport, const char *proto, bool both,
			 const char *expr)
{
	FilterClause c;
	ErrBuf err;

	filter_clause_init(&c);
	if (src)
		assert_int_equal(filter_parse_addrs("src", src, strlen(src), &c.src, &err), 0);
	if (dst)
		assert_int_equal(filter_parse_addrs("dst", dst, strlen(dst), &c.dst, &err), 0);
	if (dport)
		assert_int_equal(filter_parse_ports("dport", dport, strlen(dport), &c.dport, &err), 0);
	if (proto)
		assert_int_equal(filter_parse_proto("proto", proto, strlen(proto), &c.proto, &err), 0);
	c.both_directions = both;
	if (src || dst || dport || proto)
		assert_int_equal(filter_add_clause(f, &c, &err), 0);
	else
		filter_clause_done(&c);
	if (expr)
		assert_int_equal(filter_set_expr(f, expr, strlen(expr), &err), 0);
}

typedef struct Stored {
	uint32_t id;
	uint64_t ts;
} Stored;

/* The answer as it must be: newest max matches in time order. */
static size_t expected(const Stored *all, size_t n, const HistQuery *q, uint32_t snaplen, Stored *out)
{
	CbpfProgram prog = {0};
	ErrBuf err;
	size_t k = 0, m = 0;
	Stored *hits = malloc((n + 1) * sizeof(*hits));
	bool filtered = q->filter && (q->filter->n_clauses || q->filter->bpf_expr);

	if (filtered)
		assert_int_equal(filter_compile(q->filter, 1, 65535, &prog, &err), 0);
	for (size_t i = 0; i < n; i++) {
		uint8_t fr[HT_FRAME_MAX];
		uint32_t len = ht_frame(all[i].id, fr);

		if (all[i].ts < q->from_ns || all[i].ts > q->to_ns)
			continue;
		if (filtered && !filter_match(&prog, 1, fr, len < snaplen ? len : snaplen, len))
			continue;
		hits[k++] = all[i];
	}
	/* all[] is in time order (unique timestamps): the newest are last. */
	for (size_t i = k > q->max_packets ? k - q->max_packets : 0; i < k; i++)
		out[m++] = hits[i];
	free(hits);
	cbpf_program_free(&prog);
	return m;
}

static int cmp_stored(const void *a, const void *b)
{
	const Stored *x = a, *y = b;

	return x->ts < y->ts ? -1 : x->ts > y->ts;
}

static void check_query(HistStore *s, const Stored *all, size_t n, const HistQuery *q, const char *what)
{
	Stored *want = malloc((n + 1) * sizeof(*want));
	size_t nw = expected(all, n, q, 160, want), ng = 0;
	HistQueryResult res;
	HtPkt *got = NULL;

	assert_int_equal(ht_query(s, q, &got, &ng, &res), 0);
	if (ng != nw)
		fail_msg("%s: %zu packets, want %zu (window %llu..%llu, max %llu)", what, ng, nw,
			 (unsigned long long)(q->from_ns - HT_BASE_TS), (unsigned long long)(q->to_ns - HT_BASE_TS),
			 (unsigned long long)q->max_packets);
	for (size_t i = 0; i < ng; i++) {
		if (got[i].id != want[i].id || got[i].ts != want[i].ts)
			fail_msg("%s: packet %zu is id %u at %llu, want id %u at %llu", what, i, got[i].id,
				 (unsigned long long)got[i].ts, want[i].id, (unsigned long long)want[i].ts);
	}
	assert_int_equal(res.packets, ng);
	free(got);
	free(want);
}

/* ------------------------------------------------------------ queries */

static void test_query_bruteforce(void **state)
{
	static const struct {
		const char *src, *dst, *dport, *proto, *expr;
		bool both;
	} filters[] = {
		{NULL, NULL, NULL, NULL, NULL, false},
		{NULL, "192.0.2.5", NULL, NULL, NULL, false},
		{"10.0.3.0/24", NULL, NULL, NULL, NULL, false},
		{NULL, NULL, "53", NULL, NULL, false},
		{NULL, NULL, NULL, "tcp", NULL, false},
		{NULL, "2001:db8:1::/64", NULL, "udp", NULL, false},
		{"192.0.2.7", NULL, NULL, NULL, NULL, true},
		{NULL, NULL, NULL, NULL, "udp and dst port 53", false},
		{"10.0.1.1", "192.0.2.0-192.0.2.3", "80", "tcp", NULL, false},
		{NULL, "198.51.100.1", NULL, NULL, NULL, false},
	};
	char dir[64];
	HistConfig cfg = small_config();
	HistStore *s, *ro;
	Stored all[3000];
	size_t n = 0;

	(void)state;
	ht_tmpdir(dir, sizeof(dir));
	s = open_store(dir, &cfg, NULL);
	for (uint32_t id = 0; id < 3000; id++) {
		/* Mostly in order, sometimes a little late (as across workers). */
		uint64_t ts = HT_BASE_TS + id * MS + (id % 17 == 3 ? 0 : 2 * MS) + id % 7;

		all[n++] = (Stored){id, ts};
		add(s, id, ts);
	}
	qsort(all, n, sizeof(all[0]), cmp_stored);
	assert_int_equal(hist_seal(s, NULL), 0);
	ro = open_store(dir, &(HistConfig){.read_only = true}, NULL);
	for (unsigned round = 0; round < 300; round++) {
		Filter f = {0};
		uint64_t a = HT_BASE_TS + rnd() % (3100 * MS), b = a + rnd() % (1500 * MS);
		HistQuery q = {.from_ns = a, .to_ns = b, .filter = &f};
		size_t fi = rnd() % (sizeof(filters) / sizeof(filters[0]));
		char what[64];

		parse_filter(&f, filters[fi].src, filters[fi].dst, filters[fi].dport, filters[fi].proto,
			     filters[fi].both, filters[fi].expr);
		q.max_packets = (uint64_t[]){1, 7, 100, 10000}[rnd() % 4];
		snprintf(what, sizeof(what), "round %u filter %zu", round, fi);
		check_query(s, all, n, &q, what);
		check_query(ro, all, n, &q, what);
		filter_done(&f);
	}
	hist_free(ro);
	assert_int_equal(hist_close(s, NULL), 0);
	ht_rmdir(dir);
}

static void test_window_edges(void **state)
{
	char dir[64];
	HistConfig cfg = small_config();
	HistStore *s;
	Stored all[100];
	HistQuery q = {.max_packets = 1000};

	(void)state;
	ht_tmpdir(dir, sizeof(dir));
	s = open_store(dir, &cfg, NULL);
	for (uint32_t id = 0; id < 100; id++) {
		all[id] = (Stored){id, HT_BASE_TS + id * SEC};
		add(s, id, all[id].ts);
	}
	assert_int_equal(hist_seal(s, NULL), 0);
	/* Both ends included, to the nanosecond. */
	q.from_ns = HT_BASE_TS + 10 * SEC;
	q.to_ns = HT_BASE_TS + 20 * SEC;
	check_query(s, all, 100, &q, "both edges on packets");
	q.from_ns++;
	q.to_ns--;
	check_query(s, all, 100, &q, "edges one ns inside");
	q.from_ns = q.to_ns = HT_BASE_TS + 50 * SEC;
	check_query(s, all, 100, &q, "a window of one instant");
	q.from_ns = 0;
	q.to_ns = HT_BASE_TS - 1;
	check_query(s, all, 100, &q, "before everything");
	q.from_ns = HT_BASE_TS + 100 * SEC;
	q.to_ns = UINT64_MAX;
	check_query(s, all, 100, &q, "after everything");
	q.from_ns = 0;
	q.max_packets = 10;
	check_query(s, all, 100, &q, "the newest ten of all");
	q.from_ns = 2;
	q.to_ns = 1;
	assert_int_equal(hist_query(s, &q, 1, NULL, NULL), -EINVAL);
	q.from_ns = 0;
	q.max_packets = 0;
	assert_int_equal(hist_query(s, &q, 1, NULL, NULL), -EINVAL);
	q.max_packets = HIST_MAX_QUERY_PACKETS + 1;
	assert_int_equal(hist_query(s, &q, 1, NULL, NULL), -EINVAL);
	{
		Filter f = {0};
		ErrBuf err = {{0}};

		parse_filter(&f, NULL, NULL, NULL, NULL, false, "this is not tcpdump");
		q.max_packets = 1;
		q.filter = &f;
		assert_int_equal(hist_query(s, &q, 1, NULL, &err), -EINVAL);
		print_message("# %s\n", err.msg);
		filter_done(&f);
	}
	assert_int_equal(hist_close(s, NULL), 0);
	ht_rmdir(dir);
}

/* Open segments: full blocks at once, partial ones after block_flush_ns, to
 * the writer's queries only; sealed by age; then read-only stores see them. */
static void test_visibility_and_age(void **state)
{
	char dir[64];
	HistConfig cfg = small_config();
	HistStore *s, *ro;
	HistQuery q = {.from_ns = 0, .to_ns = UINT64_MAX, .max_packets = 1000};
	HtPkt *got = NULL;
	size_t n = 0;
	HistStats st;
	uint64_t t0 = HT_BASE_TS;

	(void)state;
	ht_tmpdir(dir, sizeof(dir));
	cfg.segment_age_ns = 60 * SEC;
	s = open_store(dir, &cfg, NULL);
	for (uint32_t id = 0; id < 11; id++)
		add(s, id, t0 + id * MS);
	assert_int_equal(ht_query(s, &q, &got, &n, NULL), 0);
	assert_int_equal(n, 8); /* one full block */
	free(got);
	assert_int_equal(hist_tick(s, t0 + 500 * MS, NULL), 0);
	assert_int_equal(ht_query(s, &q, &got, &n, NULL), 0);
	assert_int_equal(n, 8);
	free(got);
	assert_int_equal(hist_tick(s, t0 + 1100 * MS, NULL), 0);
	assert_int_equal(ht_query(s, &q, &got, &n, NULL), 0);
	assert_int_equal(n, 11);
	free(got);
	ro = open_store(dir, &(HistConfig){.read_only = true}, NULL);
	assert_int_equal(ht_query(ro, &q, &got, &n, NULL), 0);
	assert_int_equal(n, 0);
	free(got);
	hist_free(ro);
	assert_int_equal(ht_count(dir, ".tmp"), 1);
	assert_int_equal(hist_stats(s, &st, NULL), 0);
	assert_int_equal(st.open_segments, 1);
	assert_int_equal(st.segments, 0);
	assert_int_equal(st.packets, 11);
	assert_true(st.recording);
	/* 60 s after its first packet: sealed. */
	assert_int_equal(hist_tick(s, t0 + 59 * SEC, NULL), 0);
	assert_int_equal(ht_count(dir, ".pcap"), 0);
	assert_int_equal(hist_tick(s, t0 + 60 * SEC, NULL), 0);
	assert_int_equal(ht_count(dir, ".pcap"), 1);
	assert_int_equal(ht_count(dir, ".idx"), 1);
	assert_int_equal(ht_count(dir, ".tmp"), 0);
	ro = open_store(dir, &(HistConfig){.read_only = true}, NULL);
	assert_int_equal(ht_query(ro, &q, &got, &n, NULL), 0);
	assert_int_equal(n, 11);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(got[i].id, i);
		assert_int_equal(got[i].caplen, got[i].origlen < 160 ? got[i].origlen : 160);
	}
	free(got);
	assert_int_equal(hist_stats(ro, &st, NULL), 0);
	assert_int_equal(st.segments, 1);
	assert_int_equal(st.packets, 11);
	assert_int_equal(st.first_ts, t0);
	assert_int_equal(st.last_ts, t0 + 10 * MS);
	assert_false(st.recording);
	hist_free(ro);
	/* Sealed by size: 64 KiB (hist_add queues the publication; the tick
	 * that follows, well before any segment's 60 s, publishes it). */
	for (uint32_t id = 100; id < 1000; id++)
		add(s, id, t0 + 61 * SEC + id * MS);
	assert_int_equal(hist_tick(s, t0 + 62 * SEC, NULL), 0);
	assert_true(ht_count(dir, ".pcap") >= 3);
	assert_int_equal(hist_close(s, NULL), 0);
	assert_int_equal(ht_count(dir, ".tmp"), 0);
	ht_rmdir(dir);
}

/* ------------------------------------------------------------ retention */

static void test_retention(void **state)
{
	char dir[64];
	HistConfig cfg = small_config();
	HistStore *s;
	HistStats st;
	HistQuery q = {.from_ns = 0, .to_ns = UINT64_MAX, .max_packets = 100000};
	HtPkt *got = NULL;
	size_t n = 0;
	uint32_t id = 0;

	(void)state;
	ht_tmpdir(dir, sizeof(dir));
	/* By size: 256 KiB in all, so 64 KiB segments. */
	cfg.max_bytes = 256 * 1024;
	cfg.segment_bytes = 0;
	s = open_store(dir, &cfg, NULL);
	for (; id < 6000; id++) {
		add(s, id, HT_BASE_TS + id * MS);
		if (id % 100 == 99)
			assert_int_equal(hist_tick(s, HT_BASE_TS + id * MS, NULL), 0);
	}
	/* The partial block is written a second later. */
	assert_int_equal(hist_tick(s, HT_BASE_TS + id * MS + SEC, NULL), 0);
	assert_int_equal(hist_stats(s, &st, NULL), 0);
	print_message("# %llu segments, %llu bytes on disk, %llu packets\n", (unsigned long long)st.segments,
		      (unsigned long long)st.disk_bytes, (unsigned long long)st.packets);
	assert_true(st.disk_bytes <= 256 * 1024 + 64 * 1024);
	assert_true(st.packets < 6000);
	/* What is left is the newest, without a gap. */
	assert_int_equal(ht_query(s, &q, &got, &n, NULL), 0);
	assert_true(n > 1000);
	for (size_t i = 0; i < n; i++)
		if (got[i].id != 6000 - n + i)
			fail_msg("packet %zu of %zu: id %u, want %zu", i, n, got[i].id, 6000 - n + i);
	free(got);
	assert_int_equal(hist_close(s, NULL), 0);

	/* By age: a day later only the newest sealed segment stays. */
	cfg = small_config();
	cfg.max_age_ns = 3600 * SEC;
	s = open_store(dir, &cfg, NULL);
	assert_int_equal(hist_tick(s, HT_BASE_TS + 5000 * SEC, NULL), 0);
	assert_int_equal(hist_stats(s, &st, NULL), 0);
	assert_int_equal(st.segments, 1);
	assert_int_equal(ht_count(dir, ".pcap"), 1);
	assert_int_equal(ht_count(dir, ".idx"), 1);
	/* Newer data arrives: the old segment goes, the new one stays. */
	for (uint32_t k = 0; k < 20; k++)
		add(s, id + k, HT_BASE_TS + 4000 * SEC + k * MS);
	assert_int_equal(hist_seal(s, NULL), 0);
	assert_int_equal(hist_tick(s, HT_BASE_TS + 4000 * SEC, NULL), 0);
	assert_int_equal(ht_query(s, &q, &got, &n, NULL), 0);
	assert_int_equal(n, 20);
	assert_int_equal(got[0].id, id);
	free(got);
	assert_int_equal(ht_count(dir, ".pcap"), 1);
	assert_int_equal(hist_close(s, NULL), 0);
	ht_rmdir(dir);
}

/* ------------------------------------------------------------ full disk */

static void test_full_disk(void **state)
{
	char dir[64];
	HistConfig cfg = small_config();
	FaultIo fio;
	HistStore *s;
	HistStats st;
	ErrBuf err = {{0}};
	HistQuery q = {.from_ns = 0, .to_ns = UINT64_MAX, .max_packets = 100000};
	HtPkt *got = NULL;
	size_t n = 0;
	uint32_t id;
	int r = 0;

	(void)state;
	ht_tmpdir(dir, sizeof(dir));
	fault_init(&fio);
	cfg.io = &fio.ops;
	s = open_store(dir, &cfg, NULL);
	for (id = 0; id < 100; id++)
		add(s, id, HT_BASE_TS + id * MS);
	fio.full = true;
	for (; id < 200 && r == 0; id++)
		r = ht_add(s, id, HT_BASE_TS + id * MS, &err);
	assert_int_equal(r, -ENOSPC);
	print_message("# %s\n", err.msg);
	assert_non_null(strstr(err.msg, dir));
	/* Suspended: refused at once, counted. */
	assert_int_equal(ht_add(s, 1000, HT_BASE_TS + 1000 * MS, &err), -ENOSPC);
	assert_int_equal(hist_stats(s, &st, NULL), 0);
	assert_false(st.recording);
	assert_int_equal(st.error, -ENOSPC);
	assert_true(st.dropped >= 2);
	assert_non_null(strstr(st.error_msg, "block write"));
	/* Still full a second later: retried, fails again. */
	assert_int_equal(hist_tick(s, HT_BASE_TS + 2 * SEC, NULL), 0);
	r = 0;
	for (uint32_t k = 0; k < 20 && r == 0; k++)
		r = ht_add(s, 2000 + k, HT_BASE_TS + 2 * SEC + k, NULL);
	assert_int_equal(r, -ENOSPC);
	/* Space is back: the next retry resumes. */
	fio.full = false;
	assert_int_equal(ht_add(s, 3000, HT_BASE_TS + 3 * SEC, NULL), -ENOSPC);
	assert_int_equal(hist_tick(s, HT_BASE_TS + 4 * SEC, NULL), 0);
	for (id = 5000; id < 5100; id++)
		add(s, id, HT_BASE_TS + 5 * SEC + id * MS);
	assert_int_equal(hist_stats(s, &st, NULL), 0);
	assert_true(st.recording);
	assert_int_equal(hist_close(s, &err), 0);
	assert_int_equal(ht_count(dir, ".tmp"), 0);
	/* What was written before is whole, and what came after is there. */
	s = open_store(dir, &(HistConfig){.read_only = true}, NULL);
	assert_int_equal(ht_query(s, &q, &got, &n, NULL), 0);
	/* 0..95 in whole blocks; 96..103 were the block that failed. */
	assert_int_equal(n, 96 + 100);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(got[i].id, i < 96 ? i : 5000 + i - 96);
	free(got);
	assert_int_equal(hist_stats(s, &st, NULL), 0);
	assert_int_equal(st.unreadable, 0);
	hist_free(s);
	ht_rmdir(dir);
}

/* ------------------------------------------------------------ recovery */

static void make_history(const char *dir, uint32_t first, uint32_t count)
{
	HistConfig cfg = small_config();
	HistStore *s = open_store(dir, &cfg, NULL);

	for (uint32_t id = first; id < first + count; id++)
		add(s, id, HT_BASE_TS + id * MS);
	assert_int_equal(hist_close(s, NULL), 0);
}

static const char *first_named(const char *dir, const char *suffix, char *out, size_t cap)
{
	char cmd[256];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ls %s | grep -e '%s$' | head -n 1", dir, suffix);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, (int)cap, p));
	pclose(p);
	out[strcspn(out, "\n")] = '\0';
	return out;
}

static void write_bytes(const char *dir, const char *name, const void *p, size_t n, bool append)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static void check_all(const char *dir, uint32_t count)
{
	HistStore *s = open_store(dir, &(HistConfig){.read_only = true}, NULL);
	HistQuery q = {.from_ns = 0, .to_ns = UINT64_MAX, .max_packets = 100000};
	HtPkt *got = NULL;
	size_t n = 0;

	assert_int_equal(ht_query(s, &q, &got, &n, NULL), 0);
	assert_int_equal(n, count);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(got[i].id, i);
	free(got);
	hist_free(s);
}

static void test_recovery(void **state)
{
	char dir[64], name[128], path[256], other[128];
	HistConfig cfg = small_config();
	HistOpenReport rep;
	HistStore *s;
	struct stat st;
	uint8_t junk[37];

	(void)state;
	memset(junk, 0xff, sizeof(junk)); /* never a valid record: nanoseconds >= 1e9 */
	ht_tmpdir(dir, sizeof(dir));
	make_history(dir, 0, 1000);
	assert_true(ht_count(dir, ".pcap") >= 3);

	/* A missing index is rebuilt. */
	first_named(dir, ".idx", name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(unlink(path), 0);
	s = open_store(dir, &cfg, &rep);
	assert_int_equal(rep.rebuilt, 1);
	assert_int_equal(stat(path, &st), 0);
	hist_free(s);
	check_all(dir, 1000);

	/* A damaged one too. */
	write_bytes(dir, name, junk, sizeof(junk), false);
	s = open_store(dir, &cfg, &rep);
	assert_int_equal(rep.rebuilt, 1);
	hist_free(s);
	check_all(dir, 1000);

	/* Unpublished files go; an orphan index goes; strangers stay. */
	write_bytes(dir, "open-000000000099.pcap.tmp", junk, sizeof(junk), false);
	write_bytes(dir, "seg-000000000098-01700000000000000000-01700000000000000001.idx.tmp", junk, 3, false);
	write_bytes(dir, "seg-000000000097-01700000000000000000-01700000000000000001.idx", junk, 3, false);
	write_bytes(dir, "notes.txt", junk, 3, false);
	write_bytes(dir, "seg-000000000096-01700000000000000000-01700000000000000001.pcap", junk, 30, false);
	s = open_store(dir, &cfg, &rep);
	assert_int_equal(rep.removed_temp, 2);
	assert_int_equal(rep.removed_orphan, 1);
	assert_int_equal(rep.unreadable, 1);
	assert_int_equal(ht_count(dir, ".tmp"), 0);
	assert_int_equal(ht_count(dir, ".txt"), 1);
	/* Sequence numbers continue past everything seen. */
	add(s, 1000, HT_BASE_TS + 1000 * MS);
	assert_int_equal(hist_close(s, NULL), 0);
	first_named(dir, "-01700000001000000000-01700000001000000000.pcap", other, sizeof(other));
	assert_int_equal(strncmp(other, "seg-000000000100-", 17), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, other);
	unlink(path);
	path[strlen(path) - 4] = '\0';
	strcat(path, "idx");
	unlink(path);
	snprintf(path, sizeof(path), "%s/seg-000000000096-01700000000000000000-01700000000000000001.pcap", dir);
	unlink(path);

	/* A data file that ends in a cut-short record: cut back, re-indexed,
	 * renamed if its time range changed. */
	first_named(dir, ".pcap", name, sizeof(name));
	write_bytes(dir, name, junk, sizeof(junk), true);
	s = open_store(dir, &cfg, &rep);
	assert_int_equal(rep.truncated, 1);
	assert_int_equal(rep.rebuilt, 1);
	hist_free(s);
	check_all(dir, 1000);

	/* Only a header: removed. */
	{
		uint8_t hdr[24];
		int fd;

		snprintf(path, sizeof(path), "%s/%s", dir, name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		assert_int_equal(read(fd, hdr, 24), 24);
		close(fd);
		write_bytes(dir, "seg-000000000095-01700000000000000000-01700000000000000000.pcap", hdr, 24, false);
	}
	s = open_store(dir, &cfg, &rep);
	assert_int_equal(rep.removed_empty, 1);
	hist_free(s);
	check_all(dir, 1000);

	/* A read-only store over a missing index reads the pcap, and writes nothing. */
	first_named(dir, ".idx", name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(unlink(path), 0);
	check_all(dir, 1000);
	assert_int_equal(stat(path, &st), -1);
	ht_rmdir(dir);
}

static void test_lock_and_config(void **state)
{
	char dir[64];
	HistConfig cfg = small_config(), bad;
	HistStore *s, *t = NULL;
	ErrBuf err = {{0}};

	(void)state;
	ht_tmpdir(dir, sizeof(dir));
	s = open_store(dir, &cfg, NULL);
	assert_int_equal(hist_open(&cfg, &t, NULL, &err), -EBUSY);
	print_message("# %s\n", err.msg);
	t = open_store(dir, &(HistConfig){.read_only = true}, NULL);
	assert_int_equal(ht_add(t, 1, 1, &err), -EROFS);
	hist_free(t);
	hist_free(s);
	bad = cfg;
	bad.snaplen = PCAP_MAX_SNAPLEN + 1;
	assert_int_equal(hist_open(&bad, &t, NULL, &err), -EINVAL);
	print_message("# %s\n", err.msg);
	bad = cfg;
	bad.block_packets = HIST_MAX_BLOCK_PACKETS + 1;
	assert_int_equal(hist_open(&bad, &t, NULL, &err), -EINVAL);
	bad = cfg;
	bad.segment_bytes = 1000;
	assert_int_equal(hist_open(&bad, &t, NULL, &err), -EINVAL);
	bad = cfg;
	bad.max_bytes = 1000;
	assert_int_equal(hist_open(&bad, &t, NULL, &err), -EINVAL);
	bad = (HistConfig){.read_only = true, .dir = "/nonexistent/pcapd-history"};
	assert_int_equal(hist_open(&bad, &t, NULL, &err), -ENOENT);
	print_message("# %s\n", err.msg);
	ht_rmdir(dir);
}

/* Packets of two link types: two segments, a pcapng answer. */
static void test_linktypes(void **state)
{
	char dir[64];
	HistConfig cfg = small_config();
	HistStore *s;
	HistQuery q = {.from_ns = 0, .to_ns = UINT64_MAX, .max_packets = 1000};
	HistQueryResult res;
	HtPkt *got = NULL;
	size_t n = 0;
	Filter f = {0};

	(void)state;
	ht_tmpdir(dir, sizeof(dir));
	s = open_store(dir, &cfg, NULL);
	for (uint32_t id = 0; id < 40; id++) {
		uint8_t fr[HT_FRAME_MAX];
		uint32_t len = ht_frame(id, fr);
		struct iovec part = {.iov_base = fr + 14, .iov_len = len - 14};
		HistPacket p = {
			.ts_ns = HT_BASE_TS + id, .origlen = len - 14, .linktype = 101, .parts = &part, .nparts = 1};

		if (id % 2)
			add(s, id, HT_BASE_TS + id);
		else
			assert_int_equal(hist_add(s, &p, NULL), 0);
	}
	assert_int_equal(hist_seal(s, NULL), 0);
	assert_int_equal(ht_count(dir, ".pcap"), 2);
	assert_int_equal(ht_query(s, &q, &got, &n, &res), 0);
	assert_int_equal(n, 40);
	assert_true(res.pcapng);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(got[i].linktype, i % 2 ? 1u : 101u);
	free(got);
	/* The same filter on both link types. */
	parse_filter(&f, NULL, "192.0.2.3", NULL, NULL, false, NULL);
	q.filter = &f;
	assert_int_equal(ht_query(s, &q, &got, &n, &res), 0);
	/* dst 192.0.2.<id % 13> for IPv4 ids (id % 5 != 4): 3 and 16 */
	assert_int_equal(n, 2);
	assert_int_equal(got[0].ts, HT_BASE_TS + 3);
	assert_int_equal(got[1].ts, HT_BASE_TS + 16);
	free(got);
	filter_done(&f);
	assert_int_equal(hist_close(s, NULL), 0);
	ht_rmdir(dir);
}

/* ------------------------------------------------------------ threads */

typedef struct Race {
	HistStore *s;
	volatile int stop;
	unsigned queries;
} Race;

static void *querier(void *arg)
{
	Race *r = arg;

	while (!r->stop) {
		HistQuery q = {.from_ns = 0, .to_ns = UINT64_MAX, .max_packets = 500};
		HtPkt *got = NULL;
		size_t n = 0;

		if (ht_query(r->s, &q, &got, &n, NULL) != 0)
			abort();
		for (size_t i = 0; i < n; i++)
			if (got[i].id == UINT32_MAX || (i > 0 && got[i].ts < got[i - 1].ts))
				abort();
		free(got);
		r->queries++;
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	char dir[64];
	HistConfig cfg = small_config();
	pthread_t th[2];
	Race race = {0};

	(void)state;
	ht_tmpdir(dir, sizeof(dir));
	cfg.max_bytes = 256 * 1024;
	cfg.segment_bytes = 0;
	race.s = open_store(dir, &cfg, NULL);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, querier, &race), 0);
	for (uint32_t id = 0; id < 20000; id++) {
		add(race.s, id, HT_BASE_TS + id * MS);
		if (id % 50 == 0)
			assert_int_equal(hist_tick(race.s, HT_BASE_TS + id * MS, NULL), 0);
	}
	race.stop = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	print_message("# %u queries while recording\n", race.queries);
	assert_int_equal(hist_close(race.s, NULL), 0);
	ht_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_bruteforce),   cmocka_unit_test(test_window_edges),
		cmocka_unit_test(test_visibility_and_age), cmocka_unit_test(test_retention),
		cmocka_unit_test(test_full_disk),          cmocka_unit_test(test_recovery),
		cmocka_unit_test(test_lock_and_config),    cmocka_unit_test(test_linktypes),
		cmocka_unit_test(test_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/capture, against the real kernel: the test process moves
 * into a network namespace of its own (so it needs root), creates veth pairs
 * there, sends known frames with a packet socket and checks what reaches the
 * sink, byte for byte. The namespace, and everything in it, goes away with the
 * process.
 *
 * Frames use the local experimental ethertype 0x88b5 and IPv6 is disabled in
 * the namespace, so the links carry only what a test sends.
 *
 * No test races a time limit against its frames: a capture that should see N
 * frames runs until the sink holds N (run_until), with a long time limit
 * (WAIT_NS) that only bounds how long a broken run takes to fail. Only the
 * tests of the time limit itself use short ones, and they send nothing.
 */
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "capture/capture.h"
#include "capture/rotate.h"
#include "pcap/record.h"

extern char **environ;

#define ETHERTYPE_TEST 0x88b5
#define ETHERTYPE_OTHER 0x88b6
#define MAX_PKTS 4096
#define MAX_FRAME 2048
#define WAIT_NS (60ull * 1000000000ull) /* a failure bound, never a pass condition */

/* What the test sink received. */
typedef struct Got {
	uint8_t data[MAX_FRAME];
	uint32_t caplen, origlen;
	uint64_t ts_ns;
	unsigned iface, worker;
} Got;

typedef struct TestSink {
	pthread_mutex_t lock;
	Got *pkts;
	size_t n;
	size_t blocks_done;
	int fail_at; /* packet() fails with -EIO on this packet number (1-based); 0 never */
	int bad;     /* a packet whose parts did not add up to its caplen (checked on the main thread) */
	size_t want; /* run_until(): raise *stop_flag once a block leaves n >= want */
	volatile sig_atomic_t *stop_flag;
} TestSink;

static int sink_packet(void *ctx, unsigned worker, const CapturePacket *p)
{
	TestSink *s = ctx;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	if (s->fail_at && (size_t)s->fail_at == s->n + 1) {
		r = -EIO;
	} else if (s->n < MAX_PKTS && p->caplen <= MAX_FRAME) {
		Got *g = &s->pkts[s->n++];
		size_t off = 0;

		for (unsigned i = 0; i < p->nparts; i++) {
			memcpy(g->data + off, p->parts[i].iov_base, p->parts[i].iov_len);
			off += p->parts[i].iov_len;
		}
		g->caplen = p->caplen;
		if (off != p->caplen || p->origlen < p->caplen)
			s->bad = 1;
		g->origlen = p->origlen;
		g->ts_ns = p->ts_ns;
		g->iface = p->iface;
		g->worker = worker;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

static int sink_block_done(void *ctx, unsigned worker)
{
	TestSink *s = ctx;

	(void)worker;
	pthread_mutex_lock(&s->lock);
	s->blocks_done++;
	if (s->stop_flag && s->n >= s->want)
		*s->stop_flag = 1;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static TestSink *sink_new(void)
{
	TestSink *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->pkts = calloc(MAX_PKTS, sizeof(*s->pkts));
	assert_non_null(s->pkts);
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

static void sink_free(TestSink *s)
{
	assert_int_equal(s->bad, 0);
	pthread_mutex_destroy(&s->lock);
	free(s->pkts);
	free(s);
}

/* --- the namespace ------------------------------------------------------ */

static void run_cmd(const char *const *argv)
{
	pid_t pid;
	int status;

	assert_int_equal(posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void write_sysctl(const char *path, const char *value)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	assert_true(fputs(value, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static void link_up(const char *name)
{
	const char *up[] = {"ip", "link", "set", name, "up", NULL};

	run_cmd(up);
}

static void veth_pair(const char *a, const char *b)
{
	const char *add[] = {"ip", "link", "add", a, "type", "veth", "peer", "name", b, NULL};

	run_cmd(add);
	link_up(a);
	link_up(b);
}

static int group_setup(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		fprintf(stderr, "# test-capture needs root (a network namespace and packet sockets)\n");
		return -1;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "# unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return -1;
	}
	/* /proc/sys/net shows the namespace of whoever opens it: this one. */
	write_sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	write_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	veth_pair("cap0", "peer0");
	veth_pair("cap1", "peer1");
	link_up("lo");
	return 0;
}

/* --- sending ------------------------------------------------------------ */

typedef struct Sender {
	int fd;
} Sender;

static Sender sender_open(const char *ifname)
{
	struct sockaddr_ll sll = {0};
	Sender s;

	s.fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	assert_true(s.fd >= 0);
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	assert_true(sll.sll_ifindex > 0);
	assert_int_equal(bind(s.fd, (struct sockaddr *)&sll, sizeof(sll)), 0);
	return s;
}

static void sender_send(Sender *s, const uint8_t *frame, size_t len)
{
	assert_int_equal(send(s->fd, frame, len, 0), (ssize_t)len);
}

static void sender_close(Sender *s)
{
	close(s->fd);
}

/* A frame of len bytes: MACs, ethertype, a 4-byte sequence number, then a
 * pattern that depends on it. */
static size_t make_frame(uint8_t *f, size_t len, uint16_t ethertype, uint32_t seq)
{
	static const uint8_t macs[12] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2};

	assert_true(len >= 18 && len <= MAX_FRAME);
	memcpy(f, macs, 12);
	f[12] = (uint8_t)(ethertype >> 8);
	f[13] = (uint8_t)ethertype;
	f[14] = (uint8_t)(seq >> 24);
	f[15] = (uint8_t)(seq >> 16);
	f[16] = (uint8_t)(seq >> 8);
	f[17] = (uint8_t)seq;
	for (size_t i = 18; i < len; i++)
		f[i] = (uint8_t)(i * 7 + seq);
	return len;
}

/* The same with an 802.1Q/802.1ad tag after the MACs. */
static size_t make_vlan_frame(uint8_t *f, size_t len, uint16_t tpid, uint16_t tci, uint32_t seq)
{
	uint8_t inner[MAX_FRAME];

	make_frame(inner, len - 4, ETHERTYPE_TEST, seq);
	memcpy(f, inner, 12);
	f[12] = (uint8_t)(tpid >> 8);
	f[13] = (uint8_t)tpid;
	f[14] = (uint8_t)(tci >> 8);
	f[15] = (uint8_t)tci;
	memcpy(f + 16, inner + 12, len - 16);
	return len;
}

/* IPv4/UDP from 192.0.2.1:sport to 192.0.2.2:9, so that fanout hashes differ. */
static size_t make_udp_frame(uint8_t *f, uint16_t sport, uint32_t seq)
{
	static const uint8_t head[] = {
		2,  0, 0, 0, 0, 1,  2,  0, 0, 0,   0, 2, 0x08, 0x00, 0x45, 0, 0,
		46, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1,    192,  0,    2, 2,
	};
	size_t len = sizeof(head) + 8 + 18;

	memcpy(f, head, sizeof(head));
	f[sizeof(head) + 0] = (uint8_t)(sport >> 8);
	f[sizeof(head) + 1] = (uint8_t)sport;
	f[sizeof(head) + 2] = 0;
	f[sizeof(head) + 3] = 9;
	f[sizeof(head) + 4] = 0;
	f[sizeof(head) + 5] = 26;
	f[sizeof(head) + 6] = 0;
	f[sizeof(head) + 7] = 0;
	memset(f + sizeof(head) + 8, 0, 18);
	f[len - 4] = (uint8_t)(seq >> 24);
	f[len - 3] = (uint8_t)(seq >> 16);
	f[len - 2] = (uint8_t)(seq >> 8);
	f[len - 1] = (uint8_t)seq;
	return len;
}

/* --- running a capture --------------------------------------------------- */

static const volatile sig_atomic_t no_stop = 0;

static uint64_t run_capture(Capture *c, TestSink *sink, const volatile sig_atomic_t *stop, StopReason *ret_reason)
{
	CaptureSink cs = {.packet = sink_packet, .block_done = sink_block_done, .ctx = sink};
	ErrBuf err = {{0}};
	uint64_t t0 = now_monotonic_ns();
	int r = capture_run(c, &cs, stop, ret_reason, &err);

	if (r < 0)
		fprintf(stderr, "# capture_run: %s\n", err.msg);
	assert_int_equal(r, 0);
	return now_monotonic_ns() - t0;
}

/* Runs c until the sink holds at least want packets (whole blocks: more that
 * came in the same block are counted too, so a surplus shows), or until the
 * capture's own time limit, which only bounds a failing run. */
static void run_until(Capture *c, TestSink *sink, size_t want, StopReason *ret_reason)
{
	static volatile sig_atomic_t reached;

	reached = 0;
	sink->want = want;
	sink->stop_flag = &reached;
	run_capture(c, sink, &reached, ret_reason);
	sink->stop_flag = NULL;
	if (sink->n < want)
		fprintf(stderr, "# the capture ended (%s) with %zu of %zu packets\n",
			stop_reason_to_string(*ret_reason), sink->n, want);
}

static Capture *open_capture(const char *const *ifaces, size_t n, const CaptureConfig *tmpl)
{
	CaptureConfig cfg = *tmpl;
	ErrBuf err = {{0}};
	Capture *c = NULL;
	int r;

	cfg.ifaces = ifaces;
	cfg.n_ifaces = n;
	if (!cfg.snaplen)
		cfg.snaplen = PCAP_MAX_SNAPLEN;
	if (!cfg.block_size)
		cfg.block_size = 1u << 16; /* small rings: tests run side by side */
	if (!cfg.block_count)
		cfg.block_count = 8;
	if (!cfg.block_timeout_ms)
		cfg.block_timeout_ms = 10;
	r = capture_open(&cfg, &c, &err);
	if (r < 0)
		fprintf(stderr, "# capture_open: %s\n", err.msg);
	assert_int_equal(r, 0);
	return c;
}

/* --- tests --------------------------------------------------------------- */

static void test_linktype_and_bad_iface(void **state)
{
	const char *bad[] = {"nosuch0"};
	CaptureConfig cfg = {.ifaces = bad, .n_ifaces = 1, .snaplen = 65535};
	ErrBuf err = {{0}};
	Capture *c = (Capture *)&cfg; /* must stay untouched */
	uint32_t lt = 77;

	(void)state;
	assert_int_equal(capture_iface_linktype("lo", &lt, &err), 0);
	assert_int_equal(lt, LINKTYPE_ETHERNET);
	assert_int_equal(capture_iface_linktype("cap0", &lt, &err), 0);
	assert_int_equal(lt, LINKTYPE_ETHERNET);
	assert_int_equal(capture_iface_linktype("nosuch0", &lt, &err), -ENODEV);
	assert_int_equal(lt, LINKTYPE_ETHERNET);

	assert_int_equal(capture_open(&cfg, &c, &err), -ENODEV);
	assert_ptr_equal(c, (Capture *)&cfg);
	assert_non_null(strstr(err.msg, "nosuch0"));
	assert_string_equal(err.msg, "no such interface 'nosuch0'");

	cfg.snaplen = 0;
	assert_int_equal(capture_open(&cfg, &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "snaplen"));
	cfg.snaplen = 100;
	cfg.block_size = 12345;
	assert_int_equal(capture_open(&cfg, &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "block size"));
	capture_free(NULL);
}

/* Frames of every size reach the sink once, whole, in order, with counters. */
static void test_counts_bytes_exact(void **state)
{
	static const size_t sizes[] = {60, 61, 64, 128, 333, 1000, 1500, 1514, 60, 999};
	const char *ifs[] = {"cap0"};
	CaptureConfig cfg = {.max_duration_ns = WAIT_NS};
	uint8_t frames[ARRAY_SIZE(sizes)][MAX_FRAME];
	TestSink *sink = sink_new();
	Capture *c = open_capture(ifs, 1, &cfg);
	Sender tx = sender_open("peer0");
	uint64_t total = 0, t_before, t_after;
	CaptureStats st;
	StopReason why;

	(void)state;
	t_before = now_realtime_ns();
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		make_frame(frames[i], sizes[i], ETHERTYPE_TEST, (uint32_t)i);
		sender_send(&tx, frames[i], sizes[i]);
		total += sizes[i];
	}
	t_after = now_realtime_ns();
	run_until(c, sink, ARRAY_SIZE(sizes), &why);
	assert_int_equal(why, STOP_REASON_SIGNAL);
	assert_int_equal(sink->n, ARRAY_SIZE(sizes));
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		assert_int_equal(sink->pkts[i].caplen, sizes[i]);
		assert_int_equal(sink->pkts[i].origlen, sizes[i]);
		assert_memory_equal(sink->pkts[i].data, frames[i], sizes[i]);
		assert_int_equal(sink->pkts[i].iface, 0);
		assert_true(sink->pkts[i].ts_ns >= t_before - 1000000 && sink->pkts[i].ts_ns <= t_after + 1000000);
	}
	assert_true(sink->blocks_done >= 1);
	capture_stats(c, &st);
	assert_int_equal(st.packets, ARRAY_SIZE(sizes));
	assert_int_equal(st.bytes, total);
	assert_int_equal(st.kernel_drops, 0);
	sender_close(&tx);
	capture_free(c);
	sink_free(sink);
}

/* Outgoing packets are captured too (sent on the captured interface). */
static void test_outgoing(void **state)
{
	const char *ifs[] = {"cap0"};
	CaptureConfig cfg = {.max_duration_ns = WAIT_NS};
	TestSink *sink = sink_new();
	Capture *c = open_capture(ifs, 1, &cfg);
	Sender tx = sender_open("cap0");
	uint8_t f[MAX_FRAME];
	StopReason why;

	(void)state;
	for (uint32_t i = 0; i < 5; i++)
		sender_send(&tx, f, make_frame(f, 100, ETHERTYPE_TEST, i));
	run_until(c, sink, 5, &why);
	assert_int_equal(sink->n, 5);
	assert_memory_equal(sink->pkts[4].data, f, 100);
	sender_close(&tx);
	capture_free(c);
	sink_free(sink);
}

static void check_vlan(uint16_t tpid, uint16_t tci)
{
	const char *ifs[] = {"cap0"};
	CaptureConfig cfg = {.max_duration_ns = WAIT_NS};
	TestSink *sink = sink_new();
	Capture *c = open_capture(ifs, 1, &cfg);
	Sender tx = sender_open("peer0");
	uint8_t f[MAX_FRAME];
	size_t len = make_vlan_frame(f, 200, tpid, tci, 7);
	StopReason why;

	sender_send(&tx, f, len);
	run_until(c, sink, 1, &why);
	assert_int_equal(sink->n, 1);
	assert_int_equal(sink->pkts[0].caplen, len);
	assert_int_equal(sink->pkts[0].origlen, len);
	assert_int_equal((sink->pkts[0].data[12] << 8) | sink->pkts[0].data[13], tpid);
	assert_int_equal((sink->pkts[0].data[14] << 8) | sink->pkts[0].data[15], tci);
	assert_memory_equal(sink->pkts[0].data, f, len);
	sender_close(&tx);
	capture_free(c);
	sink_free(sink);
}

static void test_vlan_8021q(void **state)
{
	(void)state;
	check_vlan(0x8100, 0x2064); /* PCP 1, VID 100 */
}

static void test_vlan_8021ad(void **state)
{
	(void)state;
	check_vlan(0x88a8, 0x0fff);
}

/* snaplen cuts the frame, the tag included, and origlen still counts it all. */
static void test_snaplen(void **state)
{
	const char *ifs[] = {"cap0"};
	CaptureConfig cfg = {.max_duration_ns = WAIT_NS, .snaplen = 64};
	TestSink *sink = sink_new();
	Capture *c = open_capture(ifs, 1, &cfg);
	Sender tx = sender_open("peer0");
	uint8_t f[MAX_FRAME], v[MAX_FRAME];
	StopReason why;

	(void)state;
	sender_send(&tx, f, make_frame(f, 1000, ETHERTYPE_TEST, 1));
	sender_send(&tx, v, make_vlan_frame(v, 500, 0x8100, 42, 2));
	run_until(c, sink, 2, &why);
	assert_int_equal(sink->n, 2);
	assert_int_equal(sink->pkts[0].caplen, 64);
	assert_int_equal(sink->pkts[0].origlen, 1000);
	assert_memory_equal(sink->pkts[0].data, f, 64);
	assert_int_equal(sink->pkts[1].caplen, 64);
	assert_int_equal(sink->pkts[1].origlen, 500);
	assert_memory_equal(sink->pkts[1].data, v, 64);
	sender_close(&tx);
	capture_free(c);
	sink_free(sink);
}

/* A loopback packet passes lo twice (out and in); it is captured once. */
static void test_loopback_once(void **state)
{
	const char *ifs[] = {"lo"};
	CaptureConfig cfg = {.max_duration_ns = WAIT_NS};
	Sender tx = sender_open("lo");
	uint8_t f[MAX_FRAME];

	(void)state;
	for (unsigned workers = 1; workers <= 2; workers++) {
		TestSink *sink = sink_new();
		Capture *c;
		StopReason why;

		cfg.workers = workers;
		c = open_capture(ifs, 1, &cfg);
		for (uint32_t i = 0; i < 20; i++)
			sender_send(&tx, f, make_udp_frame(f, (uint16_t)(2000 + i), i));
		run_until(c, sink, 20, &why);
		assert_int_equal(sink->n, 20);
		/* Twenty different ones: a packet seen twice would fill the count early. */
		for (size_t i = 0; i < sink->n; i++)
			for (size_t j = i + 1; j < sink->n; j++)
				assert_memory_not_equal(sink->pkts[i].data, sink->pkts[j].data, sink->pkts[i].caplen);
		capture_free(c);
		sink_free(sink);
	}
	sender_close(&tx);
}

static void test_packet_limit(void **state)
{
	const char *ifs[] = {"cap0"};
	CaptureConfig cfg = {.max_duration_ns = WAIT_NS, .max_packets = 4};
	TestSink *sink = sink_new();
	Capture *c = open_capture(ifs, 1, &cfg);
	Sender tx = sender_open("peer0");
	uint8_t f[MAX_FRAME];
	CaptureStats st;
	StopReason why;

	(void)state;
	for (uint32_t i = 0; i < 10; i++)
		sender_send(&tx, f, make_frame(f, 100, ETHERTYPE_TEST, i));
	run_capture(c, sink, &no_stop, &why);
	assert_int_equal(why, STOP_REASON_PACKETS);
	assert_int_equal(sink->n, 4);
	for (uint32_t i = 0; i < 4; i++)
		assert_int_equal(sink->pkts[i].data[17], i);
	capture_stats(c, &st);
	assert_int_equal(st.packets, 4);
	sender_close(&tx);
	capture_free(c);
	sink_free(sink);
}

static void test_byte_limit(void **state)
{
	const char *ifs[] = {"cap0"};
	CaptureConfig cfg = {.max_duration_ns = WAIT_NS, .max_bytes = 250};
	TestSink *sink = sink_new();
	Capture *c = open_capture(ifs, 1, &cfg);
	Sender tx = sender_open("peer0");
	uint8_t f[MAX_FRAME];
	CaptureStats st;
	StopReason why;

	(void)state;
	for (uint32_t i = 0; i < 5; i++)
		sender_send(&tx, f, make_frame(f, 100, ETHERTYPE_TEST, i));
	run_capture(c, sink, &no_stop, &why);
	assert_int_equal(why, STOP_REASON_BYTES);
	assert_int_equal(sink->n, 2);
	capture_stats(c, &st);
	assert_int_equal(st.bytes, 200);
	capture_free(c);

	/* A limit met exactly stops at once with that packet delivered. */
	sink->n = 0;
	cfg.max_bytes = 300;
	c = open_capture(ifs, 1, &cfg);
	for (uint32_t i = 0; i < 3; i++)
		sender_send(&tx, f, make_frame(f, 100, ETHERTYPE_TEST, i));
	run_capture(c, sink, &no_stop, &why);
	assert_int_equal(why, STOP_REASON_BYTES);
	assert_int_equal(sink->n, 3);
	sender_close(&tx);
	capture_free(c);
	sink_free(sink);
}

static void test_seconds_limit(void **state)
{
	const char *ifs[] = {"cap0"};
	CaptureConfig cfg = {.max_duration_ns = 250 * 1000000ull};
	TestSink *sink = sink_new();
	Capture *c = open_capture(ifs, 1, &cfg);
	StopReason why;
	uint64_t took;

	(void)state;
	took = run_capture(c, sink, &no_stop, &why);
	assert_int_equal(why, STOP_REASON_SECONDS);
	assert_int_equal(sink->n, 0);
	assert_true(took >= 250 * 1000000ull);
	assert_true(took < WAIT_NS); /* how late depends on the machine: only a bound */
	capture_free(c);
	sink_free(sink);
}

typedef struct Stopper {
	volatile sig_atomic_t *flag;
	unsigned ms;
} Stopper;

static void *stopper_thread(void *arg)
{
	Stopper *s = arg;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)s->ms * 1000000};

	nanosleep(&ts, NULL);
	*s->flag = 1;
	return NULL;
}

static void test_stop_flag(void **state)
{
	const char *ifs[] = {"cap0"};
	CaptureConfig cfg = {.max_duration_ns = WAIT_NS};
	static volatile sig_atomic_t stop;
	Stopper sp = {.flag = &stop, .ms = 150};
	pthread_t t;

	(void)state;
	for (unsigned workers = 1; workers <= 3; workers += 2) {
		TestSink *sink = sink_new();
		Capture *c;
		StopReason why;
		uint64_t took;

		stop = 0;
		cfg.workers = workers;
		c = open_capture(ifs, 1, &cfg);
		assert_int_equal(pthread_create(&t, NULL, stopper_thread, &sp), 0);
		took = run_capture(c, sink, &stop, &why);
		pthread_join(t, NULL);
		assert_int_equal(why, STOP_REASON_SIGNAL);
		assert_true(took >= 150 * 1000000ull);
		assert_true(took < WAIT_NS / 2); /* long before the time limit; how soon depends on the machine */
		capture_free(c);
		sink_free(sink);
	}
}

/* A sink failure ends the run with an error that says so. */
static void test_sink_error(void **state)
{
	const char *ifs[] = {"cap0"};
	CaptureConfig cfg = {.max_duration_ns = WAIT_NS};
	CaptureSink cs;
	TestSink *sink = sink_new();
	Capture *c = open_capture(ifs, 1, &cfg);
	Sender tx = sender_open("peer0");
	ErrBuf err = {{0}};
	uint8_t f[MAX_FRAME];
	StopReason why = STOP_REASON_NONE;

	(void)state;
	sink->fail_at = 2;
	cs = (CaptureSink){.packet = sink_packet, .block_done = sink_block_done, .ctx = sink};
	for (uint32_t i = 0; i < 3; i++)
		sender_send(&tx, f, make_frame(f, 100, ETHERTYPE_TEST, i));
	assert_int_equal(capture_run(c, &cs, &no_stop, &why, &err), -EIO);
	assert_int_equal(why, STOP_REASON_ERROR);
	assert_int_equal(sink->n, 1);
	assert_non_null(strstr(err.msg, "Input/output error"));
	sender_close(&tx);
	capture_free(c);
	sink_free(sink);
}

typedef struct Flood {
	volatile int run;
	unsigned sent;
} Flood;

static void *flood_thread(void *arg)
{
	Flood *fl = arg;
	Sender tx = sender_open("peer0");
	uint8_t f[MAX_FRAME];
	size_t len = make_frame(f, 80, ETHERTYPE_OTHER, 0);

	while (__atomic_load_n(&fl->run, __ATOMIC_RELAXED)) {
		sender_send(&tx, f, len);
		__atomic_add_fetch(&fl->sent, 1, __ATOMIC_RELAXED);
	}
	sender_close(&tx);
	return NULL;
}

/* Until the flood has sent more than `than` frames (it is a thread: on a busy
 * machine it may not have run yet). */
static unsigned flood_wait(Flood *fl, unsigned than)
{
	uint64_t t0 = now_monotonic_ns();
	unsigned n;

	while ((n = __atomic_load_n(&fl->sent, __ATOMIC_RELAXED)) <= than) {
		assert_true(now_monotonic_ns() - t0 < WAIT_NS); /* a failure bound */
		usleep(100);
	}
	return n;
}

/* Unwanted traffic flows while the sockets are set up: none of it may reach
 * the sink, whatever the moment of bind() (and of the fanout join). */
static void test_filter_before_bind(void **state)
{
	/* ldh [12]; jeq #0x88b5, accept, drop */
	struct sock_filter insns[] = {
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETHERTYPE_TEST, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 65535),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	CbpfProgram prog = {.insns = insns, .len = ARRAY_SIZE(insns)};
	const char *ifs[] = {"cap0"};
	CaptureConfig cfg = {.max_duration_ns = WAIT_NS, .filters = &prog};
	uint8_t f[MAX_FRAME];

	(void)state;
	for (unsigned workers = 1; workers <= 2; workers++) {
		for (unsigned round = 0; round < 5; round++) {
			Flood fl = {.run = 1};
			TestSink *sink = sink_new();
			Sender tx = sender_open("peer0");
			pthread_t t;
			Capture *c;
			StopReason why;
			unsigned before;

			cfg.workers = workers;
			assert_int_equal(pthread_create(&t, NULL, flood_thread, &fl), 0);
			before = flood_wait(&fl, 0); /* flowing before the sockets exist */
			c = open_capture(ifs, 1, &cfg);
			flood_wait(&fl, before); /* and still after they are bound */
			for (uint32_t i = 0; i < 3; i++)
				sender_send(&tx, f, make_frame(f, 90, ETHERTYPE_TEST, i));
			__atomic_store_n(&fl.run, 0, __ATOMIC_RELAXED);
			pthread_join(t, NULL);
			run_until(c, sink, 3, &why);
			assert_int_equal(sink->n, 3);
			for (size_t i = 0; i < sink->n; i++)
				assert_int_equal((sink->pkts[i].data[12] << 8) | sink->pkts[i].data[13],
						 ETHERTYPE_TEST);
			sender_close(&tx);
			capture_free(c);
			sink_free(sink);
		}
	}
}

static void test_two_interfaces(void **state)
{
	const char *ifs[] = {"cap0", "cap1"};
	CaptureConfig cfg = {.max_duration_ns = WAIT_NS};
	TestSink *sink = sink_new();
	Capture *c = open_capture(ifs, 2, &cfg);
	Sender tx0 = sender_open("peer0"), tx1 = sender_open("peer1");
	uint8_t f[MAX_FRAME];
	size_t per_iface[2] = {0, 0};
	StopReason why;

	(void)state;
	for (uint32_t i = 0; i < 3; i++)
		sender_send(&tx0, f, make_frame(f, 100, ETHERTYPE_TEST, i));
	for (uint32_t i = 0; i < 4; i++)
		sender_send(&tx1, f, make_frame(f, 200, ETHERTYPE_TEST, 100 + i));
	run_until(c, sink, 7, &why);
	assert_int_equal(sink->n, 7);
	for (size_t i = 0; i < sink->n; i++) {
		unsigned want = sink->pkts[i].caplen == 100 ? 0 : 1;

		assert_int_equal(sink->pkts[i].iface, want);
		per_iface[sink->pkts[i].iface]++;
	}
	assert_int_equal(per_iface[0], 3);
	assert_int_equal(per_iface[1], 4);
	assert_int_equal(capture_linktype(c, 1), LINKTYPE_ETHERNET);
	sender_close(&tx0);
	sender_close(&tx1);
	capture_free(c);
	sink_free(sink);
}

/* Two workers share each packet out by flow hash: every packet once. */
static void test_fanout(void **state)
{
	enum { N = 400 };
	const char *ifs[] = {"cap0", "cap1"};
	CaptureConfig cfg = {.max_duration_ns = WAIT_NS, .workers = 2};
	TestSink *sink = sink_new();
	Capture *c = open_capture(ifs, 2, &cfg);
	Sender tx0 = sender_open("peer0"), tx1 = sender_open("peer1");
	static uint8_t seen[2 * N];
	size_t per_worker[2] = {0, 0};
	uint8_t f[MAX_FRAME];
	StopReason why;

	(void)state;
	memset(seen, 0, sizeof(seen));
	for (uint32_t i = 0; i < N; i++) {
		sender_send(&tx0, f, make_udp_frame(f, (uint16_t)(1000 + i), i));
		sender_send(&tx1, f, make_udp_frame(f, (uint16_t)(1000 + i), N + i));
	}
	run_until(c, sink, 2 * N, &why);
	assert_int_equal(sink->n, 2 * N);
	for (size_t i = 0; i < sink->n; i++) {
		const Got *g = &sink->pkts[i];
		uint32_t seq = ((uint32_t)g->data[g->caplen - 2] << 8) | g->data[g->caplen - 1];

		assert_true(seq < 2 * N);
		assert_int_equal(seen[seq], 0);
		seen[seq] = 1;
		assert_int_equal(g->iface, seq < N ? 0 : 1);
		assert_true(g->worker < 2);
		per_worker[g->worker]++;
	}
	/* 800 flows all hashed to one worker would mean no fanout at all. */
	assert_true(per_worker[0] > 0);
	assert_true(per_worker[1] > 0);
	sender_close(&tx0);
	sender_close(&tx1);
	capture_free(c);
	sink_free(sink);
}

/* Two workers racing against one packet limit deliver exactly that many. */
static void test_fanout_packet_limit(void **state)
{
	const char *ifs[] = {"cap0"};
	CaptureConfig cfg = {.max_duration_ns = WAIT_NS, .workers = 2, .max_packets = 137};
	TestSink *sink = sink_new();
	Capture *c = open_capture(ifs, 1, &cfg);
	Sender tx = sender_open("peer0");
	uint8_t f[MAX_FRAME];
	StopReason why;

	(void)state;
	for (uint32_t i = 0; i < 300; i++)
		sender_send(&tx, f, make_udp_frame(f, (uint16_t)(3000 + i), i));
	run_capture(c, sink, &no_stop, &why);
	assert_int_equal(why, STOP_REASON_PACKETS);
	assert_int_equal(sink->n, 137);
	sender_close(&tx);
	capture_free(c);
	sink_free(sink);
}

/* --- rotating files (rotate.h) --------------------------------------------- */

#define ROT_FILES 16

/* What the file operations saw: each file read back when it was handed over. */
typedef struct RotFiles {
	CapRotateFile f[ROT_FILES];
	uint32_t first_seq[ROT_FILES]; /* sequence number of each file's first frame */
	size_t n;
	uint64_t fail_close_at; /* close() of this file index fails; 0 never */
	uint64_t fail_write_at; /* this file index cannot be written; 0 never */
	bool bad;               /* a file whose bytes did not match what close() was told */
} RotFiles;

static int rot_open(void *ctx, uint64_t index, int *ret_fd, ErrBuf *err)
{
	RotFiles *rf = ctx;
	int fd = index == rf->fail_write_at ? open("/dev/null", O_RDONLY | O_CLOEXEC)
					    : open("/tmp", O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);

	if (fd < 0 || rf->n != index - 1)
		return errbuf_set(err, -EIO, "open %llu", (unsigned long long)index);
	*ret_fd = fd;
	return 0;
}

/* Counts the classic pcap records in fd and checks the size. */
static int rot_close(void *ctx, int fd, const CapRotateFile *f, ErrBuf *err)
{
	RotFiles *rf = ctx;
	uint8_t buf[8192];
	ssize_t n = pread(fd, buf, sizeof(buf), 0);
	uint64_t records = 0;
	size_t off = 24;

	if (f->index == rf->fail_write_at)
		n = 0; /* nothing to read back */
	else if (n < 24 || (uint64_t)n != f->size)
		rf->bad = true;
	while (n >= 24 && off + 16 <= (size_t)n) {
		uint32_t caplen = (uint32_t)buf[off + 8] | (uint32_t)buf[off + 9] << 8 | (uint32_t)buf[off + 10] << 16 |
				  (uint32_t)buf[off + 11] << 24;

		if (records == 0 && rf->n < ROT_FILES)
			rf->first_seq[rf->n] = buf[off + 16 + 17];
		off += 16 + caplen;
		records++;
	}
	if (n && (off != (size_t)n || records != f->packets))
		rf->bad = true;
	close(fd);
	if (rf->n < ROT_FILES)
		rf->f[rf->n++] = *f;
	if (f->index == rf->fail_close_at)
		return errbuf_set(err, -ENOSPC, "publishing file %llu: no space", (unsigned long long)f->index);
	return 0;
}

static const CapRotateOps rot_ops = {.open = rot_open, .close = rot_close};

static CapRotate *open_rotate(RotFiles *rf, uint64_t file_size, uint64_t max_packets)
{
	static const char *ifs[] = {"cap0"};
	CapRotateConfig cfg = {
		.capture = {.ifaces = ifs,
			    .n_ifaces = 1,
			    .snaplen = PCAP_MAX_SNAPLEN,
			    .block_size = 1u << 16,
			    .block_count = 8,
			    .block_timeout_ms = 10,
			    .max_packets = max_packets,
			    .max_duration_ns = WAIT_NS},
		.format = PCAP_FORMAT_PCAP_US,
		.file_size = file_size,
		.ops = &rot_ops,
		.ctx = rf,
	};
	ErrBuf err = {{0}};
	CapRotate *r = NULL;

	if (caprot_open(&cfg, &r, &err) < 0)
		fail_msg("caprot_open: %s", err.msg);
	return r;
}

static void test_rotate_sizes(void **state)
{
	/* 100-byte frames are 116-byte records: three fit in 24 + 3 * 116 */
	RotFiles rf = {0};
	CapRotate *r = open_rotate(&rf, 24 + 3 * 116, 10);
	Sender tx = sender_open("peer0");
	uint8_t f[MAX_FRAME];
	ErrBuf err = {{0}};
	CaptureStats st;
	uint64_t files;
	StopReason why;

	(void)state;
	for (uint32_t i = 0; i < 10; i++)
		sender_send(&tx, f, make_frame(f, 100, ETHERTYPE_TEST, i));
	if (caprot_run(r, &no_stop, &why, &err) < 0)
		fail_msg("caprot_run: %s", err.msg);
	assert_int_equal(why, STOP_REASON_PACKETS);
	assert_false(rf.bad);
	assert_int_equal(rf.n, 4);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(rf.f[i].index, i + 1);
		assert_true(rf.f[i].complete);
		assert_int_equal(rf.f[i].packets, i < 3 ? 3 : 1);
		assert_true(rf.f[i].size <= 24 + 3 * 116);
		assert_int_equal(rf.first_seq[i], 3 * i); /* in order, none lost at a rotation */
	}
	caprot_stats(r, &st, &files);
	assert_int_equal(st.packets, 10);
	assert_int_equal(files, 4);
	assert_false(caprot_sink_failed(r));
	caprot_free(r);

	/* file_size 0: one file; a record larger than file_size still goes in */
	memset(&rf, 0, sizeof(rf));
	r = open_rotate(&rf, 0, 5);
	for (uint32_t i = 0; i < 5; i++)
		sender_send(&tx, f, make_frame(f, 100, ETHERTYPE_TEST, i));
	assert_int_equal(caprot_run(r, &no_stop, &why, &err), 0);
	assert_int_equal(rf.n, 1);
	assert_int_equal(rf.f[0].packets, 5);
	caprot_free(r);
	memset(&rf, 0, sizeof(rf));
	r = open_rotate(&rf, 50, 2);
	for (uint32_t i = 0; i < 2; i++)
		sender_send(&tx, f, make_frame(f, 100, ETHERTYPE_TEST, i));
	assert_int_equal(caprot_run(r, &no_stop, &why, &err), 0);
	assert_false(rf.bad);
	assert_int_equal(rf.n, 2);
	assert_int_equal(rf.f[0].packets, 1);
	assert_int_equal(rf.f[1].packets, 1);
	caprot_free(r);
	sender_close(&tx);
}

static void test_rotate_failure(void **state)
{
	/* publishing file 2 fails: the capture stops with the ops' words */
	RotFiles rf = {.fail_close_at = 2};
	CapRotate *r = open_rotate(&rf, 24 + 116, 10);
	Sender tx = sender_open("peer0");
	uint8_t f[MAX_FRAME];
	ErrBuf err = {{0}};
	StopReason why;

	(void)state;
	for (uint32_t i = 0; i < 10; i++)
		sender_send(&tx, f, make_frame(f, 100, ETHERTYPE_TEST, i));
	assert_int_equal(caprot_run(r, &no_stop, &why, &err), -ENOSPC);
	assert_int_equal(why, STOP_REASON_ERROR);
	assert_string_equal(err.msg, "publishing file 2: no space");
	assert_true(caprot_sink_failed(r));
	assert_int_equal(rf.n, 2);
	assert_true(rf.f[1].complete);
	assert_false(rf.bad);
	caprot_free(r);

	/* file 3 cannot be written: it goes back marked incomplete */
	memset(&rf, 0, sizeof(rf));
	rf.fail_write_at = 3;
	r = open_rotate(&rf, 24 + 116, 10);
	for (uint32_t i = 0; i < 10; i++)
		sender_send(&tx, f, make_frame(f, 100, ETHERTYPE_TEST, i));
	assert_true(caprot_run(r, &no_stop, &why, &err) < 0);
	assert_int_equal(why, STOP_REASON_ERROR);
	assert_true(caprot_sink_failed(r));
	assert_int_equal(rf.n, 3);
	assert_true(rf.f[0].complete && rf.f[1].complete);
	assert_false(rf.f[2].complete);
	assert_int_equal(rf.f[2].index, 3);
	assert_false(rf.bad);
	caprot_free(r);
	sender_close(&tx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_linktype_and_bad_iface),
		cmocka_unit_test(test_counts_bytes_exact),
		cmocka_unit_test(test_outgoing),
		cmocka_unit_test(test_vlan_8021q),
		cmocka_unit_test(test_vlan_8021ad),
		cmocka_unit_test(test_snaplen),
		cmocka_unit_test(test_loopback_once),
		cmocka_unit_test(test_packet_limit),
		cmocka_unit_test(test_byte_limit),
		cmocka_unit_test(test_seconds_limit),
		cmocka_unit_test(test_stop_flag),
		cmocka_unit_test(test_sink_error),
		cmocka_unit_test(test_filter_before_bind),
		cmocka_unit_test(test_two_interfaces),
		cmocka_unit_test(test_fanout),
		cmocka_unit_test(test_fanout_packet_limit),
		cmocka_unit_test(test_rotate_sizes),
		cmocka_unit_test(test_rotate_failure),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}

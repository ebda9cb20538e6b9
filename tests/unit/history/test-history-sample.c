/* SPDX-License-Identifier: MIT */
/*
 * filter_sample(): the 1-in-N random test spliced in front of a program, run
 * by cbpf_run() with a deterministic random source (exact counts), checked by
 * the kernel's rules, and attached to an AF_PACKET socket in a network
 * namespace of the test's own (as root): rate 1 passes everything, rate N
 * about one in N, and the filter behind the test still decides.
 */
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "filter/filter.h"
#include "filter/sample.h"
#include "pcap/record.h"

/* 02:..:02 <- 02:..:01, IPv4 192.0.2.1 -> 192.0.2.<dst>, UDP 1000 -> dport. */
static uint32_t udp_frame(uint8_t dst, uint16_t dport, uint8_t *out)
{
	static const uint8_t hdr[] = {2,  0, 0, 0, 0, 2,  2,  0, 0, 0,   0, 1, 0x08, 0x00, 0x45, 0, 0,
				      46, 0, 1, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1,    192,  0,    2, 0};

	memset(out, 0, 60);
	memcpy(out, hdr, sizeof(hdr));
	out[33] = dst;
	out[34] = 0x03;
	out[35] = 0xe8;
	out[36] = (uint8_t)(dport >> 8);
	out[37] = (uint8_t)dport;
	out[39] = 26;
	return 60;
}

static uint32_t counter(void *ctx)
{
	uint32_t *c = ctx;

	return (*c)++;
}

static uint32_t fixed(void *ctx)
{
	return *(uint32_t *)ctx;
}

static void compile(const char *dst, const char *dport, CbpfProgram *ret)
{
	Filter f = {0};
	FilterClause c;
	ErrBuf err;

	filter_clause_init(&c);
	assert_int_equal(filter_parse_addrs("dst", dst, strlen(dst), &c.dst, &err), 0);
	assert_int_equal(filter_parse_ports("dport", dport, strlen(dport), &c.dport, &err), 0);
	assert_int_equal(filter_add_clause(&f, &c, &err), 0);
	assert_int_equal(filter_compile(&f, LINKTYPE_ETHERNET, 160, ret, &err), 0);
	filter_done(&f);
}

static void test_shape(void **state)
{
	CbpfProgram p = {0}, in = {0}, s = {0};
	ErrBuf err = {{0}};

	(void)state;
	/* Rate 1: no test. */
	assert_int_equal(filter_sample(NULL, 1, 160, &p, &err), 0);
	assert_int_equal(p.len, 1);
	assert_int_equal(p.insns[0].code, BPF_RET | BPF_K);
	assert_int_equal(p.insns[0].k, 160);
	cbpf_program_free(&p);
	compile("192.0.2.7", "53", &in);
	assert_int_equal(filter_sample(&in, 1, 0, &p, &err), 0);
	assert_int_equal(p.len, in.len);
	assert_memory_equal(p.insns, in.insns, in.len * sizeof(*in.insns));
	cbpf_program_free(&p);
	/* Rate N: four instructions in front, the program unchanged behind. */
	assert_int_equal(filter_sample(&in, 100, 0, &s, &err), 0);
	assert_int_equal(s.len, in.len + FILTER_SAMPLE_INSNS);
	assert_int_equal(s.insns[0].code, BPF_LD | BPF_W | BPF_ABS);
	assert_int_equal(s.insns[0].k, (uint32_t)SKF_AD_OFF + SKF_AD_RANDOM);
	assert_int_equal(s.insns[1].code, BPF_ALU | BPF_MOD | BPF_K);
	assert_int_equal(s.insns[1].k, 100);
	assert_memory_equal(s.insns + FILTER_SAMPLE_INSNS, in.insns, in.len * sizeof(*in.insns));
	assert_int_equal(cbpf_check(&s, &err), 0);
	cbpf_program_free(&s);
	/* Bounds. */
	assert_int_equal(filter_sample(&in, 0, 160, &p, &err), -EINVAL);
	print_message("# %s\n", err.msg);
	assert_int_equal(filter_sample(NULL, 2, 0, &p, &err), -EINVAL);
	{
		CbpfProgram big = {.len = BPF_MAXINSNS - 3};

		big.insns = calloc(big.len, sizeof(*big.insns));
		big.insns[big.len - 1] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 1);
		assert_int_equal(filter_sample(&big, 2, 0, &p, &err), -E2BIG);
		print_message("# %s\n", err.msg);
		big.len = BPF_MAXINSNS - 4;
		big.insns[big.len - 1] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 1);
		assert_int_equal(filter_sample(&big, 2, 0, &p, &err), 0);
		assert_int_equal(p.len, BPF_MAXINSNS);
		assert_int_equal(cbpf_check(&p, &err), 0);
		cbpf_program_free(&p);
		cbpf_program_free(&big);
	}
	cbpf_program_free(&in);
}

/* With a counting random source, exactly every Nth run passes. */
static void test_cbpf_run(void **state)
{
	static const uint32_t rates[] = {1, 2, 3, 7, 100, 4294967295u};
	uint8_t fr[60];
	uint32_t len = udp_frame(7, 53, fr);
	CbpfProgram in = {0};

	(void)state;
	compile("192.0.2.7", "53", &in);
	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		for (int filtered = 0; filtered < 2; filtered++) {
			CbpfProgram p = {0};
			ErrBuf err;
			uint32_t c = 0, kept = 0;
			CbpfPacket pkt = {.data = fr, .caplen = len, .wirelen = len, .protocol = ETH_P_IP};

			assert_int_equal(filter_sample(filtered ? &in : NULL, rates[i], 160, &p, &err), 0);
			pkt.random = counter;
			pkt.random_ctx = &c;
			for (int n = 0; n < 7000; n++)
				kept += cbpf_run(&p, &pkt) == 160;
			assert_int_equal(kept, (7000 + (uint64_t)rates[i] - 1) / rates[i]); /* counts 0, N, 2N... */
			cbpf_program_free(&p);
		}
	}
	/* The filter behind the test still decides. */
	{
		CbpfProgram p = {0};
		ErrBuf err;
		uint32_t zero = 0, one = 1;
		uint8_t other[60];
		uint32_t olen = udp_frame(8, 53, other);
		CbpfPacket pkt = {.data = fr, .caplen = len, .wirelen = len, .protocol = ETH_P_IP, .random = fixed};

		assert_int_equal(filter_sample(&in, 5, 0, &p, &err), 0);
		pkt.random_ctx = &zero;
		assert_int_equal(cbpf_run(&p, &pkt), 160);
		pkt.random_ctx = &one;
		assert_int_equal(cbpf_run(&p, &pkt), 0);
		pkt.random_ctx = &zero;
		pkt.data = other;
		pkt.caplen = pkt.wirelen = olen;
		assert_int_equal(cbpf_run(&p, &pkt), 0);
		cbpf_program_free(&p);
	}
	cbpf_program_free(&in);
}

/* ------------------------------------------------------------ the kernel */

typedef struct Kernel {
	bool ok;
	int ifindex, tx;
} Kernel;

static Kernel kernel;

static int kernel_setup(void **state)
{
	struct ifreq ifr = {0};
	int fd;

	(void)state;
	if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0)
		return 0; /* the kernel checks are skipped */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		goto fail;
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		goto fail;
	close(fd);
	kernel.ifindex = (int)if_nametoindex("lo");
	kernel.tx = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (kernel.ifindex <= 0 || kernel.tx < 0)
		return -1;
	kernel.ok = true;
	return 0;
fail:
	close(fd);
	return -1;
}

static int kernel_teardown(void **state)
{
	(void)state;
	if (kernel.ok)
		close(kernel.tx);
	return 0;
}

/* A receiving socket with prog (NULL: none) attached before bind. */
static int rx_socket(const CbpfProgram *prog)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};
	int one = 1, big = 8 << 20, fd;

	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	if (prog) {
		struct sock_fprog fp = {prog->len, prog->insns};

		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)), 0);
	}
	assert_int_equal(setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)), 0);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	sll.sll_ifindex = kernel.ifindex;
	assert_int_equal(bind(fd, (struct sockaddr *)&sll, sizeof(sll)), 0);
	return fd;
}

static unsigned drain(int fd)
{
	uint8_t buf[2048];
	unsigned n = 0;

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		n++;
	return n;
}

/* Sends count frames (dst alternating 7 and 8) and returns what each socket got. */
static void send_and_count(int count, int ref, int *rx, unsigned n_rx, unsigned *got)
{
	struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = kernel.ifindex, .sll_halen = 6};
	uint8_t fr[60];
	unsigned seen = 0;

	drain(ref);
	for (unsigned i = 0; i < n_rx; i++) {
		drain(rx[i]);
		got[i] = 0;
	}
	memcpy(to.sll_addr, "\2\0\0\0\0\2", 6);
	for (int i = 0; i < count; i++) {
		uint32_t len = udp_frame(i % 2 ? 8 : 7, 53, fr);

		assert_int_equal(sendto(kernel.tx, fr, len, 0, (struct sockaddr *)&to, sizeof(to)), (ssize_t)len);
		if (i % 200 == 199) {
			/* Let the receivers keep up. */
			seen += drain(ref);
			for (unsigned k = 0; k < n_rx; k++)
				got[k] += drain(rx[k]);
		}
	}
	for (int tries = 0; tries < 100 && seen < (unsigned)count; tries++) {
		struct pollfd p = {.fd = ref, .events = POLLIN};

		poll(&p, 1, 20);
		seen += drain(ref);
	}
	assert_int_equal(seen, count); /* every frame went through the kernel */
	for (unsigned k = 0; k < n_rx; k++)
		got[k] += drain(rx[k]);
}

static void test_kernel(void **state)
{
	CbpfProgram in = {0}, p[4] = {{0}};
	ErrBuf err;
	int rx[4], ref;
	unsigned got[4];
	const int count = 4000;

	(void)state;
	if (!kernel.ok) {
		print_message("# needs root and CLONE_NEWNET for AF_PACKET on a private lo\n");
		skip();
	}
	compile("192.0.2.7", "53", &in);
	assert_int_equal(filter_sample(NULL, 1, 160, &p[0], &err), 0);
	assert_int_equal(filter_sample(NULL, 4, 160, &p[1], &err), 0);
	assert_int_equal(filter_sample(NULL, 4294967295u, 160, &p[2], &err), 0);
	assert_int_equal(filter_sample(&in, 2, 0, &p[3], &err), 0);
	ref = rx_socket(NULL);
	for (int i = 0; i < 4; i++)
		rx[i] = rx_socket(&p[i]);
	send_and_count(count, ref, rx, 4, got);
	print_message("# of %d frames: rate 1 kept %u, rate 4 %u, rate 2^32-1 %u, dst .7 and rate 2 %u\n", count,
		      got[0], got[1], got[2], got[3]);
	assert_int_equal(got[0], (unsigned)count);
	/* Binomial(4000, 1/4): mean 1000, sd 27; six sd either way. */
	assert_in_range(got[1], 1000 - 165, 1000 + 165);
	assert_true(got[2] <= 1);
	/* Half the frames match; half of those are kept: mean 1000, sd 22. */
	assert_in_range(got[3], 1000 - 135, 1000 + 135);
	for (int i = 0; i < 4; i++) {
		close(rx[i]);
		cbpf_program_free(&p[i]);
	}
	close(ref);
	cbpf_program_free(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shape),
		cmocka_unit_test(test_cbpf_run),
		cmocka_unit_test(test_kernel),
	};

	return cmocka_run_group_tests(tests, kernel_setup, kernel_teardown);
}

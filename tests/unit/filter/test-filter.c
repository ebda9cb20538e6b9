/* SPDX-License-Identifier: MIT */
/*
 * Tests of src/filter: the parsers (every error form), the classic-BPF checker
 * (against the kernel's own verdict when running as root), and a table of
 * filters with frames that must and must not match, each verdict taken three
 * ways where they apply: filter_match() in user space, the kernel running the
 * same program on an AF_PACKET socket in a private network namespace, and
 * libpcap's compiler given the equivalent pcap-filter expression.
 */
#include <errno.h>
#include <net/if.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>

#include <cmocka.h>

#include "filter/filter.h"
#include "frames.h"
#include "pcap/record.h"

/* ---------------------------------------------------------------- parsers */

static int addrs(const char *s, AddrSet *set, ErrBuf *err)
{
	return filter_parse_addrs("source_address", s, strlen(s), set, err);
}

static void expect_range(const AddrRange *r, int fam, const char *lo, const char *hi)
{
	uint8_t a[16] = {0}, b[16] = {0};

	assert_int_equal(r->family, fam);
	assert_int_equal(inet_pton(fam, lo, a), 1);
	assert_int_equal(inet_pton(fam, hi, b), 1);
	assert_memory_equal(r->lo, a, 16);
	assert_memory_equal(r->hi, b, 16);
}

static void test_parse_addrs_good(void **state)
{
	AddrSet set = {0};
	ErrBuf err = {{0}};

	(void)state;
	assert_int_equal(addrs("192.0.2.1", &set, &err), 0);
	assert_int_equal(addrs("2001:db8::1", &set, &err), 0);
	assert_int_equal(addrs("192.0.2.77/24", &set, &err), 0);
	assert_int_equal(addrs("2001:db8::/32", &set, &err), 0);
	assert_int_equal(addrs("1.1.1.1-255.255.255.255", &set, &err), 0);
	assert_int_equal(addrs("127.0.0.1;127.0.0.5;", &set, &err), 0);
	assert_int_equal(addrs(" 10.0.0.0/0 ; 2001:db8::1-2001:db8::1:0", &set, &err), 0);
	assert_int_equal(addrs("::/0", &set, &err), 0);
	assert_int_equal(set.n, 10);
	expect_range(&set.v[0], AF_INET, "192.0.2.1", "192.0.2.1");
	expect_range(&set.v[1], AF_INET6, "2001:db8::1", "2001:db8::1");
	expect_range(&set.v[2], AF_INET, "192.0.2.0", "192.0.2.255");
	expect_range(&set.v[3], AF_INET6, "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
	expect_range(&set.v[4], AF_INET, "1.1.1.1", "255.255.255.255");
	expect_range(&set.v[5], AF_INET, "127.0.0.1", "127.0.0.1");
	expect_range(&set.v[6], AF_INET, "127.0.0.5", "127.0.0.5");
	expect_range(&set.v[7], AF_INET, "0.0.0.0", "255.255.255.255");
	expect_range(&set.v[8], AF_INET6, "2001:db8::1", "2001:db8::1:0");
	expect_range(&set.v[9], AF_INET6, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	free(set.v);
}

typedef struct BadCase {
	const char *field, *input, *message;
} BadCase;

static void test_parse_addrs_errors(void **state)
{
	static const BadCase cases[] = {
		{"source_address", "1.2.3", "source_address: \"1.2.3\" is not an IPv4 or IPv6 address"},
		{"remote_ip", "10.0.0.9-10.0.0.1", "remote_ip: range 10.0.0.9-10.0.0.1 ends before it starts"},
		{"local_ip", "10.0.0.1-2001:db8::1", "local_ip: range 10.0.0.1-2001:db8::1 mixes IPv4 and IPv6"},
		{"dst", "10.0.0.0/33", "dst: prefix length in 10.0.0.0/33 is outside 0..32"},
		{"dst", "2001:db8::/129", "dst: prefix length in 2001:db8::/129 is outside 0..128"},
		{"dst", "10.0.0.0/", "dst: \"10.0.0.0/\" has no prefix length after '/'"},
		{"dst", "", "dst: is empty"},
		{"dst", "1.1.1.1;;2.2.2.2", "dst: \"1.1.1.1;;2.2.2.2\" has an empty list item"},
		{"dst", ";", "dst: \";\" has an empty list item"},
		{"dst", "1.1.1.1\n", "dst: \"1.1.1.1?\" is not an IPv4 or IPv6 address"},
		{"dst", "fe80::1%eth0", "dst: \"fe80::1%eth0\" is not an IPv4 or IPv6 address"},
		/* a bad value with a '-' or '/' in it is quoted whole */
		{"source_address", "not-an-ip",
		 "source_address: \"not-an-ip\" is not an IPv4 or IPv6 address or range"},
		{"dst", "10.0.0.1-x", "dst: \"10.0.0.1-x\" is not an IPv4 or IPv6 address or range"},
		{"dst", "1.1.1.1;a-b", "dst: \"a-b\" is not an IPv4 or IPv6 address or range"},
		{"dst", "999.1.1.1/24", "dst: \"999.1.1.1/24\" is not an IPv4 or IPv6 address or CIDR"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		AddrSet set = {0};
		ErrBuf err = {{0}};

		assert_int_equal(addrs("192.0.2.1", &set, NULL), 0);
		assert_int_equal(filter_parse_addrs(cases[i].field, cases[i].input, strlen(cases[i].input), &set, &err),
				 -EINVAL);
		assert_string_equal(err.msg, cases[i].message);
		assert_int_equal(set.n, 1); /* unchanged by the failed call */
		free(set.v);
	}
}

static void test_parse_addrs_bounds(void **state)
{
	char buf[256 * 12 + 16];
	size_t n = 0;
	AddrSet set = {0};
	ErrBuf err = {{0}};

	(void)state;
	for (unsigned i = 0; i <= FILTER_MAX_RANGES; i++) {
		int w = snprintf(buf + n, sizeof(buf) - n, "10.0.%u.%u;", i / 256, i % 256);

		assert_true(w > 0 && (size_t)w < sizeof(buf) - n);
		n += (size_t)w;
	}
	assert_int_equal(filter_parse_addrs("dst", buf, n, &set, &err), -E2BIG);
	assert_string_equal(err.msg, "dst: more than 256 entries");
	assert_int_equal(set.n, 0);
	/* Exactly the bound is fine. */
	free(set.v);
	set = (AddrSet){0};
	n = 0;
	for (unsigned i = 0; i < FILTER_MAX_RANGES; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "10.1.%u.%u;", i / 256, i % 256);
	assert_int_equal(filter_parse_addrs("dst", buf, n, &set, &err), 0);
	assert_int_equal(set.n, FILTER_MAX_RANGES);
	/* A long item is refused by name, without reading past its end. */
	memset(buf, '1', 200);
	assert_int_equal(filter_parse_addrs("dst", buf, 200, &set, &err), -EINVAL);
	assert_string_equal(err.msg, "dst: \"11111111111111111111111111111111111111111111111111111111111111111111...\" "
				     "is not an IPv4 or IPv6 address");
	free(set.v);
}

static void test_parse_ports(void **state)
{
	static const BadCase cases[] = {
		{"destination_port", "70000", "destination_port: 70000 is outside 0..65535"},
		{"destination_port", "99999999999999999999999",
		 "destination_port: 99999999999999999999999 is outside 0..65535"},
		{"local_port", "120-80", "local_port: range 120-80 ends before it starts"},
		{"local_port", "http", "local_port: \"http\" is not a port number"},
		{"local_port", "-5", "local_port: \"\" is not a port number"},
		{"local_port", "80;;443", "local_port: \"80;;443\" has an empty list item"},
		{"local_port", "+80", "local_port: \"+80\" is not a port number"},
	};
	PortSet set = {0};
	ErrBuf err = {{0}};

	(void)state;
	assert_int_equal(filter_parse_ports("p", "80", 2, &set, &err), 0);
	assert_int_equal(filter_parse_ports("p", "80-120", 6, &set, &err), 0);
	assert_int_equal(filter_parse_ports("p", "80;443;", 7, &set, &err), 0);
	assert_int_equal(filter_parse_ports("p", "0-65535", 7, &set, &err), 0);
	assert_int_equal(set.n, 5);
	assert_int_equal(set.v[0].lo, 80);
	assert_int_equal(set.v[0].hi, 80);
	assert_int_equal(set.v[1].lo, 80);
	assert_int_equal(set.v[1].hi, 120);
	assert_int_equal(set.v[2].lo, 80);
	assert_int_equal(set.v[3].lo, 443);
	assert_int_equal(set.v[4].lo, 0);
	assert_int_equal(set.v[4].hi, 65535);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(filter_parse_ports(cases[i].field, cases[i].input, strlen(cases[i].input), &set, &err),
				 -EINVAL);
		assert_string_equal(err.msg, cases[i].message);
		assert_int_equal(set.n, 5);
	}
	free(set.v);
}

static void test_parse_proto_and_numbers(void **state)
{
	static const struct {
		const char *s;
		int proto;
	} good[] = {
		{"tcp", 6},
		{"UDP", 17},
		{"icmp", 1},
		{"icmp6", 58},
		{"ipv6-icmp", 58},
		{"sctp", 132},
		{"gre", 47},
		{"esp", 50},
		{"ah", 51},
		{"igmp", 2},
		{"Any", FILTER_PROTO_ANY},
		{"ALL", FILTER_PROTO_ANY},
		{"0", 0},
		{"255", 255},
		{"17", 17},
	};
	PortSet set = {0};
	ErrBuf err = {{0}};
	int p = -5;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		assert_int_equal(filter_parse_proto("protocol", good[i].s, strlen(good[i].s), &p, &err), 0);
		assert_int_equal(p, good[i].proto);
	}
	p = 99;
	assert_int_equal(filter_parse_proto("protocol", "256", 3, &p, &err), -EINVAL);
	assert_string_equal(err.msg, "protocol: 256 is outside 0..255");
	assert_int_equal(filter_parse_proto("protocol", "tcpx", 4, &p, &err), -EINVAL);
	assert_string_equal(err.msg, "protocol: \"tcpx\" is not a protocol number 0..255 or a known name");
	assert_int_equal(p, 99);

	/* Every name the table lists (what the dashboard offers) parses to its number. */
	for (size_t i = 0;; i++) {
		int want = 0;
		const char *name = filter_proto_name(i, &want);

		if (!name) {
			assert_true(i >= 20);
			break;
		}
		assert_int_equal(filter_parse_proto("protocol", name, strlen(name), &p, &err), 0);
		assert_int_equal(p, want);
	}

	assert_int_equal(filter_port_from_number("destination_port", 443, &set, &err), 0);
	assert_int_equal(set.n, 1);
	assert_int_equal(set.v[0].lo, 443);
	assert_int_equal(filter_port_from_number("destination_port", 70000, &set, &err), -EINVAL);
	assert_string_equal(err.msg, "destination_port: 70000 is outside 0..65535");
	assert_int_equal(filter_port_from_number("destination_port", -1, &set, &err), -EINVAL);
	assert_string_equal(err.msg, "destination_port: -1 is outside 0..65535");
	assert_int_equal(filter_port_from_number("destination_port", 80.5, &set, &err), -EINVAL);
	assert_string_equal(err.msg, "destination_port: 80.5 is not an integer");
	assert_int_equal(filter_port_from_number("destination_port", 0.0 / 0.0, &set, &err), -EINVAL);
	assert_int_equal(set.n, 1);
	assert_int_equal(filter_proto_from_number("protocol", 6, &p, &err), 0);
	assert_int_equal(p, 6);
	assert_int_equal(filter_proto_from_number("protocol", 256, &p, &err), -EINVAL);
	assert_string_equal(err.msg, "protocol: 256 is outside 0..255");
	free(set.v);
}

static void test_model(void **state)
{
	Filter f = {0};
	FilterClause c;
	ErrBuf err = {{0}};
	char big[FILTER_MAX_EXPR + 1];

	(void)state;
	for (unsigned i = 0; i < FILTER_MAX_CLAUSES; i++) {
		filter_clause_init(&c);
		assert_int_equal(filter_parse_ports("p", "80", 2, &c.dport, &err), 0);
		assert_int_equal(filter_add_clause(&f, &c, &err), 0);
		assert_int_equal(c.dport.n, 0); /* moved out */
	}
	filter_clause_init(&c);
	assert_int_equal(filter_add_clause(&f, &c, &err), -E2BIG);
	assert_string_equal(err.msg, "filters: more than 32 clauses");
	filter_clause_done(&c);
	filter_clause_done(NULL);
	memset(big, 'a', sizeof(big));
	assert_int_equal(filter_set_expr(&f, big, sizeof(big), &err), -E2BIG);
	assert_string_equal(err.msg, "bpf_expr: 4097 bytes, at most 4096");
	assert_int_equal(filter_set_expr(&f, "tcp\0x", 5, &err), -EINVAL);
	assert_string_equal(err.msg, "bpf_expr: contains a NUL byte");
	assert_null(f.bpf_expr);
	assert_int_equal(filter_set_expr(&f, "tcp port 80", 11, &err), 0);
	assert_string_equal(f.bpf_expr, "tcp port 80");
	filter_done(&f);
	assert_int_equal(f.n_clauses, 0);
	filter_done(NULL);
}

/* ------------------------------------------------------- the kernel path */

/* The test moves itself into a new network namespace and sends frames on its
 * own `lo`: a filtered packet socket (program attached before bind, outgoing
 * copies ignored) and an unfiltered reference socket see each frame. Once the
 * reference has it, the kernel has run the filter. */
typedef struct Kernel {
	bool ok;
	int ifindex;
	int tx, ref;
} Kernel;

static Kernel kernel;

static int packet_socket(const struct sock_fprog *prog)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};
	int one = 1, fd;

	/* Protocol 0: no packet is queued before the filter is in place. */
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (prog && setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, prog, sizeof(*prog)) < 0)
		goto fail;
	if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0)
		goto fail;
	sll.sll_ifindex = kernel.ifindex;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		goto fail;
	return fd;
fail:
	one = -errno;
	close(fd);
	return one;
}

static void drain(int fd)
{
	uint8_t buf[2048];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		;
}

static int kernel_setup(void **state)
{
	struct ifreq ifr = {0};
	int fd;

	(void)state;
	if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0)
		return 0; /* kernel.ok stays false: those checks are skipped */
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
	kernel.ref = packet_socket(NULL);
	if (kernel.ifindex <= 0 || kernel.tx < 0 || kernel.ref < 0)
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
	if (kernel.ok) {
		close(kernel.tx);
		close(kernel.ref);
	}
	return 0;
}

static bool wait_readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms) == 1;
}

/* Sends f on lo; returns the length the filtered socket received, 0 if none. */
static ssize_t kernel_verdict(int filtered, const Frame *f)
{
	struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = kernel.ifindex, .sll_halen = 6};
	uint8_t buf[2048];
	ssize_t n;

	drain(kernel.ref);
	drain(filtered);
	memcpy(to.sll_addr, f->b, 6);
	assert_int_equal(sendto(kernel.tx, f->b, f->n, 0, (struct sockaddr *)&to, sizeof(to)), (ssize_t)f->n);
	assert_true(wait_readable(kernel.ref, 2000));
	if (!wait_readable(filtered, 50))
		return 0;
	n = recv(filtered, buf, sizeof(buf), MSG_DONTWAIT);
	assert_true(n > 0);
	return n;
}

/* ------------------------------------------------------- cbpf_check */

static void test_cbpf_check(void **state)
{
#define I(c, jt, jf, k)                                                                                                \
	{                                                                                                              \
		(uint16_t)(c), jt, jf, k                                                                               \
	}
	static const struct {
		const char *why;
		struct sock_filter insns[4];
		uint16_t len;
	} bad[] = {
		{"unknown opcode", {I(0xffff, 0, 0, 0), I(BPF_RET | BPF_K, 0, 0, 1)}, 2},
		{"division by 0", {I(BPF_ALU | BPF_DIV | BPF_K, 0, 0, 0), I(BPF_RET | BPF_K, 0, 0, 1)}, 2},
		{"modulo by 0", {I(BPF_ALU | BPF_MOD | BPF_K, 0, 0, 0), I(BPF_RET | BPF_K, 0, 0, 1)}, 2},
		{"scratch slot 16", {I(BPF_ST, 0, 0, 16), I(BPF_RET | BPF_K, 0, 0, 1)}, 2},
		{"ja past the end", {I(BPF_JMP | BPF_JA, 0, 0, 1), I(BPF_RET | BPF_K, 0, 0, 1)}, 2},
		{"jt past the end", {I(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 0), I(BPF_RET | BPF_K, 0, 0, 1)}, 2},
		{"jf past the end", {I(BPF_JMP | BPF_JGT | BPF_K, 0, 5, 0), I(BPF_RET | BPF_K, 0, 0, 1)}, 2},
		{"no final return", {I(BPF_LD | BPF_IMM, 0, 0, 0)}, 1},
		{"unknown ancillary",
		 {I(BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)SKF_AD_OFF + 1), I(BPF_RET | BPF_K, 0, 0, 1)},
		 2},
		{"read before store", {I(BPF_LD | BPF_MEM, 0, 0, 3), I(BPF_RET | BPF_A, 0, 0, 0)}, 2},
		{"store on one path only",
		 {I(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0), I(BPF_ST, 0, 0, 2), I(BPF_LDX | BPF_MEM, 0, 0, 2),
		  I(BPF_RET | BPF_K, 0, 0, 1)},
		 4},
		{"empty", {I(BPF_RET | BPF_K, 0, 0, 1)}, 0},
	};
	static const struct sock_filter good[] = {
		I(BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT),
		I(BPF_ST, 0, 0, 15),
		I(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
		I(BPF_LDX | BPF_MEM, 0, 0, 15),
		I(BPF_RET | BPF_K, 0, 0, 0xffff),
	};
#undef I
	ErrBuf err = {{0}};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		CbpfProgram p = {(struct sock_filter *)bad[i].insns, bad[i].len};
		struct sock_fprog fp = {bad[i].len, (struct sock_filter *)bad[i].insns};

		print_message("# %s\n", bad[i].why);
		assert_int_equal(cbpf_check(&p, &err), -EINVAL);
		assert_true(err.msg[0] != '\0');
		if (kernel.ok) {
			/* The kernel refuses it too. */
			assert_int_equal(packet_socket(&fp), -EINVAL);
		}
	}
	CbpfProgram p = {(struct sock_filter *)good, ARRAY_SIZE(good)};
	struct sock_fprog fp = {ARRAY_SIZE(good), (struct sock_filter *)good};

	assert_int_equal(cbpf_check(&p, &err), 0);
	if (kernel.ok) {
		int fd = packet_socket(&fp);

		assert_true(fd >= 0);
		close(fd);
	}
}

static void test_cbpf_run(void **state)
{
#define I(c, jt, jf, k)                                                                                                \
	{                                                                                                              \
		(uint16_t)(c), jt, jf, k                                                                               \
	}
	static const struct sock_filter div_x[] = {
		I(BPF_LDX | BPF_IMM, 0, 0, 0),
		I(BPF_LD | BPF_IMM, 0, 0, 7),
		I(BPF_ALU | BPF_DIV | BPF_X, 0, 0, 0),
		I(BPF_RET | BPF_K, 0, 0, 9),
	};
	static const struct sock_filter oob[] = {
		I(BPF_LD | BPF_H | BPF_ABS, 0, 0, 3),
		I(BPF_RET | BPF_A, 0, 0, 0),
	};
	static const struct sock_filter anc[] = {
		I(BPF_LD | BPF_B | BPF_ABS, 0, 0, (uint32_t)SKF_AD_OFF + SKF_AD_VLAN_TAG),
		I(BPF_MISC | BPF_TAX, 0, 0, 0),
		I(BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)SKF_AD_OFF + SKF_AD_PROTOCOL),
		I(BPF_ALU | BPF_ADD | BPF_X, 0, 0, 0),
		I(BPF_RET | BPF_A, 0, 0, 0),
	};
	static const struct sock_filter ll[] = {
		I(BPF_LD | BPF_H | BPF_ABS, 0, 0, (uint32_t)SKF_LL_OFF + 2),
		I(BPF_LDX | BPF_B | BPF_MSH, 0, 0, 0),
		I(BPF_ALU | BPF_ADD | BPF_X, 0, 0, 0),
		I(BPF_ALU | BPF_LSH | BPF_X, 0, 0, 0),
		I(BPF_RET | BPF_A, 0, 0, 0),
	};
#undef I
	static const uint8_t data[] = {0x45, 0, 0x01, 0x02};
	CbpfPacket pkt = {.data = data, .caplen = 4, .wirelen = 4, .protocol = 0x0800, .vlan_tci = 5};
	CbpfProgram p;

	(void)state;
	p = (CbpfProgram){(struct sock_filter *)div_x, ARRAY_SIZE(div_x)};
	assert_int_equal(cbpf_run(&p, &pkt), 0);
	p = (CbpfProgram){(struct sock_filter *)oob, ARRAY_SIZE(oob)};
	assert_int_equal(cbpf_run(&p, &pkt), 0);
	pkt.caplen = 3;
	assert_int_equal(cbpf_run(&p, &pkt), 0);
	p = (CbpfProgram){(struct sock_filter *)anc, ARRAY_SIZE(anc)};
	assert_int_equal(cbpf_run(&p, &pkt), 0x0805);
	pkt.caplen = 4;
	/* [LL+2] = 0x0102; X = 4 * (0x45 & 15) = 20; A = 0x116 << (20 & 31). */
	p = (CbpfProgram){(struct sock_filter *)ll, ARRAY_SIZE(ll)};
	assert_int_equal(cbpf_run(&p, &pkt), 0x116u << 20);
}

/* ------------------------------------------------------- the table */

#define A4 "192.0.2.1"
#define B4 "198.51.100.1"
#define A6 "2001:db8::1"
#define B6 "2001:db8:1::1"
#define UDP4(s, d, sp, dp, ...)                                                                                        \
	{                                                                                                              \
		.fam = 4, .src = s, .dst = d, .proto = 17, .sport = sp, .dport = dp, __VA_ARGS__                       \
	}
#define TCP4(s, d, sp, dp, ...)                                                                                        \
	{                                                                                                              \
		.fam = 4, .src = s, .dst = d, .proto = 6, .sport = sp, .dport = dp, __VA_ARGS__                        \
	}
#define SCTP4(s, d, sp, dp, ...)                                                                                       \
	{                                                                                                              \
		.fam = 4, .src = s, .dst = d, .proto = 132, .sport = sp, .dport = dp, __VA_ARGS__                      \
	}
#define ICMP4(s, d, ...)                                                                                               \
	{                                                                                                              \
		.fam = 4, .src = s, .dst = d, .proto = 1, __VA_ARGS__                                                  \
	}
#define UDP6(s, d, sp, dp, ...)                                                                                        \
	{                                                                                                              \
		.fam = 6, .src = s, .dst = d, .proto = 17, .sport = sp, .dport = dp, __VA_ARGS__                       \
	}
#define TCP6(s, d, sp, dp, ...)                                                                                        \
	{                                                                                                              \
		.fam = 6, .src = s, .dst = d, .proto = 6, .sport = sp, .dport = dp, __VA_ARGS__                        \
	}
#define ICMP6(s, d, ...)                                                                                               \
	{                                                                                                              \
		.fam = 6, .src = s, .dst = d, .proto = 58, __VA_ARGS__                                                 \
	}
#define ARP                                                                                                            \
	{                                                                                                              \
		.fam = 1                                                                                               \
	}
/* Tunnels: the outer headers, then the packet's own fields. */
#define OUT4 .tun_fam = 4, .tun_src = "198.51.100.7", .tun_dst = "198.51.100.8"
#define OUT6 .tun_fam = 6, .tun_src = "2001:db8:ff::7", .tun_dst = "2001:db8:ff::8"
#define VXLAN4 .tun = TUN_VXLAN, OUT4
#define VXLAN6 .tun = TUN_VXLAN, OUT6
#define GENEVE4 .tun = TUN_GENEVE, OUT4
#define GENEVE6 .tun = TUN_GENEVE, OUT6
#define GRE4 .tun = TUN_GRE, OUT4
#define GRE6 .tun = TUN_GRE, OUT6
#define MAX_FRAMES 12

typedef struct ClauseSpec {
	const char *src, *dst, *sport, *dport, *proto;
	bool both;
	bool inner;
} ClauseSpec;

typedef struct Row {
	const char *name;
	unsigned n_clauses;
	ClauseSpec c[2];
	const char *expr;                          /* bpf_expr */
	const char *pcap;                          /* the same filter in pcap-filter syntax, if it can be said */
	FrameSpec yes[MAX_FRAMES], no[MAX_FRAMES]; /* each list ends at fam == 0 */
} Row;

static const Row rows[] = {
	{"source IPv4, tags inline or stripped",
	 1,
	 {{.src = A4}},
	 NULL,
	 "ip src host " A4,
	 {UDP4(A4, B4, 1, 2), TCP4(A4, B4, 1, 2, .vlans = 1), UDP4(A4, B4, 1, 2, .vlans = 2, .tpid = 0x88a8),
	  UDP4(A4, B4, 1, 2, .vlans = 1, .tpid = 0x88a8), UDP4(A4, B4, 1, 2, .vlans = 1, .tpid = 0x9100),
	  ICMP4(A4, B4, .ip_opts = true), UDP4(A4, B4, 1, 2, .frag_later = true)},
	 {UDP4(B4, A4, 1, 2), UDP4("192.0.2.2", B4, 1, 2, .vlans = 2), UDP6(A6, B6, 1, 2), ARP}},
	{"destination IPv4 CIDR edges",
	 1,
	 {{.dst = "198.51.100.0/24"}},
	 NULL,
	 "ip dst net 198.51.100.0/24",
	 {UDP4(A4, "198.51.100.0", 1, 2), UDP4(A4, "198.51.100.255", 1, 2, .vlans = 1)},
	 {UDP4(A4, "198.51.101.0", 1, 2), UDP4(A4, "198.51.99.255", 1, 2), UDP4("198.51.100.1", A4, 1, 2)}},
	{"IPv4 range edges",
	 1,
	 {{.src = "192.0.2.10-192.0.2.20"}},
	 NULL,
	 "ip and ip[12:4] >= 0xc000020a and ip[12:4] <= 0xc0000214",
	 {UDP4("192.0.2.10", B4, 1, 2), UDP4("192.0.2.20", B4, 1, 2), UDP4("192.0.2.15", B4, 1, 2, .vlans = 2)},
	 {UDP4("192.0.2.9", B4, 1, 2), UDP4("192.0.2.21", B4, 1, 2), UDP4(B4, "192.0.2.15", 1, 2)}},
	{"Azure range to the top",
	 1,
	 {{.dst = "1.1.1.1-255.255.255.255"}},
	 NULL,
	 NULL,
	 {UDP4(A4, "1.1.1.1", 1, 2), UDP4(A4, "255.255.255.255", 1, 2), UDP4(A4, "8.8.8.8", 1, 2)},
	 {UDP4(A4, "1.1.1.0", 1, 2), UDP4(A4, "0.0.0.1", 1, 2), UDP6(A6, B6, 1, 2)}},
	{"Azure list with trailing ;",
	 1,
	 {{.src = "127.0.0.1;127.0.0.5;"}},
	 NULL,
	 "ip src host 127.0.0.1 or ip src host 127.0.0.5",
	 {UDP4("127.0.0.1", B4, 1, 2), UDP4("127.0.0.5", B4, 1, 2)},
	 {UDP4("127.0.0.2", B4, 1, 2), UDP4("127.0.0.4", B4, 1, 2), UDP4("127.0.0.6", B4, 1, 2)}},
	{"source IPv6, behind extension headers",
	 1,
	 {{.src = A6}},
	 NULL,
	 "src host " A6,
	 {UDP6(A6, B6, 1, 2), TCP6(A6, B6, 1, 2, .v6_ext = true, .vlans = 1), ICMP6(A6, B6, .v6_ah = true)},
	 {UDP6(B6, A6, 1, 2), UDP6("2001:db8::2", B6, 1, 2), UDP4(A4, B4, 1, 2), ARP}},
	{"destination IPv6 /32 edges",
	 1,
	 {{.dst = "2001:db8::/32"}},
	 NULL,
	 "dst net 2001:db8::/32",
	 {UDP6(A6, "2001:db8::", 1, 2), UDP6(A6, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 1, 2)},
	 {UDP6(A6, "2001:db9::", 1, 2), UDP6(A6, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", 1, 2)}},
	{"IPv6 range across words",
	 1,
	 {{.src = "2001:db8::ffff:ffff:fff0-2001:db8:0:1::5"}},
	 NULL,
	 NULL,
	 {UDP6("2001:db8::ffff:ffff:fff0", B6, 1, 2), UDP6("2001:db8:0:1::5", B6, 1, 2),
	  UDP6("2001:db8:0:1::", B6, 1, 2), UDP6("2001:db8::1:0:0:0", B6, 1, 2),
	  UDP6("2001:db8::ffff:ffff:ffff", B6, 1, 2)},
	 {UDP6("2001:db8::ffff:ffff:ffef", B6, 1, 2), UDP6("2001:db8:0:1::6", B6, 1, 2),
	  UDP6("2001:db8:0:2::", B6, 1, 2), UDP6("2001:db8::", B6, 1, 2), UDP4(A4, B4, 1, 2)}},
	{"IPv6 range in the last word",
	 1,
	 {{.dst = "2001:db8::10-2001:db8::20"}},
	 NULL,
	 NULL,
	 {UDP6(A6, "2001:db8::10", 1, 2), UDP6(A6, "2001:db8::20", 1, 2), UDP6(A6, "2001:db8::1a", 1, 2)},
	 {UDP6(A6, "2001:db8::f", 1, 2), UDP6(A6, "2001:db8::21", 1, 2), UDP6(A6, "2001:db8:1::10", 1, 2)}},
	{"mixed families in one list",
	 1,
	 {{.src = A4 ";" A6}},
	 NULL,
	 "ip src host " A4 " or ip6 src host " A6,
	 {UDP4(A4, B4, 1, 2), UDP6(A6, B6, 1, 2)},
	 {UDP4(B4, A4, 1, 2), UDP6(B6, A6, 1, 2), ARP}},
	{"destination port: TCP, UDP, SCTP, first fragments only",
	 1,
	 {{.dport = "80"}},
	 NULL,
	 "dst port 80",
	 {TCP4(A4, B4, 5, 80), UDP4(A4, B4, 5, 80, .vlans = 1), SCTP4(A4, B4, 5, 80), TCP6(A6, B6, 5, 80),
	  TCP6(A6, B6, 5, 80, .v6_ext = true, .vlans = 2), UDP6(A6, B6, 5, 80, .frag_first = true, .v6_ext = true),
	  UDP4(A4, B4, 5, 80, .frag_first = true), TCP4(A4, B4, 5, 80, .ip_opts = true),
	  TCP6(A6, B6, 5, 80, .v6_ah = true)},
	 {TCP4(A4, B4, 80, 81), ICMP4(A4, B4), UDP4(A4, B4, 5, 80, .frag_later = true),
	  UDP6(A6, B6, 5, 80, .frag_later = true), ARP, ICMP6(A6, B6, .v6_ext = true)}},
	{"source port range edges",
	 1,
	 {{.sport = "80-120"}},
	 NULL,
	 "src portrange 80-120",
	 {UDP4(A4, B4, 80, 1), UDP4(A4, B4, 120, 1), TCP6(A6, B6, 100, 1)},
	 {UDP4(A4, B4, 79, 100), UDP4(A4, B4, 121, 1), TCP6(A6, B6, 121, 100)}},
	{"port list",
	 1,
	 {{.dport = "80;443;"}},
	 NULL,
	 "dst port 80 or dst port 443",
	 {TCP4(A4, B4, 1, 80), TCP4(A4, B4, 1, 443)},
	 {TCP4(A4, B4, 1, 8080), TCP4(A4, B4, 443, 1), TCP4(A4, B4, 1, 442)}},
	{"protocol udp, also later fragments",
	 1,
	 {{.proto = "udp"}},
	 NULL,
	 "ip proto 17 or ip6 proto 17",
	 {UDP4(A4, B4, 1, 2), UDP6(A6, B6, 1, 2, .v6_ext = true), UDP4(A4, B4, 1, 2, .frag_later = true),
	  UDP6(A6, B6, 1, 2, .frag_later = true)},
	 {TCP4(A4, B4, 1, 2), ICMP4(A4, B4), TCP6(A6, B6, 1, 2, .v6_ext = true), ARP}},
	{"protocol icmp6 behind hop-by-hop",
	 1,
	 {{.proto = "icmp6"}},
	 NULL,
	 "icmp6",
	 {ICMP6(A6, B6), ICMP6(A6, B6, .v6_ext = true, .vlans = 1)},
	 {UDP6(A6, B6, 1, 2), ICMP4(A4, B4)}},
	{"protocol and port",
	 1,
	 {{.proto = "17", .dport = "53"}},
	 NULL,
	 "udp dst port 53",
	 {UDP4(A4, B4, 1, 53), UDP6(A6, B6, 1, 53, .v6_ah = true)},
	 {TCP4(A4, B4, 1, 53), UDP4(A4, B4, 53, 1)}},
	{"SCTP port with protocol",
	 1,
	 {{.proto = "sctp", .sport = "5000"}},
	 NULL,
	 "sctp src port 5000",
	 {SCTP4(A4, B4, 5000, 1)},
	 {UDP4(A4, B4, 5000, 1), SCTP4(A4, B4, 5001, 1)}},
	{"both directions",
	 1,
	 {{.src = A4, .dst = B4, .dport = "80", .both = true}},
	 NULL,
	 "(ip src host " A4 " and ip dst host " B4 " and dst port 80) or (ip src host " B4 " and ip dst host " A4
	 " and src port 80)",
	 {TCP4(A4, B4, 3000, 80), TCP4(B4, A4, 80, 3000), UDP4(B4, A4, 80, 1, .vlans = 1)},
	 {TCP4(B4, A4, 3000, 80), TCP4(A4, "198.51.100.2", 3000, 80), TCP4(A4, B4, 80, 3000)}},
	{"two clauses OR-ed",
	 2,
	 {{.src = A4, .dport = "80"}, {.proto = "icmp"}},
	 NULL,
	 "(ip src host " A4 " and dst port 80) or icmp",
	 {TCP4(A4, B4, 1, 80), ICMP4(B4, A4), ICMP4(A4, B4, .vlans = 2)},
	 {TCP4("192.0.2.2", B4, 1, 80), TCP4(A4, B4, 1, 81), ICMP6(A6, B6)}},
	{"clauses ANDed with bpf_expr",
	 1,
	 {{.proto = "tcp"}},
	 "dst port 443",
	 "tcp dst port 443",
	 {TCP4(A4, B4, 1, 443), TCP6(A6, B6, 1, 443), TCP4(A4, B4, 1, 443, .vlans = 1)},
	 {TCP4(A4, B4, 1, 80), UDP4(A4, B4, 1, 443)}},
	{"bpf_expr alone",
	 0,
	 {{0}},
	 "udp",
	 "udp",
	 {UDP4(A4, B4, 1, 2), UDP6(A6, B6, 1, 2), UDP4(A4, B4, 1, 2, .vlans = 1)},
	 {TCP4(A4, B4, 1, 2), ARP}},
	{"inner destination IPv4 in every tunnel",
	 1,
	 {{.dst = B4, .inner = true}},
	 NULL,
	 NULL,
	 {UDP4(A4, B4, 1, 2), UDP4(A4, B4, 1, 2, VXLAN4), TCP4(A4, B4, 1, 2, GENEVE6, .geneve_opt_words = 3),
	  ICMP4(A4, B4, GRE4, .gre_flags = 0x3000), UDP4(A4, B4, 1, 2, .tun = TUN_GRE_ETH, OUT6, .inner_vlans = 2),
	  UDP4(A4, B4, 1, 2, .tun = TUN_GENEVE_IP, OUT4), UDP4(A4, B4, 1, 2, GRE4, .gre_flags = 0xb000, .vlans = 1),
	  UDP4(A4, B4, 1, 2, VXLAN6, .inner_vlans = 1, .vlans = 2), TCP4(A4, B4, 1, 2, GRE6, .ip_opts = true),
	  UDP4(A4, B4, 1, 2, GENEVE4, .geneve_opt_words = 63)},
	 {UDP4(B4, A4, 1, 2, VXLAN4), UDP4(A4, B4, 1, 2, VXLAN4, .tun_port = 4790),
	  UDP4(A4, B4, 1, 2, GRE4, .gre_flags = 0x0001), UDP4(A4, B4, 1, 2, GRE4, .gre_flags = 0x4000),
	  UDP4(A4, "198.51.100.2", 1, 2), UDP6(A6, B6, 1, 2, VXLAN4), ARP, UDP4(A4, "198.51.100.2", 1, 2, GENEVE6)}},
	{"without inner a tunnel matches by its outer headers only",
	 1,
	 {{.dst = B4}},
	 NULL,
	 "ip dst host " B4,
	 {UDP4(A4, B4, 1, 2), UDP4(A4, A4, 1, 2, .tun = TUN_VXLAN, .tun_fam = 4, .tun_src = A4, .tun_dst = B4)},
	 {UDP4(A4, B4, 1, 2, VXLAN4), ICMP4(A4, B4, GRE4)}},
	{"inner protocol and port, IPv6 inside",
	 1,
	 {{.proto = "udp", .dport = "53", .inner = true}},
	 NULL,
	 NULL,
	 {UDP4(A4, B4, 1, 53), UDP6(A6, B6, 1, 53, VXLAN4), UDP6(A6, B6, 1, 53, GRE6, .v6_ext = true),
	  UDP6(A6, B6, 1, 53, .tun = TUN_GENEVE_IP, OUT6, .geneve_opt_words = 2),
	  UDP4(A4, B4, 1, 53, .tun = TUN_GRE_ETH, OUT4, .frag_first = true)},
	 {TCP6(A6, B6, 1, 53, VXLAN4), UDP6(A6, B6, 1, 53, GRE4, .frag_later = true), UDP4(A4, B4, 53, 1, VXLAN6),
	  UDP4(A4, B4, 1, 54, GENEVE4), ICMP6(A6, B6, VXLAN4)}},
	{"inner with both directions",
	 1,
	 {{.src = A4, .dst = B4, .dport = "80", .both = true, .inner = true}},
	 NULL,
	 NULL,
	 {TCP4(A4, B4, 3000, 80, VXLAN4), TCP4(B4, A4, 80, 3000, GRE6), TCP4(B4, A4, 80, 3000)},
	 {TCP4(B4, A4, 3000, 80, VXLAN4), TCP4(A4, B4, 80, 3000, GENEVE4)}},
	{"an inner clause OR-ed with an outer one",
	 2,
	 {{.proto = "icmp"}, {.dst = B4, .inner = true}},
	 NULL,
	 NULL,
	 {ICMP4(A4, A4), UDP4(A4, B4, 1, 2, VXLAN4), ICMP4(A4, B4, GRE4)},
	 {ICMP4(A4, A4, VXLAN4), UDP4(A4, A4, 1, 2, GRE6)}},
	{"inner clause ANDed with bpf_expr on the outer frame",
	 1,
	 {{.dst = B4, .inner = true}},
	 "udp",
	 NULL,
	 {UDP4(A4, B4, 1, 2, VXLAN4), UDP4(A4, B4, 1, 2)},
	 {ICMP4(A4, B4, GRE4), TCP4(A4, B4, 1, 2)}},
	{"empty filter", 0, {{0}}, NULL, "", {UDP4(A4, B4, 1, 2), ARP, TCP6(A6, B6, 1, 2, .vlans = 2)}, {{0}}},
	{"an empty clause accepts all", 2, {{.src = A4}, {0}}, NULL, NULL, {UDP4(B4, A4, 1, 2), ARP}, {{0}}},
};

static void build_filter(const ClauseSpec *cs, unsigned n, const char *expr, Filter *f)
{
	ErrBuf err = {{0}};

	for (unsigned i = 0; i < n; i++) {
		FilterClause c;

		filter_clause_init(&c);
		if (cs[i].src)
			assert_int_equal(filter_parse_addrs("src", cs[i].src, strlen(cs[i].src), &c.src, &err), 0);
		if (cs[i].dst)
			assert_int_equal(filter_parse_addrs("dst", cs[i].dst, strlen(cs[i].dst), &c.dst, &err), 0);
		if (cs[i].sport)
			assert_int_equal(filter_parse_ports("sport", cs[i].sport, strlen(cs[i].sport), &c.sport, &err),
					 0);
		if (cs[i].dport)
			assert_int_equal(filter_parse_ports("dport", cs[i].dport, strlen(cs[i].dport), &c.dport, &err),
					 0);
		if (cs[i].proto)
			assert_int_equal(filter_parse_proto("proto", cs[i].proto, strlen(cs[i].proto), &c.proto, &err),
					 0);
		c.both_directions = cs[i].both;
		c.inner = cs[i].inner;
		assert_int_equal(filter_add_clause(f, &c, &err), 0);
	}
	if (expr)
		assert_int_equal(filter_set_expr(f, expr, strlen(expr), &err), 0);
}

/* The same IP packet framed for another link type; 0 when it cannot be. */
static uint32_t reframe(const FrameSpec *s, const Frame *eth, uint32_t linktype, uint8_t *out)
{
	static const uint8_t sll2_v4[20] = {0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0};
	uint32_t ip = eth->n - 14, hdr;
	int fam = s->tun ? s->tun_fam : s->fam; /* of the outer packet */

	if (s->vlans || fam == 1)
		return 0;
	switch (linktype) {
	case LINKTYPE_RAW:
		hdr = 0;
		break;
	case LINKTYPE_IPV4:
		if (fam != 4)
			return 0;
		hdr = 0;
		break;
	case LINKTYPE_IPV6:
		if (fam != 6)
			return 0;
		hdr = 0;
		break;
	case LINKTYPE_NULL:
		hdr = 4;
		memcpy(out, fam == 4 ? "\2\0\0\0" : "\x0a\0\0\0", 4);
		break;
	case LINKTYPE_LINUX_SLL:
		hdr = 16;
		memcpy(out, "\0\0\0\1\0\6\2\0\0\0\0\1\0\0", 14);
		memcpy(out + 14, eth->b + 12, 2);
		break;
	default: /* LINKTYPE_LINUX_SLL2 */
		hdr = 20;
		memcpy(out, sll2_v4, 20);
		memcpy(out, eth->b + 12, 2);
		break;
	}
	memcpy(out + hdr, eth->b + 14, ip);
	return hdr + ip;
}

static void check_row(const Row *row, bool use_kernel)
{
	static const uint32_t others[] = {LINKTYPE_RAW,  LINKTYPE_IPV4,      LINKTYPE_IPV6,
					  LINKTYPE_NULL, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2};
	CbpfProgram prog = {0}, other[ARRAY_SIZE(others)] = {{0}};
	struct bpf_program pcap_prog = {0};
	pcap_t *dead = pcap_open_dead(DLT_EN10MB, 65535);
	Filter f = {0};
	ErrBuf err = {{0}};
	int filtered = -1;

	print_message("# %s\n", row->name);
	build_filter(row->c, row->n_clauses, row->expr, &f);
	if (filter_compile(&f, LINKTYPE_ETHERNET, 65535, &prog, &err) < 0)
		fail_msg("%s: %s", row->name, err.msg);
	for (size_t i = 0; i < ARRAY_SIZE(others); i++)
		assert_int_equal(filter_compile(&f, others[i], 65535, &other[i], &err), 0);
	assert_non_null(dead);
	if (row->pcap && pcap_compile(dead, &pcap_prog, row->pcap, 1, PCAP_NETMASK_UNKNOWN) < 0)
		fail_msg("pcap_compile(%s): %s", row->pcap, pcap_geterr(dead));
	if (use_kernel) {
		struct sock_fprog fp = {prog.len, prog.insns};

		filtered = packet_socket(&fp);
		assert_true(filtered >= 0);
	}
	for (int want = 1; want >= 0; want--) {
		const FrameSpec *list = want ? row->yes : row->no;

		for (size_t i = 0; i < MAX_FRAMES && list[i].fam != 0; i++) {
			const FrameSpec *s = &list[i];
			uint8_t buf[600];
			Frame fr;
			uint32_t got;

			frame_build(s, &fr);
			print_message("#   frame %s %zu (%s %s -> %s, %u bytes): expect %s\n", want ? "yes" : "no", i,
				      s->fam == 1   ? "arp"
				      : s->fam == 4 ? "ipv4"
						    : "ipv6",
				      s->src ? s->src : "", s->dst ? s->dst : "", fr.n, want ? "match" : "no match");
			got = filter_match(&prog, LINKTYPE_ETHERNET, fr.b, fr.n, fr.n);
			assert_int_equal(got != 0, want);
			if (want)
				assert_int_equal(got, 65535);
			for (size_t k = 0; k < ARRAY_SIZE(others); k++) {
				uint32_t n = reframe(s, &fr, others[k], buf);

				if (n > 0)
					assert_int_equal(filter_match(&other[k], others[k], buf, n, n) != 0, want);
			}
			if (row->pcap && frame_plain(s))
				assert_int_equal(bpf_filter(pcap_prog.bf_insns, fr.b, fr.n, fr.n) != 0, want);
			if (use_kernel) {
				bool stripped =
					s->vlans > 0 && (s->tpid == 0 || s->tpid == 0x8100 || s->tpid == 0x88a8);
				ssize_t n = kernel_verdict(filtered, &fr);

				assert_int_equal(n != 0, want);
				if (n)
					assert_int_equal(n, fr.n - (stripped ? 4 : 0));
			}
		}
	}
	if (filtered >= 0)
		close(filtered);
	pcap_freecode(&pcap_prog);
	pcap_close(dead);
	for (size_t i = 0; i < ARRAY_SIZE(others); i++)
		cbpf_program_free(&other[i]);
	cbpf_program_free(&prog);
	filter_done(&f);
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
		check_row(&rows[i], false);
}

static void test_table_kernel(void **state)
{
	(void)state;
	if (!kernel.ok) {
		print_message("# needs root and CLONE_NEWNET for AF_PACKET on a private lo\n");
		skip();
	}
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
		check_row(&rows[i], true);
}

/* A long list pushes targets past 255 instructions: jumps go through
 * trampolines; the last entries must still match, in the kernel too. */
static void test_long_lists(void **state)
{
	char ports[8 * 200], addrs6[48 * 100];
	size_t np = 0, na = 0;
	Filter f = {0};
	ErrBuf err = {{0}};
	FilterClause c;
	CbpfProgram prog = {0};
	int filtered = -1;

	(void)state;
	for (unsigned i = 0; i < 200; i++)
		np += (size_t)snprintf(ports + np, sizeof(ports) - np, "%u;", 1000 + 2 * i);
	for (unsigned i = 0; i < 100; i++)
		na += (size_t)snprintf(addrs6 + na, sizeof(addrs6) - na, "2001:db8:%x::1-2001:db8:%x::9;", i, i);
	filter_clause_init(&c);
	assert_int_equal(filter_parse_ports("dport", ports, np, &c.dport, &err), 0);
	assert_int_equal(filter_parse_addrs("dst", addrs6, na, &c.dst, &err), 0);
	c.both_directions = true;
	assert_int_equal(filter_add_clause(&f, &c, &err), 0);
	assert_int_equal(filter_compile(&f, LINKTYPE_ETHERNET, 96, &prog, &err), 0);
	print_message("# %u instructions\n", prog.len);
	assert_true(prog.len > 1000);
	if (kernel.ok) {
		struct sock_fprog fp = {prog.len, prog.insns};

		filtered = packet_socket(&fp);
		assert_true(filtered >= 0);
	}
	static const FrameSpec yes[] = {
		UDP6(A6, "2001:db8:63::9", 1, 1398),
		UDP6(A6, "2001:db8::1", 1, 1000),
		TCP6("2001:db8:63::5", A6, 1398, 7, .vlans = 1),
	};
	static const FrameSpec no[] = {
		UDP6(A6, "2001:db8:63::a", 1, 1398),
		UDP6(A6, "2001:db8:63::9", 1, 1399),
		UDP6(A6, "2001:db8:64::1", 1, 1000),
	};
	for (int want = 1; want >= 0; want--) {
		for (size_t i = 0; i < 3; i++) {
			Frame fr;

			frame_build(want ? &yes[i] : &no[i], &fr);
			assert_int_equal(filter_match(&prog, LINKTYPE_ETHERNET, fr.b, fr.n, fr.n), want ? 96 : 0);
			if (filtered >= 0)
				assert_int_equal(kernel_verdict(filtered, &fr) != 0, want);
		}
	}
	if (filtered >= 0)
		close(filtered);
	cbpf_program_free(&prog);
	filter_done(&f);
}

static void test_compile_errors(void **state)
{
	Filter f = {0};
	ErrBuf err = {{0}};
	CbpfProgram prog = {0};
	char buf[48 * FILTER_MAX_RANGES];

	(void)state;
	assert_int_equal(filter_compile(&f, 147, 100, &prog, &err), -EPROTONOSUPPORT);
	assert_string_equal(err.msg, "link type 147 is not supported by the filter compiler");
	assert_int_equal(filter_compile(&f, LINKTYPE_ETHERNET, 0, &prog, &err), -EINVAL);
	assert_int_equal(filter_set_expr(&f, "tcp prt 80", 10, &err), 0);
	assert_int_equal(filter_compile(&f, LINKTYPE_ETHERNET, 100, &prog, &err), -EINVAL);
	assert_true(strncmp(err.msg, "bpf_expr: ", 10) == 0);
	assert_null(prog.insns);
	filter_done(&f);
	/* 32 clauses of 256 IPv6 ranges cannot fit in 4096 instructions. */
	for (unsigned k = 0; k < FILTER_MAX_CLAUSES; k++) {
		FilterClause c;
		size_t n = 0;

		filter_clause_init(&c);
		for (unsigned i = 0; i < FILTER_MAX_RANGES; i++)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "2001:db8:%x::1-2001:db8:%x::9;", i, i + 1);
		assert_int_equal(filter_parse_addrs("src", buf, n, &c.src, &err), 0);
		assert_int_equal(filter_add_clause(&f, &c, &err), 0);
	}
	assert_int_equal(filter_compile(&f, LINKTYPE_ETHERNET, 100, &prog, &err), -E2BIG);
	assert_string_equal(err.msg, "filter is too complex: it needs more than 4096 classic BPF instructions");
	filter_done(&f);
	/* libpcap's accepting returns give our snaplen, not its own. */
	Frame fr;
	const FrameSpec udp = UDP4(A4, B4, 1, 2);

	frame_build(&udp, &fr);
	assert_int_equal(filter_set_expr(&f, "udp", 3, &err), 0);
	assert_int_equal(filter_compile(&f, LINKTYPE_ETHERNET, 100, &prog, &err), 0);
	assert_int_equal(filter_match(&prog, LINKTYPE_ETHERNET, fr.b, fr.n, fr.n), 100);
	cbpf_program_free(&prog);
	assert_int_equal(filter_compile(&f, LINKTYPE_ETHERNET, 1u << 20, &prog, &err), 0);
	assert_int_equal(filter_match(&prog, LINKTYPE_ETHERNET, fr.b, fr.n, fr.n), 1u << 20);
	cbpf_program_free(&prog);
	filter_done(&f);
	/* No filter at all: accept everything with snaplen. */
	assert_int_equal(filter_compile(NULL, LINKTYPE_RAW, 160, &prog, &err), 0);
	assert_int_equal(prog.len, 1);
	assert_int_equal(filter_match(&prog, LINKTYPE_RAW, (const uint8_t *)"x", 1, 1), 160);
	cbpf_program_free(&prog);
	cbpf_program_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_addrs_good),
		cmocka_unit_test(test_parse_addrs_errors),
		cmocka_unit_test(test_parse_addrs_bounds),
		cmocka_unit_test(test_parse_ports),
		cmocka_unit_test(test_parse_proto_and_numbers),
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_cbpf_check),
		cmocka_unit_test(test_cbpf_run),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_table_kernel),
		cmocka_unit_test(test_long_lists),
		cmocka_unit_test(test_compile_errors),
	};

	return cmocka_run_group_tests(tests, kernel_setup, kernel_teardown);
}

/* SPDX-License-Identifier: MIT */
/*
 * Writer: batching as seen through the IoOps seam (number and size of writev
 * calls), whole records after injected faults (failed Nth writev, short
 * writes, ENOSPC part way), formats read back through our reader.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pcap/reader.h"
#include "pcap/writer.h"

typedef struct Fault {
	unsigned calls;     /* writev calls seen */
	unsigned fail_call; /* 1-based call that fails with fail_errno; 0 = none */
	int fail_errno;
	size_t max_per_call; /* short writes: at most this many bytes per call; 0 = all */
	size_t space;        /* ENOSPC once this many bytes are written; 0 = unlimited */
	size_t written;
	size_t min_size, last_size; /* smallest writev except the last one so far, and the last */
	int max_iovcnt;             /* most iovecs handed to one writev */
} Fault;

static ssize_t fault_writev(const IoOps *self, int fd, const struct iovec *iov, int iovcnt)
{
	Fault *f = self->state;
	struct iovec cut[1024];
	size_t want = 0, allow;
	int n = 0;
	ssize_t k;

	f->calls++;
	if (iovcnt > f->max_iovcnt)
		f->max_iovcnt = iovcnt;
	if (f->fail_call && f->calls == f->fail_call)
		return -f->fail_errno;
	for (int i = 0; i < iovcnt; i++)
		want += iov[i].iov_len;
	allow = want;
	if (f->max_per_call && allow > f->max_per_call)
		allow = f->max_per_call;
	if (f->space) {
		if (f->written >= f->space)
			return -ENOSPC;
		if (allow > f->space - f->written)
			allow = f->space - f->written;
	}
	/* Hand the kernel only the first `allow` bytes. */
	for (size_t left = allow; n < iovcnt && left > 0 && n < 1024; n++) {
		cut[n] = iov[n];
		if (cut[n].iov_len > left)
			cut[n].iov_len = left;
		left -= cut[n].iov_len;
	}
	k = writev(fd, cut, n);
	if (k < 0)
		return -errno;
	f->written += (size_t)k;
	if (f->last_size && (f->min_size == 0 || f->last_size < f->min_size))
		f->min_size = f->last_size;
	f->last_size = (size_t)k;
	return k;
}

static IoOps fault_ops(Fault *f)
{
	IoOps ops = io_posix;

	ops.writev = fault_writev;
	ops.state = f;
	return ops;
}

static int new_file(void)
{
	int fd = memfd_create("pcap-writer-test", MFD_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

/* Deterministic payload of record i. */
static void fill(uint8_t *p, size_t len, unsigned i)
{
	for (size_t k = 0; k < len; k++)
		p[k] = (uint8_t)(i * 7 + k);
}

static size_t rec_len(unsigned i)
{
	return 40 + (i * 131) % 1475; /* 40..1514: both staged and referenced spans */
}

/* Reads fd back from offset base and checks its records are a prefix of what
 * was queued (n at most), whole, and returns how many there are. */
static unsigned verify_at(int fd, off_t base, PcapFormat fmt, unsigned n, size_t (*len_of)(unsigned))
{
	PcapReader *r;
	PcapRecord rec;
	ErrBuf err;
	uint8_t buf[2048];
	unsigned i = 0;
	int k, dupfd = dup(fd);

	assert_true(dupfd >= 0);
	assert_true(lseek(dupfd, base, SEEK_SET) == base);
	k = pcaprd_open_fd(dupfd, "written", &r, &err);
	assert_int_equal(k, 0);
	assert_int_equal(pcaprd_format(r), fmt);
	while ((k = pcaprd_next(r, &rec, &err)) == 1) {
		size_t len = len_of(i);

		assert_true(i < n);
		assert_int_equal(rec.caplen, len);
		assert_int_equal(rec.origlen, len + 4);
		fill(buf, len, i);
		assert_memory_equal(rec.data, buf, len);
		assert_int_equal(rec.ts_ns, (uint64_t)1700000000 * NSEC_PER_SEC + (uint64_t)i * 1001000);
		i++;
	}
	assert_int_equal(k, 0);
	assert_int_equal(pcaprd_truncated_tail(r), 0);
	pcaprd_free(r);
	return i;
}

static unsigned verify(int fd, PcapFormat fmt, unsigned n, size_t (*len_of)(unsigned))
{
	return verify_at(fd, 0, fmt, n, len_of);
}

/* Queues records from..to-1 (one part each) from one big buffer, where record
 * i lies after records 0..i-1. Returns the first error. */
static int queue_range(PcapBatch *b, uint8_t *mem, unsigned from, unsigned to, size_t (*len_of)(unsigned))
{
	size_t off = 0;

	for (unsigned i = 0; i < from; i++)
		off += len_of(i);
	for (unsigned i = from; i < to; i++) {
		size_t len = len_of(i);
		struct iovec part = {mem + off, len};
		int r;

		fill(mem + off, len, i);
		r = pcapwr_queue(b, 0, (uint64_t)1700000000 * NSEC_PER_SEC + (uint64_t)i * 1001000, (uint32_t)len + 4,
				 &part, 1);
		if (r < 0)
			return r;
		off += len;
	}
	return 0;
}

/* Queues records 0..n-1. */
static int queue_all(PcapBatch *b, uint8_t *mem, unsigned n, size_t (*len_of)(unsigned))
{
	return queue_range(b, mem, 0, n, len_of);
}

static size_t len_1514(unsigned i)
{
	(void)i;
	return 1514;
}

static size_t len_64(unsigned i)
{
	(void)i;
	return 64;
}

static void run_batching(PcapFormat fmt, unsigned n, size_t (*len_of)(unsigned), unsigned max_calls)
{
	Fault f = {0};
	IoOps ops = fault_ops(&f);
	PcapWriterConfig cfg = {.format = fmt, .linktype = LINKTYPE_ETHERNET, .snaplen = 65535, .io = &ops};
	PcapWriter *w;
	PcapBatch *b;
	ErrBuf err;
	uint8_t *mem = malloc((size_t)n * 1514);
	int fd = new_file();

	assert_non_null(mem);
	assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), 0);
	assert_int_equal(pcapwr_batch_new(w, &b), 0);
	assert_int_equal(queue_all(b, mem, n, len_of), 0);
	assert_int_equal(pcapwr_flush(b, &err), 0);
	pcapwr_batch_free(b);
	assert_int_equal(pcapwr_finish(w, false, &err), 0);
	print_message("# %u records of %zu bytes: %u writev calls, smallest but last %zu bytes\n", n, len_of(0),
		      f.calls, f.min_size);
	assert_true(f.calls <= max_calls);
	assert_true(f.calls >= 2);
	assert_true(f.min_size >= 256 * 1024);
	assert_int_equal(verify(fd, fmt, n, len_of), n);
	free(mem);
	close(fd);
}

static void test_batching_large_frames(void **state)
{
	(void)state;
	/* 10,000 x 1514 bytes = 15 MB: a few dozen writevs, not 10,000. */
	run_batching(PCAP_FORMAT_PCAP_NS, 10000, len_1514, 48);
	run_batching(PCAP_FORMAT_PCAPNG, 10000, len_1514, 48);
}

static void test_batching_small_frames(void **state)
{
	(void)state;
	/* 100,000 x 64 bytes = 8 MB, all staged: about one writev per MiB. */
	run_batching(PCAP_FORMAT_PCAP_US, 100000, len_64, 12);
}

/* One fault scenario: every record that made it to the file is whole. */
static void run_fault(PcapFormat fmt, Fault f, bool expect_error)
{
	IoOps ops;
	PcapWriterConfig cfg = {
		.format = fmt, .linktype = LINKTYPE_ETHERNET, .snaplen = 2048, .batch_bytes = 64 * 1024};
	PcapWriter *w;
	PcapBatch *b;
	ErrBuf err;
	const unsigned n = 3000;
	uint8_t *mem = malloc((size_t)n * 1514);
	int fd = new_file(), r, r2;
	unsigned got;
	off_t size;

	ops = fault_ops(&f);
	cfg.io = &ops;
	assert_non_null(mem);
	assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), 0);
	assert_int_equal(pcapwr_batch_new(w, &b), 0);
	r = queue_all(b, mem, n, rec_len);
	r2 = pcapwr_flush(b, &err);
	pcapwr_batch_free(b);
	size = lseek(fd, 0, SEEK_END);
	(void)size;
	if (expect_error) {
		assert_true(r < 0 || r2 < 0);
	} else {
		assert_int_equal(r, 0);
		assert_int_equal(r2, 0);
	}
	/* The file size equals the writer's count of whole bytes. */
	{
		struct stat st;

		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal((uint64_t)st.st_size, pcapwr_offset(w));
	}
	if (pcapwr_offset(w) > 0) {
		got = verify(fd, fmt, n, rec_len);
		if (!expect_error)
			assert_int_equal(got, n);
	}
	pcapwr_free(w);
	free(mem);
	close(fd);
}

static void test_faults_keep_whole_records(void **state)
{
	static const PcapFormat fmts[] = {PCAP_FORMAT_PCAP_US, PCAP_FORMAT_PCAPNG};

	(void)state;
	for (unsigned k = 0; k < ARRAY_SIZE(fmts); k++) {
		/* The Nth writev fails outright. */
		for (unsigned call = 1; call <= 6; call++)
			run_fault(fmts[k], (Fault){.fail_call = call, .fail_errno = EIO}, true);
		/* The disk fills at awkward places: in the header, mid-record, mid-batch. */
		for (size_t space = 7; space < 300000; space = space * 3 + 17)
			run_fault(fmts[k], (Fault){.space = space}, true);
		/* Short writes everywhere: nothing is lost. */
		run_fault(fmts[k], (Fault){.max_per_call = 1000}, false);
		run_fault(fmts[k], (Fault){.max_per_call = 3}, false);
		/* Short writes, then ENOSPC. */
		run_fault(fmts[k], (Fault){.max_per_call = 777, .space = 123457}, true);
	}
}

static void test_after_failure_nothing_more_is_written(void **state)
{
	Fault f = {.fail_call = 2, .fail_errno = ENOSPC};
	IoOps ops = fault_ops(&f);
	PcapWriterConfig cfg = {
		.format = PCAP_FORMAT_PCAP_NS, .linktype = 1, .snaplen = 2048, .batch_bytes = 4096, .io = &ops};
	PcapWriter *w;
	PcapBatch *b;
	ErrBuf err;
	uint8_t *mem = malloc(300 * 1514);
	int fd = new_file();

	(void)state;
	assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), 0);
	assert_int_equal(pcapwr_batch_new(w, &b), 0);
	assert_int_equal(queue_all(b, mem, 300, rec_len) < 0, 1);
	assert_int_equal(pcapwr_flush(b, &err), -EIO);
	pcapwr_batch_free(b);
	assert_int_equal(pcapwr_finish(w, false, &err), -EIO);
	assert_true(verify(fd, PCAP_FORMAT_PCAP_NS, 300, rec_len) > 0);
	free(mem);
	close(fd);
}

static void test_pcapng_interfaces_and_timestamps(void **state)
{
	PcapWriterConfig cfg = {
		.format = PCAP_FORMAT_PCAPNG, .linktype = LINKTYPE_ETHERNET, .snaplen = 1500, .ifname = "eth0"};
	PcapWriter *w;
	PcapBatch *b;
	PcapReader *r;
	PcapRecord rec;
	PcapInterfaceInfo info;
	ErrBuf err;
	uint32_t raw_if, if3;
	uint8_t data[100];
	struct iovec parts[3] = {{data, 10}, {data + 10, 0}, {data + 10, 90}};
	int fd = new_file(), dupfd;

	(void)state;
	fill(data, sizeof(data), 5);
	assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), 0);
	assert_int_equal(pcapwr_add_interface(w, LINKTYPE_RAW, 9000, "tun0", &raw_if, &err), 0);
	assert_int_equal(raw_if, 1);
	assert_int_equal(pcapwr_batch_new(w, &b), 0);
	assert_int_equal(pcapwr_queue(b, 0, 1, 100, parts, 3), 0);
	assert_int_equal(pcapwr_queue_copy(b, raw_if, UINT64_C(0x123456789abcdef0), 1000, parts, 3), 0);
	assert_int_equal(pcapwr_queue(b, 7, 1, 100, parts, 1), -ENOENT);
	assert_int_equal(pcapwr_flush(b, &err), 0);
	/* An interface added after the header went out is described before use. */
	assert_int_equal(pcapwr_add_interface(w, LINKTYPE_LINUX_SLL2, 65535, NULL, &if3, &err), 0);
	assert_int_equal(pcapwr_queue(b, if3, 2, 100, parts, 3), 0);
	assert_int_equal(pcapwr_flush(b, &err), 0);
	pcapwr_batch_free(b);
	assert_int_equal(pcapwr_finish(w, true, &err), 0);

	dupfd = dup(fd);
	assert_int_equal(lseek(dupfd, 0, SEEK_SET), 0);
	assert_int_equal(pcaprd_open_fd(dupfd, "ng", &r, &err), 0);
	assert_int_equal(pcaprd_next(r, &rec, &err), 1);
	assert_int_equal(rec.ts_ns, 1);
	assert_int_equal(rec.linktype, LINKTYPE_ETHERNET);
	assert_int_equal(rec.caplen, 100);
	assert_memory_equal(rec.data, data, 100);
	assert_int_equal(pcaprd_next(r, &rec, &err), 1);
	assert_int_equal(rec.ts_ns, UINT64_C(0x123456789abcdef0));
	assert_int_equal(rec.linktype, LINKTYPE_RAW);
	assert_int_equal(rec.origlen, 1000);
	assert_int_equal(pcaprd_interface_info(r, 1, &info), 0);
	assert_int_equal(info.snaplen, 9000);
	assert_int_equal(info.tsresol, NSEC_PER_SEC);
	assert_int_equal(pcaprd_next(r, &rec, &err), 1);
	assert_int_equal(rec.linktype, LINKTYPE_LINUX_SLL2);
	assert_int_equal(rec.ifid, 2);
	assert_int_equal(pcaprd_next(r, &rec, &err), 0);
	pcaprd_free(r);
	close(fd);
}

static void test_classic_rules(void **state)
{
	PcapWriterConfig cfg = {.format = PCAP_FORMAT_PCAP_US, .linktype = LINKTYPE_ETHERNET, .snaplen = 64};
	PcapWriter *w;
	PcapBatch *b;
	PcapReader *r;
	PcapRecord rec;
	ErrBuf err;
	uint32_t id = 99;
	uint8_t data[100] = {0};
	struct iovec part = {data, 65};
	int fd = new_file(), dupfd;

	(void)state;
	assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), 0);
	assert_int_equal(pcapwr_add_interface(w, LINKTYPE_RAW, 64, NULL, &id, &err), -EPROTOTYPE);
	assert_int_equal(pcapwr_add_interface(w, LINKTYPE_ETHERNET, 64, NULL, &id, &err), 0);
	assert_int_equal(id, 0);
	assert_int_equal(pcapwr_batch_new(w, &b), 0);
	assert_int_equal(pcapwr_queue(b, 0, 1, 65, &part, 1), -EMSGSIZE); /* caplen > snaplen */
	part.iov_len = 64;
	/* µs output: nanoseconds are cut to microseconds. */
	assert_int_equal(pcapwr_queue(b, 0, UINT64_C(1700000000123456789), 65, &part, 1), 0);
	assert_int_equal(pcapwr_flush(b, &err), 0);
	pcapwr_batch_free(b);
	assert_int_equal(pcapwr_finish(w, false, &err), 0);
	dupfd = dup(fd);
	assert_int_equal(lseek(dupfd, 0, SEEK_SET), 0);
	assert_int_equal(pcaprd_open_fd(dupfd, "us", &r, &err), 0);
	assert_int_equal(pcaprd_next(r, &rec, &err), 1);
	assert_int_equal(rec.ts_ns, UINT64_C(1700000000123456000));
	assert_int_equal(rec.origlen, 65);
	pcaprd_free(r);
	close(fd);
}

static void test_empty_capture_is_a_valid_file(void **state)
{
	PcapWriterConfig cfg = {.format = PCAP_FORMAT_PCAPNG, .linktype = LINKTYPE_ETHERNET, .snaplen = 64};
	PcapWriter *w;
	PcapReader *r;
	PcapRecord rec;
	ErrBuf err;
	int fd = new_file(), dupfd;

	(void)state;
	assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), 0);
	assert_int_equal(pcapwr_finish(w, false, &err), 0);
	dupfd = dup(fd);
	assert_int_equal(lseek(dupfd, 0, SEEK_SET), 0);
	assert_int_equal(pcaprd_open_fd(dupfd, "empty", &r, &err), 0);
	assert_int_equal(pcaprd_next(r, &rec, &err), 0);
	assert_int_equal(pcaprd_interface_count(r), 1);
	pcaprd_free(r);
	close(fd);
}

/* A file that already holds bytes when the writer starts (a caller's own
 * header, an earlier capture): a failed write is undone back to the writer's
 * last whole record, never into those bytes. */
static void test_truncation_keeps_bytes_before_the_writer(void **state)
{
	static const size_t spaces[] = {7, 100, 5000, 70001};
	const off_t base = 1000;
	const unsigned n = 3000;
	uint8_t prefix[1000], back[1000];
	uint8_t *mem = malloc((size_t)n * 1514);

	(void)state;
	assert_non_null(mem);
	memset(prefix, 'X', sizeof(prefix));
	for (unsigned k = 0; k < ARRAY_SIZE(spaces); k++) {
		Fault f = {.space = spaces[k]};
		IoOps ops = fault_ops(&f);
		PcapWriterConfig cfg = {.format = PCAP_FORMAT_PCAPNG,
					.linktype = LINKTYPE_ETHERNET,
					.snaplen = 2048,
					.batch_bytes = 64 * 1024,
					.io = &ops};
		PcapWriter *w;
		PcapBatch *b;
		ErrBuf err;
		struct stat st;
		int fd = new_file(), r, r2;

		assert_int_equal(write(fd, prefix, sizeof(prefix)), sizeof(prefix));
		assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), 0);
		assert_int_equal(pcapwr_batch_new(w, &b), 0);
		r = queue_all(b, mem, n, rec_len);
		r2 = pcapwr_flush(b, &err);
		pcapwr_batch_free(b);
		assert_true(r < 0 || r2 < 0);
		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal((uint64_t)st.st_size, (uint64_t)base + pcapwr_offset(w));
		assert_int_equal(pread(fd, back, sizeof(back), 0), sizeof(back));
		assert_memory_equal(back, prefix, sizeof(prefix));
		if (pcapwr_offset(w) > 0)
			(void)verify_at(fd, base, PCAP_FORMAT_PCAPNG, n, rec_len);
		pcapwr_free(w);
		close(fd);
	}
	free(mem);
}

/* O_APPEND: the file's end is not ours to move (another writer may append),
 * so a failed write is not truncated: the partial record stays. */
static void test_append_descriptor_is_not_truncated(void **state)
{
	Fault f = {.space = 5000}; /* inside the fourth record or so */
	IoOps ops = fault_ops(&f);
	PcapWriterConfig cfg = {.format = PCAP_FORMAT_PCAP_US,
				.linktype = LINKTYPE_ETHERNET,
				.snaplen = 2048,
				.batch_bytes = 64 * 1024,
				.io = &ops};
	PcapWriter *w;
	PcapBatch *b;
	ErrBuf err;
	struct stat st;
	char path[64];
	uint8_t *mem = malloc(100 * 1514);
	int fd = new_file(), afd, r;

	(void)state;
	assert_non_null(mem);
	assert_int_equal(write(fd, "prefix", 6), 6);
	r = snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	assert_true(r > 0 && (size_t)r < sizeof(path));
	afd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(afd >= 0);
	assert_int_equal(pcapwr_new(afd, &cfg, &w, &err), 0);
	assert_int_equal(pcapwr_batch_new(w, &b), 0);
	r = queue_all(b, mem, 100, rec_len);
	if (r == 0)
		r = pcapwr_flush(b, &err);
	assert_int_equal(r, -ENOSPC);
	pcapwr_batch_free(b);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, 6 + 5000);
	assert_true((uint64_t)st.st_size > 6 + pcapwr_offset(w));
	pcapwr_free(w);
	close(afd);
	close(fd);
	free(mem);
}

/* A batch holding as many iovecs as it may, plus the file header in front,
 * goes out in one writev() of at most IOV_MAX iovecs. */
static void test_full_batch_is_one_writev(void **state)
{
	Fault f = {0};
	IoOps ops = fault_ops(&f);
	PcapWriterConfig cfg = {
		.format = PCAP_FORMAT_PCAPNG, .linktype = LINKTYPE_ETHERNET, .snaplen = 65535, .io = &ops};
	PcapWriter *w;
	PcapBatch *b;
	ErrBuf err;
	struct iovec parts[64];
	uint8_t *mem = malloc(64 * 512);
	unsigned nrec = 0;
	int fd = new_file();

	(void)state;
	assert_non_null(mem);
	memset(mem, 0x5a, 64 * 512);
	for (unsigned i = 0; i < 64; i++)
		parts[i] = (struct iovec){mem + i * 512, 512}; /* referenced: one iovec each */
	assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), 0);
	assert_int_equal(pcapwr_batch_new(w, &b), 0);
	/* Single-part records first, then 64-part ones, up to the iovec limit. */
	for (; nrec < 200 && !pcapwr_batch_full(b); nrec++)
		assert_int_equal(pcapwr_queue(b, 0, nrec, 64 * 512, parts, nrec < 150 ? 1 : 64), 0);
	assert_true(pcapwr_batch_full(b));
	assert_int_equal(f.calls, 0);
	assert_int_equal(pcapwr_flush(b, &err), 0);
	print_message("# %u records: %u writev calls, at most %d iovecs\n", nrec, f.calls, f.max_iovcnt);
	assert_int_equal(f.calls, 1);
	assert_true(f.max_iovcnt <= IOV_MAX);
	assert_true(f.max_iovcnt > IOV_MAX - 66);
	pcapwr_batch_free(b);
	assert_int_equal(pcapwr_finish(w, false, &err), 0);
	free(mem);
	close(fd);
}

/* More IDBs than fit a few KiB, all added before the first flush, and a record
 * on the last one: every IDB precedes it in the file (our reader and libpcap
 * both read it back). */
static void test_many_interfaces_precede_their_records(void **state)
{
	enum { NIF = 300 };
	PcapWriterConfig cfg = {
		.format = PCAP_FORMAT_PCAPNG, .linktype = LINKTYPE_ETHERNET, .snaplen = 1500, .ifname = "eth0"};
	PcapWriter *w;
	PcapBatch *b;
	PcapReader *r;
	PcapRecord rec;
	ErrBuf err;
	char name[64], ebuf[PCAP_ERRBUF_SIZE];
	uint8_t data[60];
	struct iovec part = {data, sizeof(data)};
	struct pcap_pkthdr *h;
	const u_char *pd;
	pcap_t *pc;
	FILE *fp;
	uint32_t id = 0;
	uint64_t end = 0;
	int fd = new_file(), dupfd;

	(void)state;
	memset(data, 0x33, sizeof(data));
	assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), 0);
	for (unsigned i = 1; i < NIF; i++) {
		/* Longest names: the biggest IDBs. */
		int k = snprintf(name, sizeof(name), "if%03u-%057u", i, 0u);

		assert_int_equal(k, 63);
		/* libpcap wants one link type and snaplen per section. */
		assert_int_equal(pcapwr_add_interface(w, LINKTYPE_ETHERNET, 1500, name, &id, &err), 0);
		assert_int_equal(id, i);
	}
	assert_int_equal(pcapwr_batch_new(w, &b), 0);
	assert_int_equal(pcapwr_queue(b, NIF - 1, 7, 60, &part, 1), 0);
	assert_int_equal(pcapwr_queue(b, 0, 8, 60, &part, 1), 0);
	assert_int_equal(pcapwr_flush(b, &err), 0);
	pcapwr_batch_free(b);
	assert_int_equal(pcapwr_finish_at(w, false, &end, &err), 0);
	assert_int_equal(end, (uint64_t)lseek(fd, 0, SEEK_END));

	dupfd = dup(fd);
	assert_int_equal(lseek(dupfd, 0, SEEK_SET), 0);
	assert_int_equal(pcaprd_open_fd(dupfd, "many", &r, &err), 0);
	assert_int_equal(pcaprd_next(r, &rec, &err), 1);
	assert_int_equal(rec.ifid, NIF - 1);
	assert_int_equal(rec.ts_ns, 7);
	assert_int_equal(pcaprd_interface_count(r), NIF);
	assert_int_equal(pcaprd_next(r, &rec, &err), 1);
	assert_int_equal(rec.ifid, 0);
	assert_int_equal(pcaprd_next(r, &rec, &err), 0);
	pcaprd_free(r);

	dupfd = dup(fd);
	assert_int_equal(lseek(dupfd, 0, SEEK_SET), 0);
	fp = fdopen(dupfd, "rb");
	assert_non_null(fp);
	pc = pcap_fopen_offline(fp, ebuf);
	if (!pc)
		print_message("# libpcap: %s\n", ebuf);
	assert_non_null(pc);
	assert_int_equal(pcap_next_ex(pc, &h, &pd), 1);
	assert_int_equal(h->caplen, 60);
	assert_int_equal(pcap_next_ex(pc, &h, &pd), 1);
	assert_int_equal(pcap_next_ex(pc, &h, &pd), PCAP_ERROR_BREAK);
	pcap_close(pc); /* closes fp */
	close(fd);
}

typedef struct ThreadArg {
	PcapWriter *w;
	uint8_t tag;
	int result;
} ThreadArg;

static void *writer_thread(void *p)
{
	ThreadArg *a = p;
	PcapBatch *b;
	uint8_t data[600];
	struct iovec part = {data, sizeof(data)};
	ErrBuf err;

	memset(data, a->tag, sizeof(data));
	a->result = pcapwr_batch_new(a->w, &b);
	for (unsigned i = 0; i < 5000 && a->result == 0; i++)
		a->result = pcapwr_queue(b, 0, i, sizeof(data), &part, 1);
	if (a->result == 0)
		a->result = pcapwr_flush(b, &err);
	pcapwr_batch_free(b);
	return NULL;
}

static void test_batches_of_several_threads_do_not_interleave(void **state)
{
	PcapWriterConfig cfg = {.format = PCAP_FORMAT_PCAP_NS, .linktype = 1, .snaplen = 1000, .batch_bytes = 100000};
	ThreadArg args[2];
	pthread_t t[2];
	PcapWriter *w;
	PcapReader *r;
	PcapRecord rec;
	ErrBuf err;
	unsigned count[2] = {0}, n = 0;
	int fd = new_file(), dupfd;

	(void)state;
	assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), 0);
	for (int i = 0; i < 2; i++) {
		args[i] = (ThreadArg){.w = w, .tag = (uint8_t)(0xa0 + i)};
		assert_int_equal(pthread_create(&t[i], NULL, writer_thread, &args[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(args[i].result, 0);
	}
	assert_int_equal(pcapwr_finish(w, false, &err), 0);
	dupfd = dup(fd);
	assert_int_equal(lseek(dupfd, 0, SEEK_SET), 0);
	assert_int_equal(pcaprd_open_fd(dupfd, "threads", &r, &err), 0);
	while (pcaprd_next(r, &rec, &err) == 1) {
		uint8_t tag = rec.data[0];

		assert_int_equal(rec.caplen, 600);
		assert_true(tag == 0xa0 || tag == 0xa1);
		assert_int_equal(rec.data[599], tag);
		/* Each thread's own records stay in order. */
		assert_int_equal(rec.ts_ns, count[tag - 0xa0]);
		count[tag - 0xa0]++;
		n++;
	}
	assert_int_equal(n, 10000);
	pcaprd_free(r);
	close(fd);
}

/* A file on a disk file system (O_DIRECT needs one; memfd is not), removed
 * at once: only the descriptor stays. */
static int new_disk_file(void)
{
	char path[] = "/var/tmp/pcapd-writer-test-XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC);

	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

/* Reads fd's file through a description of its own, from its start (spool
 * writes are positional: the writer's descriptor offset says nothing). */
static unsigned verify_direct(int fd, PcapFormat fmt, unsigned n)
{
	char path[64];
	int own, w;
	unsigned got;

	w = snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	assert_true(w > 0 && (size_t)w < sizeof(path));
	own = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(own >= 0);
	got = verify(own, fmt, n, rec_len);
	close(own);
	return got;
}

/* Spool mode: once the writer is synced after a flush the file holds every
 * record flushed (on a disk file system the aligned part written directly,
 * the ragged end through the page cache), and after finish it is exact; the
 * caller's descriptor keeps its flags and ends at the end of the file. */
static void test_direct_mode_writes_exact_file(void **state)
{
	PcapWriterConfig cfg = {.format = PCAP_FORMAT_PCAP_NS,
				.linktype = LINKTYPE_ETHERNET,
				.snaplen = 2048,
				.batch_bytes = 64 * 1024,
				.direct = true};
	const unsigned n = 3000;
	uint8_t *mem = malloc((size_t)n * 1514);
	PcapWriter *w;
	PcapBatch *b;
	ErrBuf err;
	uint64_t offset = 0, whole = 0;
	struct stat st;
	size_t off = 0;
	unsigned flushes = 0;
	bool direct = false;
	int fd = new_disk_file(), fl = fcntl(fd, F_GETFL);

	(void)state;
	assert_non_null(mem);
	assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), 0);
	assert_true(pcapwr_spooled(w, &direct));
	print_message("# spool mode, O_DIRECT %s\n", direct ? "on" : "refused by /var/tmp's file system");
	assert_int_equal(pcapwr_batch_new(w, &b), 0);
	for (unsigned i = 0; i < n; i++) {
		size_t len = rec_len(i);
		struct iovec part = {mem + off, len};

		fill(mem + off, len, i);
		assert_int_equal(pcapwr_queue(b, 0, (uint64_t)1700000000 * NSEC_PER_SEC + (uint64_t)i * 1001000,
					      (uint32_t)len + 4, &part, 1),
				 0);
		off += len;
		if (i % 500 == 499) {
			assert_int_equal(pcapwr_flush(b, &err), 0);
			/* Flushed is not yet written: whole bytes (what a reader
			 * of the growing file may take) only grow, never past
			 * what was flushed; after the sync, all of it. */
			assert_true(pcapwr_whole(w) >= whole);
			whole = pcapwr_whole(w);
			assert_true(whole <= pcapwr_offset(w));
			assert_int_equal(pcapwr_sync(w, &err), 0);
			flushes++;
			assert_int_equal(fstat(fd, &st), 0);
			assert_int_equal((uint64_t)st.st_size, pcapwr_offset(w));
			assert_int_equal(pcapwr_whole(w), pcapwr_offset(w)); /* written: all of it is whole */
			assert_int_equal(fcntl(fd, F_GETFL), fl);
			assert_int_equal(verify_direct(fd, PCAP_FORMAT_PCAP_NS, n), i + 1);
		}
	}
	assert_int_equal(flushes, 6);
	assert_int_equal(pcapwr_flush(b, &err), 0);
	pcapwr_batch_free(b);
	assert_int_equal(pcapwr_finish_at(w, false, &offset, &err), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, offset);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), (off_t)offset);
	/* preallocation given back: no block past the end's 4 KiB */
	assert_true((uint64_t)st.st_blocks * 512 <= (offset + 4095) / 4096 * 4096 + 4096);
	assert_int_equal(verify_direct(fd, PCAP_FORMAT_PCAP_NS, n), n);
	free(mem);
	close(fd);
}

static ssize_t fault_pwritev(const IoOps *self, int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
	Fault *f = self->state;
	size_t want = 0;
	ssize_t k;

	f->calls++;
	if (f->fail_call && f->calls == f->fail_call)
		return -f->fail_errno;
	for (int i = 0; i < iovcnt; i++)
		want += iov[i].iov_len;
	k = pwritev(fd, iov, iovcnt, offset);
	if (k < 0)
		return -errno;
	f->written += (size_t)k;
	return k;
}

/* Spool mode: a write failing (the Nth of the spool's writer) leaves whole
 * records only; the error shows at a later flush, sync or finish. */
static void test_direct_mode_fault_keeps_whole_records(void **state)
{
	for (unsigned call = 1; call <= 6; call++) {
		Fault f = {.fail_call = call, .fail_errno = ENOSPC};
		IoOps ops = io_posix;
		PcapWriterConfig cfg = {.format = PCAP_FORMAT_PCAP_US,
					.linktype = LINKTYPE_ETHERNET,
					.snaplen = 2048,
					.batch_bytes = 64 * 1024,
					.direct = true,
					.io = &ops};
		const unsigned n = 3000;
		uint8_t *mem = malloc((size_t)n * 1514);
		PcapWriter *w;
		PcapBatch *b;
		ErrBuf err = {0};
		struct stat st;
		int fd = new_disk_file(), r;

		(void)state;
		ops.pwritev = fault_pwritev;
		ops.state = &f;
		assert_non_null(mem);
		assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), 0);
		assert_int_equal(pcapwr_batch_new(w, &b), 0);
		r = 0;
		for (unsigned k = 0; k < n && r == 0; k += 300) { /* flushes of 300 records */
			r = queue_range(b, mem, k, k + 300 < n ? k + 300 : n, rec_len);
			if (r == 0)
				r = pcapwr_flush(b, &err);
		}
		pcapwr_batch_free(b);
		if (r == 0)
			r = pcapwr_finish(w, false, &err);
		else
			pcapwr_free(w);
		assert_int_equal(r, -ENOSPC);
		assert_non_null(strstr(err.msg, "write failed: No space left on device"));
		assert_int_equal(fstat(fd, &st), 0);
		if (st.st_size > 0)
			assert_true(verify_direct(fd, PCAP_FORMAT_PCAP_US, n) < n);
		free(mem);
		close(fd);
	}
}

/* A batch allowed more iovecs than one writev takes is written in several
 * calls of at most IOV_MAX; out-of-range values are refused. */
static void test_large_batch_iov(void **state)
{
	Fault f = {0};
	IoOps ops = fault_ops(&f);
	PcapWriterConfig cfg = {.format = PCAP_FORMAT_PCAP_US,
				.linktype = LINKTYPE_ETHERNET,
				.snaplen = 2048,
				.batch_bytes = 64u << 20,
				.batch_iov = 4095,
				.io = &ops};
	const unsigned n = 1800; /* 1514-byte records: 2 iovecs each, ~3600 in one batch */
	uint8_t *mem = malloc((size_t)n * 1514);
	PcapWriter *w;
	PcapBatch *b;
	ErrBuf err;
	int fd = new_file();

	(void)state;
	assert_non_null(mem);
	assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), 0);
	assert_int_equal(pcapwr_batch_new(w, &b), 0);
	assert_int_equal(queue_all(b, mem, n, len_1514), 0);
	assert_false(pcapwr_batch_full(b));
	assert_int_equal(f.calls, 0); /* nothing written early */
	assert_int_equal(pcapwr_flush(b, &err), 0);
	assert_true(f.calls >= 4);
	assert_true(f.max_iovcnt <= IOV_MAX);
	pcapwr_batch_free(b);
	assert_int_equal(verify(fd, PCAP_FORMAT_PCAP_US, n, len_1514), n);
	pcapwr_free(w);
	close(fd);
	free(mem);

	cfg.io = NULL;
	cfg.batch_iov = 66;
	assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "batch_iov 66 is outside 67.."));
	cfg.batch_iov = 64u * IOV_MAX + 1;
	assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), -EINVAL);
}

/* pcapng interfaces in full (name, description, microsecond resolution) and
 * their statistics, read back by our decoder; bounds and classic pcap refused. */
static void test_interface_description_and_stats(void **state)
{
	PcapWrInterface d0 = {.linktype = LINKTYPE_ETHERNET,
			      .snaplen = 2048,
			      .name = "web01/eth0",
			      .description = "colo ord02",
			      .tsresol = 6};
	PcapWriterConfig cfg = {
		.format = PCAP_FORMAT_PCAPNG, .linktype = LINKTYPE_ETHERNET, .snaplen = 2048, .iface0 = &d0};
	PcapWrInterface d1 = {.linktype = LINKTYPE_RAW, .snaplen = 100};
	PcapIfStats st = {.have = PCAP_STAT_IFRECV | PCAP_STAT_IFDROP | PCAP_STAT_START | PCAP_STAT_END,
			  .ifrecv = 1000,
			  .ifdrop = 3,
			  .start_ns = 1700000000123456000ull,
			  .end_ns = 1700000009000000000ull};
	uint8_t pkt[64] = {0};
	struct iovec part = {pkt, sizeof(pkt)};
	char longname[300];
	PcapWriter *w;
	PcapBatch *b;
	PcapReader *r;
	PcapRecord rec;
	PcapInterfaceInfo info;
	ErrBuf err;
	uint32_t id1;
	int fd = new_file(), k;

	(void)state;
	assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), 0);
	assert_int_equal(pcapwr_add_interface_desc(w, &d1, &id1, &err), 0);
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	d1.name = longname;
	assert_int_equal(pcapwr_add_interface_desc(w, &d1, &id1, &err), -ENAMETOOLONG);
	assert_non_null(strstr(err.msg, "interface name longer than 256 bytes"));
	/* A classic pcap link type with its upper (FCS) bits set has no pcapng IDB. */
	d1.name = NULL;
	d1.linktype = 0x10000000u | LINKTYPE_ETHERNET;
	assert_int_equal(pcapwr_add_interface_desc(w, &d1, &id1, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "does not fit a pcapng interface"));
	assert_int_equal(pcapwr_set_interface_stats(w, 0, &st, &err), 0);
	assert_int_equal(pcapwr_set_interface_stats(w, 7, &st, &err), -ENOENT);
	assert_int_equal(pcapwr_batch_new(w, &b), 0);
	assert_int_equal(pcapwr_queue(b, 0, 1700000001000001000ull, 64, &part, 1), 0);
	assert_int_equal(pcapwr_queue(b, 1, 1700000001000001001ull, 64, &part, 1), 0);
	assert_int_equal(pcapwr_flush(b, &err), 0);
	pcapwr_batch_free(b);
	assert_int_equal(pcapwr_finish(w, false, &err), 0);

	assert_true(lseek(fd, 0, SEEK_SET) == 0);
	assert_int_equal(pcaprd_open_fd(dup(fd), "written", &r, &err), 0);
	assert_int_equal(pcaprd_next(r, &rec, &err), 1);
	assert_int_equal(rec.ts_ns, 1700000001000001000ull); /* microseconds: exact */
	assert_int_equal(pcaprd_next(r, &rec, &err), 1);
	assert_int_equal(rec.ts_ns, 1700000001000001001ull);
	while ((k = pcaprd_next(r, &rec, &err)) == 1)
		;
	assert_int_equal(k, 0);
	assert_int_equal(pcaprd_interface_info(r, 0, &info), 0);
	assert_string_equal(info.name, "web01/eth0");
	assert_string_equal(info.description, "colo ord02");
	assert_int_equal(info.tsresol, 1000000);
	assert_int_equal(info.stats.have, st.have);
	assert_int_equal(info.stats.ifrecv, 1000);
	assert_int_equal(info.stats.ifdrop, 3);
	assert_int_equal(info.stats.start_ns, st.start_ns);
	assert_int_equal(info.stats.end_ns, st.end_ns);
	assert_int_equal(pcaprd_interface_info(r, 1, &info), 0);
	assert_null(info.name);
	assert_int_equal(info.tsresol, 1000000000);
	assert_int_equal(info.stats.have, 0);
	pcaprd_free(r);
	close(fd);

	cfg = (PcapWriterConfig){.format = PCAP_FORMAT_PCAP_US, .linktype = LINKTYPE_ETHERNET, .snaplen = 100};
	fd = new_file();
	assert_int_equal(pcapwr_new(fd, &cfg, &w, &err), 0);
	assert_int_equal(pcapwr_set_interface_stats(w, 0, &st, &err), -EPROTOTYPE);
	pcapwr_free(w);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batching_large_frames),
		cmocka_unit_test(test_batching_small_frames),
		cmocka_unit_test(test_faults_keep_whole_records),
		cmocka_unit_test(test_after_failure_nothing_more_is_written),
		cmocka_unit_test(test_pcapng_interfaces_and_timestamps),
		cmocka_unit_test(test_classic_rules),
		cmocka_unit_test(test_empty_capture_is_a_valid_file),
		cmocka_unit_test(test_batches_of_several_threads_do_not_interleave),
		cmocka_unit_test(test_truncation_keeps_bytes_before_the_writer),
		cmocka_unit_test(test_append_descriptor_is_not_truncated),
		cmocka_unit_test(test_full_batch_is_one_writev),
		cmocka_unit_test(test_many_interfaces_precede_their_records),
		cmocka_unit_test(test_direct_mode_writes_exact_file),
		cmocka_unit_test(test_direct_mode_fault_keeps_whole_records),
		cmocka_unit_test(test_large_batch_iov),
		cmocka_unit_test(test_interface_description_and_stats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * An anchor for bench/capture.sh: what writing a capture costs a file system
 * when the bytes come from a capture ring rather than from a small buffer.
 * dd (bs=4M) writes the same 4 MiB again and again, so its source stays in
 * the CPU's cache; a capture tool writes each frame once, from a ring far
 * larger than any cache, written by the kernel on another core. This writes
 * BYTES to FILE as a capture does: pwritev() of 64 records at a time, each a
 * 16-byte record header and a FRAME-byte packet, the packets taken in turn
 * from a 128 MiB buffer (one frame per 2 KiB slot, as a ring holds them).
 * Prints the rate in MB/s (10^6 bytes per second), fsync included.
 *
 *   ringcopy FILE BYTES [FRAME]      FRAME: 64..2000, default 1514
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RING_BYTES (128u << 20)
#define SLOT 2048u
#define BATCH 64

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	uint8_t hdr[BATCH][16], *ring;
	struct iovec iov[2 * BATCH];
	unsigned long long total, off = 0;
	size_t slot = 0, frame = 1514;
	char *end;
	double t0;
	int fd;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: ringcopy FILE BYTES [FRAME]\n");
		return 2;
	}
	errno = 0;
	total = strtoull(argv[2], &end, 10);
	if (errno || *end || total == 0) {
		fprintf(stderr, "ringcopy: BYTES: not a positive number: %s\n", argv[2]);
		return 2;
	}
	if (argc == 4) {
		frame = strtoul(argv[3], &end, 10);
		if (*end || frame < 64 || frame > 2000) {
			fprintf(stderr, "ringcopy: FRAME: not in 64..2000: %s\n", argv[3]);
			return 2;
		}
	}
	ring = mmap(NULL, RING_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (ring == MAP_FAILED) {
		perror("ringcopy: mapping the ring");
		return 1;
	}
	memset(ring, 0x5a, RING_BYTES);
	memset(hdr, 0, sizeof(hdr));
	fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "ringcopy: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	t0 = now_s();
	while (off < total) {
		ssize_t n, want = 0;
		int k = 0;

		for (int i = 0; i < BATCH && off + (unsigned long long)want < total; i++) {
			iov[k++] = (struct iovec){.iov_base = hdr[i], .iov_len = 16};
			iov[k++] = (struct iovec){.iov_base = ring + slot * SLOT, .iov_len = frame};
			want += (ssize_t)(16 + frame);
			slot = (slot + 1) % (RING_BYTES / SLOT);
		}
		n = pwritev(fd, iov, k, (off_t)off);
		if (n != want) {
			fprintf(stderr, "ringcopy: %s: %s\n", argv[1], n < 0 ? strerror(errno) : "short write");
			return 1;
		}
		off += (unsigned long long)n;
	}
	if (fsync(fd) < 0) {
		fprintf(stderr, "ringcopy: %s: fsync: %s\n", argv[1], strerror(errno));
		return 1;
	}
	printf("%.0f\n", (double)off / (now_s() - t0) / 1e6);
	close(fd);
	return 0;
}

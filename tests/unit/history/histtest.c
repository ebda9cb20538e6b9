/* SPDX-License-Identifier: MIT */
#include "histtest.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pcap/reader.h"

/* Frame layout: Ethernet, IPv4 (id % 5 != 4) or IPv6, UDP (id even) or TCP;
 * src 10.0.<id % 7>.1 (2001:db8::<id % 7>), dst 192.0.2.<id % 13>
 * (2001:db8:1::<id % 13>), sport 1000 + id % 5, dport 53 when id % 11 == 0
 * else 80; payload: id (4 bytes, big-endian) then bytes derived from id. */
uint32_t ht_frame(uint32_t id, uint8_t *out)
{
	uint32_t n = 0, len = 60 + (id * 37) % 300;
	bool v6 = id % 5 == 4, udp = id % 2 == 0;
	uint32_t l4;

	memcpy(out, "\x02\0\0\0\0\x02\x02\0\0\0\0\x01", 12);
	n = 12;
	if (!v6) {
		uint8_t ip[20] = {0x45, 0,   0,  0,  0,
				  1,    0,   0,  64, udp ? 17 : 6,
				  0,    0,   10, 0,  (uint8_t)(id % 7),
				  1,    192, 0,  2,  (uint8_t)(id % 13)};

		out[n++] = 0x08;
		out[n++] = 0x00;
		memcpy(out + n, ip, 20);
		n += 20;
	} else {
		uint8_t ip[40] = {0x60, 0, 0, 0, 0, 0, udp ? 17 : 6, 64};

		ip[8] = 0x20, ip[9] = 0x01, ip[10] = 0x0d, ip[11] = 0xb8, ip[23] = (uint8_t)(id % 7);
		ip[24] = 0x20, ip[25] = 0x01, ip[26] = 0x0d, ip[27] = 0xb8, ip[29] = 1, ip[39] = (uint8_t)(id % 13);
		out[n++] = 0x86;
		out[n++] = 0xdd;
		memcpy(out + n, ip, 40);
		n += 40;
	}
	l4 = n;
	out[n++] = (uint8_t)((1000 + id % 5) >> 8);
	out[n++] = (uint8_t)(1000 + id % 5);
	out[n++] = 0;
	out[n++] = id % 11 == 0 ? 53 : 80;
	memset(out + n, 0, udp ? 4 : 16);
	n += udp ? 4 : 16;
	(void)l4;
	out[n++] = (uint8_t)(id >> 24);
	out[n++] = (uint8_t)(id >> 16);
	out[n++] = (uint8_t)(id >> 8);
	out[n++] = (uint8_t)id;
	while (n < len) {
		out[n] = (uint8_t)(id * 31 + n);
		n++;
	}
	return n;
}

uint32_t ht_frame_id(const uint8_t *data, uint32_t caplen)
{
	uint8_t want[HT_FRAME_MAX];
	uint32_t off, id, n;

	if (caplen < 60)
		return UINT32_MAX; /* every test frame has 60 bytes; tests keep >= 64 */
	off = data[12] == 0x86 ? 14 + 40 : 14 + 20;
	off += data[off - (data[12] == 0x86 ? 34 : 11)] == 17 ? 8 : 20;
	if (caplen < off + 4)
		return UINT32_MAX;
	id = (uint32_t)data[off] << 24 | (uint32_t)data[off + 1] << 16 | (uint32_t)data[off + 2] << 8 | data[off + 3];
	n = ht_frame(id, want);
	if (caplen > n || memcmp(want, data, caplen) != 0)
		return UINT32_MAX;
	return id;
}

int ht_add(HistStore *s, uint32_t id, uint64_t ts, ErrBuf *err)
{
	uint8_t frame[HT_FRAME_MAX];
	struct iovec parts[2];
	uint32_t n = ht_frame(id, frame);
	HistPacket p = {.ts_ns = ts, .origlen = n, .linktype = 1, .parts = parts, .nparts = 2};

	/* Two parts, as the capture engine hands a re-tagged frame. */
	parts[0] = (struct iovec){.iov_base = frame, .iov_len = 10};
	parts[1] = (struct iovec){.iov_base = frame + 10, .iov_len = n - 10};
	return hist_add(s, &p, err);
}

int ht_query(HistStore *s, const HistQuery *q, HtPkt **ret, size_t *ret_n, HistQueryResult *res)
{
	HistQueryResult local;
	PcapReader *rd = NULL;
	HtPkt *v = NULL;
	size_t n = 0, cap = 0;
	ErrBuf err = {{0}};
	int fd = memfd_create("answer", MFD_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	r = hist_query(s, q, fd, res ? res : &local, &err);
	if (r < 0) {
		fprintf(stderr, "# hist_query: %s\n", err.msg);
		close(fd);
		return r;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return -errno;
	}
	r = pcaprd_open_fd(fd, "answer", &rd, &err);
	if (r < 0) {
		fprintf(stderr, "# reading the answer: %s\n", err.msg);
		return r;
	}
	for (;;) {
		PcapRecord rec;

		r = pcaprd_next(rd, &rec, &err);
		if (r <= 0)
			break;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = realloc(v, cap * sizeof(*v));
		}
		v[n++] = (HtPkt){.ts = rec.ts_ns,
				 .id = ht_frame_id(rec.data, rec.caplen),
				 .caplen = rec.caplen,
				 .origlen = rec.origlen,
				 .linktype = rec.linktype};
	}
	if (r == 0 && pcaprd_truncated_tail(rd) != 0)
		r = -EBADMSG;
	if (r < 0)
		fprintf(stderr, "# reading the answer: %s\n", err.msg);
	pcaprd_free(rd);
	*ret = v;
	*ret_n = n;
	return r;
}

void ht_tmpdir(char *out, size_t cap)
{
	snprintf(out, cap, "/tmp/pcapd-hist-test-XXXXXX");
	if (!mkdtemp(out))
		abort();
}

void ht_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

unsigned ht_count(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;
	size_t k = strlen(suffix);

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);

		if (l >= k && strcmp(e->d_name + l - k, suffix) == 0 && e->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return n;
}

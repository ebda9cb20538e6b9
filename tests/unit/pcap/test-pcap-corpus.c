/* SPDX-License-Identifier: MIT */
/*
 * libpcap agreement over the tcpdump test corpus (argv[1] or $PCAPD_CORPUS_DIR).
 *
 * For every file, libpcap 1.10 (nanosecond precision, pcap_next_ex) and our
 * reader read side by side:
 *  - ours must never crash (the ASan/UBSan build runs this too);
 *  - when libpcap reads the file to its end without error, ours must open it,
 *    give the same number of records and, for each record, the same caplen,
 *    origlen, link type, ns timestamp and bytes, and end without error and
 *    without a truncated tail;
 *  - when libpcap fails part way, the records it did return must still equal
 *    our first records (we may read on: a truncated tail is not an error here).
 *
 * What is compared "precisely where it should be equal":
 *  - libpcap returns DLT_* values; we return the file's LINKTYPE_*. The test
 *    maps libpcap's DLT back with libpcap itself (pcap_dump of a dead handle
 *    writes the LINKTYPE into its file header), so no table is duplicated.
 *  - libpcap rewrites the pseudo-header of some link types in byte-swapped
 *    files (pcap_post_process: pflog, Linux SLL/SLL2, USB, NFLOG) to host
 *    order, and fixes origlen of some Linux USB mmapped records. pcapd keeps
 *    the file's bytes untouched (zero copy; a merge writes what it read), so
 *    for exactly those link types (swapped files only, for the bytes) a
 *    difference is tolerated and counted, never elsewhere.
 *  - classic pcap stores 32-bit seconds and fractions that libpcap puts in
 *    signed fields; both sides are compared as the file's unsigned values.
 */
#include <errno.h>
#include <dirent.h>
#include <pcap/pcap.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pcap/reader.h"

static const char *corpus_dir;

typedef struct Summary {
	unsigned files, agreed, libpcap_failed, ours_failed, mismatched;
	unsigned long long records, pseudo_tolerated;
} Summary;

/* LINKTYPE_* that libpcap writes for a DLT_*, asked of libpcap itself. */
static int dlt_to_linktype(int dlt, uint32_t *ret)
{
	pcap_t *dead = pcap_open_dead(dlt, 65535);
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	pcap_dumper_t *dumper;
	int r = -EIO;

	if (!dead)
		return -ENOMEM;
	f = open_memstream(&buf, &len);
	if (!f)
		goto out;
	dumper = pcap_dump_fopen(dead, f);
	if (!dumper) {
		fclose(f);
		goto out;
	}
	pcap_dump_close(dumper); /* closes f */
	if (len >= 24) {
		uint32_t v;

		memcpy(&v, buf + 20, sizeof(v));
		*ret = v & 0x03ffffffu;
		r = 0;
	}
out:
	free(buf);
	pcap_close(dead);
	return r;
}

static int pseudo_header_rewritten(int dlt)
{
	return dlt == DLT_PFLOG || dlt == DLT_LINUX_SLL || dlt == DLT_LINUX_SLL2 || dlt == DLT_USB_LINUX ||
	       dlt == DLT_USB_LINUX_MMAPPED || dlt == DLT_NFLOG;
}

static uint64_t libpcap_ts(const struct pcap_pkthdr *h, PcapFormat fmt)
{
	if (fmt == PCAP_FORMAT_PCAPNG)
		return (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec;
	if (fmt == PCAP_FORMAT_PCAP_US)
		return (uint64_t)(uint32_t)h->ts.tv_sec * 1000000000u +
		       (uint64_t)(uint32_t)(h->ts.tv_usec / 1000) * 1000u;
	return (uint64_t)(uint32_t)h->ts.tv_sec * 1000000000u + (uint64_t)(uint32_t)h->ts.tv_usec;
}

/* 0 when every record libpcap returned matched ours; prints the first difference. */
static int check_file(const char *path, Summary *s)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_t *p;
	PcapReader *r = NULL;
	ErrBuf err = {{0}};
	int ours_open, lib_status = 0, mismatch = 0, dlt = -1, swapped = 0;
	uint32_t linktype = 0;
	unsigned long long n = 0;

	s->files++;
	ours_open = pcaprd_open(path, &r, &err);
	p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, errbuf);
	if (!p) {
		s->libpcap_failed++;
		goto out;
	}
	dlt = pcap_datalink(p);
	swapped = pcap_is_swapped(p);
	if (dlt_to_linktype(dlt, &linktype) < 0) {
		fprintf(stderr, "# %s: libpcap cannot map DLT %d\n", path, dlt);
		mismatch = 1;
		goto out;
	}
	for (;;) {
		struct pcap_pkthdr *h;
		const u_char *data;
		PcapRecord rec;
		int k;

		lib_status = pcap_next_ex(p, &h, &data);
		if (lib_status != 1)
			break;
		n++;
		if (ours_open < 0) {
			fprintf(stderr, "# %s: libpcap reads it, we do not open it: %s\n", path, err.msg);
			mismatch = 1;
			break;
		}
		k = pcaprd_next(r, &rec, &err);
		if (k != 1) {
			fprintf(stderr, "# %s: record %llu: libpcap has one, we have %s\n", path, n,
				k == 0 ? "none" : err.msg);
			mismatch = 1;
			break;
		}
		if (rec.caplen != h->caplen || rec.linktype != linktype ||
		    rec.ts_ns != libpcap_ts(h, pcaprd_format(r)) ||
		    (rec.origlen != h->len && dlt != DLT_USB_LINUX_MMAPPED)) {
			fprintf(stderr,
				"# %s: record %llu: caplen %u/%u origlen %u/%u linktype %u/%u ts %llu/%llu "
				"(ours/libpcap)\n",
				path, n, rec.caplen, h->caplen, rec.origlen, h->len, rec.linktype, linktype,
				(unsigned long long)rec.ts_ns, (unsigned long long)libpcap_ts(h, pcaprd_format(r)));
			mismatch = 1;
			break;
		}
		if (memcmp(rec.data, data, h->caplen) != 0) {
			if (swapped && pseudo_header_rewritten(dlt)) {
				s->pseudo_tolerated++;
			} else {
				fprintf(stderr, "# %s: record %llu: bytes differ\n", path, n);
				mismatch = 1;
				break;
			}
		}
	}
	s->records += n;
	if (mismatch)
		goto out;
	if (lib_status == -1) {
		s->libpcap_failed++;
		goto out;
	}
	/* libpcap read the whole file cleanly: we must end here too. */
	if (ours_open < 0) {
		fprintf(stderr, "# %s: libpcap reads it (%llu records), we do not open it: %s\n", path, n, err.msg);
		mismatch = 1;
	} else {
		PcapRecord rec;
		int k = pcaprd_next(r, &rec, &err);

		if (k != 0 || pcaprd_truncated_tail(r) != 0) {
			fprintf(stderr, "# %s: libpcap ends after %llu records, we have %s (tail %llu)\n", path, n,
				k == 1   ? "more"
				: k == 0 ? "a truncated tail"
					 : err.msg,
				(unsigned long long)pcaprd_truncated_tail(r));
			mismatch = 1;
		} else {
			s->agreed++;
		}
	}
out:
	/* Files libpcap could not read fully: make sure we read ours to the end too
	 * (no crash, no sanitizer report), whatever the result. */
	if (ours_open >= 0 && !mismatch) {
		PcapRecord rec;

		while (pcaprd_next(r, &rec, &err) == 1)
			;
	}
	if (ours_open < 0 && !mismatch)
		s->ours_failed++;
	if (mismatch)
		s->mismatched++;
	if (p)
		pcap_close(p);
	pcaprd_free(r);
	return mismatch ? -1 : 0;
}

static void test_corpus_agrees_with_libpcap(void **state)
{
	Summary s = {0};
	struct dirent **names;
	int count;

	(void)state;
	count = scandir(corpus_dir, &names, NULL, alphasort);
	assert_true(count > 0);
	for (int i = 0; i < count; i++) {
		char path[4096];
		int w;

		if (names[i]->d_name[0] == '.') {
			free(names[i]);
			continue;
		}
		w = snprintf(path, sizeof(path), "%s/%s", corpus_dir, names[i]->d_name);
		assert_true(w > 0 && (size_t)w < sizeof(path));
		(void)check_file(path, &s);
		free(names[i]);
	}
	free(names);
	fprintf(stderr,
		"# files %u, agreed %u, libpcap-failed %u, ours-failed (libpcap failed too or not at all: see agreed) "
		"%u, mismatched %u; "
		"records %llu, pseudo-header bytes tolerated %llu\n",
		s.files, s.agreed, s.libpcap_failed, s.ours_failed, s.mismatched, s.records, s.pseudo_tolerated);
	assert_int_equal(s.mismatched, 0);
	/* The corpus is mostly well-formed: a reader that failed everything must not pass. */
	/* The corpus holds 830 captures: a missing or emptied one must not pass. */
	assert_true(s.files >= 800);
	assert_true(s.agreed > s.files / 2);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus_agrees_with_libpcap),
	};

	corpus_dir = argc > 1 ? argv[1] : getenv("PCAPD_CORPUS_DIR");
	if (!corpus_dir) {
		fprintf(stderr, "usage: %s CORPUS_DIR (or PCAPD_CORPUS_DIR)\n", argv[0]);
		return 2;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* A full capture's configuration from its start order (capsetup.h). */
#include <string.h>

#include "agent/capsetup.h"
#include "agent/ifaces.h"
#include "filter/filter.h"
#include "model/filtermodel.h"

/* Puts "what: " before the message in err (the message cannot be its own
 * format argument: the buffers would overlap). */
static int prefix_err(ErrBuf *err, int r, const char *what)
{
	ErrBuf old = *err;

	return errbuf_set(err, r, "%s: %s", what, old.msg);
}

/* The interfaces of this capture: the configured list, or those up now. */
static int job_ifaces(const AgentConfig *cfg, CapSetup *s, ErrBuf *err)
{
	int r;

	if (!cfg->all_ifaces) {
		for (size_t i = 0; i < cfg->n_ifaces; i++)
			s->names[i] = cfg->ifaces[i];
		s->capture.n_ifaces = cfg->n_ifaces;
		return 0;
	}
	r = ifaces_up(&s->owned, &s->n_owned, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < s->n_owned; i++)
		s->names[i] = s->owned[i];
	s->capture.n_ifaces = s->n_owned;
	return 0;
}

int capsetup_init(const AgentConfig *cfg, const AgentJobSpec *spec, CapSetup *s, ErrBuf *err)
{
	CaptureConfig *cc = &s->capture;
	Filter filter = {0};
	bool have_filter, same = true;
	uint32_t lt0 = 0;
	uint64_t seconds = spec->continuous.on ? spec->continuous.session_limit_s : spec->time_limit_s;
	int r;

	r = filtermodel_parse(spec->filter, strlen(spec->filter), &filter, err);
	if (r < 0) {
		prefix_err(err, r, "filter");
		goto out;
	}
	r = job_ifaces(cfg, s, err);
	if (r < 0)
		goto out;
	/* 0 or more than a packet can hold: whole packets. */
	cc->snaplen = spec->snaplen && spec->snaplen < PCAP_MAX_SNAPLEN ? spec->snaplen : PCAP_MAX_SNAPLEN;
	have_filter = filter.n_clauses > 0 || filter.bpf_expr;
	for (size_t i = 0; i < cc->n_ifaces; i++) {
		uint32_t lt;

		r = capture_iface_linktype(s->names[i], &lt, err);
		if (r < 0)
			goto out;
		if (i == 0)
			lt0 = lt;
		same = same && lt == lt0;
		if (have_filter) {
			r = filter_compile(&filter, lt, cc->snaplen, &s->progs[i], err);
			if (r < 0) {
				prefix_err(err, r, "filter");
				goto out;
			}
		}
	}
	cc->ifaces = s->names;
	cc->block_count = cfg->ring_blocks ? cfg->ring_blocks : CAPSETUP_RING_BLOCKS;
	cc->block_size = cfg->block_size ? cfg->block_size : CAPSETUP_BLOCK_SIZE;
	cc->workers = 1;
	cc->filters = have_filter ? s->progs : NULL;
	cc->max_packets = spec->packet_limit;
	cc->max_bytes = spec->byte_limit;
	cc->max_duration_ns = seconds * NSEC_PER_SEC;
	/* One link type fits classic pcap, which every tool reads; several need pcapng. */
	s->format = same ? PCAP_FORMAT_PCAP_US : PCAP_FORMAT_PCAPNG;
out:
	filter_done(&filter);
	return r;
}

void capsetup_done(CapSetup *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < CAPTURE_MAX_IFACES; i++)
		cbpf_program_free(&s->progs[i]);
	ifaces_free(s->owned, s->n_owned);
	memset(s, 0, sizeof(*s));
}

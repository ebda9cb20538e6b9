/* SPDX-License-Identifier: MIT */
/* filter_sample(): see sample.h for the program it builds. */
#include "filter/sample.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int filter_sample(const CbpfProgram *in, uint32_t rate, uint32_t snaplen, CbpfProgram *ret, ErrBuf *err)
{
	const struct sock_filter accept = BPF_STMT(BPF_RET | BPF_K, snaplen);
	const struct sock_filter *body = in ? in->insns : &accept;
	uint32_t body_len = in ? in->len : 1, head = rate > 1 ? FILTER_SAMPLE_INSNS : 0;
	struct sock_filter *insns;

	if (rate == 0)
		return errbuf_set(err, -EINVAL, "sample rate: 0 is outside 1..%u", UINT32_MAX);
	if (!in && snaplen == 0)
		return errbuf_set(err, -EINVAL, "snaplen: 0 would drop every packet");
	if (in && (!in->insns || in->len == 0))
		return errbuf_set(err, -EINVAL, "sample: empty program");
	if (body_len + head > BPF_MAXINSNS)
		return errbuf_set(err, -E2BIG, "filter is too complex to sample: %u + %u instructions exceed %u",
				  body_len, head, BPF_MAXINSNS);
	insns = malloc((body_len + head) * sizeof(*insns));
	if (!insns)
		return errbuf_set(err, -ENOMEM, "sample: out of memory");
	if (head) {
		insns[0] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_AD_OFF + SKF_AD_RANDOM);
		insns[1] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, rate);
		insns[2] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0);
		insns[3] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0);
	}
	/* Jumps are relative: the program needs no change behind the test. */
	memcpy(insns + head, body, body_len * sizeof(*insns));
	ret->insns = insns;
	ret->len = (uint16_t)(body_len + head);
	return 0;
}

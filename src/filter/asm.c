/* SPDX-License-Identifier: MIT */
#include "filter/asm.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Past this many labels or instructions the program cannot fit anyway. */
#define ASM_MAX_LABELS (16u * BPF_MAXINSNS)

void asm_done(Asm *a)
{
	if (!a)
		return;
	free(a->v);
	free(a->label_at);
	memset(a, 0, sizeof(*a));
}

uint32_t asm_label(Asm *a)
{
	if (a->error)
		return 0;
	if (a->n_labels >= ASM_MAX_LABELS) {
		a->error = -E2BIG;
		return 0;
	}
	if (a->n_labels == a->labels_cap) {
		size_t cap = a->labels_cap ? a->labels_cap * 2 : 64;
		uint32_t *v = realloc(a->label_at, cap * sizeof(*v));

		if (!v) {
			a->error = -ENOMEM;
			return 0;
		}
		a->label_at = v;
		a->labels_cap = cap;
	}
	a->label_at[a->n_labels] = UINT32_MAX;
	return (uint32_t)a->n_labels++;
}

void asm_bind(Asm *a, uint32_t label)
{
	if (a->error)
		return;
	a->label_at[label] = (uint32_t)a->n;
}

static void emit(Asm *a, uint16_t code, uint32_t k, uint32_t jt, uint32_t jf)
{
	if (a->error)
		return;
	if (a->n >= BPF_MAXINSNS) {
		/* Trampolines only add instructions: this cannot fit. */
		a->error = -E2BIG;
		return;
	}
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 256;
		AsmInsn *v = realloc(a->v, cap * sizeof(*v));

		if (!v) {
			a->error = -ENOMEM;
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = (AsmInsn){code, k, jt, jf};
}

void asm_stmt(Asm *a, uint16_t code, uint32_t k)
{
	emit(a, code, k, 0, 0);
}

void asm_ja(Asm *a, uint32_t label)
{
	emit(a, BPF_JMP | BPF_JA, 0, label, 0);
}

void asm_jmp(Asm *a, uint16_t code, uint32_t k, uint32_t jt, uint32_t jf)
{
	emit(a, code, k, jt, jf);
}

void asm_jmp_t(Asm *a, uint16_t code, uint32_t k, uint32_t jt)
{
	uint32_t next = asm_label(a);

	emit(a, code, k, jt, next);
	asm_bind(a, next);
}

void asm_jmp_f(Asm *a, uint16_t code, uint32_t k, uint32_t jf)
{
	uint32_t next = asm_label(a);

	emit(a, code, k, next, jf);
	asm_bind(a, next);
}

int asm_finish(Asm *a, CbpfProgram *ret)
{
	uint8_t *tt = NULL, *tf = NULL;
	uint32_t *pos = NULL;
	struct sock_filter *out = NULL;
	bool changed = true;
	int r = a->error;

	if (r < 0)
		return r;
	if (a->n == 0)
		return -EINVAL;
	tt = calloc(a->n, 1);
	tf = calloc(a->n, 1);
	pos = calloc(a->n + 1, sizeof(*pos));
	if (!tt || !tf || !pos) {
		r = -ENOMEM;
		goto cleanup;
	}
	/* Every jump must target a later instruction that exists. */
	for (size_t i = 0; i < a->n; i++) {
		const AsmInsn *in = &a->v[i];

		if (BPF_CLASS(in->code) != BPF_JMP)
			continue;
		if (a->label_at[in->jt] == UINT32_MAX || a->label_at[in->jt] <= i || a->label_at[in->jt] >= a->n ||
		    (cbpf_is_cond_jump(in->code) &&
		     (a->label_at[in->jf] == UINT32_MAX || a->label_at[in->jf] <= i || a->label_at[in->jf] >= a->n))) {
			r = -EINVAL;
			goto cleanup;
		}
	}
	/* Trampolines only get added, so this reaches a fixed point. */
	while (changed) {
		changed = false;
		pos[0] = 0;
		for (size_t i = 0; i < a->n; i++)
			pos[i + 1] = pos[i] + 1 + tt[i] + tf[i];
		for (size_t i = 0; i < a->n; i++) {
			const AsmInsn *in = &a->v[i];

			if (!cbpf_is_cond_jump(in->code))
				continue;
			if (!tt[i] && pos[a->label_at[in->jt]] - pos[i] - 1 > 255) {
				tt[i] = 1;
				changed = true;
			}
			if (!tf[i] && pos[a->label_at[in->jf]] - pos[i] - 1 > 255) {
				tf[i] = 1;
				changed = true;
			}
		}
	}
	if (pos[a->n] > BPF_MAXINSNS) {
		r = -E2BIG;
		goto cleanup;
	}
	out = calloc(pos[a->n], sizeof(*out));
	if (!out) {
		r = -ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < a->n; i++) {
		const AsmInsn *in = &a->v[i];
		struct sock_filter *o = &out[pos[i]];
		uint32_t t, f;

		o->code = in->code;
		o->k = in->k;
		if (BPF_CLASS(in->code) != BPF_JMP)
			continue;
		t = pos[a->label_at[in->jt]];
		if (!cbpf_is_cond_jump(in->code)) {
			o->k = t - pos[i] - 1;
			continue;
		}
		f = pos[a->label_at[in->jf]];
		o->jt = (uint8_t)(tt[i] ? 0 : t - pos[i] - 1);
		o->jf = (uint8_t)(tf[i] ? tt[i] : f - pos[i] - 1);
		if (tt[i])
			o[1] = (struct sock_filter){BPF_JMP | BPF_JA, 0, 0, t - (pos[i] + 1) - 1};
		if (tf[i])
			o[1 + tt[i]] = (struct sock_filter){BPF_JMP | BPF_JA, 0, 0, f - (pos[i] + 1 + tt[i]) - 1};
	}
	ret->insns = out;
	ret->len = (uint16_t)pos[a->n];
	out = NULL;
	r = 0;
cleanup:
	free(out);
	free(pos);
	free(tf);
	free(tt);
	return r;
}

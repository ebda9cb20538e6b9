/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/filter: a tiny classic-BPF assembler with labels. Code is
 * emitted in order; jumps name labels, which must be bound later (classic BPF
 * only jumps forward). asm_finish() lays the program out and, where a
 * conditional jump's target is more than 255 instructions away (its offsets are
 * 8-bit), routes it through an unconditional `ja` trampoline placed right after
 * the jump. Errors are sticky: emitting after a failure is a no-op and
 * asm_finish() reports the first one.
 */

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "filter/cbpf.h"

typedef struct AsmInsn {
	uint16_t code;
	uint32_t k;
	uint32_t jt, jf; /* label ids of conditional jumps; ja uses jt */
} AsmInsn;

typedef struct Asm {
	AsmInsn *v;
	size_t n, cap;
	uint32_t *label_at; /* instruction index each label is bound to; UINT32_MAX unbound */
	size_t n_labels, labels_cap;
	int error; /* first failure: -ENOMEM or -E2BIG */
} Asm;

void asm_done(Asm *a);
uint32_t asm_label(Asm *a);
void asm_bind(Asm *a, uint32_t label);
void asm_stmt(Asm *a, uint16_t code, uint32_t k);
void asm_ja(Asm *a, uint32_t label);
void asm_jmp(Asm *a, uint16_t code, uint32_t k, uint32_t jt, uint32_t jf);
/* Conditional jump to jt, falling through to the next instruction otherwise. */
void asm_jmp_t(Asm *a, uint16_t code, uint32_t k, uint32_t jt);
/* Conditional jump falling through when true, to jf otherwise. */
void asm_jmp_f(Asm *a, uint16_t code, uint32_t k, uint32_t jf);
/* Resolves labels and writes the program: 0, -E2BIG past BPF_MAXINSNS,
 * -ENOMEM, -EINVAL for an unbound or backward label (a generator bug). */
int asm_finish(Asm *a, CbpfProgram *ret);

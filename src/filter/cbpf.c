/* SPDX-License-Identifier: MIT */
/*
 * Classic BPF checker and interpreter with the Linux kernel's semantics
 * (net/core/filter.c: bpf_check_classic(), and the classic-to-eBPF conversion
 * that defines what each instruction does at run time):
 *
 *  - a load outside the packet ends the program with result 0 (drop);
 *  - division or modulo by X == 0 ends the program with result 0;
 *  - shifts by X use the low five bits of X (what the kernel's interpreter and
 *    its x86 JIT do; libpcap's bpf_filter() would give 0 instead);
 *  - negative offsets: SKF_AD_OFF + SKF_AD_* (absolute loads only) read
 *    metadata; SKF_LL_OFF + k reads byte k of the frame; SKF_NET_OFF + k is not
 *    supported (the interpreter does not know where the network header is) and
 *    behaves like a load outside the packet.
 *  - ancillary values CbpfPacket does not carry read as 0: SKF_AD_PAY_OFFSET,
 *    MARK, QUEUE, HATYPE, RXHASH, CPU, NLATTR, NLATTR_NEST. Programs pcapd
 *    compiles use none of them, and libpcap emits them only for live handles.
 *
 * Memory: M[] is not cleared between runs in the kernel; the checker (like the
 * kernel's) refuses programs that read a slot before every path stored it, so
 * the initial contents never matter. The interpreter zeroes M[] anyway.
 */
#include "filter/cbpf.h"
#include "filter/cbpf-split.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void cbpf_program_free(CbpfProgram *p)
{
	if (!p)
		return;
	free(p->insns);
	p->insns = NULL;
	p->len = 0;
}

static bool code_allowed(uint16_t code)
{
	switch (code) {
	case BPF_ALU | BPF_ADD | BPF_K:
	case BPF_ALU | BPF_ADD | BPF_X:
	case BPF_ALU | BPF_SUB | BPF_K:
	case BPF_ALU | BPF_SUB | BPF_X:
	case BPF_ALU | BPF_MUL | BPF_K:
	case BPF_ALU | BPF_MUL | BPF_X:
	case BPF_ALU | BPF_DIV | BPF_K:
	case BPF_ALU | BPF_DIV | BPF_X:
	case BPF_ALU | BPF_MOD | BPF_K:
	case BPF_ALU | BPF_MOD | BPF_X:
	case BPF_ALU | BPF_AND | BPF_K:
	case BPF_ALU | BPF_AND | BPF_X:
	case BPF_ALU | BPF_OR | BPF_K:
	case BPF_ALU | BPF_OR | BPF_X:
	case BPF_ALU | BPF_XOR | BPF_K:
	case BPF_ALU | BPF_XOR | BPF_X:
	case BPF_ALU | BPF_LSH | BPF_K:
	case BPF_ALU | BPF_LSH | BPF_X:
	case BPF_ALU | BPF_RSH | BPF_K:
	case BPF_ALU | BPF_RSH | BPF_X:
	case BPF_ALU | BPF_NEG:
	case BPF_LD | BPF_W | BPF_ABS:
	case BPF_LD | BPF_H | BPF_ABS:
	case BPF_LD | BPF_B | BPF_ABS:
	case BPF_LD | BPF_W | BPF_IND:
	case BPF_LD | BPF_H | BPF_IND:
	case BPF_LD | BPF_B | BPF_IND:
	case BPF_LD | BPF_W | BPF_LEN:
	case BPF_LD | BPF_IMM:
	case BPF_LD | BPF_MEM:
	case BPF_LDX | BPF_W | BPF_LEN:
	case BPF_LDX | BPF_B | BPF_MSH:
	case BPF_LDX | BPF_IMM:
	case BPF_LDX | BPF_MEM:
	case BPF_ST:
	case BPF_STX:
	case BPF_MISC | BPF_TAX:
	case BPF_MISC | BPF_TXA:
	case BPF_RET | BPF_K:
	case BPF_RET | BPF_A:
	case BPF_JMP | BPF_JA:
	case BPF_JMP | BPF_JEQ | BPF_K:
	case BPF_JMP | BPF_JEQ | BPF_X:
	case BPF_JMP | BPF_JGE | BPF_K:
	case BPF_JMP | BPF_JGE | BPF_X:
	case BPF_JMP | BPF_JGT | BPF_K:
	case BPF_JMP | BPF_JGT | BPF_X:
	case BPF_JMP | BPF_JSET | BPF_K:
	case BPF_JMP | BPF_JSET | BPF_X:
		return true;
	default:
		return false;
	}
}

bool cbpf_is_cond_jump(uint16_t code)
{
	return BPF_CLASS(code) == BPF_JMP && BPF_OP(code) != BPF_JA;
}

static bool anc_known(uint32_t k)
{
	switch (k - (uint32_t)SKF_AD_OFF) {
	case SKF_AD_PROTOCOL:
	case SKF_AD_PKTTYPE:
	case SKF_AD_IFINDEX:
	case SKF_AD_NLATTR:
	case SKF_AD_NLATTR_NEST:
	case SKF_AD_MARK:
	case SKF_AD_QUEUE:
	case SKF_AD_HATYPE:
	case SKF_AD_RXHASH:
	case SKF_AD_CPU:
	case SKF_AD_ALU_XOR_X:
	case SKF_AD_VLAN_TAG:
	case SKF_AD_VLAN_TAG_PRESENT:
	case SKF_AD_PAY_OFFSET:
	case SKF_AD_RANDOM:
	case SKF_AD_VLAN_TPID:
		return true;
	default:
		return false;
	}
}

/* The kernel's check_load_and_stores(): a scratch slot must be stored on every
 * path before it is loaded. One bit per slot; a jump target keeps the
 * intersection of what all edges into it guarantee. */
static int check_memory(const CbpfProgram *p, ErrBuf *err)
{
	uint16_t masks[BPF_MAXINSNS], valid = 0;

	memset(masks, 0xff, (size_t)p->len * sizeof(masks[0]));
	for (uint32_t pc = 0; pc < p->len; pc++) {
		const struct sock_filter *f = &p->insns[pc];

		valid &= masks[pc];
		switch (f->code) {
		case BPF_ST:
		case BPF_STX:
			valid |= (uint16_t)(1u << f->k);
			break;
		case BPF_LD | BPF_MEM:
		case BPF_LDX | BPF_MEM:
			if (!(valid & (1u << f->k)))
				return errbuf_set(err, -EINVAL, "instruction %u: M[%u] may be read before it is stored",
						  pc, f->k);
			break;
		case BPF_JMP | BPF_JA:
			masks[pc + 1 + f->k] &= valid;
			valid = 0xffff;
			break;
		default:
			if (cbpf_is_cond_jump(f->code)) {
				masks[pc + 1 + f->jt] &= valid;
				masks[pc + 1 + f->jf] &= valid;
				valid = 0xffff;
			}
			break;
		}
	}
	return 0;
}

int cbpf_check(const CbpfProgram *p, ErrBuf *err)
{
	uint16_t last;

	if (!p || !p->insns || p->len == 0 || p->len > BPF_MAXINSNS)
		return errbuf_set(err, -EINVAL, "program has %u instructions, not 1..%u", p ? p->len : 0, BPF_MAXINSNS);
	for (uint32_t pc = 0; pc < p->len; pc++) {
		const struct sock_filter *f = &p->insns[pc];

		if (!code_allowed(f->code))
			return errbuf_set(err, -EINVAL, "instruction %u: unknown opcode 0x%04x", pc, f->code);
		switch (f->code) {
		case BPF_ALU | BPF_DIV | BPF_K:
		case BPF_ALU | BPF_MOD | BPF_K:
			if (f->k == 0)
				return errbuf_set(err, -EINVAL, "instruction %u: division by constant 0", pc);
			break;
		case BPF_ALU | BPF_LSH | BPF_K:
		case BPF_ALU | BPF_RSH | BPF_K:
			if (f->k >= 32)
				return errbuf_set(err, -EINVAL, "instruction %u: shift by %u", pc, f->k);
			break;
		case BPF_LD | BPF_MEM:
		case BPF_LDX | BPF_MEM:
		case BPF_ST:
		case BPF_STX:
			if (f->k >= BPF_MEMWORDS)
				return errbuf_set(err, -EINVAL, "instruction %u: scratch slot %u, only %u", pc, f->k,
						  BPF_MEMWORDS);
			break;
		case BPF_JMP | BPF_JA:
			if (f->k >= p->len - pc - 1)
				return errbuf_set(err, -EINVAL, "instruction %u: jump past the end", pc);
			break;
		case BPF_LD | BPF_W | BPF_ABS:
		case BPF_LD | BPF_H | BPF_ABS:
		case BPF_LD | BPF_B | BPF_ABS:
			if (f->k >= (uint32_t)SKF_AD_OFF && !anc_known(f->k))
				return errbuf_set(err, -EINVAL, "instruction %u: unknown ancillary load %d", pc,
						  (int32_t)f->k);
			break;
		default:
			if (cbpf_is_cond_jump(f->code) && (pc + f->jt + 1 >= p->len || pc + f->jf + 1 >= p->len))
				return errbuf_set(err, -EINVAL, "instruction %u: jump past the end", pc);
			break;
		}
	}
	last = p->insns[p->len - 1].code;
	if (last != (BPF_RET | BPF_K) && last != (BPF_RET | BPF_A))
		return errbuf_set(err, -EINVAL, "last instruction is not a return");
	return check_memory(p, err);
}

/* The packet as the program sees it: head then tail. */
typedef struct View {
	const CbpfPacket *pkt;
	const uint8_t *tail;
	uint32_t tail_len;
} View;

static bool view_byte(const View *v, uint64_t off, uint8_t *ret)
{
	if (off < v->pkt->caplen) {
		*ret = v->pkt->data[off];
		return true;
	}
	off -= v->pkt->caplen;
	if (off < v->tail_len) {
		*ret = v->tail[off];
		return true;
	}
	return false;
}

/* Big-endian load of size bytes at a 32-bit offset as the program computed it;
 * negative offsets follow the kernel's bpf_internal_load_pointer_neg_helper(). */
static bool view_load(const View *v, uint32_t k, unsigned size, uint32_t *ret)
{
	uint64_t off = k;
	uint32_t val = 0;

	if (k >= (uint32_t)SKF_NET_OFF)
		return false; /* network-header relative and ancillary: see the top */
	if (k >= (uint32_t)SKF_LL_OFF)
		off = k - (uint32_t)SKF_LL_OFF;
	else if (k >= 0x80000000u)
		return false;
	for (unsigned i = 0; i < size; i++) {
		uint8_t b;

		if (!view_byte(v, off + i, &b))
			return false;
		val = val << 8 | b;
	}
	*ret = val;
	return true;
}

static uint32_t ancillary(const CbpfPacket *pkt, uint32_t k, uint32_t a, uint32_t x)
{
	switch (k - (uint32_t)SKF_AD_OFF) {
	case SKF_AD_PROTOCOL:
		return pkt->protocol;
	case SKF_AD_PKTTYPE:
		return pkt->pkttype;
	case SKF_AD_IFINDEX:
		return pkt->ifindex;
	case SKF_AD_VLAN_TAG:
		return pkt->vlan_tci;
	case SKF_AD_VLAN_TAG_PRESENT:
		return pkt->vlan_present ? 1 : 0;
	case SKF_AD_VLAN_TPID:
		return pkt->vlan_tpid;
	case SKF_AD_RANDOM:
		return pkt->random ? pkt->random(pkt->random_ctx) : 0;
	case SKF_AD_ALU_XOR_X:
		return a ^ x;
	default:
		return 0; /* documented at the top */
	}
}

static bool cond(uint16_t op, uint32_t a, uint32_t b)
{
	switch (op) {
	case BPF_JEQ:
		return a == b;
	case BPF_JGT:
		return a > b;
	case BPF_JGE:
		return a >= b;
	default:
		return (a & b) != 0; /* BPF_JSET */
	}
}

uint32_t cbpf_run_split(const CbpfProgram *p, const CbpfPacket *pkt, const uint8_t *tail, uint32_t tail_len)
{
	View v = {pkt, tail, tail_len};
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};
	uint32_t pc = 0;

	/* Defensive bounds even though programs are checked: a bad program ends
	 * with 0 rather than reading outside insns or mem. */
	while (pc < p->len) {
		const struct sock_filter *f = &p->insns[pc++];
		uint32_t k = f->k, src, val;

		switch (BPF_CLASS(f->code)) {
		case BPF_LD:
			switch (BPF_MODE(f->code)) {
			case BPF_ABS:
			case BPF_IND: {
				unsigned size = BPF_SIZE(f->code) == BPF_W ? 4 : BPF_SIZE(f->code) == BPF_H ? 2 : 1;

				if (BPF_MODE(f->code) == BPF_ABS && k >= (uint32_t)SKF_AD_OFF) {
					a = ancillary(pkt, k, a, x);
					break;
				}
				if (!view_load(&v, BPF_MODE(f->code) == BPF_IND ? x + k : k, size, &val))
					return 0;
				a = val;
				break;
			}
			case BPF_LEN:
				a = pkt->wirelen;
				break;
			case BPF_IMM:
				a = k;
				break;
			case BPF_MEM:
				if (k >= BPF_MEMWORDS)
					return 0;
				a = mem[k];
				break;
			default:
				return 0;
			}
			break;
		case BPF_LDX:
			switch (BPF_MODE(f->code)) {
			case BPF_LEN:
				x = pkt->wirelen;
				break;
			case BPF_IMM:
				x = k;
				break;
			case BPF_MEM:
				if (k >= BPF_MEMWORDS)
					return 0;
				x = mem[k];
				break;
			case BPF_MSH:
				if (!view_load(&v, k, 1, &val))
					return 0;
				x = (val & 0xf) << 2;
				break;
			default:
				return 0;
			}
			break;
		case BPF_ST:
		case BPF_STX:
			if (k >= BPF_MEMWORDS)
				return 0;
			mem[k] = BPF_CLASS(f->code) == BPF_ST ? a : x;
			break;
		case BPF_ALU:
			src = BPF_SRC(f->code) == BPF_X ? x : k;
			switch (BPF_OP(f->code)) {
			case BPF_ADD:
				a += src;
				break;
			case BPF_SUB:
				a -= src;
				break;
			case BPF_MUL:
				a *= src;
				break;
			case BPF_DIV:
				if (src == 0)
					return 0;
				a /= src;
				break;
			case BPF_MOD:
				if (src == 0)
					return 0;
				a %= src;
				break;
			case BPF_AND:
				a &= src;
				break;
			case BPF_OR:
				a |= src;
				break;
			case BPF_XOR:
				a ^= src;
				break;
			case BPF_LSH:
				a <<= (src & 31);
				break;
			case BPF_RSH:
				a >>= (src & 31);
				break;
			case BPF_NEG:
				a = -a;
				break;
			default:
				return 0;
			}
			break;
		case BPF_JMP:
			if (BPF_OP(f->code) == BPF_JA) {
				if (k >= p->len - pc)
					return 0;
				pc += k;
				break;
			}
			src = BPF_SRC(f->code) == BPF_X ? x : k;
			pc += cond(BPF_OP(f->code), a, src) ? f->jt : f->jf;
			break;
		case BPF_RET:
			return BPF_RVAL(f->code) == BPF_A ? a : k;
		case BPF_MISC:
			if (BPF_MISCOP(f->code) == BPF_TAX)
				x = a;
			else
				a = x;
			break;
		default:
			return 0;
		}
	}
	return 0;
}

uint32_t cbpf_run(const CbpfProgram *p, const CbpfPacket *pkt)
{
	return cbpf_run_split(p, pkt, NULL, 0);
}

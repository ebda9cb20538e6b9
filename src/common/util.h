/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Small helpers every subsystem may use: checked number parsing, clocks and the
 * one error-message carrier of the project.
 *
 * Error contract (docs/STYLE.md): functions return 0 or a positive value on success
 * and -errno on failure; ret_* out-parameters are written only on success.
 * Library code never prints: when a caller needs words, the function takes an
 * ErrBuf and fills it on failure.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NSEC_PER_SEC 1000000000ULL
#define NSEC_PER_USEC 1000ULL

#define PCAPD_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/* A human-readable reason for the last failure, written by library code. */
typedef struct ErrBuf {
	char msg[256]; /* NUL-terminated; truncated with "..." if longer */
} ErrBuf;

/* Formats a message into err (which may be NULL) and returns code unchanged, so
 * that `return errbuf_set(err, -EINVAL, "...")` is one statement. */
int errbuf_set(ErrBuf *err, int code, const char *fmt, ...) PCAPD_PRINTF(3, 4);

/* For a failed system call: reads errno before anything else, formats the
 * message followed by ": <strerror(errno)>" and returns -errno. */
int errbuf_errno(ErrBuf *err, const char *fmt, ...) PCAPD_PRINTF(2, 3);

/* Parses s[0..n) as a decimal unsigned integer: digits only (no sign, no
 * blanks, no trailing bytes), min <= value <= max.
 * Returns 0, -EINVAL (not a number) or -ERANGE (outside min..max). */
int parse_u64(const char *s, size_t n, uint64_t min, uint64_t max, uint64_t *ret);

/* Like parse_u64 but accepts a binary size suffix K, M, G (×1024^k). */
int parse_size(const char *s, size_t n, uint64_t min, uint64_t max, uint64_t *ret);

/* The value of one hex digit (either case), or -1 if c is none. */
int hex_digit(char c);

/* CLOCK_MONOTONIC and CLOCK_REALTIME in nanoseconds. */
uint64_t now_monotonic_ns(void);
uint64_t now_realtime_ns(void);

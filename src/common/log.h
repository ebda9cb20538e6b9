/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Logging for the programs (daemons and CLI) and the request handlers they
 * run: library modules never log, they return codes and ErrBuf messages that
 * their caller logs once. Messages up to the level set (LOG_LEVEL_INFO unless
 * a program's --log-level says otherwise; one of the few allowed globals,
 * docs/STYLE.md) are printed.
 */

#include "util.h"

typedef enum LogLevel { LOG_LEVEL_ERROR, LOG_LEVEL_WARNING, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG } LogLevel;

/* Sets the level (at start-up, before threads; later calls race nothing
 * worse than a message more or less). */
void log_set_level(LogLevel level);
/* "error", "warning", "info", "debug" into *ret; -EINVAL for anything else. */
int log_level_from_string(const char *s, LogLevel *ret);

/* Writes "pcapd: <message>\n" to stderr in one write() when level <= the set level. */
void log_msg(LogLevel level, const char *fmt, ...) PCAPD_PRINTF(2, 3);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

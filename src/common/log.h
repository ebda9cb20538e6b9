/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Logging for the programs (daemons and CLI) only: library modules never log,
 * they return codes and ErrBuf messages that their caller logs once.
 * Messages up to LOG_LEVEL_INFO are printed; the daemons will make the level
 * a setting (one of the few allowed globals, docs/STYLE.md).
 */

#include "util.h"

typedef enum LogLevel { LOG_LEVEL_ERROR, LOG_LEVEL_WARNING, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG } LogLevel;

/* Writes "pcapd: <message>\n" to stderr in one write() when level <= the set level. */
void log_msg(LogLevel level, const char *fmt, ...) PCAPD_PRINTF(2, 3);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

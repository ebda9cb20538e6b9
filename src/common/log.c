/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static LogLevel log_level = LOG_LEVEL_INFO;

void log_set_level(LogLevel level)
{
	log_level = level;
}

int log_level_from_string(const char *s, LogLevel *ret)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};

	for (size_t i = 0; s && i < ARRAY_SIZE(names); i++)
		if (strcmp(s, names[i]) == 0) {
			*ret = (LogLevel)i;
			return 0;
		}
	return -EINVAL;
}

void log_msg(LogLevel level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n, m;

	if (level > log_level)
		return;
	n = snprintf(line, sizeof(line), "pcapd: ");
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2; /* long messages are cut, never dropped */
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

/* log: the process-wide message sink. Lines go to stderr (foreground) or syslog (daemon), one
 * call one line, serialised by stdio's own stream lock. The level filter is set once in main()
 * before threads start and only read afterwards. */
#include "artifactfs/log.h"

#include <stdio.h>

static bool use_syslog;
static int max_level = LOG_INFO;
static _Thread_local const char *context;

void log_set_context(const char *ctx)
{
	context = ctx;
}

static const char *level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

void log_init(bool to_syslog, int level)
{
	use_syslog = to_syslog;
	max_level = level;
	if (to_syslog)
		openlog("artifactfs", LOG_PID, LOG_DAEMON);
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
	if (level > max_level)
		return;
	char line[2048];
	vsnprintf(line, sizeof(line), fmt, ap);
	const char *sep = context ? ": " : "";
	if (use_syslog)
		syslog(level, "%s%s%s", context ? context : "", sep, line);
	else
		fprintf(stderr, "artifactfs: %s: %s%s%s\n", level_name(level),
			context ? context : "", sep, line);
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

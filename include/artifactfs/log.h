/* log: the one sink for every message of the daemon, also handed to fuse_set_log_func().
 * Foreground daemons log to stderr, background ones to syslog. Thread-safe. Never pass a token. */
#ifndef ARTIFACTFS_LOG_H
#define ARTIFACTFS_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h> /* LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */

/* Where messages go and the most verbose level kept (LOG_DEBUG keeps all). Call once in main(). */
void log_init(bool to_syslog, int max_level);

/* Names what the calling thread is doing (a mount path); every line it logs until the next call
 * starts with it. ctx is borrowed: pass NULL before it goes away. */
void log_set_context(const char *ctx);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif

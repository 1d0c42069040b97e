/* log: the one sink for every message of the daemon, libfuse's own included (log_capture_fuse).
 * Lines go to a log file when one is set (timestamped, reopened on SIGHUP for logrotate), else
 * to stderr (foreground; timestamped when stderr is not a terminal) or syslog (daemon).
 * Thread-safe: every line is one write(2). Never pass a token. */
#ifndef ARTIFACTFS_LOG_H
#define ARTIFACTFS_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <syslog.h> /* LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */

/* Where messages go when no log file is set and the most verbose level kept (LOG_DEBUG keeps
 * all). Called from main() before threads start, and again once daemonised. */
void log_init(bool to_syslog, int max_level);

/* From now on lines go to the file at path (created 0600, appended to, never a symlink), with a
 * timestamp. path is copied. Refused: anything but a regular file (a FIFO is refused without
 * blocking), a file of another user or one that group or others can write, a folder that others
 * can write unless sticky. Returns 0, or -errno with a one-line reason in why and nothing
 * changed. */
int log_open_file(const char *path, char *why, size_t why_len);

/* Opens the log file's path anew (after logrotate moved it) and logs one info line there.
 * Returns 0, -errno (the old file stays in use), or -EINVAL without a log file. */
int log_reopen(void);

/* Blocks SIGHUP in the calling thread, so in every thread it creates afterwards: call it before
 * any thread starts (the mask survives fuse_daemonize's fork). Then log_watch_sighup(), after
 * the fork, starts the one thread that takes SIGHUP and reopens the log file; log_close() stops
 * it. Returns 0 or -errno. */
int log_block_sighup(void);
int log_watch_sighup(void);

/* Hands libfuse's messages to this sink, at their own level. */
void log_capture_fuse(void);

/* Stops the SIGHUP thread and closes the log file; later lines go to stderr. */
void log_close(void);

/* Names what the calling thread is doing (a mount path); every line it logs until the next call
 * starts with it. ctx is borrowed: pass NULL before it goes away. */
void log_set_context(const char *ctx);

/* Why the calling thread's current operation failed, as the layer that saw it put it ("GET
 * /api/v4/projects/1/jobs/2/artifacts: HTTP 500"): lower layers set it and log their details
 * at LOG_DEBUG, and the operation (fs) writes the one error line, naming its path and this
 * reason. log_set_reason() replaces it (cut at 400 bytes); log_clear_reason() empties it;
 * log_reason() is "" when none is set. Thread-local: no locking. Never pass a token. */
void log_set_reason(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_clear_reason(void);
const char *log_reason(void);

/* Marks the reason just set as the server refusing the caller (401: a bad or expired token;
 * 403: access denied, artifacts:access), so the operation logs its EACCES at ERROR as the
 * failure it is, not at DEBUG as the answers EACCES usually is (a symlink leaving its job, a job
 * token that may not list). log_set_reason() and log_clear_reason() unmark it. */
void log_set_reason_refused(void);
bool log_reason_refused(void);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif

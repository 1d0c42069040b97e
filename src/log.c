/* log: the process-wide message sink. One call is one line, written with one write(2) so that
 * lines of concurrent threads never interleave. Lines go to the log file when one is set, else to
 * syslog (daemon) or stderr (foreground). File lines always carry a UTC timestamp and the pid (two
 * mounts may share a file), stderr lines only when stderr is not a terminal.
 *
 * The log file's descriptor number never changes once set: a reopen (SIGHUP, logrotate) dup2()s
 * the new file onto it, so writers never see a closed descriptor mid-line. The level filter and
 * the destinations are set in main() before threads start and only read afterwards.
 *
 * The failure reason is thread-local: a FUSE operation's thread is the one that makes its HTTP
 * requests, so the layers below set it and the operation reads it, with no lock. */
#include "artifactfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_log.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "artifactfs/privfile.h"

static bool use_syslog;
static bool stderr_stamps;
static int max_level = LOG_INFO;
static _Thread_local const char *context;
static _Thread_local char reason[400];
static _Thread_local bool reason_refused; /* the reason is a 401/403: log_set_reason_refused */
static atomic_int file_fd = -1;
static char *file_path; /* set with file_fd, before threads start */
static pthread_t hup_thread;
static bool hup_running;
static atomic_bool hup_stop;

void log_set_context(const char *ctx)
{
	context = ctx;
}

void log_set_reason(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	reason_refused = false;
}

void log_set_reason_refused(void)
{
	reason_refused = reason[0] != '\0';
}

bool log_reason_refused(void)
{
	return reason_refused;
}

void log_clear_reason(void)
{
	reason[0] = '\0';
	reason_refused = false;
}

const char *log_reason(void)
{
	return reason;
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
	stderr_stamps = !isatty(STDERR_FILENO);
	if (to_syslog)
		openlog("artifactfs", LOG_PID, LOG_DAEMON);
}

/* "2026-11-28T09:48:55.123Z " */
static void timestamp(char *buf, size_t n)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + k, n - k, ".%03ldZ ", ts.tv_nsec / 1000000);
}

static void write_line(int fd, bool stamped, bool with_pid, int level, const char *msg)
{
	char ts[40] = "", who[32] = "artifactfs", line[2400];
	if (stamped)
		timestamp(ts, sizeof(ts));
	if (with_pid)
		snprintf(who, sizeof(who), "artifactfs[%ld]", (long)getpid());
	const char *sep = context ? ": " : "";
	int n = snprintf(line, sizeof(line), "%s%s: %s: %s%s%s\n", ts, who, level_name(level),
			 context ? context : "", sep, msg);
	size_t len = n < 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	if (len)
		line[len - 1] = '\n'; /* a cut line still ends its line */
	for (size_t done = 0; done < len;) {
		ssize_t w = write(fd, line + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		done += (size_t)w;
	}
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
	if (level > max_level)
		return;
	char msg[2048];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n') /* libfuse ends its messages with one */
		msg[--n] = '\0';
	int fd = atomic_load(&file_fd);
	if (fd >= 0)
		write_line(fd, true, true, level, msg);
	else if (use_syslog)
		syslog(level, "%s%s%s", context ? context : "", context ? ": " : "", msg);
	else
		write_line(STDERR_FILENO, stderr_stamps, false, level, msg);
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

/* The log file gets the token file's and the cache folder's rules (privfile.h). */
static int open_file(const char *path, char *why, size_t why_len)
{
	return privfile_open(path, O_WRONLY | O_APPEND | O_CREAT, 0600, why, why_len);
}

int log_open_file(const char *path, char *why, size_t why_len)
{
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	int fd = open_file(path, why, why_len);
	if (fd < 0) {
		free(copy);
		return fd;
	}
	free(file_path);
	file_path = copy;
	int old = atomic_exchange(&file_fd, fd);
	if (old >= 0)
		close(old);
	return 0;
}

int log_reopen(void)
{
	int fd = atomic_load(&file_fd);
	if (fd < 0)
		return -EINVAL;
	char why[128];
	int nfd = open_file(file_path, why, sizeof(why));
	if (nfd < 0) {
		log_msg(LOG_ERR, "cannot reopen the log file %s: %s", file_path, why);
		return nfd;
	}
	int err = dup2(nfd, fd) < 0 ? -errno : 0;
	close(nfd);
	if (err)
		log_msg(LOG_ERR, "cannot reopen the log file %s: %s", file_path, strerror(-err));
	else
		log_msg(LOG_INFO, "log file reopened");
	return err;
}

static void sighup_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGHUP);
}

int log_block_sighup(void)
{
	sigset_t set;
	sighup_set(&set);
	return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* SIGHUP is blocked in every thread, so it stays pending until this thread takes it. */
static void *hup_main(void *arg)
{
	(void)arg;
	sigset_t set;
	sighup_set(&set);
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (atomic_load(&hup_stop))
			return NULL;
		log_reopen(); /* it logs why it failed; lines go on to the old file */
	}
}

int log_watch_sighup(void)
{
	atomic_store(&hup_stop, false);
	int err = pthread_create(&hup_thread, NULL, hup_main, NULL);
	hup_running = err == 0;
	return -err;
}

__attribute__((format(printf, 2, 0))) static void fuse_sink(enum fuse_log_level level,
							    const char *fmt, va_list ap)
{
	log_vmsg((int)level, fmt, ap);
}

void log_capture_fuse(void)
{
	fuse_set_log_func(fuse_sink);
}

void log_close(void)
{
	if (hup_running) {
		atomic_store(&hup_stop, true);
		pthread_kill(hup_thread, SIGHUP);
		pthread_join(hup_thread, NULL);
		hup_running = false;
	}
	int fd = atomic_exchange(&file_fd, -1);
	if (fd >= 0)
		close(fd);
	free(file_path);
	file_path = NULL;
}

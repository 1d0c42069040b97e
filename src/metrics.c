/* metrics: the counters of http, the cache and the catalog rendered as Prometheus text and
 * written to --metrics-file for node_exporter's textfile collector.
 *
 * The file is replaced whole by rename() so the collector never reads half a file. path.tmp is
 * opened without following a symbolic link and checked as the log file is (log.c open_file): a
 * file of another user, or one that group or others may write, or a folder others may write
 * (unless sticky), could feed an operator forged numbers or let root's write land elsewhere. The
 * file is made 0644: the collector usually runs as another user. One thread rewrites it every
 * METRICS_PERIOD_S seconds, waiting on a condition so that metrics_stop ends it at once. */
#include "artifactfs/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "artifactfs/privfile.h"
#include "artifactfs/cache.h"
#include "artifactfs/catalog.h"
#include "artifactfs/log.h"

struct metrics {
	char *path;
	struct http *http;
	struct cache *cache;
	struct catalog *cat;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* signalled by metrics_stop */
	bool stop;           /* protected by lock */
	bool said;           /* a failed write was logged: the next ones are not, until one works */
};

/* One family: a counter or a gauge with one sample. */
struct family {
	const char *name, *type, *help;
	uint64_t value;
};

/* A counter of n samples told apart by one label. */
struct labelled {
	const char *name, *help, *label;
	size_t n;
	const char *const *label_values;
	const uint64_t *values;
};

static int append(char **buf, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int append(char **buf, size_t *len, const char *fmt, ...)
{
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *grown = n < 0 ? NULL : realloc(*buf, *len + (size_t)n + 1);
	if (!grown) {
		va_end(ap2);
		return -ENOMEM;
	}
	vsnprintf(grown + *len, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	*buf = grown;
	*len += (size_t)n;
	return 0;
}

int metrics_render(const struct metrics_sample *s, char **out)
{
	const struct http_counters *h = &s->http;
	const struct family fams[] = {
		{"artifactfs_gitlab_requests_total", "counter",
		 "HTTP exchanges with the GitLab server (API and downloads)", h->server_requests},
		{"artifactfs_gitlab_bytes_total", "counter",
		 "Body bytes received from the GitLab server", h->server_bytes},
		{"artifactfs_storage_requests_total", "counter",
		 "HTTP exchanges with object storage (redirects to another origin)",
		 h->storage_requests},
		{"artifactfs_storage_bytes_total", "counter",
		 "Body bytes received from object storage", h->storage_bytes},
		{"artifactfs_cache_miss_bytes_total", "counter",
		 "Archive bytes read that needed a download first", s->cache.miss_bytes},
		{"artifactfs_cache_fetches_total", "counter", "Downloads into the cache",
		 s->cache.fetches},
		{"artifactfs_cache_evictions_total", "counter", "Archives evicted from the cache",
		 s->cache.evictions},
		{"artifactfs_cache_used_bytes", "gauge", "Bytes the cache folder holds",
		 s->cache.used_bytes},
		{"artifactfs_cache_limit_bytes", "gauge", "The cache's size limit",
		 s->cache.limit_bytes},
		{"artifactfs_cache_entries", "gauge", "Archives in the cache", s->cache.entries},
		{"artifactfs_archive_bytes_total", "counter",
		 "Archive bytes downloaded (from GitLab or object storage)",
		 s->catalog.arrived_bytes},
		{"artifactfs_transfers_active", "gauge", "Archive downloads running now",
		 s->catalog.transfers_active},
		{"artifactfs_jobs_open", "gauge", "Jobs held in memory", s->catalog.jobs_open},
		{"artifactfs_indexes_loaded_total", "counter", "Zip indexes loaded",
		 s->catalog.indexes_loaded},
		{"artifactfs_authorization_probes_total", "counter",
		 "Requests made only to ask whether this token may download cached artifacts",
		 s->catalog.auth_probes},
	};
	static const char *const outcomes[HTTP_OUTCOMES] = {"2xx", "3xx", "4xx", "5xx", "none"};
	static const char *const fetchers[] = {"this_mount", "another_mount"};
	const uint64_t read_bytes[] = {s->cache.hit_own_bytes, s->cache.hit_shared_bytes};
	const struct labelled labs[] = {
		{"artifactfs_http_requests_total",
		 "HTTP exchanges by outcome (status class, or none: no answer)", "outcome",
		 HTTP_OUTCOMES, outcomes, h->outcomes},
		{"artifactfs_cache_read_bytes_total",
		 "Archive bytes read from the cache folder without a download, by who fetched "
		 "their blocks: this mount, or another (here or on another machine sharing the "
		 "folder, or an earlier run); their sum is all such bytes",
		 "fetched_by", 2, fetchers, read_bytes},
	};
	char *buf = NULL;
	size_t len = 0;
	int err = 0;
	for (size_t i = 0; !err && i < sizeof(fams) / sizeof(fams[0]); i++)
		err = append(&buf, &len, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n",
			     fams[i].name, fams[i].help, fams[i].name, fams[i].type, fams[i].name,
			     fams[i].value);
	for (size_t i = 0; !err && i < sizeof(labs) / sizeof(labs[0]); i++) {
		const struct labelled *l = &labs[i];
		err = append(&buf, &len, "# HELP %s %s\n# TYPE %s counter\n", l->name, l->help,
			     l->name);
		for (size_t k = 0; !err && k < l->n; k++)
			err = append(&buf, &len, "%s{%s=\"%s\"} %" PRIu64 "\n", l->name, l->label,
				     l->label_values[k], l->values[k]);
	}
	if (err) {
		free(buf);
		return err;
	}
	*out = buf;
	return 0;
}

/* Opens path.tmp for writing, empty, after the checks of the log file (privfile.h). */
static int open_tmp(const char *tmp, char *why, size_t why_len)
{
	char reason[128];
	int fd = privfile_open(tmp, O_WRONLY | O_CREAT, 0644, reason, sizeof(reason));
	if (fd >= 0 && ftruncate(fd, 0)) {
		snprintf(reason, sizeof(reason), "%s", strerror(errno));
		close(fd);
		fd = -EIO;
	}
	if (fd < 0)
		snprintf(why, why_len, "%s: %s", tmp, reason);
	return fd;
}

int metrics_write_file(const char *path, const char *text, char *why, size_t why_len)
{
	char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp", path) < 0) {
		snprintf(why, why_len, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	int fd = open_tmp(tmp, why, why_len), err = 0;
	if (fd < 0) {
		free(tmp);
		return fd;
	}
	size_t len = strlen(text), done = 0;
	while (!err && done < len) {
		ssize_t n = write(fd, text + done, len - done);
		if (n < 0 && errno != EINTR)
			err = -errno;
		else if (n > 0)
			done += (size_t)n;
	}
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err) {
		snprintf(why, why_len, "%s: %s", err == -EIO || done < len ? tmp : path,
			 strerror(-err));
		unlink(tmp);
	}
	free(tmp);
	return err;
}

static void sample(struct metrics *m, struct metrics_sample *s)
{
	memset(s, 0, sizeof(*s));
	http_get_counters(m->http, &s->http);
	cache_get_stats(m->cache, &s->cache);
	catalog_get_stats(m->cat, &s->catalog);
}

static int write_now(struct metrics *m, char *why, size_t why_len)
{
	struct metrics_sample s;
	char *text = NULL;
	sample(m, &s);
	int err = metrics_render(&s, &text);
	if (err)
		snprintf(why, why_len, "%s", strerror(-err));
	else
		err = metrics_write_file(m->path, text, why, why_len);
	free(text);
	return err;
}

/* One line when writing starts failing, one when it works again: not one every period. */
static void write_logged(struct metrics *m)
{
	char why[512];
	int err = write_now(m, why, sizeof(why));
	if (err && !m->said)
		log_msg(LOG_ERR, "cannot write the metrics file: %s", why);
	else if (!err && m->said)
		log_msg(LOG_INFO, "the metrics file %s is written again", m->path);
	m->said = err != 0;
}

int metrics_new(const char *path, struct http *h, struct cache *c, struct catalog *cat,
		struct metrics **out, char *why, size_t why_len)
{
	struct metrics *m = calloc(1, sizeof(*m));
	char *cwd = path[0] == '/' ? NULL : getcwd(NULL, 0); /* the daemon moves to "/" */
	int n = -1;
	if (m && (path[0] == '/' || cwd))
		n = cwd ? asprintf(&m->path, "%s/%s", cwd, path) : asprintf(&m->path, "%s", path);
	free(cwd);
	if (n < 0) {
		free(m);
		snprintf(why, why_len, "%s: %s", path, strerror(ENOMEM));
		return -ENOMEM;
	}
	m->http = h;
	m->cache = c;
	m->cat = cat;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	int err = write_now(m, why, why_len);
	if (err) {
		m->running = false;
		metrics_stop(m);
		return err;
	}
	*out = m;
	return 0;
}

static void *metrics_main(void *arg)
{
	struct metrics *m = arg;
	pthread_mutex_lock(&m->lock);
	while (!m->stop) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += METRICS_PERIOD_S;
		while (!m->stop && pthread_cond_timedwait(&m->cond, &m->lock, &until) != ETIMEDOUT)
			;
		if (m->stop)
			break;
		pthread_mutex_unlock(&m->lock);
		write_logged(m);
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int metrics_run(struct metrics *m)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_destroy(&m->cond);
	pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);
	int err = pthread_create(&m->thread, NULL, metrics_main, m);
	m->running = err == 0;
	return -err;
}

void metrics_stop(struct metrics *m)
{
	if (!m)
		return;
	if (m->running) {
		pthread_mutex_lock(&m->lock);
		m->stop = true;
		pthread_cond_signal(&m->cond);
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->thread, NULL);
		write_logged(m); /* the final counts */
	}
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m->path);
	free(m);
}

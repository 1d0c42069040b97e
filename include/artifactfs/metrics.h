/* metrics: the mount's counters for operators, in the Prometheus text format, written to a file
 * for node_exporter's textfile collector (--metrics-file): rewritten atomically (PATH.tmp, then
 * rename()) every few seconds by one thread, and once more as the mount ends.
 *
 * The counters are those the daemon keeps anyway (http, cache, catalog): rendering is a pure
 * function of a sample (metrics_render), so it is tested without a mount. The file gets the
 * checks of --log-file: a regular file of ours, not writable by group or others, never through a
 * symbolic link, in a folder others cannot write unless it is sticky. */
#ifndef ARTIFACTFS_METRICS_H
#define ARTIFACTFS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "artifactfs/cache.h"
#include "artifactfs/catalog.h"
#include "artifactfs/http.h"

struct metrics;

/* One reading of every counter, as each module gives its own. */
struct metrics_sample {
	struct http_counters http;
	struct cache_stats cache;
	struct catalog_stats catalog;
};

/* The sample as Prometheus text (HELP and TYPE before each family, one "name{labels} value"
 * line per sample, a final newline): 0 and a malloc'ed *out, or -ENOMEM. */
int metrics_render(const struct metrics_sample *s, char **out);

/* Writes text to path atomically, through path.tmp (checked as above). 0, or -errno with a
 * reason in why. */
int metrics_write_file(const char *path, const char *text, char *why, size_t why_len);

/* Writes the file once (a refusal: -errno and why, nothing started). The sources are borrowed
 * and must outlive metrics_stop. No thread yet: call metrics_run after any fork. */
int metrics_new(const char *path, struct http *h, struct cache *c, struct catalog *cat,
		struct metrics **out, char *why, size_t why_len);
/* Starts the thread that rewrites the file every METRICS_PERIOD_S seconds. */
int metrics_run(struct metrics *m);
/* Stops and joins the thread, writes the file a last time and frees m. NULL is a no-op. */
void metrics_stop(struct metrics *m);

#define METRICS_PERIOD_S 5

#endif

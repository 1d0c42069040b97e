/* joblog: a finished job's log (GET /jobs/:id/trace), as <job>.log in a set and -/jobs/<id>.log.
 * GitLab sends no length before a trace is archived, so a log is fetched whole on first use and
 * kept in a cache entry of its own (key "l<origin>-<id>"), like archive bytes: a finished job's
 * log never changes, so its size is exact from the first stat and every mount of the instance
 * shares it. The memo table remembers each log for the TTL (MEMO_LOG); a log evicted from the
 * cache is fetched whole again, and must come back the same length. A running job, a job known
 * by ref only (no id to ask for) and a token that may not read the trace all give ENOENT. Also
 * here: which jobs have a log at all (catalog_job_finished), for the listings. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/catalog.h"
#include "artifactfs/log.h"
#include "artifactfs/memo.h"
#include "catalog_i.h"

#define LOG_MAX_BYTES (256u * 1024u * 1024u) /* a log larger than this is not shown */

/* A job's log: a cache entry of its own (NULL for an empty log) and its exact size. */
struct job_log {
	struct memo_val v;
	struct cache_entry *e;
	uint64_t size;
};

/* A finished job has a log that never changes (GitLab's completed statuses with a trace). */
bool catalog_job_finished(const struct gl_job *g)
{
	static const char *done[] = {"success", "failed", "canceled"};
	for (size_t i = 0; g->status && i < sizeof(done) / sizeof(done[0]); i++)
		if (strcmp(g->status, done[i]) == 0)
			return true;
	return false;
}

/* ---- job logs ---- */

static void log_destroy(struct memo_val *v)
{
	struct job_log *l = (struct job_log *)v;
	cache_entry_put(l->e);
	free(l);
}

/* Where a log's missing bytes come from: the whole trace again (no Range on traces). */
struct log_source {
	const struct backend *be;
	char *project;
	int64_t job_id;
};

static void log_source_free(void *ctx)
{
	struct log_source *ls = ctx;
	free(ls->project);
	free(ls);
}

static int log_fetch(void *ctx, struct cache_writer *w, uint64_t off, uint64_t len)
{
	struct log_source *ls = ctx;
	char *text = NULL;
	size_t n = 0;
	(void)off, (void)len;
	int err = ls->be->job_trace(ls->be->ctx, ls->project, ls->job_id, LOG_MAX_BYTES, &text, &n);
	if (!err && n != cache_writer_size(w)) {
		log_msg(LOG_ERR, "job %" PRId64 ": its log is now %zu bytes, was %" PRIu64,
			ls->job_id, n, cache_writer_size(w));
		err = -EIO;
	}
	if (!err)
		err = cache_writer_write(w, 0, text, n);
	free(text);
	return err;
}

static void log_bind(struct catalog *c, struct job_log *l, const char *project, int64_t id)
{
	struct log_source *ls = calloc(1, sizeof(*ls));
	if (ls && (ls->project = strdup(project))) {
		ls->be = c->be;
		ls->job_id = id;
		cache_entry_bind(l->e, &(struct cache_source){log_fetch, ls, log_source_free});
	} else {
		free(ls);
	}
}

/* A log kept whole from an earlier fetch (this mount's or another's), else fetched now. */
static int load_log(void *arg, struct memo_val **out)
{
	struct load_arg *la = arg;
	struct catalog *c = la->c;
	struct job_log *l = calloc(1, sizeof(*l));
	char *key = NULL, *text = NULL;
	size_t n = 0;
	if (!l || asprintf(&key, "l%s-%" PRId64, c->origin, la->id) < 0) {
		free(l);
		return -ENOMEM;
	}
	memo_val_init(&l->v, log_destroy);
	int err = cache_entry_get(c->env.cache, key, 0, &l->e);
	if (!err && !cache_entry_has(l->e, 0, cache_entry_size(l->e))) {
		cache_entry_put(l->e);
		l->e = NULL;
		err = -ENOENT;
	}
	if (err) { /* GitLab sends no length for a live trace: the whole of it, once */
		err = c->be->job_trace(c->be->ctx, la->project, la->id, LOG_MAX_BYTES, &text, &n);
		if (!err && n > 0 && !cache_entry_get(c->env.cache, key, n, &l->e))
			cache_entry_write(l->e, 0, text, n);
	}
	if (l->e) {
		l->size = cache_entry_size(l->e);
		log_bind(c, l, la->project, la->id);
	}
	free(text);
	free(key);
	if (!err && n > 0 && !l->e)
		err = -EIO; /* no room for it now: the next look tries again */
	if (err) {
		log_destroy(&l->v);
		return err == -EACCES ? -ENOENT : err;
	}
	*out = &l->v;
	return 0;
}

static int log_get(struct catalog *c, const char *project, int64_t job_id, const struct gl_job *g,
		   struct job_log **out)
{
	*out = NULL;
	if (!catalog_job_finished(g))
		return -ENOENT; /* a running job has no log yet */
	char id[24];
	snprintf(id, sizeof(id), "%" PRId64, job_id);
	struct load_arg la = {.c = c, .project = project, .id = job_id};
	struct memo_key key = {.kind = MEMO_LOG, .a = project, .b = id};
	struct memo_val *v;
	int err = memo_get(c->memo, &key, load_log, &la, &v);
	*out = err ? NULL : (struct job_log *)v;
	return err;
}

int catalog_job_log(struct catalog *c, struct job *j, struct job_log **out)
{
	struct gl_job g;
	*out = NULL;
	if (!job_is_by_id(j) || job_info(j, &g))
		return -ENOENT; /* known by ref only (a job token): no id to ask for */
	int err = log_get(c, job_project(j), job_id(j), &g, out);
	gl_job_release(&g);
	return err;
}

/* -/jobs/<id>.log: any finished job, with an archive or not. */
int catalog_log_by_id(struct catalog *c, const char *project, int64_t job_id, struct job_log **out,
		      char **finished_at)
{
	struct gl_job g = {0};
	struct job *j;
	*out = NULL;
	*finished_at = NULL;
	int err = catalog_job_by_id(c, project, job_id, &j);
	if (!err) {
		err = job_info(j, &g);
		job_put(j);
	} else if (err == -ENOENT) { /* no archive: the job itself may still have a log */
		err = c->be->job_get(c->be->ctx, project, job_id, &g);
	}
	if (!err)
		err = log_get(c, project, job_id, &g, out);
	if (!err && g.finished_at && !(*finished_at = strdup(g.finished_at))) {
		job_log_put(*out);
		*out = NULL;
		err = -ENOMEM;
	}
	gl_job_release(&g);
	return err == -EACCES ? -ENOENT : err;
}

uint64_t job_log_size(const struct job_log *l)
{
	return l->size;
}

ssize_t job_log_pread(struct job_log *l, void *buf, size_t len, uint64_t off)
{
	if (!l->e || off >= l->size)
		return 0;
	return cache_entry_pread(l->e, buf, len, off, l->size);
}

void job_log_put(struct job_log *l)
{
	memo_val_put(l ? &l->v : NULL);
}

/* jobids: a project's jobs by id (-/jobs/<id>): one job looked up by its id, and the listing of
 * the project's recent successful jobs with an archive (one page, memoised for the TTL) followed
 * by the older ones met by id in the registry. A job by id is asked again once the TTL is over
 * (MEMO_JOB), so that artifacts deleted on the server disappear within it: a job found gone is
 * forgotten with its cached bytes, while open files keep their reference. A lookup skips its own
 * request when a fresh listing already named the job (the registry's check time, or the loaded
 * recent-jobs page), never causing the listing's. A token that may not read jobs (a job token)
 * probes the archive instead (jobprobe.c). Every job found is the registry's one object for its
 * (project, key) (catalog.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/catalog.h"
#include "artifactfs/log.h"
#include "artifactfs/memo.h"
#include "artifactfs/nest.h"
#include "catalog_i.h"

struct jobinfo_val { /* a job by id as last checked: its info and size */
	struct memo_val v;
	struct gl_job info;
	uint64_t size;
};

/* ---- one job by id ---- */

static bool recent_job_info(struct catalog *c, const char *project, int64_t job_id,
			    struct gl_job *out);

static void jobinfo_destroy(struct memo_val *v)
{
	struct jobinfo_val *jv = (struct jobinfo_val *)v;
	gl_job_release(&jv->info);
	free(jv);
}

/* A job by id, asked again once the TTL is over, so that artifacts deleted on the server (a
 * leaked secret is the usual reason) disappear within it. A job already met is asked the server
 * itself, not the recent-jobs page, which may be older than the deletion. A token that may not
 * read jobs (a job token) probes the archive instead. */
static int load_job(void *arg, struct memo_val **out)
{
	struct load_arg *la = arg;
	struct catalog *c = la->c;
	struct jobinfo_val *jv = calloc(1, sizeof(*jv));
	if (!jv)
		return -ENOMEM;
	memo_val_init(&jv->v, jobinfo_destroy);
	struct job *met = catalog_job_find(c, la->project, la->name);
	int err;
	if (met && catalog_job_checked(c, met, true)) { /* a fresh listing named it */
		err = job_info(met, &jv->info);
		jv->info.archive_size = err ? -1 : (int64_t)job_size(met);
	} else if (!met && recent_job_info(c, la->project, la->job_id, &jv->info))
		err = 0;
	else
		err = c->be->job_get(c->be->ctx, la->project, la->job_id, &jv->info);
	job_put(met);
	if (err == -EACCES) {
		struct gl_archive a = {.project = la->project, .job_id = la->job_id};
		struct job *j = NULL;
		gl_job_release(&jv->info);
		jv->info = (struct gl_job){.id = la->job_id, .archive_size = -1};
		err = catalog_probe_job(c, &a, &jv->info, la->name, &j);
		if (!err && !(j = catalog_job_publish(c, j)))
			err = -ENOMEM;
		jv->size = err ? 0 : job_size(j);
		job_put(j);
	} else if (!err && jv->info.archive_size < 0) {
		err = -ENOENT;
	} else if (!err) {
		jv->size = (uint64_t)jv->info.archive_size;
	}
	if (err) {
		memo_val_put(&jv->v);
		return err;
	}
	*out = &jv->v;
	return 0;
}

/* A job met before under this name is gone on the server: forget it and its cached bytes
 * (open files keep their reference and read on, as from a deleted local file). */
static void job_gone(struct catalog *c, const char *project, const char *key)
{
	struct job *j = catalog_job_find(c, project, key);
	if (!j)
		return;
	log_msg(LOG_INFO, "job %" PRId64 " of %s has no artifacts any more: forgotten", job_id(j),
		project);
	catalog_job_unpublish(c, j);
	cache_entry_discard(c->env.cache, key);
	nest_discard_blobs(c->env.cache, key);
	job_put(j);
}

int catalog_job_by_id(struct catalog *c, const char *project, int64_t job_id, struct job **out)
{
	*out = NULL;
	char *key = catalog_id_key(c, job_id), id[24];
	if (!key)
		return -ENOMEM;
	snprintf(id, sizeof(id), "%" PRId64, job_id);
	struct load_arg la = {.c = c, .project = project, .name = key, .job_id = job_id};
	struct memo_key mk = {.kind = MEMO_JOB, .a = project, .b = id};
	struct memo_val *v = NULL;
	int err = memo_get(c->memo, &mk, load_job, &la, &v);
	if (err == -ENOENT)
		job_gone(c, project, key);
	struct job *j = err ? NULL : catalog_job_find(c, project, key);
	if (!err && !j) {
		const struct jobinfo_val *jv = (const struct jobinfo_val *)v;
		j = job_new(&c->env, project, NULL, &jv->info, key, jv->size);
		if (!j || !(j = catalog_job_publish(c, j)))
			err = -ENOMEM;
	}
	memo_val_put(v);
	free(key);
	*out = j;
	return err;
}

/* ---- listing a project's jobs by id ---- */

static int load_recent_jobs(void *arg, struct memo_val **out)
{
	struct load_arg *la = arg;
	struct jobs_val *jv = calloc(1, sizeof(*jv));
	if (!jv)
		return -ENOMEM;
	memo_val_init(&jv->v, catalog_jobs_destroy);
	int err = la->c->be->recent_jobs(la->c->be->ctx, la->project, &jv->jobs, &jv->n);
	jv->listable = err != -EACCES;
	if (err == -EACCES) /* a job token: only the jobs met by lookup */
		err = 0;
	if (err) {
		free(jv);
		return err;
	}
	*out = &jv->v;
	return 0;
}

/* Copies the info of job_id out of the recent-jobs memo if it is loaded and fresh; false when it
 * is not there. Lets a lookup of a listed job skip its own request, without ever causing the
 * listing's. */
static bool recent_job_info(struct catalog *c, const char *project, int64_t job_id,
			    struct gl_job *out)
{
	struct memo_key key = {.kind = MEMO_RECENT_JOBS, .a = project};
	struct jobs_val *jv = (struct jobs_val *)memo_peek(c->memo, &key);
	bool found = false;
	for (size_t i = 0; jv && i < jv->n && !found; i++)
		if (jv->jobs[i].id == job_id)
			found = job_info_copy(&jv->jobs[i], out) == 0;
	if (jv)
		memo_val_put(&jv->v);
	return found;
}

static void ids_add(int64_t *ids, size_t *n, int64_t id)
{
	for (size_t i = 0; i < *n; i++)
		if (ids[i] == id)
			return;
	ids[(*n)++] = id;
}

/* The recent jobs' ids, then those of older jobs met by id, under one lock; NULL on ENOMEM. */
static int64_t *gather_ids(struct catalog *c, const char *project, const struct jobs_val *jv,
			   size_t *n)
{
	*n = 0;
	pthread_mutex_lock(&c->lock);
	size_t cap = jv->n;
	for (struct job_node *x = c->jobs; x; x = x->next)
		cap += job_is_by_id(x->job) && strcmp(job_project(x->job), project) == 0;
	int64_t *ids = calloc(cap + 1, sizeof(*ids));
	for (size_t i = 0; ids && i < jv->n; i++)
		ids_add(ids, n, jv->jobs[i].id);
	for (struct job_node *x = c->jobs; ids && x; x = x->next)
		if (job_is_by_id(x->job) && strcmp(job_project(x->job), project) == 0)
			ids_add(ids, n, job_id(x->job));
	pthread_mutex_unlock(&c->lock);
	return ids;
}

int catalog_list_job_ids(struct catalog *c, const char *project, char ***out)
{
	int err = catalog_project(c, project);
	if (err)
		return err;
	struct load_arg la = {.c = c, .project = project};
	struct memo_key key = {.kind = MEMO_RECENT_JOBS, .a = project};
	struct memo_val *v = NULL;
	err = memo_get(c->memo, &key, load_recent_jobs, &la, &v);
	if (err)
		return err;
	size_t n;
	int64_t *ids = gather_ids(c, project, (struct jobs_val *)v, &n);
	memo_val_put(v);
	char **names = ids ? calloc(2 * n + 1, sizeof(*names)) : NULL;
	for (size_t i = 0; names && i < n; i++) {
		if (asprintf(&names[2 * i], "%" PRId64, ids[i]) < 0)
			names[2 * i] = NULL;
		else if (asprintf(&names[2 * i + 1], "%" PRId64 ".zip", ids[i]) < 0)
			names[2 * i + 1] = NULL;
		if (!names[2 * i + 1]) { /* the array ends at the first NULL: frees what was made */
			gitlab_strv_free(names);
			names = NULL;
		}
	}
	free(ids);
	*out = names;
	return names ? 0 : -ENOMEM;
}

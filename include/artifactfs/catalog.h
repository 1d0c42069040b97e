/* catalog: what the tree's names stand for on the server, remembered for as long as SPEC.md
 * allows. Listings and ref-to-job resolution are trusted for ttl_s; a job object, once found, is
 * shared by every path that names it (<ref>/<job> and -/jobs/<id>) and holds its archive: the
 * cache entry and the zip index, both made lazily on first use, single flight.
 *
 * Where a token may not list a level (a job token cannot list projects, refs or pipelines), a name
 * is taken on trust and checked by asking for what lies below it: a job under a ref is then read
 * through GitLab's by-ref download endpoint, its size learnt from the first Range answer.
 *
 * Thread-safe. The catalog's lock (its job list), the memo table's lock and each job's lock are
 * never held together, nor across network I/O. The split: memo.c remembers, job.c holds one
 * archive, this file knows what the names mean. */
#ifndef ARTIFACTFS_CATALOG_H
#define ARTIFACTFS_CATALOG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "artifactfs/backend.h"
#include "artifactfs/cache.h"
#include "artifactfs/gitlab.h"
#include "artifactfs/job.h"

struct catalog;

struct catalog_config {
	struct gitlab *gl;        /* borrowed; the server, unless backend is set */
	const struct backend *backend; /* copied; NULL: backend_gitlab(gl) (tests set a fake) */
	struct cache *cache;      /* borrowed */
	struct pool *pool;        /* borrowed; background fetches run here (NULL: none) */
	const char *base_url;     /* names the cache namespace of this instance */
	int ttl_s;
	char **projects;          /* NULL-terminated names listed at the root, or NULL: membership */
	time_t (*now)(void);      /* seconds for the TTLs; NULL: CLOCK_MONOTONIC (tests set one) */
};

int catalog_new(const struct catalog_config *cfg, struct catalog **out);
void catalog_free(struct catalog *c);

/* A NULL-terminated array of escaped names, owned by the caller: free with gitlab_strv_free(). */
int catalog_list_root(struct catalog *c, char ***names);
int catalog_list_refs(struct catalog *c, const char *project, char ***names);
/* Each job of the ref twice: "<job>" and "<job>.zip". */
int catalog_list_ref_jobs(struct catalog *c, const char *project, const char *ref, char ***names);
/* The project's recent successful jobs with an archive (one page, memoised for the TTL), then
 * the older ones met by id, each as "<id>" and "<id>.zip". */
int catalog_list_job_ids(struct catalog *c, const char *project, char ***names);

/* Existence checks: 0, -ENOENT, -EACCES, -EIO. */
int catalog_project(struct catalog *c, const char *project);
int catalog_ref(struct catalog *c, const char *project, const char *ref);

/* Finds a job and takes a reference (release with job_put, see job.h for what a job offers).
 * -ENOENT when there is no such job or it has no archive. A job found by both paths is the same
 * object while it is in use. */
int catalog_job_by_ref(struct catalog *c, const char *project, const char *ref, const char *name,
		       struct job **out);
int catalog_job_by_id(struct catalog *c, const char *project, int64_t job_id, struct job **out);
/* keep: POST keep, then the job's info is refreshed. delete: DELETE the artifacts, then the job
 * is forgotten with its cache entry and the ref listings are refreshed. Both -EACCES for a job
 * known only by ref (a job token, which GitLab never lets keep or delete). */
int catalog_job_keep(struct catalog *c, struct job *j);
int catalog_job_delete(struct catalog *c, struct job *j);
int catalog_project_delete_artifacts(struct catalog *c, const char *project);

/* Counters for the stats file. */
struct catalog_stats {
	uint64_t jobs_open, indexes_loaded;
	uint64_t arrived_bytes, transfers_active; /* archive bytes, counted as they arrive */
};
void catalog_get_stats(struct catalog *c, struct catalog_stats *out);

#endif

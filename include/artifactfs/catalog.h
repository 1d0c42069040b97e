/* catalog: what the tree's names stand for on the server, remembered for as long as doc/SPEC.md
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
 * archive, the catalog's files know what the names mean: catalog.c the object, the names and the
 * registry of jobs; jobsets.c every kind of job set; jobids.c jobs by id; joblog.c job logs;
 * jobprobe.c what a job token learns by probing; jobchange.c keep and delete. This header is the
 * interface of them all. */
#ifndef ARTIFACTFS_CATALOG_H
#define ARTIFACTFS_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "artifactfs/backend.h"
#include "artifactfs/cache.h"
#include "artifactfs/gitlab.h"
#include "artifactfs/job.h"
#include "artifactfs/tree.h"

struct catalog;

struct catalog_config {
	struct gitlab *gl;             /* borrowed; the server, unless backend is set */
	const struct backend *backend; /* copied; NULL: backend_gitlab(gl) (tests set a fake) */
	struct cache *cache;           /* borrowed */
	struct pool *pool;             /* borrowed; background fetches run here (NULL: none) */
	const char *base_url;          /* names the cache namespace of this instance */
	int ttl_s;
	char **projects;     /* NULL-terminated names listed at the root, or NULL: membership */
	time_t (*now)(void); /* seconds for the TTLs; NULL: CLOCK_MONOTONIC (tests set one) */
	bool no_logs;        /* the token cannot read logs (a job token, none: doc/GITLAB-API.md, a
	               * trace takes a personal or OAuth token): none is listed, each is ENOENT */
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

/* Job sets (tree.h: a ref, a pipeline, a merge request, a commit), all through one code path.
 * A pipeline set is the pipeline and its same-project descendants, jobs of any status with an
 * archive (the parent wins a name clash); a merge request's is its head pipeline's (none: an
 * empty set); a commit's is its newest successful pipeline's, by-ref rules for dangling sources.
 * What a token may not reach (a job token) is -ENOENT, as any name it cannot see.
 * catalog_set: the set exists (0, -ENOENT, -EACCES, -EIO). catalog_list_set_jobs: each job of
 * the set as "<job>", "<job>.zip" and, once finished, "<job>.log". catalog_job_in_set: as
 * catalog_job_by_ref for any set. catalog_list_sets: the sets of one kind a project lists under
 * "-": the 100 newest pipelines and those met by lookup, the 100 most recently updated open
 * merge requests (commits are never listed: an empty list). catalog_set_info: copies of the
 * set's pipeline (id 0: none) and, for a merge request, its title, source branch and web_url
 * (release both); -ENODATA for a ref. */
int catalog_set(struct catalog *c, const char *project, const struct tree_set *set);
int catalog_list_set_jobs(struct catalog *c, const char *project, const struct tree_set *set,
			  char ***names);
int catalog_job_in_set(struct catalog *c, const char *project, const struct tree_set *set,
		       const char *name, struct job **out);
int catalog_list_sets(struct catalog *c, const char *project, enum tree_set_by by, char ***names);
int catalog_set_info(struct catalog *c, const char *project, const struct tree_set *set,
		     struct gl_pipeline *pl, struct gl_merge_request *mr);

/* A finished job's log (GET /jobs/:id/trace), found without asking for the trace: GitLab gives
 * no length and takes no Range, so job_log_size is 0 (unknown) until this mount has read the log
 * to its end or the cache holds it whole, then exact. -ENOENT for a running or erased job (an
 * erased job's cached log is removed), or a job known by ref only. The reference is put with
 * job_log_put(). job_log_open makes a reader for one open file, taking over the reference l
 * (put on failure too); log_reader_pread reads like pread to the end whatever the size said
 * (short only at the end, or past LOG_WINDOW / 4 bytes): through the cache, or streamed past it
 * for a log of unknown size or one larger than the cache. -EACCES for a token that may not read
 * the trace, -ENOENT for a log gone since, -EIO. log_reader_free ends its transfer. */
struct job_log;
struct log_reader;
int catalog_job_log(struct catalog *c, struct job *j, struct job_log **out);
/* -/jobs/<id>.log: the log of any finished job of the project, with an archive or without;
 * *finished_at (malloc'ed, may be NULL) gives the file its mtime. */
int catalog_log_by_id(struct catalog *c, const char *project, int64_t job_id, struct job_log **out,
		      char **finished_at);
uint64_t job_log_size(struct job_log *l);
void job_log_put(struct job_log *l); /* NULL is a no-op */
int job_log_open(struct job_log *l, struct log_reader **out);
ssize_t log_reader_pread(struct log_reader *r, void *buf, size_t len, uint64_t off);
void log_reader_free(struct log_reader *r); /* NULL is a no-op */
/* True once after a read of r found the end of a log whose size was unknown: stats give its
 * size from now on (the kernel's idea of it may be dropped). */
bool log_reader_learned(struct log_reader *r);

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
	uint64_t auth_probes; /* requests made only to ask whether the token may download */
};
void catalog_get_stats(struct catalog *c, struct catalog_stats *out);

#endif

/* catalog: what the tree's names stand for on the server, remembered for as long as SPEC.md
 * allows. Listings and ref-to-job resolution are trusted for ttl_s; a job object, once found, is
 * shared by every path that names it (<ref>/<job> and -/jobs/<id>) and holds its archive: the
 * cache entry and the zip index, both made lazily on first use, single flight.
 *
 * Where a token may not list a level (a job token cannot list projects, refs or pipelines), a name
 * is taken on trust and checked by asking for what lies below it: a job under a ref is then read
 * through GitLab's by-ref download endpoint, its size learnt from the first Range answer.
 *
 * Thread-safe. Lock order: catalog->lock, then job->lock; neither is held across network I/O. */
#ifndef ARTIFACTFS_CATALOG_H
#define ARTIFACTFS_CATALOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "artifactfs/cache.h"
#include "artifactfs/gitlab.h"
#include "artifactfs/zipindex.h"

struct catalog;

struct catalog_config {
	struct gitlab *gl;        /* borrowed */
	struct cache *cache;      /* borrowed */
	const char *base_url;     /* names the cache namespace of this instance */
	int ttl_s;
	char **projects;          /* NULL-terminated names listed at the root, or NULL: membership */
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

struct job {
	struct gl_job info;    /* info.id 0 and most fields NULL when only known by ref (job token);
	                          guarded by lock (keep changes artifacts_expire_at) */
	char *project;         /* the project name as the tree gave it */
	char *ref;             /* by-ref jobs: the ref the job was found under; else NULL */
	char *key;             /* cache key */
	uint64_t size;         /* archive size in bytes */
	bool by_id;            /* content is immutable (job id known) */
	/* private */
	struct catalog *cat;
	int refs;              /* protected by cat->lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool loading;          /* protected by lock: an index load is in flight */
	struct cache_entry *entry; /* protected by lock; set once */
	struct zipindex *zi;   /* protected by lock; set once, then immutable */
	struct job *next;      /* protected by cat->lock */
};

/* Finds a job and takes a reference (release with catalog_job_put). -ENOENT when there is no
 * such job or it has no archive. */
int catalog_job_by_ref(struct catalog *c, const char *project, const char *ref, const char *name,
		       struct job **out);
int catalog_job_by_id(struct catalog *c, const char *project, int64_t job_id, struct job **out);
void catalog_job_put(struct job *j);

/* The job's zip index, loaded on first use (reads only the archive's end). Borrowed: valid
 * while the reference on j is held. */
int catalog_job_index(struct job *j, const struct zipindex **out);

/* Reads exactly len bytes of the archive at off (short only at its end), through the cache.
 * read_ahead: bytes to fetch at least when a fetch is needed (sequential readers pass more). */
ssize_t catalog_job_pread(struct job *j, void *buf, size_t len, uint64_t off, uint64_t read_ahead);

/* Starts fetching [off, off+len) in the background (a sequential reader's next window) and
 * returns at once; the thread holds its own reference on j. Failures are left to the read
 * that needs the bytes. */
void catalog_job_prefetch(struct job *j, uint64_t off, uint64_t len);
/* Forgets cached archive bytes found corrupt, so the next read fetches them again. */
void catalog_job_forget(struct job *j, uint64_t off, uint64_t len);

/* A zip_read_fn over the job's archive (ctx is the job), for zip_reader_new(). */
ssize_t catalog_job_read_fn(void *ctx, void *buf, size_t len, uint64_t off);

/* Copies the job's info (for xattrs) under its lock. Release with gl_job_release(). */
int catalog_job_info(struct job *j, struct gl_job *out);

/* keep: POST keep, then the job's info is refreshed. delete: DELETE the artifacts, then the job
 * is forgotten with its cache entry and the ref listings are refreshed. */
int catalog_job_keep(struct catalog *c, struct job *j);
int catalog_job_delete(struct catalog *c, struct job *j);
int catalog_project_delete_artifacts(struct catalog *c, const char *project);

/* Counters for the stats file. */
struct catalog_stats {
	uint64_t jobs_open, indexes_loaded;
};
void catalog_get_stats(struct catalog *c, struct catalog_stats *out);

#endif

/* job: one job's archive, shared by every path that names the job (<ref>/<job> and
 * -/jobs/<id>): its cache entry and its zip index, both made on first use, single flight; reads,
 * background prefetches and forgetting of bytes found corrupt; and the job's GitLab metadata.
 *
 * A job's identity (id, name, ref, project, cache key, size, by_id) is fixed when it is made and
 * read without a lock. Its metadata (struct gl_job: keep changes artifacts_expire_at) is guarded
 * by the job's lock and only ever read as a copy (job_info). References are counted atomically:
 * the last job_put frees the job, its attachment, its cache entry reference and its index.
 *
 * A module above this one that keeps state per job (nest.c: the archives inside it) keeps it in
 * the job's attachment, an opaque slot set once: job.c calls nothing of that module but the
 * destructor it was given, so calls go one way, into job.c.
 *
 * Archive bytes reach the cache through the backend's archive_read, into a cache writer: the
 * cache marks them present only once the answer was found good (status, Content-Range and the
 * archive's size as known), so a wrong answer never poisons the cache.
 *
 * Lock order: job->lock, then the cache's locks; job->lock is never held across network I/O,
 * and no catalog lock is taken under it. */
#ifndef ARTIFACTFS_JOB_H
#define ARTIFACTFS_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "artifactfs/backend.h"
#include "artifactfs/cache.h"
#include "artifactfs/memo.h"
#include "artifactfs/pool.h"
#include "artifactfs/zipindex.h"

struct job;

/* What the jobs of one catalog share; owned by the catalog, which outlives its jobs and calls
 * job_env_drain() before freeing it. */
struct job_env {
	struct backend be;
	struct cache *cache; /* borrowed */
	struct pool *pool;   /* borrowed; NULL: no background fetches */
	atomic_uint_fast64_t indexes_loaded;
	atomic_uint_fast64_t arrived_bytes; /* archive bytes received, counted as they arrive */
	atomic_uint_fast64_t transfers;     /* archive transfers running now */
	atomic_uint_fast64_t window_bytes;  /* in-memory windows of readers past the cache */
	atomic_uint_fast64_t auth_probes;   /* requests made only to ask job_authorize's question */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int prefetching; /* protected by lock: background tasks queued or running */
	/* Per cache key: this mount's token was let download the archive, within the TTL (an
	 * answer from an artifact endpoint). NULL: no check (unit tests of this module only). */
	struct memo *auth;
};

void job_env_init(struct job_env *env, const struct backend *be, struct cache *cache);
/* Waits for background fetches to end, then destroys the lock (and the authorizations). */
void job_env_drain(struct job_env *env);
/* Turns on job_authorize: what this token was let download is trusted for ttl_s seconds (now:
 * as memo_new). -ENOMEM. */
int job_env_authorize(struct job_env *env, int ttl_s, time_t (*now)(void));

/* A job with one reference. info is copied (info->id 0: known only by ref, read through the
 * by-ref endpoint); ref is NULL unless so; key names its cache entry. NULL on ENOMEM. */
struct job *job_new(struct job_env *env, const char *project, const char *ref,
		    const struct gl_job *info, const char *key, uint64_t size);
/* What an archive reached by ref was when first read (from gitlab_archive_read_pinned): later
 * reads of the job must get the same archive or fail. Empty strings: nothing to pin by. */
struct job_pin {
	char etag[160];
	char last_modified[64];
};
/* Pins a by-ref job to one archive; only before the job is shared or first read. */
void job_set_pin(struct job *j, const struct job_pin *pin);

struct job *job_hold(struct job *j);
void job_put(struct job *j);       /* NULL is a no-op */
int job_refs(const struct job *j); /* for the catalog's trimming: 1 means only it holds j */

/* Identity: immutable, no lock. Strings borrowed while a reference is held. */
int64_t job_id(const struct job *j); /* 0 when known only by ref */
const char *job_name(const struct job *j);
const char *job_project(const struct job *j);
const char *job_ref(const struct job *j); /* NULL unless found by ref */
const char *job_key(const struct job *j);
uint64_t job_size(const struct job *j);
bool job_is_by_id(const struct job *j);       /* content immutable: the job id is known */
struct cache *job_cache(const struct job *j); /* where its archive (and nests) are kept */

/* The job's attachment: NULL until job_attach sets it. Borrowed while j is held. */
void *job_attachment(struct job *j);
/* Sets the attachment to data, with free_fn to free it when the job is freed (before the job's
 * cache entry and index, which it may borrow), unless one is set already: returns the one set,
 * which is data only if this call set it; otherwise data stays the caller's. Set once, under
 * the job's lock; free_fn runs as the last reference goes, so it must not use the job. */
void *job_attach(struct job *j, void *data, void (*free_fn)(void *data));

/* A copy of the metadata, taken under the lock. Release with gl_job_release(). */
int job_info(struct job *j, struct gl_job *out);
/* Replaces the metadata (after keep); info is taken over. */
void job_set_info(struct job *j, struct gl_job *info);
/* Deep copy of a gl_job; -ENOMEM leaves dst empty. */
int job_info_copy(const struct gl_job *src, struct gl_job *dst);

/* Stores bytes already fetched and checked (a by-ref probe's tail) in the job's cache entry. */
int job_seed(struct job *j, uint64_t off, const void *buf, size_t len);

/* The zip index, loaded on first use (reads only the archive's end), and given only once
 * job_authorize says yes. Borrowed while j is held. */
int job_index(struct job *j, const struct zipindex **out);

/* Whether this mount's token may download the job's archive, as GitLab said within the TTL:
 * the cache is shared with other mounts (other tokens), and what one of them cached must not be
 * served to a token that cannot download it (`artifacts:access` hides the artifacts of jobs a
 * token sees). A good answer to an archive fetch made with this token counts; without one, a
 * one-byte ranged GET of the download endpoint asks. 0, -EACCES (403, logged), -ENOENT (404),
 * -EIO. Called on every lookup of the job's members (job_index) and open of its archive. */
int job_authorize(struct job *j);

/* Reads exactly len bytes of the archive at off (short only at its end), through the cache, or
 * straight from the server when the cache has no room (never -ENOSPC).
 * read_ahead: bytes to fetch at least when a fetch is needed (sequential readers pass more). */
ssize_t job_pread(struct job *j, void *buf, size_t len, uint64_t off, uint64_t read_ahead);
/* A zip_read_fn over the archive (ctx is the job): short reads are -EIO. */
ssize_t job_read_fn(void *ctx, void *buf, size_t len, uint64_t off);

/* Starts fetching [off, off+len) into the cache in the background (on env->pool) and returns at
 * once; the task holds its own reference. Failures are left to the read that needs the bytes. */
void job_prefetch(struct job *j, uint64_t off, uint64_t len);

/* Queues run(arg) on the env's pool, counted so that job_env_drain() waits for it: exactly one
 * of run and cancel is called (cancel when the pool drains first). -ESHUTDOWN without a pool or
 * once it drains, -ENOMEM: neither is called then. */
int job_submit(struct job *j, pool_fn run, pool_fn cancel, void *arg);
unsigned job_connections(const struct job *j); /* the pool's workers; 1 without a pool */
struct job_env *job_env_of(const struct job *j);

/* The job's cache entry (made on first use); borrowed while j is held. */
int job_cache_entry(struct job *j, struct cache_entry **out);

/* Fetches [off, off+len) of the archive straight into buf, past the cache: exactly len bytes
 * (short only at the archive's end) or -errno. It stops with -ECANCELED as soon as *stop differs
 * from want (stop may be NULL). */
ssize_t job_fetch(struct job *j, void *buf, size_t len, uint64_t off, const atomic_uint *stop,
		  unsigned want);

/* Fetches made by the calling thread through the cache stop with -ECANCELED as soon as *stop
 * differs from want (NULL: never), until the next call. The cache's fetch interface carries no
 * per-call context: a background fetch learns of its reader's seek or close through the thread
 * it runs on. */
void job_set_stop(const atomic_uint *stop, unsigned want);
/* How many bytes of [off, off+len) are in the cache (whole blocks present), without fetching. */
uint64_t job_cached_bytes(struct job *j, uint64_t off, uint64_t len);
/* Forgets cached archive bytes found corrupt, so the next read fetches them again. */
void job_forget(struct job *j, uint64_t off, uint64_t len);

#endif

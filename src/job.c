/* job: one job's archive and metadata, shared by every path that names the job.
 *
 * Identity fields are set in job_new and never change, so they are read without a lock; the
 * metadata (info), the cache entry, the zip index and the attachment are guarded by j->lock. The
 * entry is got once and kept until the job is freed; the index is loaded once (single flight on
 * j->cond; a waiter whose reader is interrupted leaves with -EINTR, and a load it interrupted
 * is made again by the next caller) and is immutable after; the attachment is set once and freed first, as it may borrow
 * the index. The cache entry's source is a copy of what names the archive on the server (never
 * the job itself: the entry may outlive it, shared by another job object of the same key).
 *
 * Authorization (job_authorize) is kept per cache key in env->auth, a memo with the TTL: every
 * good archive answer to this mount's token (a fetch into the cache, a fetch past it, a by-ref
 * probe's seed) records a yes, so a job read from GitLab costs no request more; a job whose
 * bytes all came from the shared cache costs one ranged GET of one byte per TTL. */
#include "artifactfs/job.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/intr.h"
#include "artifactfs/log.h"

struct job {
	atomic_int refs;
	struct job_env *env;
	/* identity: immutable */
	int64_t id;
	char *name, *project, *ref, *key;
	uint64_t size;
	bool by_id;
	struct job_pin pin; /* set before the job is shared, then immutable */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct gl_job info;            /* protected by lock */
	bool loading;                  /* protected by lock: an index load is in flight */
	bool opening;                  /* protected by lock: the cache entry is being got */
	struct cache_entry *entry;     /* protected by lock; set once */
	struct zipindex *zi;           /* protected by lock; set once, then immutable */
	void *attached;                /* protected by lock; set once (job_attach) */
	void (*attached_free)(void *); /* protected by lock; set with attached */
};

void job_env_init(struct job_env *env, const struct backend *be, struct cache *cache)
{
	env->be = *be;
	env->cache = cache;
	env->pool = NULL;
	atomic_init(&env->indexes_loaded, 0);
	atomic_init(&env->arrived_bytes, 0);
	atomic_init(&env->transfers, 0);
	atomic_init(&env->window_bytes, 0);
	atomic_init(&env->auth_probes, 0);
	pthread_mutex_init(&env->lock, NULL);
	pthread_cond_init(&env->cond, NULL);
	env->prefetching = 0;
	env->auth = NULL;
}

int job_env_authorize(struct job_env *env, int ttl_s, time_t (*now)(void))
{
	env->auth = memo_new(ttl_s, now);
	return env->auth ? 0 : -ENOMEM;
}

void job_env_drain(struct job_env *env)
{
	pthread_mutex_lock(&env->lock); /* background tasks use the cache: let them end */
	while (env->prefetching > 0)
		pthread_cond_wait(&env->cond, &env->lock);
	pthread_mutex_unlock(&env->lock);
	pthread_mutex_destroy(&env->lock);
	pthread_cond_destroy(&env->cond);
	memo_free(env->auth);
	env->auth = NULL;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int job_info_copy(const struct gl_job *src, struct gl_job *dst)
{
	/* every scalar, and any added later; each string is duplicated below, and so must any
	 * pointer added to struct gl_job be (else two records free it) */
	*dst = *src;
	dst->name = dup_or_null(src->name);
	dst->status = dup_or_null(src->status);
	dst->ref = dup_or_null(src->ref);
	dst->sha = dup_or_null(src->sha);
	dst->web_url = dup_or_null(src->web_url);
	dst->created_at = dup_or_null(src->created_at);
	dst->finished_at = dup_or_null(src->finished_at);
	dst->artifacts_expire_at = dup_or_null(src->artifacts_expire_at);
	if ((src->name && !dst->name) || (src->status && !dst->status) || (src->ref && !dst->ref) ||
	    (src->sha && !dst->sha) || (src->web_url && !dst->web_url) ||
	    (src->created_at && !dst->created_at) || (src->finished_at && !dst->finished_at) ||
	    (src->artifacts_expire_at && !dst->artifacts_expire_at)) {
		gl_job_release(dst);
		memset(dst, 0, sizeof(*dst));
		return -ENOMEM;
	}
	return 0;
}

static void job_free(struct job *j)
{
	if (j->attached)
		j->attached_free(j->attached); /* it may borrow the index */
	cache_entry_put(j->entry);
	zipindex_free(j->zi);
	gl_job_release(&j->info);
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->cond);
	free(j->name);
	free(j->project);
	free(j->ref);
	free(j->key);
	free(j);
}

struct job *job_new(struct job_env *env, const char *project, const char *ref,
		    const struct gl_job *info, const char *key, uint64_t size)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	atomic_init(&j->refs, 1);
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	j->env = env;
	j->id = info->id;
	j->size = size;
	j->by_id = info->id > 0;
	j->name = dup_or_null(info->name);
	j->project = strdup(project);
	j->ref = dup_or_null(ref);
	j->key = strdup(key);
	if ((info->name && !j->name) || !j->project || (ref && !j->ref) || !j->key ||
	    job_info_copy(info, &j->info)) {
		job_free(j);
		return NULL;
	}
	return j;
}

struct job *job_hold(struct job *j)
{
	atomic_fetch_add(&j->refs, 1);
	return j;
}

void job_put(struct job *j)
{
	if (j && atomic_fetch_sub(&j->refs, 1) == 1)
		job_free(j);
}

void job_set_pin(struct job *j, const struct job_pin *pin)
{
	j->pin = *pin;
}

int job_refs(const struct job *j)
{
	return atomic_load(&j->refs);
}

int64_t job_id(const struct job *j)
{
	return j->id;
}
const char *job_name(const struct job *j)
{
	return j->name;
}
const char *job_project(const struct job *j)
{
	return j->project;
}
const char *job_ref(const struct job *j)
{
	return j->ref;
}
const char *job_key(const struct job *j)
{
	return j->key;
}
uint64_t job_size(const struct job *j)
{
	return j->size;
}
bool job_is_by_id(const struct job *j)
{
	return j->by_id;
}
struct cache *job_cache(const struct job *j)
{
	return j->env->cache;
}

void *job_attachment(struct job *j)
{
	pthread_mutex_lock(&j->lock);
	void *data = j->attached;
	pthread_mutex_unlock(&j->lock);
	return data;
}

void *job_attach(struct job *j, void *data, void (*free_fn)(void *data))
{
	pthread_mutex_lock(&j->lock);
	if (!j->attached) {
		j->attached = data;
		j->attached_free = free_fn;
	}
	data = j->attached;
	pthread_mutex_unlock(&j->lock);
	return data;
}

int job_info(struct job *j, struct gl_job *out)
{
	pthread_mutex_lock(&j->lock);
	int err = job_info_copy(&j->info, out);
	pthread_mutex_unlock(&j->lock);
	return err;
}

void job_set_info(struct job *j, struct gl_job *info)
{
	pthread_mutex_lock(&j->lock);
	struct gl_job old = j->info;
	j->info = *info;
	pthread_mutex_unlock(&j->lock);
	memset(info, 0, sizeof(*info));
	gl_job_release(&old);
}

/* ---- the archive's source: what the cache calls to fetch missing bytes ---- */

struct source {
	const struct backend *be;
	struct job_env *env; /* outlives every entry: the catalog drains its jobs first */
	struct gl_archive a;
	char *project, *ref, *name, *key;
	struct job_pin pin;
};

static void source_free(void *ctx)
{
	struct source *s = ctx;
	free(s->project);
	free(s->ref);
	free(s->name);
	free(s->key);
	free(s);
}

static struct source *source_new(const struct job *j)
{
	struct source *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->be = &j->env->be;
	s->env = j->env;
	s->project = strdup(j->project);
	s->ref = dup_or_null(j->ref);
	s->name = dup_or_null(j->name);
	s->key = strdup(j->key);
	if (!s->project || (j->ref && !s->ref) || (j->name && !s->name) || !s->key) {
		source_free(s);
		return NULL;
	}
	s->pin = j->pin;
	s->a = (struct gl_archive){
		.project = s->project,
		.job_id = j->by_id ? j->id : 0,
		.ref = s->ref,
		.job_name = s->name,
	};
	return s;
}

/* The stop signal of the fetches this thread makes through the cache (see job_set_stop). */
static _Thread_local const atomic_uint *thread_stop;
static _Thread_local unsigned thread_stop_want;

void job_set_stop(const atomic_uint *stop, unsigned want)
{
	thread_stop = stop;
	thread_stop_want = want;
}

static bool stopped(const atomic_uint *stop, unsigned want)
{
	return stop && atomic_load(stop) != want;
}

/* ---- authorization: what this mount's token was let download, per cache key ---- */

enum {
	AUTH_KIND = 1
};

static void auth_val_free(struct memo_val *v)
{
	free(v);
}

/* A yes, made without a request: the caller has just had a good archive answer. */
static int auth_yes(void *arg, struct memo_val **out)
{
	(void)arg;
	struct memo_val *v = malloc(sizeof(*v));
	if (!v)
		return -ENOMEM;
	memo_val_init(v, auth_val_free);
	*out = v;
	return 0;
}

/* Records that this token just downloaded bytes of the archive of key (a yes already fresh, or
 * a no given within the TTL, stays as it is). */
static void auth_grant(struct job_env *env, const char *key)
{
	struct memo_val *v = NULL;
	if (env->auth && memo_get(env->auth, &(struct memo_key){.kind = AUTH_KIND, .a = key},
				  auth_yes, NULL, &v) == 0)
		memo_val_put(v);
}

struct sink {
	struct cache_writer *w;
	struct job_env *env;
};

static int writer_sink(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct sink *k = ctx;
	if (stopped(thread_stop, thread_stop_want))
		return -ECANCELED;
	atomic_fetch_add(&k->env->arrived_bytes, len);
	return cache_writer_write(k->w, off, buf, len);
}

/* One ranged read of the archive a into fn; 0 only when the answer was good and the archive is
 * the one the job was made for (size bytes): a ref can name another archive between two
 * requests, so reads through a by-ref endpoint are pinned to the first answer's strong ETag or
 * Last-Modified (If-Range; a weak ETag pins nothing), and the size is checked on every answer
 * before a byte of it is taken. */
static int archive_get(struct job_env *env, const struct gl_archive *a, const struct job_pin *pin,
		       uint64_t size, uint64_t off, uint64_t len, http_body_fn fn, void *ctx)
{
	struct gl_read_info info = {
		.expect_etag = pin->etag[0] ? pin->etag : NULL,
		.expect_last_modified = pin->last_modified[0] ? pin->last_modified : NULL,
		.expect_size = (int64_t)size,
		.total = -1,
	};
	atomic_fetch_add(&env->transfers, 1);
	int err = env->be.archive_read(env->be.ctx, a, (int64_t)off, (int64_t)len, fn, ctx, &info);
	atomic_fetch_sub(&env->transfers, 1);
	if (err == -ESTALE || (!err && info.total >= 0 && (uint64_t)info.total != size)) {
		log_set_reason("%s/%s: the ref now names another archive (%s): reads of files "
			       "opened before fail, a new open sees it",
			       a->ref ? a->ref : "-", a->job_name ? a->job_name : "?",
			       err ? "its ETag, date or size changed" : "its size changed");
		log_msg(LOG_DEBUG, "%s", log_reason());
		err = -EIO;
	}
	return err;
}

/* Fetches [off, off+len) into w, for the cache. */
static int source_fetch(void *ctx, struct cache_writer *w, uint64_t off, uint64_t len)
{
	struct source *s = ctx;
	struct sink k = {w, s->env};
	int err = archive_get(s->env, &s->a, &s->pin, cache_writer_size(w), off, len, writer_sink,
			      &k);
	if (!err)
		auth_grant(s->env, s->key);
	return err;
}
/* Gets and binds the entry (no lock held: it opens files and takes a flock()). */
static int entry_open(struct job *j, struct cache_entry **out)
{
	struct source *s = source_new(j);
	int err = s ? cache_entry_get(j->env->cache, j->key, j->size, out) : -ENOMEM;
	if (!err)
		cache_entry_bind(*out, &(struct cache_source){source_fetch, s, source_free});
	else if (s)
		source_free(s);
	return err;
}

int job_cache_entry(struct job *j, struct cache_entry **out)
{
	pthread_mutex_lock(&j->lock);
	while (!j->entry && j->opening) { /* single flight, without the lock held */
		if (intr_cond_wait(&j->cond, &j->lock)) {
			pthread_mutex_unlock(&j->lock);
			*out = NULL;
			return -EINTR;
		}
	}
	bool mine = !j->entry;
	j->opening = mine;
	pthread_mutex_unlock(&j->lock);
	struct cache_entry *e = NULL;
	int err = mine ? entry_open(j, &e) : 0;
	pthread_mutex_lock(&j->lock);
	if (mine) {
		j->entry = e;
		j->opening = false;
		pthread_cond_broadcast(&j->cond);
	}
	*out = j->entry;
	pthread_mutex_unlock(&j->lock);
	return err;
}

int job_seed(struct job *j, uint64_t off, const void *buf, size_t len)
{
	struct cache_entry *e;
	int err = job_cache_entry(j, &e);
	auth_grant(j->env, j->key); /* the by-ref probe that got them was this token's */
	return err ? err : cache_entry_write(e, off, buf, len);
}

ssize_t job_pread(struct job *j, void *buf, size_t len, uint64_t off, uint64_t read_ahead)
{
	struct cache_entry *e;
	int err = job_cache_entry(j, &e);
	if (err)
		return err;
	ssize_t n = cache_entry_pread(e, buf, len, off, read_ahead);
	return n == -ENOSPC ? job_fetch(j, buf, len, off, NULL, 0) : n;
}

ssize_t job_read_fn(void *ctx, void *buf, size_t len, uint64_t off)
{
	ssize_t n = job_pread(ctx, buf, len, off, 0);
	if (n >= 0 && (size_t)n != len) {
		log_set_reason("the archive ends before byte %" PRIu64 " that its index names",
			       off + len);
		log_msg(LOG_DEBUG, "%s", log_reason());
		return -EIO;
	}
	return n;
}

uint64_t job_cached_bytes(struct job *j, uint64_t off, uint64_t len)
{
	struct cache_entry *e;
	uint64_t n = 0, end = off + len < j->size ? off + len : j->size;
	if (job_cache_entry(j, &e))
		return 0;
	for (uint64_t at = off; at < end;) {
		uint64_t stop = (at / CACHE_BLOCK_SIZE + 1) * CACHE_BLOCK_SIZE;
		stop = stop < end ? stop : end;
		n += cache_entry_has(e, at, stop - at) ? stop - at : 0;
		at = stop;
	}
	return n;
}

void job_forget(struct job *j, uint64_t off, uint64_t len)
{
	struct cache_entry *e;
	if (job_cache_entry(j, &e) == 0)
		cache_entry_invalidate(e, off, len);
}

int job_index(struct job *j, const struct zipindex **out)
{
	struct cache_entry *e;
	int err = job_cache_entry(j, &e);
	if (err)
		return err;
	pthread_mutex_lock(&j->lock);
	while (j->loading) {
		if (intr_cond_wait(&j->cond, &j->lock)) {
			pthread_mutex_unlock(&j->lock);
			return -EINTR;
		}
	}
	if (j->zi) {
		pthread_mutex_unlock(&j->lock);
		err = job_authorize(j); /* j->zi is set once and never freed while j is held */
		*out = err ? NULL : j->zi;
		return err;
	}
	j->loading = true;
	pthread_mutex_unlock(&j->lock);

	struct zipindex *zi = NULL;
	err = zipindex_load(j->size, job_read_fn, j, &zi);
	if (!err)
		atomic_fetch_add(&j->env->indexes_loaded, 1);

	pthread_mutex_lock(&j->lock);
	j->zi = zi;
	j->loading = false;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	if (!err) /* the index may have come from the cache, put there by another token */
		err = job_authorize(j);
	*out = err ? NULL : zi;
	return err;
}

/* What names j's archive to GitLab: its id when known, else project, ref and job name. The
 * strings are j's. */
static struct gl_archive job_archive(const struct job *j)
{
	return (struct gl_archive){.project = j->project,
				   .job_id = j->by_id ? j->id : 0,
				   .ref = j->ref,
				   .job_name = j->name};
}

static int probe_sink(void *ctx, uint64_t off, const void *buf, size_t len)
{
	(void)ctx;
	(void)off;
	(void)buf;
	(void)len;
	return 0;
}

/* Asks GitLab with this token: one byte of the archive (GITLAB-API.md: GET with a Range, not
 * HEAD, which object storage answers with a redirect signed for HEAD only). */
static int auth_probe(void *arg, struct memo_val **out)
{
	struct job *j = arg;
	struct gl_archive a = job_archive(j);
	atomic_fetch_add(&j->env->auth_probes, 1);
	int err = j->size ? archive_get(j->env, &a, &j->pin, j->size, 0, 1, probe_sink, NULL)
			  : -ENOENT; /* no archive to download */
	return err ? err : auth_yes(NULL, out);
}

int job_authorize(struct job *j)
{
	struct job_env *env = j->env;
	if (!env->auth)
		return 0;
	struct memo_key k = {.kind = AUTH_KIND, .a = j->key};
	struct memo_val *v = memo_peek(env->auth, &k);
	if (!v) {
		int err = memo_get(env->auth, &k, auth_probe, j, &v);
		if (err)
			return err;
	}
	memo_val_put(v);
	return 0;
}

/* ---- straight from the server, past the cache ---- */

/* Where fetched bytes go in a caller's buffer: the part of each piece inside [off, off+len),
 * positional (a retry delivers the same offsets again); filled is the contiguous prefix. */
struct span {
	unsigned char *buf;
	uint64_t off, len, filled;
	const atomic_uint *stop;
	unsigned want;
	struct job_env *env;
};

static int span_sink(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct span *s = ctx;
	if (stopped(s->stop, s->want))
		return -ECANCELED;
	atomic_fetch_add(&s->env->arrived_bytes, len);
	uint64_t lo = off > s->off ? off : s->off, end = s->off + s->len;
	uint64_t hi = off + len < end ? off + len : end;
	if (lo < hi) {
		memcpy(s->buf + (lo - s->off), (const unsigned char *)buf + (lo - off), hi - lo);
		if (lo - s->off <= s->filled && hi - s->off > s->filled)
			s->filled = hi - s->off;
	}
	/* a server that ignores Range sends the whole archive: stop once the span is full */
	return s->filled == s->len && hi == end && off + len > end ? -ECANCELED : 0;
}

ssize_t job_fetch(struct job *j, void *buf, size_t len, uint64_t off, const atomic_uint *stop,
		  unsigned want)
{
	if (off >= j->size || len == 0)
		return 0;
	if (len > j->size - off)
		len = (size_t)(j->size - off);
	struct span s = {buf, off, len, 0, stop, want, j->env};
	struct gl_archive a = job_archive(j);
	int err = archive_get(j->env, &a, &j->pin, j->size, off, len, span_sink, &s);
	if (err == -ECANCELED && s.filled == s.len && !stopped(stop, want))
		err = 0; /* stopped by span_sink itself: everything asked for arrived */
	if (!err || (err == -ECANCELED && s.filled > 0))
		auth_grant(j->env, j->key);
	if (!err && s.filled != s.len) {
		log_set_reason("job %s: the server sent %" PRIu64 " of %zu bytes at %" PRIu64,
			       j->name ? j->name : "?", s.filled, len, off);
		log_msg(LOG_DEBUG, "%s", log_reason());
		err = -EIO;
	}
	return err ? err : (ssize_t)len;
}

/* ---- background tasks ---- */

struct job_task {
	struct job_env *env;
	pool_fn run, cancel;
	void *arg;
};

static void task_done(struct job_env *env)
{
	pthread_mutex_lock(&env->lock);
	env->prefetching--;
	pthread_cond_broadcast(&env->cond);
	pthread_mutex_unlock(&env->lock);
}

static void task_run(void *p)
{
	struct job_task *t = p;
	struct job_env *env = t->env;
	t->run(t->arg);
	free(t);
	task_done(env);
}

static void task_cancel(void *p)
{
	struct job_task *t = p;
	struct job_env *env = t->env;
	t->cancel(t->arg);
	free(t);
	task_done(env);
}

int job_submit(struct job *j, pool_fn run, pool_fn cancel, void *arg)
{
	struct job_env *env = j->env;
	if (!env->pool)
		return -ESHUTDOWN;
	struct job_task *t = malloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	*t = (struct job_task){env, run, cancel, arg};
	pthread_mutex_lock(&env->lock);
	env->prefetching++;
	pthread_mutex_unlock(&env->lock);
	int err = pool_submit(env->pool, task_run, task_cancel, t);
	if (err) {
		free(t);
		task_done(env);
	}
	return err;
}

unsigned job_connections(const struct job *j)
{
	return j->env->pool ? pool_threads(j->env->pool) : 1;
}

struct job_env *job_env_of(const struct job *j)
{
	return j->env;
}

struct prefetch {
	struct job *job;
	uint64_t off, len;
};

static void prefetch_cancel(void *p)
{
	struct prefetch *pf = p;
	job_put(pf->job);
	free(pf);
}

static void prefetch_run(void *p)
{
	struct prefetch *pf = p;
	struct cache_entry *e;
	if (job_cache_entry(pf->job, &e) == 0)
		cache_entry_prefetch(e, pf->off, pf->len);
	prefetch_cancel(pf);
}

void job_prefetch(struct job *j, uint64_t off, uint64_t len)
{
	if (off >= j->size || len == 0)
		return;
	struct prefetch *pf = malloc(sizeof(*pf));
	if (!pf)
		return;
	*pf = (struct prefetch){job_hold(j), off, len < j->size - off ? len : j->size - off};
	if (job_submit(j, prefetch_run, prefetch_cancel, pf))
		prefetch_cancel(pf); /* the reader will fetch it itself */
}

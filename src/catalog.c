/* catalog: names on the server, remembered within the TTL, and job objects holding archives.
 *
 * Listings live in memos: one per (kind, project[, ref]) key, holding a refcounted immutable value
 * or an error, trusted until `expires`. A memo being loaded is marked so; other threads wanting
 * it wait on catalog->cond instead of asking the server again (single flight). Errors that say
 * something about the name (ENOENT, EACCES) are remembered like values; EIO is not remembered.
 *
 * Job objects are kept in one list keyed by (project name, cache key). Their archive lives in the
 * cache under a key that names the GitLab instance and the job id, so every mount of the same
 * instance shares it; jobs known only by ref (a job token cannot resolve ids) get a key of their
 * own that is never reused once the ref is resolved again. */
#include "artifactfs/catalog.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "artifactfs/log.h"
#include "artifactfs/tree.h"

/* The tail fetched to find a zip's end: EOCD (22) + largest comment (65535) + zip64 locator. */
#define TAIL_BYTES (64u * 1024u + 22u + 20u)
/* A by-ref probe that the server answers with the whole archive is kept in memory up to this. */
#define PROBE_MAX_BYTES (256u * 1024u * 1024u)
#define MEMO_PRUNE_AT 1024
#define STALE_RETRY_S 5 /* how soon an unreachable server is asked again */
#define PREFETCH_MAX 8  /* background fetches at once, over all readers */
#define IDLE_JOBS_MAX 32 /* job objects (and their zip indexes) kept with no one using them */

struct val {
	atomic_int refs;
	void (*destroy)(struct val *v);
};

struct names_val { /* decoded names; names NULL: the level cannot be listed with this token */
	struct val v;
	char **names;
	size_t n;
};

struct jobs_val { /* a ref's jobs; jobs NULL and listable false: cannot be listed */
	struct val v;
	struct gl_job *jobs;
	size_t n;
	bool listable;
};

struct jobref_val { /* a job found by probing the by-ref endpoint */
	struct val v;
	struct job *job;
};

struct memo {
	char *key;
	struct val *val;   /* NULL when err != 0 */
	int err;
	time_t expires;
	bool loading;
	struct memo *next;
};

struct catalog {
	struct gitlab *gl;
	struct cache *cache;
	int ttl_s;
	char **projects;
	char origin[17];       /* hash of the base URL: the cache namespace */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct memo *memos;    /* protected by lock */
	size_t n_memos;        /* protected by lock */
	struct job *jobs;      /* protected by lock */
	atomic_uint_fast64_t indexes_loaded;
	atomic_uint_fast64_t jobs_open;
	int prefetching;       /* protected by lock: background fetches running */
};

typedef int (*memo_load_fn)(struct catalog *c, void *arg, struct val **out);

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

#define FNV_INIT 14695981039346656037ull

static time_t now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void val_put(struct val *v)
{
	if (v && atomic_fetch_sub(&v->refs, 1) == 1)
		v->destroy(v);
}

static void val_init(struct val *v, void (*destroy)(struct val *))
{
	atomic_init(&v->refs, 1);
	v->destroy = destroy;
}

/* Drops memos that have expired and are not being loaded. Lock held. Returns their values,
 * chained through a list the caller frees outside the lock. */
static void memo_prune(struct catalog *c, struct memo **dead)
{
	time_t t = now_s();
	for (struct memo **pp = &c->memos; *pp;) {
		struct memo *m = *pp;
		if (!m->loading && m->expires <= t) {
			*pp = m->next;
			m->next = *dead;
			*dead = m;
			c->n_memos--;
		} else {
			pp = &m->next;
		}
	}
}

static void memo_free_list(struct memo *m)
{
	while (m) {
		struct memo *next = m->next;
		val_put(m->val);
		free(m->key);
		free(m);
		m = next;
	}
}

static struct memo *memo_find(struct catalog *c, const char *key)
{
	for (struct memo *m = c->memos; m; m = m->next)
		if (strcmp(m->key, key) == 0)
			return m;
	return NULL;
}

static struct memo *memo_insert(struct catalog *c, const char *key, struct memo **dead)
{
	if (c->n_memos >= MEMO_PRUNE_AT)
		memo_prune(c, dead);
	struct memo *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->key = strdup(key);
	if (!m->key) {
		free(m);
		return NULL;
	}
	m->next = c->memos;
	c->memos = m;
	c->n_memos++;
	return m;
}

/* Returns the memo's value (a reference the caller puts) or its error, loading it when absent or
 * expired. Only one thread loads a key at a time. */
static int memo_get(struct catalog *c, const char *key, memo_load_fn load, void *arg,
		    struct val **out)
{
	struct memo *m, *dead = NULL;
	struct val *v = NULL, *old;
	int err;

	*out = NULL;
	pthread_mutex_lock(&c->lock);
	while ((m = memo_find(c, key)) && m->loading)
		pthread_cond_wait(&c->cond, &c->lock);
	if (m && m->expires > now_s()) {
		if (m->val)
			atomic_fetch_add(&m->val->refs, 1);
		*out = m->val;
		err = m->err;
		pthread_mutex_unlock(&c->lock);
		return err;
	}
	if (!m)
		m = memo_insert(c, key, &dead);
	if (!m) {
		pthread_mutex_unlock(&c->lock);
		memo_free_list(dead);
		return -ENOMEM;
	}
	m->loading = true;
	pthread_mutex_unlock(&c->lock);
	memo_free_list(dead);

	err = load(c, arg, &v);

	pthread_mutex_lock(&c->lock);
	old = m->val;
	if (err == -EIO && old) {
		/* the server is unreachable: what was known still stands, checked again soon */
		log_msg(LOG_WARNING, "serving a listing older than the TTL: the server is unreachable");
		v = old;
		old = NULL;
		err = 0;
		m->expires = now_s() + (c->ttl_s < STALE_RETRY_S ? c->ttl_s : STALE_RETRY_S);
	} else {
		m->expires = (err == -EIO || err == -ENOMEM) ? 0 : now_s() + c->ttl_s;
	}
	m->val = err ? NULL : v;
	m->err = err;
	m->loading = false;
	if (m->val)
		atomic_fetch_add(&m->val->refs, 1);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	val_put(old);
	*out = err ? NULL : v;
	if (err)
		val_put(v);
	return err;
}

/* Makes every memo whose key starts with prefix expire now (after a keep or delete). */
static void memo_expire_prefix(struct catalog *c, const char *prefix)
{
	size_t n = strlen(prefix);
	pthread_mutex_lock(&c->lock);
	for (struct memo *m = c->memos; m; m = m->next)
		if (strncmp(m->key, prefix, n) == 0)
			m->expires = 0;
	pthread_mutex_unlock(&c->lock);
}

static char *memo_key(char kind, const char *a, const char *b, const char *d)
{
	char *k = NULL;
	/* \x1f never occurs in names GitLab accepts, so keys cannot collide */
	if (asprintf(&k, "%c\x1f%s\x1f%s\x1f%s", kind, a ? a : "", b ? b : "", d ? d : "") < 0)
		return NULL;
	return k;
}

/* ---- names ---- */

static void names_destroy(struct val *v)
{
	struct names_val *nv = (struct names_val *)v;
	gitlab_strv_free(nv->names);
	free(nv);
}

static int names_new(char **names, size_t n, struct val **out)
{
	struct names_val *nv = calloc(1, sizeof(*nv));
	if (!nv) {
		gitlab_strv_free(names);
		return -ENOMEM;
	}
	val_init(&nv->v, names_destroy);
	nv->names = names;
	nv->n = n;
	*out = &nv->v;
	return 0;
}

static char **strv_dup(char *const *src, size_t *n)
{
	size_t k = 0;
	while (src[k])
		k++;
	char **v = calloc(k + 1, sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < k; i++) {
		v[i] = strdup(src[i]);
		if (!v[i]) {
			gitlab_strv_free(v);
			return NULL;
		}
	}
	*n = k;
	return v;
}

static int load_root(struct catalog *c, void *arg, struct val **out)
{
	(void)arg;
	size_t n = 0;
	if (c->projects) {
		char **v = strv_dup(c->projects, &n);
		return v ? names_new(v, n, out) : -ENOMEM;
	}
	struct gl_project *p;
	int err = gitlab_projects_list(c->gl, &p, &n);
	if (err)
		return err;
	char **v = calloc(n + 1, sizeof(*v));
	for (size_t i = 0; v && i < n; i++) {
		v[i] = strdup(p[i].path_with_namespace ? p[i].path_with_namespace : "");
		if (!v[i]) {
			gitlab_strv_free(v);
			v = NULL;
		}
	}
	gl_projects_free(p, n);
	return v ? names_new(v, n, out) : -ENOMEM;
}

/* A project exists when GitLab shows it; a token that may not ask (a job token) is taken at its
 * word, and what lies below answers for it. */
static int load_project(struct catalog *c, void *arg, struct val **out)
{
	struct gl_project p = {0};
	int err = gitlab_project_get(c->gl, arg, &p);
	gl_project_release(&p);
	if (err == -EACCES)
		err = 0;
	if (err)
		return err;
	return names_new(NULL, 0, out);
}

static int load_refs(struct catalog *c, void *arg, struct val **out)
{
	char **names = NULL;
	size_t n = 0;
	int err = gitlab_refs_list(c->gl, arg, &names, &n);
	if (err == -EACCES)
		return names_new(NULL, 0, out);
	if (err)
		return err;
	return names_new(names, n, out);
}

static int get_names(struct catalog *c, char kind, const char *a, const char *b,
		     memo_load_fn load, void *arg, struct names_val **out)
{
	*out = NULL;
	char *key = memo_key(kind, a, b, NULL);
	if (!key)
		return -ENOMEM;
	struct val *v;
	int err = memo_get(c, key, load, arg, &v);
	free(key);
	*out = (struct names_val *)v;
	return err;
}

int catalog_project(struct catalog *c, const char *project)
{
	struct names_val *nv;
	int err = get_names(c, 'P', project, NULL, load_project, (void *)project, &nv);
	val_put(nv ? &nv->v : NULL);
	return err;
}

int catalog_ref(struct catalog *c, const char *project, const char *ref)
{
	int err = catalog_project(c, project);
	if (err)
		return err;
	struct names_val *nv;
	err = get_names(c, 'R', project, NULL, load_refs, (void *)project, &nv);
	if (err)
		return err;
	if (nv->names) {
		err = -ENOENT;
		for (size_t i = 0; i < nv->n; i++)
			if (strcmp(nv->names[i], ref) == 0)
				err = 0;
	}
	val_put(&nv->v);
	return err;
}

/* Escapes each name; with suffix, adds "<name>.zip" after each. Names no listing can show are
 * left out here, the one place every listing of GitLab names passes. */
static int escape_names(char *const *names, size_t n, bool with_zip, char ***out)
{
	size_t per = with_zip ? 2 : 1;
	char **v = calloc(n * per + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0, k = 0; i < n; i++) {
		if (!tree_name_listable(names[i])) {
			log_msg(LOG_WARNING, "name \"%.200s\" left out of a listing: the kernel "
					     "cannot show it", names[i]);
			continue;
		}
		char **slot = v + k;
		slot[0] = tree_escape(names[i]);
		if (slot[0] && with_zip && asprintf(&slot[1], "%s.zip", slot[0]) < 0)
			slot[1] = NULL;
		if (!slot[0] || (with_zip && !slot[1])) {
			gitlab_strv_free(v);
			return -ENOMEM;
		}
		k += per;
	}
	*out = v;
	return 0;
}

int catalog_list_root(struct catalog *c, char ***out)
{
	struct names_val *nv;
	int err = get_names(c, 'L', NULL, NULL, load_root, NULL, &nv);
	if (err)
		return err;
	err = escape_names(nv->names, nv->n, false, out);
	val_put(&nv->v);
	return err;
}

int catalog_list_refs(struct catalog *c, const char *project, char ***out)
{
	int err = catalog_project(c, project);
	if (err)
		return err;
	struct names_val *nv;
	err = get_names(c, 'R', project, NULL, load_refs, (void *)project, &nv);
	if (err)
		return err;
	err = nv->names ? escape_names(nv->names, nv->n, false, out) : -EACCES;
	val_put(&nv->v);
	return err;
}

/* ---- a ref's jobs ---- */

static void jobs_destroy(struct val *v)
{
	struct jobs_val *jv = (struct jobs_val *)v;
	gl_jobs_free(jv->jobs, jv->n);
	free(jv);
}

struct ref_arg {
	const char *project, *ref;
};

static int load_ref_jobs(struct catalog *c, void *arg, struct val **out)
{
	struct ref_arg *ra = arg;
	struct jobs_val *jv = calloc(1, sizeof(*jv));
	if (!jv)
		return -ENOMEM;
	val_init(&jv->v, jobs_destroy);
	int err = gitlab_ref_jobs(c->gl, ra->project, ra->ref, &jv->jobs, &jv->n);
	jv->listable = err != -EACCES;
	if (err == -EACCES || err == -ENOENT) /* no successful pipeline: an empty ref */
		err = 0;
	if (err) {
		free(jv);
		return err;
	}
	*out = &jv->v;
	return 0;
}

static int get_ref_jobs(struct catalog *c, const char *project, const char *ref,
			struct jobs_val **out)
{
	*out = NULL;
	int err = catalog_ref(c, project, ref);
	if (err)
		return err;
	char *key = memo_key('J', project, ref, NULL);
	if (!key)
		return -ENOMEM;
	struct ref_arg ra = {project, ref};
	struct val *v;
	err = memo_get(c, key, load_ref_jobs, &ra, &v);
	free(key);
	*out = (struct jobs_val *)v;
	return err;
}

int catalog_list_ref_jobs(struct catalog *c, const char *project, const char *ref, char ***out)
{
	struct jobs_val *jv;
	int err = get_ref_jobs(c, project, ref, &jv);
	if (err)
		return err;
	if (!jv->listable) {
		val_put(&jv->v);
		return -EACCES;
	}
	char **names = calloc(jv->n + 1, sizeof(*names));
	for (size_t i = 0; names && i < jv->n; i++)
		names[i] = jv->jobs[i].name;
	err = names ? escape_names(names, jv->n, true, out) : -ENOMEM;
	free(names); /* the strings are borrowed from jv */
	val_put(&jv->v);
	return err;
}

/* ---- job objects ---- */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int job_info_copy(const struct gl_job *src, struct gl_job *dst)
{
	memset(dst, 0, sizeof(*dst));
	dst->id = src->id;
	dst->pipeline_id = src->pipeline_id;
	dst->archive_size = src->archive_size;
	dst->name = dup_or_null(src->name);
	dst->status = dup_or_null(src->status);
	dst->ref = dup_or_null(src->ref);
	dst->sha = dup_or_null(src->sha);
	dst->web_url = dup_or_null(src->web_url);
	dst->created_at = dup_or_null(src->created_at);
	dst->finished_at = dup_or_null(src->finished_at);
	dst->artifacts_expire_at = dup_or_null(src->artifacts_expire_at);
	if ((src->name && !dst->name) || (src->status && !dst->status) ||
	    (src->ref && !dst->ref) || (src->sha && !dst->sha) ||
	    (src->web_url && !dst->web_url) || (src->created_at && !dst->created_at) ||
	    (src->finished_at && !dst->finished_at) ||
	    (src->artifacts_expire_at && !dst->artifacts_expire_at)) {
		gl_job_release(dst);
		return -ENOMEM;
	}
	return 0;
}

static void job_free(struct job *j)
{
	cache_entry_put(j->entry);
	zipindex_free(j->zi);
	gl_job_release(&j->info);
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->cond);
	free(j->project);
	free(j->ref);
	free(j->key);
	free(j);
}

/* A new job object with one reference; info is copied. */
static struct job *job_new(struct catalog *c, const char *project, const char *ref,
			   const struct gl_job *info, const char *key, uint64_t size)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	j->cat = c;
	j->refs = 1;
	j->size = size;
	j->by_id = info->id > 0;
	j->project = strdup(project);
	j->ref = dup_or_null(ref);
	j->key = strdup(key);
	if (!j->project || (ref && !j->ref) || !j->key || job_info_copy(info, &j->info)) {
		job_free(j);
		return NULL;
	}
	return j;
}

static char *job_key(struct catalog *c, int64_t job_id)
{
	char *k = NULL;
	if (asprintf(&k, "j%s-%" PRId64, c->origin, job_id) < 0)
		return NULL;
	return k;
}

/* Finds a job object by (project, key), taking a reference; lock held. */
static struct job *job_find_locked(struct catalog *c, const char *project, const char *key)
{
	for (struct job *j = c->jobs; j; j = j->next) {
		if (strcmp(j->key, key) == 0 && strcmp(j->project, project) == 0) {
			j->refs++;
			return j;
		}
	}
	return NULL;
}

/* Unlinks the oldest jobs that only the table holds, past IDLE_JOBS_MAX of them, onto *dead:
 * their indexes can be large, and a later lookup makes them anew from the disk cache. Lock held.
 * The table is newest first, so the idle jobs met last are the ones dropped. */
static void jobs_trim(struct catalog *c, struct job **dead)
{
	size_t idle = 0;
	for (struct job **pp = &c->jobs; *pp;) {
		struct job *j = *pp;
		if (j->refs == 1 && ++idle > IDLE_JOBS_MAX) {
			*pp = j->next;
			j->next = *dead;
			*dead = j;
			atomic_fetch_sub(&c->jobs_open, 1);
		} else {
			pp = &j->next;
		}
	}
}

/* Publishes j in the table unless an equal one got there first, which is returned instead. */
static struct job *job_publish(struct catalog *c, struct job *j)
{
	struct job *dead = NULL;
	pthread_mutex_lock(&c->lock);
	struct job *have = job_find_locked(c, j->project, j->key);
	if (!have) {
		j->refs++; /* the table's own reference */
		j->next = c->jobs;
		c->jobs = j;
		atomic_fetch_add(&c->jobs_open, 1);
		jobs_trim(c, &dead);
	}
	pthread_mutex_unlock(&c->lock);
	while (dead) {
		struct job *next = dead->next;
		job_free(dead); /* refs was 1: the table's, now given up */
		dead = next;
	}
	if (have)
		catalog_job_put(j);
	return have ? have : j;
}

void catalog_job_put(struct job *j)
{
	if (!j)
		return;
	struct catalog *c = j->cat;
	pthread_mutex_lock(&c->lock);
	bool last = --j->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (last)
		job_free(j);
}

/* Removes j from the table (its artifacts are gone); lock not held. */
static void job_unpublish(struct catalog *c, struct job *j)
{
	bool found = false;
	pthread_mutex_lock(&c->lock);
	for (struct job **pp = &c->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (found) {
		atomic_fetch_sub(&c->jobs_open, 1);
		catalog_job_put(j);
	}
}

/* ---- probing an archive when the job cannot be looked up (job tokens) ---- */

struct probe_buf {
	char *data;
	uint64_t base;  /* offset of data[0] in the archive */
	size_t len, cap;
	bool started;
};

static int probe_sink(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct probe_buf *pb = ctx;
	if (!pb->started) {
		pb->base = off;
		pb->started = true;
	}
	if (off < pb->base || off - pb->base > pb->len)
		return -EIO;
	size_t at = off - pb->base;
	if (at + len > PROBE_MAX_BYTES)
		return -EFBIG;
	if (at + len > pb->cap) {
		size_t cap = pb->cap ? pb->cap : 65536;
		while (cap < at + len)
			cap *= 2;
		char *d = realloc(pb->data, cap);
		if (!d)
			return -ENOMEM;
		pb->data = d;
		pb->cap = cap;
	}
	memcpy(pb->data + at, buf, len);
	if (at + len > pb->len)
		pb->len = at + len;
	return 0;
}

/* Fetches the archive's tail (or all of it, if the server ignores Range), makes the job object
 * and seeds its cache entry with those bytes. */
static int probe_job(struct catalog *c, const struct gl_archive *a, const struct gl_job *info,
		     const char *key, struct job **out)
{
	struct probe_buf pb = {0};
	int64_t total = -1;
	int err = gitlab_archive_read(c->gl, a, -1, TAIL_BYTES, probe_sink, &pb, &total, NULL);
	if (err == -EFBIG) {
		log_msg(LOG_ERR, "the server ignores Range and the archive is over %u MiB",
			PROBE_MAX_BYTES >> 20);
		err = -EIO;
	}
	if (!err && (total <= 0 || pb.base + pb.len != (uint64_t)total))
		err = -EIO;
	if (err)
		goto out_free;
	struct job *j = job_new(c, a->project, a->ref, info, key, (uint64_t)total);
	if (!j) {
		err = -ENOMEM;
		goto out_free;
	}
	err = cache_entry_get(c->cache, key, j->size, &j->entry);
	if (!err)
		err = cache_entry_write(j->entry, pb.base, pb.data, pb.len);
	if (err) {
		catalog_job_put(j);
		goto out_free;
	}
	*out = j;
out_free:
	free(pb.data);
	return err;
}

static bool recent_job_info(struct catalog *c, const char *project, int64_t job_id,
			    struct gl_job *out);

int catalog_job_by_id(struct catalog *c, const char *project, int64_t job_id, struct job **out)
{
	char *key = job_key(c, job_id);
	if (!key)
		return -ENOMEM;
	pthread_mutex_lock(&c->lock);
	struct job *j = job_find_locked(c, project, key);
	pthread_mutex_unlock(&c->lock);
	int err = 0;
	if (j)
		goto out;
	struct gl_job info = {0};
	err = recent_job_info(c, project, job_id, &info) ? 0
							  : gitlab_job_get(c->gl, project, job_id, &info);
	if (err == -EACCES) { /* a job token: learn the size from the archive itself */
		struct gl_archive a = {.project = project, .job_id = job_id};
		info.id = job_id;
		err = probe_job(c, &a, &info, key, &j);
	} else if (!err && info.archive_size < 0) {
		err = -ENOENT;
	} else if (!err) {
		j = job_new(c, project, NULL, &info, key, (uint64_t)info.archive_size);
		err = j ? 0 : -ENOMEM;
	}
	gl_job_release(&info);
	if (!err)
		j = job_publish(c, j);
out:
	free(key);
	*out = err ? NULL : j;
	return err;
}

static void jobref_destroy(struct val *v)
{
	struct jobref_val *jr = (struct jobref_val *)v;
	catalog_job_put(jr->job);
	free(jr);
}

struct byref_arg {
	const char *project, *ref, *name;
};

/* A job found through the by-ref download endpoint. Its key carries the resolution time, so a
 * later resolution (after the TTL) never reads blocks of an earlier, perhaps different, archive. */
static int load_byref_job(struct catalog *c, void *arg, struct val **out)
{
	struct byref_arg *ba = arg;
	struct jobref_val *jr = calloc(1, sizeof(*jr));
	char *key = NULL;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t h = fnv1a(FNV_INIT, ba->project, strlen(ba->project) + 1);
	h = fnv1a(h, ba->ref, strlen(ba->ref) + 1);
	h = fnv1a(h, ba->name, strlen(ba->name));
	if (!jr || asprintf(&key, "r%s-%016" PRIx64 "-%lld%09ld", c->origin, h,
			    (long long)ts.tv_sec, ts.tv_nsec) < 0) {
		free(jr);
		return -ENOMEM;
	}
	struct gl_archive a = {.project = ba->project, .ref = ba->ref, .job_name = ba->name};
	struct gl_job info = {.name = (char *)ba->name, .ref = (char *)ba->ref, .archive_size = -1};
	int err = probe_job(c, &a, &info, key, &jr->job);
	free(key);
	if (err) {
		free(jr);
		return err;
	}
	val_init(&jr->v, jobref_destroy);
	*out = &jr->v;
	return 0;
}

static int job_by_probe(struct catalog *c, const char *project, const char *ref, const char *name,
			struct job **out)
{
	char *key = memo_key('B', project, ref, name);
	if (!key)
		return -ENOMEM;
	struct byref_arg ba = {project, ref, name};
	struct val *v;
	int err = memo_get(c, key, load_byref_job, &ba, &v);
	free(key);
	if (err)
		return err;
	struct job *j = ((struct jobref_val *)v)->job;
	pthread_mutex_lock(&c->lock);
	j->refs++;
	pthread_mutex_unlock(&c->lock);
	val_put(v);
	*out = j;
	return 0;
}

int catalog_job_by_ref(struct catalog *c, const char *project, const char *ref, const char *name,
		       struct job **out)
{
	struct jobs_val *jv;
	*out = NULL;
	int err = get_ref_jobs(c, project, ref, &jv);
	if (err)
		return err;
	if (!jv->listable) {
		val_put(&jv->v);
		return job_by_probe(c, project, ref, name, out);
	}
	const struct gl_job *info = NULL;
	for (size_t i = 0; i < jv->n && !info; i++)
		if (strcmp(jv->jobs[i].name, name) == 0)
			info = &jv->jobs[i];
	err = -ENOENT;
	char *key = info ? job_key(c, info->id) : NULL;
	if (info && !key)
		err = -ENOMEM;
	if (key) {
		pthread_mutex_lock(&c->lock);
		struct job *j = job_find_locked(c, project, key);
		pthread_mutex_unlock(&c->lock);
		if (!j) {
			j = job_new(c, project, NULL, info, key, (uint64_t)info->archive_size);
			if (j)
				j = job_publish(c, j);
		}
		err = j ? 0 : -ENOMEM;
		*out = j;
	}
	free(key);
	val_put(&jv->v);
	return err;
}

/* ---- a project's jobs by id ---- */

static int load_recent_jobs(struct catalog *c, void *arg, struct val **out)
{
	struct jobs_val *jv = calloc(1, sizeof(*jv));
	if (!jv)
		return -ENOMEM;
	val_init(&jv->v, jobs_destroy);
	int err = gitlab_recent_jobs(c->gl, arg, &jv->jobs, &jv->n);
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

/* The recent-jobs memo if it is loaded and fresh (a reference the caller puts), else NULL: lets
 * a lookup of a listed job skip its own request, without ever causing the listing's. */
static struct jobs_val *recent_jobs_peek(struct catalog *c, const char *project)
{
	char *key = memo_key('I', project, NULL, NULL);
	struct jobs_val *jv = NULL;
	pthread_mutex_lock(&c->lock);
	struct memo *m = key ? memo_find(c, key) : NULL;
	if (m && !m->loading && m->val && m->expires > now_s()) {
		atomic_fetch_add(&m->val->refs, 1);
		jv = (struct jobs_val *)m->val;
	}
	pthread_mutex_unlock(&c->lock);
	free(key);
	return jv;
}

/* Copies the info of job_id out of the recent-jobs memo; false when it is not there. */
static bool recent_job_info(struct catalog *c, const char *project, int64_t job_id,
			    struct gl_job *out)
{
	struct jobs_val *jv = recent_jobs_peek(c, project);
	bool found = false;
	for (size_t i = 0; jv && i < jv->n && !found; i++)
		if (jv->jobs[i].id == job_id)
			found = job_info_copy(&jv->jobs[i], out) == 0;
	if (jv)
		val_put(&jv->v);
	return found;
}

static void ids_add(int64_t *ids, size_t *n, int64_t id)
{
	for (size_t i = 0; i < *n; i++)
		if (ids[i] == id)
			return;
	ids[(*n)++] = id;
}

int catalog_list_job_ids(struct catalog *c, const char *project, char ***out)
{
	int err = catalog_project(c, project);
	if (err)
		return err;
	char *key = memo_key('I', project, NULL, NULL);
	struct val *v = NULL;
	err = key ? memo_get(c, key, load_recent_jobs, (void *)project, &v) : -ENOMEM;
	free(key);
	if (err)
		return err;
	struct jobs_val *jv = (struct jobs_val *)v;
	/* the project's recent jobs with an archive, then those met by id that are older */
	pthread_mutex_lock(&c->lock);
	size_t cap = jv->n, n = 0;
	for (struct job *j = c->jobs; j; j = j->next)
		cap += j->by_id && strcmp(j->project, project) == 0;
	int64_t *ids = calloc(cap + 1, sizeof(*ids));
	for (size_t i = 0; ids && i < jv->n; i++)
		ids_add(ids, &n, jv->jobs[i].id);
	for (struct job *j = c->jobs; ids && j; j = j->next)
		if (j->by_id && strcmp(j->project, project) == 0)
			ids_add(ids, &n, j->info.id);
	pthread_mutex_unlock(&c->lock);
	val_put(v);
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

/* ---- a job's archive ---- */

/* Bytes on their way into the cache, gathered into large page-aligned writes: written as curl
 * hands them over (a few KiB at a time), each would lock the entry twice and make the kernel
 * zero the rest of every page it starts. */
#define SINK_BYTES (256u << 10)
struct sink {
	struct job *job;
	uint64_t off; /* of buf[0] */
	size_t len, cap;
	unsigned char *buf;
};

static int sink_flush(struct sink *s)
{
	int err = s->len ? cache_entry_write(s->job->entry, s->off, s->buf, s->len) : 0;
	s->off += s->len;
	s->len = 0;
	return err;
}

static int entry_sink(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct sink *s = ctx;
	struct job *j = s->job;
	/* the archive behind a ref may change between requests: never store bytes past its size */
	if (off > j->size || len > j->size - off)
		return -EIO;
	if (s->len && off != s->off + s->len) {
		int err = sink_flush(s);
		if (err)
			return err;
	}
	if (!s->buf)
		return cache_entry_write(j->entry, off, buf, len);
	if (s->len == 0)
		s->off = off;
	int err = 0;
	while (!err && len) {
		size_t n = s->cap - s->len < len ? s->cap - s->len : len;
		memcpy(s->buf + s->len, buf, n);
		s->len += n;
		buf = (const unsigned char *)buf + n;
		len -= n;
		if (s->len == s->cap)
			err = sink_flush(s);
	}
	return err;
}

static int job_fetch(void *ctx, struct cache_entry *e, uint64_t off, uint64_t len)
{
	struct job *j = ctx;
	(void)e;
	struct gl_archive a = {
		.project = j->project,
		.job_id = j->by_id ? j->info.id : 0,
		.ref = j->ref,
		.job_name = j->info.name,
	};
	/* without a buffer every piece is written as it comes: slower, never wrong */
	struct sink s = {.job = j, .cap = len && len < SINK_BYTES ? len : SINK_BYTES};
	s.buf = malloc(s.cap);
	int64_t total = -1;
	int err = gitlab_archive_read(j->cat->gl, &a, (int64_t)off, (int64_t)len, entry_sink, &s,
				      &total, NULL);
	int flushed = sink_flush(&s); /* what arrived before a failure is good: keep it */
	free(s.buf);
	err = err ? err : flushed;
	if (!err && total >= 0 && (uint64_t)total != j->size) {
		log_msg(LOG_ERR, "job %s: the archive is now %" PRId64 " bytes, was %" PRIu64,
			j->info.name ? j->info.name : "?", total, j->size);
		err = -EIO;
	}
	return err;
}

static int job_entry(struct job *j, struct cache_entry **out)
{
	int err = 0;
	pthread_mutex_lock(&j->lock);
	if (!j->entry)
		err = cache_entry_get(j->cat->cache, j->key, j->size, &j->entry);
	*out = j->entry;
	pthread_mutex_unlock(&j->lock);
	return err;
}

ssize_t catalog_job_pread(struct job *j, void *buf, size_t len, uint64_t off, uint64_t read_ahead)
{
	struct cache_entry *e;
	int err = job_entry(j, &e);
	if (err)
		return err;
	return cache_entry_pread(e, buf, len, off, read_ahead, job_fetch, j);
}

void catalog_job_forget(struct job *j, uint64_t off, uint64_t len)
{
	struct cache_entry *e;
	if (job_entry(j, &e) == 0)
		cache_entry_invalidate(e, off, len);
}

struct prefetch {
	struct job *job;
	uint64_t off, len;
};

static void *prefetch_thread(void *p)
{
	struct prefetch *pf = p;
	struct cache_entry *e;
	if (job_entry(pf->job, &e) == 0)
		cache_entry_prefetch(e, pf->off, pf->len, job_fetch, pf->job);
	struct catalog *c = pf->job->cat;
	catalog_job_put(pf->job);
	free(pf);
	pthread_mutex_lock(&c->lock);
	c->prefetching--;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

void catalog_job_prefetch(struct job *j, uint64_t off, uint64_t len)
{
	if (off >= j->size || len == 0)
		return;
	struct prefetch *pf = malloc(sizeof(*pf));
	if (!pf)
		return;
	*pf = (struct prefetch){j, off, len < j->size - off ? len : j->size - off};
	struct catalog *c = j->cat;
	pthread_mutex_lock(&c->lock);
	bool room = c->prefetching < PREFETCH_MAX;
	if (room) {
		c->prefetching++;
		j->refs++;
	}
	pthread_mutex_unlock(&c->lock);
	if (!room) {
		free(pf); /* the reader will fetch it itself */
		return;
	}
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, prefetch_thread, pf) != 0) {
		catalog_job_put(j);
		free(pf);
		pthread_mutex_lock(&c->lock);
		c->prefetching--;
		pthread_mutex_unlock(&c->lock);
	}
	pthread_attr_destroy(&attr);
}

ssize_t catalog_job_read_fn(void *ctx, void *buf, size_t len, uint64_t off)
{
	ssize_t n = catalog_job_pread(ctx, buf, len, off, 0);
	if (n >= 0 && (size_t)n != len) {
		log_msg(LOG_ERR, "the archive ends before byte %" PRIu64 " that its index names",
			off + len);
		return -EIO;
	}
	return n;
}

int catalog_job_index(struct job *j, const struct zipindex **out)
{
	struct cache_entry *e;
	int err = job_entry(j, &e);
	if (err)
		return err;
	pthread_mutex_lock(&j->lock);
	while (j->loading)
		pthread_cond_wait(&j->cond, &j->lock);
	if (j->zi) {
		*out = j->zi;
		pthread_mutex_unlock(&j->lock);
		return 0;
	}
	j->loading = true;
	pthread_mutex_unlock(&j->lock);

	struct zipindex *zi = NULL;
	err = zipindex_load(j->size, catalog_job_read_fn, j, &zi);
	if (!err)
		atomic_fetch_add(&j->cat->indexes_loaded, 1);

	pthread_mutex_lock(&j->lock);
	j->zi = zi;
	j->loading = false;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	*out = zi;
	return err;
}

int catalog_job_info(struct job *j, struct gl_job *out)
{
	pthread_mutex_lock(&j->lock);
	int err = job_info_copy(&j->info, out);
	pthread_mutex_unlock(&j->lock);
	return err;
}

static void expire_project_memos(struct catalog *c, const char *project)
{
	for (const char *kind = "JBI"; *kind; kind++) { /* a ref's jobs, by-ref probes, recent jobs */
		char *prefix = NULL;
		if (asprintf(&prefix, "%c\x1f%s\x1f", *kind, project) >= 0)
			memo_expire_prefix(c, prefix);
		free(prefix);
	}
}

int catalog_job_keep(struct catalog *c, struct job *j)
{
	if (!j->by_id)
		return -EACCES; /* found through a job token, which keep never accepts */
	struct gl_job info = {0};
	int err = gitlab_job_keep(c->gl, j->project, j->info.id, &info);
	if (err)
		return err;
	if (info.archive_size < 0)
		info.archive_size = (int64_t)j->size;
	pthread_mutex_lock(&j->lock);
	struct gl_job old = j->info;
	j->info = info;
	pthread_mutex_unlock(&j->lock);
	gl_job_release(&old);
	expire_project_memos(c, j->project);
	return 0;
}

int catalog_job_delete(struct catalog *c, struct job *j)
{
	if (!j->by_id)
		return -EACCES;
	int err = gitlab_job_artifacts_delete(c->gl, j->project, j->info.id);
	if (err)
		return err;
	job_unpublish(c, j);
	cache_entry_discard(c->cache, j->key);
	expire_project_memos(c, j->project);
	return 0;
}

int catalog_project_delete_artifacts(struct catalog *c, const char *project)
{
	int err = gitlab_project_artifacts_delete(c->gl, project);
	if (!err)
		expire_project_memos(c, project);
	return err;
}

void catalog_get_stats(struct catalog *c, struct catalog_stats *out)
{
	out->jobs_open = atomic_load(&c->jobs_open);
	out->indexes_loaded = atomic_load(&c->indexes_loaded);
}

int catalog_new(const struct catalog_config *cfg, struct catalog **out)
{
	struct catalog *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->gl = cfg->gl;
	c->cache = cfg->cache;
	c->ttl_s = cfg->ttl_s;
	c->projects = cfg->projects;
	uint64_t h = fnv1a(FNV_INIT, cfg->base_url, strlen(cfg->base_url));
	snprintf(c->origin, sizeof(c->origin), "%016" PRIx64, h);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	*out = c;
	return 0;
}

void catalog_free(struct catalog *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock); /* background fetches use the cache: let them end */
	while (c->prefetching > 0)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	memo_free_list(c->memos);
	while (c->jobs) {
		struct job *j = c->jobs;
		c->jobs = j->next;
		if (--j->refs == 0)
			job_free(j);
	}
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

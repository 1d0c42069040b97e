/* nest: archives inside a job's artifacts (see nest.h). A nest's identity is its path from the
 * job folder, nested levels joined by "#/" as the tree writes them ("a.tar.gz#/inner.zip"); its
 * blob's cache key is the job's key and a hash of that path, so the blob is shared by the mounts
 * of one cache and never by two members. The pass is deterministic, so a blob left by an earlier
 * mount holds the same bytes the next pass writes. */
#include "artifactfs/nest.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/cache.h"
#include "artifactfs/job.h"
#include "artifactfs/intr.h"
#include "artifactfs/log.h"
#include "artifactfs/unpack.h"
#include "artifactfs/tree.h"
#include "artifactfs/zipread.h"

#define MEMBER_READ_AHEAD (4u * 1024u * 1024u)

struct nest {
	atomic_int refs;
	struct job *job;             /* borrowed: every holder of a nest holds its job */
	struct nest *parent;         /* held; NULL when the archive is a member of the artifacts */
	const struct zip_member *am; /* the archive, in the parent's index or the job's */
	struct unpacked *unpacked;
	struct cache_entry *blob;
	char *key; /* the blob's cache key */
	struct unpack_limits lim;
};

struct slot {
	char *path;     /* NULL: free */
	struct nest *n; /* the set's reference, or NULL with err */
	int err;
	bool loading;
	uint64_t used;
};

struct nest_set {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct slot s[NEST_SET_MAX]; /* protected by lock */
	uint64_t clock;              /* protected by lock */
};

struct nest *nest_hold(struct nest *n)
{
	atomic_fetch_add(&n->refs, 1);
	return n;
}

void nest_put(struct nest *n)
{
	if (!n || atomic_fetch_sub(&n->refs, 1) != 1)
		return;
	nest_put(n->parent);
	unpack_free(n->unpacked);
	cache_entry_put(n->blob);
	free(n->key);
	free(n);
}

const struct zipindex *nest_index(const struct nest *n)
{
	return unpack_zipindex(n->unpacked);
}

/* ---- the archive's bytes: a member of the artifacts, or a range of the enclosing blob ---- */

static ssize_t blob_read(struct nest *n, void *buf, size_t len, uint64_t off);

struct member_src {
	struct nest *n;
	struct zip_reader *r; /* level 0 only */
};

/* The job's bytes up to the member's data end, fetched in large windows. */
static ssize_t job_bytes(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct member_src *ms = ctx;
	uint64_t end = ms->r ? zip_reader_data_end(ms->r) : 0; /* NULL: the local header first */
	uint64_t ra = end > off ? end - off : 0;
	ra = ra < MEMBER_READ_AHEAD ? ra : MEMBER_READ_AHEAD;
	ssize_t got = job_pread(ms->n->job, buf, len, off, ra);
	return got >= 0 && (size_t)got != len ? job_read_fn(ms->n->job, buf, len, off) : got;
}

/* A zip_read_fn over the archive member: exactly len bytes or -errno. */
static ssize_t member_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct member_src *ms = ctx;
	if (ms->n->parent)
		return blob_read(ms->n->parent, buf, len, ms->n->am->local_offset + off);
	size_t done = 0;
	while (done < len) {
		ssize_t got = zip_reader_pread(ms->r, (char *)buf + done, len - done, off + done);
		if (got <= 0)
			return got < 0 ? got : -EIO;
		done += (size_t)got;
	}
	return (ssize_t)len;
}

static int member_src_open(struct nest *n, struct member_src *ms)
{
	ms->n = n;
	ms->r = NULL;
	if (n->parent)
		return 0;
	const struct zipindex *zi;
	int err = job_index(n->job, &zi);
	return err ? err : zip_reader_new(zi, n->am, job_bytes, ms, &ms->r);
}

/* ---- writing the blob ---- */

/* The first pass: blob bytes into the cache entry. A write the cache refuses (no room) only
 * leaves blocks missing, which blob_read gets by running the pass again. */
static int first_pass_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct nest *n = ctx;
	if (cache_entry_write(n->blob, off, buf, len) != 0)
		log_msg(LOG_DEBUG, "nested blob bytes at %" PRIu64 " not cached", off);
	return 0;
}

/* The last block counts as present only when written whole: zeros up to its end. */
static void pad_last_block(struct nest *n)
{
	static const unsigned char zeros[CACHE_BLOCK_SIZE];
	uint64_t size = unpack_blob_size(n->unpacked), tail = size % CACHE_BLOCK_SIZE;
	if (tail && size + (CACHE_BLOCK_SIZE - tail) <= n->lim.max_bytes)
		cache_entry_write(n->blob, size, zeros, CACHE_BLOCK_SIZE - tail);
}

/* A later pass, run for the bytes [want, want + len) of the blob: copies them to buf and stores
 * the whole blocks around them again, then stops the pass. */
struct redo {
	struct nest *n;
	char *buf;
	uint64_t want, len, stop;
};

#define PASS_DONE (-ECANCELED) /* a redo pass has what it came for */

static int redo_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct redo *r = ctx;
	uint64_t end = off + len;
	if (off < r->want + r->len && end > r->want) {
		uint64_t from = off > r->want ? off : r->want;
		uint64_t to = end < r->want + r->len ? end : r->want + r->len;
		memcpy(r->buf + (from - r->want), (const char *)buf + (from - off), to - from);
	}
	uint64_t block = r->want - r->want % CACHE_BLOCK_SIZE;
	if (end > block && off < r->stop) {
		uint64_t from = off > block ? off : block;
		uint64_t to = end < r->stop ? end : r->stop;
		cache_entry_write(r->n->blob, from, (const char *)buf + (from - off), to - from);
	}
	return end >= r->stop ? PASS_DONE : 0;
}

static ssize_t blob_redo(struct nest *n, void *buf, size_t len, uint64_t off)
{
	uint64_t size = unpack_blob_size(n->unpacked), stop = off + len;
	stop += (CACHE_BLOCK_SIZE - stop % CACHE_BLOCK_SIZE) % CACHE_BLOCK_SIZE;
	struct redo r = {n, buf, off, len, stop < size ? stop : size};
	struct member_src ms;
	struct unpacked *again = NULL;
	log_msg(LOG_DEBUG, "nested blob bytes at %" PRIu64 " not in the cache: unpacking again",
		off);
	int err = member_src_open(n, &ms);
	if (!err)
		err = unpack_archive(n->am->size, member_read, &ms, redo_write, &r, &n->lim,
				     &again);
	zip_reader_free(ms.r);
	unpack_free(again);
	if (r.stop == size)
		pad_last_block(n);
	return err && err != PASS_DONE ? err : (ssize_t)len;
}

/* Exactly len bytes of the blob at off, or -errno. */
static ssize_t blob_read(struct nest *n, void *buf, size_t len, uint64_t off)
{
	if (off + len > unpack_blob_size(n->unpacked))
		return -EIO;
	if (len == 0)
		return 0;
	if (cache_entry_has(n->blob, off, len)) {
		ssize_t got = cache_entry_pread(n->blob, buf, len, off, 0);
		if (got == (ssize_t)len)
			return got;
	}
	return blob_redo(n, buf, len, off);
}

ssize_t nest_pread(struct nest *n, const struct zip_member *m, void *buf, size_t len, uint64_t off)
{
	if (m->type != ZIP_FILE)
		return -EISDIR;
	if (off >= m->size)
		return 0;
	if (len > m->size - off)
		len = (size_t)(m->size - off);
	return blob_read(n, buf, len, m->local_offset + off);
}

int nest_link_target(void *ctx, const struct zip_member *link, char **out, size_t *len)
{
	const char *t = unpack_link_target(((struct nest *)ctx)->unpacked, link);
	if (!t)
		return -EINVAL;
	*out = strdup(t);
	*len = strlen(t);
	return *out ? 0 : -ENOMEM;
}

/* ---- building a nest ---- */

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 14695981039346656037ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct nest *nest_new(struct job *j, struct nest *parent, const struct zip_member *am,
			     const char *path)
{
	struct nest *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	atomic_init(&n->refs, 1);
	n->job = j;
	n->parent = parent ? nest_hold(parent) : NULL;
	n->am = am;
	struct cache_stats cs;
	cache_get_stats(job_cache(j), &cs);
	n->lim.max_bytes = cs.limit_bytes;
	if (asprintf(&n->key, "%s-n%016" PRIx64, job_key(j), fnv1a(path)) < 0) {
		n->key = NULL;
		nest_put(n);
		return NULL;
	}
	return n;
}

/* One pass over the archive am: its index and its blob in the cache. */
static int nest_build(struct job *j, struct nest *parent, const struct zip_member *am,
		      const char *path, struct nest **out)
{
	struct nest *n = nest_new(j, parent, am, path);
	if (!n)
		return -ENOMEM;
	struct member_src ms;
	int err = cache_entry_get(job_cache(j), n->key, n->lim.max_bytes, &n->blob);
	if (!err)
		err = member_src_open(n, &ms);
	if (!err) {
		err = unpack_archive(am->size, member_read, &ms, first_pass_write, n, &n->lim,
				     &n->unpacked);
		zip_reader_free(ms.r);
	}
	if (!err) {
		pad_last_block(n);
		*out = n;
		return 0;
	}
	if (n->blob)
		cache_entry_discard(job_cache(j), n->key); /* what the pass wrote is garbage */
	nest_put(n);
	return err;
}

/* ---- the set: single flight, least recently used out ---- */

/* The job's attachment's destructor: puts every nest. */
static void set_free(void *p)
{
	struct nest_set *s = p;
	for (size_t i = 0; i < NEST_SET_MAX; i++) {
		nest_put(s->s[i].n);
		free(s->s[i].path);
	}
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

/* j's set, made on first use and kept as the job's attachment; NULL on ENOMEM. */
static struct nest_set *set_of(struct job *j)
{
	struct nest_set *s = job_attachment(j), *mine;
	if (s)
		return s;
	if (!(mine = calloc(1, sizeof(*mine))))
		return NULL;
	pthread_mutex_init(&mine->lock, NULL);
	pthread_cond_init(&mine->cond, NULL);
	s = job_attach(j, mine, set_free);
	if (s != mine)
		set_free(mine); /* another thread attached one first */
	return s;
}

static struct slot *slot_find(struct nest_set *s, const char *path)
{
	for (size_t i = 0; i < NEST_SET_MAX; i++)
		if (s->s[i].path && strcmp(s->s[i].path, path) == 0)
			return &s->s[i];
	return NULL;
}

/* A free slot, or the least recently used one not loading (its nest goes to *old); NULL when
 * every slot is loading. Lock held. */
static struct slot *slot_take(struct nest_set *s, struct nest **old)
{
	struct slot *best = NULL;
	for (size_t i = 0; i < NEST_SET_MAX; i++) {
		struct slot *x = &s->s[i];
		if (!x->path)
			return x;
		if (!x->loading && (!best || x->used < best->used))
			best = x;
	}
	if (best) {
		*old = best->n;
		free(best->path);
		memset(best, 0, sizeof(*best));
	}
	return best;
}

/* Waits for a load of path; 1 and the result when the set holds one, 0 when it must be made.
 * Lock held. */
static int slot_wait(struct nest_set *s, const char *path, struct nest **out, int *err)
{
	struct slot *x;
	while ((x = slot_find(s, path)) && x->loading) {
		if ((*err = intr_cond_wait(&s->cond, &s->lock))) {
			*out = NULL;
			return 1;
		}
	}
	if (!x)
		return 0;
	x->used = ++s->clock;
	*out = x->n ? nest_hold(x->n) : NULL;
	*err = x->err;
	return 1;
}

/* Ends the load in slot x (NULL: the load had no slot, every one was loading). */
static void slot_fill(struct nest_set *s, struct slot *x, struct nest *n, int err)
{
	pthread_mutex_lock(&s->lock);
	if (x &&
	    (!err || err == -ENOENT || err == -EFBIG)) { /* what the member is, not how it went */
		x->loading = false;
		x->n = n ? nest_hold(n) : NULL;
		x->err = err;
	} else if (x) {
		free(x->path);
		memset(x, 0, sizeof(*x));
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* The nest of archive am at path, from the set or built now. */
static int nest_get(struct job *j, struct nest *parent, const struct zip_member *am,
		    const char *path, struct nest **out)
{
	struct nest_set *s = set_of(j);
	struct nest *old = NULL;
	int err = 0;
	if (!s)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	if (slot_wait(s, path, out, &err)) {
		pthread_mutex_unlock(&s->lock);
		return err;
	}
	struct slot *x = slot_take(s, &old);
	if (x && (x->path = strdup(path))) {
		x->loading = true;
		x->used = ++s->clock;
	} else {
		x = NULL; /* built without being remembered */
	}
	pthread_mutex_unlock(&s->lock);
	nest_put(old);
	err = nest_build(j, parent, am, path, out);
	slot_fill(s, x, err ? NULL : *out, err);
	return err;
}

/* ---- walking a path ---- */

/* The archive member named by path[base, end) of zi: a file, else -ENOENT. */
static int archive_member(const struct zipindex *zi, const char *path, size_t base, size_t end,
			  const struct zip_member **out)
{
	char *name = strndup(path + base, end - base);
	if (!name)
		return -ENOMEM;
	*out = zipindex_find(zi, name);
	free(name);
	if (*out && (*out)->type == ZIP_FILE)
		return 0;
	return -ENOENT;
}

/* Whether zi has a real member path[base, end) (a name ending in '#' wins over nesting). */
static bool real_member(const struct zipindex *zi, const char *path, size_t base, size_t end)
{
	char *name = strndup(path + base, end - base);
	bool found = name && zipindex_find(zi, name);
	free(name);
	return found;
}

/* Goes one level down at path[0, hash) (hash at the '#'): *n and *zi become the inside. */
static int descend(struct job *j, const char *path, size_t base, size_t hash, struct nest **n,
		   const struct zipindex **zi)
{
	const struct zip_member *am;
	int err = archive_member(*zi, path, base, hash, &am);
	char *key = err ? NULL : strndup(path, hash);
	if (!err && !key)
		err = -ENOMEM;
	struct nest *child = NULL;
	if (!err)
		err = nest_get(j, *n, am, key, &child);
	free(key);
	if (err == -ENOENT)
		log_msg(LOG_DEBUG, "no archive inside member \"%.*s\"", (int)(hash - base),
			path + base);
	if (err)
		return err;
	nest_put(*n);
	*n = child;
	*zi = nest_index(child);
	return 0;
}

int nest_find(struct job *j, const char *path, struct nest **nest, const struct zip_member **m)
{
	const struct zipindex *zi;
	struct nest *n = NULL;
	int err = job_index(j, &zi), depth = 0;
	size_t base = 0, from = 0, pos;
	while (!err && (pos = tree_nest_next(path, from)) != 0) {
		from = pos;
		while (path[from] == '/')
			from++;
		if (real_member(zi, path, base, pos))
			continue;
		if (++depth > NEST_DEPTH_MAX) {
			log_msg(LOG_WARNING, "archives nested more than %d deep: not opened",
				NEST_DEPTH_MAX);
			err = -ELOOP;
			break;
		}
		err = descend(j, path, base, pos - 1, &n, &zi);
		base = from;
	}
	*m = err ? NULL : zipindex_find(zi, path + base);
	if (!err && !*m)
		err = -ENOENT;
	if (err) {
		nest_put(n);
		n = NULL;
	}
	*nest = n;
	return err;
}

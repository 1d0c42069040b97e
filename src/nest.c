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
/* Members refused as bombs or found damaged, remembered per job beyond the set's slots: a refusal
 * costs a pass of up to the budget's floor written into the cache, so none is made twice (the
 * oldest of more than this many is forgotten). */
#define REFUSED_MAX 64

/* A blob is held in segments, cache entries of their own keyed "<nest key>.<i>": segment i holds
 * the blob's bytes [seg_start(i), seg_start(i + 1)), SEG_FIRST << 2i of them. The blob's size is
 * known only once the pass has written it, and an entry's size is fixed when it is made; so a
 * blob costs entries sized by what it holds (the last one at most 4 times over, which costs only
 * its map and checksums: its data region is sparse) in a handful of entries, whatever the
 * budget. Segment starts are multiples of CACHE_BLOCK_SIZE. */
#define SEG_FIRST (64u * 1024u)
#define SEG_MAX 14 /* segment 13 holds 4 TiB, the largest cache entry */

struct nest {
	atomic_int refs;
	struct job *job;             /* borrowed: every holder of a nest holds its job */
	struct nest *parent;         /* held; NULL when the archive is a member of the artifacts */
	const struct zip_member *am; /* the archive, in the parent's index or the job's */
	struct unpacked *unpacked;
	struct cache_entry *seg[SEG_MAX]; /* set by the build; NULL: never cached */
	char *key;                        /* the blob's cache key, its segments' prefix */
	char *path;                       /* for messages */
	struct unpack_limits lim;
};

struct slot {
	char *path;     /* NULL: free */
	struct nest *n; /* the set's reference, or NULL with err */
	int err;
	bool loading;
	uint64_t used;
};

/* NEST_SET_MAX slots in use, more while a walk deeper than that is inside all of them: a walk
 * never evicts its own ancestors (the next lookup would unpack them all again). */
struct nest_set {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct slot s[NEST_DEPTH_MAX]; /* protected by lock */
	uint64_t clock;                /* protected by lock */
	char *refused[REFUSED_MAX];    /* paths, a ring; protected by lock */
	int refused_err[REFUSED_MAX];  /* -EFBIG or -EIO, for each; protected by lock */
	size_t refused_next;           /* protected by lock */
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
	for (size_t i = 0; i < SEG_MAX; i++)
		cache_entry_put(n->seg[i]);
	free(n->key);
	free(n->path);
	free(n);
}

const struct zipindex *nest_index(const struct nest *n)
{
	return unpack_zipindex(n->unpacked);
}

/* ---- the blob's segments ---- */

static uint64_t seg_start(size_t i)
{
	return SEG_FIRST * (((uint64_t)1 << (2 * i)) - 1) / 3;
}

/* The segment holding blob byte off (SEG_MAX past the last). */
static size_t seg_of(uint64_t off)
{
	size_t i = 0;
	while (i < SEG_MAX && seg_start(i + 1) <= off)
		i++;
	return i;
}

/* Calls fn on each segment's part of [off, off + len) of the blob, in order, while it returns
 * 0; a part past the last segment is -EFBIG. */
typedef int (*seg_fn)(struct nest *n, size_t i, char *p, size_t len, uint64_t seg_off);
static int seg_each(struct nest *n, void *buf, size_t len, uint64_t off, seg_fn fn)
{
	int err = 0;
	for (size_t done = 0, i; !err && done < len;) {
		uint64_t at = off + done;
		if ((i = seg_of(at)) == SEG_MAX)
			return -EFBIG;
		uint64_t room = seg_start(i + 1) - at;
		size_t part = len - done < room ? len - done : (size_t)room;
		err = fn(n, i, buf ? (char *)buf + done : NULL, part, at - seg_start(i));
		done += part;
	}
	return err;
}

static int seg_has(struct nest *n, size_t i, char *p, size_t len, uint64_t seg_off)
{
	(void)p;
	return n->seg[i] && cache_entry_has(n->seg[i], seg_off, len) ? 0 : -ENOENT;
}

/* Whether [off, off + len) of the blob is all in the cache. */
static bool blob_has(struct nest *n, uint64_t off, uint64_t len)
{
	return seg_each(n, NULL, (size_t)len, off, seg_has) == 0;
}

static int seg_read(struct nest *n, size_t i, char *p, size_t len, uint64_t seg_off)
{
	ssize_t got = n->seg[i] ? cache_entry_pread(n->seg[i], p, len, seg_off, 0) : -ENOENT;
	return got == (ssize_t)len ? 0 : got < 0 ? (int)got : -EIO;
}

/* Opens segment i, pinned while the build runs (its earlier segments must not make room for
 * its later ones). Only the build opens segments: the set is fixed once the nest is shared. */
static int seg_open(struct nest *n, size_t i)
{
	char *key = NULL;
	struct cache_entry *e = NULL;
	if (asprintf(&key, "%s.%zu", n->key, i) < 0)
		return -ENOMEM;
	int err = cache_entry_get(job_cache(n->job), key, seg_start(i + 1) - seg_start(i), &e);
	free(key);
	if (!err && (err = cache_entry_pin(e)) != 0)
		cache_entry_put(e);
	if (!err)
		n->seg[i] = e;
	return err;
}

/* Stores the blob bytes of a segment's part whose blocks are missing (a block is completed by
 * the contiguous writes of its bytes, so every part touching a missing block is written). */
static int seg_store(struct nest *n, size_t i, char *p, size_t len, uint64_t seg_off)
{
	if (n->seg[i] && cache_entry_has(n->seg[i], seg_off, len))
		return 0;
	return n->seg[i] ? cache_entry_write(n->seg[i], seg_off, p, len) : -ENOSPC;
}

static int seg_store_opening(struct nest *n, size_t i, char *p, size_t len, uint64_t seg_off)
{
	if (!n->seg[i] && seg_open(n, i) != 0)
		return -ENOSPC; /* its bytes are never cached: read by a later pass */
	return seg_store(n, i, p, len, seg_off);
}

/* Stores blob bytes; opening: the build, which makes the segments. The last block counts as
 * present only when written whole, so the blob's end (last) is followed by zeros up to it. */
static int blob_store(struct nest *n, const void *buf, size_t len, uint64_t off, bool opening,
		      bool last)
{
	static const unsigned char zeros[CACHE_BLOCK_SIZE];
	seg_fn fn = opening ? seg_store_opening : seg_store;
	int err = seg_each(n, (void *)buf, len, off, fn);
	uint64_t end = off + len, tail = end % CACHE_BLOCK_SIZE;
	if (!err && last && tail)
		err = seg_each(n, (void *)zeros, CACHE_BLOCK_SIZE - tail, end, fn);
	return err;
}

/* Unpins the blob's segments (every segment made is pinned by the build while it runs). */
static void blob_unpin(struct nest *n)
{
	for (size_t i = 0; i < SEG_MAX; i++)
		if (n->seg[i])
			cache_entry_unpin(n->seg[i]);
}

/* Pins every segment of the blob (none on failure). */
static int blob_pin(struct nest *n)
{
	size_t i = 0;
	int err = 0;
	for (; !err && i < SEG_MAX; i++)
		err = n->seg[i] ? cache_entry_pin(n->seg[i]) : 0;
	for (i--; err && i-- > 0;) /* the failing one is not pinned */
		if (n->seg[i])
			cache_entry_unpin(n->seg[i]);
	return err;
}

/* ---- the archive's bytes: a member of the artifacts, or a range of the enclosing blob ---- */

static ssize_t blob_read(struct nest *n, void *buf, size_t len, uint64_t off);

struct member_src {
	struct nest *n;
	struct zip_reader *r; /* level 0 only */
	int err;              /* the first failure to get the member's bytes (not the archive's) */
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
	ssize_t got = 0;
	if (ms->n->parent) {
		got = blob_read(ms->n->parent, buf, len, ms->n->am->local_offset + off);
	} else {
		for (size_t done = 0; done < len && got >= 0; done += (size_t)got) {
			got = zip_reader_pread(ms->r, (char *)buf + done, len - done, off + done);
			got = got == 0 ? -EIO : got;
		}
		got = got < 0 ? got : (ssize_t)len;
	}
	if (got < 0 && !ms->err)
		ms->err = (int)got;
	return got;
}

static int member_src_open(struct nest *n, struct member_src *ms)
{
	ms->n = n;
	ms->r = NULL;
	ms->err = 0;
	if (n->parent)
		return 0;
	const struct zipindex *zi;
	int err = job_index(n->job, &zi);
	return err ? err : zip_reader_new(zi, n->am, job_bytes, ms, &ms->r);
}

/* ---- writing the blob ---- */

/* The first pass: blob bytes into the cache. A write the cache refuses (no room) only leaves
 * blocks missing, which a later pass gets. */
static int first_pass_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct nest *n = ctx;
	if (blob_store(n, buf, len, off, true, false) != 0)
		log_msg(LOG_DEBUG, "nested blob bytes at %" PRIu64 " not cached", off);
	return 0;
}

/* A later pass over a built nest, for the bytes [want, want + len) of the blob (none when buf
 * is NULL): copies them to buf and stores every missing block it passes, to make the blob whole;
 * it stops once it has what it came for and the cache refuses a write. */
struct redo {
	struct nest *n;
	char *buf;
	uint64_t want, len;
	bool refused;
};

#define PASS_DONE (-ECANCELED) /* a later pass has what it came for */

static int redo_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct redo *r = ctx;
	uint64_t end = off + len;
	if (r->buf && off < r->want + r->len && end > r->want) {
		uint64_t from = off > r->want ? off : r->want;
		uint64_t to = end < r->want + r->len ? end : r->want + r->len;
		memcpy(r->buf + (from - r->want), (const char *)buf + (from - off), to - from);
	}
	bool last = end == unpack_blob_size(r->n->unpacked);
	if (!r->refused && blob_store(r->n, buf, len, off, false, last) != 0)
		r->refused = true;
	return r->refused && (!r->buf || end >= r->want + r->len) ? PASS_DONE : 0;
}

static int blob_hold_whole(struct nest *n);

/* Runs n's pass again (r says what for), from its parent's blob made whole and pinned first:
 * a pass never reads a level that is missing bytes, so no pass starts another below it, and a
 * lookup runs at most one pass per level. On success n is left pinned. */
static int pass_again(struct nest *n, struct redo *r)
{
	struct member_src ms;
	struct unpacked *again = NULL;
	log_msg(LOG_DEBUG, "nested blob of \"%s\" not all in the cache: unpacking again", n->path);
	int err = n->parent ? blob_hold_whole(n->parent) : 0;
	bool parent_held = n->parent && !err;
	bool pinned = !err && (err = blob_pin(n)) == 0;
	if (pinned && (err = member_src_open(n, &ms)) == 0) {
		err = unpack_archive(n->am->size, member_read, &ms, redo_write, r, &n->lim, &again);
		zip_reader_free(ms.r);
	}
	if (err == PASS_DONE)
		err = 0;
	if (err && pinned)
		blob_unpin(n);
	if (parent_held)
		blob_unpin(n->parent);
	unpack_free(again);
	return err;
}

/* Makes n's blob whole in the cache and pins it, for a pass over the archive inside it: at most
 * one pass over n. -ENOSPC (with one log line) when it cannot be whole: the levels a lookup is
 * inside do not fit in the cache together. */
static int blob_hold_whole(struct nest *n)
{
	uint64_t size = unpack_blob_size(n->unpacked);
	int err = blob_pin(n);
	if (err || blob_has(n, 0, size))
		return err;
	blob_unpin(n); /* its parent is made whole first, without it pinned */
	struct redo r = {.n = n};
	if ((err = pass_again(n, &r)) != 0)
		return err;
	if (blob_has(n, 0, size))
		return 0;
	blob_unpin(n);
	log_msg(LOG_WARNING,
		"nested archives do not fit in the cache: the %" PRIu64 " bytes unpacked from "
		"\"%s\" must stay cached while an archive inside it is unpacked (a larger "
		"--cache-size helps)",
		size, n->path);
	return -ENOSPC;
}

/* Exactly len bytes of the blob at off, or -errno. */
static ssize_t blob_read(struct nest *n, void *buf, size_t len, uint64_t off)
{
	if (off + len > unpack_blob_size(n->unpacked))
		return -EIO;
	if (len == 0)
		return 0;
	if (blob_has(n, off, len) && seg_each(n, buf, len, off, seg_read) == 0)
		return (ssize_t)len;
	struct redo r = {n, buf, off, len, false};
	int err = pass_again(n, &r);
	if (!err)
		blob_unpin(n);
	return err ? err : (ssize_t)len;
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
	n->lim.max_bytes = cs.limit_bytes / UNPACK_CACHE_SHARE;
	n->path = strdup(path);
	if (!n->path || asprintf(&n->key, "%s-n%016" PRIx64, job_key(j), fnv1a(path)) < 0) {
		n->key = NULL;
		nest_put(n);
		return NULL;
	}
	return n;
}

void nest_discard_blobs(struct cache *c, const char *job_key)
{
	char *prefix = NULL;
	if (asprintf(&prefix, "%s-n", job_key) >= 0) /* the keys nest_new() makes */
		cache_discard_prefix(c, prefix);
	free(prefix);
}

/* Forgets the segments of a failed build: what the pass wrote is garbage. */
static void blob_discard(struct nest *n)
{
	for (size_t i = 0; i < SEG_MAX; i++) {
		char *key = NULL;
		if (n->seg[i] && asprintf(&key, "%s.%zu", n->key, i) >= 0)
			cache_entry_discard(job_cache(n->job), key);
		free(key);
	}
}

/* One pass over the archive am (its parent's blob whole and pinned meanwhile): its index and its
 * blob in the cache. *damaged: the pass failed with -EIO on the archive's own bytes, every one
 * of them got (the same bytes fail the same way again: worth remembering). */
static int nest_build(struct job *j, struct nest *parent, const struct zip_member *am,
		      const char *path, struct nest **out, bool *damaged)
{
	*damaged = false;
	struct nest *n = nest_new(j, parent, am, path);
	if (!n)
		return -ENOMEM;
	struct member_src ms;
	int err = parent ? blob_hold_whole(parent) : 0;
	bool parent_held = parent && !err;
	if (!err)
		err = member_src_open(n, &ms);
	if (!err) {
		struct unpack_limits lim = n->lim;
		lim.name = path; /* for the log lines of this pass */
		err = unpack_archive(am->size, member_read, &ms, first_pass_write, n, &lim,
				     &n->unpacked);
		*damaged = err == -EIO && ms.err == 0;
		zip_reader_free(ms.r);
	}
	if (parent_held)
		blob_unpin(parent);
	if (!err) /* the blob's end: its last block padded */
		blob_store(n, NULL, 0, unpack_blob_size(n->unpacked), true, true);
	blob_unpin(n);
	if (!err) {
		*out = n;
		return 0;
	}
	blob_discard(n);
	nest_put(n);
	return err;
}

/* ---- the set: single flight, least recently used out ---- */

/* The job's attachment's destructor: puts every nest. */
static void set_free(void *p)
{
	struct nest_set *s = p;
	for (size_t i = 0; i < NEST_DEPTH_MAX; i++) {
		nest_put(s->s[i].n);
		free(s->s[i].path);
	}
	for (size_t i = 0; i < REFUSED_MAX; i++)
		free(s->refused[i]);
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
	for (size_t i = 0; i < NEST_DEPTH_MAX; i++)
		if (s->s[i].path && strcmp(s->s[i].path, path) == 0)
			return &s->s[i];
	return NULL;
}

/* Whether x holds parent or one of the levels above it. */
static bool holds_ancestor(const struct slot *x, const struct nest *parent)
{
	for (const struct nest *p = parent; p && x->n; p = p->parent)
		if (p == x->n)
			return true;
	return false;
}

/* A free slot for a nest inside parent (NULL: a member of the artifacts), after making room:
 * while NEST_SET_MAX slots are in use, the least recently used one that is neither loading nor
 * one of the walk's own levels goes (its nest to old[]). Past that the set grows, up to
 * NEST_DEPTH_MAX: a walk deeper than NEST_SET_MAX keeps all its levels. NULL when every slot is
 * taken. Lock held. */
static struct slot *slot_take(struct nest_set *s, const struct nest *parent,
			      struct nest *old[NEST_DEPTH_MAX], size_t *n_old)
{
	size_t used = 0;
	struct slot *free_slot = NULL;
	for (size_t i = 0; i < NEST_DEPTH_MAX; i++) {
		used += s->s[i].path != NULL;
		if (!s->s[i].path && !free_slot)
			free_slot = &s->s[i];
	}
	for (; used >= NEST_SET_MAX; used--) {
		struct slot *best = NULL;
		for (size_t i = 0; i < NEST_DEPTH_MAX; i++) {
			struct slot *x = &s->s[i];
			if (x->path && !x->loading && !holds_ancestor(x, parent) &&
			    (!best || x->used < best->used))
				best = x;
		}
		if (!best)
			break;
		old[(*n_old)++] = best->n;
		free(best->path);
		memset(best, 0, sizeof(*best));
		free_slot = free_slot ? free_slot : best;
	}
	return free_slot;
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

/* The error path was refused with (-EFBIG, -EIO), or 0. */
static int refused(const struct nest_set *s, const char *path)
{
	for (size_t i = 0; i < REFUSED_MAX; i++)
		if (s->refused[i] && strcmp(s->refused[i], path) == 0)
			return s->refused_err[i];
	return 0;
}

/* Ends the load of path in slot x (NULL: the load had no slot, every one was loading). damaged:
 * an -EIO that is the archive's own. */
static void slot_fill(struct nest_set *s, struct slot *x, const char *path, struct nest *n, int err,
		      bool damaged)
{
	pthread_mutex_lock(&s->lock);
	bool bad = err == -EFBIG || damaged;    /* what the member is, not how it went */
	char *keep = bad ? strdup(path) : NULL; /* on ENOMEM only not remembered */
	if (keep) {
		free(s->refused[s->refused_next]);
		s->refused[s->refused_next] = keep;
		s->refused_err[s->refused_next] = err;
		s->refused_next = (s->refused_next + 1) % REFUSED_MAX;
	}
	if (x && (!err || err == -ENOENT || bad)) {
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
	struct nest *old[NEST_DEPTH_MAX];
	size_t n_old = 0;
	int err = 0;
	if (!s)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	if (slot_wait(s, path, out, &err)) {
		pthread_mutex_unlock(&s->lock);
		return err;
	}
	if ((err = refused(s, path)) != 0) {
		pthread_mutex_unlock(&s->lock);
		*out = NULL;
		return err;
	}
	struct slot *x = slot_take(s, parent, old, &n_old);
	if (x && (x->path = strdup(path))) {
		x->loading = true;
		x->used = ++s->clock;
	} else {
		x = NULL; /* built without being remembered */
	}
	pthread_mutex_unlock(&s->lock);
	while (n_old > 0)
		nest_put(old[--n_old]);
	bool damaged;
	err = nest_build(j, parent, am, path, out, &damaged);
	slot_fill(s, x, path, err ? NULL : *out, err, damaged);
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

/* readahead: read-ahead for one open file, as parallel ranged fetches on the mount's pool.
 *
 * Invariants: gen changes on every seek and on close, and a task of an older gen does nothing
 * or stops at its next bytes, so a reader never keeps fetching what nobody will read. Read-ahead
 * into the cache goes in CHUNK_BYTES requests, at most `connections` of them queued or running
 * per reader. Past the cache (streaming), the window is a list of slices in offset order, each
 * filled by one task; a slice removed while its task runs is freed by that task (dropped). All
 * slices of all readers together stay within WINDOW_BUDGET bytes (env->window_bytes); a reader
 * that finds no room reads straight into its caller's buffer. */
#include "artifactfs/readahead.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "artifactfs/intr.h"
#include "artifactfs/log.h"

#define AHEAD_MIN (512u << 10) /* the first read-ahead of a sequential reader */
#define CHUNK_BYTES (4u << 20) /* one ranged request of read-ahead into the cache */
#define SLICE_BYTES (2u << 20) /* one ranged request of a window past the cache */
#define NEAR_BYTES \
	(4u << 20) /* the kernel keeps up to 12 reads of 128 KiB in flight, in any
                                     order: this close to the last read's end is sequential */
#define KERNEL_READ \
	(64u << 10)               /* reads this large are the kernel's read-ahead; a smaller one
                                     past the last read's end is a program skipping bytes */
#define WINDOW_BUDGET (32u << 20) /* all windows past the cache together (peak RSS) */

enum slice_state {
	SLICE_FETCHING,
	SLICE_READY,
	SLICE_FAILED
};

struct slice {
	struct slice *next; /* protected by r->lock */
	uint64_t off, len;
	unsigned char *buf;     /* mmap'ed: given back to the system at once when freed */
	enum slice_state state; /* protected by r->lock */
	int err;                /* protected by r->lock */
	char why[400];          /* protected by r->lock: the failure's reason, told on the pool
				    * thread that fetched (reasons are per thread, log.h) */
	bool dropped;           /* protected by r->lock: out of the list; the task frees it */
	atomic_uint stop;       /* 1: its fetch stops */
};

struct readahead {
	atomic_int refs; /* the opener's, and one per queued or running task */
	struct job *job; /* held */
	struct job_env *env;
	struct cache_entry *entry; /* borrowed from job */
	uint64_t start, end;       /* read ahead only within these */
	unsigned conns;
	atomic_uint gen; /* changes on a seek and on close */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool seen;            /* protected by lock: a read came already */
	uint64_t next_off;    /* protected by lock: where a sequential read goes on */
	uint64_t ahead;       /* protected by lock: read-ahead bytes; 0 for a random reader */
	uint64_t grow_at;     /* protected by lock: where the reader has read half of it */
	uint64_t queued_to;   /* protected by lock: end of the read-ahead queued */
	unsigned tasks;       /* protected by lock: read-ahead tasks queued or running */
	bool streaming;       /* protected by lock: the cache had no room */
	bool said;            /* protected by lock: the log says so */
	struct slice *slices; /* protected by lock: the window past the cache */
	unsigned n_slices;    /* protected by lock */
	uint64_t slices_to;   /* protected by lock: end of the last slice */
	unsigned char *spare; /* protected by lock: buffers of freed slices, linked through their
				 first bytes, still counted in env->window_bytes */
	unsigned n_spare;     /* protected by lock */
};

static void spares_free(struct readahead *r)
{
	while (r->spare) {
		unsigned char *buf = r->spare;
		memcpy(&r->spare, buf, sizeof(r->spare));
		munmap(buf, SLICE_BYTES);
		atomic_fetch_sub(&r->env->window_bytes, SLICE_BYTES);
	}
	r->n_spare = 0;
}

static void reader_put(struct readahead *r)
{
	if (atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	spares_free(r);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	job_put(r->job);
	free(r);
}

int readahead_new(struct job *j, uint64_t start, uint64_t end, struct readahead **out)
{
	struct readahead *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	int err = job_cache_entry(j, &r->entry);
	if (err) {
		free(r);
		return err;
	}
	cache_entry_hold(r->entry); /* the file's flock() stays between its reads */
	atomic_init(&r->refs, 1);
	atomic_init(&r->gen, 0);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->job = job_hold(j);
	r->env = job_env_of(j);
	r->start = start;
	r->end = end < job_size(j) ? end : job_size(j);
	r->conns = job_connections(j);
	*out = r;
	return 0;
}

/* ---- the window past the cache ---- */

static bool budget_take(struct job_env *env)
{
	uint64_t used = atomic_load(&env->window_bytes);
	do {
		if (used + SLICE_BYTES > WINDOW_BUDGET)
			return false;
	} while (!atomic_compare_exchange_weak(&env->window_bytes, &used, used + SLICE_BYTES));
	return true;
}

/* Keeps the buffer for the reader's next slice (lock held): a fresh mapping costs a page fault
 * per 4 KiB at first touch, which made reading past the cache twice as slow as through it.
 * Slices and spares together stay within one per connection, as slices alone did (RSS). */
static void slice_free(struct readahead *r, struct slice *s)
{
	if (r->n_slices + r->n_spare < r->conns) {
		memcpy(s->buf, &r->spare, sizeof(r->spare));
		r->spare = s->buf;
		r->n_spare++;
	} else {
		munmap(s->buf, SLICE_BYTES);
		atomic_fetch_sub(&r->env->window_bytes, SLICE_BYTES);
	}
	free(s);
}

/* A slice buffer: a spare, else a new mapping within the budget (lock held); NULL if none. */
static unsigned char *buf_take(struct readahead *r)
{
	unsigned char *buf = r->spare;
	if (buf) {
		memcpy(&r->spare, buf, sizeof(r->spare));
		r->n_spare--;
		return buf;
	}
	if (!budget_take(r->env))
		return NULL;
	buf = mmap(NULL, SLICE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf != MAP_FAILED)
		return buf;
	atomic_fetch_sub(&r->env->window_bytes, SLICE_BYTES);
	return NULL;
}

/* Takes s out of the window (lock held): freed now, or by its task when it ends. */
static void slice_drop(struct readahead *r, struct slice *s)
{
	for (struct slice **pp = &r->slices; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	r->n_slices--;
	if (s->state == SLICE_FETCHING) {
		s->dropped = true;
		atomic_store(&s->stop, 1);
	} else {
		slice_free(r, s);
	}
}

static void drop_all(struct readahead *r)
{
	while (r->slices)
		slice_drop(r, r->slices);
}

struct slice_task {
	struct readahead *r;
	struct slice *s;
};

static void slice_end(struct slice_task *t, int err, const char *why)
{
	struct readahead *r = t->r;
	struct slice *s = t->s;
	pthread_mutex_lock(&r->lock);
	if (s->dropped) {
		slice_free(r, s);
	} else {
		s->state = err ? SLICE_FAILED : SLICE_READY;
		s->err = err;
		snprintf(s->why, sizeof(s->why), "%s", why);
		pthread_cond_broadcast(&r->cond);
	}
	pthread_mutex_unlock(&r->lock);
	reader_put(r);
	free(t);
}

static void slice_run(void *p)
{
	struct slice_task *t = p;
	log_clear_reason();
	ssize_t n = job_fetch(t->r->job, t->s->buf, t->s->len, t->s->off, &t->s->stop, 0);
	slice_end(t, n < 0 ? (int)n : 0, log_reason());
}

static void slice_cancel(void *p)
{
	slice_end(p, -ECANCELED, "cancelled: the mount is going away");
}

/* Queues the next slice of the window (lock held); false when there is no room or no task. */
static bool slice_add(struct readahead *r)
{
	struct slice *s = calloc(1, sizeof(*s));
	struct slice_task *t = malloc(sizeof(*t));
	unsigned char *buf = s && t ? buf_take(r) : NULL;
	if (!buf) {
		free(s);
		free(t);
		return false;
	}
	s->buf = buf;
	s->off = r->slices_to;
	s->len = r->end - s->off < SLICE_BYTES ? r->end - s->off : SLICE_BYTES;
	atomic_init(&s->stop, 0);
	atomic_fetch_add(&r->refs, 1);
	*t = (struct slice_task){r, s};
	struct slice **pp = &r->slices;
	while (*pp)
		pp = &(*pp)->next;
	*pp = s;
	r->n_slices++;
	r->slices_to += s->len;
	if (job_submit(r->job, slice_run, slice_cancel, t)) {
		s->state = SLICE_FAILED;
		s->err = -EIO;
		snprintf(s->why, sizeof(s->why),
			 "no worker thread to fetch %" PRIu64 " bytes at %" PRIu64, s->len, s->off);
		atomic_fetch_sub(&r->refs, 1);
		free(t);
	}
	return true;
}

/* Keeps the window `conns` slices long from the reader's position on (lock held). */
static void window_fill(struct readahead *r)
{
	while (r->n_slices < r->conns && r->slices_to < r->end && slice_add(r))
		;
}

/* The slice holding off, the window moved there first (lock held); NULL when none can be had. */
static struct slice *window_at(struct readahead *r, uint64_t off)
{
	while (r->slices && r->slices->off + r->slices->len <= off)
		slice_drop(r, r->slices); /* read already */
	if (r->slices && r->slices->off > off)
		drop_all(r); /* a step back: start anew */
	if (!r->slices)
		r->slices_to = off;
	window_fill(r);
	struct slice *s = r->slices;
	return s && s->off <= off && off < s->off + s->len ? s : NULL;
}

/* Copies [off, off+len) out of the window as far as it can; the rest is left to the caller. */
static int window_read(struct readahead *r, unsigned char *buf, size_t len, uint64_t off,
		       size_t *done)
{
	int err = 0;
	*done = 0;
	pthread_mutex_lock(&r->lock);
	while (!err && *done < len) {
		struct slice *s = window_at(r, off + *done);
		if (!s)
			break;
		if (s->state == SLICE_FETCHING) { /* the pool's fetch goes on for later reads */
			err = intr_cond_wait(&r->cond, &r->lock);
			continue;
		}
		if (s->state == SLICE_FAILED) {
			err = s->err;
			log_set_reason("%s", s->why); /* this thread's failure now */
			slice_drop(r, s);
			break;
		}
		uint64_t at = off + *done - s->off;
		size_t n = len - *done < s->len - at ? len - *done : (size_t)(s->len - at);
		memcpy(buf + *done, s->buf + at, n);
		*done += n;
	}
	pthread_mutex_unlock(&r->lock);
	return err;
}

/* ---- read-ahead into the cache ---- */

struct ahead_task {
	struct readahead *r;
	unsigned gen;
	uint64_t off, len;
};

static void ahead_end(struct ahead_task *t, int err)
{
	struct readahead *r = t->r;
	pthread_mutex_lock(&r->lock);
	r->tasks--;
	if (err == -ENOSPC)
		r->streaming = true; /* the reader learns it at its next read */
	pthread_mutex_unlock(&r->lock);
	reader_put(r);
	free(t);
}

static void ahead_run(void *p)
{
	struct ahead_task *t = p;
	int err = 0;
	if (atomic_load(&t->r->gen) == t->gen) {
		job_set_stop(&t->r->gen, t->gen);
		err = cache_entry_prefetch(t->r->entry, t->off, t->len);
		job_set_stop(NULL, 0);
	}
	ahead_end(t, err);
}

static void ahead_cancel(void *p)
{
	ahead_end(p, 0);
}

/* Queues whole chunks of read-ahead up to `to` (lock held), skipping what is cached. */
static void queue_ahead(struct readahead *r, uint64_t from, uint64_t to)
{
	if (r->queued_to < from)
		r->queued_to = from;
	if (to > r->end)
		to = r->end;
	while (r->queued_to < to && r->tasks < r->conns) {
		uint64_t len =
			r->end - r->queued_to < CHUNK_BYTES ? r->end - r->queued_to : CHUNK_BYTES;
		if (to - r->queued_to < len)
			break; /* no small requests at the window's edge: it grows soon */
		uint64_t off = r->queued_to;
		r->queued_to += len;
		if (cache_entry_has(r->entry, off, len))
			continue;
		struct ahead_task *t = malloc(sizeof(*t));
		if (!t)
			return;
		*t = (struct ahead_task){r, atomic_load(&r->gen), off, len};
		atomic_fetch_add(&r->refs, 1);
		r->tasks++;
		if (job_submit(r->job, ahead_run, ahead_cancel, t)) {
			r->tasks--;
			atomic_fetch_sub(&r->refs, 1);
			free(t);
			return;
		}
	}
}

/* Updates the access pattern with a read of [off, off+len) (lock held); returns the
 * read-ahead the reader has earned. */
static uint64_t plan(struct readahead *r, uint64_t off, size_t len)
{
	uint64_t skip = len >= KERNEL_READ ? NEAR_BYTES : 0;
	bool seq = r->seen && off + NEAR_BYTES >= r->next_off && off <= r->next_off + skip;
	/* room for a chunk on every connection, past what the read fetches itself */
	uint64_t max = (uint64_t)r->conns * CHUNK_BYTES + AHEAD_MIN;
	if (!r->seen) {
		r->ahead = off == r->start ? AHEAD_MIN : 0;
		r->grow_at = off + r->ahead / 2;
	} else if (seq && (r->ahead == 0 || off + len >= r->grow_at)) {
		/* it keeps pace: it has read half of the window since the window last grew */
		r->ahead = r->ahead * 2 < AHEAD_MIN ? AHEAD_MIN : r->ahead * 2;
		r->ahead = r->ahead < max ? r->ahead : max;
		r->grow_at = off + len + r->ahead / 2;
	} else if (!seq) { /* a seek: what was fetched ahead for the old place is of no use */
		r->ahead = 0;
		r->queued_to = 0;
		atomic_fetch_add(&r->gen, 1);
		drop_all(r);
	}
	r->next_off = seq && r->next_off > off + len ? r->next_off : off + len;
	r->seen = true;
	return r->ahead;
}

/* The cache has no room for what this reader reads (lock not held): one line says so. */
static void start_streaming(struct readahead *r)
{
	pthread_mutex_lock(&r->lock);
	bool first = !r->said;
	r->streaming = r->said = true;
	pthread_mutex_unlock(&r->lock);
	if (first)
		log_msg(LOG_INFO,
			"no room in the cache for the %" PRIu64 " bytes being read: "
			"they are read without being cached",
			r->end - r->start);
}

/* Past the cache: cached bytes from the cache, the rest from the window or straight. */
static ssize_t read_streaming(struct readahead *r, unsigned char *buf, size_t len, uint64_t off,
			      uint64_t ahead)
{
	if (cache_entry_has(r->entry, off, len)) {
		ssize_t n = cache_entry_pread(r->entry, buf, len, off, 0);
		if (n != -ENOSPC)
			return n;
	}
	size_t done = 0;
	if (ahead && off < r->end) {
		int err = window_read(r, buf, len, off, &done);
		if (err)
			return err;
	}
	if (done == len)
		return (ssize_t)len;
	ssize_t n = job_fetch(r->job, buf + done, len - done, off + done, NULL, 0);
	return n < 0 ? n : (ssize_t)done + n;
}

ssize_t readahead_pread(struct readahead *r, void *buf, size_t len, uint64_t off)
{
	uint64_t size = job_size(r->job);
	if (off >= size || len == 0)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	pthread_mutex_lock(&r->lock);
	uint64_t ahead = plan(r, off, len);
	/* the read itself fetches a little; the rest of the window comes in parallel chunks */
	uint64_t own = ahead < AHEAD_MIN ? ahead : AHEAD_MIN;
	if (off + own > r->end)
		own = r->end > off ? r->end - off : 0;
	bool streaming = r->streaming;
	if (!streaming && ahead)
		queue_ahead(r, off + own, off + ahead);
	pthread_mutex_unlock(&r->lock);
	if (!streaming) {
		ssize_t n = cache_entry_pread(r->entry, buf, len, off, own);
		if (n != -ENOSPC)
			return n;
		atomic_fetch_add(&r->gen, 1); /* read-ahead into the cache would only fail too */
	}
	start_streaming(r);
	return read_streaming(r, buf, len, off, ahead);
}

void readahead_free(struct readahead *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	atomic_fetch_add(&r->gen, 1);
	drop_all(r);
	pthread_mutex_unlock(&r->lock);
	cache_entry_unhold(r->entry); /* tasks still running are calls of their own */
	reader_put(r);
}

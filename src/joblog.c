/* joblog: a finished job's log (GET /jobs/:id/trace), as <job>.log in a set and -/jobs/<id>.log.
 * GitLab sends no length for a trace and takes no Range, so nothing is fetched to answer a stat:
 * a log's size is 0 (unknown, as /proc files say) until this mount has read it to its end or
 * finds it whole in the cache, then exact. Open files of logs are read with direct I/O (fs.c),
 * so the kernel reads on to the end whatever size it was told.
 *
 * Reading: a log whose size is known is read through its own cache entry (key "l<origin>-<id>",
 * shared by every mount of the instance), filled by one whole fetch of the trace; a finished
 * job's log never changes, and one that comes back with another length fails with EIO. A log of
 * unknown size, or one that does not fit the cache, is streamed: each open file runs one GET in
 * a thread of its own that keeps at most LOG_WINDOW bytes in memory, waiting while the reader is
 * behind; a read before the window starts the GET again from the beginning. A streamed log that
 * fits the window is stored in the cache once read to its end, so small logs are fetched once.
 *
 * The memo table remembers each log for the TTL (MEMO_LOG). Whether a log exists is the job's
 * info, asked again after the TTL like artifacts: a running job, an erased one (GitLab's remedy
 * for a secret leaked in a log: its cache entry is removed at once), a job known by ref only (no
 * id to ask for) give ENOENT, and a token that may not read the trace fails the read (EACCES).
 * Also here: which jobs have a log at all (catalog_job_finished), for the listings. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/catalog.h"
#include "artifactfs/intr.h"
#include "artifactfs/log.h"
#include "artifactfs/memo.h"
#include "catalog_i.h"

#define LOG_WINDOW (8u * 1024u * 1024u) /* a streamed log's bytes in memory, per open file */

/* A job's log: where its bytes come from, and its size once known. */
struct job_log {
	struct memo_val v;
	const struct backend *be; /* borrowed from the catalog, which outlives every open file */
	struct cache *cache;
	char *project, *key;
	int64_t id;
	pthread_mutex_t lock;
	uint64_t size; /* protected by lock: the exact size when known */
	bool known;    /* protected by lock: read to its end, or found whole in the cache */
	bool too_big;  /* protected by lock: it does not fit the cache: stream it */
};

/* A finished job has a log that never changes (GitLab's completed statuses with a trace); an
 * erased job's is gone. */
bool catalog_job_finished(const struct gl_job *g)
{
	static const char *done[] = {"success", "failed", "canceled"};
	for (size_t i = 0; g->status && !g->erased && i < sizeof(done) / sizeof(done[0]); i++)
		if (strcmp(g->status, done[i]) == 0)
			return true;
	return false;
}

/* ---- job logs ---- */

static void log_destroy(struct memo_val *v)
{
	struct job_log *l = (struct job_log *)v;
	pthread_mutex_destroy(&l->lock);
	free(l->project);
	free(l->key);
	free(l);
}

static char *log_key(struct catalog *c, int64_t id)
{
	char *key = NULL;
	return asprintf(&key, "l%s-%" PRId64, c->origin, id) < 0 ? NULL : key;
}

/* A log's handle, without a request: its size is known when the cache holds it whole. */
static int load_log(void *arg, struct memo_val **out)
{
	struct load_arg *la = arg;
	struct catalog *c = la->c;
	struct job_log *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	memo_val_init(&l->v, log_destroy);
	pthread_mutex_init(&l->lock, NULL);
	l->be = c->be;
	l->cache = c->env.cache;
	l->id = la->id;
	l->project = strdup(la->project);
	l->key = log_key(c, la->id);
	if (!l->project || !l->key) {
		log_destroy(&l->v);
		return -ENOMEM;
	}
	struct cache_entry *e;
	if (cache_entry_get(l->cache, l->key, 0, &e) == 0) {
		l->size = cache_entry_size(e);
		l->known = cache_entry_has(e, 0, l->size);
		cache_entry_put(e);
	}
	*out = &l->v;
	return 0;
}

static int log_get(struct catalog *c, const char *project, int64_t job_id, const struct gl_job *g,
		   struct job_log **out)
{
	*out = NULL;
	if (c->no_logs)
		return -ENOENT; /* the server would answer 401 whatever the job */
	if (g->erased) {        /* its log is gone on the server: no copy of it stays here either */
		char *key = log_key(c, job_id);
		if (key)
			cache_entry_discard(c->env.cache, key);
		free(key);
	}
	if (!catalog_job_finished(g))
		return -ENOENT; /* a running job has no log yet, an erased one none any more */
	char id[24];
	snprintf(id, sizeof(id), "%" PRId64, job_id);
	struct load_arg la = {.c = c, .project = project, .id = job_id};
	struct memo_key key = {.kind = MEMO_LOG, .a = project, .b = id};
	struct memo_val *v;
	int err = memo_get(c->memo, &key, load_log, &la, &v);
	*out = err ? NULL : (struct job_log *)v;
	return err;
}

int catalog_job_log(struct catalog *c, struct job *j, struct job_log **out)
{
	struct gl_job g;
	*out = NULL;
	if (!job_is_by_id(j) || job_info(j, &g))
		return -ENOENT; /* known by ref only (a job token): no id to ask for */
	int err = log_get(c, job_project(j), job_id(j), &g, out);
	gl_job_release(&g);
	return err;
}

/* -/jobs/<id>.log: any finished job, with an archive or not. */
int catalog_log_by_id(struct catalog *c, const char *project, int64_t job_id, struct job_log **out,
		      char **finished_at)
{
	struct gl_job g = {0};
	struct job *j;
	*out = NULL;
	*finished_at = NULL;
	int err = catalog_job_by_id(c, project, job_id, &j);
	if (!err) {
		err = job_info(j, &g);
		job_put(j);
	} else if (err == -ENOENT) { /* no archive: the job itself may still have a log */
		err = c->be->job_get(c->be->ctx, project, job_id, &g);
	}
	if (!err)
		err = log_get(c, project, job_id, &g, out);
	if (!err && g.finished_at && !(*finished_at = strdup(g.finished_at))) {
		job_log_put(*out);
		*out = NULL;
		err = -ENOMEM;
	}
	gl_job_release(&g);
	return err == -EACCES ? -ENOENT : err;
}

uint64_t job_log_size(struct job_log *l)
{
	pthread_mutex_lock(&l->lock);
	uint64_t size = l->known ? l->size : 0;
	pthread_mutex_unlock(&l->lock);
	return size;
}

void job_log_put(struct job_log *l)
{
	memo_val_put(l ? &l->v : NULL);
}

/* ---- a log of known size, through the cache ---- */

/* Where a cached log's missing bytes come from: the whole trace again (no Range on traces). */
struct log_source {
	const struct backend *be;
	char *project;
	int64_t job_id;
};

struct fetch_sink {
	struct cache_writer *w;
	uint64_t got;
	bool longer; /* the trace went past the size it had */
};

static void log_source_free(void *ctx)
{
	struct log_source *ls = ctx;
	free(ls->project);
	free(ls);
}

static int fetch_body(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct fetch_sink *f = ctx;
	if (off + len > cache_writer_size(f->w)) {
		f->longer = true;
		return -EIO;
	}
	int err = cache_writer_write(f->w, off, buf, len);
	if (!err && off + len > f->got)
		f->got = off + len;
	return err;
}

static int log_fetch(void *ctx, struct cache_writer *w, uint64_t off, uint64_t len)
{
	struct log_source *ls = ctx;
	struct fetch_sink f = {.w = w};
	(void)off, (void)len;
	int err = ls->be->job_trace(ls->be->ctx, ls->project, ls->job_id, fetch_body, &f);
	if (f.longer || (!err && f.got != cache_writer_size(w))) {
		log_set_reason("job %" PRId64 ": its log is now %s than the %" PRIu64
			       " bytes it had",
			       ls->job_id, f.longer ? "longer" : "shorter", cache_writer_size(w));
		err = -EIO;
	}
	return err;
}

/* The log's cache entry, its source bound; NULL when its size is unknown or it does not fit. */
static struct cache_entry *log_entry(struct job_log *l)
{
	pthread_mutex_lock(&l->lock);
	bool use = l->known && !l->too_big && l->size > 0;
	uint64_t size = l->size;
	pthread_mutex_unlock(&l->lock);
	struct cache_entry *e = NULL;
	struct log_source *ls = use ? calloc(1, sizeof(*ls)) : NULL;
	if (!ls || !(ls->project = strdup(l->project)) ||
	    cache_entry_get(l->cache, l->key, size, &e)) {
		free(ls ? ls->project : NULL);
		free(ls);
		return NULL;
	}
	ls->be = l->be;
	ls->job_id = l->id;
	cache_entry_bind(e, &(struct cache_source){log_fetch, ls, log_source_free});
	return e;
}

/* ---- a log streamed past the cache ---- */

/* One GET of the trace, run by a thread of its own; the reader takes bytes out of its window. */
struct log_stream {
	pthread_t thread;
	bool running; /* a thread was started and not joined yet */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *buf; /* protected by lock: bytes [base, base + len) of the log */
	size_t len, cap;
	uint64_t base;
	uint64_t want; /* protected by lock: the reader's position (bytes before it may go) */
	bool done;     /* protected by lock: the GET has ended, with err */
	bool cancel;   /* protected by lock: the reader is gone or starts again */
	int err;
	char why[400]; /* the failed GET's reason, for the reader's error line */
};

struct log_reader {
	struct job_log *l;     /* a reference */
	struct cache_entry *e; /* the log through the cache, else NULL */
	bool streaming;        /* reads go to the stream */
	bool learned;          /* its stream read the log to the end: the size is known now */
	pthread_mutex_t lock;  /* busy */
	pthread_cond_t cond;
	bool busy; /* protected by lock: a read runs (reads take turns) */
	struct log_stream s;
};

/* Makes room in the window: drops what the reader is well past (half a window behind it stays,
 * for reads that arrive a little out of order). False when nothing can go yet. */
static bool window_room(struct log_stream *s)
{
	if (s->len < s->cap)
		return true;
	if (s->cap < LOG_WINDOW) {
		size_t cap = s->cap ? s->cap * 2 : 64 * 1024;
		char *b = realloc(s->buf, cap);
		if (b) {
			s->buf = b;
			s->cap = cap;
			return true;
		}
		s->err = -ENOMEM;
		return false;
	}
	uint64_t keep = s->want > LOG_WINDOW / 2 ? s->want - LOG_WINDOW / 2 : 0;
	if (keep <= s->base)
		return false;
	size_t drop = keep - s->base < s->len ? (size_t)(keep - s->base) : s->len;
	memmove(s->buf, s->buf + drop, s->len - drop);
	s->len -= drop;
	s->base += drop;
	return true;
}

/* The GET's bytes into the window. Positional: a retry starts from 0 again, and what the
 * window already had is skipped. */
static int stream_body(void *ctx, uint64_t off, const void *data, size_t n)
{
	struct log_stream *s = ctx;
	const char *p = data;
	int err = 0;
	pthread_mutex_lock(&s->lock);
	uint64_t next = s->base + s->len;
	if (off > next)
		err = -EIO; /* a gap: never sent by a sane server */
	if (!err && off + n > next) {
		p += next - off;
		n -= (size_t)(next - off);
	} else {
		n = 0;
	}
	while (!err && n > 0) {
		if (s->cancel)
			err = -ECANCELED;
		else if (!window_room(s))
			err = s->err == -ENOMEM ? -ENOMEM : pthread_cond_wait(&s->cond, &s->lock);
		else {
			size_t k = s->cap - s->len < n ? s->cap - s->len : n;
			memcpy(s->buf + s->len, p, k);
			s->len += k;
			p += k;
			n -= k;
			pthread_cond_broadcast(&s->cond);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return err;
}

/* The log was read to its end: its size is known from now on, and one that was kept whole in
 * the window goes to the cache, so the next reader fetches nothing. */
static void stream_learned(struct job_log *l, struct log_stream *s)
{
	uint64_t size = s->base + s->len;
	pthread_mutex_lock(&l->lock);
	l->size = size;
	l->known = true;
	pthread_mutex_unlock(&l->lock);
	struct cache_entry *e;
	if (s->base == 0 && size > 0 && !cache_entry_get(l->cache, l->key, size, &e)) {
		if (cache_entry_write(e, 0, s->buf, s->len) == -ENOSPC) {
			pthread_mutex_lock(&l->lock);
			l->too_big = true;
			pthread_mutex_unlock(&l->lock);
		}
		cache_entry_put(e);
	}
}

/* The GET's question (intr.h): its reader is gone or starts again. Asked by curl's progress
 * callback at least once a second, so stream_stop() is not held by a server that stalled
 * mid-body until the low-speed timeout ends the transfer. */
static bool stream_cancelled(void *ctx)
{
	struct log_stream *s = ctx;
	pthread_mutex_lock(&s->lock);
	bool cancel = s->cancel;
	pthread_mutex_unlock(&s->lock);
	return cancel;
}

static void *stream_main(void *arg)
{
	struct log_reader *r = arg;
	struct log_stream *s = &r->s;
	log_clear_reason();
	intr_begin(stream_cancelled, s);
	int err = r->l->be->job_trace(r->l->be->ctx, r->l->project, r->l->id, stream_body, s);
	intr_end();
	pthread_mutex_lock(&s->lock);
	snprintf(s->why, sizeof(s->why), "%s", log_reason());
	s->err = err;
	pthread_mutex_unlock(&s->lock);
	if (!err) /* the window no longer changes: read outside the lock */
		stream_learned(r->l, s);
	pthread_mutex_lock(&s->lock);
	s->done = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Ends the GET (if one runs) and forgets its bytes. */
static void stream_stop(struct log_stream *s)
{
	pthread_mutex_lock(&s->lock);
	s->cancel = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->running)
		pthread_join(s->thread, NULL);
	s->running = false;
	s->cancel = s->done = false;
	s->base = s->want = 0;
	s->len = 0;
	s->err = 0;
	s->why[0] = '\0';
}

static ssize_t stream_pread(struct log_reader *r, char *buf, size_t len, uint64_t off)
{
	struct log_stream *s = &r->s;
	if (len > LOG_WINDOW / 4)
		len = LOG_WINDOW /
		      4; /* what the window surely holds past the reader: a short read */
	pthread_mutex_lock(&s->lock);
	bool again = s->running && off < s->base;
	pthread_mutex_unlock(&s->lock);
	if (again) /* those bytes are gone: start from the beginning */
		stream_stop(s);
	pthread_mutex_lock(&s->lock);
	if (!s->running) {
		int err = pthread_create(&s->thread, NULL, stream_main, r);
		if (err) {
			pthread_mutex_unlock(&s->lock);
			return -err;
		}
		s->running = true;
	}
	s->want = off;
	pthread_cond_broadcast(&s->cond);
	while (!s->done && s->base + s->len < off + len)
		pthread_cond_wait(&s->cond, &s->lock);
	ssize_t n;
	uint64_t end = s->base + s->len;
	if (off < s->base)
		n = -EIO; /* cannot be: reads take turns and the window keeps what is behind them */
	else if (end >= off + len || (s->done && !s->err))
		n = (ssize_t)(end > off ? (end - off < len ? end - off : len) : 0);
	else
		n = s->err ? s->err : -EIO;
	if (n > 0)
		memcpy(buf, s->buf + (off - s->base), (size_t)n);
	if (n == 0 && s->done)
		r->learned = true;
	if (n < 0 && s->why[0])
		log_set_reason("%s", s->why);
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- open files of logs ---- */

int job_log_open(struct job_log *l, struct log_reader **out)
{
	struct log_reader *r = calloc(1, sizeof(*r));
	*out = NULL;
	if (!r) {
		job_log_put(l);
		return -ENOMEM;
	}
	r->l = l;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	pthread_mutex_init(&r->s.lock, NULL);
	pthread_cond_init(&r->s.cond, NULL);
	*out = r;
	return 0;
}

ssize_t log_reader_pread(struct log_reader *r, void *buf, size_t len, uint64_t off)
{
	pthread_mutex_lock(&r->lock);
	while (r->busy)
		pthread_cond_wait(&r->cond, &r->lock);
	r->busy = true;
	pthread_mutex_unlock(&r->lock);
	ssize_t n = 0;
	if (!r->streaming && !r->e && !(r->e = log_entry(r->l)))
		r->streaming = true;
	if (!r->streaming) {
		uint64_t size = cache_entry_size(r->e);
		n = off >= size ? 0 : cache_entry_pread(r->e, buf, len, off, size);
		if (n == -ENOSPC) { /* bigger than the cache can hold: past it */
			pthread_mutex_lock(&r->l->lock);
			r->l->too_big = true;
			pthread_mutex_unlock(&r->l->lock);
			r->streaming = true;
		}
	}
	if (r->streaming)
		n = stream_pread(r, buf, len, off);
	pthread_mutex_lock(&r->lock);
	r->busy = false;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return n;
}

bool log_reader_learned(struct log_reader *r)
{
	pthread_mutex_lock(&r->lock);
	bool learned = r->learned;
	r->learned = false;
	pthread_mutex_unlock(&r->lock);
	return learned;
}

void log_reader_free(struct log_reader *r)
{
	if (!r)
		return;
	stream_stop(&r->s);
	free(r->s.buf);
	cache_entry_put(r->e);
	job_log_put(r->l);
	pthread_mutex_destroy(&r->s.lock);
	pthread_cond_destroy(&r->s.cond);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}

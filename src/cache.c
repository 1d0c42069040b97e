/* cache: the entries of the on-disk cache, the calls on them and their single flight; the
 * public calls of include/artifactfs/cache.h but cache_drop() and cache_get_stats(), which are
 * cachespace.c's (the folder, its count and eviction); the file format is cachefile.c's. An
 * entry is one archive's file, open and shared by every thread that holds a reference. A call
 * on it (a read, a fetch, a write, an invalidation) holds the file's shared flock() while any
 * runs (taken by the first under io_lock), so eviction in any process passes it by; an idle
 * file may be evicted meanwhile, and the next call finds its file unlinked and makes it anew.
 * A file open through the mount holds its entry (cache_entry_hold): the flock() stays from its
 * first call to the end of the last hold, not taken and dropped by each call (on CephFS each
 * flock() is a round trip to the metadata server: a 128 MiB read made 502, now 12),
 * so other processes pass a held file by as in use; this process's own eviction (a write
 * making room, cache_drop) lets go of a held file that no call runs on (cachespace.c let_go),
 * which its next call then finds evicted, as any idle file.
 * A block's bytes are written before its checksum and its checksum before its map byte, and map
 * bytes are written one by one (no read-modify-write), so any process, or a daemon killed at any
 * moment, sees a block as present only when all of it and its checksum are on disk; every block
 * read from disk is checked against its checksum at every read before it is served (another
 * machine may have written it since), and a block that fails is dropped and fetched again. Bytes are counted against the limit before they are
 * written (cachespace_reserve), each block once. Concurrent reads of the same missing blocks
 * cause one fetch (inflight marks them; the others wait on the entry's condition variable); across
 * processes and machines a fetch claims its blocks with an OFD lock on their map bytes
 * (claim_run), and no lock is held while a fetch runs but the file's shared flock() and that.
 * Each open entry keeps a bit per block saying whether this process marked it present, so that
 * a read from the cache counts as this mount's own fetch or as the folder's sharing (the
 * statistics only: nothing is decided by it). Lock order: see cache.h. */
#include "cache_i.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "artifactfs/crc.h"
#include "artifactfs/intr.h"
#include "artifactfs/log.h"

/* Checksums of blocks [first, first + n), taken from the bytes as they were handed to store()
 * (have[i] says which), so that marking needs not read them back. Owned by the caller. */
struct block_sums {
	uint64_t first;
	size_t n;
	uint32_t *sum;
	unsigned char *have;
};

/* Bytes on their way from one fetch into the entry: gathered into large page-aligned writes
 * (written as curl hands them over, a few KiB at a time, each would lock the entry twice and make
 * the kernel zero the rest of every page it starts), and the ranges stored, marked present only
 * when the fetch succeeds. */
#define WRITER_BYTES (256u << 10)
struct cache_writer {
	struct cache_entry *e;
	uint64_t off; /* of buf[0] */
	size_t len, cap;
	unsigned char *buf; /* NULL (no memory): every piece is stored as it comes */
	struct run *done;   /* ranges stored on disk, not yet marked */
	size_t n_done;
	struct block_sums sums; /* of the blocks of the asked range stored whole */
};

static struct cache_entry *entry_new(struct cache *c, const char *key, int fd, uint64_t size)
{
	struct cache_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->c = c;
	e->fd = fd;
	e->size = size;
	e->nblocks = (size_t)((size + BLOCK - 1) / BLOCK);
	e->sums_off = HEADER_LEN + map_len(size);
	e->data_off = meta_len(size);
	e->refs = 1;
	pthread_mutex_init(&e->io_lock, NULL);
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	e->key = strdup(key);
	e->map = calloc(e->nblocks + 1, 1);
	e->inflight = calloc(e->nblocks + 1, 1);
	e->accounted = calloc(e->nblocks + 1, 1);
	e->own = calloc(e->nblocks / 8 + 1, 1);
	if (!e->key || !e->map || !e->inflight || !e->accounted || !e->own ||
	    (e->nblocks && cachefile_read_fresh(c, fd, e->map, e->nblocks, HEADER_LEN))) {
		free(e->key);
		free(e->map);
		free(e->inflight);
		free(e->accounted);
		free(e->own);
		free(e);
		return NULL;
	}
	return e;
}

static void entry_free(struct cache_entry *e)
{
	if (e->src.release)
		e->src.release(e->src.ctx);
	close(e->fd);
	pthread_mutex_destroy(&e->io_lock);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->cond);
	free(e->runs);
	free(e->map);
	free(e->inflight);
	free(e->accounted);
	free(e->own);
	free(e->key);
	free(e);
}

/* ---- calls on an entry: the file's shared flock() while any runs ---- */

/* Opens e's file anew: it was evicted while idle (emptied and unlinked). What it held is fetched
 * again. io_lock held, no call running. */
static int revive(struct cache_entry *e, const char *key)
{
	struct cache *c = e->c;
	int fd;
	uint64_t size, reserved;
	/* with its shared flock() */
	int err = cachespace_open_file(c, key, e->size, &fd, &size, &reserved);
	if (err)
		return err;
	cachespace_revived(e, reserved);
	pthread_mutex_lock(&e->lock);
	close(e->fd);
	e->fd = fd;
	/* another process may have made and filled it already */
	if (cachefile_read_fresh(c, fd, e->map, e->nblocks, HEADER_LEN))
		memset(e->map, 0, e->nblocks);
	memset(e->accounted, 0, e->nblocks);
	memset(e->own, 0, e->nblocks / 8 + 1);
	e->n_runs = 0;
	pthread_mutex_unlock(&e->lock);
	log_msg(LOG_DEBUG, "cache: %s was evicted while idle; made anew", key);
	return 0;
}

/* Starts a call on e's file: the first, unless a hold kept it, takes its shared flock() and,
 * when the file was evicted meanwhile, makes it anew (a held file cannot have been: its flock()
 * kept other processes' eviction off, and this process's lets go of it first). Returns 0 (then
 * entry_leave()) or -errno. */
static int entry_enter(struct cache_entry *e)
{
	int err = 0;
	pthread_mutex_lock(&e->io_lock);
	if (!e->locked) {
		while (flock(e->fd, LOCK_SH) && errno == EINTR)
			;
		struct stat st;
		char key[256] = "";
		cachespace_key(e, key, sizeof(key)); /* "" once discarded: read on, unlinked */
		if (key[0] && fstat(e->fd, &st) == 0 && st.st_nlink == 0)
			err = revive(e, key);
		if (err)
			flock(e->fd, LOCK_UN);
		e->locked = !err;
	}
	if (!err)
		e->active++;
	pthread_mutex_unlock(&e->io_lock);
	return err;
}

/* io_lock held */
static void entry_unlock_idle(struct cache_entry *e)
{
	if (e->active == 0 && e->holds == 0 && e->locked) {
		flock(e->fd, LOCK_UN);
		e->locked = false;
	}
}

static void entry_leave(struct cache_entry *e)
{
	pthread_mutex_lock(&e->io_lock);
	e->active--;
	entry_unlock_idle(e);
	pthread_mutex_unlock(&e->io_lock);
}

int cache_open(const char *dir, uint64_t limit_bytes, struct cache **out)
{
	struct cache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->folder_lock, NULL);
	pthread_mutex_init(&c->lock, NULL);
	c->limit = limit_bytes;
	c->fetch_wait_s = 30;
	c->vfd = c->lockfd = -1;
	int err = cachefile_open_folder(c, dir);
	if (!err)
		err = cachespace_scan_at_open(c);
	if (err) {
		cache_close(c);
		return err;
	}
	*out = c;
	return 0;
}

void cache_set_fetch_wait(struct cache *c, int seconds)
{
	c->fetch_wait_s = seconds;
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	cachespace_close(c);
	if (c->lockfd >= 0)
		close(c->lockfd);
	if (c->vfd >= 0)
		close(c->vfd);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->folder_lock);
	free(c->vdir);
	free(c);
}

int cache_entry_get(struct cache *c, const char *key, uint64_t size_bytes, struct cache_entry **out)
{
	struct cache_entry *e;
	int err = cachespace_hold(c, key, size_bytes, &e);
	if (err || e) {
		*out = e;
		return err;
	}
	int fd = -1;
	uint64_t size = 0, reserved;
	err = cachespace_open_file(c, key, size_bytes, &fd, &size, &reserved);
	if (err)
		return err;
	futimens(fd, NULL); /* the LRU order survives remounts */
	struct cache_entry *mine = entry_new(c, key, fd, size);
	if (!mine) {
		close(fd);
		cachespace_release(c, reserved);
		return -ENOMEM;
	}
	flock(fd, LOCK_UN); /* idle until its first call: before anyone can find it */
	e = cachespace_publish(c, mine, reserved);
	if (e != mine)
		entry_free(mine);
	if (!e)
		return -ENOMEM;
	*out = e;
	return 0;
}

void cache_entry_put(struct cache_entry *e)
{
	if (e && cachespace_unhold(e))
		entry_free(e);
}

uint64_t cache_entry_size(const struct cache_entry *e)
{
	return e->size;
}

void cache_entry_discard(struct cache *c, const char *key)
{
	char *name = cachefile_name(key);
	if (name)
		cachefile_remove(c, name);
	free(name);
	cachespace_discard(c, key);
}

int cache_entry_pin(struct cache_entry *e)
{
	return entry_enter(e);
}

void cache_entry_unpin(struct cache_entry *e)
{
	entry_leave(e);
}

void cache_entry_hold(struct cache_entry *e)
{
	pthread_mutex_lock(&e->io_lock);
	e->holds++; /* the lock itself waits for the first call: an open may never read */
	pthread_mutex_unlock(&e->io_lock);
}

void cache_entry_unhold(struct cache_entry *e)
{
	pthread_mutex_lock(&e->io_lock);
	e->holds--;
	entry_unlock_idle(e);
	pthread_mutex_unlock(&e->io_lock);
}

/* ---- writing ---- */

static bool own_has(const struct cache_entry *e, uint64_t b)
{
	return e->own[b / 8] & (1u << (b % 8));
}

static void own_set(struct cache_entry *e, uint64_t b, bool own)
{
	if (own)
		e->own[b / 8] |= (unsigned char)(1u << (b % 8));
	else
		e->own[b / 8] &= (unsigned char)~(1u << (b % 8));
}

/* Sets the map bytes of blocks [first, last) to value, on disk in a few large writes (a write a
 * block would contend with the data writes for the inode), then in memory: a block counts as
 * present only once its byte is on disk, and as missing at once. Entry lock held. */
static void map_set(struct cache_entry *e, uint64_t first, uint64_t last, unsigned char value)
{
	unsigned char bytes[4096];
	memset(bytes, value, sizeof(bytes));
	for (uint64_t b = first; b < last;) {
		size_t n = last - b < sizeof(bytes) ? (size_t)(last - b) : sizeof(bytes);
		if (cachefile_write_all(e->fd, bytes, n, HEADER_LEN + b) == 0 || !value) {
			/* a block present already stays whoever's it was */
			for (uint64_t i = b; i < b + n; i++)
				own_set(e, i, value && (own_has(e, i) || !e->map[i]));
			memset(e->map + b, value, n);
		}
		b += n;
	}
}

static size_t block_len(const struct cache_entry *e, uint64_t b)
{
	return (size_t)((b + 1) * BLOCK <= e->size ? BLOCK : e->size - b * BLOCK);
}

/* Sets s up for the blocks of [off, end); with no memory every checksum is read from disk. */
static void sums_init(struct block_sums *s, uint64_t off, uint64_t end)
{
	s->first = off / BLOCK;
	s->n = (size_t)((end + BLOCK - 1) / BLOCK - s->first);
	s->sum = malloc(s->n * sizeof(*s->sum));
	s->have = calloc(s->n, 1);
	if (!s->sum || !s->have)
		s->n = 0;
}

static void sums_free(struct block_sums *s)
{
	free(s->sum);
	free(s->have);
}

/* Takes the checksums of the blocks that the stored bytes [off, off + len) of buf hold whole. */
static void sums_note(const struct cache_entry *e, struct block_sums *s, uint64_t off,
		      const void *buf, size_t len)
{
	for (uint64_t b = (off + BLOCK - 1) / BLOCK; b * BLOCK < off + len; b++) {
		size_t n = block_len(e, b);
		if (b * BLOCK + n > off + len || b < s->first || b - s->first >= s->n)
			continue;
		s->sum[b - s->first] =
			crc_castagnoli((const unsigned char *)buf + (b * BLOCK - off), n);
		s->have[b - s->first] = 1;
	}
}

/* The checksum of block b: from s when it holds it, else from the bytes on disk (a block
 * completed by several writes). */
static int block_sum(struct cache_entry *e, uint64_t b, const struct block_sums *s, uint32_t *sum)
{
	if (s && b >= s->first && b - s->first < s->n && s->have[b - s->first]) {
		*sum = s->sum[b - s->first];
		return 0;
	}
	unsigned char tmp[CACHE_BLOCK_SIZE];
	size_t n = block_len(e, b);
	int err = cachefile_read_all(e->fd, tmp, n, e->data_off + b * BLOCK);
	if (!err)
		*sum = crc_castagnoli(tmp, n);
	return err;
}

/* Writes the checksums of blocks [first, last) to disk: before any of them is marked present.
 * Entry lock held. */
static int write_sums(struct cache_entry *e, uint64_t first, uint64_t last,
		      const struct block_sums *s)
{
	uint32_t sums[1024];
	int err = 0;
	for (uint64_t b = first; !err && b < last;) {
		size_t n = last - b < 1024 ? (size_t)(last - b) : 1024;
		for (size_t i = 0; !err && i < n; i++)
			err = block_sum(e, b + i, s, &sums[i]);
		if (!err)
			err = cachefile_write_all(e->fd, sums, n * SUM_LEN,
						  e->sums_off + b * SUM_LEN);
		b += n;
	}
	return err;
}

/* Marks the blocks wholly inside the run [start, end) that the write [w_start, w_end) touched
 * (no other block can have become whole), their checksums first; entry lock held. */
static int mark_covered(struct cache_entry *e, uint64_t start, uint64_t end, uint64_t w_start,
			uint64_t w_end, const struct block_sums *s)
{
	uint64_t first = (start + BLOCK - 1) / BLOCK;
	uint64_t last = end == e->size ? e->nblocks : end / BLOCK;
	if (first < w_start / BLOCK)
		first = w_start / BLOCK;
	if (last > (w_end + BLOCK - 1) / BLOCK)
		last = (w_end + BLOCK - 1) / BLOCK;
	while (first < last && e->map[first])
		first++;
	while (last > first && e->map[last - 1])
		last--;
	if (first >= last)
		return 0;
	int err = write_sums(e, first, last, s);
	if (err)
		return err;
	map_set(e, first, last, 1);
	pthread_cond_broadcast(&e->cond); /* waiting readers of these blocks may go on */
	return 0;
}

/* Merges [off, end) into the runs of contiguous writes; returns the merged run. */
static int add_run(struct cache_entry *e, uint64_t off, uint64_t end, struct run *merged)
{
	struct run r = {off, end};
	size_t k = 0;
	for (size_t i = 0; i < e->n_runs; i++) {
		struct run *x = &e->runs[i];
		if (x->end < r.start || x->start > r.end) {
			e->runs[k++] = *x;
		} else {
			r.start = x->start < r.start ? x->start : r.start;
			r.end = x->end > r.end ? x->end : r.end;
		}
	}
	struct run *v = realloc(e->runs, (k + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	e->runs = v;
	/* a run whose ends are block boundaries has nothing left to complete */
	bool done = r.start % BLOCK == 0 && (r.end % BLOCK == 0 || r.end == e->size);
	if (!done)
		e->runs[k++] = r;
	e->n_runs = k;
	*merged = r;
	return 0;
}

/* Reserves room for the blocks of [off, end) that count nowhere yet (present blocks were
 * counted when found at open or when written; a partly written block once). */
static int reserve(struct cache_entry *e, uint64_t off, uint64_t end, uint64_t *reserved)
{
	uint64_t first = off / BLOCK, last = (end - 1) / BLOCK, need = 0;
	*reserved = 0;
	pthread_mutex_lock(&e->lock);
	for (uint64_t b = first; b <= last; b++)
		need += e->map[b] || e->accounted[b] ? 0 : BLOCK;
	pthread_mutex_unlock(&e->lock);
	if (need == 0)
		return 0;
	int err = cachespace_reserve(e, need);
	if (err) {
		log_set_reason("cache full: %" PRIu64
			       " bytes needed, every cached archive is in use",
			       need);
		return err;
	}
	*reserved = need;
	pthread_mutex_lock(&e->lock);
	for (uint64_t b = first; b <= last; b++)
		e->accounted[b] = 1;
	pthread_mutex_unlock(&e->lock);
	return 0;
}

/* Puts bytes on disk without marking them: nobody reads them until mark_stored(). A call on e
 * runs (its file cannot be evicted meanwhile). */
static int store(struct cache_entry *e, uint64_t off, const void *buf, size_t len)
{
	/* the archive behind a ref may change between requests: never store bytes past its size */
	if (off > e->size || len > e->size - off)
		return -EIO;
	if (len == 0)
		return 0;
	uint64_t reserved;
	int err = reserve(e, off, off + len, &reserved);
	if (err)
		return err;
	err = cachespace_write(e->c, e->fd, buf, len, e->data_off + off);
	cachespace_release(e->c, reserved); /* on disk now (or never: a recount then sees less) */
	if (err && !log_reason()[0])
		log_set_reason("cache: cannot write to the cache folder: %s", strerror(-err));
	return err;
}

/* Marks the blocks that the stored bytes [off, end) completed, their checksums (from s where
 * it has them) written first. */
static int mark_stored(struct cache_entry *e, uint64_t off, uint64_t end,
		       const struct block_sums *s)
{
	struct run r;
	pthread_mutex_lock(&e->lock);
	int err = add_run(e, off, end, &r);
	if (!err)
		err = mark_covered(e, r.start, r.end, off, end, s);
	pthread_mutex_unlock(&e->lock);
	return err;
}

int cache_entry_write(struct cache_entry *e, uint64_t off, const void *buf, size_t len)
{
	if (off > e->size || len > e->size - off)
		return -EIO;
	if (len == 0)
		return 0;
	int err = entry_enter(e);
	if (err)
		return err;
	struct block_sums s;
	sums_init(&s, off, off + len);
	err = store(e, off, buf, len);
	if (!err) {
		sums_note(e, &s, off, buf, len);
		err = mark_stored(e, off, off + len, &s);
	}
	sums_free(&s);
	entry_leave(e);
	return err;
}

/* ---- the writer a fetch is handed ---- */

/* Remembers that [off, end) is on disk, merging with an adjoining or overlapping range. */
static int writer_note(struct cache_writer *w, uint64_t off, uint64_t end)
{
	for (size_t i = 0; i < w->n_done; i++) {
		struct run *x = &w->done[i];
		if (off <= x->end && end >= x->start) {
			x->start = off < x->start ? off : x->start;
			x->end = end > x->end ? end : x->end;
			return 0;
		}
	}
	struct run *v = realloc(w->done, (w->n_done + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	w->done = v;
	w->done[w->n_done++] = (struct run){off, end};
	return 0;
}

static void refresh_map(struct cache_entry *e, uint64_t first, uint64_t last);

/* Where the bytes from off on stop being all present or all missing (blocks of the map, read
 * again from disk: another mount may have marked some since), up to end; *present says which
 * they are. */
static uint64_t same_presence(struct cache_entry *e, uint64_t off, uint64_t end, bool *present)
{
	pthread_mutex_lock(&e->lock);
	refresh_map(e, off / BLOCK, (end - 1) / BLOCK);
	uint64_t b = off / BLOCK;
	*present = e->map[b];
	while ((b + 1) * BLOCK < end && (bool)e->map[b + 1] == *present)
		b++;
	pthread_mutex_unlock(&e->lock);
	return (b + 1) * BLOCK < end ? (b + 1) * BLOCK : end;
}

/* Stores the bytes of [off, off+len) whose blocks are missing, taking their checksums: a
 * present block holds the right bytes already, and an answer not yet known good must not
 * overwrite them. */
static int writer_store(struct cache_writer *w, uint64_t off, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	if (len == 0)
		return 0;
	for (uint64_t at = off, end = off + len, stop; at < end; at = stop) {
		bool present;
		stop = same_presence(w->e, at, end, &present);
		if (present)
			continue;
		int err = store(w->e, at, p + (at - off), (size_t)(stop - at));
		if (err)
			return err;
		sums_note(w->e, &w->sums, at, p + (at - off), (size_t)(stop - at));
	}
	return writer_note(w, off, off + len);
}

static int writer_flush(struct cache_writer *w)
{
	int err = w->len ? writer_store(w, w->off, w->buf, w->len) : 0;
	w->off += w->len;
	w->len = 0;
	return err;
}

int cache_writer_write(struct cache_writer *w, uint64_t off, const void *buf, size_t len)
{
	struct cache_entry *e = w->e;
	if (off > e->size || len > e->size - off)
		return -EIO;
	if (w->len && off != w->off + w->len) {
		int err = writer_flush(w);
		if (err)
			return err;
	}
	if (!w->buf)
		return writer_store(w, off, buf, len);
	if (w->len == 0)
		w->off = off;
	int err = 0;
	while (!err && len) {
		size_t n = w->cap - w->len < len ? w->cap - w->len : len;
		memcpy(w->buf + w->len, buf, n);
		w->len += n;
		buf = (const unsigned char *)buf + n;
		len -= n;
		if (w->len == w->cap)
			err = writer_flush(w);
	}
	return err;
}

uint64_t cache_writer_size(const struct cache_writer *w)
{
	return w->e->size;
}

void cache_entry_bind(struct cache_entry *e, const struct cache_source *src)
{
	pthread_mutex_lock(&e->lock);
	bool bound = !e->src.fetch;
	if (bound)
		e->src = *src;
	pthread_mutex_unlock(&e->lock);
	if (!bound && src->release)
		src->release(src->ctx);
}

/* Runs the entry's source for [off, off+len); what it stored is marked (checksums first) only
 * if it succeeded. A call on e runs. */
static int run_fetch(struct cache_entry *e, const struct cache_source *src, uint64_t off,
		     uint64_t len)
{
	if (!src->fetch)
		return -EIO;
	struct cache_writer w = {.e = e, .cap = len < WRITER_BYTES ? len : WRITER_BYTES};
	w.buf = aligned_alloc(PAGE, (w.cap + PAGE - 1) / PAGE * PAGE);
	sums_init(&w.sums, off, off + len);
	int err = src->fetch(src->ctx, &w, off, len);
	int flushed = writer_flush(&w);
	err = err ? err : flushed;
	for (size_t i = 0; !err && i < w.n_done; i++)
		err = mark_stored(e, w.done[i].start, w.done[i].end, &w.sums);
	sums_free(&w.sums);
	free(w.buf);
	free(w.done);
	return err;
}

static void drop_locked(struct cache_entry *e, uint64_t first, uint64_t last);

void cache_entry_invalidate(struct cache_entry *e, uint64_t off, uint64_t len)
{
	if (len == 0 || off >= e->size)
		return;
	uint64_t first = off / BLOCK, last = (off + len - 1) / BLOCK + 1; /* blocks, exclusive */
	if (last > e->nblocks)
		last = e->nblocks;
	bool entered = entry_enter(e) == 0; /* else its file is gone: forgetting is enough */
	pthread_mutex_lock(&e->lock);
	drop_locked(e, first, last);
	pthread_mutex_unlock(&e->lock);
	if (entered)
		entry_leave(e);
}

/* Forgets blocks [first, last): their map bytes and any run of writes over them. Entry lock
 * held. */
static void drop_locked(struct cache_entry *e, uint64_t first, uint64_t last)
{
	uint64_t lo = first * BLOCK, hi = last * BLOCK < e->size ? last * BLOCK : e->size;
	/* the runs must forget these bytes too, or a later partial write would complete a block
	 * around the very bytes being dropped */
	size_t k = 0;
	struct run keep_after = {0, 0};
	for (size_t i = 0; i < e->n_runs; i++) {
		struct run x = e->runs[i];
		if (x.end <= lo || x.start >= hi) {
			e->runs[k++] = x;
			continue;
		}
		if (x.start < lo)
			e->runs[k++] = (struct run){x.start, lo};
		if (x.end > hi)
			keep_after =
				(struct run){hi, x.end}; /* runs are disjoint: at most one such */
	}
	e->n_runs = k;
	if (keep_after.end > keep_after.start) {
		struct run r;
		add_run(e, keep_after.start, keep_after.end,
			&r); /* on ENOMEM it is only forgotten */
	}
	map_set(e, first, last, 0);
}

/* ---- reading ---- */

/* Picks up blocks that another process fetched into (or dropped from) the same file; blocks
 * [first, last]. Entry lock held. */
static void refresh_map(struct cache_entry *e, uint64_t first, uint64_t last)
{
	cachefile_read_fresh(e->c, e->fd, e->map + first, (size_t)(last - first + 1),
			     HEADER_LEN + first);
	for (uint64_t b = first; b <= last; b++)
		if (!e->map[b]) /* dropped by another: whoever marks it next owns it */
			own_set(e, b, false);
}

static int has_locked(struct cache_entry *e, uint64_t first, uint64_t last, uint64_t *missing)
{
	for (uint64_t b = first; b <= last; b++)
		if (!e->map[b]) {
			*missing = b;
			return 0;
		}
	return 1;
}

int cache_entry_has(struct cache_entry *e, uint64_t off, uint64_t len)
{
	if (len == 0 || off >= e->size)
		return 1;
	uint64_t end = off + len < e->size ? off + len : e->size, m;
	pthread_mutex_lock(&e->lock);
	int has = has_locked(e, off / BLOCK, (end - 1) / BLOCK, &m);
	pthread_mutex_unlock(&e->lock);
	return has;
}

/* Claims blocks [first, end) for a fetch against other processes and machines: an OFD write
 * lock on their bytes of the map, which the file system shows to every client. Held by another,
 * it waits for it (that fetch ends, or the file system drops the lock of a dead client) up to
 * c->fetch_wait_s, polling: a blocking wait could not be bounded, and a client that died
 * holding it keeps it until its server evicts it. True when claimed (then release_run()); false
 * when the wait ran out, was interrupted or the file system has no such locks: the fetch goes
 * on unclaimed, as within one process, since both fetches store the same bytes. No lock held. */
static bool claim_run(struct cache_entry *e, uint64_t first, uint64_t end)
{
	int err = cachefile_range_lock(e->fd, HEADER_LEN + first, end - first);
	struct timespec t0, now, pause = {0, 1000000};
	clock_gettime(CLOCK_MONOTONIC, &t0);
	now = t0;
	while (err == -EAGAIN && now.tv_sec - t0.tv_sec < e->c->fetch_wait_s && !intr_pending()) {
		nanosleep(&pause, NULL);
		if (pause.tv_nsec < 64000000)
			pause.tv_nsec *= 2;
		err = cachefile_range_lock(e->fd, HEADER_LEN + first, end - first);
		clock_gettime(CLOCK_MONOTONIC, &now);
	}
	if (err == -EAGAIN && !intr_pending())
		log_msg(LOG_WARNING,
			"cache: blocks %" PRIu64 "-%" PRIu64
			" of %s have been fetched elsewhere for "
			"%d s (a machine that died holding them?); fetching them here too",
			first, end - 1, e->key, e->c->fetch_wait_s);
	return err == 0;
}

static void release_run(struct cache_entry *e, uint64_t first, uint64_t end)
{
	cachefile_range_unlock(e->fd, HEADER_LEN + first, end - first);
}

/* Gives back a fetch run's reservation (blocks [lo, hi)) once it ended. What it left missing
 * counts no more (a recount drops its bytes from the count): counted when next written. */
static void unreserve_missing(struct cache_entry *e, uint64_t lo, uint64_t hi, uint64_t reserved)
{
	pthread_mutex_lock(&e->lock);
	for (uint64_t b = lo; b < hi; b++)
		e->accounted[b] = e->accounted[b] && e->map[b];
	pthread_mutex_unlock(&e->lock);
	cachespace_release(e->c, reserved);
}

/* Fetches the run of missing blocks starting at b, once claimed: what another process fetched
 * meanwhile is not fetched again. Entry lock held on entry and exit. */
static int fetch_run(struct cache_entry *e, uint64_t b, uint64_t last, uint64_t min_fetch)
{
	uint64_t want_end = b + (min_fetch + BLOCK - 1) / BLOCK; /* exclusive, in blocks */
	uint64_t end = b;
	while (end < e->nblocks && !e->map[end] && !e->inflight[end] &&
	       (end <= last || end < want_end))
		end++;
	for (uint64_t i = b; i < end; i++)
		e->inflight[i] = 1;
	struct cache_source src = e->src;
	pthread_mutex_unlock(&e->lock);

	bool claimed = claim_run(e, b, end);
	/* the map as the last fetcher left it: read after its lock was released, coherent */
	pthread_mutex_lock(&e->lock);
	refresh_map(e, b, end - 1);
	uint64_t lo = b, hi = end;
	while (lo < hi && e->map[lo])
		lo++;
	while (hi > lo && e->map[hi - 1])
		hi--;
	pthread_mutex_unlock(&e->lock);
	uint64_t off = b * BLOCK, stop = end * BLOCK < e->size ? end * BLOCK : e->size;
	int err = 0;
	if (lo < hi) {
		uint64_t from = lo * BLOCK, to = hi * BLOCK < e->size ? hi * BLOCK : e->size;
		/* the run's room counted at once, not by each store (on CephFS a count is several
		 * round trips); a cache too full for all of it counts store by store, as far as
		 * the room goes */
		uint64_t reserved;
		if (reserve(e, from, to, &reserved))
			log_clear_reason();
		atomic_fetch_add(&e->c->fetches, 1);
		err = run_fetch(e, &src, from, to - from);
		if (reserved)
			unreserve_missing(e, lo, hi, reserved);
	}
	if (claimed)
		release_run(e, b, end);

	pthread_mutex_lock(&e->lock);
	for (uint64_t i = b; i < end; i++)
		e->inflight[i] = 0;
	pthread_cond_broadcast(&e->cond);
	if (!err) {
		for (uint64_t i = b; i < end && i <= last; i++)
			if (!e->map[i])
				err = -EIO; /* the server gave fewer bytes than asked */
		if (err)                    /* the one error line is the reader's */
			log_set_reason("cache: a fetch of %" PRIu64 " bytes at %" PRIu64
				       " left blocks missing",
				       stop - off, off);
	}
	return err;
}

/* Makes blocks [first, last] present, fetching what is missing; sets *fetched if it did. */
static int make_present(struct cache_entry *e, uint64_t first, uint64_t last, uint64_t min_fetch,
			bool *fetched)
{
	uint64_t b;
	int err = 0;
	pthread_mutex_lock(&e->lock);
	if (!has_locked(e, first, last, &b))
		refresh_map(e, first, last);
	while (!err && !has_locked(e, first, last, &b)) {
		/* missing blocks that nobody fetches go first: waiting on another fetch's first
		 * serialised neighbouring read-ahead chunks that share a block */
		while (b <= last && (e->map[b] || e->inflight[b]))
			b++;
		if (b > last) { /* another reader's fetch: its own reader may give up, not us */
			err = intr_cond_wait(&e->cond, &e->lock);
			continue;
		}
		*fetched = true;
		err = fetch_run(e, b, last, min_fetch);
	}
	pthread_mutex_unlock(&e->lock);
	return err;
}

/* Checks the blocks [first, last] held in buf (from block first on): a block that fails is
 * dropped, to be fetched again, and the call returns -EAGAIN. */
static int check_blocks(struct cache_entry *e, uint64_t first, uint64_t last,
			const unsigned char *buf)
{
	size_t n = (size_t)(last - first + 1);
	uint32_t *sums = malloc(n * SUM_LEN);
	int err = sums ? cachefile_read_fresh(e->c, e->fd, sums, n * SUM_LEN,
					      e->sums_off + first * SUM_LEN)
		       : -ENOMEM;
	uint64_t bad = 0, first_bad = 0;
	pthread_mutex_lock(&e->lock);
	for (uint64_t b = first; !err && b <= last; b++) {
		if (!e->map[b])
			continue; /* dropped meanwhile: the bytes are read again */
		if (crc_castagnoli(buf + (b - first) * BLOCK, block_len(e, b)) == sums[b - first])
			continue;
		first_bad = bad++ ? first_bad : b;
		drop_locked(e, b, b + 1);
	}
	pthread_mutex_unlock(&e->lock);
	if (bad) /* one line per read, not per block: a zeroed file has thousands */
		log_msg(LOG_WARNING,
			"cache: %" PRIu64 " block(s) of %s from block %" PRIu64
			" failed their checksum; fetching them again",
			bad, e->key, first_bad);
	free(sums);
	return err ? err : bad ? -EAGAIN : 0;
}

/* Reads present bytes; -EAGAIN when the file ends before them (it was cut while open here):
 * every block past its end is dropped and fetched again, rather than failing every read from
 * now on (or reading zeros once a write extends it again). */
static int read_present(struct cache_entry *e, void *buf, size_t len, uint64_t off)
{
	struct stat st;
	int err = cachefile_read_fresh(e->c, e->fd, buf, len, e->data_off + off);
	if (err != -EIO || fstat(e->fd, &st) || (uint64_t)st.st_size >= e->data_off + off + len)
		return err;
	log_msg(LOG_WARNING, "cache: the file of %s was cut short; fetching again", e->key);
	uint64_t kept = (uint64_t)st.st_size > e->data_off ? (uint64_t)st.st_size - e->data_off : 0;
	pthread_mutex_lock(&e->lock);
	drop_locked(e, kept / BLOCK, e->nblocks);
	pthread_mutex_unlock(&e->lock);
	return -EAGAIN;
}

/* Reads [off, off + len) from the file (present), checking every block it touches first, at
 * every read: other processes and machines write the folder too, and a block checked once may
 * have been changed since. -EAGAIN when one failed and was dropped. */
static int read_checked(struct cache_entry *e, void *buf, size_t len, uint64_t off)
{
	uint64_t first = off / BLOCK, last = (off + len - 1) / BLOCK;
	uint64_t lo = first * BLOCK;
	uint64_t hi = (last + 1) * BLOCK < e->size ? (last + 1) * BLOCK : e->size;
	unsigned char *blocks = malloc((size_t)(hi - lo));
	int err = blocks ? read_present(e, blocks, (size_t)(hi - lo), lo) : -ENOMEM;
	if (!err)
		err = check_blocks(e, first, last, blocks);
	if (!err)
		memcpy(buf, blocks + (off - lo), len); /* the bytes checked are the bytes served */
	free(blocks);
	return err;
}

/* The bytes of [off, off + len) that lie in blocks this process marked present. */
static uint64_t own_bytes(struct cache_entry *e, uint64_t off, size_t len)
{
	uint64_t n = 0, end = off + len;
	pthread_mutex_lock(&e->lock);
	for (uint64_t b = off / BLOCK; b * BLOCK < end; b++) {
		uint64_t lo = b * BLOCK > off ? b * BLOCK : off;
		uint64_t hi = (b + 1) * BLOCK < end ? (b + 1) * BLOCK : end;
		n += own_has(e, b) ? hi - lo : 0;
	}
	pthread_mutex_unlock(&e->lock);
	return n;
}

ssize_t cache_entry_pread(struct cache_entry *e, void *buf, size_t len, uint64_t off,
			  uint64_t min_fetch)
{
	if (off >= e->size || len == 0)
		return 0;
	if (len > e->size - off)
		len = (size_t)(e->size - off);
	uint64_t first = off / BLOCK, last = (off + len - 1) / BLOCK;
	bool fetched = false;
	int err = entry_enter(e);
	if (err)
		return err;
	err = -EAGAIN;
	/* a block that fails its check is fetched again; failing again, the disk is at fault */
	for (int tries = 0; err == -EAGAIN && tries < 3; tries++) {
		err = make_present(e, first, last, min_fetch, &fetched);
		if (!err && buf)
			err = read_checked(e, buf, len, off);
	}
	uint64_t own = !err && buf && !fetched ? own_bytes(e, off, len) : 0;
	entry_leave(e);
	if (err)
		return err == -EAGAIN ? -EIO : err;
	if (buf && fetched) {
		atomic_fetch_add(&e->c->miss_bytes, len);
	} else if (buf) {
		atomic_fetch_add(&e->c->hit_own_bytes, own);
		atomic_fetch_add(&e->c->hit_shared_bytes, len - own);
	}
	return (ssize_t)len;
}

int cache_entry_prefetch(struct cache_entry *e, uint64_t off, uint64_t len)
{
	ssize_t n = cache_entry_pread(e, NULL, (size_t)len, off, len);
	return n < 0 ? (int)n : 0;
}

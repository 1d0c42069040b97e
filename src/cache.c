/* cache: archive bytes on disk, shared by the threads of a mount and by mounts sharing a folder.
 *
 * One file per archive, DIR/v1/<key>.afs: a 4 KiB header (magic, archive size), the block map
 * (one byte per CACHE_BLOCK_SIZE block, 1 = present, padded to 4 KiB), then the archive's bytes
 * at their own offsets in a sparse region. A block's bytes are written before its map byte, and
 * map bytes are written one by one (no read-modify-write), so any process, or a daemon killed at
 * any moment, sees a block as present only when all of it is on disk. Files are made under a
 * temporary name and linked into place, never over an existing one.
 *
 * A process holds a shared flock() on every file it has open; eviction takes an exclusive one
 * without waiting, so a file in use anywhere is never removed. Accounting is per process: the
 * sizes found at open plus what this process wrote (two mounts on one folder may together
 * overshoot the limit by what they fetch at the same time).
 *
 * Lock order: cache->lock, then entry->lock. No lock is held while a fetch runs. */
#include "artifactfs/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "artifactfs/log.h"

#define MAGIC "AFSCACHE1"
#define HEADER_LEN 4096u
#define HEADER_MAGIC_AT 0u  /* MAGIC with its NUL */
#define HEADER_SIZE_AT 16u  /* the archive's size, uint64_t in host order */
#define PAGE 4096u
#define BLOCK ((uint64_t)CACHE_BLOCK_SIZE)
#define STALE_TMP_S 600

/* An archive file on disk, known to this process. */
struct disk_ent {
	char *key;
	uint64_t bytes;          /* protected by cache->lock */
	time_t last_used;        /* protected by cache->lock */
	int open;                /* entries open on it; protected by cache->lock */
	bool skip;               /* in use by another process: not tried again by this make_room;
	                            protected by cache->lock */
	struct disk_ent *next;   /* protected by cache->lock */
};

struct cache {
	char *vdir;
	uint64_t limit;
	pthread_mutex_t lock;
	struct cache_entry *entries; /* open entries; protected by lock */
	struct disk_ent *disk;       /* protected by lock */
	uint64_t used;               /* protected by lock */
	atomic_uint_fast64_t hit_bytes, miss_bytes, fetches, evictions;
};

struct run {
	uint64_t start, end;
};

struct cache_entry {
	struct cache *c;
	char *key;
	int refs;                /* protected by c->lock */
	struct disk_ent *de;     /* protected by c->lock */
	struct cache_entry *next;/* protected by c->lock */
	int fd;
	uint64_t size;
	size_t nblocks;
	uint64_t data_off;       /* where byte 0 of the archive is in the file */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned char *map;      /* protected by lock */
	unsigned char *inflight; /* protected by lock */
	unsigned char *accounted;/* protected by lock: the block's bytes count in cache->used */
	struct run *runs;        /* protected by lock: contiguous writes not yet whole blocks */
	size_t n_runs;           /* protected by lock */
	struct cache_source src; /* protected by lock; set once by cache_entry_bind */
};

/* Bytes on their way from one fetch into the entry: gathered into large page-aligned writes
 * (written as curl hands them over, a few KiB at a time, each would lock the entry twice and make
 * the kernel zero the rest of every page it starts), and the ranges stored, marked present only
 * when the fetch succeeds. */
#define WRITER_BYTES (256u << 10)
struct cache_writer {
	struct cache_entry *e;
	uint64_t off;            /* of buf[0] */
	size_t len, cap;
	unsigned char *buf;      /* NULL (no memory): every piece is stored as it comes */
	struct run *done;        /* ranges stored on disk, not yet marked */
	size_t n_done;
	int err;                 /* the first storing error: the rest is not stored */
};

static char *entry_path(struct cache *c, const char *key)
{
	char *p = NULL;
	return asprintf(&p, "%s/%s.afs", c->vdir, key) < 0 ? NULL : p;
}

static int mkdir_private(const char *path)
{
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	struct stat st;
	if (stat(path, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if ((st.st_mode & 077) && st.st_uid == geteuid() && chmod(path, 0700))
		return -errno;
	return 0;
}

static int mkdir_parents(const char *dir)
{
	char *p = strdup(dir);
	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) && errno != EEXIST) {
			int err = -errno;
			free(p);
			return err;
		}
		*s = '/';
	}
	free(p);
	return mkdir_private(dir);
}

/* ---- the table of files on disk ---- */

static struct disk_ent *disk_find(struct cache *c, const char *key)
{
	for (struct disk_ent *d = c->disk; d; d = d->next)
		if (strcmp(d->key, key) == 0)
			return d;
	return NULL;
}

static struct disk_ent *disk_add(struct cache *c, const char *key, uint64_t bytes, time_t t)
{
	struct disk_ent *d = calloc(1, sizeof(*d));
	if (!d || !(d->key = strdup(key))) {
		free(d);
		return NULL;
	}
	d->bytes = bytes;
	d->last_used = t;
	d->next = c->disk;
	c->disk = d;
	c->used += bytes;
	return d;
}

static void disk_remove(struct cache *c, struct disk_ent *victim)
{
	for (struct disk_ent **pp = &c->disk; *pp; pp = &(*pp)->next) {
		if (*pp == victim) {
			*pp = victim->next;
			c->used -= victim->bytes < c->used ? victim->bytes : c->used;
			free(victim->key);
			free(victim);
			return;
		}
	}
}

/* Removes a file nobody uses; false when another process holds it. */
static bool evict_file(struct cache *c, const char *key)
{
	char *path = entry_path(c, key);
	int fd = path ? open(path, O_RDWR | O_CLOEXEC) : -1;
	bool gone = fd < 0 && errno == ENOENT;
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
		unlink(path);
		gone = true;
	}
	if (fd >= 0)
		close(fd);
	free(path);
	return gone;
}

/* Makes room for need more bytes, evicting least recently used files. Lock held. */
static int make_room(struct cache *c, uint64_t need)
{
	while (c->used + need > c->limit) {
		struct disk_ent *lru = NULL;
		for (struct disk_ent *d = c->disk; d; d = d->next)
			if (!d->open && !d->skip && d->bytes > 0 &&
			    (!lru || d->last_used < lru->last_used))
				lru = d;
		if (!lru)
			return -ENOSPC;
		if (evict_file(c, lru->key)) {
			log_msg(LOG_DEBUG, "cache: evicted %s (%" PRIu64 " bytes)", lru->key, lru->bytes);
			atomic_fetch_add(&c->evictions, 1);
			disk_remove(c, lru);
		} else {
			lru->last_used = time(NULL); /* in use elsewhere: try others first */
			lru->skip = true;            /* and not again in this call */
		}
	}
	return 0;
}

static void clear_skips(struct cache *c)
{
	for (struct disk_ent *d = c->disk; d; d = d->next)
		d->skip = false;
}

/* ---- opening ---- */

static bool tmp_is_stale(const char *name, const struct stat *st)
{
	long pid = 0;
	const char *dash = strrchr(name, '-');
	if (dash)
		pid = strtol(dash + 1, NULL, 10);
	bool dead = pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
	return dead || time(NULL) - st->st_mtime > STALE_TMP_S;
}

static int scan(struct cache *c)
{
	DIR *d = opendir(c->vdir);
	if (!d)
		return -errno;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
			continue;
		size_t n = strlen(de->d_name);
		if (strncmp(de->d_name, ".tmp-", 5) == 0) {
			if (tmp_is_stale(de->d_name, &st))
				unlinkat(dirfd(d), de->d_name, 0);
		} else if (n > 4 && strcmp(de->d_name + n - 4, ".afs") == 0) {
			char *key = strndup(de->d_name, n - 4);
			if (!key || !disk_add(c, key, (uint64_t)st.st_blocks * 512, st.st_mtime)) {
				free(key);
				closedir(d);
				return -ENOMEM;
			}
			free(key);
		}
	}
	closedir(d);
	return 0;
}

int cache_open(const char *dir, uint64_t limit_bytes, struct cache **out)
{
	struct cache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->limit = limit_bytes;
	int err = mkdir_parents(dir);
	/* absolute: libfuse moves a daemon to "/" when it leaves the terminal */
	char *abs = err ? NULL : realpath(dir, NULL);
	if (!err && !abs)
		err = -errno;
	if (!err && asprintf(&c->vdir, "%s/v1", abs) < 0) {
		c->vdir = NULL;
		err = -ENOMEM;
	}
	free(abs);
	if (!err)
		err = mkdir_private(c->vdir);
	if (!err)
		err = scan(c);
	if (err) {
		cache_close(c);
		return err;
	}
	*out = c;
	return 0;
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	while (c->disk) {
		struct disk_ent *d = c->disk;
		c->disk = d->next;
		free(d->key);
		free(d);
	}
	pthread_mutex_destroy(&c->lock);
	free(c->vdir);
	free(c);
}

static size_t map_len(uint64_t size)
{
	size_t nblocks = (size_t)((size + BLOCK - 1) / BLOCK);
	return (nblocks + PAGE - 1) / PAGE * PAGE;
}

static int write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EDQUOT || errno == ENOSPC ? -ENOSPC : -errno;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Creates the file under a temporary name and links it into place (never over another). */
static int create_file(struct cache *c, const char *path, const char *key, uint64_t size)
{
	static atomic_uint serial;
	char *tmp = NULL;
	/* the pid comes last: cache_open() of a later mount removes files of dead creators */
	if (asprintf(&tmp, "%s/.tmp-%s-%u-%ld", c->vdir, key, atomic_fetch_add(&serial, 1),
		     (long)getpid()) < 0)
		return -ENOMEM;
	unlink(tmp);
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int err = fd < 0 ? -errno : 0;
	char header[HEADER_LEN] = {0};
	memcpy(header + HEADER_MAGIC_AT, MAGIC, sizeof(MAGIC));
	memcpy(header + HEADER_SIZE_AT, &size, sizeof(size));
	if (!err)
		err = write_all(fd, header, sizeof(header), 0);
	if (!err && ftruncate(fd, (off_t)(HEADER_LEN + map_len(size) + size)))
		err = errno == EFBIG || errno == ENOSPC ? -ENOSPC : -errno;
	if (fd >= 0)
		close(fd);
	if (!err && link(tmp, path) && errno != EEXIST)
		err = -errno;
	unlink(tmp);
	free(tmp);
	if (err && err != -ENOSPC && err != -EDQUOT && err != -ENOMEM) {
		/* the cache folder itself is broken (removed, made read-only): say so, once per try */
		log_msg(LOG_ERR, "cache: cannot create a file in %s: %s", c->vdir, strerror(-err));
		err = -EIO;
	}
	return err;
}

static int read_header(int fd, uint64_t *size)
{
	char header[HEADER_SIZE_AT + sizeof(*size)];
	int err = read_all(fd, header, sizeof(header), 0);
	if (err)
		return err == -EIO ? -EBADMSG : err;
	if (memcmp(header + HEADER_MAGIC_AT, MAGIC, sizeof(MAGIC)) != 0)
		return -EBADMSG;
	memcpy(size, header + HEADER_SIZE_AT, sizeof(*size));
	return 0;
}

/* Opens path holding a shared lock; fails with -ESTALE if it was replaced or evicted meanwhile. */
static int open_locked(const char *path, int *fd_out)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat a, b;
	if (flock(fd, LOCK_SH) || fstat(fd, &a) || stat(path, &b) || a.st_ino != b.st_ino) {
		close(fd);
		return -ESTALE;
	}
	*fd_out = fd;
	return 0;
}

/* Opens (creating when size_bytes > 0) the file of key. */
static int open_file(struct cache *c, const char *key, uint64_t size_bytes, int *fd,
		     uint64_t *size)
{
	char *path = entry_path(c, key);
	if (!path)
		return -ENOMEM;
	int err = -ESTALE;
	for (int tries = 0; tries < 4 && (err == -ESTALE || err == -ENOENT); tries++) {
		err = open_locked(path, fd);
		if (err == -ENOENT && size_bytes == 0)
			break;
		if (err == -ENOENT) {
			err = create_file(c, path, key, size_bytes);
			err = err ? err : -ESTALE; /* now open it */
			continue;
		}
		if (err)
			continue;
		err = read_header(*fd, size);
		if (!err && (size_bytes == 0 || *size == size_bytes))
			break;
		/* corrupt or of another size: discard it; our own lock keeps nobody else out */
		log_msg(LOG_INFO, "cache: %s is stale or damaged; fetching anew", key);
		unlink(path);
		close(*fd);
		err = -ESTALE;
	}
	free(path);
	return err;
}

static struct cache_entry *entry_new(struct cache *c, const char *key, int fd, uint64_t size)
{
	struct cache_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->c = c;
	e->fd = fd;
	e->size = size;
	e->nblocks = (size_t)((size + BLOCK - 1) / BLOCK);
	e->data_off = HEADER_LEN + map_len(size);
	e->refs = 1;
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	e->key = strdup(key);
	e->map = calloc(e->nblocks + 1, 1);
	e->inflight = calloc(e->nblocks + 1, 1);
	e->accounted = calloc(e->nblocks + 1, 1);
	if (!e->key || !e->map || !e->inflight || !e->accounted ||
	    (e->nblocks && read_all(fd, e->map, e->nblocks, HEADER_LEN))) {
		free(e->key);
		free(e->map);
		free(e->inflight);
		free(e->accounted);
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
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->cond);
	free(e->runs);
	free(e->map);
	free(e->inflight);
	free(e->accounted);
	free(e->key);
	free(e);
}

static struct cache_entry *find_open(struct cache *c, const char *key)
{
	for (struct cache_entry *e = c->entries; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* Publishes e (lock held) unless another thread opened the key first. */
static struct cache_entry *publish(struct cache *c, struct cache_entry *e)
{
	struct cache_entry *have = find_open(c, e->key);
	if (have) {
		have->refs++;
		return have;
	}
	struct disk_ent *de = disk_find(c, e->key);
	if (!de)
		de = disk_add(c, e->key, HEADER_LEN + map_len(e->size), time(NULL));
	if (!de)
		return NULL;
	de->open++;
	de->last_used = time(NULL);
	e->de = de;
	e->next = c->entries;
	c->entries = e;
	return e;
}

int cache_entry_get(struct cache *c, const char *key, uint64_t size_bytes, struct cache_entry **out)
{
	pthread_mutex_lock(&c->lock);
	struct cache_entry *e = find_open(c, key);
	if (e && (size_bytes == 0 || e->size == size_bytes)) {
		e->refs++;
		pthread_mutex_unlock(&c->lock);
		*out = e;
		return 0;
	}
	pthread_mutex_unlock(&c->lock);
	if (e)
		return -EIO; /* open with another size: a changing archive behind one key */

	int fd = -1;
	uint64_t size = 0;
	int err = open_file(c, key, size_bytes, &fd, &size);
	if (err)
		return err;
	futimens(fd, NULL); /* the LRU order survives remounts */
	struct cache_entry *mine = entry_new(c, key, fd, size);
	if (!mine) {
		close(fd);
		return -ENOMEM;
	}
	pthread_mutex_lock(&c->lock);
	e = publish(c, mine);
	pthread_mutex_unlock(&c->lock);
	if (e != mine)
		entry_free(mine);
	if (!e)
		return -ENOMEM;
	*out = e;
	return 0;
}

void cache_entry_put(struct cache_entry *e)
{
	if (!e)
		return;
	struct cache *c = e->c;
	pthread_mutex_lock(&c->lock);
	bool last = --e->refs == 0;
	if (last) {
		for (struct cache_entry **pp = &c->entries; *pp; pp = &(*pp)->next)
			if (*pp == e) {
				*pp = e->next;
				break;
			}
		if (e->de) {
			e->de->open--;
			e->de->last_used = time(NULL);
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (last)
		entry_free(e);
}

uint64_t cache_entry_size(const struct cache_entry *e)
{
	return e->size;
}

void cache_entry_discard(struct cache *c, const char *key)
{
	char *path = entry_path(c, key);
	if (path)
		unlink(path);
	free(path);
	pthread_mutex_lock(&c->lock);
	struct disk_ent *de = disk_find(c, key);
	struct cache_entry *e = find_open(c, key);
	if (e) { /* holders keep reading their unlinked file; new gets start anew */
		e->key[0] = '\0';
		e->de = NULL;
	}
	if (de)
		disk_remove(c, de);
	pthread_mutex_unlock(&c->lock);
}

/* ---- writing ---- */

/* Sets the map bytes of blocks [first, last) to value, on disk in a few large writes (a write a
 * block would contend with the data writes for the inode), then in memory: a block counts as
 * present only once its byte is on disk, and as missing at once. Entry lock held. */
static void map_set(struct cache_entry *e, uint64_t first, uint64_t last, unsigned char value)
{
	unsigned char bytes[4096];
	memset(bytes, value, sizeof(bytes));
	for (uint64_t b = first; b < last;) {
		size_t n = last - b < sizeof(bytes) ? (size_t)(last - b) : sizeof(bytes);
		if (write_all(e->fd, bytes, n, HEADER_LEN + b) == 0 || !value)
			memset(e->map + b, value, n);
		b += n;
	}
}

/* Marks the blocks wholly inside the run [start, end) that the write [w_start, w_end) touched
 * (no other block can have become whole); entry lock held. */
static void mark_covered(struct cache_entry *e, uint64_t start, uint64_t end, uint64_t w_start,
			 uint64_t w_end)
{
	uint64_t first = (start + BLOCK - 1) / BLOCK, last = end == e->size ? e->nblocks : end / BLOCK;
	if (first < w_start / BLOCK)
		first = w_start / BLOCK;
	if (last > (w_end + BLOCK - 1) / BLOCK)
		last = (w_end + BLOCK - 1) / BLOCK;
	while (first < last && e->map[first])
		first++;
	while (last > first && e->map[last - 1])
		last--;
	map_set(e, first, last, 1);
	if (first < last)
		pthread_cond_broadcast(&e->cond); /* waiting readers of these blocks may go on */
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
static int reserve(struct cache_entry *e, uint64_t off, uint64_t end)
{
	struct cache *c = e->c;
	uint64_t first = off / BLOCK, last = (end - 1) / BLOCK, need = 0;
	pthread_mutex_lock(&e->lock);
	for (uint64_t b = first; b <= last; b++)
		need += e->map[b] || e->accounted[b] ? 0 : BLOCK;
	pthread_mutex_unlock(&e->lock);
	if (need == 0)
		return 0;
	pthread_mutex_lock(&c->lock);
	int err = make_room(c, need);
	clear_skips(c);
	if (!err) {
		c->used += need;
		if (e->de)
			e->de->bytes += need;
	}
	pthread_mutex_unlock(&c->lock);
	if (err) {
		log_msg(LOG_ERR, "cache full: %" PRIu64 " bytes needed, every cached archive is in use",
			need);
		return err;
	}
	pthread_mutex_lock(&e->lock);
	for (uint64_t b = first; b <= last; b++)
		e->accounted[b] = 1;
	pthread_mutex_unlock(&e->lock);
	return 0;
}

/* Puts bytes on disk without marking them: nobody reads them until mark_stored(). */
static int store(struct cache_entry *e, uint64_t off, const void *buf, size_t len)
{
	/* the archive behind a ref may change between requests: never store bytes past its size */
	if (off > e->size || len > e->size - off)
		return -EIO;
	if (len == 0)
		return 0;
	int err = reserve(e, off, off + len);
	if (err)
		return err;
	err = write_all(e->fd, buf, len, e->data_off + off);
	if (err)
		log_msg(LOG_ERR, "cache: cannot write to the cache folder: %s", strerror(-err));
	return err;
}

/* Marks the blocks that the stored bytes [off, end) completed. */
static int mark_stored(struct cache_entry *e, uint64_t off, uint64_t end)
{
	struct run r;
	pthread_mutex_lock(&e->lock);
	int err = add_run(e, off, end, &r);
	if (!err)
		mark_covered(e, r.start, r.end, off, end);
	pthread_mutex_unlock(&e->lock);
	return err;
}

int cache_entry_write(struct cache_entry *e, uint64_t off, const void *buf, size_t len)
{
	int err = store(e, off, buf, len);
	return err || len == 0 ? err : mark_stored(e, off, off + len);
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

/* Where the bytes from off on stop being all present or all missing (blocks of the map), up to
 * end; *present says which they are. */
static uint64_t same_presence(struct cache_entry *e, uint64_t off, uint64_t end, bool *present)
{
	pthread_mutex_lock(&e->lock);
	uint64_t b = off / BLOCK;
	*present = e->map[b];
	while ((b + 1) * BLOCK < end && (bool)e->map[b + 1] == *present)
		b++;
	pthread_mutex_unlock(&e->lock);
	return (b + 1) * BLOCK < end ? (b + 1) * BLOCK : end;
}

/* Stores the bytes of [off, off+len) whose blocks are missing: a present block holds the right
 * bytes already, and an answer not yet known good must not overwrite them. */
static int writer_store(struct cache_writer *w, uint64_t off, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	if (len == 0)
		return 0;
	for (uint64_t at = off, end = off + len, stop; at < end; at = stop) {
		bool present;
		stop = same_presence(w->e, at, end, &present);
		int err = present ? 0 : store(w->e, at, p + (at - off), (size_t)(stop - at));
		if (err)
			return err;
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

/* Runs the entry's source for [off, off+len); what it stored is marked only if it succeeded. */
static int run_fetch(struct cache_entry *e, const struct cache_source *src, uint64_t off,
		     uint64_t len)
{
	if (!src->fetch)
		return -EIO;
	struct cache_writer w = {.e = e, .cap = len < WRITER_BYTES ? len : WRITER_BYTES};
	w.buf = aligned_alloc(PAGE, (w.cap + PAGE - 1) / PAGE * PAGE);
	int err = src->fetch(src->ctx, &w, off, len);
	int flushed = writer_flush(&w);
	err = err ? err : flushed;
	for (size_t i = 0; !err && i < w.n_done; i++)
		err = mark_stored(e, w.done[i].start, w.done[i].end);
	free(w.buf);
	free(w.done);
	return err;
}

void cache_entry_invalidate(struct cache_entry *e, uint64_t off, uint64_t len)
{
	if (len == 0 || off >= e->size)
		return;
	uint64_t first = off / BLOCK, last = (off + len - 1) / BLOCK + 1; /* blocks, exclusive */
	if (last > e->nblocks)
		last = e->nblocks;
	uint64_t lo = first * BLOCK, hi = last * BLOCK < e->size ? last * BLOCK : e->size;
	pthread_mutex_lock(&e->lock);
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
			keep_after = (struct run){hi, x.end}; /* runs are disjoint: at most one such */
	}
	e->n_runs = k;
	if (keep_after.end > keep_after.start) {
		struct run r;
		add_run(e, keep_after.start, keep_after.end, &r); /* on ENOMEM it is only forgotten */
	}
	map_set(e, first, last, 0);
	pthread_mutex_unlock(&e->lock);
}

/* ---- reading ---- */

/* Picks up blocks that another process fetched into the same file. Entry lock held. */
static void refresh_map(struct cache_entry *e, uint64_t first, uint64_t last)
{
	read_all(e->fd, e->map + first, (size_t)(last - first + 1), HEADER_LEN + first);
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

/* Fetches the run of missing blocks starting at b; entry lock held on entry and exit. */
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

	uint64_t off = b * BLOCK, stop = end * BLOCK < e->size ? end * BLOCK : e->size;
	atomic_fetch_add(&e->c->fetches, 1);
	int err = run_fetch(e, &src, off, stop - off);

	pthread_mutex_lock(&e->lock);
	for (uint64_t i = b; i < end; i++)
		e->inflight[i] = 0;
	pthread_cond_broadcast(&e->cond);
	if (!err) {
		for (uint64_t i = b; i < end && i <= last; i++)
			if (!e->map[i])
				err = -EIO; /* the server gave fewer bytes than asked */
		if (err) /* the one error line is the reader's */
			log_set_reason("cache: a fetch of %" PRIu64 " bytes at %" PRIu64
				       " left blocks missing", stop - off, off);
	}
	return err;
}

ssize_t cache_entry_pread(struct cache_entry *e, void *buf, size_t len, uint64_t off,
			  uint64_t min_fetch)
{
	if (off >= e->size || len == 0)
		return 0;
	if (len > e->size - off)
		len = (size_t)(e->size - off);
	uint64_t first = off / BLOCK, last = (off + len - 1) / BLOCK, b;
	int err = 0;
	bool fetched = false;
	pthread_mutex_lock(&e->lock);
	if (!has_locked(e, first, last, &b))
		refresh_map(e, first, last);
	while (!err && !has_locked(e, first, last, &b)) {
		if (e->inflight[b]) {
			pthread_cond_wait(&e->cond, &e->lock);
			continue;
		}
		fetched = true;
		err = fetch_run(e, b, last, min_fetch);
	}
	pthread_mutex_unlock(&e->lock);
	if (err || !buf)
		return err ? err : (ssize_t)len;
	atomic_fetch_add(fetched ? &e->c->miss_bytes : &e->c->hit_bytes, len);
	err = read_all(e->fd, buf, len, e->data_off + off);
	return err ? err : (ssize_t)len;
}

int cache_entry_prefetch(struct cache_entry *e, uint64_t off, uint64_t len)
{
	ssize_t n = cache_entry_pread(e, NULL, (size_t)len, off, len);
	return n < 0 ? (int)n : 0;
}

void cache_get_stats(struct cache *c, struct cache_stats *out)
{
	pthread_mutex_lock(&c->lock);
	out->used_bytes = c->used;
	out->limit_bytes = c->limit;
	out->entries = 0;
	for (struct disk_ent *d = c->disk; d; d = d->next)
		out->entries++;
	pthread_mutex_unlock(&c->lock);
	out->hit_bytes = atomic_load(&c->hit_bytes);
	out->miss_bytes = atomic_load(&c->miss_bytes);
	out->fetches = atomic_load(&c->fetches);
	out->evictions = atomic_load(&c->evictions);
}

/* cachespace: the cache folder as a space shared by the threads of a mount and by the mounts using
 * it, and the two locks that guard it: cache->lock (this process's tables of open entries and of
 * files on disk, its count of the bytes used) and the folder lock (cache->folder_lock, then the
 * flock() of DIR/v2/.lock, which holds the count for every process: this process's turn, then the
 * processes' turn). The folder lock is taken first and never under cache->lock, so no thread holds
 * cache->lock while it waits for another process or reads the folder: a scan reads the folder under
 * the folder lock alone and then updates the tables under cache->lock. Whatever changes the shared
 * count (a reservation, a scan, an eviction) holds the folder lock; when the count says the limit
 * would be passed, the folder is scanned again (the truth, files other processes made) before
 * evicting. Bytes are counted before they are written, a new file's metadata before the file is
 * made (its room made first, so a cache at its limit stays there); what is reserved but not yet on
 * disk stays pending, which a recount keeps. Eviction takes an exclusive flock() of a file without
 * waiting, so a file in use by any process is never removed (nor one another process holds for
 * an open file; this process lets go of its own holds of idle files first); files no entry here
 * references go first, then the least recently used; an evicted file is unlinked under the locks but emptied
 * (freeing its blocks: slow for a big one) only once the folder lock is released. A full disk
 * (ENOSPC, EDQUOT) evicts the same way, whatever the limit. When nothing can be evicted a write's
 * reservation fails (-ENOSPC), but a new file's metadata is counted anyway: its reader must not
 * fail. Also here: making and opening the files of entries, and the calls cache_drop(),
 * cache_discard_prefix() and cache_get_stats(). */
#include "cache_i.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "artifactfs/grow.h"
#include "artifactfs/log.h"

/* evictions tried to free a full disk for one write before giving up with ENOSPC */
#define DISK_FULL_TRIES 64

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

void cachespace_close(struct cache *c)
{
	while (c->disk) {
		struct disk_ent *d = c->disk;
		c->disk = d->next;
		free(d->key);
		free(d);
	}
}

/* ---- eviction ---- */

/* Empties an evicted file: a process holding it idle frees its space too, and makes it anew. */
static void empty_file(struct cache *c, int fd)
{
	if (ftruncate(fd, 0))
		log_msg(LOG_WARNING, "cache: cannot empty an evicted file in %s: %s", c->vdir,
			strerror(errno));
	close(fd);
}

/* Removes a file nobody uses; false when another process holds it. Folder lock and cache->lock
 * held: the name goes at once, but emptying a large file frees its blocks, which can take long,
 * so the file stays held exclusively (no process can use it) until folder_unlock() empties it. */
static bool evict_file(struct cache *c, const char *key)
{
	char *name = cachefile_name(key);
	int fd = name ? openat(c->vfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) : -1;
	bool gone = fd < 0 && errno == ENOENT;
	if (fd < 0 && name && (errno == ELOOP || errno == EACCES)) { /* planted: away with it */
		cachefile_remove(c, name);
		gone = true;
	}
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
		unlinkat(c->vfd, name, 0);
		gone = true;
		if (array_grow((void **)&c->doomed, &c->cap_doomed, c->n_doomed + 1,
			       sizeof(*c->doomed)) == 0)
			c->doomed[c->n_doomed++] = fd;
		else
			empty_file(c, fd); /* no memory to defer it: now, under the locks */
		fd = -1;
	}
	if (fd >= 0)
		close(fd);
	free(name);
	return gone;
}

/* Lets go of the shared flock() that an open file here keeps on d between calls
 * (cache_entry_hold), when no call runs on it: within this process a held file is idle like any
 * other, and its next call finds it evicted and fetches again. Under the folder lock and
 * cache->lock, which come after io_lock: hence trylock; an entry whose io_lock is taken has a
 * call starting or ending, and counts as in use. cache->lock held. */
static void let_go(struct cache *c, const struct disk_ent *d)
{
	for (struct cache_entry *e = c->entries; e; e = e->next) {
		if (e->de != d || pthread_mutex_trylock(&e->io_lock))
			continue;
		if (e->active == 0 && e->locked) {
			flock(e->fd, LOCK_UN);
			e->locked = false;
		}
		pthread_mutex_unlock(&e->io_lock);
	}
}

/* Whether d should be evicted before lru: files not referenced here first, then the least
 * recently used. */
static bool evict_before(const struct disk_ent *d, const struct disk_ent *lru)
{
	if (!lru || (d->open > 0) != (lru->open > 0))
		return !lru || d->open == 0;
	return d->last_used < lru->last_used;
}

/* Evicts the least recently used file no call uses: 1 when it went, 0 when it was in use (it is
 * skipped until clear_skips()), -ENOSPC when there is none. Folder lock and cache->lock held. */
static int evict_lru(struct cache *c)
{
	struct disk_ent *lru = NULL;
	for (struct disk_ent *d = c->disk; d; d = d->next)
		if (!d->skip && d->bytes > 0 && evict_before(d, lru))
			lru = d;
	if (!lru)
		return -ENOSPC;
	if (lru->open > 0)
		let_go(c, lru);
	if (!evict_file(c, lru->key)) {
		lru->last_used = time(NULL); /* in use: try others first */
		lru->skip = true;            /* and not again in this call */
		return 0;
	}
	log_msg(LOG_DEBUG, "cache: evicted %s (%" PRIu64 " bytes)", lru->key, lru->bytes);
	atomic_fetch_add(&c->evictions, 1);
	if (lru->open > 0) { /* its entries here make it anew on their next call */
		c->used -= lru->bytes < c->used ? lru->bytes : c->used;
		lru->bytes = 0;
	} else
		disk_remove(c, lru);
	return 1;
}

/* Makes room for need more bytes, evicting least recently used files. Both locks held. */
static int make_room(struct cache *c, uint64_t need)
{
	int err = 0;
	while (!err && c->used + need > c->limit)
		err = evict_lru(c) < 0 ? -ENOSPC : 0;
	return err;
}

static void clear_skips(struct cache *c)
{
	for (struct disk_ent *d = c->disk; d; d = d->next)
		d->skip = false;
}

/* ---- the folder lock, and the count shared by the processes using the folder ---- */

/* Takes the folder lock and returns the count .lock holds: the bytes used by the whole folder,
 * as the last process to change it saw them. cache->lock must not be held (the flock() waits
 * for other processes). Held only for a count's update, a scan or evictions, never during I/O
 * of data. */
static uint64_t folder_lock(struct cache *c)
{
	pthread_mutex_lock(&c->folder_lock);
	while (flock(c->lockfd, LOCK_EX) && errno == EINTR)
		;
	uint64_t used = 0;
	/* past the page cache: another machine's client wrote it last */
	if (cachefile_read_fresh(c, c->lockfd, &used, sizeof(used), 0))
		used = 0;
	return used;
}

/* Writes this process's count to .lock, releases the folder lock, then empties and closes the
 * files evicted meanwhile. */
static void folder_unlock(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	uint64_t used = c->used;
	pthread_mutex_unlock(&c->lock);
	if (pwrite(c->lockfd, &used, sizeof(used), 0) != (ssize_t)sizeof(used))
		log_msg(LOG_WARNING, "cache: cannot update %s/" LOCK_NAME ": %s", c->vdir,
			strerror(errno));
	flock(c->lockfd, LOCK_UN);
	int *fds = c->doomed;
	size_t n = c->n_doomed;
	c->doomed = NULL;
	c->n_doomed = c->cap_doomed = 0;
	pthread_mutex_unlock(&c->folder_lock);
	for (size_t i = 0; i < n; i++)
		empty_file(c, fds[i]);
	free(fds);
}

/* ---- scanning the folder ---- */

/* A <key>.afs file found by a scan, before the table learns of it. */
struct found {
	char *key;
	uint64_t bytes;
	time_t mtime;
};

/* A temporary file is stale when its writer is gone: the writer holds its flock() from making
 * it to linking it into place, and the file system drops it when the writer dies (on a shared
 * one, when its server evicts the dead client). Not a PID: that names a process of one machine,
 * and the folder may be shared by several. */
static bool tmp_is_stale(struct cache *c, const char *name)
{
	int fd = openat(c->vfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP || errno == EACCES; /* planted: away with it */
	bool stale = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	return stale;
}

/* Notes one <key>.afs file found by a scan; a file that is not ours is removed. */
static int scan_file(struct cache *c, const char *name, size_t n, const struct stat *st,
		     struct found **f, size_t *nf, size_t *cap)
{
	if (!cachefile_is_ours(st)) {
		log_msg(LOG_WARNING, "cache: %s/%s is not a private file of ours; removed", c->vdir,
			name);
		cachefile_remove(c, name);
		return 0;
	}
	char *key = strndup(name, n - 4);
	if (!key || array_grow((void **)f, cap, *nf + 1, sizeof(**f))) {
		free(key);
		return -ENOMEM;
	}
	(*f)[(*nf)++] = (struct found){key, (uint64_t)st->st_blocks * 512, st->st_mtime};
	return 0;
}

/* Lists the folder's files into *f and removes stale temporaries and files not ours. Folder
 * lock held, cache->lock not. On -ENOMEM *f holds what was found before. */
static int read_folder(struct cache *c, struct found **f, size_t *nf)
{
	int fd = dup(c->vfd);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	rewinddir(d); /* the duplicate shares its offset with vfd */
	struct dirent *de;
	size_t cap = 0;
	int err = 0;
	while (!err && (de = readdir(d))) {
		struct stat st;
		size_t n = strlen(de->d_name);
		if (fstatat(c->vfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (strncmp(de->d_name, ".tmp-", 5) == 0) {
			if (tmp_is_stale(c, de->d_name))
				cachefile_remove(c, de->d_name);
		} else if (n > 4 && strcmp(de->d_name + n - 4, ".afs") == 0) {
			err = scan_file(c, de->d_name, n, &st, f, nf, &cap);
		}
	}
	closedir(d);
	return err;
}

/* Counts what a scan found in the table; cache->lock held. */
static int scan_note(struct cache *c, const struct found *f)
{
	struct disk_ent *d = disk_find(c, f->key);
	if (!d)
		d = disk_add(c, f->key, 0, f->mtime);
	if (!d)
		return -ENOMEM;
	d->bytes = f->bytes;
	d->seen = true;
	if (f->mtime > d->last_used)
		d->last_used = f->mtime;
	return 0;
}

/* Forgets files that are gone (unless open here) and recounts; cache->lock held. */
static void scan_done(struct cache *c, uint64_t pending)
{
	for (struct disk_ent *d = c->disk, *next; d; d = next) {
		next = d->next;
		if (!d->seen && d->open == 0)
			disk_remove(c, d);
	}
	c->used = pending; /* parallel fetches write what they reserved after the recount */
	for (struct disk_ent *d = c->disk; d; d = d->next)
		c->used += d->bytes;
}

/* Brings the table of files up to date with the folder (files other processes made, grew or
 * removed) and removes stale temporaries. Folder lock held, cache->lock not: the folder is read
 * first, then the table is updated under cache->lock. */
static int scan(struct cache *c)
{
	/* reservations are made under the folder lock: what is pending now is all that can be
	 * during the scan, and what a write puts on disk meanwhile is counted, if twice, not lost */
	pthread_mutex_lock(&c->lock);
	uint64_t pending = c->pending;
	pthread_mutex_unlock(&c->lock);
	struct found *f = NULL;
	size_t nf = 0;
	int err = read_folder(c, &f, &nf);
	if (err && err != -ENOMEM) {
		free(f);
		return err;
	}
	pthread_mutex_lock(&c->lock);
	for (struct disk_ent *x = c->disk; x; x = x->next)
		x->seen = false;
	for (size_t i = 0; i < nf; i++)
		err = err ? err : scan_note(c, &f[i]);
	scan_done(c, pending);
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < nf; i++)
		free(f[i].key);
	free(f);
	return err;
}

int cachespace_scan_at_open(struct cache *c)
{
	folder_lock(c);
	int err = scan(c); /* the truth, whatever the count said */
	folder_unlock(c);
	return err;
}

/* ---- counting bytes before they are written ---- */

/* Adds need bytes to the folder's count (used, as .lock holds it) and to what is pending,
 * evicting first when they would pass the limit: then the count is redone from the folder,
 * which other processes may have filled. With force they are counted even when nothing can be
 * evicted. Folder lock held, cache->lock not. */
static int count_need(struct cache *c, uint64_t used, uint64_t need, bool force,
		      struct cache_entry *e)
{
	int err = 0;
	if (used + need > c->limit) {
		scan(c); /* on ENOMEM the table is what it was: still a fair guess */
		pthread_mutex_lock(&c->lock);
		err = make_room(c, need);
		clear_skips(c);
	} else {
		pthread_mutex_lock(&c->lock);
		c->used = used;
	}
	if (force)
		err = 0;
	if (!err) {
		c->used += need;
		c->pending += need;
		if (e && e->de)
			e->de->bytes += need;
	}
	pthread_mutex_unlock(&c->lock);
	return err;
}

int cachespace_reserve(struct cache_entry *e, uint64_t need)
{
	struct cache *c = e->c;
	int err = count_need(c, folder_lock(c), need, false, e);
	folder_unlock(c);
	return err;
}

void cachespace_release(struct cache *c, uint64_t reserved)
{
	pthread_mutex_lock(&c->lock);
	c->pending -= reserved;
	pthread_mutex_unlock(&c->lock);
}

/* Frees disk space for a write that found the disk full: evicts the least recently used file
 * that no process uses, whatever the limit. 0 when one went, -ENOSPC when none can. */
static int free_disk(struct cache *c)
{
	folder_lock(c);
	int got = scan(c) == -ENOMEM ? -ENOSPC : 0;
	pthread_mutex_lock(&c->lock);
	while (got == 0)
		got = evict_lru(c);
	clear_skips(c);
	pthread_mutex_unlock(&c->lock);
	folder_unlock(c);
	if (got < 0) /* the one error line is the reader's */
		log_set_reason("cache: the disk of %s is full and every cached archive is in use",
			       c->vdir);
	return got < 0 ? -ENOSPC : 0;
}

int cachespace_write(struct cache *c, int fd, const void *buf, size_t len, uint64_t off)
{
	int err = cachefile_write_all(fd, buf, len, off);
	for (int i = 0; err == -ENOSPC && i < DISK_FULL_TRIES && free_disk(c) == 0; i++)
		err = cachefile_write_all(fd, buf, len, off);
	return err;
}

/* ---- making files ---- */

/* Gives the header, map and checksums their disk blocks now, so that marking a block present
 * never meets a full disk. No lock held. */
static int allocate_meta(struct cache *c, int fd, uint64_t size)
{
	int err = cachefile_allocate_meta(fd, size);
	for (int i = 0; err == -ENOSPC && i < DISK_FULL_TRIES && free_disk(c) == 0; i++)
		err = cachefile_allocate_meta(fd, size);
	return err;
}

/* Fills a new file: header, room for its metadata, its full length (sparse). */
static int init_file(struct cache *c, int fd, uint64_t size)
{
	char header[HEADER_LEN];
	cachefile_header(header, size);
	int err = allocate_meta(c, fd, size);
	if (!err)
		err = cachespace_write(c, fd, header, sizeof(header), 0);
	if (!err)
		err = cachefile_set_length(fd, size);
	return err;
}

/* Creates the file under a temporary name and links it into place (never over another). */
static int create_file(struct cache *c, const char *name, const char *key, uint64_t size)
{
	static atomic_uint serial;
	char *tmp = NULL;
	if (size > MAX_ARCHIVE_BYTES)
		return -EFBIG;
	/* its flock() says its writer lives (tmp_is_stale); the pid is only for people */
	if (asprintf(&tmp, ".tmp-%s-%u-%ld", key, atomic_fetch_add(&serial, 1), (long)getpid()) < 0)
		return -ENOMEM;
	cachefile_remove(c, tmp);
	int fd = openat(c->vfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int err = fd < 0 ? -errno : flock(fd, LOCK_EX) ? -errno : init_file(c, fd, size);
	/* ENOENT: a scan judged it stale in the instant before its flock(): the caller tries
	 * again, as when another process made the file first */
	if (!err && linkat(c->vfd, tmp, c->vfd, name, 0) && errno != EEXIST && errno != ENOENT)
		err = -errno;
	unlinkat(c->vfd, tmp, 0);
	if (fd >= 0)
		close(fd); /* after the unlink: its lock said it was alive until then */
	free(tmp);
	if (err && err != -ENOSPC && err != -EDQUOT && err != -ENOMEM && err != -EFBIG) {
		/* the cache folder itself is broken (removed, made read-only): say so, once per try */
		log_msg(LOG_ERR, "cache: cannot create a file in %s: %s", c->vdir, strerror(-err));
		err = -EIO;
	}
	return err;
}

/* Counts the metadata of a file about to be made (once per cachespace_open_file()), making
 * room for it first: a cache at its limit stays there. */
static void reserve_meta(struct cache *c, uint64_t size, uint64_t *reserved)
{
	if (*reserved || size > MAX_ARCHIVE_BYTES)
		return;
	*reserved = meta_len(size);
	count_need(c, folder_lock(c), *reserved, true, NULL);
	folder_unlock(c);
}

/* One try of cachespace_open_file(): 0 when *fd is a good file of the size asked (any size when
 * size_bytes is 0), -ESTALE to try again, else the error. */
static int open_try(struct cache *c, const char *name, const char *key, uint64_t size_bytes,
		    int *fd, uint64_t *size, uint64_t *reserved)
{
	int err = cachefile_open_locked(c, name, fd);
	if (err == -ENOENT && size_bytes > 0) {
		reserve_meta(c, size_bytes, reserved);
		err = create_file(c, name, key, size_bytes);
		return err ? err : -ESTALE; /* now open it */
	}
	bool opened = !err;
	if (opened)
		err = cachefile_read_header(*fd, size);
	if (!err && (size_bytes == 0 || *size == size_bytes))
		return 0;
	if (opened)
		close(*fd);
	if (err && err != -EBADMSG)
		return err;
	/* damaged, foreign or of another size: discard it; our own lock keeps others out */
	log_msg(err ? LOG_WARNING : LOG_INFO, "cache: %s is %s; fetching it anew", key,
		err ? "damaged or not ours" : "of another size");
	cachefile_remove(c, name);
	return -ESTALE;
}

int cachespace_open_file(struct cache *c, const char *key, uint64_t size_bytes, int *fd,
			 uint64_t *size, uint64_t *reserved)
{
	char *name = cachefile_name(key);
	*reserved = 0;
	if (!name)
		return -ENOMEM;
	int err = -ESTALE;
	for (int tries = 0; tries < 4 && err == -ESTALE; tries++)
		err = open_try(c, name, key, size_bytes, fd, size, reserved);
	free(name);
	if (err && *reserved) {
		cachespace_release(c, *reserved); /* a recount then sees what is on disk */
		*reserved = 0;
	}
	return err;
}

/* ---- the table of entries open here ---- */

static struct cache_entry *find_open(struct cache *c, const char *key)
{
	for (struct cache_entry *e = c->entries; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

int cachespace_hold(struct cache *c, const char *key, uint64_t size_bytes, struct cache_entry **out)
{
	pthread_mutex_lock(&c->lock);
	struct cache_entry *e = find_open(c, key);
	bool same = e && (size_bytes == 0 || e->size == size_bytes);
	if (same)
		e->refs++;
	pthread_mutex_unlock(&c->lock);
	*out = same ? e : NULL;
	return e && !same ? -EIO : 0; /* open with another size: a changing archive behind a key */
}

struct cache_entry *cachespace_publish(struct cache *c, struct cache_entry *e, uint64_t reserved)
{
	pthread_mutex_lock(&c->lock);
	c->pending -= reserved; /* a file now, that a recount sees */
	struct cache_entry *have = find_open(c, e->key);
	if (have) {
		have->refs++;
		pthread_mutex_unlock(&c->lock);
		return have;
	}
	struct disk_ent *de = disk_find(c, e->key);
	if (!de) {
		/* a new file's header, map and checksums count at once: counted when reserved if
		 * made here, else by the process that made it, in the shared count */
		de = disk_add(c, e->key, e->data_off, time(NULL));
		if (de)
			c->used -= reserved < c->used ? reserved : c->used;
	}
	if (de) {
		de->open++;
		de->last_used = time(NULL);
		e->de = de;
		e->next = c->entries;
		c->entries = e;
	}
	pthread_mutex_unlock(&c->lock);
	return de ? e : NULL;
}

bool cachespace_unhold(struct cache_entry *e)
{
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
	return last;
}

void cachespace_discard(struct cache *c, const char *key)
{
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

void cachespace_key(struct cache_entry *e, char *buf, size_t n)
{
	pthread_mutex_lock(&e->c->lock);
	snprintf(buf, n, "%s", e->key);
	pthread_mutex_unlock(&e->c->lock);
}

void cachespace_revived(struct cache_entry *e, uint64_t reserved)
{
	struct cache *c = e->c;
	pthread_mutex_lock(&c->lock);
	c->pending -= reserved; /* counted: it moves into the table */
	if (e->de)
		e->de->bytes = e->data_off;
	pthread_mutex_unlock(&c->lock);
}

/* ---- the calls on the whole folder ---- */

int cache_drop(struct cache *c)
{
	folder_lock(c);
	int err = scan(c); /* the files of every process using the folder */
	pthread_mutex_lock(&c->lock);
	uint64_t before = c->used;
	while (evict_lru(c) >= 0)
		;
	clear_skips(c);
	uint64_t after = c->used;
	pthread_mutex_unlock(&c->lock);
	log_msg(LOG_INFO, "cache: dropped %" PRIu64 " bytes on request, %" PRIu64 " in use remain",
		before - after, after);
	folder_unlock(c);
	return err;
}

/* Adds key to *keys when it starts with prefix; -ENOMEM. */
static int note_key(const char *key, const char *prefix, char ***keys, size_t *n, size_t *cap)
{
	if (strncmp(key, prefix, strlen(prefix)) != 0)
		return 0;
	char *k = strdup(key);
	if (!k || array_grow((void **)keys, cap, *n + 1, sizeof(**keys))) {
		free(k);
		return -ENOMEM;
	}
	(*keys)[(*n)++] = k;
	return 0;
}

void cache_discard_prefix(struct cache *c, const char *prefix)
{
	struct found *f = NULL;
	size_t nf = 0, n = 0, cap = 0;
	char **keys = NULL;
	folder_lock(c);
	int err = read_folder(c, &f, &nf); /* the files of every process */
	folder_unlock(c);
	for (size_t i = 0; i < nf; i++) {
		err = err ? err : note_key(f[i].key, prefix, &keys, &n, &cap);
		free(f[i].key);
	}
	free(f);
	pthread_mutex_lock(&c->lock); /* entries open here, their file evicted or not */
	for (struct cache_entry *e = c->entries; e && !err; e = e->next)
		if (e->key[0])
			err = note_key(e->key, prefix, &keys, &n, &cap);
	pthread_mutex_unlock(&c->lock);
	if (err)
		log_msg(LOG_WARNING, "cache: cannot list the entries of %s* to discard them: %s",
			prefix, strerror(-err));
	for (size_t i = 0; i < n; i++) {
		char *name = cachefile_name(keys[i]);
		if (name)
			cachefile_remove(c, name);
		free(name);
		cachespace_discard(c, keys[i]);
		free(keys[i]);
	}
	free(keys);
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
	out->hit_own_bytes = atomic_load(&c->hit_own_bytes);
	out->hit_shared_bytes = atomic_load(&c->hit_shared_bytes);
	out->hit_bytes = out->hit_own_bytes + out->hit_shared_bytes;
	out->miss_bytes = atomic_load(&c->miss_bytes);
	out->fetches = atomic_load(&c->fetches);
	out->evictions = atomic_load(&c->evictions);
}

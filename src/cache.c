/* cache: archive bytes on disk, shared by the threads of a mount and by mounts sharing a folder.
 *
 * One file per archive, DIR/v2/<key>.afs: a 4 KiB header (magic, archive size), the block map
 * (one byte per CACHE_BLOCK_SIZE block, 1 = present, padded to 4 KiB), the blocks' CRC-32C
 * checksums (4 bytes each, host order, padded to 4 KiB), then the archive's bytes at their own
 * offsets in a sparse region. A block's bytes are written before its checksum and its checksum
 * before its map byte, and map bytes are written one by one (no read-modify-write), so any
 * process, or a daemon killed at any moment, sees a block as present only when all of it and its
 * checksum are on disk. Files are made under a temporary name and linked into place, never over
 * an existing one.
 *
 * Nothing on disk is trusted: a file is used only when it is a regular file of ours that nobody
 * else may write, reached without following a symlink (every path is opened relative to the
 * folder's descriptor with O_NOFOLLOW), whose length is exactly what its header's size implies;
 * every block read from disk is checked against its checksum once per mount before it is served.
 * Anything else is discarded and fetched again.
 *
 * A process holds a shared flock() on a file while a call on it runs (a read, a fetch, a write);
 * eviction takes an exclusive one without waiting, so a file in use anywhere is never removed.
 * A file referenced but idle may be evicted (emptied, then unlinked): the first call on it
 * afterwards finds its file gone and makes it anew. Files no process here references go first.
 * The bytes used by the folder are counted in DIR/v2/.lock, which every process updates under an
 * exclusive flock() of it; when the count says the limit would be passed, the folder is scanned
 * again (the truth) before evicting.
 * A full disk (ENOSPC, EDQUOT) also evicts, as if the limit were reached.
 *
 * Lock order: entry->io_lock, then cache->lock, then the .lock file's flock(), then entry->lock.
 * No lock is held while a fetch runs but the file's shared flock(). */
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

#include "artifactfs/crc.h"
#include "artifactfs/grow.h"
#include "artifactfs/log.h"

/* the version is in the magic and the folder's name: files of another layout are never read */
#define MAGIC "AFSCACHE2"
#define VERSION_DIR "v2"
#define OLD_VERSION_DIR "v1"
#define LOCK_NAME ".lock"
#define HEADER_LEN 4096u
#define HEADER_MAGIC_AT 0u /* MAGIC with its NUL */
#define HEADER_SIZE_AT 16u /* the archive's size, uint64_t in host order */
#define PAGE 4096u
#define BLOCK ((uint64_t)CACHE_BLOCK_SIZE)
#define SUM_LEN 4u
#define STALE_TMP_S 600
/* a header claiming more is damage (and would make us allocate its map) */
#define MAX_ARCHIVE_BYTES (1ull << 42)
/* evictions tried to free a full disk for one write before giving up with ENOSPC */
#define DISK_FULL_TRIES 64

/* An archive file on disk, known to this process. */
struct disk_ent {
	char *key;
	uint64_t bytes;        /* protected by cache->lock */
	time_t last_used;      /* protected by cache->lock */
	int open;              /* entries open on it; protected by cache->lock */
	bool seen;             /* found by the running scan; protected by cache->lock */
	bool skip;             /* in use elsewhere: not tried again by this eviction; c->lock */
	struct disk_ent *next; /* protected by cache->lock */
};

struct cache {
	char *vdir; /* for messages only: files are reached through vfd */
	int vfd;    /* DIR/v2, opened once without following symlinks */
	int lockfd; /* DIR/v2/.lock: flock()ed around the shared count it holds */
	uint64_t limit;
	pthread_mutex_t lock;
	struct cache_entry *entries; /* open entries; protected by lock */
	struct disk_ent *disk;       /* protected by lock */
	uint64_t used;               /* protected by lock */
	uint64_t pending;            /* protected by lock: reserved by writes not yet on disk,
	                                which a recount from the folder cannot see */
	int *doomed;                 /* protected by lock: evicted files, unlinked, still held
	                                exclusively, to be emptied and closed by
	                                unlock_and_reap() */
	size_t n_doomed, cap_doomed; /* protected by lock */
	atomic_uint_fast64_t hit_bytes, miss_bytes, fetches, evictions;
};

struct run {
	uint64_t start, end;
};

struct cache_entry {
	struct cache *c;
	char *key;
	int refs;                 /* protected by c->lock */
	struct disk_ent *de;      /* protected by c->lock */
	struct cache_entry *next; /* protected by c->lock */
	int fd;                   /* replaced (lock and io_lock held) only when no call runs */
	uint64_t size;
	size_t nblocks;
	uint64_t sums_off; /* where block 0's checksum is in the file */
	uint64_t data_off; /* where byte 0 of the archive is in the file */
	pthread_mutex_t io_lock;
	int active; /* protected by io_lock: calls running; they hold fd's flock() */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned char *map;       /* protected by lock */
	unsigned char *inflight;  /* protected by lock */
	unsigned char *accounted; /* protected by lock: the block's bytes count in cache->used */
	unsigned char *verified;  /* protected by lock: checked against its checksum (or written) by
				  * this process since it was last marked present */
	struct run *runs;         /* protected by lock: contiguous writes not yet whole blocks */
	size_t n_runs;            /* protected by lock */
	struct cache_source src;  /* protected by lock; set once by cache_entry_bind */
};

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

/* The file's name in c->vfd. */
static char *entry_name(const char *key)
{
	char *p = NULL;
	return asprintf(&p, "%s.afs", key) < 0 ? NULL : p;
}

/* ---- files below the folder: never through a symlink, only ours ---- */

/* A file we may trust: regular, ours, writable by nobody else. */
static bool file_is_ours(const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_uid == geteuid() && !(st->st_mode & 022);
}

/* Removes name (a file, a planted symlink or folder) from the folder. */
static void remove_name(struct cache *c, const char *name)
{
	if (unlinkat(c->vfd, name, 0) && errno == EISDIR)
		unlinkat(c->vfd, name, AT_REMOVEDIR);
}

/* Opens a directory below dirfd without following a symlink; it must be ours, 0700. */
static int open_private_dir(int dirfd, const char *name, int *out)
{
	if (mkdirat(dirfd, name, 0700) && errno != EEXIST)
		return -errno;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? -ENOTDIR : -errno;
	struct stat st;
	int err = fstat(fd, &st) ? -errno : 0;
	if (!err && st.st_uid != geteuid())
		err = -EACCES;
	if (!err && (st.st_mode & 077) && fchmod(fd, 0700))
		err = -errno;
	if (err) {
		close(fd);
		return err;
	}
	*out = fd;
	return 0;
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

/* Empties an evicted file: a process holding it idle frees its space too, and makes it anew. */
static void empty_file(struct cache *c, int fd)
{
	if (ftruncate(fd, 0))
		log_msg(LOG_WARNING, "cache: cannot empty an evicted file in %s: %s", c->vdir,
			strerror(errno));
	close(fd);
}

/* Removes a file nobody uses; false when another process holds it. Lock held: the name goes
 * at once, but emptying a large file frees its blocks, which can take long, so the file stays
 * held exclusively (no process can use it) until unlock_and_reap() empties it. */
static bool evict_file(struct cache *c, const char *key)
{
	char *name = entry_name(key);
	int fd = name ? openat(c->vfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) : -1;
	bool gone = fd < 0 && errno == ENOENT;
	if (fd < 0 && name && (errno == ELOOP || errno == EACCES)) { /* planted: away with it */
		remove_name(c, name);
		gone = true;
	}
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
		unlinkat(c->vfd, name, 0);
		gone = true;
		if (array_grow((void **)&c->doomed, &c->cap_doomed, c->n_doomed + 1,
			       sizeof(*c->doomed)) == 0)
			c->doomed[c->n_doomed++] = fd;
		else
			empty_file(c, fd); /* no memory to defer it: now, under the lock */
		fd = -1;
	}
	if (fd >= 0)
		close(fd);
	free(name);
	return gone;
}

/* Releases the lock of a call that may have evicted, then empties and closes what it evicted
 * (taken while still held, so no second trip through the lock on the write path). */
static void unlock_and_reap(struct cache *c)
{
	int *fds = c->doomed;
	size_t n = c->n_doomed;
	c->doomed = NULL;
	c->n_doomed = c->cap_doomed = 0;
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < n; i++)
		empty_file(c, fds[i]);
	free(fds);
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
 * skipped until clear_skips()), -ENOSPC when there is none. Lock held. */
static int evict_lru(struct cache *c)
{
	struct disk_ent *lru = NULL;
	for (struct disk_ent *d = c->disk; d; d = d->next)
		if (!d->skip && d->bytes > 0 && evict_before(d, lru))
			lru = d;
	if (!lru)
		return -ENOSPC;
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

/* Makes room for need more bytes, evicting least recently used files. Lock held. */
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

/* ---- the count shared by the processes using the folder ---- */

/* The .lock file holds the bytes used by the whole folder, as the last process to change it
 * saw them. Its flock() is held only for a count's update or a scan, never during I/O of data. */
static uint64_t shared_lock(struct cache *c)
{
	while (flock(c->lockfd, LOCK_EX) && errno == EINTR)
		;
	uint64_t used = 0;
	if (pread(c->lockfd, &used, sizeof(used), 0) != (ssize_t)sizeof(used))
		used = 0;
	return used;
}

static void shared_unlock(struct cache *c, uint64_t used)
{
	if (pwrite(c->lockfd, &used, sizeof(used), 0) != (ssize_t)sizeof(used))
		log_msg(LOG_WARNING, "cache: cannot update %s/" LOCK_NAME ": %s", c->vdir,
			strerror(errno));
	flock(c->lockfd, LOCK_UN);
}

/* ---- scanning the folder ---- */

static bool tmp_is_stale(const char *name, const struct stat *st)
{
	long pid = 0;
	const char *dash = strrchr(name, '-');
	if (dash)
		pid = strtol(dash + 1, NULL, 10);
	bool dead = pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
	return dead || time(NULL) - st->st_mtime > STALE_TMP_S;
}

/* Counts one <key>.afs file found by a scan; a file that is not ours is removed. */
static int scan_file(struct cache *c, const char *name, size_t n, const struct stat *st)
{
	if (!file_is_ours(st)) {
		log_msg(LOG_WARNING, "cache: %s/%s is not a private file of ours; removed", c->vdir,
			name);
		remove_name(c, name);
		return 0;
	}
	char *key = strndup(name, n - 4);
	if (!key)
		return -ENOMEM;
	struct disk_ent *d = disk_find(c, key);
	if (!d)
		d = disk_add(c, key, 0, st->st_mtime);
	free(key);
	if (!d)
		return -ENOMEM;
	d->bytes = (uint64_t)st->st_blocks * 512;
	d->seen = true;
	if (st->st_mtime > d->last_used)
		d->last_used = st->st_mtime;
	return 0;
}

/* Forgets files that are gone (unless open here) and recounts; lock held. */
static void scan_done(struct cache *c)
{
	for (struct disk_ent *d = c->disk, *next; d; d = next) {
		next = d->next;
		if (!d->seen && d->open == 0)
			disk_remove(c, d);
	}
	c->used = c->pending; /* parallel fetches write what they reserved after the recount */
	for (struct disk_ent *d = c->disk; d; d = d->next)
		c->used += d->bytes;
}

/* Brings the table of files up to date with the folder (files other processes made, grew or
 * removed) and removes stale temporaries. Lock held (and the shared one, but at open). */
static int scan(struct cache *c)
{
	int fd = dup(c->vfd);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	rewinddir(d); /* the duplicate shares its offset with vfd */
	for (struct disk_ent *x = c->disk; x; x = x->next)
		x->seen = false;
	struct dirent *de;
	int err = 0;
	while (!err && (de = readdir(d))) {
		struct stat st;
		size_t n = strlen(de->d_name);
		if (fstatat(c->vfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (strncmp(de->d_name, ".tmp-", 5) == 0) {
			if (tmp_is_stale(de->d_name, &st))
				remove_name(c, de->d_name);
		} else if (n > 4 && strcmp(de->d_name + n - 4, ".afs") == 0) {
			err = scan_file(c, de->d_name, n, &st);
		}
	}
	closedir(d);
	scan_done(c);
	return err;
}

/* Removes the files of an older layout that no process uses, then their folder if empty. */
static void drop_old_version(int rootfd)
{
	int fd = openat(rootfd, OLD_VERSION_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		int f = openat(dirfd(d), de->d_name,
			       O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (f >= 0 && flock(f, LOCK_EX | LOCK_NB) == 0)
			unlinkat(dirfd(d), de->d_name, 0);
		if (f >= 0)
			close(f);
	}
	closedir(d);
	unlinkat(rootfd, OLD_VERSION_DIR, AT_REMOVEDIR);
}

/* Opens the folder's version directory and its lock file, never through a symlink. */
static int open_folder(struct cache *c, const char *abs)
{
	int rootfd = open(abs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0)
		return -errno;
	int err = open_private_dir(rootfd, VERSION_DIR, &c->vfd);
	if (!err)
		drop_old_version(rootfd);
	close(rootfd);
	if (err)
		return err;
	c->lockfd = openat(c->vfd, LOCK_NAME,
			   O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	if (c->lockfd < 0)
		return errno == ELOOP ? -EACCES : -errno;
	struct stat st;
	if (fstat(c->lockfd, &st))
		return -errno;
	return file_is_ours(&st) ? 0 : -EACCES;
}

int cache_open(const char *dir, uint64_t limit_bytes, struct cache **out)
{
	struct cache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->limit = limit_bytes;
	c->vfd = c->lockfd = -1;
	int err = mkdir_parents(dir);
	/* absolute: libfuse moves a daemon to "/" when it leaves the terminal */
	char *abs = err ? NULL : realpath(dir, NULL);
	if (!err && !abs)
		err = -errno;
	if (!err && asprintf(&c->vdir, "%s/" VERSION_DIR, abs) < 0) {
		c->vdir = NULL;
		err = -ENOMEM;
	}
	if (!err)
		err = open_folder(c, abs);
	free(abs);
	if (!err) {
		shared_lock(c);
		err = scan(c); /* the truth, whatever the count said */
		shared_unlock(c, c->used);
	}
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
	if (c->lockfd >= 0)
		close(c->lockfd);
	if (c->vfd >= 0)
		close(c->vfd);
	pthread_mutex_destroy(&c->lock);
	free(c->vdir);
	free(c);
}

static size_t map_len(uint64_t size)
{
	size_t nblocks = (size_t)((size + BLOCK - 1) / BLOCK);
	return (nblocks + PAGE - 1) / PAGE * PAGE;
}

static size_t sums_len(uint64_t size)
{
	size_t nblocks = (size_t)((size + BLOCK - 1) / BLOCK);
	return (nblocks * SUM_LEN + PAGE - 1) / PAGE * PAGE;
}

/* The exact length of the file of an archive of size bytes. */
static uint64_t file_len(uint64_t size)
{
	return HEADER_LEN + map_len(size) + sums_len(size) + size;
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

/* Frees disk space for a write that found the disk full: evicts the least recently used file
 * that no process uses, whatever the limit. 0 when one went, -ENOSPC when none can. */
static int free_disk(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	shared_lock(c);
	int got = scan(c) == -ENOMEM ? -ENOSPC : 0;
	while (got == 0)
		got = evict_lru(c);
	clear_skips(c);
	shared_unlock(c, c->used);
	unlock_and_reap(c);
	if (got < 0) /* the one error line is the reader's */
		log_set_reason("cache: the disk of %s is full and every cached archive is in use",
			       c->vdir);
	return got < 0 ? -ENOSPC : 0;
}

/* write_all, making room when the disk is full; no lock held. */
static int write_room(struct cache *c, int fd, const void *buf, size_t len, uint64_t off)
{
	int err = write_all(fd, buf, len, off);
	for (int i = 0; err == -ENOSPC && i < DISK_FULL_TRIES && free_disk(c) == 0; i++)
		err = write_all(fd, buf, len, off);
	return err;
}

/* Gives the header, map and checksums their disk blocks now, so that marking a block present
 * never meets a full disk (tmpfs allocates on write). No lock held. */
static int allocate_meta(struct cache *c, int fd, uint64_t meta_len)
{
	int err = posix_fallocate(fd, 0, (off_t)meta_len);
	for (int i = 0;
	     (err == ENOSPC || err == EDQUOT) && i < DISK_FULL_TRIES && free_disk(c) == 0; i++)
		err = posix_fallocate(fd, 0, (off_t)meta_len);
	if (err == EINVAL || err == EOPNOTSUPP)
		err = 0; /* a file system without it: the writes allocate */
	return err == EDQUOT ? -ENOSPC : -err;
}

/* Fills a new file: header, room for its metadata, its full length (sparse). */
static int init_file(struct cache *c, int fd, uint64_t size)
{
	char header[HEADER_LEN] = {0};
	memcpy(header + HEADER_MAGIC_AT, MAGIC, sizeof(MAGIC));
	memcpy(header + HEADER_SIZE_AT, &size, sizeof(size));
	int err = allocate_meta(c, fd, HEADER_LEN + map_len(size) + sums_len(size));
	if (!err)
		err = write_room(c, fd, header, sizeof(header), 0);
	if (!err && ftruncate(fd, (off_t)file_len(size)))
		err = errno == EFBIG || errno == ENOSPC ? -ENOSPC : -errno;
	return err;
}

/* Creates the file under a temporary name and links it into place (never over another). */
static int create_file(struct cache *c, const char *name, const char *key, uint64_t size)
{
	static atomic_uint serial;
	char *tmp = NULL;
	if (size > MAX_ARCHIVE_BYTES)
		return -EFBIG;
	/* the pid comes last: cache_open() of a later mount removes files of dead creators */
	if (asprintf(&tmp, ".tmp-%s-%u-%ld", key, atomic_fetch_add(&serial, 1), (long)getpid()) < 0)
		return -ENOMEM;
	remove_name(c, tmp);
	int fd = openat(c->vfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int err = fd < 0 ? -errno : init_file(c, fd, size);
	if (fd >= 0)
		close(fd);
	if (!err && linkat(c->vfd, tmp, c->vfd, name, 0) && errno != EEXIST)
		err = -errno;
	unlinkat(c->vfd, tmp, 0);
	free(tmp);
	if (err && err != -ENOSPC && err != -EDQUOT && err != -ENOMEM && err != -EFBIG) {
		/* the cache folder itself is broken (removed, made read-only): say so, once per try */
		log_msg(LOG_ERR, "cache: cannot create a file in %s: %s", c->vdir, strerror(-err));
		err = -EIO;
	}
	return err;
}

/* Reads the archive's size; -EBADMSG when the file is not of our layout or its length does not
 * match (truncated, extended). */
static int read_header(int fd, uint64_t *size)
{
	char header[HEADER_SIZE_AT + sizeof(*size)];
	int err = read_all(fd, header, sizeof(header), 0);
	if (err)
		return err == -EIO ? -EBADMSG : err;
	if (memcmp(header + HEADER_MAGIC_AT, MAGIC, sizeof(MAGIC)) != 0)
		return -EBADMSG;
	memcpy(size, header + HEADER_SIZE_AT, sizeof(*size));
	struct stat st;
	if (fstat(fd, &st))
		return -errno;
	if (*size > MAX_ARCHIVE_BYTES || (uint64_t)st.st_size != file_len(*size))
		return -EBADMSG;
	return 0;
}

/* Opens name holding a shared lock; fails with -ESTALE if it was replaced or evicted meanwhile,
 * -EBADMSG if it is not a private regular file of ours (a symlink, another user's file). */
static int open_locked(struct cache *c, const char *name, int *fd_out)
{
	int fd = openat(c->vfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP || errno == EACCES || errno == EISDIR || errno == ENXIO ||
				       errno == EPERM
			       ? -EBADMSG
			       : -errno;
	struct stat a, b;
	int err = fstat(fd, &a) ? -errno : file_is_ours(&a) ? 0 : -EBADMSG;
	if (!err && (flock(fd, LOCK_SH) || fstatat(c->vfd, name, &b, AT_SYMLINK_NOFOLLOW) ||
		     a.st_ino != b.st_ino))
		err = -ESTALE;
	if (err) {
		close(fd);
		return err;
	}
	*fd_out = fd;
	return 0;
}

/* Opens (creating when size_bytes > 0) the file of key. */
static int open_file(struct cache *c, const char *key, uint64_t size_bytes, int *fd, uint64_t *size)
{
	char *name = entry_name(key);
	if (!name)
		return -ENOMEM;
	int err = -ESTALE;
	for (int tries = 0; tries < 4 && (err == -ESTALE || err == -ENOENT); tries++) {
		err = open_locked(c, name, fd);
		if (err == -ENOENT && size_bytes == 0)
			break;
		if (err == -ENOENT) {
			err = create_file(c, name, key, size_bytes);
			err = err ? err : -ESTALE; /* now open it */
			continue;
		}
		if (err == -ESTALE)
			continue;
		bool opened = !err;
		if (opened)
			err = read_header(*fd, size);
		if (!err && (size_bytes == 0 || *size == size_bytes))
			break;
		if (opened)
			close(*fd);
		if (err && err != -EBADMSG)
			break;
		/* damaged, foreign or of another size: discard it; our own lock keeps others out */
		log_msg(err ? LOG_WARNING : LOG_INFO, "cache: %s is %s; fetching it anew", key,
			err ? "damaged or not ours" : "of another size");
		remove_name(c, name);
		err = -ESTALE;
	}
	free(name);
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
	e->sums_off = HEADER_LEN + map_len(size);
	e->data_off = e->sums_off + sums_len(size);
	e->refs = 1;
	pthread_mutex_init(&e->io_lock, NULL);
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	e->key = strdup(key);
	e->map = calloc(e->nblocks + 1, 1);
	e->inflight = calloc(e->nblocks + 1, 1);
	e->accounted = calloc(e->nblocks + 1, 1);
	e->verified = calloc(e->nblocks + 1, 1);
	if (!e->key || !e->map || !e->inflight || !e->accounted || !e->verified ||
	    (e->nblocks && read_all(fd, e->map, e->nblocks, HEADER_LEN))) {
		free(e->key);
		free(e->map);
		free(e->inflight);
		free(e->accounted);
		free(e->verified);
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
	free(e->verified);
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
	uint64_t size;
	int err = open_file(c, key, e->size, &fd, &size); /* with its shared flock() */
	if (err)
		return err;
	pthread_mutex_lock(&c->lock);
	if (e->de)
		e->de->bytes = e->data_off;
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_lock(&e->lock);
	close(e->fd);
	e->fd = fd;
	/* another process may have made and filled it already */
	if (read_all(fd, e->map, e->nblocks, HEADER_LEN))
		memset(e->map, 0, e->nblocks);
	memset(e->verified, 0, e->nblocks);
	memset(e->accounted, 0, e->nblocks);
	e->n_runs = 0;
	pthread_mutex_unlock(&e->lock);
	log_msg(LOG_DEBUG, "cache: %s was evicted while idle; made anew", key);
	return 0;
}

/* Starts a call on e's file: the first takes its shared flock() and, when the file was evicted
 * meanwhile, makes it anew. Returns 0 (then entry_leave()) or -errno. */
static int entry_enter(struct cache_entry *e)
{
	int err = 0;
	pthread_mutex_lock(&e->io_lock);
	if (e->active == 0) {
		while (flock(e->fd, LOCK_SH) && errno == EINTR)
			;
		struct stat st;
		char key[256] = "";
		pthread_mutex_lock(&e->c->lock);
		snprintf(key, sizeof(key), "%s", e->key); /* "" once discarded: read on, unlinked */
		pthread_mutex_unlock(&e->c->lock);
		if (key[0] && fstat(e->fd, &st) == 0 && st.st_nlink == 0)
			err = revive(e, key);
		if (err)
			flock(e->fd, LOCK_UN);
	}
	if (!err)
		e->active++;
	pthread_mutex_unlock(&e->io_lock);
	return err;
}

static void entry_leave(struct cache_entry *e)
{
	pthread_mutex_lock(&e->io_lock);
	if (--e->active == 0)
		flock(e->fd, LOCK_UN);
	pthread_mutex_unlock(&e->io_lock);
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
	if (!de) {
		/* a new file's header, map and checksums count against the limit at once, in the
		 * shared count too: writes reserve against that count, not a recount */
		uint64_t used = shared_lock(c);
		de = disk_add(c, e->key, e->data_off, time(NULL));
		c->used = used + (de ? e->data_off : 0);
		shared_unlock(c, c->used);
	}
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
	flock(fd, LOCK_UN); /* idle until its first call: before anyone can find it */
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
	char *name = entry_name(key);
	if (name)
		remove_name(c, name);
	free(name);
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
		if (!value)
			memset(e->verified + b, 0, n);
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
	int err = read_all(e->fd, tmp, n, e->data_off + b * BLOCK);
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
			err = write_all(e->fd, sums, n * SUM_LEN, e->sums_off + b * SUM_LEN);
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
	for (uint64_t b = first; b < last; b++)
		e->verified[b] = e->map[b]; /* its checksum is of the bytes on disk */
	pthread_cond_broadcast(&e->cond);   /* waiting readers of these blocks may go on */
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

/* Adds need bytes to the folder's count, evicting first when they would pass the limit: then
 * the count is redone from the folder, which other processes may have filled. Lock held. */
static int count_need(struct cache *c, uint64_t need)
{
	uint64_t used = shared_lock(c);
	int err = 0;
	if (used + need > c->limit) {
		scan(c); /* on ENOMEM the table is what it was: still a fair guess */
		err = make_room(c, need);
		clear_skips(c);
	} else {
		c->used = used;
	}
	if (!err)
		c->used += need;
	shared_unlock(c, c->used);
	return err;
}

/* Reserves room for the blocks of [off, end) that count nowhere yet (present blocks were
 * counted when found at open or when written; a partly written block once). */
static int reserve(struct cache_entry *e, uint64_t off, uint64_t end, uint64_t *reserved)
{
	struct cache *c = e->c;
	uint64_t first = off / BLOCK, last = (end - 1) / BLOCK, need = 0;
	*reserved = 0;
	pthread_mutex_lock(&e->lock);
	for (uint64_t b = first; b <= last; b++)
		need += e->map[b] || e->accounted[b] ? 0 : BLOCK;
	pthread_mutex_unlock(&e->lock);
	if (need == 0)
		return 0;
	pthread_mutex_lock(&c->lock);
	int err = count_need(c, need);
	if (!err && e->de)
		e->de->bytes += need;
	if (!err)
		c->pending += *reserved = need;
	unlock_and_reap(c);
	if (err) {
		log_set_reason("cache full: %" PRIu64
			       " bytes needed, every cached archive is in use",
			       need);
		return err;
	}
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
	err = write_room(e->c, e->fd, buf, len, e->data_off + off);
	pthread_mutex_lock(&e->c->lock);
	e->c->pending -= reserved; /* on disk now (or never: a recount then sees less) */
	pthread_mutex_unlock(&e->c->lock);
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
 * [first, last]. A block found missing is checked again once someone marks it anew. Entry lock
 * held. */
static void refresh_map(struct cache_entry *e, uint64_t first, uint64_t last)
{
	read_all(e->fd, e->map + first, (size_t)(last - first + 1), HEADER_LEN + first);
	for (uint64_t b = first; b <= last; b++)
		e->verified[b] &= e->map[b];
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
		if (b > last) {
			pthread_cond_wait(&e->cond, &e->lock);
			continue;
		}
		*fetched = true;
		err = fetch_run(e, b, last, min_fetch);
	}
	pthread_mutex_unlock(&e->lock);
	return err;
}

/* Checks the blocks [first, last] held in buf (from block first on) that were not checked yet:
 * a block that fails is dropped, to be fetched again, and the call returns -EAGAIN. */
static int check_blocks(struct cache_entry *e, uint64_t first, uint64_t last,
			const unsigned char *buf)
{
	size_t n = (size_t)(last - first + 1);
	uint32_t *sums = malloc(n * SUM_LEN);
	int err =
		sums ? read_all(e->fd, sums, n * SUM_LEN, e->sums_off + first * SUM_LEN) : -ENOMEM;
	uint64_t bad = 0, first_bad = 0;
	pthread_mutex_lock(&e->lock);
	for (uint64_t b = first; !err && b <= last; b++) {
		if (e->verified[b] || !e->map[b])
			continue; /* checked, or dropped meanwhile (then the bytes are read again) */
		if (crc_castagnoli(buf + (b - first) * BLOCK, block_len(e, b)) == sums[b - first]) {
			e->verified[b] = 1;
			continue;
		}
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

static bool all_verified(struct cache_entry *e, uint64_t first, uint64_t last)
{
	pthread_mutex_lock(&e->lock);
	uint64_t b = first;
	while (b <= last && e->verified[b])
		b++;
	pthread_mutex_unlock(&e->lock);
	return b > last;
}

/* Reads present bytes; -EAGAIN when the file ends before them (it was cut while open here):
 * every block past its end is dropped and fetched again, rather than failing every read from
 * now on (or reading zeros once a write extends it again). */
static int read_present(struct cache_entry *e, void *buf, size_t len, uint64_t off)
{
	struct stat st;
	int err = read_all(e->fd, buf, len, e->data_off + off);
	if (err != -EIO || fstat(e->fd, &st) || (uint64_t)st.st_size >= e->data_off + off + len)
		return err;
	log_msg(LOG_WARNING, "cache: the file of %s was cut short; fetching again", e->key);
	uint64_t kept = (uint64_t)st.st_size > e->data_off ? (uint64_t)st.st_size - e->data_off : 0;
	pthread_mutex_lock(&e->lock);
	drop_locked(e, kept / BLOCK, e->nblocks);
	pthread_mutex_unlock(&e->lock);
	return -EAGAIN;
}

/* Reads [off, off + len) from the file (present), checking every block not checked yet in this
 * process first: -EAGAIN when one failed and was dropped. */
static int read_checked(struct cache_entry *e, void *buf, size_t len, uint64_t off)
{
	uint64_t first = off / BLOCK, last = (off + len - 1) / BLOCK;
	if (all_verified(e, first, last))
		return read_present(e, buf, len, off);
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
	entry_leave(e);
	if (err)
		return err == -EAGAIN ? -EIO : err;
	if (buf)
		atomic_fetch_add(fetched ? &e->c->miss_bytes : &e->c->hit_bytes, len);
	return (ssize_t)len;
}

int cache_entry_prefetch(struct cache_entry *e, uint64_t off, uint64_t len)
{
	ssize_t n = cache_entry_pread(e, NULL, (size_t)len, off, len);
	return n < 0 ? (int)n : 0;
}

int cache_drop(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	shared_lock(c);
	int err = scan(c); /* the files of every process using the folder */
	uint64_t before = c->used;
	while (evict_lru(c) >= 0)
		;
	clear_skips(c);
	shared_unlock(c, c->used);
	log_msg(LOG_INFO, "cache: dropped %" PRIu64 " bytes on request, %" PRIu64 " in use remain",
		before - c->used, c->used);
	unlock_and_reap(c);
	return err;
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

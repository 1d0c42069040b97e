/* cache_i.h: what the three files of the cache share, private to them: the layout of a cache file
 * on disk, the structs of a cache and of its entries (each field names its lock), and the calls
 * each file offers the ones above it. Calls go one way only: cache.c (entries, their calls and
 * single flight) -> cachespace.c (cache->lock, the folder lock, and what they guard: the tables of
 * entries and of files, the count shared with other mounts, eviction, scans, making files) ->
 * cachefile.c (the file format and its I/O, which takes no lock). One file per archive,
 * DIR/v2/<key>.afs: a 4 KiB header (magic, archive size), the block map (one byte per
 * CACHE_BLOCK_SIZE block, 1 = present, padded to 4 KiB), the blocks' CRC-32C checksums (4 bytes
 * each, host order, padded to 4 KiB), then the archive's bytes at their own offsets in a sparse
 * region. DIR/v2/.lock holds the bytes the folder uses, for every mount. */
#ifndef ARTIFACTFS_CACHE_I_H
#define ARTIFACTFS_CACHE_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "artifactfs/cache.h"

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
/* a header claiming more is damage (and would make us allocate its map) */
#define MAX_ARCHIVE_BYTES (1ull << 42)

static inline size_t map_len(uint64_t size)
{
	size_t nblocks = (size_t)((size + BLOCK - 1) / BLOCK);
	return (nblocks + PAGE - 1) / PAGE * PAGE;
}

static inline size_t sums_len(uint64_t size)
{
	size_t nblocks = (size_t)((size + BLOCK - 1) / BLOCK);
	return (nblocks * SUM_LEN + PAGE - 1) / PAGE * PAGE;
}

/* Where the archive's bytes start: the header, map and checksums before them. */
static inline uint64_t meta_len(uint64_t size)
{
	return HEADER_LEN + map_len(size) + sums_len(size);
}

/* The exact length of the file of an archive of size bytes. */
static inline uint64_t file_len(uint64_t size)
{
	return meta_len(size) + size;
}

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
	/* the folder is on a network or FUSE file system (CephFS, NFS): what other machines write
	 * is read past this machine's page cache (cachefile_read_fresh) */
	bool shared_fs;
	int fetch_wait_s; /* how long a fetch waits for another process's fetch of its blocks */
	/* this process's turn at the flock() of lockfd, which cannot tell the threads sharing
	 * lockfd apart: taken first, released last */
	pthread_mutex_t folder_lock;
	int *doomed;                 /* protected by folder_lock: evicted files, unlinked, still
	                                held exclusively, to be emptied and closed once it is
	                                released */
	size_t n_doomed, cap_doomed; /* protected by folder_lock */
	pthread_mutex_t lock;
	struct cache_entry *entries; /* open entries; protected by lock */
	struct disk_ent *disk;       /* protected by lock */
	uint64_t used;               /* protected by lock */
	uint64_t pending;            /* protected by lock: reserved by writes not yet on disk,
	                                which a recount from the folder cannot see */
	/* bytes read without a fetch, from blocks this process marked present (own) or found
	 * present (shared: another mount, here or on another machine, or an earlier run) */
	atomic_uint_fast64_t hit_own_bytes, hit_shared_bytes;
	atomic_uint_fast64_t miss_bytes, fetches, evictions;
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
	/* taken by every call at its start and end; eviction in this process takes it only with
	 * trylock (under the folder lock and cache->lock: see cachespace.c let_go) */
	pthread_mutex_t io_lock;
	int active;  /* protected by io_lock: calls running; they hold fd's flock() */
	int holds;   /* protected by io_lock: open files keeping fd's flock() between calls */
	bool locked; /* protected by io_lock: fd's shared flock() is held */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned char *map;       /* protected by lock */
	unsigned char *inflight;  /* protected by lock */
	unsigned char *accounted; /* protected by lock: the block's bytes count in cache->used */
	/* protected by lock: a bit per block, set while the block is present because this process
	 * marked it (its own fetch or write), not another mount: for the statistics only */
	unsigned char *own;
	struct run *runs;        /* protected by lock: contiguous writes not yet whole blocks */
	size_t n_runs;           /* protected by lock */
	struct cache_source src; /* protected by lock; set once by cache_entry_bind */
};

/* ---- cachespace.c: takes cache->lock and the folder lock, never while holding the other
 * in the wrong order (see cache.h); none is held on return ---- */

/* Counts the folder's files at open (the truth, whatever the shared count said) and removes
 * stale temporaries. Returns 0 or -errno. */
int cachespace_scan_at_open(struct cache *c);
/* Frees the table of files (every entry put back, no thread left). */
void cachespace_close(struct cache *c);

/* Takes a reference on the open entry of key into *out (NULL when none is open): 0, or -EIO
 * when it is open with a size other than a non-zero size_bytes. */
int cachespace_hold(struct cache *c, const char *key, uint64_t size_bytes,
		    struct cache_entry **out);
/* Opens the file of key holding its shared flock() (creating it when size_bytes > 0, ENOENT
 * when it is absent and size_bytes is 0). *reserved is what was counted for a file made here
 * (its metadata, room made for it first), to hand to cachespace_publish() or
 * cachespace_revived(), or back to cachespace_release(). Returns 0 or -errno. */
int cachespace_open_file(struct cache *c, const char *key, uint64_t size_bytes, int *fd,
			 uint64_t *size, uint64_t *reserved);
/* Publishes e, new and not yet found by anyone, unless another thread opened its key first:
 * returns the entry to use (e, or the other one with a reference taken; then the caller frees
 * e), or NULL (no memory). */
struct cache_entry *cachespace_publish(struct cache *c, struct cache_entry *e, uint64_t reserved);
/* Drops a reference; true when it was the last (the entry is unpublished: free it). */
bool cachespace_unhold(struct cache_entry *e);
/* Forgets the file of key (already unlinked); an open entry of it reads on, keyless. */
void cachespace_discard(struct cache *c, const char *key);
/* Copies e's key ("" once discarded) into buf. */
void cachespace_key(struct cache_entry *e, char *buf, size_t n);
/* The file of e was made anew (cachespace_open_file gave reserved): it counts its metadata. */
void cachespace_revived(struct cache_entry *e, uint64_t reserved);

/* Counts need more bytes for e, evicting idle files when they would pass the limit. Returns 0
 * or -ENOSPC (nothing evictable). Give them back with cachespace_release() once written. */
int cachespace_reserve(struct cache_entry *e, uint64_t need);
/* Bytes reserved are on disk now, or never will be (a recount then sees less). */
void cachespace_release(struct cache *c, uint64_t reserved);
/* cachefile_write_all(), evicting idle files when the disk is full. */
int cachespace_write(struct cache *c, int fd, const void *buf, size_t len, uint64_t off);

/* ---- cachefile.c: no lock taken, nothing of the tables touched ---- */

/* The name of key's file in c->vfd; the caller frees it. NULL: no memory. */
char *cachefile_name(const char *key);
/* A file we may trust: regular, ours, writable by nobody else. */
bool cachefile_is_ours(const struct stat *st);
/* Removes name (a file, a planted symlink or folder) from the folder. */
void cachefile_remove(struct cache *c, const char *name);
/* Makes dir (0700, parents included) and sets c->vdir, c->vfd and c->lockfd, removing the files
 * of the older layout. Returns 0, -EACCES (not ours), -ENOTDIR, -ENOMEM, ... */
int cachefile_open_folder(struct cache *c, const char *dir);
/* Whole positional writes and reads: 0, -ENOSPC (a full disk or quota), -EIO (a read past the
 * end), -errno. */
int cachefile_write_all(int fd, const void *buf, size_t len, uint64_t off);
int cachefile_read_all(int fd, void *buf, size_t len, uint64_t off);
/* cachefile_read_all() of bytes another machine may have written: on a shared file system the
 * pages are dropped from the page cache first (a FUSE client such as ceph-fuse may keep stale
 * ones: measured), so the read reaches the file system, coherent under its locks. */
int cachefile_read_fresh(const struct cache *c, int fd, void *buf, size_t len, uint64_t off);
/* An OFD write lock on [off, off + len) of fd, without waiting: 0, -EAGAIN when another open
 * file holds part of it (in any process, on any machine sharing the file system), -errno (no
 * OFD locks on this file system). Closing fd (its last duplicate) releases it. */
int cachefile_range_lock(int fd, uint64_t off, uint64_t len);
void cachefile_range_unlock(int fd, uint64_t off, uint64_t len);
/* The header of a file of an archive of size bytes. */
void cachefile_header(char header[HEADER_LEN], uint64_t size);
/* Gives the metadata of a new file of an archive of size bytes its disk blocks. Returns 0 (or
 * on a file system that cannot), -ENOSPC, -errno. */
int cachefile_allocate_meta(int fd, uint64_t size);
/* Gives a new file its full length (sparse): 0, -ENOSPC, -errno. */
int cachefile_set_length(int fd, uint64_t size);
/* Reads the archive's size; -EBADMSG when the file is not of our layout or its length does not
 * match (truncated, extended). */
int cachefile_read_header(int fd, uint64_t *size);
/* Opens name holding a shared lock; fails with -ESTALE if it was replaced or evicted meanwhile,
 * -EBADMSG if it is not a private regular file of ours (a symlink, another user's file). */
int cachefile_open_locked(struct cache *c, const char *name, int *fd_out);

#endif

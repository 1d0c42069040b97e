/* cache: the on-disk cache of archive bytes, shared by every thread of a mount and by several
 * mounts (processes) using one folder.
 *
 * An entry is one archive (one job's zip, immutable once its key names a job id): a sparse data
 * file plus a block map (one byte per CACHE_BLOCK_SIZE block: 1 present, 0 absent) and a CRC-32C
 * per block. Data is written before its checksum and its checksum before its block is marked, so
 * a daemon killed at any moment leaves at worst blocks that are fetched again: no half-written
 * byte is ever served. Entries are created in a temporary name, flock()ed by their writer, and
 * linked into place; temporaries whose lock is free (their writer died) are removed by scans.
 *
 * Nothing on disk is trusted: files below the folder are opened with O_NOFOLLOW relative to it
 * and used only when they are private regular files of ours of exactly the expected length, and
 * each block is checked against its checksum at every read (other processes and machines write
 * the folder too). A failing file or block is discarded and fetched again, never served. On a
 * shared file system (FUSE, CephFS, NFS) what others write (block maps, checksums, the count,
 * data) is read past the page cache, coherent under the file system's locks.
 *
 * Size: the blocks on disk of every process sharing the folder stay within limit_bytes (a count
 * kept in the folder under flock(), redone from the folder before evicting); the least recently
 * used entries go first, those referenced by no one in this process before the others. A new
 * file's header, map and checksums count too, room made for them before the file is made (when
 * nothing can be evicted they count all the same: the entry must open). A full disk evicts the
 * same way. An entry with a call running on it (a read, a fetch, a write, here or in another
 * process) is never evicted, nor by other processes one held (cache_entry_hold: a file open
 * through the mount); an idle entry may be, even while referenced: its next call fetches what it
 * needs again. When nothing can be evicted, writes fail with -ENOSPC
 * (logged at DEBUG only): readers then read past the cache (readahead.c, job_pread), never ENOSPC.
 *
 * Single flight: concurrent reads of the same missing blocks cause one fetch; the others wait on
 * a condition variable. Across processes and machines, a fetch claims its blocks with an OFD
 * write lock on their bytes of the map; a fetch of another process finding them claimed waits
 * for the claim (at most cache_set_fetch_wait()), reads the map again and fetches only what is
 * still missing. No lock is held while fetching but the file's shared flock() (a call runs) and
 * that claim.
 *
 * Lock order: an entry's call lock (io_lock, taken by every call on it: read, fetch, write,
 * invalidate; it takes the file's shared flock(); eviction takes it only with trylock), then the
 * folder lock (cache->folder_lock, this
 * process's turn, then the flock() of DIR/v2/.lock, which holds the shared count: the processes'
 * turn), then cache->lock, then entry->lock. No thread holds cache->lock while it waits for the
 * folder lock or reads the folder: a scan reads it under the folder lock alone, then updates the
 * tables under cache->lock. A fetch's writer runs inside the call of the read that started it.
 * Files are created 0600, folders 0700.
 *
 * The daemon's lock order, whole (written here once; other headers name their own part):
 *   fs.c fh->lock (a member reader's turn; released before reading)
 *   -> readahead.c readahead->lock -> job.c job->lock -> job_env->lock -> pool.c pool->lock
 *   -> the cache's locks above.
 * No lock is held across network I/O; disk I/O only under io_lock/flock (the call itself),
 * entry->lock for the map's bytes, and the folder lock for a scan or the count. Eviction unlinks
 * under the folder lock and cache->lock but empties the file (freeing its blocks: slow for a big
 * one) only after releasing both. Background tasks (pool.c) take only the lock of what they
 * finish (job_env, readahead) after their fetch returns. */
#ifndef ARTIFACTFS_CACHE_H
#define ARTIFACTFS_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CACHE_BLOCK_SIZE (16u * 1024u)

struct cache;
struct cache_entry;

/* Opens (creating 0700, parents included) the cache folder. Scans existing entries for the
 * size accounting and removes stale temporaries, foreign files and files of an older layout.
 * Returns 0, -EACCES (a version folder or lock file not ours), -ENOTDIR, -ENOMEM, ... */
int cache_open(const char *dir, uint64_t limit_bytes, struct cache **out);
/* Every entry must have been put back. NULL is a no-op. */
void cache_close(struct cache *c);
/* How long a read waits for another process's or machine's fetch of the blocks it needs
 * before it fetches them itself (default 30 s: a machine that died holding them keeps its lock
 * until the file system evicts it). Set before the cache is used. */
void cache_set_fetch_wait(struct cache *c, int seconds);

/* Takes a reference on the entry named key (filename-safe: [A-Za-z0-9._-], <= 200 chars),
 * creating it when absent. size_bytes is the archive's size; 0 means "the size already recorded
 * on disk", and gives -ENOENT when the entry does not exist. A recorded size different from a
 * non-zero size_bytes means the entry is stale: it is discarded and made anew.
 * The reference keeps the entry valid until cache_entry_put(); its bytes on disk may be evicted
 * while no call runs on it (they are fetched again). */
int cache_entry_get(struct cache *c, const char *key, uint64_t size_bytes,
		    struct cache_entry **out);
void cache_entry_put(struct cache_entry *e); /* NULL is a no-op */
uint64_t cache_entry_size(const struct cache_entry *e);

/* Where an entry's missing bytes come from. A fetch of [off, off+len) (len > 0, within the
 * size) hands what the server sends to cache_writer_write(); it may hand more than asked (a whole
 * archive when the server ignores Range). The bytes are marked present, each block's checksum
 * written first, only when the fetch returns 0: a fetch returns 0 only once the answer is known
 * good (status, Content-Range, the archive's size), so a rejected answer never reaches a reader.
 * Returns 0 or -errno. */
struct cache_writer;
typedef int (*cache_fetch_fn)(void *ctx, struct cache_writer *w, uint64_t off, uint64_t len);
struct cache_source {
	cache_fetch_fn fetch;
	void *ctx;
	void (*release)(void *ctx); /* called once the entry no longer needs ctx; may be NULL */
};

/* Binds the entry's source unless one is bound already (entries are shared by key: the first
 * holder's source serves all). ctx is taken over either way: released at once when not bound,
 * else when the entry is freed. */
void cache_entry_bind(struct cache_entry *e, const struct cache_source *src);

/* Stores bytes of the answer at off (positional and idempotent, as http_body_fn): gathered into
 * large page-aligned writes, never past the archive's size (-EIO), never over present blocks.
 * Over the limit or on a full disk it evicts idle files first. Returns 0, -ENOSPC (nothing
 * evictable), -EIO. */
int cache_writer_write(struct cache_writer *w, uint64_t off, const void *buf, size_t len);
uint64_t cache_writer_size(const struct cache_writer *w); /* the archive's size */

/* Reads exactly len bytes at off (clamped to the archive size: returns fewer only at the end),
 * fetching the missing blocks first through the bound source (-EIO if none): the missing blocks
 * of [off, off+len) are fetched in as few fetch calls as possible, each extended to at least
 * min_fetch bytes (bounded by the size), single flight with other threads and bounded in total
 * by the cache limit. Every block is checked against its checksum at every read; one that fails is dropped and fetched again. Returns bytes read or -errno (the
 * fetch's error, -ENOSPC, -EIO when a fetch returned 0 but left a block missing or a block
 * failed its checksum three times). */
ssize_t cache_entry_pread(struct cache_entry *e, void *buf, size_t len, uint64_t off,
			  uint64_t min_fetch);

/* As cache_entry_pread, but only makes the bytes present. */
int cache_entry_prefetch(struct cache_entry *e, uint64_t off, uint64_t len);

/* Stores bytes already known good at off (a probe's tail). Marks each block that is now wholly
 * written (the last block counts as whole when the data reaches the archive's end); bytes of a
 * partly written block go to disk at once but the block is marked only when contiguous writes
 * have covered it whole. Safe from any thread, with overlapping or repeated ranges.
 * Returns 0, -ENOSPC (over the limit with nothing evictable, or the disk is full), -EIO. */
int cache_entry_write(struct cache_entry *e, uint64_t off, const void *buf, size_t len);

/* Forgets blocks overlapping [off, off+len) (found corrupt by a CRC check): they are fetched
 * again on the next read. */
void cache_entry_invalidate(struct cache_entry *e, uint64_t off, uint64_t len);

/* True when every byte of [off, off+len) is present (no fetch needed). */
int cache_entry_has(struct cache_entry *e, uint64_t off, uint64_t len);

/* Removes an entry's files (its job's artifacts were deleted). References stay valid until put. */
void cache_entry_discard(struct cache *c, const char *key);

/* cache_entry_discard() of every entry whose key starts with prefix: each file of the folder
 * (of any process) and each entry open here (whose evicted file would else be made anew). */
void cache_discard_prefix(struct cache *c, const char *prefix);

/* Holds a call open on e until cache_entry_unpin(): meanwhile its file is evicted by no process
 * (nor by cache_drop()), so what it holds stays, and writes to other entries evict others or
 * fail with -ENOSPC. For bytes that must stay while something else is made from them (the
 * unpacked blob of a nested archive while the archive inside it is unpacked). Pins nest.
 * Returns 0, or -errno when its evicted file cannot be made anew (then it is not pinned). */
int cache_entry_pin(struct cache_entry *e);
void cache_entry_unpin(struct cache_entry *e);

/* Keeps e's file locked as in use between its calls until cache_entry_unhold(), for a file open
 * through the mount: the shared flock() that each call takes and drops (on a shared file system
 * such as CephFS, a round trip to its metadata server each) is taken by the first call and kept
 * until the last hold ends. Meanwhile other processes' eviction passes the file by, as one in
 * use. Weaker than a pin: eviction in this process (a write making room, cache_drop()) still
 * takes the file when no call runs on it, and its next call fetches again. Holds nest. */
void cache_entry_hold(struct cache_entry *e);
void cache_entry_unhold(struct cache_entry *e);

/* Evicts every file of the folder that no call is using, in this process or another, nor
 * another process holds (cache_entry_hold): a file open here but idle goes too, held or not, and
 * its next read fetches again, so no reader fails. The size account
 * (df) follows. Returns 0, or -errno from reading the folder (what could go went). */
int cache_drop(struct cache *c);

/* Bytes read count once: as a miss when the read fetched anything first, else as a hit, own
 * or shared by the blocks they came from. A block is this process's own from when it marks it
 * present (a fetch or a write of its own) until it is dropped or its file evicted, while its
 * entry stays open here (a bit per block of each open entry: a block an entry since closed
 * fetched counts as shared once opened again). Shared blocks are those found present: marked
 * by another mount on this machine or another, or by an earlier run; what sharing the folder
 * saved this process. */
struct cache_stats {
	uint64_t used_bytes, limit_bytes, entries;
	uint64_t hit_bytes;                       /* hit_own_bytes + hit_shared_bytes */
	uint64_t hit_own_bytes, hit_shared_bytes; /* read from present blocks, by who marked them */
	uint64_t miss_bytes;                      /* read with a fetch first */
	uint64_t fetches, evictions;
};
void cache_get_stats(struct cache *c, struct cache_stats *out);

#endif

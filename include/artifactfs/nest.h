/* nest: the archives inside one job's artifacts, as the tree shows them ("x.tar.gz#/",
 * "a.tar.gz#/inner.zip#/x"; tree_nest_next() finds where a path may nest).
 *
 * A nest is one archive member's inside: its index, built by unpack_archive() in one streaming pass
 * over the member's bytes (the artifacts zip's member through a zip reader, or a range of the
 * enclosing nest's blob), and its unpacked blob, held in cache entries of its own keyed by the
 * job's cache key and the member's path. The decompression budget (unpack.h) is capped at
 * 1/UNPACK_CACHE_SHARE of the cache's size: a bomb stops at it with -EFBIG. The blob's size is
 * known only at the end of the pass, so it is held in segments of growing size (64 KiB, then 4
 * times the last), each its own cache entry: what a blob costs in disk and memory follows what it
 * holds, not the budget. The pass pads the blob's last block so that it is marked present, and
 * the blob's entries are pinned in the cache while it runs.
 *
 * A pass over a nested archive reads its parent's blob from the cache only: the parent's blob is
 * made whole first (by one pass over the parent, its own parent made whole the same way) and
 * pinned while the pass runs. So a lookup runs at most one pass per level, however small the
 * cache; when a level cannot be made whole (the levels a lookup is inside do not fit in the
 * cache together) the lookup fails with -ENOSPC and one log line naming the archive. A blob byte
 * missing from the cache (no room when the pass wrote it) is got by running that level's pass
 * again, straight into the reader's buffer, storing every missing block it passes until the
 * cache refuses one.
 *
 * Each job keeps a small set of nests (NEST_SET_MAX of them, least recently used out, but never
 * a level the lookup that needs room is inside: the set grows up to NEST_DEPTH_MAX), made on
 * first use and kept as the job's attachment (job_attach: job.c frees it with the job and calls
 * nothing here), keyed by path, built single flight; a member that is no archive (-ENOENT), a
 * bomb (-EFBIG) or damaged (-EIO with every byte of it read: a checksum, a truncation) is
 * remembered as such (a bomb or damage also once out of the set: 64 per job), other errors
 * (reading the member, memory) are not. A nest is immutable once built and refcounted; it borrows its job, so whoever holds a
 * nest holds its job too, and puts the nest first. Thread-safe; the set's lock is never held
 * during a pass. */
#ifndef ARTIFACTFS_NEST_H
#define ARTIFACTFS_NEST_H

#include <stdint.h>
#include <sys/types.h>

#include "artifactfs/zipindex.h"

#define NEST_SET_MAX 8
/* Levels of archives inside archives one path may open: each level holds its parent and a blob
 * entry, so an archive holding itself ("r.zip#/r.zip#/...") would otherwise cost a nest per
 * component of a 4 KiB path. */
#define NEST_DEPTH_MAX 16

struct cache;
struct job;
struct nest;

/* What member path (of j's artifacts, "" the job folder) names, nested archives included: 0
 * with *m, and *nest (a reference, put with nest_put) holding the index *m lies in, or NULL
 * when that is the artifacts zip itself (job_index). A component "x#" names the inside of
 * member "x" unless the index has a member "x#". Returns -ENOENT (no such member, or "x#"
 * where x is no archive: logged at DEBUG only), -EFBIG (a bomb), -ELOOP (more than
 * NEST_DEPTH_MAX levels), -ENOSPC (the levels do not fit in the cache together), -EIO, -ENOMEM.
 * *m is borrowed while *nest (or j) is held. */
int nest_find(struct job *j, const char *path, struct nest **nest, const struct zip_member **m);

struct nest *nest_hold(struct nest *n);
void nest_put(struct nest *n); /* NULL is a no-op */

/* The nest's tree (borrowed while n is held). */
const struct zipindex *nest_index(const struct nest *n);

/* Reads up to len bytes at off of file member m of n (short only at its end, 0 past it).
 * Returns the count or -errno (-EIO, -EFBIG, -ENOSPC, -ENOMEM, what reading the job's bytes
 * returned). */
ssize_t nest_pread(struct nest *n, const struct zip_member *m, void *buf, size_t len, uint64_t off);

/* Removes the unpacked blobs of the nested archives of the job of cache key job_key from the
 * cache (its artifacts were deleted: they are its bytes in clear text). Nests still held read
 * on, as an open file of the job does. */
void nest_discard_blobs(struct cache *c, const char *job_key);

/* A zip_target_fn for zipindex_resolve_link over n's index (ctx is n). */
int nest_link_target(void *ctx, const struct zip_member *link, char **out, size_t *len);

#endif

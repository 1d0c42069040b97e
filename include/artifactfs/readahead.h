/* readahead: one open file's reads of a job's archive, with the read-ahead they deserve.
 *
 * A sequential reader gets several ranged fetches in flight at once on the mount's pool, as many
 * as it has connections, the window doubling while the reader keeps pace; a read elsewhere (a
 * seek) or closing stops them, queued and running. A random reader fetches only the blocks it
 * reads. Bytes go through the cache; when the cache has no room (a member larger than the cache,
 * or a cache full of files in use) a sequential reader reads through a bounded in-memory window
 * of slices instead, and says so once in the log. Never -ENOSPC.
 *
 * Lock order: readahead->lock, then the cache's locks (cache.h); readahead->lock is never held
 * across network or disk I/O. Thread-safe; background tasks hold references of their own. */
#ifndef ARTIFACTFS_READAHEAD_H
#define ARTIFACTFS_READAHEAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "artifactfs/job.h"

struct readahead;

/* A reader of j's archive that reads ahead only within [start, end) (a member's bytes, or the
 * whole archive). Holds its own reference on j. Returns 0 or -ENOMEM (or the cache's error). */
int readahead_new(struct job *j, uint64_t start, uint64_t end, struct readahead **out);
/* Stops the reader's fetches (running ones at their next bytes) and drops the opener's
 * reference. NULL is a no-op. */
void readahead_free(struct readahead *r);

/* Reads exactly len bytes at off (short only at the archive's end), or -errno. */
ssize_t readahead_pread(struct readahead *r, void *buf, size_t len, uint64_t off);

#endif

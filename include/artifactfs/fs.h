/* fs: the FUSE operations table. Thin adapters: each parses its path with tree, asks the catalog,
 * and returns 0 or -errno as doc/SPEC.md's table says. No curl, no JSON here. This is the one header
 * that includes <fuse.h>, so FUSE_USE_VERSION is defined here only. */
#ifndef ARTIFACTFS_FS_H
#define ARTIFACTFS_FS_H

#define FUSE_USE_VERSION 312
#include <fuse.h>

#include <stdbool.h>
#include <sys/types.h>

#include "artifactfs/cache.h"
#include "artifactfs/catalog.h"
#include "artifactfs/http.h"
#include "artifactfs/pool.h"

struct fs_config {
	struct catalog *cat; /* borrowed, like the two below */
	struct cache *cache;
	struct http *http;
	struct pool *pool;    /* drained when the mount ends, before libfuse is torn down */
	struct pool *forgets; /* one worker: unlink's kernel cache drops, drained before unmount */
	bool allow_delete;
	int ttl_s;
	uid_t uid; /* owner shown for every node */
	gid_t gid;
	time_t mounted_at; /* the time of folders above the jobs, which have none of their own */
	const char *mountpoint; /* absolute; NULL outside a mount (the kernel's read-ahead) */
};

/* The table to give fuse_new(), with a struct fs_config as its user data. */
extern const struct fuse_operations fs_operations;

/* Calls of the operations outside a mount (unit tests call them directly) have no FUSE context to
 * carry the fs_config: once this is called, every operation uses fc (borrowed) instead. The
 * daemon never calls it. */
void fs_use_config(struct fs_config *fc);

/* Seconds since the epoch of an ISO 8601 time as GitLab writes it ("2026-11-20T10:15:30.123Z",
 * or with a +hh:mm offset); 0 when s is NULL or not such a time. */
time_t fs_parse_time(const char *s);

#endif

/* kernel: what the daemon asks of the kernel beside answering its requests: the mount's
 * read-ahead, and cached entries to forget. Used by fs.c. */
#ifndef ARTIFACTFS_KERNEL_H
#define ARTIFACTFS_KERNEL_H

#include <stddef.h>

struct fuse;
struct pool;

/* Raises the read-ahead of the FUSE mount on mountpoint (absolute, as mountinfo shows it) to
 * 1 MiB. NULL (no mount) does nothing; a mount not found, or a write not allowed (not root),
 * leaves it as it is, said at DEBUG. Cannot fail. Call it once the mount is up: the INIT
 * exchange lowers it again. */
void kernel_raise_read_ahead(const char *mountpoint);

/* Makes the kernel forget what it holds of the first len bytes of path (its attributes, and
 * pages or listing), later, on a worker of p: the operation asking for it may run while the
 * kernel holds a lock the forget needs. The forget uses fuse and its session's fd until it
 * ends, so p must be drained before fuse_unmount() closes that fd, and so before
 * fuse_destroy(); once p drains, a forget not yet run is dropped. Returns 0 once queued, else
 * -ENOMEM or pool_submit()'s -ESHUTDOWN (p drained) or -EAGAIN, and nothing will run. */
int kernel_forget_later(struct pool *p, struct fuse *fuse, const char *path, size_t len);

#endif

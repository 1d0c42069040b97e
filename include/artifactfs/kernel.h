/* kernel: what the daemon asks of the kernel beside answering its requests (the mount's
 * read-ahead). Used by fs.c. */
#ifndef ARTIFACTFS_KERNEL_H
#define ARTIFACTFS_KERNEL_H

/* Raises the read-ahead of the FUSE mount on mountpoint (absolute, as mountinfo shows it) to
 * 1 MiB. NULL (no mount) does nothing; a mount not found, or a write not allowed (not root),
 * leaves it as it is, said at DEBUG. Cannot fail. Call it once the mount is up: the INIT
 * exchange lowers it again. */
void kernel_raise_read_ahead(const char *mountpoint);

#endif

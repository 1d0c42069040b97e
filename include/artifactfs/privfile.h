/* privfile: opening a file the daemon writes for its operator (--log-file, --metrics-file) under
 * the rules the token file and the cache folder get. Thread-safe; no state. */
#ifndef ARTIFACTFS_PRIVFILE_H
#define ARTIFACTFS_PRIVFILE_H

#include <stddef.h>
#include <sys/types.h>

/* Opens path for writing with flags (O_WRONLY plus O_APPEND, O_CREAT as wanted; never through a
 * symbolic link, never blocking on a FIFO) and mode for a new file. Refused: anything but a
 * regular file, a file of another user or one that group or others can write, a folder that
 * others can write unless sticky. Returns the descriptor (blocking, close-on-exec), or -errno
 * (-EINVAL not a regular file, -ELOOP a link, -EACCES a refusal, or open's) with a one-line
 * reason in why, not naming the path. */
int privfile_open(const char *path, int flags, mode_t mode, char *why, size_t why_len);

#endif

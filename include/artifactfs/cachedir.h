/* cachedir: the checks that make a cache folder safe to use before cache_open() touches it.
 * Another user who controls the folder, or any folder on the way to it, could plant files the
 * daemon serves as artifact content or make it write elsewhere through a symbolic link. */
#ifndef ARTIFACTFS_CACHEDIR_H
#define ARTIFACTFS_CACHEDIR_H

#include <stddef.h>

/* Checks every folder on the way to dir (absolute, or relative to the working folder) and
 * creates the missing ones 0700. Refused: a folder owned by a user other than the caller (root
 * may own the ones above), one that group or others can write (above dir, unless sticky, as
 * /tmp), a symbolic link below home (links above it, as /home -> /data/home, are followed; with
 * home NULL or dir outside it, no link at all), a ".." component, anything not a folder.
 * Returns 0, or -errno with a one-line reason (naming the folder, never a secret) in why. */
int cachedir_prepare(const char *dir, const char *home, char *why, size_t why_len);

#endif

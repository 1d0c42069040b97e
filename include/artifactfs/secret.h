/* secret: telling a token on the command line from a harmless option value (see secret.c). All
 * take a NUL-terminated option or value and keep no state; thread-safe. */
#ifndef ARTIFACTFS_SECRET_H
#define ARTIFACTFS_SECRET_H

#include <stdbool.h>

/* Holds one of GitLab's token prefixes (glpat-, glrt-, ...): a token wherever it stands. */
bool secret_has_token_prefix(const char *s);
/* Holds a word of 20 or more letters and digits mixing at least two kinds, as random tokens do
 * (and as fsname=build2024artifacts01 or a UUID do too: ask only of unknown options). */
bool secret_looks_random(const char *s);
/* An option (name, or name=value) that libfuse, the kernel or fstab know. */
bool secret_known_mount_option(const char *arg);

#endif

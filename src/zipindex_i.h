/* zipindex_i: what the files that read zip archives share privately. zipindex.c owns the index
 * and defines these functions; zipindex_link.c (symlinks walked over the index) and zipread.c
 * (a member's bytes) call them, never the other way round. Here: little-endian fields as zip
 * stores them, a hostile name made printable for a log line, and one child found in the index. */
#ifndef ARTIFACTFS_ZIPINDEX_I_H
#define ARTIFACTFS_ZIPINDEX_I_H

#include <stddef.h>
#include <stdint.h>

#include "artifactfs/zipindex.h"

#define SHOWN_MAX 200u /* bytes of a hostile name written to the log */

static inline uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Writes at most SHOWN_MAX bytes of name into out (SHOWN_MAX + 4 bytes), control bytes as '?'. */
void zipindex_shown_name(char *out, const char *name, size_t len);

/* The child of folder dir named by the cl bytes of comp, or NULL. O(log n). Borrowed: lives as
 * long as zi. */
const struct zip_member *zipindex_child(const struct zipindex *zi, const struct zip_member *dir,
					const char *comp, size_t cl);

#endif

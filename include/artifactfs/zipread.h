/* zipread: a zip member's content, turned from its stored or deflated bytes (the only zlib
 * user), checked against the central directory's CRC-32 and size. It reads only through the
 * caller's zip_read_fn, never past the central directory's offset, and only members of an index
 * zipindex_load built (never a nested archive's: unpack.h). */
#ifndef ARTIFACTFS_ZIPREAD_H
#define ARTIFACTFS_ZIPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "artifactfs/zipindex.h"

/* A reader of one file or symlink member's content. One per open file; not thread-safe itself
 * (callers serialise per reader), but many readers may share one index. It reads the local
 * header once (its name and extra lengths), then compressed data in chunks through rd. Sequential
 * reads stream; a read before the current position restarts inflation from the member's start.
 * When the end is reached the CRC-32 is checked: a mismatch, a deflate error, or an output size
 * different from the central directory's fails the read with -EIO, so no wrong byte is ever
 * returned as final. (Bytes before the end cannot be checked before it is reached; callers that
 * must be exact for small members read them whole first, see zip_reader_read_all.) */
struct zip_reader;
int zip_reader_new(const struct zipindex *zi, const struct zip_member *m, zip_read_fn rd, void *ctx,
		   struct zip_reader **out);
/* Reads up to len bytes at off; returns the count (short only at the member's end, 0 past it)
 * or -errno (-EIO corrupt, -ENOTSUP method/encryption, or rd's error). */
ssize_t zip_reader_pread(struct zip_reader *r, void *buf, size_t len, uint64_t off);
/* Reads the whole member (checked) into a malloc'ed buffer of m->size bytes (+1, NUL-terminated).
 * For symlink targets and small files. -EFBIG when m->size > max. */
int zip_reader_read_all(const struct zipindex *zi, const struct zip_member *m, zip_read_fn rd,
			void *ctx, size_t max, char **out, size_t *out_len);
void zip_reader_free(struct zip_reader *r);
/* Offset in the archive one past the member's compressed bytes: read-ahead stops there. */
uint64_t zip_reader_data_end(const struct zip_reader *r);
/* The member being read. */
const struct zip_member *zip_reader_member(const struct zip_reader *r);
/* Whether the reader found the member's bytes corrupt (CRC, size, deflate stream, local
 * header), as opposed to failing to get them. */
bool zip_reader_corrupt(const struct zip_reader *r);

#endif

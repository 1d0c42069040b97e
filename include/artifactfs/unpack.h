/* unpack: lists and unpacks an archive that is itself a member of the artifacts ("x.tar.gz#/"),
 * through libarchive (its only user): tar with any compression, zip/jar, 7z, cpio, ar/deb, rpm,
 * iso9660, xar, cab, lha, rar. Never mtree (it reads files named by the archive from the local
 * disk) nor libarchive's raw or empty formats (they would make every file an archive).
 *
 * One streaming pass builds the whole index: the member's bytes come through a zip_read_fn (read
 * front to back; only formats whose directory is at the end, zip and 7z, seek), and every
 * regular file's content is written, one after the other, to a caller-given sink: the "unpacked
 * blob". A file of the nested tree is then the range [local_offset, local_offset + size) of the
 * blob, so reading it costs no decompression, copying the whole tree costs the one pass, and an
 * archive inside the nested archive is indexed from a range of the blob (nesting has no depth
 * limit of its own: each level is bounded by its budget).
 *
 * Every checksum the archive carries is checked, or the pass fails with -EIO: the format's own
 * (zip, 7z, rar, lha: a mismatch at an entry's end) and those of its layers of compression
 * (gzip's CRC-32 and length, xz, lzip, zstd, lz4, bzip2), each layer read to its end even where
 * the format stops before it; cpio's crc format's sum of each file's bytes, which libarchive
 * drops, is read back from its header here. tar, other cpio, ar and iso9660 carry none for the
 * data.
 *
 * The index is a zipindex built by zipindex_from_members(): the same tree, lookups and name rules
 * as the artifacts zip (absolute, "", "." or ".." components, backslash escapes: left out with a
 * warning; missing folders are made up), except that of duplicate names the last stays, a file
 * replacing a folder takes what was under it along, as unpacking in order does (every format but
 * zip: zipindex_from_members' last_wins; a hard link gets the copy its target held when the link
 * came). Leading "./" is stripped first (tar -C dir . writes it).
 * Devices, fifos and sockets are left out. Hard links
 * share their target's blob range. Symlink targets are kept in the index as text; they are never
 * resolved here: the caller applies tree_link_escapes() with the link's own path, as for the
 * outer archive. A built index is immutable and may be shared by threads without locking;
 * unpack_archive() itself may run in several threads at once (one libarchive handle each, the
 * UTF-8 locale it reads names in is set per thread). */
#ifndef ARTIFACTFS_UNPACK_H
#define ARTIFACTFS_UNPACK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "artifactfs/zipindex.h"

/* Writes len bytes at off of the unpacked blob. Returns 0 or -errno (e.g. -ENOSPC). Offsets
 * grow: every byte of [0, blob size) is written exactly once, in order (holes of sparse files
 * as zeros), and nothing past it: a cache entry backing the blob learns its size at the end
 * (unpack_blob_size) and may have to pad its last block itself. */
typedef int (*unpack_write_fn)(void *ctx, const void *buf, size_t len, uint64_t off);

/* The budget: every count of unpacked bytes (the blob, every byte a layer of compression or a
 * format decompresses, kept or not) stays within min(max_bytes, max(floor_bytes, ratio * the
 * member's bytes read so far)); past it the pass stops with -EFBIG. So a bomb is stopped after
 * at most floor_bytes (plus ratio times what was read) whatever its shape, before it fills the
 * cache, while real archives, whose ratio stays far below: text and logs 3 to 50, deflate's
 * largest possible 1032, go through. */
struct unpack_limits {
	uint64_t max_bytes; /* the cap (nest.c: UNPACK_CACHE_SHARE of the cache) */
	uint64_t
		floor_bytes; /* unpacked bytes allowed whatever the ratio (0: UNPACK_FLOOR_BYTES) */
	unsigned ratio;      /* unpacked bytes per byte read past the floor (0: UNPACK_RATIO) */
	size_t max_entries;  /* archive entries read, kept or not (0: UNPACK_MAX_ENTRIES) */
	size_t max_name;     /* bytes of a name or a symlink target; longer ones are left out
	                          (0: UNPACK_MAX_NAME) */
	const char *name;    /* the archive's path, for log lines (NULL: none) */
};
#define UNPACK_FLOOR_BYTES (64ull << 20)
#define UNPACK_RATIO 200u
#define UNPACK_CACHE_SHARE 4 /* one blob takes at most 1/4 of the cache */
#define UNPACK_MAX_ENTRIES 1000000u
#define UNPACK_MAX_NAME 4096u

struct unpacked;

/* Indexes the archive held in the size bytes that rd reads (with rctx), writing the blob through
 * wr (with wctx). Returns 0 and *out (free with unpack_free()), or -errno, with a log line saying
 * why, and never a partial index:
 *   -ENOENT  not an archive of a format read here (a text file, an image, a lone .gz)
 *   -EIO     a damaged or truncated archive (even after some entries were read), a checksum
 *            of the archive or of a layer of compression that does not match
 *   -EFBIG   over the budget (a decompression bomb) or over lim->max_entries
 *   -ENOMEM, or what rd or wr returned.
 * Blob bytes written before a failure are garbage to the caller (discard its entry). */
int unpack_archive(uint64_t size, zip_read_fn rd, void *rctx, unpack_write_fn wr, void *wctx,
		   const struct unpack_limits *lim, struct unpacked **out);
void unpack_free(struct unpacked *n); /* NULL is a no-op */

/* The tree. For a ZIP_FILE member, local_offset and size give its range in the blob; for a
 * ZIP_SYMLINK, size is the target's length (see unpack_link_target); method is 0 and crc32 is 0
 * (the blob holds what libarchive checked). Borrowed: lives as long as n. Never pass a nested
 * member to zip_reader_new(). */
const struct zipindex *unpack_zipindex(const struct unpacked *n);
/* The NUL-terminated target of a ZIP_SYMLINK member of n's index, NULL for other types.
 * Borrowed: lives as long as n. */
const char *unpack_link_target(const struct unpacked *n, const struct zip_member *m);
/* Size of the blob written by unpack_archive(). */
uint64_t unpack_blob_size(const struct unpacked *n);
/* Entries left out with a warning (unsafe names, devices, fifos, undecodable or encrypted
 * entries, hard links to nothing kept; not duplicates), and the memory the index holds. */
size_t unpack_rejected(const struct unpacked *n);
size_t unpack_memory_bytes(const struct unpacked *n);

/* A blob kept in memory, for tests, the fuzzer and small archives: an unpack_write_fn over a
 * struct unpack_mem (zero it first; free p). -ENOMEM when it cannot grow. */
struct unpack_mem {
	unsigned char *p;
	size_t len, cap;
};
int unpack_mem_write(void *ctx, const void *buf, size_t len, uint64_t off);

#endif

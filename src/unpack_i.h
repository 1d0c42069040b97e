/* unpack_i: what unpack.c shares with unpackstream.c, the byte stream in front of libarchive's
 * formats. unpackstream.c defines these functions; unpack.c calls them, never the other way
 * round.
 *
 * The stream is the member's bytes with every layer of compression that carries a checksum taken
 * off before a format sees them, each layer read to its very end once the format is done, so that
 * its checksum is checked even where the format stops early (a tarball's end marker comes before
 * the compressor's trailer): gzip by zlib here (libarchive's gzip filter never checks the trailer),
 * xz, lzip and .lzma by liblzma, zstd by libzstd (each decoder's memory charged to the budget
 * before it is allocated), lz4, bzip2, compress and rpm by a libarchive handle of one filter. The meter
 * counts the member's bytes read and bounds every count of unpacked bytes by the budget. */
#ifndef ARTIFACTFS_UNPACK_I_H
#define ARTIFACTFS_UNPACK_I_H

#include <archive.h>
#include <stdbool.h>
#include <stdint.h>

#include "artifactfs/unpack.h"

struct meter {
	struct unpack_limits lim; /* every field set (defaults filled in) */
	uint64_t in;              /* bytes of the member read, re-reads included */
	bool logged;              /* the refusal has had its log line */
};

/* 0 while unpacked bytes fit the budget: min(lim.max_bytes, max(lim.floor_bytes, lim.ratio *
 * in)); else -EFBIG, with one log line per pass. */
int meter_check(struct meter *m, uint64_t unpacked);

struct ustream;

/* Builds the stream over the size bytes rd reads, taking off the layers it recognises by their
 * magic. Returns 0 and *out, or -errno (-EIO with a log line for a damaged layer, what rd
 * returned, -EFBIG, -ENOMEM). */
int ustream_open(struct meter *m, uint64_t size, zip_read_fn rd, void *rctx, struct ustream **out);
void ustream_free(struct ustream *s); /* NULL is a no-op */

/* Whether a layer of compression was taken off: the format then reads a stream it cannot seek. */
bool ustream_layered(const struct ustream *s);

/* Opens the format handle a over the stream (seekable only when no layer was taken off).
 * Returns what archive_read_open1() returns. */
int ustream_open_archive(struct ustream *s, struct archive *a);

/* Copies len bytes at off of the top stage's output (what the format reads) that the format
 * read lately: its current header (those of cpio's crc format, whose sum libarchive drops). 0,
 * or -EIO when they are no longer held (or, without a layer, cannot be read). */
int ustream_header_bytes(struct ustream *s, uint64_t off, void *out, size_t len);

/* The first -errno of the stream (rd's, the budget's, a damaged layer's, already logged), or 0:
 * a libarchive failure is then the format's own. */
int ustream_error(const struct ustream *s);

/* Reads every layer to its end, where its checksum is checked. 0 or -errno as above. */
int ustream_finish(struct ustream *s);

#endif

/* counted_src: an archive in memory read through a zip_read_fn that counts the bytes it hands
 * out (re-reads included), for the fuzz targets whose oracle bounds what a reader may read. */
#ifndef ARTIFACTFS_FUZZ_COUNTED_SRC_H
#define ARTIFACTFS_FUZZ_COUNTED_SRC_H

#include <stdint.h>
#include <sys/types.h>

#include "artifactfs/zipindex.h"

struct counted_src {
	struct zip_buffer b;
	uint64_t read; /* bytes handed out, re-reads included */
};

static inline ssize_t counted_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct counted_src *s = ctx;
	ssize_t got = zip_buffer_read(&s->b, buf, len, off);
	if (got > 0)
		s->read += (uint64_t)got;
	return got;
}

#endif

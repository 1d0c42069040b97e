/* crc: the two checksums computed over every byte artifactfs serves, on ISA-L.
 *
 * CRC-32 is zip's (a member's recorded checksum, zipread.c); CRC-32C is the cache's per-block
 * sum (cache.c). Both sit on the read path: a cold read computes each once per byte, a read from
 * the disk cache after a remount both. ISA-L folds with carry-less multiplication (SSE, AVX-512
 * or arm64's PMULL, chosen at run time) at 28 GB/s for CRC-32 where zlib's crc32() gives 5 on
 * the development VM; writing that folding ourselves would only repeat it. Pure functions,
 * thread-safe. */
#ifndef ARTIFACTFS_CRC_H
#define ARTIFACTFS_CRC_H

#include <stddef.h>
#include <stdint.h>

/* zip's CRC-32, chained as zlib's crc32(): crc_zip(crc_zip(0, a, n), b, m) is the CRC of a b. */
uint32_t crc_zip(uint32_t crc, const void *buf, size_t len);

/* The CRC-32C (Castagnoli) of one buffer. */
uint32_t crc_castagnoli(const void *buf, size_t len);

#endif

/* sevenzhdr: what a 7z archive's header will make libarchive's 7z reader allocate, learnt before
 * libarchive reads it. That reader sizes its arrays from the counts the header declares (files,
 * folders, coders, pack and unpack streams, the decoded header's size, a decoder's dictionary)
 * and allocates them before it checks them against anything: a 56-byte archive declaring
 * 99,000,000 files costs gigabytes. unpack.c charges what this module computes to the memory
 * budget (membudget.h) first, and refuses what does not fit.
 *
 * The start header is found where libarchive finds it (at 0, or in a self-extractor's window);
 * the next header is read whole, its CRC checked, and parsed as libarchive parses it, up to
 * FilesInfo's count of files (the properties after it are bounded by the header's size). An
 * encoded header (kEncodedHeader) is decoded first, here, through liblzma's raw decoder (its
 * only user): LZMA, LZMA2 or Copy, the coders 7-Zip and p7zip write headers with; any other
 * coder is refused. Every loop over a declared count reads bytes of the header, and nothing is
 * allocated from a declared count before it is checked against the caller's limits, so the
 * scan itself costs at most twice max_header_bytes (each asked of lim->take first) and 16 bytes
 * per folder. Pure: no log,
 * no global state; thread-safe. */
#ifndef ARTIFACTFS_SEVENZHDR_H
#define ARTIFACTFS_SEVENZHDR_H

#include <stdint.h>

#include "artifactfs/zipindex.h"

struct sevenz_header {
	uint64_t files;          /* FilesInfo's count (0 without FilesInfo) */
	uint64_t folders;        /* of the main streams */
	uint64_t coders;         /* over every folder */
	uint64_t pack_streams;   /* of the main streams */
	uint64_t unpack_streams; /* the sum of the folders' counts (SubStreamsInfo) */
	uint64_t header_bytes;   /* the header libarchive parses: as stored, or once decoded */
	uint64_t coder_memory;   /* the largest a decoder of one folder allocates (dictionary,
	                            PPMd model, BCJ2's sub-streams) */
	uint64_t alloc_bytes;    /* a bound on what libarchive allocates from all of the above */
	const char *why;         /* on failure: what is wrong, for a log line (static text) */
};

struct sevenz_limits {
	uint64_t max_header_bytes; /* the header's size, stored or decoded */
	uint64_t max_count;        /* files, folders, pack streams, unpack streams, each */
	/* Asked before the scan allocates a buffer for the header (as stored, then decoded:
	 * together within alloc_bytes), so that the caller may charge it: 0 to go on, or -errno,
	 * which the scan returns. NULL: nothing is asked. */
	int (*take)(void *ctx, uint64_t bytes);
	void *take_ctx;
};

/* Scans the header of the 7z archive in the size bytes rd reads (with rctx). Returns 0 and *h;
 * 1 when the bytes are not a 7z archive libarchive would find; or -errno with h->why: -EIO a
 * damaged or truncated header (a CRC that does not match, counts the bytes cannot hold:
 * libarchive would fail on it too; a folder of more streams than 7-Zip allows), -ENOTSUP a
 * header encoded with a coder other than LZMA, LZMA2 or Copy alone, -EFBIG a header or a count
 * over lim, -ENOMEM, or what rd returned. */
int sevenz_header_scan(uint64_t size, zip_read_fn rd, void *rctx, const struct sevenz_limits *lim,
		       struct sevenz_header *h);

#endif

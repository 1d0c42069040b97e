/* libFuzzer target: any bytes as an archive. Loading must fail cleanly or give an index whose
 * tree is consistent (every member found by its own name, parents are folders, siblings in
 * strcmp order) and whose every member can be read (bounded) without a crash, a leak or a hang.
 * The oracle holds exactness and resource bounds too: a member read to its end without an error
 * has the size and CRC-32 the central directory gives (no wrong byte returned as final), a whole
 * read is its size; loading reads a bounded multiple of the archive and a sequential read of a
 * member a bounded multiple of its compressed bytes; the index fits the memory budget it was
 * charged to, and every byte taken from that budget is given back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "artifactfs/log.h"
#include "artifactfs/membudget.h"
#include "artifactfs/zipindex.h"
#include "artifactfs/zipread.h"
#include "counted_src.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MEMORY (32u << 20)    /* the membudget: a central directory of many long names reaches it */
#define READ_SLACK (1u << 20) /* chunks read ahead, a local header's name and extra field */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init(false, LOG_CRIT); /* hostile names are expected: keep the run quiet and fast */
	membudget_set_limit(MEMORY);
	return 0;
}

static void check_tree(const struct zipindex *zi, uint32_t i, const struct zip_member *zm)
{
	if (zipindex_find(zi, zm->name) != zm)
		abort(); /* every member is found by its own name */
	if (i > 0 && zipindex_member(zi, zm->parent)->type != ZIP_DIR)
		abort();
	if (zm->type != ZIP_DIR)
		return;
	const struct zip_member *prev = NULL;
	for (uint32_t c = zm->first_child; c != UINT32_MAX;
	     c = zipindex_member(zi, c)->next_sibling) {
		const struct zip_member *k = zipindex_member(zi, c);
		if (!k || k->parent != i || (prev && strcmp(prev->base, k->base) >= 0))
			abort();
		prev = k;
	}
}

/* Reads a small member back to front in overlapping pieces with a fresh reader: every piece
 * read without an error, the content assembled must be the central directory's (a stored
 * member's CRC-32 is checked by the read that completes it in any order, a deflated one's by
 * the read that reaches its end). */
static void read_scattered(const struct zipindex *zi, const struct zip_member *zm,
			   struct counted_src *m)
{
	enum {
		PIECE = 1000,
		OVERLAP = 100
	};
	static unsigned char all[1u << 16];
	struct zip_reader *r;
	if (zm->size == 0 || zm->size > sizeof(all) || zip_reader_new(zi, zm, counted_read, m, &r))
		return;
	bool good = true;
	for (uint64_t end = zm->size; good && end > 0;) {
		uint64_t start = end > PIECE ? end - PIECE : 0;
		ssize_t got = zip_reader_pread(r, all + start, (size_t)(end - start), start);
		good = got == (ssize_t)(end - start);
		end = start > 0 ? start + OVERLAP : 0;
	}
	zip_reader_free(r);
	if (good && (uint32_t)crc32(0, all, (uInt)zm->size) != zm->crc32)
		abort(); /* every read succeeded, yet the content is not the member's */
}

static void read_member(const struct zipindex *zi, const struct zip_member *zm,
			struct counted_src *m)
{
	struct zip_reader *r;
	char buf[4096], *all;
	size_t len;
	if (zip_reader_read_all(zi, zm, counted_read, m, 1u << 16, &all, &len) == 0) {
		if (len != zm->size || len > (1u << 16) || all[len] != '\0')
			abort();
		free(all);
	}
	if (zip_reader_new(zi, zm, counted_read, m, &r) != 0)
		return;
	uint64_t read_before = m->read, off = 0;
	uLong crc = crc32(0, NULL, 0);
	while (off < zm->size && off < (1u << 20)) {
		ssize_t got = zip_reader_pread(r, buf, sizeof(buf), off);
		if (got <= 0)
			break;
		if ((size_t)got > sizeof(buf) || (uint64_t)got > zm->size - off)
			abort(); /* never past the member's size */
		crc = crc32(crc, (const Bytef *)buf, (uInt)got);
		off += (uint64_t)got;
	}
	/* read to its end without an error: exactly the bytes the central directory describes */
	if (off == zm->size && (uint32_t)crc != zm->crc32)
		abort();
	if (m->read - read_before > 2 * zm->comp_size + READ_SLACK)
		abort();                  /* a sequential read re-reads nothing much */
	zip_reader_pread(r, buf, 100, 0); /* a restart */
	zip_reader_free(r);
	read_scattered(zi, zm, m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct zipindex *zi;
	struct counted_src m = {.b = {data, size}};
	uint64_t before = membudget_used();
	int err = zipindex_load(size, counted_read, &m, &zi);
	if (m.read > 2 * (uint64_t)size + READ_SLACK)
		abort(); /* loading reads the tail and the central directory, once */
	if (err != 0) {
		if (membudget_used() != before)
			abort();
		return 0;
	}
	if (zipindex_memory_bytes(zi) > MEMORY || membudget_used() > MEMORY)
		abort();
	for (uint32_t i = 0; i < zipindex_count(zi); i++) {
		const struct zip_member *zm = zipindex_member(zi, i);
		check_tree(zi, i, zm);
		if (zm->type != ZIP_DIR)
			read_member(zi, zm, &m);
	}
	zipindex_free(zi);
	if (membudget_used() != before)
		abort(); /* every byte taken from the memory budget is given back */
	return 0;
}

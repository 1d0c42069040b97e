/* libFuzzer target: any bytes as an archive member behind "#/". Indexing must fail cleanly or
 * give a consistent tree (every member found by its own name, parents are folders, siblings in
 * strcmp order) whose files lie inside the blob and whose links have their text, without a
 * crash, a leak or a hang. The oracle holds resource bounds too, on failure as on success, as
 * unpack.h promises them: the blob is written front to back, each byte once, and never past the
 * budget (min(max_bytes, max(floor_bytes, ratio * the bytes read))), so a bomb never fills the
 * cache; the bytes read stay within a bounded multiple of the member's size (zip and 7z seek,
 * nothing may loop); what the pass took from the memory budget is given back, and the index
 * holds no more than the budget allows. (RSS, and any one allocation libarchive makes, are bounded
 * by the run's -rss_limit_mb and -malloc_limit_mb: see CMakeLists.txt.) libarchive itself is not
 * instrumented: the harness mostly exercises our callbacks, budget, name rules and tree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/log.h"
#include "artifactfs/membudget.h"
#include "artifactfs/unpack.h"
#include "counted_src.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define BUDGET (16u << 20)
#define FLOOR (1u << 20)
#define RATIO 200u
#define MEMORY (32u << 20) /* the membudget: a few hostile names can reach it */
/* Bytes read, re-reads included, per byte of the member, and over that: the formats that seek
 * (zip, 7z) read their directory and then each entry; nothing reads the member again and again. */
#define READ_FACTOR 16u
#define READ_SLACK (1u << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init(false, LOG_CRIT); /* hostile names and damage are expected: keep the run quiet */
	membudget_set_limit(MEMORY);
	return 0;
}

struct counted_blob {
	struct unpack_mem m;
	uint64_t written; /* bytes written, each once, in order */
};

static int counted_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct counted_blob *b = ctx;
	if (off != b->written)
		abort(); /* the blob is written front to back, without holes or rewrites */
	b->written += len;
	if (b->written > BUDGET)
		abort(); /* past the cap: the sink would have been filled before the refusal */
	return unpack_mem_write(&b->m, buf, len, off);
}

static void check_member(const struct unpacked *n, const struct unpack_mem *blob, uint32_t i)
{
	const struct zipindex *zi = unpack_zipindex(n);
	const struct zip_member *zm = zipindex_member(zi, i);
	if (zipindex_find(zi, zm->name) != zm)
		abort();
	if (i > 0 && zipindex_member(zi, zm->parent)->type != ZIP_DIR)
		abort();
	if (zm->type == ZIP_FILE &&
	    (zm->local_offset > blob->len || zm->size > blob->len - zm->local_offset))
		abort(); /* a file's range lies inside the blob */
	if (zm->type == ZIP_SYMLINK && strlen(unpack_link_target(n, zm)) != zm->size)
		abort();
	const struct zip_member *prev = NULL;
	for (uint32_t c = zm->type == ZIP_DIR ? zm->first_child : UINT32_MAX; c != UINT32_MAX;
	     c = zipindex_member(zi, c)->next_sibling) {
		const struct zip_member *k = zipindex_member(zi, c);
		if (!k || k->parent != i || (prev && strcmp(prev->base, k->base) >= 0))
			abort();
		prev = k;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct counted_src src = {.b = {data, size}};
	struct counted_blob blob = {0};
	struct unpack_limits lim = {
		.max_bytes = BUDGET, .floor_bytes = FLOOR, .ratio = RATIO, .max_entries = 10000};
	struct unpacked *n;
	uint64_t before = membudget_used();
	int err = unpack_archive(size, counted_read, &src, counted_write, &blob, &lim, &n);
	/* the budget, on failure as on success: what was read allows what was written */
	uint64_t allowed = src.read * RATIO > FLOOR ? src.read * RATIO : FLOOR;
	if (blob.written > allowed)
		abort();
	if (src.read > (uint64_t)size * READ_FACTOR + READ_SLACK)
		abort(); /* the member read over and over: time unbounded by its size */
	if (err == 0) {
		if (blob.m.len > BUDGET || unpack_blob_size(n) != blob.m.len ||
		    blob.written != blob.m.len)
			abort();
		if (unpack_memory_bytes(n) > MEMORY || membudget_used() > MEMORY)
			abort(); /* the index fits the memory budget it was charged to */
		for (uint32_t i = 0; i < zipindex_count(unpack_zipindex(n)); i++)
			check_member(n, &blob.m, i);
		unpack_free(n);
	}
	if (membudget_used() != before)
		abort(); /* every byte taken from the memory budget is given back */
	free(blob.m.p);
	return 0;
}

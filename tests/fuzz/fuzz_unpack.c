/* libFuzzer target: any bytes as an archive member behind "#/". Indexing must fail cleanly or
 * give a consistent tree (every member found by its own name, parents are folders, siblings in
 * strcmp order) whose files lie inside the blob and whose links have their text, within the
 * budget, without a crash, a leak or a hang. libarchive itself is not instrumented: the harness
 * mostly exercises our callbacks, budget, name rules and tree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/log.h"
#include "artifactfs/unpack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define BUDGET (16u << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init(false, LOG_CRIT); /* hostile names and damage are expected: keep the run quiet */
	return 0;
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
	struct zip_buffer src = {data, size};
	struct unpack_mem blob = {0};
	struct unpack_limits lim = {
		.max_bytes = BUDGET, .floor_bytes = 1u << 20, .max_entries = 10000};
	struct unpacked *n;
	if (unpack_archive(size, zip_buffer_read, &src, unpack_mem_write, &blob, &lim, &n) == 0) {
		if (blob.len > BUDGET || unpack_blob_size(n) != blob.len)
			abort();
		for (uint32_t i = 0; i < zipindex_count(unpack_zipindex(n)); i++)
			check_member(n, &blob, i);
		unpack_free(n);
	}
	free(blob.p);
	return 0;
}

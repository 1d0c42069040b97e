/* libFuzzer target: any bytes as an archive. Loading must fail cleanly or give an index whose
 * tree is consistent (every member found by its own name, parents are folders, siblings in
 * strcmp order) and whose every member can be read (bounded) without a crash, a leak or a hang. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/log.h"
#include "artifactfs/zipindex.h"
#include "artifactfs/zipread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init(false, LOG_CRIT); /* hostile names are expected: keep the run quiet and fast */
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

static void read_member(const struct zipindex *zi, const struct zip_member *zm,
			struct zip_buffer *m)
{
	struct zip_reader *r;
	char buf[4096], *all;
	size_t len;
	if (zip_reader_read_all(zi, zm, zip_buffer_read, m, 1u << 16, &all, &len) == 0)
		free(all);
	if (zip_reader_new(zi, zm, zip_buffer_read, m, &r) != 0)
		return;
	for (uint64_t off = 0; off < zm->size && off < (1u << 20); off += sizeof(buf))
		if (zip_reader_pread(r, buf, sizeof(buf), off) < 0)
			break;
	zip_reader_pread(r, buf, 100, 0); /* a restart */
	zip_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct zipindex *zi;
	struct zip_buffer m = {data, size};
	if (zipindex_load(size, zip_buffer_read, &m, &zi) != 0)
		return 0;
	for (uint32_t i = 0; i < zipindex_count(zi); i++) {
		const struct zip_member *zm = zipindex_member(zi, i);
		check_tree(zi, i, zm);
		if (zm->type != ZIP_DIR)
			read_member(zi, zm, &m);
	}
	zipindex_free(zi);
	return 0;
}

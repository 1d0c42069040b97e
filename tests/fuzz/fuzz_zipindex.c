/* libFuzzer target: any bytes as an archive. Loading must fail cleanly or give an index whose
 * every member can be looked up and read (bounded) without a crash, a leak or a hang. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/zipindex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct zipindex *zi;
	struct zip_buffer m = {data, size};
	if (zipindex_load(size, zip_buffer_read, &m, &zi) != 0)
		return 0;
	for (uint32_t i = 0; i < zipindex_count(zi); i++) {
		const struct zip_member *zm = zipindex_member(zi, i);
		if (zipindex_find(zi, zm->name) == NULL)
			abort(); /* every member is found by its own name */
		struct zip_reader *r;
		if (zm->type == ZIP_DIR || zip_reader_new(zi, zm, zip_buffer_read, &m, &r) != 0)
			continue;
		char buf[4096];
		for (uint64_t off = 0; off < zm->size && off < (1u << 20); off += sizeof(buf))
			if (zip_reader_pread(r, buf, sizeof(buf), off) < 0)
				break;
		zip_reader_pread(r, buf, 100, 0); /* a restart */
		zip_reader_free(r);
	}
	zipindex_free(zi);
	return 0;
}

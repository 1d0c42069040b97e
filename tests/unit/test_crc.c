/* crc: both checksums against their published check values and against zlib, at every
 * alignment and in pieces, since cache files written before ISA-L must still verify. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "artifactfs/crc.h"

/* The reference CRC-32C, bit by bit (reflected polynomial 0x82F63B78). */
static uint32_t castagnoli_slow(const unsigned char *p, size_t len)
{
	uint32_t c = 0xffffffffu;
	while (len--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
	}
	return ~c;
}

static unsigned char *pattern(size_t n)
{
	unsigned char *b = malloc(n);
	cr_assert_not_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)((i * 2654435761u) >> 13);
	return b;
}

Test(crc, check_values)
{
	cr_assert_eq(crc_zip(0, "123456789", 9), 0xCBF43926u);
	cr_assert_eq(crc_castagnoli("123456789", 9), 0xE3069283u);
	cr_assert_eq(crc_zip(0, "", 0), 0u);
	cr_assert_eq(crc_castagnoli("", 0), 0u);
}

Test(crc, every_length_and_alignment_matches_the_references)
{
	size_t n = 70000;
	unsigned char *b = pattern(n);
	for (size_t off = 0; off < 16; off++)
		for (size_t len = 0; len + off < n; len = len * 2 + 1 + off) {
			cr_assert_eq(crc_zip(0, b + off, len),
				     (uint32_t)crc32(0, b + off, (uInt)len), "CRC-32 at %zu+%zu",
				     off, len);
			cr_assert_eq(crc_castagnoli(b + off, len), castagnoli_slow(b + off, len),
				     "CRC-32C at %zu+%zu", off, len);
		}
	free(b);
}

Test(crc, crc32_chains_as_zlib_does)
{
	size_t n = 1 << 20;
	unsigned char *b = pattern(n);
	uint32_t whole = (uint32_t)crc32(0, b, (uInt)n), chained = 0;
	for (size_t off = 0, len = 1; off < n; off += len, len = len * 3 + 7)
		chained = crc_zip(chained, b + off, off + len > n ? n - off : len);
	cr_assert_eq(chained, whole);
	free(b);
}

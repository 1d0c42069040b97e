/* crc: CRC-32 and CRC-32C over ISA-L (see crc.h for why ISA-L). */
#include "artifactfs/crc.h"

#include <limits.h>

#include <isa-l/crc.h>

uint32_t crc_zip(uint32_t crc, const void *buf, size_t len)
{
	return crc32_gzip_refl(crc, buf, len);
}

uint32_t crc_castagnoli(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t crc = 0xffffffffu; /* ISA-L's iSCSI CRC takes and gives the register uninverted */
	while (len > 0) {
		int n = len > INT_MAX ? INT_MAX : (int)len;
		crc = crc32_iscsi((unsigned char *)p, n, crc);
		p += n;
		len -= (size_t)n;
	}
	return ~crc;
}

/* A zip writer for tests: any name (hostile ones too), stored or deflated, unix modes, a wrong
 * CRC or size on request, zip64 records when asked. Everything in one growing buffer. */
#ifndef ZIPBUILD_H
#define ZIPBUILD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct zb {
	unsigned char *buf;
	size_t len, cap;
	unsigned char *cd;
	size_t cd_len, cd_cap;
	uint64_t entries;
};

struct zb_opts {
	int method;        /* 0 stored, 8 deflated */
	uint32_t mode;     /* full st_mode (S_IFREG | 0644 ...), 0: a non-unix entry */
	bool bad_crc;      /* record a wrong CRC-32 */
	int64_t fake_size; /* >= 0: record this uncompressed size instead */
	size_t name_len;   /* > 0: the name's length (it may hold NULs); 0: strlen */
	bool encrypted;    /* set the encryption flag */
	bool zip64;        /* all-ones sizes and offset in the central directory, zip64 field */
	int64_t mtime;     /* != 0: an extended timestamp field (0x5455) with this mtime */
	uint16_t lfh_pad;  /* bytes of padding field in the local header's extra */
};

static void zb_grow(unsigned char **b, size_t *len, size_t *cap, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (*len + n > *cap) {
		size_t c = *cap ? *cap : 4096;
		while (c < *len + n)
			c *= 2;
		*b = realloc(*b, c);
		*cap = c;
	}
	memcpy(*b + *len, p, n);
	*len += n;
}

static void zb_le(unsigned char **b, size_t *len, size_t *cap, uint64_t v, int n)
{
	unsigned char x[8];
	for (int i = 0; i < n; i++)
		x[i] = (unsigned char)(v >> (8 * i));
	zb_grow(b, len, cap, x, (size_t)n);
}

#define ZB_OUT(z, v, n) zb_le(&(z)->buf, &(z)->len, &(z)->cap, (v), (n))
#define ZB_CD(z, v, n) zb_le(&(z)->cd, &(z)->cd_len, &(z)->cd_cap, (v), (n))

static unsigned char *zb_deflate(const void *data, size_t len, size_t *out_len)
{
	z_stream s = {0};
	deflateInit2(&s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
	size_t cap = deflateBound(&s, len) + 16;
	unsigned char *out = malloc(cap);
	s.next_in = (unsigned char *)data;
	s.avail_in = (uInt)len;
	s.next_out = out;
	s.avail_out = (uInt)cap;
	deflate(&s, Z_FINISH);
	*out_len = s.total_out;
	deflateEnd(&s);
	return out;
}

static void zb_add(struct zb *z, const char *name, const void *data, size_t len, struct zb_opts o)
{
	size_t clen = len;
	unsigned char *comp = NULL;
	const void *payload = data;
	if (o.method == 8) {
		comp = zb_deflate(data, len, &clen);
		payload = comp;
	}
	uint32_t crc = (uint32_t)crc32(0, data, (uInt)len) ^ (o.bad_crc ? 0xdeadbeefu : 0);
	uint64_t usize = o.fake_size >= 0 ? (uint64_t)o.fake_size : len;
	uint64_t off = z->len;
	size_t nlen = o.name_len ? o.name_len : strlen(name);
	unsigned flags = 0x800u | (o.encrypted ? 1u : 0u);
	ZB_OUT(z, 0x04034b50, 4);
	ZB_OUT(z, 20, 2);
	ZB_OUT(z, flags, 2);
	ZB_OUT(z, o.method, 2);
	ZB_OUT(z, 0, 2);
	ZB_OUT(z, 0x5b74, 2);
	ZB_OUT(z, crc, 4);
	ZB_OUT(z, clen, 4);
	ZB_OUT(z, usize, 4);
	ZB_OUT(z, nlen, 2);
	ZB_OUT(z, o.lfh_pad ? o.lfh_pad + 4u : 0u, 2);
	zb_grow(&z->buf, &z->len, &z->cap, name, nlen);
	if (o.lfh_pad) {
		ZB_OUT(z, 0xcafe, 2);
		ZB_OUT(z, o.lfh_pad, 2);
		for (unsigned i = 0; i < o.lfh_pad; i++)
			ZB_OUT(z, 0x55, 1);
	}
	zb_grow(&z->buf, &z->len, &z->cap, payload, clen);
	uint64_t big = 0xffffffffu;
	size_t xlen = (o.zip64 ? 28u : 0u) + (o.mtime ? 9u : 0u);
	ZB_CD(z, 0x02014b50, 4);
	ZB_CD(z, o.mode ? 0x0314 : 0x0014, 2);
	ZB_CD(z, 45, 2);
	ZB_CD(z, flags, 2);
	ZB_CD(z, o.method, 2);
	ZB_CD(z, 0, 2);
	ZB_CD(z, 0x5b74, 2);
	ZB_CD(z, crc, 4);
	ZB_CD(z, o.zip64 ? big : clen, 4);
	ZB_CD(z, o.zip64 ? big : usize, 4);
	ZB_CD(z, nlen, 2);
	ZB_CD(z, xlen, 2);
	ZB_CD(z, 0, 2);
	ZB_CD(z, 0, 2);
	ZB_CD(z, 0, 2);
	ZB_CD(z, (uint64_t)o.mode << 16 | ((o.mode & 0170000) == 0040000 ? 0x10 : 0), 4);
	ZB_CD(z, o.zip64 ? big : off, 4);
	zb_grow(&z->cd, &z->cd_len, &z->cd_cap, name, nlen);
	if (o.zip64) {
		ZB_CD(z, 0x0001, 2);
		ZB_CD(z, 24, 2);
		ZB_CD(z, usize, 8);
		ZB_CD(z, clen, 8);
		ZB_CD(z, off, 8);
	}
	if (o.mtime) {
		ZB_CD(z, 0x5455, 2);
		ZB_CD(z, 5, 2);
		ZB_CD(z, 1, 1);
		ZB_CD(z, (uint64_t)o.mtime, 4);
	}
	z->entries++;
	free(comp);
}

static void zb_file(struct zb *z, const char *name, const char *text)
{
	zb_add(z, name, text, strlen(text),
	       (struct zb_opts){.method = 0, .mode = 0100644, .fake_size = -1});
}

/* Appends the central directory and the end records; zip64 adds the zip64 record and locator
 * and puts 0xFFFF/0xFFFFFFFF in the classic EOCD. Returns the archive; z is spent. */
static unsigned char *zb_finish(struct zb *z, bool zip64, size_t *len)
{
	uint64_t cd_off = z->len;
	zb_grow(&z->buf, &z->len, &z->cap, z->cd, z->cd_len);
	if (zip64) {
		uint64_t rec = z->len;
		ZB_OUT(z, 0x06064b50, 4);
		ZB_OUT(z, 44, 8);
		ZB_OUT(z, 45, 2);
		ZB_OUT(z, 45, 2);
		ZB_OUT(z, 0, 4);
		ZB_OUT(z, 0, 4);
		ZB_OUT(z, z->entries, 8);
		ZB_OUT(z, z->entries, 8);
		ZB_OUT(z, z->cd_len, 8);
		ZB_OUT(z, cd_off, 8);
		ZB_OUT(z, 0x07064b50, 4);
		ZB_OUT(z, 0, 4);
		ZB_OUT(z, rec, 8);
		ZB_OUT(z, 1, 4);
	}
	ZB_OUT(z, 0x06054b50, 4);
	ZB_OUT(z, 0, 2);
	ZB_OUT(z, 0, 2);
	ZB_OUT(z, zip64 ? 0xffff : z->entries, 2);
	ZB_OUT(z, zip64 ? 0xffff : z->entries, 2);
	ZB_OUT(z, zip64 ? 0xffffffffu : z->cd_len, 4);
	ZB_OUT(z, zip64 ? 0xffffffffu : cd_off, 4);
	ZB_OUT(z, 0, 2);
	free(z->cd);
	*len = z->len;
	return z->buf;
}

#endif

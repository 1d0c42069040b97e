/* Unit tests of the 7z header scan: archives made by 7z itself (p7zip-full) with every header
 * form it writes, their counts as 7z lists them; and headers built byte by byte as no tool
 * makes them: 99,000,000 files in 56 bytes, a folder of 99,000,000 files, an encoded header
 * claiming gigabytes or coded with BCJ, a self-extractor, damage. Through unpack_archive too:
 * such a 7z is refused before libarchive allocates for it, and what the pass took from the
 * memory budget comes back. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/crc.h"
#include "artifactfs/log.h"
#include "artifactfs/membudget.h"
#include "artifactfs/sevenzhdr.h"
#include "artifactfs/unpack.h"
#include "tmpdir.h"

#define MANY_FILES 99000000ull

static const struct sevenz_limits lim = {.max_header_bytes = 1u << 20, .max_count = 1000000};
static const struct sevenz_limits no_count = {.max_header_bytes = 1u << 20, .max_count = 100000000};

struct buf {
	unsigned char p[1 << 16];
	size_t len;
};

static void put(struct buf *b, const void *p, size_t n)
{
	cr_assert_leq(b->len + n, sizeof(b->p));
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put_byte(struct buf *b, unsigned v)
{
	unsigned char c = (unsigned char)v;
	put(b, &c, 1);
}

/* 7z's number: the first byte's high bits count the bytes that follow. */
static void put_num(struct buf *b, uint64_t v)
{
	unsigned first = 0, mask = 0x80;
	int i;
	for (i = 0; i < 8; i++, mask >>= 1) {
		if (v < (1ull << (7 * (i + 1)))) {
			first |= (unsigned)(v >> (8 * i));
			break;
		}
		first |= mask;
	}
	put_byte(b, first);
	for (int k = 0; k < i; k++)
		put_byte(b, (unsigned)(v >> (8 * k)));
}

static void put_le(struct buf *b, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		put_byte(b, (unsigned)(v >> (8 * i)));
}

/* A 7z archive: the signature, the start header, packed (the data), hdr (the next header). */
static struct buf archive(const struct buf *packed, const struct buf *hdr)
{
	struct buf a = {0}, start = {0};
	put_le(&start, packed->len, 8);
	put_le(&start, hdr->len, 8);
	put_le(&start, crc_zip(0, hdr->p, hdr->len), 4);
	put(&a, "7z\xbc\xaf\x27\x1c\x00\x04", 8);
	put_le(&a, crc_zip(0, start.p, start.len), 4);
	put(&a, start.p, start.len);
	put(&a, packed->p, packed->len);
	put(&a, hdr->p, hdr->len);
	return a;
}

/* The red team's seed: a plain header whose FilesInfo declares 99,000,000 files. */
static struct buf many_files(uint64_t files)
{
	struct buf hdr = {0}, none = {0};
	put(&hdr, "\x01\x05", 2);
	put_num(&hdr, files);
	put(&hdr, "\x00\x00", 2);
	return archive(&none, &hdr);
}

static int scan(const struct buf *a, const struct sevenz_limits *l, struct sevenz_header *h)
{
	struct zip_buffer zb = {a->p, a->len};
	return sevenz_header_scan(a->len, zip_buffer_read, &zb, l, h);
}

Test(sevenzhdr, ninety_nine_million_files_in_a_few_bytes_are_refused_by_count)
{
	struct buf a = many_files(MANY_FILES);
	struct sevenz_header h;
	cr_assert_leq(a.len, 56);
	cr_assert_eq(scan(&a, &lim, &h), -EFBIG);
	cr_assert_not_null(strstr(h.why, "too many files"), "%s", h.why);
	cr_assert_eq(scan(&a, &no_count, &h), 0);
	cr_assert_eq(h.files, MANY_FILES);
	cr_assert_geq(h.alloc_bytes, MANY_FILES * 88, "what libarchive callocs for its entries");
}

/* A main StreamsInfo of one Copy folder declaring unpack_streams files. */
static struct buf many_streams(uint64_t unpack_streams)
{
	struct buf hdr = {0}, packed = {0};
	put(&packed, "0123456789", 10);
	put(&hdr, "\x01\x04\x06", 3); /* kHeader, kMainStreamsInfo, kPackInfo */
	put_num(&hdr, 0);
	put_num(&hdr, 1);
	put_byte(&hdr, 0x09); /* kSize */
	put_num(&hdr, 10);
	put(&hdr, "\x00\x07\x0b\x01\x00", 5); /* kEnd, kUnPackInfo, kFolder, 1, not external */
	put(&hdr, "\x01\x01\x00", 3);         /* one coder, simple, id length 1: Copy */
	put_byte(&hdr, 0x0c);                 /* kCodersUnPackSize */
	put_num(&hdr, 10);
	put(&hdr, "\x00\x08\x0d", 3); /* kEnd, kSubStreamsInfo, kNumUnPackStream */
	put_num(&hdr, unpack_streams);
	put(&hdr, "\x00\x00\x00", 3);
	return archive(&packed, &hdr);
}

Test(sevenzhdr, a_folder_declaring_ninety_nine_million_files_is_refused)
{
	struct buf a = many_streams(MANY_FILES);
	struct sevenz_header h;
	cr_assert_eq(scan(&a, &lim, &h), -EFBIG);
	cr_assert_eq(scan(&a, &no_count, &h), 0);
	cr_assert_eq(h.unpack_streams, MANY_FILES);
	cr_assert_eq(h.folders, 1);
	cr_assert_geq(h.alloc_bytes, MANY_FILES * 13, "libarchive's sizes and CRCs per stream");
}

/* PackInfo of n pack streams of 0 bytes, without CRCs: libarchive still allocates their
 * sizes, positions and CRCs, 21 bytes each, for 1 byte of header. */
Test(sevenzhdr, pack_streams_without_crcs_are_charged)
{
	struct buf hdr = {0}, none = {0};
	uint64_t n = 60000;
	put(&hdr, "\x01\x04\x06", 3);
	put_num(&hdr, 0);
	put_num(&hdr, n);
	put_byte(&hdr, 0x09);
	for (uint64_t i = 0; i < n; i++)
		put_byte(&hdr, 0);
	put(&hdr, "\x00\x00\x00", 3); /* no kCRC: PackInfo, StreamsInfo and Header end */
	struct buf a = archive(&none, &hdr);
	struct sevenz_header h;
	cr_assert_eq(scan(&a, &lim, &h), 0, "%s", h.why);
	cr_assert_eq(h.pack_streams, n);
	cr_assert_geq(h.alloc_bytes, n * 21, "%llu", (unsigned long long)h.alloc_bytes);
}

/* One folder of one coder with streams in and out streams, bound in pairs in the order that
 * makes libarchive's read_Folder search all of them for each stream: streams^2/2 steps, a
 * quarter of an hour for a million. */
static struct buf many_bind_pairs(uint64_t streams)
{
	struct buf hdr = {0}, packed = {0};
	put(&packed, "0123456789", 10);
	put(&hdr, "\x01\x04\x06", 3);
	put_num(&hdr, 0);
	put_num(&hdr, 1);
	put_byte(&hdr, 0x09);
	put_num(&hdr, 10);
	put(&hdr, "\x00\x07\x0b\x01\x00\x01\x11\x00", 8); /* a coder: not simple, Copy */
	put_num(&hdr, streams);
	put_num(&hdr, streams);
	for (uint64_t j = 0; j + 1 < streams; j++) {
		put_num(&hdr, streams - 2 - j);
		put_num(&hdr, j + 1);
	}
	put_byte(&hdr, 0x0c);
	for (uint64_t j = 0; j < streams; j++)
		put_num(&hdr, 0);
	put(&hdr, "\x00\x00\x00\x00", 4);
	return archive(&packed, &hdr);
}

Test(sevenzhdr, a_folder_of_more_streams_than_7zip_allows_is_eio)
{
	struct sevenz_header h;
	struct buf a = many_bind_pairs(64);
	cr_assert_eq(scan(&a, &lim, &h), 0, "%s", h.why);
	a = many_bind_pairs(65);
	cr_assert_eq(scan(&a, &lim, &h), -EIO);
	cr_assert_not_null(strstr(h.why, "more streams"), "%s", h.why);
}

/* A folder of Copy then BCJ2 (7z's own form: 5 streams in, 2 out) over 4 packed streams:
 * libarchive reads the 3 after the first whole into memory (setup_decode_folder), each as large
 * as its packed size, whatever the folder's unpack sizes say. */
Test(sevenzhdr, bcj2_is_charged_the_packed_streams_it_holds)
{
	struct buf hdr = {0}, none = {0};
	put(&hdr, "\x01\x04\x06", 3);
	put_num(&hdr, 0);
	put_num(&hdr, 4);
	put_byte(&hdr, 0x09);
	put_num(&hdr, 10);
	put_num(&hdr, 1000000);
	put_num(&hdr, 2000000);
	put_num(&hdr, 3000000);
	put(&hdr, "\x00\x07\x0b\x01\x00\x02", 6); /* a folder of two coders */
	put(&hdr, "\x01\x00", 2);                 /* Copy */
	put(&hdr, "\x14\x03\x03\x01\x1b", 5);     /* BCJ2, not simple: */
	put(&hdr, "\x04\x01\x01\x00", 4);         /* 4 in, 1 out; bind in 1 to out 0 */
	put(&hdr, "\x00\x02\x03\x04", 4);         /* packed streams: ins 0, 2, 3, 4 */
	put_byte(&hdr, 0x0c);
	put_num(&hdr, 10);
	put_num(&hdr, 10);
	put(&hdr, "\x00\x00\x00", 3);
	struct buf a = archive(&none, &hdr);
	struct sevenz_header h;
	cr_assert_eq(scan(&a, &lim, &h), 0, "%s", h.why);
	cr_assert_geq(h.coder_memory, 6000000, "%llu", (unsigned long long)h.coder_memory);
	cr_assert_geq(h.alloc_bytes, 6000000);
}

/* An encoded header: one folder of one coder (id) whose output, declared decoded bytes, would
 * be the header. */
static struct buf encoded(const void *id, size_t id_len, uint64_t decoded)
{
	struct buf hdr = {0}, packed = {0};
	put(&packed, "\x5d\x00\x00\x10\x00packed", 11);
	put(&hdr, "\x17\x06", 2); /* kEncodedHeader, kPackInfo */
	put_num(&hdr, 0);
	put_num(&hdr, 1);
	put_byte(&hdr, 0x09);
	put_num(&hdr, packed.len);
	put(&hdr, "\x00\x07\x0b\x01\x00\x01", 6);
	put_byte(&hdr, 0x20 | (unsigned)id_len); /* simple, with properties */
	put(&hdr, id, id_len);
	put_num(&hdr, 5);
	put(&hdr, "\x5d\x00\x00\x10\x00", 5); /* LZMA: lc 3 lp 0 pb 2, a 1 MiB dictionary */
	put_byte(&hdr, 0x0c);
	put_num(&hdr, decoded);
	put(&hdr, "\x00\x00", 2);
	return archive(&packed, &hdr);
}

Test(sevenzhdr, an_encoded_header_claiming_gigabytes_is_refused_before_decoding)
{
	struct buf a = encoded("\x03\x01\x01", 3, 4000000000ull);
	struct sevenz_header h;
	cr_assert_eq(scan(&a, &lim, &h), -EFBIG);
	cr_assert_not_null(strstr(h.why, "decodes to more"), "%s", h.why);
}

Test(sevenzhdr, an_encoded_header_coded_other_than_lzma_is_enotsup)
{
	struct buf a = encoded("\x03\x03\x01\x03", 4, 100); /* BCJ x86 */
	struct sevenz_header h;
	cr_assert_eq(scan(&a, &lim, &h), -ENOTSUP);
	cr_assert_not_null(strstr(h.why, "LZMA"), "%s", h.why);
}

/* An encoded header whose folder is Copy then a second coder declaring no streams of its own:
 * libarchive runs the second (here Delta) over the first's output as a filter, so the header it
 * parses is not the bytes stored. LZMA2 then Delta made a 252-byte archive that the scan read
 * as 1 file and libarchive as 4,000,000 (352 MiB). */
Test(sevenzhdr, an_encoded_header_with_a_filter_after_its_coder_is_enotsup)
{
	struct buf hdr = {0}, packed = {0};
	put(&packed, "\x01\x05\x01\x00\x00", 5); /* kHeader, kFilesInfo, 1 file */
	put(&hdr, "\x17\x06", 2);
	put_num(&hdr, 0);
	put_num(&hdr, 1);
	put_byte(&hdr, 0x09);
	put_num(&hdr, packed.len);
	put(&hdr, "\x00\x07\x0b\x01\x00\x02", 6); /* one folder of two coders */
	put(&hdr, "\x01\x00", 2);                 /* Copy, simple */
	put(&hdr, "\x31\x03\x00\x00\x01\xff", 6); /* Delta: 0 in, 0 out, distance 256 */
	put_byte(&hdr, 0x0c);
	put_num(&hdr, packed.len);
	put(&hdr, "\x00\x00", 2);
	struct buf a = archive(&packed, &hdr);
	struct sevenz_header h;
	cr_assert_eq(scan(&a, &lim, &h), -ENOTSUP, "files %llu", (unsigned long long)h.files);
}

struct taken {
	uint64_t bytes, refuse_over;
};

static int take_some(void *ctx, uint64_t bytes)
{
	struct taken *t = ctx;
	if (bytes > t->refuse_over)
		return -ENOMEM;
	t->bytes += bytes;
	return 0;
}

/* The scan's own buffers are asked for first, so that the caller charges them to the budget:
 * a header decoding to 128 MiB (a quarter of the default budget) takes them while it is
 * scanned, in every thread that scans one. Refused, the packed stream is not even decoded. */
Test(sevenzhdr, the_scan_asks_before_it_allocates_for_the_header)
{
	struct buf a = encoded("\x03\x01\x01", 3, 1000); /* would not decode: EIO */
	struct sevenz_header h;
	struct taken t = {.refuse_over = UINT64_MAX};
	struct sevenz_limits l = lim;
	l.take = take_some;
	l.take_ctx = &t;
	cr_assert_eq(scan(&a, &l, &h), -EIO);
	cr_assert_eq(t.bytes, h.header_bytes + 1000, "the stored header, then the decoded one");
	t = (struct taken){.refuse_over = 999};
	cr_assert_eq(scan(&a, &l, &h), -ENOMEM, "refused before decoding");
	cr_assert_eq(t.bytes, h.header_bytes);
}

Test(sevenzhdr, an_encoded_header_that_does_not_decode_is_eio)
{
	struct buf a = encoded("\x03\x01\x01", 3, 1000);
	struct sevenz_header h;
	cr_assert_eq(scan(&a, &lim, &h), -EIO);
}

Test(sevenzhdr, a_header_whose_crc_does_not_match_is_eio)
{
	struct buf a = many_files(3);
	a.p[a.len - 3] ^= 1;
	struct sevenz_header h;
	cr_assert_eq(scan(&a, &lim, &h), -EIO);
	cr_assert_not_null(strstr(h.why, "CRC"), "%s", h.why);
}

Test(sevenzhdr, a_header_past_the_end_is_eio)
{
	struct buf a = many_files(3);
	a.len--;
	struct sevenz_header h;
	cr_assert_eq(scan(&a, &lim, &h), -EIO);
}

Test(sevenzhdr, a_self_extractor_is_scanned_where_libarchive_finds_its_archive)
{
	static struct buf sfx;
	struct buf seed = many_files(MANY_FILES);
	memset(&sfx, 0, sizeof(sfx));
	unsigned char *p = malloc(0x27000 + 100 + seed.len);
	memset(p, 0, 0x27000 + 100);
	memcpy(p, "MZ", 2);
	memcpy(p + 0x27000 + 100, seed.p, seed.len);
	struct zip_buffer zb = {p, 0x27000 + 100 + seed.len};
	struct sevenz_header h;
	cr_assert_eq(sevenz_header_scan(zb.len, zip_buffer_read, &zb, &lim, &h), -EFBIG);
	memcpy(p, "XX", 2); /* not an executable: libarchive does not look there */
	cr_assert_eq(sevenz_header_scan(zb.len, zip_buffer_read, &zb, &lim, &h), 1);
	free(p);
}

Test(sevenzhdr, what_is_not_a_7z_is_1)
{
	static const char text[] = "PK\x03\x04 not a 7z at all, nor an executable";
	struct buf a = {0};
	struct sevenz_header h;
	put(&a, text, sizeof(text) - 1);
	cr_assert_eq(scan(&a, &lim, &h), 1);
	a.len = 3;
	cr_assert_eq(scan(&a, &lim, &h), 1);
}

/* ---- archives 7z makes ---- */

static char *dir;

static void sh(const char *cmd)
{
	char *full;
	cr_assert(asprintf(&full, "cd '%s' && (%s) >/dev/null 2>&1", dir, cmd) > 0);
	cr_assert_eq(system(full), 0, "failed: %s", cmd);
	free(full);
}

static void make_files(void)
{
	if (system("command -v 7z >/dev/null") != 0)
		cr_skip_test("7z (p7zip-full) is not installed");
	dir = tmpdir_new("sevenzhdr");
	sh("mkdir -p t/d/e && for i in $(seq 1 300); do echo file $i > t/f$i.txt; done && "
	   "head -c 200000 /dev/urandom > t/d/noise && : > t/d/e/empty && ln -s f1.txt t/link");
}

static void drop_files(void)
{
	if (dir)
		tmpdir_remove(dir);
	dir = NULL;
}

static void scan_7z(const char *opts, bool want_encoded)
{
	char *cmd, *name;
	cr_assert(asprintf(&name, "%s/x.7z", dir) > 0);
	cr_assert(asprintf(&cmd, "rm -f x.7z && cd t && 7z a -snl -bd %s ../x.7z .", opts) > 0);
	sh(cmd);
	FILE *f = fopen(name, "rb");
	cr_assert_not_null(f);
	static unsigned char bytes[4 << 20];
	size_t len = fread(bytes, 1, sizeof(bytes), f);
	fclose(f);
	struct zip_buffer zb = {bytes, len};
	struct sevenz_header h;
	int err = sevenz_header_scan(len, zip_buffer_read, &zb, &lim, &h);
	cr_assert_eq(err, 0, "7z a %s: %d %s", opts, err, h.why);
	/* 300 files, noise, empty, link; folders d, d/e (7z lists no "." entry) */
	cr_assert_eq(h.files, 305, "7z a %s: %llu files", opts, (unsigned long long)h.files);
	cr_assert_geq(h.unpack_streams, 302, "7z a %s", opts);
	uint64_t stored = 0;
	for (int i = 7; i >= 0; i--)
		stored = stored << 8 | bytes[20 + i];
	cr_assert_eq(h.header_bytes != stored, want_encoded,
		     "7z a %s: %llu header bytes, %llu stored", opts,
		     (unsigned long long)h.header_bytes, (unsigned long long)stored);
	cr_assert_lt(h.alloc_bytes, 16u << 20, "7z a %s: %llu bytes", opts,
		     (unsigned long long)h.alloc_bytes);
	struct unpack_mem blob = {0};
	struct unpacked *n = NULL;
	struct unpack_limits ul = {.max_bytes = 64u << 20};
	err = unpack_archive(len, zip_buffer_read, &zb, unpack_mem_write, &blob, &ul, &n);
	cr_assert_eq(err, 0, "7z a %s: unpack_archive = %d", opts, err);
	cr_assert_gt(membudget_used(), 0, "the index holds its share");
	unpack_free(n);
	free(blob.p);
	cr_assert_eq(membudget_used(), 0, "the header's share came back with the pass");
	free(cmd);
	free(name);
}

Test(sevenzhdr, every_header_7z_writes_scans_and_unpacks, .init = make_files, .fini = drop_files,
     .timeout = 120)
{
	scan_7z("", true);                 /* LZMA2, solid, header LZMA */
	scan_7z("-m0=lzma -ms=off", true); /* a folder per file */
	scan_7z("-m0=copy", true);         /* stored */
	scan_7z("-mx=0", true);            /* stored, the header too */
	scan_7z("-mhc=off", false);        /* a plain header */
	scan_7z("-m0=lzma2 -mhc=off -ms=off", false);
	scan_7z("-m0=PPMd", true);
	scan_7z("-m0=BCJ2 -m1=LZMA -m2=LZMA -m3=LZMA -mb0:1 -mb0s1:2 -mb0s2:3", true);
}

/* ---- through unpack_archive ---- */

static int unpack(const struct buf *a)
{
	struct zip_buffer zb = {a->p, a->len};
	struct unpack_mem blob = {0};
	struct unpacked *n = NULL;
	struct unpack_limits ul = {.max_bytes = 64u << 20};
	int err = unpack_archive(a->len, zip_buffer_read, &zb, unpack_mem_write, &blob, &ul, &n);
	unpack_free(n);
	free(blob.p);
	return err;
}

Test(sevenzhdr, unpack_refuses_the_seed_before_libarchive_reads_it)
{
	log_init(false, LOG_CRIT);
	struct buf a = many_files(MANY_FILES);
	cr_assert_eq(unpack(&a), -EFBIG);
	a = many_streams(MANY_FILES);
	cr_assert_eq(unpack(&a), -EFBIG);
	cr_assert_eq(membudget_used(), 0);
}

Test(sevenzhdr, unpack_charges_the_header_to_the_memory_budget)
{
	log_init(false, LOG_CRIT);
	membudget_set_limit(8u << 20);
	struct buf a = many_files(500000); /* 500,000 entries of libarchive's: over 8 MiB */
	cr_assert_eq(unpack(&a), -ENOMEM);
	cr_assert_not_null(strstr(log_reason(), "7z archive's header (500000 files"), "%s",
			   log_reason());
	cr_assert_eq(membudget_used(), 0);
	membudget_set_limit(0);
}

Test(sevenzhdr, a_7z_under_a_layer_of_compression_is_not_read, .init = make_files,
     .fini = drop_files)
{
	log_init(false, LOG_CRIT);
	sh("cd t && 7z a -snl -bd ../x.7z f1.txt && gzip -k ../x.7z");
	char *name;
	cr_assert(asprintf(&name, "%s/x.7z.gz", dir) > 0);
	FILE *f = fopen(name, "rb");
	cr_assert_not_null(f);
	struct buf a = {0};
	a.len = fread(a.p, 1, sizeof(a.p), f);
	fclose(f);
	free(name);
	cr_assert_eq(unpack(&a), -ENOENT);
}

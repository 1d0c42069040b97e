/* sevenzhdr: a 7z archive's header scanned for the counts libarchive's 7z reader allocates from
 * (see sevenzhdr.h), as archive_read_support_format_7zip.c reads it: its start header, the next
 * header (kHeader, or kEncodedHeader whose one folder decodes to the kHeader), StreamsInfo's
 * PackInfo, CodersInfo and SubStreamsInfo, and FilesInfo's count of files.
 *
 * The grammar is followed exactly where it decides how many bytes come next, so that the scan
 * stays in step with libarchive; where libarchive would refuse the bytes anyway the scan may
 * refuse them first. Counts above libarchive's own ceiling (100,000,000) are refused as it
 * refuses them. Every loop over a declared count reads at least one byte an iteration, or is
 * checked against the bytes left first, so a scan is linear in the header's size. */
#include "artifactfs/sevenzhdr.h"

#include <errno.h>
#include <lzma.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/crc.h"
#include "artifactfs/grow.h"

#define SIG "7z\xbc\xaf\x27\x1c"
#define SIG_LEN 6
#define START_LEN 32
/* A self-extractor (a PE or ELF file) holds the archive past SFX_MIN; libarchive looks for it up
 * to 0x60000, where its read-ahead may carry it one buffer further: a wider window finds at
 * least what libarchive finds. */
#define SFX_MIN 0x27000u
#define SFX_END 0xA0000u
#define UMAX 100000000ull /* libarchive's UMAX_ENTRY: it refuses larger counts itself */
#define CHUNK (64u * 1024u)
/* Streams in or out of one folder: 7-Zip's reader refuses more (BCJ2's folder has 7 in and 4
 * out, libarchive decodes no larger one), and libarchive's read_Folder and
 * folder_uncompressed_size take time quadratic in them: a header of a million bind pairs held a
 * thread for a quarter of an hour. */
#define FOLDER_STREAMS_MAX 64u

/* What libarchive (3.6 and 3.7, 64-bit) allocates for each item, rounded up: a file's entry and
 * its five flag arrays; a folder's struct and digest; a coder; a bind pair; a pack stream's size,
 * position and digest; an unpack stream's size and digest, twice while they are read. */
#define PER_FILE 136u
#define PER_FOLDER 136u
#define PER_CODER 48u
#define PER_BIND_PAIR 16u
#define PER_STREAM_INDEX 8u
#define PER_PACK_STREAM 24u
#define PER_UNPACK_STREAM 24u
#define CODER_STATE (64u * 1024u) /* a decoder's fixed state beside its dictionary */

enum {
	K_END = 0x00,
	K_HEADER = 0x01,
	K_ARCHIVE_PROPERTIES = 0x02,
	K_MAIN_STREAMS_INFO = 0x04,
	K_FILES_INFO = 0x05,
	K_PACK_INFO = 0x06,
	K_UNPACK_INFO = 0x07,
	K_SUBSTREAMS_INFO = 0x08,
	K_SIZE = 0x09,
	K_CRC = 0x0A,
	K_FOLDER = 0x0B,
	K_CODERS_UNPACK_SIZE = 0x0C,
	K_NUM_UNPACK_STREAM = 0x0D,
	K_ENCODED_HEADER = 0x17,
};

enum {
	CODEC_COPY = 0x00,
	CODEC_LZMA2 = 0x21,
	CODEC_LZMA = 0x030101,
	CODEC_PPMD = 0x030401,
	CODEC_BCJ2 = 0x0303011B,
};

struct cur {
	const unsigned char *p;
	size_t left;
	const struct sevenz_limits *lim;
	const char *why; /* the first failure's reason */
};

/* One folder, as SubStreamsInfo and the memory bound need it. */
struct folder {
	uint32_t out_streams;    /* <= 4 * UMAX */
	uint32_t unpack_streams; /* <= UMAX */
	uint8_t packed;          /* its packed streams, <= FOLDER_STREAMS_MAX */
	bool bcj2;               /* holds its sub-streams whole in memory */
	bool digest_defined;
};

struct streams {
	uint64_t pack_pos, pack_streams, first_pack_size;
	const unsigned char *sizes; /* PackInfo's sizes, read again for BCJ2's folders */
	size_t sizes_left;
	struct folder *f;
	size_t nf, f_cap;
	uint64_t coders, unpack_streams;
	uint64_t alloc;  /* what libarchive allocates for this StreamsInfo */
	uint64_t memory; /* the largest one folder's decoders allocate */
	/* folder 0, the one an encoded header decodes */
	uint64_t codec0, size0, coders0;
	const unsigned char *props0;
	size_t props0_len;
	bool simple0, digest0_defined;
	uint32_t digest0;
};

static uint64_t add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t mul(uint64_t a, uint64_t b)
{
	return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static int bad(struct cur *c, int err, const char *why)
{
	if (!c->why)
		c->why = why;
	return err;
}

/* Asks the caller before a buffer of n bytes for the header is allocated. */
static int may_allocate(const struct cur *c, uint64_t n)
{
	return c->lim->take ? c->lim->take(c->lim->take_ctx, n) : 0;
}

static int take(struct cur *c, uint64_t n, const unsigned char **out)
{
	if (n > c->left)
		return bad(c, -EIO, "the header ends inside a record");
	*out = c->p;
	c->p += n;
	c->left -= n;
	return 0;
}

static int byte(struct cur *c, unsigned *b)
{
	const unsigned char *p;
	int err = take(c, 1, &p);
	*b = err ? 0 : *p;
	return err;
}

static int expect(struct cur *c, unsigned want)
{
	unsigned b;
	int err = byte(c, &b);
	return err || b == want ? err : bad(c, -EIO, "the header has a record out of place");
}

/* 7z's number: the first byte's high bits count the bytes that follow (parse_7zip_uint64). */
static int num(struct cur *c, uint64_t *v)
{
	unsigned first, b, mask = 0x80;
	int err = byte(c, &first);
	*v = 0;
	for (int i = 0; !err && i < 8; i++, mask >>= 1) {
		if (!(first & mask)) {
			*v += (uint64_t)(first & (mask - 1)) << (8 * i);
			break;
		}
		if (!(err = byte(c, &b)))
			*v |= (uint64_t)b << (8 * i);
	}
	return err;
}

static int count(struct cur *c, uint64_t *v, const char *what)
{
	int err = num(c, v);
	if (!err && *v > UMAX)
		return bad(c, -EIO, "the header declares a count libarchive refuses");
	if (!err && *v > c->lim->max_count)
		return bad(c, -EFBIG, what);
	return err;
}

/* n CRCs, each present or not (read_Digests); for the folders, which are present, and folder
 * 0's. */
static int digests(struct cur *c, uint64_t n, struct streams *st, bool folders)
{
	unsigned all;
	const unsigned char *bits = NULL, *p;
	int err = n ? byte(c, &all) : bad(c, -EIO, "the header has an empty list of CRCs");
	if (!err && !all)
		err = take(c, n / 8 + (n % 8 != 0), &bits);
	for (uint64_t i = 0; !err && i < n; i++) {
		bool defined = all || (bits[i / 8] & (0x80 >> (i % 8)));
		if (folders)
			st->f[i].digest_defined = defined;
		if (defined && !(err = take(c, 4, &p)) && folders && i == 0) {
			st->digest0_defined = true;
			st->digest0 = le32(p);
		}
	}
	return err;
}

/* What ends PackInfo and UnpackInfo: kEnd, or kCRC with the digests of n items, then kEnd. */
static int digests_then_end(struct cur *c, uint64_t n, struct streams *st, bool folders)
{
	unsigned b;
	int err = byte(c, &b);
	if (err || b == K_END)
		return err;
	if (b != K_CRC)
		return bad(c, -EIO, "the header has a record out of place");
	err = digests(c, n, st, folders);
	return err ? err : expect(c, K_END);
}

static int pack_info(struct cur *c, struct streams *st)
{
	uint64_t size;
	int err = num(c, &st->pack_pos);
	if (!err)
		err = count(c, &st->pack_streams, "the header declares too many pack streams");
	if (!err && st->pack_streams == 0)
		return bad(c, -EIO, "the header declares no pack stream");
	if (!err)
		err = expect(c, K_SIZE);
	st->sizes = c->p;
	st->sizes_left = c->left;
	for (uint64_t i = 0; !err && i < st->pack_streams; i++)
		if (!(err = num(c, &size)) && i == 0)
			st->first_pack_size = size;
	/* the sizes, positions and CRCs, which libarchive allocates with or without kCRC */
	st->alloc = add(st->alloc, mul(st->pack_streams, PER_PACK_STREAM));
	return err ? err : digests_then_end(c, st->pack_streams, st, false);
}

/* The memory a coder's decoder takes, from its properties: LZMA's and LZMA2's dictionary,
 * PPMd's model (libarchive allocates each whole, as declared). */
static uint64_t coder_memory(uint64_t codec, const unsigned char *p, uint64_t len)
{
	uint64_t m = CODER_STATE;
	if ((codec == CODEC_LZMA || codec == CODEC_PPMD) && len >= 5)
		m += le32(p + 1);
	else if (codec == CODEC_LZMA2 && len >= 1 && p[0] <= 40)
		m += p[0] == 40 ? UINT32_MAX : (uint64_t)(2 | (p[0] & 1)) << (p[0] / 2 + 11);
	return m;
}

/* One coder of a folder (read_Folder's loop). */
static int coder(struct cur *c, struct streams *st, bool first, uint64_t *in, uint64_t *out,
		 uint64_t *memory, bool *bcj2)
{
	unsigned flags;
	const unsigned char *id, *props = NULL;
	uint64_t codec = 0, n_in = 1, n_out = 1, props_len = 0;
	int err = byte(c, &flags);
	if (!err && (flags & 0x80))
		return bad(c, -EIO, "the header has a coder libarchive refuses");
	if (!err)
		err = take(c, flags & 0x0f, &id);
	for (unsigned i = 0; !err && i < (flags & 0x0f); i++)
		codec = codec << 8 | id[i];
	if (!err && (flags & 0x10) && !(err = count(c, &n_in, "a coder with too many streams")))
		err = count(c, &n_out, "a coder with too many streams");
	if (!err && (flags & 0x20) && !(err = num(c, &props_len)))
		err = take(c, props_len, &props);
	if (err)
		return err;
	*in += n_in;
	*out += n_out;
	*memory = add(*memory, coder_memory(codec, props, props_len));
	*bcj2 = *bcj2 || codec == CODEC_BCJ2;
	st->alloc = add(st->alloc, add(PER_CODER, props_len));
	if (first) {
		st->codec0 = codec;
		st->props0 = props;
		st->props0_len = (size_t)props_len;
		st->simple0 = !(flags & 0x10);
	}
	return 0;
}

/* A folder: its coders, bind pairs and packed streams (read_Folder). */
static int folder(struct cur *c, struct streams *st, struct folder *f, uint64_t *memory)
{
	uint64_t n, in = 0, out = 0, v;
	int err = num(c, &n);
	if (!err && n > 4)
		return bad(c, -EIO, "the header has a folder of more than 4 coders");
	for (uint64_t i = 0; !err && i < n; i++)
		err = coder(c, st, st->nf == 0 && i == 0, &in, &out, memory, &f->bcj2);
	if (!err && (out == 0 || in < out - 1 || out - 1 > c->left))
		return bad(c, -EIO, "the header has a folder whose streams do not add up");
	if (!err && (in > FOLDER_STREAMS_MAX || out > FOLDER_STREAMS_MAX))
		return bad(c, -EIO, "the header has a folder of more streams than 7-Zip allows");
	for (uint64_t i = 0; !err && i < 2 * (out - 1); i++)
		err = num(c, &v);
	uint64_t packed = in - (out - 1);
	for (uint64_t i = 0; !err && packed > 1 && i < packed; i++)
		err = num(c, &v);
	if (err)
		return err;
	st->coders += n;
	st->coders0 = st->nf == 0 ? n : st->coders0;
	f->out_streams = (uint32_t)out;
	f->packed = (uint8_t)packed;
	uint64_t arrays = add(mul(out - 1, PER_BIND_PAIR), mul(add(packed, out), PER_STREAM_INDEX));
	st->alloc = add(st->alloc, add(PER_FOLDER, arrays));
	return 0;
}

/* The sizes of a folder's packed streams after its first, which the folders take in turn from
 * PackInfo's list (read again through *sizes, where the scan read them once already). */
static uint64_t packed_after_first(struct cur *sizes, uint64_t *walked, const struct streams *st,
				   const struct folder *f)
{
	uint64_t sum = 0, v;
	for (unsigned k = 0; k < f->packed && *walked < st->pack_streams; k++, (*walked)++)
		if (!num(sizes, &v) && k > 0)
			sum = add(sum, v);
	return sum;
}

/* The folders' unpack sizes. A folder with BCJ2 holds its sub-streams in memory
 * (setup_decode_folder), each as large as its unpack size or, stored, its packed size. */
static int unpack_sizes(struct cur *c, struct streams *st, const uint64_t *memory)
{
	struct cur sizes = {.p = st->sizes, .left = st->sizes_left, .lim = c->lim};
	uint64_t walked = 0;
	int err = expect(c, K_CODERS_UNPACK_SIZE);
	for (size_t i = 0; !err && i < st->nf; i++) {
		uint64_t size, sum = 0;
		for (uint32_t j = 0; !err && j < st->f[i].out_streams; j++) {
			if (!(err = num(c, &size)) && i == 0)
				st->size0 = j == 0 ? size : st->size0;
			sum = add(sum, size);
		}
		sum = add(sum, packed_after_first(&sizes, &walked, st, &st->f[i]));
		uint64_t m = st->f[i].bcj2 ? add(memory[i], sum) : memory[i];
		st->memory = m > st->memory ? m : st->memory;
	}
	return err;
}

/* CodersInfo (read_CodersInfo). */
static int coders_info(struct cur *c, struct streams *st)
{
	uint64_t nf, v;
	unsigned external;
	uint64_t *memory = NULL;
	int err = expect(c, K_FOLDER);
	if (!err)
		err = count(c, &nf, "the header declares too many folders");
	if (!err)
		err = byte(c, &external);
	if (!err && external == 1 && !(err = num(c, &v)) && nf > 0)
		err = bad(c, -EIO, "the header's folders are external");
	if (!err && external > 1)
		err = bad(c, -EIO, "the header has a record out of place");
	if (!err && external == 0 && nf > c->left / 2) /* a folder takes 2 bytes at least */
		err = bad(c, -EIO, "the header declares more folders than it holds");
	if (!err && external == 0 && nf > 0) {
		st->f = calloc((size_t)nf, sizeof(*st->f));
		memory = calloc((size_t)nf, sizeof(*memory));
		err = st->f && memory ? 0 : -ENOMEM;
	}
	for (; !err && external == 0 && st->nf < nf; st->nf++)
		err = folder(c, st, &st->f[st->nf], &memory[st->nf]);
	if (!err)
		err = unpack_sizes(c, st, memory);
	free(memory);
	return err ? err : digests_then_end(c, st->nf, st, true);
}

/* SubStreamsInfo (read_SubStreamsInfo): how many files each folder holds, their sizes and CRCs. */
static int substreams_info(struct cur *c, struct streams *st)
{
	unsigned type;
	uint64_t n, total = 0, crcs = 0, v;
	int err = byte(c, &type);
	for (size_t i = 0; !err && i < st->nf; i++)
		st->f[i].unpack_streams = 1;
	for (size_t i = 0; !err && type == K_NUM_UNPACK_STREAM && i < st->nf; i++)
		if (!(err = count(c, &n, "a folder declares too many files")))
			st->f[i].unpack_streams = (uint32_t)n;
	if (!err && type == K_NUM_UNPACK_STREAM)
		err = byte(c, &type);
	for (size_t i = 0; i < st->nf; i++) {
		total += st->f[i].unpack_streams; /* <= UMAX each, at most SIZE_MAX folders */
		if (st->f[i].unpack_streams != 1 || !st->f[i].digest_defined)
			crcs += st->f[i].unpack_streams;
	}
	if (!err && total > c->lim->max_count)
		return bad(c, -EFBIG, "the header declares too many files in its folders");
	for (size_t i = 0; !err && type == K_SIZE && i < st->nf; i++)
		for (uint32_t k = 1; !err && k < st->f[i].unpack_streams; k++)
			err = num(c, &v);
	if (!err && type == K_SIZE)
		err = byte(c, &type);
	if (!err && type == K_CRC && !(err = digests(c, crcs, st, false)))
		err = byte(c, &type);
	if (!err && type != K_END)
		err = bad(c, -EIO, "the header has a record out of place");
	st->unpack_streams = total;
	st->alloc = add(st->alloc, mul(total, PER_UNPACK_STREAM));
	return err;
}

/* StreamsInfo (read_StreamsInfo). */
static int streams_info(struct cur *c, struct streams *st)
{
	unsigned b;
	int err = byte(c, &b);
	if (!err && b == K_PACK_INFO && !(err = pack_info(c, st)))
		err = byte(c, &b);
	if (!err && b == K_UNPACK_INFO && !(err = coders_info(c, st)))
		err = byte(c, &b);
	if (!err && b == K_SUBSTREAMS_INFO && !(err = substreams_info(c, st)))
		err = byte(c, &b);
	return err || b == K_END ? err : bad(c, -EIO, "the header has a record out of place");
}

/* The Header (read_Header) up to FilesInfo's count of files. */
static int header(struct cur *c, bool check_id, struct streams *st, uint64_t *files)
{
	unsigned b;
	uint64_t v;
	int err = check_id ? expect(c, K_HEADER) : 0;
	if (!err)
		err = byte(c, &b);
	if (!err && b == K_ARCHIVE_PROPERTIES) {
		while (!(err = byte(c, &b)) && b != 0)
			if ((err = num(c, &v)))
				break;
		if (!err)
			err = byte(c, &b);
	}
	if (!err && b == K_MAIN_STREAMS_INFO && !(err = streams_info(c, st)))
		err = byte(c, &b);
	*files = 0;
	if (err || b == K_END)
		return err;
	if (b != K_FILES_INFO)
		return bad(c, -EIO, "the header has a record out of place");
	return count(c, files, "the header declares too many files");
}

/* ---- the start header, the encoded header ---- */

/* Where libarchive finds the start header: at 0, or at the first signature with a good CRC in a
 * self-extractor's window. Returns 0 and *base, 1 when it finds none, or rd's -errno. */
static int find_start(uint64_t size, zip_read_fn rd, void *rctx, uint64_t *base)
{
	unsigned char head[SIG_LEN];
	ssize_t got = size < SIG_LEN ? 0 : rd(rctx, head, SIG_LEN, 0);
	if (size < SIG_LEN)
		return 1;
	if (got != SIG_LEN)
		return got < 0 ? (int)got : -EIO;
	*base = 0;
	if (!memcmp(head, SIG, SIG_LEN))
		return 0;
	if (memcmp(head, "MZ", 2) && memcmp(head, "\177ELF", 4))
		return 1;
	if (size <= SFX_MIN + START_LEN)
		return 1;
	size_t len = (size_t)((size < SFX_END ? size : SFX_END) - SFX_MIN);
	unsigned char *w = malloc(len);
	got = w ? rd(rctx, w, len, SFX_MIN) : -ENOMEM;
	int ret = got == (ssize_t)len ? 1 : got < 0 ? (int)got : -EIO;
	for (size_t i = 0; ret == 1 && i + START_LEN <= len; i++)
		if (w[i] == '7' && !memcmp(w + i, SIG, SIG_LEN) &&
		    crc_zip(0, w + i + 12, 20) == le32(w + i + 8)) {
			*base = SFX_MIN + i;
			ret = 0;
		}
	free(w);
	return ret;
}

/* Decodes folder 0 of st (one coder: Copy, LZMA or LZMA2) from the packed bytes at off. */
static int decode(struct cur *c, const struct streams *st, zip_read_fn rd, void *rctx, uint64_t off,
		  unsigned char *out)
{
	lzma_filter filters[2] = {
		{.id = st->codec0 == CODEC_LZMA ? LZMA_FILTER_LZMA1 : LZMA_FILTER_LZMA2},
		{.id = LZMA_VLI_UNKNOWN}};
	lzma_stream z = LZMA_STREAM_INIT;
	unsigned char *in = malloc(CHUNK);
	int err = in ? 0 : -ENOMEM;
	bool lz = st->codec0 != CODEC_COPY;
	if (!err && lz &&
	    lzma_properties_decode(&filters[0], NULL, st->props0, st->props0_len) != LZMA_OK)
		err = bad(c, -EIO, "the header's LZMA properties are damaged");
	if (!err && lz) { /* a dictionary larger than the output is never used */
		lzma_options_lzma *o = filters[0].options;
		o->dict_size = st->size0 < o->dict_size ? (uint32_t)st->size0 : o->dict_size;
		o->dict_size =
			o->dict_size < LZMA_DICT_SIZE_MIN ? LZMA_DICT_SIZE_MIN : o->dict_size;
		err = lzma_raw_decoder(&z, filters) == LZMA_OK ? 0 : -ENOMEM;
	}
	z.next_out = out;
	z.avail_out = (size_t)st->size0;
	for (uint64_t left = st->first_pack_size; !err && z.avail_out > 0;) {
		size_t n = left < CHUNK ? (size_t)left : CHUNK;
		ssize_t got = n ? rd(rctx, in, n, off) : 0;
		if (n == 0)
			err = bad(c, -EIO, "the header's packed stream ends before its end");
		else if (got != (ssize_t)n)
			err = got < 0 ? (int)got : -EIO;
		off += n;
		left -= n;
		z.next_in = in;
		z.avail_in = n;
		if (!err && !lz) {
			size_t k = n < z.avail_out ? n : z.avail_out;
			memcpy(z.next_out, in, k);
			z.next_out += k;
			z.avail_out -= k;
		}
		lzma_ret r = err || !lz ? LZMA_OK : lzma_code(&z, LZMA_RUN);
		if (r == LZMA_STREAM_END && z.avail_out > 0)
			err = bad(c, -EIO, "the header decodes to less than it declares");
		else if (r != LZMA_OK && r != LZMA_STREAM_END)
			err = r == LZMA_MEM_ERROR ? -ENOMEM
						  : bad(c, -EIO, "the header's data is damaged");
	}
	lzma_end(&z);
	free(filters[0].options);
	free(in);
	return err;
}

static void streams_release(struct streams *st)
{
	free(st->f);
}

/* The encoded header: its StreamsInfo, then its folder decoded into *out (free it). */
static int encoded(struct cur *c, uint64_t size, zip_read_fn rd, void *rctx, uint64_t at,
		   uint64_t header_off, struct streams *enc, unsigned char **out)
{
	int err = streams_info(c, enc);
	if (!err &&
	    (enc->pack_streams == 0 || enc->nf == 0 || enc->first_pack_size == 0 ||
	     enc->pack_pos > header_off || enc->first_pack_size > header_off - enc->pack_pos ||
	     at + enc->pack_pos + enc->first_pack_size > size))
		return bad(c, -EIO, "the header's packed stream lies outside the archive");
	/* libarchive runs a second coder as a filter over the first one's output (Delta, BCJ),
	 * even one declaring no streams: the header it parses would not be the one scanned */
	if (!err && (enc->coders0 != 1 || enc->f[0].out_streams != 1 || !enc->simple0 ||
		     (enc->codec0 != CODEC_COPY && enc->codec0 != CODEC_LZMA &&
		      enc->codec0 != CODEC_LZMA2)))
		return bad(c, -ENOTSUP,
			   "the header is encoded with a method other than LZMA, "
			   "LZMA2 or Copy");
	if (!err && enc->size0 == 0)
		return bad(c, -EIO, "the header decodes to nothing");
	if (!err && enc->size0 > c->lim->max_header_bytes)
		return bad(c, -EFBIG, "the header decodes to more than the memory budget allows");
	if (!err)
		err = may_allocate(c, enc->size0);
	if (err)
		return err;
	*out = malloc((size_t)enc->size0);
	err = *out ? decode(c, enc, rd, rctx, at + enc->pack_pos, *out) : -ENOMEM;
	if (!err && enc->digest0_defined && crc_zip(0, *out, (size_t)enc->size0) != enc->digest0)
		err = bad(c, -EIO, "the decoded header's CRC does not match");
	return err;
}

/* The next header: read whole, its CRC checked, then parsed (and decoded first if encoded). */
static int next_header(struct cur *c, uint64_t size, zip_read_fn rd, void *rctx, uint64_t base,
		       const unsigned char *start, struct sevenz_header *h)
{
	uint64_t off = le64(start + 12), len = le64(start + 20), at = base + START_LEN;
	struct streams enc = {0}, st = {0};
	unsigned char *raw = NULL, *dec = NULL;
	unsigned b;
	if (len == 0)
		return 0; /* an empty archive */
	if (off > size || at > size - off || len > size - off - at)
		return bad(c, -EIO, "the header lies past the archive's end");
	if (len > c->lim->max_header_bytes)
		return bad(c, -EFBIG, "the header is larger than the memory budget allows");
	int err = may_allocate(c, len);
	if (err)
		return err;
	ssize_t got = (raw = malloc((size_t)len)) ? rd(rctx, raw, (size_t)len, at + off) : -ENOMEM;
	err = got == (ssize_t)len ? 0 : got < 0 ? (int)got : -EIO;
	if (!err && crc_zip(0, raw, (size_t)len) != le32(start + 28))
		err = bad(c, -EIO, "the header's CRC does not match");
	c->p = raw;
	c->left = (size_t)len;
	h->header_bytes = len;
	if (!err)
		err = byte(c, &b);
	if (!err && b == K_ENCODED_HEADER &&
	    !(err = encoded(c, size, rd, rctx, at, off, &enc, &dec))) {
		c->p = dec;
		c->left = (size_t)enc.size0;
		h->header_bytes = enc.size0;
	} else if (!err && b != K_HEADER) {
		err = bad(c, -EIO, "the header starts with an unknown record");
	}
	if (!err)
		err = header(c, dec != NULL, &st, &h->files);
	h->folders = st.nf;
	h->coders = st.coders;
	h->pack_streams = st.pack_streams;
	h->unpack_streams = st.unpack_streams;
	h->coder_memory = st.memory > enc.memory ? st.memory : enc.memory;
	/* the header as stored (read ahead) and as decoded (libarchive's buffer, and the names
	 * copied out of it), every array, and one folder's decoders */
	h->alloc_bytes = add(add(len, mul(h->header_bytes, 2)), mul(h->files, PER_FILE));
	h->alloc_bytes = add(add(h->alloc_bytes, st.alloc), add(enc.alloc, h->coder_memory));
	streams_release(&enc);
	streams_release(&st);
	free(raw);
	free(dec);
	return err;
}

int sevenz_header_scan(uint64_t size, zip_read_fn rd, void *rctx, const struct sevenz_limits *lim,
		       struct sevenz_header *h)
{
	unsigned char start[START_LEN];
	uint64_t base = 0; /* set by find_start when it returns 0; gcc -O2 cannot tell */
	struct cur c = {.lim = lim};
	memset(h, 0, sizeof(*h));
	int err = find_start(size, rd, rctx, &base);
	if (err)
		return err;
	if (size - base < START_LEN) {
		h->why = "the start header is truncated";
		return -EIO;
	}
	ssize_t got = rd(rctx, start, START_LEN, base);
	err = got == START_LEN ? next_header(&c, size, rd, rctx, base, start, h)
	      : got < 0        ? (int)got
			       : -EIO;
	h->why = err ? (c.why ? c.why : "the archive cannot be read") : NULL;
	return err;
}

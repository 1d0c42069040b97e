/* unpackstream: the byte stream libarchive's formats read in unpack.c, and the budget every
 * count of unpacked bytes is held to (see unpack_i.h).
 *
 * The stream is a stack of stages, each reading the one below: the member's bytes (positional
 * reads through rd), then for each layer of compression found at the top by its magic, a stage
 * taking it off: gzip through zlib's own gzip mode, which checks every member's CRC-32 and length
 * (libarchive's gzip filter skips its trailer unread); xz, lzip and .lzma through liblzma and zstd
 * through libzstd, whose decoders' memory (the dictionary or window a header declares) is taken
 * from the mount's budget before they allocate it (libarchive cannot bound it); lz4, bzip2,
 * compress, and rpm's lead and headers, through a libarchive handle of one filter and the raw
 * format, charged a fixed amount. Each decoder checks its own sums (xz's check, lzip's CRC-32,
 * zstd's and lz4's content checksums, bzip2's CRCs), but only when it reaches its trailer. A format stops at its own end (a tarball's end
 * marker), before the trailer: ustream_finish reads every stage to its end. Only the bottom stage
 * seeks, and only when it is the top (zip and 7z find their directory at the end). For cpio's
 * crc format under a layer, the last two blocks the format read are kept, so that unpack.c can
 * read back the sum in the header libarchive drops (ustream_header_bytes). */
#include "unpack_i.h"

#include <errno.h>
#include <inttypes.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader, ZSTD_estimateDStreamSize */
#include <zstd.h>

#include "artifactfs/log.h"
#include "artifactfs/membudget.h"

#define CHUNK (128u * 1024u)
#define STAGES_MAX 8 /* layers taken off one member: rpm, then gzip, then ... */

enum kind {
	BASE,   /* the member's bytes */
	GUNZIP, /* gzip members, one after the other, then only zero bytes */
	LZMA,   /* liblzma: xz streams, lzip members or one .lzma stream, then only zero bytes */
	ZSTD,   /* libzstd: zstd and skippable frames */
	FILTERS /* a libarchive handle: one filter, raw format */
};

enum gz_state {
	IN_MEMBER,
	BETWEEN, /* a member ended: another one, zero padding or the end comes next */
	PADDING
};

struct stage {
	enum kind kind;
	struct ustream *s;
	struct stage *in; /* the stage below; NULL for BASE */
	const void *pend; /* a block read ahead by a peek, handed out first */
	size_t pend_len;
	uint64_t out;       /* bytes handed out */
	unsigned char *buf; /* BASE: bytes read; GUNZIP: bytes inflated */
	/* BASE */
	uint64_t size, pos;
	/* GUNZIP */
	z_stream z;
	bool z_init;
	enum gz_state gz;
	/* LZMA */
	lzma_stream lz;
	bool lz_init, in_end, lz_end;
	/* ZSTD: a frame's header is whole in zhdr before zstd sees it */
	ZSTD_DCtx *zd;
	const unsigned char *zin;
	size_t zin_len, zhdr_len;
	unsigned char zhdr[ZSTD_FRAMEHEADERSIZE_MAX];
	bool zframe; /* inside a frame */
	/* FILTERS */
	struct archive *a;
	/* every layer: its name, and what its decoder holds of the memory budget */
	const char *name;
	uint64_t charged;
};

/* The last two blocks the format read from the top stage, kept when the format's headers carry
 * a checksum the format reader drops (cpio's crc format): ustream_header_bytes. */
struct tap_block {
	unsigned char *p;
	size_t len, cap;
	uint64_t off; /* in the top stage's output */
};

/* libarchive 3.6's cpio reader asks for a newc header's name whole, as long as the header says
 * (8 hex digits: up to 4 GiB), before anything checks it: it allocates that much. Names past
 * CPIO_NAME_MAX are refused before libarchive sees their header. Other cpio headers' name sizes
 * have 6 octal digits or 16 bits at most, and symbolic links libarchive caps itself (1 MiB). */
#define CPIO_NAME_MAX (1u << 20)
#define CPIO_NEWC_NAMESIZE 94 /* the name size's 8 hex digits in the 110-byte header */
#define CPIO_CARRY (CPIO_NEWC_NAMESIZE + 8 - 1)

struct ustream {
	struct meter *m;
	zip_read_fn rd;
	void *rctx;
	struct stage st[STAGES_MAX + 1];
	size_t n;
	int err; /* sticky: the first -errno */
	bool tap;
	struct tap_block tb[2]; /* tb[1] the newer */
	/* a cpio stream: the tail of the last block read, for a header that straddles two */
	bool cpio;
	unsigned char cg[CPIO_CARRY];
	size_t cg_len;
	uint64_t cg_off;
};

static const char *shown(const struct meter *m)
{
	return m->lim.name ? m->lim.name : "";
}

int meter_check(struct meter *m, uint64_t unpacked)
{
	const struct unpack_limits *l = &m->lim;
	uint64_t by_ratio = m->in > UINT64_MAX / l->ratio ? UINT64_MAX : m->in * l->ratio;
	uint64_t allowed = by_ratio > l->floor_bytes ? by_ratio : l->floor_bytes;
	allowed = allowed < l->max_bytes ? allowed : l->max_bytes;
	if (unpacked <= allowed)
		return 0;
	if (!m->logged)
		log_msg(LOG_WARNING,
			"nested archive \"%s\" left unread: it unpacks to more than %llu bytes "
			"from %llu (at most %u per byte past %llu, and %llu in all): a "
			"decompression bomb or too large for this cache",
			shown(m), (unsigned long long)allowed, (unsigned long long)m->in, l->ratio,
			(unsigned long long)l->floor_bytes, (unsigned long long)l->max_bytes);
	m->logged = true;
	return -EFBIG;
}

/* Records the first failure; a damaged layer gets its log line here. */
static int fail(struct ustream *s, int err, const char *why)
{
	if (s->err)
		return s->err;
	if (why)
		log_msg(LOG_WARNING, "nested archive \"%s\" damaged: %s", shown(s->m), why);
	s->err = err;
	return err;
}

/* Takes the decoder memory of st's layer, up to need bytes in all, from the mount's budget,
 * before the decoder allocates it (a 6-byte zstd header declares a window of 3.75 GiB; an xz
 * header, a dictionary of 1.5 GiB). A layer needing more than the whole budget is refused for good
 * (-EIO: the same bytes always will be); one that only does not fit what others hold now, this
 * time (-ENOMEM). Either way with one log line. */
static int stage_charge(struct stage *st, uint64_t need)
{
	struct ustream *s = st->s;
	char what[64];
	if (need <= st->charged)
		return 0;
	snprintf(what, sizeof(what), "the %s layer's decoder", st->name);
	int err = membudget_take((size_t)(need - st->charged), what);
	if (!err) {
		st->charged = need;
		return 0;
	}
	log_msg(LOG_WARNING, "nested archive \"%s\" left unread: %s", shown(s->m), log_reason());
	return fail(s, need > membudget_limit() ? -EIO : -ENOMEM, NULL);
}

/* ---- the stages ---- */

static ssize_t stage_read(struct stage *st, const void **out);

static ssize_t base_read(struct stage *st, const void **out)
{
	struct ustream *s = st->s;
	size_t len = st->size - st->pos < CHUNK ? (size_t)(st->size - st->pos) : CHUNK;
	*out = st->buf;
	if (len == 0)
		return 0;
	ssize_t got = s->rd(s->rctx, st->buf, len, st->pos);
	if (got <= 0)
		return fail(s, got < 0 ? (int)got : -EIO, NULL);
	st->pos += (uint64_t)got;
	s->m->in += (uint64_t)got;
	return got;
}

/* After a member: the next member's magic, or zero bytes to the end (tape blocking pads a
 * tarball so). Returns 0, or -EIO on anything else. */
static int gz_between(struct stage *st)
{
	z_stream *z = &st->z;
	if (st->gz == BETWEEN && z->next_in[0] == 0x1f) {
		st->gz = IN_MEMBER;
		return inflateReset(z) == Z_OK ? 0 : fail(st->s, -EIO, "gzip: reset failed");
	}
	st->gz = PADDING;
	for (; z->avail_in > 0; z->next_in++, z->avail_in--)
		if (*z->next_in != 0)
			return fail(st->s, -EIO, "gzip: bytes after the compressed data");
	return 0;
}

/* Inflates into one full buffer (short only at the end). */
static ssize_t gunzip_read(struct stage *st, const void **out)
{
	z_stream *z = &st->z;
	z->next_out = st->buf;
	z->avail_out = CHUNK;
	*out = st->buf;
	while (z->avail_out > 0) {
		if (z->avail_in == 0) {
			const void *p;
			ssize_t n = stage_read(st->in, &p);
			if (n < 0)
				return n;
			if (n == 0 && st->gz == IN_MEMBER)
				return fail(st->s, -EIO, "gzip: the data ends before its trailer");
			if (n == 0)
				break;
			z->next_in = (unsigned char *)(uintptr_t)p;
			z->avail_in = (uInt)n;
		}
		int err = st->gz == IN_MEMBER ? 0 : gz_between(st);
		if (err)
			return err;
		if (st->gz != IN_MEMBER)
			continue;
		int ret = inflate(z, Z_NO_FLUSH);
		if (ret == Z_STREAM_END)
			st->gz = BETWEEN;
		else if (ret == Z_MEM_ERROR)
			return fail(st->s, -ENOMEM, NULL);
		else if (ret != Z_OK && ret != Z_BUF_ERROR)
			return fail(st->s, -EIO, z->msg ? z->msg : "gzip: damaged data");
	}
	return (ssize_t)(CHUNK - z->avail_out);
}

/* After the end of a layer that may be followed by bytes of no meaning to its decoder (lzip,
 * .lzma): only zero bytes may come, and the layers below are read to their ends (their own
 * trailers checked). Bytes of another kind would be a damaged member read as no member. */
static int only_zeros_follow(struct stage *st, const unsigned char *p, size_t n)
{
	for (;;) {
		for (size_t i = 0; i < n; i++)
			if (p[i] != 0)
				return fail(st->s, -EIO, "bytes after the compressed data");
		const void *q;
		ssize_t got = stage_read(st->in, &q);
		if (got <= 0)
			return (int)got;
		p = q;
		n = (size_t)got;
	}
}

static const char *lzma_why(lzma_ret ret)
{
	switch (ret) {
	case LZMA_BUF_ERROR:
		return "the data ends before its end";
	case LZMA_FORMAT_ERROR:
		return "not in its format";
	case LZMA_OPTIONS_ERROR:
		return "options not supported";
	case LZMA_DATA_ERROR:
		return "damaged data";
	case LZMA_UNSUPPORTED_CHECK:
		return "a check of a kind liblzma cannot verify";
	default:
		return "decoding failed";
	}
}

/* xz, lzip and .lzma through liblzma, whose memory limit starts at nothing: a header needing
 * more stops the decoder (LZMA_MEMLIMIT_ERROR) before it allocates, and the limit is raised by
 * what the budget grants. xz's checks and lzip's CRC-32 and sizes are checked by liblzma. */
static ssize_t lzma_read(struct stage *st, const void **out)
{
	lzma_stream *z = &st->lz;
	char why[80];
	z->next_out = st->buf;
	z->avail_out = CHUNK;
	*out = st->buf;
	while (z->avail_out > 0 && !st->lz_end) {
		if (z->avail_in == 0 && !st->in_end) {
			const void *p;
			ssize_t n = stage_read(st->in, &p);
			if (n < 0)
				return n;
			st->in_end = n == 0;
			z->next_in = p;
			z->avail_in = (size_t)n;
		}
		lzma_ret ret = lzma_code(z, st->in_end ? LZMA_FINISH : LZMA_RUN);
		int err = 0;
		if (ret == LZMA_MEMLIMIT_ERROR) {
			uint64_t need = lzma_memusage(z);
			err = stage_charge(st, CHUNK + need);
			if (!err && lzma_memlimit_set(z, need) != LZMA_OK)
				err = fail(st->s, -EIO, "liblzma refused its own memory usage");
		} else if (ret == LZMA_STREAM_END) {
			st->lz_end = true;
			err = only_zeros_follow(st, z->next_in, z->avail_in);
		} else if (ret == LZMA_MEM_ERROR) {
			err = fail(st->s, -ENOMEM, NULL);
		} else if (ret != LZMA_OK) {
			snprintf(why, sizeof(why), "%s: %s", st->name, lzma_why(ret));
			err = fail(st->s, -EIO, why);
		}
		if (err)
			return err;
	}
	return (ssize_t)(CHUNK - z->avail_out);
}

/* The largest window a zstd frame may have here: what the whole budget could hold. */
static int zstd_window_log_max(void)
{
	int log = ZSTD_WINDOWLOG_MIN;
	while (log < ZSTD_WINDOWLOG_MAX && (2ull << log) <= membudget_limit())
		log++;
	return log;
}

/* At a zstd frame's start: its header, copied whole across the blocks of the stage below,
 * then what the frame's window costs taken from the budget before zstd allocates it, then the
 * copied part handed to zstd. Returns 0 (the frame's data is next), 1 (more bytes wanted), or
 * -errno. */
static int zstd_frame_start(struct stage *st, ZSTD_outBuffer *o)
{
	size_t n = sizeof(st->zhdr) - st->zhdr_len;
	n = n < st->zin_len ? n : st->zin_len;
	memcpy(st->zhdr + st->zhdr_len, st->zin, n);
	ZSTD_frameHeader fh;
	size_t ret = ZSTD_getFrameHeader(&fh, st->zhdr, st->zhdr_len + n);
	if (ZSTD_isError(ret))
		return fail(st->s, -EIO, "zstd: not a frame where one should start");
	if (ret > 0) { /* all n copied, the header goes on in the next block */
		st->zhdr_len += n;
		st->zin += n;
		st->zin_len -= n;
		return 1;
	}
	uint64_t window = fh.frameType == ZSTD_skippableFrame ? 0 : fh.windowSize;
	/* a single-segment frame's window is its content size, up to 2^64 - 1: zstd's estimate
	 * of that wraps */
	int err = stage_charge(st, window > membudget_limit()
					   ? window
					   : CHUNK + ZSTD_estimateDStreamSize((size_t)window));
	ZSTD_inBuffer in = {st->zhdr, st->zhdr_len, 0};
	while (!err && in.pos < in.size)
		if (ZSTD_isError(ZSTD_decompressStream(st->zd, o, &in)))
			err = fail(st->s, -EIO, "zstd: damaged frame header");
	st->zhdr_len = 0;
	st->zframe = true;
	return err;
}

/* zstd frames (skippable ones too), one after the other, each window charged before it is
 * allocated; every content checksum present is checked by libzstd. */
static ssize_t zstd_read(struct stage *st, const void **out)
{
	ZSTD_outBuffer o = {st->buf, CHUNK, 0};
	char why[120];
	*out = st->buf;
	while (o.pos < o.size) {
		if (st->zin_len == 0) {
			const void *p;
			ssize_t n = stage_read(st->in, &p);
			if (n < 0)
				return n;
			if (n == 0 && (st->zframe || st->zhdr_len > 0))
				return fail(st->s, -EIO, "zstd: the data ends inside a frame");
			if (n == 0)
				break;
			st->zin = p;
			st->zin_len = (size_t)n;
		}
		int err = st->zframe ? 0 : zstd_frame_start(st, &o);
		if (err < 0)
			return err;
		if (err > 0)
			continue;
		ZSTD_inBuffer in = {st->zin, st->zin_len, 0};
		size_t ret = ZSTD_decompressStream(st->zd, &o, &in);
		st->zin += in.pos;
		st->zin_len -= in.pos;
		if (ZSTD_isError(ret)) {
			snprintf(why, sizeof(why), "zstd: %s", ZSTD_getErrorName(ret));
			return fail(st->s, -EIO, why);
		}
		st->zframe = ret != 0;
	}
	return (ssize_t)o.pos;
}

static ssize_t filters_read(struct stage *st, const void **out)
{
	size_t len = 0;
	la_int64_t off;
	int ret;
	while ((ret = archive_read_data_block(st->a, out, &len, &off)) == ARCHIVE_OK && len == 0)
		;
	if (ret == ARCHIVE_EOF)
		return 0;
	if (ret == ARCHIVE_OK && off == (la_int64_t)st->out)
		return (ssize_t)len;
	const char *why = archive_error_string(st->a);
	return fail(st->s, -EIO,
		    ret == ARCHIVE_OK ? "a filter's output has a gap"
		    : why             ? why
				      : "a filter failed");
}

/* Hands out the next block of st: a pointer valid until the next read of st, and its length;
 * 0 at the end; -errno (recorded in the stream) on failure. */
static ssize_t stage_read(struct stage *st, const void **out)
{
	struct ustream *s = st->s;
	if (s->err)
		return s->err;
	if (st->pend_len > 0) {
		size_t n = st->pend_len;
		*out = st->pend;
		st->pend_len = 0;
		return (ssize_t)n;
	}
	ssize_t n = st->kind == BASE     ? base_read(st, out)
		    : st->kind == GUNZIP ? gunzip_read(st, out)
		    : st->kind == LZMA   ? lzma_read(st, out)
		    : st->kind == ZSTD   ? zstd_read(st, out)
					 : filters_read(st, out);
	if (n <= 0)
		return n;
	st->out += (uint64_t)n;
	int err = st->kind == BASE ? 0 : meter_check(s->m, st->out);
	return err ? fail(s, err, NULL) : n;
}

/* The first bytes of st, kept to be handed out again: their count (short only at the end). */
static ssize_t stage_peek(struct stage *st, const unsigned char **p)
{
	ssize_t n = stage_read(st, (const void **)p);
	if (n > 0) {
		st->pend = *p;
		st->pend_len = (size_t)n;
	}
	return n;
}

/* ---- libarchive's client callbacks: a FILTERS handle over the stage below, the format handle
 * over the top ---- */

/* Keeps a copy of the block the format just read from the top stage (the older one goes). */
static int tap_keep(struct ustream *s, const void *p, size_t n, uint64_t off)
{
	struct tap_block old = s->tb[0];
	s->tb[0] = s->tb[1];
	s->tb[1] = old;
	struct tap_block *b = &s->tb[1];
	if (n > b->cap) {
		unsigned char *q = realloc(b->p, n);
		if (!q)
			return fail(s, -ENOMEM, NULL);
		b->p = q;
		b->cap = n;
	}
	memcpy(b->p, p, n);
	b->len = n;
	b->off = off;
	return 0;
}

static int hexval(unsigned char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* Refuses a cpio stream in which any newc magic is followed by a name size over CPIO_NAME_MAX,
 * looking at every place a header could start, not only where libarchive will look (it skips
 * what is not a header to the next magic): a member's data that looks like such a header is
 * refused too, which no honest archive needs. off is where the block lies in the stream; one
 * that does not follow the last starts afresh: libarchive joins no bytes across a seek either
 * (its bidders read the end of the member, then start over). */
static int cpio_guard(struct ustream *s, const unsigned char *p, size_t n, uint64_t off)
{
	if (s->cg_len && s->cg_off + s->cg_len != off)
		s->cg_len = 0;
	size_t total = s->cg_len + n;
#define AT(i) ((i) < s->cg_len ? s->cg[(i)] : p[(i)-s->cg_len])
	for (size_t i = 0; i + CPIO_NEWC_NAMESIZE + 8 <= total; i++) {
		if (AT(i) != '0' || AT(i + 1) != '7' || AT(i + 2) != '0' || AT(i + 3) != '7' ||
		    AT(i + 4) != '0' || (AT(i + 5) != '1' && AT(i + 5) != '2'))
			continue;
		uint64_t v = 0;
		int k = 0, d = 0;
		for (; k < 8 && (d = hexval(AT(i + CPIO_NEWC_NAMESIZE + k))) >= 0; k++)
			v = v << 4 | (uint64_t)d;
		if (k == 8 && v > CPIO_NAME_MAX) {
			log_set_reason("a cpio header declares a name of %" PRIu64
				       " bytes (more than 1 MiB)",
				       v);
			return fail(s, -EIO, log_reason());
		}
	}
	size_t keep = total < CPIO_CARRY ? total : CPIO_CARRY;
	unsigned char tail[CPIO_CARRY];
	for (size_t i = 0; i < keep; i++)
		tail[i] = AT(total - keep + i);
#undef AT
	memcpy(s->cg, tail, keep);
	s->cg_len = keep;
	s->cg_off = off + n - keep;
	return 0;
}

static la_ssize_t client_read(struct archive *a, void *data, const void **out)
{
	struct stage *st = data;
	uint64_t off = st->out - st->pend_len; /* a pending block was counted when peeked */
	ssize_t n = stage_read(st, out);
	bool top = st == &st->s->st[st->s->n - 1];
	int err = n > 0 && st->s->tap && top ? tap_keep(st->s, *out, (size_t)n, off) : 0;
	/* the bottom stage seeks (zip's bidder reads the end first): where the block lies, so that
	 * the stream's start is found by place and the carry joins only adjacent bytes */
	uint64_t at = st->kind == BASE && n > 0 ? st->pos - (uint64_t)n : off;
	if (n > 0 && top && at == 0)
		st->s->cpio = n >= 5 && memcmp(*out, "07070", 5) == 0;
	if (!err && n > 0 && top && st->s->cpio)
		err = cpio_guard(st->s, *out, (size_t)n, at);
	n = err ? err : n;
	if (n < 0) {
		archive_set_error(a, -(int)n, "reading the archive member failed");
		return ARCHIVE_FATAL;
	}
	return n;
}

/* The bottom stage as the format's only one: its logical position is where the pending block
 * (if any) starts. */
static void base_unpeek(struct stage *st)
{
	st->pos -= st->pend_len;
	st->pend_len = 0;
}

static la_int64_t client_seek(struct archive *a, void *data, la_int64_t off, int whence)
{
	struct stage *st = data;
	base_unpeek(st);
	int64_t base = whence == SEEK_SET   ? 0
		       : whence == SEEK_CUR ? (int64_t)st->pos
					    : (int64_t)st->size;
	if (off > (int64_t)st->size - base || base + off < 0) {
		archive_set_error(a, EINVAL, "seek outside the archive member");
		return ARCHIVE_FATAL;
	}
	st->pos = (uint64_t)(base + off);
	return (la_int64_t)st->pos;
}

static la_int64_t client_skip(struct archive *a, void *data, la_int64_t request)
{
	(void)a;
	struct stage *st = data;
	base_unpeek(st);
	uint64_t left = st->size - st->pos;
	uint64_t n = request < 0 ? 0 : (uint64_t)request < left ? (uint64_t)request : left;
	st->pos += n;
	return (la_int64_t)n;
}

/* ---- building the stack ---- */

enum layer {
	PLAIN,
	GZIP,
	XZ,
	LZIP,
	LZMA_ALONE,
	ZSTD_FRAMES,
	BZIP2,
	LZ4,
	COMPRESS,
	RPM
};

/* What a FILTERS stage's one filter holds at most, charged to the budget for the stage's life
 * (libarchive cannot be told a limit): bzip2's largest block state (libbz2 at level 9, 3.6 MB)
 * with libarchive's 64 KiB block; lz4's largest block (8 MiB, legacy frames) with the read-ahead
 * copy libarchive makes of a whole compressed block, grown by doubling (up to 16 MiB);
 * compress's code tables; rpm's headers, read through. */
#define FILTER_BASE (256u << 10) /* the handle, its client and raw format buffers */
static const struct {
	enum layer layer;
	const char *name;
	int (*enable)(struct archive *);
	const char *(*library)(void);
	uint64_t charge;
} filters[] = {
	{BZIP2, "bzip2", archive_read_support_filter_bzip2, archive_bzlib_version, 3900u << 10},
	{LZ4, "lz4", archive_read_support_filter_lz4, archive_liblz4_version, 24u << 20},
	{COMPRESS, "compress", archive_read_support_filter_compress, NULL, 512u << 10},
	{RPM, "rpm", archive_read_support_filter_rpm, NULL, 0},
};

/* libarchive's lzma bidder, which the same members are recognised by as before: .lzma has no
 * magic, only likely properties, dictionary sizes and an unknown size. */
static bool lzma_alone(const unsigned char *p, size_t n)
{
	if (n < 14 || p[0] > (4 * 5 + 4) * 9 + 8)
		return false;
	uint32_t dict =
		(uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24;
	bool likely = p[0] == 0x5d || p[0] == 0x5e, unknown_size = true;
	for (int i = 5; i < 13; i++)
		unknown_size = unknown_size && p[i] == 0xff;
	if (dict >= 1u << 12 && dict <= 1u << 27 && (dict & (dict - 1)) == 0)
		return true;
	return likely && unknown_size && dict >= 0x00300000 && dict <= 0x03F00000 &&
	       (dict & ((1u << 20) - 1)) == 0;
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Skippable frames (zstd's and lz4's alike) lead to the frame that says which: zstd where it
 * cannot be seen in the first block (pzstd writes one before every frame). */
static enum layer after_skippable(const unsigned char *p, size_t n)
{
	size_t at = 0;
	while (n - at >= 8 && (le32(p + at) & 0xfffffff0u) == 0x184d2a50u) {
		uint64_t next = (uint64_t)at + 8 + le32(p + at + 4);
		if (next + 4 > n)
			return ZSTD_FRAMES;
		at = (size_t)next;
	}
	uint32_t magic = n - at >= 4 ? le32(p + at) : 0;
	return magic == 0x184d2204u || magic == 0x184c2102u ? LZ4 : ZSTD_FRAMES;
}

/* What the first bytes p[0, n) start with, by libarchive's bidders' magic numbers. */
static enum layer layer_of(const unsigned char *p, size_t n)
{
	static const struct {
		const char *magic;
		size_t len;
		enum layer layer;
	} magic[] = {
		{"\x1f\x8b", 2, GZIP},
		{"BZh", 3, BZIP2},
		{"\xfd"
		 "7zXZ\0",
		 6, XZ},
		{"LZIP", 4, LZIP},
		{"\x28\xb5\x2f\xfd", 4, ZSTD_FRAMES},
		{"\x04\x22\x4d\x18", 4, LZ4},
		{"\x02\x21\x4c\x18", 4, LZ4}, /* legacy */
		{"\x1f\x9d", 2, COMPRESS},
		{"\xed\xab\xee\xdb", 4, RPM},
	};
	for (size_t i = 0; i < sizeof(magic) / sizeof(*magic); i++)
		if (n >= magic[i].len && !memcmp(p, magic[i].magic, magic[i].len))
			return magic[i].layer;
	if (n >= 4 && p[0] >= 0x50 && p[0] <= 0x5f && p[1] == 0x2a && p[2] == 0x4d && p[3] == 0x18)
		return after_skippable(p, n);
	return lzma_alone(p, n) ? LZMA_ALONE : PLAIN;
}

static int push_gunzip(struct stage *st)
{
	st->kind = GUNZIP;
	st->name = "gzip";
	int err = stage_charge(st, CHUNK + (48u << 10)); /* zlib: 32 KiB window, 7 KiB state */
	if (err)
		return err;
	if (!(st->buf = malloc(CHUNK)))
		return -ENOMEM;
	int ret = inflateInit2(&st->z, 16 + MAX_WBITS); /* gzip only, trailer checked */
	st->z_init = ret == Z_OK;
	return ret == Z_OK ? 0 : ret == Z_MEM_ERROR ? -ENOMEM : -EIO;
}

/* The memory limit starts at 1 byte: lzma_read raises it as the budget grants. Concatenated
 * as libarchive and the xz and lzip tools read them: xz streams (with their padding), lzip
 * members. */
static int push_lzma(struct stage *st, enum layer l)
{
	st->kind = LZMA;
	st->name = l == XZ ? "xz" : l == LZIP ? "lzip" : "lzma";
	int err = stage_charge(st, CHUNK);
	if (err)
		return err;
	if (!(st->buf = malloc(CHUNK)))
		return -ENOMEM;
	st->lz = (lzma_stream)LZMA_STREAM_INIT;
	/* a check ID liblzma does not know would be skipped, not checked, without TELL */
	lzma_ret ret =
		l == XZ     ? lzma_stream_decoder(&st->lz, 1,
						  LZMA_CONCATENATED | LZMA_TELL_UNSUPPORTED_CHECK)
		: l == LZIP ? lzma_lzip_decoder(&st->lz, 1, LZMA_CONCATENATED)
			    : lzma_alone_decoder(&st->lz, 1);
	st->lz_init = ret == LZMA_OK;
	return ret == LZMA_OK ? 0 : ret == LZMA_MEM_ERROR ? -ENOMEM : -EIO;
}

/* zstd's default largest window (128 MiB) is replaced by what the budget could hold; each
 * frame's own is charged before it is allocated (zstd_frame_start). */
static int push_zstd(struct stage *st)
{
	st->kind = ZSTD;
	st->name = "zstd";
	int err = stage_charge(st, CHUNK + ZSTD_estimateDCtxSize());
	if (err)
		return err;
	if (!(st->buf = malloc(CHUNK)) || !(st->zd = ZSTD_createDCtx()))
		return -ENOMEM;
	size_t ret = ZSTD_DCtx_setParameter(st->zd, ZSTD_d_windowLogMax, zstd_window_log_max());
	return ZSTD_isError(ret) ? -EIO : 0;
}

/* A libarchive handle taking off the one filter l. Returns 0, or 1 when the handle took nothing
 * off (no layer after all: the stack stops). A filter whose library libarchive was built without
 * would run an external program instead: never from a FUSE daemon's threads, so such a filter is
 * not enabled at all. */
static int push_filters(struct stage *st, enum layer l)
{
	struct archive_entry *e;
	size_t i = 0;
	while (filters[i].layer != l)
		i++;
	st->kind = FILTERS;
	st->name = filters[i].name;
	int err = stage_charge(st, FILTER_BASE + filters[i].charge);
	if (err)
		return err;
	if (!(st->a = archive_read_new()) || archive_read_support_format_raw(st->a) != ARCHIVE_OK)
		return -ENOMEM;
	if (filters[i].library && !filters[i].library())
		return 1;
	if (filters[i].enable(st->a) != ARCHIVE_OK)
		return -ENOMEM;
	if (archive_read_open(st->a, st->in, NULL, client_read, NULL) != ARCHIVE_OK ||
	    archive_read_next_header(st->a, &e) != ARCHIVE_OK) {
		const char *why = archive_error_string(st->a);
		return fail(st->s, -EIO, why ? why : "no filter reads it");
	}
	return archive_filter_count(st->a) > 1 ? 0 : 1;
}

static int push(struct stage *st, enum layer l)
{
	switch (l) {
	case GZIP:
		return push_gunzip(st);
	case XZ:
	case LZIP:
	case LZMA_ALONE:
		return push_lzma(st, l);
	case ZSTD_FRAMES:
		return push_zstd(st);
	default:
		return push_filters(st, l);
	}
}

/* Puts stages on top while the top starts with a layer this file takes off. */
static int build(struct ustream *s)
{
	for (;;) {
		struct stage *top = &s->st[s->n - 1];
		const unsigned char *p;
		ssize_t n = stage_peek(top, &p);
		if (n < 0)
			return (int)n;
		enum layer l = layer_of(p, (size_t)n);
		if (l == PLAIN)
			return 0;
		if (s->n > STAGES_MAX)
			return fail(s, -EIO, "more layers of compression than are unpacked");
		struct stage *st = &s->st[s->n++];
		st->s = s;
		st->in = top;
		int err = push(st, l);
		if (err)
			return err < 0 ? fail(s, err, NULL) : 0;
	}
}

int ustream_open(struct meter *m, uint64_t size, zip_read_fn rd, void *rctx, struct ustream **out)
{
	struct ustream *s = calloc(1, sizeof(*s));
	*out = s;
	if (!s)
		return -ENOMEM;
	s->m = m;
	s->rd = rd;
	s->rctx = rctx;
	s->n = 1;
	s->st[0] = (struct stage){.kind = BASE, .s = s, .size = size, .buf = malloc(CHUNK)};
	return s->st[0].buf ? build(s) : -ENOMEM;
}

void ustream_free(struct ustream *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		if (s->st[i].z_init)
			inflateEnd(&s->st[i].z);
		if (s->st[i].lz_init)
			lzma_end(&s->st[i].lz);
		ZSTD_freeDCtx(s->st[i].zd);
		if (s->st[i].a)
			archive_read_free(s->st[i].a);
		free(s->st[i].buf);
		membudget_give((size_t)s->st[i].charged);
	}
	free(s->tb[0].p);
	free(s->tb[1].p);
	free(s);
}

bool ustream_layered(const struct ustream *s)
{
	return s->n > 1;
}

int ustream_open_archive(struct ustream *s, struct archive *a)
{
	struct stage *top = &s->st[s->n - 1];
	/* cpio's crc format under a layer of compression: its headers' sums are read back by
	 * ustream_header_bytes (without a layer, straight from the member) */
	s->tap = s->n > 1 && top->pend_len >= 6 && memcmp(top->pend, "070702", 6) == 0;
	if (s->n == 1)
		archive_read_set_seek_callback(a, client_seek);
	return archive_read_open2(a, top, NULL, client_read, s->n == 1 ? client_skip : NULL, NULL);
}

int ustream_header_bytes(struct ustream *s, uint64_t off, void *out, size_t len)
{
	if (s->n == 1)
		return s->rd(s->rctx, out, len, off) == (ssize_t)len ? 0 : -EIO;
	unsigned char *o = out;
	for (size_t i = 0; i < len; i++) {
		const struct tap_block *b = NULL;
		for (size_t k = 0; k < 2 && !b; k++)
			if (off + i >= s->tb[k].off && off + i - s->tb[k].off < s->tb[k].len)
				b = &s->tb[k];
		if (!b)
			return -EIO;
		o[i] = b->p[off + i - b->off];
	}
	return 0;
}

int ustream_error(const struct ustream *s)
{
	return s->err;
}

int ustream_finish(struct ustream *s)
{
	const void *p;
	ssize_t n;
	if (s->n == 1)
		return s->err; /* no layer, no checksum of its own */
	while ((n = stage_read(&s->st[s->n - 1], &p)) > 0)
		;
	return (int)n;
}

/* zipread: one zip member's content, read through the caller's zip_read_fn: the local header
 * once, then stored bytes as they are or deflated ones inflated in growing chunks (zlib's only
 * user). Invariants: no byte past the central directory's offset is read or returned; the read
 * that reaches a member's end fails (-EIO, sticky) when the CRC-32 or the size disagree with the
 * central directory, and for a stored member so does the read that completes its content in any
 * order (the pieces' CRCs are combined; past SEEN_MAX scattered pieces the smallest gap between
 * two is read to join them, so memory stays bounded and no byte goes unchecked). It uses the
 * index (zipindex.c) and is never called by it. */
#include "artifactfs/zipread.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "artifactfs/crc.h"
#include "artifactfs/grow.h"
#include "artifactfs/log.h"

#include "zipindex_i.h"

#define LFH_SIG 0x04034b50u
#define LFH_LEN 30u
/* Field offsets of the local file header (APPNOTE.TXT 4.3.7), little-endian. */
enum {
	LFH_NAME_LEN = 26,
	LFH_EXTRA_LEN = 28,
};
#define CHUNK_MIN (256u * 1024u)
#define CHUNK_MAX (4u * 1024u * 1024u)
#define MAX_CALL (1u << 30)      /* bytes handed to zlib or rd in one go */
#define SEEN_MAX 256             /* pieces of a stored member followed apart; more: gaps are read */
#define GAP_CHUNK (256u * 1024u) /* bytes of a gap read in one go */

/* Bytes [start, end) of a stored member that a read returned, with their CRC-32. */
struct seen {
	uint64_t start, end;
	uint32_t crc;
};

struct zip_reader {
	const struct zip_member *m;
	zip_read_fn rd;
	void *ctx;
	uint64_t data_off; /* where the compressed bytes start */
	uint64_t limit;    /* the central directory's offset: no member byte lies past it */
	z_stream zs;
	bool zs_ready;
	unsigned char *in; /* compressed chunk, in_cap bytes */
	size_t in_cap;
	size_t chunk;      /* size of the next fetch; grows while streaming */
	uint64_t in_pos;   /* compressed bytes fetched */
	uint64_t out_pos;  /* content bytes produced (deflate); stored: all once seen whole */
	uint32_t crc;      /* of content [0, out_pos) */
	struct seen *seen; /* stored members: the content read so far, sorted, disjoint */
	size_t n_seen, seen_cap;
	int failed; /* sticky -errno: the member is corrupt */
	bool stale; /* rd failed mid-stream: restart before the next read */
};

static int fail(struct zip_reader *r, const char *why)
{
	char shown[SHOWN_MAX + 4];
	zipindex_shown_name(shown, r->m->name, strlen(r->m->name));
	log_set_reason("%s: %s", shown, why); /* the one error line is the reader's */
	r->failed = -EIO;
	return -EIO;
}

static int read_local_header(struct zip_reader *r)
{
	unsigned char h[LFH_LEN];
	if (r->m->local_offset > r->limit || r->limit - r->m->local_offset < LFH_LEN)
		return fail(r, "the local file header lies past the central directory");
	ssize_t n = r->rd(r->ctx, h, LFH_LEN, r->m->local_offset);
	if (n < 0)
		return (int)n;
	if (le32(h) != LFH_SIG)
		return fail(r, "no local file header where the central directory says");
	r->data_off =
		r->m->local_offset + LFH_LEN + le16(h + LFH_NAME_LEN) + le16(h + LFH_EXTRA_LEN);
	if (r->data_off > r->limit || r->m->comp_size > r->limit - r->data_off)
		return fail(r, "the local file header puts the data past the central directory");
	return 0;
}

int zip_reader_new(const struct zipindex *zi, const struct zip_member *m, zip_read_fn rd, void *ctx,
		   struct zip_reader **out)
{
	if (m->type == ZIP_DIR)
		return -EISDIR;
	if (m->encrypted || (m->method != 0 && m->method != 8)) {
		char shown[SHOWN_MAX + 4];
		zipindex_shown_name(shown, m->name, strlen(m->name));
		log_msg(LOG_ERR, "%s: %s", shown,
			m->encrypted ? "encrypted members cannot be read"
				     : "unsupported compression");
		return -ENOTSUP;
	}
	struct zip_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = (struct zip_reader){
		.m = m, .rd = rd, .ctx = ctx, .limit = zipindex_cd_offset(zi), .chunk = CHUNK_MIN};
	/* a read never reaches the end of an empty member, where the CRC is checked: check it now */
	int err = m->method == 0 && m->size != m->comp_size
			  ? fail(r, "a stored member whose sizes differ")
		  : m->size == 0 && m->crc32 != 0 ? fail(r, "an empty member whose CRC-32 is not 0")
						  : read_local_header(r);
	if (!err && m->method == 8) {
		err = array_grow((void **)&r->in, &r->in_cap, CHUNK_MIN, 1);
		if (!err)
			err = inflateInit2(&r->zs, -MAX_WBITS) == Z_OK ? 0 : -ENOMEM;
		r->zs_ready = !err;
	}
	if (err) {
		zip_reader_free(r);
		return err;
	}
	*out = r;
	return 0;
}

uint64_t zip_reader_data_end(const struct zip_reader *r)
{
	return r->data_off + r->m->comp_size;
}

const struct zip_member *zip_reader_member(const struct zip_reader *r)
{
	return r->m;
}

bool zip_reader_corrupt(const struct zip_reader *r)
{
	return r->failed != 0;
}

void zip_reader_free(struct zip_reader *r)
{
	if (!r)
		return;
	if (r->zs_ready)
		inflateEnd(&r->zs);
	free(r->in);
	free(r->seen);
	free(r);
}

/* Checks the CRC once the whole content has been seen. */
static int check_end(struct zip_reader *r)
{
	if (r->out_pos == r->m->size && r->crc != r->m->crc32)
		return fail(r, "CRC-32 mismatch: the cached or served bytes are corrupt");
	return 0;
}

/* Joins piece i + 1 onto piece i (adjacent). */
static void seen_join(struct zip_reader *r, size_t i)
{
	struct seen *a = &r->seen[i], *b = &r->seen[i + 1];
	a->crc = (uint32_t)crc32_combine(a->crc, b->crc, (z_off_t)(b->end - b->start));
	a->end = b->end;
	memmove(b, b + 1, (r->n_seen - i - 2) * sizeof(*b));
	r->n_seen--;
}

/* Adds a piece overlapping none, in order, joined to its neighbours. */
static int seen_add(struct zip_reader *r, struct seen piece)
{
	int err = array_grow((void **)&r->seen, &r->seen_cap, r->n_seen + 1, sizeof(*r->seen));
	if (err)
		return err;
	size_t i = 0;
	while (i < r->n_seen && r->seen[i].start < piece.start)
		i++;
	memmove(&r->seen[i + 1], &r->seen[i], (r->n_seen - i) * sizeof(piece));
	r->seen[i] = piece;
	r->n_seen++;
	if (i + 1 < r->n_seen && r->seen[i].end == r->seen[i + 1].start)
		seen_join(r, i);
	if (i > 0 && r->seen[i - 1].end == r->seen[i].start)
		seen_join(r, i - 1);
	return 0;
}

/* Reads the content between pieces i and i + 1 through rd and joins the three. */
static int seen_fill(struct zip_reader *r, size_t i)
{
	uint64_t pos = r->seen[i].end, end = r->seen[i + 1].start;
	size_t cap = end - pos < GAP_CHUNK ? (size_t)(end - pos) : GAP_CHUNK;
	unsigned char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	uint32_t crc = 0;
	while (pos < end) {
		size_t n = end - pos < cap ? (size_t)(end - pos) : cap;
		ssize_t got = r->rd(r->ctx, buf, n, r->data_off + pos);
		if (got < 0) {
			free(buf);
			return (int)got;
		}
		crc = crc_zip(crc, buf, n);
		pos += n;
	}
	free(buf);
	struct seen *a = &r->seen[i];
	a->crc = (uint32_t)crc32_combine(a->crc, crc, (z_off_t)(end - a->end));
	a->end = end;
	seen_join(r, i);
	return 0;
}

/* Brings the pieces back to SEEN_MAX by filling the smallest gaps between them. Each gap read
 * becomes seen, so over a reader's life this reads at most the member once more, and one call
 * reads at most a SEEN_MAX-th of what is still unseen. */
static int seen_bound(struct zip_reader *r)
{
	while (r->n_seen > SEEN_MAX) {
		size_t best = 0;
		for (size_t i = 1; i + 1 < r->n_seen; i++)
			if (r->seen[i + 1].start - r->seen[i].end <
			    r->seen[best + 1].start - r->seen[best].end)
				best = i;
		int err = seen_fill(r, best);
		if (err)
			return err;
	}
	return 0;
}

/* Notes the content buf = [off, off + len) a read returned; once all of it has been returned,
 * in whatever order, its CRC-32 is checked. */
static int stored_note(struct zip_reader *r, const unsigned char *buf, uint64_t off, uint64_t len)
{
	/* a read adds at most one piece (its parts that fill gaps join their neighbours); one left
	 * over by a read whose gap could not be read is bounded first, so never more than
	 * SEEN_MAX + 1 are held, however long rd keeps failing */
	int err = seen_bound(r);
	if (err)
		return err;
	uint64_t pos = off, end = off + len;
	while (pos < end) {
		size_t i = 0;
		while (i < r->n_seen && r->seen[i].end <= pos)
			i++;
		if (i < r->n_seen && r->seen[i].start <= pos) { /* seen already */
			pos = r->seen[i].end;
			continue;
		}
		uint64_t stop = i < r->n_seen && r->seen[i].start < end ? r->seen[i].start : end;
		err = seen_add(r,
			       (struct seen){pos, stop, crc_zip(0, buf + (pos - off), stop - pos)});
		if (err)
			return err;
		pos = stop;
	}
	err = seen_bound(r);
	if (err)
		return err;
	if (r->n_seen == 1 && r->seen[0].start == 0 && r->seen[0].end == r->m->size) {
		r->out_pos = r->m->size;
		r->crc = r->seen[0].crc;
		return check_end(r);
	}
	return 0;
}

static ssize_t stored_pread(struct zip_reader *r, void *buf, size_t len, uint64_t off)
{
	ssize_t n = r->rd(r->ctx, buf, len, r->data_off + off);
	if (n < 0)
		return n;
	int err = stored_note(r, buf, off, len);
	return err ? err : (ssize_t)len;
}

static int refill(struct zip_reader *r)
{
	uint64_t left = r->m->comp_size - r->in_pos;
	if (left == 0)
		return fail(r, "deflate stream ends early");
	size_t n = left < r->chunk ? (size_t)left : r->chunk;
	int err = array_grow((void **)&r->in, &r->in_cap, n, 1);
	if (err)
		return err;
	ssize_t got = r->rd(r->ctx, r->in, n, r->data_off + r->in_pos);
	if (got < 0) {
		r->stale = true; /* output of this call is lost: the next read starts over */
		return (int)got;
	}
	r->in_pos += n;
	r->zs.next_in = r->in;
	r->zs.avail_in = (uInt)n;
	if (r->chunk < CHUNK_MAX)
		r->chunk *= 2;
	return 0;
}

/* Inflates up to len bytes into out (NULL: discard); returns bytes produced or -errno. */
static ssize_t inflate_some(struct zip_reader *r, unsigned char *out, size_t len)
{
	unsigned char scratch[16384];
	unsigned char *dst = out ? out : scratch;
	size_t want = out ? len : (len < sizeof(scratch) ? len : sizeof(scratch));
	if (want > MAX_CALL)
		want = MAX_CALL;
	uint64_t room = r->m->size - r->out_pos;
	if (want > room)
		want = (size_t)room;
	r->zs.next_out = dst;
	r->zs.avail_out = (uInt)want;
	while (r->zs.avail_out > 0) {
		/* with all input read, zlib may still hold output of a long match: ask it first */
		if (r->zs.avail_in == 0 && r->in_pos < r->m->comp_size) {
			int err = refill(r);
			if (err)
				return err;
		}
		int z = inflate(&r->zs, Z_NO_FLUSH);
		if (z == Z_STREAM_END && r->zs.avail_out > 0)
			return fail(r, "deflate stream shorter than the recorded size");
		if (z == Z_BUF_ERROR && r->zs.avail_in == 0)
			return fail(r, "deflate stream ends early");
		if (z != Z_OK && z != Z_STREAM_END)
			return fail(r, "corrupt deflate data");
	}
	r->crc = crc_zip(r->crc, dst, want);
	r->out_pos += want;
	return (ssize_t)want;
}

/* At the recorded size the stream must end, producing nothing more (a bomb would). */
static int check_stream_end(struct zip_reader *r)
{
	unsigned char extra;
	for (;;) {
		r->zs.next_out = &extra;
		r->zs.avail_out = 1;
		if (r->zs.avail_in == 0 && r->in_pos < r->m->comp_size) {
			int err = refill(r);
			if (err)
				return err;
		}
		int z = inflate(&r->zs, Z_NO_FLUSH);
		if (r->zs.avail_out == 0)
			return fail(r, "more data than the recorded size");
		if (z == Z_STREAM_END)
			return check_end(r);
		if (z != Z_OK && !(z == Z_BUF_ERROR && r->in_pos < r->m->comp_size))
			return fail(r, "deflate stream does not end at the recorded size");
	}
}

static int restart(struct zip_reader *r)
{
	if (inflateReset(&r->zs) != Z_OK)
		return fail(r, "inflate reset failed");
	r->zs.avail_in = 0;
	r->in_pos = r->out_pos = 0;
	r->crc = 0;
	r->chunk = CHUNK_MIN;
	r->stale = false;
	return 0;
}

static ssize_t deflated_pread(struct zip_reader *r, void *buf, size_t len, uint64_t off)
{
	if ((off < r->out_pos || r->stale) && restart(r))
		return r->failed;
	while (r->out_pos < off) {
		ssize_t n = inflate_some(r, NULL, (size_t)(off - r->out_pos));
		if (n < 0)
			return n;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t n = inflate_some(r, (unsigned char *)buf + done, len - done);
		if (n < 0)
			return n;
		done += (size_t)n;
	}
	if (r->out_pos == r->m->size) {
		int err = check_stream_end(r);
		if (err)
			return err;
	}
	return (ssize_t)done;
}

ssize_t zip_reader_pread(struct zip_reader *r, void *buf, size_t len, uint64_t off)
{
	if (r->failed)
		return r->failed;
	if (off >= r->m->size)
		return 0;
	if (len > r->m->size - off)
		len = (size_t)(r->m->size - off);
	if (len == 0)
		return 0;
	return r->m->method == 0 ? stored_pread(r, buf, len, off)
				 : deflated_pread(r, buf, len, off);
}

int zip_reader_read_all(const struct zipindex *zi, const struct zip_member *m, zip_read_fn rd,
			void *ctx, size_t max, char **out, size_t *out_len)
{
	if (m->size > max)
		return -EFBIG;
	struct zip_reader *r;
	int err = zip_reader_new(zi, m, rd, ctx, &r);
	if (err)
		return err;
	char *buf = malloc((size_t)m->size + 1);
	ssize_t n = buf ? zip_reader_pread(r, buf, (size_t)m->size, 0) : -ENOMEM;
	if (n >= 0 && (uint64_t)n != m->size)
		n = -EIO;
	zip_reader_free(r);
	if (n < 0) {
		free(buf);
		return (int)n;
	}
	buf[n] = '\0';
	*out = buf;
	*out_len = (size_t)n;
	return 0;
}

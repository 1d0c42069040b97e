/* zipindex: a zip archive's central directory as a sorted tree of members, and readers that
 * inflate a member from its compressed bytes. Nothing here holds the archive: every byte comes
 * through the caller's zip_read_fn (the block cache, backed by Range requests).
 *
 * Invariants of a loaded index: members[] is sorted by full name (strcmp), so a parent precedes
 * its children and lookups are binary searches; members[0] is the root (""); every member's
 * parent is a folder; no name is absolute or holds ".", ".." or empty components; all names live
 * in one arena. A reader never returns a byte past the central directory's size, and fails the
 * read that reaches the end when the CRC-32 or the size disagree. */
#include "artifactfs/zipindex.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <zlib.h>

#include "artifactfs/log.h"

#define EOCD_SIG 0x06054b50u
#define EOCD64_SIG 0x06064b50u
#define LOC64_SIG 0x07064b50u
#define CDH_SIG 0x02014b50u
#define LFH_SIG 0x04034b50u
#define EOCD_LEN 22u
#define LOC64_LEN 20u
#define EOCD64_LEN 56u
#define CDH_LEN 46u
#define LFH_LEN 30u
#define MAX_COMMENT 65535u
#define SHORT_TAIL 4096u
#define MAX_ENTRIES 10000000u
#define CHUNK_MIN (256u * 1024u)
#define CHUNK_MAX (4u * 1024u * 1024u)
#define NONE UINT32_MAX

struct zipindex {
	struct zip_member *m; /* sorted by name; m[0] is the root */
	size_t n;
	char *arena;          /* every name, NUL-terminated */
	size_t rejected;
	uint64_t cd_offset;
};

static uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* ---- the end of the archive ---- */

struct cd_loc {
	uint64_t offset, size, entries;
};

/* Finds the last EOCD whose comment ends within the tail; returns its offset in tail or -1. */
static long find_eocd(const unsigned char *tail, size_t len)
{
	if (len < EOCD_LEN)
		return -1;
	for (size_t i = len - EOCD_LEN + 1; i-- > 0;) {
		if (le32(tail + i) == EOCD_SIG && i + EOCD_LEN + le16(tail + i + 20) <= len)
			return (long)i;
	}
	return -1;
}

static int read_zip64_end(uint64_t loc64_abs, zip_read_fn rd, void *ctx, uint64_t size,
			  struct cd_loc *cd)
{
	unsigned char loc[LOC64_LEN], rec[EOCD64_LEN];
	ssize_t n = rd(ctx, loc, LOC64_LEN, loc64_abs);
	if (n < 0)
		return (int)n;
	if (le32(loc) != LOC64_SIG)
		return 1; /* no zip64 locator: the EOCD's values stand */
	uint64_t rec_off = le64(loc + 8);
	if (rec_off > size || size - rec_off < EOCD64_LEN)
		return -EIO;
	n = rd(ctx, rec, EOCD64_LEN, rec_off);
	if (n < 0)
		return (int)n;
	if (le32(rec) != EOCD64_SIG)
		return -EIO;
	cd->entries = le64(rec + 32);
	cd->size = le64(rec + 40);
	cd->offset = le64(rec + 48);
	return 0;
}

/* Reads the last tail_len bytes and finds the EOCD in them. */
static int read_tail(uint64_t size, size_t tail_len, zip_read_fn rd, void *ctx,
		     unsigned char **tail, long *at)
{
	*tail = malloc(tail_len ? tail_len : 1);
	if (!*tail)
		return -ENOMEM;
	ssize_t n = rd(ctx, *tail, tail_len, size - tail_len);
	*at = n < 0 ? -1 : find_eocd(*tail, tail_len);
	return n < 0 ? (int)n : 0;
}

static int locate_cd(uint64_t size, zip_read_fn rd, void *ctx, struct cd_loc *cd)
{
	/* archives seldom carry a comment: look in the last few KiB before the whole window */
	size_t full = size < EOCD_LEN + MAX_COMMENT ? (size_t)size : EOCD_LEN + MAX_COMMENT;
	size_t tail_len = full < SHORT_TAIL ? full : SHORT_TAIL;
	unsigned char *tail;
	long at;
	int n = read_tail(size, tail_len, rd, ctx, &tail, &at);
	if (!n && at < 0 && full > tail_len) {
		free(tail);
		tail_len = full;
		n = read_tail(size, tail_len, rd, ctx, &tail, &at);
	}
	int err = n < 0 ? (int)n : at < 0 ? -EIO : 0;
	if (!err) {
		const unsigned char *e = tail + at;
		uint64_t eocd_abs = size - tail_len + (uint64_t)at;
		cd->entries = le16(e + 10);
		cd->size = le32(e + 12);
		cd->offset = le32(e + 16);
		if (eocd_abs >= LOC64_LEN) {
			err = read_zip64_end(eocd_abs - LOC64_LEN, rd, ctx, size, cd);
			err = err > 0 ? 0 : err;
		}
		if (!err && (cd->offset > eocd_abs || cd->size > eocd_abs - cd->offset ||
			     cd->entries > MAX_ENTRIES || cd->entries * CDH_LEN > cd->size))
			err = -EIO;
	}
	free(tail);
	return err;
}

/* ---- central directory entries ---- */

struct entry {
	const char *name; /* into the CD buffer or a prefix of another name; not NUL-terminated */
	uint32_t name_len;
	uint32_t order;   /* position in the CD; synthetic folders after every real entry */
	struct zip_member m;
};

struct entries {
	struct entry *v;
	size_t n, cap;
	size_t rejected;
};

static int entries_add(struct entries *es, const struct entry *e)
{
	if (es->n == es->cap) {
		size_t cap = es->cap ? es->cap * 2 : 64;
		struct entry *v = realloc(es->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		es->v = v;
		es->cap = cap;
	}
	es->v[es->n++] = *e;
	return 0;
}

/* True when name (without a trailing '/') is safe inside a job folder. */
static bool name_is_safe(const char *name, size_t len)
{
	if (len == 0 || name[0] == '/' || memchr(name, '\0', len))
		return false;
	for (size_t i = 0; i <= len;) {
		size_t j = i;
		while (j < len && name[j] != '/')
			j++;
		size_t c = j - i;
		if (c == 0 || (c == 1 && name[i] == '.') ||
		    (c == 2 && name[i] == '.' && name[i + 1] == '.'))
			return false;
		i = j + 1;
	}
	return true;
}

static int64_t dos_time(uint16_t t, uint16_t d)
{
	struct tm tm = {
		.tm_sec = (t & 0x1f) * 2,
		.tm_min = (t >> 5) & 0x3f,
		.tm_hour = t >> 11,
		.tm_mday = d & 0x1f,
		.tm_mon = ((d >> 5) & 0xf) - 1,
		.tm_year = (d >> 9) + 80,
	};
	return (int64_t)timegm(&tm);
}

/* Applies the zip64 and extended-timestamp extra fields. */
static int apply_extra(const unsigned char *x, size_t len, struct zip_member *m, bool big_size,
		       bool big_csize, bool big_off)
{
	while (len >= 4) {
		uint16_t id = le16(x), n = le16(x + 2);
		if ((size_t)n + 4 > len)
			break;
		const unsigned char *d = x + 4;
		if (id == 0x0001) {
			size_t need = 8u * ((unsigned)big_size + (unsigned)big_csize + (unsigned)big_off);
			if (n < need)
				return -EIO;
			if (big_size)
				m->size = le64(d), d += 8;
			if (big_csize)
				m->comp_size = le64(d), d += 8;
			if (big_off)
				m->local_offset = le64(d);
		} else if (id == 0x5455 && n >= 5 && (d[0] & 1)) {
			m->mtime = (int32_t)le32(d + 1);
		}
		x += 4 + n;
		len -= 4u + n;
	}
	return 0;
}

static void set_type(const unsigned char *h, struct zip_member *m, bool slash)
{
	uint32_t ext = le32(h + 38);
	bool unix_host = (le16(h + 4) >> 8) == 3;
	uint32_t mode = unix_host ? ext >> 16 : 0;
	m->type = slash || (ext & 0x10) || S_ISDIR(mode) ? ZIP_DIR : ZIP_FILE;
	if (S_ISLNK(mode) && !slash)
		m->type = ZIP_SYMLINK;
	m->mode = mode & 07777;
}

/* Parses the entry at h (len bytes left in the CD); *used gets its length. */
static int parse_entry(const unsigned char *h, size_t len, uint32_t order, uint64_t cd_offset,
		       struct entries *es, size_t *used)
{
	if (len < CDH_LEN || le32(h) != CDH_SIG)
		return -EIO;
	size_t nl = le16(h + 28), xl = le16(h + 30), cl = le16(h + 32);
	if (CDH_LEN + nl + xl + cl > len)
		return -EIO;
	*used = CDH_LEN + nl + xl + cl;
	struct entry e = {.name = (const char *)h + CDH_LEN, .order = order};
	struct zip_member *m = &e.m;
	uint32_t csize = le32(h + 20), usize = le32(h + 24), off = le32(h + 42);
	m->crc32 = le32(h + 16);
	m->method = le16(h + 10);
	m->encrypted = le16(h + 8) & 1;
	m->comp_size = csize;
	m->size = usize;
	m->local_offset = off;
	m->mtime = dos_time(le16(h + 12), le16(h + 14));
	if (apply_extra(h + CDH_LEN + nl, xl, m, usize == 0xffffffffu, csize == 0xffffffffu,
			off == 0xffffffffu))
		return -EIO;
	bool slash = nl > 0 && e.name[nl - 1] == '/';
	set_type(h, m, slash);
	e.name_len = (uint32_t)(slash ? nl - 1 : nl);
	bool broken = m->type != ZIP_DIR && (m->local_offset > cd_offset ||
					     m->comp_size > cd_offset - m->local_offset);
	if (!name_is_safe(e.name, e.name_len) || broken) {
		log_msg(LOG_WARNING, "archive member \"%.*s\" left out: %s", (int)(nl > 200 ? 200 : nl),
			e.name, broken ? "its data lies outside the archive" : "its name escapes the job folder");
		es->rejected++;
		return 0;
	}
	if (m->type == ZIP_DIR)
		m->size = m->comp_size = 0;
	return entries_add(es, &e);
}

static int parse_cd(const unsigned char *cd, const struct cd_loc *loc, struct entries *es)
{
	size_t pos = 0;
	for (uint64_t i = 0; i < loc->entries; i++) {
		size_t used = 0;
		int err = parse_entry(cd + pos, loc->size - pos, (uint32_t)i, loc->offset, es, &used);
		if (err)
			return err;
		pos += used;
	}
	return 0;
}

/* Adds a synthetic folder for every proper prefix of every name. */
static int add_parents(struct entries *es)
{
	size_t n = es->n;
	for (size_t i = 0; i < n; i++) {
		const char *name = es->v[i].name;
		for (uint32_t k = 0; k < es->v[i].name_len; k++) {
			if (name[k] != '/')
				continue;
			struct entry d = {.name = name, .name_len = k, .order = UINT32_MAX,
					  .m = {.type = ZIP_DIR, .synthetic = true}};
			int err = entries_add(es, &d);
			if (err)
				return err;
			name = es->v[i].name; /* es->v may have moved; the name did not */
		}
	}
	return 0;
}

static int cmp_names(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : (al > bl) - (al < bl);
}

static int cmp_entries(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	int c = cmp_names(a->name, a->name_len, b->name, b->name_len);
	return c ? c : (a->order > b->order) - (a->order < b->order);
}

/* ---- building the index ---- */

static long find_in(const struct zip_member *m, size_t n, const char *name, size_t len)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = cmp_names(m[mid].name, strlen(m[mid].name), name, len);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Index of e's parent among the first n members, or -1 when it is missing or not a folder. */
static long parent_of(const struct zipindex *zi, const struct entry *e)
{
	const char *slash = NULL;
	for (uint32_t k = e->name_len; k-- > 0;)
		if (e->name[k] == '/') {
			slash = e->name + k;
			break;
		}
	long p = slash ? find_in(zi->m, zi->n, e->name, (size_t)(slash - e->name)) : 0;
	return p >= 0 && zi->m[p].type == ZIP_DIR ? p : -1;
}

static void link_child(struct zipindex *zi, uint32_t *last_child, uint32_t parent, uint32_t idx)
{
	struct zip_member *p = &zi->m[parent];
	zi->m[idx].parent = parent;
	if (last_child[parent] == NONE)
		p->first_child = idx;
	else
		zi->m[last_child[parent]].next_sibling = idx;
	last_child[parent] = idx;
}

static size_t arena_size(const struct entries *es)
{
	size_t total = 1;
	for (size_t i = 0; i < es->n; i++)
		total += es->v[i].name_len + 1;
	return total;
}

static int build(struct zipindex *zi, struct entries *es)
{
	if (es->n) /* an empty archive has no array at all */
		qsort(es->v, es->n, sizeof(*es->v), cmp_entries);
	zi->m = calloc(es->n + 1, sizeof(*zi->m));
	zi->arena = malloc(arena_size(es));
	uint32_t *last_child = malloc((es->n + 1) * sizeof(*last_child));
	int err = zi->m && zi->arena && last_child ? 0 : -ENOMEM;
	char *a = zi->arena;
	if (!err) {
		*a = '\0';
		zi->m[0] = (struct zip_member){.name = a++, .base = zi->arena, .type = ZIP_DIR,
					       .synthetic = true, .first_child = NONE,
					       .next_sibling = NONE};
		last_child[0] = NONE;
		zi->n = 1;
	}
	for (size_t i = 0; !err && i < es->n; i++) {
		struct entry *e = &es->v[i];
		if (i > 0 && cmp_names(e->name, e->name_len, es->v[i - 1].name,
				       es->v[i - 1].name_len) == 0)
			continue; /* a duplicate: the first in the central directory stays */
		long parent = parent_of(zi, e);
		if (parent < 0) {
			zi->rejected++;
			log_msg(LOG_WARNING, "archive member \"%.*s\" left out: its folder is a file",
				(int)(e->name_len > 200 ? 200 : e->name_len), e->name);
			continue;
		}
		uint32_t idx = (uint32_t)zi->n++;
		struct zip_member *m = &zi->m[idx];
		*m = e->m;
		memcpy(a, e->name, e->name_len);
		a[e->name_len] = '\0';
		m->name = a;
		m->base = strrchr(a, '/') ? strrchr(a, '/') + 1 : a;
		a += e->name_len + 1;
		m->first_child = m->next_sibling = NONE;
		last_child[idx] = NONE;
		link_child(zi, last_child, (uint32_t)parent, idx);
	}
	free(last_child);
	return err;
}

int zipindex_load(uint64_t archive_size, zip_read_fn rd, void *ctx, struct zipindex **out)
{
	struct cd_loc loc;
	struct entries es = {0};
	unsigned char *cd = NULL;
	*out = NULL;
	int err = archive_size < EOCD_LEN ? -EIO : locate_cd(archive_size, rd, ctx, &loc);
	if (err)
		return err;
	cd = malloc(loc.size ? loc.size : 1);
	if (!cd)
		return -ENOMEM;
	ssize_t n = loc.size ? rd(ctx, cd, loc.size, loc.offset) : 0;
	err = n < 0 ? (int)n : parse_cd(cd, &loc, &es);
	if (!err)
		err = add_parents(&es);
	struct zipindex *zi = err ? NULL : calloc(1, sizeof(*zi));
	if (!err && !zi)
		err = -ENOMEM;
	if (!err) {
		zi->cd_offset = loc.offset;
		zi->rejected = es.rejected;
		err = build(zi, &es);
	}
	free(es.v);
	free(cd);
	if (err) {
		zipindex_free(zi);
		if (err == -EIO)
			log_msg(LOG_ERR, "the archive is not a readable zip (central directory broken)");
		return err;
	}
	*out = zi;
	return 0;
}

struct membuf {
	const unsigned char *p;
	size_t len;
};

static ssize_t membuf_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct membuf *mb = ctx;
	if (off > mb->len || len > mb->len - off)
		return -EIO;
	memcpy(buf, mb->p + off, len);
	return (ssize_t)len;
}

int zipindex_load_buffer(const void *buf, size_t len, struct zipindex **out)
{
	struct membuf mb = {buf, len};
	return zipindex_load(len, membuf_read, &mb, out);
}

void zipindex_free(struct zipindex *zi)
{
	if (!zi)
		return;
	free(zi->m);
	free(zi->arena);
	free(zi);
}

size_t zipindex_count(const struct zipindex *zi)
{
	return zi->n;
}

const struct zip_member *zipindex_member(const struct zipindex *zi, uint32_t idx)
{
	return idx < zi->n ? &zi->m[idx] : NULL;
}

const struct zip_member *zipindex_find(const struct zipindex *zi, const char *path)
{
	while (*path == '/')
		path++;
	size_t len = strlen(path);
	while (len > 0 && path[len - 1] == '/')
		len--;
	long i = find_in(zi->m, zi->n, path, len);
	return i < 0 ? NULL : &zi->m[i];
}

size_t zipindex_rejected(const struct zipindex *zi)
{
	return zi->rejected;
}

uint64_t zipindex_cd_offset(const struct zipindex *zi)
{
	return zi->cd_offset;
}

/* ---- reading a member ---- */

struct zip_reader {
	const struct zip_member *m;
	zip_read_fn rd;
	void *ctx;
	uint64_t data_off;   /* where the compressed bytes start */
	uint64_t limit;      /* the central directory's offset: no member byte lies past it */
	z_stream zs;
	bool zs_ready;
	unsigned char *in;   /* compressed chunk */
	size_t chunk;        /* size of the next fetch; grows while streaming */
	uint64_t in_pos;     /* compressed bytes fetched */
	uint64_t out_pos;    /* content bytes produced (deflate) or checked (stored) */
	uint32_t crc;        /* of content [0, out_pos) */
	int failed;          /* sticky -errno */
};

static int fail(struct zip_reader *r, const char *why)
{
	log_msg(LOG_ERR, "%s: %s", r->m->name, why);
	r->failed = -EIO;
	return -EIO;
}

static int read_local_header(struct zip_reader *r)
{
	unsigned char h[LFH_LEN];
	ssize_t n = r->rd(r->ctx, h, LFH_LEN, r->m->local_offset);
	if (n < 0)
		return (int)n;
	if (le32(h) != LFH_SIG)
		return fail(r, "no local file header where the central directory says");
	r->data_off = r->m->local_offset + LFH_LEN + le16(h + 26) + le16(h + 28);
	if (r->data_off > r->limit || r->m->comp_size > r->limit - r->data_off)
		return fail(r, "the local file header puts the data past the central directory");
	return 0;
}

int zip_reader_new(const struct zipindex *zi, const struct zip_member *m, zip_read_fn rd,
		   void *ctx, struct zip_reader **out)
{
	if (m->type == ZIP_DIR)
		return -EISDIR;
	if (m->encrypted || (m->method != 0 && m->method != 8)) {
		log_msg(LOG_ERR, "%s: %s", m->name,
			m->encrypted ? "encrypted members cannot be read" : "unsupported compression");
		return -ENOTSUP;
	}
	struct zip_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = (struct zip_reader){.m = m, .rd = rd, .ctx = ctx, .limit = zi->cd_offset,
				 .chunk = CHUNK_MIN};
	int err = read_local_header(r);
	if (!err && m->method == 8) {
		r->in = malloc(CHUNK_MAX);
		err = !r->in ? -ENOMEM : inflateInit2(&r->zs, -MAX_WBITS) == Z_OK ? 0 : -ENOMEM;
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

void zip_reader_free(struct zip_reader *r)
{
	if (!r)
		return;
	if (r->zs_ready)
		inflateEnd(&r->zs);
	free(r->in);
	free(r);
}


/* Checks the CRC once the whole content has been seen. */
static int check_end(struct zip_reader *r)
{
	if (r->out_pos == r->m->size && r->crc != r->m->crc32)
		return fail(r, "CRC-32 mismatch: the cached or served bytes are corrupt");
	return 0;
}

static ssize_t stored_pread(struct zip_reader *r, void *buf, size_t len, uint64_t off)
{
	ssize_t n = r->rd(r->ctx, buf, len, r->data_off + off);
	if (n < 0)
		return n;
	if (off == r->out_pos) { /* sequential from the start: the CRC can be followed */
		r->crc = (uint32_t)crc32(r->crc, buf, (uInt)len);
		r->out_pos += len;
		int err = check_end(r);
		if (err)
			return err;
	}
	return (ssize_t)len;
}

static int refill(struct zip_reader *r)
{
	uint64_t left = r->m->comp_size - r->in_pos;
	if (left == 0)
		return fail(r, "deflate stream ends early");
	size_t n = left < r->chunk ? (size_t)left : r->chunk;
	ssize_t got = r->rd(r->ctx, r->in, n, r->data_off + r->in_pos);
	if (got < 0)
		return r->failed = (int)got;
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
	r->crc = (uint32_t)crc32(r->crc, dst, (uInt)want);
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
	return 0;
}

static ssize_t deflated_pread(struct zip_reader *r, void *buf, size_t len, uint64_t off)
{
	if (off < r->out_pos && restart(r))
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
	return r->m->method == 0 ? stored_pread(r, buf, len, off) : deflated_pread(r, buf, len, off);
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

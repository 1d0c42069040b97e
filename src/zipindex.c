/* zipindex: a zip archive's central directory, or another reader's list of entries, as a sorted
 * tree of members. Nothing here holds the archive: every byte comes through the caller's
 * zip_read_fn (the block cache, backed by Range requests), and only its tail is read.
 *
 * Invariants of a loaded index: members[] is in path order (strcmp, except that '/' sorts before
 * every other byte), which is a depth-first pre-order of the tree: a folder comes right before
 * everything under it, siblings come in strcmp order, and lookups are binary searches. members[0]
 * is the root (""); every member's parent is a folder; no name is absolute or holds ".", ".." or
 * empty components; all names live in one arena and all members in one array, so 100,000 members
 * cost a few MiB. The symlink walk (zipindex_link.c) and the member reader (zipread.c) use the
 * index through its functions (zipindex_i.h for the private ones) and never call back. */
#include "artifactfs/zipindex.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "artifactfs/grow.h"
#include "artifactfs/log.h"
#include "artifactfs/membudget.h"

#include "zipindex_i.h"

#define EOCD_SIG 0x06054b50u
#define EOCD64_SIG 0x06064b50u
#define LOC64_SIG 0x07064b50u
#define CDH_SIG 0x02014b50u
#define EOCD_LEN 22u
#define LOC64_LEN 20u
#define EOCD64_LEN 56u
#define CDH_LEN 46u
#define MAX_COMMENT 65535u
/* Field offsets (APPNOTE.TXT 4.3.12, 4.3.14-16), little-endian. */
enum {
	CDH_MADE_BY = 4,
	CDH_FLAGS = 8,
	CDH_METHOD = 10,
	CDH_TIME = 12,
	CDH_DATE = 14,
	CDH_CRC = 16,
	CDH_CSIZE = 20,
	CDH_USIZE = 24,
	CDH_NAME_LEN = 28,
	CDH_EXTRA_LEN = 30,
	CDH_COMMENT_LEN = 32,
	CDH_EXT_ATTR = 38,
	CDH_LFH_OFFSET = 42,
	EOCD_ENTRIES = 10,
	EOCD_CD_SIZE = 12,
	EOCD_CD_OFFSET = 16,
	EOCD_COMMENT_LEN = 20,
	LOC64_EOCD64_AT = 8,
	EOCD64_ENTRIES = 32,
	EOCD64_CD_SIZE = 40,
	EOCD64_CD_OFFSET = 48,
};
#define SHORT_TAIL 4096u
#define MAX_ENTRIES 10000000u
#define NONE UINT32_MAX
#define DROPPED (UINT32_MAX - 1) /* first_child of an entry left out while building */

struct zipindex {
	struct zip_member *m; /* in path order; m[0] is the root */
	size_t n;
	char *arena; /* every name, NUL-terminated */
	size_t arena_len;
	size_t rejected;
	uint64_t cd_offset;
	size_t charged; /* taken from the mount's memory budget (membudget.h), given back at free */
};

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* ---- the end of the archive ---- */

struct cd_loc {
	uint64_t offset, size, entries;
	uint64_t end; /* the central directory ends at or before this: the zip64 record or EOCD */
};

/* Follows the zip64 locator just before the EOCD at eocd_abs, if there is one, to the zip64 end
 * record, whose values then replace the EOCD's. Returns 0 (with or without a locator) or -errno. */
static int read_zip64_end(uint64_t eocd_abs, zip_read_fn rd, void *ctx, struct cd_loc *cd)
{
	unsigned char loc[LOC64_LEN], rec[EOCD64_LEN];
	if (eocd_abs < LOC64_LEN)
		return 0;
	uint64_t loc_abs = eocd_abs - LOC64_LEN;
	ssize_t n = rd(ctx, loc, LOC64_LEN, loc_abs);
	if (n < 0)
		return (int)n;
	if (le32(loc) != LOC64_SIG)
		return 0;
	uint64_t rec_off = le64(loc + LOC64_EOCD64_AT);
	if (rec_off > loc_abs || loc_abs - rec_off < EOCD64_LEN)
		return -EIO;
	n = rd(ctx, rec, EOCD64_LEN, rec_off);
	if (n < 0)
		return (int)n;
	if (le32(rec) != EOCD64_SIG)
		return -EIO;
	cd->entries = le64(rec + EOCD64_ENTRIES);
	cd->size = le64(rec + EOCD64_CD_SIZE);
	cd->offset = le64(rec + EOCD64_CD_OFFSET);
	cd->end = rec_off;
	return 0;
}

/* Reads the EOCD at e (eocd_abs in the archive). Returns 0, -EIO when it is not a consistent
 * one, or rd's error. */
static int parse_eocd(const unsigned char *e, uint64_t eocd_abs, zip_read_fn rd, void *ctx,
		      struct cd_loc *cd)
{
	*cd = (struct cd_loc){.entries = le16(e + EOCD_ENTRIES),
			      .size = le32(e + EOCD_CD_SIZE),
			      .offset = le32(e + EOCD_CD_OFFSET),
			      .end = eocd_abs};
	int err = read_zip64_end(eocd_abs, rd, ctx, cd);
	if (err)
		return err;
	if (cd->offset > cd->end || cd->size > cd->end - cd->offset || cd->entries > MAX_ENTRIES ||
	    cd->entries * CDH_LEN > cd->size)
		return -EIO;
	return 0;
}

/* Tries the EOCD signatures in the last len bytes, the last first, and keeps the first that is
 * consistent (a comment may hold a signature). Returns 0, -EIO when none is, or -errno. */
static int scan_tail(uint64_t size, size_t len, zip_read_fn rd, void *ctx, struct cd_loc *cd)
{
	unsigned char *tail = malloc(len);
	if (!tail)
		return -ENOMEM;
	ssize_t n = rd(ctx, tail, len, size - len);
	int err = n < 0 ? (int)n : -EIO;
	for (size_t i = len - EOCD_LEN + 1; n >= 0 && err == -EIO && i-- > 0;) {
		if (le32(tail + i) == EOCD_SIG &&
		    i + EOCD_LEN + le16(tail + i + EOCD_COMMENT_LEN) <= len)
			err = parse_eocd(tail + i, size - len + i, rd, ctx, cd);
	}
	free(tail);
	return err;
}

/* Finds the central directory. size >= EOCD_LEN. */
static int locate_cd(uint64_t size, zip_read_fn rd, void *ctx, struct cd_loc *cd)
{
	/* archives seldom carry a comment: look in the last few KiB before the whole window */
	size_t full = size < EOCD_LEN + MAX_COMMENT ? (size_t)size : EOCD_LEN + MAX_COMMENT;
	size_t len = full < SHORT_TAIL ? full : SHORT_TAIL;
	int err = scan_tail(size, len, rd, ctx, cd);
	if (err == -EIO && full > len)
		err = scan_tail(size, full, rd, ctx, cd);
	return err;
}

/* ---- central directory entries ---- */

/* While the index is built, a member's name points into the central directory (not
 * NUL-terminated), base points one past its end, and parent holds its position in the central
 * directory; copy_names() and link_tree() give them their final meaning. */
struct build {
	struct zip_member *m; /* m[0] is the root */
	size_t n, cap;
	size_t rejected;
	uint64_t cd_offset;
};

static size_t name_len(const struct zip_member *m)
{
	return (size_t)(m->base - m->name);
}

void zipindex_shown_name(char *out, const char *name, size_t len)
{
	size_t n = len > SHOWN_MAX ? SHOWN_MAX : len;
	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?' : name[i];
	strcpy(out + n, len > n ? "..." : "");
}

static void reject(size_t *count, const char *name, size_t len, const char *why)
{
	char shown[SHOWN_MAX + 4];
	zipindex_shown_name(shown, name, len);
	log_msg(LOG_WARNING, "archive member \"%s\" left out: %s", shown, why);
	(*count)++;
}

/* True when a component between bytes of seps is "..", or with strict also "" or ".".
 * name holds no NUL. */
static bool bad_component(const char *name, size_t len, const char *seps, bool strict)
{
	for (size_t i = 0, start = 0; i <= len; i++) {
		if (i < len && !strchr(seps, name[i]))
			continue;
		const char *c = name + start;
		size_t n = i - start;
		if ((n == 2 && c[0] == '.' && c[1] == '.') ||
		    (strict && (n == 0 || (n == 1 && c[0] == '.'))))
			return true;
		start = i + 1;
	}
	return false;
}

/* True when name (without its trailing '/') is safe inside a job folder: not absolute, no NUL,
 * no "", "." or ".." component, and no ".." between backslashes either (a Windows escape). */
static bool name_is_safe(const char *name, size_t len)
{
	if (len == 0 || name[0] == '/' || name[0] == '\\' || memchr(name, '\0', len))
		return false;
	return !bad_component(name, len, "/", true) && !bad_component(name, len, "/\\", false);
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

#define BIG_SIZE 1u
#define BIG_CSIZE 2u
#define BIG_OFFSET 4u

/* The zip64 extended information: 8-byte values for the fields whose 32-bit ones are all ones,
 * in this order. Returns 0 or -EIO when the field is too short. */
static int zip64_extra(const unsigned char *d, size_t n, struct zip_member *m, unsigned big)
{
	size_t need = 8u * (!!(big & BIG_SIZE) + !!(big & BIG_CSIZE) + !!(big & BIG_OFFSET));
	if (n < need)
		return -EIO;
	if (big & BIG_SIZE)
		m->size = le64(d), d += 8;
	if (big & BIG_CSIZE)
		m->comp_size = le64(d), d += 8;
	if (big & BIG_OFFSET)
		m->local_offset = le64(d);
	return 0;
}

/* Applies the zip64 field and the mtime of the extended timestamp (0x5455), or else of the
 * Info-ZIP (0x5855) or PKWARE (0x000d) unix field. Returns 0 or -EIO. */
static int apply_extra(const unsigned char *x, size_t len, struct zip_member *m, unsigned big)
{
	bool have_ut = false;
	while (len >= 4) {
		uint16_t id = le16(x), n = le16(x + 2);
		const unsigned char *d = x + 4;
		if ((size_t)n + 4 > len)
			break;
		if (id == 0x0001 && zip64_extra(d, n, m, big))
			return -EIO;
		if (id == 0x5455 && n >= 5 && (d[0] & 1)) {
			m->mtime = (int32_t)le32(d + 1);
			have_ut = true;
		} else if ((id == 0x5855 || id == 0x000d) && n >= 8 && !have_ut) {
			m->mtime = (int32_t)le32(d + 4);
		}
		x += 4 + n;
		len -= 4u + n;
	}
	return 0;
}

static void set_type(const unsigned char *h, struct zip_member *m, bool slash)
{
	uint32_t ext = le32(h + CDH_EXT_ATTR);
	bool unix_host = (le16(h + CDH_MADE_BY) >> 8) == 3;
	uint32_t mode = unix_host ? ext >> 16 : 0;
	m->type = slash || (ext & 0x10) || S_ISDIR(mode) ? ZIP_DIR : ZIP_FILE;
	if (S_ISLNK(mode) && m->type == ZIP_FILE)
		m->type = ZIP_SYMLINK;
	m->mode = mode & 07777;
}

/* Fills m from the central directory header at h (whose lengths fit). Returns NULL, or why the
 * entry must be left out. */
static const char *fill_member(const unsigned char *h, struct zip_member *m, uint64_t cd_offset)
{
	size_t nl = le16(h + CDH_NAME_LEN), xl = le16(h + CDH_EXTRA_LEN);
	const char *name = (const char *)h + CDH_LEN;
	uint32_t csize = le32(h + CDH_CSIZE), usize = le32(h + CDH_USIZE);
	uint32_t off = le32(h + CDH_LFH_OFFSET);
	unsigned big = (usize == 0xffffffffu ? BIG_SIZE : 0) |
		       (csize == 0xffffffffu ? BIG_CSIZE : 0) |
		       (off == 0xffffffffu ? BIG_OFFSET : 0);
	bool slash = nl > 0 && name[nl - 1] == '/';
	*m = (struct zip_member){.name = name,
				 .base = name + nl - slash,
				 .crc32 = le32(h + CDH_CRC),
				 .method = le16(h + CDH_METHOD),
				 .encrypted = le16(h + CDH_FLAGS) & 1,
				 .size = usize,
				 .comp_size = csize,
				 .local_offset = off,
				 .mtime = dos_time(le16(h + CDH_TIME), le16(h + CDH_DATE)),
				 .first_child = NONE,
				 .next_sibling = NONE};
	if (apply_extra(h + CDH_LEN + nl, xl, m, big))
		return "its zip64 field is too short";
	set_type(h, m, slash);
	if (!name_is_safe(name, name_len(m)))
		return "unsafe name (absolute, NUL, or an empty, '.' or '..' component)";
	if (m->type == ZIP_DIR) {
		m->size = m->comp_size = 0;
		return NULL;
	}
	if (m->local_offset > cd_offset || m->comp_size > cd_offset - m->local_offset)
		return "its data lies outside the archive";
	return NULL;
}

/* Parses the entry at h (len bytes left in the central directory) into b->m[b->n]; *used gets
 * its length. Returns 0 (kept or left out) or -EIO when the directory itself is broken. */
static int parse_entry(struct build *b, const unsigned char *h, size_t len, uint32_t order,
		       size_t *used)
{
	if (len < CDH_LEN || le32(h) != CDH_SIG)
		return -EIO;
	size_t nl = le16(h + CDH_NAME_LEN), xl = le16(h + CDH_EXTRA_LEN);
	size_t cl = le16(h + CDH_COMMENT_LEN);
	if (CDH_LEN + nl + xl + cl > len)
		return -EIO;
	*used = CDH_LEN + nl + xl + cl;
	struct zip_member *m = &b->m[b->n];
	const char *why = fill_member(h, m, b->cd_offset);
	if (why) {
		reject(&b->rejected, (const char *)h + CDH_LEN, nl, why);
		return 0;
	}
	m->parent = order;
	b->n++;
	return 0;
}

static int parse_cd(struct build *b, const unsigned char *cd, const struct cd_loc *loc)
{
	size_t pos = 0;
	for (uint64_t i = 0; i < loc->entries; i++) {
		size_t used = 0;
		int err = parse_entry(b, cd + pos, (size_t)loc->size - pos, (uint32_t)i, &used);
		if (err)
			return err;
		pos += used;
	}
	return 0;
}

/* ---- building the index ---- */

static int byte_rank(char c)
{
	return c == '/' ? 0 : (unsigned char)c; /* names hold no NUL: '/' is below every byte */
}

/* Path order: strcmp, except that '/' sorts first, so a folder's subtree follows it at once. */
static int cmp_path(const char *a, size_t al, const char *b, size_t bl)
{
	size_t n = al < bl ? al : bl;
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return byte_rank(a[i]) - byte_rank(b[i]);
	return (al > bl) - (al < bl);
}

/* Path order, then the order in the central directory (kept in parent while building). */
static int cmp_building(const void *pa, const void *pb)
{
	const struct zip_member *a = pa, *b = pb;
	int c = cmp_path(a->name, name_len(a), b->name, name_len(b));
	return c ? c : (a->parent > b->parent) - (a->parent < b->parent);
}

static bool same_name(const struct zip_member *a, const struct zip_member *b)
{
	return name_len(a) == name_len(b) && !memcmp(a->name, b->name, name_len(a));
}

/* True when e lies under the folder named dir (len bytes; "" is the root). */
static bool is_under(const struct zip_member *e, const char *dir, size_t len)
{
	return len == 0 || (name_len(e) > len && e->name[len] == '/' && !memcmp(e->name, dir, len));
}

static void drop(struct build *b, struct zip_member *e, const char *why)
{
	reject(&b->rejected, e->name, name_len(e), why);
	e->first_child = DROPPED;
}

/* A file or symlink at i may not have anything under it. Whichever came first in the archive
 * stays: the file (everything under it goes) or what is under it (the file goes, and so do its
 * duplicates that are not folders). */
static void resolve_file(struct build *b, size_t i)
{
	struct zip_member *f = &b->m[i];
	size_t k = i + 1, j;
	uint32_t first = NONE;
	while (k < b->n && same_name(&b->m[k], f))
		k++;
	for (j = k; j < b->n && is_under(&b->m[j], f->name, name_len(f)); j++)
		first = b->m[j].parent < first ? b->m[j].parent : first;
	if (j > k && first < f->parent) {
		for (size_t x = i; x < k; x++)
			if (b->m[x].type != ZIP_DIR)
				drop(b, &b->m[x], "a folder of that name comes first");
		return;
	}
	for (size_t x = k; x < j; x++)
		if (b->m[x].first_child != DROPPED)
			drop(b, &b->m[x], "its folder is a file");
}

/* The entries of one name, on the stack of the names above the current one while superseded
 * entries are found. Archive orders (parent while building), -1 for none. */
struct group {
	size_t start, end;  /* the entries [start, end) of b->m */
	int64_t above;      /* the latest file or link named by a folder above this name */
	int64_t not_folder; /* the latest file or link of this name */
	int64_t under;      /* the latest entry anywhere under this name */
};

/* When the names under g are all seen: its last entry, a file or link, goes if a later entry
 * under it made it a folder again; what lies under g counts for the name above. */
static void close_group(struct build *b, const struct group *g, struct group *up)
{
	struct zip_member *last = &b->m[g->end - 1];
	if (last->type != ZIP_DIR && last->first_child != DROPPED && g->under > last->parent)
		drop(b, last, "a later entry under its name makes it a folder");
	int64_t latest = g->under > last->parent ? g->under : last->parent;
	if (up && latest > up->under)
		up->under = latest;
}

/* Unpacking in archive order, each entry replaces what its name held (tar -x, cpio -i): of one
 * name the last entry stays, a file or link takes everything before it under its name along,
 * and an entry under a file's name makes it a folder again. The sorted entries group by name,
 * each name's subtree right after it, so one pass with the stack of names above finds every
 * superseded entry. Afterwards no name repeats and no file has anything under it. */
static int drop_superseded(struct build *b)
{
	struct group *st = NULL;
	size_t n = 0, cap = 0;
	int err = 0;
	for (size_t i = 1, end; i < b->n && !err; i = end) {
		for (end = i + 1; end < b->n && same_name(&b->m[end], &b->m[i]);)
			end++;
		while (n > 0 && !is_under(&b->m[i], b->m[st[n - 1].start].name,
					  name_len(&b->m[st[n - 1].start]))) {
			close_group(b, &st[n - 1], n > 1 ? &st[n - 2] : NULL);
			n--;
		}
		struct group g = {i, end, -1, -1, -1};
		if (n > 0)
			g.above = st[n - 1].above > st[n - 1].not_folder ? st[n - 1].above
									 : st[n - 1].not_folder;
		for (size_t x = i; x < end; x++) {
			struct zip_member *e = &b->m[x];
			if (e->parent < g.above) {
				drop(b, e, "a later file or link replaces a folder above it");
			} else if (x + 1 < end) {
				char shown[SHOWN_MAX + 4];
				zipindex_shown_name(shown, e->name, name_len(e));
				log_msg(LOG_INFO,
					"archive member \"%s\" appears again: the last stays",
					shown);
				e->first_child = DROPPED;
			}
			if (e->type != ZIP_DIR)
				g.not_folder = e->parent; /* in archive order within a name */
		}
		err = array_grow((void **)&st, &cap, n + 1, sizeof(*st));
		if (!err)
			st[n++] = g;
	}
	for (; n > 0 && !err; n--)
		close_group(b, &st[n - 1], n > 1 ? &st[n - 2] : NULL);
	free(st);
	return err;
}

/* Sorts the entries, then leaves out duplicates and file/folder clashes: with last_wins as
 * drop_superseded says, else the first of a name stays and the earlier of a clash. */
static int drop_conflicts(struct build *b, bool last_wins)
{
	size_t w = 1;
	qsort(b->m + 1, b->n - 1, sizeof(*b->m), cmp_building);
	int err = last_wins ? drop_superseded(b) : 0;
	if (err)
		return err;
	for (size_t i = 1; i < b->n; i++) {
		struct zip_member *e = &b->m[i];
		if (e->first_child == DROPPED)
			continue;
		if (last_wins) { /* nothing left to resolve */
			b->m[w++] = *e;
			continue;
		}
		if (w > 1 && same_name(&b->m[w - 1], e)) {
			char shown[SHOWN_MAX + 4];
			zipindex_shown_name(shown, e->name, name_len(e));
			log_msg(LOG_INFO, "archive member \"%s\" appears again: the first stays",
				shown);
			continue;
		}
		if (e->type != ZIP_DIR)
			resolve_file(b, i);
		if (e->first_child != DROPPED)
			b->m[w++] = *e;
	}
	b->n = w;
	return 0;
}

struct span {
	const char *name;
	size_t len;
	size_t before; /* folders to make up: index in b->m of the entry they precede */
};

struct spans {
	struct span *v;
	size_t n, cap;
};

static int spans_push(struct spans *s, const char *name, size_t len, size_t before)
{
	int err = array_grow((void **)&s->v, &s->cap, s->n + 1, sizeof(*s->v));
	if (!err)
		s->v[s->n++] = (struct span){name, len, before};
	return err;
}

/* Lists the folders that are named by their children only, in path order. Walks the entries
 * with the stack of folders above the current one. */
static int find_missing(const struct build *b, struct spans *missing)
{
	struct spans up = {0};
	int err = 0;
	for (size_t i = 1; i < b->n && !err; i++) {
		const struct zip_member *e = &b->m[i];
		while (up.n > 0 && !is_under(e, up.v[up.n - 1].name, up.v[up.n - 1].len))
			up.n--;
		for (size_t k = up.n ? up.v[up.n - 1].len + 1 : 0; k < name_len(e) && !err; k++) {
			if (e->name[k] != '/')
				continue;
			err = spans_push(&up, e->name, k, 0);
			if (!err)
				err = spans_push(missing, e->name, k, i);
		}
		if (!err && e->type == ZIP_DIR)
			err = spans_push(&up, e->name, name_len(e), 0);
	}
	free(up.v);
	return err;
}

/* Inserts the missing folders before the entries they precede, merging from the back. */
static int add_folders(struct build *b)
{
	struct spans s = {0};
	int err = find_missing(b, &s);
	size_t total = b->n + s.n;
	if (!err && total >= DROPPED)
		err = -EIO;
	if (!err && total > b->cap) { /* exactly: the array is the index's largest part */
		struct zip_member *m = realloc(b->m, total * sizeof(*b->m));
		err = m ? 0 : -ENOMEM;
		b->m = m ? m : b->m;
		b->cap = m ? total : b->cap;
	}
	size_t w = total, k = s.n;
	for (size_t i = b->n; !err && i-- > 1;) {
		b->m[--w] = b->m[i];
		while (k > 0 && s.v[k - 1].before == i) {
			const struct span *f = &s.v[--k];
			b->m[--w] = (struct zip_member){.name = f->name,
							.base = f->name + f->len,
							.type = ZIP_DIR,
							.synthetic = true,
							.first_child = NONE,
							.next_sibling = NONE};
		}
	}
	assert(err || w == 1);
	if (!err)
		b->n = total;
	free(s.v);
	return err;
}

struct level {
	uint32_t idx, last_child;
};

/* Sets parent, first_child and next_sibling, walking the pre-order with a stack of folders. */
static int link_tree(struct build *b)
{
	struct level *up = NULL;
	size_t depth = 0, cap = 0;
	int err = array_grow((void **)&up, &cap, 1, sizeof(*up));
	if (!err)
		up[depth++] = (struct level){0, NONE};
	for (uint32_t i = 1; !err && i < b->n; i++) {
		struct zip_member *e = &b->m[i];
		while (depth > 1 && !is_under(e, b->m[up[depth - 1].idx].name,
					      name_len(&b->m[up[depth - 1].idx])))
			depth--;
		struct level *p = &up[depth - 1];
		e->parent = p->idx;
		if (p->last_child == NONE)
			b->m[p->idx].first_child = i;
		else
			b->m[p->last_child].next_sibling = i;
		p->last_child = i;
		if (e->type == ZIP_DIR)
			err = array_grow((void **)&up, &cap, depth + 1, sizeof(*up));
		if (!err && e->type == ZIP_DIR)
			up[depth++] = (struct level){i, NONE};
	}
	free(up);
	return err;
}

static size_t names_total(const struct build *b)
{
	size_t total = 0;
	for (size_t i = 0; i < b->n; i++)
		total += name_len(&b->m[i]) + 1;
	return total;
}

/* Moves every name into one arena of total bytes; names and bases then point into it. */
static int copy_names(struct build *b, struct zipindex *zi, size_t total)
{
	char *a = malloc(total);
	if (!a)
		return -ENOMEM;
	zi->arena = a;
	zi->arena_len = total;
	for (size_t i = 0; i < b->n; i++) {
		struct zip_member *m = &b->m[i];
		size_t len = name_len(m);
		memcpy(a, m->name, len);
		a[len] = '\0';
		m->name = a;
		m->base = strrchr(a, '/') ? strrchr(a, '/') + 1 : a;
		a += len + 1;
	}
	return 0;
}

/* Sorts b's entries into a tree (duplicates and clashes left out, folders made up) and moves it
 * into zi. Frees b->m on failure. The tree and its names are taken from the memory budget before
 * the names are copied: a made-up folder's name is its whole path, so deep names cost memory
 * quadratic in their depth (a 262 KB zip wanted 2 GB) and must be refused before, not after. */
static int finish_index(struct build *b, struct zipindex *zi, bool last_wins)
{
	int err = drop_conflicts(b, last_wins);
	if (!err)
		err = add_folders(b);
	if (!err)
		err = link_tree(b);
	size_t total = err ? 0 : names_total(b);
	size_t charge = total + b->n * sizeof(*b->m);
	if (!err)
		err = membudget_take(charge, "the archive's index");
	if (!err) {
		err = copy_names(b, zi, total);
		if (err)
			membudget_give(charge);
		else
			zi->charged = charge;
	}
	if (err) {
		free(b->m);
		return err;
	}
	struct zip_member *fit = realloc(b->m, b->n * sizeof(*b->m)); /* give back the left-out */
	zi->m = fit ? fit : b->m;
	zi->n = b->n;
	zi->rejected = b->rejected;
	zi->cd_offset = b->cd_offset;
	return 0;
}

static int start_build(struct build *b, size_t entries)
{
	*b = (struct build){.cap = entries + 1};
	b->m = malloc(b->cap * sizeof(*b->m));
	if (!b->m)
		return -ENOMEM;
	b->m[0] = (struct zip_member){.name = "",
				      .base = "",
				      .type = ZIP_DIR,
				      .synthetic = true,
				      .first_child = NONE,
				      .next_sibling = NONE};
	b->n = 1;
	return 0;
}

/* Builds the index from the central directory's bytes; they may go once it returns. */
static int build_index(const unsigned char *cd, const struct cd_loc *loc, struct zipindex *zi)
{
	struct build b;
	int err = start_build(&b, (size_t)loc->entries);
	if (err)
		return err;
	b.cd_offset = loc->offset;
	err = parse_cd(&b, cd, loc);
	if (err) {
		free(b.m);
		return err;
	}
	return finish_index(&b, zi, false); /* the central directory's first of a name stays */
}

int zipindex_from_members(const struct zip_member *in, size_t n, bool last_wins,
			  struct zipindex **out)
{
	struct build b;
	struct zipindex *zi = NULL;
	*out = NULL;
	int err = n >= MAX_ENTRIES ? -EFBIG : start_build(&b, n);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		const struct zip_member *e = &in[i];
		struct zip_member *m = &b.m[b.n];
		*m = (struct zip_member){.name = e->name,
					 .base = e->base,
					 .type = e->type,
					 .mode = e->mode & 07777,
					 .mtime = e->mtime,
					 .size = e->size,
					 .comp_size = e->size,
					 .local_offset = e->local_offset,
					 .parent = (uint32_t)i,
					 .first_child = NONE,
					 .next_sibling = NONE};
		if (name_is_safe(m->name, name_len(m)))
			b.n++;
		else
			reject(&b.rejected, m->name, name_len(m),
			       "unsafe name (absolute, NUL, or an empty, '.' or '..' component)");
	}
	zi = calloc(1, sizeof(*zi));
	err = zi ? finish_index(&b, zi, last_wins) : -ENOMEM;
	if (err) {
		if (!zi)
			free(b.m);
		free(zi);
		return err;
	}
	*out = zi;
	return 0;
}

int zipindex_load(uint64_t archive_size, zip_read_fn rd, void *ctx, struct zipindex **out)
{
	struct cd_loc loc;
	struct zipindex *zi = NULL;
	unsigned char *cd = NULL;
	*out = NULL;
	int err = archive_size < EOCD_LEN ? -EIO : locate_cd(archive_size, rd, ctx, &loc);
	if (!err && loc.size > SIZE_MAX - 1)
		err = -EFBIG;
	if (!err) {
		zi = calloc(1, sizeof(*zi));
		cd = malloc(loc.size ? (size_t)loc.size : 1);
		ssize_t n = !zi || !cd ? -ENOMEM
			    : loc.size ? rd(ctx, cd, (size_t)loc.size, loc.offset)
				       : 0;
		err = n < 0 ? (int)n : build_index(cd, &loc, zi);
		free(cd);
	}
	if (err) {
		zipindex_free(zi);
		if (err == -EIO) /* the one error line is the operation's */
			log_set_reason(
				"the archive is not a readable zip (central directory broken)");
		return err;
	}
	*out = zi;
	return 0;
}

ssize_t zip_buffer_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct zip_buffer *zb = ctx;
	if (off > zb->len || len > zb->len - off)
		return -EIO;
	memcpy(buf, (const unsigned char *)zb->p + off, len);
	return (ssize_t)len;
}

int zipindex_load_buffer(const void *buf, size_t len, struct zipindex **out)
{
	struct zip_buffer zb = {buf, len};
	return zipindex_load(len, zip_buffer_read, &zb, out);
}

void zipindex_free(struct zipindex *zi)
{
	if (!zi)
		return;
	membudget_give(zi->charged);
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
	size_t len = strlen(path), lo = 0, hi = zi->n;
	while (len > 0 && path[len - 1] == '/')
		len--;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_path(zi->m[mid].name, strlen(zi->m[mid].name), path, len);
		if (c == 0)
			return &zi->m[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Path order of name against dir's name joined with comp by a '/' (comp alone under the root). */
static int cmp_child(const char *name, const char *dir, size_t dl, const char *comp, size_t cl)
{
	size_t sep = dl ? 1 : 0, total = dl + sep + cl, al = strlen(name);
	for (size_t i = 0; i < al && i < total; i++) {
		char b = i < dl ? dir[i] : i < dl + sep ? '/' : comp[i - dl - sep];
		if (name[i] != b)
			return byte_rank(name[i]) - byte_rank(b);
	}
	return (al > total) - (al < total);
}

const struct zip_member *zipindex_child(const struct zipindex *zi, const struct zip_member *dir,
					const char *comp, size_t cl)
{
	size_t dl = strlen(dir->name), lo = 0, hi = zi->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_child(zi->m[mid].name, dir->name, dl, comp, cl);
		if (c == 0)
			return &zi->m[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

size_t zipindex_rejected(const struct zipindex *zi)
{
	return zi->rejected;
}

uint64_t zipindex_cd_offset(const struct zipindex *zi)
{
	return zi->cd_offset;
}

size_t zipindex_memory_bytes(const struct zipindex *zi)
{
	return sizeof(*zi) + zi->n * sizeof(*zi->m) + zi->arena_len;
}

/* unpack: one streaming pass of libarchive over an archive member, giving a zipindex of its
 * entries and the "unpacked blob" of its files' contents (see unpack.h).
 *
 * Invariants of the pass: the blob is written front to back without holes (sparse files get
 * their zeros written); every byte libarchive hands over, kept or not, counts against the budget,
 * and so does every byte its filters decompress, so a bomb stops at max_bytes whatever shape it
 * has (unpack_i.h: the meter); any error of libarchive, rd or wr fails the whole pass, and so
 * does a checksum libarchive finds wrong at an entry's end (a warning to libarchive), except an
 * entry libarchive cannot decode alone (encrypted, unknown method), which is left out. The
 * layers of compression come off in unpackstream.c, which checks their trailers. Names live in
 * one growing arena as offsets until the pass ends, so no pointer into it moves. A reader
 * that is interrupted (intr.h) stops the pass between two blocks with -EINTR. */
#include "artifactfs/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/grow.h"
#include "artifactfs/intr.h"
#include "artifactfs/log.h"
#include "artifactfs/membudget.h"
#include "artifactfs/sevenzhdr.h"
#include "unpack_i.h"

#define ZEROS_CHUNK 4096u
#define NO_LINK SIZE_MAX
#define FILE_FORMAT_ERRNO EILSEQ /* ARCHIVE_ERRNO_FILE_FORMAT (archive_platform.h, Linux) */

struct unpacked {
	struct zipindex *zi;
	char *links; /* link texts, each NUL-terminated; a symlink member's local_offset points here */
	size_t links_len;
	uint64_t blob_size;
	size_t rejected;
	size_t charged; /* the link texts' share of the memory budget, given back at free */
};

/* One archive entry while the pass runs; the name is an offset into scan.names. */
struct item {
	struct zip_member m;
	size_t name_off, name_len;
	size_t hard_off; /* a hard link's target name, an offset in links, or NO_LINK */
	bool hardlink;   /* a hard link without data: its content is its target's */
};

struct scan {
	struct archive *a;
	struct ustream *us; /* the member's bytes, layers of compression taken off */
	struct meter meter; /* holds the limits */
	unpack_write_fn wr;
	void *wctx;
	struct item *v;
	size_t n, cap;
	char *names, *links;
	size_t names_len, names_cap, links_len, links_cap;
	uint64_t blob_pos; /* bytes written to the blob */
	uint64_t produced; /* bytes libarchive handed over, kept or not */
	size_t entries;    /* entries read, kept or not */
	size_t rejected;
	size_t charged; /* taken from the mount's memory budget for v, names and links */
	int err;        /* sticky -errno of our own (budget, wr, memory) */
	bool summing;   /* the entry's data is summed: cpio's crc format */
	uint32_t sum;   /* of the entry's data bytes so far, modulo 2^32 */
};

/* ---- setting up libarchive ---- */

/* Every real archive format: not raw or empty (any file would be one), not mtree (it opens
 * files named by the archive on the local disk), not warc (web captures, not archives). */
static int (*const formats[])(struct archive *) = {
	archive_read_support_format_tar,  archive_read_support_format_zip,
	archive_read_support_format_7zip, archive_read_support_format_cpio,
	archive_read_support_format_ar,   archive_read_support_format_iso9660,
	archive_read_support_format_xar,  archive_read_support_format_cab,
	archive_read_support_format_lha,  archive_read_support_format_rar,
	archive_read_support_format_rar5,
};

/* The formats only: every layer of compression comes off in unpackstream.c. 7z only when its
 * header was scanned first (sevenz_charge): straight from the member, never under a layer of
 * compression, where libarchive could not seek back from its header to its data anyway. */
static int enable_formats(struct archive *a, bool sevenz)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(*formats); i++)
		if ((sevenz || formats[i] != archive_read_support_format_7zip) &&
		    formats[i](a) != ARCHIVE_OK)
			return -ENOMEM;
	return 0;
}

static const char *shown(const struct scan *s)
{
	return s->meter.lim.name ? s->meter.lim.name : "";
}

static int archive_ret_to_errno(struct scan *s, int ret)
{
	if (ret >= ARCHIVE_WARN)
		return 0;
	if (s->err || ustream_error(s->us))
		return s->err ? s->err : ustream_error(s->us);
	const char *why = archive_error_string(s->a);
	log_msg(LOG_WARNING, "nested archive \"%s\" damaged: %s", shown(s),
		why ? why : "no reason given");
	return -EIO;
}

/* Whether libarchive failed because no format knows these bytes (bidding happens in open or
 * in the first header read), as opposed to a format failing on damaged bytes. */
static bool not_an_archive(struct scan *s, int ret)
{
	if (ret >= ARCHIVE_WARN || ustream_error(s->us) || archive_format(s->a) != 0 ||
	    archive_errno(s->a) != FILE_FORMAT_ERRNO)
		return false;
	log_msg(LOG_DEBUG, "nested: not an archive: %s", archive_error_string(s->a));
	return true;
}

/* libarchive's 7z reader allocates what its header's counts declare before it checks them
 * (99,000,000 files in 56 bytes: gigabytes). So a 7z's header is scanned first (sevenzhdr.h)
 * and what the reader will allocate is taken from the memory budget for the whole pass, or the
 * pass is refused: -EFBIG over the entry limit, -EIO damaged or a header coded in a way not
 * scanned, -ENOMEM over the budget. 0 for anything that is not a 7z. */
static int sevenz_take(void *ctx, uint64_t bytes)
{
	struct scan *s = ctx;
	int err = membudget_take(bytes, "the 7z archive's header, to scan it");
	s->charged += err ? 0 : bytes;
	return err;
}

static int sevenz_charge(struct scan *s, uint64_t size, zip_read_fn rd, void *rctx)
{
	struct sevenz_limits lim = {.max_header_bytes = membudget_limit() / 4,
				    .max_count = s->meter.lim.max_entries,
				    .take = sevenz_take,
				    .take_ctx = s};
	struct sevenz_header h;
	char what[200];
	size_t scanned = s->charged;
	int err = sevenz_header_scan(size, rd, rctx, &lim, &h);
	scanned = s->charged - scanned; /* the scan's buffers: within h.alloc_bytes */
	if (err == 1)
		return 0;
	if (err == -EFBIG || err == -EIO || err == -ENOTSUP) {
		log_msg(LOG_WARNING, "nested 7z archive \"%s\" left unread: %s", shown(s), h.why);
		return err == -EFBIG ? -EFBIG : -EIO;
	}
	snprintf(what, sizeof(what),
		 "the 7z archive's header (%llu files, %llu folders, %llu streams, %llu bytes)",
		 (unsigned long long)h.files, (unsigned long long)h.folders,
		 (unsigned long long)h.unpack_streams, (unsigned long long)h.header_bytes);
	uint64_t more = h.alloc_bytes > scanned ? h.alloc_bytes - scanned : 0;
	err = err ? err : membudget_take(more, what);
	if (err == -ENOMEM)
		log_msg(LOG_WARNING, "nested 7z archive \"%s\" left unread: %s", shown(s),
			log_reason());
	if (!err)
		s->charged += more;
	return err;
}

static int open_archive(struct scan *s, uint64_t size, zip_read_fn rd, void *rctx)
{
	int err = ustream_open(&s->meter, size, rd, rctx, &s->us);
	bool layered = !err && ustream_layered(s->us);
	if (!err && !layered)
		err = sevenz_charge(s, size, rd, rctx);
	if (err)
		return err;
	s->a = archive_read_new();
	if (!s->a || enable_formats(s->a, !layered))
		return -ENOMEM;
	int ret = ustream_open_archive(s->us, s->a);
	return not_an_archive(s, ret) ? -ENOENT : archive_ret_to_errno(s, ret);
}

/* ---- the blob and the budget ---- */

/* The largest count of unpacked bytes (what libarchive handed over, the blob, what the formats
 * read from the stream) with more bytes to come, held to the budget. */
static int over_budget(struct scan *s, uint64_t more)
{
	int64_t stream = archive_filter_bytes(s->a, 0);
	uint64_t n = s->produced > s->blob_pos ? s->produced : s->blob_pos;
	n = n + more;
	return meter_check(&s->meter, stream > 0 && (uint64_t)stream > n ? (uint64_t)stream : n);
}

static int blob_write(struct scan *s, const void *buf, size_t len)
{
	int err = s->wr(s->wctx, buf, len, s->blob_pos);
	if (!err)
		s->blob_pos += len;
	return err;
}

/* Writes zeros up to the entry's offset off (a hole of a sparse file). */
static int fill_hole(struct scan *s, uint64_t start, uint64_t off)
{
	static const unsigned char zeros[ZEROS_CHUNK];
	int err = 0;
	while (!err && s->blob_pos - start < off) {
		uint64_t gap = off - (s->blob_pos - start);
		size_t n = gap < sizeof(zeros) ? (size_t)gap : sizeof(zeros);
		err = over_budget(s, n);
		if (!err)
			err = blob_write(s, zeros, n);
	}
	return err;
}

/* ---- one entry ---- */

/* Puts a piece of the current entry at offset off of the entry: zeros for a hole before it, then
 * the piece. Pieces come in order; the end comes as len 0 at the entry's size (or at any offset
 * already passed, as some formats give). */
static int take_piece(struct scan *s, bool keep, uint64_t start, const void *buf, size_t len,
		      la_int64_t off)
{
	if (intr_pending()) /* a pass over cached bytes never meets http's checks */
		return -EINTR;
	int err = over_budget(s, len);
	s->produced += len;
	for (size_t i = 0; s->summing && i < len; i++)
		s->sum += ((const unsigned char *)buf)[i];
	if (err || !keep)
		return err;
	if (off < 0 || (len > 0 && (uint64_t)off < s->blob_pos - start)) {
		log_msg(LOG_WARNING, "nested archive damaged: an entry's pieces overlap");
		return -EIO;
	}
	err = fill_hole(s, start, (uint64_t)off);
	return err || len == 0 ? err : blob_write(s, buf, len);
}

/* Whether libarchive's failure on an entry's data is a checksum that does not match: a warning
 * (zip, 7z, lha: the data was handed over, wrong), or a failure naming the checksum (rar, rar5,
 * cab), unlike an entry it cannot decode (encrypted, an unknown method). */
static bool bad_checksum(struct scan *s, int ret)
{
	const char *why = archive_error_string(s->a);
	return ret == ARCHIVE_WARN || (ret == ARCHIVE_FAILED && why &&
				       (strcasestr(why, "crc") || strcasestr(why, "checksum")));
}

/* cpio's crc format ("070702", cpio -H crc) keeps in each header the sum of the entry's data
 * bytes, which libarchive reads and drops: its 8 hex digits at offset 102 of the header, read
 * back from the stream. Returns 0 and *want, or -EIO with a log line. */
static int cpio_sum(struct scan *s, const char *name, uint32_t *want)
{
	char hex[9] = {0}, *end;
	int64_t at = archive_read_header_position(s->a);
	int err = at < 0 ? -EIO : ustream_header_bytes(s->us, (uint64_t)at + 102, hex, 8);
	unsigned long v = err ? 0 : strtoul(hex, &end, 16);
	if (!err && end == hex + 8) {
		*want = (uint32_t)v;
		return 0;
	}
	log_msg(LOG_WARNING,
		"nested archive \"%s\" damaged: entry \"%.200s\": its cpio checksum "
		"cannot be read",
		shown(s), name);
	return -EIO;
}

/* Reads the current entry's data: into the blob when keep, else only counted. Returns 0,
 * 1 when libarchive cannot decode this entry alone (left out), or -errno. */
static int read_data(struct scan *s, const char *name, bool keep, uint64_t *size)
{
	uint32_t want = 0;
	s->summing = archive_format(s->a) == ARCHIVE_FORMAT_CPIO_SVR4_CRC;
	s->sum = 0;
	int sum_err = s->summing ? cpio_sum(s, name, &want) : 0;
	if (sum_err)
		return sum_err;
	uint64_t start = s->blob_pos;
	const void *buf;
	size_t len;
	la_int64_t off;
	int ret, err = 0;
	do {
		ret = archive_read_data_block(s->a, &buf, &len, &off);
		if (ret == ARCHIVE_OK || ret == ARCHIVE_EOF)
			err = take_piece(s, keep, start, buf, ret == ARCHIVE_EOF ? 0 : len, off);
	} while (!err && ret == ARCHIVE_OK);
	*size = s->blob_pos - start;
	if (!err && ret == ARCHIVE_EOF && s->summing && s->sum != want) {
		log_msg(LOG_WARNING,
			"nested archive \"%s\" damaged: entry \"%.200s\": cpio checksum %08x, "
			"should be %08x",
			shown(s), name, s->sum, want);
		return -EIO;
	}
	if (err || ret == ARCHIVE_EOF)
		return err;
	if (ret == ARCHIVE_FATAL || ustream_error(s->us))
		return archive_ret_to_errno(s, ARCHIVE_FATAL);
	if (bad_checksum(s, ret)) {
		log_msg(LOG_WARNING, "nested archive \"%s\" damaged: entry \"%.200s\": %s",
			shown(s), name, archive_error_string(s->a));
		return -EIO;
	}
	return 1;
}

static void left_out(struct scan *s, const char *name, const char *why)
{
	log_msg(LOG_WARNING, "nested archive entry \"%.200s\" left out: %s", name, why);
	s->rejected++;
}

/* Strips leading "./" (and a lone "."), and one trailing '/'. Returns the length. */
static size_t clean_name(const char **name, bool *slash)
{
	const char *p = *name;
	while (p[0] == '.' && p[1] == '/')
		for (p += 2; *p == '/';)
			p++;
	if (p[0] == '.' && p[1] == '\0')
		p++;
	size_t len = strlen(p);
	*slash = len > 0 && p[len - 1] == '/';
	*name = p;
	return len - *slash;
}

static int append(char **arena, size_t *len, size_t *cap, const char *p, size_t n, size_t *off)
{
	int err = array_grow((void **)arena, cap, *len + n + 1, 1);
	if (err)
		return err;
	memcpy(*arena + *len, p, n);
	(*arena)[*len + n] = '\0';
	*off = *len;
	*len += n + 1;
	return 0;
}

/* Takes what one more entry's name or link text costs from the mount's memory budget: a small
 * tar.gz of 100,000 long names would otherwise hold hundreds of MiB while the pass runs. */
static int charge(struct scan *s, size_t bytes)
{
	int err = membudget_take(bytes, "the nested archive's list of names");
	if (!err)
		s->charged += bytes;
	return err;
}

static const char *keep_link(struct scan *s, const char *link, size_t *off)
{
	size_t len = strlen(link);
	if (len > s->meter.lim.max_name)
		return "its link target is too long";
	if ((s->err = charge(s, len + 1)))
		return "over the memory budget";
	if ((s->err = append(&s->links, &s->links_len, &s->links_cap, link, len, off)))
		return "out of memory";
	return NULL;
}

/* Sets type and link texts of it from e. Returns NULL, or why it is left out. A hard link
 * with data of its own is a file that may also give its data to its target (see
 * resolve_hardlinks). */
static const char *classify(struct scan *s, struct archive_entry *e, struct item *it, bool slash)
{
	const char *hard = archive_entry_hardlink(e), *sym = archive_entry_symlink(e), *why;
	mode_t type = archive_entry_filetype(e);
	if (hard) {
		bool dir;
		clean_name(&hard, &dir);
		if ((why = keep_link(s, hard, &it->hard_off)))
			return why;
		it->hardlink = !(archive_entry_size_is_set(e) && archive_entry_size(e) > 0);
		if (it->hardlink)
			return NULL;
	}
	if (type == AE_IFLNK && sym) {
		it->m.type = ZIP_SYMLINK;
		it->m.size = strlen(sym);
		return keep_link(s, sym, &it->m.local_offset);
	}
	if (type == AE_IFDIR || (slash && type == AE_IFREG))
		it->m.type = ZIP_DIR;
	else if (type != AE_IFREG)
		return "not a file, folder or symbolic link";
	return NULL;
}

/* Adds the entry e (whose data is next) to the scan and reads its data. */
static int add_entry(struct scan *s, struct archive_entry *e)
{
	const char *name = archive_entry_pathname(e), *why = NULL;
	bool slash = false;
	size_t len = 0;
	if (name) {
		len = clean_name(&name, &slash);
	} else {
		why = "its name is not UTF-8 text";
		name = "?";
	}
	struct item it = {.m = {.mode = archive_entry_perm(e), .mtime = archive_entry_mtime(e)},
			  .hard_off = NO_LINK};
	if (len > s->meter.lim.max_name)
		why = "its name is too long";
	if (!why && len > 0)
		why = classify(s, e, &it, slash);
	if (s->err)
		return s->err;
	bool keep = !why && len > 0 && it.m.type == ZIP_FILE && !it.hardlink;
	uint64_t size = 0;
	int err = read_data(s, name, keep, &size);
	if (err < 0)
		return err;
	if (err > 0) /* encrypted, or a method libarchive lacks */
		why = archive_error_string(s->a) ? archive_error_string(s->a) : "cannot be decoded";
	if (why || len == 0) {
		if (why)
			left_out(s, name, why);
		return 0;
	}
	if (keep) {
		it.m.local_offset = s->blob_pos - size;
		it.m.size = size;
	}
	it.name_len = len;
	err = charge(s, sizeof(*s->v) + sizeof(struct zip_member) + len + 1);
	if (!err)
		err = array_grow((void **)&s->v, &s->cap, s->n + 1, sizeof(*s->v));
	if (!err)
		err = append(&s->names, &s->names_len, &s->names_cap, name, len, &it.name_off);
	if (!err)
		s->v[s->n++] = it;
	return err;
}

static int scan_entries(struct scan *s)
{
	struct archive_entry *e;
	int ret, err = 0;
	while (!err && (ret = archive_read_next_header(s->a, &e)) != ARCHIVE_EOF) {
		if (s->entries == 0 && not_an_archive(s, ret))
			return -ENOENT;
		err = intr_pending() ? -EINTR : archive_ret_to_errno(s, ret);
		if (!err && ++s->entries > s->meter.lim.max_entries) {
			log_msg(LOG_WARNING,
				"nested archive has more than %zu entries: left unread",
				s->meter.lim.max_entries);
			err = -EFBIG;
		}
		if (!err)
			err = over_budget(s, 0);
		if (!err)
			err = add_entry(s, e);
	}
	return err;
}

/* ---- building the index ---- */

static int cmp_names(const void *pa, const void *pb, void *arg)
{
	const struct item *a = *(struct item *const *)pa, *b = *(struct item *const *)pb;
	const char *names = arg;
	int c = strcmp(names + a->name_off, names + b->name_off);
	return c ? c : (a > b) - (a < b);
}

/* The file named target that came last before the entry at (archive order as in s->v: tar -x
 * links to the copy the name holds then), among the sorted files; else the earliest after it;
 * else NULL. */
static struct item *find_file(struct item **files, size_t n, const char *names, const char *target,
			      const struct item *at)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(names + files[mid]->name_off, target);
		if (c < 0 || (c == 0 && files[mid] < at))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0 && !strcmp(names + files[lo - 1]->name_off, target))
		return files[lo - 1];
	return lo < n && !strcmp(names + files[lo]->name_off, target) ? files[lo] : NULL;
}

/* cpio (newc) stores a hard-linked file's data with its last name only, naming an earlier one
 * as its link: that earlier one, empty so far, gets the data too. */
static void feed_targets(struct scan *s, struct item **files, size_t nf)
{
	for (size_t i = 0; i < s->n; i++) {
		struct item *it = &s->v[i];
		if (it->hard_off == NO_LINK || it->hardlink || it->m.type != ZIP_FILE)
			continue;
		struct item *f = find_file(files, nf, s->names, s->links + it->hard_off, it);
		if (f && f->m.size == 0) {
			f->m.local_offset = it->m.local_offset;
			f->m.size = it->m.size;
		}
	}
}

/* Gives each hard link without data its target's blob range; links to nothing kept are left
 * out. */
static int resolve_hardlinks(struct scan *s)
{
	struct item **files = malloc((s->n ? s->n : 1) * sizeof(*files));
	size_t nf = 0, w = 0;
	if (!files)
		return -ENOMEM;
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].m.type == ZIP_FILE && !s->v[i].hardlink)
			files[nf++] = &s->v[i];
	qsort_r(files, nf, sizeof(*files), cmp_names, s->names);
	feed_targets(s, files, nf);
	for (size_t i = 0; i < s->n; i++) {
		struct item *it = &s->v[i];
		const struct item *f =
			it->hardlink ? find_file(files, nf, s->names, s->links + it->hard_off, it)
				     : NULL;
		if (f) {
			it->m.local_offset = f->m.local_offset;
			it->m.size = f->m.size;
			it->hardlink = false;
		}
	}
	free(files); /* it points into v[], which compacts now */
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].hardlink)
			left_out(s, s->names + s->v[i].name_off, "a hard link to nothing kept");
		else
			s->v[w++] = s->v[i];
	s->n = w;
	return 0;
}

/* Hands the items to zipindex_from_members(); keeps the link targets. */
static int build(struct scan *s, struct unpacked *n)
{
	int err = resolve_hardlinks(s);
	struct zip_member *m = err ? NULL : malloc((s->n ? s->n : 1) * sizeof(*m));
	if (!m)
		return err ? err : -ENOMEM;
	for (size_t i = 0; i < s->n; i++) {
		m[i] = s->v[i].m;
		m[i].name = s->names + s->v[i].name_off;
		m[i].base = m[i].name + s->v[i].name_len;
	}
	/* tar, cpio, ar and the rest unpack front to back, a later entry replacing an earlier one
	 * of its name ("tar -rf" appends a newer copy); a zip's central directory is its index,
	 * whose first entry of a name stays, as in the artifacts zip itself (zipindex.h) */
	bool last_wins = (archive_format(s->a) & ARCHIVE_FORMAT_BASE_MASK) != ARCHIVE_FORMAT_ZIP;
	err = zipindex_from_members(m, s->n, last_wins, &n->zi);
	free(m);
	if (err)
		return err;
	n->links = s->links;
	n->links_len = s->links_len;
	n->charged = s->links_len; /* each text was charged its length + 1, as append() stores it */
	s->charged -= s->links_len;
	s->links = NULL;
	n->blob_size = s->blob_pos;
	n->rejected = s->rejected + zipindex_rejected(n->zi);
	return 0;
}

static void scan_release(struct scan *s)
{
	if (s->a)
		archive_read_free(s->a);
	ustream_free(s->us);
	free(s->v);
	free(s->names);
	free(s->links);
	membudget_give(s->charged);
}

static void set_defaults(struct unpack_limits *l)
{
	l->floor_bytes = l->floor_bytes ? l->floor_bytes : UNPACK_FLOOR_BYTES;
	l->ratio = l->ratio ? l->ratio : UNPACK_RATIO;
	l->max_entries = l->max_entries ? l->max_entries : UNPACK_MAX_ENTRIES;
	l->max_name = l->max_name ? l->max_name : UNPACK_MAX_NAME;
}

int unpack_archive(uint64_t size, zip_read_fn rd, void *rctx, unpack_write_fn wr, void *wctx,
		   const struct unpack_limits *lim, struct unpacked **out)
{
	struct scan s = {.wr = wr, .wctx = wctx, .meter = {.lim = *lim}};
	struct unpacked *n = calloc(1, sizeof(*n));
	/* Names come out of libarchive in the thread's locale: UTF-8, not the daemon's "C", where
	 * a 7z or pax name outside ASCII would have no text at all. */
	locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	locale_t was = utf8 ? uselocale(utf8) : (locale_t)0;
	*out = NULL;
	set_defaults(&s.meter.lim);
	int err = n ? open_archive(&s, size, rd, rctx) : -ENOMEM;
	if (!err)
		err = scan_entries(&s);
	if (!err) /* the layers' trailers, after the format's end */
		err = ustream_finish(s.us);
	if (!err)
		err = build(&s, n);
	scan_release(&s);
	if (utf8) {
		uselocale(was);
		freelocale(utf8);
	}
	if (err) {
		unpack_free(n);
		return err;
	}
	*out = n;
	return 0;
}

void unpack_free(struct unpacked *n)
{
	if (!n)
		return;
	zipindex_free(n->zi);
	free(n->links);
	membudget_give(n->charged);
	free(n);
}

const struct zipindex *unpack_zipindex(const struct unpacked *n)
{
	return n->zi;
}

const char *unpack_link_target(const struct unpacked *n, const struct zip_member *m)
{
	return m->type == ZIP_SYMLINK ? n->links + m->local_offset : NULL;
}

uint64_t unpack_blob_size(const struct unpacked *n)
{
	return n->blob_size;
}

size_t unpack_rejected(const struct unpacked *n)
{
	return n->rejected;
}

size_t unpack_memory_bytes(const struct unpacked *n)
{
	return sizeof(*n) + zipindex_memory_bytes(n->zi) + n->links_len;
}

int unpack_mem_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct unpack_mem *m = ctx;
	if (off > SIZE_MAX - len)
		return -EFBIG;
	int err = array_grow((void **)&m->p, &m->cap, (size_t)off + len, 1);
	if (err)
		return err;
	memcpy(m->p + off, buf, len);
	m->len = (size_t)off + len > m->len ? (size_t)off + len : m->len;
	return 0;
}

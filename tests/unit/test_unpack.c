/* Unit tests of the nested-archive index: archives made at test time by the system's own tools
 * (tar with every compression, zip, 7z, cpio, ar, a .deb) from one folder, every file compared
 * with the original bytes; and, through libarchive's writer, what sane tools do not make:
 * hostile names, bombs, truncation. */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artifactfs/log.h"
#include "artifactfs/membudget.h"
#include "artifactfs/unpack.h"
#include "artifactfs/tree.h"

#define MTIME 1600000000
#define BIG_LEN (300u * 1024u)

static char dir[64]; /* the test's scratch folder, holding tree/ and the archives */

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	char full[1200];
	snprintf(full, sizeof(full), "cd %s && (%s) >/dev/null 2>&1", dir, cmd);
	cr_assert_eq(system(full), 0, "failed: %s", cmd);
}

static void put(const char *path, const void *p, size_t len, mode_t mode)
{
	char full[256];
	snprintf(full, sizeof(full), "%s/tree/%s", dir, path);
	FILE *f = fopen(full, "wb");
	cr_assert_not_null(f, "%s", full);
	cr_assert_eq(fwrite(p, 1, len, f), len);
	fclose(f);
	chmod(full, mode);
}

/* tree/: a text file, an empty one, an executable, 300 KiB of noise, a deep file, a symlink and
 * a UTF-8 name; every mtime MTIME. */
static void make_tree(void)
{
	strcpy(dir, "/tmp/test_unpack.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	sh("mkdir -p tree/bin tree/deep/a/b");
	put("hello.txt", "hello world\n", 12, 0640);
	put("empty", "", 0, 0644);
	put("bin/run.sh", "#!/bin/sh\necho hi\n", 18, 0755);
	unsigned char *big = malloc(BIG_LEN);
	uint32_t x = 12345;
	for (size_t i = 0; i < BIG_LEN; i++)
		big[i] = (unsigned char)((x = x * 1103515245u + 12345u) >> 24);
	put("bin/data.bin", big, BIG_LEN, 0600);
	free(big);
	put("deep/a/b/c.txt", "deep\n", 5, 0644);
	put("utf8-\xc3\xa9.txt", "e acute\n", 8, 0644);
	sh("ln -s hello.txt tree/link && find tree -exec touch -h -d @%d {} +", MTIME);
}

static void drop_tree(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)system(cmd);
}

struct mem {
	unsigned char *p;
	size_t len;
};

static struct mem slurp(const char *name)
{
	char full[256];
	snprintf(full, sizeof(full), "%s/%s", dir, name);
	FILE *f = fopen(full, "rb");
	cr_assert_not_null(f, "%s", full);
	struct mem m = {0};
	fseek(f, 0, SEEK_END);
	m.len = (size_t)ftell(f);
	rewind(f);
	m.p = malloc(m.len ? m.len : 1);
	cr_assert_eq(fread(m.p, 1, m.len, f), m.len);
	fclose(f);
	return m;
}

static const struct unpack_limits limits = {.max_bytes = 64u << 20};

/* Indexes bytes in memory into *blob. */
static int index_mem(const void *p, size_t len, struct unpack_mem *blob, struct unpacked **out)
{
	struct zip_buffer zb = {p, len};
	return unpack_archive(len, zip_buffer_read, &zb, unpack_mem_write, blob, &limits, out);
}

static struct unpacked *index_file(const char *name, struct unpack_mem *blob)
{
	struct mem m = slurp(name);
	struct unpacked *n = NULL;
	int err = index_mem(m.p, m.len, blob, &n);
	cr_assert_eq(err, 0, "%s: unpack_archive = %d", name, err);
	free(m.p);
	return n;
}

enum {
	NO_LINK = 1,
	NO_DIRS = 2,
	NO_MODE = 4,
	FLAT = 8
};

static const struct zip_member *find(const struct unpacked *n, const char *path)
{
	return zipindex_find(unpack_zipindex(n), path);
}

static void check_file(const struct unpacked *n, const struct unpack_mem *blob, const char *path,
		       unsigned flags)
{
	const struct zip_member *m = find(n, path);
	cr_assert(m && m->type == ZIP_FILE, "%s missing or not a file", path);
	char tree_path[128];
	snprintf(tree_path, sizeof(tree_path), "tree/%s", path);
	struct mem want = slurp(tree_path);
	cr_assert_eq(m->size, want.len, "%s: size %llu", path, (unsigned long long)m->size);
	cr_assert_leq(m->local_offset + m->size, blob->len);
	cr_assert(!memcmp(blob->p + m->local_offset, want.p, want.len), "%s: bytes differ", path);
	cr_assert_eq(m->mtime, MTIME, "%s: mtime %lld", path, (long long)m->mtime);
	struct stat st;
	char full[256];
	snprintf(full, sizeof(full), "%s/%s", dir, tree_path);
	cr_assert_eq(stat(full, &st), 0);
	if (!(flags & NO_MODE))
		cr_assert_eq(m->mode, st.st_mode & 07777, "%s: mode %o", path, m->mode);
	free(want.p);
}

/* Every file of tree/ is in n with its bytes, mtime and mode; folders and the link too. */
static void check_tree(const struct unpacked *n, const struct unpack_mem *blob, unsigned flags)
{
	check_file(n, blob, "hello.txt", flags);
	check_file(n, blob, "empty", flags);
	check_file(n, blob, "utf8-\xc3\xa9.txt", flags);
	if (flags & FLAT)
		return;
	check_file(n, blob, "bin/run.sh", flags);
	check_file(n, blob, "bin/data.bin", flags);
	check_file(n, blob, "deep/a/b/c.txt", flags);
	cr_assert_eq(find(n, "deep/a")->type, ZIP_DIR);
	if (!(flags & NO_DIRS))
		cr_assert_eq(find(n, "bin")->mode, 0755);
	if (flags & NO_LINK)
		return;
	const struct zip_member *l = find(n, "link");
	cr_assert(l && l->type == ZIP_SYMLINK, "link missing or not a symlink");
	cr_assert_str_eq(unpack_link_target(n, l), "hello.txt");
	cr_assert_eq(l->size, 9);
}

static void check_format(const char *cmd, const char *archive, unsigned flags)
{
	struct unpack_mem blob = {0};
	sh("%s", cmd);
	struct unpacked *n = index_file(archive, &blob);
	cr_assert_eq(unpack_blob_size(n), blob.len);
	check_tree(n, &blob, flags);
	cr_assert_eq(unpack_rejected(n), 0);
	cr_assert_lt(unpack_memory_bytes(n), 8192, "the index holds names, never contents");
	unpack_free(n);
	free(blob.p);
}

TestSuite(unpack, .init = make_tree, .fini = drop_tree, .timeout = 60);

Test(unpack, tar_gz_with_leading_dot_slash_keeps_bytes_modes_links_and_mtimes)
{
	check_format("tar -C tree -czf x.tgz .", "x.tgz", 0);
}

Test(unpack, tar_with_bzip2_xz_zstd_and_none)
{
	check_format("cd tree && tar -cjf ../x.tbz2 *", "x.tbz2", 0);
	check_format("cd tree && tar -cJf ../x.txz *", "x.txz", 0);
	check_format("cd tree && tar --zstd -cf ../x.tzst *", "x.tzst", 0);
	check_format("cd tree && tar --format=posix -cf ../x.tar *", "x.tar", 0);
}

Test(unpack, zip_and_jar)
{
	check_format("cd tree && zip -qry ../x.zip .", "x.zip", 0);
	check_format("cd tree && zip -qr ../x.jar . -x link", "x.jar", NO_LINK);
}

Test(unpack, seven_zip)
{
	if (system("command -v 7z >/dev/null") != 0) {
		cr_skip_test("7z (p7zip-full) is not installed");
	}
	check_format("cd tree && 7z a -snl -bd ../x.7z . ", "x.7z", 0);
}

Test(unpack, cpio_newc_and_odc)
{
	check_format("cd tree && find . | cpio -o -H newc > ../x.cpio", "x.cpio", 0);
	check_format("cd tree && find . | cpio -o -H odc > ../y.cpio", "y.cpio", 0);
}

/* cpio's crc format keeps each file's sum of bytes in its header, which libarchive drops: it is
 * checked here, with and without a layer of compression, hard links (no data, sum 0) too. */
Test(unpack, cpio_crc_format_sums_are_checked)
{
	sh("ln tree/hello.txt tree/hard && cd tree && find . | cpio -o -H crc --quiet > ../c.cpio "
	   "&& "
	   "gzip -c ../c.cpio > ../c.cpio.gz && xz -c ../c.cpio > ../c.cpio.xz && "
	   "python3 -c 'import sys; d = open(sys.argv[1], \"rb\").read(); "
	   "open(sys.argv[2], \"wb\").write(d.replace(b\"hello world\", b\"hellO world\"))' "
	   "../c.cpio ../bad.cpio && gzip -c ../bad.cpio > ../bad.cpio.gz");
	const char *good[] = {"c.cpio", "c.cpio.gz", "c.cpio.xz"};
	for (size_t i = 0; i < 3; i++) {
		struct unpack_mem blob = {0};
		struct unpacked *n = index_file(good[i], &blob);
		const struct zip_member *m = find(n, "hard");
		cr_assert(m && m->size == 12 &&
				  !memcmp(blob.p + m->local_offset, "hello world\n", 12),
			  "%s", good[i]);
		unpack_free(n);
		free(blob.p);
	}
	const char *bad[] = {"bad.cpio", "bad.cpio.gz"};
	for (size_t i = 0; i < 2; i++) {
		struct mem m = slurp(bad[i]);
		struct unpack_mem blob = {0};
		struct unpacked *n = NULL;
		cr_assert_eq(index_mem(m.p, m.len, &blob, &n), -EIO, "%s: a byte changed", bad[i]);
		free(m.p);
		free(blob.p);
	}
}

Test(unpack, ar_is_flat)
{
	check_format("cd tree && ar rcU ../x.a hello.txt empty utf8-*", "x.a", FLAT);
}

/* An rpm is a lead, two headers and a compressed cpio. rpmbuild is not at hand: the lead and
 * two empty headers are written here (rpm's lib/rpmlead.c and lib/header.c layouts). */
Test(unpack, rpm_payload)
{
	static const unsigned char lead[96 + 2 * 16] = {
		0xed, 0xab, 0xee, 0xdb,         3,    0,    0,   0,
		0,    1,    'x',  [76] = 0,     1,    0,    5,   [96] = 0x8e,
		0xad, 0xe8, 0x01, [112] = 0x8e, 0xad, 0xe8, 0x01};
	sh("cd tree && find . | cpio -o -H newc | gzip > ../payload.gz");
	struct mem payload = slurp("payload.gz");
	unsigned char *rpm = malloc(sizeof(lead) + payload.len);
	memcpy(rpm, lead, sizeof(lead));
	memcpy(rpm + sizeof(lead), payload.p, payload.len);
	struct unpack_mem blob = {0};
	struct unpacked *n = NULL;
	cr_assert_eq(index_mem(rpm, sizeof(lead) + payload.len, &blob, &n), 0);
	check_tree(n, &blob, 0);
	unpack_free(n);
	free(blob.p);
	free(rpm);
	free(payload.p);
}

/* A .deb is an ar holding tarballs: data.tar.xz#/ is a range of the deb's blob. */
Test(unpack, deb_and_its_data_tarball_through_a_range_of_the_blob)
{
	sh("mkdir deb && echo 2.0 > deb/debian-binary && tar -C tree -cJf deb/data.tar.xz . && "
	   "echo Package: x > deb/control && tar -C deb -czf deb/control.tar.gz control && "
	   "cd deb && ar rcU ../x.deb debian-binary control.tar.gz data.tar.xz");
	struct unpack_mem blob = {0}, inner = {0};
	struct unpacked *deb = index_file("x.deb", &blob), *data = NULL;
	const struct zip_member *m = find(deb, "data.tar.xz");
	cr_assert_not_null(m);
	cr_assert_eq(index_mem(blob.p + m->local_offset, m->size, &inner, &data), 0);
	check_tree(data, &inner, 0);
	unpack_free(data);
	unpack_free(deb);
	free(blob.p);
	free(inner.p);
}

/* The blob is the only copy: a zip inside a tar.gz, indexed through the tar's blob. */
Test(unpack, zip_inside_tar_gz_is_indexed_from_the_outer_blob)
{
	sh("cd tree && zip -qry ../inner.zip . && cd .. && mkdir o && mv inner.zip o/ && "
	   "echo other > o/other.txt && tar -C o -czf outer.tgz .");
	struct unpack_mem blob = {0}, inner = {0};
	struct unpacked *outer = index_file("outer.tgz", &blob), *n = NULL;
	const struct zip_member *m = find(outer, "inner.zip");
	cr_assert(m && m->type == ZIP_FILE);
	cr_assert_not_null(find(outer, "other.txt"));
	cr_assert_eq(index_mem(blob.p + m->local_offset, m->size, &inner, &n), 0);
	check_tree(n, &inner, 0);
	unpack_free(n);
	unpack_free(outer);
	free(blob.p);
	free(inner.p);
}

Test(unpack, hard_links_share_their_target_bytes)
{
	sh("ln tree/hello.txt tree/hard.txt && tar -C tree -cf h.tar hello.txt hard.txt");
	struct unpack_mem blob = {0};
	struct unpacked *n = index_file("h.tar", &blob);
	const struct zip_member *a = find(n, "hello.txt"), *b = find(n, "hard.txt");
	cr_assert(a && b && b->type == ZIP_FILE);
	cr_assert_eq(b->size, 12);
	cr_assert_eq(b->local_offset, a->local_offset);
	cr_assert_eq(unpack_blob_size(n), 12, "the content is unpacked once");
	unpack_free(n);
	free(blob.p);
}

/* newc cpio stores the data with the last name only; the names before it name each other. */
Test(unpack, hard_links_in_cpio_all_get_the_data)
{
	sh("ln tree/hello.txt tree/b && ln tree/hello.txt tree/c && "
	   "cd tree && printf 'b\\nhello.txt\\nc\\nlink\\n' | cpio -o -H newc > ../h.cpio");
	struct unpack_mem blob = {0};
	struct unpacked *n = index_file("h.cpio", &blob);
	const char *names[] = {"b", "hello.txt", "c"};
	for (size_t i = 0; i < 3; i++) {
		const struct zip_member *m = find(n, names[i]);
		cr_assert(m && m->type == ZIP_FILE && m->size == 12, "%s", names[i]);
		cr_assert(!memcmp(blob.p + m->local_offset, "hello world\n", 12), "%s", names[i]);
	}
	cr_assert_eq(find(n, "link")->type, ZIP_SYMLINK);
	unpack_free(n);
	free(blob.p);
}

/* The member named path is a file holding text. */
static void holds(const struct unpacked *n, const struct unpack_mem *blob, const char *path,
		  const char *text)
{
	const struct zip_member *m = find(n, path);
	cr_assert(m && m->type == ZIP_FILE, "%s missing or not a file", path);
	cr_assert(m->size == strlen(text) && !memcmp(blob->p + m->local_offset, text, m->size),
		  "%s: not \"%s\"", path, text);
}

/* tar -rf appends: tar -x and every unpacker give the last copy of a name, a file replacing a
 * folder takes what was under it along, a folder replacing a file leaves no trace of it. */
Test(unpack, a_tar_extended_with_tar_rf_shows_the_last_copy)
{
	sh("mkdir -p rf/d rf/e && cd rf && echo old > f && echo x > d/x && echo g > g && "
	   "echo y > e/y && tar -cf ../rf.tar f d g e && "
	   "echo new > f && rm -r d && echo now a file > d && rm g && mkdir g && echo z > g/z && "
	   "tar -rf ../rf.tar f d g && echo newer > f && tar -rf ../rf.tar f && "
	   "rm -r e && mkdir e && echo w > e/w && tar -rf ../rf.tar e");
	struct unpack_mem blob = {0};
	struct unpacked *n = index_file("rf.tar", &blob);
	holds(n, &blob, "f", "newer\n");
	holds(n, &blob, "d", "now a file\n");
	cr_assert_null(find(n, "d/x"), "no stale child of the folder d was");
	cr_assert_eq(find(n, "g")->type, ZIP_DIR);
	holds(n, &blob, "g/z", "z\n");
	cr_assert_eq(find(n, "e")->type, ZIP_DIR);
	holds(n, &blob, "e/y", "y\n"); /* a folder over a folder: both hold their own */
	holds(n, &blob, "e/w", "w\n");
	unpack_free(n);
	free(blob.p);
}

Test(unpack, a_cpio_appended_to_shows_the_last_copy)
{
	sh("mkdir -p ca/d && cd ca && echo old > f && echo x > d/x && "
	   "printf 'f\\nd\\nd/x\\n' | cpio -o -H newc -F ../a.cpio && "
	   "echo new > f && rm -r d && echo file > d && "
	   "printf 'f\\nd\\n' | cpio -o -H newc -A -F ../a.cpio");
	struct unpack_mem blob = {0};
	struct unpacked *n = index_file("a.cpio", &blob);
	holds(n, &blob, "f", "new\n");
	holds(n, &blob, "d", "file\n");
	cr_assert_null(find(n, "d/x"));
	unpack_free(n);
	free(blob.p);
}

/* ---- archives written by libarchive: what tools refuse to make ---- */

struct writer {
	struct archive *a;
	void *buf;
	size_t cap, used;
};

static void writer_open(struct writer *w, int format, bool gzip)
{
	w->cap = 4u << 20;
	w->buf = malloc(w->cap);
	w->a = archive_write_new();
	cr_assert_eq(archive_write_set_format(w->a, format), ARCHIVE_OK);
	if (gzip)
		archive_write_add_filter_gzip(w->a);
	archive_write_set_bytes_in_last_block(w->a, 1);
	cr_assert_eq(archive_write_open_memory(w->a, w->buf, w->cap, &w->used), ARCHIVE_OK);
}

static void writer_add_bytes(struct writer *w, const char *name, mode_t type, const void *data,
			     size_t len, const char *link)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)len);
	if (link)
		archive_entry_set_symlink(e, link);
	cr_assert_eq(archive_write_header(w->a, e), ARCHIVE_OK, "%s", archive_error_string(w->a));
	if (len)
		cr_assert_eq(archive_write_data(w->a, data, len), (la_ssize_t)len);
	archive_entry_free(e);
}

static void writer_add(struct writer *w, const char *name, mode_t type, const char *data,
		       const char *link)
{
	writer_add_bytes(w, name, type, data, data ? strlen(data) : 0, link);
}

static void writer_close(struct writer *w)
{
	cr_assert_eq(archive_write_close(w->a), ARCHIVE_OK);
	archive_write_free(w->a);
}

/* The nested index keeps link texts itself: the resolver's target callback reads them there. */
static int link_target(void *ctx, const struct zip_member *link, char **out, size_t *len)
{
	const char *t = unpack_link_target(ctx, link);
	*out = t ? strdup(t) : NULL;
	*len = t ? strlen(t) : 0;
	return *out ? 0 : -ENOMEM;
}

Test(unpack, hostile_names_are_left_out_and_the_last_duplicate_stays)
{
	const char *bad[] = {"../x", "/etc/x", "a/../../x", "a//b", "x/..", "a/./b", "..\\..\\x"};
	struct writer w;
	writer_open(&w, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, true);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		writer_add(&w, bad[i], AE_IFREG, "bad", NULL);
	writer_add(&w, "dup", AE_IFREG, "first", NULL);
	writer_add(&w, "dup", AE_IFREG, "second", NULL);
	writer_add(&w, "dev", AE_IFCHR, NULL, NULL);
	writer_add(&w, "d/evil", AE_IFLNK, NULL, "../../../etc/passwd");
	writer_add(&w, "ok", AE_IFREG, "ok", NULL);
	writer_close(&w);
	struct unpack_mem blob = {0};
	struct unpacked *n = NULL;
	cr_assert_eq(index_mem(w.buf, w.used, &blob, &n), 0);
	cr_assert_eq(unpack_rejected(n), sizeof(bad) / sizeof(*bad) + 1, "and the device");
	cr_assert_null(find(n, "x"));
	cr_assert_null(find(n, "etc/x"));
	cr_assert_null(find(n, "a/b"));
	const struct zip_member *dup = find(n, "dup"), *evil = find(n, "d/evil");
	cr_assert(dup && dup->size == 6 && !memcmp(blob.p + dup->local_offset, "second", 6),
		  "a later tar entry supersedes an earlier one");
	cr_assert(find(n, "d")->synthetic, "folders missing from the archive are made up");
	cr_assert(evil && evil->type == ZIP_SYMLINK, "listed, its target kept as text");
	const struct zip_member *to = NULL;
	cr_assert_eq(zipindex_resolve_link(unpack_zipindex(n), evil, link_target, n, &to, NULL),
		     -EXDEV, "the outer archive's resolver refuses it");
	cr_assert_not_null(find(n, "ok"));
	unpack_free(n);
	free(blob.p);
	free(w.buf);
}

/* A hard link to a name left out is left out too; the compaction that drops it must not
 * disturb the lookup of links after it. */
Test(unpack, hard_links_to_nothing_are_left_out)
{
	struct writer w;
	writer_open(&w, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, false);
	struct archive_entry *e = archive_entry_new();
	const char *links[][2] = {{"l1", "../gone"}, {"a", NULL}, {"l2", "a"},
				  {"l3", "nope"},    {"b", NULL}, {"l4", "b"}};
	for (size_t i = 0; i < 6; i++) {
		archive_entry_clear(e);
		archive_entry_set_pathname(e, links[i][0]);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_size(e, links[i][1] ? 0 : 1);
		if (links[i][1])
			archive_entry_set_hardlink(e, links[i][1]);
		cr_assert_eq(archive_write_header(w.a, e), ARCHIVE_OK);
		if (!links[i][1])
			archive_write_data(w.a, links[i][0], 1);
	}
	archive_entry_free(e);
	writer_close(&w);
	struct unpack_mem blob = {0};
	struct unpacked *n = NULL;
	cr_assert_eq(index_mem(w.buf, w.used, &blob, &n), 0);
	cr_assert_eq(unpack_rejected(n), 2);
	cr_assert_null(find(n, "l1"));
	cr_assert_null(find(n, "l3"));
	cr_assert_eq(blob.p[find(n, "l2")->local_offset], 'a');
	cr_assert_eq(blob.p[find(n, "l4")->local_offset], 'b');
	unpack_free(n);
	free(blob.p);
	free(w.buf);
}

/* A hard link is the copy its name had when the link came: tar -x makes it then. */
Test(unpack, a_hard_link_gets_the_copy_before_it)
{
	struct writer w;
	writer_open(&w, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, false);
	struct archive_entry *e = archive_entry_new();
	const char *v[][3] = {
		{"f", "one", NULL}, {"h1", NULL, "f"}, {"f", "two", NULL}, {"h2", NULL, "f"}};
	for (size_t i = 0; i < 4; i++) {
		archive_entry_clear(e);
		archive_entry_set_pathname(e, v[i][0]);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_size(e, v[i][1] ? 3 : 0);
		if (v[i][2])
			archive_entry_set_hardlink(e, v[i][2]);
		cr_assert_eq(archive_write_header(w.a, e), ARCHIVE_OK);
		if (v[i][1])
			archive_write_data(w.a, v[i][1], 3);
	}
	archive_entry_free(e);
	writer_close(&w);
	struct unpack_mem blob = {0};
	struct unpacked *n = NULL;
	cr_assert_eq(index_mem(w.buf, w.used, &blob, &n), 0);
	holds(n, &blob, "f", "two");
	holds(n, &blob, "h1", "one");
	holds(n, &blob, "h2", "two");
	unpack_free(n);
	free(blob.p);
	free(w.buf);
}

/* A sink that keeps nothing: it counts, so a bomb needs no memory to be tested. */
struct counter {
	uint64_t bytes;
};

static int count_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct counter *c = ctx;
	(void)buf;
	cr_assert_eq(off, c->bytes, "the blob is written in order, without holes");
	c->bytes += len;
	return 0;
}

/* One gzip member holding len bytes (libarchive's raw format writes no header). */
static struct mem gzip_bytes(const void *p, size_t len)
{
	struct writer w;
	writer_open(&w, ARCHIVE_FORMAT_RAW, true);
	writer_add_bytes(&w, "z", AE_IFREG, p, len, NULL);
	writer_close(&w);
	return (struct mem){w.buf, w.used};
}

/* A ustar header of a 1 GiB file "zeros" (POSIX.1-1988 layout: octal fields, the checksum
 * summed with its own field as spaces). */
static void ustar_header(unsigned char h[512])
{
	memset(h, 0, 512);
	strcpy((char *)h, "zeros");
	strcpy((char *)h + 100, "0000644");
	strcpy((char *)h + 124, "10000000000"); /* 1 << 30 */
	strcpy((char *)h + 136, "13726746000");
	h[156] = '0';
	memcpy(h + 257,
	       "ustar\0"
	       "00",
	       8);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (size_t i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
}

/* gzip members concatenate: a tar header for a 1 GiB file, then one member of 1 MiB of zeros
 * repeated 1024 times: 1 GiB of zeros in about 1 MiB. */
static struct mem gzip_bomb(void)
{
	static unsigned char zeros[1u << 20];
	unsigned char hdr[512];
	ustar_header(hdr);
	struct mem head = gzip_bytes(hdr, sizeof(hdr)), body = gzip_bytes(zeros, sizeof(zeros));
	struct mem m = {.len = head.len + 1024 * body.len};
	m.p = malloc(m.len);
	memcpy(m.p, head.p, head.len);
	for (size_t i = 0; i < 1024; i++)
		memcpy(m.p + head.len + i * body.len, body.p, body.len);
	free(head.p);
	free(body.p);
	return m;
}

Test(unpack, a_gzip_bomb_stops_at_the_budget)
{
	struct mem bomb = gzip_bomb();
	cr_assert_lt(bomb.len, 4u << 20);
	struct zip_buffer zb = {bomb.p, bomb.len};
	struct counter c = {0};
	struct unpacked *n = NULL;
	struct unpack_limits lim = {.max_bytes = 32u << 20};
	int err = unpack_archive(bomb.len, zip_buffer_read, &zb, count_write, &c, &lim, &n);
	cr_assert_eq(err, -EFBIG);
	cr_assert_null(n);
	cr_assert_leq(c.bytes, lim.max_bytes);
	free(bomb.p);
}

/* The cap is far (a cache of 4 GiB allows 1 GiB): the ratio stops a bomb after the floor, plus
 * ratio times the first chunk read, written. */
Test(unpack, a_bomb_stops_at_the_ratio_long_before_the_cap)
{
	struct mem bomb = gzip_bomb();
	struct zip_buffer zb = {bomb.p, bomb.len};
	struct counter c = {0};
	struct unpacked *n = NULL;
	struct unpack_limits lim = {.max_bytes = 4ull << 30, .floor_bytes = 4u << 20, .ratio = 200};
	int err = unpack_archive(bomb.len, zip_buffer_read, &zb, count_write, &c, &lim, &n);
	cr_assert_eq(err, -EFBIG);
	cr_assert_leq(c.bytes, lim.floor_bytes + 200ull * (128u << 10), "%llu bytes written",
		      (unsigned long long)c.bytes);
	free(bomb.p);
	/* zstd packs zeros 30000 to 1: the whole bomb is one read, and the floor holds it */
	sh("truncate -s 128M zeros && tar -cf - zeros | zstd -q -1 > z.tzst && rm zeros");
	struct mem z = slurp("z.tzst");
	zb = (struct zip_buffer){z.p, z.len};
	c.bytes = 0;
	err = unpack_archive(z.len, zip_buffer_read, &zb, count_write, &c, &lim, &n);
	cr_assert_eq(err, -EFBIG);
	cr_assert_leq(c.bytes, lim.floor_bytes, "%llu bytes written", (unsigned long long)c.bytes);
	free(z.p);
}

Test(unpack, a_zip_bomb_stops_at_the_budget)
{
	static unsigned char zeros[1u << 20];
	struct writer w;
	writer_open(&w, ARCHIVE_FORMAT_ZIP, false);
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, "zeros");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_size(e, 256ll << 20);
	cr_assert_eq(archive_write_header(w.a, e), ARCHIVE_OK);
	for (int i = 0; i < 256; i++)
		archive_write_data(w.a, zeros, sizeof(zeros));
	archive_entry_free(e);
	writer_close(&w);
	struct zip_buffer zb = {w.buf, w.used};
	struct counter c = {0};
	struct unpacked *n = NULL;
	struct unpack_limits lim = {.max_bytes = 8u << 20};
	cr_assert_eq(unpack_archive(w.used, zip_buffer_read, &zb, count_write, &c, &lim, &n),
		     -EFBIG);
	cr_assert_leq(c.bytes, lim.max_bytes);
	free(w.buf);
}

Test(unpack, too_many_entries_is_efbig)
{
	struct writer w;
	writer_open(&w, ARCHIVE_FORMAT_TAR_USTAR, false);
	for (int i = 0; i < 20; i++) {
		char name[16];
		snprintf(name, sizeof(name), "f%d", i);
		writer_add(&w, name, AE_IFREG, "x", NULL);
	}
	writer_close(&w);
	struct zip_buffer zb = {w.buf, w.used};
	struct unpack_mem blob = {0};
	struct unpacked *n = NULL;
	struct unpack_limits lim = {.max_bytes = 1u << 20, .max_entries = 10};
	cr_assert_eq(
		unpack_archive(w.used, zip_buffer_read, &zb, unpack_mem_write, &blob, &lim, &n),
		-EFBIG);
	free(blob.p);
	free(w.buf);
}

Test(unpack, what_is_not_an_archive_is_enoent)
{
	static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0,
					    0,    13,  'I', 'H', 'D',  'R',  0,    0,    1, 0};
	const char *text = "just some text\nover two lines\n";
	struct unpack_mem blob = {0};
	struct unpacked *n = NULL;
	cr_assert_eq(index_mem(png, sizeof(png), &blob, &n), -ENOENT);
	cr_assert_eq(index_mem(text, strlen(text), &blob, &n), -ENOENT);
	cr_assert_eq(index_mem("", 0, &blob, &n), -ENOENT);
	sh("cp tree/hello.txt h.txt && gzip h.txt");
	struct mem gz = slurp("h.txt.gz");
	cr_assert_eq(index_mem(gz.p, gz.len, &blob, &n), -ENOENT, "a lone .gz is not an archive");
	cr_assert_null(n);
	free(gz.p);
	free(blob.p);
}

/* Cut anywhere, a tarball never gives an index: a partial listing would pass for complete. */
Test(unpack, a_truncated_tar_gz_is_eio_never_a_partial_listing)
{
	sh("tar -C tree -czf x.tgz .");
	struct mem m = slurp("x.tgz");
	for (size_t cut = m.len / 16; cut < m.len; cut += m.len / 16) {
		struct unpack_mem blob = {0};
		struct unpacked *n = NULL;
		int err = index_mem(m.p, cut, &blob, &n);
		cr_assert_eq(err, -EIO, "cut at %zu of %zu: %d", cut, m.len, err);
		cr_assert_null(n);
		free(blob.p);
	}
	free(m.p);
}

static int failing_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	(void)ctx, (void)buf, (void)len, (void)off;
	return -ENOSPC;
}

Test(unpack, the_sinks_error_is_returned)
{
	sh("tar -C tree -czf x.tgz .");
	struct mem m = slurp("x.tgz");
	struct zip_buffer zb = {m.p, m.len};
	struct unpacked *n = NULL;
	cr_assert_eq(unpack_archive(m.len, zip_buffer_read, &zb, failing_write, NULL, &limits, &n),
		     -ENOSPC);
	free(m.p);
}

static ssize_t broken_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	if (off > 0)
		return -ENETDOWN;
	return zip_buffer_read(ctx, buf, len, off);
}

Test(unpack, the_readers_error_is_returned)
{
	sh("tar -C tree -cf x.tar .");
	struct mem m = slurp("x.tar");
	struct zip_buffer zb = {m.p, m.len};
	struct unpack_mem blob = {0};
	struct unpacked *n = NULL;
	cr_assert_eq(unpack_archive(m.len, broken_read, &zb, unpack_mem_write, &blob, &limits, &n),
		     -ENETDOWN);
	free(blob.p);
	free(m.p);
}

/* GNU and pax sparse files come out of libarchive as pieces at offsets: the holes must be
 * written as zeros, or the blob would have bytes nobody wrote. */
Test(unpack, sparse_files_get_their_holes_as_zeros)
{
	sh("printf middle | dd of=tree/sparse bs=1 seek=300000 conv=notrunc && "
	   "truncate -s 1000000 tree/sparse && touch -d @%d tree/sparse && "
	   "tar -C tree -S -cf gnu.tar sparse hello.txt && "
	   "tar -C tree -S --format=posix -cf pax.tar sparse hello.txt",
	   MTIME);
	const char *names[] = {"gnu.tar", "pax.tar"};
	for (size_t i = 0; i < 2; i++) {
		struct unpack_mem blob = {0};
		struct unpacked *n = index_file(names[i], &blob);
		check_file(n, &blob, "sparse", 0);
		check_file(n, &blob, "hello.txt", 0);
		cr_assert_eq(unpack_blob_size(n), 1000000 + 12);
		unpack_free(n);
		free(blob.p);
	}
}

/* A small tar.gz of many long names held hundreds of MiB while its index was built: the names
 * are taken from the mount's memory budget as they are read, so such an archive is refused
 * once the budget is spent, and nothing stays taken after. */
Test(unpack, many_long_names_are_refused_past_the_memory_budget)
{
	struct writer w;
	char name[256];
	writer_open(&w, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, true);
	for (int i = 0; i < 4000; i++) {
		snprintf(name, sizeof(name), "%0200d/f", i);
		writer_add(&w, name, AE_IFREG, NULL, NULL);
	}
	writer_close(&w);
	struct unpack_mem blob = {0};
	struct unpacked *n = NULL;
	membudget_set_limit(1u << 20);
	cr_assert_eq(index_mem(w.buf, w.used, &blob, &n), -ENOMEM);
	cr_assert_null(n);
	cr_assert_not_null(strstr(log_reason(), "list of names"), "refused while reading: %s",
			   log_reason());
	cr_assert_eq(membudget_used(), 0);
	membudget_set_limit(64u << 20);
	cr_assert_eq(index_mem(w.buf, w.used, &blob, &n), 0);
	cr_assert_gt(membudget_used(), 4000 * 200);
	unpack_free(n);
	cr_assert_eq(membudget_used(), 0, "a freed index gives back what it took");
	free(blob.p);
	free(w.buf);
}

/* ---- checksums: the archive's own and its compressor's, checked while unpacking ---- */

/* The archive name with one byte flipped: inside a copy of the noise of bin/data.bin (stored as
 * is by a compressor that cannot shrink it), else in the middle. */
static struct mem flipped(const char *name)
{
	struct mem m = slurp(name), noise = slurp("tree/bin/data.bin");
	size_t at = m.len / 2;
	for (size_t i = 0; i + 64 <= m.len; i++)
		if (!memcmp(m.p + i, noise.p + BIG_LEN / 2, 64)) {
			at = i + 32;
			break;
		}
	m.p[at] ^= 0x20;
	free(noise.p);
	return m;
}

/* Unpacks the intact archive, then the flipped one: -EIO, no index. */
static void damage_is_eio(const char *cmd, const char *archive)
{
	struct unpack_mem blob = {0};
	sh("%s", cmd);
	unpack_free(index_file(archive, &blob));
	free(blob.p);
	struct mem bad = flipped(archive);
	struct unpacked *n = NULL;
	struct unpack_mem bad_blob = {0};
	int err = index_mem(bad.p, bad.len, &bad_blob, &n);
	cr_assert_eq(err, -EIO, "%s with a byte flipped: %d", archive, err);
	cr_assert_null(n);
	free(bad_blob.p);
	free(bad.p);
}

/* libarchive's gzip filter never checks the trailer: a flipped byte in a stored deflate block
 * was served as it was. tar -b 2048 pads the tarball with a MiB of zeros after its end marker,
 * so that no decoder reaches its trailer unless the stream is read to its end. */
Test(unpack, a_flipped_byte_under_any_compressor_is_eio)
{
	const char *tar = "tar -b 2048 -C tree -cf x.tar . && ";
	damage_is_eio("tar -C tree -cf - . | gzip -1 > x.tgz", "x.tgz");
	damage_is_eio("tar -b 2048 -C tree -cf - . | gzip -1 > y.tgz", "y.tgz");
	char cmd[256];
	const struct {
		const char *tool, *name;
	} c[] = {{"xz -T1 -6", "x.txz"},
		 {"zstd -q", "x.tzst"},
		 {"lz4 -q", "x.tlz4"},
		 {"bzip2 -1", "x.tbz2"}}; /* 100k blocks: the flip is past the first */
	for (size_t i = 0; i < sizeof(c) / sizeof(*c); i++) {
		snprintf(cmd, sizeof(cmd), "%s%s < x.tar > %s", tar, c[i].tool, c[i].name);
		damage_is_eio(cmd, c[i].name);
	}
}

Test(unpack, a_flipped_byte_in_a_zip_or_7z_member_is_eio)
{
	damage_is_eio("cd tree && zip -qry0 ../s.zip .", "s.zip");
	damage_is_eio("cd tree && zip -qry ../d.zip .", "d.zip");
	if (system("command -v 7z >/dev/null") != 0)
		cr_skip_test("7z (p7zip-full) is not installed");
	damage_is_eio("cd tree && 7z a -snl -bd -mx0 ../s.7z .", "s.7z");
	damage_is_eio("cd tree && 7z a -snl -bd ../c.7z .", "c.7z");
}

/* The gzip trailer itself flipped: its CRC-32, then its length. */
Test(unpack, a_wrong_gzip_trailer_is_eio)
{
	sh("tar -C tree -czf x.tgz .");
	struct mem m = slurp("x.tgz");
	for (size_t back = 8; back >= 1; back -= 4) {
		struct unpack_mem blob = {0};
		struct unpacked *n = NULL;
		m.p[m.len - back] ^= 1;
		cr_assert_eq(index_mem(m.p, m.len, &blob, &n), -EIO, "%zu from the end", back);
		m.p[m.len - back] ^= 1;
		free(blob.p);
	}
	free(m.p);
}

/* gzip members concatenate (pigz, appending); zero bytes after them pad (tape blocking); any
 * other byte after them is damage. */
Test(unpack, gzip_members_concatenate_and_only_zeros_may_follow)
{
	check_format("tar -C tree -cf x.tar . && head -c 5000 x.tar | gzip > x.tgz && "
		     "tail -c +5001 x.tar | gzip >> x.tgz && head -c 3000 /dev/zero >> x.tgz",
		     "x.tgz", 0);
	sh("printf 'junk' >> x.tgz");
	struct mem m = slurp("x.tgz");
	struct unpack_mem blob = {0};
	struct unpacked *n = NULL;
	cr_assert_eq(index_mem(m.p, m.len, &blob, &n), -EIO);
	free(blob.p);
	free(m.p);
}

/* An rpm's payload is under its lead and headers: a gzip payload's trailer is checked too. */
Test(unpack, an_rpm_with_a_wrong_gzip_payload_is_eio)
{
	static const unsigned char lead[96 + 2 * 16] = {
		0xed, 0xab, 0xee, 0xdb,         3,    0,    0,   0,
		0,    1,    'x',  [76] = 0,     1,    0,    5,   [96] = 0x8e,
		0xad, 0xe8, 0x01, [112] = 0x8e, 0xad, 0xe8, 0x01};
	sh("cd tree && find . | cpio -o -H newc | gzip > ../payload.gz");
	struct mem payload = slurp("payload.gz");
	size_t len = sizeof(lead) + payload.len;
	unsigned char *rpm = malloc(len);
	memcpy(rpm, lead, sizeof(lead));
	memcpy(rpm + sizeof(lead), payload.p, payload.len);
	rpm[len - 6] ^= 1; /* the CRC-32 */
	struct unpack_mem blob = {0};
	struct unpacked *n = NULL;
	cr_assert_eq(index_mem(rpm, len, &blob, &n), -EIO);
	free(blob.p);
	free(rpm);
	free(payload.p);
}

/* ---- the decoders' memory: what a layer's header declares is charged before it is allocated ---- */

/* Writes dir/mk.py: x.tar under lzip, .lzma or xz with the dictionary its header declares set
 * to arg (lzip's dictionary byte, .lzma's size, xz's LZMA2 property byte), the data made with a
 * dictionary of 1 MiB (a decoder given a larger one decodes it the same). */
static void write_mk_py(void)
{
	static const char py[] =
		"import lzma, struct, sys, zlib\n"
		"kind, arg = sys.argv[1], int(sys.argv[2], 0)\n"
		"data = open('x.tar', 'rb').read()\n"
		"if kind == 'lzip':\n"
		"    raw = lzma.compress(data, format=lzma.FORMAT_RAW, filters=[{'id': "
		"lzma.FILTER_LZMA1, 'dict_size': 1 << 20, 'lc': 3, 'lp': 0, 'pb': 2}])\n"
		"    out = b'LZIP\\x01' + bytes([arg]) + raw + struct.pack('<IQQ', "
		"zlib.crc32(data), len(data), 6 + len(raw) + 20)\n"
		"elif kind == 'lzma':\n"
		"    out = bytearray(lzma.compress(data, format=lzma.FORMAT_ALONE, filters=[{'id': "
		"lzma.FILTER_LZMA1, 'dict_size': 1 << 20}]))\n"
		"    out[1:5] = struct.pack('<I', arg)\n"
		"else:\n"
		"    out = bytearray(lzma.compress(data, format=lzma.FORMAT_XZ, filters=[{'id': "
		"lzma.FILTER_LZMA2, 'dict_size': 1 << 20}]))\n"
		"    size = (out[12] + 1) * 4\n"
		"    assert out[13:16] == b'\\x00\\x21\\x01'\n"
		"    out[16] = arg\n"
		"    out[12 + size - 4:12 + size] = struct.pack('<I', zlib.crc32(out[12:12 + size "
		"- "
		"4]))\n"
		"sys.stdout.buffer.write(out)\n";
	char path[128];
	snprintf(path, sizeof(path), "%s/mk.py", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(py, 1, sizeof(py) - 1, f), sizeof(py) - 1);
	fclose(f);
	sh("tar -C tree -cf x.tar .");
}

static int index_bytes(const void *p, size_t len)
{
	struct unpack_mem blob = {0};
	struct unpacked *n = NULL;
	int err = index_mem(p, len, &blob, &n);
	cr_assert(err ? n == NULL : n != NULL);
	unpack_free(n);
	free(blob.p);
	return err;
}

/* archive (made by cmd) declares a window or dictionary of 128 MiB: refused under a budget of
 * 16 MiB, -EIO with the reason, nothing left taken; indexed whole under the default budget. */
static void refused_under_a_small_budget(const char *cmd, const char *archive)
{
	sh("%s", cmd);
	struct mem m = slurp(archive);
	membudget_set_limit(16u << 20);
	cr_assert_eq(index_bytes(m.p, m.len), -EIO, "%s under 16 MiB", archive);
	cr_assert_not_null(strstr(log_reason(), "layer's decoder"), "%s: %s", archive,
			   log_reason());
	cr_assert_eq(membudget_used(), 0);
	membudget_set_limit(0);
	struct unpack_mem blob = {0};
	struct unpacked *n = NULL;
	cr_assert_eq(index_mem(m.p, m.len, &blob, &n), 0, "%s under the default budget", archive);
	check_tree(n, &blob, 0);
	unpack_free(n);
	cr_assert_eq(membudget_used(), 0, "%s: the decoder's memory is given back", archive);
	free(blob.p);
	free(m.p);
}

Test(unpack, a_layer_declaring_128_mib_is_refused_under_a_budget_of_16_mib)
{
	write_mk_py();
	refused_under_a_small_budget("cat x.tar | zstd -q --zstd=wlog=27 > w.tzst", "w.tzst");
	refused_under_a_small_budget("python3 mk.py xz 30 > w.txz", "w.txz");
	refused_under_a_small_budget("python3 mk.py lzip 27 > w.tlz", "w.tlz");
	refused_under_a_small_budget("python3 mk.py lzma 0x08000000 > w.tar.lzma", "w.tar.lzma");
}

/* Headers declaring more than the whole default budget: refused before anything is allocated
 * (a fuzzer's malloc limit of 64 MiB passes them). A .lzma of 4 GiB is no .lzma to libarchive's
 * bidder, nor here: not an archive. */
Test(unpack, a_layer_declaring_more_than_the_budget_is_refused)
{
	static const unsigned char zstd_104m[] = {0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x85},
				   zstd_3g[] = {0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xaf};
	write_mk_py();
	sh("python3 mk.py xz 37 > h.txz && python3 mk.py lzip 29 > h.tlz && "
	   "python3 mk.py lzma 0xffffffff > h.tar.lzma");
	const char *files[] = {"h.txz", "h.tlz"};
	for (size_t i = 0; i < 2; i++) {
		struct mem m = slurp(files[i]);
		cr_assert_eq(index_bytes(m.p, m.len), -EIO, "%s", files[i]);
		cr_assert_not_null(strstr(log_reason(), "layer's decoder"), "%s: %s", files[i],
				   log_reason());
		free(m.p);
	}
	struct mem m = slurp("h.tar.lzma");
	cr_assert_eq(index_bytes(m.p, m.len), -ENOENT);
	free(m.p);
	cr_assert_eq(index_bytes(zstd_3g, sizeof(zstd_3g)), -EIO);
	cr_assert_not_null(strstr(log_reason(), "layer's decoder"), "%s", log_reason());
	membudget_set_limit(16u << 20);
	cr_assert_eq(index_bytes(zstd_104m, sizeof(zstd_104m)), -EIO);
	cr_assert_not_null(strstr(log_reason(), "layer's decoder"), "%s", log_reason());
	cr_assert_eq(membudget_used(), 0);
}

/* A single-segment zstd frame's window is its content size, 8 bytes of header up to 2^64 - 1:
 * near that, what the window costs wrapped past 2^64 to a few KiB, and taken from what an outer
 * layer held, wrapped the budget's count down instead of failing. Both are over the whole budget:
 * EIO, with the reason naming the layer, nothing left taken. */
Test(unpack, a_zstd_content_size_near_2_to_the_64_is_over_the_budget)
{
	/* a frame header declaring 2^64 - size, then a raw block, the last, of no bytes */
	unsigned char f[5 + 8 + 3 + 100] = {0x28, 0xb5, 0x2f, 0xfd, 0xe0, [13] = 1};
	uint64_t size = 600u << 10; /* the estimate wraps */
	for (int i = 0; i < 8; i++)
		f[5 + i] = (unsigned char)((0 - size) >> 8 * i);
	cr_assert_eq(index_bytes(f, sizeof(f)), -EIO);
	cr_assert_not_null(strstr(log_reason(), "layer's decoder"), "%s", log_reason());
	cr_assert_eq(membudget_used(), 0);
	size = 1u << 20; /* the take wraps when an outer zstd layer holds 2.5 MiB */
	for (int i = 0; i < 8; i++)
		f[5 + i] = (unsigned char)((0 - size) >> 8 * i);
	put("../inner.zst", f, sizeof(f), 0644);
	sh("zstd -q < inner.zst > inner.zst.zst");
	struct mem m = slurp("inner.zst.zst");
	log_clear_reason();
	cr_assert_eq(index_bytes(m.p, m.len), -EIO);
	cr_assert_not_null(strstr(log_reason(), "layer's decoder"), "%s", log_reason());
	cr_assert_eq(membudget_used(), 0);
	free(m.p);
}

/* An xz check ID liblzma does not know (reserved: no tool writes one) was skipped, not checked:
 * a flipped byte came out as data. xz -t warns of it; here it is EIO. */
Test(unpack, an_xz_check_of_an_unknown_kind_is_eio)
{
	sh("tar -C tree -cf x.tar . && python3 -c \"import lzma, struct, zlib; "
	   "o = bytearray(lzma.compress(open('x.tar', 'rb').read(), check=lzma.CHECK_CRC32)); "
	   "o[7] = o[-3] = 2; o[8:12] = struct.pack('<I', zlib.crc32(o[6:8])); "
	   "o[-12:-8] = struct.pack('<I', zlib.crc32(o[-8:-2])); "
	   "open('c2.txz', 'wb').write(o)\"");
	struct mem m = slurp("c2.txz");
	cr_assert_eq(index_bytes(m.p, m.len), -EIO);
	free(m.p);
}

/* libarchive's cpio reader allocates the name size a newc header declares (up to 4 GiB) before
 * checking it: such a header is refused before libarchive reads it, plain or under gzip, at the
 * start or after an honest member (the guard sees headers across its reads). */
Test(unpack, a_cpio_name_size_of_gigabytes_is_refused_before_libarchive_reads_it)
{
	sh("cd tree && echo hello.txt | cpio -o -H newc --quiet > ../one.cpio");
	struct mem one = slurp("one.cpio");
	char hdr[111];
	/* ino, mode, uid, gid, nlink, mtime, filesize, dev and rdev major and minor; the name
	 * size; the check */
	snprintf(hdr, sizeof(hdr), "070701%s%s%s%s", "00000001000081a40000000000000000",
		 "000000010000000000000005", "00000000000000000000000000000000",
		 "E000000000000000");
	cr_assert_eq(strlen(hdr), 110);
	size_t trailer =
		0; /* where one.cpio's TRAILER!!! header starts: the hostile one goes there */
	for (size_t i = 0; i + 10 <= one.len; i++)
		if (!memcmp(one.p + i, "TRAILER!!!", 10))
			trailer = i - 110;
	cr_assert_gt(trailer, 0);
	size_t len = trailer + 110 + 4096;
	unsigned char *p = calloc(1, len);
	memcpy(p, one.p, trailer);
	memcpy(p + trailer, hdr, 110);
	struct mem gz = gzip_bytes(p, len);
	const struct mem inputs[] = {{p + trailer, len - trailer}, {p, len}, gz};
	/* p + trailer: the hostile header first */
	for (size_t i = 0; i < 3; i++) {
		struct unpack_mem blob = {0};
		struct unpacked *n = NULL;
		log_clear_reason();
		cr_assert_eq(index_mem(inputs[i].p, inputs[i].len, &blob, &n), -EIO, "input %zu",
			     i);
		cr_assert_not_null(
			strstr(log_reason(), "a cpio header declares a name of 3758096384"),
			"input %zu: %s", i, log_reason());
		free(blob.p);
	}
	free(gz.p);
	free(p);
	free(one.p);
}

/* The guard reads the stream in blocks (128 KiB): a hostile header across the seam of two, plain
 * or under gzip, at every 4-byte aligned place where it straddles, is refused all the same. */
Test(unpack, a_cpio_name_of_gigabytes_across_a_block_seam_is_refused)
{
	char hdr[111], one[111];
	snprintf(hdr, sizeof(hdr), "070701%s%s%s%s", "00000001000081a40000000000000000",
		 "000000010000000000000005", "00000000000000000000000000000000",
		 "E000000000000000");
	for (size_t k = 4; k <= 108; k += 4) {
		/* an honest member "f" whose data ends where the hostile header starts */
		size_t at = (128u << 10) - k, len = at + 110 + 4096;
		unsigned char *p = calloc(1, len);
		snprintf(one, sizeof(one), "070701%s%08zX%s%s",
			 "00000001000081a4000000000000000000000001"
			 "00000000",
			 at - 112, "00000000000000000000000000000000", "0000000200000000");
		memcpy(p, one, 110);
		memcpy(p + 110, "f", 2);
		memcpy(p + at, hdr, 110);
		struct mem gz = gzip_bytes(p, len);
		const struct mem inputs[] = {{p, len}, gz};
		for (int i = 0; i < 2; i++) {
			struct unpack_mem blob = {0};
			struct unpacked *n = NULL;
			log_clear_reason();
			cr_assert_eq(index_mem(inputs[i].p, inputs[i].len, &blob, &n), -EIO,
				     "k %zu input %d", k, i);
			cr_assert_not_null(
				strstr(log_reason(), "a cpio header declares a name of 3758096384"),
				"k %zu input %d: %s", k, i, log_reason());
			free(blob.p);
		}
		free(gz.p);
		free(p);
	}
}

/* A newc header of a regular file at p, its name after it. */
static void newc_put(unsigned char *p, const char *name, size_t size)
{
	char h[111];
	snprintf(h, sizeof(h), "070701%s%08X%s%08X%s",
		 "00000001000081a4000000000000000000000001"
		 "6571ABCD",
		 (unsigned)size, "00000000000000000000000000000000", (unsigned)strlen(name) + 1,
		 "00000000");
	memcpy(p, h, 110);
	memcpy(p + 110, name, strlen(name) + 1);
}

/* libarchive's bidders read the end of a plain member before they start over at its start: the
 * guard must not join the tail of one block with bytes that do not follow it. Here a header
 * starts 60 bytes before the first 128 KiB seam, and the last 16 KiB that the bidders read
 * start 12 bytes into another header, whose mtime would be read as the first one's name size. */
Test(unpack, an_honest_cpio_is_not_refused_across_the_bidders_seeks)
{
	size_t two = (128u << 10) - 60, three = two + 112 + 4000, d3 = 16384 + 12 - 112 - 124;
	size_t len = three + 112 + d3 + 124;
	unsigned char *p = calloc(1, len);
	newc_put(p, "f", two - 112);
	newc_put(p + two, "g", 4000);
	newc_put(p + three, "h", d3);
	newc_put(p + three + 112 + d3, "TRAILER!!!", 0);
	struct unpack_mem blob = {0};
	struct unpacked *n = NULL;
	log_clear_reason();
	cr_assert_eq(index_mem(p, len, &blob, &n), 0, "%s", log_reason());
	cr_assert_not_null(find(n, "h"));
	unpack_free(n);
	free(blob.p);
	free(p);
}

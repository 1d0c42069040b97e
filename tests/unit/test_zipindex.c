#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "artifactfs/zipindex.h"
#include "zipbuild.h"

/* The archive under test, built by zipbuild.h; p is owned and freed by each test. */
struct mem {
	unsigned char *p;
	size_t len;
};

static ssize_t mem_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct mem *m = ctx;
	struct zip_buffer zb = {m->p, m->len};
	return zip_buffer_read(&zb, buf, len, off);
}

static struct zipindex *load(struct mem *m)
{
	struct zipindex *zi = NULL;
	int err = zipindex_load(m->len, mem_read, m, &zi);
	cr_assert_eq(err, 0, "zipindex_load = %d", err);
	return zi;
}

static unsigned char *pattern(size_t n, unsigned seed, bool compressible)
{
	unsigned char *p = malloc(n);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = compressible ? (unsigned char)("abcdefgh\n"[(i / 7) % 9]) : (unsigned char)(x >> 24);
	}
	return p;
}

static char *read_member(struct zipindex *zi, struct mem *m, const char *name)
{
	char *out = NULL;
	size_t len;
	const struct zip_member *zm = zipindex_find(zi, name);
	cr_assert_not_null(zm, "%s missing", name);
	cr_assert_eq(zip_reader_read_all(zi, zm, mem_read, m, 1 << 20, &out, &len), 0);
	return out;
}

Test(zipindex, folders_missing_from_the_archive_are_made_up)
{
	struct zb z = {0};
	zb_file(&z, "a/b/c.txt", "c");
	zb_file(&z, "a/d.txt", "d");
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	const struct zip_member *a = zipindex_find(zi, "a"), *b = zipindex_find(zi, "a/b/");
	cr_assert(a && a->type == ZIP_DIR && a->synthetic);
	cr_assert(b && b->type == ZIP_DIR);
	cr_assert_str_eq(zipindex_member(zi, a->first_child)->base, "b");
	cr_assert_str_eq(zipindex_member(zi, zipindex_member(zi, a->first_child)->next_sibling)->base,
			 "d.txt");
	cr_assert_eq(zipindex_find(zi, "")->type, ZIP_DIR);
	cr_assert_null(zipindex_find(zi, "a/b/none"));
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, unix_modes_symlinks_and_sizes_are_kept)
{
	struct zb z = {0};
	zb_add(&z, "bin/run", "#!/bin/sh\n", 10, (struct zb_opts){.mode = 0100755, .fake_size = -1});
	zb_add(&z, "link", "bin/run", 7, (struct zb_opts){.mode = 0120777, .fake_size = -1});
	zb_add(&z, "empty/", "", 0, (struct zb_opts){.mode = 0040755, .fake_size = -1});
	zb_add(&z, "dos.txt", "x", 1, (struct zb_opts){.mode = 0, .fake_size = -1});
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	const struct zip_member *run = zipindex_find(zi, "bin/run");
	cr_assert_eq(run->mode, 0755);
	cr_assert_eq(run->size, 10);
	cr_assert_eq(run->crc32, (uint32_t)crc32(0, (const Bytef *)"#!/bin/sh\n", 10));
	cr_assert_gt(run->mtime, 0);
	cr_assert_eq(zipindex_find(zi, "link")->type, ZIP_SYMLINK);
	char *target = read_member(zi, &m, "link");
	cr_assert_str_eq(target, "bin/run");
	free(target);
	cr_assert_eq(zipindex_find(zi, "empty")->type, ZIP_DIR);
	cr_assert_eq(zipindex_find(zi, "empty")->first_child, UINT32_MAX);
	cr_assert_eq(zipindex_find(zi, "dos.txt")->mode, 0);
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, names_escaping_the_folder_are_left_out_and_counted)
{
	const char *bad[] = {"../x", "/etc/x", "a/../../x", "./y", "a//b", "..", "a/.", "x/.."};
	struct zb z = {0};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		zb_file(&z, bad[i], "bad");
	zb_file(&z, "ok.txt", "ok");
	zb_file(&z, "..hidden", "a name, not an escape");
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	cr_assert_eq(zipindex_rejected(zi), sizeof(bad) / sizeof(bad[0]));
	cr_assert_null(zipindex_find(zi, "x"));
	cr_assert_null(zipindex_find(zi, "etc/x"));
	cr_assert_not_null(zipindex_find(zi, "ok.txt"));
	cr_assert_not_null(zipindex_find(zi, "..hidden"));
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, the_first_duplicate_wins_and_a_file_cannot_be_a_folder)
{
	struct zb z = {0};
	zb_file(&z, "dup", "first");
	zb_file(&z, "dup", "second");
	zb_file(&z, "f", "a file");
	zb_file(&z, "f/child", "under a file");
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	char *v = read_member(zi, &m, "dup");
	cr_assert_str_eq(v, "first");
	free(v);
	cr_assert_eq(zipindex_find(zi, "f")->type, ZIP_FILE);
	cr_assert_null(zipindex_find(zi, "f/child"));
	zipindex_free(zi);
	free(m.p);
}

static void read_back(int method, bool compressible)
{
	size_t n = 3 * 1024 * 1024 + 17;
	unsigned char *data = pattern(n, 7, compressible);
	struct zb z = {0};
	zb_add(&z, "big.bin", data, n, (struct zb_opts){.method = method, .mode = 0100644,
						       .fake_size = -1});
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	struct zip_reader *r;
	cr_assert_eq(zip_reader_new(zi, zipindex_find(zi, "big.bin"), mem_read, &m, &r), 0);
	unsigned char *buf = malloc(n);
	size_t done = 0;
	while (done < n) { /* sequential, in odd-sized pieces as the kernel might ask */
		ssize_t k = zip_reader_pread(r, buf + done, 131072 + 3, done);
		cr_assert_gt(k, 0);
		done += (size_t)k;
	}
	cr_assert_eq(memcmp(buf, data, n), 0);
	cr_assert_eq(zip_reader_pread(r, buf, 10, n), 0, "past the end reads nothing");
	uint64_t offs[] = {n - 5, 12345, 0, 2000000};
	for (size_t i = 0; i < 4; i++) { /* backwards and forwards */
		ssize_t k = zip_reader_pread(r, buf, 4096, offs[i]);
		size_t want = n - offs[i] < 4096 ? n - offs[i] : 4096;
		cr_assert_eq(k, (ssize_t)want);
		cr_assert_eq(memcmp(buf, data + offs[i], want), 0, "at %llu", (unsigned long long)offs[i]);
	}
	zip_reader_free(r);
	zipindex_free(zi);
	free(buf);
	free(data);
	free(m.p);
}

Test(zipindex, a_stored_member_reads_back_exactly)
{
	read_back(0, false);
}

Test(zipindex, a_deflated_member_reads_back_exactly)
{
	read_back(8, false);
	read_back(8, true);
}

Test(zipindex, a_crc_mismatch_fails_the_read_that_reaches_the_end)
{
	for (int method = 0; method <= 8; method += 8) {
		struct zb z = {0};
		zb_add(&z, "f", "hello, world", 12, (struct zb_opts){.method = method, .mode = 0100644,
								  .bad_crc = true, .fake_size = -1});
		struct mem m;
		m.p = zb_finish(&z, false, &m.len);
		struct zipindex *zi = load(&m);
		char *out = NULL;
		size_t len;
		cr_assert_eq(zip_reader_read_all(zi, zipindex_find(zi, "f"), mem_read, &m, 100, &out,
						 &len), -EIO, "method %d", method);
		zipindex_free(zi);
		free(m.p);
	}
}

Test(zipindex, a_zip_bomb_stops_at_the_declared_size)
{
	size_t n = 1 << 20;
	unsigned char *data = calloc(1, n);
	struct zb z = {0};
	zb_add(&z, "bomb", data, n, (struct zb_opts){.method = 8, .mode = 0100644, .fake_size = 1000});
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	cr_assert_eq(zipindex_find(zi, "bomb")->size, 1000);
	char *out = NULL;
	size_t len;
	cr_assert_eq(zip_reader_read_all(zi, zipindex_find(zi, "bomb"), mem_read, &m, 1 << 20, &out,
					 &len), -EIO);
	zipindex_free(zi);
	free(data);
	free(m.p);
}

Test(zipindex, zip64_end_records_are_followed)
{
	struct zb z = {0};
	zb_file(&z, "a.txt", "sixty-four");
	struct mem m;
	m.p = zb_finish(&z, true, &m.len);
	struct zipindex *zi = load(&m);
	char *v = read_member(zi, &m, "a.txt");
	cr_assert_str_eq(v, "sixty-four");
	free(v);
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, garbage_truncation_and_lies_are_eio)
{
	unsigned char junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(i * 7);
	struct zipindex *zi = NULL;
	cr_assert_eq(zipindex_load_buffer(junk, sizeof(junk), &zi), -EIO);
	cr_assert_eq(zipindex_load_buffer(junk, 3, &zi), -EIO);
	struct zb z = {0};
	zb_file(&z, "a.txt", "text");
	size_t len;
	unsigned char *p = zb_finish(&z, false, &len);
	cr_assert_eq(zipindex_load_buffer(p, len - 30, &zi), -EIO, "truncated");
	p[len - 6] = 0xff; /* the central directory's offset now points past the end */
	cr_assert_eq(zipindex_load_buffer(p, len, &zi), -EIO);
	free(p);
}

Test(zipindex, non_utf8_names_are_kept_as_bytes)
{
	struct zb z = {0};
	zb_file(&z, "caf\xe9.txt", "latin-1");
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	cr_assert_not_null(zipindex_find(zi, "caf\xe9.txt"));
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, a_hundred_thousand_members_index)
{
	struct zb z = {0};
	char name[64];
	for (int i = 0; i < 100000; i++) {
		snprintf(name, sizeof(name), "d%03d/f%06d.txt", i % 500, i);
		zb_file(&z, name, "x");
	}
	struct mem m;
	m.p = zb_finish(&z, true, &m.len);
	struct zipindex *zi = load(&m);
	cr_assert_eq(zipindex_count(zi), 1 + 500 + 100000);
	cr_assert_not_null(zipindex_find(zi, "d042/f099542.txt"));
	zipindex_free(zi);
	free(m.p);
}

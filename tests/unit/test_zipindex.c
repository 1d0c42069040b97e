/* Unit tests of the zip index and readers, on archives written by Python's zipfile and, for what no
 * sane writer produces (hostile names, lies about sizes, zip bombs), by zipbuild.h. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "artifactfs/log.h"
#include "artifactfs/membudget.h"
#include "artifactfs/zipindex.h"
#include "artifactfs/zipread.h"
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
		p[i] = compressible ? (unsigned char)("abcdefgh\n"[(i / 7) % 9])
				    : (unsigned char)(x >> 24);
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
	cr_assert_str_eq(
		zipindex_member(zi, zipindex_member(zi, a->first_child)->next_sibling)->base,
		"d.txt");
	cr_assert_eq(zipindex_find(zi, "")->type, ZIP_DIR);
	cr_assert_null(zipindex_find(zi, "a/b/none"));
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, unix_modes_symlinks_and_sizes_are_kept)
{
	struct zb z = {0};
	zb_add(&z, "bin/run", "#!/bin/sh\n", 10,
	       (struct zb_opts){.mode = 0100755, .fake_size = -1});
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
	zb_add(&z, "big.bin", data, n,
	       (struct zb_opts){.method = method, .mode = 0100644, .fake_size = -1});
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
		cr_assert_eq(memcmp(buf, data + offs[i], want), 0, "at %llu",
			     (unsigned long long)offs[i]);
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
		zb_add(&z, "f", "hello, world", 12,
		       (struct zb_opts){.method = method,
					.mode = 0100644,
					.bad_crc = true,
					.fake_size = -1});
		struct mem m;
		m.p = zb_finish(&z, false, &m.len);
		struct zipindex *zi = load(&m);
		char *out = NULL;
		size_t len;
		cr_assert_eq(zip_reader_read_all(zi, zipindex_find(zi, "f"), mem_read, &m, 100,
						 &out, &len),
			     -EIO, "method %d", method);
		zipindex_free(zi);
		free(m.p);
	}
}

/* An empty member has the CRC-32 of nothing, 0: a central directory that says "0 bytes" over a
 * stream holding more, or an empty member with another CRC, is corrupt, not an empty file. */
Test(zipindex, an_empty_member_with_a_nonzero_crc_is_eio)
{
	struct {
		int method;
		const char *data;
		bool bad_crc;
	} cases[] = {{8, "hello, world", false}, {0, "", true}, {8, "", true}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct zb z = {0};
		zb_add(&z, "f", cases[i].data, strlen(cases[i].data),
		       (struct zb_opts){.method = cases[i].method,
					.mode = 0100644,
					.bad_crc = cases[i].bad_crc,
					.fake_size = 0});
		struct mem m;
		m.p = zb_finish(&z, false, &m.len);
		struct zipindex *zi = load(&m);
		char *out = NULL;
		size_t len;
		cr_assert_eq(zip_reader_read_all(zi, zipindex_find(zi, "f"), mem_read, &m, 100,
						 &out, &len),
			     -EIO, "case %zu", i);
		zipindex_free(zi);
		free(m.p);
	}
}

/* Reads member f of m in pieces of 1000 bytes from its end backwards; returns the last result. */
static ssize_t read_backwards(struct mem *m, size_t n, unsigned char *buf)
{
	struct zipindex *zi = load(m);
	struct zip_reader *r;
	cr_assert_eq(zip_reader_new(zi, zipindex_find(zi, "f"), mem_read, m, &r), 0);
	ssize_t k = 0;
	for (size_t end = n; end > 0 && k >= 0;) {
		size_t start = end > 1000 ? end - 1000 : 0;
		k = zip_reader_pread(r, buf + start, end - start, start);
		if (k >= 0 && start > 0)
			cr_assert_eq(k, (ssize_t)(end - start), "at %zu", start);
		end = start;
	}
	zip_reader_free(r);
	zipindex_free(zi);
	return k;
}

Test(zipindex, a_stored_member_read_out_of_order_is_checked_once_whole)
{
	size_t n = 10007;
	unsigned char *data = pattern(n, 3, false), *buf = malloc(n);
	for (int bad = 0; bad <= 1; bad++) {
		struct zb z = {0};
		zb_add(&z, "f", data, n,
		       (struct zb_opts){
			       .method = 0, .mode = 0100644, .bad_crc = bad, .fake_size = -1});
		struct mem m;
		m.p = zb_finish(&z, false, &m.len);
		ssize_t last = read_backwards(&m, n, buf);
		if (bad) {
			cr_assert_eq(last, -EIO, "the read that completes the member fails");
		} else {
			cr_assert_eq(last, 7, "the first 7 bytes come last");
			cr_assert_eq(memcmp(buf, data, n), 0);
		}
		free(m.p);
	}
	free(buf);
	free(data);
}

/* Reads member f of m in 4 KiB pieces, the even-numbered ones first, then the odd ones from the
 * end back: hundreds of scattered pieces at once. Returns the first error, or 0 when every read
 * returned its whole piece. */
static ssize_t read_scattered(struct mem *m, size_t n, unsigned char *buf)
{
	struct zipindex *zi = load(m);
	struct zip_reader *r;
	cr_assert_eq(zip_reader_new(zi, zipindex_find(zi, "f"), mem_read, m, &r), 0);
	size_t pieces = (n + 4095) / 4096;
	ssize_t err = 0;
	for (size_t k = 0; k < pieces && err == 0; k++) {
		size_t i = k < (pieces + 1) / 2 ? 2 * k : 2 * (pieces - 1 - k) + 1;
		size_t len = n - 4096 * i < 4096 ? n - 4096 * i : 4096;
		ssize_t got = zip_reader_pread(r, buf + 4096 * i, len, 4096 * i);
		if (got < 0)
			err = got;
		else
			cr_assert_eq(got, (ssize_t)len, "piece %zu", i);
	}
	if (err)
		cr_assert_eq(zip_reader_pread(r, buf, 1, 0), err, "the failure is sticky");
	zip_reader_free(r);
	zipindex_free(zi);
	return err;
}

Test(zipindex, a_stored_member_read_in_hundreds_of_scattered_pieces_is_checked)
{
	size_t n = 700 * 4096 + 123;
	unsigned char *data = pattern(n, 5, false), *buf = malloc(n);
	/* no corruption; a byte flipped in a piece read early, after 256 pieces, last, in the tail */
	size_t flips[] = {SIZE_MAX, 2 * 4096 + 9, 600 * 4096 + 1, 1 * 4096 + 4095, n - 1};
	for (size_t c = 0; c < sizeof(flips) / sizeof(flips[0]); c++) {
		struct zb z = {0};
		zb_add(&z, "f", data, n,
		       (struct zb_opts){.method = 0, .mode = 0100644, .fake_size = -1});
		struct mem m;
		m.p = zb_finish(&z, false, &m.len);
		size_t data_off = 30 + 1; /* the local header and the name "f" */
		cr_assert_eq(memcmp(m.p + data_off, data, n), 0);
		if (flips[c] != SIZE_MAX)
			m.p[data_off + flips[c]] ^= 0x20;
		ssize_t err = read_scattered(&m, n, buf);
		if (flips[c] == SIZE_MAX) {
			cr_assert_eq(err, 0);
			cr_assert_eq(memcmp(buf, data, n), 0);
		} else {
			cr_assert_eq(err, -EIO, "a byte flipped at %zu is found", flips[c]);
		}
		free(m.p);
	}
	free(buf);
	free(data);
}

Test(zipindex, a_zip_bomb_stops_at_the_declared_size)
{
	size_t n = 1 << 20;
	unsigned char *data = calloc(1, n);
	struct zb z = {0};
	zb_add(&z, "bomb", data, n,
	       (struct zb_opts){.method = 8, .mode = 0100644, .fake_size = 1000});
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	cr_assert_eq(zipindex_find(zi, "bomb")->size, 1000);
	char *out = NULL;
	size_t len;
	cr_assert_eq(zip_reader_read_all(zi, zipindex_find(zi, "bomb"), mem_read, &m, 1 << 20, &out,
					 &len),
		     -EIO);
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

/* ---- archives written by Python's zipfile, an independent writer ---- */

static const char py_script[] =
	"import stat, sys, zipfile\n"
	"out, binp, txtp, mode = sys.argv[1:5]\n"
	"comp = zipfile.ZIP_STORED if mode == 'store' else zipfile.ZIP_DEFLATED\n"
	"def info(name, m, t):\n"
	"    i = zipfile.ZipInfo(name, date_time=(2023, 11, 14, 22, 13, 20 + 2 * t))\n"
	"    i.create_system = 3\n"
	"    i.external_attr = m << 16 | (0x10 if stat.S_ISDIR(m) else 0)\n"
	"    i.compress_type = comp\n"
	"    return i\n"
	"with zipfile.ZipFile(out, 'w') as z:\n"
	"    z.writestr(info('dir/', stat.S_IFDIR | 0o750, 0), b'')\n"
	"    for name, path in (('dir/big.bin', binp), ('dir/big.txt', txtp)):\n"
	"        with z.open(info(name, stat.S_IFREG | 0o640, 1), 'w',\n"
	"                    force_zip64=(mode == 'zip64')) as f:\n"
	"            f.write(open(path, 'rb').read())\n"
	"    z.writestr(info('run.sh', stat.S_IFREG | 0o755, 2), b'#!/bin/sh\\n')\n"
	"    z.writestr(info('empty', stat.S_IFREG | 0o644, 3), b'')\n"
	"    z.writestr(info('hollow/', stat.S_IFDIR | 0o755, 4), b'')\n"
	"    z.writestr(info('to-run', stat.S_IFLNK | 0o777, 5), b'run.sh')\n"
	"    z.writestr(info('deep/er/file', stat.S_IFREG | 0o644, 6), b'deep')\n";

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	rewind(f);
	unsigned char *p = malloc(*len);
	cr_assert_eq(fread(p, 1, *len, f), *len);
	fclose(f);
	return p;
}

/* Runs py_script with mode; the two big members hold bin and txt (n bytes each). */
static unsigned char *py_build(const char *mode, const void *bin, const void *txt, size_t n,
			       size_t *len)
{
	char dir[] = "/tmp/zipindex-test-XXXXXX", path[3][64], cmd[512];
	cr_assert_not_null(mkdtemp(dir));
	const char *leaf[] = {"out.zip", "big.bin", "big.txt"};
	for (int i = 0; i < 3; i++)
		snprintf(path[i], sizeof(path[i]), "%s/%s", dir, leaf[i]);
	write_file(path[1], bin, n);
	write_file(path[2], txt, n);
	const char *py = getenv("PYTHON") ? getenv("PYTHON") : "python3";
	snprintf(cmd, sizeof(cmd), "%s - %s %s %s %s", py, path[0], path[1], path[2], mode);
	FILE *p = popen(cmd, "w");
	cr_assert_not_null(p);
	fputs(py_script, p);
	cr_assert_eq(pclose(p), 0, "python's zipfile failed");
	unsigned char *zip = read_file(path[0], len);
	for (int i = 0; i < 3; i++)
		unlink(path[i]);
	rmdir(dir);
	return zip;
}

/* Reads at many offsets, forwards and backwards, and compares. */
static void check_random_reads(struct zip_reader *r, const unsigned char *data, size_t n)
{
	unsigned char *buf = malloc(70000);
	uint32_t x = 12345;
	for (int i = 0; i < 40; i++) {
		x = x * 1103515245u + 12345u;
		uint64_t off = (x >> 4) % n;
		size_t len = 1 + (x % 69999);
		size_t want = n - off < len ? n - off : len;
		ssize_t k = zip_reader_pread(r, buf, len, off);
		cr_assert_eq(k, (ssize_t)want, "at %llu: %zd", (unsigned long long)off, k);
		cr_assert_eq(memcmp(buf, data + off, want), 0, "at %llu", (unsigned long long)off);
	}
	free(buf);
}

static int64_t py_mtime(int t)
{
	struct tm tm = {.tm_year = 123,
			.tm_mon = 10,
			.tm_mday = 14,
			.tm_hour = 22,
			.tm_min = 13,
			.tm_sec = 20 + 2 * t};
	return (int64_t)timegm(&tm);
}

static void round_trip(const char *mode)
{
	size_t n = 5 * 1024 * 1024 + 11;
	unsigned char *data = pattern(n, 3, false), *text = pattern(n, 4, true);
	struct mem m;
	m.p = py_build(mode, data, text, n, &m.len);
	struct zipindex *zi = load(&m);
	cr_assert_eq(zipindex_rejected(zi), 0);
	cr_assert_eq(zipindex_count(zi), 1 + 8 + 2, "root, 8 entries, deep/ and deep/er/");
	cr_assert_eq(zipindex_find(zi, "dir")->mode, 0750);
	cr_assert_eq(zipindex_find(zi, "run.sh")->mode, 0755);
	cr_assert_eq(zipindex_find(zi, "run.sh")->mtime, py_mtime(2));
	cr_assert_eq(zipindex_find(zi, "empty")->size, 0);
	cr_assert_eq(zipindex_find(zi, "hollow")->type, ZIP_DIR);
	cr_assert_eq(zipindex_find(zi, "hollow")->first_child, UINT32_MAX);
	cr_assert(zipindex_find(zi, "deep/er")->synthetic);
	const struct zip_member *l = zipindex_find(zi, "to-run");
	cr_assert_eq(l->type, ZIP_SYMLINK);
	cr_assert_eq(l->size, 6);
	const char *small[][2] = {{"to-run", "run.sh"}, {"empty", ""}, {"deep/er/file", "deep"}};
	for (int i = 0; i < 3; i++) {
		char *v = read_member(zi, &m, small[i][0]);
		cr_assert_str_eq(v, small[i][1]);
		free(v);
	}
	const char *big[] = {"dir/big.bin", "dir/big.txt"};
	const unsigned char *want[] = {data, text};
	for (int i = 0; i < 2; i++) {
		struct zip_reader *r;
		const struct zip_member *zm = zipindex_find(zi, big[i]);
		cr_assert_eq(zm->size, n);
		cr_assert_eq(zip_reader_new(zi, zm, mem_read, &m, &r), 0);
		check_random_reads(r, want[i], n);
		zip_reader_free(r);
		char *all;
		size_t len;
		cr_assert_eq(zip_reader_read_all(zi, zm, mem_read, &m, n, &all, &len), 0);
		cr_assert_eq(len, n);
		cr_assert_eq(memcmp(all, want[i], n), 0);
		free(all);
	}
	zipindex_free(zi);
	free(data);
	free(text);
	free(m.p);
}

Test(zipindex, a_python_deflated_archive_lists_and_reads_back)
{
	round_trip("deflate");
}

Test(zipindex, a_python_stored_archive_lists_and_reads_back)
{
	round_trip("store");
}

Test(zipindex, a_python_archive_with_zip64_local_headers_reads_back)
{
	round_trip("zip64");
}

/* ---- hand-built archives ---- */

static struct zb_opts plain(void)
{
	return (struct zb_opts){.method = 0, .mode = 0100644, .fake_size = -1};
}

Test(zipindex, zip64_extra_fields_replace_all_ones_sizes_and_offsets)
{
	struct zb z = {0};
	zb_file(&z, "first", "1");
	struct zb_opts o = plain();
	o.zip64 = true;
	o.method = 8;
	zb_add(&z, "big", "zip64 sizes", 11, o);
	struct mem m;
	m.p = zb_finish(&z, true, &m.len);
	struct zipindex *zi = load(&m);
	const struct zip_member *b = zipindex_find(zi, "big");
	cr_assert_eq(b->size, 11);
	cr_assert_gt(b->local_offset, 0);
	char *v = read_member(zi, &m, "big");
	cr_assert_str_eq(v, "zip64 sizes");
	free(v);
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, a_short_zip64_field_leaves_the_member_out)
{
	struct zb z = {0};
	struct zb_opts o = plain();
	o.zip64 = true;
	zb_add(&z, "big", "x", 1, o);
	zb_file(&z, "ok", "y");
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	/* shrink the zip64 field's declared length from 24 to 8: it then lacks two values */
	unsigned char *f = memmem(m.p, m.len, "\x01\x00\x18\x00", 4);
	cr_assert_not_null(f);
	f[2] = 8;
	struct zipindex *zi = load(&m);
	cr_assert_null(zipindex_find(zi, "big"));
	cr_assert_not_null(zipindex_find(zi, "ok"));
	cr_assert_eq(zipindex_rejected(zi), 1);
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, the_extended_timestamp_gives_the_mtime_and_dos_time_is_the_fallback)
{
	struct zb z = {0};
	struct zb_opts o = plain();
	o.mtime = 1234567890;
	zb_add(&z, "ut", "x", 1, o);
	zb_file(&z, "dos", "y");
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	cr_assert_eq(zipindex_find(zi, "ut")->mtime, 1234567890);
	/* zipbuild writes DOS time 0 and date 0x5b74: 2025-11-20 00:00:00 */
	struct tm tm = {.tm_mday = 20, .tm_mon = 10, .tm_year = 125};
	cr_assert_eq(zipindex_find(zi, "dos")->mtime, (int64_t)timegm(&tm));
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, data_starts_after_the_local_header_extra_not_the_central_one)
{
	struct zb z = {0};
	struct zb_opts o = plain();
	o.lfh_pad = 37;
	zb_add(&z, "padded", "payload", 7, o);
	o.method = 8;
	zb_add(&z, "padded.z", "payload", 7, o);
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	for (int i = 0; i < 2; i++) {
		char *v = read_member(zi, &m, i ? "padded.z" : "padded");
		cr_assert_str_eq(v, "payload");
		free(v);
	}
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, backslash_escapes_and_nul_bytes_in_names_are_left_out)
{
	struct zb z = {0};
	zb_file(&z, "..\\x", "bad");
	zb_file(&z, "a\\..\\..\\x", "bad");
	zb_file(&z, "\\abs", "bad");
	struct zb_opts o = plain();
	o.name_len = 5;
	zb_add(&z, "ab\0cd", "bad", 3, o);
	zb_file(&z, "a\\b", "a backslash is just a byte on unix");
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	cr_assert_eq(zipindex_rejected(zi), 4);
	cr_assert_null(zipindex_find(zi, "ab"));
	cr_assert_not_null(zipindex_find(zi, "a\\b"));
	cr_assert_eq(zipindex_count(zi), 2);
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, a_folder_named_before_a_file_of_the_same_name_keeps_the_folder)
{
	struct zb z = {0};
	zb_file(&z, "a/b", "under a");
	zb_file(&z, "a", "a file too late");
	zb_file(&z, "c/", "");
	zb_file(&z, "c", "a file after the folder entry");
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	cr_assert_eq(zipindex_find(zi, "a")->type, ZIP_DIR);
	cr_assert_not_null(zipindex_find(zi, "a/b"));
	cr_assert_eq(zipindex_find(zi, "c")->type, ZIP_DIR);
	cr_assert_eq(zipindex_rejected(zi), 1, "the file a; c is a plain duplicate");
	zipindex_free(zi);
	free(m.p);
}

/* Entries as unpacking in order leaves them (tar, cpio): names are "name" for a file, "name/" for
 * a folder; local_offset tells the copies apart. Returns the index. */
static struct zipindex *from_members(const char *const *names, size_t n, bool last_wins)
{
	struct zip_member in[16];
	cr_assert_leq(n, 16);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(names[i]);
		bool dir = names[i][len - 1] == '/';
		in[i] = (struct zip_member){.name = names[i],
					    .base = names[i] + len - dir,
					    .type = dir ? ZIP_DIR : ZIP_FILE,
					    .local_offset = i};
	}
	struct zipindex *zi = NULL;
	cr_assert_eq(zipindex_from_members(in, n, last_wins, &zi), 0);
	return zi;
}

/* What "tar -x" leaves: the last copy of a name; a file takes what was under its name along; an
 * entry under a file's name makes it a folder again; a folder over a folder keeps both's. */
Test(zipindex, with_last_wins_each_entry_replaces_what_its_name_held)
{
	static const char *const v[] = {"f",     "f",   "d/", "d/x", "d",  "g",   "g/y", "a",
					"a/b/c", "a/b", "e/", "e/1", "e/", "e/2", "h",   "h/"};
	struct zipindex *zi = from_members(v, sizeof(v) / sizeof(v[0]), true);
	const struct {
		const char *name;
		enum zip_type type;
		uint64_t copy; /* the entry that stays; UINT64_MAX: made up, or gone if a file */
	} want[] = {
		{"f", ZIP_FILE, 1},         {"d", ZIP_FILE, 4},       {"d/x", 0, UINT64_MAX},
		{"g", ZIP_DIR, UINT64_MAX}, {"g/y", ZIP_FILE, 6},     {"a", ZIP_DIR, UINT64_MAX},
		{"a/b", ZIP_FILE, 9},       {"a/b/c", 0, UINT64_MAX}, {"e", ZIP_DIR, 12},
		{"e/1", ZIP_FILE, 11},      {"e/2", ZIP_FILE, 13},    {"h", ZIP_DIR, 15}};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct zip_member *m = zipindex_find(zi, want[i].name);
		if (want[i].type == 0 && want[i].copy == UINT64_MAX) {
			cr_assert_null(m, "%s is gone", want[i].name);
			continue;
		}
		cr_assert(m && m->type == want[i].type, "%s", want[i].name);
		if (want[i].copy == UINT64_MAX)
			cr_assert(m->synthetic, "%s is made up", want[i].name);
		else
			cr_assert_eq(m->local_offset, want[i].copy, "%s", want[i].name);
	}
	zipindex_free(zi);

	zi = from_members(v, sizeof(v) / sizeof(v[0]), false); /* zip's rule: the first stays */
	cr_assert_eq(zipindex_find(zi, "f")->local_offset, 0);
	cr_assert_eq(zipindex_find(zi, "d")->type, ZIP_DIR);
	cr_assert_eq(zipindex_find(zi, "g")->local_offset, 5);
	zipindex_free(zi);
}

Test(zipindex, siblings_are_listed_in_strcmp_order_whatever_sorts_around_the_slash)
{
	struct zb z = {0};
	const char *names[] = {"a.txt", "a/z", "a-b", "a/c/d", "a0", "b", "a/c.txt", "A"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		zb_file(&z, names[i], names[i]);
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	const char *root[] = {"A", "a", "a-b", "a.txt", "a0", "b"}, *in_a[] = {"c", "c.txt", "z"};
	uint32_t i = zipindex_member(zi, 0)->first_child;
	for (size_t k = 0; k < 6; k++, i = zipindex_member(zi, i)->next_sibling)
		cr_assert_str_eq(zipindex_member(zi, i)->base, root[k]);
	cr_assert_eq(i, UINT32_MAX);
	i = zipindex_find(zi, "a")->first_child;
	for (size_t k = 0; k < 3; k++, i = zipindex_member(zi, i)->next_sibling) {
		cr_assert_str_eq(zipindex_member(zi, i)->base, in_a[k]);
		cr_assert_eq(zipindex_member(zi, zipindex_member(zi, i)->parent),
			     zipindex_find(zi, "a"));
	}
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		char *v = read_member(zi, &m, names[k]);
		cr_assert_str_eq(v, names[k]);
		free(v);
	}
	cr_assert_not_null(zipindex_find(zi, "/a/c/"));
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, encrypted_members_are_listed_but_not_read)
{
	struct zb z = {0};
	struct zb_opts o = plain();
	o.encrypted = true;
	zb_add(&z, "secret", "xxxx", 4, o);
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	const struct zip_member *s = zipindex_find(zi, "secret");
	cr_assert(s && s->encrypted);
	struct zip_reader *r;
	cr_assert_eq(zip_reader_new(zi, s, mem_read, &m, &r), -ENOTSUP);
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, an_empty_archive_has_only_the_root)
{
	struct zb z = {0};
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	cr_assert_eq(zipindex_count(zi), 1);
	cr_assert_eq(zipindex_find(zi, "/")->first_child, UINT32_MAX);
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, a_signature_inside_the_comment_does_not_hide_the_real_end)
{
	struct zb z = {0};
	zb_file(&z, "a.txt", "text");
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	m.p = realloc(m.p, m.len + 22);
	m.p[m.len - 2] = 22; /* the comment is a fake EOCD pointing nowhere */
	unsigned char fake[22] = {0x50, 0x4b, 0x05, 0x06, [10] = 9, [12] = 0xff, [16] = 0x77};
	memcpy(m.p + m.len, fake, 22);
	m.len += 22;
	struct zipindex *zi = load(&m);
	cr_assert_not_null(zipindex_find(zi, "a.txt"));
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, members_whose_data_overlaps_the_central_directory_are_left_out)
{
	struct zb z = {0};
	struct zb_opts o = plain();
	zb_add(&z, "liar", "abc", 3, o);
	zb_file(&z, "ok", "fine");
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	/* the first central entry: make its compressed size huge */
	unsigned char *cd = memmem(m.p, m.len, "PK\x01\x02", 4);
	cd[20] = 0xff;
	cd[21] = 0xff;
	struct zipindex *zi = load(&m);
	cr_assert_null(zipindex_find(zi, "liar"));
	cr_assert_not_null(zipindex_find(zi, "ok"));
	cr_assert_eq(zipindex_rejected(zi), 1);
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, corrupt_deflate_data_is_eio_and_stays_eio)
{
	size_t n = 300000;
	unsigned char *data = pattern(n, 9, true);
	struct zb z = {0};
	struct zb_opts o = plain();
	o.method = 8;
	zb_add(&z, "f", data, n, o);
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	const struct zip_member *f = zipindex_find(zi, "f");
	for (uint64_t i = 0; i < f->comp_size / 2; i++) /* trash the first half of the stream */
		m.p[f->local_offset + 31 + i] ^= 0x5a;
	struct zip_reader *r;
	cr_assert_eq(zip_reader_new(zi, f, mem_read, &m, &r), 0);
	unsigned char buf[65536];
	ssize_t k = 0;
	for (uint64_t off = 0; off < n && k >= 0; off += sizeof(buf))
		k = zip_reader_pread(r, buf, sizeof(buf), off);
	cr_assert_eq(k, -EIO);
	cr_assert_eq(zip_reader_pread(r, buf, 10, 0), -EIO, "a failed reader stays failed");
	zip_reader_free(r);
	zipindex_free(zi);
	free(data);
	free(m.p);
}

Test(zipindex, a_member_cut_short_by_truncation_is_eio)
{
	size_t n = 200000;
	unsigned char *data = pattern(n, 5, false);
	struct zb z = {0};
	zb_add(&z, "f", data, n, plain());
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	struct zipindex *zi = load(&m);
	struct mem cut = {m.p, 1000}; /* what rd can reach ends early */
	char *out;
	size_t len;
	cr_assert_eq(zip_reader_read_all(zi, zipindex_find(zi, "f"), mem_read, &cut, n, &out, &len),
		     -EIO);
	zipindex_free(zi);
	free(data);
	free(m.p);
}

struct flaky {
	struct mem m;
	int fail_at; /* the fail_at-th call fails with -EAGAIN */
	int calls;
};

static ssize_t flaky_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct flaky *f = ctx;
	if (++f->calls == f->fail_at)
		return -EAGAIN;
	return mem_read(&f->m, buf, len, off);
}

Test(zipindex, a_failed_fetch_is_returned_and_the_next_read_starts_over)
{
	size_t n = 2 * 1024 * 1024;
	unsigned char *data = pattern(n, 6, false);
	struct zb z = {0};
	struct zb_opts o = plain();
	o.method = 8;
	zb_add(&z, "f", data, n, o);
	struct flaky f = {.fail_at = 3};
	f.m.p = zb_finish(&z, false, &f.m.len);
	struct zipindex *zi = load(&f.m);
	struct zip_reader *r;
	cr_assert_eq(zip_reader_new(zi, zipindex_find(zi, "f"), flaky_read, &f, &r), 0);
	unsigned char *buf = malloc(n);
	size_t done = 0;
	bool failed = false;
	while (done < n) {
		ssize_t k = zip_reader_pread(r, buf + done, 65536, done);
		if (k == -EAGAIN && !failed) {
			failed = true;
			continue;
		}
		cr_assert_gt(k, 0, "at %zu: %zd", done, k);
		done += (size_t)k;
	}
	cr_assert(failed);
	cr_assert_eq(memcmp(buf, data, n), 0);
	zip_reader_free(r);
	zipindex_free(zi);
	free(buf);
	free(data);
	free(f.m.p);
}

Test(zipindex, a_hundred_thousand_deep_members_fit_in_a_few_mib)
{
	struct zb z = {0};
	char name[128];
	for (int i = 0; i < 100000; i++) {
		snprintf(name, sizeof(name), "build/out/module-%03d/src/lib/file-%06d.o", i % 700,
			 i);
		zb_file(&z, name, "");
	}
	struct mem m;
	m.p = zb_finish(&z, true, &m.len);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct zipindex *zi = load(&m);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	size_t bytes = zipindex_memory_bytes(zi);
	cr_log_info("100,000 members: %zu members, %.1f MiB, loaded in %.0f ms", zipindex_count(zi),
		    bytes / 1048576.0,
		    (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	cr_assert_eq(zipindex_count(zi), 1 + 2 + 700 * 3 + 100000);
	cr_assert_lt(bytes, 16u << 20);
	cr_assert_not_null(zipindex_find(zi, "build/out/module-042/src/lib/file-099442.o"));
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex, absurd_entry_counts_and_oversized_directories_are_eio)
{
	struct zb z = {0};
	zb_file(&z, "a.txt", "text");
	size_t len;
	unsigned char *p = zb_finish(&z, false, &len);
	struct zipindex *zi = NULL;
	p[len - 12] = 0xff; /* 65535 entries in a one-entry directory */
	p[len - 11] = 0xff;
	cr_assert_eq(zipindex_load_buffer(p, len, &zi), -EIO);
	p[len - 12] = 1;
	p[len - 11] = 0;
	p[len - 9] = 0x10; /* a directory of 4 KiB more in a 100-byte archive */
	cr_assert_eq(zipindex_load_buffer(p, len, &zi), -EIO);
	p[len - 9] = 0;
	cr_assert_eq(zipindex_load_buffer(p, len, &zi), 0, "the archive itself is fine");
	zipindex_free(zi);
	free(p);
}

/* ---- symbolic links resolved through the archive ---- */

/* An archive of links ("name", "target"), files ("name", NULL) and folders ("name/", NULL). */
static struct zipindex *link_archive(struct mem *m, const char *const *spec)
{
	struct zb z = {0};
	for (size_t i = 0; spec[i]; i += 2) {
		const char *name = spec[i], *target = spec[i + 1];
		size_t nl = strlen(name);
		if (target)
			zb_add(&z, name, target, strlen(target),
			       (struct zb_opts){.mode = S_IFLNK | 0777, .fake_size = -1});
		else if (nl && name[nl - 1] == '/')
			zb_add(&z, name, "", 0,
			       (struct zb_opts){.mode = S_IFDIR | 0755, .fake_size = -1});
		else
			zb_file(&z, name, name);
	}
	m->p = zb_finish(&z, false, &m->len);
	return load(m);
}

struct link_reads {
	struct zipindex *zi;
	struct mem *m;
	unsigned calls;
	int fail; /* returned instead of the target when set */
};

static int read_target(void *ctx, const struct zip_member *link, char **out, size_t *len)
{
	struct link_reads *lr = ctx;
	lr->calls++;
	if (lr->fail)
		return lr->fail;
	return zip_reader_read_all(lr->zi, link, mem_read, lr->m, 4096, out, len);
}

/* Resolves the link named name; *to gets the name it leads to ("(dangling)" for NULL). */
static int resolve(struct link_reads *lr, const char *name, const char **to)
{
	const struct zip_member *link = zipindex_find(lr->zi, name), *out = NULL;
	cr_assert_not_null(link, "%s missing", name);
	lr->calls = 0;
	int err = zipindex_resolve_link(lr->zi, link, read_target, lr, &out, NULL);
	*to = out ? out->name : "(dangling)";
	return err;
}

/* The canonical text of the link named name (what readlink gives), in a static buffer. */
static const char *canonical(struct link_reads *lr, const char *name)
{
	static char buf[4096];
	const struct zip_member *out;
	char *text = NULL;
	int err = zipindex_resolve_link(lr->zi, zipindex_find(lr->zi, name), read_target, lr, &out,
					&text);
	cr_assert_eq(err, 0, "%s: %d", name, err);
	snprintf(buf, sizeof(buf), "%s", text);
	free(text);
	return buf;
}

#define cr_assert_resolves(lr, name, expected)               \
	do {                                                 \
		const char *to_;                             \
		int err_ = resolve(lr, name, &to_);          \
		cr_assert_eq(err_, 0, "%s: %d", name, err_); \
		cr_assert_str_eq(to_, expected, "%s", name); \
	} while (0)

#define cr_assert_refused(lr, name, errno_)                                       \
	do {                                                                      \
		const char *to_;                                                  \
		int err_ = resolve(lr, name, &to_);                               \
		cr_assert_eq(err_, errno_, "%s: %d, not %d", name, err_, errno_); \
	} while (0)

Test(zipindex_links, a_link_inside_on_its_own_can_lead_out_through_another)
{
	static const char *const spec[] = {
		"a/b/c/d/e/f/g/h/up",
		"../../../../../../..",
		"esc",
		"a/b/c/d/e/f/g/h/up/../../../../../../../../../etc/passwd",
		"a/b/top",
		"../..",
		"esc-dir",
		"a/b/top/..", /* one ".." from the root a link led to */
		NULL};
	struct mem m;
	struct zipindex *zi = link_archive(&m, spec);
	struct link_reads lr = {zi, &m, 0, 0};
	cr_assert_resolves(&lr, "a/b/c/d/e/f/g/h/up", "a");
	cr_assert_resolves(&lr, "a/b/top", "");
	cr_assert_refused(&lr, "esc", -EXDEV);
	cr_assert_refused(&lr, "esc-dir", -EXDEV);
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex_links, chains_and_folder_links_resolve_physically)
{
	static const char *const spec[] = {
		"f.txt",       NULL,
		"d/sub/x.txt", NULL,
		"d/f.txt",     NULL,
		"l1",          "l2",
		"l2",          "d/l3",
		"d/l3",        "../f.txt",
		"dl",          "d",
		"via",         "dl/f.txt",
		"sl",          "d/sub",
		"parent",      "sl/../f.txt", /* the parent of d/sub, not of the link: d/f.txt */
		"self",        ".",
		"a/b/back",    "./../../f.txt",
		"latest",      "d/sub/x.txt",
		"d/sub/to-d",  "../../d",
		NULL};
	struct mem m;
	struct zipindex *zi = link_archive(&m, spec);
	struct link_reads lr = {zi, &m, 0, 0};
	cr_assert_resolves(&lr, "l1", "f.txt");
	cr_assert_eq(lr.calls, 3);
	cr_assert_resolves(&lr, "dl", "d");
	cr_assert_resolves(&lr, "via", "d/f.txt");
	cr_assert_resolves(&lr, "parent", "d/f.txt");
	cr_assert_resolves(&lr, "self", "");
	cr_assert_resolves(&lr, "a/b/back", "f.txt");
	cr_assert_resolves(&lr, "latest", "d/sub/x.txt");
	cr_assert_resolves(&lr, "d/sub/to-d", "d");
	zipindex_free(zi);
	free(m.p);
}

/* readlink gives the canonical text: its ".." all in front, never more than the link is deep,
 * then real folders. A tree that changes between two readlinks of one walk (a ref's job folder
 * turning into another job's) then cannot lead the kernel out: it never climbs out of a link. */
Test(zipindex_links, readlink_text_is_canonical)
{
	static const char *const spec[] = {"f.txt",       NULL,
					   "d/sub/x.txt", NULL,
					   "d/f.txt",     NULL,
					   "l1",          "l2",
					   "l2",          "d/l3",
					   "d/l3",        "../f.txt",
					   "sl",          "d/sub",
					   "parent",      "sl/../f.txt",
					   "self",        ".",
					   "a/b/back",    "./../../f.txt",
					   "a/b/c/up",    "../..",
					   "a/b/c/via",   "up/b/c/../../../d//sub/",
					   "latest",      "d/sub/x.txt",
					   "d/sub/to-d",  "../../d",
					   "dang",        "missing/file",
					   "d/dang",      "../f.txt/x/../y",
					   NULL};
	struct mem m;
	struct zipindex *zi = link_archive(&m, spec);
	struct link_reads lr = {zi, &m, 0, 0};
	cr_assert_str_eq(canonical(&lr, "latest"), "d/sub/x.txt");
	cr_assert_str_eq(canonical(&lr, "l1"), "f.txt");
	cr_assert_str_eq(canonical(&lr, "d/l3"), "../f.txt");
	cr_assert_str_eq(canonical(&lr, "parent"), "d/f.txt");
	cr_assert_str_eq(canonical(&lr, "self"), ".");
	cr_assert_str_eq(canonical(&lr, "a/b/back"), "../../f.txt");
	cr_assert_str_eq(canonical(&lr, "a/b/c/up"), "../..");
	cr_assert_str_eq(canonical(&lr, "a/b/c/via"), "../../../d/sub");
	cr_assert_str_eq(canonical(&lr, "d/sub/to-d"), "..");
	cr_assert_str_eq(canonical(&lr, "dang"), "missing/file");
	cr_assert_str_eq(canonical(&lr, "d/dang"), "../f.txt/x");
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex_links, a_link_to_a_link_that_leads_out_is_refused)
{
	static const char *const spec[] = {"out",
					   "../x",
					   "in",
					   "out",
					   "deep/in",
					   "../in",
					   "through",
					   "deep/in/etc",
					   "abs",
					   "/etc/passwd",
					   "to-abs",
					   "abs",
					   "empty",
					   "",
					   "dotdot",
					   "..",
					   "evil/link-out",
					   "../../../../etc/passwd",
					   "a/b/c/",
					   NULL,
					   "a/b/x",
					   "c/../../../../y",
					   NULL};
	struct mem m;
	struct zipindex *zi = link_archive(&m, spec);
	struct link_reads lr = {zi, &m, 0, 0};
	const char *const refused[] = {"out",    "in",    "deep/in", "through",       "abs",
				       "to-abs", "empty", "dotdot",  "evil/link-out", "a/b/x"};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		cr_assert_refused(&lr, refused[i], -EXDEV);
	zipindex_free(zi);
	free(m.p);

	struct zb z = {0};
	zb_add(&z, "nul", "a\0b", 3, (struct zb_opts){.mode = S_IFLNK | 0777, .fake_size = -1});
	m.p = zb_finish(&z, false, &m.len);
	zi = load(&m);
	lr.zi = zi;
	cr_assert_refused(&lr, "nul", -EXDEV);
	zipindex_free(zi);
	free(m.p);
}

/* Past a missing name or a file the kernel stops (ENOENT, ENOTDIR), whatever follows: a ".."
 * there does not go back, so "sub/../f" with sub a file never reaches f. The links dangle, and
 * their text makes the kernel stop at the same place. */
Test(zipindex_links, a_missing_name_or_a_file_stops_the_walk_as_in_the_kernel)
{
	static const char *const spec[] = {"f.txt",
					   NULL,
					   "d/x",
					   NULL,
					   "dang",
					   "missing/file",
					   "dang-out",
					   "missing/../../x",
					   "notdir",
					   "f.txt/x",
					   "notdir-out",
					   "f.txt/../../x",
					   "to-dang",
					   "dang",
					   "trailing",
					   "f.txt/",
					   "file-back",
					   "f.txt/../f.txt",
					   "missing-back",
					   "missing/../f.txt",
					   "dot-after-file",
					   "f.txt/.",
					   "lf",
					   "f.txt",
					   "via-link",
					   "lf/../d/x",
					   "dir-back",
					   "d/../f.txt",
					   "dang-then",
					   "to-dang/../f.txt",
					   NULL};
	struct mem m;
	struct zipindex *zi = link_archive(&m, spec);
	struct link_reads lr = {zi, &m, 0, 0};
	cr_assert_resolves(&lr, "dir-back", "f.txt"); /* a folder lets ".." go back */
	const char *const dangle[][2] = {
		{"dang", "missing/file"},      {"to-dang", "missing/file"},
		{"notdir", "f.txt/x"},         {"trailing", "f.txt/."},
		{"dang-out", "missing/."},     {"notdir-out", "f.txt/."},
		{"file-back", "f.txt/."},      {"missing-back", "missing/."},
		{"dot-after-file", "f.txt/."}, {"via-link", "f.txt/."},
		{"dang-then", "missing/file"},
	};
	for (size_t i = 0; i < sizeof(dangle) / sizeof(dangle[0]); i++) {
		cr_assert_resolves(&lr, dangle[i][0], "(dangling)");
		cr_assert_str_eq(canonical(&lr, dangle[i][0]), dangle[i][1], "%s", dangle[i][0]);
	}
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex_links, loops_are_eloop)
{
	static const char *const spec[] = {"a",    "b",      "b",    "a",       "self", "self",
					   "down", "down/x", "d/up", "../d/up", NULL};
	struct mem m;
	struct zipindex *zi = link_archive(&m, spec);
	struct link_reads lr = {zi, &m, 0, 0};
	const char *const loops[] = {"a", "b", "self", "down", "d/up"};
	for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++) {
		cr_assert_refused(&lr, loops[i], -ELOOP);
		cr_assert_eq(lr.calls, ZIP_LINKS_MAX, "%s read %u targets", loops[i], lr.calls);
	}
	zipindex_free(zi);
	free(m.p);
}

/* A chain of n links l0 -> l1 -> ... -> l<n-1> -> f.txt. */
static struct zipindex *chain(struct mem *m, unsigned n)
{
	struct zb z = {0};
	char name[16], target[16];
	zb_file(&z, "f.txt", "f");
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "l%u", i);
		if (i + 1 < n)
			snprintf(target, sizeof(target), "l%u", i + 1);
		else
			strcpy(target, "f.txt");
		zb_add(&z, name, target, strlen(target),
		       (struct zb_opts){.mode = S_IFLNK | 0777, .fake_size = -1});
	}
	m->p = zb_finish(&z, false, &m->len);
	return load(m);
}

Test(zipindex_links, at_most_forty_links_are_followed)
{
	struct mem m;
	struct zipindex *zi = chain(&m, ZIP_LINKS_MAX);
	struct link_reads lr = {zi, &m, 0, 0};
	cr_assert_resolves(&lr, "l0", "f.txt");
	cr_assert_eq(lr.calls, ZIP_LINKS_MAX);
	zipindex_free(zi);
	free(m.p);

	zi = chain(&m, ZIP_LINKS_MAX + 1);
	lr.zi = zi;
	cr_assert_refused(&lr, "l0", -ELOOP);
	cr_assert_resolves(&lr, "l1", "f.txt");
	zipindex_free(zi);
	free(m.p);
}

Test(zipindex_links, read_errors_are_returned_and_only_links_resolve)
{
	static const char *const spec[] = {"f.txt", NULL, "l", "f.txt", NULL};
	struct mem m;
	struct zipindex *zi = link_archive(&m, spec);
	struct link_reads lr = {zi, &m, 0, -EIO};
	cr_assert_refused(&lr, "l", -EIO);
	const struct zip_member *out = zipindex_member(zi, 0);
	char *text = NULL;
	cr_assert_eq(zipindex_resolve_link(zi, zipindex_find(zi, "f.txt"), read_target, &lr, &out,
					   &text),
		     -EINVAL);
	cr_assert_null(text);
	cr_assert_null(out);
	zipindex_free(zi);
	free(m.p);
}

/* ---- the mount's memory budget (membudget.h) ---- */

/* A made-up folder's name is its whole path, so one member of 16,000 one-letter components
 * wants about 128 MiB of names (quadratic in the depth: a 262 KB zip of such names took `ls` to
 * 2.1 GB). The budget refuses it before the names are copied, and gives back what an index took
 * when it is freed. */
Test(zipindex_budget, deep_names_are_refused_before_their_memory_is_taken)
{
	size_t depth = 16000;
	char *name = malloc(2 * depth);
	for (size_t i = 0; i < depth; i++) {
		name[2 * i] = 'a';
		name[2 * i + 1] = '/';
	}
	name[2 * depth - 1] = '\0';
	struct zb z = {0};
	zb_file(&z, name, "deep");
	zb_file(&z, "small.txt", "s");
	struct mem m;
	m.p = zb_finish(&z, false, &m.len);
	membudget_set_limit(32u << 20);
	struct zipindex *zi = NULL;
	cr_assert_eq(zipindex_load(m.len, mem_read, &m, &zi), -ENOMEM);
	cr_assert_null(zi);
	cr_assert_eq(membudget_used(), 0, "a refused index holds nothing of the budget");
	cr_assert_not_null(strstr(log_reason(), "over the mount's memory budget"), "%s",
			   log_reason());
	membudget_set_limit(1u << 30); /* with room, the same archive lists */
	zi = load(&m);
	cr_assert_gt(membudget_used(), (uint64_t)depth * depth);
	zipindex_free(zi);
	cr_assert_eq(membudget_used(), 0, "a freed index gives back what it took");
	free(m.p);
	free(name);
}

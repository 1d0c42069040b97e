/* nest over the fake backend: archives inside a job's artifacts zip, made here with libarchive's
 * writer (a tar.gz holding a zip), looked up through the '#' rule, read from the unpacked blob,
 * shared by concurrent lookups, and kept in a bounded set. */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

#include "artifactfs/cache.h"
#include "artifactfs/catalog.h"
#include "artifactfs/nest.h"
#include "artifactfs/unpack.h"
#include "fake_backend.h"
#include "tmpdir.h"

/* Every pass over a nested archive, counted (the test binary links with
 * -Wl,--wrap=unpack_archive); past PASS_CAP a pass fails, so that a regression to exponential
 * re-unpacking fails a test instead of hanging it. */
#define PASS_CAP 400
static atomic_int passes;
int __real_unpack_archive(uint64_t size, zip_read_fn rd, void *rctx, unpack_write_fn wr, void *wctx,
			  const struct unpack_limits *lim, struct unpacked **out);
int __wrap_unpack_archive(uint64_t size, zip_read_fn rd, void *rctx, unpack_write_fn wr, void *wctx,
			  const struct unpack_limits *lim, struct unpacked **out);
int __wrap_unpack_archive(uint64_t size, zip_read_fn rd, void *rctx, unpack_write_fn wr, void *wctx,
			  const struct unpack_limits *lim, struct unpacked **out)
{
	if (atomic_fetch_add(&passes, 1) >= PASS_CAP) {
		*out = NULL;
		return -ECANCELED;
	}
	return __real_unpack_archive(size, rd, rctx, wr, wctx, lim, out);
}

static char *dir;
static struct cache *cache;
static struct catalog *cat;
static struct job *job;

struct item {
	const char *name, *data;
	size_t len;
};

/* An archive of items in memory, in libarchive's format and filter. */
static unsigned char *pack(int format, int filter, const struct item *it, size_t n, size_t *len)
{
	size_t cap = 1 << 20;
	for (size_t i = 0; i < n; i++)
		cap += it[i].len + 4096;
	unsigned char *buf = malloc(cap);
	struct archive *a = archive_write_new();
	archive_write_set_format(a, format);
	archive_write_add_filter(a, filter);
	cr_assert_eq(archive_write_open_memory(a, buf, cap, len), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, it[i].name);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_size(e, (la_int64_t)it[i].len);
		cr_assert_eq(archive_write_header(a, e), ARCHIVE_OK);
		cr_assert_eq(archive_write_data(a, it[i].data, it[i].len), (la_ssize_t)it[i].len);
		archive_entry_free(e);
	}
	cr_assert_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return buf;
}

/* The artifacts: outer.tar.gz (a.txt, inner.zip with x), notes.txt, odd.tar.gz# (a file) and
 * odd.tar.gz, and NEST_SET_MAX + 1 tarballs t<i>.tar. */
static void make_artifacts(void)
{
	size_t zlen, tlen;
	const struct item in_zip[] = {{"x", "inside the zip\n", 15}};
	unsigned char *zip = pack(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, in_zip, 1, &zlen);
	const struct item in_tar[] = {{"a.txt", "aaa\n", 4}, {"inner.zip", (char *)zip, zlen}};
	unsigned char *tgz =
		pack(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_GZIP, in_tar, 2, &tlen);
	struct zb z = {0};
	zb_add(&z, "outer.tar.gz", tgz, tlen, (struct zb_opts){.mode = 0100644, .fake_size = -1});
	zb_file(&z, "notes.txt", "not an archive\n");
	zb_file(&z, "odd.tar.gz#", "a real member\n");
	zb_add(&z, "odd.tar.gz", tgz, tlen, (struct zb_opts){.mode = 0100644, .fake_size = -1});
	for (int i = 0; i <= NEST_SET_MAX; i++) {
		char name[32];
		size_t len;
		snprintf(name, sizeof(name), "t%d.tar", i);
		unsigned char *t =
			pack(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, in_zip, 1, &len);
		zb_add(&z, name, t, len, (struct zb_opts){.mode = 0100644, .fake_size = -1});
		free(t);
	}
	free(fake.zip);
	fake.zip = zb_finish(&z, false, &fake.zip_len);
	free(zip);
	free(tgz);
}

static void setup(void)
{
	fake_init();
	make_artifacts();
	dir = tmpdir_new("nest");
	cr_assert_eq(cache_open(dir, 64u << 20, &cache), 0);
	struct catalog_config cc = {.backend = &fake_backend,
				    .cache = cache,
				    .base_url = "http://gitlab.test",
				    .ttl_s = 60};
	cr_assert_eq(catalog_new(&cc, &cat), 0);
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 101, &job), 0);
}

static void teardown(void)
{
	job_put(job);
	catalog_free(cat);
	cache_close(cache);
	tmpdir_remove(dir);
	free(fake.zip);
}

TestSuite(nest, .init = setup, .fini = teardown);

static void read_is(struct nest *n, const struct zip_member *m, const char *want)
{
	char buf[64] = {0};
	cr_assert_eq(nest_pread(n, m, buf, sizeof(buf) - 1, 0), (ssize_t)strlen(want));
	cr_assert_str_eq(buf, want);
}

Test(nest, a_path_without_hash_is_the_artifacts_own)
{
	struct nest *n = (struct nest *)1;
	const struct zip_member *m;
	cr_assert_eq(nest_find(job, "notes.txt", &n, &m), 0);
	cr_assert_null(n);
	cr_assert_str_eq(m->name, "notes.txt");
}

Test(nest, the_inside_of_a_tarball_lists_and_reads)
{
	struct nest *n;
	const struct zip_member *m;
	cr_assert_eq(nest_find(job, "outer.tar.gz#", &n, &m), 0);
	cr_assert_eq(m->type, ZIP_DIR);
	cr_assert_str_eq(m->name, "");
	nest_put(n);
	cr_assert_eq(nest_find(job, "outer.tar.gz#/a.txt", &n, &m), 0);
	read_is(n, m, "aaa\n");
	nest_put(n);
}

Test(nest, nesting_goes_through_a_zip_inside_the_tarball)
{
	struct nest *n;
	const struct zip_member *m;
	cr_assert_eq(nest_find(job, "outer.tar.gz#/inner.zip#/x", &n, &m), 0);
	read_is(n, m, "inside the zip\n");
	nest_put(n);
}

Test(nest, a_member_that_is_no_archive_has_no_inside)
{
	struct nest *n;
	const struct zip_member *m;
	cr_assert_eq(nest_find(job, "notes.txt#", &n, &m), -ENOENT);
	cr_assert_eq(nest_find(job, "notes.txt#/x", &n, &m), -ENOENT);
	cr_assert_eq(nest_find(job, "missing.tar#/x", &n, &m), -ENOENT);
	cr_assert_eq(nest_find(job, "outer.tar.gz#/missing", &n, &m), -ENOENT);
	cr_assert_null(n);
}

Test(nest, a_real_member_ending_in_hash_wins)
{
	struct nest *n;
	const struct zip_member *m;
	cr_assert_eq(nest_find(job, "odd.tar.gz#", &n, &m), 0);
	cr_assert_null(n);
	cr_assert_eq(m->type, ZIP_FILE);
	cr_assert_eq(nest_find(job, "odd.tar.gz#/a.txt", &n, &m), -ENOENT);
}

struct racer {
	pthread_barrier_t *go;
	struct nest *n;
};

static void *race(void *p)
{
	struct racer *r = p;
	const struct zip_member *m;
	pthread_barrier_wait(r->go);
	cr_assert_eq(nest_find(job, "outer.tar.gz#/a.txt", &r->n, &m), 0);
	return NULL;
}

/* Single flight: lookups running at once wait for one pass and share its nest. */
Test(nest, concurrent_lookups_share_one_pass)
{
	enum {
		N = 8
	};
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, N);
	struct racer r[N];
	pthread_t t[N];
	for (int i = 0; i < N; i++) {
		r[i] = (struct racer){&go, NULL};
		pthread_create(&t[i], NULL, race, &r[i]);
	}
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	for (int i = 1; i < N; i++)
		cr_assert_eq(r[i].n, r[0].n, "one nest for one member");
	for (int i = 0; i < N; i++)
		nest_put(r[i].n);
	pthread_barrier_destroy(&go);
}

Test(nest, the_set_keeps_the_recent_nests_and_drops_the_oldest)
{
	struct nest *first, *again, *n;
	const struct zip_member *m;
	cr_assert_eq(nest_find(job, "t0.tar#/x", &first, &m), 0);
	cr_assert_eq(nest_find(job, "t0.tar#/x", &again, &m), 0);
	cr_assert_eq(first, again, "remembered");
	nest_put(again);
	for (int i = 1; i <= NEST_SET_MAX; i++) {
		char path[32];
		snprintf(path, sizeof(path), "t%d.tar#/x", i);
		cr_assert_eq(nest_find(job, path, &n, &m), 0);
		read_is(n, m, "inside the zip\n");
		nest_put(n);
	}
	cr_assert_eq(nest_find(job, "t0.tar#/x", &again, &m), 0);
	cr_assert_neq(first, again, "the least recently used was dropped, and made anew");
	read_is(first, zipindex_find(nest_index(first), "x"), "inside the zip\n");
	nest_put(first);
	nest_put(again);
}

/* An archive may hold itself: each level of a path costs a nest, so the levels are bounded. */
Test(nest, nesting_deeper_than_the_limit_is_eloop)
{
	size_t len;
	unsigned char *level = pack(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE,
				    (const struct item[]){{"x", "bottom\n", 7}}, 1, &len);
	for (int i = 0; i <= NEST_DEPTH_MAX; i++) {
		size_t up_len;
		unsigned char *up =
			pack(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE,
			     (const struct item[]){{"n.tar", (char *)level, len}}, 1, &up_len);
		free(level);
		level = up;
		len = up_len;
	}
	struct zb z = {0};
	zb_add(&z, "n.tar", level, len, (struct zb_opts){.mode = 0100644, .fake_size = -1});
	free(level);
	free(fake.zip);
	fake.zip = zb_finish(&z, false, &fake.zip_len);
	struct job *deep;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 250, &deep), 0);
	char path[1024] = "";
	for (int i = 0; i < NEST_DEPTH_MAX; i++)
		strcat(path, "n.tar#/");
	struct nest *n;
	const struct zip_member *m;
	cr_assert_eq(nest_find(deep, path, &n, &m), 0, "%d levels open", NEST_DEPTH_MAX);
	cr_assert_eq(m->type, ZIP_DIR);
	nest_put(n);
	strcat(path, "n.tar#/x");
	cr_assert_eq(nest_find(deep, path, &n, &m), -ELOOP);
	cr_assert_null(n);
	job_put(deep);
}

/* ---- deep nestings: passes per lookup, the set, the cache ---- */

/* A tar nesting levels deep: "n.tar" holds "f" (filler bytes, when filler > 0) and "n.tar",
 * down to the innermost, which holds "x": filler bytes of its own, or "bottom\n". */
static unsigned char *deep_tar(int levels, size_t filler, size_t *len)
{
	char *fill = malloc(filler ? filler : 1);
	for (size_t i = 0; i < filler; i++)
		fill[i] = (char)(i * 2654435761u >> 13);
	struct item leaf =
		filler ? (struct item){"x", fill, filler} : (struct item){"x", "bottom\n", 7};
	unsigned char *level = pack(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, &leaf, 1, len);
	for (int i = 1; i < levels; i++) {
		size_t up_len;
		const struct item up[] = {{"f", fill, filler}, {"n.tar", (char *)level, *len}};
		unsigned char *next = pack(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE,
					   filler ? up : up + 1, filler ? 2 : 1, &up_len);
		free(level);
		level = next;
		*len = up_len;
	}
	free(fill);
	return level;
}

/* The artifacts become one member "n.tar", a deep_tar(); *path the path of its "x". */
static void deep_artifacts(int levels, size_t filler, char *path, size_t cap)
{
	size_t len;
	unsigned char *t = deep_tar(levels, filler, &len);
	struct zb z = {0};
	zb_add(&z, "n.tar", t, len, (struct zb_opts){.mode = 0100644, .fake_size = -1});
	free(t);
	free(fake.zip);
	fake.zip = zb_finish(&z, false, &fake.zip_len);
	path[0] = '\0';
	for (int i = 0; i < levels; i++)
		strncat(path, "n.tar#/", cap - strlen(path) - 1);
	strncat(path, "x", cap - strlen(path) - 1);
}

/* A job of the artifacts made last, over its own cache of limit bytes. */
struct small {
	char *dir;
	struct cache *cache;
	struct catalog *cat;
	struct job *job;
};

static void small_open(struct small *s, uint64_t limit)
{
	s->dir = tmpdir_new("nest-small");
	cr_assert_eq(cache_open(s->dir, limit, &s->cache), 0);
	struct catalog_config cc = {.backend = &fake_backend,
				    .cache = s->cache,
				    .base_url = "http://gitlab.test",
				    .ttl_s = 60};
	cr_assert_eq(catalog_new(&cc, &s->cat), 0);
	cr_assert_eq(catalog_job_by_id(s->cat, "grp/app", 101, &s->job), 0);
}

static void small_close(struct small *s)
{
	job_put(s->job);
	catalog_free(s->cat);
	cache_close(s->cache);
	tmpdir_remove(s->dir);
}

/* Reads all of x (filler bytes) in 128 KiB pieces, as the kernel does; 0 or the error. */
static ssize_t read_all(struct nest *n, const struct zip_member *m, size_t filler)
{
	char *buf = malloc(128 << 10);
	ssize_t err = 0;
	for (uint64_t off = 0; !err && off < m->size; off += 128 << 10) {
		ssize_t got = nest_pread(n, m, buf, 128 << 10, off);
		if (got <= 0) {
			err = got < 0 ? got : -EIO;
			break;
		}
		for (ssize_t i = 0; i < got; i++)
			cr_assert_eq(buf[i], (char)((off + (uint64_t)i) * 2654435761u >> 13),
				     "byte %llu", (unsigned long long)off + (unsigned long long)i);
	}
	cr_assert_eq(m->size, filler);
	free(buf);
	return err;
}

/* 12 levels of tars, 160 KiB of filler each (the outermost unpacks to 1.9 MiB, under the
 * quarter of the cache a blob may take), in an 8 MiB cache: all the levels (12 MiB) never fit at
 * once, a level and the one inside it do. */
Test(nest, a_deep_nesting_in_a_small_cache_unpacks_each_level_a_few_times)
{
	char path[256];
	deep_artifacts(12, 160 << 10, path, sizeof(path));
	struct small s;
	small_open(&s, 8u << 20);
	struct nest *n;
	const struct zip_member *m;
	atomic_store(&passes, 0);
	cr_assert_eq(nest_find(s.job, path, &n, &m), 0);
	cr_assert_eq(read_all(n, m, 160 << 10), 0);
	cr_assert_eq(cache_drop(s.cache), 0); /* every blob evicted: read again */
	cr_assert_eq(read_all(n, m, 160 << 10), 0);
	cr_assert_leq(atomic_load(&passes), 3 * 12, "%d passes for 12 levels",
		      atomic_load(&passes));
	nest_put(n);
	small_close(&s);
}

/* A blob takes a quarter of the cache at most, so three levels always fit in an empty cache;
 * here 3.5 MiB of a 4 MiB cache are held by a reader (a pinned entry), and the levels cannot be
 * held while the next is unpacked: the lookup fails at once, not after redoing every level for
 * every piece read. */
Test(nest, nested_archives_that_cannot_fit_fail_early)
{
	char path[256];
	deep_artifacts(7, 128 << 10, path, sizeof(path));
	struct small s;
	small_open(&s, 4u << 20);
	struct cache_entry *hog;
	size_t hog_len = 3584u << 10;
	char *junk = calloc(1, hog_len);
	cr_assert_eq(cache_entry_get(s.cache, "hog", hog_len, &hog), 0);
	cr_assert_eq(cache_entry_write(hog, 0, junk, hog_len), 0);
	cr_assert_eq(cache_entry_pin(hog), 0);
	free(junk);
	struct nest *n;
	const struct zip_member *m;
	atomic_store(&passes, 0);
	int err = nest_find(s.job, path, &n, &m);
	cr_assert_eq(err, -ENOSPC, "%s", strerror(-err));
	cr_assert_null(n);
	cr_assert_leq(atomic_load(&passes), 3 * 7, "%d passes for 7 levels", atomic_load(&passes));
	cache_entry_unpin(hog);
	cache_entry_put(hog);
	small_close(&s);
}

/* A walk 12 levels deep (more than the set's usual NEST_SET_MAX) keeps every level it is
 * inside: the second lookup unpacks nothing again. */
Test(nest, a_walk_deeper_than_the_set_keeps_its_ancestors)
{
	char path[256];
	deep_artifacts(12, 0, path, sizeof(path));
	struct job *deep;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 250, &deep), 0);
	struct nest *n;
	const struct zip_member *m;
	atomic_store(&passes, 0);
	cr_assert_eq(nest_find(deep, path, &n, &m), 0);
	read_is(n, m, "bottom\n");
	nest_put(n);
	cr_assert_eq(atomic_load(&passes), 12);
	cr_assert_eq(nest_find(deep, path, &n, &m), 0);
	read_is(n, m, "bottom\n");
	nest_put(n);
	cr_assert_eq(atomic_load(&passes), 12, "no level unpacked again");
	job_put(deep);
}

/* The files of the cache folder whose names start with prefix: their count, and their
 * apparent and allocated bytes. */
static int files_with_prefix(const char *top, const char *prefix, uint64_t *len, uint64_t *disk)
{
	char v2[1024];
	snprintf(v2, sizeof(v2), "%s/v2", top);
	DIR *d = opendir(v2);
	cr_assert_not_null(d);
	struct dirent *de;
	int n = 0;
	*len = *disk = 0;
	while ((de = readdir(d))) {
		struct stat st;
		char p[2048];
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", v2, de->d_name);
		cr_assert_eq(stat(p, &st), 0);
		*len += (uint64_t)st.st_size;
		*disk += (uint64_t)st.st_blocks * 512;
		n++;
	}
	closedir(d);
	return n;
}

/* Blob entries are sized by what they hold, not by the cache's size (the decompression
 * budget): a tarball of a few bytes in a 64 GiB cache costs a few KiB. */
Test(nest, a_tiny_tarball_costs_a_tiny_blob_in_a_huge_cache)
{
	struct small s;
	small_open(&s, 64ull << 30);
	struct nest *n;
	const struct zip_member *m;
	cr_assert_eq(nest_find(s.job, "outer.tar.gz#/inner.zip#/x", &n, &m), 0);
	read_is(n, m, "inside the zip\n");
	char prefix[256];
	uint64_t len, disk;
	snprintf(prefix, sizeof(prefix), "%s-n", job_key(s.job));
	cr_assert_eq(files_with_prefix(s.dir, prefix, &len, &disk), 2, "two levels' blobs");
	cr_assert_leq(len, 1u << 20, "%llu bytes long", (unsigned long long)len);
	cr_assert_leq(disk, 1u << 20, "%llu bytes on disk", (unsigned long long)disk);
	struct cache_stats cs;
	cache_get_stats(s.cache, &cs);
	cr_assert_leq(cs.used_bytes, 4u << 20, "%llu bytes counted",
		      (unsigned long long)cs.used_bytes);
	nest_put(n);
	small_close(&s);
}

/* Deleting a job's artifacts takes its nested archives' unpacked blobs along, in clear text
 * in the cache folder otherwise. */
Test(nest, deleting_the_artifacts_discards_the_nested_blobs)
{
	struct nest *n;
	const struct zip_member *m;
	cr_assert_eq(nest_find(job, "outer.tar.gz#/inner.zip#/x", &n, &m), 0);
	read_is(n, m, "inside the zip\n");
	char prefix[256];
	uint64_t len, disk;
	snprintf(prefix, sizeof(prefix), "%s-n", job_key(job));
	cr_assert_geq(files_with_prefix(dir, prefix, &len, &disk), 2);
	cr_assert_eq(catalog_job_delete(cat, job), 0);
	cr_assert_eq(files_with_prefix(dir, prefix, &len, &disk), 0);
	read_is(n, m, "inside the zip\n"); /* an open file reads on */
	cr_assert_eq(files_with_prefix(dir, prefix, &len, &disk), 0, "and makes no file anew");
	nest_put(n);
}

static time_t clock_s = 1000;
static time_t fake_now(void)
{
	return clock_s;
}

/* The same when the server says the artifacts are gone (a lookup by id after the TTL). */
Test(nest, artifacts_gone_on_the_server_take_the_nested_blobs_along)
{
	struct small s;
	s.dir = tmpdir_new("nest-gone");
	cr_assert_eq(cache_open(s.dir, 64u << 20, &s.cache), 0);
	struct catalog_config cc = {.backend = &fake_backend,
				    .cache = s.cache,
				    .base_url = "http://gitlab.test",
				    .ttl_s = 60,
				    .now = fake_now};
	cr_assert_eq(catalog_new(&cc, &s.cat), 0);
	cr_assert_eq(catalog_job_by_id(s.cat, "grp/app", 150, &s.job), 0);
	struct nest *n;
	const struct zip_member *m;
	cr_assert_eq(nest_find(s.job, "outer.tar.gz#/a.txt", &n, &m), 0);
	nest_put(n);
	char prefix[256];
	uint64_t len, disk;
	snprintf(prefix, sizeof(prefix), "%s-n", job_key(s.job));
	cr_assert_eq(files_with_prefix(s.dir, prefix, &len, &disk), 1);
	fake.deleted = 150;
	clock_s += 61;
	struct job *again;
	cr_assert_eq(catalog_job_by_id(s.cat, "grp/app", 150, &again), -ENOENT);
	cr_assert_eq(files_with_prefix(s.dir, prefix, &len, &disk), 0);
	small_close(&s);
}

/* A bomb may take a quarter of the cache at most (32 MiB of zeros in a 64 MiB cache), and is
 * refused once per job: looked up again after NEST_SET_MAX other nests pushed it out of the set,
 * its member is not read again. */
Test(nest, a_bomb_is_refused_at_a_quarter_of_the_cache_and_never_unpacked_twice)
{
	size_t zlen = 32u << 20, len;
	char *zeros = calloc(1, zlen);
	unsigned char *bomb = pack(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP,
				   (const struct item[]){{"zeros", zeros, zlen}}, 1, &len);
	free(zeros);
	struct zb z = {0};
	zb_add(&z, "bomb.tar.gz", bomb, len, (struct zb_opts){.mode = 0100644, .fake_size = -1});
	free(bomb);
	for (int i = 0; i <= NEST_SET_MAX; i++) {
		char name[32];
		unsigned char *t = pack(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE,
					(const struct item[]){{"x", "x\n", 2}}, 1, &len);
		snprintf(name, sizeof(name), "t%d.tar", i);
		zb_add(&z, name, t, len, (struct zb_opts){.mode = 0100644, .fake_size = -1});
		free(t);
	}
	free(fake.zip);
	fake.zip = zb_finish(&z, false, &fake.zip_len);
	struct job *j;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 251, &j), 0);
	struct nest *n;
	const struct zip_member *m;
	cr_assert_eq(nest_find(j, "bomb.tar.gz#/zeros", &n, &m), -EFBIG);
	for (int i = 0; i <= NEST_SET_MAX; i++) {
		char path[32];
		snprintf(path, sizeof(path), "t%d.tar#/x", i);
		cr_assert_eq(nest_find(j, path, &n, &m), 0);
		nest_put(n);
	}
	struct cache_stats before, after;
	cache_get_stats(cache, &before);
	cr_assert_eq(nest_find(j, "bomb.tar.gz#/zeros", &n, &m), -EFBIG);
	cr_assert_null(n);
	cache_get_stats(cache, &after);
	cr_assert_eq(after.hit_bytes + after.miss_bytes, before.hit_bytes + before.miss_bytes,
		     "the refused member was read again");
	job_put(j);
}

/* A tar of files (link NULL) and symbolic links (data unused). */
static unsigned char *pack_links(const char *const (*spec)[3], size_t n, size_t *len)
{
	size_t cap = 1 << 16;
	unsigned char *buf = malloc(cap);
	struct archive *a = archive_write_new();
	archive_write_set_format(a, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	cr_assert_eq(archive_write_open_memory(a, buf, cap, len), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		const char *name = spec[i][0], *data = spec[i][1], *link = spec[i][2];
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, name);
		archive_entry_set_filetype(e, link ? AE_IFLNK : AE_IFREG);
		archive_entry_set_perm(e, link ? 0777 : 0644);
		if (link)
			archive_entry_set_symlink(e, link);
		archive_entry_set_size(e, link ? 0 : (la_int64_t)strlen(data));
		cr_assert_eq(archive_write_header(a, e), ARCHIVE_OK);
		if (!link)
			cr_assert_eq(archive_write_data(a, data, strlen(data)),
				     (la_ssize_t)strlen(data));
		archive_entry_free(e);
	}
	cr_assert_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return buf;
}

/* Links inside a nested archive resolve as the kernel would, as the artifacts' own do: past a
 * file or a missing name the walk stops, so "sub/../f" with sub a file never reaches f. */
Test(nest, links_inside_stop_at_a_file_or_a_missing_name)
{
	static const char *const spec[][3] = {{"sub", "a file\n", NULL},
					      {"f", "f's bytes\n", NULL},
					      {"d/x", "x\n", NULL},
					      {"via-file", NULL, "sub/../f"},
					      {"via-missing", NULL, "missing/../f"},
					      {"via-dir", NULL, "d/../f"}};
	size_t len;
	unsigned char *tar = pack_links(spec, sizeof(spec) / sizeof(spec[0]), &len);
	struct zb z = {0};
	zb_add(&z, "l.tar", tar, len, (struct zb_opts){.mode = 0100644, .fake_size = -1});
	free(tar);
	free(fake.zip);
	fake.zip = zb_finish(&z, false, &fake.zip_len);
	struct job *lj;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 251, &lj), 0);
	static const char *const cases[][2] = {{"l.tar#/via-file", "sub/."},
					       {"l.tar#/via-missing", "missing/."},
					       {"l.tar#/via-dir", "f"}};
	for (size_t i = 0; i < 3; i++) {
		struct nest *n;
		const struct zip_member *m, *to = NULL;
		char *text = NULL;
		cr_assert_eq(nest_find(lj, cases[i][0], &n, &m), 0, "%s", cases[i][0]);
		cr_assert_eq(m->type, ZIP_SYMLINK);
		cr_assert_eq(
			zipindex_resolve_link(nest_index(n), m, nest_link_target, n, &to, &text),
			0);
		cr_assert_str_eq(text, cases[i][1], "%s", cases[i][0]);
		if (i < 2)
			cr_assert_null(to, "%s leads nowhere", cases[i][0]);
		else
			cr_assert_str_eq(to->name, "f");
		free(text);
		nest_put(n);
	}
	job_put(lj);
}

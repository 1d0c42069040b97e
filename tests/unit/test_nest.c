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

#include "artifactfs/catalog.h"
#include "artifactfs/nest.h"
#include "fake_backend.h"
#include "tmpdir.h"

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

/* catalog over the fake backend: listings, by-ref resolution, job sharing and trimming, keep
 * and delete, the errno table, and a wrong archive answer kept out of the cache. */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "artifactfs/catalog.h"
#include "fake_backend.h"
#include "tmpdir.h"

static char *dir;
static time_t clock_s = 1000; /* the TTLs' clock: tests move it */

static time_t fake_now(void)
{
	return clock_s;
}

static struct cache *cache;
static struct catalog *cat;

static void setup(void)
{
	fake_init();
	dir = tmpdir_new("catalog");
	cr_assert_eq(cache_open(dir, 1 << 30, &cache), 0);
	struct catalog_config cc = {.backend = &fake_backend,
				    .cache = cache,
				    .base_url = "http://gitlab.test",
				    .ttl_s = 60,
				    .now = fake_now};
	cr_assert_eq(catalog_new(&cc, &cat), 0);
}

static void teardown(void)
{
	catalog_free(cat);
	cache_close(cache);
	tmpdir_remove(dir);
	free(fake.zip);
}

TestSuite(catalog, .init = setup, .fini = teardown);

static void assert_names(char **names, const char *const *want)
{
	size_t i = 0;
	for (; want[i]; i++) {
		cr_assert_not_null(names[i], "missing %s", want[i]);
		cr_assert_str_eq(names[i], want[i]);
	}
	cr_assert_null(names[i], "unexpected %s", names[i]);
	gitlab_strv_free(names);
}

Test(catalog, listings)
{
	char **v;
	cr_assert_eq(catalog_list_root(cat, &v), 0);
	assert_names(v, (const char *const[]){"grp%2Fapp", NULL});
	cr_assert_eq(catalog_list_refs(cat, "grp/app", &v), 0);
	assert_names(v, (const char *const[]){"main", "dev", NULL});
	cr_assert_eq(catalog_list_ref_jobs(cat, "grp/app", "main", &v), 0);
	assert_names(v, (const char *const[]){"build", "build.zip", "test", "test.zip", "build.log",
					      "test.log", NULL});
	cr_assert_eq(catalog_list_ref_jobs(cat, "grp/app", "dev", &v), 0);
	assert_names(v, (const char *const[]){NULL});
	cr_assert_eq(catalog_list_job_ids(cat, "grp/app", &v), 0);
	assert_names(v, (const char *const[]){"102", "102.zip", NULL});
	cr_assert_eq(atomic_load(&fake.refs_list), 1, "the refs are asked once within the TTL");
}

Test(catalog, a_job_met_by_id_is_listed_under_jobs)
{
	struct job *j;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 250, &j), 0);
	job_put(j);
	char **v;
	cr_assert_eq(catalog_list_job_ids(cat, "grp/app", &v), 0);
	assert_names(v, (const char *const[]){"102", "102.zip", "250", "250.zip", NULL});
}

Test(catalog, by_ref_and_by_id_name_one_job)
{
	struct job *a, *b;
	cr_assert_eq(catalog_job_by_ref(cat, "grp/app", "main", "build", &a), 0);
	cr_assert_eq(job_id(a), 101);
	cr_assert_str_eq(job_name(a), "build");
	cr_assert(job_is_by_id(a));
	cr_assert_eq(job_size(a), fake.zip_len);
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 101, &b), 0);
	cr_assert_eq(a, b, "one object for both paths");
	cr_assert_eq(atomic_load(&fake.job_get), 0, "known from the listing: no request");
	job_put(a);
	job_put(b);
	cr_assert_eq(catalog_job_by_ref(cat, "grp/app", "main", "nope", &a), -ENOENT);
	cr_assert_eq(catalog_job_by_ref(cat, "grp/app", "dev", "build", &a), -ENOENT);
	cr_assert_eq(catalog_job_by_ref(cat, "grp/app", "gone", "build", &a), -ENOENT);
}

Test(catalog, a_listed_recent_job_needs_no_request)
{
	char **v;
	cr_assert_eq(catalog_list_job_ids(cat, "grp/app", &v), 0);
	gitlab_strv_free(v);
	struct job *j;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 102, &j), 0);
	cr_assert_eq(atomic_load(&fake.job_get), 0);
	job_put(j);
}

Test(catalog, idle_jobs_are_trimmed_past_32)
{
	struct catalog_stats st;
	for (int64_t id = 200; id < 240; id++) {
		struct job *j;
		cr_assert_eq(catalog_job_by_id(cat, "grp/app", id, &j), 0);
		job_put(j);
	}
	catalog_get_stats(cat, &st);
	cr_assert_eq(st.jobs_open, 33, "trimmed when the newest came, then held");
	struct job *held;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 239, &held), 0, "the newest is kept");
	cr_assert_eq(atomic_load(&fake.job_get), 40);
	for (int64_t id = 300; id < 340; id++) {
		struct job *j;
		cr_assert_eq(catalog_job_by_id(cat, "grp/app", id, &j), 0);
		job_put(j);
	}
	catalog_get_stats(cat, &st);
	cr_assert_eq(st.jobs_open, 34, "32 idle, the one in use, the newest");
	struct job *again;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 239, &again), 0);
	cr_assert_eq(again, held, "a job in use is never trimmed");
	job_put(again);
	job_put(held);
}

Test(catalog, keep_refreshes_the_info)
{
	struct job *j;
	struct gl_job g;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 101, &j), 0);
	cr_assert_eq(job_info(j, &g), 0);
	cr_assert_null(g.artifacts_expire_at);
	gl_job_release(&g);
	fake.expire_at = "2030-01-01T00:00:00.000Z";
	cr_assert_eq(catalog_job_keep(cat, j), 0);
	cr_assert_eq(job_info(j, &g), 0);
	cr_assert_str_eq(g.artifacts_expire_at, "2030-01-01T00:00:00.000Z");
	gl_job_release(&g);
	job_put(j);
}

Test(catalog, delete_forgets_the_job)
{
	struct job *j;
	struct catalog_stats st;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 250, &j), 0);
	cr_assert_eq(job_pread(j, (char[4]){0}, 4, 0, 0), 4);
	cr_assert_eq(catalog_job_delete(cat, j), 0);
	catalog_get_stats(cat, &st);
	cr_assert_eq(st.jobs_open, 0);
	job_put(j);
	char **v;
	cr_assert_eq(catalog_list_job_ids(cat, "grp/app", &v), 0);
	assert_names(v, (const char *const[]){"102", "102.zip", NULL});
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 250, &j), 0);
	cr_assert_eq(atomic_load(&fake.job_get), 2, "looked up anew");
	int reads = atomic_load(&fake.archive);
	cr_assert_eq(job_pread(j, (char[4]){0}, 4, 0, 0), 4);
	cr_assert_gt(atomic_load(&fake.archive), reads, "the cached bytes went with it");
	job_put(j);
}

/* A second mount on the same cache folder, with a token that may not download job 250 (issue
 * 20): the index and bytes the first mount cached are not served to it; the first mount is
 * asked again once its TTL passes, and refused from then on. */
Test(catalog, cached_bytes_only_for_a_token_let_download_them)
{
	struct job *j, *k;
	const struct zipindex *zi;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 250, &j), 0);
	cr_assert_eq(job_index(j, &zi), 0, "read from the server: no question more");
	int reads = atomic_load(&fake.archive);
	struct catalog *other;
	struct catalog_config cc = {.backend = &fake_backend,
				    .cache = cache,
				    .base_url = "http://gitlab.test",
				    .ttl_s = 60,
				    .now = fake_now};
	cr_assert_eq(catalog_new(&cc, &other), 0);
	fake.archive_err = -EACCES; /* artifacts:access hides them from this token */
	cr_assert_eq(catalog_job_by_id(other, "grp/app", 250, &k), 0, "the job itself is seen");
	cr_assert_eq(job_index(k, &zi), -EACCES);
	cr_assert_null(zi);
	cr_assert_eq(job_authorize(k), -EACCES, "a refusal is kept for the TTL too");
	cr_assert_eq(atomic_load(&fake.archive), reads + 1, "one question, one byte");
	job_put(k);
	catalog_free(other);

	cr_assert_eq(job_index(j, &zi), 0, "the first mount was answered within its TTL");
	cr_assert_eq(atomic_load(&fake.archive), reads + 1);
	clock_s += 61;
	cr_assert_eq(job_index(j, &zi), -EACCES, "asked again after the TTL: revoked");
	fake.archive_err = -ENOENT;
	clock_s += 61;
	cr_assert_eq(job_authorize(j), -ENOENT, "artifacts gone: ENOENT");
	fake.archive_err = 0;
	clock_s += 61;
	cr_assert_eq(job_index(j, &zi), 0, "given back");
	cr_assert_not_null(zi);
	job_put(j);
}

Test(catalog, errno_table)
{
	struct job *j;
	char **v;
	cr_assert_eq(catalog_project(cat, "grp/nope"), -ENOENT);
	cr_assert_eq(catalog_ref(cat, "grp/app", "nope"), -ENOENT);
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 103, &j), -ENOENT, "no archive");
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 5, &j), -ENOENT);
	fake.project_err = -EIO;
	cr_assert_eq(catalog_project(cat, "grp/other"), -EIO);
	cr_assert_eq(catalog_project(cat, "grp/other"), -EIO);
	cr_assert_eq(atomic_load(&fake.project_get), 4, "EIO is not remembered");
	fake.project_err = 0;
	fake.job_token = true;
	cr_assert_eq(catalog_project(cat, "grp/tok"), 0, "a job token is taken at its word");
	cr_assert_eq(catalog_list_refs(cat, "grp/tok", &v), -EACCES);
	cr_assert_eq(catalog_list_job_ids(cat, "grp/tok", &v), 0);
	assert_names(v, (const char *const[]){NULL});
}

Test(catalog, a_job_token_probes_the_by_ref_endpoint)
{
	fake.job_token = true;
	struct job *j;
	char **v;
	cr_assert_eq(catalog_list_ref_jobs(cat, "grp/app", "main", &v), -EACCES);
	cr_assert_eq(catalog_job_by_ref(cat, "grp/app", "main", "build", &j), 0);
	cr_assert_eq(job_id(j), 0);
	cr_assert_not(job_is_by_id(j));
	cr_assert_str_eq(job_ref(j), "main");
	cr_assert_eq(job_size(j), fake.zip_len, "learnt from the tail's answer");
	cr_assert_eq(catalog_job_keep(cat, j), -EACCES);
	cr_assert_eq(catalog_job_delete(cat, j), -EACCES);
	const struct zipindex *zi;
	cr_assert_eq(job_index(j, &zi), 0);
	cr_assert_not_null(zipindex_find(zi, "hello.txt"));
	cr_assert_eq(atomic_load(&fake.archive), 1, "the probe's tail seeded the cache");
	job_put(j);
}

Test(catalog, a_wrong_archive_answer_never_reaches_the_cache)
{
	struct job *j;
	char buf[4];
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 101, &j), 0);
	fake.wrong_length = true;
	cr_assert_eq(job_pread(j, buf, sizeof(buf), 0, 0), -EIO);
	fake.wrong_length = false;
	cr_assert_eq(job_pread(j, buf, sizeof(buf), 0, 0), 4);
	cr_assert_eq(memcmp(buf, fake.zip, 4), 0, "the rejected bytes were served");
	job_put(j);
}

/* ---- job sets other than refs, and logs ---- */

static const struct tree_set pipeline7 = {.by = TREE_BY_PIPELINE, .id = 7};
static const struct tree_set mr5 = {.by = TREE_BY_MR, .id = 5};

Test(catalog, a_pipeline_a_merge_request_and_a_commit_name_the_same_jobs)
{
	struct tree_set commit = {.by = TREE_BY_COMMIT, .name = "c0ffee00"};
	const struct tree_set *sets[] = {&pipeline7, &mr5, &commit};
	struct job *first = NULL;
	for (size_t i = 0; i < 3; i++) {
		char **v;
		cr_assert_eq(catalog_set(cat, "grp/app", sets[i]), 0);
		cr_assert_eq(catalog_list_set_jobs(cat, "grp/app", sets[i], &v), 0);
		assert_names(v, (const char *const[]){"build", "build.zip", "test", "test.zip",
						      "build.log", "test.log", NULL});
		struct job *j;
		cr_assert_eq(catalog_job_in_set(cat, "grp/app", sets[i], "build", &j), 0);
		cr_assert_eq(job_id(j), 101);
		cr_assert(!first || first == j, "one job object, whichever set names it");
		if (!first)
			first = job_hold(j);
		job_put(j);
	}
	job_put(first);
}

Test(catalog, unknown_sets_and_a_job_token_are_enoent)
{
	struct tree_set p8 = {.by = TREE_BY_PIPELINE, .id = 8}, m6 = {.by = TREE_BY_MR, .id = 6};
	struct tree_set other = {.by = TREE_BY_COMMIT, .name = "deadbeef"};
	cr_assert_eq(catalog_set(cat, "grp/app", &p8), -ENOENT);
	cr_assert_eq(catalog_set(cat, "grp/app", &m6), -ENOENT);
	cr_assert_eq(catalog_set(cat, "grp/app", &other), -ENOENT);
	struct job *j;
	cr_assert_eq(catalog_job_in_set(cat, "grp/app", &pipeline7, "nope", &j), -ENOENT);
	fake.job_token = true;
	struct tree_set p9 = {.by = TREE_BY_PIPELINE, .id = 9};
	cr_assert_eq(catalog_set(cat, "grp/app", &p9), -ENOENT);
	char **v;
	cr_assert_eq(catalog_list_sets(cat, "grp/app", TREE_BY_MR, &v), 0);
	assert_names(v, (const char *const[]){NULL});
}

Test(catalog, listings_of_sets_show_the_newest_and_those_met)
{
	char **v;
	cr_assert_eq(catalog_list_sets(cat, "grp/app", TREE_BY_MR, &v), 0);
	assert_names(v, (const char *const[]){"5", NULL});
	cr_assert_eq(catalog_list_sets(cat, "grp/app", TREE_BY_COMMIT, &v), 0);
	assert_names(v, (const char *const[]){NULL});
	cr_assert_eq(catalog_list_sets(cat, "grp/app", TREE_BY_PIPELINE, &v), 0);
	assert_names(v, (const char *const[]){"7", NULL});
}

Test(catalog, set_info_gives_the_pipeline_and_the_merge_request)
{
	struct gl_pipeline pl;
	struct gl_merge_request mr;
	cr_assert_eq(catalog_set_info(cat, "grp/app", &mr5, &pl, &mr), 0);
	cr_assert_eq(pl.id, 7);
	cr_assert_str_eq(pl.sha, "c0ffee0000000000000000000000000000000007");
	cr_assert_str_eq(mr.title, "Make it faster");
	cr_assert_str_eq(mr.source_branch, "fast");
	gl_pipeline_release(&pl);
	gl_merge_request_release(&mr);
	struct tree_set main_ref = {.by = TREE_BY_REF, .name = "main"};
	cr_assert_eq(catalog_set_info(cat, "grp/app", &main_ref, &pl, &mr), -ENODATA);
}

/* Reads a log through a reader of its own, as an open file does, to its end; l is taken over. */
static char *read_log(struct job_log *l, size_t *len)
{
	struct log_reader *r;
	cr_assert_eq(job_log_open(l, &r), 0);
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (cap - n < 1 << 16)
			buf = realloc(buf, cap *= 2);
		ssize_t k = log_reader_pread(r, buf + n, cap - n, n);
		cr_assert_geq(k, 0, "read at %zu: %zd", n, k);
		if (k == 0)
			break;
		n += (size_t)k;
	}
	log_reader_free(r);
	*len = n;
	return buf;
}

Test(catalog, a_log_is_fetched_once_and_read_from_the_cache)
{
	struct job *j;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 101, &j), 0);
	struct job_log *l;
	cr_assert_eq(catalog_job_log(cat, j, &l), 0);
	cr_assert_eq(job_log_size(l), 0, "unknown until read");
	cr_assert_eq(atomic_load(&fake.trace), 0, "a stat asks for no trace");
	size_t n;
	char *text = read_log(l, &n);
	cr_assert_eq(n, strlen("log of 101\n"));
	cr_assert_eq(memcmp(text, "log of 101\n", n), 0);
	free(text);
	cr_assert_eq(catalog_job_log(cat, j, &l), 0);
	cr_assert_eq(job_log_size(l), n, "exact once read to the end");
	text = read_log(l, &n);
	cr_assert_eq(n, strlen("log of 101\n"));
	free(text);
	cr_assert_eq(atomic_load(&fake.trace), 1, "the trace is fetched once");
	job_put(j);
}

Test(catalog, a_log_left_in_the_cache_is_not_fetched_again)
{
	struct job *j;
	struct job_log *l;
	size_t n;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 101, &j), 0);
	cr_assert_eq(catalog_job_log(cat, j, &l), 0);
	free(read_log(l, &n));
	job_put(j);
	catalog_free(cat); /* a new mount over the same cache */
	struct catalog_config cc = {.backend = &fake_backend,
				    .cache = cache,
				    .base_url = "http://gitlab.test",
				    .ttl_s = 60};
	cr_assert_eq(catalog_new(&cc, &cat), 0);
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 101, &j), 0);
	cr_assert_eq(catalog_job_log(cat, j, &l), 0);
	cr_assert_eq(job_log_size(l), strlen("log of 101\n"), "whole in the cache: exact");
	free(read_log(l, &n));
	cr_assert_eq(n, strlen("log of 101\n"));
	job_put(j);
	cr_assert_eq(atomic_load(&fake.trace), 1);
}

/* Issue 18 item 11: a log over 256 MiB, and larger than the cache, reads whole and exact. */
Test(catalog, a_log_larger_than_the_cache_and_256_MiB_reads_whole)
{
	struct cache *small;
	struct catalog *c2;
	char *d2 = tmpdir_new("catalog-small");
	cr_assert_eq(cache_open(d2, 1 << 20, &small), 0);
	struct catalog_config cc = {.backend = &fake_backend,
				    .cache = small,
				    .base_url = "http://gitlab.test",
				    .ttl_s = 60,
				    .now = fake_now};
	cr_assert_eq(catalog_new(&cc, &c2), 0);
	fake.trace_size = (260ull << 20) + 12345;
	struct job_log *l;
	char *finished_at;
	cr_assert_eq(catalog_log_by_id(c2, "grp/app", 101, &l, &finished_at), 0);
	free(finished_at);
	cr_assert_eq(job_log_size(l), 0);
	struct log_reader *r;
	cr_assert_eq(job_log_open(l, &r), 0);
	char *buf = malloc(1 << 17);
	uint64_t off = 0;
	for (;;) {
		ssize_t k = log_reader_pread(r, buf, 1 << 17, off);
		cr_assert_geq(k, 0, "read at %llu: %zd", (unsigned long long)off, k);
		if (k == 0)
			break;
		for (ssize_t i = 0; i < k; i += 4093)
			cr_assert_eq(buf[i], fake_trace_byte(off + (uint64_t)i), "byte %llu",
				     (unsigned long long)(off + (uint64_t)i));
		off += (uint64_t)k;
	}
	cr_assert_eq(off, fake.trace_size, "the whole log");
	cr_assert_eq(atomic_load(&fake.trace), 1, "in one GET");
	cr_assert_eq(log_reader_pread(r, buf, 100, 5), 100, "a read behind the window");
	cr_assert_eq(memcmp(buf, (char[]){fake_trace_byte(5), fake_trace_byte(6)}, 2), 0);
	cr_assert_eq(atomic_load(&fake.trace), 2, "starts the GET again");
	log_reader_free(r); /* ends that GET midway */
	free(buf);
	catalog_free(c2);
	cache_close(small);
	tmpdir_remove(d2);
}

static int log_files_seen;

static int count_log_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	const char *base = path + ftw->base;
	size_t n = strlen(base);
	log_files_seen += type == FTW_F && base[0] == 'l' && n > 4 && !strcmp(base + n - 4, ".afs");
	return 0;
}

/* Files of logs ("l<origin>-<id>.afs") in the cache folder. */
static int log_files(void)
{
	log_files_seen = 0;
	cr_assert_eq(nftw(dir, count_log_file, 8, FTW_PHYS), 0);
	return log_files_seen;
}

/* Issue 18 item 12: an erased job's log is gone from the mount and the cache within the TTL,
 * however long it was cached, and in a later mount too. */
Test(catalog, an_erased_jobs_log_is_gone_and_leaves_the_cache)
{
	struct job_log *l;
	char *finished_at;
	size_t n;
	cr_assert_eq(catalog_log_by_id(cat, "grp/app", 101, &l, &finished_at), 0);
	free(finished_at);
	free(read_log(l, &n));
	cr_assert_eq(log_files(), 1, "the log is in the cache");
	fake.erased = true;
	cr_assert_eq(catalog_log_by_id(cat, "grp/app", 101, &l, &finished_at), 0, "within the TTL");
	job_log_put(l);
	free(finished_at);
	clock_s += 61; /* past it */
	cr_assert_eq(catalog_log_by_id(cat, "grp/app", 101, &l, &finished_at), -ENOENT);
	cr_assert_eq(log_files(), 0, "no file of that log stays in the cache");
}

Test(catalog, a_running_job_has_no_log)
{
	struct job *j;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 101, &j), 0);
	struct gl_job g;
	cr_assert_eq(job_info(j, &g), 0);
	free(g.status);
	g.status = strdup("running");
	job_set_info(j, &g);
	struct job_log *l;
	cr_assert_eq(catalog_job_log(cat, j, &l), -ENOENT);
	cr_assert_eq(atomic_load(&fake.trace), 0);
	job_put(j);
}

Test(catalog, a_ref_is_checked_with_one_call_never_by_listing_every_branch)
{
	cr_assert_eq(catalog_ref(cat, "grp/app", "refs/merge-requests/7/head"), 0,
		     "a ref no listing shows, which has pipelines");
	cr_assert_eq(catalog_ref(cat, "grp/app", "refs/merge-requests/7/head"), 0);
	cr_assert_eq(catalog_ref(cat, "grp/app", "nope"), -ENOENT);
	cr_assert_eq(atomic_load(&fake.refs_list), 0, "no branch or tag listing");
	cr_assert_eq(atomic_load(&fake.ref_check), 2, "one call per ref, remembered");
	char **v;
	cr_assert_eq(catalog_list_refs(cat, "grp/app", &v), 0);
	gitlab_strv_free(v);
	cr_assert_eq(catalog_ref(cat, "grp/app", "dev"), 0);
	cr_assert_eq(atomic_load(&fake.ref_check), 2, "a listed ref needs no call of its own");
}

Test(catalog, a_job_token_ref_is_taken_on_trust)
{
	fake.job_token = true;
	cr_assert_eq(catalog_ref(cat, "grp/app", "any/ref"), 0,
		     "GitLab cannot tell a job token: the by-ref endpoints answer for it");
}

Test(catalog, artifacts_deleted_on_the_server_are_gone_after_the_ttl)
{
	struct job *j;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 150, &j), 0);
	job_put(j);
	fake.deleted = 150;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 150, &j), 0, "trusted within the TTL");
	job_put(j);
	clock_s += 61;
	cr_assert_eq(catalog_job_by_id(cat, "grp/app", 150, &j), -ENOENT);
	char **v;
	cr_assert_eq(catalog_list_job_ids(cat, "grp/app", &v), 0);
	assert_names(v, (const char *const[]){"102", "102.zip", NULL});
}

Test(catalog, a_by_ref_read_fails_when_the_ref_names_another_archive)
{
	fake.job_token = true;
	struct job *j;
	char buf[4];
	cr_assert_eq(catalog_job_by_ref(cat, "grp/app", "main", "build", &j), 0);
	job_forget(j, 0, job_size(j)); /* the probe's tail held it all: make a read fetch */
	cr_assert_eq(job_pread(j, buf, sizeof(buf), 0, 0), 4, "the same archive reads");
	job_forget(j, 0, job_size(j));
	fake.archive_generation++;
	cr_assert_eq(job_pread(j, buf, sizeof(buf), 0, 0), -EIO, "pinned to the first archive");
	job_put(j);
	clock_s += 61;
	cr_assert_eq(catalog_job_by_ref(cat, "grp/app", "main", "build", &j), 0);
	cr_assert_eq(job_pread(j, buf, sizeof(buf), 0, 0), 4, "a new lookup reads the new one");
	job_put(j);
}

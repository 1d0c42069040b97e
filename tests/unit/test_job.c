/* job: one archive through the cache, on the fake backend: which endpoint a job reads, reads
 * and forgetting, background prefetches, metadata read as copies, and the single flight of the
 * index and the cache entry when many threads want them first at once. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "artifactfs/job.h"
#include "fake_backend.h"
#include "tmpdir.h"

static char *dir;
static struct cache *cache;
static struct job_env env;
static struct pool *pool;

static void setup(void)
{
	fake_init();
	dir = tmpdir_new("job");
	cr_assert_eq(cache_open(dir, 1 << 30, &cache), 0);
	cr_assert_eq(pool_new(2, &pool), 0);
	job_env_init(&env, &fake_backend, cache);
	env.pool = pool;
}

static void teardown(void)
{
	pool_free(pool);
	cache_close(cache);
	tmpdir_remove(dir);
	free(fake.zip);
}

TestSuite(job, .init = setup, .fini = teardown);

static struct job *by_id(int64_t id)
{
	struct gl_job info;
	fake_job(id, "build", "main", &info);
	char key[32];
	snprintf(key, sizeof(key), "j-%lld", (long long)id);
	struct job *j = job_new(&env, "grp/app", NULL, &info, key, fake.zip_len);
	gl_job_release(&info);
	cr_assert_not_null(j);
	return j;
}

Test(job, a_job_by_id_reads_endpoint_1_a_job_by_ref_endpoint_2)
{
	struct job *j = by_id(101);
	char buf[4];
	cr_assert_eq(job_pread(j, buf, 4, 0, 0), 4);
	cr_assert_eq(fake.last.job_id, 101);
	job_put(j);
	struct gl_job info = {.name = "build", .ref = "main", .archive_size = -1};
	j = job_new(&env, "grp/app", "main", &info, "r-main-build", fake.zip_len);
	cr_assert_eq(job_id(j), 0);
	cr_assert_not(job_is_by_id(j));
	cr_assert_eq(job_pread(j, buf, 4, 0, 0), 4);
	cr_assert_eq(fake.last.job_id, 0);
	cr_assert_str_eq(fake.last.ref, "main");
	cr_assert_str_eq(fake.last.job_name, "build");
	job_put(j);
	job_env_drain(&env);
}

Test(job, reads_are_cached_and_forgotten_bytes_fetched_again)
{
	struct job *j = by_id(101);
	char *buf = malloc(fake.zip_len);
	cr_assert_eq(job_pread(j, buf, fake.zip_len, 0, 0), (ssize_t)fake.zip_len);
	cr_assert_eq(memcmp(buf, fake.zip, fake.zip_len), 0);
	cr_assert_eq(job_pread(j, buf, 10, 5, 0), 10);
	cr_assert_eq(atomic_load(&fake.archive), 1, "the second read came from the cache");
	job_forget(j, 0, 10);
	cr_assert_eq(job_pread(j, buf, 10, 0, 0), 10);
	cr_assert_eq(atomic_load(&fake.archive), 2, "forgotten bytes are fetched again");
	cr_assert_eq(job_read_fn(j, buf, 10, fake.zip_len - 5), -EIO, "past the end");
	free(buf);
	job_put(j);
	job_env_drain(&env);
}

Test(job, the_index_is_loaded_once)
{
	struct job *j = by_id(101);
	const struct zipindex *a, *b;
	cr_assert_eq(job_index(j, &a), 0);
	cr_assert_eq(job_index(j, &b), 0);
	cr_assert_eq(a, b);
	cr_assert_not_null(zipindex_find(a, "dir/inner.txt"));
	cr_assert_eq(atomic_load(&env.indexes_loaded), 1);
	job_put(j);
	job_env_drain(&env);
}

Test(job, a_prefetch_makes_the_bytes_present)
{
	struct job *j = by_id(101);
	job_prefetch(j, 0, fake.zip_len);
	job_put(j);          /* the prefetch holds its own reference */
	job_env_drain(&env); /* waits for it */
	cr_assert_eq(atomic_load(&fake.archive), 1);
	job_env_init(&env, &fake_backend, cache);
	env.pool = pool;
	j = by_id(101);
	char buf[8];
	cr_assert_eq(job_pread(j, buf, sizeof(buf), fake.zip_len - 8, 0), 8);
	cr_assert_eq(atomic_load(&fake.archive), 1, "no fetch after the prefetch");
	job_put(j);
	job_env_drain(&env);
}

Test(job, metadata_is_read_as_copies)
{
	struct job *j = by_id(101);
	struct gl_job before, after;
	cr_assert_eq(job_info(j, &before), 0);
	struct gl_job fresh;
	fake_job(101, "build", "main", &fresh);
	fresh.artifacts_expire_at = strdup("2030-01-01T00:00:00.000Z");
	job_set_info(j, &fresh);
	cr_assert_null(fresh.artifacts_expire_at, "taken over");
	cr_assert_eq(job_info(j, &after), 0);
	cr_assert_null(before.artifacts_expire_at, "an earlier copy stays as it was");
	cr_assert_str_eq(before.name, "build");
	cr_assert_str_eq(after.artifacts_expire_at, "2030-01-01T00:00:00.000Z");
	gl_job_release(&before);
	gl_job_release(&after);
	job_put(j);
	job_env_drain(&env);
}

Test(job, a_copy_keeps_every_field)
{
	struct gl_job src, copy;
	fake_job(7, "build", "main", &src);
	src.project_id = 42;
	src.downloadable = true;
	src.pipeline_id = 9;
	src.erased = true;
	cr_assert_eq(job_info_copy(&src, &copy), 0);
	cr_assert_eq(copy.project_id, 42);
	cr_assert(copy.downloadable);
	cr_assert_eq(copy.pipeline_id, 9);
	cr_assert(copy.erased);
	cr_assert_str_eq(copy.name, "build");
	cr_assert_neq(copy.name, src.name, "the strings are the copy's own");
	gl_job_release(&src);
	gl_job_release(&copy);
}

/* ---- single flight: THREADS first uses at once ---- */

#define THREADS 8

struct racer {
	struct job *job;
	pthread_barrier_t *start;
	const void *got;
	int err;
};

static void *index_racer(void *p)
{
	struct racer *r = p;
	const struct zipindex *zi = NULL;
	pthread_barrier_wait(r->start);
	fake_arrive();
	r->err = job_index(r->job, &zi);
	r->got = zi;
	return NULL;
}

static void *entry_racer(void *p)
{
	struct racer *r = p;
	struct cache_entry *e = NULL;
	pthread_barrier_wait(r->start);
	fake_arrive();
	r->err = job_cache_entry(r->job, &e);
	r->got = e;
	return NULL;
}

/* Runs fn on j in THREADS threads released together, and checks that all got one object. With
 * held_fd (an entry file this test holds locked), unlocks it once every thread has arrived. */
static void race(struct job *j, void *(*fn)(void *), int held_fd)
{
	pthread_t t[THREADS];
	struct racer r[THREADS];
	pthread_barrier_t start;
	pthread_mutex_lock(&fake_gate_lock);
	fake.gate = THREADS;
	fake.arrived = 0;
	pthread_mutex_unlock(&fake_gate_lock);
	pthread_barrier_init(&start, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		r[i] = (struct racer){j, &start, NULL, -1};
		cr_assert_eq(pthread_create(&t[i], NULL, fn, &r[i]), 0);
	}
	if (held_fd >= 0) {
		fake_gate_wait();
		flock(held_fd, LOCK_UN);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < THREADS; i++) {
		cr_assert_eq(r[i].err, 0, "thread %d", i);
		cr_assert_not_null(r[i].got);
		cr_assert_eq(r[i].got, r[0].got, "thread %d got another object", i);
	}
}

/* The fetch waits (the fake's gate) until all THREADS callers have arrived at job_index. That
 * does not prove they are inside it yet, so without the single flight a round may pass by luck
 * (about 1 in 20 here): four rounds, a fresh job and cache entry each. */
Test(job, concurrent_first_uses_load_the_index_once)
{
	for (int k = 1; k <= 4; k++) {
		struct job *j = by_id(110 + k);
		race(j, index_racer, -1);
		cr_assert_eq(atomic_load(&env.indexes_loaded), (uint_fast64_t)k,
			     "one index build per job");
		cr_assert_eq(atomic_load(&fake.archive), k, "one fetch per job");
		job_put(j);
	}
	job_env_drain(&env);
}

/* Getting the entry makes no fetch; its slow step is the cache's shared flock() on the entry's
 * file, so the test holds that file locked until all THREADS callers are in job_cache_entry. A
 * second get would leave a reference behind when the job is freed: the entry would stay open,
 * and a get of the key with another size is then -EIO instead of making the entry anew. */
Test(job, concurrent_first_uses_open_the_cache_entry_once)
{
	struct cache_entry *e;
	cr_assert_eq(cache_entry_get(cache, "j-101", fake.zip_len, &e), 0);
	cache_entry_put(e); /* the file now exists: lock it */
	char *f;
	cr_assert(asprintf(&f, "%s/v2/j-101.afs", dir) > 0);
	int fd = open(f, O_RDWR | O_CLOEXEC);
	free(f);
	cr_assert_geq(fd, 0);
	cr_assert_eq(flock(fd, LOCK_EX), 0);
	struct job *j = by_id(101);
	race(j, entry_racer, fd);
	close(fd);
	job_put(j);
	job_env_drain(&env);
	cr_assert_eq(cache_entry_get(cache, "j-101", fake.zip_len + 1, &e), 0,
		     "the job held the entry once, and let it go");
	cache_entry_put(e);
	cr_assert_eq(atomic_load(&fake.archive), 0);
}

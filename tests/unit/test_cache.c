#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sched.h>
#include <sys/mount.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "artifactfs/cache.h"
#include "tmpdir.h"

#define SIZE (5 * CACHE_BLOCK_SIZE + 1234)

static unsigned char byte_at(uint64_t i)
{
	return (unsigned char)((i * 2654435761u) >> 24);
}

struct source {
	atomic_int calls;
	int fail;       /* -errno to return instead of data */
	bool whole;     /* answer like a 200: everything from 0, odd chunks */
	bool nothing;   /* succeed without writing */
	int fail_after; /* -errno to return after writing everything (a rejected answer) */
	bool garbage;   /* write wrong bytes */
	void (*gate)(struct source *s,
		     int call);   /* called first, with the count of earlier calls */
	_Atomic pid_t readers[8]; /* for the single-flight gate; 0 until stored */
	atomic_int n_readers;
	int *hold; /* a pipe pair: say "in" on hold[1], go on when hold[0] gives a byte */
	int tell;  /* for say_fetched(): a pipe's end */
};

/* The source the next read fetches from: entries are bound to fetch() once, and each test
 * process (Criterion forks one per test) says which struct source answers. */
static struct source *active;

static int fetch_with(struct source *s, struct cache_writer *w, uint64_t off, uint64_t len)
{
	int call = atomic_fetch_add(&s->calls, 1);
	if (s->gate)
		s->gate(s, call);
	char ch = 'i';
	if (s->hold && (write(s->hold[1], &ch, 1) != 1 || read(s->hold[0], &ch, 1) != 1))
		return -EIO;
	if (s->fail)
		return s->fail;
	if (s->nothing)
		return 0;
	uint64_t start = s->whole ? 0 : off, end = s->whole ? cache_writer_size(w) : off + len;
	unsigned char buf[7777];
	while (start < end) {
		size_t n = end - start < sizeof(buf) ? (size_t)(end - start) : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = byte_at(start + i) ^ (s->garbage ? 0xff : 0);
		int err = cache_writer_write(w, start, buf, n);
		if (err)
			return err;
		start += n;
	}
	return s->fail_after;
}

static int fetch(void *ctx, struct cache_writer *w, uint64_t off, uint64_t len)
{
	(void)ctx;
	return fetch_with(active, w, off, len);
}

/* A fetch from the struct source ctx: for two caches in one test, each with its own. */
static int fetch_ctx(void *ctx, struct cache_writer *w, uint64_t off, uint64_t len)
{
	return fetch_with(ctx, w, off, len);
}

static int get_bound(struct cache *c, const char *key, uint64_t size, struct cache_entry **e)
{
	int err = cache_entry_get(c, key, size, e);
	if (!err)
		cache_entry_bind(*e, &(struct cache_source){fetch, NULL, NULL});
	return err;
}

static ssize_t pread_from(struct source *s, struct cache_entry *e, void *buf, size_t len,
			  uint64_t off, uint64_t min_fetch)
{
	active = s;
	return cache_entry_pread(e, buf, len, off, min_fetch);
}

static void check_range(struct cache_entry *e, struct source *s, uint64_t off, size_t len)
{
	unsigned char *buf = malloc(len);
	ssize_t n = pread_from(s, e, buf, len, off, 0);
	size_t want = off >= SIZE ? 0 : (SIZE - off < len ? SIZE - off : len);
	cr_assert_eq(n, (ssize_t)want, "pread at %llu: %zd", (unsigned long long)off, n);
	for (size_t i = 0; i < want; i++)
		cr_assert_eq(buf[i], byte_at(off + i), "byte %llu", (unsigned long long)(off + i));
	free(buf);
}

Test(cache, reads_exact_bytes_across_blocks_and_at_the_end)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	struct cache_entry *e;
	struct source s = {0};
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, "job-1", SIZE, &e), 0);
	check_range(e, &s, CACHE_BLOCK_SIZE - 10, 20);
	check_range(e, &s, SIZE - 100, 4096);
	check_range(e, &s, 0, SIZE);
	int calls = atomic_load(&s.calls);
	check_range(e, &s, 0, SIZE);
	cr_assert_eq(atomic_load(&s.calls), calls, "a second read fetches nothing");
	cache_entry_put(e);
	cache_close(c);
	tmpdir_remove(d);
}

Test(cache, folders_are_0700_and_files_0600)
{
	char *d = tmpdir_new("cache");
	char *sub;
	cr_assert(asprintf(&sub, "%s/deep/cache", d) > 0);
	struct cache *c;
	struct cache_entry *e;
	cr_assert_eq(cache_open(sub, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, "k", SIZE, &e), 0);
	struct stat st;
	cr_assert_eq(stat(sub, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	char *f;
	cr_assert(asprintf(&f, "%s/v2/k.afs", sub) > 0);
	cr_assert_eq(stat(f, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cache_entry_put(e);
	cache_close(c);
	free(f);
	free(sub);
	tmpdir_remove(d);
}

Test(cache, a_reopened_cache_serves_without_fetching)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	struct cache_entry *e;
	struct source s = {0};
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, "k", SIZE, &e), 0);
	check_range(e, &s, 0, SIZE);
	cache_entry_put(e);
	cache_close(c);
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, "k", 0, &e), 0, "the size is on disk");
	cr_assert_eq(cache_entry_size(e), SIZE);
	struct source s2 = {0};
	check_range(e, &s2, 0, SIZE);
	cr_assert_eq(atomic_load(&s2.calls), 0);
	cache_entry_put(e);
	cr_assert_eq(get_bound(c, "absent", 0, &e), -ENOENT);
	cr_assert_eq(get_bound(c, "k", SIZE + 1, &e), 0, "another size starts anew");
	check_range(e, &s2, 0, 10);
	cr_assert_gt(atomic_load(&s2.calls), 0);
	cache_entry_put(e);
	cache_close(c);
	tmpdir_remove(d);
}

struct reader_arg {
	struct cache_entry *e;
	struct source *s;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	unsigned char buf[100];
	atomic_store(&a->s->readers[atomic_fetch_add(&a->s->n_readers, 1)], gettid());
	ssize_t n = cache_entry_pread(a->e, buf, sizeof(buf), 3 * CACHE_BLOCK_SIZE, 0);
	return (void *)(intptr_t)(n == sizeof(buf) && buf[0] == byte_at(3 * CACHE_BLOCK_SIZE));
}

/* Whether thread tid of this process is asleep (blocked on a futex: the cache's condition
 * variable, once the fetch runs without the entry's lock). */
static bool asleep(pid_t tid)
{
	char path[64], stat[512];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(stat, 1, sizeof(stat) - 1, f) : 0;
	if (f)
		fclose(f);
	stat[n] = '\0';
	const char *end = strrchr(stat, ')'); /* the state follows the command name */
	return end && end[1] == ' ' && end[2] == 'S';
}

/* Holds the first fetch until every other reader sleeps (waiting for this fetch) or has
 * fetched itself (no single flight): then the count of fetches tells which happened. */
static void hold_until_all_wait(struct source *s, int call)
{
	if (call > 0)
		return;
	struct timespec deadline, now;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 30;
	for (;;) {
		int n = atomic_load(&s->n_readers), sleeping = 0;
		for (int i = 0; i < n; i++) {
			pid_t tid = atomic_load(&s->readers[i]);
			sleeping += tid && tid != gettid() && asleep(tid);
		}
		if ((n == 8 && sleeping == 7) || atomic_load(&s->calls) > 1)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		cr_assert(now.tv_sec < deadline.tv_sec, "the readers never all waited");
		sched_yield();
	}
}

Test(cache, concurrent_readers_of_missing_blocks_cause_one_fetch)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	struct cache_entry *e;
	struct source s = {.gate = hold_until_all_wait};
	active = &s;
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, "k", SIZE, &e), 0);
	pthread_t t[8];
	struct reader_arg a = {e, &s};
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, reader, &a);
	for (int i = 0; i < 8; i++) {
		void *ok;
		pthread_join(t[i], &ok);
		cr_assert(ok);
	}
	cr_assert_eq(atomic_load(&s.calls), 1);
	cache_entry_put(e);
	cache_close(c);
	tmpdir_remove(d);
}

struct span_arg {
	struct cache_entry *e;
	uint64_t off;
	size_t len;
};

static void *read_span(void *p)
{
	struct span_arg *a = p;
	unsigned char *buf = malloc(a->len);
	ssize_t n = buf ? cache_entry_pread(a->e, buf, a->len, a->off, 0) : -1;
	bool ok = n == (ssize_t)a->len;
	for (size_t i = 0; ok && i < a->len; i++)
		ok = buf[i] == byte_at(a->off + i);
	free(buf);
	return (void *)(intptr_t)ok;
}

/* A fetch's "in" byte, or a failure after 30 s (the code under test would wait forever). */
static void await_fetch(int fd, const char *what)
{
	struct pollfd p = {fd, POLLIN, 0};
	char ch;
	cr_assert_eq(poll(&p, 1, 30000), 1, "%s never started", what);
	cr_assert_eq(read(fd, &ch, 1), 1);
}

/* Read-ahead chunks share a block at their seam when they do not end on one: a read whose
 * first block another fetch holds must fetch the rest meanwhile, not wait for it first (that
 * kept two of eight connections idle on a slow link). Fails (hangs, then times out) without
 * the skip in make_present(). */
Test(cache, a_read_fetches_its_free_blocks_while_another_fetch_holds_one)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	struct cache_entry *e;
	int in[2], go[2];
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(pipe(go), 0);
	int hold[2] = {go[0], in[1]};
	struct source s = {.hold = hold};
	active = &s;
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, "k", SIZE, &e), 0);
	pthread_t a, b;
	struct span_arg first = {e, 100, 2 * CACHE_BLOCK_SIZE - 200}; /* blocks 0-1 */
	struct span_arg second = {e, 2 * CACHE_BLOCK_SIZE - 50, 2 * CACHE_BLOCK_SIZE}; /* 1-3 */
	pthread_create(&a, NULL, read_span, &first);
	await_fetch(in[0], "the first fetch");
	pthread_create(&b, NULL, read_span, &second);
	await_fetch(in[0], "the second read's fetch of blocks 2-3, while block 1 is held,");
	cr_assert_eq(write(go[1], "gg", 2), 2);
	void *ok_a, *ok_b;
	pthread_join(a, &ok_a);
	pthread_join(b, &ok_b);
	cr_assert(ok_a && ok_b, "both reads return the exact bytes");
	cr_assert_eq(atomic_load(&s.calls), 2, "block 1 is fetched once, by the first read");
	cache_entry_put(e);
	cache_close(c);
	tmpdir_remove(d);
}

/* Writes a byte to s->tell at each fetch. */
static void say_fetched(struct source *s, int call)
{
	(void)call;
	cr_assert_eq(write(s->tell, "f", 1), 1);
}

/* A fetch in progress is visible to other processes and machines through the file system's
 * locks (an OFD lock, taken per open file: two caches on one folder in one process are two
 * processes to it). The second cache's read waits for the first's fetch of the same blocks and
 * then reads them, fetching nothing. Without the claim it fetches at once: the test gives it
 * 2 s to do so before it lets the first fetch end (a grace to see the fault, not a
 * synchronisation: with the claim nothing can fetch during it). */
Test(cache, a_fetch_in_another_process_is_waited_for_not_repeated)
{
	char *d = tmpdir_new("cache");
	struct cache *c1, *c2;
	struct cache_entry *e1, *e2;
	int in[2], go[2], told[2];
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(told), 0);
	int hold[2] = {go[0], in[1]};
	struct source s1 = {.hold = hold}, s2 = {.gate = say_fetched, .tell = told[1]};
	cr_assert_eq(cache_open(d, 1 << 30, &c1), 0);
	cr_assert_eq(cache_open(d, 1 << 30, &c2), 0);
	cr_assert_eq(cache_entry_get(c1, "k", SIZE, &e1), 0);
	cache_entry_bind(e1, &(struct cache_source){fetch_ctx, &s1, NULL});
	cr_assert_eq(cache_entry_get(c2, "k", SIZE, &e2), 0);
	cache_entry_bind(e2, &(struct cache_source){fetch_ctx, &s2, NULL});
	pthread_t a, b;
	struct span_arg one = {e1, 100, 2 * CACHE_BLOCK_SIZE},
			two = {e2, 100, 2 * CACHE_BLOCK_SIZE};
	pthread_create(&a, NULL, read_span, &one);
	await_fetch(in[0], "the first cache's fetch");
	pthread_create(&b, NULL, read_span, &two);
	struct pollfd p = {told[0], POLLIN, 0};
	cr_assert_eq(poll(&p, 1, 2000), 0, "the second cache fetched while the first did");
	cr_assert_eq(write(go[1], "g", 1), 1);
	void *ok_a, *ok_b;
	pthread_join(a, &ok_a);
	pthread_join(b, &ok_b);
	cr_assert(ok_a && ok_b, "both reads return the exact bytes");
	cr_assert_eq(atomic_load(&s2.calls), 0, "the second cache read what the first fetched");
	cache_entry_put(e1);
	cache_entry_put(e2);
	cache_close(c1);
	cache_close(c2);
	tmpdir_remove(d);
}

Test(cache, a_whole_archive_answer_marks_every_block)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	struct cache_entry *e;
	struct source s = {.whole = true};
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, "k", SIZE, &e), 0);
	check_range(e, &s, 2 * CACHE_BLOCK_SIZE, 10);
	cr_assert(cache_entry_has(e, 0, SIZE));
	cache_entry_put(e);
	cache_close(c);
	tmpdir_remove(d);
}

Test(cache, fetch_errors_propagate_and_mark_nothing)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	struct cache_entry *e;
	struct source s = {.fail = -EACCES};
	unsigned char buf[10];
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, "k", SIZE, &e), 0);
	cr_assert_eq(pread_from(&s, e, buf, 10, 0, 0), -EACCES);
	cr_assert_not(cache_entry_has(e, 0, 10));
	struct source lazy = {.nothing = true};
	cr_assert_eq(pread_from(&lazy, e, buf, 10, 0, 0), -EIO);
	/* every byte written, then the answer found wrong (a 200 of the wrong length): none marked */
	struct source rejected = {.whole = true, .fail_after = -EIO};
	cr_assert_eq(pread_from(&rejected, e, buf, 10, 0, 0), -EIO);
	cr_assert_not(cache_entry_has(e, 0, SIZE), "a rejected answer reached the cache");
	cache_entry_put(e);
	cache_close(c);
	tmpdir_remove(d);
}

Test(cache, a_rejected_answer_leaves_present_blocks_alone)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	struct cache_entry *e;
	struct source good = {0}, bad = {.whole = true, .garbage = true, .fail_after = -EIO};
	struct source none = {.fail = -EACCES};
	unsigned char buf[10];
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, "k", SIZE, &e), 0);
	check_range(e, &good, 0, CACHE_BLOCK_SIZE);
	cr_assert_eq(pread_from(&bad, e, buf, 10, 2 * CACHE_BLOCK_SIZE, 0), -EIO);
	check_range(e, &none, 0, CACHE_BLOCK_SIZE); /* present: no fetch, and the right bytes */
	cr_assert_eq(atomic_load(&none.calls), 0);
	cache_entry_put(e);
	cache_close(c);
	tmpdir_remove(d);
}

/* Another mount marked a block after this one last read the map: a rejected answer here must
 * not write over it either, or the other mount, which checked the block already, serves it. */
Test(cache, a_rejected_answer_leaves_blocks_another_mount_marked_alone)
{
	char *d = tmpdir_new("cache");
	struct cache *c[2];
	struct cache_entry *e[2];
	struct source good = {0}, bad = {.whole = true, .garbage = true, .fail_after = -EIO};
	struct source none = {.fail = -EACCES};
	unsigned char buf[10];
	cr_assert_eq(cache_open(d, 1 << 30, &c[0]), 0);
	cr_assert_eq(cache_open(d, 1 << 30, &c[1]), 0);
	cr_assert_eq(get_bound(c[0], "k", SIZE, &e[0]), 0); /* its map: nothing present */
	cr_assert_eq(get_bound(c[1], "k", SIZE, &e[1]), 0);
	check_range(e[1], &good, 0, CACHE_BLOCK_SIZE);
	cr_assert_eq(pread_from(&bad, e[0], buf, 10, 2 * CACHE_BLOCK_SIZE, 0), -EIO);
	check_range(e[1], &none, 0, CACHE_BLOCK_SIZE); /* present: no fetch, and the right bytes */
	cr_assert_eq(atomic_load(&none.calls), 0);
	for (int i = 0; i < 2; i++) {
		cache_entry_put(e[i]);
		cache_close(c[i]);
	}
	tmpdir_remove(d);
}

/* The disk blocks still held by this process's open file named name that was unlinked (an
 * evicted cache file our own idle entry keeps open); -1 when there is none. */
static long long blocks_of_deleted(const char *name)
{
	char want[64], fd_path[300], target[4096];
	snprintf(want, sizeof(want), "/%s (deleted)", name);
	DIR *dir = opendir("/proc/self/fd");
	cr_assert_not_null(dir);
	long long blocks = -1;
	for (struct dirent *de; blocks < 0 && (de = readdir(dir));) {
		snprintf(fd_path, sizeof(fd_path), "/proc/self/fd/%s", de->d_name);
		ssize_t n = readlink(fd_path, target, sizeof(target) - 1);
		struct stat st;
		if (n <= 0)
			continue;
		target[n] = '\0';
		size_t tl = (size_t)n, wl = strlen(want);
		if (tl >= wl && strcmp(target + tl - wl, want) == 0 && stat(fd_path, &st) == 0)
			blocks = (long long)st.st_blocks;
	}
	closedir(dir);
	return blocks;
}

Test(cache, eviction_keeps_under_the_limit_even_of_idle_references)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	struct cache_entry *a, *b, *x;
	struct source s = {0};
	/* room for about one archive and a half */
	cr_assert_eq(cache_open(d, SIZE + SIZE / 2 + 16384, &c), 0);
	cr_assert_eq(get_bound(c, "a", SIZE, &a), 0);
	check_range(a, &s, 0, SIZE);
	cache_entry_put(a);
	cr_assert_eq(get_bound(c, "b", SIZE, &b), 0);
	check_range(b, &s, 0, SIZE); /* evicts a, which nobody uses */
	struct cache_stats st;
	cache_get_stats(c, &st);
	cr_assert_leq(st.used_bytes, st.limit_bytes);
	cr_assert_geq(st.evictions, 1);
	cr_assert_eq(get_bound(c, "a", 0, &a), -ENOENT, "a was evicted");
	/* b is referenced but idle: it goes, and is made anew on its next read */
	cr_assert_eq(get_bound(c, "x", SIZE, &x), 0);
	check_range(x, &s, 0, SIZE);
	/* its file is gone from the folder but still open here: it must hold no disk space */
	cr_assert_eq(blocks_of_deleted("b.afs"), 0, "the evicted file was emptied");
	int calls = atomic_load(&s.calls);
	check_range(b, &s, 0, SIZE);
	cr_assert_gt(atomic_load(&s.calls), calls, "b was evicted and fetched again");
	cache_get_stats(c, &st);
	cr_assert_leq(st.used_bytes, st.limit_bytes);
	cache_entry_put(x);
	cache_entry_put(b);
	cache_close(c);
	tmpdir_remove(d);
}

Test(cache, an_entry_read_by_another_process_is_not_evicted)
{
	char *d = tmpdir_new("cache");
	int up[2], down[2];
	cr_assert_eq(pipe(up), 0);
	cr_assert_eq(pipe(down), 0);
	pid_t pid = fork();
	if (pid == 0) { /* reads "held" with a fetch that waits for the parent */
		struct cache *c;
		struct cache_entry *e;
		int hold[2] = {down[0], up[1]};
		struct source s = {.hold = hold};
		close(up[0]);
		close(down[1]);
		if (cache_open(d, 1 << 30, &c) || get_bound(c, "held", SIZE, &e))
			_exit(1);
		unsigned char buf[10];
		_exit(pread_from(&s, e, buf, 10, 0, 0) == 10 ? 0 : 1);
	}
	close(up[1]);
	close(down[0]);
	char ch;
	cr_assert_eq(read(up[0], &ch, 1), 1, "the child's read is running");
	struct cache *c;
	struct cache_entry *e;
	struct source s = {0};
	cr_assert_eq(cache_open(d, SIZE / 2, &c), 0);
	cr_assert_eq(get_bound(c, "mine", SIZE, &e), 0);
	unsigned char *buf = malloc(SIZE);
	cr_assert_eq(pread_from(&s, e, buf, SIZE, 0, 0), -ENOSPC,
		     "the only other file is being read");
	char *f;
	cr_assert(asprintf(&f, "%s/v2/held.afs", d) > 0);
	struct stat st;
	cr_assert_eq(stat(f, &st), 0, "the other process's entry is still there");
	cr_assert_gt(st.st_size, 0, "and whole");
	cr_assert_eq(write(down[1], "x", 1), 1);
	int status;
	waitpid(pid, &status, 0);
	cr_assert_eq(WEXITSTATUS(status), 0);
	cache_entry_put(e);
	cache_close(c);
	free(buf);
	free(f);
	tmpdir_remove(d);
}

Test(cache, a_writer_killed_mid_run_leaves_no_marked_block)
{
	char *d = tmpdir_new("cache");
	int up[2];
	cr_assert_eq(pipe(up), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct cache *c;
		struct cache_entry *e;
		unsigned char half[CACHE_BLOCK_SIZE / 2];
		memset(half, 0xee, sizeof(half)); /* wrong bytes, never to be served */
		if (cache_open(d, 1 << 30, &c) || get_bound(c, "k", SIZE, &e) ||
		    cache_entry_write(e, 0, half, sizeof(half)) || write(up[1], "w", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	char ch;
	cr_assert_eq(read(up[0], &ch, 1), 1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	struct cache *c;
	struct cache_entry *e;
	struct source s = {0};
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, "k", 0, &e), 0);
	cr_assert_not(cache_entry_has(e, 0, 1));
	check_range(e, &s, 0, 100);
	cr_assert_eq(atomic_load(&s.calls), 1);
	cache_entry_put(e);
	cache_close(c);
	tmpdir_remove(d);
}

Test(cache, invalidated_blocks_are_fetched_again)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	struct cache_entry *e;
	struct source s = {0};
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, "k", SIZE, &e), 0);
	check_range(e, &s, 0, SIZE);
	cache_entry_invalidate(e, CACHE_BLOCK_SIZE, 1);
	cr_assert_not(cache_entry_has(e, CACHE_BLOCK_SIZE, 1));
	int calls = atomic_load(&s.calls);
	check_range(e, &s, CACHE_BLOCK_SIZE, 10);
	cr_assert_eq(atomic_load(&s.calls), calls + 1);
	cache_entry_put(e);
	cache_close(c);
	tmpdir_remove(d);
}

Test(cache, invalidated_bytes_never_complete_a_block)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	struct cache_entry *e;
	unsigned char half[CACHE_BLOCK_SIZE / 2];
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, "k", SIZE, &e), 0);
	memset(half, 0xee, sizeof(half)); /* found corrupt, then dropped */
	cr_assert_eq(cache_entry_write(e, CACHE_BLOCK_SIZE, half, sizeof(half)), 0);
	cache_entry_invalidate(e, CACHE_BLOCK_SIZE, 1);
	memset(half, 0x11, sizeof(half));
	cr_assert_eq(cache_entry_write(e, CACHE_BLOCK_SIZE + sizeof(half), half, sizeof(half)), 0);
	cr_assert_not(cache_entry_has(e, CACHE_BLOCK_SIZE, 1),
		      "the second half alone does not make the block whole");
	cache_entry_put(e);
	cache_close(c);
	tmpdir_remove(d);
}

/* The file of key in the cache folder d, and where byte 0 of the archive of size bytes is in it
 * (header, block map and checksums padded to 4 KiB each). */
static char *entry_file(const char *d, const char *key)
{
	char *f;
	cr_assert(asprintf(&f, "%s/v2/%s.afs", d, key) > 0);
	return f;
}

static uint64_t data_offset(uint64_t size)
{
	uint64_t blocks = (size + CACHE_BLOCK_SIZE - 1) / CACHE_BLOCK_SIZE;
	return 4096 + (blocks + 4095) / 4096 * 4096 + (4 * blocks + 4095) / 4096 * 4096;
}

static void flip_byte(const char *f, uint64_t at)
{
	FILE *fp = fopen(f, "r+b");
	cr_assert_not_null(fp);
	cr_assert_eq(fseek(fp, (long)at, SEEK_SET), 0);
	int ch = fgetc(fp);
	cr_assert_eq(fseek(fp, (long)at, SEEK_SET), 0);
	fputc(ch ^ 0xff, fp);
	fclose(fp);
}

/* Fills entry key of a fresh cache in d and closes it. */
static void fill(const char *d, const char *key)
{
	struct cache *c;
	struct cache_entry *e;
	struct source s = {0};
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, key, SIZE, &e), 0);
	check_range(e, &s, 0, SIZE);
	cache_entry_put(e);
	cache_close(c);
}

/* Opens the cache in d, reads key's tail 8192 bytes and says how many fetches that took. */
static int tail_fetches(const char *d, const char *key)
{
	struct cache *c;
	struct cache_entry *e;
	struct source s = {0};
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, key, SIZE, &e), 0);
	check_range(e, &s, SIZE - 8192, 8192);
	check_range(e, &s, 0, SIZE);
	cache_entry_put(e);
	cache_close(c);
	return atomic_load(&s.calls);
}

Test(cache, a_block_that_fails_its_checksum_is_fetched_again)
{
	char *d = tmpdir_new("cache");
	fill(d, "k");
	char *f = entry_file(d, "k");
	flip_byte(f, data_offset(SIZE) + SIZE - 100);
	cr_assert_eq(tail_fetches(d, "k"), 1, "the spoilt block, fetched once");
	cr_assert_eq(tail_fetches(d, "k"), 0, "and now right on disk");
	free(f);
	tmpdir_remove(d);
}

/* Another machine may write the shared folder: a block this process wrote and checked is
 * checked again at every read, and a byte flipped since is never served. */
Test(cache, a_byte_flipped_after_this_process_wrote_it_is_never_served)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	struct cache_entry *e;
	struct source s = {0};
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, "k", SIZE, &e), 0);
	check_range(e, &s, 0, SIZE);
	check_range(e, &s, 0, SIZE); /* read back from disk: checked */
	int calls = atomic_load(&s.calls);
	char *f = entry_file(d, "k");
	flip_byte(f, data_offset(SIZE) + CACHE_BLOCK_SIZE + 7);
	check_range(e, &s, 0, SIZE);
	cr_assert_eq(atomic_load(&s.calls), calls + 1, "the spoilt block, fetched again");
	cache_entry_put(e);
	cache_close(c);
	free(f);
	tmpdir_remove(d);
}

/* A temporary file's writer may be on another machine, where its PID means nothing: it is
 * kept while its writer holds its lock, whatever the PID in its name, and removed once not. */
Test(cache, a_temporary_file_is_kept_while_its_writer_holds_it)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cache_close(c);
	char *tmp;
	/* a PID no process of this machine has */
	cr_assert(asprintf(&tmp, "%s/v2/.tmp-k-0-2147483646", d) > 0);
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(flock(fd, LOCK_EX), 0); /* its writer, alive on "another machine" */
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cache_close(c);
	cr_assert_eq(access(tmp, F_OK), 0, "a temporary file being written is kept");
	close(fd); /* its writer died: the file system dropped its lock */
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cache_close(c);
	cr_assert_neq(access(tmp, F_OK), 0, "a temporary file nobody writes is removed");
	free(tmp);
	tmpdir_remove(d);
}

Test(cache, a_truncated_file_is_discarded_not_eio)
{
	char *d = tmpdir_new("cache");
	fill(d, "k");
	char *f = entry_file(d, "k");
	cr_assert_eq(truncate(f, (off_t)(data_offset(SIZE) + SIZE / 2)), 0);
	cr_assert_gt(tail_fetches(d, "k"), 0);
	cr_assert_eq(tail_fetches(d, "k"), 0);
	free(f);
	tmpdir_remove(d);
}

Test(cache, a_file_extended_or_zeroed_is_never_served)
{
	char *d = tmpdir_new("cache");
	fill(d, "k");
	char *f = entry_file(d, "k");
	struct stat st;
	cr_assert_eq(stat(f, &st), 0);
	cr_assert_eq(truncate(f, st.st_size + 4096), 0);
	cr_assert_gt(tail_fetches(d, "k"), 0, "a longer file is discarded");
	/* zeros over the data, the map left saying present */
	cr_assert_eq(truncate(f, (off_t)data_offset(SIZE)), 0);
	cr_assert_eq(truncate(f, (off_t)(data_offset(SIZE) + SIZE)), 0);
	cr_assert_gt(tail_fetches(d, "k"), 0, "zeros fail their checksums");
	cr_assert_eq(tail_fetches(d, "k"), 0);
	free(f);
	tmpdir_remove(d);
}

Test(cache, a_planted_symlink_is_never_followed)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0); /* planted after the scan at open */
	char *target, *f = entry_file(d, "k");
	cr_assert(asprintf(&target, "%s/planted", d) > 0);
	FILE *fp = fopen(target, "w");
	cr_assert_not_null(fp);
	fputs("planted bytes", fp);
	fclose(fp);
	cr_assert_eq(symlink(target, f), 0);
	struct cache_entry *e;
	struct source s = {0};
	cr_assert_eq(get_bound(c, "k", SIZE, &e), 0);
	check_range(e, &s, 0, SIZE);
	cache_entry_put(e);
	cache_close(c);
	struct stat st;
	cr_assert_eq(lstat(f, &st), 0);
	cr_assert(S_ISREG(st.st_mode), "the link was replaced by a file of ours");
	cr_assert_eq(stat(target, &st), 0);
	cr_assert_eq(st.st_size, 13, "and its target never written");
	free(target);
	free(f);
	tmpdir_remove(d);
}

Test(cache, a_file_of_another_user_is_refused)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to give a file away");
	char *d = tmpdir_new("cache");
	fill(d, "k");
	char *f = entry_file(d, "k");
	cr_assert_eq(chown(f, 65534, 65534), 0); /* nobody plants a file with the right bytes */
	cr_assert_gt(tail_fetches(d, "k"), 0, "another user's file is never read");
	struct stat st;
	cr_assert_eq(stat(f, &st), 0);
	cr_assert_eq(st.st_uid, geteuid());
	cr_assert_eq(chmod(f, 0622), 0); /* and one others may write */
	cr_assert_gt(tail_fetches(d, "k"), 0, "a file others may write is never read");
	free(f);
	tmpdir_remove(d);
}

/* Reads entry key of SIZE bytes whole through c. */
static void read_whole(struct cache *c, const char *key)
{
	struct cache_entry *e;
	struct source s = {0};
	cr_assert_eq(get_bound(c, key, SIZE, &e), 0, "get %s", key);
	check_range(e, &s, 0, SIZE);
	cache_entry_put(e);
}

/* The bytes the cache files in d take on disk. */
static uint64_t du(const char *d)
{
	char *v;
	cr_assert(asprintf(&v, "%s/v2", d) > 0);
	DIR *dir = opendir(v);
	cr_assert_not_null(dir);
	uint64_t sum = 0;
	struct dirent *de;
	struct stat st;
	while ((de = readdir(dir)))
		if (strstr(de->d_name, ".afs") && fstatat(dirfd(dir), de->d_name, &st, 0) == 0)
			sum += (uint64_t)st.st_blocks * 512;
	closedir(dir);
	free(v);
	return sum;
}

Test(cache, a_full_disk_evicts_what_nobody_uses)
{
	/* a mount namespace of our own: the tmpfs goes with this test's process, whatever fails */
	if (geteuid() != 0 || unshare(CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		cr_skip_test("needs root to mount a small tmpfs");
	char *d = tmpdir_new("cache");
	cr_assert_eq(mount("tmpfs", d, "tmpfs", 0, "size=320k"), 0);
	struct cache *c;
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0, "the limit is far above the disk");
	char key[8];
	for (int i = 0; i < 8; i++) { /* 8 archives of 90 KiB: the disk holds 3 */
		snprintf(key, sizeof(key), "k%d", i);
		read_whole(c, key);
	}
	struct cache_stats st;
	cache_get_stats(c, &st);
	cr_assert_geq(st.evictions, 5);
	struct cache_entry *held;
	cr_assert_eq(get_bound(c, "k7", SIZE, &held), 0);
	read_whole(c, "k0"); /* the one in use stays, another goes */
	cr_assert_eq(cache_entry_has(held, 0, SIZE), 1);
	cache_entry_put(held);
	cache_close(c);
	umount2(d, MNT_DETACH);
	tmpdir_remove(d);
}

Test(cache, two_caches_on_one_folder_keep_one_limit)
{
	char *d = tmpdir_new("cache");
	uint64_t limit = 3 * SIZE;
	struct cache *c[2];
	struct cache_entry *e[6];
	struct source s = {0};
	/* two opens of one folder: as two mounts, each with its own locks and table; each keeps
	 * its entries referenced, as a daemon keeps its idle jobs */
	cr_assert_eq(cache_open(d, limit, &c[0]), 0);
	cr_assert_eq(cache_open(d, limit, &c[1]), 0);
	char key[8];
	for (int i = 0; i < 6; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(get_bound(c[i / 3], key, SIZE, &e[i]), 0);
		check_range(e[i], &s, 0, SIZE);
	}
	cr_assert_leq(du(d), limit, "%llu bytes on disk", (unsigned long long)du(d));
	for (int i = 0; i < 3; i++) /* evicted by the other: made anew, right */
		check_range(e[i], &s, 0, SIZE);
	cr_assert_leq(du(d), limit, "%llu bytes on disk", (unsigned long long)du(d));
	for (int i = 0; i < 6; i++)
		cache_entry_put(e[i]);
	cache_close(c[0]);
	cache_close(c[1]);
	tmpdir_remove(d);
}

/* Gets key, an archive of size bytes, and reads it whole (an entry the caller puts back). */
static void read_sized(struct cache *c, const char *key, uint64_t size, struct cache_entry **e)
{
	struct source s = {0};
	unsigned char *buf = malloc(size);
	cr_assert_eq(get_bound(c, key, size, e), 0, "get %s", key);
	cr_assert_eq(pread_from(&s, *e, buf, size, 0, 0), (ssize_t)size);
	for (uint64_t i = 0; i < size; i++)
		cr_assert_eq(buf[i], byte_at(i), "byte %llu of %s", (unsigned long long)i, key);
	free(buf);
}

Test(cache, a_new_file_at_the_limit_makes_room_for_its_metadata)
{
	char *d = tmpdir_new("cache");
	/* whole blocks: what a file counts (its metadata and its blocks) is what it takes on disk */
	uint64_t size = 6 * CACHE_BLOCK_SIZE, file = data_offset(size) + size;
	struct cache *c;
	struct cache_entry *e;
	struct cache_stats st;
	cr_assert_eq(cache_open(d, 2 * file, &c), 0);
	read_sized(c, "a", size, &e);
	cache_entry_put(e);
	read_sized(c, "b", size, &e);
	cache_entry_put(e);
	cache_get_stats(c, &st);
	cr_assert_eq(st.used_bytes, st.limit_bytes, "full: %llu bytes counted",
		     (unsigned long long)st.used_bytes);
	cr_assert_eq(st.evictions, 0);
	/* a new file's header, map and checksums take disk blocks at once: room is made first */
	cr_assert_eq(get_bound(c, "c", size, &e), 0);
	cache_get_stats(c, &st);
	cr_assert_leq(st.used_bytes, st.limit_bytes, "%llu bytes counted",
		      (unsigned long long)st.used_bytes);
	cr_assert_geq(st.evictions, 1, "an idle file went for them");
	cr_assert_leq(du(d), st.limit_bytes, "%llu bytes on disk", (unsigned long long)du(d));
	cache_entry_put(e);
	read_sized(c, "c", size, &e);
	cache_get_stats(c, &st);
	cr_assert_leq(st.used_bytes, st.limit_bytes);
	cr_assert_leq(du(d), st.limit_bytes);
	cache_entry_put(e);
	cache_close(c);
	tmpdir_remove(d);
}

Test(cache, files_of_the_older_layout_are_removed_not_read)
{
	char *d = tmpdir_new("cache"), *v1, *old;
	cr_assert(asprintf(&v1, "%s/v1", d) > 0);
	cr_assert(asprintf(&old, "%s/k.afs", v1) > 0);
	cr_assert_eq(mkdir(v1, 0700), 0);
	FILE *fp = fopen(old, "w");
	cr_assert_not_null(fp);
	fputs("AFSCACHE1", fp);
	fclose(fp);
	struct cache *c;
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_neq(access(v1, F_OK), 0, "the v1 folder is gone");
	struct cache_entry *e;
	cr_assert_eq(get_bound(c, "k", 0, &e), -ENOENT, "nothing of v1 is read");
	cache_close(c);
	free(old);
	free(v1);
	tmpdir_remove(d);
}

Test(cache, a_file_cut_while_open_is_fetched_again)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	struct cache_entry *e;
	struct source s = {0};
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, "k", SIZE, &e), 0);
	check_range(e, &s, 0, SIZE);
	char *f = entry_file(d, "k");
	cr_assert_eq(truncate(f, (off_t)data_offset(SIZE)), 0); /* all data gone under the entry */
	int calls = atomic_load(&s.calls);
	check_range(e, &s, SIZE - 8192, 8192);
	check_range(e, &s, 0, SIZE);
	cr_assert_gt(atomic_load(&s.calls), calls);
	cache_entry_put(e);
	cache_close(c);
	free(f);
	tmpdir_remove(d);
}

static bool file_exists(const char *d, const char *name)
{
	char p[1024];
	struct stat st;
	snprintf(p, sizeof(p), "%s/v2/%s", d, name);
	return stat(p, &st) == 0;
}

/* A pinned entry stays whatever the others need: their writes fail instead; unpinned, it is
 * evicted as any idle entry. */
Test(cache, a_pinned_entry_is_not_evicted)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	struct cache_entry *a, *b;
	struct source s = {0};
	cr_assert_eq(cache_open(d, SIZE + SIZE / 2 + 16384, &c), 0);
	cr_assert_eq(get_bound(c, "a", SIZE, &a), 0);
	check_range(a, &s, 0, SIZE);
	cr_assert_eq(cache_entry_pin(a), 0);
	cr_assert_eq(cache_entry_pin(a), 0, "pins nest");
	cr_assert_eq(get_bound(c, "b", SIZE, &b), 0);
	unsigned char buf[SIZE];
	for (size_t i = 0; i < SIZE; i++)
		buf[i] = byte_at(i);
	cr_assert_eq(cache_entry_write(b, 0, buf, SIZE), -ENOSPC, "a is pinned");
	cr_assert_eq(cache_drop(c), 0);
	cache_entry_unpin(a);
	cr_assert(cache_entry_has(a, 0, SIZE), "still pinned once");
	cache_entry_unpin(a);
	cr_assert(file_exists(d, "a.afs"));
	cr_assert_eq(cache_entry_write(b, 0, buf, SIZE), 0, "a is idle: it goes");
	cr_assert_not(file_exists(d, "a.afs"));
	cache_entry_put(a);
	cache_entry_put(b);
	cache_close(c);
	tmpdir_remove(d);
}

/* Whether another open file of name could lock it exclusively, as another process's eviction
 * tries: 0 when it could (it is not in use), else -errno (EWOULDBLOCK: in use). */
static int try_exclusive(const char *d, const char *name)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s/v2/%s", d, name);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int err = flock(fd, LOCK_EX | LOCK_NB) ? -errno : 0;
	close(fd);
	return err;
}

/* A held entry (a file open through the mount) keeps its file's shared flock() between its
 * calls, not one pair per call (on CephFS each is a round trip); another process's eviction
 * then passes it by, as in use, until the hold ends. */
Test(cache, a_held_entry_stays_locked_between_calls_until_unheld)
{
	char *d = tmpdir_new("cache");
	struct cache *c[2];
	struct cache_entry *a, *b;
	struct source s = {0};
	/* two opens of one folder, as two mounts: room for about one archive and a half */
	cr_assert_eq(cache_open(d, SIZE + SIZE / 2 + 16384, &c[0]), 0);
	cr_assert_eq(cache_open(d, SIZE + SIZE / 2 + 16384, &c[1]), 0);
	cr_assert_eq(get_bound(c[0], "a", SIZE, &a), 0);
	cr_assert_eq(try_exclusive(d, "a.afs"), 0, "no call, no hold: not in use");
	cache_entry_hold(a);
	cache_entry_hold(a); /* holds nest */
	check_range(a, &s, 0, SIZE);
	cr_assert_eq(try_exclusive(d, "a.afs"), -EWOULDBLOCK, "held: locked between calls");
	check_range(a, &s, 0, 100);
	cr_assert_eq(try_exclusive(d, "a.afs"), -EWOULDBLOCK);
	cr_assert_eq(get_bound(c[1], "b", SIZE, &b), 0);
	unsigned char buf[SIZE];
	for (size_t i = 0; i < SIZE; i++)
		buf[i] = byte_at(i);
	cr_assert_eq(cache_entry_write(b, 0, buf, SIZE), -ENOSPC,
		     "the other mount's eviction passes the held file by");
	cr_assert(file_exists(d, "a.afs"));
	cache_entry_unhold(a);
	cr_assert_eq(try_exclusive(d, "a.afs"), -EWOULDBLOCK, "still held once");
	cache_entry_unhold(a);
	cr_assert_eq(try_exclusive(d, "a.afs"), 0, "the hold ended: idle");
	cr_assert_eq(cache_entry_write(b, 0, buf, SIZE), 0, "a is idle: it goes");
	cr_assert_not(file_exists(d, "a.afs"));
	cache_entry_put(a);
	cache_entry_put(b);
	cache_close(c[0]);
	cache_close(c[1]);
	tmpdir_remove(d);
}

/* cache_drop()'s promise holds for a held file: idle, it goes, and its next read fetches again
 * (and takes the lock again, for the rest of the hold); so does a write of this process making
 * room. */
Test(cache, a_held_idle_entry_is_evicted_by_this_process)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	struct cache_entry *a, *b;
	struct source s = {0};
	cr_assert_eq(cache_open(d, SIZE + SIZE / 2 + 16384, &c), 0);
	cr_assert_eq(get_bound(c, "a", SIZE, &a), 0);
	cache_entry_hold(a);
	check_range(a, &s, 0, SIZE);
	cr_assert_eq(cache_drop(c), 0);
	cr_assert_not(file_exists(d, "a.afs"), "dropped though held");
	struct cache_stats st;
	cache_get_stats(c, &st);
	cr_assert_lt(st.used_bytes, SIZE, "%llu bytes still counted",
		     (unsigned long long)st.used_bytes);
	int calls = atomic_load(&s.calls);
	check_range(a, &s, 0, SIZE);
	cr_assert_gt(atomic_load(&s.calls), calls, "fetched again");
	cr_assert_eq(try_exclusive(d, "a.afs"), -EWOULDBLOCK, "locked again, still held");
	cr_assert_eq(get_bound(c, "b", SIZE, &b), 0);
	check_range(b, &s, 0, SIZE); /* makes room: a, held but idle, goes */
	cr_assert_not(file_exists(d, "a.afs"));
	cache_get_stats(c, &st);
	cr_assert_leq(st.used_bytes, st.limit_bytes);
	check_range(a, &s, 0, SIZE);
	cache_entry_unhold(a);
	cache_entry_put(a);
	cache_entry_put(b);
	cache_close(c);
	tmpdir_remove(d);
}

/* Discarding by prefix takes every file whose key starts so (open here or not, in use or
 * not), and an entry open here whose file was evicted does not make it anew. */
Test(cache, discarding_by_prefix_takes_every_entry_of_the_prefix)
{
	char *d = tmpdir_new("cache");
	struct cache *c;
	struct cache_entry *e[4];
	const char *keys[] = {"j1-n1", "j1-n2", "j12-n3", "j1"};
	struct source s = {0};
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	cr_assert_eq(get_bound(c, keys[0], SIZE, &e[0]), 0);
	check_range(e[0], &s, 0, SIZE);
	cr_assert_eq(cache_drop(c), 0);
	cr_assert_not(file_exists(d, "j1-n1.afs"), "evicted while idle, still open");
	for (int i = 1; i < 4; i++) {
		cr_assert_eq(get_bound(c, keys[i], SIZE, &e[i]), 0);
		check_range(e[i], &s, 0, SIZE);
	}
	cr_assert_eq(cache_entry_pin(e[1]), 0); /* in use */
	cache_discard_prefix(c, "j1-n");
	cr_assert_not(file_exists(d, "j1-n2.afs"));
	cr_assert(file_exists(d, "j12-n3.afs"));
	check_range(e[0], &s, 0, SIZE); /* reads on, from no file of the folder */
	check_range(e[1], &s, 0, SIZE);
	cr_assert_not(file_exists(d, "j1-n1.afs"), "not made anew");
	cr_assert_not(file_exists(d, "j1-n2.afs"));
	cache_entry_unpin(e[1]);
	cr_assert(file_exists(d, "j1.afs"));
	for (int i = 0; i < 4; i++)
		cache_entry_put(e[i]);
	cache_close(c);
	tmpdir_remove(d);
}

/* What one cache read without a fetch, by who marked the blocks: {own, shared}; miss apart. */
struct reads {
	uint64_t own, shared, miss;
};

static struct reads reads_of(struct cache *c)
{
	struct cache_stats st;
	cache_get_stats(c, &st);
	cr_assert_eq(st.hit_bytes, st.hit_own_bytes + st.hit_shared_bytes);
	return (struct reads){st.hit_own_bytes, st.hit_shared_bytes, st.miss_bytes};
}

#define B ((uint64_t)CACHE_BLOCK_SIZE)

static void assert_reads(struct cache *c, uint64_t own, uint64_t shared, uint64_t miss,
			 const char *what)
{
	struct reads r = reads_of(c);
	cr_assert(r.own == own && r.shared == shared && r.miss == miss,
		  "%s: own %llu (want %llu), shared %llu (want %llu), miss %llu (want %llu)", what,
		  (unsigned long long)r.own, (unsigned long long)own, (unsigned long long)r.shared,
		  (unsigned long long)shared, (unsigned long long)r.miss, (unsigned long long)miss);
}

/* Two caches on one folder are two mounts: bytes read without a fetch count as the reader's
 * own when its cache marked their blocks (a fetch or a write of its own), else as shared (the
 * other mount's, or an earlier run's), split at block boundaries; a read that fetched counts as
 * a miss whole, as before. */
Test(cache, reads_count_as_own_or_shared_by_who_marked_the_blocks)
{
	char *d = tmpdir_new("cache");
	struct cache *a, *b;
	struct cache_entry *ea, *eb;
	struct source s = {0};
	cr_assert_eq(cache_open(d, 1 << 30, &a), 0);
	cr_assert_eq(cache_open(d, 1 << 30, &b), 0);
	cr_assert_eq(get_bound(a, "k", SIZE, &ea), 0);
	cr_assert_eq(get_bound(b, "k", SIZE, &eb), 0);

	check_range(ea, &s, 0, 3 * B); /* A fetches blocks 0-2 */
	assert_reads(a, 0, 0, 3 * B, "A's first read fetched");
	check_range(ea, &s, B - 10, 20);
	assert_reads(a, 20, 0, 3 * B, "A reads what it fetched");
	check_range(eb, &s, B - 10, 20);
	assert_reads(b, 0, 20, 0, "B reads what A fetched");

	check_range(eb, &s, 3 * B, B);       /* B fetches block 3 */
	check_range(eb, &s, 2 * B + 100, B); /* block 2 from A, block 3 its own */
	assert_reads(b, 100, 20 + B - 100, B, "B's read across A's block and its own");
	check_range(ea, &s, 3 * B, 50);
	assert_reads(a, 20, 50, 3 * B, "A reads B's block as shared");

	cache_entry_invalidate(eb, B, 1); /* B drops A's block 1 and fetches it again */
	check_range(eb, &s, B, 10);
	check_range(eb, &s, B, 10);
	assert_reads(b, 110, 20 + B - 100, B + 10, "a block B fetched again is B's");

	unsigned char tail[1234];
	for (size_t i = 0; i < sizeof(tail); i++)
		tail[i] = byte_at(5 * B + i);
	cr_assert_eq(cache_entry_write(ea, 5 * B, tail, sizeof(tail)), 0); /* a probe's tail */
	check_range(ea, &s, 5 * B, sizeof(tail));
	assert_reads(a, 20 + sizeof(tail), 50, 3 * B, "a block A wrote is A's");

	cache_entry_put(ea); /* a new run of A: what the earlier one fetched is shared */
	cache_close(a);
	cr_assert_eq(cache_open(d, 1 << 30, &a), 0);
	cr_assert_eq(get_bound(a, "k", SIZE, &ea), 0);
	check_range(ea, &s, 0, 10);
	assert_reads(a, 0, 10, 0, "blocks of an earlier run are shared");
	cache_entry_put(ea);
	cache_entry_put(eb);
	cache_close(a);
	cache_close(b);
	tmpdir_remove(d);
}

/* What a fetch sees of its cache's count: before its first byte and after each. */
struct count_probe {
	struct cache *c;
	uint64_t first, least, most;
	uint64_t fail_at; /* when not 0: -EIO once the bytes before it are written */
};

static int fetch_counting(void *ctx, struct cache_writer *w, uint64_t off, uint64_t len)
{
	struct count_probe *p = ctx;
	struct cache_stats st;
	cache_get_stats(p->c, &st);
	p->first = p->least = p->most = st.used_bytes;
	unsigned char buf[64 * 1024];
	for (uint64_t at = off, n; at < off + len; at += n) {
		if (p->fail_at && at >= p->fail_at)
			return -EIO;
		n = off + len - at < sizeof(buf) ? off + len - at : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = byte_at(at + i);
		int err = cache_writer_write(w, at, buf, n);
		if (err)
			return err;
		cache_get_stats(p->c, &st);
		p->least = st.used_bytes < p->least ? st.used_bytes : p->least;
		p->most = st.used_bytes > p->most ? st.used_bytes : p->most;
	}
	return 0;
}

Test(cache, a_fetch_counts_its_run_once_before_its_first_byte)
{
	char *d = tmpdir_new("cache");
	/* many writer flushes (256 KiB each): each used to count, under the folder's lock */
	uint64_t size = 64 * CACHE_BLOCK_SIZE;
	struct cache *c;
	struct cache_entry *e;
	struct cache_stats st;
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	struct count_probe p = {.c = c};
	cr_assert_eq(cache_entry_get(c, "k", size, &e), 0);
	cache_entry_bind(e, &(struct cache_source){fetch_counting, &p, NULL});
	cache_get_stats(c, &st);
	uint64_t before = st.used_bytes;
	unsigned char *buf = malloc(size);
	cr_assert_eq(cache_entry_pread(e, buf, size, 0, 0), (ssize_t)size);
	cr_assert_eq(p.first, before + size, "the run counted before its first byte: %llu",
		     (unsigned long long)(p.first - before));
	cr_assert_eq(p.least, p.first, "and not again while it is written");
	cr_assert_eq(p.most, p.first);
	cache_get_stats(c, &st);
	cr_assert_eq(st.used_bytes, before + size, "exact bytes once it is on disk");
	for (uint64_t i = 0; i < size; i++)
		cr_assert_eq(buf[i], byte_at(i), "byte %llu", (unsigned long long)i);
	free(buf);
	cache_entry_put(e);
	cache_close(c);
	tmpdir_remove(d);
}

Test(cache, what_a_failed_fetch_left_unwritten_is_counted_when_written)
{
	char *d = tmpdir_new("cache");
	uint64_t size = 64 * CACHE_BLOCK_SIZE;
	struct cache *c;
	struct cache_entry *e;
	struct cache_stats st;
	cr_assert_eq(cache_open(d, 1 << 30, &c), 0);
	struct count_probe p = {.c = c, .fail_at = size / 2};
	cr_assert_eq(cache_entry_get(c, "k", size, &e), 0);
	cache_entry_bind(e, &(struct cache_source){fetch_counting, &p, NULL});
	unsigned char *buf = malloc(size);
	cr_assert_eq(cache_entry_pread(e, buf, size, 0, 0), -EIO);
	/* its count stays (an over-count until a recount): what a recount would not see, the
	 * unwritten half and the written half nobody marked, counts again when written */
	cache_get_stats(c, &st);
	uint64_t after_fail = st.used_bytes;
	p.fail_at = 0;
	cr_assert_eq(cache_entry_pread(e, buf, size, 0, 0), (ssize_t)size);
	cr_assert_eq(p.first, after_fail + size, "counted again: %llu",
		     (unsigned long long)(p.first - after_fail));
	free(buf);
	cache_entry_put(e);
	cache_close(c);
	tmpdir_remove(d);
}

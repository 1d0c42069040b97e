/* memo: TTL, single flight, stale-on-EIO, interrupts and expiry by prefix, on a clock the test
 * moves. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "artifactfs/intr.h"
#include "artifactfs/memo.h"

static time_t clock_now;
static time_t fake_now(void)
{
	return clock_now;
}

struct num {
	struct memo_val v;
	int n;
};

static void num_destroy(struct memo_val *v)
{
	free(v);
}

struct loader {
	atomic_int calls;
	int fail; /* -errno to return */
	int value;
	void (*gate)(struct loader *l);
	_Atomic pid_t waiters[8]; /* 0 until that thread has stored its id */
	atomic_int n_waiters;
};

static int load(void *arg, struct memo_val **out)
{
	struct loader *l = arg;
	atomic_fetch_add(&l->calls, 1);
	if (l->gate)
		l->gate(l);
	if (l->fail)
		return l->fail;
	struct num *x = calloc(1, sizeof(*x));
	memo_val_init(&x->v, num_destroy);
	x->n = l->value;
	*out = &x->v;
	return 0;
}

/* The value of key, -errno as a negative number. */
static int get(struct memo *m, const struct memo_key *k, struct loader *l)
{
	struct memo_val *v;
	int err = memo_get(m, k, load, l, &v);
	if (err)
		return err;
	int n = ((struct num *)v)->n;
	memo_val_put(v);
	return n;
}

static const struct memo_key KEY = {.kind = 1, .a = "group/app", .b = "main"};

Test(memo, values_stand_for_the_ttl_then_load_again)
{
	struct memo *m = memo_new(10, fake_now);
	struct loader l = {.value = 7};
	clock_now = 100;
	cr_assert_eq(get(m, &KEY, &l), 7);
	l.value = 8;
	clock_now = 109;
	cr_assert_eq(get(m, &KEY, &l), 7, "still within the TTL");
	cr_assert_eq(atomic_load(&l.calls), 1);
	clock_now = 110;
	cr_assert_eq(get(m, &KEY, &l), 8, "expired at the TTL");
	cr_assert_eq(atomic_load(&l.calls), 2);
	memo_free(m);
}

Test(memo, kinds_and_strings_make_distinct_keys)
{
	struct memo *m = memo_new(10, fake_now);
	struct loader a = {.value = 1}, b = {.value = 2}, c = {.value = 3};
	struct memo_key k2 = KEY, k3 = KEY;
	k2.kind = 2;
	k3.b = "mai";
	k3.c = "n";
	cr_assert_eq(get(m, &KEY, &a), 1);
	cr_assert_eq(get(m, &k2, &b), 2);
	cr_assert_eq(get(m, &k3, &c), 3);
	memo_free(m);
}

Test(memo, name_errors_are_remembered_eio_is_not)
{
	struct memo *m = memo_new(10, fake_now);
	clock_now = 0;
	struct loader l = {.fail = -ENOENT};
	cr_assert_eq(get(m, &KEY, &l), -ENOENT);
	cr_assert_eq(get(m, &KEY, &l), -ENOENT);
	cr_assert_eq(atomic_load(&l.calls), 1, "ENOENT is an answer");
	struct memo_key k = {.kind = 9};
	struct loader io = {.fail = -EIO};
	cr_assert_eq(get(m, &k, &io), -EIO);
	cr_assert_eq(get(m, &k, &io), -EIO);
	cr_assert_eq(atomic_load(&io.calls), 2, "EIO is asked again at once");
	memo_free(m);
}

Test(memo, an_unreachable_server_keeps_the_old_value_for_a_while)
{
	struct memo *m = memo_new(60, fake_now);
	struct loader l = {.value = 5};
	clock_now = 1000;
	cr_assert_eq(get(m, &KEY, &l), 5);
	clock_now = 1060;
	l.fail = -EIO;
	cr_assert_eq(get(m, &KEY, &l), 5, "stale, not EIO");
	cr_assert_eq(atomic_load(&l.calls), 2);
	cr_assert_eq(get(m, &KEY, &l), 5, "not asked again at once");
	cr_assert_eq(atomic_load(&l.calls), 2);
	clock_now = 1065;
	l.fail = 0;
	l.value = 6;
	cr_assert_eq(get(m, &KEY, &l), 6, "asked again within seconds, not a TTL");
	memo_free(m);
}

Test(memo, expiry_by_kind_and_first_string)
{
	struct memo *m = memo_new(60, fake_now);
	clock_now = 0;
	struct loader l = {.value = 1};
	struct memo_key other_project = {.kind = 1, .a = "group/app2", .b = "main"};
	struct memo_key other_kind = {.kind = 2, .a = "group/app", .b = "main"};
	get(m, &KEY, &l);
	get(m, &other_project, &l);
	get(m, &other_kind, &l);
	cr_assert_eq(atomic_load(&l.calls), 3);
	memo_expire(m, 1, "group/app");
	l.value = 2;
	cr_assert_eq(get(m, &KEY, &l), 2, "expired");
	cr_assert_eq(get(m, &other_project, &l), 1, "a name that only starts the same is kept");
	cr_assert_eq(get(m, &other_kind, &l), 1, "another kind is kept");
	memo_free(m);
}

Test(memo, peek_never_loads)
{
	struct memo *m = memo_new(60, fake_now);
	clock_now = 0;
	struct loader l = {.value = 4};
	cr_assert_null(memo_peek(m, &KEY));
	cr_assert_eq(atomic_load(&l.calls), 0);
	get(m, &KEY, &l);
	struct memo_val *v = memo_peek(m, &KEY);
	cr_assert_not_null(v);
	cr_assert_eq(((struct num *)v)->n, 4);
	memo_val_put(v);
	clock_now = 60;
	cr_assert_null(memo_peek(m, &KEY), "expired values are not peeked");
	memo_free(m);
}

/* ---- single flight ---- */

static bool asleep(pid_t tid)
{
	char path[64], stat[512];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(stat, 1, sizeof(stat) - 1, f) : 0;
	if (f)
		fclose(f);
	stat[n] = '\0';
	const char *end = strrchr(stat, ')');
	return end && end[1] == ' ' && end[2] == 'S';
}

/* Holds the first load until every other thread sleeps (waiting for it) or loads itself. */
static void hold_until_all_wait(struct loader *l)
{
	if (atomic_load(&l->calls) > 1)
		return;
	time_t deadline = time(NULL) + 30;
	for (;;) {
		int n = atomic_load(&l->n_waiters), sleeping = 0;
		for (int i = 0; i < n; i++) {
			pid_t tid = atomic_load(&l->waiters[i]);
			sleeping += tid && tid != gettid() && asleep(tid);
		}
		if ((n == 8 && sleeping == 7) || atomic_load(&l->calls) > 1)
			return;
		cr_assert(time(NULL) < deadline, "the threads never all waited");
		sched_yield();
	}
}

static struct memo *shared;

static void *getter(void *p)
{
	struct loader *l = p;
	atomic_store(&l->waiters[atomic_fetch_add(&l->n_waiters, 1)], gettid());
	return (void *)(intptr_t)(get(shared, &KEY, l) == 42);
}

Test(memo, concurrent_gets_of_a_missing_key_load_once)
{
	shared = memo_new(60, NULL);
	struct loader l = {.value = 42, .gate = hold_until_all_wait};
	pthread_t t[8];
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, getter, &l);
	for (int i = 0; i < 8; i++) {
		void *ok;
		pthread_join(t[i], &ok);
		cr_assert(ok);
	}
	cr_assert_eq(atomic_load(&l.calls), 1);
	memo_free(shared);
}

/* ---- interrupts (intr.h) ---- */

Test(memo, an_interrupted_load_is_no_answer)
{
	struct memo *m = memo_new(60, fake_now);
	clock_now = 0;
	struct loader l = {.fail = -EINTR};
	cr_assert_eq(get(m, &KEY, &l), -EINTR);
	l.fail = 0;
	l.value = 3;
	cr_assert_eq(get(m, &KEY, &l), 3, "the next reader loads it");
	cr_assert_eq(atomic_load(&l.calls), 2);
	memo_free(m);
}

static sem_t load_started, waiter_done;

/* Holds the load until the interrupted waiter has given up: a waiter that kept waiting would
 * hang the test (Criterion's timeout fails it). */
static void hold_until_the_waiter_left(struct loader *l)
{
	(void)l;
	sem_post(&load_started);
	while (sem_wait(&waiter_done) != 0)
		;
}

static void *loading_getter(void *p)
{
	return (void *)(intptr_t)get(shared, &KEY, p);
}

static bool already_interrupted(void *ctx)
{
	(void)ctx;
	return true;
}

Test(memo, a_waiter_whose_reader_is_interrupted_leaves_and_the_load_goes_on, .timeout = 30)
{
	shared = memo_new(60, NULL);
	struct loader l = {.value = 42, .gate = hold_until_the_waiter_left};
	sem_init(&load_started, 0, 0);
	sem_init(&waiter_done, 0, 0);
	pthread_t t;
	pthread_create(&t, NULL, loading_getter, &l);
	while (sem_wait(&load_started) != 0)
		;
	intr_begin(already_interrupted, NULL);
	int err = get(shared, &KEY, &l);
	intr_end();
	sem_post(&waiter_done);
	void *loaded;
	pthread_join(t, &loaded);
	cr_assert_eq(err, -EINTR);
	cr_assert_eq((intptr_t)loaded, 42, "the load went on for its own reader");
	cr_assert_eq(atomic_load(&l.calls), 1);
	cr_assert_eq(get(shared, &KEY, &l), 42);
	memo_free(shared);
}

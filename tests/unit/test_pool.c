/* pool: every task is run or cancelled exactly once; a drain cancels what is queued, waits for
 * what runs, and refuses more. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "artifactfs/pool.h"

static atomic_int ran, cancelled;
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open, gate_entered;

static void count_run(void *arg)
{
	(void)arg;
	atomic_fetch_add(&ran, 1);
}

static void count_cancel(void *arg)
{
	(void)arg;
	atomic_fetch_add(&cancelled, 1);
}

/* Holds its worker until the gate opens, so that tasks queue up behind it. */
static void wait_gate(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&gate_lock);
	gate_entered = true;
	pthread_cond_broadcast(&gate_cond);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
	atomic_fetch_add(&ran, 1);
}

static void open_gate(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&gate_lock);
	gate_open = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

static void setup(void)
{
	atomic_store(&ran, 0);
	atomic_store(&cancelled, 0);
	gate_open = gate_entered = false;
}

TestSuite(pool, .init = setup);

Test(pool, every_task_runs_once)
{
	struct pool *p;
	cr_assert_eq(pool_new(4, &p), 0);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(pool_submit(p, count_run, count_cancel, NULL), 0);
	pool_free(p); /* drains: waits for those running */
	cr_assert_eq(atomic_load(&ran) + atomic_load(&cancelled), 1000);
}

Test(pool, a_drain_cancels_what_is_queued_and_refuses_more)
{
	struct pool *p;
	cr_assert_eq(pool_new(1, &p), 0);
	cr_assert_eq(pool_submit(p, wait_gate, count_cancel, NULL), 0);
	pthread_mutex_lock(&gate_lock);
	while (!gate_entered) /* the one worker is busy: what follows stays queued */
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(pool_submit(p, count_run, count_cancel, NULL), 0);
	/* the last queued task opens the gate when cancelled, so the drain can finish */
	cr_assert_eq(pool_submit(p, count_run, open_gate, NULL), 0);
	pool_drain(p);
	cr_assert_eq(atomic_load(&ran), 1, "only the task that was running ran");
	cr_assert_eq(atomic_load(&cancelled), 10);
	cr_assert_eq(pool_submit(p, count_run, count_cancel, NULL), -ESHUTDOWN);
	pool_free(p);
}

Test(pool, bad_sizes_are_refused)
{
	struct pool *p;
	cr_assert_eq(pool_new(0, &p), -EINVAL);
	cr_assert_eq(pool_new(65, &p), -EINVAL);
}

/* kernel: a forget runs on its pool's worker, never on a thread of its own, so that draining
 * the pool before the unmount ends every forget while libfuse's tables are still there. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

#include "artifactfs/fs.h"
#include "artifactfs/kernel.h"
#include "artifactfs/pool.h"

static const struct fuse_operations no_ops;

/* A libfuse instance as the daemon has one, not mounted: a forget finds nothing in its tables. */
static struct fuse *new_fuse(void)
{
	char *argv[] = {"test_kernel", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	struct fuse *f = fuse_new(&args, &no_ops, sizeof(no_ops), NULL);
	fuse_opt_free_args(&args);
	cr_assert_not_null(f);
	return f;
}

Test(kernel, a_forget_asked_after_the_drain_is_refused_and_never_runs)
{
	struct fuse *f = new_fuse();
	struct pool *p;
	cr_assert_eq(pool_new(1, &p), 0);
	pool_drain(p); /* the mount is ending */
	cr_assert_eq(kernel_forget_later(p, f, "/grp%2Fapp/-/jobs/250.zip", 21), -ESHUTDOWN);
	pool_free(p);
	fuse_destroy(f); /* a forget still to run would read freed tables (ASan) */
}

/* A task queued after the forgets: when it runs, the one worker has run them all (in order). */
static pthread_mutex_t mark_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mark_cond = PTHREAD_COND_INITIALIZER;
static bool marked;

static void mark(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mark_lock);
	marked = true;
	pthread_cond_broadcast(&mark_cond);
	pthread_mutex_unlock(&mark_lock);
}

static void no_cancel(void *arg)
{
	(void)arg;
}

Test(kernel, forgets_run_on_the_pool_and_free_what_they_hold)
{
	struct fuse *f = new_fuse();
	struct pool *p;
	cr_assert_eq(pool_new(1, &p), 0);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(kernel_forget_later(p, f, "/grp%2Fapp/-/jobs/250.zip", 21), 0);
	cr_assert_eq(pool_submit(p, mark, no_cancel, NULL), 0);
	pthread_mutex_lock(&mark_lock);
	while (!marked)
		pthread_cond_wait(&mark_cond, &mark_lock);
	pthread_mutex_unlock(&mark_lock);
	pool_drain(p);
	fuse_destroy(f);
	pool_free(p); /* a forget that kept its path would show in LeakSanitizer's report */
}

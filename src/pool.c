/* pool: worker threads and a FIFO queue of tasks.
 *
 * Invariants: every submitted task is either run or cancelled, once; after pool_drain() the
 * queue is empty, no task runs and every worker has been joined. Workers wait on p->cond for a
 * task or the drain; the lock guards only the queue and the flags. The workers start with the
 * first task, not with the pool: the daemon forks into the background after making it, and
 * threads do not survive a fork. */
#include "artifactfs/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define POOL_MAX_THREADS 64

struct task {
	pool_fn run, cancel;
	void *arg;
	struct task *next;
};

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct task *head, *tail; /* protected by lock */
	bool draining;            /* protected by lock */
	bool joined;              /* protected by lock */
	unsigned want;            /* immutable: workers to start */
	unsigned n;               /* protected by lock: workers started */
	pthread_t *threads;       /* protected by lock */
};

static struct task *take(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	while (!p->head && !p->draining)
		pthread_cond_wait(&p->cond, &p->lock);
	struct task *t = p->head;
	if (t) {
		p->head = t->next;
		if (!p->head)
			p->tail = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	return t;
}

static void *worker(void *arg)
{
	struct pool *p = arg;
	struct task *t;
	while ((t = take(p))) { /* NULL: draining with nothing queued */
		t->run(t->arg);
		free(t);
	}
	return NULL;
}

int pool_new(unsigned threads, struct pool **out)
{
	if (threads < 1 || threads > POOL_MAX_THREADS)
		return -EINVAL;
	struct pool *p = calloc(1, sizeof(*p));
	if (!p || !(p->threads = calloc(threads, sizeof(*p->threads)))) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->want = threads;
	*out = p;
	return 0;
}

/* Starts the workers on first use (lock held); false when not even one could start. */
static bool started(struct pool *p)
{
	for (; p->n < p->want; p->n++)
		if (pthread_create(&p->threads[p->n], NULL, worker, p) != 0)
			break;
	return p->n > 0;
}

int pool_submit(struct pool *p, pool_fn run, pool_fn cancel, void *arg)
{
	struct task *t = malloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	*t = (struct task){run, cancel, arg, NULL};
	pthread_mutex_lock(&p->lock);
	int err = p->draining ? -ESHUTDOWN : started(p) ? 0 : -EAGAIN;
	if (!err) {
		if (p->tail)
			p->tail->next = t;
		else
			p->head = t;
		p->tail = t;
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	if (err)
		free(t);
	return err;
}

void pool_drain(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->draining = true;
	struct task *queued = p->head;
	p->head = p->tail = NULL;
	bool join = !p->joined;
	unsigned n = p->n; /* no worker starts once draining */
	p->joined = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	while (queued) {
		struct task *t = queued;
		queued = t->next;
		t->cancel(t->arg);
		free(t);
	}
	for (unsigned i = 0; join && i < n; i++)
		pthread_join(p->threads[i], NULL);
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	pool_drain(p);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->threads);
	free(p);
}

unsigned pool_threads(const struct pool *p)
{
	return p->want;
}

/* pool: a fixed set of worker threads running queued tasks in order (the background fetches of
 * a mount), in place of a thread per task. One pool per mount, made before and drained before
 * libfuse is torn down: a task may use what the FUSE session owns (http's cancel question).
 *
 * A task is run once or, when the pool is drained before it started, cancelled once: exactly one
 * of its two functions is called, so either may free arg. Thread-safe; the pool's lock is held
 * only to queue and dequeue, never while a task runs. */
#ifndef ARTIFACTFS_POOL_H
#define ARTIFACTFS_POOL_H

struct pool;

typedef void (*pool_fn)(void *arg);

/* A pool of threads workers (1..64), started with the first task (so a pool made before the
 * daemon forks into the background still has them after). Returns 0, -EINVAL or -ENOMEM. */
int pool_new(unsigned threads, struct pool **out);
/* Drains, then frees. NULL is a no-op. */
void pool_free(struct pool *p);

/* Queues run(arg). -ESHUTDOWN once the pool drains, -ENOMEM, -EAGAIN (no worker could start):
 * neither function is called then, and arg stays the caller's. */
int pool_submit(struct pool *p, pool_fn run, pool_fn cancel, void *arg);

/* Takes no more tasks, cancels those queued, waits for those running and joins the workers.
 * Idempotent; not from a worker. */
void pool_drain(struct pool *p);

unsigned pool_threads(const struct pool *p);

#endif

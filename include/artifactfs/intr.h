/* intr: whether the request the calling thread works for was interrupted: its reader got a
 * signal (Ctrl-C, kill -9 of a cat waiting on a lookup) and the kernel asked to stop (FUSE
 * INTERRUPT). The operation (fs) names its question on entry and clears it on exit; every
 * layer below asks it where the work for that reader can stop: a transfer (curl's progress
 * callback), a wait before a retry, a wait for another thread's load (single flight), a long
 * unpacking loop. An interrupted call returns -EINTR, which is never remembered as an answer:
 * whoever waits for the same load loads it again itself.
 *
 * A thread with no question (the read-ahead pool, unit tests that set none) is never
 * interrupted and waits exactly as pthread_cond_wait() does. Thread-local: no locking. */
#ifndef ARTIFACTFS_INTR_H
#define ARTIFACTFS_INTR_H

#include <pthread.h>
#include <stdbool.h>

/* Answers true once the request was interrupted (and from then on). */
typedef bool (*intr_fn)(void *ctx);

/* Sets the calling thread's question until intr_end(); fn NULL clears it. ctx is borrowed. */
void intr_begin(intr_fn fn, void *ctx);
void intr_end(void);

/* Whether the calling thread's request was interrupted; false without a question. */
bool intr_pending(void);

/* pthread_cond_wait() (mutex held on entry and exit) that also returns -EINTR once the calling
 * thread's request is interrupted: with a question set it wakes every INTR_POLL_MS to ask it
 * (libfuse's high-level API offers no wake-up). Returns 0 after a wake-up (maybe spurious: the
 * caller loops on its condition, as with pthread_cond_wait) or -EINTR. */
#define INTR_POLL_MS 100
int intr_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mutex);

#endif

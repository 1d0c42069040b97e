/* memo: a table of values loaded on demand and trusted for a time to live, single flight.
 *
 * A key is a kind (the caller's enum) and up to three strings; its value is refcounted and
 * immutable, or an error. A key being loaded is marked so: other threads wanting it wait instead
 * of loading it again. Errors that say something about the name (ENOENT, EACCES, ...) are kept
 * like values; EIO and ENOMEM are not, and an EIO while an older value is held keeps serving that
 * value (stale-on-EIO), asked again within STALE_RETRY_S. An interrupted load (-EINTR, intr.h)
 * is no answer at all: the entry stays as it was and the next thread loads it; a waiter whose
 * own request is interrupted stops waiting with -EINTR.
 *
 * Thread-safe: one mutex guards the table; it is never held while a loader runs nor while a
 * value is destroyed, so loaders and destructors may take other locks. */
#ifndef ARTIFACTFS_MEMO_H
#define ARTIFACTFS_MEMO_H

#include <stdatomic.h>
#include <time.h>

struct memo;

/* The head of every value: embed it first and give a destructor. */
struct memo_val {
	atomic_int refs;
	void (*destroy)(struct memo_val *v);
};

/* refs 1, owned by the caller until handed to the table by a loader. */
void memo_val_init(struct memo_val *v, void (*destroy)(struct memo_val *));
void memo_val_put(struct memo_val *v); /* NULL is a no-op */

struct memo_key {
	int kind;              /* the caller's enum */
	const char *a, *b, *c; /* NULL counts as "" */
};

/* Loads the value of a key: 0 and *out (one reference, given to the table), or -errno. */
typedef int (*memo_load_fn)(void *arg, struct memo_val **out);

/* ttl_s: how long a value stands. now: the clock in seconds (NULL: CLOCK_MONOTONIC), a seam
 * for tests. Returns NULL on ENOMEM. */
struct memo *memo_new(int ttl_s, time_t (*now)(void));
/* Puts every value; no call may be running. NULL is a no-op. */
void memo_free(struct memo *m);

/* The value (a reference the caller puts) or the error of key, loaded by load(arg) when absent
 * or expired. -ENOMEM when the key cannot be made. */
int memo_get(struct memo *m, const struct memo_key *key, memo_load_fn load, void *arg,
	     struct memo_val **out);

/* The value of key if loaded and fresh (a reference the caller puts), else NULL; never loads. */
struct memo_val *memo_peek(struct memo *m, const struct memo_key *key);

/* Every key of this kind whose first string is a expires now (after a change on the server). */
void memo_expire(struct memo *m, int kind, const char *a);

#endif

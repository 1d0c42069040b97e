/* memo: values loaded on demand, trusted for ttl_s, one load per key at a time.
 *
 * Entries live in one list under m->lock, keyed by a string made of the kind and the key's
 * strings joined by \x1f (a byte GitLab never accepts in a name, so keys cannot collide). An
 * entry being loaded has loading set; it is never pruned, and other threads wait on m->cond.
 * Expired entries are pruned once the list passes PRUNE_AT, their values put outside the lock. */
#include "artifactfs/memo.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/intr.h"
#include "artifactfs/log.h"

#define PRUNE_AT 1024
#define STALE_RETRY_S 5 /* how soon an unreachable server is asked again */

struct entry {
	char *key;
	struct memo_val *val; /* NULL when err != 0 */
	int err;
	time_t expires;
	bool loading;
	struct entry *next;
};

struct memo {
	int ttl_s;
	time_t (*now)(void);
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct entry *entries; /* protected by lock */
	size_t n;              /* protected by lock */
};

static time_t monotonic_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

void memo_val_init(struct memo_val *v, void (*destroy)(struct memo_val *))
{
	atomic_init(&v->refs, 1);
	v->destroy = destroy;
}

void memo_val_put(struct memo_val *v)
{
	if (v && atomic_fetch_sub(&v->refs, 1) == 1)
		v->destroy(v);
}

static struct memo_val *val_get(struct memo_val *v)
{
	if (v)
		atomic_fetch_add(&v->refs, 1);
	return v;
}

static char *key_string(const struct memo_key *k)
{
	char *s = NULL;
	if (asprintf(&s, "%d\x1f%s\x1f%s\x1f%s", k->kind, k->a ? k->a : "", k->b ? k->b : "",
		     k->c ? k->c : "") < 0)
		return NULL;
	return s;
}

struct memo *memo_new(int ttl_s, time_t (*now)(void))
{
	struct memo *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->ttl_s = ttl_s;
	m->now = now ? now : monotonic_s;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	return m;
}

static void free_list(struct entry *e)
{
	while (e) {
		struct entry *next = e->next;
		memo_val_put(e->val);
		free(e->key);
		free(e);
		e = next;
	}
}

void memo_free(struct memo *m)
{
	if (!m)
		return;
	free_list(m->entries);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m);
}

/* Unlinks expired entries not being loaded onto *dead, for the caller to free unlocked. */
static void prune(struct memo *m, struct entry **dead)
{
	time_t t = m->now();
	for (struct entry **pp = &m->entries; *pp;) {
		struct entry *e = *pp;
		if (!e->loading && e->expires <= t) {
			*pp = e->next;
			e->next = *dead;
			*dead = e;
			m->n--;
		} else {
			pp = &e->next;
		}
	}
}

static struct entry *find(struct memo *m, const char *key)
{
	for (struct entry *e = m->entries; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* A new entry for key (taking it over), lock held. */
static struct entry *insert(struct memo *m, char *key, struct entry **dead)
{
	if (m->n >= PRUNE_AT)
		prune(m, dead);
	struct entry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->key = key;
	e->next = m->entries;
	m->entries = e;
	m->n++;
	return e;
}

/* Stores what a load gave, lock held; returns the old value for the caller to put. An
 * interrupted load (its reader gave up) is no answer: the entry stays as it was, and a thread
 * still waiting for it loads it itself. */
static struct memo_val *settle(struct memo *m, struct entry *e, int *err, struct memo_val **v)
{
	struct memo_val *old = e->val;
	time_t t = m->now();
	e->loading = false;
	pthread_cond_broadcast(&m->cond);
	if (*err == -EINTR)
		return NULL;
	if (*err == -EIO && old) {
		/* the server is unreachable: what was known still stands, checked again soon */
		log_msg(LOG_WARNING,
			"serving a listing older than the TTL: the server is unreachable");
		*v = old;
		old = NULL;
		*err = 0;
		e->expires = t + (m->ttl_s < STALE_RETRY_S ? m->ttl_s : STALE_RETRY_S);
	} else {
		e->expires = (*err == -EIO || *err == -ENOMEM) ? 0 : t + m->ttl_s;
	}
	e->val = *err ? NULL : val_get(*v);
	e->err = *err;
	return old;
}

int memo_get(struct memo *m, const struct memo_key *key, memo_load_fn load, void *arg,
	     struct memo_val **out)
{
	struct entry *e, *dead = NULL;
	struct memo_val *v = NULL;
	char *ks = key_string(key);
	*out = NULL;
	if (!ks)
		return -ENOMEM;
	pthread_mutex_lock(&m->lock);
	while ((e = find(m, ks)) && e->loading) {
		if (intr_cond_wait(&m->cond, &m->lock)) { /* the loader goes on for the others */
			pthread_mutex_unlock(&m->lock);
			free(ks);
			return -EINTR;
		}
	}
	if (e && e->expires > m->now()) {
		*out = val_get(e->val);
		int err = e->err;
		pthread_mutex_unlock(&m->lock);
		free(ks);
		return err;
	}
	if (e)
		free(ks);
	else if (!(e = insert(m, ks, &dead)))
		free(ks);
	if (e)
		e->loading = true;
	pthread_mutex_unlock(&m->lock);
	free_list(dead);
	if (!e)
		return -ENOMEM;

	int err = load(arg, &v);

	pthread_mutex_lock(&m->lock);
	struct memo_val *old = settle(m, e, &err, &v);
	pthread_mutex_unlock(&m->lock);
	memo_val_put(old);
	if (err)
		memo_val_put(v);
	*out = err ? NULL : v;
	return err;
}

struct memo_val *memo_peek(struct memo *m, const struct memo_key *key)
{
	char *ks = key_string(key);
	struct memo_val *v = NULL;
	if (!ks)
		return NULL;
	pthread_mutex_lock(&m->lock);
	struct entry *e = find(m, ks);
	if (e && !e->loading && e->val && e->expires > m->now())
		v = val_get(e->val);
	pthread_mutex_unlock(&m->lock);
	free(ks);
	return v;
}

void memo_expire(struct memo *m, int kind, const char *a)
{
	char *prefix = NULL;
	if (asprintf(&prefix, "%d\x1f%s\x1f", kind, a ? a : "") < 0)
		return;
	size_t n = strlen(prefix);
	pthread_mutex_lock(&m->lock);
	for (struct entry *e = m->entries; e; e = e->next)
		if (strncmp(e->key, prefix, n) == 0)
			e->expires = 0;
	pthread_mutex_unlock(&m->lock);
	free(prefix);
}

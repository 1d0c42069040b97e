/* urlcache: a small LRU map from an archive's API URL to the signed storage URL it redirected
 * to, with a deadline per entry; and the reading of a signed URL's expiry from its query.
 *
 * Invariants: at most max entries are in use; every entry in use owns its key and url; `used`
 * stamps grow with every put and get, so the smallest one is the least recently used. A table
 * of 64 entries is scanned linearly: far cheaper than the network request each hit saves. */
#include "artifactfs/urlcache.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SECONDS_MAX ((int64_t)1 << 40) /* beyond any expiry: 34,000 years */

struct slot {
	char *key, *url; /* both NULL: free */
	int64_t until_ms;
	uint64_t used;
};

struct urlcache {
	pthread_mutex_t lock;
	size_t max;
	uint64_t clock;     /* protected by lock */
	struct slot *slots; /* protected by lock; max of them */
};

struct urlcache *urlcache_new(size_t max)
{
	struct urlcache *uc = calloc(1, sizeof(*uc));
	if (!uc)
		return NULL;
	uc->max = max ? max : 1;
	uc->slots = calloc(uc->max, sizeof(*uc->slots));
	if (!uc->slots) {
		free(uc);
		return NULL;
	}
	pthread_mutex_init(&uc->lock, NULL);
	return uc;
}

static void slot_clear(struct slot *s)
{
	if (s->url)
		memset(s->url, 0,
		       strlen(s->url)); /* a credential: do not leave it in freed memory */
	free(s->key);
	free(s->url);
	memset(s, 0, sizeof(*s));
}

void urlcache_free(struct urlcache *uc)
{
	if (!uc)
		return;
	for (size_t i = 0; i < uc->max; i++)
		slot_clear(&uc->slots[i]);
	pthread_mutex_destroy(&uc->lock);
	free(uc->slots);
	free(uc);
}

/* key's slot, or NULL. Lock held. */
static struct slot *find(struct urlcache *uc, const char *key)
{
	for (size_t i = 0; i < uc->max; i++)
		if (uc->slots[i].key && strcmp(uc->slots[i].key, key) == 0)
			return &uc->slots[i];
	return NULL;
}

/* A free slot, else the least recently used one, emptied. Lock held. */
static struct slot *victim(struct urlcache *uc)
{
	struct slot *lru = &uc->slots[0];
	for (size_t i = 0; i < uc->max; i++) {
		if (!uc->slots[i].key)
			return &uc->slots[i];
		if (uc->slots[i].used < lru->used)
			lru = &uc->slots[i];
	}
	slot_clear(lru);
	return lru;
}

int urlcache_put(struct urlcache *uc, const char *key, const char *url, int64_t until_ms)
{
	char *k = strdup(key), *u = strdup(url);
	if (!k || !u) {
		free(k);
		free(u);
		return -ENOMEM;
	}
	pthread_mutex_lock(&uc->lock);
	struct slot *s = find(uc, key);
	if (s)
		slot_clear(s);
	else
		s = victim(uc);
	*s = (struct slot){.key = k, .url = u, .until_ms = until_ms, .used = ++uc->clock};
	pthread_mutex_unlock(&uc->lock);
	return 0;
}

char *urlcache_get(struct urlcache *uc, const char *key, int64_t now_ms)
{
	char *out = NULL;
	pthread_mutex_lock(&uc->lock);
	struct slot *s = find(uc, key);
	if (s && now_ms >= s->until_ms) {
		slot_clear(s);
	} else if (s) {
		s->used = ++uc->clock;
		out = strdup(s->url);
	}
	pthread_mutex_unlock(&uc->lock);
	return out;
}

void urlcache_drop(struct urlcache *uc, const char *key, const char *url)
{
	pthread_mutex_lock(&uc->lock);
	struct slot *s = find(uc, key);
	if (s && strcmp(s->url, url) == 0)
		slot_clear(s);
	pthread_mutex_unlock(&uc->lock);
}

size_t urlcache_count(struct urlcache *uc)
{
	size_t n = 0;
	pthread_mutex_lock(&uc->lock);
	for (size_t i = 0; i < uc->max; i++)
		n += uc->slots[i].key != NULL;
	pthread_mutex_unlock(&uc->lock);
	return n;
}

/* ---- a signed URL's expiry ---- */

/* The expiry fields a signed URL's query may carry; -1 where absent. */
struct expiry {
	int64_t amz_date, amz_expires, goog_date, goog_expires, expires, azure_se;
};

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : isxdigit(c) ? tolower(c) - 'a' + 10 : -1;
}

/* The value [v, v+n) percent-decoded (and '+' as a space) into out, cut to size. */
static void decode(const char *v, size_t n, char *out, size_t size)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k + 1 < size; i++) {
		int hi = i + 2 < n && v[i] == '%' ? hexval((unsigned char)v[i + 1]) : -1;
		int lo = hi >= 0 ? hexval((unsigned char)v[i + 2]) : -1;
		if (lo >= 0) {
			out[k++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[k++] = v[i] == '+' ? ' ' : v[i];
		}
	}
	out[k] = '\0';
}

/* A plain decimal number of seconds, or -1; clamped so that sums of two cannot overflow. */
static int64_t seconds(const char *s)
{
	char *end;
	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	long long x = strtoll(s, &end, 10);
	if (*end)
		return -1;
	return errno == ERANGE || x > SECONDS_MAX ? SECONDS_MAX : (int64_t)x;
}

/* "20261128T103300Z" (SigV4) or "2026-11-28T10:33:00Z" (ISO 8601) as Unix time, or -1. */
static int64_t utc_time(const char *s)
{
	struct tm tm = {0};
	char z = 0;
	if (sscanf(s, "%4d%2d%2dT%2d%2d%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec, &z) != 7 &&
	    sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &z) != 7)
		return -1;
	if (z != 'Z' || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

static void note_param(struct expiry *e, const char *name, size_t n, const char *value)
{
	static const struct {
		const char *name;
		size_t off;
		bool is_time;
	} known[] = {
		{"x-amz-date", offsetof(struct expiry, amz_date), true},
		{"x-amz-expires", offsetof(struct expiry, amz_expires), false},
		{"x-goog-date", offsetof(struct expiry, goog_date), true},
		{"x-goog-expires", offsetof(struct expiry, goog_expires), false},
		{"expires", offsetof(struct expiry, expires), false},
		{"se", offsetof(struct expiry, azure_se), true},
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strlen(known[i].name) == n && strncasecmp(name, known[i].name, n) == 0)
			*(int64_t *)((char *)e + known[i].off) =
				known[i].is_time ? utc_time(value) : seconds(value);
}

/* The URL's stated expiry (Unix time), or -1 when it states none it can be read from. */
static int64_t stated_expiry(const char *url)
{
	struct expiry e = {-1, -1, -1, -1, -1, -1};
	const char *q = strchr(url, '?');
	size_t qlen = q ? strcspn(q + 1, "#") : 0;
	for (const char *p = q ? q + 1 : NULL; p && p < q + 1 + qlen;) {
		size_t len = strcspn(p, "&#"), nlen = strcspn(p, "=&#");
		char value[64];
		decode(p + nlen + 1, nlen < len ? len - nlen - 1 : 0, value, sizeof(value));
		note_param(&e, p, nlen, value);
		p += len + 1;
	}
	if (e.amz_date >= 0 && e.amz_expires >= 0)
		return e.amz_date + e.amz_expires;
	if (e.goog_date >= 0 && e.goog_expires >= 0)
		return e.goog_date + e.goog_expires;
	return e.expires >= 0 ? e.expires : e.azure_se;
}

int64_t urlcache_life_s(const char *url, time_t now)
{
	int64_t at = stated_expiry(url);
	if (at < 0)
		return URLCACHE_DEFAULT_LIFE_S;
	int64_t left = at - (int64_t)now - URLCACHE_MARGIN_S;
	return left <= 0 ? 0 : left > URLCACHE_MAX_LIFE_S ? URLCACHE_MAX_LIFE_S : left;
}

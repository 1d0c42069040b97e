/* urlcache: the signed object-storage URLs that archive requests were last redirected to, so that
 * the next Range reads of the same archive go straight to storage instead of costing an API
 * request (the 302) each (doc/GITLAB-API.md "Rate limits": about 2,000 API calls a minute).
 *
 * Entries are keyed by the API URL asked for and live until a deadline the caller computes with
 * urlcache_life_s() from the URL's own expiry. At most `max` entries are kept; the least recently
 * used one makes room. A signed URL is a credential for its life: this module never logs. All
 * functions are thread-safe (one mutex, never held across anything but memory work). */
#ifndef ARTIFACTFS_URLCACHE_H
#define ARTIFACTFS_URLCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define URLCACHE_MAX_LIFE_S 300    /* never reused longer than this, whatever the URL says */
#define URLCACHE_DEFAULT_LIFE_S 60 /* a URL that states no expiry */
#define URLCACHE_MARGIN_S 10       /* stop this long before the stated expiry (clock skew) */

struct urlcache;

/* A cache of at most max (>= 1) URLs. NULL on ENOMEM. Free with urlcache_free (NULL: no-op). */
struct urlcache *urlcache_new(size_t max);
void urlcache_free(struct urlcache *uc);

/* How many seconds from now (Unix time) url may be reused: its expiry less URLCACHE_MARGIN_S,
 * capped at URLCACHE_MAX_LIFE_S; URLCACHE_DEFAULT_LIFE_S when the query states none; 0 when it
 * has expired or expires within the margin. The expiry is read from the query parameters
 * (names case-insensitive, values percent-decoded): X-Amz-Date + X-Amz-Expires (S3 SigV4),
 * X-Goog-Date + X-Goog-Expires (GCS V4), Expires (Unix time: GCS V2, CloudFront, S3 V2) and se
 * (Azure SAS, ISO 8601). Pure. */
int64_t urlcache_life_s(const char *url, time_t now);

/* Remembers url for key until until_ms (any monotonic clock, the same one urlcache_get is
 * given), replacing key's previous URL. Both strings are copied. Returns 0 or -ENOMEM (nothing
 * changed). */
int urlcache_put(struct urlcache *uc, const char *key, const char *url, int64_t until_ms);

/* A malloc'ed copy of key's URL while now_ms is before its deadline, else NULL (none, expired:
 * then forgotten, or ENOMEM). Counts as a use for the LRU order. */
char *urlcache_get(struct urlcache *uc, const char *key, int64_t now_ms);

/* Forgets key's URL if it is still url (another thread may have put a fresh one meanwhile). */
void urlcache_drop(struct urlcache *uc, const char *key, const char *url);

/* How many URLs are remembered (for tests and the stats). */
size_t urlcache_count(struct urlcache *uc);

#endif

/* http: every HTTP exchange, over libcurl (the only libcurl user).
 *
 * One struct http serves all threads: a share handle pools connections, DNS and TLS sessions, and
 * idle easy handles wait in a small pool so their keep-alive connections are reused. curl never
 * follows a redirect itself: this module does, and attaches the credential header only when the
 * target's scheme, host and port are the configured origin's. A request that allows it
 * (reuse_signed_url: archive reads) starts at the signed storage URL its API URL last redirected
 * to while that URL is valid (urlcache: its stated expiry, at most 5 minutes), and goes back to
 * the API at once when storage refuses it or fails; others start at their API URL.
 *
 * A request is a series of attempts under one deadline (the retry_for budget). An attempt that
 * gets no answer, a truncated body, a 429 or a 5xx is retried: after the wait Retry-After or
 * RateLimit-Reset asks for (clamped to a day before any arithmetic, so no header overflows),
 * else after an exponential backoff, resuming a streamed range where the delivered bytes end.
 * No attempt or wait runs past the deadline, so retries never multiply the per-attempt limits.
 * Retries and outcomes are logged at DEBUG only: a failure's text goes to the thread's failure
 * reason (log_set_reason), for the one error line the operation writes. Every line built from
 * an answer's text goes through redaction of the token, and a URL of another origin (a signed
 * one) is shown as its host and path only, never its query. */
#include "artifactfs/http.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "artifactfs/log.h"
#include "artifactfs/urlcache.h"

#define POOL_MAX 16
#define MAX_HOPS 5
#define ERROR_BODY_MAX (64u * 1024u)
#define DEFAULT_BODY_MAX (64u * 1024u * 1024u)
#define DOWN_HOLD_MS 5000 /* how long "the server cannot be reached" is believed */
#define WAIT_CAP_S 86400  /* any server-asked wait is clamped to this before arithmetic */
#define CA_FILE_MAX (16u * 1024u * 1024u)
#define SIGNED_URLS_MAX 64 /* signed storage URLs remembered, one per archive */

struct http {
	char *base;        /* "http://host:port", no trailing slash */
	char *api;         /* base + "/api/v4" */
	char *origin;      /* normalised scheme://host:port of base */
	char *auth_header; /* "PRIVATE-TOKEN: ..." or NULL; never logged */
	char *token;       /* the bare token, only to redact it from log lines */
	enum http_auth auth;
	long connect_timeout_ms, low_speed_time_s, attempt_timeout_ms;
	int max_retries;
	long retry_base_ms, max_retry_wait_ms, retry_for_ms;
	char *ca_pem; /* system bundle + ca_file, for CURLOPT_CAINFO_BLOB; or NULL */
	size_t ca_pem_len;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;
	CURL *pool[POOL_MAX]; /* protected by pool_lock */
	int n_pool;           /* protected by pool_lock */
	atomic_uint_fast64_t requests, bytes;
	_Atomic int64_t down_until_ms; /* after a request found no server: fail fast until then */
	struct urlcache *signed_urls;  /* API URL -> the storage URL it last redirected to */
	bool (*cancelled)(void *ctx);
	void *cancel_ctx;
};

static bool is_cancelled(const struct http *h)
{
	return h->cancelled && h->cancelled(h->cancel_ctx);
}

char *http_redact(const char *text, const char *secret)
{
	static const char mark[] = "[REDACTED]";
	size_t k = secret ? strlen(secret) : 0, n = 0;
	for (const char *p = text; k && (p = strstr(p, secret)); p += k)
		n++;
	char *out = malloc(strlen(text) + n * sizeof(mark) + 1), *o = out;
	for (const char *p = text; out && *p;) {
		if (k && strncmp(p, secret, k) == 0) {
			memcpy(o, mark, sizeof(mark) - 1);
			o += sizeof(mark) - 1;
			p += k;
		} else {
			*o++ = *p++;
		}
	}
	if (out)
		*o = '\0';
	return out;
}

/* log_msg for every line that may carry text from an answer: the token never reaches the log. */
static void __attribute__((format(printf, 3, 4)))
hlog(const struct http *h, int level, const char *fmt, ...)
{
	char *line = NULL; /* whole: a line cut before redaction could keep the token's head */
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&line, fmt, ap);
	va_end(ap);
	char *clean = n < 0 ? NULL : http_redact(line, h->token);
	log_msg(level, "%s", clean ? clean : "(a log line was lost: out of memory)");
	free(clean);
	free(n < 0 ? NULL : line);
}

void http_set_cancel(struct http *h, bool (*cancelled)(void *ctx), void *ctx)
{
	h->cancelled = cancelled;
	h->cancel_ctx = ctx;
}

/* The state of one attempt: one HTTP exchange with one URL. */
struct attempt {
	struct http *h;
	const struct http_request *req;
	struct http_response *resp;
	CURL *curl;
	int64_t deadline_ms; /* the request's one deadline (monotonic) */
	CURLcode rc;         /* of the last attempt */
	long status;         /* of the response whose headers are being read */
	int64_t content_length;
	int64_t range_start, range_end, range_total;
	char *link_next, *x_next_page, *etag, *last_modified;
	char *location;          /* the Location header as sent, maybe relative */
	bool accept_ranges;      /* Accept-Ranges: bytes */
	long retry_after_s;      /* -1 when absent */
	int64_t ratelimit_reset; /* -1 when absent */
	uint64_t next_off;       /* absolute offset of the next body byte */
	uint64_t received;       /* body bytes of this attempt */
	bool delivering;         /* the body goes to req->body_fn */
	int sink_err;            /* what body_fn returned, or -EFBIG */
	char *buf;               /* collected body */
	size_t len, cap;
	char errbuf[CURL_ERROR_SIZE];
};

static void share_lock(CURL *c, curl_lock_data data, curl_lock_access access, void *p)
{
	(void)c;
	(void)access;
	struct http *h = p;
	pthread_mutex_lock(&h->share_locks[data]);
}

static void share_unlock(CURL *c, curl_lock_data data, void *p)
{
	(void)c;
	struct http *h = p;
	pthread_mutex_unlock(&h->share_locks[data]);
}

/* "scheme://host:port" in lower case, or NULL when url is not absolute http(s). */
static char *url_origin(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;
	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT))
		goto out;
	if (asprintf(&out, "%s://%s:%s", scheme, host, port) < 0)
		out = NULL;
	for (char *p = out; p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return out;
}

/* Location resolved against the URL it came from (RFC 3986), or NULL when it is not http(s). */
static char *resolve_location(const char *from, const char *location)
{
	CURLU *u = curl_url();
	char *out = NULL;
	if (u && !curl_url_set(u, CURLUPART_URL, from, 0) &&
	    !curl_url_set(u, CURLUPART_URL, location, 0))
		curl_url_get(u, CURLUPART_URL, &out, 0);
	curl_url_cleanup(u);
	if (out && strncasecmp(out, "http://", 7) != 0 && strncasecmp(out, "https://", 8) != 0) {
		curl_free(out);
		out = NULL;
	}
	char *copy = out ? strdup(out) : NULL;
	curl_free(out);
	return copy;
}

static bool same_origin(struct http *h, const char *url)
{
	char *o = url_origin(url);
	bool same = o && strcmp(o, h->origin) == 0;
	free(o);
	return same;
}

/* url for log lines: the path and query on our origin; elsewhere (a signed URL, a credential
 * for its life) the scheme, host and path only. */
static void loggable(struct http *h, const char *url, char *out, size_t n)
{
	char *clean = http_redact(url, h->token); /* before the cut, which could halve the token */
	size_t base = strlen(h->base);
	if (!clean)
		snprintf(out, n, "(a URL)");
	else if (strncmp(clean, h->base, base) == 0)
		snprintf(out, n, "%s", clean + base);
	else
		snprintf(out, n, "%.*s", (int)strcspn(clean, "?#"), clean);
	free(clean);
}

char *http_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	char *out = e ? strdup(e) : NULL;
	curl_free(e);
	return out;
}

int http_status_to_errno(long status)
{
	if (status >= 200 && status < 400)
		return 0;
	switch (status) {
	case 400:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
	case 410:
		return -ENOENT;
	case 409:
		return -EBUSY;
	case 416:
		return -ERANGE;
	default:
		return -EIO;
	}
}

static char *dup_default(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Appends the file at path to *buf. Returns 0 or -errno. */
static int append_file(const char *path, char **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	int err = 0;
	char chunk[65536];
	size_t n;
	while (!err && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		char *b = *len + n + 2 <= CA_FILE_MAX ? realloc(*buf, *len + n + 2) : NULL;
		if (!b) {
			err = *len + n + 2 > CA_FILE_MAX ? -EFBIG : -ENOMEM;
			break;
		}
		*buf = b;
		memcpy(b + *len, chunk, n);
		*len += n;
	}
	if (!err && ferror(f))
		err = -EIO;
	fclose(f);
	if (!err && *buf && (*buf)[*len - 1] != '\n')
		(*buf)[(*len)++] = '\n'; /* PEM blocks of two files must not run together */
	return err;
}

/* libcurl's own CA bundle path (CURLINFO_CAINFO, 7.84+), NULL when it has none or is older. */
static const char *default_ca_bundle(CURL *c)
{
	char *path = NULL;
#if LIBCURL_VERSION_NUM >= 0x075400
	curl_easy_getinfo(c, CURLINFO_CAINFO, &path);
#else
	(void)c;
#endif
	return path;
}

/* CURLOPT_CAINFO replaces the default bundle, so the extra CA would be trusted instead of the
 * public ones (a redirect to a public object store would then fail). As glab and git do, the
 * file is used in addition: the default bundle and the file go to curl as one PEM blob. */
static int load_ca(struct http *h, const char *ca_file)
{
	if (!ca_file || !ca_file[0])
		return 0;
	int err = append_file(ca_file, &h->ca_pem, &h->ca_pem_len);
	if (!err &&
	    (!h->ca_pem || !memmem(h->ca_pem, h->ca_pem_len, "-----BEGIN CERTIFICATE-----", 27)))
		err = -EBADMSG;
	CURL *c = err ? NULL : curl_easy_init();
	const char *bundle = c ? default_ca_bundle(c) : NULL;
	if (bundle && append_file(bundle, &h->ca_pem, &h->ca_pem_len) == -ENOMEM)
		err = -ENOMEM; /* an unreadable system bundle leaves the file alone: still usable */
	if (c)
		curl_easy_cleanup(c);
	else if (!err)
		err = -ENOMEM;
	return err;
}

/* The credential header and, for redaction, the bare token. Returns 0 or -ENOMEM. */
static int set_auth(struct http *h, const struct http_config *cfg)
{
	if (cfg->auth == HTTP_AUTH_NONE || !cfg->token)
		return 0;
	const char *name = cfg->auth == HTTP_AUTH_PRIVATE_TOKEN ? "PRIVATE-TOKEN"
			   : cfg->auth == HTTP_AUTH_BEARER      ? "Authorization"
								: "JOB-TOKEN";
	const char *prefix = cfg->auth == HTTP_AUTH_BEARER ? "Bearer " : "";
	if (asprintf(&h->auth_header, "%s: %s%s", name, prefix, cfg->token) < 0) {
		h->auth_header = NULL;
		return -ENOMEM;
	}
	h->auth = cfg->auth;
	h->token = strdup(cfg->token);
	return h->token ? 0 : -ENOMEM;
}

int http_new(const struct http_config *cfg, struct http **out)
{
	struct http *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->base = dup_default(cfg->base_url);
	size_t n = h->base ? strlen(h->base) : 0;
	while (n > 0 && h->base[n - 1] == '/')
		h->base[--n] = '\0';
	h->origin = h->base ? url_origin(h->base) : NULL;
	if (!h->origin || (strncmp(h->origin, "http://", 7) && strncmp(h->origin, "https://", 8)) ||
	    asprintf(&h->api, "%s/api/v4", h->base) < 0) {
		h->api = NULL;
		http_free(h);
		return -EINVAL;
	}
	int err = set_auth(h, cfg);
	if (!err)
		err = load_ca(h, cfg->ca_file);
	if (err) {
		http_free(h);
		return err;
	}
	h->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 10000;
	h->low_speed_time_s = cfg->low_speed_time_s ? cfg->low_speed_time_s : 30;
	h->attempt_timeout_ms = cfg->attempt_timeout_ms;
	h->max_retries = cfg->max_retries == 0  ? INT_MAX
			 : cfg->max_retries < 0 ? 0
						: cfg->max_retries;
	h->retry_base_ms = cfg->retry_base_ms ? cfg->retry_base_ms : 250;
	h->max_retry_wait_ms = cfg->max_retry_wait_ms ? cfg->max_retry_wait_ms : 15000;
	h->retry_for_ms = (cfg->retry_for_s > 0 ? cfg->retry_for_s : 120) * 1000L;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&h->share_locks[i], NULL);
	pthread_mutex_init(&h->pool_lock, NULL);
	h->share = curl_share_init();
	h->signed_urls = urlcache_new(SIGNED_URLS_MAX);
	if (!h->share || !h->signed_urls) {
		http_free(h);
		return -ENOMEM;
	}
	curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	*out = h;
	return 0;
}

void http_free(struct http *h)
{
	if (!h)
		return;
	for (int i = 0; i < h->n_pool; i++)
		curl_easy_cleanup(h->pool[i]);
	if (h->share)
		curl_share_cleanup(h->share);
	urlcache_free(h->signed_urls);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&h->share_locks[i]);
	pthread_mutex_destroy(&h->pool_lock);
	if (h->auth_header) {
		memset(h->auth_header, 0, strlen(h->auth_header));
		free(h->auth_header);
	}
	if (h->token) {
		memset(h->token, 0, strlen(h->token));
		free(h->token);
	}
	free(h->ca_pem);
	free(h->base);
	free(h->api);
	free(h->origin);
	free(h);
}

enum http_auth http_auth_kind(const struct http *h)
{
	return h->auth;
}

void http_stats(struct http *h, uint64_t *requests, uint64_t *bytes)
{
	*requests = atomic_load(&h->requests);
	*bytes = atomic_load(&h->bytes);
}

static CURL *handle_get(struct http *h)
{
	CURL *c = NULL;
	pthread_mutex_lock(&h->pool_lock);
	if (h->n_pool > 0)
		c = h->pool[--h->n_pool];
	pthread_mutex_unlock(&h->pool_lock);
	if (c)
		curl_easy_reset(c);
	else
		c = curl_easy_init();
	return c;
}

static void handle_put(struct http *h, CURL *c)
{
	pthread_mutex_lock(&h->pool_lock);
	if (h->n_pool < POOL_MAX) {
		h->pool[h->n_pool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&h->pool_lock);
	if (c)
		curl_easy_cleanup(c);
}

void http_response_release(struct http_response *r)
{
	free(r->body);
	free(r->next_url);
	free(r->etag);
	free(r->last_modified);
	memset(r, 0, sizeof(*r));
	r->content_length = r->range_start = r->range_total = -1;
}

/* ---- one attempt ---- */

static void attempt_reset_headers(struct attempt *a)
{
	a->content_length = a->range_start = a->range_end = a->range_total = -1;
	a->retry_after_s = a->ratelimit_reset = -1;
	a->accept_ranges = false;
	free(a->link_next);
	free(a->x_next_page);
	free(a->etag);
	free(a->last_modified);
	free(a->location);
	a->link_next = a->x_next_page = a->etag = a->last_modified = a->location = NULL;
}

static char *trimmed_dup(const char *v, size_t n)
{
	while (n > 0 && isspace((unsigned char)*v))
		v++, n--;
	while (n > 0 && isspace((unsigned char)v[n - 1]))
		n--;
	return strndup(v, n);
}

/* Link: <url>; rel="next", <url>; rel="last": the next one's URL. */
static char *link_next(const char *v, size_t n)
{
	char *s = strndup(v, n), *save = NULL, *out = NULL;
	for (char *part = s ? strtok_r(s, ",", &save) : NULL; part && !out;
	     part = strtok_r(NULL, ",", &save)) {
		char *lt = strchr(part, '<'), *gt = lt ? strchr(lt, '>') : NULL;
		if (gt && (strstr(gt, "rel=\"next\"") || strstr(gt, "rel=next")))
			out = strndup(lt + 1, (size_t)(gt - lt - 1));
	}
	free(s);
	return out;
}

static void parse_content_range(struct attempt *a, const char *v)
{
	long long s, e, t;
	if (sscanf(v, " bytes %lld-%lld/%lld", &s, &e, &t) == 3) {
		a->range_start = s;
		a->range_end = e;
		a->range_total = t;
	} else if (sscanf(v, " bytes %lld-%lld/*", &s, &e) == 2) {
		a->range_start = s;
		a->range_end = e;
	} else if (sscanf(v, " bytes */%lld", &t) == 1) {
		a->range_total = t;
	}
}

/* A decimal header value, saturating at INT64_MAX (20 nines must not wrap); -1 when it is not
 * a plain non-negative number. */
static int64_t header_number(const char *v, size_t n)
{
	char *s = trimmed_dup(v, n), *end = NULL;
	int64_t x = -1;
	if (s && s[0] >= '0' && s[0] <= '9') {
		errno = 0;
		long long l = strtoll(s, &end, 10);
		x = *end ? -1 : errno == ERANGE ? INT64_MAX : (int64_t)l;
	}
	free(s);
	return x;
}

/* Retry-After: delay-seconds or an HTTP-date; seconds from now clamped to WAIT_CAP_S, -1 when
 * unreadable. */
static long retry_after(const char *v, size_t n)
{
	int64_t secs = header_number(v, n);
	char *s = secs < 0 ? trimmed_dup(v, n) : NULL;
	if (s) {
		time_t when = curl_getdate(s, NULL), now = time(NULL);
		if (when != -1)
			secs = when > now ? (int64_t)(when - now) : 0;
	}
	free(s);
	return secs > WAIT_CAP_S ? WAIT_CAP_S : (long)secs;
}

static bool header_is(const char *line, size_t n, const char *name, const char **value,
		      size_t *vlen)
{
	size_t k = strlen(name);
	if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return false;
	*value = line + k + 1;
	*vlen = n - k - 1;
	return true;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *p)
{
	struct attempt *a = p;
	size_t n = size * nitems;
	const char *v;
	size_t vn;
	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		attempt_reset_headers(a); /* a new response (after a 100 or a redirect) */
		return n;
	}
	if (header_is(line, n, "content-length", &v, &vn)) {
		a->content_length = strtoll(v, NULL, 10);
	} else if (header_is(line, n, "content-range", &v, &vn)) {
		char *s = strndup(v, vn);
		if (s)
			parse_content_range(a, s);
		free(s);
	} else if (header_is(line, n, "link", &v, &vn)) {
		free(a->link_next);
		a->link_next = link_next(v, vn);
	} else if (header_is(line, n, "x-next-page", &v, &vn)) {
		free(a->x_next_page);
		a->x_next_page = trimmed_dup(v, vn);
	} else if (header_is(line, n, "etag", &v, &vn)) {
		free(a->etag);
		a->etag = trimmed_dup(v, vn);
	} else if (header_is(line, n, "last-modified", &v, &vn)) {
		free(a->last_modified);
		a->last_modified = trimmed_dup(v, vn);
	} else if (header_is(line, n, "location", &v, &vn)) {
		free(a->location);
		a->location = trimmed_dup(v, vn);
	} else if (header_is(line, n, "accept-ranges", &v, &vn)) {
		a->accept_ranges = memmem(v, vn, "bytes", 5) != NULL;
	} else if (header_is(line, n, "retry-after", &v, &vn)) {
		a->retry_after_s = retry_after(v, vn);
	} else if (header_is(line, n, "ratelimit-reset", &v, &vn)) {
		a->ratelimit_reset = header_number(v, vn);
	}
	return n;
}

static int collect(struct attempt *a, const char *data, size_t n, size_t max)
{
	if (a->len + n > max)
		return -EFBIG;
	if (a->len + n + 1 > a->cap) {
		size_t cap = a->cap ? a->cap : 4096;
		while (cap < a->len + n + 1)
			cap *= 2;
		char *b = realloc(a->buf, cap);
		if (!b)
			return -ENOMEM;
		a->buf = b;
		a->cap = cap;
	}
	memcpy(a->buf + a->len, data, n);
	a->len += n;
	a->buf[a->len] = '\0';
	return 0;
}

static bool strong_etag(const char *e)
{
	return e && e[0] == '"';
}

/* The answer names another resource version than the caller pinned: by ETag when both sides
 * have one, else by Last-Modified when the pin is by date. */
static bool etag_changed(const struct attempt *a, long status)
{
	const struct http_request *r = a->req;
	if (status != 200 && status != 206)
		return false;
	if (r->expect_etag && a->etag)
		return strcmp(a->etag, r->expect_etag) != 0;
	if (r->expect_last_modified && !strong_etag(r->expect_etag) && a->last_modified)
		return strcmp(a->last_modified, r->expect_last_modified) != 0;
	return false;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *p)
{
	struct attempt *a = p;
	size_t n = size * nmemb;
	long status = 0;
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 300 && status < 400)
		return n; /* a redirect's body is not wanted */
	if (a->received == 0 && etag_changed(a, status)) {
		a->sink_err = -ESTALE; /* another archive now: not one byte of it */
		return 0;
	}
	if (a->received == 0) {
		a->delivering = a->req->body_fn && (status == 200 || status == 206);
		a->next_off = status == 206 && a->range_start >= 0 ? (uint64_t)a->range_start : 0;
	}
	int err;
	if (a->delivering)
		err = a->req->body_fn(a->req->body_ctx, a->next_off, data, n);
	else if (a->req->body_fn || status >= 300) /* an error text: keep its start only */
		err = a->len < ERROR_BODY_MAX
			      ? collect(a, data,
					n < ERROR_BODY_MAX - a->len ? n : ERROR_BODY_MAX - a->len,
					ERROR_BODY_MAX)
			      : 0;
	else
		err = collect(a, data, n, a->req->max_body ? a->req->max_body : DEFAULT_BODY_MAX);
	a->received += n;
	a->next_off += n;
	if (err) {
		a->sink_err = err;
		return 0; /* makes curl stop with CURLE_WRITE_ERROR */
	}
	return n;
}

struct target {
	char *url;
	int64_t range_off, range_len; /* as in http_request; for this attempt */
	bool get;                     /* a 303 turned the method into GET */
};

static int64_t now_ms(void);

/* A ceiling on one attempt, so that a server trickling just above the low-speed limit cannot
 * hold a call for hours: four no-progress periods, plus the ranged bytes at 32 KiB/s. A streamed
 * body of unknown length (a whole archive) is bounded by the low-speed limit alone. */
static long attempt_ceiling_ms(const struct http *h, const struct target *t,
			       const struct http_request *req)
{
	if (h->attempt_timeout_ms)
		return h->attempt_timeout_ms;
	if (req->body_fn && t->range_len <= 0)
		return 0;
	return 4L * h->low_speed_time_s * 1000L +
	       (t->range_len > 0 ? (long)(t->range_len / 32) : 0);
}

/* ms left before the deadline, at least 1 (curl reads 0 as "no limit") */
static long left_ms(const struct attempt *a)
{
	int64_t left = a->deadline_ms - now_ms();
	return left < 1 ? 1 : left > LONG_MAX ? LONG_MAX : (long)left;
}

/* Every limit of an attempt ends at the request's deadline, except a moving whole-body stream's
 * (ceiling 0), which the low-speed limit alone bounds. */
static void set_timeouts(struct attempt *a, const struct target *t)
{
	long left = left_ms(a), ceiling = attempt_ceiling_ms(a->h, t, a->req);
	long connect = a->h->connect_timeout_ms;
	curl_easy_setopt(a->curl, CURLOPT_CONNECTTIMEOUT_MS, connect < left ? connect : left);
	curl_easy_setopt(a->curl, CURLOPT_TIMEOUT_MS,
			 ceiling && ceiling < left ? ceiling
			 : ceiling                 ? left
						   : 0L);
}

/* curl calls this at least once a second, also while nothing arrives */
static int on_progress(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	struct attempt *a = p;
	return is_cancelled(a->h) ? 1 : 0;
}

/* If-Range only with a Range: a strong ETag, else the pinned Last-Modified date (a weak ETag
 * may not be used there, RFC 9110 13.1.5). Nothing with CR/LF goes out (no header injection). */
static void add_if_range(const struct http_request *req, const struct target *t,
			 struct curl_slist **hdrs)
{
	char line[300];
	const char *e =
		strong_etag(req->expect_etag) ? req->expect_etag : req->expect_last_modified;
	if (!e || t->range_len <= 0 || strlen(e) > 256 || strpbrk(e, "\r\n"))
		return;
	snprintf(line, sizeof(line), "If-Range: %s", e);
	*hdrs = curl_slist_append(*hdrs, line);
}

static void set_options(struct attempt *a, const struct target *t, struct curl_slist **hdrs)
{
	struct http *h = a->h;
	CURL *c = a->curl;
	const char *method = t->get || !a->req->method ? "GET" : a->req->method;
	char range[80];

	curl_easy_setopt(c, CURLOPT_URL, t->url);
	curl_easy_setopt(c, CURLOPT_SHARE, h->share);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, h->low_speed_time_s);
	set_timeouts(a, t);
	if (h->ca_pem) {
		struct curl_blob blob = {h->ca_pem, h->ca_pem_len, CURL_BLOB_NOCOPY};
		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
	}
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "artifactfs/" ARTIFACTFS_VERSION);
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, a->errbuf);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, h->cancelled ? 0L : 1L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, a);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
	/* the credential only ever goes to the configured origin */
	if (h->auth_header && same_origin(h, t->url))
		*hdrs = curl_slist_append(*hdrs, h->auth_header);
	if (t->range_off >= 0 && t->range_len > 0) {
		snprintf(range, sizeof(range), "Range: bytes=%" PRId64 "-%" PRId64, t->range_off,
			 t->range_off + t->range_len - 1);
		*hdrs = curl_slist_append(*hdrs, range);
	} else if (t->range_off == -1 && t->range_len > 0) {
		snprintf(range, sizeof(range), "Range: bytes=-%" PRId64, t->range_len);
		*hdrs = curl_slist_append(*hdrs, range);
	}
	add_if_range(a->req, t, hdrs);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
}

/* The body length the headers promise: Content-Length, else a 206's Content-Range; -1 unknown. */
static int64_t expected_length(const struct attempt *a)
{
	if (a->content_length >= 0)
		return a->content_length;
	if (a->status == 206 && a->range_start >= 0 && a->range_end >= a->range_start)
		return a->range_end - a->range_start + 1;
	return -1;
}

/* Performs one exchange. Returns 0 with a->status set, or -EIO (no answer, or a truncated body),
 * or the sink's error. The easy handle goes back to the pool before returning. */
static int attempt_run(struct attempt *a, const struct target *t)
{
	struct curl_slist *hdrs = NULL;
	a->curl = handle_get(a->h);
	if (!a->curl)
		return -ENOMEM;
	a->errbuf[0] = '\0';
	a->received = 0;
	a->len = 0;
	a->sink_err = 0;
	a->delivering = false;
	attempt_reset_headers(a);
	set_options(a, t, &hdrs);
	CURLcode rc = a->rc = curl_easy_perform(a->curl);
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &a->status);
	handle_put(a->h, a->curl);
	a->curl = NULL;
	curl_slist_free_all(hdrs);
	atomic_fetch_add(&a->h->requests, 1);
	atomic_fetch_add(&a->h->bytes, a->received);
	bool head = !t->get && a->req->method && strcmp(a->req->method, "HEAD") == 0;
	if (a->sink_err)
		return a->sink_err;
	if (rc != CURLE_OK) {
		if (rc == CURLE_ABORTED_BY_CALLBACK && is_cancelled(a->h))
			snprintf(a->errbuf, sizeof(a->errbuf), "stopped: the mount is going away");
		else if (!a->errbuf[0])
			snprintf(a->errbuf, sizeof(a->errbuf), "%s", curl_easy_strerror(rc));
		return -EIO;
	}
	int64_t want = expected_length(a);
	if (!head && a->status >= 200 && a->status < 300 && want >= 0 &&
	    a->received < (uint64_t)want) {
		snprintf(a->errbuf, sizeof(a->errbuf), "body truncated at %" PRIu64 " of %" PRId64,
			 a->received, want);
		return -EIO;
	}
	return 0;
}

/* ---- a whole request ---- */

static char *absolute_url(struct http *h, const char *url)
{
	char *out = NULL;
	if (url[0] == '/')
		return asprintf(&out, "%s%s", h->api, url) < 0 ? NULL : out;
	return strdup(url);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The wait the server asked for, in ms, clamped to WAIT_CAP_S; -1 when it asked for none.
 * RateLimit-Reset is GitLab's Unix time; a small value is read as the IETF draft's seconds. */
static int64_t asked_wait_ms(const struct attempt *a)
{
	if (a->retry_after_s >= 0)
		return (int64_t)a->retry_after_s * 1000;
	if (a->ratelimit_reset < 0)
		return -1;
	int64_t now = (int64_t)time(NULL), r = a->ratelimit_reset;
	int64_t secs = r < 1000000000 ? r : r > now ? r - now : 0;
	return (secs > WAIT_CAP_S ? WAIT_CAP_S : secs) * 1000;
}

/* How long to wait before retry number `retry` (0 first); *asked tells a server-given wait. */
static int64_t backoff_ms(struct http *h, const struct attempt *a, int retry, bool *asked)
{
	int64_t ms = asked_wait_ms(a);
	*asked = ms >= 0;
	if (*asked)
		return ms;
	unsigned seed = (unsigned)now_ms() ^ (unsigned)(uintptr_t)a;
	ms = (int64_t)h->retry_base_ms << (retry < 10 ? retry : 10);
	ms += rand_r(&seed) % (h->retry_base_ms + 1); /* jitter */
	return ms < h->max_retry_wait_ms ? ms : h->max_retry_wait_ms;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Why an attempt got no answer, from curl's code. */
static enum http_fail fail_kind(const struct attempt *a)
{
	switch (a->rc) {
	case CURLE_OK:
	case CURLE_WRITE_ERROR:
		return a->sink_err ? HTTP_FAIL_NONE : HTTP_FAIL_OTHER;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return HTTP_FAIL_DNS;
	case CURLE_COULDNT_CONNECT:
		return HTTP_FAIL_REFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return HTTP_FAIL_TIMEOUT;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
		return HTTP_FAIL_TLS;
	case CURLE_ABORTED_BY_CALLBACK:
		return is_cancelled(a->h) ? HTTP_FAIL_CANCELLED : HTTP_FAIL_OTHER;
	default:
		return HTTP_FAIL_OTHER;
	}
}

static bool retryable_status(long status)
{
	return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

/* What the first partly delivered answer said, kept while later attempts fetch the rest: the
 * caller sees the answer it asked for, not the resumed ranges that completed it. */
struct logical {
	bool resumed;
	long status;
	int64_t range_start, range_total, content_length;
};

/* After a partial streamed body: resume where the bytes stopped when the server takes ranges
 * (it answered 206 or advertised Accept-Ranges), else start over (offsets repeat). */
static void plan_retry(const struct attempt *a, struct target *t, const struct http_request *req,
		       struct logical *lg)
{
	int64_t end = -1; /* one past the last byte wanted */
	if (!a->delivering || a->received == 0)
		return; /* nothing delivered: ask for the same again */
	if (a->status == 206 && a->range_end >= 0)
		end = a->range_end + 1;
	else if (a->status == 200 && a->accept_ranges && a->content_length >= 0)
		end = a->content_length;
	if (end <= (int64_t)a->next_off) {
		t->range_off = req->range_off;
		t->range_len = req->range_len;
		lg->resumed = false;
		return;
	}
	if (!lg->resumed) {
		lg->resumed = true;
		lg->status = a->status;
		lg->range_start = a->status == 206 ? a->range_start : -1;
		lg->range_total = a->status == 206 ? a->range_total : a->content_length;
		lg->content_length = a->status == 206 ? end - a->range_start : a->content_length;
	}
	t->range_off = (int64_t)a->next_off;
	t->range_len = end - t->range_off;
}

static void fill_response(struct http *h, struct attempt *a, const char *req_url,
			  struct http_response *r);

/* An error text for a log line: its start, on one line, redacted before it is cut (a token
 * straddling the cut would not be found whole afterwards). */
static void log_excerpt(const struct attempt *a, char *out, size_t n)
{
	char *line = malloc(a->len + 1), *clean = NULL;
	for (size_t i = 0; line && i < a->len; i++)
		line[i] = (unsigned char)a->buf[i] < 0x20 || a->buf[i] == 0x7f ? ' ' : a->buf[i];
	if (line) {
		line[a->len] = '\0';
		clean = http_redact(line, a->h->token);
	}
	snprintf(out, n, "%s", clean ? clean : "");
	free(clean);
	free(line);
}

/* The one line that tells how a request ended, at DEBUG: whether a failure matters is for the
 * operation to say (with the reason note_reason leaves), in its own one line. */
static void log_outcome(struct http *h, const struct http_request *req, const char *url,
			const struct attempt *a, int err, int tries)
{
	char where[512], text[201] = "";
	loggable(h, url, where, sizeof(where));
	const char *m = req->method ? req->method : "GET";
	if (err && (is_cancelled(h) || fail_kind(a) == HTTP_FAIL_CANCELLED)) {
		hlog(h, LOG_INFO, "%s %s: cancelled: the mount is going away", m, where);
		return;
	}
	if (err) {
		hlog(h, LOG_DEBUG, "%s %s: %s (after %d attempts)", m, where,
		     a->errbuf[0] ? a->errbuf : strerror(-err), tries);
		return;
	}
	if (a->status >= 400 && same_origin(h, url))
		log_excerpt(a, text, sizeof(text));
	hlog(h, LOG_DEBUG, "%s %s: HTTP %ld%s%s", m, where, a->status, text[0] ? ": " : "", text);
}

/* Sets the thread's failure reason after a request that failed (no answer, or a status of 400
 * or more), naming the call by its API URL (and the storage host and path it was sent to), and
 * what ended it; an answer that is no failure clears it. A sink that failed (a full cache) may
 * have said why itself during the request: that reason stays. */
static void note_reason(struct http *h, const struct http_request *req, const char *start,
			const char *url, const struct attempt *a, int err, int tries)
{
	char api[512], via[512] = "", what[300], text[121] = "", line[1600];
	if (!err && a->status < 400) {
		log_clear_reason();
		return;
	}
	if (a->sink_err && log_reason()[0])
		return;
	loggable(h, start, api, sizeof(api));
	if (url && !same_origin(h, url)) {
		snprintf(via, sizeof(via), " (sent on to ");
		loggable(h, url, via + strlen(via), sizeof(via) - strlen(via) - 1);
		strcat(via, ")");
	}
	if (err && (is_cancelled(h) || fail_kind(a) == HTTP_FAIL_CANCELLED))
		snprintf(what, sizeof(what), "cancelled: the mount is going away");
	else if (err)
		snprintf(what, sizeof(what), "%s", a->errbuf[0] ? a->errbuf : strerror(-err));
	else
		snprintf(what, sizeof(what), "HTTP %ld", a->status);
	if (!err && !via[0]) /* storage's error texts are not ours to show */
		log_excerpt(a, text, sizeof(text));
	snprintf(line, sizeof(line), "%s %s%s: %s%s%s", req->method ? req->method : "GET", api, via,
		 what, text[0] ? ": " : "", text);
	if (tries > 1)
		snprintf(line + strlen(line), sizeof(line) - strlen(line), " (after %d attempts)",
			 tries);
	char *clean = http_redact(line, h->token);
	log_set_reason("%s", clean ? clean : "(out of memory)");
	free(clean);
}

/* True while a recent request found no server at all: every caller then fails at once instead
 * of each waiting out its own connect timeouts and retries. */
static bool server_down(struct http *h, const struct http_request *req)
{
	if (now_ms() >= atomic_load(&h->down_until_ms))
		return false;
	const char *m = req->method ? req->method : "GET";
	hlog(h, LOG_DEBUG,
	     "%s %s: the server could not be reached moments ago; not trying again yet", m,
	     req->url);
	char *clean = http_redact(req->url, h->token);
	log_set_reason("%s %s%s: the server could not be reached moments ago; not trying again yet",
		       m, req->url[0] == '/' ? "/api/v4" : "", clean ? clean : "");
	free(clean);
	return true;
}

/* One request's state across its attempts and redirect hops. */
struct exchange {
	struct attempt a;
	struct target t;
	struct logical lg;
	char *start; /* the absolute URL asked for: every retry starts here again */
	int tries, hops, signed_retries;
	bool remembered; /* t.url is a signed URL remembered from an earlier request */
};

static int restart(struct exchange *x)
{
	free(x->t.url);
	x->t.url = strdup(x->start); /* ask the API again: signed URLs expire */
	x->t.get = false;
	x->hops = 0;
	x->remembered = false;
	return x->t.url ? 0 : -ENOMEM;
}

/* Starts at the storage URL the same API URL last redirected to, while it is valid: a Range
 * read then costs no API request (doc/GITLAB-API.md "Rate limits"). */
static void start_remembered(struct exchange *x, struct http *h, const struct http_request *req)
{
	char *url = req->reuse_signed_url ? urlcache_get(h->signed_urls, x->start, now_ms()) : NULL;
	if (!url)
		return;
	free(x->t.url);
	x->t.url = url;
	x->hops = 1; /* another origin's URL: no credential, as after a redirect */
	x->remembered = true;
}

/* A 2xx from another origin reached by a redirect: that (signed) URL serves the next reads of
 * the same API URL until the expiry it states, at most 5 minutes (60 s when it states none).
 * A URL used from memory is not put back, so its life is never extended. */
static void remember(struct exchange *x, struct http *h)
{
	if (x->hops == 0 || x->remembered || x->a.status < 200 || x->a.status >= 300 ||
	    same_origin(h, x->t.url))
		return;
	int64_t life_s = urlcache_life_s(x->t.url, time(NULL));
	if (life_s > 0)
		urlcache_put(h->signed_urls, x->start, x->t.url, now_ms() + life_s * 1000);
}

/* Whether the attempt on a remembered URL failed in any way (refused as expired, 404 or 410 for
 * an object gone, a 5xx, no answer, another archive than the pin): then the API is asked again
 * at once, within the same deadline, and the URL is forgotten. */
static bool remembered_failed(struct http *h, const struct exchange *x, int err)
{
	if (!x->remembered || is_cancelled(h))
		return false;
	return err == -EIO || err == -ESTALE || (!err && (x->a.status < 200 || x->a.status >= 300));
}

static int forget_remembered(struct exchange *x, struct http *h, const struct http_request *req)
{
	char where[512], what[40];
	loggable(h, x->t.url, where, sizeof(where));
	snprintf(what, sizeof(what), "HTTP %ld", x->a.status);
	hlog(h, LOG_DEBUG, "GET %s (remembered for %s): %s; asking the API again", where, req->url,
	     x->a.errbuf[0] ? x->a.errbuf
	     : x->a.status  ? what
			    : "no answer");
	urlcache_drop(h->signed_urls, x->start, x->t.url);
	plan_retry(&x->a, &x->t, req, &x->lg);
	x->tries--; /* not a retry: the request has not been to the API yet */
	return restart(x);
}

/* Waits before the next attempt and plans it. Returns 0 to go on, 1 when the retries are spent. */
static int retry_wait(struct exchange *x, struct http *h, const struct http_request *req, int err)
{
	char where[512];
	enum http_fail why = err ? fail_kind(&x->a) : HTTP_FAIL_NONE;
	/* an untrusted certificate stays untrusted; a cancelled mount wants no more */
	if (x->tries > h->max_retries || is_cancelled(h) || why == HTTP_FAIL_CANCELLED ||
	    x->a.rc == CURLE_PEER_FAILED_VERIFICATION)
		return 1;
	bool asked;
	int64_t wait = backoff_ms(h, &x->a, x->tries - 1, &asked),
		left = x->a.deadline_ms - now_ms();
	loggable(h, x->t.url, where, sizeof(where));
	if (!asked && wait > left - 1000)
		wait = left - 1000; /* one last attempt with a second to spare */
	if (wait < 0 || wait > left) {
		hlog(h, LOG_DEBUG, "%s %s: %s; the %s wait ends past the retry budget: giving up",
		     req->method ? req->method : "GET", where,
		     err ? (x->a.errbuf[0] ? x->a.errbuf : "no answer") : "server busy or failing",
		     asked ? "server's" : "next");
		return 1;
	}
	hlog(h, LOG_DEBUG, "%s %s: %s; retrying in %" PRId64 " ms",
	     req->method ? req->method : "GET", where,
	     err ? (x->a.errbuf[0] ? x->a.errbuf : "no answer") : "server busy or failing", wait);
	for (int64_t slept = 0; slept < wait; slept += 100) { /* in slices: an unmount may come */
		if (is_cancelled(h))
			return 1;
		sleep_ms(wait - slept < 100 ? (long)(wait - slept) : 100);
	}
	plan_retry(&x->a, &x->t, req, &x->lg);
	return 0;
}

/* Follows a 3xx. Returns 0, or -EIO when there is nowhere (left) to go. */
static int follow(struct exchange *x, const struct http_request *req)
{
	char *next = x->a.location ? resolve_location(x->t.url, x->a.location) : NULL;
	if (!next || ++x->hops > MAX_HOPS) {
		free(next);
		snprintf(x->a.errbuf, sizeof(x->a.errbuf), "too many or broken redirects");
		return -EIO;
	}
	free(x->t.url);
	x->t.url = next;
	/* 303: GET (a HEAD stays a HEAD) */
	x->t.get =
		x->t.get || (x->a.status == 303 && !(req->method && !strcmp(req->method, "HEAD")));
	return 0;
}

/* A resumed range must start where it was asked to, or bytes would be missing. */
static int check_resumed(struct exchange *x)
{
	if (!x->lg.resumed || x->a.status != 206 || x->a.range_start == x->t.range_off)
		return 0;
	snprintf(x->a.errbuf, sizeof(x->a.errbuf),
		 "resumed range starts at %" PRId64 ", not %" PRId64, x->a.range_start,
		 x->t.range_off);
	return -EIO;
}

/* The attempts, hops and retries of one request. Returns as http_do(). */
static int exchange_run(struct exchange *x, struct http *h, const struct http_request *req)
{
	for (;;) {
		x->tries++;
		int err = attempt_run(&x->a, &x->t);
		if (remembered_failed(h, x, err)) {
			if ((err = forget_remembered(x, h, req)))
				return err;
			continue;
		}
		if (err == -EIO || (!err && retryable_status(x->a.status))) {
			if (retry_wait(x, h, req, err))
				return err;
			if ((err = restart(x)))
				return err;
			continue;
		}
		if (err)
			return err;
		if (x->a.status >= 300 && x->a.status < 400 && x->a.status != 304) {
			if ((err = follow(x, req)))
				return err;
			continue;
		}
		/* an expired signed URL: ask the API for a fresh one, once */
		if (x->hops > 0 && (x->a.status == 403 || x->a.status == 400) &&
		    x->signed_retries++ < 1) {
			if ((err = restart(x)))
				return err;
			continue;
		}
		if ((err = check_resumed(x)))
			return err;
		remember(x, h);
		return 0;
	}
}

/* After the last attempt: believes the server down (only when nothing answered at all, never
 * on a cancel), logs the one line, and tells resp why no answer came. */
static void note_outcome(struct http *h, struct exchange *x, const struct http_request *req,
			 int err, struct http_response *resp)
{
	enum http_fail why = err == -EIO ? fail_kind(&x->a) : HTTP_FAIL_NONE;
	if (x->a.status == 0 &&
	    (why == HTTP_FAIL_DNS || why == HTTP_FAIL_REFUSED || why == HTTP_FAIL_TIMEOUT))
		atomic_store(&h->down_until_ms, now_ms() + DOWN_HOLD_MS);
	else if (!err)
		atomic_store(&h->down_until_ms, 0);
	log_outcome(h, req, x->t.url ? x->t.url : x->start, &x->a, err, x->tries);
	note_reason(h, req, x->start, x->t.url, &x->a, err, x->tries);
	resp->fail = why;
	if (why == HTTP_FAIL_NONE)
		return;
	char *clean =
		http_redact(x->a.errbuf[0] ? x->a.errbuf : curl_easy_strerror(x->a.rc), h->token);
	snprintf(resp->error, sizeof(resp->error), "%s", clean ? clean : "");
	free(clean);
}

int http_do(struct http *h, const struct http_request *req, struct http_response *resp)
{
	long budget = req->retry_for_ms > 0 ? req->retry_for_ms : h->retry_for_ms;
	struct exchange x = {
		.a = {.h = h, .req = req, .resp = resp, .deadline_ms = now_ms() + budget},
		.t = {.range_off = req->range_off, .range_len = req->range_len},
	};
	int err = -ENOMEM;

	memset(resp, 0, sizeof(*resp));
	http_response_release(resp);
	log_clear_reason(); /* the reason is the last request's */
	x.start = absolute_url(h, req->url);
	if (!x.start)
		return -ENOMEM;
	if (is_cancelled(h)) {
		log_set_reason("cancelled: the mount is going away");
		resp->fail = HTTP_FAIL_CANCELLED;
		err = -EIO;
		goto out_free_start;
	}
	if (server_down(h, req)) {
		resp->fail = HTTP_FAIL_REFUSED;
		err = -EIO;
		goto out_free_start;
	}
	x.t.url = strdup(x.start);
	if (x.t.url) {
		start_remembered(&x, h, req);
		err = exchange_run(&x, h, req);
	}
	note_outcome(h, &x, req, err, resp);
	if (!err || x.a.status)
		fill_response(h, &x.a, x.start, resp);
	if (!err && x.lg.resumed && x.a.status == 206) {
		resp->status = x.lg.status;
		resp->range_start = x.lg.range_start;
		resp->content_length = x.lg.content_length;
		if (x.lg.range_total >= 0)
			resp->range_total = x.lg.range_total;
	}
	attempt_reset_headers(&x.a);
	free(x.a.buf);
	free(x.t.url);
out_free_start:
	free(x.start);
	return err;
}

/* ---- paging ---- */

/* Link URLs carry the server's configured host: keep their path and query, put our scheme, host
 * and port on them, so the token never follows a Link elsewhere. */
static char *rebase(struct http *h, const char *url)
{
	CURLU *link = curl_url(), *ours = curl_url();
	char *part = NULL, *out = NULL, *copy = NULL;
	static const CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
	if (!link || !ours || curl_url_set(link, CURLUPART_URL, url, 0) ||
	    curl_url_set(ours, CURLUPART_URL, h->base, 0))
		goto out;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		part = NULL;
		curl_url_get(ours, parts[i], &part, 0); /* no port: NULL, which clears it */
		CURLUcode rc = curl_url_set(link, parts[i], part, 0);
		curl_free(part);
		if (rc)
			goto out;
	}
	if (!curl_url_get(link, CURLUPART_URL, &out, 0))
		copy = strdup(out);
out:
	curl_free(out);
	curl_url_cleanup(link);
	curl_url_cleanup(ours);
	return copy;
}

/* req_url with its page parameter set to page. */
static char *with_page(const char *req_url, const char *page)
{
	char *out = NULL;
	const char *q = strchr(req_url, '?');
	const char *p = q ? strstr(q, "page=") : NULL;
	while (p && p[-1] != '?' && p[-1] != '&')
		p = strstr(p + 1, "page=");
	if (!p) {
		if (asprintf(&out, "%s%spage=%s", req_url, q ? "&" : "?", page) < 0)
			return NULL;
		return out;
	}
	const char *end = strchr(p, '&');
	if (asprintf(&out, "%.*spage=%s%s", (int)(p - req_url), req_url, page, end ? end : "") < 0)
		return NULL;
	return out;
}

static void fill_response(struct http *h, struct attempt *a, const char *req_url,
			  struct http_response *r)
{
	r->status = a->status;
	r->content_length = a->content_length;
	r->range_start = a->status == 206 ? a->range_start : -1;
	r->range_total = a->range_total;
	if (a->status == 200 && r->range_total < 0)
		r->range_total = a->content_length;
	if (!a->delivering && a->buf) {
		r->body = a->buf;
		r->body_len = a->len;
		a->buf = NULL;
		a->len = a->cap = 0;
	}
	r->etag = a->etag;
	r->last_modified = a->last_modified;
	a->etag = a->last_modified = NULL;
	if (a->status < 200 || a->status >= 300)
		return;
	char *link = a->link_next ? resolve_location(req_url, a->link_next) : NULL;
	if (link) /* a relative Link is resolved against the request's URL first */
		r->next_url = rebase(h, link);
	free(link);
	if (!r->next_url && a->x_next_page && a->x_next_page[0])
		r->next_url = with_page(req_url, a->x_next_page);
}

/* http: every HTTP exchange, over libcurl (the only libcurl user).
 *
 * One struct http serves all threads: a share handle pools connections, DNS and TLS sessions, and
 * idle easy handles wait in a small pool so their keep-alive connections are reused. curl never
 * follows a redirect itself: this module does, and attaches the credential header only when the
 * target's scheme, host and port are the configured origin's. Each http_do() starts at its API
 * URL, so a signed object-storage URL is never reused after its request.
 *
 * A request is a series of attempts. An attempt that gets no answer, a truncated body, a 429 or
 * a 5xx is retried with exponential backoff (Retry-After or RateLimit-Reset first), resuming a
 * streamed range where the delivered bytes end. Every attempt has connect and low-speed limits,
 * so no call blocks forever. Exactly one log line tells a request's failure. */
#include "artifactfs/http.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "artifactfs/log.h"

#define POOL_MAX 16
#define MAX_HOPS 5
#define ERROR_BODY_MAX (64u * 1024u)
#define DEFAULT_BODY_MAX (64u * 1024u * 1024u)
#define DOWN_HOLD_MS 5000 /* how long "the server cannot be reached" is believed */

struct http {
	char *base;              /* "http://host:port", no trailing slash */
	char *api;               /* base + "/api/v4" */
	char *origin;            /* normalised scheme://host:port of base */
	char *auth_header;       /* "PRIVATE-TOKEN: ..." or NULL; never logged */
	long connect_timeout_ms, low_speed_time_s, attempt_timeout_ms;
	int max_retries;
	long retry_base_ms, max_retry_wait_ms;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;
	CURL *pool[POOL_MAX];    /* protected by pool_lock */
	int n_pool;              /* protected by pool_lock */
	atomic_uint_fast64_t requests, bytes;
	_Atomic int64_t down_until_ms; /* after a request found no server: fail fast until then */
};

/* The state of one attempt: one HTTP exchange with one URL. */
struct attempt {
	struct http *h;
	const struct http_request *req;
	struct http_response *resp;
	CURL *curl;
	long status;             /* of the response whose headers are being read */
	int64_t content_length;
	int64_t range_start, range_end, range_total;
	char *link_next, *x_next_page, *etag, *last_modified;
	char *location;          /* a redirect's resolved target */
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

static bool same_origin(struct http *h, const char *url)
{
	char *o = url_origin(url);
	bool same = o && strcmp(o, h->origin) == 0;
	free(o);
	return same;
}

/* The path of url, for log lines: never the query of a foreign (signed) URL. */
static void loggable(struct http *h, const char *url, char *out, size_t n)
{
	if (strncmp(url, h->base, strlen(h->base)) == 0) {
		snprintf(out, n, "%s", url + strlen(h->base));
		return;
	}
	snprintf(out, n, "%s", url);
	char *q = strchr(out, '?');
	if (q)
		snprintf(q, n - (size_t)(q - out), "?...");
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
	if (!h->origin || asprintf(&h->api, "%s/api/v4", h->base) < 0) {
		h->api = NULL;
		http_free(h);
		return -EINVAL;
	}
	if (cfg->auth != HTTP_AUTH_NONE && cfg->token) {
		const char *name = cfg->auth == HTTP_AUTH_PRIVATE_TOKEN ? "PRIVATE-TOKEN"
				   : cfg->auth == HTTP_AUTH_BEARER      ? "Authorization"
									: "JOB-TOKEN";
		const char *prefix = cfg->auth == HTTP_AUTH_BEARER ? "Bearer " : "";
		if (asprintf(&h->auth_header, "%s: %s%s", name, prefix, cfg->token) < 0) {
			h->auth_header = NULL;
			http_free(h);
			return -ENOMEM;
		}
	}
	h->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 10000;
	h->low_speed_time_s = cfg->low_speed_time_s ? cfg->low_speed_time_s : 30;
	h->attempt_timeout_ms = cfg->attempt_timeout_ms;
	h->max_retries = cfg->max_retries == 0 ? 4 : cfg->max_retries < 0 ? 0 : cfg->max_retries;
	h->retry_base_ms = cfg->retry_base_ms ? cfg->retry_base_ms : 250;
	h->max_retry_wait_ms = cfg->max_retry_wait_ms ? cfg->max_retry_wait_ms : 30000;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&h->share_locks[i], NULL);
	pthread_mutex_init(&h->pool_lock, NULL);
	h->share = curl_share_init();
	if (!h->share) {
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
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&h->share_locks[i]);
	pthread_mutex_destroy(&h->pool_lock);
	if (h->auth_header) {
		memset(h->auth_header, 0, strlen(h->auth_header));
		free(h->auth_header);
	}
	free(h->base);
	free(h->api);
	free(h->origin);
	free(h);
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
	free(a->link_next);
	free(a->x_next_page);
	free(a->etag);
	free(a->last_modified);
	a->link_next = a->x_next_page = a->etag = a->last_modified = NULL;
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
	} else if (header_is(line, n, "retry-after", &v, &vn)) {
		a->retry_after_s = strtol(v, NULL, 10);
	} else if (header_is(line, n, "ratelimit-reset", &v, &vn)) {
		a->ratelimit_reset = strtoll(v, NULL, 10);
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

static size_t on_body(char *data, size_t size, size_t nmemb, void *p)
{
	struct attempt *a = p;
	size_t n = size * nmemb;
	long status = 0;
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 300 && status < 400)
		return n; /* a redirect's body is not wanted */
	if (a->received == 0) {
		a->delivering = a->req->body_fn && (status == 200 || status == 206);
		a->next_off = status == 206 && a->range_start >= 0 ? (uint64_t)a->range_start : 0;
	}
	int err;
	if (a->delivering)
		err = a->req->body_fn(a->req->body_ctx, a->next_off, data, n);
	else
		err = collect(a, data, n,
			      a->req->body_fn || status >= 300 ? ERROR_BODY_MAX
			      : a->req->max_body            ? a->req->max_body
							    : DEFAULT_BODY_MAX);
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
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, h->low_speed_time_s);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->attempt_timeout_ms);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "artifactfs/" ARTIFACTFS_VERSION);
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, a->errbuf);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
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
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
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
	free(a->location);
	a->location = NULL;
	attempt_reset_headers(a);
	set_options(a, t, &hdrs);
	CURLcode rc = curl_easy_perform(a->curl);
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &a->status);
	char *loc = NULL;
	if (curl_easy_getinfo(a->curl, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc)
		a->location = strdup(loc);
	handle_put(a->h, a->curl);
	a->curl = NULL;
	curl_slist_free_all(hdrs);
	atomic_fetch_add(&a->h->requests, 1);
	atomic_fetch_add(&a->h->bytes, a->received);
	bool head = !t->get && a->req->method && strcmp(a->req->method, "HEAD") == 0;
	if (a->sink_err)
		return a->sink_err;
	if (rc != CURLE_OK) {
		if (!a->errbuf[0])
			snprintf(a->errbuf, sizeof(a->errbuf), "%s", curl_easy_strerror(rc));
		return -EIO;
	}
	if (!head && a->status >= 200 && a->status < 300 && a->content_length >= 0 &&
	    a->received < (uint64_t)a->content_length) {
		snprintf(a->errbuf, sizeof(a->errbuf), "body truncated at %" PRIu64 " of %" PRId64,
			 a->received, a->content_length);
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

static long backoff_ms(struct http *h, const struct attempt *a, int retry)
{
	long ms;
	if (a->retry_after_s >= 0) {
		ms = a->retry_after_s * 1000;
	} else if (a->ratelimit_reset > 0) {
		ms = (long)(a->ratelimit_reset - (int64_t)time(NULL)) * 1000;
	} else {
		ms = h->retry_base_ms << (retry < 10 ? retry : 10);
		ms += rand() % (h->retry_base_ms + 1); /* jitter */
	}
	if (ms < 0)
		ms = 0;
	return ms < h->max_retry_wait_ms ? ms : h->max_retry_wait_ms;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static bool retryable_status(long status)
{
	return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

/* After a partial streamed body, the next attempt asks only for what is missing. */
static void resume_target(const struct attempt *a, struct target *t, const struct http_request *req)
{
	if (!a->delivering || a->received == 0)
		return;
	int64_t end; /* one past the last byte wanted */
	if (a->status == 206 && a->range_end >= 0)
		end = a->range_end + 1;
	else if (a->content_length >= 0)
		end = a->content_length; /* a 200: the whole resource */
	else
		return; /* unknown end: start over */
	if (a->status == 200 && req->range_len == 0 && req->range_off == -1)
		return; /* the caller asked for everything; start over, offsets repeat */
	t->range_off = (int64_t)a->next_off;
	t->range_len = end - (int64_t)a->next_off;
}

static void fill_response(struct http *h, struct attempt *a, const char *req_url,
			  struct http_response *r);

static void log_outcome(struct http *h, const struct http_request *req, const char *url,
			const struct attempt *a, int err, int tries)
{
	char where[512];
	loggable(h, url, where, sizeof(where));
	const char *m = req->method ? req->method : "GET";
	if (err)
		log_msg(LOG_ERR, "%s %s: %s (after %d attempts)", m, where,
			a->errbuf[0] ? a->errbuf : strerror(-err), tries);
	else if (a->status == 404 || (a->status >= 200 && a->status < 400))
		log_msg(LOG_DEBUG, "%s %s: %ld", m, where, a->status);
	else
		log_msg(a->status >= 500 || a->status == 429 ? LOG_ERR : LOG_WARNING,
			"%s %s: HTTP %ld%s%.*s", m, where, a->status, a->len ? ": " : "",
			(int)(a->len < 200 ? a->len : 200), a->buf ? a->buf : "");
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* True while a recent request found no server at all: every caller then fails at once instead
 * of each waiting out its own connect timeouts and retries. */
static bool server_down(struct http *h, const struct http_request *req)
{
	if (now_ms() >= atomic_load(&h->down_until_ms))
		return false;
	log_msg(LOG_ERR, "%s %s: the server could not be reached moments ago; not trying again yet",
		req->method ? req->method : "GET", req->url);
	return true;
}

int http_do(struct http *h, const struct http_request *req, struct http_response *resp)
{
	struct attempt a = {.h = h, .req = req, .resp = resp};
	struct target t = {.range_off = req->range_off, .range_len = req->range_len};
	char *start = absolute_url(h, req->url);
	int err = 0, tries = 0, hops = 0, signed_retries = 0;

	memset(resp, 0, sizeof(*resp));
	http_response_release(resp);
	if (!start)
		return -ENOMEM;
	if (server_down(h, req)) {
		free(start);
		return -EIO;
	}
	t.url = strdup(start);
	for (;;) {
		if (!t.url) {
			err = -ENOMEM;
			break;
		}
		tries++;
		err = attempt_run(&a, &t);
		if (err == -EIO || (!err && retryable_status(a.status))) {
			if (tries > h->max_retries)
				break;
			long wait = backoff_ms(h, &a, tries - 1);
			char where[512];
			loggable(h, t.url, where, sizeof(where));
			log_msg(LOG_WARNING, "%s %s: %s; retrying in %ld ms",
				req->method ? req->method : "GET", where,
				err ? (a.errbuf[0] ? a.errbuf : "no answer") : "server busy or failing",
				wait);
			sleep_ms(wait);
			resume_target(&a, &t, req);
			free(t.url);
			t.url = strdup(start); /* ask the API again: signed URLs expire */
			t.get = false;
			hops = 0;
			continue;
		}
		if (err)
			break;
		if (a.status >= 300 && a.status < 400 && a.status != 304) {
			char *next = a.location;
			a.location = NULL;
			if (!next || ++hops > MAX_HOPS) {
				free(next);
				snprintf(a.errbuf, sizeof(a.errbuf), "too many or broken redirects");
				err = -EIO;
				break;
			}
			free(t.url);
			t.url = next;
			t.get = t.get || a.status == 303;
			continue;
		}
		/* an expired signed URL: ask the API for a fresh one, once */
		if (hops > 0 && (a.status == 403 || a.status == 400) && signed_retries++ < 1) {
			free(t.url);
			t.url = strdup(start);
			hops = 0;
			continue;
		}
		break;
	}
	if (err == -EIO && a.status == 0 && a.received == 0)
		atomic_store(&h->down_until_ms, now_ms() + DOWN_HOLD_MS);
	else if (!err)
		atomic_store(&h->down_until_ms, 0);
	log_outcome(h, req, t.url ? t.url : start, &a, err, tries);
	if (!err || a.status)
		fill_response(h, &a, start, resp);
	attempt_reset_headers(&a);
	free(a.location);
	free(a.buf);
	free(t.url);
	free(start);
	return err;
}

/* ---- paging ---- */

/* Link URLs carry the server's configured host: keep their path and query, on our origin. */
static char *rebase(struct http *h, const char *url)
{
	CURLU *u = curl_url();
	char *path = NULL, *query = NULL, *out = NULL;
	if (u && !curl_url_set(u, CURLUPART_URL, url, 0) &&
	    !curl_url_get(u, CURLUPART_PATH, &path, 0)) {
		curl_url_get(u, CURLUPART_QUERY, &query, 0);
		if (asprintf(&out, "%s%s%s%s", h->base, path, query ? "?" : "", query ? query : "") < 0)
			out = NULL;
	}
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return out;
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
	if (a->link_next)
		r->next_url = rebase(h, a->link_next);
	else if (a->x_next_page && a->x_next_page[0])
		r->next_url = with_page(req_url, a->x_next_page);
}

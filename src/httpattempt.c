/* httpattempt: one attempt, one HTTP exchange with one URL over a curl easy handle taken from the
 * client's pool and put back after it. curl never follows a redirect itself (the request does, and
 * decides where the token goes): the attempt sends the credential header only to the configured
 * origin, the Range and If-Range the target asks for, and every limit ends at the request's one
 * deadline (a moving whole-body stream's excepted, bounded by the low-speed limit alone). It reads
 * the answer's headers (lengths, Content-Range, Link, X-Next-Page, ETag, Last-Modified, Location,
 * Accept-Ranges, Retry-After and RateLimit-Reset, each clamped so no header overflows) and its
 * body: to the caller's positional sink from the offset the answer starts at, or collected up to
 * the cap, or (an error's or a redirect's text) kept only at its start; an answer naming another
 * version than the pin stops before one byte reaches the sink. A body shorter than its headers
 * promised fails as truncated; the counters of the client are bumped once per attempt. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "artifactfs/intr.h"
#include "http_i.h"

#define ERROR_BODY_MAX (64u * 1024u)
#define DEFAULT_BODY_MAX (64u * 1024u * 1024u)

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

void http_attempt_reset_headers(struct attempt *a)
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
		http_attempt_reset_headers(a); /* a new response (after a 100 or a redirect) */
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

static size_t on_body(char *data, size_t size, size_t nmemb, void *p)
{
	struct attempt *a = p;
	size_t n = size * nmemb;
	long status = 0;
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 300 && status < 400)
		return n; /* a redirect's body is not wanted */
	if (a->received == 0 && http_etag_changed(a, status)) {
		a->sink_err = -ESTALE; /* another archive now: not one byte of it */
		return 0;
	}
	if (a->received == 0) {
		a->delivering = a->req->body_fn && (status == 200 || status == 206);
		a->next_off = status == 206 && a->range_start >= 0 ? (uint64_t)a->range_start : 0;
	}
	int err;
	if (a->delivering && status == 206 && a->range_end >= 0 &&
	    a->next_off + n > (uint64_t)a->range_end + 1) {
		/* a broken proxy's framing: what runs past the range is nothing the server named */
		snprintf(a->errbuf, sizeof(a->errbuf), "the body runs past its Content-Range");
		a->sink_err = -EIO;
		return 0;
	}
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

/* curl calls this at least once a second, also while nothing arrives: a mount going away or a
 * reader that gave up (intr.h) stops the transfer within that second */
static int on_progress(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	struct attempt *a = p;
	return is_cancelled(a->h) || intr_pending() ? 1 : 0;
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
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, a);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
	/* the credential only ever goes to the configured origin */
	if (h->auth_header && http_same_origin(h, t->url))
		*hdrs = curl_slist_append(*hdrs, h->auth_header);
	if (t->range_off >= 0 && t->range_len > 0) {
		snprintf(range, sizeof(range), "Range: bytes=%" PRId64 "-%" PRId64, t->range_off,
			 t->range_off + t->range_len - 1);
		*hdrs = curl_slist_append(*hdrs, range);
	} else if (t->range_off == -1 && t->range_len > 0) {
		snprintf(range, sizeof(range), "Range: bytes=-%" PRId64, t->range_len);
		*hdrs = curl_slist_append(*hdrs, range);
	}
	a->if_range = http_add_if_range(a->req, t, hdrs);
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

/* Counts the exchange by origin and outcome, for --metrics-file. */
static void count_outcome(struct attempt *a, const struct target *t, CURLcode rc)
{
	if (!http_same_origin(a->h, t->url)) {
		atomic_fetch_add(&a->h->storage_requests, 1);
		atomic_fetch_add(&a->h->storage_bytes, a->received);
	}
	int o = rc != CURLE_OK || a->status < 200 ? HTTP_OUTCOME_NONE
		: a->status < 300                 ? HTTP_OUTCOME_2XX
		: a->status < 400                 ? HTTP_OUTCOME_3XX
		: a->status < 500                 ? HTTP_OUTCOME_4XX
						  : HTTP_OUTCOME_5XX;
	atomic_fetch_add(&a->h->outcomes[o], 1);
}

/* Performs one exchange. Returns 0 with a->status set, or -EIO (no answer, or a truncated body),
 * -EINTR (the reader was interrupted), or the sink's error. The easy handle goes back to the pool before returning. */
int http_attempt_run(struct attempt *a, const struct target *t)
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
	http_attempt_reset_headers(a);
	set_options(a, t, &hdrs);
	CURLcode rc = a->rc = curl_easy_perform(a->curl);
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &a->status);
	handle_put(a->h, a->curl);
	a->curl = NULL;
	curl_slist_free_all(hdrs);
	atomic_fetch_add(&a->h->requests, 1);
	atomic_fetch_add(&a->h->bytes, a->received);
	count_outcome(a, t, rc);
	bool head = !t->get && a->req->method && strcmp(a->req->method, "HEAD") == 0;
	if (a->sink_err)
		return a->sink_err;
	if (rc != CURLE_OK) {
		if (rc == CURLE_ABORTED_BY_CALLBACK && is_cancelled(a->h))
			snprintf(a->errbuf, sizeof(a->errbuf), "stopped: the mount is going away");
		else if (rc == CURLE_ABORTED_BY_CALLBACK && intr_pending())
			return -EINTR;
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

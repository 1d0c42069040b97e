/* http_i.h: what the files of the http module share, and no other module includes: the client
 * (struct http), one attempt's state (struct attempt) and the URL and range it is sent to (struct
 * target), and the functions that cross between the files. Calls go one way:
 *   http.c (a whole request) -> httpattempt.c (one attempt) -> httppin.c (the archive pin)
 *   http.c -> httpresponse.c (the answer handed back, its next page)
 *   httpclient.c (set-up), httpattempt.c, httpresponse.c, http.c -> httpurl.c (origins, redaction)
 * httpurl.c and httppin.c call no other file of the module. Every file here may call libcurl: the
 * module is the only libcurl user, however many files it has. */
#ifndef ARTIFACTFS_HTTP_I_H
#define ARTIFACTFS_HTTP_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <curl/curl.h>

#include "artifactfs/http.h"

#define POOL_MAX 16
#define WAIT_CAP_S 86400 /* any server-asked wait is clamped to this before arithmetic */

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
	atomic_uint_fast64_t storage_requests, storage_bytes; /* of those, to another origin */
	atomic_uint_fast64_t outcomes[HTTP_OUTCOMES];
	_Atomic int64_t down_until_ms; /* after a request found no server: fail fast until then */
	struct urlcache *signed_urls;  /* API URL -> the storage URL it last redirected to */
	bool (*cancelled)(void *ctx);
	void *cancel_ctx;
};

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
	bool if_range;           /* this attempt sent If-Range (with its Range) */
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

struct target {
	char *url;
	int64_t range_off, range_len; /* as in http_request; for this attempt */
	bool get;                     /* a 303 turned the method into GET */
};

static inline bool is_cancelled(const struct http *h)
{
	return h->cancelled && h->cancelled(h->cancel_ctx);
}

static inline int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* httpurl.c. Origin: malloc'ed "scheme://host:port" in lower case, default port filled in; NULL
 * when url is not absolute or on ENOMEM. Location: malloc'ed absolute http(s) URL resolved
 * against from; NULL when it is not http(s) or on ENOMEM. same_origin: url's origin is h's. */
char *http_url_origin(const char *url);
char *http_resolve_location(const char *from, const char *location);
bool http_same_origin(struct http *h, const char *url);

/* httppin.c. etag_changed: a 200/206 answer names another version than a->req pins (its
 * ETag, date or size, or a 200 to If-Range). add_if_range: appends If-Range to *hdrs when t has
 * a Range and the pin allows one; returns whether it did. */
bool http_etag_changed(const struct attempt *a, long status);
bool http_add_if_range(const struct http_request *req, const struct target *t,
		       struct curl_slist **hdrs);

/* httpattempt.c. reset_headers: forgets what the last answer's headers said (frees them).
 * attempt_run: one exchange with t; 0 with a->status set, -EIO (no answer, truncated body; why
 * in a->rc and a->errbuf), -EINTR (the calling thread's request was interrupted, intr.h),
 * -ENOMEM, or the sink's error. */
void http_attempt_reset_headers(struct attempt *a);
int http_attempt_run(struct attempt *a, const struct target *t);

/* httpresponse.c. Moves the final attempt's answer into r (body, ETag, Last-Modified leave a)
 * and sets r->next_url for a 2xx that has a next page; req_url is the absolute URL asked for. */
void http_fill_response(struct http *h, struct attempt *a, const char *req_url,
			struct http_response *r);

#endif

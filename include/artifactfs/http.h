/* http: every HTTP exchange of artifactfs, over libcurl (the only libcurl user).
 *
 * One struct http per mount, shared by all threads: it owns a curl share handle (connections, DNS,
 * TLS sessions) and a pool of easy handles, so connections are reused across threads. Redirects are
 * followed by this module, never by curl, so the token goes only to the configured origin (scheme,
 * host, port); a redirect elsewhere (object storage, CDN) is followed with no auth header at all.
 * A request marked reuse_signed_url (an archive's Range read) goes straight to the signed
 * storage URL its API URL last redirected to while that URL is valid (its stated expiry, at most
 * 5 minutes, else 60 s; 64 remembered), and back to the API at once when storage refuses it.
 * 429, 5xx, resets, timeouts and truncated bodies are retried with backoff (Retry-After and
 * RateLimit-Reset honoured however long) until the request's one deadline, the retry_for budget.
 * A request made for a reader that is interrupted (intr.h) stops within a second, transfer or
 * wait, and fails with -EINTR.
 * Thread-safe. Retries and outcomes are logged at DEBUG; a failed request leaves its text (the
 * call and the status or curl's error) as the thread's failure reason (log_set_reason) for the
 * operation's one error line, and an answer that is no failure clears it. The token never
 * appears in a log line, a reason or an error text: anything logged from an answer (an error
 * body's excerpt, a Location) has it replaced by "[REDACTED]"; a signed URL is shown as its host
 * and path, never its query. */
#ifndef ARTIFACTFS_HTTP_H
#define ARTIFACTFS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http;

enum http_auth {
	HTTP_AUTH_NONE,
	HTTP_AUTH_PRIVATE_TOKEN, /* PRIVATE-TOKEN: <token> */
	HTTP_AUTH_BEARER,        /* Authorization: Bearer <token> */
	HTTP_AUTH_JOB_TOKEN,     /* JOB-TOKEN: <token> */
};

struct http_config {
	const char *base_url; /* "http(s)://host[:port]", no trailing slash; copied */
	enum http_auth auth;
	const char *token;       /* copied; NULL with HTTP_AUTH_NONE */
	long connect_timeout_ms; /* 0: 10000 */
	long low_speed_time_s;   /* abort an attempt moving < 1 KiB/s for this long; 0: 30 */
	long attempt_timeout_ms; /* total time of one attempt; 0: 4 low-speed periods plus a
	                              ranged body's length at 32 KiB/s (a whole body: none) */
	int max_retries;         /* 0: as many as the budget allows; -1: none; N: at most N */
	long retry_base_ms;      /* backoff base, doubled each retry, jittered; 0: 250 */
	long max_retry_wait_ms;  /* cap on one backoff wait without Retry-After/RateLimit-Reset
	                              (a bare 429, a 5xx, no answer); 0: 15000 */
	long retry_for_s;        /* the budget: one deadline per request, this long after it
	                              starts. Retries, waits (a Retry-After of any length) and each
	                              attempt's timeout all end there; a wait the server asks for
	                              that ends past it fails the request at once. 0: 120. A
	                              whole-body stream (no Range, body_fn set) that is moving is
	                              not cut at the deadline: only its retries are. */
	const char *ca_file;     /* PEM file of extra trusted CAs (a private CA), used IN ADDITION
	                              to the system store: libcurl's default bundle and this file
	                              are handed to curl together as one CAINFO blob. Read once in
	                              http_new(). NULL or "": the system store only. */
};

/* Creates the shared client. Returns 0 or -ENOMEM / -EINVAL (bad base_url) / -errno of reading
 * ca_file (-ENOENT, -EACCES, -EBADMSG when it holds no PEM certificate, -EISDIR for a folder,
 * -ENXIO for a FIFO, socket or device: only a regular file is read, never waited on). Free with
 * http_free(). */
int http_new(const struct http_config *cfg, struct http **out);
void http_free(struct http *h); /* NULL is a no-op */

/* Gives the client a question it asks while transfers run and before each retry: once it
 * answers true (the mount is going away), every transfer stops and every request fails with
 * -EIO at once, instead of waiting out timeouts and retries. Set it before other threads use h. */
void http_set_cancel(struct http *h, bool (*cancelled)(void *ctx), void *ctx);

/* Receives body bytes. off is the byte's offset in the whole resource (the Range start on a 206,
 * 0 on a 200), so a retry that resumes or restarts delivers the same offsets again: sinks must be
 * positional and idempotent. Return 0 to go on, -errno to abort the request with that error. */
typedef int (*http_body_fn)(void *ctx, uint64_t off, const void *buf, size_t len);

struct http_request {
	const char *method;   /* NULL: "GET"; also "POST", "DELETE", "HEAD" */
	const char *url;      /* starting with '/': base_url + "/api/v4" + url; else absolute */
	int64_t range_off;    /* >= 0: Range bytes=off-(off+len-1); -1: suffix bytes=-len; */
	int64_t range_len;    /* 0 with range_off -1: no Range header */
	http_body_fn body_fn; /* NULL: the body is collected into resp->body */
	void *body_ctx;
	size_t max_body;         /* cap on a collected body; 0: 64 MiB; over it: -EFBIG */
	long retry_for_ms;       /* > 0: this request's budget instead of the client's (start-up
	                           checks use a short one); 0: the client's retry_for_s */
	const char *expect_etag; /* the ETag the resource must still have (an open file pinned to
	                           one archive): sent as If-Range with a Range when strong, and an
	                           answer (200/206) carrying another ETag fails with -ESTALE before
	                           any byte reaches body_fn. A weak tag (most GitLab servers send
	                           one constant W/"..." on every download) or an absent one
	                           identifies nothing: equal weak tags prove no sameness, and the
	                           pin then rests on the date and the size. NULL: none */
	const char *expect_last_modified; /* the same pin by Last-Modified, for servers without a
	                           strong ETag (Workhorse serves local archives with Go's
	                           http.ServeContent: Last-Modified and If-Range by date, no
	                           ETag): used when expect_etag is NULL or weak. NULL: none */
	int64_t expect_size;   /* > 0: the resource's size, part of the pin: an answer whose
	                           Content-Range total (a 200's length) differs fails with -ESTALE
	                           before any byte reaches body_fn. A 200 to a Range sent with
	                           If-Range is another version too (-ESTALE), unless it carries the
	                           pinned strong ETag (a server ignoring Range). 0: none */
	bool reuse_signed_url; /* a GET whose answer is the same bytes at the same signed URL for
	                           that URL's life (an archive that never changes, or one pinned by
	                           expect_etag/expect_last_modified): may start at the URL the same
	                           request last redirected to. false: always asks the API. */
};

/* Why no answer arrived (http_response.fail), for a start-up message naming the real cause. */
enum http_fail {
	HTTP_FAIL_NONE,      /* an answer arrived, or the sink/memory failed */
	HTTP_FAIL_DNS,       /* the host name does not resolve */
	HTTP_FAIL_REFUSED,   /* nothing listens there (connection refused or unreachable) */
	HTTP_FAIL_TIMEOUT,   /* connecting or the transfer timed out */
	HTTP_FAIL_TLS,       /* TLS failed: the certificate is not trusted, expired, wrong name */
	HTTP_FAIL_CANCELLED, /* the mount is going away (http_set_cancel) */
	HTTP_FAIL_OTHER,     /* a reset, a truncated body, a broken redirect... */
};

struct http_response {
	long status; /* final status, after redirects */
	char *body;  /* collected body, NUL-terminated; owned, NULL when streamed */
	size_t body_len;
	int64_t content_length; /* -1: unknown (chunked) */
	int64_t range_start;    /* from Content-Range on 206, else -1 */
	int64_t range_total;    /* complete length from Content-Range (206 or 416), or the
	                            Content-Length of a 200; -1 unknown */
	char *next_url;         /* next page: Link rel="next" rewritten onto base_url, or the same
	                            URL with page=X-Next-Page; NULL on the last page. Owned. */
	char *etag;             /* owned, may be NULL */
	char *last_modified;    /* owned, may be NULL */
	enum http_fail fail;    /* when http_do() returned -EIO with no answer: why */
	char error[256];        /* curl's text for that failure (token redacted), else "" */
};

/* Performs req. Returns 0 when an HTTP answer arrived (any status, including 4xx and a 5xx or
 * 429 left after the retries; map it with http_status_to_errno()), or -errno when none did:
 * -EIO (unreachable, reset, timed out, truncated after the retries), -ENOMEM, -EFBIG, -ESTALE
 * (expect_etag did not match), -EINTR (the calling thread's request was interrupted, intr.h:
 * nothing is retried), or the error a body_fn returned. A streamed body is complete
 * when 0 is returned with a 2xx status.
 * resp is always initialised; release it with http_response_release() in every case. */
int http_do(struct http *h, const struct http_request *req, struct http_response *resp);
void http_response_release(struct http_response *resp);

/* The errno doc/SPEC.md gives a status: 2xx/3xx 0, 404/410 -ENOENT, 401/403 -EACCES, 409 -EBUSY,
 * 416 -ERANGE (internal), 400 -EINVAL, 429 and 5xx -EIO, anything else -EIO. */
int http_status_to_errno(long status);

/* Percent-encodes one path segment or query value (RFC 3986 unreserved kept; '/' becomes %2F).
 * Returns a malloc'ed string or NULL on ENOMEM. */
char *http_escape(const char *s);

/* A malloc'ed copy of text with every occurrence of secret replaced by "[REDACTED]" (secret
 * NULL or empty: a plain copy). NULL on ENOMEM. Pure; used on every logged answer text. */
char *http_redact(const char *text, const char *secret);

/* The kind of credential the client sends (http_config.auth). */
enum http_auth http_auth_kind(const struct http *h);

/* Counters for the stats file: requests made, bytes of body received. Thread-safe. */
void http_stats(struct http *h, uint64_t *requests, uint64_t *bytes);

/* What each exchange (an attempt, a redirect hop) ended with: its status class, or no answer. */
enum http_outcome {
	HTTP_OUTCOME_2XX,
	HTTP_OUTCOME_3XX,
	HTTP_OUTCOME_4XX,
	HTTP_OUTCOME_5XX,
	HTTP_OUTCOME_NONE, /* no answer (connection, timeout, truncated, stopped) */
	HTTP_OUTCOMES
};
/* The counters split by origin (the server's own; another one, the object storage a redirect
 * or a remembered signed URL led to) and by outcome, for --metrics-file. Thread-safe. */
struct http_counters {
	uint64_t server_requests, server_bytes;   /* the GitLab origin */
	uint64_t storage_requests, storage_bytes; /* any other origin */
	uint64_t outcomes[HTTP_OUTCOMES];
};
void http_get_counters(struct http *h, struct http_counters *out);

#endif

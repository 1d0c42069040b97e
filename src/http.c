/* http: every HTTP exchange of artifactfs, over libcurl (the module is the only libcurl user; its
 * files share src/http_i.h). This file is a whole request, http_do(): a series of attempts and
 * redirect hops under one deadline (the retry_for budget). A redirect is followed here, never by
 * curl, and the attempt attaches the credential only when the target's scheme, host and port are
 * the configured origin's. A request that allows it (reuse_signed_url: archive reads) starts at
 * the signed storage URL its API URL last redirected to while that URL is valid (urlcache: its
 * stated expiry, at most 5 minutes), and goes back to the API at once when storage refuses it or
 * fails; others start at their API URL. An attempt that gets no answer, a truncated body, a 429
 * or a 5xx is retried: after the wait Retry-After or RateLimit-Reset asks for (clamped to a day
 * before any arithmetic, so no header overflows), else after an exponential backoff, resuming a
 * streamed range where the delivered bytes end. No attempt or wait runs past the deadline, so
 * retries never multiply the per-attempt limits, and after a request that found no server at all
 * the next ones fail at once for a few seconds. Retries and outcomes are logged at DEBUG only: a
 * failure's text goes to the thread's failure reason (log_set_reason), for the one error line
 * the operation writes. Every line built from an answer's text goes through redaction of the
 * token, and a URL of another origin (a signed one) is shown as its host and path only, never
 * its query. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "artifactfs/intr.h"
#include "artifactfs/log.h"
#include "artifactfs/urlcache.h"
#include "http_i.h"

#define MAX_HOPS 5
#define DOWN_HOLD_MS 5000 /* how long "the server cannot be reached" is believed */
#define INTERRUPTED "stopped: its reader was interrupted"

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

static char *absolute_url(struct http *h, const char *url)
{
	char *out = NULL;
	if (url[0] == '/')
		return asprintf(&out, "%s%s", h->api, url) < 0 ? NULL : out;
	return strdup(url);
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
	if (err == -EINTR) {
		hlog(h, LOG_INFO, "%s %s: %s (after %d attempts)", m, where, INTERRUPTED, tries);
		return;
	}
	if (err && (is_cancelled(h) || fail_kind(a) == HTTP_FAIL_CANCELLED)) {
		hlog(h, LOG_INFO, "%s %s: cancelled: the mount is going away", m, where);
		return;
	}
	if (err) {
		hlog(h, LOG_DEBUG, "%s %s: %s (after %d attempts)", m, where,
		     a->errbuf[0] ? a->errbuf : strerror(-err), tries);
		return;
	}
	if (a->status >= 400 && http_same_origin(h, url))
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
	if (url && !http_same_origin(h, url)) {
		snprintf(via, sizeof(via), " (sent on to ");
		loggable(h, url, via + strlen(via), sizeof(via) - strlen(via) - 1);
		strcat(via, ")");
	}
	if (err == -EINTR)
		snprintf(what, sizeof(what), INTERRUPTED);
	else if (err && (is_cancelled(h) || fail_kind(a) == HTTP_FAIL_CANCELLED))
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
	if (!err && (a->status == 401 || a->status == 403))
		log_set_reason_refused(); /* a failure to log at ERROR, though EACCES is an answer */
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
	    http_same_origin(h, x->t.url))
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
	/* an untrusted certificate stays untrusted; a cancelled mount or reader wants no more */
	if (x->tries > h->max_retries || is_cancelled(h) || intr_pending() ||
	    why == HTTP_FAIL_CANCELLED || x->a.rc == CURLE_PEER_FAILED_VERIFICATION)
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
	/* in slices: an unmount or the reader's interrupt may come */
	for (int64_t slept = 0; slept < wait; slept += 100) {
		if (is_cancelled(h) || intr_pending())
			return 1;
		sleep_ms(wait - slept < 100 ? (long)(wait - slept) : 100);
	}
	plan_retry(&x->a, &x->t, req, &x->lg);
	return 0;
}

/* Follows a 3xx. Returns 0, or -EIO when there is nowhere (left) to go. */
static int follow(struct exchange *x, const struct http_request *req)
{
	char *next = x->a.location ? http_resolve_location(x->t.url, x->a.location) : NULL;
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
		if (intr_pending()) /* before each hop and retry as well as during them */
			return -EINTR;
		x->tries++;
		int err = http_attempt_run(&x->a, &x->t);
		if (err == -EINTR)
			return err;
		if (remembered_failed(h, x, err)) {
			if ((err = forget_remembered(x, h, req)))
				return err;
			continue;
		}
		if (err == -EIO || (!err && retryable_status(x->a.status))) {
			if (retry_wait(x, h, req, err))
				return intr_pending() ? -EINTR : err;
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
		http_fill_response(h, &x.a, x.start, resp);
	if (!err && x.lg.resumed && x.a.status == 206) {
		resp->status = x.lg.status;
		resp->range_start = x.lg.range_start;
		resp->content_length = x.lg.content_length;
		if (x.lg.range_total >= 0)
			resp->range_total = x.lg.range_total;
	}
	http_attempt_reset_headers(&x.a);
	free(x.a.buf);
	free(x.t.url);
out_free_start:
	free(x.start);
	return err;
}

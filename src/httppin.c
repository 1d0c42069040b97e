/* httppin: the archive pin of one request (http_request.expect_etag, expect_last_modified,
 * expect_size), which keeps an open file reading one version of an archive. Out, If-Range goes
 * with a Range only: the strong ETag, else the pinned Last-Modified date (never a weak ETag, RFC
 * 9110 13.1.5), and never a value with CR/LF in it; If-None-Match never goes out (GitLab answers a
 * false 304 to its constant weak tag, doc/GITLAB-API.md). In, an answer (200/206) is another
 * version than the pin when its size differs from the pinned size, when its ETag differs from the
 * pinned one, when it is a 200 to a Range sent with If-Range (the validator failed, or Range was
 * ignored: the bytes are not known to be the pinned archive's) unless it carries the pinned
 * strong ETag, or when its Last-Modified differs from a pinned date. Equal weak ETags prove
 * nothing: most GitLab servers send one constant weak tag on every download. Pure; calls no
 * other file of the module. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "http_i.h"

static bool strong_etag(const char *e)
{
	return e && e[0] == '"';
}

/* The answer names another resource version than the caller pinned (see the file's comment). */
bool http_etag_changed(const struct attempt *a, long status)
{
	const struct http_request *r = a->req;
	if (status != 200 && status != 206)
		return false;
	int64_t total = status == 206 ? a->range_total : a->content_length;
	if (r->expect_size > 0 && total >= 0 && total != r->expect_size)
		return true;
	if (r->expect_etag && a->etag && strcmp(a->etag, r->expect_etag) != 0)
		return true;
	if (strong_etag(r->expect_etag) && strong_etag(a->etag))
		return false; /* the same strong tag: the same bytes */
	if (status == 200 && a->if_range)
		return true;
	if (r->expect_last_modified && a->last_modified)
		return strcmp(a->last_modified, r->expect_last_modified) != 0;
	return false;
}

/* If-Range only with a Range: a strong ETag, else the pinned Last-Modified date (a weak ETag
 * may not be used there, RFC 9110 13.1.5). Nothing with CR/LF goes out (no header injection).
 * Returns whether it was sent. */
bool http_add_if_range(const struct http_request *req, const struct target *t,
		       struct curl_slist **hdrs)
{
	char line[300];
	const char *e =
		strong_etag(req->expect_etag) ? req->expect_etag : req->expect_last_modified;
	if (!e || t->range_len <= 0 || strlen(e) > 256 || strpbrk(e, "\r\n"))
		return false;
	snprintf(line, sizeof(line), "If-Range: %s", e);
	struct curl_slist *more = curl_slist_append(*hdrs, line);
	if (!more)
		return false;
	*hdrs = more;
	return true;
}

/* httppin: the archive pin of one request (http_request.expect_etag / expect_last_modified), which
 * keeps an open file reading one version of an archive. Out, If-Range goes with a Range only: the
 * strong ETag, else the pinned Last-Modified date (never a weak ETag, RFC 9110 13.1.5), and never a
 * value with CR/LF in it. In, an answer (200/206) naming another version than the pin, by ETag when
 * both sides have one, else by Last-Modified when the pin is by date, is a changed archive; an
 * answer without the validator is not checked. Pure; calls no other file of the module. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "http_i.h"

static bool strong_etag(const char *e)
{
	return e && e[0] == '"';
}

/* The answer names another resource version than the caller pinned: by ETag when both sides
 * have one, else by Last-Modified when the pin is by date. */
bool http_etag_changed(const struct attempt *a, long status)
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

/* If-Range only with a Range: a strong ETag, else the pinned Last-Modified date (a weak ETag
 * may not be used there, RFC 9110 13.1.5). Nothing with CR/LF goes out (no header injection). */
void http_add_if_range(const struct http_request *req, const struct target *t,
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

/* httpresponse: the answer http_do() hands back. The final attempt's status, lengths, Content-Range
 * and validators move into struct http_response (the collected body too, unless it was streamed),
 * and a 2xx's next page is found: a Link rel="next", resolved against the request's URL and then
 * given the configured scheme, host and port (a Link names the server's own idea of its host, and
 * the token must not follow it there), else the request's URL with page=X-Next-Page. Also the
 * response's release and the one status -> errno switch of doc/SPEC.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "http_i.h"

void http_response_release(struct http_response *r)
{
	free(r->body);
	free(r->next_url);
	free(r->etag);
	free(r->last_modified);
	memset(r, 0, sizeof(*r));
	r->content_length = r->range_start = r->range_total = -1;
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

void http_fill_response(struct http *h, struct attempt *a, const char *req_url,
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
	char *link = a->link_next ? http_resolve_location(req_url, a->link_next) : NULL;
	if (link) /* a relative Link is resolved against the request's URL first */
		r->next_url = rebase(h, link);
	free(link);
	if (!r->next_url && a->x_next_page && a->x_next_page[0])
		r->next_url = with_page(req_url, a->x_next_page);
}

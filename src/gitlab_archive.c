/* gitlab_archive: the bytes of a job's artifacts archive, read by Range from the API's archive
 * endpoints (by job id, or by ref and job name) and delivered through the caller's
 * http_body_fn, never as JSON. Invariants: a 206 whose Content-Range starts elsewhere than asked
 * and any answer that is not 200 or 206 fail the read (-EIO) with the reason set for the
 * operation's one error line; a read pinned to an ETag, a Last-Modified date or a size never
 * delivers bytes of another archive (-ESTALE); only a read of the very archive wanted may skip the API
 * for the signed storage URL it last redirected to. Thread-safe as the http client is. */
#include "artifactfs/gitlab.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/log.h"

#include "gitlab_i.h"

static char *archive_url(const struct gl_archive *a)
{
	char *id = http_escape(a->project), *url = NULL, *ref = NULL, *name = NULL;
	int r = -1;
	if (id && a->job_id > 0)
		r = asprintf(&url, "/projects/%s/jobs/%" PRId64 "/artifacts", id, a->job_id);
	else if (id && (ref = http_escape(a->ref)) && (name = http_escape(a->job_name)))
		r = asprintf(&url, "/projects/%s/jobs/artifacts/%s/download?job=%s", id, ref, name);
	free(name);
	free(ref);
	free(id);
	return r < 0 ? NULL : url;
}

/* Where a 206 must start: off, or for a suffix the last len bytes of total. */
static bool range_start_ok(const struct http_response *resp, int64_t off, int64_t len)
{
	if (off >= 0)
		return resp->range_start == off;
	if (resp->range_total < 0)
		return resp->range_start >= 0;
	return resp->range_start == (resp->range_total > len ? resp->range_total - len : 0);
}

/* The errno of an answer to an archive read; the error text names the problem. */
static int archive_answer(const struct http_response *resp, int64_t off, int64_t len,
			  const char **why)
{
	int err = http_status_to_errno(resp->status);
	*why = NULL;
	if (err)
		return err;
	if (resp->status != 200 && resp->status != 206) {
		*why = "no archive bytes in the answer";
		return -EIO;
	}
	if (resp->status == 206 && !range_start_ok(resp, off, len)) {
		*why = "Content-Range starts elsewhere than asked";
		return -EIO;
	}
	return 0;
}

/* A failed read at DEBUG: the call, the bytes, the status and what was wrong with it (or the
 * error when no status tells it: a 2xx whose bytes could not be stored). What this module saw
 * wrong with an answer becomes the thread's failure reason; a failed request's is http's. */
static void log_archive_failure(const char *url, int64_t off, int64_t len,
				const struct http_response *resp, const char *why, int err)
{
	const char *text = why ? why : resp->status >= 300 ? "" : strerror(-err);
	log_msg(LOG_DEBUG,
		"archive read GET /api/v4%s (bytes %" PRId64 "+%" PRId64 "): HTTP %ld%s%s", url,
		off, len, resp->status, text[0] ? ", " : "", text);
	if (why)
		log_set_reason("GET /api/v4%s: HTTP %ld, %s", url, resp->status, why);
}

/* Whether a read may go straight to the signed URL its API URL last redirected to: only when
 * that URL serves the very archive wanted (by job id: an archive is never replaced; by ref: only
 * pinned, where If-Range refuses another archive). A suffix read (off -1) is a probe of what the
 * archive is now (after the TTL, whether it still exists), and always asks the API. */
static bool reuse_ok(const struct gl_archive *a, int64_t off, const struct gl_read_info *info)
{
	return off >= 0 && (a->job_id > 0 || info->expect_etag || info->expect_last_modified);
}

int gitlab_archive_read_pinned(struct gitlab *gl, const struct gl_archive *a, int64_t off,
			       int64_t len, http_body_fn fn, void *ctx, struct gl_read_info *info)
{
	char *url = archive_url(a);
	const char *why = NULL;
	info->total = -1;
	info->whole = false;
	info->etag[0] = '\0';
	if (!url)
		return -ENOMEM;
	struct http_request req = {.url = url,
				   .range_off = off,
				   .range_len = len,
				   .body_fn = fn,
				   .body_ctx = ctx,
				   .expect_etag = info->expect_etag,
				   .expect_last_modified = info->expect_last_modified,
				   .expect_size = info->expect_size,
				   .reuse_signed_url = reuse_ok(a, off, info)};
	struct http_response resp;
	int err = http_do(gl->http, &req, &resp);
	if (!err)
		err = archive_answer(&resp, off, len, &why);
	if (err == -ESTALE)
		why = "the ref now names another archive (its ETag, date or size changed)";
	if (err && err != -ENOMEM)
		log_archive_failure(url, off, len, &resp, why, err);
	info->total = resp.range_total;
	info->whole = resp.status == 200;
	snprintf(info->etag, sizeof(info->etag), "%s", resp.etag ? resp.etag : "");
	snprintf(info->last_modified, sizeof(info->last_modified), "%s",
		 resp.last_modified ? resp.last_modified : "");
	http_response_release(&resp);
	free(url);
	return err;
}

int gitlab_archive_read(struct gitlab *gl, const struct gl_archive *a, int64_t off, int64_t len,
			http_body_fn fn, void *ctx, int64_t *total, bool *whole)
{
	struct gl_read_info info = {0};
	int err = gitlab_archive_read_pinned(gl, a, off, len, fn, ctx, &info);
	if (total)
		*total = info.total;
	if (whole)
		*whole = info.whole;
	return err;
}

/* gitlab: the REST v4 calls artifactfs makes, and JSON turned into our structs at once (the only
 * jansson user: every root is json_decref'ed before returning). Listings follow the next-page
 * URL http gives (Link rel=next rewritten onto our origin, or X-Next-Page), never X-Total.
 * A field of the wrong type counts as absent when optional and fails the parse (-EIO) when
 * required (id, name). Failures are told as http tells them: details at DEBUG, and the text
 * that says why (a malformed answer) set as the thread's failure reason (log_set_reason), for
 * the operation's one error line. Which requests a ref, a pipeline or a commit takes is decided
 * here; what their answers mean (which pipelines and jobs they stand for) is refrules.c's, given
 * our structs, never JSON. The archive's bytes are gitlab_archive.c's, the structs' lifecycle
 * gitlab_structs.c's; neither calls back here. */
#include "artifactfs/gitlab.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "artifactfs/log.h"

#include "gitlab_i.h"
#include "refrules.h"

#define PAGE_LIMIT 10000     /* pages followed at most: a server that never ends is broken */
#define PIPELINE_PAGES 5     /* pages of a ref's pipelines searched for a non-dangling one */
#define CHECK_BUDGET_MS 8000 /* start-up checks: a short retry budget */

/* A 404 from a route that ignores a job token is no answer: -EACCES, "cannot tell". */
static int tell(const struct gitlab *gl, int err)
{
	return gl->job_token && err == -ENOENT ? -EACCES : err;
}

int gitlab_new(struct http *http, struct gitlab **out)
{
	struct gitlab *gl = calloc(1, sizeof(*gl));
	if (!gl)
		return -ENOMEM;
	gl->http = http;
	gl->job_token = http_auth_kind(http) == HTTP_AUTH_JOB_TOKEN;
	*out = gl;
	return 0;
}

void gitlab_free(struct gitlab *gl)
{
	free(gl);
}

/* ---- JSON helpers ---- */

/* A copy of an optional string field; NULL when absent, null or not a string. */
static char *opt_str(json_t *obj, const char *key, int *err)
{
	json_t *v = json_object_get(obj, key);
	if (!json_is_string(v))
		return NULL;
	char *s = strdup(json_string_value(v));
	if (!s)
		*err = -ENOMEM;
	return s;
}

static int64_t opt_int(json_t *obj, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(obj, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

/* GitLab's Ci::JobArtifact::DOWNLOADABLE_TYPES are the archive and the reports: everything but
 * the metadata and the trace (app/models/ci/job_artifact.rb). */
static bool has_downloadable(json_t *job)
{
	json_t *arts = json_object_get(job, "artifacts"), *a;
	size_t i;
	json_array_foreach(arts, i, a)
	{
		json_t *type = json_object_get(a, "file_type");
		const char *t = json_is_string(type) ? json_string_value(type) : "";
		if (t[0] && strcmp(t, "metadata") != 0 && strcmp(t, "trace") != 0)
			return true;
	}
	return json_is_object(json_object_get(job, "artifacts_file"));
}

/* The archive's size: artifacts[] entry of file_type "archive", else artifacts_file.size. */
static int64_t archive_size(json_t *job)
{
	json_t *arts = json_object_get(job, "artifacts"), *a;
	size_t i;
	json_array_foreach(arts, i, a)
	{
		json_t *type = json_object_get(a, "file_type");
		int64_t size = opt_int(a, "size", -1);
		if (json_is_string(type) && strcmp(json_string_value(type), "archive") == 0 &&
		    size >= 0)
			return size;
	}
	json_t *file = json_object_get(job, "artifacts_file");
	return json_is_object(file) ? opt_int(file, "size", -1) : -1;
}

static int job_from_json(json_t *o, struct gl_job *j)
{
	int err = 0;
	memset(j, 0, sizeof(*j));
	json_t *id = json_object_get(o, "id");
	if (!json_is_object(o) || !json_is_integer(id) ||
	    !json_is_string(json_object_get(o, "name")))
		return -EIO;
	j->id = (int64_t)json_integer_value(id);
	j->name = opt_str(o, "name", &err);
	j->status = opt_str(o, "status", &err);
	j->ref = opt_str(o, "ref", &err);
	j->web_url = opt_str(o, "web_url", &err);
	j->created_at = opt_str(o, "created_at", &err);
	j->finished_at = opt_str(o, "finished_at", &err);
	j->artifacts_expire_at = opt_str(o, "artifacts_expire_at", &err);
	json_t *commit = json_object_get(o, "commit"), *pipeline = json_object_get(o, "pipeline");
	if (json_is_object(commit))
		j->sha = opt_str(commit, "id", &err);
	if (json_is_object(pipeline))
		j->pipeline_id = opt_int(pipeline, "id", 0);
	j->project_id = json_is_object(pipeline) ? opt_int(pipeline, "project_id", 0) : 0;
	if (!j->project_id)
		j->project_id = opt_int(o, "project_id", 0);
	j->archive_size = archive_size(o);
	j->downloadable = j->archive_size >= 0 || has_downloadable(o);
	j->erased = json_is_string(json_object_get(o, "erased_at"));
	if (err)
		gl_job_release(j);
	return err;
}

static json_t *parse(const char *text, size_t len, const char *what)
{
	json_error_t e;
	json_t *root = json_loadb(text ? text : "", text ? len : 0, JSON_REJECT_DUPLICATES, &e);
	if (!root) {
		log_msg(LOG_DEBUG, "%s: malformed JSON from the server: %s", what, e.text);
		log_set_reason("%s: malformed JSON from the server: %s", what, e.text);
	}
	return root;
}

int gitlab_parse_job(const char *json, size_t len, struct gl_job *out)
{
	json_t *root = parse(json, len, "job");
	if (!root)
		return -EIO;
	int err = job_from_json(root, out);
	json_decref(root);
	return err;
}

static int project_from_json(json_t *o, struct gl_project *p)
{
	int err = 0;
	memset(p, 0, sizeof(*p));
	if (!json_is_object(o) || !json_is_integer(json_object_get(o, "id")))
		return -EIO;
	p->id = opt_int(o, "id", 0);
	p->path_with_namespace = opt_str(o, "path_with_namespace", &err);
	p->default_branch = opt_str(o, "default_branch", &err);
	p->web_url = opt_str(o, "web_url", &err);
	if (!err && !p->path_with_namespace)
		err = -EIO;
	if (err)
		gl_project_release(p);
	return err;
}

/* ---- requests ---- */

/* GET (or method) url; on a 2xx *root gets the parsed body. */
static int call_json(struct gitlab *gl, const char *method, const char *url, json_t **root,
		     char **next_url)
{
	struct http_request req = {.method = method, .url = url, .range_off = -1};
	struct http_response resp;
	int err = http_do(gl->http, &req, &resp);
	if (!err)
		err = http_status_to_errno(resp.status);
	if (!err && root) {
		*root = parse(resp.body, resp.body_len, url);
		if (!*root)
			err = -EIO;
	}
	if (!err && next_url) {
		*next_url = resp.next_url;
		resp.next_url = NULL;
	}
	http_response_release(&resp);
	return err;
}

/* Calls fn on every element of the first max_pages pages of a listing; with whole, a listing
 * longer than that is -EIO, else it is cut there. */
static int list_pages(struct gitlab *gl, const char *first_url, int max_pages, bool whole,
		      int (*fn)(json_t *item, void *ctx), void *ctx)
{
	char *url = strdup(first_url);
	int err = url ? 0 : -ENOMEM;
	for (int page = 0; url && !err && (whole || page < max_pages); page++) {
		json_t *root = NULL, *item;
		char *next = NULL;
		size_t i;
		err = page < max_pages ? call_json(gl, "GET", url, &root, &next) : -EIO;
		if (!err && !json_is_array(root)) {
			log_msg(LOG_DEBUG, "%s: expected a JSON array", url);
			log_set_reason("GET /api/v4%s: expected a JSON array", url);
			err = -EIO;
		}
		json_array_foreach(err ? NULL : root, i, item)
		{
			err = fn(item, ctx);
			if (err)
				break;
		}
		json_decref(root);
		free(url);
		url = next;
	}
	free(url);
	return err;
}

/* Calls fn on every element of every page of a listing. */
static int list_all(struct gitlab *gl, const char *first_url, int (*fn)(json_t *item, void *ctx),
		    void *ctx)
{
	return list_pages(gl, first_url, PAGE_LIMIT, true, fn, ctx);
}

static char *escaped(const char *s)
{
	return http_escape(s);
}

/* A GitLab API answers /user, /job and /projects with a JSON object or array. */
static bool is_api_answer(const struct http_response *resp)
{
	json_t *root = resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
	bool ok = json_is_object(root) || json_is_array(root);
	json_decref(root);
	return ok;
}

/* One line naming why no answer came: curl's own text names a certificate problem exactly. */
static void explain_failure(const struct http_response *resp, char *why, size_t n)
{
	switch (resp->fail) {
	case HTTP_FAIL_TLS:
		snprintf(why, n,
			 "TLS refused the server's certificate: %s (a private CA? pass "
			 "--ca-file FILE or set CI_SERVER_TLS_CA_FILE)",
			 resp->error);
		break;
	case HTTP_FAIL_DNS:
		snprintf(why, n, "cannot be reached: the host name does not resolve (DNS): %s",
			 resp->error);
		break;
	case HTTP_FAIL_REFUSED:
		snprintf(why, n, "cannot be reached: connection refused (%s)", resp->error);
		break;
	case HTTP_FAIL_TIMEOUT:
		snprintf(why, n, "cannot be reached: no answer in time (%s)", resp->error);
		break;
	default:
		snprintf(why, n, "cannot be reached: %s",
			 resp->error[0] ? resp->error : "connection failed");
	}
}

static void explain_status(const struct http_response *resp, const char *url, char *why, size_t n)
{
	if (resp->status >= 200 && resp->status < 300)
		snprintf(why, n,
			 "GET /api/v4%s answered, but not as a GitLab API does (no JSON): "
			 "is this the instance's URL?",
			 url);
	else
		snprintf(why, n,
			 "GET /api/v4%s answered HTTP %ld: not a GitLab API there, or "
			 "the server is failing",
			 url, resp->status);
}

int gitlab_check(struct gitlab *gl, enum http_auth auth)
{
	char why[512];
	return gitlab_check_why(gl, auth, why, sizeof(why));
}

int gitlab_check_why(struct gitlab *gl, enum http_auth auth, char *why, size_t n)
{
	const char *url = auth == HTTP_AUTH_JOB_TOKEN ? "/job"
			  : auth == HTTP_AUTH_NONE    ? "/projects?per_page=1&simple=true"
						      : "/user";
	struct http_request req = {.url = url, .range_off = -1, .retry_for_ms = CHECK_BUDGET_MS};
	struct http_response resp;
	int err = http_do(gl->http, &req, &resp);
	snprintf(why, n, "%s", strerror(-err ? -err : ENOMEM));
	if (err == -EIO)
		explain_failure(&resp, why, n);
	else if (!err && resp.status == 401)
		snprintf(why, n,
			 "the server refused the token (401): check that it is valid and not "
			 "expired");
	else if (!err && resp.status != 403 &&
		 (resp.status < 200 || resp.status >= 300 || !is_api_answer(&resp)))
		explain_status(&resp, url, why, n);
	if (!err && resp.status == 401)
		err = -EACCES;
	else if (!err && resp.status != 403 && (resp.status < 200 || resp.status >= 300))
		err = -EIO; /* 403 only says the token lacks a scope */
	else if (!err && resp.status != 403 && !is_api_answer(&resp))
		err = -EIO;
	if (err && err != -EACCES && err != -ENOMEM)
		log_msg(LOG_ERR, "GET /api/v4%s: %s", url,
			resp.status ? "not a GitLab API answer" : "no answer");
	http_response_release(&resp);
	return err == -EACCES || err == -ENOMEM ? err : err ? -EIO : 0;
}

int gitlab_project_get(struct gitlab *gl, const char *project, struct gl_project *out)
{
	char *id = escaped(project), *url = NULL;
	json_t *root = NULL;
	int err = -ENOMEM;
	if (id && asprintf(&url, "/projects/%s", id) >= 0) {
		err = tell(gl, call_json(gl, "GET", url, &root, NULL));
		if (!err)
			err = project_from_json(root, out);
	}
	json_decref(root);
	free(url);
	free(id);
	return err;
}

struct project_list {
	struct gl_project *v;
	size_t n, cap;
};

static int add_project(json_t *item, void *ctx)
{
	struct project_list *pl = ctx;
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? pl->cap * 2 : 16;
		struct gl_project *v = realloc(pl->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		pl->v = v;
		pl->cap = cap;
	}
	int err = project_from_json(item, &pl->v[pl->n]);
	if (!err)
		pl->n++;
	return err == -EIO ? 0 : err; /* skip a malformed entry, keep the rest */
}

int gitlab_projects_list(struct gitlab *gl, struct gl_project **out, size_t *n)
{
	struct project_list pl = {0};
	int err = list_all(gl,
			   "/projects?membership=true&simple=true&per_page=100"
			   "&order_by=id&sort=asc",
			   add_project, &pl);
	if (err) {
		gl_projects_free(pl.v, pl.n);
		return err;
	}
	*out = pl.v;
	*n = pl.n;
	return 0;
}

static int add_ref_name(json_t *item, void *ctx)
{
	json_t *name = json_object_get(item, "name");
	return json_is_string(name) ? refrules_ref_name_add(ctx, json_string_value(name)) : 0;
}

int gitlab_refs_list(struct gitlab *gl, const char *project, char ***names, size_t *n)
{
	struct ref_names sv = {0};
	char *id = escaped(project), *url = NULL;
	int err = id ? 0 : -ENOMEM;
	static const char *kinds[] = {"branches", "tags"};
	for (size_t k = 0; k < 2 && !err; k++) {
		if (asprintf(&url, "/projects/%s/repository/%s?per_page=100", id, kinds[k]) < 0) {
			url = NULL;
			err = -ENOMEM;
			break;
		}
		err = tell(gl, list_all(gl, url, add_ref_name, &sv));
		free(url);
	}
	free(id);
	free(sv.seen.slot);
	if (!err && !sv.v && !(sv.v = calloc(1, sizeof(*sv.v))))
		err = -ENOMEM; /* no refs at all: an empty list, not NULL */
	if (err) {
		gitlab_strv_free(sv.v);
		return err;
	}
	*names = sv.v;
	*n = sv.n;
	return 0;
}

/* ---- a ref's jobs, resolved as GitLab's by-ref endpoints do (the rules: refrules.c) ---- */

/* A job of a listing, offered to the job set ctx (its rule keeps it or not). */
static int add_job(json_t *item, void *ctx)
{
	struct gl_job j;
	int err = job_from_json(item, &j);
	if (err)
		return err == -EIO ? 0 : err; /* one malformed job does not hide the others */
	return refrules_job_offer(ctx, &j);
}

/* A bridge's downstream pipeline, offered to the family ctx; one without a project_id is of the
 * family's project. */
static int add_child(json_t *item, void *ctx)
{
	struct family *f = ctx;
	json_t *down = json_object_get(item, "downstream_pipeline");
	if (json_is_object(down))
		refrules_family_add(f, opt_int(down, "id", 0),
				    opt_int(down, "project_id", f->project_id));
	return 0;
}

/* Adds the children of f->id[from, to) (one level) through each pipeline's bridges. */
static int family_level(struct gitlab *gl, const char *id, struct family *f, size_t from, size_t to)
{
	int err = 0;
	for (size_t i = from; i < to && !err && !refrules_family_full(f);
	     i++) { /* no more bridges */
		char *url = NULL;
		if (asprintf(&url, "/projects/%s/pipelines/%" PRId64 "/bridges?per_page=100", id,
			     f->id[i]) < 0)
			return -ENOMEM;
		err = list_pages(gl, url, 10, false, add_child, f);
		free(url);
		if ((err == -ENOENT && !gl->job_token) || err == -EACCES)
			err = 0; /* no bridges endpoint or not allowed: no children */
		err = tell(gl, err);
	}
	return err;
}

/* The family of pipeline f->id[0], down to CHILD_DEPTH levels, sorted by id (parent first). */
static int family_walk(struct gitlab *gl, const char *id, struct family *f)
{
	size_t from = 0, to = f->n;
	for (int depth = 0; depth < CHILD_DEPTH && from < to; depth++) {
		int err = family_level(gl, id, f, from, to);
		if (err)
			return err;
		from = to;
		to = f->n;
	}
	refrules_family_sort(f);
	return 0;
}

static int first_ci_pipeline(json_t *item, void *ctx)
{
	struct family *f = ctx;
	json_t *src = json_object_get(item, "source");
	if (!json_is_integer(json_object_get(item, "id")) ||
	    refrules_dangling_source(json_is_string(src) ? json_string_value(src) : NULL))
		return 0;
	f->id[0] = opt_int(item, "id", 0);
	f->project_id = opt_int(item, "project_id", 0);
	f->n = 1;
	return 1; /* found: stop the listing */
}

/* The newest successful pipeline of ref whose source is not dangling. */
static int newest_pipeline(struct gitlab *gl, const char *id, const char *ref, struct family *f)
{
	char *r = escaped(ref), *url = NULL;
	int err = -ENOMEM;
	if (r && asprintf(&url,
			  "/projects/%s/pipelines?ref=%s&status=success&order_by=id"
			  "&sort=desc&per_page=20",
			  id, r) >= 0) {
		err = list_pages(gl, url, PIPELINE_PAGES, false, first_ci_pipeline, f);
		err = err == 1 ? 0 : err ? err : -ENOENT;
		free(url);
	}
	free(r);
	return err;
}

/* The jobs of f's pipelines in f's order, offered to jl. */
static int family_jobs(struct gitlab *gl, const char *id, const struct family *f,
		       struct job_list *jl)
{
	int err = 0;
	for (size_t i = 0; !err && i < f->n; i++) {
		char *url = NULL;
		if (asprintf(&url, "/projects/%s/pipelines/%" PRId64 "/jobs?per_page=100", id,
			     f->id[i]) < 0)
			return -ENOMEM;
		err = list_all(gl, url, add_job, jl);
		free(url);
	}
	return err;
}

int gitlab_ref_resolve(struct gitlab *gl, const char *project, const char *ref,
		       struct gl_job **jobs, size_t *n)
{
	struct job_list jl = {.pick = PICK_BY_REF};
	struct family *f = calloc(1, sizeof(*f));
	char *id = escaped(project);
	int err = id && f ? tell(gl, newest_pipeline(gl, id, ref, f)) : -ENOMEM;
	if (!err)
		err = family_walk(gl, id, f);
	if (!err)
		err = family_jobs(gl, id, f, &jl);
	free(id);
	free(f);
	return refrules_jobs_finish(&jl, err, jobs, n);
}

int gitlab_ref_jobs(struct gitlab *gl, const char *project, const char *ref, struct gl_job **jobs,
		    size_t *n)
{
	int err = gitlab_ref_resolve(gl, project, ref, jobs, n);
	if (!err)
		refrules_drop_report_only(*jobs, n);
	return err;
}

/* 0 when GET url answers 2xx with a non-empty array (pipelines) or an object (branch, tag). */
static int exists_call(struct gitlab *gl, const char *url)
{
	json_t *root = NULL;
	int err = call_json(gl, "GET", url, &root, NULL);
	if (!err && json_is_array(root) && json_array_size(root) == 0)
		err = -ENOENT;
	else if (!err && !json_is_array(root) && !json_is_object(root))
		err = -EIO;
	json_decref(root);
	return err;
}

int gitlab_ref_check(struct gitlab *gl, const char *project, const char *ref)
{
	static const char *what[] = {"pipelines?per_page=1&ref=", "repository/branches/",
				     "repository/tags/"};
	char *id = escaped(project), *r = escaped(ref), *url = NULL;
	int err = id && r ? -ENOENT : -ENOMEM, pipelines = 0;
	for (size_t i = 0; i < 3 && err == -ENOENT; i++) {
		err = asprintf(&url, "/projects/%s/%s%s", id, what[i], r) < 0
			      ? -ENOMEM
			      : exists_call(gl, url);
		if (i == 0)
			pipelines = err;
		if (i == 0 && err == -EACCES)
			err = -ENOENT; /* refused (a job token): branch and tag may still tell */
		free(url);
		url = NULL;
	}
	free(id);
	free(r);
	/* a 404 from a route that ignores a job token is no answer (auth_finders.rb) */
	return err == -ENOENT && pipelines == -EACCES ? -EACCES : tell(gl, err);
}

int gitlab_token_job(struct gitlab *gl, struct gl_job *out)
{
	json_t *root = NULL;
	int err = call_json(gl, "GET", "/job", &root, NULL);
	if (!err)
		err = job_from_json(root, out);
	json_decref(root);
	return err;
}

/* ---- pipelines and merge requests as job sets ---- */

static int pipeline_from_json(json_t *o, struct gl_pipeline *p)
{
	int err = 0;
	memset(p, 0, sizeof(*p));
	if (!json_is_object(o) || !json_is_integer(json_object_get(o, "id")))
		return -EIO;
	p->id = opt_int(o, "id", 0);
	p->project_id = opt_int(o, "project_id", 0);
	p->status = opt_str(o, "status", &err);
	p->sha = opt_str(o, "sha", &err);
	p->ref = opt_str(o, "ref", &err);
	p->source = opt_str(o, "source", &err);
	p->web_url = opt_str(o, "web_url", &err);
	if (err)
		gl_pipeline_release(p);
	return err;
}

static int mr_from_json(json_t *o, struct gl_merge_request *mr)
{
	int err = 0;
	memset(mr, 0, sizeof(*mr));
	if (!json_is_object(o) || !json_is_integer(json_object_get(o, "iid")))
		return -EIO;
	json_t *hp = json_object_get(o, "head_pipeline");
	mr->iid = opt_int(o, "iid", 0);
	mr->title = opt_str(o, "title", &err);
	mr->source_branch = opt_str(o, "source_branch", &err);
	mr->sha = opt_str(o, "sha", &err);
	mr->web_url = opt_str(o, "web_url", &err);
	if (!err && json_is_object(hp) && pipeline_from_json(hp, &mr->head) == -ENOMEM)
		err = -ENOMEM;
	if (err)
		gl_merge_request_release(mr);
	return err;
}

/* GET url into one object made by parse_fn. */
static int get_object(struct gitlab *gl, const char *url, int (*parse_fn)(json_t *, void *),
		      void *out)
{
	json_t *root = NULL;
	int err = call_json(gl, "GET", url, &root, NULL);
	if (!err)
		err = parse_fn(root, out);
	json_decref(root);
	return err;
}

static int parse_mr(json_t *o, void *out)
{
	return mr_from_json(o, out);
}

static int parse_pipeline(json_t *o, void *out)
{
	return pipeline_from_json(o, out);
}

int gitlab_mr_get(struct gitlab *gl, const char *project, int64_t iid, struct gl_merge_request *out)
{
	char *id = escaped(project), *url = NULL;
	int err = -ENOMEM;
	memset(out, 0, sizeof(*out));
	if (id && asprintf(&url, "/projects/%s/merge_requests/%" PRId64, id, iid) >= 0)
		err = tell(gl, get_object(gl, url, parse_mr, out));
	free(url);
	free(id);
	return err;
}

int gitlab_pipeline_get(struct gitlab *gl, const char *project, int64_t pipeline_id,
			struct gl_pipeline *out)
{
	char *id = escaped(project), *url = NULL;
	int err = -ENOMEM;
	memset(out, 0, sizeof(*out));
	if (id && asprintf(&url, "/projects/%s/pipelines/%" PRId64, id, pipeline_id) >= 0)
		err = tell(gl, get_object(gl, url, parse_pipeline, out));
	free(url);
	free(id);
	return err;
}

/* A growing array of items of one size, filled by a listing. */
struct vec {
	void *v;
	size_t n, cap, size;
	int (*parse_fn)(json_t *, void *);
	void (*release)(void *);
};

static int vec_add(json_t *item, void *ctx)
{
	struct vec *vc = ctx;
	if (vc->n == vc->cap) {
		size_t cap = vc->cap ? vc->cap * 2 : 16;
		void *v = realloc(vc->v, cap * vc->size);
		if (!v)
			return -ENOMEM;
		vc->v = v;
		vc->cap = cap;
	}
	int err = vc->parse_fn(item, (char *)vc->v + vc->n * vc->size);
	if (err)
		return err == -EIO ? 0 : err; /* one malformed item does not hide the others */
	vc->n++;
	return 0;
}

/* One page of a listing into *out (*n items); vc says how. */
static int list_one_page(struct gitlab *gl, const char *project, const char *what, struct vec *vc,
			 void **out, size_t *n)
{
	char *id = escaped(project), *url = NULL;
	int err = -ENOMEM;
	if (id && asprintf(&url, "/projects/%s/%s", id, what) >= 0)
		err = tell(gl, list_pages(gl, url, 1, false, vec_add, vc));
	free(url);
	free(id);
	if (err) {
		for (size_t i = 0; i < vc->n; i++)
			vc->release((char *)vc->v + i * vc->size);
		free(vc->v);
		return err;
	}
	*out = vc->v;
	*n = vc->n;
	return 0;
}

static void release_mr(void *p)
{
	gl_merge_request_release(p);
}

static void release_pipeline(void *p)
{
	gl_pipeline_release(p);
}

int gitlab_mrs_list(struct gitlab *gl, const char *project, struct gl_merge_request **out,
		    size_t *n)
{
	struct vec vc = {.size = sizeof(**out), .parse_fn = parse_mr, .release = release_mr};
	return list_one_page(
		gl, project,
		"merge_requests?state=opened&order_by=updated_at&sort=desc&per_page=100", &vc,
		(void **)out, n);
}

int gitlab_pipelines_list(struct gitlab *gl, const char *project, struct gl_pipeline **out,
			  size_t *n)
{
	struct vec vc = {
		.size = sizeof(**out), .parse_fn = parse_pipeline, .release = release_pipeline};
	return list_one_page(gl, project, "pipelines?order_by=id&sort=desc&per_page=100", &vc,
			     (void **)out, n);
}

int gitlab_pipeline_jobs(struct gitlab *gl, const char *project, int64_t pipeline_id,
			 struct gl_job **jobs, size_t *n)
{
	struct job_list jl = {.pick = PICK_BY_NAME};
	struct gl_pipeline pl;
	struct family *f = calloc(1, sizeof(*f));
	char *id = escaped(project);
	int err = id && f ? gitlab_pipeline_get(gl, project, pipeline_id, &pl) : -ENOMEM;
	if (!err) {
		*f = (struct family){.id = {pipeline_id}, .n = 1, .project_id = pl.project_id};
		gl_pipeline_release(&pl);
		err = family_walk(gl, id, f);
	}
	if (!err)
		err = tell(gl, family_jobs(gl, id, f, &jl));
	free(id);
	free(f);
	return refrules_jobs_finish(&jl, err, jobs, n);
}

/* The first pipeline of a listing whose source is not dangling. */
static int first_ci_pipeline_of(json_t *item, void *ctx)
{
	json_t *src = json_object_get(item, "source");
	if (refrules_dangling_source(json_is_string(src) ? json_string_value(src) : NULL))
		return 0;
	int err = pipeline_from_json(item, ctx);
	return err == -EIO ? 0 : err ? err : 1; /* 1: found, stop the listing */
}

static int parse_commit_id(json_t *o, void *out)
{
	int err = 0;
	*(char **)out = json_is_object(o) ? opt_str(o, "id", &err) : NULL;
	return err ? err : *(char **)out ? 0 : -EIO;
}

int gitlab_commit_pipeline(struct gitlab *gl, const char *project, const char *sha,
			   struct gl_pipeline *out)
{
	char *id = escaped(project), *full = NULL, *url = NULL;
	int err = id ? 0 : -ENOMEM;
	memset(out, 0, sizeof(*out));
	if (!err && strlen(sha) < 40) { /* pipelines?sha= matches whole shas only */
		err = asprintf(&url, "/projects/%s/repository/commits/%s", id, sha) < 0
			      ? -ENOMEM
			      : get_object(gl, url, parse_commit_id, &full);
		free(url);
		url = NULL;
	}
	if (!err && asprintf(&url,
			     "/projects/%s/pipelines?sha=%s&status=success&order_by=id"
			     "&sort=desc&per_page=20",
			     id, full ? full : sha) < 0)
		err = -ENOMEM;
	if (!err) {
		err = list_pages(gl, url, PIPELINE_PAGES, false, first_ci_pipeline_of, out);
		err = err == 1 ? 0 : err ? err : -ENOENT;
	}
	free(url);
	free(full);
	free(id);
	return tell(gl, err);
}

int gitlab_job_trace(struct gitlab *gl, const char *project, int64_t job_id, http_body_fn fn,
		     void *ctx)
{
	char *id = escaped(project), *url = NULL;
	struct http_response resp = {0};
	int err = -ENOMEM;
	if (id && asprintf(&url, "/projects/%s/jobs/%" PRId64 "/trace", id, job_id) >= 0) {
		struct http_request req = {.method = "GET",
					   .url = url,
					   .range_off = -1,
					   .body_fn = fn,
					   .body_ctx = ctx};
		err = http_do(gl->http, &req, &resp);
		if (!err)
			err = http_status_to_errno(resp.status);
		if (!err && resp.status != 200) /* a 204 or a redirect's end: no trace bytes */
			err = resp.status == 204 ? 0 : -EIO;
	}
	http_response_release(&resp);
	free(url);
	free(id);
	return tell(gl, err);
}

/* ---- a project's recent jobs ---- */

int gitlab_recent_jobs(struct gitlab *gl, const char *project, struct gl_job **jobs, size_t *n)
{
	struct job_list jl = {.pick = PICK_ALL_ARCHIVES}; /* the listing asks for successful ones */
	char *id = escaped(project), *url = NULL;
	int err = id && asprintf(&url, "/projects/%s/jobs?scope%%5B%%5D=success&per_page=100",
				 id) >= 0
			  ? list_pages(gl, url, 1, false, add_job, &jl)
			  : -ENOMEM;
	free(url);
	free(id);
	return refrules_jobs_finish(&jl, err, jobs, n);
}

static int job_call(struct gitlab *gl, const char *method, const char *project, int64_t job_id,
		    const char *suffix, struct gl_job *out)
{
	char *id = escaped(project), *url = NULL;
	json_t *root = NULL;
	int err = -ENOMEM;
	if (id && asprintf(&url, "/projects/%s/jobs/%" PRId64 "%s", id, job_id, suffix) >= 0) {
		err = call_json(gl, method, url, out ? &root : NULL, NULL);
		if (!err && out)
			err = job_from_json(root, out);
	}
	json_decref(root);
	free(url);
	free(id);
	return err;
}

int gitlab_job_get(struct gitlab *gl, const char *project, int64_t job_id, struct gl_job *out)
{
	return tell(gl, job_call(gl, "GET", project, job_id, "", out)); /* not a job-token route */
}

int gitlab_job_keep(struct gitlab *gl, const char *project, int64_t job_id, struct gl_job *out)
{
	return job_call(gl, "POST", project, job_id, "/artifacts/keep", out);
}

int gitlab_job_artifacts_delete(struct gitlab *gl, const char *project, int64_t job_id)
{
	return job_call(gl, "DELETE", project, job_id, "/artifacts", NULL);
}

int gitlab_project_artifacts_delete(struct gitlab *gl, const char *project)
{
	char *id = escaped(project), *url = NULL;
	int err = -ENOMEM;
	if (id && asprintf(&url, "/projects/%s/artifacts", id) >= 0)
		err = call_json(gl, "DELETE", url, NULL, NULL);
	free(url);
	free(id);
	return err;
}

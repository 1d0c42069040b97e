/* gitlab: GitLab REST v4 calls that artifactfs needs, mapped into our own structs at once (the
 * only jansson user). Paging follows Link/X-Next-Page, never X-Total. Errors are SPEC.md's errno:
 * -ENOENT (404, also "no access to a private project"), -EACCES (401/403), -EBUSY (409),
 * -EIO (unreachable, 5xx, malformed JSON or a field of the wrong type), -ENOMEM.
 * Every failure writes one log line naming the call and the status. Thread-safe: the struct
 * holds no mutable state beyond the http client's. */
#ifndef ARTIFACTFS_GITLAB_H
#define ARTIFACTFS_GITLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "artifactfs/http.h"

struct gitlab;

/* http is borrowed and must outlive the gitlab object. */
int gitlab_new(struct http *http, struct gitlab **out);
void gitlab_free(struct gitlab *gl);

struct gl_project {
	int64_t id;
	char *path_with_namespace; /* "group/sub/app" */
	char *default_branch;      /* may be NULL */
	char *web_url;             /* may be NULL */
};
void gl_project_release(struct gl_project *p);

struct gl_job {
	int64_t id;
	char *name;
	char *status;              /* "success", ... */
	char *ref;
	char *sha;                 /* commit.id; may be NULL */
	char *web_url;             /* may be NULL */
	int64_t pipeline_id;       /* pipeline.id; 0 if absent */
	char *created_at;          /* ISO 8601 strings as GitLab sends them; may be NULL */
	char *finished_at;
	char *artifacts_expire_at; /* NULL: never expires */
	int64_t archive_size;      /* size of the zip archive (artifacts[] file_type "archive",
	                              else artifacts_file.size); -1: the job has no archive */
};
void gl_job_release(struct gl_job *j);
void gl_jobs_free(struct gl_job *jobs, size_t n); /* releases each, then frees the array */

/* Parses one job object (as GET /projects/:id/jobs/:job_id returns it). Exposed for unit tests
 * and the fuzzer. Returns 0, -EIO (not an object, wrong types, no id/name), -ENOMEM. */
int gitlab_parse_job(const char *json, size_t len, struct gl_job *out);

/* Checks, before mounting, that the server answers and the credentials are accepted:
 * GET /user (private token, bearer), GET /job (job token), GET /projects?per_page=1 (anonymous).
 * Returns 0 (2xx, or a 403 that only says the token lacks a scope), -EACCES (401: bad or expired
 * token), -EIO (unreachable, not a GitLab API, 5xx after retries). */
int gitlab_check(struct gitlab *gl, enum http_auth auth);

/* `project` is always the decoded name as the tree shows it: a numeric id ("1234") or a full
 * path ("group/sub/app"); it is escaped into :id here. */

/* GET /projects/:id. */
int gitlab_project_get(struct gitlab *gl, const char *project, struct gl_project *out);

/* GET /projects?membership=true&simple=true, every page. *out is an array of *n projects;
 * free with gl_projects_free(). */
int gitlab_projects_list(struct gitlab *gl, struct gl_project **out, size_t *n);
void gl_projects_free(struct gl_project *p, size_t n);

/* Branch and tag names of a project, every page, branches first, duplicates dropped.
 * *names is a NULL-terminated malloc'ed array of malloc'ed strings (*n of them);
 * free with gitlab_strv_free(). */
int gitlab_refs_list(struct gitlab *gl, const char *project, char ***names, size_t *n);
void gitlab_strv_free(char **v);

/* The jobs that GitLab's by-ref endpoints would pick for `ref`: in the newest successful
 * pipeline whose ref is exactly `ref` (GET pipelines?ref=&status=success&order_by=id&sort=desc),
 * the successful jobs that have an archive, the parent pipeline's first, then each child
 * pipeline's (bridges' downstream_pipeline), a name already taken being skipped. *jobs holds *n
 * entries (possibly 0: -ENOENT only when there is no successful pipeline at all).
 * -EACCES when the token may not list pipelines (a job token): callers then fall back to the
 * by-ref download endpoint. Free with gl_jobs_free(). */
int gitlab_ref_jobs(struct gitlab *gl, const char *project, const char *ref,
		    struct gl_job **jobs, size_t *n);

/* The project's newest successful jobs that have an archive, newest first: one page (100) of
 * GET /projects/:id/jobs, so listing them costs one request. Free with gl_jobs_free(). -EACCES
 * for a token that may not list jobs (a job token). */
int gitlab_recent_jobs(struct gitlab *gl, const char *project, struct gl_job **jobs, size_t *n);

/* GET /projects/:id/jobs/:job_id. */
int gitlab_job_get(struct gitlab *gl, const char *project, int64_t job_id, struct gl_job *out);

/* POST .../jobs/:job_id/artifacts/keep; *out gets the returned job (may be NULL). */
int gitlab_job_keep(struct gitlab *gl, const char *project, int64_t job_id, struct gl_job *out);

/* DELETE .../jobs/:job_id/artifacts (204) and DELETE /projects/:id/artifacts (202). */
int gitlab_job_artifacts_delete(struct gitlab *gl, const char *project, int64_t job_id);
int gitlab_project_artifacts_delete(struct gitlab *gl, const char *project);

/* Which archive to read: by job id (endpoint 1) when job_id > 0, else by ref and job name
 * (endpoint 2, .../jobs/artifacts/:ref/download?job=NAME). */
struct gl_archive {
	const char *project;
	int64_t job_id;
	const char *ref;
	const char *job_name;
};

/* Reads bytes [off, off+len) of the archive with a Range request, delivering them through fn
 * (see http_body_fn: offsets are absolute). off == -1 asks for the last len bytes (a suffix
 * range). If the server ignores Range and answers 200, the whole archive is delivered from
 * offset 0; *whole is set to true. *total gets the archive's full size when known, else -1.
 * Both out-pointers may be NULL. Returns 0 when every requested byte was delivered, or -errno:
 * -ENOENT (no such job/archive), -EACCES, -EIO (after retries; truncated bodies included). */
int gitlab_archive_read(struct gitlab *gl, const struct gl_archive *a, int64_t off, int64_t len,
			http_body_fn fn, void *ctx, int64_t *total, bool *whole);

#endif

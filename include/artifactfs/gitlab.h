/* gitlab: GitLab REST v4 calls that artifactfs needs, mapped into our own structs at once (the
 * only jansson user). Paging follows Link/X-Next-Page, never X-Total. Errors are doc/SPEC.md's errno:
 * -ENOENT (404, also "no access to a private project"), -EACCES (401/403), -EBUSY (409),
 * -EIO (unreachable, 5xx, malformed JSON or a field of the wrong type), -ENOMEM.
 * Every failure leaves the thread's failure reason (log_reason(): the call and the status, or
 * what was wrong with the answer) for the operation's one error line, and logs details at DEBUG
 * only. Thread-safe: the struct holds no mutable state beyond the http client's. Implemented
 * by gitlab.c (requests, paging, JSON), refrules.c (which jobs a ref, pipeline or commit stands
 * for), gitlab_archive.c (archive bytes) and gitlab_structs.c (the structs' release and copy).
 *
 * With a job token (HTTP_AUTH_JOB_TOKEN), GitLab ignores the token on every route that is not
 * job_token_allowed and answers as to an anonymous caller (lib/gitlab/auth/auth_finders.rb):
 * a private project's GET /projects/:id, branches, tags, pipelines and bridges say 404. Such a
 * 404 proves nothing, so on those routes these functions return -EACCES ("cannot tell") instead
 * of -ENOENT: gitlab_project_get, gitlab_refs_list, gitlab_ref_resolve/gitlab_ref_jobs,
 * gitlab_ref_check, gitlab_job_get. Callers then go straight to the artifact endpoints, which
 * do take it. */
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
	char *status; /* "success", ... */
	char *ref;
	char *sha;           /* commit.id; may be NULL */
	char *web_url;       /* may be NULL */
	int64_t pipeline_id; /* pipeline.id; 0 if absent */
	char *created_at;    /* ISO 8601 strings as GitLab sends them; may be NULL */
	char *finished_at;
	char *artifacts_expire_at; /* NULL: never expires */
	int64_t archive_size;      /* size of the zip archive (artifacts[] file_type "archive",
	                              else artifacts_file.size); -1: the job has no archive */
	int64_t project_id;        /* pipeline.project_id, else project_id; 0 if absent */
	bool downloadable;         /* artifacts[] has a downloadable type (the archive or a report
	                              such as junit; not metadata or trace): GitLab's by-ref
	                              `with_downloadable_artifacts`. A report-only job has this
	                              true and archive_size -1: by-ref picks it, then answers 404
	                              (download) or 500 (raw). */
	bool erased;               /* erased_at is set: the job was erased (its log and artifacts
	                              removed, GitLab's remedy for a secret leaked in a log) */
};
void gl_job_release(struct gl_job *j);
void gl_jobs_free(struct gl_job *jobs, size_t n); /* releases each, then frees the array */

/* Parses one job object (as GET /projects/:id/jobs/:job_id returns it). Exposed for unit tests
 * and the fuzzer. Returns 0, -EIO (not an object, wrong types, no id/name), -ENOMEM. */
int gitlab_parse_job(const char *json, size_t len, struct gl_job *out);

/* As gitlab_check(), and on failure writes into why (n bytes) one line naming the real cause,
 * for the start-up message: "TLS refused the server's certificate: <curl's text> (a private CA? use
 * --ca-file ...)", "the host name does not resolve", "connection refused", "no answer within
 * N s", "HTTP <status> ... not a GitLab API", "... give the instance's URL without /api/v4".
 * Uses a short retry budget (8 s). Same return values as gitlab_check(). */
int gitlab_check_why(struct gitlab *gl, enum http_auth auth, char *why, size_t n);

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

/* Exactly the jobs GitLab's by-ref endpoints (download, raw) resolve for `ref`, one per name
 * (doc/GITLAB-API.md "Ref resolution"; Project#latest_successful_build_for_ref):
 * - the pipeline: the newest successful one whose ref is exactly `ref`, skipping the dangling
 *   sources (webide, parent_pipeline, ondemand_dast_scan, ondemand_dast_validation,
 *   security_orchestration_policy, pipeline_execution_policy_schedule, container_registry_push,
 *   duo_workflow) by each pipeline's `source` (GET pipelines?ref=&status=success&order_by=id
 *   &sort=desc, up to 5 pages of 20);
 * - its family: it and all same-project descendants (bridges' downstream_pipeline, also those
 *   of retried trigger jobs), at most 3 levels deep and 200 child pipelines in all, walked in
 *   pipeline-id order;
 * - per name, the first non-retried job of ANY status whose artifacts are downloadable
 *   (gl_job.downloadable). Report-only jobs are included (archive_size -1): they shadow later
 *   jobs of that name, as on the server. Names are deduplicated in linear time.
 * *jobs holds *n entries. Returns 0, -ENOENT (no such successful pipeline), -EACCES (the token
 * may not list pipelines: a job token before 19.x; callers then go to the by-ref endpoints),
 * -EIO, -ENOMEM. Free with gl_jobs_free(). */
int gitlab_ref_resolve(struct gitlab *gl, const char *project, const char *ref,
		       struct gl_job **jobs, size_t *n);

/* gitlab_ref_resolve() without the report-only jobs: the jobs whose archive by-ref serves
 * (a name shadowed by a report-only job is absent). Same errors. */
int gitlab_ref_jobs(struct gitlab *gl, const char *project, const char *ref, struct gl_job **jobs,
		    size_t *n);

/* Whether `ref` exists for browsing, in one cheap call where possible (never by listing all
 * branches): GET pipelines?ref=&per_page=1 (any ref with pipelines: merge request refs such as
 * refs/merge-requests/7/head, deleted branches), then GET repository/branches/:ref, then
 * repository/tags/:ref. Returns 0 (it exists), -ENOENT (the pipelines lookup answered and
 * neither a pipeline, a branch nor a tag has that name), -EACCES (cannot tell: the pipelines
 * lookup was refused and branch/tag said 404, as they do to a job token on a private project,
 * which GitLab treats as anonymous there), -EIO, -ENOMEM. */
int gitlab_ref_check(struct gitlab *gl, const char *project, const char *ref);

/* GET /job with a job token: the token's own job. out->project_id tells the project the root
 * should list; out->ref and out->pipeline_id its ref and pipeline. Returns 0, -EACCES (401:
 * not a job token, or its job has finished), -EIO, -ENOMEM. */
int gitlab_token_job(struct gitlab *gl, struct gl_job *out);

/* A pipeline as GET /projects/:id/pipelines[/:pipeline_id] shows it (lib/api/ci/pipelines.rb,
 * Entities::Ci::PipelineBasic). Strings may be NULL. */
struct gl_pipeline {
	int64_t id; /* 0: none */
	int64_t project_id;
	char *status, *sha, *ref, *source, *web_url;
};
void gl_pipeline_release(struct gl_pipeline *p);
void gl_pipelines_free(struct gl_pipeline *v, size_t n); /* releases each, frees the array */
/* Deep copy; -ENOMEM leaves dst empty. */
int gl_pipeline_copy(const struct gl_pipeline *src, struct gl_pipeline *dst);

struct gl_merge_request {
	int64_t iid;
	char *title;             /* may be NULL */
	char *source_branch;     /* may be NULL */
	char *sha;               /* the MR's head commit; may be NULL */
	char *web_url;           /* may be NULL */
	struct gl_pipeline head; /* head_pipeline (id 0: none, and always in listings) */
};
void gl_merge_request_release(struct gl_merge_request *mr);
void gl_merge_requests_free(struct gl_merge_request *v, size_t n);

/* GET /projects/:id/merge_requests/:iid. Returns 0, -ENOENT, -EACCES, -EIO, -ENOMEM. */
int gitlab_mr_get(struct gitlab *gl, const char *project, int64_t iid,
		  struct gl_merge_request *out);

/* The 100 most recently updated open merge requests: one page of GET /projects/:id/
 * merge_requests?state=opened&order_by=updated_at&sort=desc (lib/api/merge_requests.rb); their
 * head pipelines are not in a listing. Free with gl_merge_requests_free(). */
int gitlab_mrs_list(struct gitlab *gl, const char *project, struct gl_merge_request **out,
		    size_t *n);

/* The 100 newest pipelines, child pipelines left out as GitLab's listing does: one page of GET
 * /projects/:id/pipelines?order_by=id&sort=desc (lib/api/ci/pipelines.rb). */
int gitlab_pipelines_list(struct gitlab *gl, const char *project, struct gl_pipeline **out,
			  size_t *n);

/* GET /projects/:id/pipelines/:pipeline_id. */
int gitlab_pipeline_get(struct gitlab *gl, const char *project, int64_t pipeline_id,
			struct gl_pipeline *out);

/* Every non-retried job with an archive, of ANY status, in a pipeline and its same-project
 * descendants (the walk gitlab_ref_resolve makes), walked in pipeline-id order: per name the
 * first found wins, so the parent wins a name clash. Free with gl_jobs_free(). Same errors as
 * gitlab_ref_resolve, -ENOENT for no such pipeline. */
int gitlab_pipeline_jobs(struct gitlab *gl, const char *project, int64_t pipeline_id,
			 struct gl_job **jobs, size_t *n);

/* The newest successful pipeline of a commit, by GitLab's by-ref rules for dangling sources: a
 * full sha as is, an abbreviated one resolved first by GET repository/commits/:sha
 * (lib/api/commits.rb), then GET pipelines?sha=&status=success&order_by=id&sort=desc. Returns
 * 0, -ENOENT (no such commit, or no such pipeline), -EACCES, -EIO, -ENOMEM. */
int gitlab_commit_pipeline(struct gitlab *gl, const char *project, const char *sha,
			   struct gl_pipeline *out);

/* The job's log as GitLab stores it (GET /projects/:id/jobs/:job_id/trace, lib/api/ci/jobs.rb),
 * whole and streamed through fn from offset 0: the endpoint takes no Range and promises no
 * length, and a retry delivers from 0 again (fn is positional, see http_body_fn). Returns 0 once
 * every byte was delivered (an empty log delivers none), -ENOENT, -EACCES, -EIO, -ENOMEM, or
 * fn's error. */
int gitlab_job_trace(struct gitlab *gl, const char *project, int64_t job_id, http_body_fn fn,
		     void *ctx);

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

/* What gitlab_archive_read_pinned() is given and tells. */
struct gl_read_info {
	const char *expect_etag; /* in: the ETag an open file is pinned to, or NULL. Sent as
	                            If-Range (strong ETags); an answer with another ETag fails the
	                            read with -ESTALE before a byte is delivered (the ref now names
	                            another archive: the file's reads fail with EIO, a new open
	                            sees the new archive). An answer without ETag is not checked:
	                            callers then compare total and CRCs themselves. */
	const char *expect_last_modified; /* in: the same pin by the Last-Modified date, used
	                            when expect_etag is NULL or weak (local storage on GitLab: Go's
	                            http.ServeContent sends no ETag but honours If-Range by date). */
	int64_t expect_size;              /* in: > 0, the pinned archive's size: an answer for an
	                            archive of another size fails with -ESTALE, as does a 200 to
	                            If-Range (http_request.expect_size). A weak ETag (most
	                            servers send one constant tag) pins nothing: date and size do. */
	int64_t total;                    /* out: the archive's size, -1 unknown */
	bool whole;                       /* out: the server ignored Range: bytes from offset 0 */
	char etag[160];         /* out: the answer's ETag ("" none); longer ones are cut */
	char last_modified[64]; /* out: the answer's Last-Modified ("" none) */
};

/* gitlab_archive_read() that also reports the answer's ETag and can pin the read to one
 * (info->expect_etag). Returns as gitlab_archive_read(), plus -ESTALE. info is required.
 * A read by job id or a pinned one (never a suffix read: that is a probe of what the archive
 * is now) may go straight to the signed storage URL the same endpoint last redirected to
 * (http_request.reuse_signed_url), so it costs no API request while that URL is valid. */
int gitlab_archive_read_pinned(struct gitlab *gl, const struct gl_archive *a, int64_t off,
			       int64_t len, http_body_fn fn, void *ctx, struct gl_read_info *info);

#endif

/* backend: the calls the catalog and its jobs make to the server, as a table of function
 * pointers (as SQLite's VFS), so unit tests can stand in for GitLab without a network.
 *
 * Each entry has the contract of the gitlab_* function of the same name in gitlab.h (arguments,
 * ownership of results, errors), with ctx in place of the struct gitlab. Every entry must be set
 * and thread-safe. */
#ifndef ARTIFACTFS_BACKEND_H
#define ARTIFACTFS_BACKEND_H

#include "artifactfs/gitlab.h"

struct backend {
	void *ctx;
	int (*project_get)(void *ctx, const char *project, struct gl_project *out);
	int (*projects_list)(void *ctx, struct gl_project **out, size_t *n);
	int (*refs_list)(void *ctx, const char *project, char ***names, size_t *n);
	int (*ref_check)(void *ctx, const char *project, const char *ref);
	int (*ref_jobs)(void *ctx, const char *project, const char *ref, struct gl_job **jobs,
			size_t *n);
	int (*recent_jobs)(void *ctx, const char *project, struct gl_job **jobs, size_t *n);
	int (*job_get)(void *ctx, const char *project, int64_t job_id, struct gl_job *out);
	int (*job_keep)(void *ctx, const char *project, int64_t job_id, struct gl_job *out);
	int (*job_artifacts_delete)(void *ctx, const char *project, int64_t job_id);
	int (*project_artifacts_delete)(void *ctx, const char *project);
	/* gitlab_archive_read_pinned() */
	int (*archive_read)(void *ctx, const struct gl_archive *a, int64_t off, int64_t len,
			    http_body_fn fn, void *fn_ctx, struct gl_read_info *info);
	int (*pipelines_list)(void *ctx, const char *project, struct gl_pipeline **out, size_t *n);
	int (*pipeline_get)(void *ctx, const char *project, int64_t id, struct gl_pipeline *out);
	int (*pipeline_jobs)(void *ctx, const char *project, int64_t id, struct gl_job **jobs,
			     size_t *n);
	int (*mrs_list)(void *ctx, const char *project, struct gl_merge_request **out, size_t *n);
	int (*mr_get)(void *ctx, const char *project, int64_t iid, struct gl_merge_request *out);
	int (*commit_pipeline)(void *ctx, const char *project, const char *sha,
			       struct gl_pipeline *out);
	int (*job_trace)(void *ctx, const char *project, int64_t job_id, http_body_fn fn,
			 void *fn_ctx);
};

/* The table over a real GitLab: each entry calls gitlab_*(gl, ...). gl is borrowed. */
struct backend backend_gitlab(struct gitlab *gl);

#endif

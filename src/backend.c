/* backend: the default table, each entry a thin call of the gitlab_* function it is named after
 * (nothing else belongs here: what GitLab does is gitlab.c's business). */
#include "artifactfs/backend.h"

static int project_get(void *ctx, const char *project, struct gl_project *out)
{
	return gitlab_project_get(ctx, project, out);
}

static int projects_list(void *ctx, struct gl_project **out, size_t *n)
{
	return gitlab_projects_list(ctx, out, n);
}

static int refs_list(void *ctx, const char *project, char ***names, size_t *n)
{
	return gitlab_refs_list(ctx, project, names, n);
}

static int ref_check(void *ctx, const char *project, const char *ref)
{
	return gitlab_ref_check(ctx, project, ref);
}

static int ref_jobs(void *ctx, const char *project, const char *ref, struct gl_job **jobs,
		    size_t *n)
{
	return gitlab_ref_jobs(ctx, project, ref, jobs, n);
}

static int recent_jobs(void *ctx, const char *project, struct gl_job **jobs, size_t *n)
{
	return gitlab_recent_jobs(ctx, project, jobs, n);
}

static int job_get(void *ctx, const char *project, int64_t job_id, struct gl_job *out)
{
	return gitlab_job_get(ctx, project, job_id, out);
}

static int job_keep(void *ctx, const char *project, int64_t job_id, struct gl_job *out)
{
	return gitlab_job_keep(ctx, project, job_id, out);
}

static int job_artifacts_delete(void *ctx, const char *project, int64_t job_id)
{
	return gitlab_job_artifacts_delete(ctx, project, job_id);
}

static int project_artifacts_delete(void *ctx, const char *project)
{
	return gitlab_project_artifacts_delete(ctx, project);
}

static int archive_read(void *ctx, const struct gl_archive *a, int64_t off, int64_t len,
			http_body_fn fn, void *fn_ctx, struct gl_read_info *info)
{
	return gitlab_archive_read_pinned(ctx, a, off, len, fn, fn_ctx, info);
}

static int pipelines_list(void *ctx, const char *project, struct gl_pipeline **out, size_t *n)
{
	return gitlab_pipelines_list(ctx, project, out, n);
}

static int pipeline_get(void *ctx, const char *project, int64_t id, struct gl_pipeline *out)
{
	return gitlab_pipeline_get(ctx, project, id, out);
}

static int pipeline_jobs(void *ctx, const char *project, int64_t id, struct gl_job **jobs,
			 size_t *n)
{
	return gitlab_pipeline_jobs(ctx, project, id, jobs, n);
}

static int mrs_list(void *ctx, const char *project, struct gl_merge_request **out, size_t *n)
{
	return gitlab_mrs_list(ctx, project, out, n);
}

static int mr_get(void *ctx, const char *project, int64_t iid, struct gl_merge_request *out)
{
	return gitlab_mr_get(ctx, project, iid, out);
}

static int commit_pipeline(void *ctx, const char *project, const char *sha, struct gl_pipeline *out)
{
	return gitlab_commit_pipeline(ctx, project, sha, out);
}

static int job_trace(void *ctx, const char *project, int64_t job_id, http_body_fn fn, void *fn_ctx)
{
	return gitlab_job_trace(ctx, project, job_id, fn, fn_ctx);
}

struct backend backend_gitlab(struct gitlab *gl)
{
	return (struct backend){
		.ctx = gl,
		.project_get = project_get,
		.projects_list = projects_list,
		.refs_list = refs_list,
		.ref_check = ref_check,
		.ref_jobs = ref_jobs,
		.recent_jobs = recent_jobs,
		.job_get = job_get,
		.job_keep = job_keep,
		.job_artifacts_delete = job_artifacts_delete,
		.project_artifacts_delete = project_artifacts_delete,
		.archive_read = archive_read,
		.pipelines_list = pipelines_list,
		.pipeline_get = pipeline_get,
		.pipeline_jobs = pipeline_jobs,
		.mrs_list = mrs_list,
		.mr_get = mr_get,
		.commit_pipeline = commit_pipeline,
		.job_trace = job_trace,
	};
}

/* gitlab_structs: the lifecycle of the structs GitLab's answers become (gitlab.h): release,
 * free and copy. Apart from gitlab.c so that refrules.c, which keeps or drops jobs, and gitlab.c,
 * which fills them, both free through here without calling each other. Each string a struct
 * holds is its own malloc'ed copy; a released struct is zeroed, so releasing it again is a
 * no-op. No I/O, no JSON, no state. */
#include "artifactfs/gitlab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void gitlab_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void gl_project_release(struct gl_project *p)
{
	free(p->path_with_namespace);
	free(p->default_branch);
	free(p->web_url);
	memset(p, 0, sizeof(*p));
}

void gl_projects_free(struct gl_project *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++)
		gl_project_release(&p[i]);
	free(p);
}

void gl_job_release(struct gl_job *j)
{
	free(j->name);
	free(j->status);
	free(j->ref);
	free(j->sha);
	free(j->web_url);
	free(j->created_at);
	free(j->finished_at);
	free(j->artifacts_expire_at);
	memset(j, 0, sizeof(*j));
}

void gl_jobs_free(struct gl_job *jobs, size_t n)
{
	for (size_t i = 0; jobs && i < n; i++)
		gl_job_release(&jobs[i]);
	free(jobs);
}

void gl_pipeline_release(struct gl_pipeline *p)
{
	free(p->status);
	free(p->sha);
	free(p->ref);
	free(p->source);
	free(p->web_url);
	memset(p, 0, sizeof(*p));
}

void gl_pipelines_free(struct gl_pipeline *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		gl_pipeline_release(&v[i]);
	free(v);
}

static char *dup_opt(const char *s, int *err)
{
	char *d = s ? strdup(s) : NULL;
	if (s && !d)
		*err = -ENOMEM;
	return d;
}

int gl_pipeline_copy(const struct gl_pipeline *src, struct gl_pipeline *dst)
{
	int err = 0;
	*dst = (struct gl_pipeline){.id = src->id, .project_id = src->project_id};
	dst->status = dup_opt(src->status, &err);
	dst->sha = dup_opt(src->sha, &err);
	dst->ref = dup_opt(src->ref, &err);
	dst->source = dup_opt(src->source, &err);
	dst->web_url = dup_opt(src->web_url, &err);
	if (err)
		gl_pipeline_release(dst);
	return err;
}

void gl_merge_request_release(struct gl_merge_request *mr)
{
	free(mr->title);
	free(mr->source_branch);
	free(mr->sha);
	free(mr->web_url);
	gl_pipeline_release(&mr->head);
	memset(mr, 0, sizeof(*mr));
}

void gl_merge_requests_free(struct gl_merge_request *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		gl_merge_request_release(&v[i]);
	free(v);
}

/* jobchange: what a user changes on the server through the mount: keep a job's artifacts, delete
 * them, or delete all of a project's. Only a job known by id may be kept or deleted (GitLab never
 * lets a job token do either: -EACCES). After a change, every memo entry it makes stale (a ref's
 * jobs, by-ref probes, the recent jobs, jobs by id) expires at once; a kept job's info is
 * refreshed in place, a deleted job leaves the registry and its cache entries (the zip's, and the
 * unpacked blobs of the archives inside it) are discarded, while open files keep their reference
 * and read on, as from a deleted local file. */
#include <errno.h>

#include "artifactfs/catalog.h"
#include "artifactfs/memo.h"
#include "artifactfs/nest.h"
#include "catalog_i.h"

/* What a keep or delete makes stale: a ref's jobs, by-ref probes, the recent jobs. */
static void expire_project_memos(struct catalog *c, const char *project)
{
	memo_expire(c->memo, MEMO_REF_JOBS, project);
	memo_expire(c->memo, MEMO_BYREF_JOB, project);
	memo_expire(c->memo, MEMO_RECENT_JOBS, project);
	memo_expire(c->memo, MEMO_JOB, project);
}

int catalog_job_keep(struct catalog *c, struct job *j)
{
	if (!job_is_by_id(j))
		return -EACCES; /* found through a job token, which keep never accepts */
	struct gl_job info = {0};
	int err = c->be->job_keep(c->be->ctx, job_project(j), job_id(j), &info);
	if (err)
		return err;
	if (info.archive_size < 0)
		info.archive_size = (int64_t)job_size(j);
	job_set_info(j, &info);
	expire_project_memos(c, job_project(j));
	return 0;
}

int catalog_job_delete(struct catalog *c, struct job *j)
{
	if (!job_is_by_id(j))
		return -EACCES;
	int err = c->be->job_artifacts_delete(c->be->ctx, job_project(j), job_id(j));
	if (err)
		return err;
	catalog_job_unpublish(c, j);
	cache_entry_discard(c->env.cache, job_key(j));
	nest_discard_blobs(c->env.cache, job_key(j));
	expire_project_memos(c, job_project(j));
	return 0;
}

int catalog_project_delete_artifacts(struct catalog *c, const char *project)
{
	int err = c->be->project_artifacts_delete(c->be->ctx, project);
	if (!err)
		expire_project_memos(c, project);
	return err;
}

/* refrules: GitLab's rules for which jobs a ref, a pipeline or a commit stands for, and which
 * names a project's refs are, on our own structs (see refrules.h). The sources are GitLab's
 * own (app/models/ci/pipeline.rb, app/models/concerns/enums/ci/pipeline.rb); doc/GITLAB-API.md
 * "Ref resolution" says how they combine. Invariants: a job set holds each name at most once
 * (by-ref and family sets), in the order the jobs were offered; a family holds each pipeline id
 * once, at most CHILD_MAX children, all of the parent's project. Calls nothing of gitlab.c. */
#include "refrules.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- a set of names, so that deduplication stays linear ---- */

static size_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)h;
}

static bool nameset_has(const struct nameset *ns, const char *s)
{
	for (size_t i = ns->cap ? name_hash(s) & (ns->cap - 1) : 0; ns->cap && ns->slot[i];
	     i = (i + 1) & (ns->cap - 1))
		if (strcmp(ns->slot[i], s) == 0)
			return true;
	return false;
}

static void nameset_put(struct nameset *ns, const char *s)
{
	size_t i = name_hash(s) & (ns->cap - 1);
	while (ns->slot[i])
		i = (i + 1) & (ns->cap - 1);
	ns->slot[i] = s;
	ns->n++;
}

/* Adds s (borrowed: it must outlive the set). Returns 0 or -ENOMEM. */
static int nameset_add(struct nameset *ns, const char *s)
{
	if (2 * (ns->n + 1) > ns->cap) {
		struct nameset bigger = {calloc(ns->cap ? ns->cap * 2 : 64, sizeof(char *)),
					 ns->cap ? ns->cap * 2 : 64, 0};
		if (!bigger.slot)
			return -ENOMEM;
		for (size_t i = 0; i < ns->cap; i++)
			if (ns->slot[i])
				nameset_put(&bigger, ns->slot[i]);
		free(ns->slot);
		*ns = bigger;
	}
	nameset_put(ns, s);
	return 0;
}

/* ---- which names a project's refs are ---- */

int refrules_ref_name_add(struct ref_names *rn, const char *s)
{
	if (nameset_has(&rn->seen, s))
		return 0;
	if (rn->n + 1 >= rn->cap) {
		size_t cap = rn->cap ? rn->cap * 2 : 16;
		char **v = realloc(rn->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		rn->v = v;
		rn->cap = cap;
	}
	rn->v[rn->n] = strdup(s);
	if (!rn->v[rn->n] || nameset_add(&rn->seen, rn->v[rn->n])) {
		free(rn->v[rn->n]);
		rn->v[rn->n] = NULL;
		return -ENOMEM;
	}
	rn->v[++rn->n] = NULL;
	return 0;
}

/* ---- which jobs a set keeps ---- */

/* Takes j over, or releases it on failure. */
static int job_list_push(struct job_list *jl, struct gl_job *j)
{
	if (jl->n == jl->cap) {
		size_t cap = jl->cap ? jl->cap * 2 : 16;
		struct gl_job *v = realloc(jl->v, cap * sizeof(*v));
		if (!v) {
			gl_job_release(j);
			return -ENOMEM;
		}
		/* the set borrows the names, which stay where they are: only the array moved */
		jl->v = v;
		jl->cap = cap;
	}
	jl->v[jl->n++] = *j;
	return 0;
}

/* By ref: jobs of one pipeline (non-retried, any status, newest first), the first job of each
 * name with downloadable artifacts wins over later pipelines' (ordered_by_pipeline.find_by_name
 * in app/models/ci/pipeline.rb build_with_artifacts_in_self_and_project_descendants). A
 * pipeline family: the first of each name with an archive, any status. Recent jobs: every one
 * with an archive (the listing asked for successful ones only). */
static bool keeps(const struct job_list *jl, const struct gl_job *j)
{
	bool has = jl->pick == PICK_BY_REF ? j->downloadable : j->archive_size >= 0;
	return has && (jl->pick == PICK_ALL_ARCHIVES || !nameset_has(&jl->names, j->name));
}

int refrules_job_offer(struct job_list *jl, struct gl_job *j)
{
	if (!keeps(jl, j)) {
		gl_job_release(j);
		return 0;
	}
	int err = job_list_push(jl, j);
	if (err || jl->pick == PICK_ALL_ARCHIVES)
		return err;
	return nameset_add(&jl->names, jl->v[jl->n - 1].name);
}

int refrules_jobs_finish(struct job_list *jl, int err, struct gl_job **jobs, size_t *n)
{
	free(jl->names.slot);
	if (err) {
		gl_jobs_free(jl->v, jl->n);
		return err;
	}
	*jobs = jl->v;
	*n = jl->n;
	return 0;
}

void refrules_drop_report_only(struct gl_job *jobs, size_t *n)
{
	size_t kept = 0;
	for (size_t i = 0; i < *n; i++) {
		if (jobs[i].archive_size >= 0)
			jobs[kept++] = jobs[i];
		else
			gl_job_release(&jobs[i]); /* report-only: its name is shadowed */
	}
	*n = kept;
}

/* ---- which pipelines a ref, a pipeline or a commit stands for ---- */

static bool family_has(const struct family *f, int64_t id)
{
	for (size_t i = 0; i < f->n; i++) /* at most 201 ids */
		if (f->id[i] == id)
			return true;
	return false;
}

bool refrules_family_full(const struct family *f)
{
	return f->n == sizeof(f->id) / sizeof(f->id[0]);
}

void refrules_family_add(struct family *f, int64_t id, int64_t project_id)
{
	if (refrules_family_full(f))
		return;
	if (f->project_id && project_id != f->project_id)
		return; /* a multi-project downstream is not in the family */
	if (id > 0 && !family_has(f, id))
		f->id[f->n++] = id;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

void refrules_family_sort(struct family *f)
{
	qsort(f->id, f->n, sizeof(f->id[0]), cmp_id);
}

/* Pipelines that never stand for their ref (Enums::Ci::Pipeline.dangling_sources in
 * app/models/concerns/enums/ci/pipeline.rb); Project#ci_pipelines leaves them out. */
bool refrules_dangling_source(const char *src)
{
	static const char *dangling[] = {
		"webide",
		"parent_pipeline",
		"ondemand_dast_scan",
		"ondemand_dast_validation",
		"security_orchestration_policy",
		"pipeline_execution_policy_schedule",
		"container_registry_push",
		"duo_workflow",
	};
	for (size_t i = 0; src && i < sizeof(dangling) / sizeof(dangling[0]); i++)
		if (strcmp(src, dangling[i]) == 0)
			return true;
	return false;
}

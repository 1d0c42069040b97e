/* jobsets: the jobs of a set (tree.h: a ref, a pipeline, a merge request, a commit), all kinds
 * through one code path: whether the set exists, what it stands for (catalog_set_info), its jobs
 * listed as "<job>", "<job>.zip" and "<job>.log", a job found by name in it, and the sets of one
 * kind a project lists under "-".
 *
 * A ref's jobs are its newest successful pipeline's, as the backend lists them; where a token may
 * not list them (a job token) a job is found by probing the by-ref endpoint (jobprobe.c). Every
 * other kind resolves to one pipeline (a merge request's head pipeline, a commit's newest
 * successful one; none: an empty set) whose family's jobs are remembered once per pipeline id,
 * shared by every set naming it. A job named in a listing is the registry's object for its id
 * (catalog.c), made from the listing's info when first met, so every path names the same job.
 * Pipelines met by lookup are kept in a ring (c->met, under c->lock) and listed beside the 100
 * newest. What a token may not reach is ENOENT, as any name it cannot see. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/catalog.h"
#include "artifactfs/memo.h"
#include "artifactfs/tree.h"
#include "catalog_i.h"

/* A job set other than a ref: its pipeline (id 0: none, an empty set) and, for a merge
 * request, the request itself. */
struct set_val {
	struct memo_val v;
	struct gl_pipeline pl;
	struct gl_merge_request mr;
};

/* ---- a ref's jobs ---- */

static int load_ref_jobs(void *arg, struct memo_val **out)
{
	struct load_arg *la = arg;
	struct jobs_val *jv = calloc(1, sizeof(*jv));
	if (!jv)
		return -ENOMEM;
	memo_val_init(&jv->v, catalog_jobs_destroy);
	int err = la->c->be->ref_jobs(la->c->be->ctx, la->project, la->ref, &jv->jobs, &jv->n);
	jv->listable = err != -EACCES;
	if (err == -EACCES || err == -ENOENT) /* no successful pipeline: an empty ref */
		err = 0;
	if (err) {
		free(jv);
		return err;
	}
	*out = &jv->v;
	return 0;
}

static int get_ref_jobs(struct catalog *c, const char *project, const char *ref,
			struct jobs_val **out)
{
	*out = NULL;
	int err = catalog_ref(c, project, ref);
	if (err)
		return err;
	struct load_arg la = {.c = c, .project = project, .ref = ref};
	struct memo_key key = {.kind = MEMO_REF_JOBS, .a = project, .b = ref};
	struct memo_val *v;
	err = memo_get(c->memo, &key, load_ref_jobs, &la, &v);
	*out = (struct jobs_val *)v;
	return err;
}

/* Each job as "<job>" and "<job>.zip", and "<job>.log" once it has finished (with logs). */
static int job_names(const struct gl_job *jobs, size_t n, bool logs_shown, char ***out)
{
	char **names = calloc(n + 1, sizeof(*names)), **v = NULL;
	for (size_t i = 0; names && i < n; i++)
		names[i] = jobs[i].name;
	int err = names ? catalog_escape_names(names, n, true, &v) : -ENOMEM;
	free(names); /* the strings are borrowed from jobs */
	size_t k = 0, logs = 0;
	while (!err && v[k])
		k++;
	for (size_t i = 0; i < n; i++)
		logs += logs_shown && catalog_job_finished(&jobs[i]) &&
			tree_name_listable(jobs[i].name);
	char **all = err ? NULL : realloc(v, (k + logs + 1) * sizeof(*v));
	if (!err && !all)
		err = -ENOMEM;
	for (size_t i = 0, at = k; !err && i < n; i++) {
		if (!logs_shown || !catalog_job_finished(&jobs[i]) ||
		    !tree_name_listable(jobs[i].name))
			continue;
		char *e = tree_escape_job(jobs[i].name), *log = NULL;
		if (!e || asprintf(&log, "%s.log", e) < 0) {
			log = NULL;
			err = -ENOMEM;
		}
		free(e);
		all[at++] = log;
		all[at] = NULL;
	}
	if (err) {
		gitlab_strv_free(all ? all : v);
		return err;
	}
	*out = all;
	return 0;
}

int catalog_list_ref_jobs(struct catalog *c, const char *project, const char *ref, char ***out)
{
	struct jobs_val *jv;
	int err = get_ref_jobs(c, project, ref, &jv);
	if (err)
		return err;
	if (!jv->listable) {
		memo_val_put(&jv->v);
		return -EACCES;
	}
	err = job_names(jv->jobs, jv->n, !c->no_logs, out);
	memo_val_put(&jv->v);
	return err;
}

/* An empty listing of jobs (a merge request without a pipeline). */
static int load_jobs_none(struct jobs_val **out)
{
	struct jobs_val *jv = calloc(1, sizeof(*jv));
	if (!jv)
		return -ENOMEM;
	memo_val_init(&jv->v, catalog_jobs_destroy);
	jv->listable = true;
	*out = jv;
	return 0;
}

/* Copies src (may be NULL) into *dst; -ENOMEM. */
static int dup_into(char **dst, const char *src)
{
	*dst = src ? strdup(src) : NULL;
	return src && !*dst ? -ENOMEM : 0;
}

/* The job named name in a ref's listing, made from the listing's info when not known yet. */
static int job_from_listing(struct catalog *c, const char *project, const struct jobs_val *jv,
			    const char *name, struct job **out)
{
	const struct gl_job *info = NULL;
	for (size_t i = 0; i < jv->n && !info; i++)
		if (strcmp(jv->jobs[i].name, name) == 0)
			info = &jv->jobs[i];
	if (!info)
		return -ENOENT;
	char *key = catalog_id_key(c, info->id);
	if (!key)
		return -ENOMEM;
	struct job *j = catalog_job_find(c, project, key);
	if (j)
		catalog_job_checked(c, j, false);
	else if ((j = job_new(&c->env, project, NULL, info, key, (uint64_t)info->archive_size)))
		j = catalog_job_publish(c, j);
	free(key);
	*out = j;
	return j ? 0 : -ENOMEM;
}

int catalog_job_by_ref(struct catalog *c, const char *project, const char *ref, const char *name,
		       struct job **out)
{
	struct jobs_val *jv;
	*out = NULL;
	int err = get_ref_jobs(c, project, ref, &jv);
	if (err)
		return err;
	bool listable = jv->listable;
	if (listable)
		err = job_from_listing(c, project, jv, name, out);
	memo_val_put(&jv->v);
	return listable ? err : catalog_job_by_probe(c, project, ref, name, out);
}

/* ---- job sets: one code path for every kind ---- */

static void set_destroy(struct memo_val *v)
{
	struct set_val *sv = (struct set_val *)v;
	gl_pipeline_release(&sv->pl);
	gl_merge_request_release(&sv->mr);
	free(sv);
}

/* What a pipeline, merge request or commit set stands for. A token that may not ask (a job
 * token) reaches none of them: ENOENT, as for any name it cannot see. */
static int load_set(void *arg, struct memo_val **out)
{
	struct load_arg *la = arg;
	const struct backend *be = la->c->be;
	struct set_val *sv = calloc(1, sizeof(*sv));
	if (!sv)
		return -ENOMEM;
	memo_val_init(&sv->v, set_destroy);
	int err;
	if (la->set->by == TREE_BY_PIPELINE) {
		err = be->pipeline_get(be->ctx, la->project, la->set->id, &sv->pl);
	} else if (la->set->by == TREE_BY_MR) {
		err = be->mr_get(be->ctx, la->project, la->set->id, &sv->mr);
		if (!err)
			err = gl_pipeline_copy(&sv->mr.head, &sv->pl);
	} else {
		err = be->commit_pipeline(be->ctx, la->project, la->set->name, &sv->pl);
	}
	if (err) {
		set_destroy(&sv->v);
		return err == -EACCES ? -ENOENT : err;
	}
	*out = &sv->v;
	return 0;
}

static void pipeline_met(struct catalog *c, const char *project, int64_t id)
{
	char *p = strdup(project);
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; p && i < MET_MAX; i++)
		if (c->met[i].id == id && c->met[i].project &&
		    !strcmp(c->met[i].project, project)) {
			free(p);
			p = NULL;
		}
	if (p) {
		free(c->met[c->met_next].project);
		c->met[c->met_next].project = p;
		c->met[c->met_next].id = id;
		c->met_next = (c->met_next + 1) % MET_MAX;
	}
	pthread_mutex_unlock(&c->lock);
}

/* The set's value (a reference the caller puts); sets other than refs only. */
static int get_set(struct catalog *c, const char *project, const struct tree_set *set,
		   struct set_val **out)
{
	*out = NULL;
	int err = catalog_project(c, project);
	if (err)
		return err;
	char id[24];
	snprintf(id, sizeof(id), "%" PRId64, set->id);
	static const char *tags[] = {"r", "p", "m", "c"};
	struct load_arg la = {.c = c, .project = project, .set = set};
	struct memo_key key = {.kind = MEMO_SET,
			       .a = project,
			       .b = tags[set->by],
			       .c = set->name ? set->name : id};
	struct memo_val *v;
	err = memo_get(c->memo, &key, load_set, &la, &v);
	if (!err && set->by == TREE_BY_PIPELINE)
		pipeline_met(c, project, set->id);
	*out = (struct set_val *)v;
	return err;
}

static int load_pipe_jobs(void *arg, struct memo_val **out)
{
	struct load_arg *la = arg;
	struct jobs_val *jv = calloc(1, sizeof(*jv));
	if (!jv)
		return -ENOMEM;
	memo_val_init(&jv->v, catalog_jobs_destroy);
	int err = la->c->be->pipeline_jobs(la->c->be->ctx, la->project, la->id, &jv->jobs, &jv->n);
	if (err) {
		free(jv);
		return err == -EACCES ? -ENOENT : err;
	}
	jv->listable = true;
	*out = &jv->v;
	return 0;
}

/* The jobs of a set other than a ref: its pipeline family's, shared by every set naming it. */
static int get_set_jobs(struct catalog *c, const char *project, const struct tree_set *set,
			struct jobs_val **out)
{
	struct set_val *sv;
	*out = NULL;
	int err = get_set(c, project, set, &sv);
	if (err)
		return err;
	int64_t pid = sv->pl.id;
	memo_val_put(&sv->v);
	if (pid <= 0) /* a merge request without a pipeline: an empty set */
		return load_jobs_none(out);
	char id[24];
	snprintf(id, sizeof(id), "%" PRId64, pid);
	struct load_arg la = {.c = c, .project = project, .id = pid};
	struct memo_key key = {.kind = MEMO_PIPE_JOBS, .a = project, .b = id};
	struct memo_val *v;
	err = memo_get(c->memo, &key, load_pipe_jobs, &la, &v);
	*out = (struct jobs_val *)v;
	return err;
}

int catalog_set(struct catalog *c, const char *project, const struct tree_set *set)
{
	if (set->by == TREE_BY_REF)
		return catalog_ref(c, project, set->name);
	struct set_val *sv;
	int err = get_set(c, project, set, &sv);
	memo_val_put(sv ? &sv->v : NULL);
	return err;
}

int catalog_set_info(struct catalog *c, const char *project, const struct tree_set *set,
		     struct gl_pipeline *pl, struct gl_merge_request *mr)
{
	memset(pl, 0, sizeof(*pl));
	memset(mr, 0, sizeof(*mr));
	if (set->by == TREE_BY_REF)
		return -ENODATA;
	struct set_val *sv;
	int err = get_set(c, project, set, &sv);
	if (err)
		return err;
	err = gl_pipeline_copy(&sv->pl, pl);
	mr->iid = sv->mr.iid;
	if (!err && set->by == TREE_BY_MR &&
	    (dup_into(&mr->title, sv->mr.title) ||
	     dup_into(&mr->source_branch, sv->mr.source_branch) ||
	     dup_into(&mr->web_url, sv->mr.web_url)))
		err = -ENOMEM;
	if (err) {
		gl_pipeline_release(pl);
		gl_merge_request_release(mr);
	}
	memo_val_put(&sv->v);
	return err;
}

int catalog_list_set_jobs(struct catalog *c, const char *project, const struct tree_set *set,
			  char ***names)
{
	if (set->by == TREE_BY_REF)
		return catalog_list_ref_jobs(c, project, set->name, names);
	struct jobs_val *jv;
	int err = get_set_jobs(c, project, set, &jv);
	if (err)
		return err;
	err = job_names(jv->jobs, jv->n, !c->no_logs, names);
	memo_val_put(&jv->v);
	return err;
}

int catalog_job_in_set(struct catalog *c, const char *project, const struct tree_set *set,
		       const char *name, struct job **out)
{
	*out = NULL;
	if (set->by == TREE_BY_REF)
		return catalog_job_by_ref(c, project, set->name, name, out);
	struct jobs_val *jv;
	int err = get_set_jobs(c, project, set, &jv);
	if (err)
		return err;
	err = job_from_listing(c, project, jv, name, out);
	memo_val_put(&jv->v);
	return err;
}

/* The names a project lists under -/pipelines (newest first) or -/merge_requests. */
static int load_sets(void *arg, struct memo_val **out)
{
	struct load_arg *la = arg;
	const struct backend *be = la->c->be;
	struct gl_pipeline *pl = NULL;
	struct gl_merge_request *mr = NULL;
	size_t n = 0;
	int err = la->set->by == TREE_BY_PIPELINE
			  ? be->pipelines_list(be->ctx, la->project, &pl, &n)
			  : be->mrs_list(be->ctx, la->project, &mr, &n);
	if (err) /* nothing is handed over on failure */
		pl = NULL, mr = NULL, n = 0;
	if (err == -EACCES) /* a job token: lookup only */
		err = 0;
	char **v = err ? NULL : calloc(n + 1, sizeof(*v));
	for (size_t i = 0; v && i < n; i++)
		if (asprintf(&v[i], "%" PRId64, pl ? pl[i].id : mr[i].iid) < 0) {
			v[i] = NULL;
			gitlab_strv_free(v);
			v = NULL;
		}
	gl_pipelines_free(pl, pl ? n : 0);
	gl_merge_requests_free(mr, mr ? n : 0);
	if (err)
		return err;
	return v ? catalog_names_new(v, n, out) : -ENOMEM;
}

/* Adds the pipelines met by lookup that the listing does not show. */
static int add_met(struct catalog *c, const char *project, struct names_val *nv, char ***out)
{
	size_t n = 0;
	char **v = catalog_strv_dup(nv->names, &n), **w;
	pthread_mutex_lock(&c->lock);
	w = v ? realloc(v, (n + MET_MAX + 1) * sizeof(*v)) : NULL;
	for (size_t i = 0; w && i < MET_MAX; i++) {
		char id[24];
		if (!c->met[i].project || strcmp(c->met[i].project, project))
			continue;
		snprintf(id, sizeof(id), "%" PRId64, c->met[i].id);
		bool have = false;
		for (size_t k = 0; k < n && !have; k++)
			have = !strcmp(w[k], id);
		if (!have && (w[n] = strdup(id)))
			n++;
		w[n] = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	if (!w)
		gitlab_strv_free(v);
	*out = w;
	return w ? 0 : -ENOMEM;
}

int catalog_list_sets(struct catalog *c, const char *project, enum tree_set_by by, char ***names)
{
	int err = catalog_project(c, project);
	if (err)
		return err;
	if (by == TREE_BY_COMMIT || by == TREE_BY_REF) { /* commits: lookup only */
		*names = calloc(1, sizeof(**names));
		return *names ? 0 : -ENOMEM;
	}
	struct tree_set set = {.by = by};
	struct load_arg la = {.c = c, .project = project, .set = &set};
	struct memo_key key = {.kind = MEMO_SETS, .a = project, .b = by == TREE_BY_MR ? "m" : "p"};
	struct memo_val *v;
	err = memo_get(c->memo, &key, load_sets, &la, &v);
	if (err)
		return err;
	struct names_val *nv = (struct names_val *)v;
	err = by == TREE_BY_PIPELINE ? add_met(c, project, nv, names)
	      : (*names = catalog_strv_dup(nv->names, &(size_t){0})) ? 0
								     : -ENOMEM;
	memo_val_put(v);
	return err;
}

/* catalog: what names on the server stand for, remembered within the TTL, and the registry of
 * job objects; the catalog object itself (its making, freeing and counters) lives here too.
 *
 * Listings live in a memo table (memo.c), one entry per (kind, project[, ref[, name]]); this file
 * loads the names: project checks, the root listing, a project's refs and ref checks, and gives
 * the other catalog files the escaping every listing passes through. Errors that say something
 * about the name (ENOENT, EACCES) are remembered like values. The other entries are loaded by
 * jobsets.c (a ref's, pipeline's, merge request's or commit's jobs), jobids.c (jobs by id),
 * jobprobe.c (by-ref probes with a job token) and joblog.c (logs); jobchange.c expires them after
 * a keep or delete. None of them is called from here (catalog_i.h has the call order).
 *
 * Job objects (job.c) are kept in one list keyed by (project name, cache key), newest first, each
 * holding one reference of the list's own; idle ones past IDLE_JOBS_MAX are dropped. Their
 * archive lives in the cache under a key that names the GitLab instance and the job id, so every
 * mount of the same instance shares it; jobs known only by ref (a job token cannot resolve ids)
 * get a key of their own that is never reused once the ref is resolved again.
 *
 * Everything the server is asked goes through the backend table (backend.h). */
#include "artifactfs/catalog.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "artifactfs/log.h"
#include "artifactfs/memo.h"
#include "artifactfs/tree.h"
#include "catalog_i.h"

#define IDLE_JOBS_MAX 32 /* job objects (and their zip indexes) kept with no one using them */

static time_t monotonic_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* ---- names ---- */

static void names_destroy(struct memo_val *v)
{
	struct names_val *nv = (struct names_val *)v;
	gitlab_strv_free(nv->names);
	free(nv);
}

int catalog_names_new(char **names, size_t n, struct memo_val **out)
{
	struct names_val *nv = calloc(1, sizeof(*nv));
	if (!nv) {
		gitlab_strv_free(names);
		return -ENOMEM;
	}
	memo_val_init(&nv->v, names_destroy);
	nv->names = names;
	nv->n = n;
	*out = &nv->v;
	return 0;
}

char **catalog_strv_dup(char *const *src, size_t *n)
{
	size_t k = 0;
	while (src[k])
		k++;
	char **v = calloc(k + 1, sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < k; i++) {
		v[i] = strdup(src[i]);
		if (!v[i]) {
			gitlab_strv_free(v);
			return NULL;
		}
	}
	*n = k;
	return v;
}

static int load_root(void *arg, struct memo_val **out)
{
	struct catalog *c = ((struct load_arg *)arg)->c;
	size_t n = 0;
	if (c->projects) {
		char **v = catalog_strv_dup(c->projects, &n);
		return v ? catalog_names_new(v, n, out) : -ENOMEM;
	}
	struct gl_project *p;
	int err = c->be->projects_list(c->be->ctx, &p, &n);
	if (err)
		return err;
	char **v = calloc(n + 1, sizeof(*v));
	for (size_t i = 0; v && i < n; i++) {
		v[i] = strdup(p[i].path_with_namespace ? p[i].path_with_namespace : "");
		if (!v[i]) {
			gitlab_strv_free(v);
			v = NULL;
		}
	}
	gl_projects_free(p, n);
	return v ? catalog_names_new(v, n, out) : -ENOMEM;
}

/* A project exists when GitLab shows it; a token that may not ask (a job token) is taken at its
 * word, and what lies below answers for it. */
static int load_project(void *arg, struct memo_val **out)
{
	struct load_arg *la = arg;
	struct gl_project p = {0};
	int err = la->c->be->project_get(la->c->be->ctx, la->project, &p);
	gl_project_release(&p);
	if (err == -EACCES)
		err = 0;
	if (err)
		return err;
	return catalog_names_new(NULL, 0, out);
}

static int load_refs(void *arg, struct memo_val **out)
{
	struct load_arg *la = arg;
	char **names = NULL;
	size_t n = 0;
	int err = la->c->be->refs_list(la->c->be->ctx, la->project, &names, &n);
	if (err == -EACCES)
		return catalog_names_new(NULL, 0, out);
	if (err)
		return err;
	return catalog_names_new(names, n, out);
}

static int get_names(struct catalog *c, enum memo_kind kind, const char *project, memo_load_fn load,
		     struct names_val **out)
{
	struct load_arg la = {.c = c, .project = project};
	struct memo_key key = {.kind = kind, .a = project};
	struct memo_val *v;
	int err = memo_get(c->memo, &key, load, &la, &v);
	*out = (struct names_val *)v;
	return err;
}

int catalog_project(struct catalog *c, const char *project)
{
	struct names_val *nv;
	int err = get_names(c, MEMO_PROJECT, project, load_project, &nv);
	memo_val_put(nv ? &nv->v : NULL);
	return err;
}

/* One cheap call (gitlab_ref_check), never a listing of every branch: any ref GitLab serves
 * exists, merge request refs and deleted branches with pipelines too. "Cannot tell" (a job
 * token on a private project, which GitLab answers as anonymous) is taken on trust: the by-ref
 * endpoints below answer for it. */
static int load_ref(void *arg, struct memo_val **out)
{
	struct load_arg *la = arg;
	int err = la->c->be->ref_check(la->c->be->ctx, la->project, la->ref);
	if (err == -EACCES)
		err = 0;
	return err ? err : catalog_names_new(NULL, 0, out);
}

/* Whether the project's branch and tag listing, if already loaded and fresh, names ref. */
static bool ref_listed(struct catalog *c, const char *project, const char *ref)
{
	struct memo_key key = {.kind = MEMO_REFS, .a = project};
	struct names_val *nv = (struct names_val *)memo_peek(c->memo, &key);
	bool found = false;
	for (size_t i = 0; nv && nv->names && i < nv->n && !found; i++)
		found = strcmp(nv->names[i], ref) == 0;
	memo_val_put(nv ? &nv->v : NULL);
	return found;
}

int catalog_ref(struct catalog *c, const char *project, const char *ref)
{
	int err = catalog_project(c, project);
	if (err || ref_listed(c, project, ref))
		return err;
	struct load_arg la = {.c = c, .project = project, .ref = ref};
	struct memo_key key = {.kind = MEMO_REF, .a = project, .b = ref};
	struct memo_val *v = NULL;
	err = memo_get(c->memo, &key, load_ref, &la, &v);
	memo_val_put(v);
	return err;
}

/* Escapes each name; with_zip, as job names (tree_escape_job), adding "<name>.zip" after each.
 * Names no listing can show are left out here, the one place every listing of GitLab names
 * passes. */
int catalog_escape_names(char *const *names, size_t n, bool with_zip, char ***out)
{
	size_t per = with_zip ? 2 : 1;
	char **v = calloc(n * per + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0, k = 0; i < n; i++) {
		if (!tree_name_listable(names[i])) {
			log_msg(LOG_WARNING,
				"name \"%.200s\" left out of a listing: the kernel "
				"cannot show it",
				names[i]);
			continue;
		}
		char **slot = v + k;
		slot[0] = with_zip ? tree_escape_job(names[i]) : tree_escape(names[i]);
		if (slot[0] && with_zip && asprintf(&slot[1], "%s.zip", slot[0]) < 0)
			slot[1] = NULL;
		if (!slot[0] || (with_zip && !slot[1])) {
			gitlab_strv_free(v);
			return -ENOMEM;
		}
		k += per;
	}
	*out = v;
	return 0;
}

int catalog_list_root(struct catalog *c, char ***out)
{
	struct names_val *nv;
	int err = get_names(c, MEMO_ROOT, NULL, load_root, &nv);
	if (err)
		return err;
	err = catalog_escape_names(nv->names, nv->n, false, out);
	memo_val_put(&nv->v);
	return err;
}

int catalog_list_refs(struct catalog *c, const char *project, char ***out)
{
	int err = catalog_project(c, project);
	if (err)
		return err;
	struct names_val *nv;
	err = get_names(c, MEMO_REFS, project, load_refs, &nv);
	if (err)
		return err;
	err = nv->names ? catalog_escape_names(nv->names, nv->n, false, out) : -EACCES;
	memo_val_put(&nv->v);
	return err;
}

/* Every listing of jobs (a ref's, a pipeline family's, a project's recent ones) is a jobs_val. */
void catalog_jobs_destroy(struct memo_val *v)
{
	struct jobs_val *jv = (struct jobs_val *)v;
	gl_jobs_free(jv->jobs, jv->n);
	free(jv);
}

/* ---- the registry of job objects ---- */

char *catalog_id_key(struct catalog *c, int64_t job_id)
{
	char *k = NULL;
	if (asprintf(&k, "j%s-%" PRId64, c->origin, job_id) < 0)
		return NULL;
	return k;
}

/* Finds a job object by (project, key), taking a reference; lock held. */
static struct job *job_find_locked(struct catalog *c, const char *project, const char *key)
{
	for (struct job_node *n = c->jobs; n; n = n->next)
		if (strcmp(job_key(n->job), key) == 0 && strcmp(job_project(n->job), project) == 0)
			return job_hold(n->job);
	return NULL;
}

struct job *catalog_job_find(struct catalog *c, const char *project, const char *key)
{
	pthread_mutex_lock(&c->lock);
	struct job *j = job_find_locked(c, project, key);
	pthread_mutex_unlock(&c->lock);
	return j;
}

/* Marks j as just seen with its archive on the server (a fresh listing names it) or, with
 * check, tells whether it was within the TTL. Lock not held. */
bool catalog_job_checked(struct catalog *c, const struct job *j, bool check)
{
	time_t now = c->now();
	bool fresh = false;
	pthread_mutex_lock(&c->lock);
	for (struct job_node *n = c->jobs; n; n = n->next) {
		if (n->job != j)
			continue;
		fresh = now - n->checked < c->ttl_s;
		if (!check)
			n->checked = now;
	}
	pthread_mutex_unlock(&c->lock);
	return fresh;
}

/* Unlinks the oldest jobs that only the list holds, past IDLE_JOBS_MAX of them, onto *dead:
 * their indexes can be large, and a later lookup makes them anew from the disk cache. Lock held
 * (nobody takes a reference on a job only the list holds without it). The list is newest first,
 * so the idle jobs met last are the ones dropped. */
static void jobs_trim(struct catalog *c, struct job_node **dead)
{
	size_t idle = 0;
	for (struct job_node **pp = &c->jobs; *pp;) {
		struct job_node *n = *pp;
		if (job_refs(n->job) == 1 && ++idle > IDLE_JOBS_MAX) {
			*pp = n->next;
			n->next = *dead;
			*dead = n;
			atomic_fetch_sub(&c->jobs_open, 1);
		} else {
			pp = &n->next;
		}
	}
}

static void nodes_free(struct job_node *n)
{
	while (n) {
		struct job_node *next = n->next;
		job_put(n->job);
		free(n);
		n = next;
	}
}

/* Publishes j in the list unless an equal one got there first, which is returned instead (and
 * j put). NULL on ENOMEM (j put too). */
struct job *catalog_job_publish(struct catalog *c, struct job *j)
{
	struct job_node *dead = NULL, *node = malloc(sizeof(*node));
	pthread_mutex_lock(&c->lock);
	struct job *have = job_find_locked(c, job_project(j), job_key(j));
	if (!have && node) {
		node->job = job_hold(j); /* the list's own reference */
		node->checked = c->now();
		node->next = c->jobs;
		c->jobs = node;
		node = NULL;
		atomic_fetch_add(&c->jobs_open, 1);
		jobs_trim(c, &dead);
	}
	pthread_mutex_unlock(&c->lock);
	nodes_free(dead);
	if (have || node) {
		free(node);
		job_put(j);
		return have;
	}
	return j;
}

/* Removes j from the list (its artifacts are gone); lock not held. */
void catalog_job_unpublish(struct catalog *c, struct job *j)
{
	struct job_node *found = NULL;
	pthread_mutex_lock(&c->lock);
	for (struct job_node **pp = &c->jobs; *pp; pp = &(*pp)->next) {
		if ((*pp)->job == j) {
			found = *pp;
			*pp = found->next;
			found->next = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (found) {
		atomic_fetch_sub(&c->jobs_open, 1);
		nodes_free(found);
	}
}

void catalog_get_stats(struct catalog *c, struct catalog_stats *out)
{
	out->jobs_open = atomic_load(&c->jobs_open);
	out->indexes_loaded = atomic_load(&c->env.indexes_loaded);
	out->arrived_bytes = atomic_load(&c->env.arrived_bytes);
	out->transfers_active = atomic_load(&c->env.transfers);
	out->auth_probes = atomic_load(&c->env.auth_probes);
}

int catalog_new(const struct catalog_config *cfg, struct catalog **out)
{
	struct catalog *c = calloc(1, sizeof(*c));
	if (!c || !(c->memo = memo_new(cfg->ttl_s, cfg->now))) {
		free(c);
		return -ENOMEM;
	}
	struct backend be = cfg->backend ? *cfg->backend : backend_gitlab(cfg->gl);
	job_env_init(&c->env, &be, cfg->cache);
	if (job_env_authorize(&c->env, cfg->ttl_s, cfg->now)) {
		memo_free(c->memo);
		free(c);
		return -ENOMEM;
	}
	c->env.pool = cfg->pool;
	c->be = &c->env.be;
	c->projects = cfg->projects;
	c->ttl_s = cfg->ttl_s;
	c->no_logs = cfg->no_logs;
	c->now = cfg->now ? cfg->now : monotonic_s;
	uint64_t h = fnv1a(FNV_INIT, cfg->base_url, strlen(cfg->base_url));
	snprintf(c->origin, sizeof(c->origin), "%016" PRIx64, h);
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

void catalog_free(struct catalog *c)
{
	if (!c)
		return;
	job_env_drain(&c->env);
	memo_free(c->memo);
	nodes_free(c->jobs);
	for (size_t i = 0; i < MET_MAX; i++)
		free(c->met[i].project);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

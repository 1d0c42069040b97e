/* catalog_i.h: what the catalog's files share, private to them (catalog.c, jobsets.c, joblog.c,
 * jobprobe.c, jobids.c, jobchange.c). The catalog object itself, the memo kinds that key its
 * table (one enum, so that no two files pick the same number), the memo values more than one file
 * reads (names_val, jobs_val), a loader's argument, and the helpers each file offers the others.
 * Calls go one way: catalog.c (names, the registry of job objects) and jobprobe.c call none of
 * the others; jobids.c calls catalog.c and jobprobe.c; joblog.c calls jobids.c; jobsets.c calls
 * catalog.c, jobprobe.c and joblog.c; jobchange.c calls catalog.c. The lock rules are
 * catalog.h's. */
#ifndef ARTIFACTFS_CATALOG_I_H
#define ARTIFACTFS_CATALOG_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "artifactfs/catalog.h"
#include "artifactfs/memo.h"

/* What a memo entry holds; the kind is the first part of its key. */
enum memo_kind {
	MEMO_PROJECT,     /* names_val, no names: the project exists */
	MEMO_ROOT,        /* names_val: the projects at the root */
	MEMO_REFS,        /* names_val: a project's refs (names NULL: may not be listed) */
	MEMO_REF,         /* names_val, no names: the ref exists (or cannot be told: a job token) */
	MEMO_REF_JOBS,    /* jobs_val: a ref's jobs */
	MEMO_BYREF_JOB,   /* jobref_val: a job found by probing the by-ref endpoint */
	MEMO_RECENT_JOBS, /* jobs_val: a project's recent jobs */
	MEMO_JOB,         /* jobinfo_val: a job by id still has its archive */
	MEMO_SET,         /* set_val: what a pipeline, merge request or commit set stands for */
	MEMO_PIPE_JOBS,   /* jobs_val: a pipeline family's jobs with an archive */
	MEMO_SETS,        /* names_val: a project's pipelines or merge requests, for listing */
	MEMO_LOG,         /* job_log: a job's log (joblog.c), its size learned as it is read */
};

struct names_val { /* decoded names; names NULL: the level cannot be listed with this token */
	struct memo_val v;
	char **names;
	size_t n;
};

struct jobs_val { /* a ref's jobs; jobs NULL and listable false: cannot be listed */
	struct memo_val v;
	struct gl_job *jobs;
	size_t n;
	bool listable;
};

struct job_node {
	struct job *job; /* the list's own reference */
	time_t checked;  /* when the server last said the job has its archive */
	struct job_node *next;
};

#define MET_MAX 64 /* pipelines met by lookup, listed beside the newest */

struct catalog {
	struct job_env env;       /* the backend, the cache, what jobs share */
	const struct backend *be; /* &env.be */
	char **projects;
	char origin[17]; /* hash of the base URL: the cache namespace */
	struct memo *memo;
	bool no_logs; /* set once at creation (catalog_config.no_logs) */
	pthread_mutex_t lock;
	struct job_node *jobs; /* protected by lock */
	struct {
		char *project;
		int64_t id;
	} met[MET_MAX];  /* protected by lock: a ring of pipelines met by lookup */
	size_t met_next; /* protected by lock */
	int ttl_s;
	time_t (*now)(void);
	atomic_uint_fast64_t jobs_open;
};

/* What a loader needs: the catalog and the key's names. */
struct load_arg {
	struct catalog *c;
	const char *project, *ref, *name;
	const struct tree_set *set;
	int64_t id;
	int64_t job_id;
};

static inline uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

#define FNV_INIT 14695981039346656037ull

/* catalog.c: values shared by the listings. names_new takes names (freed on failure too);
 * strv_dup copies a NULL-terminated array (NULL on ENOMEM); escape_names escapes each name,
 * with_zip adding "<name>.zip" after each, and leaves out names no listing can show;
 * jobs_destroy is a jobs_val's destructor. */
int catalog_names_new(char **names, size_t n, struct memo_val **out);
char **catalog_strv_dup(char *const *src, size_t *n);
int catalog_escape_names(char *const *names, size_t n, bool with_zip, char ***out);
void catalog_jobs_destroy(struct memo_val *v);

/* catalog.c: the registry of job objects (c->jobs). id_key: the cache key of a job known by id
 * (malloc'ed, NULL on ENOMEM). job_find: the job of (project, key) with a reference taken, or
 * NULL. job_checked: marks j as just seen with its archive or, with check, tells whether it was
 * within the TTL. job_publish: puts j in the list unless an equal one got there first, which is
 * returned instead (j put); NULL on ENOMEM (j put too). job_unpublish: takes j out of the list.
 * None of them is called with c->lock held. */
char *catalog_id_key(struct catalog *c, int64_t job_id);
struct job *catalog_job_find(struct catalog *c, const char *project, const char *key);
bool catalog_job_checked(struct catalog *c, const struct job *j, bool check);
struct job *catalog_job_publish(struct catalog *c, struct job *j);
void catalog_job_unpublish(struct catalog *c, struct job *j);

/* jobprobe.c: what a job token learns of an archive whose job it may not read. probe_job makes
 * (not publishes) the job of the archive a names, its cache entry seeded with the tail: *out is
 * the caller's reference. job_by_probe: the job under a ref found through the by-ref endpoint,
 * remembered for the TTL (a reference the caller puts). */
int catalog_probe_job(struct catalog *c, const struct gl_archive *a, const struct gl_job *info,
		      const char *key, struct job **out);
int catalog_job_by_probe(struct catalog *c, const char *project, const char *ref, const char *name,
			 struct job **out);

/* joblog.c: whether a job has finished, and so has a log that never changes. */
bool catalog_job_finished(const struct gl_job *g);

#endif

/* refrules: GitLab's rules for which jobs a ref, a pipeline or a commit stands for, and which
 * names a project's refs are, applied to our own structs (gitlab.h) as gitlab.c's requests bring
 * them in. Private to gitlab.c, its only caller: no I/O and no JSON here, so gitlab.c decides
 * what to ask and refrules what the answers mean. Names are deduplicated in linear time (issue 12
 * item 10: a quadratic check over 3,000 pages of branches took 253 s). Not thread-safe: each
 * set belongs to the one call that fills it. */
#ifndef ARTIFACTFS_REFRULES_H
#define ARTIFACTFS_REFRULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "artifactfs/gitlab.h"

#define CHILD_DEPTH 3 /* levels of child pipelines walked below a ref's pipeline */
#define CHILD_MAX \
	200 /* child pipelines walked in all (issue 12 item 10: 64 per level
               over 3 levels made 4,647 requests) */

/* A set of names for the first-wins rules. Zeroed: empty; free slot when done. */
struct nameset {
	const char **slot; /* borrowed strings; NULL: empty */
	size_t cap, n;     /* cap a power of two, n <= cap / 2 */
};

/* The names of a project's refs, each once, in the order first met (branches before tags). Zeroed:
 * empty. v is NULL-terminated once it holds any; free v with gitlab_strv_free() and seen.slot
 * with free(). */
struct ref_names {
	char **v;
	size_t n, cap;
	struct nameset seen; /* the strings of v */
};

/* Adds a copy of s unless a ref of that name is there already. Returns 0 or -ENOMEM. */
int refrules_ref_name_add(struct ref_names *rn, const char *s);

/* Which jobs a job set keeps, in the order offered. */
enum job_pick {
	PICK_BY_REF,       /* per name the first with downloadable artifacts: by-ref's rule */
	PICK_BY_NAME,      /* per name the first with an archive: a pipeline family as a set */
	PICK_ALL_ARCHIVES, /* every one with an archive: a project's recent jobs */
};

/* A job set being chosen. Zeroed but for pick: empty. */
struct job_list {
	enum job_pick pick;
	struct gl_job *v;
	size_t n, cap;
	struct nameset names; /* names of v, for the first-wins rule */
};

/* Offers j to jl: taken over when jl's rule keeps it, else released; either way the caller
 * no longer owns j's strings. Returns 0 or -ENOMEM. */
int refrules_job_offer(struct job_list *jl, struct gl_job *j);

/* Ends jl: with err 0 hands its jobs to *jobs (*n of them; free with gl_jobs_free()), else frees
 * them. Returns err. */
int refrules_jobs_finish(struct job_list *jl, int err, struct gl_job **jobs, size_t *n);

/* A pipeline family: a pipeline and its same-project descendants. */
struct family {
	int64_t id[CHILD_MAX + 1];
	size_t n;
	int64_t project_id;
};

/* Adds the downstream pipeline id of project project_id (a bridge's) to f unless f is full, it
 * is of another project (a multi-project downstream) or f has it. id <= 0 is ignored. */
void refrules_family_add(struct family *f, int64_t id, int64_t project_id);
/* Whether f holds CHILD_MAX children: more bridges add nothing. */
bool refrules_family_full(const struct family *f);
/* Sorts f by id (parent first): the order GitLab walks a family in. */
void refrules_family_sort(struct family *f);

/* Whether a pipeline of this source never stands for its ref or commit (NULL: it may). */
bool refrules_dangling_source(const char *src);

/* Drops (releases) the report-only jobs of a by-ref set, keeping the order: what is left are the
 * jobs whose archive by-ref serves. *n is updated. */
void refrules_drop_report_only(struct gl_job *jobs, size_t *n);

#endif

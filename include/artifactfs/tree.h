/* tree: the path grammar of the mount. Turns a FUSE path into what it names, and names from
 * GitLab into path components. Pure: no I/O, no globals; thread-safe.
 *
 *   /                                       TREE_ROOT
 *   /<project>                              TREE_PROJECT
 *   /<project>/-                            TREE_DASH
 *   /<project>/-/jobs                       TREE_JOBS
 *   /<project>/-/jobs/<id>[/member]         TREE_JOBID   (member "" is the job folder)
 *   /<project>/-/jobs/<id>.zip              TREE_JOBID_ZIP
 *   /<project>/-/jobs/<id>.log              TREE_JOBID_LOG
 *   /<project>/-/pipelines                  TREE_SETS    (set.by TREE_BY_PIPELINE)
 *   /<project>/-/merge_requests             TREE_SETS    (set.by TREE_BY_MR)
 *   /<project>/-/commits                    TREE_SETS    (set.by TREE_BY_COMMIT)
 *   <set>                                   TREE_SET, a job set, one of:
 *       /<project>/<ref>                        TREE_BY_REF
 *       /<project>/-/pipelines/<id>             TREE_BY_PIPELINE
 *       /<project>/-/merge_requests/<iid>       TREE_BY_MR
 *       /<project>/-/commits/<sha>              TREE_BY_COMMIT (4 to 40 lowercase hex digits)
 *   <set>/<job>[/member]                    TREE_SET_JOB (member "" is the job folder)
 *   <set>/<job>.zip                         TREE_SET_ZIP
 *   <set>/<job>.log                         TREE_SET_LOG
 *
 * Project, ref and job components are escaped: '%' is "%25" and '/' is "%2F" (or %2f); any other
 * '%' sequence is invalid. Member paths are the archive's own names, unescaped. A ref can never be
 * "-" (git refuses it), so "-" is free for the folders that are not refs. A job component ending
 * in ".zip" or ".log" is always that job's archive or log; a job whose name itself ends so has
 * that dot written "%2E" ("x%2Elog/", "x%2Elog.zip", "x%2Elog.log"), the only place %2E is valid,
 * so a job "x.log" and the log of a job "x" never share a name.
 *
 * Inside a member path, a component ending in '#' names the inside of the archive member named
 * without the '#' ("a.tar.gz#/inner.zip#/x"), unless the archive has a real member of that name:
 * only the index can tell, so the grammar offers tree_nest_next() and the caller decides. */
#ifndef ARTIFACTFS_TREE_H
#define ARTIFACTFS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tree_kind {
	TREE_ROOT,
	TREE_PROJECT,
	TREE_DASH,
	TREE_JOBS,
	TREE_JOBID,
	TREE_JOBID_ZIP,
	TREE_JOBID_LOG,
	TREE_SETS,
	TREE_SET,
	TREE_SET_JOB,
	TREE_SET_ZIP,
	TREE_SET_LOG,
};

/* What names a set of jobs: every kind is served by the same code paths. */
enum tree_set_by {
	TREE_BY_REF,      /* a branch or tag's newest successful pipeline, GitLab's by-ref rules */
	TREE_BY_PIPELINE, /* one pipeline and its same-project descendants */
	TREE_BY_MR,       /* a merge request's head pipeline */
	TREE_BY_COMMIT,   /* a commit's newest successful pipeline */
};

struct tree_set {
	enum tree_set_by by;
	char *name; /* TREE_BY_REF: the decoded ref; TREE_BY_COMMIT: the sha; else NULL */
	int64_t id; /* TREE_BY_PIPELINE: the pipeline id; TREE_BY_MR: the iid; else 0 */
};

struct tree_path {
	enum tree_kind kind;
	char *project;       /* decoded, or NULL above it */
	struct tree_set set; /* TREE_SETS (by only), TREE_SET and below */
	char *job;           /* decoded job name, TREE_SET_JOB / _ZIP / _LOG */
	int64_t job_id;      /* TREE_JOBID / _ZIP / _LOG, else 0 */
	const char *member; /* path inside the archive ("" for the job folder itself), pointing into
	                       the parsed path; NULL when the path is not inside a job folder */
};

/* Parses path (as FUSE gives it, starting with '/'). On success fills *out (release it with
 * tree_path_release()); the member pointer borrows from path. Returns 0, -ENOENT (malformed:
 * empty component, invalid escape, bad id or sha, unknown folder under "-"), -ENOTDIR (a path
 * below a .zip or .log file), -ENAMETOOLONG, -ENOMEM. */
int tree_parse(const char *path, struct tree_path *out);
void tree_path_release(struct tree_path *tp);

/* Deep copy of a set; -ENOMEM leaves dst empty. Release with tree_set_release(). */
int tree_set_copy(const struct tree_set *src, struct tree_set *dst);
void tree_set_release(struct tree_set *s);

/* Escapes a GitLab name into one path component. Returns a malloc'ed string or NULL (ENOMEM). */
char *tree_escape(const char *name);
/* The same for a job name: also writes the dot of a final ".zip" or ".log" as "%2E". */
char *tree_escape_job(const char *name);

/* Decodes one component. Returns 0 and a malloc'ed *out, -ENOENT (invalid escape, empty, a
 * decoded NUL, or "." or "..", which no listing shows), -ENOMEM. */
int tree_unescape(const char *comp, size_t len, char **out);

/* Whether a GitLab name (project, ref or job) can be a folder entry, with its ".zip" too: the
 * kernel fails a whole listing with EIO on an empty name or one over FUSE's 1024 bytes, and "."
 * and ".." would stand beside the folder's own. Callers leave the others out of listings. */
bool tree_name_listable(const char *name);

/* The next possible nesting in a member path at or after offset from: the offset one past the
 * '#' that ends a component ("a/x.tar.gz#/b" from 0 gives 11), so that member[0, pos - 1) names
 * the archive member and member + pos (past its '/') the path inside it. A lone "#" component
 * names nothing and is skipped. Returns 0 when there is none. */
size_t tree_nest_next(const char *member, size_t from);

#endif

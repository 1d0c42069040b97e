/* tree: the path grammar of the mount. Turns a FUSE path into what it names, and names from
 * GitLab into path components. Pure: no I/O, no globals; thread-safe.
 *
 *   /                                  TREE_ROOT
 *   /<project>                         TREE_PROJECT
 *   /<project>/<ref>                   TREE_REF
 *   /<project>/<ref>/<job>[/member]    TREE_REF_JOB   (member "" is the job folder)
 *   /<project>/<ref>/<job>.zip         TREE_REF_ZIP
 *   /<project>/-                       TREE_DASH
 *   /<project>/-/jobs                  TREE_JOBS
 *   /<project>/-/jobs/<id>[/member]    TREE_JOBID
 *   /<project>/-/jobs/<id>.zip         TREE_JOBID_ZIP
 *
 * Project, ref and job components are escaped: '%' is "%25" and '/' is "%2F" (or %2f); any other
 * '%' sequence is invalid. Member paths are the archive's own names, unescaped. A ref can never be
 * "-" (git refuses it), so "-" is free for the jobs-by-id folder. */
#ifndef ARTIFACTFS_TREE_H
#define ARTIFACTFS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tree_kind {
	TREE_ROOT,
	TREE_PROJECT,
	TREE_REF,
	TREE_REF_JOB,
	TREE_REF_ZIP,
	TREE_DASH,
	TREE_JOBS,
	TREE_JOBID,
	TREE_JOBID_ZIP,
};

struct tree_path {
	enum tree_kind kind;
	char *project;      /* decoded, or NULL above it */
	char *ref;          /* decoded, TREE_REF and below */
	char *job;          /* decoded job name, TREE_REF_JOB / TREE_REF_ZIP */
	int64_t job_id;     /* TREE_JOBID / TREE_JOBID_ZIP, else 0 */
	const char *member; /* path inside the archive ("" for the job folder itself), pointing into
	                       the parsed path; NULL when the path is not inside a job folder */
};

/* Parses path (as FUSE gives it, starting with '/'). On success fills *out (release it with
 * tree_path_release()); the member pointer borrows from path. Returns 0, -ENOENT (malformed:
 * empty component, invalid escape, bad job id), -ENAMETOOLONG, -ENOMEM. */
int tree_parse(const char *path, struct tree_path *out);
void tree_path_release(struct tree_path *tp);

/* Escapes a GitLab name into one path component. Returns a malloc'ed string or NULL (ENOMEM). */
char *tree_escape(const char *name);

/* Decodes one component. Returns 0 and a malloc'ed *out, -ENOENT (invalid escape, empty, a
 * decoded NUL, or "." or "..", which no listing shows), -ENOMEM. */
int tree_unescape(const char *comp, size_t len, char **out);

/* Whether a GitLab name (project, ref or job) can be a folder entry, with its ".zip" too: the
 * kernel fails a whole listing with EIO on an empty name or one over FUSE's 1024 bytes, and "."
 * and ".." would stand beside the folder's own. Callers leave the others out of listings. */
bool tree_name_listable(const char *name);

#endif

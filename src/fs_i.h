/* fs_i: what the files of the fs module share, private to them. fs.c holds the operations table
 * and calls xattr.c (the extended attributes) and place.c (what a path leads to); xattr.c calls
 * place.c; nothing calls back up. The kinds of path below are tree_path's, named once here so
 * that every file answers "is this a job's archive?" the same way. */
#ifndef ARTIFACTFS_FS_I_H
#define ARTIFACTFS_FS_I_H

#include <stdbool.h>

#include "artifactfs/catalog.h"
#include "artifactfs/fs.h"
#include "artifactfs/job.h"
#include "artifactfs/nest.h"
#include "artifactfs/tree.h"
#include "artifactfs/zipindex.h"

static inline bool is_zip(const struct tree_path *tp)
{
	return tp->kind == TREE_SET_ZIP || tp->kind == TREE_JOBID_ZIP;
}

static inline bool is_log(const struct tree_path *tp)
{
	return tp->kind == TREE_SET_LOG || tp->kind == TREE_JOBID_LOG;
}

/* A job folder or a path inside one (tp->member set). */
static inline bool is_in_job(const struct tree_path *tp)
{
	return tp->kind == TREE_SET_JOB || tp->kind == TREE_JOBID;
}

/* What names a job: its folder, its members, its archive, its log. */
static inline bool names_job(const struct tree_path *tp)
{
	return is_in_job(tp) || is_zip(tp) || is_log(tp);
}

/* What carries the job's xattrs: its folder and its archive. */
static inline bool is_job_level(const struct tree_path *tp)
{
	return is_zip(tp) || (is_in_job(tp) && tp->member[0] == '\0');
}

/* ---- place.c ---- */

/* What a path naming a job leads to: the job, and for a path inside its folder the member and
 * the index it lies in (the artifacts zip's, or a nested archive's). */
struct place {
	struct job *job;            /* held */
	struct nest *nest;          /* held; NULL: in the artifacts zip itself */
	const struct zip_member *m; /* borrowed from zi; NULL for the job folder, .zip and .log */
	const struct zipindex *zi;
};

/* The job tp names (any path for which names_job() holds), held: job_put() it. 0 or the
 * catalog's -errno. */
int place_find_job(struct catalog *cat, const struct tree_path *tp, struct job **out);

/* Fills p for tp (a path naming a job); on success the caller releases p. An archive too large
 * to unpack (a bomb) is -EIO, unpack.c having said why in the log; else 0 or the layers' -errno. */
int place_find(struct catalog *cat, const struct tree_path *tp, struct place *p);

/* Puts what p holds and clears it. */
void place_release(struct place *p);

/* ---- xattr.c: the extended attributes of tp (parsed by the caller), fc borrowed ---- */

/* getxattr: the value's length, copied into buf unless size is 0; -ERANGE when it does not fit,
 * -ENODATA when tp has no such attribute, else the layers' -errno. Reading the cache drop on
 * the root drops the cache, as its value says (doc/SPEC.md). */
int xattr_get(struct fs_config *fc, const struct tree_path *tp, const char *name, char *buf,
	      size_t size);

/* listxattr: the names' total length, written into buf unless size is 0; -ERANGE when it does
 * not fit. tp must exist (the caller stat()s it first). */
int xattr_list(struct fs_config *fc, const struct tree_path *tp, char *buf, size_t size);

/* setxattr: 0 once done; -EINVAL for a known name whose value is not "1", -EROFS for every
 * other name or place, else the layers' -errno. */
int xattr_set(struct fs_config *fc, const struct tree_path *tp, const char *name, const char *value,
	      size_t size);

#endif

/* place: what a path naming a job leads to, shared by the operations (fs.c) and the extended
 * attributes (xattr.c). The job is found through the catalog (under a set by its name, else by
 * its id); a member through the job's zip index, or through the nested archive its path leads
 * into (nest.h). A place holds references on its job and nest until place_release(), so the
 * member and index it borrows stay valid that long. Calls nothing of fs.c or xattr.c. */
#include "fs_i.h"

#include <errno.h>
#include <string.h>

int place_find_job(struct catalog *cat, const struct tree_path *tp, struct job **out)
{
	if (tp->kind == TREE_SET_JOB || tp->kind == TREE_SET_ZIP || tp->kind == TREE_SET_LOG)
		return catalog_job_in_set(cat, tp->project, &tp->set, tp->job, out);
	return catalog_job_by_id(cat, tp->project, tp->job_id, out);
}

void place_release(struct place *p)
{
	nest_put(p->nest);
	job_put(p->job);
	memset(p, 0, sizeof(*p));
}

int place_find(struct catalog *cat, const struct tree_path *tp, struct place *p)
{
	memset(p, 0, sizeof(*p));
	int err = place_find_job(cat, tp, &p->job);
	if (err || !is_in_job(tp) || tp->member[0] == '\0')
		return err;
	err = nest_find(p->job, tp->member, &p->nest, &p->m);
	if (!err && p->nest)
		p->zi = nest_index(p->nest);
	else if (!err)
		err = job_index(p->job, &p->zi);
	if (err)
		place_release(p);
	return err == -EFBIG ? -EIO : err; /* a bomb: unpack.c said so in the log */
}

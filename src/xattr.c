/* xattr: the extended-attribute protocol of doc/SPEC.md, for fs.c's getxattr, listxattr and
 * setxattr. The root carries the mount's statistics (user.artifactfs.stats) and, unlisted, the
 * cache drop (reading or setting user.artifactfs.drop_cache); a job folder and its <job>.zip
 * carry the job's fields (user.gitlab.job.*, ...); a pipeline's, merge request's or commit's
 * folder its pipeline's and request's; a member of the artifacts zip its CRC-32 and how many of
 * its bytes are cached (not a member of a nested archive, whose zip gives none). The only
 * writes are user.gitlab.keep on a job and user.gitlab.delete_artifacts on a project (with
 * allow_delete), whose value must be "1"; every other name is EROFS before anything is sent.
 * Values are produced whole for each call, from the catalog and cache as they are then; nothing
 * is kept between calls. Calls place.c, never fs.c. */
#include "fs_i.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/cache.h"
#include "artifactfs/http.h"
#include "artifactfs/zipread.h"

#define XATTR_STATS "user.artifactfs.stats"
/* Not listed, so getfattr -d and cp -a never ask for it: reading it is how a read-only mount
 * (the kernel refuses setxattr there) is told to drop its cache. */
#define XATTR_DROP "user.artifactfs.drop_cache"
#define XATTR_CRC "user.gitlab.crc32"
#define XATTR_CACHED "user.artifactfs.cached"
#define XATTR_KEEP "user.gitlab.keep"
#define XATTR_DELETE "user.gitlab.delete_artifacts"

static const char *const job_xattrs[] = {
	"user.gitlab.job.id",
	"user.gitlab.job.name",
	"user.gitlab.job.status",
	"user.gitlab.job.web_url",
	"user.gitlab.pipeline.id",
	"user.gitlab.ref",
	"user.gitlab.sha",
	"user.gitlab.finished_at",
	"user.gitlab.artifacts.size",
	"user.gitlab.artifacts.expire_at",
};
#define N_JOB_XATTRS (sizeof(job_xattrs) / sizeof(job_xattrs[0]))

static char *job_xattr_value(const struct gl_job *g, uint64_t size, size_t which)
{
	char *v = NULL;
	const char *s = NULL;
	switch (which) {
	case 0:
		return g->id > 0 && asprintf(&v, "%" PRId64, g->id) >= 0 ? v : strdup("");
	case 1:
		s = g->name;
		break;
	case 2:
		s = g->status;
		break;
	case 3:
		s = g->web_url;
		break;
	case 4:
		return g->pipeline_id > 0 && asprintf(&v, "%" PRId64, g->pipeline_id) >= 0
			       ? v
			       : strdup("");
	case 5:
		s = g->ref;
		break;
	case 6:
		s = g->sha;
		break;
	case 7:
		s = g->finished_at;
		break;
	case 8:
		return asprintf(&v, "%" PRIu64, size) >= 0 ? v : NULL;
	case 9:
		s = g->artifacts_expire_at;
		break;
	}
	return strdup(s ? s : "");
}

static char *stats_text(struct fs_config *fc)
{
	struct cache_stats cs;
	struct catalog_stats ks;
	uint64_t requests = 0, bytes = 0;
	cache_get_stats(fc->cache, &cs);
	catalog_get_stats(fc->cat, &ks);
	http_stats(fc->http, &requests, &bytes);
	char *v = NULL;
	if (asprintf(&v,
		     "http_requests %" PRIu64 "\nhttp_bytes %" PRIu64 "\ncache_used_bytes %" PRIu64
		     "\ncache_limit_bytes %" PRIu64 "\ncache_entries %" PRIu64
		     "\ncache_hit_bytes %" PRIu64 "\ncache_hit_shared_bytes %" PRIu64
		     "\ncache_miss_bytes %" PRIu64 "\ncache_fetches %" PRIu64
		     "\ncache_evictions %" PRIu64 "\njobs_open %" PRIu64 "\nindexes_loaded %" PRIu64
		     "\narchive_bytes_arrived %" PRIu64 "\ntransfers_active %" PRIu64 "\n",
		     requests, bytes, cs.used_bytes, cs.limit_bytes, cs.entries, cs.hit_bytes,
		     cs.hit_shared_bytes, cs.miss_bytes, cs.fetches, cs.evictions, ks.jobs_open,
		     ks.indexes_loaded, ks.arrived_bytes, ks.transfers_active) < 0)
		return NULL;
	return v;
}

/* Folders of a pipeline, a merge request or a commit: their pipeline, and the request. */
static const char *const set_xattrs[] = {
	"user.gitlab.pipeline.id",           "user.gitlab.pipeline.status",
	"user.gitlab.pipeline.sha",          "user.gitlab.pipeline.ref",
	"user.gitlab.pipeline.source",       "user.gitlab.pipeline.web_url",
	"user.gitlab.merge_request.title",   "user.gitlab.merge_request.source_branch",
	"user.gitlab.merge_request.web_url",
};
#define N_SET_XATTRS(tp) ((tp)->set.by == TREE_BY_MR ? 9u : (tp)->set.by == TREE_BY_REF ? 0u : 6u)

static char *set_xattr_text(const struct gl_pipeline *pl, const struct gl_merge_request *mr,
			    size_t which)
{
	const char *v[] = {NULL,        pl->status, pl->sha,           pl->ref,    pl->source,
			   pl->web_url, mr->title,  mr->source_branch, mr->web_url};
	char *s = NULL;
	if (which == 0)
		return pl->id > 0 && asprintf(&s, "%" PRId64, pl->id) >= 0 ? s : strdup("");
	return strdup(v[which] ? v[which] : "");
}

static int set_xattr_value(struct fs_config *fc, const struct tree_path *tp, const char *name,
			   char **out)
{
	size_t which = 0;
	while (which < N_SET_XATTRS(tp) && strcmp(name, set_xattrs[which]) != 0)
		which++;
	if (which == N_SET_XATTRS(tp))
		return -ENODATA;
	struct gl_pipeline pl;
	struct gl_merge_request mr;
	int err = catalog_set_info(fc->cat, tp->project, &tp->set, &pl, &mr);
	if (err)
		return err;
	*out = set_xattr_text(&pl, &mr, which);
	gl_pipeline_release(&pl);
	gl_merge_request_release(&mr);
	return *out ? 0 : -ENOMEM;
}

/* A member's CRC-32 is known from the artifacts zip, not from a nested archive. */
static bool has_crc(const struct place *p)
{
	return p->m && !p->nest && p->m->type != ZIP_DIR;
}

/* How many of a member's compressed bytes are in the cache. Where they start is known from its
 * local header only, read (through the cache, fetched if need be) as an open does. */
static int cached_value(const struct place *p, char **out)
{
	struct zip_reader *zr = NULL;
	int err = zip_reader_new(p->zi, p->m, job_read_fn, p->job, &zr);
	if (err)
		return err == -ENOTSUP ? -ENODATA : err;
	uint64_t end = zip_reader_data_end(zr);
	zip_reader_free(zr);
	uint64_t n = job_cached_bytes(p->job, end - p->m->comp_size, p->m->comp_size);
	return asprintf(out, "%" PRIu64, n) < 0 ? -ENOMEM : 0;
}

/* The value of attribute name on tp, malloc'ed; -ENODATA when tp has no such attribute. */
static int xattr_value(struct fs_config *fc, const struct tree_path *tp, const char *name,
		       char **out)
{
	*out = NULL;
	if (tp->kind == TREE_ROOT && strcmp(name, XATTR_DROP) == 0) {
		int err = cache_drop(fc->cache);
		if (err)
			return err;
	}
	if (tp->kind == TREE_ROOT && (!strcmp(name, XATTR_STATS) || !strcmp(name, XATTR_DROP)))
		return (*out = stats_text(fc)) ? 0 : -ENOMEM;
	if (tp->kind == TREE_SET)
		return set_xattr_value(fc, tp, name, out);
	if (!is_in_job(tp) && !is_zip(tp))
		return -ENODATA;
	struct place p;
	int err = place_find(fc->cat, tp, &p);
	if (err)
		return err;
	struct job *j = p.job;
	err = -ENODATA;
	if (is_job_level(tp)) {
		struct gl_job g;
		for (size_t i = 0; i < N_JOB_XATTRS && err == -ENODATA; i++) {
			if (strcmp(name, job_xattrs[i]) != 0)
				continue;
			err = job_info(j, &g);
			if (!err) {
				*out = job_xattr_value(&g, job_size(j), i);
				err = *out ? 0 : -ENOMEM;
				gl_job_release(&g);
			}
		}
	} else if (strcmp(name, XATTR_CRC) == 0 && has_crc(&p)) {
		err = asprintf(out, "%08" PRIx32, p.m->crc32) < 0 ? -ENOMEM : 0;
	} else if (strcmp(name, XATTR_CACHED) == 0 && has_crc(&p)) {
		err = cached_value(&p, out);
	}
	place_release(&p);
	return err;
}

static int copy_out(const char *v, size_t len, char *buf, size_t size)
{
	if (size == 0)
		return (int)len;
	if (size < len)
		return -ERANGE;
	memcpy(buf, v, len);
	return (int)len;
}

static bool member_has_crc(struct fs_config *fc, const struct tree_path *tp)
{
	struct place p;
	if (place_find(fc->cat, tp, &p))
		return false;
	bool has = has_crc(&p);
	place_release(&p);
	return has;
}

static const char *const root_xattrs[] = {XATTR_STATS};
static const char *const member_xattrs[] = {XATTR_CRC, XATTR_CACHED};

static int list_names(struct fs_config *fc, const struct tree_path *tp, char *list, size_t *len)
{
	const char *const *names = is_job_level(tp) ? job_xattrs : set_xattrs;
	size_t count = is_job_level(tp)       ? N_JOB_XATTRS
		       : tp->kind == TREE_SET ? N_SET_XATTRS(tp)
					      : 0;
	*len = 0;
	if (tp->kind == TREE_ROOT) {
		names = root_xattrs;
		count = 1;
	} else if (is_in_job(tp) && !is_job_level(tp)) {
		names = member_xattrs;
		count = member_has_crc(fc, tp) ? 2 : 0;
	}
	for (size_t i = 0; i < count; i++) {
		size_t n = strlen(names[i]) + 1;
		if (list)
			memcpy(list + *len, names[i], n);
		*len += n;
	}
	return 0;
}

static bool value_is_one(const char *value, size_t size)
{
	return (size == 1 || (size == 2 && value[1] == '\n')) && value[0] == '1';
}

static int set_job_xattr(struct fs_config *fc, const struct tree_path *tp, const char *name)
{
	if (strcmp(name, XATTR_KEEP) != 0 || !is_job_level(tp))
		return -EROFS;
	struct job *j;
	int err = place_find_job(fc->cat, tp, &j);
	if (err)
		return err;
	err = catalog_job_keep(fc->cat, j);
	job_put(j);
	return err;
}

int xattr_get(struct fs_config *fc, const struct tree_path *tp, const char *name, char *buf,
	      size_t size)
{
	char *v = NULL;
	int err = xattr_value(fc, tp, name, &v);
	if (!err)
		err = copy_out(v, strlen(v), buf, size);
	free(v);
	return err;
}

int xattr_list(struct fs_config *fc, const struct tree_path *tp, char *buf, size_t size)
{
	size_t len = 0;
	list_names(fc, tp, NULL, &len);
	if (size > 0 && size < len)
		return -ERANGE;
	if (size > 0)
		list_names(fc, tp, buf, &len);
	return (int)len;
}

int xattr_set(struct fs_config *fc, const struct tree_path *tp, const char *name, const char *value,
	      size_t size)
{
	bool known = strcmp(name, XATTR_KEEP) == 0 || strcmp(name, XATTR_DELETE) == 0;
	if (known && !value_is_one(value, size))
		return -EINVAL;
	int err;
	if (tp->kind == TREE_ROOT && strcmp(name, XATTR_DROP) == 0) {
		err = value_is_one(value, size) ? cache_drop(fc->cache) : -EINVAL;
	} else if (tp->kind == TREE_PROJECT && strcmp(name, XATTR_DELETE) == 0) {
		err = fc->allow_delete ? catalog_project(fc->cat, tp->project) : -EROFS;
		if (!err)
			err = catalog_project_delete_artifacts(fc->cat, tp->project);
	} else {
		err = set_job_xattr(fc, tp, name);
	}
	return err;
}

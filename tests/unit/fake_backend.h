/* A stand-in for GitLab under the catalog (struct backend): one project "grp/app" with refs
 * "main" and "dev"; main's newest pipeline has jobs "build" (id 101) and "test" (id 102), both
 * with the same small zip archive; 103 is a job with no archive, every other id above 100 an
 * older job with that archive. Counts every call, can
 * answer EACCES for listings (a job token) and can answer archive reads wrongly. For one test
 * process (Criterion forks one per test): state is global.
 *
 * For single-flight tests, a gate: with fake.gate set, archive reads wait until that many
 * threads have called fake_arrive() (just before each makes its call), so every caller is there
 * before a fetch may end: no sleeps, no timing. */
#ifndef FAKE_BACKEND_H
#define FAKE_BACKEND_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/backend.h"
#include "zipbuild.h"

struct fake {
	atomic_int project_get, refs_list, ref_check, ref_jobs, recent_jobs, job_get, keep, del,
		archive;
	int archive_generation; /* the ETag of archive answers: a ref moved to another archive */
	int64_t deleted;        /* a job id whose artifacts were deleted on the server */
	atomic_int sets, trace; /* pipeline, merge request and commit calls; trace fetches */
	bool job_token;         /* listings and job lookups answer -EACCES */
	bool erased;            /* job_get answers the job as erased (no archive, no log) */
	uint64_t trace_size;    /* > 0: every trace is this many bytes of fake_trace_byte */
	bool wrong_length;      /* archive reads answer a 200 of another length, wrong bytes */
	int archive_err;        /* archive reads answer this (-EACCES: a 403), when not 0 */
	int project_err;        /* project_get's answer */
	char *expire_at;        /* what keep returns as artifacts_expire_at */
	struct gl_archive last; /* the last archive read (strings copied into the two below) */
	char last_ref[64], last_name[64];
	unsigned char *zip;
	size_t zip_len;
	int gate, arrived; /* protected by fake_gate_lock */
};
static struct fake fake;
static pthread_mutex_t fake_gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fake_gate_cond = PTHREAD_COND_INITIALIZER;

/* A caller of the code under test is about to make its call. */
static inline void fake_arrive(void)
{
	pthread_mutex_lock(&fake_gate_lock);
	fake.arrived++;
	pthread_cond_broadcast(&fake_gate_cond);
	pthread_mutex_unlock(&fake_gate_lock);
}

/* Waits until fake.gate callers have arrived (at once when fake.gate is 0). */
static inline void fake_gate_wait(void)
{
	pthread_mutex_lock(&fake_gate_lock);
	while (fake.arrived < fake.gate)
		pthread_cond_wait(&fake_gate_cond, &fake_gate_lock);
	pthread_mutex_unlock(&fake_gate_lock);
}

static char *fk_dup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void fake_job(int64_t id, const char *name, const char *ref, struct gl_job *out)
{
	memset(out, 0, sizeof(*out));
	out->id = id;
	out->name = fk_dup(name);
	out->status = fk_dup("success");
	out->ref = fk_dup(ref);
	out->finished_at = fk_dup("2026-11-20T10:15:30.000Z");
	out->pipeline_id = 7;
	out->archive_size = id == 103 ? -1 : (int64_t)fake.zip_len;
}

static int fk_project_get(void *ctx, const char *project, struct gl_project *out)
{
	(void)ctx;
	atomic_fetch_add(&fake.project_get, 1);
	memset(out, 0, sizeof(*out));
	if (fake.project_err)
		return fake.project_err;
	if (fake.job_token)
		return -EACCES;
	if (strcmp(project, "grp/app") != 0)
		return -ENOENT;
	out->id = 1;
	out->path_with_namespace = strdup(project);
	return 0;
}

static int fk_projects_list(void *ctx, struct gl_project **out, size_t *n)
{
	(void)ctx;
	*out = calloc(1, sizeof(**out));
	(*out)[0].id = 1;
	(*out)[0].path_with_namespace = strdup("grp/app");
	*n = 1;
	return 0;
}

static int fk_refs_list(void *ctx, const char *project, char ***names, size_t *n)
{
	(void)ctx, (void)project;
	atomic_fetch_add(&fake.refs_list, 1);
	if (fake.job_token)
		return -EACCES;
	*names = calloc(3, sizeof(**names));
	(*names)[0] = strdup("main");
	(*names)[1] = strdup("dev");
	*n = 2;
	return 0;
}

/* main and dev, and a merge request ref that no listing shows but pipelines have. */
static int fk_ref_check(void *ctx, const char *project, const char *ref)
{
	(void)ctx, (void)project;
	atomic_fetch_add(&fake.ref_check, 1);
	if (fake.job_token)
		return -EACCES;
	return strcmp(ref, "main") && strcmp(ref, "dev") &&
			       strcmp(ref, "refs/merge-requests/7/head")
		       ? -ENOENT
		       : 0;
}

static int fk_ref_jobs(void *ctx, const char *project, const char *ref, struct gl_job **jobs,
		       size_t *n)
{
	(void)ctx, (void)project;
	atomic_fetch_add(&fake.ref_jobs, 1);
	if (fake.job_token)
		return -EACCES;
	if (strcmp(ref, "main") != 0)
		return -ENOENT;
	*jobs = calloc(2, sizeof(**jobs));
	fake_job(101, "build", "main", &(*jobs)[0]);
	fake_job(102, "test", "main", &(*jobs)[1]);
	*n = 2;
	return 0;
}

static int fk_recent_jobs(void *ctx, const char *project, struct gl_job **jobs, size_t *n)
{
	(void)ctx, (void)project;
	atomic_fetch_add(&fake.recent_jobs, 1);
	if (fake.job_token)
		return -EACCES;
	*jobs = calloc(1, sizeof(**jobs));
	fake_job(102, "test", "main", &(*jobs)[0]);
	*n = 1;
	return 0;
}

static int fk_job_get(void *ctx, const char *project, int64_t id, struct gl_job *out)
{
	(void)ctx, (void)project;
	atomic_fetch_add(&fake.job_get, 1);
	if (fake.job_token)
		return -EACCES;
	if (id < 101)
		return -ENOENT;
	fake_job(id, id == 101 ? "build" : id == 102 ? "test" : "old", "main", out);
	if (id == fake.deleted || fake.erased) /* GitLab keeps the job; its JSON loses
						    artifacts_file */
		out->archive_size = -1;
	out->erased = fake.erased;
	return 0;
}

static int fk_job_keep(void *ctx, const char *project, int64_t id, struct gl_job *out)
{
	atomic_fetch_add(&fake.keep, 1);
	int err = fk_job_get(ctx, project, id, out);
	if (!err) {
		free(out->artifacts_expire_at);
		out->artifacts_expire_at = fk_dup(fake.expire_at);
	}
	return err;
}

static int fk_job_delete(void *ctx, const char *project, int64_t id)
{
	(void)ctx, (void)project, (void)id;
	atomic_fetch_add(&fake.del, 1);
	return 0;
}

static int fk_project_delete(void *ctx, const char *project)
{
	(void)ctx, (void)project;
	atomic_fetch_add(&fake.del, 1);
	return 0;
}

/* Ranges as GitLab answers them: a 206 of the bytes asked; off -1 is a suffix. */
static int fk_archive_read(void *ctx, const struct gl_archive *a, int64_t off, int64_t len,
			   http_body_fn fn, void *fn_ctx, struct gl_read_info *info)
{
	(void)ctx;
	atomic_fetch_add(&fake.archive, 1);
	fake_gate_wait();
	snprintf(fake.last_ref, sizeof(fake.last_ref), "%s", a->ref ? a->ref : "");
	snprintf(fake.last_name, sizeof(fake.last_name), "%s", a->job_name ? a->job_name : "");
	fake.last = (struct gl_archive){
		.job_id = a->job_id, .ref = fake.last_ref, .job_name = fake.last_name};
	int64_t size = (int64_t)fake.zip_len;
	info->whole = fake.wrong_length;
	snprintf(info->etag, sizeof(info->etag), "\"%d\"", fake.archive_generation);
	if (info->expect_etag && strcmp(info->expect_etag, info->etag) != 0)
		return -ESTALE; /* If-Range: another archive now */
	if (fake.archive_err)
		return fake.archive_err;
	if (fake.wrong_length) {
		/* a 200 whose Content-Length says another archive: bytes from 0, every one wrong */
		unsigned char *junk = malloc(fake.zip_len);
		memset(junk, 'X', fake.zip_len);
		int err = fn(fn_ctx, 0, junk, fake.zip_len);
		free(junk);
		info->total = size + 5000;
		return err;
	}
	if (off < 0) {
		off = size > len ? size - len : 0;
		len = size - off;
	}
	if (off + len > size)
		return -EIO;
	info->total = size;
	return fn(fn_ctx, (uint64_t)off, fake.zip + off, (size_t)len);
}

/* Pipeline 7 holds main's jobs; merge request 5's head pipeline is 7; commit c0ffee... too.
 * Every job's trace is "log of <id>\n". */
static void fake_pipeline(struct gl_pipeline *p)
{
	memset(p, 0, sizeof(*p));
	p->id = 7;
	p->project_id = 1;
	p->status = strdup("success");
	p->sha = strdup("c0ffee0000000000000000000000000000000007");
	p->ref = strdup("main");
	p->source = strdup("push");
	p->web_url = strdup("http://gl/grp/app/-/pipelines/7");
}

static int fk_pipelines_list(void *ctx, const char *project, struct gl_pipeline **out, size_t *n)
{
	(void)ctx, (void)project;
	atomic_fetch_add(&fake.sets, 1);
	if (fake.job_token)
		return -EACCES;
	*out = calloc(1, sizeof(**out));
	fake_pipeline(&(*out)[0]);
	*n = 1;
	return 0;
}

static int fk_pipeline_get(void *ctx, const char *project, int64_t id, struct gl_pipeline *out)
{
	(void)ctx, (void)project;
	atomic_fetch_add(&fake.sets, 1);
	memset(out, 0, sizeof(*out));
	if (fake.job_token)
		return -EACCES;
	if (id != 7)
		return -ENOENT;
	fake_pipeline(out);
	return 0;
}

static int fk_pipeline_jobs(void *ctx, const char *project, int64_t id, struct gl_job **jobs,
			    size_t *n)
{
	return id == 7 ? fk_ref_jobs(ctx, project, "main", jobs, n) : -ENOENT;
}

static int fk_mr_get(void *ctx, const char *project, int64_t iid, struct gl_merge_request *out)
{
	(void)ctx, (void)project;
	atomic_fetch_add(&fake.sets, 1);
	memset(out, 0, sizeof(*out));
	if (fake.job_token)
		return -EACCES;
	if (iid != 5)
		return -ENOENT;
	out->iid = 5;
	out->title = strdup("Make it faster");
	out->source_branch = strdup("fast");
	out->web_url = strdup("http://gl/grp/app/-/merge_requests/5");
	fake_pipeline(&out->head);
	return 0;
}

static int fk_mrs_list(void *ctx, const char *project, struct gl_merge_request **out, size_t *n)
{
	*out = calloc(1, sizeof(**out));
	*n = 1;
	int err = fk_mr_get(ctx, project, 5, &(*out)[0]);
	if (err) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return err;
}

static int fk_commit_pipeline(void *ctx, const char *project, const char *sha,
			      struct gl_pipeline *out)
{
	(void)ctx, (void)project;
	atomic_fetch_add(&fake.sets, 1);
	memset(out, 0, sizeof(*out));
	if (fake.job_token)
		return -EACCES;
	if (strncmp("c0ffee0000000000000000000000000000000007", sha, strlen(sha)) != 0)
		return -ENOENT;
	fake_pipeline(out);
	return 0;
}

/* The byte at off of a big trace (fake.trace_size): a line-shaped pattern, never all alike. */
static char fake_trace_byte(uint64_t off)
{
	return off % 64 == 63 ? '\n' : (char)('a' + (off / 64 + off) % 26);
}

static int fk_job_trace(void *ctx, const char *project, int64_t job_id, http_body_fn fn,
			void *fn_ctx)
{
	(void)ctx, (void)project;
	atomic_fetch_add(&fake.trace, 1);
	if (fake.job_token)
		return -EACCES;
	if (fake.trace_size) { /* streamed in 64 KiB pieces, as a body arrives */
		char *chunk = malloc(64 * 1024);
		int err = chunk ? 0 : -ENOMEM;
		for (uint64_t off = 0; !err && off < fake.trace_size; off += 64 * 1024) {
			size_t n = fake.trace_size - off < 64 * 1024 ? fake.trace_size - off
								     : 64 * 1024;
			for (size_t i = 0; i < n; i++)
				chunk[i] = fake_trace_byte(off + i);
			err = fn(fn_ctx, off, chunk, n);
		}
		free(chunk);
		return err;
	}
	char text[64];
	int n = snprintf(text, sizeof(text), "log of %lld\n", (long long)job_id);
	return fn(fn_ctx, 0, text, (size_t)n);
}

static const struct backend fake_backend = {
	.project_get = fk_project_get,
	.projects_list = fk_projects_list,
	.refs_list = fk_refs_list,
	.ref_check = fk_ref_check,
	.ref_jobs = fk_ref_jobs,
	.recent_jobs = fk_recent_jobs,
	.job_get = fk_job_get,
	.job_keep = fk_job_keep,
	.job_artifacts_delete = fk_job_delete,
	.project_artifacts_delete = fk_project_delete,
	.archive_read = fk_archive_read,
	.pipelines_list = fk_pipelines_list,
	.pipeline_get = fk_pipeline_get,
	.pipeline_jobs = fk_pipeline_jobs,
	.mrs_list = fk_mrs_list,
	.mr_get = fk_mr_get,
	.commit_pipeline = fk_commit_pipeline,
	.job_trace = fk_job_trace,
};

/* The archive every job has: a file, a folder with a file. */
static void fake_init(void)
{
	memset(&fake, 0, sizeof(fake));
	struct zb z = {0};
	zb_file(&z, "hello.txt", "hello, world\n");
	zb_file(&z, "dir/inner.txt", "inner\n");
	fake.zip = zb_finish(&z, false, &fake.zip_len);
}

#endif

/* jobprobe: what a job token learns of an archive whose job it may not read (GitLab lets a job
 * token download artifacts but not look jobs, pipelines or refs up). The archive's tail is read
 * through the download endpoint with one Range request (or all of it, held in memory up to
 * PROBE_MAX_BYTES, from a server that ignores Range); its size comes from that answer, and the
 * job made from it starts with the tail seeded into its cache entry, so its zip index costs no
 * second request. A job under a ref found this way is pinned to the answer's ETag and
 * Last-Modified (the by-ref archive can change under it), remembered for the TTL
 * (MEMO_BYREF_JOB), and keyed by the time of its resolution, so a later resolution never reads
 * blocks of an earlier, perhaps different, archive. Jobs probed by id are published by jobids.c;
 * this file publishes nothing and calls no other catalog file. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "artifactfs/catalog.h"
#include "artifactfs/log.h"
#include "artifactfs/memo.h"
#include "catalog_i.h"

/* The tail fetched to find a zip's end: EOCD (22) + largest comment (65535) + zip64 locator. */
#define TAIL_BYTES (64u * 1024u + 22u + 20u)
/* A by-ref probe that the server answers with the whole archive is kept in memory up to this. */
#define PROBE_MAX_BYTES (256u * 1024u * 1024u)

struct jobref_val { /* a job found by probing the by-ref endpoint */
	struct memo_val v;
	struct job *job;
};

/* ---- probing an archive when the job cannot be looked up (job tokens) ---- */

struct probe_buf {
	char *data;
	uint64_t base; /* offset of data[0] in the archive */
	size_t len, cap;
	bool started;
};

static int probe_sink(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct probe_buf *pb = ctx;
	if (!pb->started) {
		pb->base = off;
		pb->started = true;
	}
	if (off < pb->base || off - pb->base > pb->len)
		return -EIO;
	size_t at = off - pb->base;
	if (at + len > PROBE_MAX_BYTES)
		return -EFBIG;
	if (at + len > pb->cap) {
		size_t cap = pb->cap ? pb->cap : 65536;
		while (cap < at + len)
			cap *= 2;
		char *d = realloc(pb->data, cap);
		if (!d)
			return -ENOMEM;
		pb->data = d;
		pb->cap = cap;
	}
	memcpy(pb->data + at, buf, len);
	if (at + len > pb->len)
		pb->len = at + len;
	return 0;
}

/* Reads the archive's tail (or all of it, if the server ignores Range) through the endpoint a
 * names: what a job token learns of an archive whose job it may not read. */
static int probe_tail(struct catalog *c, const struct gl_archive *a, struct probe_buf *pb,
		      struct gl_read_info *ri)
{
	*ri = (struct gl_read_info){.total = -1};
	int err = c->be->archive_read(c->be->ctx, a, -1, TAIL_BYTES, probe_sink, pb, ri);
	if (err == -EFBIG) {
		log_msg(LOG_ERR, "the server ignores Range and the archive is over %u MiB",
			PROBE_MAX_BYTES >> 20);
		err = -EIO;
	}
	if (!err && (ri->total <= 0 || pb->base + pb->len != (uint64_t)ri->total))
		err = -EIO;
	return err;
}

/* Makes the job of a probed archive, pinned to the answer (a by-ref archive can change under
 * it), seeds its cache entry with the tail and publishes it. */
int catalog_probe_job(struct catalog *c, const struct gl_archive *a, const struct gl_job *info,
		      const char *key, struct job **out)
{
	struct probe_buf pb = {0};
	struct gl_read_info ri;
	int err = probe_tail(c, a, &pb, &ri);
	if (err)
		goto out_free;
	struct job *j = job_new(&c->env, a->project, a->ref, info, key, (uint64_t)ri.total);
	if (!j) {
		err = -ENOMEM;
		goto out_free;
	}
	if (a->ref) {
		struct job_pin pin;
		snprintf(pin.etag, sizeof(pin.etag), "%s", ri.etag);
		snprintf(pin.last_modified, sizeof(pin.last_modified), "%s", ri.last_modified);
		job_set_pin(j, &pin);
	}
	err = job_seed(j, pb.base, pb.data, pb.len);
	if (err) {
		job_put(j);
		goto out_free;
	}
	*out = j;
out_free:
	free(pb.data);
	return err;
}

static void jobref_destroy(struct memo_val *v)
{
	struct jobref_val *jr = (struct jobref_val *)v;
	job_put(jr->job);
	free(jr);
}

/* A job found through the by-ref download endpoint. Its key carries the resolution time, so a
 * later resolution (after the TTL) never reads blocks of an earlier, perhaps different, archive. */
static int load_byref_job(void *arg, struct memo_val **out)
{
	struct load_arg *la = arg;
	struct catalog *c = la->c;
	struct jobref_val *jr = calloc(1, sizeof(*jr));
	char *key = NULL;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t h = fnv1a(FNV_INIT, la->project, strlen(la->project) + 1);
	h = fnv1a(h, la->ref, strlen(la->ref) + 1);
	h = fnv1a(h, la->name, strlen(la->name));
	if (!jr || asprintf(&key, "r%s-%016" PRIx64 "-%lld%09ld", c->origin, h,
			    (long long)ts.tv_sec, ts.tv_nsec) < 0) {
		free(jr);
		return -ENOMEM;
	}
	struct gl_archive a = {.project = la->project, .ref = la->ref, .job_name = la->name};
	struct gl_job info = {.name = (char *)la->name, .ref = (char *)la->ref, .archive_size = -1};
	int err = catalog_probe_job(c, &a, &info, key, &jr->job);
	free(key);
	if (err) {
		free(jr);
		return err;
	}
	memo_val_init(&jr->v, jobref_destroy);
	*out = &jr->v;
	return 0;
}

int catalog_job_by_probe(struct catalog *c, const char *project, const char *ref, const char *name,
			 struct job **out)
{
	struct load_arg la = {.c = c, .project = project, .ref = ref, .name = name};
	struct memo_key key = {.kind = MEMO_BYREF_JOB, .a = project, .b = ref, .c = name};
	struct memo_val *v;
	int err = memo_get(c->memo, &key, load_byref_job, &la, &v);
	if (err)
		return err;
	*out = job_hold(((struct jobref_val *)v)->job);
	memo_val_put(v);
	return 0;
}

/* fs: the fuse_operations table, its adapters and the open files' handles. Every operation
 * parses its path (tree), resolves it through the catalog (place.c) and returns 0 or -errno; the
 * extended attributes' values and names are xattr.c's. Every write but the two doc/SPEC.md
 * allows (rm <job>.zip with allow_delete, and the keep/delete xattrs) is EROFS before anything
 * is sent. Calls go from here to xattr.c and place.c, never back (fs_i.h).
 *
 * Every kind of job set (a ref, a pipeline, a merge request, a commit) takes the same path
 * through the catalog. A member path may lead into an archive inside the artifacts ("x#/",
 * nest.h); such files read from their nest's unpacked blob, and logs from their own cache entry.
 *
 * Open files hold a reference on their job, so its cache entry and zip index outlive any
 * listing's TTL; a member's reads take turns (busy, waited for on the handle's condition
 * variable, never a lock held across I/O); its read-ahead is readahead.c's. Content addressed by
 * job id never changes, so the kernel may keep its pages across opens (keep_cache); under a ref,
 * where the job can change, every open starts from fresh pages and attributes.
 *
 * Each failed operation writes one line, at ERROR when the server or the machine failed (EIO,
 * ENOMEM, ENOSPC) or refused us (EACCES from a 401/403), else at DEBUG (ENOENT, EROFS, other
 * EACCES are answers): its path, and the reason the layers below left (the HTTP call and its
 * status or curl's error), however many blocks, retries and background fetches it took. An open
 * file says it once: its later failures go to DEBUG. */
#include "artifactfs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "artifactfs/job.h"
#include "artifactfs/kernel.h"
#include "artifactfs/intr.h"
#include "artifactfs/log.h"
#include "artifactfs/nest.h"
#include "artifactfs/readahead.h"
#include "artifactfs/tree.h"
#include "artifactfs/zipindex.h"
#include "artifactfs/zipread.h"
#include "fs_i.h"

#define SYMLINK_MAX 4096

struct fh {
	struct job *job;
	struct zip_reader *reader;   /* NULL for <job>.zip and inside nested archives */
	struct nest *nest;           /* a file inside a nested archive: its nest, else NULL */
	struct log_reader *log;      /* <job>.log: its reader, else NULL */
	const struct zip_member *nm; /* that file, borrowed from nest */
	struct readahead *rd;        /* the archive's bytes with read-ahead (<job>.zip, a member) */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool busy;              /* protected by lock: a read uses reader (one at a time) */
	atomic_bool failed;     /* a read of this handle has failed (and said so) */
	struct fh *prev, *next; /* in open_files */
};

/* Handles not yet released: the kernel sends RELEASE after close() returns, so an unmount can
 * overtake it, and fs_destroy frees what is left. */
static pthread_mutex_t open_files_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fh *open_files;

/* The reader's view of the archive: the job's bytes, with the read-ahead of fh->rd, which never
 * goes past the member's own data (a neighbour's bytes are nobody's business yet); while the
 * member's local header is read at open, without any. */
static ssize_t fh_read_fn(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct fh *fh = ctx;
	ssize_t n = fh->rd ? readahead_pread(fh->rd, buf, len, off)
			   : job_pread(fh->job, buf, len, off, 0);
	if (n >= 0 && (size_t)n != len)
		return job_read_fn(fh->job, buf, len, off); /* logs and fails the same way */
	return n;
}

/* The configuration of calls made outside a mount (unit tests); see fs_use_config. */
static struct fs_config *unmounted_config;

void fs_use_config(struct fs_config *fc)
{
	unmounted_config = fc;
}

/* Without a mount, libfuse's context key does not exist yet: it is not asked at all then. */
static struct fs_config *config(void)
{
	return unmounted_config ? unmounted_config : fuse_get_context()->private_data;
}

time_t fs_parse_time(const char *s)
{
	struct tm tm = {0};
	if (!s)
		return 0;
	const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!rest)
		return 0;
	time_t t = timegm(&tm);
	if (*rest == '.')
		for (rest++; *rest >= '0' && *rest <= '9'; rest++)
			;
	int hh, mm;
	if ((*rest == '+' || *rest == '-') && sscanf(rest + 1, "%2d:%2d", &hh, &mm) == 2)
		t -= (*rest == '+' ? 1 : -1) * (hh * 3600 + mm * 60);
	return t;
}

static void fill_dir(struct stat *st, mode_t perm, time_t mtime)
{
	struct fs_config *fc = config();
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | perm;
	st->st_nlink = 2;
	st->st_uid = fc->uid;
	st->st_gid = fc->gid;
	st->st_mtime = st->st_ctime = st->st_atime = mtime ? mtime : fc->mounted_at;
}

static void fill_file(struct stat *st, mode_t type_perm, uint64_t size, time_t mtime)
{
	struct fs_config *fc = config();
	memset(st, 0, sizeof(*st));
	st->st_mode = type_perm;
	st->st_nlink = 1;
	st->st_uid = fc->uid;
	st->st_gid = fc->gid;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	st->st_blksize = 128 * 1024;
	st->st_mtime = st->st_ctime = st->st_atime = mtime;
}

static time_t job_time(struct job *j)
{
	struct gl_job g;
	if (job_info(j, &g))
		return 0;
	time_t t = fs_parse_time(g.finished_at);
	gl_job_release(&g);
	return t;
}

/* A folder that holds <job>.zip files is writable by its owner only when rm may remove them. */
static mode_t zip_parent_perm(void)
{
	return config()->allow_delete ? 0755 : 0555;
}

static void fill_member(struct stat *st, const struct zip_member *m, time_t job_t)
{
	switch (m->type) {
	case ZIP_DIR:
		fill_dir(st, m->mode && !m->synthetic ? (m->mode & 0777) : 0555, job_t);
		break;
	case ZIP_SYMLINK:
		fill_file(st, S_IFLNK | 0777, m->size, (time_t)m->mtime);
		break;
	case ZIP_FILE:
		fill_file(st, S_IFREG | (m->mode ? (m->mode & 0777) : 0444), m->size,
			  (time_t)m->mtime);
		break;
	}
}

/* A log's size is 0 (unknown) until it was read to its end: a stat fetches nothing (catalog.h). */
static int getattr_log(struct job *j, struct stat *st, time_t t)
{
	struct job_log *l;
	int err = catalog_job_log(config()->cat, j, &l);
	if (!err)
		fill_file(st, S_IFREG | 0444, job_log_size(l), t);
	job_log_put(l);
	return err;
}

/* -/jobs/<id>.log: any finished job's, whether it has an archive or not. */
static int getattr_log_by_id(const struct tree_path *tp, struct stat *st)
{
	struct job_log *l;
	char *finished_at;
	int err = catalog_log_by_id(config()->cat, tp->project, tp->job_id, &l, &finished_at);
	if (!err)
		fill_file(st, S_IFREG | 0444, job_log_size(l), fs_parse_time(finished_at));
	job_log_put(l);
	free(finished_at);
	return err;
}

static int getattr_job(const struct tree_path *tp, struct stat *st)
{
	if (tp->kind == TREE_JOBID_LOG)
		return getattr_log_by_id(tp, st);
	struct place p;
	int err = place_find(config()->cat, tp, &p);
	if (err)
		return err;
	time_t t = job_time(p.job);
	if (is_zip(tp))
		fill_file(st, S_IFREG | 0444, job_size(p.job), t);
	else if (is_log(tp))
		err = getattr_log(p.job, st, t);
	else if (!p.m)
		fill_dir(st, 0555, t);
	else
		fill_member(st, p.m, t);
	place_release(&p);
	return err;
}

static int getattr_path(const struct tree_path *tp, struct stat *st)
{
	struct catalog *cat = config()->cat;
	int err = 0;
	switch (tp->kind) {
	case TREE_ROOT:
		fill_dir(st, 0555, 0);
		return 0;
	case TREE_PROJECT:
	case TREE_DASH:
	case TREE_SETS:
		err = catalog_project(cat, tp->project);
		fill_dir(st, 0555, 0);
		return err;
	case TREE_JOBS:
		err = catalog_project(cat, tp->project);
		fill_dir(st, zip_parent_perm(), 0);
		return err;
	case TREE_SET:
		err = catalog_set(cat, tp->project, &tp->set);
		fill_dir(st, zip_parent_perm(), 0);
		return err;
	default:
		return getattr_job(tp, st);
	}
}

static bool reader_interrupted(void *ctx)
{
	(void)ctx;
	return fuse_interrupted() != 0;
}

/* From here to intr_end(), every wait and transfer of this thread stops once the kernel says the
 * reader gave up (a signal: Ctrl-C, kill -9), and the operation returns -EINTR. libfuse tells it
 * only while the request runs, on its own thread; unit tests have no request to ask about. */
static void intr_start(void)
{
	if (!unmounted_config)
		intr_begin(reader_interrupted, NULL);
}

/* Parses path into tp and names it in every log line of this thread until op_end(). */
static int op_begin(const char *path, struct tree_path *tp)
{
	log_set_context(path);
	log_clear_reason();
	intr_start();
	return tree_parse(path, tp);
}

/* Errors a program could not make sense of (a body too large, a full disk under the cache, an
 * archive that changed, a transport failure) reach it as the I/O error they are, so every errno
 * a program sees is one the README's table names. */
static int program_errno(int err)
{
	switch (err) {
	case -EFBIG:
	case -ENOSPC:
	case -EDQUOT:
	case -ESTALE:
	case -EXDEV:
	case -EBADMSG:
	case -ETIMEDOUT:
	case -ECONNREFUSED:
	case -EPROTO:
		return -EIO;
	default:
		return err;
	}
}

/* The one line telling an operation's failure (the path is the line's context): at ERROR for a
 * failure of the server or the machine (EIO, ENOMEM) or its refusal (EACCES from a 401/403) when
 * first is true, else at DEBUG; with the errno as it came up and the reason left below. */
static void log_failure(const char *what, int err, bool first)
{
	const char *why = log_reason();
	int seen = program_errno(err);
	bool refused = seen == -EACCES && log_reason_refused();
	bool unexpected = seen == -EIO || seen == -ENOMEM || refused;
	log_msg(first && unexpected ? LOG_ERR : LOG_DEBUG, "%s%s%s%s", what, strerror(-err),
		why[0] ? ": " : "", why);
}

static int op_end(struct tree_path *tp, int err)
{
	if (err)
		log_failure("", err, true);
	tree_path_release(tp);
	log_set_context(NULL);
	intr_end();
	return program_errno(err);
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	struct tree_path tp;
	int err = op_begin(path, &tp);
	if (!err)
		err = getattr_path(&tp, st);
	return op_end(&tp, err);
}

static int fill_names(void *buf, fuse_fill_dir_t filler, char **names)
{
	for (size_t i = 0; names[i]; i++)
		if (filler(buf, names[i], NULL, 0, 0))
			break;
	gitlab_strv_free(names);
	return 0;
}

static int readdir_job(const struct tree_path *tp, void *buf, fuse_fill_dir_t filler)
{
	struct place p;
	int err = place_find(config()->cat, tp, &p);
	if (!err && !p.m) /* the job folder: the artifacts' root */
		err = job_index(p.job, &p.zi);
	const struct zip_member *dir = err ? NULL : p.m ? p.m : zipindex_member(p.zi, 0);
	if (!err && dir->type != ZIP_DIR)
		err = -ENOTDIR;
	time_t t = err ? 0 : job_time(p.job);
	for (uint32_t i = err ? UINT32_MAX : dir->first_child; i != UINT32_MAX;) {
		const struct zip_member *m = zipindex_member(p.zi, i);
		struct stat st;
		fill_member(&st, m, t);
		if (filler(buf, m->base, &st, 0, FUSE_FILL_DIR_PLUS))
			break;
		i = m->next_sibling;
	}
	if (p.job)
		place_release(&p);
	return err;
}

/* The folders under "-". */
static const char *const dash_names[] = {"jobs", "pipelines", "merge_requests", "commits"};

static int readdir_path(const struct tree_path *tp, void *buf, fuse_fill_dir_t filler)
{
	struct catalog *cat = config()->cat;
	char **names = NULL;
	int err;
	switch (tp->kind) {
	case TREE_ROOT:
		err = catalog_list_root(cat, &names);
		break;
	case TREE_PROJECT:
		err = catalog_list_refs(cat, tp->project, &names);
		if (err == -EACCES) { /* a job token: "-" is still there */
			names = calloc(1, sizeof(*names));
			err = names ? 0 : -ENOMEM;
		}
		if (!err)
			filler(buf, "-", NULL, 0, 0);
		break;
	case TREE_DASH:
		err = catalog_project(cat, tp->project);
		for (size_t i = 0; !err && i < sizeof(dash_names) / sizeof(dash_names[0]); i++)
			filler(buf, dash_names[i], NULL, 0, 0);
		return err;
	case TREE_SETS:
		err = catalog_list_sets(cat, tp->project, tp->set.by, &names);
		break;
	case TREE_JOBS:
		err = catalog_list_job_ids(cat, tp->project, &names);
		break;
	case TREE_SET:
		err = catalog_list_set_jobs(cat, tp->project, &tp->set, &names);
		break;
	case TREE_SET_ZIP:
	case TREE_JOBID_ZIP:
	case TREE_SET_LOG:
	case TREE_JOBID_LOG:
		return -ENOTDIR;
	default:
		return readdir_job(tp, buf, filler);
	}
	return err ? err : fill_names(buf, filler, names);
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)offset;
	(void)fi;
	(void)flags;
	struct tree_path tp;
	int err = op_begin(path, &tp);
	if (!err) {
		filler(buf, ".", NULL, 0, 0);
		filler(buf, "..", NULL, 0, 0);
		err = readdir_path(&tp, buf, filler);
	}
	return op_end(&tp, err);
}

/* Listings under a job id never change: the kernel may keep them (cache_readdir). */
static int fs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct tree_path tp;
	int err = op_begin(path, &tp);
	if (!err && tp.kind == TREE_JOBID) {
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	return op_end(&tp, err == -ENOENT ? 0 : err); /* readdir says what is missing */
}

static void fh_link(struct fh *fh)
{
	pthread_mutex_lock(&open_files_lock);
	fh->next = open_files;
	if (open_files)
		open_files->prev = fh;
	open_files = fh;
	pthread_mutex_unlock(&open_files_lock);
}

static void fh_unlink(struct fh *fh)
{
	pthread_mutex_lock(&open_files_lock);
	if (fh->prev)
		fh->prev->next = fh->next;
	else if (open_files == fh)
		open_files = fh->next;
	if (fh->next)
		fh->next->prev = fh->prev;
	fh->prev = fh->next = NULL;
	pthread_mutex_unlock(&open_files_lock);
}

static void fh_free(struct fh *fh)
{
	fh_unlink(fh);
	zip_reader_free(fh->reader);
	readahead_free(fh->rd); /* stops its read-ahead */
	nest_put(fh->nest);
	log_reader_free(fh->log);
	job_put(fh->job);
	pthread_mutex_destroy(&fh->lock);
	pthread_cond_destroy(&fh->cond);
	free(fh);
}

static int open_path(const struct tree_path *tp, struct fh *fh)
{
	struct job_log *l;
	if (tp->kind == TREE_JOBID_LOG) {
		char *finished_at;
		int err =
			catalog_log_by_id(config()->cat, tp->project, tp->job_id, &l, &finished_at);
		free(finished_at);
		return err ? err : job_log_open(l, &fh->log);
	}
	struct place p;
	int err = place_find(config()->cat, tp, &p);
	if (err)
		return err;
	fh->job = job_hold(p.job);
	if (is_log(tp)) {
		err = catalog_job_log(config()->cat, p.job, &l);
		if (!err)
			err = job_log_open(l, &fh->log);
	} else if (!is_zip(tp) && (!p.m || p.m->type == ZIP_DIR))
		err = -EISDIR;
	else if (p.nest) {
		fh->nest = nest_hold(p.nest);
		fh->nm = p.m;
	} else if (p.m) {
		err = zip_reader_new(p.zi, p.m, fh_read_fn, fh, &fh->reader);
		if (!err)
			err = readahead_new(fh->job,
					    zip_reader_data_end(fh->reader) - p.m->comp_size,
					    zip_reader_data_end(fh->reader), &fh->rd);
	} else if (is_zip(tp)) {
		/* its bytes may be in the cache by another token's download: this one must be let */
		err = job_authorize(fh->job);
		if (!err)
			err = readahead_new(fh->job, 0, job_size(fh->job), &fh->rd);
	}
	place_release(&p);
	return err;
}

/* A path under a ref can name another job after the TTL, while the kernel may still hold the
 * previous job's attributes (the size decides how far it reads). Every open of such a path drops
 * them, so reads through this handle, pinned to the job just found, see its own size. Content
 * under a job id never changes and keeps its pages (keep_cache). */
static void forget_kernel_attrs(const char *path)
{
	struct fuse_context *ctx = unmounted_config ? NULL : fuse_get_context();
	if (ctx && ctx->fuse)
		fuse_invalidate_path(ctx->fuse, path);
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	static atomic_flag read_ahead_set = ATOMIC_FLAG_INIT;
	if (!atomic_flag_test_and_set(&read_ahead_set))
		kernel_raise_read_ahead(config()->mountpoint);
	struct tree_path tp;
	int err = op_begin(path, &tp);
	if (err)
		return op_end(&tp, err);
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return op_end(&tp, -EROFS);
	if (!names_job(&tp))
		return op_end(&tp, -EISDIR);
	struct fh *fh = calloc(1, sizeof(*fh));
	if (!fh)
		return op_end(&tp, -ENOMEM);
	pthread_mutex_init(&fh->lock, NULL);
	pthread_cond_init(&fh->cond, NULL);
	err = open_path(&tp, fh);
	if (err) {
		fh_free(fh);
		return op_end(&tp, err);
	}
	fh_link(fh);
	fi->fh = (uint64_t)(uintptr_t)fh;
	fi->keep_cache = tp.kind == TREE_JOBID || tp.kind == TREE_JOBID_ZIP;
	/* the kernel's pages belong to the path, shared by every open of it: an open pinned to the
	 * previous job would fill them for one on the next, and the other way round. A log's size
	 * may be unknown (0): with direct I/O the kernel reads on to its end regardless */
	fi->direct_io = !fi->keep_cache;
	if (!fi->keep_cache)
		forget_kernel_attrs(path);
	return op_end(&tp, 0);
}

/* The member's bytes failed their check: whether the cache or the server spoiled them, the next
 * open fetches them again instead of failing on the same cached bytes forever. */
static void forget_member(struct fh *fh)
{
	uint64_t end = zip_reader_data_end(fh->reader);
	uint64_t start = zip_reader_member(fh->reader)->local_offset;
	if (end > start) {
		job_forget(fh->job, start, end - start);
		log_msg(LOG_DEBUG,
			"its cached bytes were dropped; the next read fetches them again");
	}
}

/* Whether a read's failure is the open file's first, to be logged above DEBUG: an interrupt is
 * the reader's doing, not a failure, and uses up nothing. */
static bool first_failure(struct fh *fh, ssize_t n)
{
	return n != -EINTR && !atomic_exchange(&fh->failed, true);
}

/* A file inside a nested archive: a range of its nest's blob, no decompression. */
static int read_nested(struct fh *fh, char *buf, size_t size, off_t off)
{
	ssize_t n = nest_pread(fh->nest, fh->nm, buf, size, (uint64_t)off);
	if (n < 0)
		log_failure("read inside a nested archive failed: ", (int)n, first_failure(fh, n));
	log_set_context(NULL);
	return n == -EINTR ? -EINTR : n < 0 ? -EIO : (int)n;
}

/* A member's reader is not thread-safe: reads take turns, without a lock held while one runs. */
static ssize_t member_read(struct fh *fh, char *buf, size_t size, uint64_t off)
{
	pthread_mutex_lock(&fh->lock);
	while (fh->busy) {
		if (intr_cond_wait(&fh->cond, &fh->lock)) {
			pthread_mutex_unlock(&fh->lock);
			return -EINTR;
		}
	}
	fh->busy = true;
	pthread_mutex_unlock(&fh->lock);
	ssize_t n = zip_reader_pread(fh->reader, buf, size, off);
	if (n < 0 && zip_reader_corrupt(fh->reader))
		forget_member(fh);
	pthread_mutex_lock(&fh->lock);
	fh->busy = false;
	pthread_cond_signal(&fh->cond);
	pthread_mutex_unlock(&fh->lock);
	return n;
}

static int read_fh(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fh *fh = (struct fh *)(uintptr_t)fi->fh;
	ssize_t n;
	log_set_context(path);
	log_clear_reason();
	if (fh->nest)
		return read_nested(fh, buf, size, off);
	if (fh->log) {
		n = log_reader_pread(fh->log, buf, size, (uint64_t)off);
		if (n == 0 && log_reader_learned(fh->log))
			forget_kernel_attrs(path); /* its size was 0 (unknown): now it is exact */
		if (n < 0)
			log_failure("read of the job's log failed: ", (int)n, first_failure(fh, n));
		log_set_context(NULL);
		return n == -EACCES || n == -EINTR ? (int)n
		       : n < 0                     ? -EIO
						   : (int)n; /* EACCES: may not read it */
	}
	if (fh->reader)
		n = member_read(fh, buf, size, (uint64_t)off);
	else /* the job reader and the cache serialise what they must */
		n = readahead_pread(fh->rd, buf, size, (uint64_t)off);
	if (n == -ENOENT)
		n = -EIO; /* gone mid-read is an I/O error */
	if (n < 0) {
		log_msg(LOG_DEBUG, "read of %zu bytes at %lld failed", size, (long long)off);
		log_failure("read failed: ", (int)n, first_failure(fh, n));
	}
	log_set_context(NULL);
	return n < 0 ? program_errno((int)n) : (int)n;
}

static int fs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	intr_start();
	int n = read_fh(path, buf, size, off, fi);
	intr_end();
	return n;
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	fh_free((struct fh *)(uintptr_t)fi->fh);
	return 0;
}

struct link_ctx {
	struct job *job;
	const struct zipindex *zi;
};

static int link_target(void *ctx, const struct zip_member *link, char **out, size_t *len)
{
	struct link_ctx *lc = ctx;
	return zip_reader_read_all(lc->zi, link, job_read_fn, lc->job, SYMLINK_MAX, out, len);
}

/* The kernel asks for every link it meets, so refusing each link whose whole resolution leaves
 * the job folder (through other links too) keeps every walk from a job folder inside it; the
 * canonical text keeps it so when a ref's job changes in the middle of a walk (zipindex.h).
 * Inside a nested archive the same holds for the nested tree's root. */
static int link_text(const struct place *p, char **text)
{
	struct link_ctx lc = {p->job, p->zi};
	const struct zip_member *to;
	int err = p->nest ? zipindex_resolve_link(p->zi, p->m, nest_link_target, p->nest, &to, text)
			  : zipindex_resolve_link(p->zi, p->m, link_target, &lc, &to, text);
	if (err == -EXDEV) {
		log_msg(LOG_WARNING, "symbolic link leads outside its job folder: not followed");
		err = -EACCES;
	}
	return err;
}

static int readlink_path(const struct tree_path *tp, char *buf, size_t size)
{
	if (!is_in_job(tp))
		return -EINVAL;
	struct place p;
	int err = place_find(config()->cat, tp, &p);
	if (err)
		return err;
	if (!p.m || p.m->type != ZIP_SYMLINK)
		err = -EINVAL;
	char *text = NULL;
	if (!err)
		err = link_text(&p, &text);
	if (!err && strlen(text) >= size)
		err = -ENAMETOOLONG; /* a cut text would name another member */
	if (!err)
		strcpy(buf, text);
	free(text);
	place_release(&p);
	return err;
}

static int fs_readlink(const char *path, char *buf, size_t size)
{
	struct tree_path tp;
	int err = op_begin(path, &tp);
	if (!err)
		err = readlink_path(&tp, buf, size);
	return op_end(&tp, err);
}

static int fs_getxattr(const char *path, const char *name, char *buf, size_t size)
{
	struct tree_path tp;
	int err = op_begin(path, &tp);
	if (!err)
		err = xattr_get(config(), &tp, name, buf, size);
	return op_end(&tp, err);
}

static int fs_listxattr(const char *path, char *buf, size_t size)
{
	struct tree_path tp;
	struct stat st;
	int err = op_begin(path, &tp);
	if (!err)
		err = getattr_path(&tp, &st); /* no names for what does not exist */
	if (!err && S_ISLNK(st.st_mode))
		return op_end(&tp, 0);
	if (!err)
		err = xattr_list(config(), &tp, buf, size);
	return op_end(&tp, err);
}

static int fs_setxattr(const char *path, const char *name, const char *value, size_t size,
		       int flags)
{
	(void)flags;
	struct tree_path tp;
	int err = op_begin(path, &tp);
	if (!err)
		err = xattr_set(config(), &tp, name, value, size);
	return op_end(&tp, err);
}

static int fs_removexattr(const char *path, const char *name)
{
	(void)path;
	(void)name;
	return -EROFS;
}

/* The kernel holds the parent folder locked during unlink, so the job folder's cached entry is
 * dropped on the forgets pool once the unlink has returned (kernel.h). */
static void forget_job_folder(const char *zip_path)
{
	if (unmounted_config) /* unit tests: no kernel cache to drop */
		return;
	kernel_forget_later(config()->forgets, fuse_get_context()->fuse, zip_path,
			    strlen(zip_path) - 4); /* drop ".zip" */
}

static int fs_unlink(const char *path)
{
	struct tree_path tp;
	int err = op_begin(path, &tp);
	if (err)
		return op_end(&tp, err == -ENOENT ? -EROFS : err);
	if (!is_zip(&tp) || !config()->allow_delete)
		return op_end(&tp, -EROFS);
	struct job *j;
	err = place_find_job(config()->cat, &tp, &j);
	if (!err) {
		err = catalog_job_delete(config()->cat, j);
		job_put(j);
	}
	if (!err) {
		log_msg(LOG_INFO, "deleted the artifacts of this job");
		forget_job_folder(path);
	}
	return op_end(&tp, err);
}

static int fs_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	struct cache_stats cs;
	cache_get_stats(config()->cache, &cs);
	memset(st, 0, sizeof(*st));
	st->f_bsize = st->f_frsize = 4096;
	st->f_blocks = cs.limit_bytes / 4096;
	st->f_bfree = st->f_bavail =
		cs.used_bytes < cs.limit_bytes ? (cs.limit_bytes - cs.used_bytes) / 4096 : 0;
	st->f_namemax = 255;
	st->f_flag = ST_RDONLY;
	return 0;
}

/* Every other change is refused before anything is sent. */
static int rofs_mkdir(const char *p, mode_t m)
{
	(void)p, (void)m;
	return -EROFS;
}
static int rofs_path(const char *p)
{
	(void)p;
	return -EROFS;
}
static int rofs_two(const char *a, const char *b)
{
	(void)a, (void)b;
	return -EROFS;
}
static int rofs_rename(const char *a, const char *b, unsigned int flags)
{
	(void)a, (void)b, (void)flags;
	return -EROFS;
}
static int rofs_chmod(const char *p, mode_t m, struct fuse_file_info *fi)
{
	(void)p, (void)m, (void)fi;
	return -EROFS;
}
static int rofs_chown(const char *p, uid_t u, gid_t g, struct fuse_file_info *fi)
{
	(void)p, (void)u, (void)g, (void)fi;
	return -EROFS;
}
static int rofs_truncate(const char *p, off_t o, struct fuse_file_info *fi)
{
	(void)p, (void)o, (void)fi;
	return -EROFS;
}
static int rofs_create(const char *p, mode_t m, struct fuse_file_info *fi)
{
	(void)p, (void)m, (void)fi;
	return -EROFS;
}
static int rofs_utimens(const char *p, const struct timespec tv[2], struct fuse_file_info *fi)
{
	(void)p, (void)tv, (void)fi;
	return -EROFS;
}
static int rofs_mknod(const char *p, mode_t m, dev_t d)
{
	(void)p, (void)m, (void)d;
	return -EROFS;
}
static int rofs_write(const char *p, const char *b, size_t s, off_t o, struct fuse_file_info *fi)
{
	(void)p, (void)b, (void)s, (void)o, (void)fi;
	return -EROFS;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct fs_config *fc = config();
	cfg->entry_timeout = fc->ttl_s;
	cfg->attr_timeout = fc->ttl_s;
	cfg->negative_timeout = fc->ttl_s;
	cfg->use_ino = 0;
	cfg->kernel_cache = 0; /* per open instead: keep_cache for content under job ids */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	return fc;
}

/* After the loop: no request runs any more. */
static void fs_destroy(void *private_data)
{
	struct fs_config *fc = private_data; /* background fetches end first: they ask libfuse's
	                                        session whether to stop, and it is about to go */
	if (fc && fc->pool)
		pool_drain(fc->pool);
	while (open_files)
		fh_free(open_files);
}

const struct fuse_operations fs_operations = {
	.init = fs_init,
	.destroy = fs_destroy,
	.getattr = fs_getattr,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.open = fs_open,
	.read = fs_read,
	.release = fs_release,
	.readlink = fs_readlink,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.setxattr = fs_setxattr,
	.removexattr = fs_removexattr,
	.unlink = fs_unlink,
	.statfs = fs_statfs,
	.mkdir = rofs_mkdir,
	.rmdir = rofs_path,
	.symlink = rofs_two,
	.link = rofs_two,
	.rename = rofs_rename,
	.chmod = rofs_chmod,
	.chown = rofs_chown,
	.truncate = rofs_truncate,
	.create = rofs_create,
	.utimens = rofs_utimens,
	.mknod = rofs_mknod,
	.write = rofs_write,
};

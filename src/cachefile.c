/* cachefile: the cache's files on disk, their format and their I/O; it takes no lock and keeps no
 * state, so any file of the cache may call it with any lock held. The folder DIR/v2 is ours alone
 * (0700) and holds one file per archive (the layout is in cache_i.h) and the lock file .lock; files
 * of the older layout (DIR/v1) are removed at open. Nothing on disk is trusted: a file is used only
 * when it is a regular file of ours that nobody else may write, reached without following a symlink
 * (every path is opened relative to the folder's descriptor with O_NOFOLLOW), whose length is
 * exactly what its header's size implies. Anything else is discarded by the caller and fetched
 * again. Files are created 0600, folders 0700. A full disk or quota is always -ENOSPC here: the
 * caller evicts and tries again. */
#include "cache_i.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/vfs.h>
#include <unistd.h>

char *cachefile_name(const char *key)
{
	char *p = NULL;
	return asprintf(&p, "%s.afs", key) < 0 ? NULL : p;
}

/* ---- files below the folder: never through a symlink, only ours ---- */

bool cachefile_is_ours(const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_uid == geteuid() && !(st->st_mode & 022);
}

void cachefile_remove(struct cache *c, const char *name)
{
	if (unlinkat(c->vfd, name, 0) && errno == EISDIR)
		unlinkat(c->vfd, name, AT_REMOVEDIR);
}

/* Opens a directory below dirfd without following a symlink; it must be ours, 0700. */
static int open_private_dir(int dirfd, const char *name, int *out)
{
	if (mkdirat(dirfd, name, 0700) && errno != EEXIST)
		return -errno;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? -ENOTDIR : -errno;
	struct stat st;
	int err = fstat(fd, &st) ? -errno : 0;
	if (!err && st.st_uid != geteuid())
		err = -EACCES;
	if (!err && (st.st_mode & 077) && fchmod(fd, 0700))
		err = -errno;
	if (err) {
		close(fd);
		return err;
	}
	*out = fd;
	return 0;
}

static int mkdir_private(const char *path)
{
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	struct stat st;
	if (stat(path, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if ((st.st_mode & 077) && st.st_uid == geteuid() && chmod(path, 0700))
		return -errno;
	return 0;
}

static int mkdir_parents(const char *dir)
{
	char *p = strdup(dir);
	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) && errno != EEXIST) {
			int err = -errno;
			free(p);
			return err;
		}
		*s = '/';
	}
	free(p);
	return mkdir_private(dir);
}

/* Removes the files of an older layout that no process uses, then their folder if empty. */
static void drop_old_version(int rootfd)
{
	int fd = openat(rootfd, OLD_VERSION_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		int f = openat(dirfd(d), de->d_name,
			       O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (f >= 0 && flock(f, LOCK_EX | LOCK_NB) == 0)
			unlinkat(dirfd(d), de->d_name, 0);
		if (f >= 0)
			close(f);
	}
	closedir(d);
	unlinkat(rootfd, OLD_VERSION_DIR, AT_REMOVEDIR);
}

/* File systems other machines may write to (whose page cache may be stale): FUSE (ceph-fuse,
 * sshfs, ...), CephFS, NFS, SMB, 9p, Lustre, GPFS. */
static bool is_shared_fs(const struct statfs *sf)
{
	static const unsigned long types[] = {0x65735546, 0x00c36400, 0x6969,     0xff534d42,
					      0xfe534d42, 0x01021997, 0x0bd00bd0, 0x47504653};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if ((unsigned long)sf->f_type == types[i])
			return true;
	return false;
}

/* Opens the folder's version directory and its lock file, never through a symlink. */
static int open_folder(struct cache *c, const char *abs)
{
	int rootfd = open(abs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0)
		return -errno;
	int err = open_private_dir(rootfd, VERSION_DIR, &c->vfd);
	if (!err)
		drop_old_version(rootfd);
	close(rootfd);
	if (err)
		return err;
	c->lockfd = openat(c->vfd, LOCK_NAME,
			   O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	if (c->lockfd < 0)
		return errno == ELOOP ? -EACCES : -errno;
	struct stat st;
	if (fstat(c->lockfd, &st))
		return -errno;
	struct statfs sf;
	c->shared_fs = fstatfs(c->vfd, &sf) == 0 && is_shared_fs(&sf);
	return cachefile_is_ours(&st) ? 0 : -EACCES;
}

int cachefile_open_folder(struct cache *c, const char *dir)
{
	int err = mkdir_parents(dir);
	/* absolute: libfuse moves a daemon to "/" when it leaves the terminal */
	char *abs = err ? NULL : realpath(dir, NULL);
	if (!err && !abs)
		err = -errno;
	if (!err && asprintf(&c->vdir, "%s/" VERSION_DIR, abs) < 0) {
		c->vdir = NULL;
		err = -ENOMEM;
	}
	if (!err)
		err = open_folder(c, abs);
	free(abs);
	return err;
}

/* ---- the bytes of a file ---- */

int cachefile_write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EDQUOT || errno == ENOSPC ? -ENOSPC : -errno;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int cachefile_read_all(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int cachefile_read_fresh(const struct cache *c, int fd, void *buf, size_t len, uint64_t off)
{
	if (c->shared_fs && len > 0) {
		/* whole pages only are dropped: widen the range to them */
		uint64_t lo = off / PAGE * PAGE, hi = (off + len + PAGE - 1) / PAGE * PAGE;
		posix_fadvise(fd, (off_t)lo, (off_t)(hi - lo), POSIX_FADV_DONTNEED);
	}
	return cachefile_read_all(fd, buf, len, off);
}

static int range_lock(int fd, short type, uint64_t off, uint64_t len)
{
	struct flock fl = {
		.l_type = type, .l_whence = SEEK_SET, .l_start = (off_t)off, .l_len = (off_t)len};
	while (fcntl(fd, F_OFD_SETLK, &fl))
		if (errno != EINTR)
			return errno == EACCES ? -EAGAIN : -errno;
	return 0;
}

int cachefile_range_lock(int fd, uint64_t off, uint64_t len)
{
	return range_lock(fd, F_WRLCK, off, len);
}

void cachefile_range_unlock(int fd, uint64_t off, uint64_t len)
{
	range_lock(fd, F_UNLCK, off, len);
}

/* ---- making a file, and opening one ---- */

void cachefile_header(char header[HEADER_LEN], uint64_t size)
{
	memset(header, 0, HEADER_LEN);
	memcpy(header + HEADER_MAGIC_AT, MAGIC, sizeof(MAGIC));
	memcpy(header + HEADER_SIZE_AT, &size, sizeof(size));
}

/* Now, so that marking a block present never meets a full disk (tmpfs allocates on write). */
int cachefile_allocate_meta(int fd, uint64_t size)
{
	int err = posix_fallocate(fd, 0, (off_t)meta_len(size));
	if (err == EINVAL || err == EOPNOTSUPP)
		err = 0; /* a file system without it: the writes allocate */
	return err == EDQUOT ? -ENOSPC : -err;
}

int cachefile_set_length(int fd, uint64_t size)
{
	if (ftruncate(fd, (off_t)file_len(size)))
		return errno == EFBIG || errno == ENOSPC ? -ENOSPC : -errno;
	return 0;
}

int cachefile_read_header(int fd, uint64_t *size)
{
	char header[HEADER_SIZE_AT + sizeof(*size)];
	int err = cachefile_read_all(fd, header, sizeof(header), 0);
	if (err)
		return err == -EIO ? -EBADMSG : err;
	if (memcmp(header + HEADER_MAGIC_AT, MAGIC, sizeof(MAGIC)) != 0)
		return -EBADMSG;
	memcpy(size, header + HEADER_SIZE_AT, sizeof(*size));
	struct stat st;
	if (fstat(fd, &st))
		return -errno;
	if (*size > MAX_ARCHIVE_BYTES || (uint64_t)st.st_size != file_len(*size))
		return -EBADMSG;
	return 0;
}

int cachefile_open_locked(struct cache *c, const char *name, int *fd_out)
{
	int fd = openat(c->vfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP || errno == EACCES || errno == EISDIR || errno == ENXIO ||
				       errno == EPERM
			       ? -EBADMSG
			       : -errno;
	struct stat a, b;
	int err = fstat(fd, &a) ? -errno : cachefile_is_ours(&a) ? 0 : -EBADMSG;
	if (!err && (flock(fd, LOCK_SH) || fstatat(c->vfd, name, &b, AT_SYMLINK_NOFOLLOW) ||
		     a.st_ino != b.st_ino))
		err = -ESTALE;
	if (err) {
		close(fd);
		return err;
	}
	*fd_out = fd;
	return 0;
}

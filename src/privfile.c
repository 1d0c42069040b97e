/* privfile: a file the daemon writes for its operator (the log, the metrics), opened under the
 * token file's and the cache folder's rules. Another user's FIFO at the path would block start-up
 * forever, and another user's file, or one anyone may write, would receive root's lines or have
 * lines forged into it. O_NONBLOCK makes a FIFO without a reader fail at once (ENXIO) and one
 * with a reader is refused by the checks; it does nothing to a regular file and is cleared after
 * them. The folder must not let others swap the file: not writable by others unless sticky (as
 * /tmp). */
#include "artifactfs/privfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Why the open file fd at path may not be used; NULL when it may. */
static const char *refusal(int fd, const char *path)
{
	const char *bad = NULL;
	struct stat st, dir;
	char *slash = strrchr(path, '/'), *parent = NULL;
	if (fstat(fd, &st))
		bad = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		bad = "it is not a regular file";
	else if (st.st_uid != geteuid())
		bad = "it is owned by another user";
	else if (st.st_mode & 022)
		bad = "it can be written by group or others";
	else if (slash && !(parent = strndup(path, slash == path ? 1 : (size_t)(slash - path))))
		bad = strerror(ENOMEM);
	else if (!stat(parent ? parent : ".", &dir) && (dir.st_mode & 002) &&
		 !(dir.st_mode & S_ISVTX))
		bad = "its folder can be written by others";
	free(parent);
	return bad;
}

int privfile_open(const char *path, int flags, mode_t mode, char *why, size_t why_len)
{
	int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, mode);
	if (fd < 0) {
		int err = errno == ENXIO || errno == EISDIR ? EINVAL : errno;
		snprintf(why, why_len, "%s",
			 err == EINVAL  ? "it is not a regular file"
			 : err == ELOOP ? "it is a symbolic link"
					: strerror(err));
		return -err;
	}
	const char *bad = refusal(fd, path);
	if (!bad && fcntl(fd, F_SETFL, flags & O_APPEND) < 0)
		bad = strerror(errno);
	if (bad) {
		snprintf(why, why_len, "%s", bad);
		close(fd);
		return -EACCES;
	}
	return fd;
}

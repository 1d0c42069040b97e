/* cachedir: walks a cache folder's path from "/" down, one folder at a time, checking each
 * before going below it and creating the missing ones 0700, so that no folder it accepts can be
 * swapped by another user between the check and cache_open(): every folder above an accepted
 * one is writable only by root or the caller (or sticky, where others cannot rename ours). */
#include "artifactfs/cachedir.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((format(printf, 4, 5))) static int say(int err, char *why, size_t len,
						     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return err;
}

static char *absolute(const char *dir)
{
	if (dir[0] == '/')
		return strdup(dir);
	char *cwd = getcwd(NULL, 0), *abs = NULL;
	if (cwd && asprintf(&abs, "%s/%s", cwd, dir) < 0)
		abs = NULL;
	free(cwd);
	return abs;
}

/* How much of abs lies at or above home (links there are followed); 0 when abs is not in it. */
static size_t home_len(const char *abs, const char *home)
{
	if (!home || home[0] != '/')
		return 0;
	size_t n = strlen(home);
	while (n > 1 && home[n - 1] == '/')
		n--;
	if (n == 1 || strncmp(abs, home, n) != 0 || (abs[n] != '/' && abs[n] != '\0'))
		return 0;
	return n;
}

static int check_one(const char *path, bool follow, bool last, char *why, size_t len)
{
	struct stat st;
	int r = follow ? stat(path, &st) : lstat(path, &st);
	if (r && errno == ENOENT) {
		if (mkdir(path, 0700) && errno != EEXIST)
			return say(-errno, why, len, "cannot create %s: %s", path, strerror(errno));
		r = lstat(path, &st);
	}
	if (r)
		return say(-errno, why, len, "%s: %s", path, strerror(errno));
	if (S_ISLNK(st.st_mode))
		return say(-ELOOP, why, len, "%s is a symbolic link (give the folder it points to)",
			   path);
	if (!S_ISDIR(st.st_mode))
		return say(-ENOTDIR, why, len, "%s is not a folder", path);
	if (st.st_uid != geteuid() && (last || st.st_uid != 0))
		return say(-EACCES, why, len, "%s is owned by another user (uid %u)", path,
			   (unsigned)st.st_uid);
	if ((st.st_mode & 022) && (last || !(st.st_mode & S_ISVTX)))
		return say(-EACCES, why, len, "%s can be written by group or others (mode %04o)",
			   path, (unsigned)(st.st_mode & 07777));
	return 0;
}

/* Checks each prefix of abs that ends a component, "/" first. abs has no trailing '/'. */
static int walk(char *abs, size_t base, char *why, size_t len)
{
	int err = check_one("/", true, abs[1] == '\0', why, len);
	for (char *s = abs + 1; !err && abs[1]; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		const char *name = strrchr(abs, '/') + 1;
		if (strcmp(name, "..") == 0)
			err = say(-EINVAL, why, len, "%s has a .. component", abs);
		else if (*name) /* "a//b" */
			err = check_one(abs, (size_t)(s - abs) <= base, c == '\0', why, len);
		*s = c;
		if (c == '\0')
			break;
	}
	return err;
}

int cachedir_prepare(const char *dir, const char *home, char *why, size_t why_len)
{
	char *abs = absolute(dir);
	if (!abs)
		return say(-ENOMEM, why, why_len, "out of memory");
	size_t n = strlen(abs);
	while (n > 1 && abs[n - 1] == '/')
		abs[--n] = '\0';
	int err = walk(abs, home_len(abs, home), why, why_len);
	free(abs);
	return err;
}

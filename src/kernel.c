/* kernel: what the daemon asks of the kernel beside answering its requests. The read-ahead of
 * the mount's bdi (backing device), raised from the kernel's 128 KiB to 1 MiB by writing
 * /sys/class/bdi/<maj>:<min>/read_ahead_kb, the device numbers found by the mount point in
 * /proc/self/mountinfo (the last FUSE mount there, the one on top); only root may write it, and
 * anyone else keeps the default, which is no failure: the outcome is a DEBUG line. And the
 * cached entries an operation made stale, forgotten on a pool's worker instead of a thread of
 * their own, so that draining the pool is the end of every forget: none can outlive the
 * session it writes to (a detached thread could, and use libfuse's freed tables). Calls nothing
 * of fs.c: fs.h is included for <fuse.h> only. */
#include "artifactfs/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "artifactfs/fs.h"
#include "artifactfs/log.h"
#include "artifactfs/pool.h"

/* Undoes mountinfo's octal escapes (a space is \\040) in place. */
static void unescape_octal(char *s)
{
	char *out = s;
	for (; *s; s++, out++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out = *s;
		}
	}
	*out = '\0';
}

/* The kernel reads ahead 128 KiB on a FUSE mount (its bdi's default), so a sequential reader
 * costs one request, and two context switches, per 128 KiB, though libfuse takes 1 MiB
 * requests. Read-ahead is a setting of the mount's bdi that only root may change and that the
 * INIT exchange lowers again, hence once, at the first open, and silently skipped when not
 * allowed. Measured on the 2-core VM: a 1 GiB read from the disk cache 1.20 s -> 0.78 s. */
void kernel_raise_read_ahead(const char *mountpoint)
{
	FILE *f = mountpoint ? fopen("/proc/self/mountinfo", "re") : NULL;
	if (!f)
		return;
	char *line = NULL, point[4096];
	size_t cap = 0;
	unsigned maj = 0, min = 0;
	bool found = false;
	while (getline(&line, &cap, f) > 0) {
		unsigned a, b;
		if (sscanf(line, "%*d %*d %u:%u %*s %4095s", &a, &b, point) != 3)
			continue;
		unescape_octal(point);
		if (strcmp(point, mountpoint) == 0 && strstr(line, " - fuse")) {
			maj = a, min = b, found = true; /* the last one: mounted on top */
		}
	}
	free(line);
	fclose(f);
	char path[64];
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
	int fd = found ? open(path, O_WRONLY | O_CLOEXEC) : -1;
	bool ok = fd >= 0 && write(fd, "1024", 4) == 4;
	if (fd >= 0)
		close(fd);
	log_msg(LOG_DEBUG, "kernel read-ahead on %s: %s", mountpoint,
		ok ? "1 MiB" : "left at its default (not allowed or not found)");
}

/* A forget waiting in the pool: it owns path. */
struct forget {
	struct fuse *fuse;
	char *path;
};

/* The pool's cancel: a drain dropped the forget before it ran. */
static void forget_free(void *arg)
{
	struct forget *fg = arg;
	free(fg->path);
	free(fg);
}

static void forget_run(void *arg)
{
	struct forget *fg = arg;
	fuse_invalidate_path(fg->fuse, fg->path);
	forget_free(fg);
}

int kernel_forget_later(struct pool *p, struct fuse *fuse, const char *path, size_t len)
{
	struct forget *fg = malloc(sizeof(*fg));
	if (!fg)
		return -ENOMEM;
	fg->fuse = fuse;
	fg->path = strndup(path, len);
	int err = fg->path ? pool_submit(p, forget_run, forget_free, fg) : -ENOMEM;
	if (err)
		forget_free(fg);
	return err;
}

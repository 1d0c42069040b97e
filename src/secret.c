/* secret: what on a command line may be a token, so that main.c refuses it without echoing it:
 * GitLab's token prefixes (a token wherever they stand), long random-looking words (only in
 * options nobody knows), and the mount options libfuse, the kernel and fstab know (their values
 * are names, numbers and UUIDs). Pure functions of their argument; no state. */
#include "artifactfs/secret.h"

#include <string.h>

/* GitLab's token prefixes (doc/administration/settings/account_and_limit_settings): a value
 * holding one is a token wherever it stands, even in a known option such as fsname=. */
bool secret_has_token_prefix(const char *s)
{
	static const char *prefixes[] = {"glpat-",  "gloas-", "gldt-",    "glrt-",    "glcbt-",
					 "glptt-",  "glft-",  "glimt-",   "glagent-", "glsoat-",
					 "glffct-", "glwt-",  "GR1348941"};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strstr(s, prefixes[i]))
			return true;
	return false;
}

/* A long word mixing letters and digits, as random tokens are. Only for options nobody knows:
 * names such as fsname=build2024artifacts01 or an fstab UUID look like that too. */
bool secret_looks_random(const char *s)
{
	const char *word = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
	for (const char *p = s; *p; p += strcspn(p, word)) {
		size_t n = strspn(p, word);
		int upper = 0, lower = 0, digit = 0;
		for (size_t i = 0; i < n; i++) {
			upper |= p[i] >= 'A' && p[i] <= 'Z';
			lower |= p[i] >= 'a' && p[i] <= 'z';
			digit |= p[i] >= '0' && p[i] <= '9';
		}
		if (n >= 20 && digit && upper + lower + digit >= 2)
			return true;
		p += n;
	}
	return false;
}

/* Options libfuse, the kernel or mount(8)/fstab know (libfuse's lib/mount.c, lib/helper.c and
 * lib/fuse.c; "x-" options are fstab's own, for systemd and the like): their values are names,
 * numbers and UUIDs, not tokens. */
bool secret_known_mount_option(const char *arg)
{
	static const char *names[] = {"fsname=",
				      "subtype=",
				      "allow_other",
				      "allow_root",
				      "auto_unmount",
				      "default_permissions",
				      "max_read=",
				      "blkdev",
				      "blksize=",
				      "ro",
				      "rw",
				      "suid",
				      "nosuid",
				      "dev",
				      "nodev",
				      "exec",
				      "noexec",
				      "async",
				      "sync",
				      "atime",
				      "noatime",
				      "diratime",
				      "nodiratime",
				      "relatime",
				      "norelatime",
				      "strictatime",
				      "lazytime",
				      "dirsync",
				      "context=",
				      "fscontext=",
				      "defcontext=",
				      "rootcontext=",
				      "max_threads=",
				      "max_idle_threads=",
				      "clone_fd",
				      "umask=",
				      "uid=",
				      "gid=",
				      "entry_timeout=",
				      "negative_timeout=",
				      "attr_timeout=",
				      "ac_attr_timeout=",
				      "noforget",
				      "remember=",
				      "modules=",
				      "nonempty",
				      "_netdev",
				      "noauto",
				      "auto",
				      "user",
				      "users",
				      "nouser",
				      "nofail",
				      "defaults",
				      "x-",
				      "comment="};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);
		if (names[i][n - 1] == '=' || names[i][n - 1] == '-'
			    ? strncmp(arg, names[i], n) == 0
			    : strcmp(arg, names[i]) == 0)
			return true;
	}
	return false;
}

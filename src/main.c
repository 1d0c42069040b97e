/* main: the command line (libfuse's own option parser, so every option has an -o form for
 * fstab), credentials, the checks made before mounting, and the start-up order: curl and jansson
 * set up and SIGHUP blocked (with --log-file) before any thread, the server and token checked,
 * the cache folder checked and opened, then mount, daemonize, the SIGHUP thread and the
 * multithreaded loop. Nothing typed on the command line that may be a token is ever echoed.
 * The only place allowed to exit(). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "artifactfs/cache.h"
#include "artifactfs/cachedir.h"
#include "artifactfs/catalog.h"
#include "artifactfs/fs.h" /* first: it sets FUSE_USE_VERSION */
#include <fuse_lowlevel.h>
#include "artifactfs/gitlab.h"
#include "artifactfs/http.h"
#include "artifactfs/log.h"
#include "artifactfs/membudget.h"
#include "artifactfs/metrics.h"
#include "artifactfs/pool.h"
#include "artifactfs/secret.h"

#define TOKEN_MAX 4096

struct options {
	char *url;
	char *token_file;
	char **projects; /* NULL-terminated */
	size_t n_projects;
	char *cache_dir;
	char *cache_size;
	char *memory_limit;
	char *ttl;
	char *timeout;
	char *connections;
	char *log_file, *metrics_file;
	char *retry_for;
	char *ca_file;
	int allow_delete;
	int help;
	int version;
	int plain_args;   /* arguments that are neither options nor a URL */
	bool url_missing; /* two plain arguments: the first was meant as the URL but is none */
	bool extra_arg;   /* a third plain argument: never shown, it may be a token */
	bool token_given; /* --token VALUE, -o token=VALUE */
	bool token_next;  /* the next plain argument is --token's value */
	bool secret_seen; /* an unknown option that looks like a token */
	bool fsname_given, subtype_given; /* -o fsname=, -o subtype= */
	char *unknown;                    /* the name (only) of an unknown --option */
	const char *empty; /* "fsname" or "subtype" given empty: the kernel refuses the mount */
};

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_PROJECT,
	KEY_FOREGROUND,
	KEY_DEBUG,
	KEY_TOKEN,
	KEY_TOKEN_NEXT
};

#define OPT(t, p)                                 \
	{                                         \
		t, offsetof(struct options, p), 1 \
	}
#define OPT_S(t, p)                               \
	{                                         \
		t, offsetof(struct options, p), 0 \
	}
static const struct fuse_opt option_spec[] = {
	OPT_S("--token-file=%s", token_file),
	OPT_S("--token-file %s", token_file),
	OPT_S("token_file=%s", token_file),
	OPT_S("--cache-dir=%s", cache_dir),
	OPT_S("--cache-dir %s", cache_dir),
	OPT_S("cache_dir=%s", cache_dir),
	OPT_S("--cache-size=%s", cache_size),
	OPT_S("--cache-size %s", cache_size),
	OPT_S("cache_size=%s", cache_size),
	OPT_S("--memory-limit=%s", memory_limit),
	OPT_S("--memory-limit %s", memory_limit),
	OPT_S("memory_limit=%s", memory_limit),
	OPT_S("--ttl=%s", ttl),
	OPT_S("--ttl %s", ttl),
	OPT_S("ttl=%s", ttl),
	OPT_S("--timeout=%s", timeout),
	OPT_S("--timeout %s", timeout),
	OPT_S("timeout=%s", timeout),
	OPT_S("--connections=%s", connections),
	OPT_S("--connections %s", connections),
	OPT_S("connections=%s", connections),
	OPT_S("--retry-for=%s", retry_for),
	OPT_S("--retry-for %s", retry_for),
	OPT_S("retry_for=%s", retry_for),
	OPT_S("--ca-file=%s", ca_file),
	OPT_S("--ca-file %s", ca_file),
	OPT_S("ca_file=%s", ca_file),
	OPT("--allow-delete", allow_delete),
	OPT("allow_delete", allow_delete),
	OPT_S("--log-file=%s", log_file),
	OPT_S("--log-file %s", log_file),
	OPT_S("log_file=%s", log_file),
	OPT_S("--metrics-file=%s", metrics_file),
	OPT_S("--metrics-file %s", metrics_file),
	OPT_S("metrics_file=%s", metrics_file),
	FUSE_OPT_KEY("--foreground", KEY_FOREGROUND),
	FUSE_OPT_KEY("--debug", KEY_DEBUG),
	FUSE_OPT_KEY("--read-only", FUSE_OPT_KEY_DISCARD), /* it is, unless allow_delete */
	/* not "--token %s": fuse_opt would take --token-file for it too */
	FUSE_OPT_KEY("--token", KEY_TOKEN_NEXT),
	FUSE_OPT_KEY("--token=", KEY_TOKEN),
	FUSE_OPT_KEY("token=", KEY_TOKEN),
	FUSE_OPT_KEY("--private-token", KEY_TOKEN_NEXT),
	FUSE_OPT_KEY("--private-token=", KEY_TOKEN),
	FUSE_OPT_KEY("--project=", KEY_PROJECT),
	FUSE_OPT_KEY("--project ", KEY_PROJECT),
	FUSE_OPT_KEY("project=", KEY_PROJECT),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END,
};

static void usage(const char *prog)
{
	printf("usage: %s [URL] MOUNTPOINT [options]\n\n"
	       "Mounts the job artifacts of a GitLab instance (default: $CI_SERVER_URL, "
	       "$GITLAB_URL,\n"
	       "else https://gitlab.com) as a directory tree.\n\n"
	       "options:\n"
	       "    --token-file=FILE   (-o token_file=FILE) access token, sent as PRIVATE-TOKEN;\n"
	       "                        else $GITLAB_TOKEN, $GITLAB_OAUTH_TOKEN (Bearer),\n"
	       "                        $CI_JOB_TOKEN (JOB-TOKEN), else anonymous\n"
	       "    --project=P         (-o project=P) list P at the root (repeatable; id or "
	       "path)\n"
	       "    --cache-dir=DIR     (-o cache_dir=DIR) default $XDG_CACHE_HOME/artifactfs\n"
	       "    --cache-size=SIZE   (-o cache_size=SIZE) e.g. 500M, 10G; default 4G\n"
	       "    --memory-limit=SIZE (-o memory_limit=SIZE) memory for archive indexes and\n"
	       "                        their names; past it a listing fails (ENOMEM); default "
	       "512M\n"
	       "    --ttl=SECONDS       (-o ttl=SECONDS) trust listings this long; default 60\n"
	       "    --timeout=SECONDS   (-o timeout=SECONDS) give up on a transfer that moves\n"
	       "                        nothing for this long, then retry; default 30\n"
	       "    --connections=N     (-o connections=N) ranged downloads in flight at once\n"
	       "                        for the reads of this mount (1-64); default 8\n"
	       "    --retry-for=SECONDS (-o retry_for=SECONDS) wait out rate limits and server\n"
	       "                        errors this long per request before EIO; default 120\n"
	       "    --ca-file=FILE      (-o ca_file=FILE) also trust this CA (PEM); default\n"
	       "                        $CI_SERVER_TLS_CA_FILE\n"
	       "    --allow-delete      (-o allow_delete) let rm <job>.zip delete artifacts and\n"
	       "                        setfattr keep them; the mount is read-only without it\n"
	       "    --log-file=FILE     (-o log_file=FILE) log here, timestamped, instead of "
	       "syslog\n"
	       "                        or stderr; SIGHUP then reopens FILE (logrotate)\n"
	       "    --metrics-file=FILE (-o metrics_file=FILE) counters in Prometheus text "
	       "format,\n"
	       "                        rewritten every 5 s (node_exporter's textfile collector)\n"
	       "    -f, --foreground    stay in the foreground, log to stderr\n"
	       "    -d, --debug         log every request and FUSE call; stays in the foreground\n"
	       "    --read-only         accepted: the mount is read-only anyway\n"
	       "    -s                  one thread\n"
	       "    -o allow_other      let other users use the mount (needs user_allow_other in\n"
	       "                        /etc/fuse.conf unless root); modes are then enforced\n"
	       "    -o auto_unmount     unmount when the daemon dies\n"
	       "    -o uid=N,gid=N,umask=M  owner and modes shown for every file\n"
	       "    -h, --help          this text and libfuse's options\n"
	       "    -V, --version       the version\n\n"
	       "No option takes a token: it would show in ps, shell history and CI logs.\n"
	       "SIGTERM, SIGINT and fusermount3 -u unmount; so does SIGHUP without --log-file.\n\n",
	       prog);
}

static int add_project(struct options *o, const char *arg)
{
	static const char *prefixes[] = {"--project=", "--project", "project="};
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(prefixes[i]);
		if (strncmp(arg, prefixes[i], n) == 0) {
			arg += n;
			break;
		}
	}
	char **v = realloc(o->projects, (o->n_projects + 2) * sizeof(*v));
	if (!v)
		return -1;
	o->projects = v;
	v[o->n_projects] = strdup(arg);
	v[++o->n_projects] = NULL;
	return v[o->n_projects - 1] ? 0 : -1;
}

static bool is_url(const char *s)
{
	return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

/* An option nobody knows: a long one is refused here by name, any that may be a secret without
 * it; the rest go on to libfuse, which knows -o allow_other and the like. Known ones are checked
 * for GitLab's token prefixes only. */
static int unknown_option(struct options *o, const char *arg)
{
	bool known = secret_known_mount_option(arg);
	if (secret_has_token_prefix(arg) || (!known && secret_looks_random(arg))) {
		o->secret_seen = true;
		return 0;
	}
	if (strncmp(arg, "x-", 2) == 0 || strncmp(arg, "comment=", 8) == 0)
		return 0; /* fstab's own (x-systemd.*): libfuse would refuse them */
	if (strcmp(arg, "fsname=") == 0 || strcmp(arg, "subtype=") == 0) {
		o->empty = arg[0] == 'f' ? "fsname" : "subtype";
		return 0;
	}
	o->fsname_given |= strncmp(arg, "fsname=", 7) == 0;
	o->subtype_given |= strncmp(arg, "subtype=", 8) == 0;
	if (known || strncmp(arg, "--", 2) != 0)
		return 1;
	if (!o->unknown)
		o->unknown = strndup(arg, strcspn(arg, "="));
	return 0;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;
	switch (key) {
	case KEY_FOREGROUND:
		return fuse_opt_add_arg(outargs, "-f");
	case KEY_DEBUG:
		return fuse_opt_add_arg(outargs, "-d");
	case KEY_TOKEN_NEXT:
		o->token_next = true;
		__attribute__((fallthrough)); /* clang takes no comment for it */
	case KEY_TOKEN:
		o->token_given = true;
		return 0;
	case FUSE_OPT_KEY_OPT:
		return unknown_option(o, arg);
	case KEY_HELP:
		o->help = 1;
		return 0;
	case KEY_VERSION:
		o->version = 1;
		return 0;
	case KEY_PROJECT:
		return add_project(o, arg) ? -1 : 0;
	case FUSE_OPT_KEY_NONOPT:
		if (o->token_next) {
			o->token_next = false;
			return 0;
		}
		if (!o->url && strstr(arg, "://")) { /* a URL, even of a scheme we refuse later */
			o->url = strdup(arg);
			return 0;
		}
		o->plain_args++;
		if (o->plain_args == 2 && !o->url)
			o->url_missing = true;
		else if (o->plain_args >= 2)
			o->extra_arg = true;
		if (o->url_missing || o->extra_arg)
			return 0; /* never to libfuse, which would print it */
		return 1;         /* the mount point, for fuse_parse_cmdline */
	default:
		return 1;
	}
}

/* "500M", "10G", "4096": bytes, with binary K/M/G/T suffixes. 0 on a malformed size. A digit
 * first: strtoull skips blanks and signs, and wraps " -1" round to 16 EiB. */
static uint64_t parse_size(const char *s)
{
	char *end;
	errno = 0;
	if (*s < '0' || *s > '9')
		return 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return 0;
	const char *units = "KMGT";
	const char *u = *end ? strchr(units, *end & ~0x20) : NULL;
	if (*end && (!u || end[1] != '\0'))
		return 0;
	for (int shift = u ? (int)(u - units) + 1 : 0; shift > 0; shift--) {
		if (v > (UINT64_MAX >> 10))
			return 0;
		v <<= 10;
	}
	return v;
}

static int parse_ttl(const char *s, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 86400 * 365)
		return -1;
	*out = (int)v;
	return 0;
}

/* A token becomes one HTTP header: CR, LF, NUL or any other byte outside printable ASCII would
 * cut it short or add headers of its own, and a longer one is no GitLab token. NULL when it is
 * fine, else why not (never showing it). */
static const char *token_problem(const char *t, size_t n)
{
	if (n == 0)
		return "is empty";
	if (n > TOKEN_MAX)
		return "is longer than 4096 bytes";
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
			return "holds a line break, NUL, space, control or non-ASCII character";
	return NULL;
}

/* A token file must be a regular file only its owner may read: opened without following a link
 * and without blocking (a FIFO would hang start-up), checked on the descriptor. */
static int open_token_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		fprintf(stderr, "artifactfs: cannot open token file %s: %s\n", path,
			errno == ELOOP ? "it is a symbolic link" : strerror(errno));
		return -1;
	}
	struct stat st;
	const char *bad = fstat(fd, &st)               ? strerror(errno)
			  : !S_ISREG(st.st_mode)       ? "it is not a regular file"
			  : st.st_size > TOKEN_MAX + 2 ? "it is longer than 4096 bytes"
						       : NULL;
	if (!bad && (st.st_mode & 077)) {
		fprintf(stderr,
			"artifactfs: token file %s can be read by group or others (mode %04o); "
			"run chmod 600 on it\n",
			path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	if (bad) {
		fprintf(stderr, "artifactfs: cannot use token file %s: %s\n", path, bad);
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads a token file; one trailing newline is allowed. The message says why not, never what. */
static int read_token_file(const char *path, char **out)
{
	int fd = open_token_file(path);
	if (fd < 0)
		return -1;
	char *buf = calloc(1, TOKEN_MAX + 3);
	ssize_t n = buf ? read(fd, buf, TOKEN_MAX + 2) : -1;
	close(fd);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	const char *bad = n < 0 ? "it cannot be read" : token_problem(buf, (size_t)n);
	if (bad) {
		fprintf(stderr, "artifactfs: the token in %s %s\n", path, bad);
		if (buf)
			memset(buf, 0, TOKEN_MAX + 3);
		free(buf);
		return -1;
	}
	*out = buf;
	return 0;
}

/* Takes a token from the environment and wipes it there, so that child processes and
 * /proc/PID/environ no longer show it. */
static char *take_env_token(const char *name)
{
	char *v = getenv(name);
	if (!v || !*v)
		return NULL;
	char *copy = strdup(v);
	memset(v, 'x', strlen(v));
	unsetenv(name);
	return copy;
}

static int find_credentials(const struct options *o, enum http_auth *auth, char **token)
{
	static const struct {
		const char *env;
		enum http_auth auth;
	} envs[] = {
		{"GITLAB_TOKEN", HTTP_AUTH_PRIVATE_TOKEN},
		{"GITLAB_OAUTH_TOKEN", HTTP_AUTH_BEARER},
		{"CI_JOB_TOKEN", HTTP_AUTH_JOB_TOKEN},
	};
	*token = NULL;
	*auth = HTTP_AUTH_NONE;
	if (o->token_file) {
		*auth = HTTP_AUTH_PRIVATE_TOKEN;
		return read_token_file(o->token_file, token);
	}
	int err = 0;
	for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++) {
		char *t = take_env_token(envs[i].env);
		const char *bad = t && !*token ? token_problem(t, strlen(t)) : NULL;
		if (bad) {
			fprintf(stderr, "artifactfs: the token in $%s %s\n", envs[i].env, bad);
			err = -1;
		}
		if (t && !*token && !bad) {
			*token = t;
			*auth = envs[i].auth;
		} else {
			free(t);
		}
	}
	return err;
}

/* Echoes only what looks like a URL: a token pasted in its place must not be shown. */
static void say_not_a_url(const char *u)
{
	if (u && strstr(u, "://"))
		fprintf(stderr, "artifactfs: %s is not an http:// or https:// URL\n", u);
	else
		fprintf(stderr, "artifactfs: the GitLab URL is not an http:// or https:// URL\n");
}

/* user:password@ in the URL: a secret on the command line, in logs and in /proc/mounts */
static bool url_has_userinfo(const char *u)
{
	const char *host = strstr(u, "://") + 3;
	size_t n = strcspn(host, "/?#");
	return memchr(host, '@', n) != NULL;
}

static char *base_url(const struct options *o)
{
	const char *u = o->url;
	if (!u)
		u = getenv("CI_SERVER_URL");
	if (!u || !*u)
		u = getenv("GITLAB_URL");
	if (!u || !*u)
		u = "https://gitlab.com";
	if (!is_url(u)) {
		say_not_a_url(u);
		return NULL;
	}
	if (url_has_userinfo(u)) {
		fprintf(stderr,
			"artifactfs: the GitLab URL carries credentials (user:secret@); give "
			"the token with --token-file or $GITLAB_TOKEN instead\n");
		return NULL;
	}
	char *s = strdup(u);
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '/')
		s[--n] = '\0';
	return s;
}

/* Never under /tmp, where another user may have made the folder first. */
static char *default_cache_dir(void)
{
	char *d = NULL;
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	if (xdg && xdg[0] == '/')
		return asprintf(&d, "%s/artifactfs", xdg) < 0 ? NULL : d;
	if (home && home[0] == '/')
		return asprintf(&d, "%s/.cache/artifactfs", home) < 0 ? NULL : d;
	if (geteuid() == 0)
		return strdup("/var/cache/artifactfs");
	fprintf(stderr, "artifactfs: $HOME is not set: give the cache folder with --cache-dir\n");
	return NULL;
}

/* The log file's path is kept for reopening after libfuse moved the daemon to "/". */
static int open_log_file(const char *path)
{
	char *abs = NULL, *cwd = path[0] == '/' ? NULL : getcwd(NULL, 0);
	if (cwd && asprintf(&abs, "%s/%s", cwd, path) < 0)
		abs = NULL;
	free(cwd);
	char why[128];
	int err = log_open_file(abs ? abs : path, why, sizeof(why));
	free(abs);
	if (err == -ENOMEM)
		snprintf(why, sizeof(why), "%s", strerror(ENOMEM));
	if (err)
		fprintf(stderr, "artifactfs: cannot use log file %s: %s\n", path, why);
	return err ? -1 : 0;
}

struct daemon {
	struct options opts;
	struct fuse_cmdline_opts cmd;
	char *url, *token;
	enum http_auth auth;
	uint64_t cache_bytes;
	int ttl_s;
	int timeout_s;
	int connections;
	struct pool *pool;
	struct pool *forgets; /* the kernel cache drops of unlink: ended before the unmount */
	int retry_for_s;
	struct http *http;
	struct gitlab *gl;
	struct cache *cache;
	struct catalog *cat;
	struct fs_config fsc;
	struct fuse *fuse;
	struct metrics *metrics; /* --metrics-file: written once before mounting, then a thread */
};

static int check_options(struct daemon *d)
{
	struct options *o = &d->opts;
	if (!d->cmd.mountpoint) {
		fprintf(stderr, "artifactfs: no mount point given (see --help)\n");
		return -1;
	}
	d->cache_bytes = parse_size(o->cache_size ? o->cache_size : "4G");
	if (d->cache_bytes < 16 * CACHE_BLOCK_SIZE) {
		fprintf(stderr, "artifactfs: --cache-size %s is not a size of at least 1M\n",
			o->cache_size);
		return -1;
	}
	uint64_t mem = parse_size(o->memory_limit ? o->memory_limit : "512M");
	if (mem < (16u << 20)) {
		fprintf(stderr, "artifactfs: --memory-limit %s is not a size of at least 16M\n",
			o->memory_limit);
		return -1;
	}
	membudget_set_limit(mem);
	d->ttl_s = 60;
	if (o->ttl && parse_ttl(o->ttl, &d->ttl_s)) {
		fprintf(stderr, "artifactfs: --ttl %s is not a number of seconds\n", o->ttl);
		return -1;
	}
	d->timeout_s = 30;
	if (o->timeout && (parse_ttl(o->timeout, &d->timeout_s) || d->timeout_s < 1)) {
		fprintf(stderr, "artifactfs: --timeout %s is not a number of seconds\n",
			o->timeout);
		return -1;
	}
	d->connections = 8;
	if (o->connections && (parse_ttl(o->connections, &d->connections) || d->connections < 1 ||
			       d->connections > 64)) {
		fprintf(stderr, "artifactfs: --connections %s is not a number from 1 to 64\n",
			o->connections);
		return -1;
	}
	d->retry_for_s = 120;
	if (o->retry_for && (parse_ttl(o->retry_for, &d->retry_for_s) || d->retry_for_s < 1)) {
		fprintf(stderr, "artifactfs: --retry-for %s is not a number of seconds\n",
			o->retry_for);
		return -1;
	}
	if (!o->cache_dir && !(o->cache_dir = default_cache_dir()))
		return -1;
	if (o->log_file && open_log_file(o->log_file))
		return -1;
	d->url = base_url(o);
	if (!d->url)
		return -1;
	return find_credentials(o, &d->auth, &d->token);
}

/* A job token may not list projects: GitLab ignores it there and answers as to anyone. Without
 * --project the root then lists the token's own project, which GET /job names. */
static int job_token_project(struct daemon *d)
{
	if (d->auth != HTTP_AUTH_JOB_TOKEN || d->opts.projects)
		return 0;
	struct gl_job self = {0};
	char id[24];
	int err = gitlab_token_job(d->gl, &self);
	int64_t project_id = self.project_id;
	gl_job_release(&self);
	snprintf(id, sizeof(id), "%" PRId64, project_id);
	if (err || project_id <= 0) {
		fprintf(stderr,
			"artifactfs: %s: GET /job did not name the job token's project (%s); "
			"give --project\n",
			d->url, err ? strerror(-err) : "no project_id");
		return -1;
	}
	return add_project(&d->opts, id);
}

static int connect_server(struct daemon *d)
{
	struct http_config hc = {
		.base_url = d->url,
		.auth = d->auth,
		.token = d->token,
		.connect_timeout_ms = d->timeout_s * 1000L,
		.low_speed_time_s = d->timeout_s,
		.retry_for_s = d->retry_for_s,
		.ca_file = d->opts.ca_file ? d->opts.ca_file : getenv("CI_SERVER_TLS_CA_FILE"),
	};
	int err = http_new(&hc, &d->http);
	if (!err)
		err = gitlab_new(d->http, &d->gl);
	if (err && hc.ca_file && err != -ENOMEM && err != -EINVAL)
		fprintf(stderr, "artifactfs: CA file %s: %s\n", hc.ca_file,
			err == -EBADMSG  ? "holds no PEM certificate"
			: err == -EISDIR ? "not a regular file (a folder)"
			: err == -ENXIO  ? "not a regular file (a FIFO, socket or device)"
					 : strerror(-err));
	else if (err)
		fprintf(stderr, "artifactfs: %s: %s\n", d->url, strerror(-err));
	if (err)
		return -1;
	/* the reason is one line of ours, naming the cause; the HTTP details only with -d */
	char why[512];
	log_init(false, d->cmd.debug ? LOG_DEBUG : LOG_CRIT);
	err = gitlab_check_why(d->gl, d->auth, why, sizeof(why));
	log_init(false, d->cmd.debug ? LOG_DEBUG : LOG_INFO);
	size_t n = strlen(d->url);
	bool api = n >= 7 && strcmp(d->url + n - 7, "/api/v4") == 0;
	if (err)
		fprintf(stderr, "artifactfs: %s: %s%s\n", d->url, why,
			api ? " (give the instance's URL, without /api/v4)" : "");
	return err ? -1 : job_token_project(d);
}

static int open_cache(struct daemon *d)
{
	char why[512];
	if (cachedir_prepare(d->opts.cache_dir, getenv("HOME"), why, sizeof(why))) {
		fprintf(stderr, "artifactfs: cannot use cache folder %s: %s\n", d->opts.cache_dir,
			why);
		return -1;
	}
	int err = cache_open(d->opts.cache_dir, d->cache_bytes, &d->cache);
	if (err) {
		fprintf(stderr, "artifactfs: cannot use cache folder %s: %s\n", d->opts.cache_dir,
			strerror(-err));
		return -1;
	}
	/* a fleet's machine that died mid-fetch delays the others by one --timeout at most */
	cache_set_fetch_wait(d->cache, d->timeout_s);
	if (pool_new((unsigned)d->connections, &d->pool)) {
		fprintf(stderr, "artifactfs: cannot start %d threads\n", d->connections);
		return -1;
	}
	struct catalog_config cc = {
		.gl = d->gl,
		.cache = d->cache,
		.pool = d->pool,
		.base_url = d->url,
		.ttl_s = d->ttl_s,
		.projects = d->opts.projects,
		.no_logs = d->auth == HTTP_AUTH_JOB_TOKEN || d->auth == HTTP_AUTH_NONE,
	};
	return catalog_new(&cc, &d->cat) ? -1 : 0;
}

/* With allow_other, other users reach the mount: let the kernel enforce the modes shown. */
static bool has_opt(const struct fuse_args *args, const char *name)
{
	for (int i = 1; i < args->argc; i++)
		if (strstr(args->argv[i], name))
			return true;
	return false;
}

/* With allow_other the kernel checks modes; `mount` and `df` name the server, as sshfs does;
 * the mount is ro unless deletes are allowed. An -o rw cannot opt out: mount(8) passes it to
 * every helper unless fstab says ro. */
static int add_mount_options(struct fuse_args *args, const char *url, bool allow_delete)
{
	if (has_opt(args, "allow_other") && fuse_opt_add_arg(args, "-odefault_permissions"))
		return -1;
	if (!allow_delete && fuse_opt_add_arg(args, "-oro"))
		return -1;
	char *opt = NULL;
	if (has_opt(args, "fsname=") || fuse_opt_add_opt_escaped(&opt, url))
		return 0;
	char *arg = NULL;
	int err = asprintf(&arg, "-ofsname=%s", opt) < 0 || fuse_opt_add_arg(args, arg);
	free(arg);
	free(opt);
	return err ? -1 : 0;
}

/* A signal or an unmount ended the session: requests still running should stop, not make the
 * exit wait out their timeouts and retries. */
static bool session_ended(void *fuse)
{
	return fuse_session_exited(fuse_get_session(fuse));
}

static int run(struct daemon *d, struct fuse_args *args)
{
	int err = pool_new(1, &d->forgets);
	if (err) {
		fprintf(stderr, "artifactfs: %s\n", strerror(-err));
		return 1;
	}
	d->fsc = (struct fs_config){
		.cat = d->cat,
		.cache = d->cache,
		.http = d->http,
		.pool = d->pool,
		.forgets = d->forgets,
		.allow_delete = d->opts.allow_delete,
		.ttl_s = d->ttl_s,
		.uid = getuid(),
		.gid = getgid(),
		.mounted_at = time(NULL),
		.mountpoint = d->cmd.mountpoint,
	};
	if (add_mount_options(args, d->url, d->opts.allow_delete))
		return 1;
	d->fuse = fuse_new(args, &fs_operations, sizeof(fs_operations), &d->fsc);
	if (!d->fuse)
		return 1; /* libfuse said why */
	http_set_cancel(d->http, session_ended, d->fuse);
	int ret = 1;
	char why[512];
	if (d->opts.metrics_file && metrics_new(d->opts.metrics_file, d->http, d->cache, d->cat,
						&d->metrics, why, sizeof(why))) {
		fprintf(stderr, "artifactfs: cannot use metrics file %s\n", why);
		goto out_destroy;
	}
	if (fuse_mount(d->fuse, d->cmd.mountpoint) != 0)
		goto out_destroy;
	if (fuse_daemonize(d->cmd.foreground) != 0 || (d->metrics && metrics_run(d->metrics)))
		goto out_unmount;
	if (!d->cmd.foreground)
		log_init(true, d->cmd.debug ? LOG_DEBUG : LOG_INFO);
	if (d->opts.log_file && log_watch_sighup() != 0)
		goto out_unmount;
	if (fuse_set_signal_handlers(fuse_get_session(d->fuse)) != 0)
		goto out_unmount;
	log_msg(LOG_INFO, "mounted %s on %s", d->url, d->cmd.mountpoint);
	if (d->cmd.singlethread) {
		ret = fuse_loop(d->fuse);
	} else {
		struct fuse_loop_config *lc = fuse_loop_cfg_create();
		if (!lc)
			goto out_signals;
		fuse_loop_cfg_set_clone_fd(lc, d->cmd.clone_fd);
		/* libfuse leaves both unset (UINT_MAX) unless -o max_idle_threads= / max_threads= was
		 * given, and libfuse 3.14 warns about an unset value passed back to it */
		if (d->cmd.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(lc, d->cmd.max_idle_threads);
		fuse_loop_cfg_set_max_threads(lc,
					      d->cmd.max_threads > 0 && d->cmd.max_threads <= 1000
						      ? d->cmd.max_threads
						      : 10);
		ret = fuse_loop_mt(d->fuse, lc);
		fuse_loop_cfg_destroy(lc);
	}
	/* libfuse ends the loop with the signal's number: a requested unmount, not a failure
	 * (SIGHUP reaches libfuse only without --log-file) */
	ret = ret == 0 || ret == SIGTERM || ret == SIGINT || ret == SIGHUP ? 0 : 1;
	log_msg(LOG_INFO, "unmounting %s", d->cmd.mountpoint);
out_signals:
	fuse_remove_signal_handlers(fuse_get_session(d->fuse));
out_unmount:
	/* no request runs any more, so no forget is queued: the last ones end before the unmount
	 * closes the session's fd they write to, and fuse_destroy frees the tables they read */
	pool_drain(d->forgets);
	fuse_unmount(d->fuse);
out_destroy:
	fuse_destroy(d->fuse);
	return ret;
}

static void daemon_release(struct daemon *d)
{
	metrics_stop(d->metrics); /* the last counts, before what it reads goes */
	if (d->pool)
		pool_drain(d->pool); /* its tasks hold jobs of the catalog */
	catalog_free(d->cat);
	pool_free(d->pool);
	pool_free(d->forgets);
	cache_close(d->cache);
	gitlab_free(d->gl);
	http_free(d->http);
	if (d->token) {
		memset(d->token, 0, strlen(d->token));
		free(d->token);
	}
	free(d->url);
	free(d->cmd.mountpoint);
	gitlab_strv_free(d->opts.projects);
	free(d->opts.url);
	free(d->opts.token_file);
	free(d->opts.cache_dir);
	free(d->opts.cache_size);
	free(d->opts.memory_limit);
	free(d->opts.ttl);
	free(d->opts.timeout);
	free(d->opts.connections);
	free(d->opts.retry_for);
	free(d->opts.ca_file);
	free(d->opts.log_file);
	free(d->opts.metrics_file);
	free(d->opts.unknown);
}

/* Refusals that must not show what was typed: it may be a token. */
static int refuse_args(const struct options *o)
{
	if (o->token_given || o->secret_seen)
		fprintf(stderr,
			"artifactfs: %s; no option takes a token on the command line (ps, "
			"shell history and CI logs show it): use --token-file FILE or "
			"$GITLAB_TOKEN\n",
			o->token_given ? "--token is not an option"
				       : "an option that looks like a token was given (not shown)");
	else if (o->unknown)
		fprintf(stderr, "artifactfs: unknown option %s (see --help)\n", o->unknown);
	else if (o->empty)
		fprintf(stderr,
			"artifactfs: -o %s= needs a value: the kernel refuses an empty one\n",
			o->empty);
	else if (o->extra_arg)
		fprintf(stderr,
			"artifactfs: too many arguments (the extra one is not shown: it may be "
			"a token); usage: artifactfs [URL] MOUNTPOINT [options]\n");
	else if (o->url_missing)
		say_not_a_url(NULL);
	else
		return 0;
	return -1;
}

static int parse_args(struct daemon *d, struct fuse_args *args)
{
	if (fuse_opt_parse(args, &d->opts, option_spec, opt_proc) != 0)
		return -1;
	if (refuse_args(&d->opts))
		return -1;
	if (d->opts.help) {
		usage(args->argv[0]);
		fuse_lib_help(args);
		return 1;
	}
	if (d->opts.version) {
		printf("artifactfs %s (libfuse %s, %s)\n", ARTIFACTFS_VERSION, fuse_pkgversion(),
		       curl_version());
		return 1;
	}
	/* libfuse adds its default subtype only when neither fsname= nor subtype= was given, so a
	 * custom fsname would make the type plain "fuse" and updatedb's exclusion of
	 * fuse.artifactfs would no longer match. */
	if (d->opts.fsname_given && !d->opts.subtype_given &&
	    fuse_opt_add_arg(args, "-osubtype=artifactfs") != 0)
		return -1;
	if (fuse_parse_cmdline(args, &d->cmd) != 0)
		return -1;
	return 0;
}

/* The token lives in this process's memory: no core file may hold it, and other processes of
 * the same user may not read it through ptrace or /proc/PID/mem (as ssh-agent does). */
static void protect_memory(void)
{
	struct rlimit none = {0, 0};
	setrlimit(RLIMIT_CORE, &none);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct daemon d = {0};
	int ret = 1;

	protect_memory();

	if (curl_global_init(CURL_GLOBAL_ALL) != 0)
		return 1;
	json_object_seed(0);
	log_init(false, LOG_INFO);
	log_capture_fuse();
	int p = parse_args(&d, &args);
	log_init(false, !p && d.cmd.debug ? LOG_DEBUG : LOG_INFO);
	/* before any thread: with a log file, SIGHUP reopens it instead of unmounting */
	if (!p && d.opts.log_file && log_block_sighup())
		p = -1;
	if (p)
		ret = p > 0 ? 0 : 1;
	else if (!check_options(&d) && !connect_server(&d) && !open_cache(&d))
		ret = run(&d, &args);
	daemon_release(&d);
	log_close();
	fuse_opt_free_args(&args);
	curl_global_cleanup();
	return ret;
}

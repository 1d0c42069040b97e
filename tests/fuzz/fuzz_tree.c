/* libFuzzer target: the path grammar and symlink resolution.
 *
 * The bytes as a path: tree_parse must never crash or leak, what it accepts must round-trip
 * through tree_escape(), job sets and ids must be what the grammar allows, and every nesting
 * point tree_nest_next() finds in a member path must end a component in '#'.
 *
 * The same bytes as an archive, one member a line: "name" a file, "name/" a folder,
 * "name>target" a symlink. Every link is resolved by zipindex_resolve_link and by a second walk
 * written differently (over whole path strings and zipindex_find, not member indexes and child
 * searches); both must agree on the error and on the member reached, never read more than
 * ZIP_LINKS_MAX targets, and never end on a symlink. The canonical text must climb only in
 * front, never above the job folder, and lead where the walk ended. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "artifactfs/log.h"
#include "artifactfs/tree.h"
#include "artifactfs/zipindex.h"
#include "artifactfs/zipread.h"
#include "zipbuild.h"

#define PATH_CAP (1u << 17)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init(false, LOG_CRIT); /* hostile names are expected: keep the run quiet and fast */
	return 0;
}

static void check_round_trip(const char *name)
{
	if (!name)
		return;
	char *e = tree_escape(name), *d = NULL;
	if (!e || strchr(e, '/'))
		abort();
	if (tree_unescape(e, strlen(e), &d) != 0 || strcmp(d, name) != 0)
		abort();
	free(e);
	free(d);
}

/* Every nesting point ends a component of at least two bytes in '#', and they come in order. */
static void check_nesting(const char *member)
{
	size_t from = 0, pos;
	while ((pos = tree_nest_next(member, from)) != 0) {
		if (pos <= from || pos < 2 || member[pos - 1] != '#' || member[pos - 2] == '/' ||
		    (member[pos] && member[pos] != '/'))
			abort();
		from = pos;
		while (member[from] == '/')
			from++;
	}
}

/* What the parse says about a set and its ids matches the grammar. */
static void check_set(const struct tree_path *tp)
{
	bool named = tp->set.by == TREE_BY_REF || tp->set.by == TREE_BY_COMMIT;
	bool in_set = tp->kind == TREE_SET || tp->kind == TREE_SET_JOB ||
		      tp->kind == TREE_SET_ZIP || tp->kind == TREE_SET_LOG;
	if (in_set && named != (tp->set.name != NULL))
		abort();
	if (in_set && !named && tp->set.id <= 0)
		abort();
	if (tp->set.by == TREE_BY_REF && in_set)
		check_round_trip(tp->set.name);
	if (tp->set.by == TREE_BY_COMMIT && tp->set.name &&
	    (strlen(tp->set.name) < 4 || strlen(tp->set.name) > 40 ||
	     strspn(tp->set.name, "0123456789abcdef") != strlen(tp->set.name)))
		abort();
	if ((tp->kind == TREE_JOBID || tp->kind == TREE_JOBID_ZIP || tp->kind == TREE_JOBID_LOG) &&
	    tp->job_id <= 0)
		abort();
}

static void fuzz_parse(const uint8_t *data, size_t size)
{
	char *path = malloc(size + 2);
	if (!path)
		return;
	path[0] = '/';
	memcpy(path + 1, data, size);
	path[size + 1] = '\0';
	struct tree_path tp;
	if (tree_parse(path, &tp) == 0) {
		check_round_trip(tp.project);
		check_round_trip(tp.job);
		check_set(&tp);
		if (tp.member)
			check_nesting(tp.member);
		tree_path_release(&tp);
	}
	free(path);
}

/* ---- the archive ---- */

static void add_line(struct zb *z, const char *line, size_t n)
{
	const char *gt = memchr(line, '>', n);
	char *name = strndup(line, gt ? (size_t)(gt - line) : n);
	if (!name || !*name) {
		free(name);
		return;
	}
	if (gt)
		zb_add(z, name, gt + 1, n - (size_t)(gt + 1 - line),
		       (struct zb_opts){.mode = S_IFLNK | 0777, .fake_size = -1});
	else if (name[strlen(name) - 1] == '/')
		zb_add(z, name, "", 0, (struct zb_opts){.mode = S_IFDIR | 0755, .fake_size = -1});
	else
		zb_file(z, name, "x");
	free(name);
}

static unsigned char *build_archive(const uint8_t *data, size_t size, size_t *len)
{
	struct zb z = {0};
	const char *p = (const char *)data, *end = p + size;
	for (unsigned lines = 0; p < end && lines < 256; lines++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		add_line(&z, p, n);
		p += n + 1;
	}
	return zb_finish(&z, false, len);
}

struct targets {
	const struct zipindex *zi;
	struct zip_buffer zb;
	unsigned calls;
};

static int read_target(void *ctx, const struct zip_member *link, char **out, size_t *len)
{
	struct targets *t = ctx;
	t->calls++;
	return zip_reader_read_all(t->zi, link, zip_buffer_read, &t->zb, 4096, out, len);
}

/* ---- the second walk: whole paths, looked up by name ---- */

struct opos {
	char *path;   /* PATH_CAP bytes: the member reached, then any names walked on as text */
	size_t real;  /* length of the member's part */
	bool stopped; /* a component came after a missing name or a file: the kernel stops there */
};

static int o_follow(struct targets *t, struct opos *p, const struct zip_member *link);

static void o_up(struct opos *p)
{
	char *slash = strrchr(p->path, '/');
	*(slash ? slash : p->path) = '\0';
}

static void o_append(struct opos *p, const char *c, size_t n)
{
	size_t pl = strlen(p->path);
	if (pl + n + 2 > PATH_CAP)
		abort(); /* 40 targets of 4096 bytes fit */
	if (pl)
		p->path[pl++] = '/';
	memcpy(p->path + pl, c, n);
	p->path[pl + n] = '\0';
}

static int o_name(struct targets *t, struct opos *p, const char *c, size_t n)
{
	const struct zip_member *here = zipindex_find(t->zi, p->path), *m = NULL;
	size_t before = strlen(p->path);
	o_append(p, c, n);
	if (p->real == before && here && here->type == ZIP_DIR)
		m = zipindex_find(t->zi, p->path);
	if (m && m->type == ZIP_SYMLINK) {
		p->path[before] = '\0';
		return o_follow(t, p, m);
	}
	if (m)
		p->real = strlen(p->path);
	return 0;
}

static int o_comp(struct targets *t, struct opos *p, const char *c, size_t n)
{
	if (p->stopped)
		return 0;
	size_t len = strlen(p->path);
	const struct zip_member *here = len == p->real ? zipindex_find(t->zi, p->path) : NULL;
	if (len != p->real || (here && here->type != ZIP_DIR)) {
		/* "missing/..", "f/x", "f/": ENOENT or ENOTDIR, whatever follows; the text ends in
		 * this component ("." for "." and ".."), so the kernel stops there too */
		p->stopped = true;
		bool dots = n == 0 || (n == 1 && c[0] == '.') || (n == 2 && !memcmp(c, "..", 2));
		if (!dots)
			o_append(p, c, n);
		return 0;
	}
	if (n == 0 || (n == 1 && c[0] == '.'))
		return 0;
	if (n == 2 && c[0] == '.' && c[1] == '.') {
		if (!p->path[0])
			return -EXDEV;
		bool real = strlen(p->path) == p->real;
		o_up(p);
		p->real = real ? strlen(p->path) : p->real;
		return 0;
	}
	return o_name(t, p, c, n);
}

static int o_follow(struct targets *t, struct opos *p, const struct zip_member *link)
{
	if (t->calls >= ZIP_LINKS_MAX)
		return -ELOOP;
	char *text;
	size_t len;
	int err = read_target(t, link, &text, &len);
	if (err)
		return err;
	if (len == 0 || text[0] == '/' || memchr(text, '\0', len))
		err = -EXDEV;
	for (size_t i = 0, start = 0; !err && i <= len; i++) {
		if (i < len && text[i] != '/')
			continue;
		err = o_comp(t, p, text + start, i - start);
		start = i + 1;
	}
	free(text);
	return err;
}

/* The canonical text: "../" at most as deep as dir, then plain names (and a last "." where the
 * walk stopped on a missing name or a file), and dir joined with it is where the walk ended. */
static void check_text(const char *dir, const char *text, const char *end, bool stopped)
{
	char *at = malloc(PATH_CAP);
	if (!at)
		abort();
	strcpy(at, dir);
	struct opos p = {at, 0, false};
	bool names = false;
	for (const char *c = text; c;) {
		const char *slash = strchr(c, '/');
		size_t n = slash ? (size_t)(slash - c) : strlen(c);
		bool up = n == 2 && !memcmp(c, "..", 2), dot = n == 1 && c[0] == '.';
		if (!n || (up && (names || !at[0])) || (dot && slash) ||
		    (dot && c != text && !stopped))
			abort();
		if (up)
			o_up(&p);
		else if (!dot)
			o_append(&p, c, n);
		names = names || !up;
		c = slash ? slash + 1 : NULL;
	}
	if (strcmp(at, end))
		abort();
	free(at);
}

static void check_link(struct targets *t, const struct zip_member *link, char *path)
{
	const struct zip_member *out = NULL;
	char *text = NULL;
	t->calls = 0;
	int err = zipindex_resolve_link(t->zi, link, read_target, t, &out, &text);
	if (t->calls > ZIP_LINKS_MAX || (!err && out && out->type == ZIP_SYMLINK))
		abort();
	strcpy(path, link->name);
	struct opos p = {path, 0, false};
	o_up(&p);
	p.real = strlen(path);
	char *dir = strdup(path);
	t->calls = 0;
	int oerr = o_follow(t, &p, link);
	const struct zip_member *oout =
		oerr || p.stopped || strlen(path) != p.real ? NULL : zipindex_find(t->zi, path);
	if (oerr != err || oout != out || !dir || (!err && !text))
		abort();
	if (!err)
		check_text(dir, text, path, p.stopped);
	free(dir);
	free(text);
}

static void fuzz_links(const uint8_t *data, size_t size)
{
	size_t len;
	unsigned char *zip = build_archive(data, size, &len);
	struct zipindex *zi;
	if (zipindex_load_buffer(zip, len, &zi) == 0) {
		struct targets t = {zi, {zip, len}, 0};
		char *path = malloc(PATH_CAP);
		for (uint32_t i = 0; path && i < zipindex_count(zi); i++)
			if (zipindex_member(zi, i)->type == ZIP_SYMLINK)
				check_link(&t, zipindex_member(zi, i), path);
		free(path);
		zipindex_free(zi);
	}
	free(zip);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_parse(data, size);
	fuzz_links(data, size);
	return 0;
}

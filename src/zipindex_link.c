/* zipindex_link: symbolic links inside an archive, resolved over its index as the kernel would
 * walk them (zipindex_resolve_link, declared in zipindex.h with the rules it follows). A walk over
 * the index's members through zipindex.c's lookups, never its internals; it reads nothing
 * itself: link texts come through the caller's zip_target_fn, so it stays pure and testable.
 * Invariants: a walk never climbs above the root (a ".." there is -EXDEV), follows at most
 * ZIP_LINKS_MAX links, stops where the kernel would (a missing name or a file with more to walk)
 * and hands back a canonical text ("../" only in front, then names of real folders, then for a
 * dangling link the names it stopped at) whose ".." steps stay within the link's folder's depth. */
#include "artifactfs/zipindex.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zipindex_i.h"

/* Where a walk stands: a member (a folder, or a file), and, once a component is missing, its
 * name as text beyond it; once the walk stops (see link_step), the component it stopped at too.
 * A ".." goes to the member's parent: never above root. */
struct link_pos {
	const struct zip_member *m;
	char *tail; /* "" or names joined by '/', malloc'ed */
	size_t len, cap;
};

struct link_walk {
	const struct zipindex *zi;
	zip_target_fn target;
	void *ctx;
	unsigned links; /* followed so far, the one asked about included */
	bool stopped;   /* a missing name or a file met with more to walk: the rest is not walked */
};

static int tail_push(struct link_pos *p, const char *c, size_t n)
{
	if (p->len + n + 2 > p->cap) {
		size_t cap = (p->len + n + 2) * 2;
		char *t = realloc(p->tail, cap);
		if (!t)
			return -ENOMEM;
		p->tail = t;
		p->cap = cap;
	}
	if (p->len)
		p->tail[p->len++] = '/';
	memcpy(p->tail + p->len, c, n);
	p->len += n;
	p->tail[p->len] = '\0';
	return 0;
}

static int follow_link(struct link_walk *w, struct link_pos *p, const struct zip_member *link);

/* One component of a target, walked from p as the kernel walks it ("..": the parent of where a
 * link led), but refusing ".." at the root where openat2(RESOLVE_IN_ROOT) would stay there. */
static int link_step(struct link_walk *w, struct link_pos *p, const char *c, size_t n)
{
	if (w->stopped)
		return 0;
	bool dot = n == 0 || (n == 1 && c[0] == '.'), dotdot = n == 2 && c[0] == '.' && c[1] == '.';
	if (p->len || p->m->type != ZIP_DIR) {
		/* Past a missing name or a file the kernel goes no further, whatever follows (ENOENT,
		 * ENOTDIR: "sub/../f" is not f when sub is a file). The walk stops too, its text
		 * ending in this component ("." for "..": the text never climbs after a name), so
		 * that the kernel stops there as well. */
		w->stopped = true;
		return dot || dotdot ? tail_push(p, ".", 1) : tail_push(p, c, n);
	}
	if (dot)
		return 0;
	if (dotdot) {
		if (p->m == zipindex_member(w->zi, 0))
			return -EXDEV;
		p->m = zipindex_member(w->zi, p->m->parent);
		return 0;
	}
	const struct zip_member *child = zipindex_child(w->zi, p->m, c, n);
	if (!child)
		return tail_push(p, c, n);
	if (child->type == ZIP_SYMLINK)
		return follow_link(w, p, child);
	p->m = child;
	return 0;
}

/* Walks the len bytes of text from p, component by component. */
static int link_walk_text(struct link_walk *w, struct link_pos *p, const char *text, size_t len)
{
	const char *end = text + len;
	for (;;) {
		const char *slash = memchr(text, '/', (size_t)(end - text));
		int err = link_step(w, p, text, (size_t)((slash ? slash : end) - text));
		if (err || !slash)
			return err;
		text = slash + 1;
	}
}

/* Replaces p (the folder holding link) by where link's target leads. */
static int follow_link(struct link_walk *w, struct link_pos *p, const struct zip_member *link)
{
	if (++w->links > ZIP_LINKS_MAX)
		return -ELOOP;
	char *text = NULL;
	size_t len = 0;
	int err = w->target(w->ctx, link, &text, &len);
	if (err)
		return err;
	if (len == 0 || text[0] == '/' || memchr(text, '\0', len))
		err = -EXDEV; /* the kernel would cut at the NUL: refuse rather than guess */
	else
		err = link_walk_text(w, p, text, len);
	free(text);
	return err;
}

/* Number of leading components a and b share (both '/'-joined, "" for none). */
static size_t shared_components(const char *a, const char *b, size_t *b_off)
{
	size_t n = 0, i = 0;
	*b_off = 0;
	for (;;) {
		size_t ea = strcspn(a + i, "/"), eb = strcspn(b + i, "/");
		if (!ea || ea != eb || memcmp(a + i, b + i, ea))
			return n;
		n++;
		i += ea;
		*b_off = i;
		if (a[i] != '/' || b[i] != '/')
			return n;
		i++;
	}
}

static size_t count_components(const char *s)
{
	size_t n = *s ? 1 : 0;
	for (; *s; s++)
		n += *s == '/';
	return n;
}

/* The text from folder dir to p: "../" as many times as needed first, then names ("." for dir). */
static int canonical_text(const struct zip_member *dir, const struct link_pos *p, char **out)
{
	size_t ml = strlen(p->m->name);
	char *to = malloc(ml + p->len + 2);
	if (!to)
		return -ENOMEM;
	memcpy(to, p->m->name, ml);
	to[ml] = ml && p->len ? '/' : '\0';
	memcpy(to + ml + (ml && p->len), p->len ? p->tail : "", p->len + 1);
	size_t off, up = count_components(dir->name) - shared_components(dir->name, to, &off);
	const char *rest = to + off + (to[off] == '/');
	char *text = malloc(3 * up + strlen(rest) + 2);
	for (char *t = text; t; t = NULL) {
		for (size_t i = 0; i < up; i++, t += 3)
			memcpy(t, "../", 3);
		if (*rest)
			strcpy(t, rest);
		else if (up)
			t[-1] = '\0';
		else
			strcpy(t, ".");
	}
	free(to);
	*out = text;
	return text ? 0 : -ENOMEM;
}

int zipindex_resolve_link(const struct zipindex *zi, const struct zip_member *link,
			  zip_target_fn target, void *ctx, const struct zip_member **out,
			  char **text)
{
	*out = NULL;
	if (text)
		*text = NULL;
	if (link->type != ZIP_SYMLINK)
		return -EINVAL;
	struct link_walk w = {zi, target, ctx, 0, false};
	const struct zip_member *dir = zipindex_member(zi, link->parent);
	struct link_pos p = {dir, NULL, 0, 0};
	int err = follow_link(&w, &p, link);
	if (!err && text)
		err = canonical_text(dir, &p, text);
	if (!err && !p.len && !w.stopped)
		*out = p.m;
	free(p.tail);
	return err;
}

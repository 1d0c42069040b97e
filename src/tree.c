/* tree: the path grammar (see tree.h). Every component is decoded with the one escape rule of the
 * SPEC ('%' as %25, '/' as %2F); nothing else is decoded, so "a%20b" is invalid, never "a b". */
#include "artifactfs/tree.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define TREE_PATH_MAX 4096
#define TREE_NAME_MAX 1024 /* FUSE_NAME_MAX: a longer entry fails the whole listing */

char *tree_escape(const char *name)
{
	size_t extra = 0;
	for (const char *p = name; *p; p++)
		extra += (*p == '%' || *p == '/') ? 2 : 0;
	char *out = malloc(strlen(name) + extra + 1);
	if (!out)
		return NULL;
	char *o = out;
	for (const char *p = name; *p; p++) {
		if (*p == '%' || *p == '/') {
			*o++ = '%';
			*o++ = '2';
			*o++ = *p == '%' ? '5' : 'F';
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

int tree_unescape(const char *comp, size_t len, char **out)
{
	*out = NULL;
	if (len == 0)
		return -ENOENT;
	char *s = malloc(len + 1);
	if (!s)
		return -ENOMEM;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (comp[i] != '%') {
			s[o++] = comp[i];
			continue;
		}
		if (i + 2 >= len) {
			free(s);
			return -ENOENT;
		}
		char a = comp[i + 1], b = comp[i + 2];
		if (a == '2' && b == '5') {
			s[o++] = '%';
		} else if (a == '2' && (b == 'F' || b == 'f')) {
			s[o++] = '/';
		} else {
			free(s);
			return -ENOENT;
		}
		i += 2;
	}
	s[o] = '\0';
	if (!strcmp(s, ".") || !strcmp(s, "..")) {
		free(s);
		return -ENOENT;
	}
	*out = s;
	return 0;
}

bool tree_name_listable(const char *name)
{
	size_t len = 0;
	for (const char *p = name; *p; p++)
		len += (*p == '%' || *p == '/') ? 3 : 1;
	return len > 0 && len + 4 <= TREE_NAME_MAX && strcmp(name, ".") && strcmp(name, "..");
}

/* Splits off the next component of *p (after '/'): start and length; advances *p. */
static bool next_comp(const char **p, const char **start, size_t *len)
{
	while (**p == '/')
		(*p)++;
	if (!**p)
		return false;
	*start = *p;
	while (**p && **p != '/')
		(*p)++;
	*len = (size_t)(*p - *start);
	return true;
}

static bool has_zip_suffix(const char *s, size_t len)
{
	return len > 4 && memcmp(s + len - 4, ".zip", 4) == 0;
}

static int parse_job_id(const char *s, size_t len, int64_t *id)
{
	if (len == 0 || len > 18 || s[0] == '0')
		return -ENOENT;
	int64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -ENOENT;
		v = v * 10 + (s[i] - '0');
	}
	*id = v;
	return 0;
}

/* What follows a job folder: the member path without leading slashes. */
static const char *member_rest(const char *p)
{
	while (*p == '/')
		p++;
	return p;
}

static int parse_jobs(const char *p, struct tree_path *tp)
{
	const char *c;
	size_t n;
	if (!next_comp(&p, &c, &n)) {
		tp->kind = TREE_DASH;
		return 0;
	}
	if (n != 4 || memcmp(c, "jobs", 4) != 0)
		return -ENOENT;
	if (!next_comp(&p, &c, &n)) {
		tp->kind = TREE_JOBS;
		return 0;
	}
	bool zip = has_zip_suffix(c, n);
	int err = parse_job_id(c, zip ? n - 4 : n, &tp->job_id);
	if (err)
		return err;
	if (zip) {
		tp->kind = TREE_JOBID_ZIP;
		return *member_rest(p) ? -ENOTDIR : 0;
	}
	tp->kind = TREE_JOBID;
	tp->member = member_rest(p);
	return 0;
}

static int parse_ref(const char *p, struct tree_path *tp)
{
	const char *c;
	size_t n;
	if (!next_comp(&p, &c, &n)) {
		tp->kind = TREE_REF;
		return 0;
	}
	bool zip = has_zip_suffix(c, n);
	int err = tree_unescape(c, zip ? n - 4 : n, &tp->job);
	if (err)
		return err;
	if (zip) {
		tp->kind = TREE_REF_ZIP;
		return *member_rest(p) ? -ENOTDIR : 0;
	}
	tp->kind = TREE_REF_JOB;
	tp->member = member_rest(p);
	return 0;
}

int tree_parse(const char *path, struct tree_path *tp)
{
	memset(tp, 0, sizeof(*tp));
	if (strlen(path) >= TREE_PATH_MAX)
		return -ENAMETOOLONG;
	const char *p = path, *c;
	size_t n;
	int err;
	tp->kind = TREE_ROOT;
	if (!next_comp(&p, &c, &n))
		return 0;
	err = tree_unescape(c, n, &tp->project);
	if (err)
		goto out_release;
	tp->kind = TREE_PROJECT;
	if (!next_comp(&p, &c, &n))
		return 0;
	if (n == 1 && c[0] == '-') {
		err = parse_jobs(p, tp);
	} else {
		err = tree_unescape(c, n, &tp->ref);
		if (!err)
			err = parse_ref(p, tp);
	}
	if (err)
		goto out_release;
	return 0;
out_release:
	tree_path_release(tp);
	return err;
}

void tree_path_release(struct tree_path *tp)
{
	free(tp->project);
	free(tp->ref);
	free(tp->job);
	memset(tp, 0, sizeof(*tp));
}

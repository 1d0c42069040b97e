/* tree: the path grammar (see tree.h): projects, job sets (refs, pipelines, merge requests,
 * commits), jobs by id, and where a member path may nest. Every component is decoded with the
 * one escape rule of the SPEC ('%' as %25, '/' as %2F); nothing else is decoded, so "a%20b" is
 * invalid, never "a b". Ids and shas have one spelling each, so a folder has one name. A job
 * name ending in ".zip" or ".log" has that dot written %2E (and only there): "x.log" is always
 * the log of job "x", job "x.log" is "x%2Elog", so no two entries of a set share a name and
 * the spelling of a job does not depend on which other jobs the set has. */
#include "artifactfs/tree.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
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

/* Whether a name of len bytes ends in one of the two file suffixes a job's entries take. */
static bool has_file_suffix(const char *s, size_t len)
{
	return len > 4 &&
	       (memcmp(s + len - 4, ".zip", 4) == 0 || memcmp(s + len - 4, ".log", 4) == 0);
}

char *tree_escape_job(const char *name)
{
	char *e = tree_escape(name);
	size_t len = e ? strlen(e) : 0;
	if (!e || !has_file_suffix(e, len))
		return e;
	char *out = malloc(len + 3);
	if (out) /* "x.log" -> "x%2Elog" */
		snprintf(out, len + 3, "%.*s%%2E%s", (int)(len - 4), e, e + len - 3);
	free(e);
	return out;
}

bool tree_name_listable(const char *name)
{
	size_t len = 0;
	for (const char *p = name; *p; p++)
		len += (*p == '%' || *p == '/') ? 3 : 1;
	len += has_file_suffix(name, strlen(name)) ? 2 : 0; /* tree_escape_job's %2E */
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

/* The file a job component names: ".zip" the archive, ".log" the log, else the folder. */
enum job_file {
	JOB_FOLDER,
	JOB_ZIP,
	JOB_LOG
};

static enum job_file job_suffix(const char *s, size_t len)
{
	if (!has_file_suffix(s, len))
		return JOB_FOLDER;
	return memcmp(s + len - 4, ".zip", 4) == 0 ? JOB_ZIP : JOB_LOG;
}

/* Decodes a job's name (its component without the file suffix): tree_unescape, and a final
 * "%2Ezip" or "%2Elog" is the name's own ".zip" or ".log", the one place %2E is valid. A name
 * ending in a plain ".zip" or ".log" is not this job's spelling: ENOENT, so each has one. */
static int unescape_job(const char *c, size_t len, char **out)
{
	bool dot = len > 6 && c[len - 6] == '%' && c[len - 5] == '2' &&
		   (c[len - 4] == 'E' || c[len - 4] == 'e') &&
		   (memcmp(c + len - 3, "zip", 3) == 0 || memcmp(c + len - 3, "log", 3) == 0);
	int err = tree_unescape(c, dot ? len - 6 : len, out);
	if (err)
		return err;
	size_t n = strlen(*out);
	if (!dot && has_file_suffix(*out, n)) {
		free(*out);
		*out = NULL;
		return -ENOENT;
	}
	if (!dot)
		return 0;
	char *s = realloc(*out, n + 5);
	if (!s) {
		free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	s[n] = '.'; /* "%2Ezip" -> ".zip" */
	memcpy(s + n + 1, c + len - 3, 3);
	s[n + 4] = '\0';
	*out = s;
	return 0;
}

static bool comp_is(const char *c, size_t n, const char *word)
{
	return n == strlen(word) && memcmp(c, word, n) == 0;
}

static int parse_id(const char *s, size_t len, int64_t *id)
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

/* A commit: git's shortest abbreviation (4) up to a full SHA-1 (40), lowercase as git prints. */
static int parse_sha(const char *s, size_t len, char **out)
{
	if (len < 4 || len > 40)
		return -ENOENT;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return -ENOENT;
	*out = strndup(s, len);
	return *out ? 0 : -ENOMEM;
}

/* What follows a job folder: the member path without leading slashes. */
static const char *member_rest(const char *p)
{
	while (*p == '/')
		p++;
	return p;
}

/* A job component c (escaped name or id) and what follows it, p. */
static int parse_job_file(const char *p, const char *c, size_t n, bool by_id, struct tree_path *tp)
{
	enum job_file f = job_suffix(c, n);
	size_t len = f == JOB_FOLDER ? n : n - 4;
	int err = by_id ? parse_id(c, len, &tp->job_id) : unescape_job(c, len, &tp->job);
	if (err)
		return err;
	static const enum tree_kind kinds[2][3] = {
		{TREE_SET_JOB, TREE_SET_ZIP, TREE_SET_LOG},
		{TREE_JOBID, TREE_JOBID_ZIP, TREE_JOBID_LOG},
	};
	tp->kind = kinds[by_id][f];
	if (f != JOB_FOLDER)
		return *member_rest(p) ? -ENOTDIR : 0;
	tp->member = member_rest(p);
	return 0;
}

/* What follows a job set: nothing, or a job. */
static int parse_set(const char *p, struct tree_path *tp)
{
	const char *c;
	size_t n;
	if (!next_comp(&p, &c, &n)) {
		tp->kind = TREE_SET;
		return 0;
	}
	return parse_job_file(p, c, n, false, tp);
}

static int parse_set_name(const char *c, size_t n, struct tree_set *set)
{
	switch (set->by) {
	case TREE_BY_COMMIT:
		return parse_sha(c, n, &set->name);
	case TREE_BY_REF:
		return tree_unescape(c, n, &set->name);
	default:
		return parse_id(c, n, &set->id);
	}
}

static const struct {
	const char *word;
	enum tree_set_by by;
} set_folders[] = {
	{"pipelines", TREE_BY_PIPELINE},
	{"merge_requests", TREE_BY_MR},
	{"commits", TREE_BY_COMMIT},
};

/* What follows "-": the jobs by id, or a folder of job sets. */
static int parse_dash(const char *p, struct tree_path *tp)
{
	const char *c;
	size_t n;
	tp->kind = TREE_DASH;
	if (!next_comp(&p, &c, &n))
		return 0;
	if (comp_is(c, n, "jobs")) {
		tp->kind = TREE_JOBS;
		return next_comp(&p, &c, &n) ? parse_job_file(p, c, n, true, tp) : 0;
	}
	size_t i = 0;
	while (i < sizeof(set_folders) / sizeof(set_folders[0]) &&
	       !comp_is(c, n, set_folders[i].word))
		i++;
	if (i == sizeof(set_folders) / sizeof(set_folders[0]))
		return -ENOENT;
	tp->kind = TREE_SETS;
	tp->set.by = set_folders[i].by;
	if (!next_comp(&p, &c, &n))
		return 0;
	int err = parse_set_name(c, n, &tp->set);
	return err ? err : parse_set(p, tp);
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
		err = parse_dash(p, tp);
	} else {
		tp->set.by = TREE_BY_REF;
		err = tree_unescape(c, n, &tp->set.name);
		if (!err)
			err = parse_set(p, tp);
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
	tree_set_release(&tp->set);
	free(tp->job);
	memset(tp, 0, sizeof(*tp));
}

int tree_set_copy(const struct tree_set *src, struct tree_set *dst)
{
	*dst = *src;
	dst->name = src->name ? strdup(src->name) : NULL;
	if (src->name && !dst->name) {
		memset(dst, 0, sizeof(*dst));
		return -ENOMEM;
	}
	return 0;
}

void tree_set_release(struct tree_set *s)
{
	free(s->name);
	memset(s, 0, sizeof(*s));
}

size_t tree_nest_next(const char *member, size_t from)
{
	size_t i = from;
	while (member[i]) {
		size_t start = i;
		while (member[i] && member[i] != '/')
			i++;
		if (i - start > 1 && member[i - 1] == '#')
			return i;
		while (member[i] == '/')
			i++;
	}
	return 0;
}

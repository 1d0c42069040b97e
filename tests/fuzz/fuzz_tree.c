/* libFuzzer target: the path grammar must never crash or leak on any path, and what it accepts
 * must round-trip through tree_escape(). The same bytes as a symlink target: a target without
 * ".." stays inside, an absolute one never does. */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *path = malloc(size + 2);
	if (!path)
		return 0;
	path[0] = '/';
	memcpy(path + 1, data, size);
	path[size + 1] = '\0';
	struct tree_path tp;
	if (tree_parse(path, &tp) == 0) {
		if (tp.project) {
			char *e = tree_escape(tp.project), *d = NULL;
			assert(e && !strchr(e, '/'));
			assert(tree_unescape(e, strlen(e), &d) == 0 && strcmp(d, tp.project) == 0);
			free(e);
			free(d);
		}
		tree_path_release(&tp);
	}
	free(path);

	const char *t = (const char *)data;
	bool escapes = tree_link_escapes("dir/link", t, size);
	if (size && t[0] == '/')
		assert(escapes);
	bool dotdot = false;
	for (size_t i = 0; i + 1 < size; i++)
		dotdot = dotdot || (t[i] == '.' && t[i + 1] == '.');
	if (size && t[0] != '/' && !dotdot && !memchr(t, '\0', size))
		assert(!escapes);
	return 0;
}

/* gitlab_i: the gitlab client's state, shared by the files of the gitlab module: gitlab.c
 * (requests, paging, JSON; it creates and frees the struct) and gitlab_archive.c (archive
 * bytes). Set once by gitlab_new() and never changed: thread-safe to read. */
#ifndef ARTIFACTFS_GITLAB_I_H
#define ARTIFACTFS_GITLAB_I_H

#include <stdbool.h>

#include "artifactfs/http.h"

struct gitlab {
	struct http *http;
	bool job_token; /* 404s off the job-token routes mean "cannot tell" (see gitlab.h) */
};

#endif

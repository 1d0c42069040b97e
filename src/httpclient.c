/* httpclient: the client object, struct http, one per mount and shared by all threads. Set-up
 * checks and normalises the base URL (its origin is where the token may go), builds the
 * credential header and keeps the bare token only to redact it, reads the extra CA file once and
 * hands it to curl together with libcurl's default bundle (a private CA in addition to the public
 * ones, never instead), and makes the share handle that pools connections, DNS and TLS sessions
 * across threads, under one mutex per kind of shared data. Teardown wipes the token's copies
 * before freeing them and closes the pooled easy handles. Also the client's small accessors: the
 * cancel question, the kind of credential, and the request and byte counters. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "artifactfs/urlcache.h"
#include "http_i.h"

#define CA_FILE_MAX (16u * 1024u * 1024u)
#define SIGNED_URLS_MAX 64 /* signed storage URLs remembered, one per archive */

static void share_lock(CURL *c, curl_lock_data data, curl_lock_access access, void *p)
{
	(void)c;
	(void)access;
	struct http *h = p;
	pthread_mutex_lock(&h->share_locks[data]);
}

static void share_unlock(CURL *c, curl_lock_data data, void *p)
{
	(void)c;
	struct http *h = p;
	pthread_mutex_unlock(&h->share_locks[data]);
}

static char *dup_default(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Opens path for reading only if it is a regular file: a FIFO would block start-up until some
 * writer came (O_NONBLOCK opens it at once), a folder would read as an I/O error. Returns the
 * stream, or NULL with *err: -errno, -EISDIR (a folder), -ENXIO (a FIFO, socket or device). */
static FILE *open_regular(const char *path, int *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	*err = fstat(fd, &st)         ? -errno
	       : S_ISDIR(st.st_mode)  ? -EISDIR
	       : !S_ISREG(st.st_mode) ? -ENXIO
				      : 0;
	FILE *f = *err ? NULL : fdopen(fd, "rb");
	if (!f && !*err)
		*err = -errno;
	if (!f)
		close(fd);
	return f;
}

/* Appends the regular file at path to *buf. Returns 0 or -errno (see open_regular). */
static int append_file(const char *path, char **buf, size_t *len)
{
	int err;
	FILE *f = open_regular(path, &err);
	if (!f)
		return err;
	char chunk[65536];
	size_t n;
	while (!err && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		char *b = *len + n + 2 <= CA_FILE_MAX ? realloc(*buf, *len + n + 2) : NULL;
		if (!b) {
			err = *len + n + 2 > CA_FILE_MAX ? -EFBIG : -ENOMEM;
			break;
		}
		*buf = b;
		memcpy(b + *len, chunk, n);
		*len += n;
	}
	if (!err && ferror(f))
		err = -EIO;
	fclose(f);
	if (!err && *buf && (*buf)[*len - 1] != '\n')
		(*buf)[(*len)++] = '\n'; /* PEM blocks of two files must not run together */
	return err;
}

/* libcurl's own CA bundle path (CURLINFO_CAINFO, 7.84+), NULL when it has none or is older. */
static const char *default_ca_bundle(CURL *c)
{
	char *path = NULL;
#if LIBCURL_VERSION_NUM >= 0x075400
	curl_easy_getinfo(c, CURLINFO_CAINFO, &path);
#else
	(void)c;
#endif
	return path;
}

/* CURLOPT_CAINFO replaces the default bundle, so the extra CA would be trusted instead of the
 * public ones (a redirect to a public object store would then fail). As glab and git do, the
 * file is used in addition: the default bundle and the file go to curl as one PEM blob. */
static int load_ca(struct http *h, const char *ca_file)
{
	if (!ca_file || !ca_file[0])
		return 0;
	int err = append_file(ca_file, &h->ca_pem, &h->ca_pem_len);
	if (!err &&
	    (!h->ca_pem || !memmem(h->ca_pem, h->ca_pem_len, "-----BEGIN CERTIFICATE-----", 27)))
		err = -EBADMSG;
	CURL *c = err ? NULL : curl_easy_init();
	const char *bundle = c ? default_ca_bundle(c) : NULL;
	if (bundle && append_file(bundle, &h->ca_pem, &h->ca_pem_len) == -ENOMEM)
		err = -ENOMEM; /* an unreadable system bundle leaves the file alone: still usable */
	if (c)
		curl_easy_cleanup(c);
	else if (!err)
		err = -ENOMEM;
	return err;
}

/* The credential header and, for redaction, the bare token. Returns 0 or -ENOMEM. */
static int set_auth(struct http *h, const struct http_config *cfg)
{
	if (cfg->auth == HTTP_AUTH_NONE || !cfg->token)
		return 0;
	const char *name = cfg->auth == HTTP_AUTH_PRIVATE_TOKEN ? "PRIVATE-TOKEN"
			   : cfg->auth == HTTP_AUTH_BEARER      ? "Authorization"
								: "JOB-TOKEN";
	const char *prefix = cfg->auth == HTTP_AUTH_BEARER ? "Bearer " : "";
	if (asprintf(&h->auth_header, "%s: %s%s", name, prefix, cfg->token) < 0) {
		h->auth_header = NULL;
		return -ENOMEM;
	}
	h->auth = cfg->auth;
	h->token = strdup(cfg->token);
	return h->token ? 0 : -ENOMEM;
}

int http_new(const struct http_config *cfg, struct http **out)
{
	struct http *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->base = dup_default(cfg->base_url);
	size_t n = h->base ? strlen(h->base) : 0;
	while (n > 0 && h->base[n - 1] == '/')
		h->base[--n] = '\0';
	h->origin = h->base ? http_url_origin(h->base) : NULL;
	if (!h->origin || (strncmp(h->origin, "http://", 7) && strncmp(h->origin, "https://", 8)) ||
	    asprintf(&h->api, "%s/api/v4", h->base) < 0) {
		h->api = NULL;
		http_free(h);
		return -EINVAL;
	}
	int err = set_auth(h, cfg);
	if (!err)
		err = load_ca(h, cfg->ca_file);
	if (err) {
		http_free(h);
		return err;
	}
	h->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 10000;
	h->low_speed_time_s = cfg->low_speed_time_s ? cfg->low_speed_time_s : 30;
	h->attempt_timeout_ms = cfg->attempt_timeout_ms;
	h->max_retries = cfg->max_retries == 0  ? INT_MAX
			 : cfg->max_retries < 0 ? 0
						: cfg->max_retries;
	h->retry_base_ms = cfg->retry_base_ms ? cfg->retry_base_ms : 250;
	h->max_retry_wait_ms = cfg->max_retry_wait_ms ? cfg->max_retry_wait_ms : 15000;
	h->retry_for_ms = (cfg->retry_for_s > 0 ? cfg->retry_for_s : 120) * 1000L;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&h->share_locks[i], NULL);
	pthread_mutex_init(&h->pool_lock, NULL);
	h->share = curl_share_init();
	h->signed_urls = urlcache_new(SIGNED_URLS_MAX);
	if (!h->share || !h->signed_urls) {
		http_free(h);
		return -ENOMEM;
	}
	curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	*out = h;
	return 0;
}

void http_free(struct http *h)
{
	if (!h)
		return;
	for (int i = 0; i < h->n_pool; i++)
		curl_easy_cleanup(h->pool[i]);
	if (h->share)
		curl_share_cleanup(h->share);
	urlcache_free(h->signed_urls);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&h->share_locks[i]);
	pthread_mutex_destroy(&h->pool_lock);
	if (h->auth_header) {
		memset(h->auth_header, 0, strlen(h->auth_header));
		free(h->auth_header);
	}
	if (h->token) {
		memset(h->token, 0, strlen(h->token));
		free(h->token);
	}
	free(h->ca_pem);
	free(h->base);
	free(h->api);
	free(h->origin);
	free(h);
}

enum http_auth http_auth_kind(const struct http *h)
{
	return h->auth;
}

void http_stats(struct http *h, uint64_t *requests, uint64_t *bytes)
{
	*requests = atomic_load(&h->requests);
	*bytes = atomic_load(&h->bytes);
}

void http_get_counters(struct http *h, struct http_counters *out)
{
	uint64_t all = atomic_load(&h->requests), bytes = atomic_load(&h->bytes);
	out->storage_requests = atomic_load(&h->storage_requests);
	out->storage_bytes = atomic_load(&h->storage_bytes);
	out->server_requests = all > out->storage_requests ? all - out->storage_requests : 0;
	out->server_bytes = bytes > out->storage_bytes ? bytes - out->storage_bytes : 0;
	for (int i = 0; i < HTTP_OUTCOMES; i++)
		out->outcomes[i] = atomic_load(&h->outcomes[i]);
}

void http_set_cancel(struct http *h, bool (*cancelled)(void *ctx), void *ctx)
{
	h->cancelled = cancelled;
	h->cancel_ctx = ctx;
}

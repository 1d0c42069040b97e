/* httpurl: the URL rules of the http module, which keep the token where it belongs. An origin is
 * "scheme://host:port" in lower case with the scheme's default port filled in, so a redirect that
 * changes only the scheme or only the port is another origin, and the credential header goes only
 * to a URL whose origin is the configured one's. A Location is resolved against the URL it came
 * from and only http(s) targets are followed. Text that may carry the token (an answer's excerpt,
 * a Location) is redacted before anyone logs it. Also percent-escaping for callers building API
 * paths. Pure functions over libcurl's URL parser; thread-safe; calls no other file of the module. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "http_i.h"

/* "scheme://host:port" in lower case, or NULL when url is not absolute http(s). */
char *http_url_origin(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;
	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT))
		goto out;
	if (asprintf(&out, "%s://%s:%s", scheme, host, port) < 0)
		out = NULL;
	for (char *p = out; p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return out;
}

/* Location resolved against the URL it came from (RFC 3986), or NULL when it is not http(s). */
char *http_resolve_location(const char *from, const char *location)
{
	CURLU *u = curl_url();
	char *out = NULL;
	if (u && !curl_url_set(u, CURLUPART_URL, from, 0) &&
	    !curl_url_set(u, CURLUPART_URL, location, 0))
		curl_url_get(u, CURLUPART_URL, &out, 0);
	curl_url_cleanup(u);
	if (out && strncasecmp(out, "http://", 7) != 0 && strncasecmp(out, "https://", 8) != 0) {
		curl_free(out);
		out = NULL;
	}
	char *copy = out ? strdup(out) : NULL;
	curl_free(out);
	return copy;
}

bool http_same_origin(struct http *h, const char *url)
{
	char *o = http_url_origin(url);
	bool same = o && strcmp(o, h->origin) == 0;
	free(o);
	return same;
}

char *http_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	char *out = e ? strdup(e) : NULL;
	curl_free(e);
	return out;
}

char *http_redact(const char *text, const char *secret)
{
	static const char mark[] = "[REDACTED]";
	size_t k = secret ? strlen(secret) : 0, n = 0;
	for (const char *p = text; k && (p = strstr(p, secret)); p += k)
		n++;
	char *out = malloc(strlen(text) + n * sizeof(mark) + 1), *o = out;
	for (const char *p = text; out && *p;) {
		if (k && strncmp(p, secret, k) == 0) {
			memcpy(o, mark, sizeof(mark) - 1);
			o += sizeof(mark) - 1;
			p += k;
		} else {
			*o++ = *p++;
		}
	}
	if (out)
		*o = '\0';
	return out;
}

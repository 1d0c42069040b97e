/* urlcache: a signed URL's life read from its query (S3, GCS, Expires, Azure), and the LRU map
 * of URLs with deadlines, on clocks the test gives. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/urlcache.h"

#define T0 1795861980 /* 2026-11-28T10:33:00Z */

Test(urlcache_life, s3_sigv4_date_plus_expires)
{
	const char *u = "https://b.s3.amazonaws.com/a/b.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256"
			"&X-Amz-Credential=AK%2F20261128%2Fus-east-1%2Fs3%2Faws4_request"
			"&X-Amz-Date=20261128T103300Z&X-Amz-Expires=120&X-Amz-SignedHeaders=host"
			"&X-Amz-Signature=abc";
	cr_assert_eq(urlcache_life_s(u, T0), 120 - URLCACHE_MARGIN_S);
	cr_assert_eq(urlcache_life_s(u, T0 + 100), 120 - 100 - URLCACHE_MARGIN_S);
	cr_assert_eq(urlcache_life_s(u, T0 + 115), 0, "within the margin: not reused");
	cr_assert_eq(urlcache_life_s(u, T0 + 1000), 0, "expired");
}

Test(urlcache_life, capped_at_five_minutes)
{
	const char *u = "https://s/x?X-Amz-Date=20261128T103300Z&X-Amz-Expires=604800";
	cr_assert_eq(urlcache_life_s(u, T0), URLCACHE_MAX_LIFE_S);
	cr_assert_eq(URLCACHE_MAX_LIFE_S, 300);
}

Test(urlcache_life, names_are_case_insensitive)
{
	cr_assert_eq(
		urlcache_life_s("https://s/x?x-amz-date=20261128T103300Z&x-amz-expires=60", T0),
		50);
}

Test(urlcache_life, gcs_v4_and_v2)
{
	cr_assert_eq(urlcache_life_s(
			     "https://storage.googleapis.com/b/o?X-Goog-Algorithm=GOOG4-RSA-SHA256"
			     "&X-Goog-Date=20261128T103300Z&X-Goog-Expires=90&X-Goog-Signature=f",
			     T0),
		     80);
	cr_assert_eq(
		urlcache_life_s(
			"https://storage.googleapis.com/b/o?GoogleAccessId=a&Expires=1795862040"
			"&Signature=x%2By",
			T0),
		50);
}

Test(urlcache_life, simulator_and_cloudfront_expires)
{
	cr_assert_eq(
		urlcache_life_s("http://127.0.0.2:9/store/job-1.zip?expires=1795862000&sig=ab", T0),
		10);
}

Test(urlcache_life, azure_sas_percent_encoded)
{
	cr_assert_eq(urlcache_life_s("https://a.blob.core.windows.net/c/b?sv=2022-11-02"
				     "&se=2026-11-28T10%3A35%3A00Z&sr=b&sp=r&sig=x",
				     T0),
		     110);
}

Test(urlcache_life, no_expiry_stated_means_a_minute)
{
	cr_assert_eq(urlcache_life_s("https://cdn.example/o/x.zip", T0), URLCACHE_DEFAULT_LIFE_S);
	cr_assert_eq(urlcache_life_s("https://cdn.example/o/x.zip?token=abc#frag", T0), 60);
	cr_assert_eq(urlcache_life_s("https://s/x?X-Amz-Expires=60", T0), 60,
		     "an expiry without its date is no expiry");
}

Test(urlcache_life, hostile_values_do_not_overflow_or_count)
{
	cr_assert_eq(urlcache_life_s("https://s/x?X-Amz-Date=20261128T103300Z"
				     "&X-Amz-Expires=99999999999999999999999",
				     T0),
		     300);
	cr_assert_eq(urlcache_life_s("https://s/x?Expires=-5", T0), 60,
		     "not a number: none stated");
	cr_assert_eq(urlcache_life_s("https://s/x?X-Amz-Date=2026&X-Amz-Expires=60", T0), 60);
	cr_assert_eq(urlcache_life_s("https://s/x?Expires=", T0), 60);
	cr_assert_eq(urlcache_life_s("https://s/x?Expires=1%", T0), 60);
	cr_assert_eq(urlcache_life_s("https://s/x?=&&&Expires", T0), 60);
}

Test(urlcache_map, get_before_and_after_the_deadline)
{
	struct urlcache *uc = urlcache_new(4);
	cr_assert_not_null(uc);
	cr_assert_null(urlcache_get(uc, "/a", 0));
	cr_assert_eq(urlcache_put(uc, "/a", "http://s/a?sig=1", 1000), 0);
	char *u = urlcache_get(uc, "/a", 999);
	cr_assert_str_eq(u, "http://s/a?sig=1");
	free(u);
	cr_assert_null(urlcache_get(uc, "/a", 1000), "the deadline is exclusive");
	cr_assert_eq(urlcache_count(uc), 0, "an expired URL is forgotten");
	urlcache_free(uc);
}

Test(urlcache_map, put_replaces_and_drop_only_the_same_url)
{
	struct urlcache *uc = urlcache_new(4);
	urlcache_put(uc, "/a", "http://s/a?sig=1", 1000);
	urlcache_put(uc, "/a", "http://s/a?sig=2", 1000);
	cr_assert_eq(urlcache_count(uc), 1);
	urlcache_drop(uc, "/a", "http://s/a?sig=1"); /* a stale failure must not drop a fresh URL */
	char *u = urlcache_get(uc, "/a", 0);
	cr_assert_str_eq(u, "http://s/a?sig=2");
	free(u);
	urlcache_drop(uc, "/a", "http://s/a?sig=2");
	cr_assert_null(urlcache_get(uc, "/a", 0));
	urlcache_drop(uc, "/nothing", "x");
	urlcache_free(uc);
}

Test(urlcache_map, bounded_and_least_recently_used_goes_first)
{
	struct urlcache *uc = urlcache_new(3);
	urlcache_put(uc, "/a", "A", 100);
	urlcache_put(uc, "/b", "B", 100);
	urlcache_put(uc, "/c", "C", 100);
	free(urlcache_get(uc, "/a", 0)); /* /a used: /b is now the oldest */
	urlcache_put(uc, "/d", "D", 100);
	cr_assert_eq(urlcache_count(uc), 3);
	char *b = urlcache_get(uc, "/b", 0), *a = urlcache_get(uc, "/a", 0),
	     *c = urlcache_get(uc, "/c", 0), *d = urlcache_get(uc, "/d", 0);
	cr_assert_null(b);
	cr_assert_str_eq(a, "A");
	cr_assert_str_eq(c, "C");
	cr_assert_str_eq(d, "D");
	free(a);
	free(c);
	free(d);
	for (int i = 0; i < 1000; i++) {
		char k[16];
		snprintf(k, sizeof(k), "/k%d", i);
		urlcache_put(uc, k, "U", 100);
	}
	cr_assert_eq(urlcache_count(uc), 3, "never more than max");
	urlcache_free(uc);
	urlcache_free(NULL);
}

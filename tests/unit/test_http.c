/* Unit tests of the http module against tests/unit/http_peer.py, a loopback peer started once per
 * test (Criterion forks per test): redirects and where the token goes (never to another host,
 * port or scheme; the http_scheme suite's peer speaks https too), retries on 429/503 and
 * truncation with resumed ranges, Range/Content-Range, paging, stalls and refused connections. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "artifactfs/http.h"
#include "artifactfs/intr.h"
#include "artifactfs/log.h"
#include "http_peer.h"

TestSuite(http, .init = peer_start, .fini = peer_stop, .timeout = 60);

static struct http *client(long low_speed_time_s, int max_retries)
{
	struct http_config cfg = {
		.base_url = base,
		.auth = HTTP_AUTH_PRIVATE_TOKEN,
		.token = TOKEN,
		.connect_timeout_ms = 2000,
		.low_speed_time_s = low_speed_time_s,
		.max_retries = max_retries,
		.retry_base_ms = 10,
		.max_retry_wait_ms = 2000,
	};
	struct http *h = NULL;
	cr_assert_eq(http_new(&cfg, &h), 0);
	return h;
}

static int get(struct http *h, const char *url, struct http_response *r)
{
	struct http_request req = {.url = url, .range_off = -1};
	return http_do(h, &req, r);
}

/* A positional sink: bytes land at their offset; records the highest end seen. */
struct sink {
	unsigned char buf[2048];
	uint64_t end;
	int calls;
};

static int sink_put(void *ctx, uint64_t off, const void *data, size_t len)
{
	struct sink *s = ctx;
	cr_assert_leq(off + len, sizeof(s->buf));
	memcpy(s->buf + off, data, len);
	if (off + len > s->end)
		s->end = off + len;
	s->calls++;
	return 0;
}

static void assert_data(const struct sink *s, uint64_t from, uint64_t to)
{
	for (uint64_t i = from; i < to; i++)
		cr_assert_eq(s->buf[i], i % 251, "byte %llu", (unsigned long long)i);
}

static int get_range(struct http *h, const char *url, int64_t off, int64_t len, struct sink *s,
		     struct http_response *r)
{
	struct http_request req = {
		.url = url, .range_off = off, .range_len = len, .body_fn = sink_put, .body_ctx = s};
	return http_do(h, &req, r);
}

Test(http, a_redirect_to_another_origin_drops_the_token)
{
	static const char *codes[] = {"302", "303", "307", "301", "308"};
	struct http *h = client(0, -1);
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		struct http_response r;
		char url[64];
		snprintf(url, sizeof(url), "/redirect/other/%s", codes[i]);
		cr_assert_eq(get(h, url, &r), 0);
		cr_assert_eq(r.status, 200);
		cr_assert_str_eq(r.body, "landed");
		http_response_release(&r);
	}
	cr_assert_eq(count_lines("127.0.0.1:"), 5);
	cr_assert_eq(count_lines("127.0.0.2:"), 5, "%s", peer_log());
	cr_assert_eq(count_lines("/redirect/other/302 token=yes"), 1, "the API got the token");
	cr_assert_eq(count_lines("GET /landing token=no"), 5, "the other origin never does");
	cr_assert_eq(count_lines("token=yes"), 5);
	http_free(h);
}

Test(http, a_same_origin_redirect_keeps_the_token)
{
	struct http *h = client(0, -1);
	struct http_response r;
	cr_assert_eq(get(h, "/redirect/same", &r), 0);
	cr_assert_eq(r.status, 200, "status %ld: %s", r.status, peer_log());
	http_response_release(&r);
	cr_assert_eq(get(h, "/redirect/relative", &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "landed");
	http_response_release(&r);
	cr_assert_eq(count_lines("127.0.0.1:"), 4, "%s", peer_log());
	cr_assert_eq(count_lines("GET /api/v4/landing token=yes"), 1);
	cr_assert_eq(count_lines("GET /api/v4/redirect/landing token=yes"), 1,
		     "a relative Location resolves against the request's path");
	cr_assert_eq(count_lines("token=no"), 0);
	http_free(h);
}

/* An origin is scheme, host and port: a redirect that changes only the port is another origin. */
Test(http, a_redirect_to_another_port_of_the_same_host_drops_the_token)
{
	struct http *h = client(0, -1);
	struct http_response r;
	cr_assert_eq(get(h, "/redirect/port", &r), 0);
	cr_assert_eq(r.status, 200, "status %ld: %s", r.status, peer_log());
	cr_assert_str_eq(r.body, "landed");
	http_response_release(&r);
	char want[96];
	snprintf(want, sizeof(want), "http://127.0.0.1:%d GET /api/v4/redirect/port token=yes",
		 port1);
	cr_assert_eq(count_lines(want), 1, "the API got the token: %s", peer_log());
	snprintf(want, sizeof(want), "http://127.0.0.1:%d GET /landing token=no", port3);
	cr_assert_eq(count_lines(want), 1, "the other port did not: %s", peer_log());
	cr_assert_eq(count_lines("token=yes"), 1);
	http_free(h);
}

Test(http, a_redirect_loop_ends_after_five_hops)
{
	struct http *h = client(0, -1);
	struct http_response r;
	cr_assert_eq(get(h, "/redirect/loop", &r), -EIO);
	cr_assert_eq(count_lines("/redirect/loop"), 6);
	http_response_release(&r);
	http_free(h);
}

Test(http, a_429_waits_for_retry_after_then_succeeds)
{
	struct http *h = client(0, 3);
	struct http_response r;
	double t0 = now_s();
	cr_assert_eq(get(h, "/429/a", &r), 0);
	double waited = now_s() - t0;
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "ok");
	cr_assert_geq(waited, 0.9, "Retry-After: 1 was honoured (%.3f s)", waited);
	cr_assert_eq(count_lines("/429/a"), 2);
	http_response_release(&r);
	http_free(h);
}

Test(http, a_429_without_retry_after_waits_for_ratelimit_reset)
{
	struct http *h = client(0, 3);
	struct http_response r;
	cr_assert_eq(get(h, "/429reset/a", &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(count_lines("/429reset/a"), 2);
	http_response_release(&r);
	http_free(h);
}

Test(http, a_503_is_retried)
{
	struct http *h = client(0, 3);
	struct http_response r;
	cr_assert_eq(get(h, "/503/a", &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(count_lines("/503/a"), 2);
	http_response_release(&r);
	http_free(h);
}

Test(http, statuses_left_after_the_retries_are_answers)
{
	struct http *h = client(0, 2);
	struct http_response r;
	cr_assert_eq(get(h, "/status/502", &r), 0);
	cr_assert_eq(r.status, 502);
	cr_assert_eq(count_lines("/status/502"), 3, "two retries");
	http_response_release(&r);
	cr_assert_eq(get(h, "/status/404", &r), 0);
	cr_assert_eq(r.status, 404);
	cr_assert_str_eq(r.body, "{\"message\":\"status 404\"}");
	cr_assert_eq(count_lines("/status/404"), 1, "a 404 is not retried");
	http_response_release(&r);
	cr_assert_eq(get(h, "/status/403", &r), 0);
	cr_assert_eq(count_lines("/status/403"), 1);
	http_response_release(&r);
	http_free(h);
}

Test(http, a_truncated_body_is_resumed_with_a_range)
{
	struct http *h = client(0, 3);
	struct http_response r;
	struct sink s = {0};
	cr_assert_eq(get_range(h, "/truncate-once/a", -1, 0, &s, &r), 0);
	cr_assert_eq(r.status, 200, "the logical answer is the whole resource");
	cr_assert_eq(r.range_total, 1000);
	cr_assert_eq(s.end, 1000);
	assert_data(&s, 0, 1000);
	cr_assert_eq(count_lines("/truncate-once/a token=yes range=-"), 1, "%s", peer_log());
	cr_assert_eq(count_lines("/truncate-once/a token=yes range=bytes=400-999"), 1);
	http_response_release(&r);
	http_free(h);
}

Test(http, a_truncated_range_is_resumed_where_it_stopped)
{
	struct http *h = client(0, 3);
	struct http_response r;
	struct sink s = {0};
	cr_assert_eq(get_range(h, "/truncate-once/b", 100, 800, &s, &r), 0);
	cr_assert_eq(r.status, 206);
	cr_assert_eq(r.range_start, 100, "the range asked for, not the resumed one");
	cr_assert_eq(r.range_total, 1000);
	cr_assert_eq(s.end, 900);
	assert_data(&s, 100, 900);
	cr_assert_eq(count_lines("range=bytes=100-899"), 1, "%s", peer_log());
	cr_assert_eq(count_lines("range=bytes=500-899"), 1);
	http_response_release(&r);
	http_free(h);
}

Test(http, a_truncated_body_without_range_support_restarts)
{
	struct http *h = client(0, 3);
	struct http_response r;
	struct sink s = {0};
	cr_assert_eq(get_range(h, "/truncate-once-norange/a", -1, 0, &s, &r), 0);
	cr_assert_eq(r.status, 200);
	assert_data(&s, 0, 1000);
	cr_assert_eq(count_lines("/truncate-once-norange/a token=yes range=-"), 2, "%s",
		     peer_log());
	http_response_release(&r);
	http_free(h);
}

Test(http, a_collected_body_that_stays_truncated_fails_with_eio)
{
	struct http *h = client(0, 2);
	struct http_response r;
	cr_assert_eq(get(h, "/truncate-always", &r), -EIO);
	cr_assert_eq(count_lines("/truncate-always"), 3);
	http_response_release(&r);
	http_free(h);
}

Test(http, ranges_give_206_with_content_range)
{
	struct http *h = client(0, -1);
	struct http_response r;
	struct sink s = {0};
	cr_assert_eq(get_range(h, "/data", 10, 20, &s, &r), 0);
	cr_assert_eq(r.status, 206);
	cr_assert_eq(r.range_start, 10);
	cr_assert_eq(r.range_total, 1000);
	cr_assert_eq(s.end, 30);
	assert_data(&s, 10, 30);
	http_response_release(&r);
	memset(&s, 0, sizeof(s));
	cr_assert_eq(get_range(h, "/data", -1, 22, &s, &r), 0, "a suffix range");
	cr_assert_eq(r.status, 206);
	cr_assert_eq(r.range_start, 978);
	cr_assert_eq(s.end, 1000);
	assert_data(&s, 978, 1000);
	cr_assert_eq(count_lines("range=bytes=-22"), 1);
	http_response_release(&r);
	http_free(h);
}

Test(http, an_unsatisfiable_range_gives_416_and_the_total)
{
	struct http *h = client(0, -1);
	struct http_response r;
	struct sink s = {0};
	cr_assert_eq(get_range(h, "/data", 5000, 10, &s, &r), 0);
	cr_assert_eq(r.status, 416);
	cr_assert_eq(r.range_start, -1);
	cr_assert_eq(r.range_total, 1000);
	cr_assert_eq(http_status_to_errno(r.status), -ERANGE);
	cr_assert_eq(s.calls, 0, "an error body never reaches the sink");
	http_response_release(&r);
	http_free(h);
}

Test(http, a_server_ignoring_range_answers_200_from_offset_zero)
{
	struct http *h = client(0, -1);
	struct http_response r;
	struct sink s = {0};
	cr_assert_eq(get_range(h, "/norange", 100, 10, &s, &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.range_start, -1);
	cr_assert_eq(r.range_total, 1000);
	cr_assert_eq(s.end, 1000);
	assert_data(&s, 0, 1000);
	http_response_release(&r);
	http_free(h);
}

Test(http, link_next_is_rewritten_onto_the_base_url)
{
	struct http *h = client(0, -1);
	struct http_response r;
	char want[128];
	cr_assert_eq(get(h, "/paged-link?per_page=1", &r), 0);
	snprintf(want, sizeof(want), "%s/api/v4/paged-link?page=2&per_page=1", base);
	cr_assert_not_null(r.next_url);
	cr_assert_str_eq(r.next_url, want);
	char *next = strdup(r.next_url);
	http_response_release(&r);
	cr_assert_eq(get(h, next, &r), 0);
	cr_assert_str_eq(r.body, "[2]");
	cr_assert_eq(count_lines("token=yes"), 2, "the token went only to our origin");
	free(next);
	http_response_release(&r);
	cr_assert_eq(get(h, "/paged-link?page=3", &r), 0);
	cr_assert_null(r.next_url, "the last page has no next");
	http_response_release(&r);
	http_free(h);
}

Test(http, x_next_page_is_the_fallback)
{
	struct http *h = client(0, -1);
	struct http_response r;
	char want[128];
	cr_assert_eq(get(h, "/paged-xnext?per_page=1&page=1&x=y", &r), 0);
	snprintf(want, sizeof(want), "%s/api/v4/paged-xnext?per_page=1&page=2&x=y", base);
	cr_assert_str_eq(r.next_url, want);
	http_response_release(&r);
	cr_assert_eq(get(h, "/paged-xnext?per_page=1", &r), 0);
	snprintf(want, sizeof(want), "%s/api/v4/paged-xnext?per_page=1&page=2", base);
	cr_assert_str_eq(r.next_url, want);
	http_response_release(&r);
	cr_assert_eq(get(h, "/paged-xnext?page=3", &r), 0);
	cr_assert_null(r.next_url, "an empty X-Next-Page ends the listing");
	http_response_release(&r);
	http_free(h);
}

Test(http, a_stalled_transfer_is_aborted_by_the_low_speed_limit)
{
	struct http *h = client(1, -1);
	struct http_response r;
	struct sink s = {0};
	double t0 = now_s();
	cr_assert_eq(get_range(h, "/stall", -1, 0, &s, &r), -EIO);
	/* a deadline, not a speed: the peer is silent for 30 s, and only the limit ends it sooner */
	cr_assert_lt(now_s() - t0, 25.0);
	http_response_release(&r);
	http_free(h);
}

Test(http, a_refused_connection_fails_fast_with_eio)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd); /* nobody listens there now */
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", ntohs(sa.sin_port));
	struct http *h = client(0, 2);
	struct http_response r;
	cr_assert_eq(get(h, "/ok", &r), -EIO);
	struct http_counters c;
	http_get_counters(h, &c);
	cr_assert_eq(c.outcomes[HTTP_OUTCOME_NONE], 3, "tried 1 + max_retries times, no more (%d)",
		     (int)c.outcomes[HTTP_OUTCOME_NONE]);
	cr_assert_eq(r.status, 0);
	http_response_release(&r);
	http_free(h);
}

Test(http, statuses_map_to_errno_as_the_spec_says)
{
	cr_assert_eq(http_status_to_errno(200), 0);
	cr_assert_eq(http_status_to_errno(204), 0);
	cr_assert_eq(http_status_to_errno(206), 0);
	cr_assert_eq(http_status_to_errno(304), 0);
	cr_assert_eq(http_status_to_errno(400), -EINVAL);
	cr_assert_eq(http_status_to_errno(401), -EACCES);
	cr_assert_eq(http_status_to_errno(403), -EACCES);
	cr_assert_eq(http_status_to_errno(404), -ENOENT);
	cr_assert_eq(http_status_to_errno(410), -ENOENT);
	cr_assert_eq(http_status_to_errno(409), -EBUSY);
	cr_assert_eq(http_status_to_errno(416), -ERANGE);
	cr_assert_eq(http_status_to_errno(429), -EIO);
	cr_assert_eq(http_status_to_errno(500), -EIO);
	cr_assert_eq(http_status_to_errno(503), -EIO);
	cr_assert_eq(http_status_to_errno(418), -EIO);
}

Test(http, bad_base_urls_are_refused)
{
	struct http_config cfg = {.base_url = "not a url"};
	struct http *h = NULL;
	cr_assert_eq(http_new(&cfg, &h), -EINVAL);
	cfg.base_url = "ftp://example.com";
	cr_assert_eq(http_new(&cfg, &h), -EINVAL);
	cfg.base_url = "https://example.com/";
	cr_assert_eq(http_new(&cfg, &h), 0);
	http_free(h);
}

Test(http, escape_keeps_only_unreserved_characters)
{
	char *e = http_escape("group/sub/app");
	cr_assert_str_eq(e, "group%2Fsub%2Fapp");
	free(e);
	e = http_escape("a-b_c.d~1234");
	cr_assert_str_eq(e, "a-b_c.d~1234");
	free(e);
	e = http_escape("test 1/3 %");
	cr_assert_str_eq(e, "test%201%2F3%20%25");
	free(e);
}

/* ---- the retry budget, rate limits, redaction (GitLab issue 9, hardening issue 12) ---- */

static struct http *budget_client(long retry_for_s)
{
	struct http_config cfg = {
		.base_url = base,
		.auth = HTTP_AUTH_PRIVATE_TOKEN,
		.token = TOKEN,
		.connect_timeout_ms = 2000,
		.retry_base_ms = 100,
		.max_retry_wait_ms = 1000,
		.retry_for_s = retry_for_s,
	};
	struct http *h = NULL;
	cr_assert_eq(http_new(&cfg, &h), 0);
	return h;
}

Test(http, a_bare_429_window_is_waited_out_and_the_bytes_are_exact)
{
	struct http *h = budget_client(20);
	struct http_response r;
	struct sink s = {0};
	double t0 = now_s();
	cr_assert_eq(get_range(h, "/bare429-for/3/a", 100, 500, &s, &r), 0);
	cr_assert_geq(now_s() - t0, 3.0, "the window lasted 3 s");
	cr_assert_eq(r.status, 206);
	cr_assert_eq(s.end, 600);
	assert_data(&s, 100, 600);
	cr_assert_gt(count_lines("/bare429-for/3/a"), 3, "backed off and asked again");
	http_response_release(&r);
	http_free(h);
}

/* Before: 20 nines overflowed `retry_after_s * 1000` (UBSan abort; release builds retried at
 * once). Now the wait is clamped, found to end past the budget, and the answer is the 429. */
static void assert_gives_up_at_once(const char *url)
{
	struct http *h = budget_client(3);
	struct http_response r;
	double t0 = now_s();
	cr_assert_eq(get(h, url, &r), 0);
	cr_assert_eq(r.status, 429);
	cr_assert_eq(http_status_to_errno(r.status), -EIO);
	cr_assert_lt(now_s() - t0, 3.0, "a wait past the budget is not started");
	cr_assert_eq(count_lines(url), 1);
	http_response_release(&r);
	http_free(h);
}

Test(http, a_huge_retry_after_is_clamped_and_fails_within_the_budget)
{
	assert_gives_up_at_once("/huge-retry-after");
}

Test(http, a_huge_ratelimit_reset_is_clamped_and_fails_within_the_budget)
{
	assert_gives_up_at_once("/huge-reset");
}

Test(http, a_bare_429_that_never_ends_fails_at_the_budget)
{
	struct http *h = budget_client(2);
	struct http_response r;
	double t0 = now_s();
	cr_assert_eq(get(h, "/bare429-for/100/b", &r), 0);
	double took = now_s() - t0;
	cr_assert_eq(r.status, 429);
	cr_assert_geq(took, 1.0, "backed off for most of the budget (%.2f s)", took);
	cr_assert_lt(took, 2.5, "one deadline for the request (%.2f s)", took);
	http_response_release(&r);
	http_free(h);
}

Test(http, a_hung_server_costs_one_budget_not_retries_times_the_timeout)
{
	struct http *h = budget_client(2);
	struct http_response r;
	double t0 = now_s();
	cr_assert_eq(get(h, "/stall", &r), -EIO);
	cr_assert_lt(now_s() - t0, 3.5, "took %.2f s", now_s() - t0);
	cr_assert_eq(r.fail, HTTP_FAIL_TIMEOUT);
	http_response_release(&r);
	http_free(h);
}

Test(http, redact_replaces_every_occurrence)
{
	char *s = http_redact("a " TOKEN " b " TOKEN, TOKEN);
	cr_assert_str_eq(s, "a [REDACTED] b [REDACTED]");
	free(s);
	s = http_redact("nothing", NULL);
	cr_assert_str_eq(s, "nothing");
	free(s);
}

/* The daemon's log is stderr here: catch it in a file for the length of fn. */
static const char *captured_log(void (*fn)(void))
{
	static char buf[16384];
	char path[] = "/tmp/http-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	cr_assert_geq(fd, 0);
	log_init(false, LOG_DEBUG);
	fflush(stderr);
	dup2(fd, 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return buf;
}

static void leak_attempts(void)
{
	struct http *h = client(0, -1);
	struct http_response r;
	cr_assert_eq(get(h, "/echo-token", &r), 0);
	cr_assert_eq(r.status, 500);
	http_response_release(&r);
	cr_assert_eq(get(h, "/redirect/leak", &r), 0);
	cr_assert_eq(r.status, 500);
	http_response_release(&r);
	http_free(h);
}

Test(http, the_token_echoed_by_an_answer_never_reaches_the_log)
{
	const char *log = captured_log(leak_attempts);
	cr_assert_null(strstr(log, TOKEN), "log: %s", log);
	cr_assert_not_null(strstr(log, "request had [REDACTED]"),
			   "the excerpt is logged, redacted: %s", log);
	cr_assert_not_null(strstr(log, "/leak/[REDACTED]/x"), "the Location path too: %s", log);
}

/* A token that straddles where an excerpt or a logged URL is cut: redacting after the cut would
 * leave its head. */
static void leak_at_cuts(void)
{
	struct http *h = client(0, -1);
	char url[64];
	for (int pad = 170; pad <= 200; pad += 5) {
		struct http_response r;
		snprintf(url, sizeof(url), "/echo-token-at/%d", pad);
		cr_assert_eq(get(h, url, &r), 0);
		cr_assert_eq(r.status, 500);
		http_response_release(&r);
	}
	for (int pad = 470; pad <= 500; pad += 5) { /* the logged URL is cut at 511 bytes */
		struct http_response r;
		snprintf(url, sizeof(url), "/redirect-token-at/%d", pad);
		cr_assert_eq(get(h, url, &r), 0);
		cr_assert_eq(r.status, 500);
		http_response_release(&r);
	}
	http_free(h);
}

Test(http, no_part_of_the_token_is_left_where_an_excerpt_is_cut)
{
	const char *log = captured_log(leak_at_cuts);
	char head[9] = {0}; /* the token's first 8 bytes: more than its "glpat-" prefix */
	memcpy(head, TOKEN, 8);
	cr_assert_null(strstr(log, head), "a piece of the token was logged: %s", log);
	cr_assert_not_null(strstr(log, "[REDACTED]"), "the excerpt is logged, redacted: %s", log);
}

Test(http, a_relative_link_header_does_not_cut_the_listing)
{
	struct http *h = client(0, -1);
	struct http_response r;
	char want[128];
	cr_assert_eq(get(h, "/paged-relative?page=1", &r), 0);
	snprintf(want, sizeof(want), "%s/api/v4/paged-relative?page=2", base);
	cr_assert_not_null(r.next_url, "a relative Link was dropped");
	cr_assert_str_eq(r.next_url, want);
	http_response_release(&r);
	cr_assert_eq(get(h, "/paged-relative?page=3", &r), 0);
	cr_assert_null(r.next_url);
	http_response_release(&r);
	http_free(h);
}

static double cancel_at;

static bool cancel_after(void *ctx)
{
	(void)ctx;
	return cancel_at > 0 && now_s() >= cancel_at;
}

static void cancelled_request(void)
{
	struct http *h = client(0, -1);
	struct http_response r;
	http_set_cancel(h, cancel_after, NULL);
	cancel_at = now_s() + 0.3;
	cr_assert_eq(get(h, "/slow-headers", &r), -EIO);
	cr_assert_eq(r.fail, HTTP_FAIL_CANCELLED);
	cr_assert_lt(now_s() - cancel_at, 1.5, "stopped promptly");
	http_response_release(&r);
	cancel_at = 0;
	cr_assert_eq(get(h, "/ok", &r), 0, "a cancelled request did not mark the server down");
	http_response_release(&r);
	http_free(h);
}

Test(http, a_cancelled_transfer_is_logged_as_cancelled_not_unreachable)
{
	const char *log = captured_log(cancelled_request);
	cr_assert_null(strstr(log, "could not be reached"), "log: %s", log);
	cr_assert_not_null(strstr(log, "cancelled"), "log: %s", log);
}

/* A reader's interrupt (intr.h). The question turns true once the peer has the request; the
 * peer's /hold is released only after the call returned, so a stop that does not work hangs
 * the test until Criterion's timeout instead of passing. */
static bool peer_got(void *needle)
{
	return count_lines(needle) > 0;
}

static void interrupted_hold(void)
{
	struct http *h = client(300, 0); /* neither the low-speed limit nor the budget ends it */
	struct http_response r;
	struct sink s = {0};
	intr_begin(peer_got, " /api/v4/hold ");
	int err = get_range(h, "/hold", -1, 0, &s, &r);
	intr_end();
	http_response_release(&r);
	cr_assert_eq(err, -EINTR);
	cr_assert_eq(get(h, "/release", &r), 0);
	http_response_release(&r);
	cr_assert_eq(count_lines(" /api/v4/hold "), 1, "an interrupted request is not retried");
	http_free(h);
}

Test(http, an_interrupted_transfer_stops_with_eintr_before_the_server_goes_on)
{
	const char *log = captured_log(interrupted_hold);
	cr_assert_not_null(strstr(log, "GET /api/v4/hold: stopped: its reader was interrupted"),
			   "log: %s", log);
}

Test(http, an_interrupt_ends_the_wait_before_a_retry)
{
	struct http *h = client(300, 0);
	struct http_response r;
	intr_begin(peer_got, " /api/v4/busy "); /* 503 + Retry-After: 30, within the budget */
	int err = get(h, "/busy", &r);
	intr_end();
	http_response_release(&r);
	cr_assert_eq(err, -EINTR);
	cr_assert_eq(count_lines(" /api/v4/busy "), 1);
	http_free(h);
}

static bool always(void *ctx)
{
	(void)ctx;
	return true;
}

Test(http, a_request_of_an_interrupted_reader_is_not_sent)
{
	struct http *h = client(0, -1);
	struct http_response r;
	intr_begin(always, NULL);
	int err = get(h, "/ok", &r);
	intr_end();
	http_response_release(&r);
	cr_assert_eq(err, -EINTR);
	cr_assert_eq(count_lines(" /api/v4/ok "), 0);
	cr_assert_eq(get(h, "/ok", &r), 0, "an interrupt is the reader's, not the client's");
	http_response_release(&r);
	http_free(h);
}

Test(http, a_missing_or_empty_ca_file_is_refused)
{
	struct http *h = NULL;
	struct http_config cfg = {.base_url = base, .ca_file = "/nonexistent/ca.pem"};
	cr_assert_eq(http_new(&cfg, &h), -ENOENT);
	char path[160];
	snprintf(path, sizeof(path), "%s/empty.pem", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fclose(f);
	cfg.ca_file = path;
	cr_assert_eq(http_new(&cfg, &h), -EBADMSG);
	unlink(path);
}

/* Not a regular file: a FIFO would block the start-up (nobody writes it), a folder would read
 * as an I/O error, a device is no CA file either. Each is refused at once, by kind. */
Test(http, a_ca_file_that_is_no_regular_file_is_refused_at_once)
{
	struct http *h = NULL;
	char fifo[160];
	snprintf(fifo, sizeof(fifo), "%s/ca-fifo", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	struct http_config cfg = {.base_url = base, .ca_file = fifo};
	cr_assert_eq(http_new(&cfg, &h), -ENXIO);
	unlink(fifo);
	cfg.ca_file = dir;
	cr_assert_eq(http_new(&cfg, &h), -EISDIR);
	cfg.ca_file = "/dev/null";
	cr_assert_eq(http_new(&cfg, &h), -ENXIO);
}

static int read_signed(struct http *h, const char *url, int64_t off, bool reuse, struct sink *s,
		       long *status)
{
	struct http_request req = {.url = url,
				   .range_off = off,
				   .range_len = 100,
				   .body_fn = sink_put,
				   .body_ctx = s,
				   .reuse_signed_url = reuse};
	struct http_response r;
	int err = http_do(h, &req, &r);
	*status = r.status;
	http_response_release(&r);
	return err;
}

Test(http, a_signed_storage_url_is_reused_while_valid)
{
	struct http *h = client(0, 3);
	struct sink s = {0};
	long status;
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(read_signed(h, "/presigned/keep", i * 100, true, &s, &status), 0);
		cr_assert_eq(status, 206);
	}
	assert_data(&s, 0, 400);
	cr_assert_eq(count_lines("GET /api/v4/presigned/keep"), 1, "one API request, %s",
		     peer_log());
	cr_assert_eq(count_lines("GET /store/keep/blob"), 4);
	cr_assert_eq(count_lines("token=yes"), 1, "storage never gets the token");
	cr_assert_eq(read_signed(h, "/presigned/keep", 400, false, &s, &status), 0);
	cr_assert_eq(count_lines("GET /api/v4/presigned/keep"), 2,
		     "a read that may not reuse asks");
	http_free(h);
}

Test(http, a_refused_signed_url_sends_the_read_back_to_the_api_at_once)
{
	struct http *h = client(0, -1); /* no retries: the way back is no retry */
	struct sink s = {0};
	long status;
	cr_assert_eq(read_signed(h, "/presigned/refuse-2nd", 0, true, &s, &status), 0);
	cr_assert_eq(read_signed(h, "/presigned/refuse-2nd", 100, true, &s, &status), 0);
	cr_assert_eq(status, 206);
	assert_data(&s, 0, 200);
	cr_assert_eq(count_lines("GET /api/v4/presigned/refuse-2nd"), 2, "%s", peer_log());
	cr_assert_eq(count_lines("GET /store/refuse-2nd/blob"), 3);
	cr_assert_eq(read_signed(h, "/presigned/refuse-2nd", 200, true, &s, &status), 0);
	cr_assert_eq(count_lines("GET /api/v4/presigned/refuse-2nd"), 2,
		     "the fresh URL is remembered");
	http_free(h);
}

/* A 401 or 403 is a refusal the operation logs at ERROR (its EACCES is no mere answer there);
 * other failures and successes leave no mark. */
Test(http, a_401_or_403_marks_its_reason_as_a_refusal)
{
	struct http *h = client(0, -1);
	struct http_response r;
	cr_assert_eq(get(h, "/status/403", &r), 0);
	http_response_release(&r);
	cr_assert(log_reason_refused(), "%s", log_reason());
	cr_assert_eq(get(h, "/status/404", &r), 0);
	http_response_release(&r);
	cr_assert_not(log_reason_refused());
	cr_assert_eq(get(h, "/status/401", &r), 0);
	http_response_release(&r);
	cr_assert(log_reason_refused());
	log_set_reason("something else");
	cr_assert_not(log_reason_refused(), "a later reason is not the refusal");
	cr_assert_eq(get(h, "/status/401", &r), 0);
	http_response_release(&r);
	cr_assert_eq(get(h, "/ok", &r), 0);
	http_response_release(&r);
	cr_assert_not(log_reason_refused());
	http_free(h);
}

Test(http, a_failure_leaves_its_reason_without_the_signature)
{
	struct http *h = client(0, 2);
	struct http_response r;
	log_set_reason("stale");
	cr_assert_eq(get(h, "/ok", &r), 0);
	http_response_release(&r);
	cr_assert_str_eq(log_reason(), "", "an answer that is no failure clears it");
	cr_assert_eq(get(h, "/status/502", &r), 0);
	http_response_release(&r);
	cr_assert_str_eq(log_reason(), "GET /api/v4/status/502: HTTP 502: {\"message\":\"status "
				       "502\"} (after 3 attempts)");
	struct sink s = {0};
	long status;
	cr_assert_eq(read_signed(h, "/presigned/deny", 0, true, &s, &status), 0);
	cr_assert_eq(status, 403);
	char want[200];
	snprintf(want, sizeof(want),
		 "GET /api/v4/presigned/deny (sent on to http://127.0.0.2:%d/store/deny/blob): "
		 "HTTP 403 "
		 "(after 4 attempts)",
		 port2); /* each hop is an attempt */
	cr_assert_str_eq(log_reason(), want);
	http_free(h);
}

/* The same host and port with another scheme is another origin too: port1 speaks both http and
 * https here (peer_start_tls), and its own certificate is the CA the client trusts. */
TestSuite(http_scheme, .init = peer_start_tls, .fini = peer_stop, .timeout = 60);

static struct http *client_at(const char *scheme)
{
	static char url[64];
	snprintf(url, sizeof(url), "%s://127.0.0.1:%d", scheme, port1);
	struct http_config cfg = {
		.base_url = url,
		.auth = HTTP_AUTH_PRIVATE_TOKEN,
		.token = TOKEN,
		.connect_timeout_ms = 2000,
		.max_retries = -1,
		.ca_file = cert_path,
	};
	struct http *h = NULL;
	cr_assert_eq(http_new(&cfg, &h), 0);
	return h;
}

/* A read pinned to one archive (an open file under a ref): bytes for range [off, off+100). */
static int read_pinned(struct http *h, const char *url, const char *etag, const char *date,
		       int64_t size, struct sink *s, long *status)
{
	struct http_request req = {.url = url,
				   .range_off = 100,
				   .range_len = 100,
				   .body_fn = sink_put,
				   .body_ctx = s,
				   .expect_etag = etag,
				   .expect_last_modified = date,
				   .expect_size = size};
	struct http_response r;
	int err = http_do(h, &req, &r);
	*status = r.status;
	http_response_release(&r);
	return err;
}

#define WEAK "W/\"12ae32cb1ec02d01eda3581b127c1fee\""
#define OLD_DATE "Fri, 20 Nov 2026 10:15:30 GMT"
#define NEW_DATE "Sat, 21 Nov 2026 08:00:00 GMT"

/* Most GitLab servers send one constant weak tag on every download: it names no archive. The
 * pin then goes by date; the server, whose archive is another, answers the If-Range with a 200
 * carrying the same weak tag, and not one of its bytes may be taken for the pinned archive's. */
Test(http, a_constant_weak_etag_pins_nothing_a_200_to_if_range_is_another_archive)
{
	struct http *h = client(0, 2);
	struct sink s = {0};
	long status;
	cr_assert_eq(read_pinned(h, "/weak-moved", WEAK, OLD_DATE, 1000, &s, &status), -ESTALE);
	cr_assert_eq(s.calls, 0, "no byte of the other archive reached the sink");
	cr_assert_eq(count_lines("range=bytes=100-199 pin="
				 "Fri,_20_Nov_2026_10:15:30_GMT"),
		     1, "If-Range went by the date, never the weak tag: %s", peer_log());
	/* the same date: the pinned archive itself, its 206 is taken */
	cr_assert_eq(read_pinned(h, "/weak-moved", WEAK, NEW_DATE, 1000, &s, &status), 0);
	cr_assert_eq(status, 206);
	assert_data(&s, 100, 200);
	cr_assert_eq(count_lines("pin=W/"), 0);
	cr_assert_eq(count_lines("inm=yes"), 0, "If-None-Match is never sent: %s", peer_log());
	http_free(h);
}

/* A 200 to a Range with If-Range says the validator failed (or Range was ignored): either way
 * not bytes known to be the pinned archive's, even when the answer carries no validator. */
Test(http, a_200_to_if_range_is_another_archive)
{
	struct http *h = client(0, 2);
	struct sink s = {0};
	long status;
	cr_assert_eq(read_pinned(h, "/norange", NULL, OLD_DATE, 0, &s, &status), -ESTALE);
	cr_assert_eq(s.calls, 0);
	cr_assert_eq(read_pinned(h, "/norange", WEAK, NULL, 0, &s, &status), 0,
		     "without If-Range (a weak tag only) a 200 is the server ignoring Range");
	cr_assert_eq(status, 200);
	cr_assert_eq(count_lines("inm=yes"), 0, "If-None-Match is never sent: %s", peer_log());
	http_free(h);
}

/* The size is part of the pin: a Content-Range total (or a 200's length) other than the
 * pinned size is another archive, whatever the tags say. */
Test(http, an_archive_of_another_size_is_another_archive)
{
	struct http *h = client(0, 2);
	struct sink s = {0};
	long status;
	cr_assert_eq(read_pinned(h, "/data", WEAK, NULL, 2000, &s, &status), -ESTALE);
	cr_assert_eq(s.calls, 0);
	cr_assert_eq(read_pinned(h, "/data", WEAK, NULL, 1000, &s, &status), 0);
	cr_assert_eq(status, 206);
	assert_data(&s, 100, 200);
	http_free(h);
}

/* A 206 whose body runs past the end its Content-Range names (a broken proxy): the bytes past it
 * are nothing the server said they were, and not one is delivered as the archive's. */
Test(http, a_206_body_longer_than_its_content_range_delivers_nothing_past_it)
{
	struct http *h = client(0, 2);
	struct sink s = {0};
	struct http_response r;
	int err = get_range(h, "/overlong", 100, 100, &s, &r);
	http_response_release(&r);
	cr_assert_leq(s.end, 200, "bytes delivered up to %llu", (unsigned long long)s.end);
	cr_assert_eq(err, -EIO, "a body that disagrees with its framing is an error");
	http_free(h);
}

/* base_scheme's API redirects to /api/v4/landing on the same host and port over other_scheme */
static void assert_scheme_change_drops_the_token(const char *base_scheme, const char *other_scheme)
{
	struct http *h = client_at(base_scheme);
	struct http_response r;
	cr_assert_eq(get(h, "/redirect/scheme", &r), 0, "%s", r.error);
	cr_assert_eq(r.status, 200, "status %ld: %s", r.status, peer_log());
	cr_assert_str_eq(r.body, "landed");
	http_response_release(&r);
	char want[96];
	snprintf(want, sizeof(want), "%s://127.0.0.1:%d GET /api/v4/redirect/scheme token=yes",
		 base_scheme, port1);
	cr_assert_eq(count_lines(want), 1, "the API got the token: %s", peer_log());
	snprintf(want, sizeof(want), "%s://127.0.0.1:%d GET /api/v4/landing token=no", other_scheme,
		 port1);
	cr_assert_eq(count_lines(want), 1, "the other scheme did not: %s", peer_log());
	cr_assert_eq(count_lines("token=yes"), 1);
	http_free(h);
}

Test(http_scheme, a_redirect_from_http_to_https_on_the_same_host_and_port_drops_the_token)
{
	assert_scheme_change_drops_the_token("http", "https");
}

Test(http_scheme, a_redirect_from_https_to_http_on_the_same_host_and_port_drops_the_token)
{
	assert_scheme_change_drops_the_token("https", "http");
}

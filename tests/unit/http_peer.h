/* The loopback peer (tests/unit/http_peer.py) for unit tests that speak HTTP: started in a
 * Criterion .init (so once per test, in the test's own process), stopped in .fini. Its request
 * log records, per request, the origin, method, raw path, whether a token came and the Range.
 * peer_start_tls also makes port1 speak https (cert_path is its self-signed certificate, the CA
 * to trust); port3 is the same host as port1 on another port. */
#ifndef ARTIFACTFS_TEST_HTTP_PEER_H
#define ARTIFACTFS_TEST_HTTP_PEER_H

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "glpat-SECRET-unit-test-token"

static pid_t peer_pid;
static int port1, port2, port3;
static char dir[64], ready_path[128], log_path[128], cert_path[128], key_path[128];
static bool peer_tls;
static char base[64];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Next to this file: found from $ARTIFACTFS_SIM (ctest sets it to tests/sim/gitlab_sim.py),
 * else from __FILE__ (relative to the build folder when CMake makes it so). */
static const char *peer_script(void)
{
	static char path[4096];
	const char *sim = getenv("ARTIFACTFS_SIM");
	const char *from = sim ? sim : __FILE__;
	const char *up = sim ? "/../unit" : "";
	const char *slash = strrchr(from, '/');
	snprintf(path, sizeof(path), "%.*s%s/http_peer.py", slash ? (int)(slash - from) : 1,
		 slash ? from : ".", up);
	return path;
}

static bool read_ports(void)
{
	FILE *f = fopen(ready_path, "r");
	if (!f)
		return false;
	bool ok = fscanf(f, "%d %d %d", &port1, &port2, &port3) == 3;
	fclose(f);
	return ok;
}

static void peer_start(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(dir, sizeof(dir), "/tmp/http-test-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(ready_path, sizeof(ready_path), "%s/ready", dir);
	snprintf(log_path, sizeof(log_path), "%s/log", dir);
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
	const char *py = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
	peer_pid = fork();
	cr_assert_geq(peer_pid, 0);
	if (peer_pid == 0) {
		if (peer_tls)
			execl(py, py, peer_script(), ready_path, log_path, "60", cert_path,
			      key_path, (char *)NULL);
		else
			execl(py, py, peer_script(), ready_path, log_path, "60", (char *)NULL);
		_exit(127);
	}
	double deadline = now_s() + 10.0;
	struct timespec tick = {0, 10 * 1000 * 1000};
	while (!read_ports()) {
		int st;
		cr_assert_eq(waitpid(peer_pid, &st, WNOHANG), 0,
			     "the peer died before it was ready");
		cr_assert_lt(now_s(), deadline, "the peer did not get ready in time");
		nanosleep(&tick, NULL);
	}
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", port1);
}

static void __attribute__((unused)) peer_start_tls(void)
{
	peer_tls = true;
	peer_start();
}

static void peer_stop(void)
{
	if (peer_pid > 0) {
		kill(peer_pid, SIGTERM);
		waitpid(peer_pid, NULL, 0);
	}
	unlink(ready_path);
	unlink(log_path);
	unlink(cert_path);
	unlink(key_path);
	rmdir(dir);
	curl_global_cleanup();
}

/* The peer's request log, NUL-terminated; static storage. */
static const char *peer_log(void)
{
	static char buf[65536];
	FILE *f = fopen(log_path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return buf;
}

static int count_lines(const char *needle)
{
	int n = 0;
	for (const char *p = peer_log(); (p = strstr(p, needle)); p++)
		n++;
	return n;
}

#endif

/*
 * Self-test of the mock UCaaS server (tests/mock-ucaas.py) and of the C
 * helpers that drive it (tests/mock.c): if these do not hold, no other
 * integration test means anything.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mock.h"

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, \
			        __LINE__, #cond);                              \
			exit(1);                                               \
		}                                                              \
	} while (0)

#define CHECK_INT(a, op, b)                                                      \
	do {                                                                     \
		long long a_ = (a), b_ = (b);                                    \
		if (!(a_ op b_)) {                                               \
			fprintf(stderr,                                          \
			        "%s:%d: CHECK(%s %s %s) failed: %lld %s %lld\n", \
			        __FILE__, __LINE__, #a, #op, #b, a_, #op, b_);   \
			exit(1);                                                 \
		}                                                                \
	} while (0)

#define APP_ID "app-1"
#define APP_KEY "key-1"
#define EMAIL "user@example.com"
#define PASSWORD "pw-1"
#define GOOD_BODY "{\"email\": \"" EMAIL "\", \"password\": \"" PASSWORD "\"}"
#define HUGE_SIZE (10L * 1024 * 1024)
/* The timeout of requests that are not about timeouts: a bound, not an
 * expectation (the mock answers in milliseconds; a loaded machine may
 * stall an answer for seconds, and that is not what these test). */
#define ANSWER_MS 60000L

struct answer {
	CURLcode rc;
	long status;
	char *body;
	size_t len;
	double secs;
	char location[256];
};

/* Stopped on any exit, CHECK failures included (a no-op in forked children). */
static struct mock server;
static char ca_dir[] = "/tmp/test-mock-ca.XXXXXX";
static bool have_ca;
static pid_t main_pid;

static void remove_ca(void);

static void cleanup(void)
{
	mock_stop(&server);
	if (getpid() == main_pid)
		remove_ca();
}

static void ok(const char *what)
{
	printf("ok - %s\n", what);
	fflush(stdout);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
	                      .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct answer *a = userdata;
	size_t n = size * nmemb;
	char *p = realloc(a->body, a->len + n + 1);
	if (!p)
		return 0;
	memcpy(p + a->len, ptr, n);
	a->len += n;
	p[a->len] = '\0';
	a->body = p;
	return n;
}

static void forget(struct answer *a)
{
	free(a->body);
	memset(a, 0, sizeof(*a));
}

/*
 * POST /login the way a client would. api_id / content_type NULL: header
 * left out. verify false: no CAINFO, so TLS must fail against the test CA.
 */
static void login(struct mock *m, const char *api_id, const char *content_type,
                  const char *body, long timeout_ms, bool verify,
                  struct answer *ret)
{
	char url[256], id[128], ctype[128];
	struct curl_slist *headers = NULL;

	memset(ret, 0, sizeof(*ret));
	snprintf(url, sizeof(url), "%s/login", m->base);
	CURL *curl = curl_easy_init();
	CHECK(curl);
	if (api_id) {
		snprintf(id, sizeof(id), "X-Api-Id: %s", api_id);
		headers = curl_slist_append(headers, id);
	}
	/* Without our own header, libcurl would send a form Content-Type. */
	snprintf(ctype, sizeof(ctype), "Content-Type: %s",
	         content_type ? content_type : "");
	headers = curl_slist_append(headers,
	                            content_type ? ctype : "Content-Type:");
	CHECK(headers);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, ret);
	if (m->ca[0] && verify)
		curl_easy_setopt(curl, CURLOPT_CAINFO, m->ca);

	double start = now();
	ret->rc = curl_easy_perform(curl);
	ret->secs = now() - start;
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &ret->status);
	char *location = NULL;
	curl_easy_getinfo(curl, CURLINFO_REDIRECT_URL, &location);
	if (location)
		snprintf(ret->location, sizeof(ret->location), "%s", location);
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
}

static long json_int(const char *body, const char *key)
{
	struct json_object *root = json_tokener_parse(body), *v;
	long ret = -1;
	if (root && json_object_object_get_ex(root, key, &v) &&
	    json_object_is_type(v, json_type_int))
		ret = (long)json_object_get_int64(v);
	json_object_put(root);
	return ret;
}

/* Logs in with the good credentials and returns the token (malloc'd). */
static char *fetch_token(struct mock *m, struct answer *ret)
{
	struct answer a;
	login(m, APP_ID, "application/json", GOOD_BODY, ANSWER_MS, true, &a);
	CHECK_INT(a.rc, ==, CURLE_OK);
	CHECK_INT(a.status, ==, 200);
	struct json_object *root = json_tokener_parse(a.body), *v;
	CHECK(root);
	CHECK(json_object_object_get_ex(root, "token", &v));
	CHECK(json_object_is_type(v, json_type_string));
	char *token = strdup(json_object_get_string(v));
	CHECK(token);
	json_object_put(root);
	if (ret)
		*ret = a;
	else
		forget(&a);

	CHECK_INT(strlen(token), ==, 120);
	CHECK_INT(
		strspn(token,
	               "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"),
		==, 120);
	return token;
}

static int customers_token(struct mock *m, const char *token)
{
	char line[256];
	snprintf(line, sizeof(line), "Authorization: Token %s", token);
	return mock_customers(m, line);
}

static void encode(const char *in, char *out)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(in), o = 0;
	const unsigned char *s = (const unsigned char *)in;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)s[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? alphabet[v & 63] : '=';
	}
	out[o] = '\0';
}

static void basic(const char *id, const char *key, char *line, size_t size)
{
	char pair[128], b64[200];
	snprintf(pair, sizeof(pair), "%s:%s", id, key);
	encode(pair, b64);
	snprintf(line, size, "Authorization: Basic %s", b64);
}

static void test_login(struct mock *m)
{
	struct answer a;

	char *token = fetch_token(m, NULL);
	char *current = mock_stat_str(m, "current_token");
	CHECK(current && strcmp(current, token) == 0);
	free(current);
	CHECK_INT(mock_stat(m, "logins"), ==, 1);
	CHECK_INT(mock_stat(m, "logins_ok"), ==, 1);
	CHECK_INT(mock_stat(m, "tokens_issued"), ==, 1);
	CHECK_INT(mock_stat(m, "token_ttl"), ==, 900);
	ok("login answers a 120-character token and the stats see it");

	login(m, "app-2", "application/json", GOOD_BODY, ANSWER_MS, true, &a);
	CHECK_INT(a.status, ==, 401);
	forget(&a);
	login(m, NULL, "application/json", GOOD_BODY, ANSWER_MS, true, &a);
	CHECK_INT(a.status, ==, 401);
	forget(&a);
	login(m, APP_ID, "text/plain", GOOD_BODY, ANSWER_MS, true, &a);
	CHECK_INT(a.status, ==, 400);
	forget(&a);
	login(m, APP_ID, NULL, GOOD_BODY, ANSWER_MS, true, &a);
	CHECK_INT(a.status, ==, 400);
	forget(&a);
	login(m, APP_ID, "application/json; charset=utf-8", GOOD_BODY,
	      ANSWER_MS, true, &a);
	CHECK_INT(a.status, ==, 200);
	forget(&a);
	login(m, APP_ID, "application/json", "not json", ANSWER_MS, true, &a);
	CHECK_INT(a.status, ==, 400);
	forget(&a);
	login(m, APP_ID, "application/json", "{\"email\": \"" EMAIL "\"}",
	      ANSWER_MS, true, &a);
	CHECK_INT(a.status, ==, 400);
	forget(&a);
	login(m, APP_ID, "application/json",
	      "{\"email\": \"" EMAIL "\", \"password\": 5}", ANSWER_MS, true,
	      &a);
	CHECK_INT(a.status, ==, 400);
	forget(&a);
	login(m, APP_ID, "application/json",
	      "{\"email\": \"" EMAIL "\", \"password\": \"no\"}", ANSWER_MS,
	      true, &a);
	CHECK_INT(a.status, ==, 401);
	CHECK_INT(json_int(a.body, "result"), ==, 1002);
	forget(&a);
	CHECK_INT(mock_stat(m, "logins"), ==, 10);
	CHECK_INT(mock_stat(m, "logins_ok"), ==, 2);
	CHECK_INT(mock_stat(m, "logins_failed"), ==, 8);
	CHECK_INT(mock_stat(m, "login_times"), ==, 10);
	ok("login refuses a bad X-Api-Id (401), Content-Type (400), body (400), password (401)");

	char line[256];
	basic(APP_ID, APP_KEY, line, sizeof(line));
	CHECK_INT(mock_customers(m, line), ==, 200);
	basic(APP_ID, "key-2", line, sizeof(line));
	CHECK_INT(mock_customers(m, line), ==, 401);
	CHECK_INT(customers_token(m, token), ==, 200);
	CHECK_INT(customers_token(m, "bogus"), ==, 401);
	CHECK_INT(customers_token(m, ""), ==, 401);
	CHECK_INT(mock_customers(m, NULL), ==, 401);
	snprintf(line, sizeof(line), "Authorization: token %s", token);
	CHECK_INT(mock_customers(m, line), ==, 401);
	CHECK_INT(mock_stat(m, "customers_ok"), ==, 2);
	CHECK_INT(mock_stat(m, "customers_401"), ==, 5);
	CHECK_INT(mock_stat(m, "customers_refused"), ==, 5);
	ok("customers: Basic and Token give 200, bogus ones 401");

	CHECK_INT(mock_config(m, "{\"token_ttl\": 3}"), ==, 0);
	CHECK_INT(mock_stat(m, "token_ttl"), ==, 3);
	double issued = now(); /* before the login: its 3 s start later */
	char *brief = fetch_token(m, NULL);
	CHECK_INT(customers_token(m, brief), ==, 200);
	/* Polled until refused (60 s at most), and refused only once its
	 * 3 s are over, however long each request takes. */
	int brief_status;
	while ((brief_status = customers_token(m, brief)) == 200 &&
	       now() - issued < 60)
		nap(100);
	CHECK_INT(brief_status, ==, 403);
	if (now() - issued < 3 - 0.01)
		fprintf(stderr, "refused %.3f s after the login began\n",
		        now() - issued);
	CHECK(now() - issued >= 3 - 0.01);
	CHECK_INT(customers_token(m, token), ==, 200);
	CHECK_INT(mock_stat(m, "customers_403"), ==, 1);
	CHECK_INT(mock_stat(m, "customers_refused"), ==, 6);
	ok("a token past its token_ttl gets 403, an older long-lived one still 200");

	CHECK_INT(mock_config(m, "{\"expire_all\": true, \"token_ttl\": 900}"),
	          ==, 0);
	CHECK_INT(customers_token(m, token), ==, 403);
	char *fresh = fetch_token(m, NULL);
	CHECK_INT(customers_token(m, fresh), ==, 200);
	char revoke[300];
	snprintf(revoke, sizeof(revoke), "{\"revoke\": \"%s\"}", fresh);
	CHECK_INT(mock_config(m, revoke), ==, 0);
	CHECK_INT(customers_token(m, fresh), ==, 401);
	ok("expire_all gives 403, revoke gives 401");

	CHECK_INT(mock_config(m, "{\"bogus\": 1}"), ==, -1);
	CHECK_INT(mock_config(m, "{\"token_ttl\": \"1\"}"), ==, -1);
	CHECK_INT(mock_config(m, "{\"login_fault\": \"explode\"}"), ==, -1);
	CHECK_INT(mock_config(m, "{\"login_status\": 99}"), ==, -1);
	CHECK_INT(mock_config(m, "[]"), ==, -1);
	CHECK_INT(mock_config(m, "not json"), ==, -1);
	/* A refused config changes nothing, not even its valid keys. */
	CHECK_INT(mock_config(m, "{\"token_ttl\": 5, \"bogus\": 1}"), ==, -1);
	CHECK_INT(mock_stat(m, "token_ttl"), ==, 900);
	ok("config refuses unknown keys and bad values, atomically");

	CHECK_INT(mock_config(m, "{\"password\": \"pw-2\", \"token_ttl\": 60}"),
	          ==, 0);
	login(m, APP_ID, "application/json", GOOD_BODY, ANSWER_MS, true, &a);
	CHECK_INT(a.status, ==, 401);
	forget(&a);
	login(m, APP_ID, "application/json",
	      "{\"email\": \"" EMAIL "\", \"password\": \"pw-2\"}", ANSWER_MS,
	      true, &a);
	CHECK_INT(a.status, ==, 200);
	forget(&a);
	CHECK_INT(mock_reset(m), ==, 0);
	CHECK_INT(mock_stat(m, "logins"), ==, 0);
	CHECK_INT(mock_stat(m, "customers_refused"), ==, 0);
	CHECK_INT(mock_stat(m, "login_times"), ==, 0);
	CHECK_INT(mock_stat(m, "token_ttl"), ==, 900);
	free(fetch_token(m, NULL));
	ok("config changes the password; reset restores it and zeroes the counters");

	free(token);
	free(brief);
	free(fresh);
}

static void fault(struct mock *m, const char *config)
{
	CHECK_INT(mock_config(m, config), ==, 0);
}

/*
 * With the hang fault set: a login in a child that would wait 600 s.
 * Once the mock has counted it (`logins` reaches `expect`), the mock still
 * answers other requests (mock_stat itself) while the child still waits;
 * then the child is killed. State, not time: a mock that served nothing
 * during a hang would not answer mock_stat (mock.c gives up after 60 s),
 * and the child would not be waiting any more once it did.
 */
static void hang_served(struct mock *m, long expect)
{
	struct answer a;
	int status;
	long n;

	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		login(m, APP_ID, "application/json", GOOD_BODY, 600000, true,
		      &a);
		fprintf(stderr,
		        "hang: the login ended (curl %d, HTTP %ld) after %.1f s\n",
		        (int)a.rc, a.status, a.secs);
		_exit(1);
	}
	double end = now() + 60;
	while ((n = mock_stat(m, "logins")) < expect && n >= 0 && now() < end)
		nap(10);
	CHECK_INT(n, ==, expect);
	CHECK_INT(waitpid(pid, &status, WNOHANG), ==, 0);
	kill(pid, SIGKILL);
	CHECK_INT(waitpid(pid, &status, 0), ==, pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void test_faults(struct mock *m)
{
	struct answer a;
	long attempts = 0;

	CHECK_INT(mock_reset(m), ==, 0);

	fault(m, "{\"login_fault\": \"drop\"}");
	login(m, APP_ID, "application/json", GOOD_BODY, ANSWER_MS, true, &a);
	attempts++;
	CHECK_INT(a.rc, ==, CURLE_GOT_NOTHING);
	forget(&a);
	ok("login_fault drop: empty reply");

	/*
	 * A hanging request in a child while the parent checks that the
	 * server still answers everything else; then one with a timeout of
	 * 2 s: nothing comes back before it, and curl gives up at it (20 s
	 * is a bound, not an expectation: the answer would take an hour).
	 */
	fault(m, "{\"login_fault\": \"hang\"}");
	attempts++;
	hang_served(m, attempts);
	login(m, APP_ID, "application/json", GOOD_BODY, 2000, true, &a);
	attempts++;
	CHECK_INT(a.rc, ==, CURLE_OPERATION_TIMEDOUT);
	if (!(a.secs > 1.9 && a.secs < 20))
		fprintf(stderr, "hang: timed out after %.3f s\n", a.secs);
	CHECK(a.secs > 1.9 && a.secs < 20);
	forget(&a);
	ok("login_fault hang: client times out after 2 s, other requests still served");

	/* One byte a second: 2 s bring nothing usable. */
	fault(m, "{\"login_fault\": \"slow\"}");
	login(m, APP_ID, "application/json", GOOD_BODY, 2000, true, &a);
	attempts++;
	CHECK_INT(a.rc, ==, CURLE_OPERATION_TIMEDOUT);
	if (!(a.secs > 1.9 && a.secs < 20))
		fprintf(stderr, "slow: timed out after %.3f s\n", a.secs);
	CHECK(a.secs > 1.9 && a.secs < 20);
	forget(&a);
	ok("login_fault slow: client times out after 2 s");

	fault(m, "{\"login_fault\": \"huge\"}");
	login(m, APP_ID, "application/json", GOOD_BODY, ANSWER_MS, true, &a);
	attempts++;
	CHECK_INT(a.rc, ==, CURLE_OK);
	CHECK_INT(a.status, ==, 200);
	CHECK_INT(a.len, ==, HUGE_SIZE);
	CHECK(strncmp(a.body, "{\"result\": 0, \"token\": \"AAAA", 28) == 0);
	forget(&a);
	ok("login_fault huge: 200 with a 10 MiB body");

	fault(m, "{\"login_fault\": \"redirect\"}");
	login(m, APP_ID, "application/json", GOOD_BODY, ANSWER_MS, true, &a);
	attempts++;
	CHECK_INT(a.rc, ==, CURLE_OK);
	CHECK_INT(a.status, ==, 302);
	size_t n = strlen(a.location), tail = strlen("/ucaas/v1/login2");
	CHECK(n > tail &&
	      strcmp(a.location + n - tail, "/ucaas/v1/login2") == 0);
	forget(&a);
	ok("login_fault redirect: 302 to /ucaas/v1/login2");

	fault(m, "{\"login_fault\": \"expires_in\", \"token_ttl\": 120.5}");
	char *token = fetch_token(m, &a);
	attempts++;
	CHECK_INT(json_int(a.body, "expires_in"), ==, 120);
	CHECK_INT(customers_token(m, token), ==, 200);
	free(token);
	forget(&a);
	ok("login_fault expires_in: token plus expires_in");

	fault(m, "{\"login_fault\": null, \"login_status\": 503}");
	login(m, APP_ID, "application/json", GOOD_BODY, ANSWER_MS, true, &a);
	attempts++;
	CHECK_INT(a.status, ==, 503);
	CHECK(json_int(a.body, "result") > 0);
	forget(&a);
	fault(m,
	      "{\"login_body\": \"{\\\"token\\\": 5}\", \"login_status\": 0}");
	login(m, APP_ID, "application/json", GOOD_BODY, ANSWER_MS, true, &a);
	attempts++;
	CHECK_INT(a.status, ==, 200);
	CHECK(strcmp(a.body, "{\"token\": 5}") == 0);
	forget(&a);
	fault(m, "{\"login_body\": \"not json\", \"login_status\": 500}");
	login(m, APP_ID, "application/json", GOOD_BODY, ANSWER_MS, true, &a);
	attempts++;
	CHECK_INT(a.status, ==, 500);
	CHECK(strcmp(a.body, "not json") == 0);
	forget(&a);
	ok("login_status and login_body replace the answer");

	fault(m,
	      "{\"login_body\": null, \"login_status\": null, \"login_delay\": 0.5}");
	login(m, APP_ID, "application/json", GOOD_BODY, ANSWER_MS, true, &a);
	attempts++;
	CHECK_INT(a.status, ==, 200);
	CHECK(a.secs >= 0.5);
	forget(&a);
	ok("login_delay delays the answer");

	CHECK_INT(mock_stat(m, "logins"), ==, attempts);
	CHECK_INT(mock_stat(m, "login_times"), ==, attempts);
	char *csv = mock_stat_str(m, "login_times_csv");
	CHECK(csv);
	long times = 0;
	for (char *p = csv, *end; *p; p = *end == ',' ? end + 1 : end) {
		CHECK(strtod(p, &end) > 1e9 && end != p);
		times++;
	}
	CHECK_INT(times, ==, attempts);
	free(csv);
	CHECK_INT(mock_stat(m, "logins_ok"), ==, 3);
	CHECK_INT(mock_stat(m, "logins_failed"), ==, attempts - 3);
	ok("every attempt is counted, faults included");

	/* A delay of 100 s left in force would make this login take that
	 * long; one that reset cleared takes milliseconds. */
	fault(m, "{\"login_fault\": \"drop\", \"login_delay\": 100}");
	CHECK_INT(mock_reset(m), ==, 0);
	free(fetch_token(m, &a));
	if (a.secs >= 50)
		fprintf(stderr, "reset: the login took %.1f s\n", a.secs);
	CHECK(a.secs < 50);
	forget(&a);
	CHECK_INT(mock_stat(m, "logins"), ==, 1);
	ok("reset clears the faults");
}

static const char *ca_script(char *buf, size_t size)
{
	const char *env = getenv("MAKE_TEST_CA");
	if (env && *env)
		return env;
	const char *mock = getenv("MOCK_UCAAS");
#ifdef MOCK_UCAAS_SCRIPT
	if (!mock || !*mock)
		mock = MOCK_UCAAS_SCRIPT;
#endif
	CHECK(mock && *mock);
	const char *slash = strrchr(mock, '/');
	int dir = slash ? (int)(slash - mock) : 1;
	snprintf(buf, size, "%.*s/make-test-ca.sh", dir, slash ? mock : ".");
	return buf;
}

static void make_ca(const char *dir)
{
	char buf[512];
	const char *path = ca_script(buf, sizeof(buf));
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		execlp("sh", "sh", path, dir, (char *)NULL);
		_exit(127);
	}
	int status;
	CHECK_INT(waitpid(pid, &status, 0), ==, pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void remove_ca(void)
{
	static const char *const files[] = {"ca.pem", "ca.key", "server.pem",
	                                    "server.key"};
	char path[512];
	if (!have_ca)
		return;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", ca_dir, files[i]);
		unlink(path);
	}
	rmdir(ca_dir);
	have_ca = false;
}

static void test_tls(void)
{
	struct answer a;
	CHECK(mkdtemp(ca_dir));
	have_ca = true;
	make_ca(ca_dir);

	CHECK_INT(mock_start(&server, APP_ID, APP_KEY, EMAIL, PASSWORD, 900,
	                     ca_dir),
	          ==, 0);
	CHECK(strncmp(server.base, "https://127.0.0.1:", 18) == 0);
	char *token = fetch_token(&server, NULL);
	CHECK_INT(customers_token(&server, token), ==, 200);
	char line[256];
	basic(APP_ID, APP_KEY, line, sizeof(line));
	CHECK_INT(mock_customers(&server, line), ==, 200);
	CHECK_INT(mock_stat(&server, "logins"), ==, 1);
	ok("TLS: login and customers over HTTPS with the test CA");

	login(&server, APP_ID, "application/json", GOOD_BODY, ANSWER_MS, false,
	      &a);
	CHECK_INT(a.rc, ==, CURLE_PEER_FAILED_VERIFICATION);
	forget(&a);
	ok("TLS: the server certificate fails without the test CA");

	/* The unverified attempt never got past the handshake. */
	CHECK_INT(mock_stat(&server, "logins"), ==, 1);
	CHECK_INT(mock_config(&server, "{\"login_fault\": \"hang\"}"), ==, 0);
	hang_served(&server, 2);
	login(&server, APP_ID, "application/json", GOOD_BODY, 1000, true, &a);
	CHECK_INT(a.rc, ==, CURLE_OPERATION_TIMEDOUT);
	forget(&a);
	ok("TLS: hang fault times out");

	free(token);
	mock_stop(&server);
	remove_ca();
}

int main(void)
{
	CHECK_INT(curl_global_init(CURL_GLOBAL_DEFAULT), ==, CURLE_OK);
	main_pid = getpid();
	atexit(cleanup);

	CHECK_INT(mock_start(&server, APP_ID, APP_KEY, EMAIL, PASSWORD, 900,
	                     NULL),
	          ==, 0);
	CHECK(strncmp(server.base, "http://127.0.0.1:", 17) == 0);
	CHECK(server.pid > 0 && server.port > 0);
	ok("mock starts and publishes its port");

	test_login(&server);
	test_faults(&server);

	pid_t pid = server.pid;
	mock_stop(&server);
	CHECK(kill(pid, 0) < 0 && errno == ESRCH);
	CHECK_INT(server.pid, ==, 0);
	mock_stop(&server);
	ok("mock_stop stops the server and is idempotent");

	test_tls();

	curl_global_cleanup();
	return 0;
}

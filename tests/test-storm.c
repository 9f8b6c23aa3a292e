/*
 * The host-wide token cache with real processes, real shared memory and the
 * mock server: one login per token lifetime, whatever happens.
 *
 * Usage: test-storm SCENARIO   (cold, churn, killed, outage, denied,
 *                               reject, fork)
 */
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "test.h"

static struct fixture fix;

static int header_of(struct ucaasauth *ua, char *buf, size_t size)
{
	size_t len;

	return ucaasauth_header(ua, buf, size, &len);
}

/* 64 processes on an empty cache, 10,000 calls each: one login. */
static int cold_worker(void *arg, int i)
{
	struct ucaasauth *ua;
	char buf[4096], first[4096];

	if (ucaasauth_open(&ua, "tok", 0) != 0)
		return 10;
	if (header_of(ua, first, sizeof(first)) != 0)
		return 11;
	for (int n = 1; n < 10000; n++)
		if (header_of(ua, buf, sizeof(buf)) != 0 ||
		    strcmp(buf, first) != 0)
			return 12;
	if (mock_customers(&fix.mock, first) != 200)
		return 13;
	ucaasauth_close(ua);
	return 0;
}

static void test_cold(void)
{
	fixture_start(&fix, 900, NULL);
	CHECK_INT(run_workers(64, cold_worker, NULL), 64);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 1);
	CHECK_INT(mock_stat(&fix.mock, "customers_ok"), 64);
	CHECK_INT(mock_stat(&fix.mock, "customers_refused"), 0);
	fixture_stop(&fix);
}

/* Tokens of 4 s, 16 processes for 20 s presenting their header: never a
 * refused call, never two logins for one lifetime. */
static int churn_worker(void *arg, int i)
{
	struct ucaasauth *ua;
	char buf[4096];
	int64_t end = ms_now() + 20000;

	if (ucaasauth_open(&ua, "tok", 0) != 0)
		return 10;
	while (ms_now() < end) {
		for (int n = 0; n < 1000; n++)
			if (header_of(ua, buf, sizeof(buf)) != 0)
				return 11;
		if (mock_customers(&fix.mock, buf) != 200)
			return 12;
		ms_sleep(50 + i * 7);
	}
	ucaasauth_close(ua);
	return 0;
}

static void test_churn(void)
{
	char *times;
	double prev = -1, t, min_gap = 1e9;
	long logins;

	fixture_start(&fix, 4,
	              "token_ttl = 4\nrefresh_ahead = 2\nexpiry_margin = 1\n");
	CHECK_INT(run_workers(16, churn_worker, NULL), 16);
	CHECK_INT(mock_stat(&fix.mock, "customers_refused"), 0);
	logins = mock_stat(&fix.mock, "logins");
	/* A refresh every 2 to 3 s over 20 s. */
	CHECK(logins >= 6 && logins <= 12);
	times = mock_stat_str(&fix.mock, "login_times_csv");
	CHECK(times != NULL);
	for (char *p = times; p && *p;) {
		t = strtod(p, &p);
		if (prev >= 0 && t - prev < min_gap)
			min_gap = t - prev;
		prev = t;
		if (*p == ',')
			p++;
	}
	/* Two logins for one generation would be milliseconds apart. */
	printf("churn: %ld logins, smallest gap %.2f s\n", logins, min_gap);
	CHECK(min_gap >= 1.0);
	free(times);
	fixture_stop(&fix);
}

/* The process logging in is killed mid-login: the others get a token
 * within wait_timeout, round after round. */
static int killed_waiter(void *arg, int i)
{
	struct ucaasauth *ua;
	char buf[4096];
	int64_t t0 = ms_now();
	int r;

	if (ucaasauth_open(&ua, "tok", 0) != 0)
		return 10;
	r = header_of(ua, buf, sizeof(buf));
	ucaasauth_close(ua);
	if (r != 0)
		return 11;
	return ms_now() - t0 < 20000 ? 0 : 12;
}

static void test_killed(void)
{
	fixture_start(&fix, 900, "wait_timeout = 20\n");
	for (int round = 0; round < 20; round++) {
		long before = mock_stat(&fix.mock, "logins");
		struct ucaasauth *ua;
		pid_t refresher;
		int status;
		char buf[4096];

		CHECK_INT(mock_config(&fix.mock, "{\"login_delay\": 3}"), 0);
		refresher = fork();
		CHECK(refresher >= 0);
		if (refresher == 0) {
			if (ucaasauth_open(&ua, "tok", 0) != 0)
				_exit(10);
			header_of(ua, buf, sizeof(buf));
			_exit(0);
		}
		/* Killed only once its login reached the server. */
		for (int w = 0; w < 500 &&
		                mock_stat(&fix.mock, "logins") == before;
		     w++)
			ms_sleep(10);
		CHECK(mock_stat(&fix.mock, "logins") > before);
		pid_t waiters = fork();
		CHECK(waiters >= 0);
		if (waiters == 0)
			_exit(run_workers(4, killed_waiter, NULL) == 4 ? 0 : 1);
		ms_sleep(200);
		CHECK_INT(mock_config(&fix.mock, "{\"login_delay\": 0}"), 0);
		kill(refresher, SIGKILL);
		waitpid(refresher, &status, 0);
		CHECK(WIFSIGNALED(status));
		waitpid(waiters, &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		/* Start the next round on an empty cache. */
		CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
		CHECK_INT(header_of(ua, buf, sizeof(buf)), 0);
		CHECK_INT(ucaasauth_reject(ua, buf), 0);
		ucaasauth_close(ua);
	}
	fixture_stop(&fix);
}

/* Server failing with a valid token cached: headers until expiry, then
 * UCAASAUTH_E_UNAVAILABLE at once; attempts follow the backoff; recovery. */
static int outage_worker(void *arg, int i)
{
	struct ucaasauth *ua;
	char buf[4096];
	int64_t end = ms_now() + 8000;
	int unavailable = 0, r;

	if (ucaasauth_open(&ua, "tok", 0) != 0)
		return 10;
	while (ms_now() < end) {
		int64_t t0 = ms_now();
		r = header_of(ua, buf, sizeof(buf));
		if (r == UCAASAUTH_E_UNAVAILABLE)
			unavailable++;
		else if (r != 0)
			return 11;
		/* Refusals come at once, not after a wait. */
		if (ms_now() - t0 > 3000)
			return 12;
		ms_sleep(5);
	}
	ucaasauth_close(ua);
	return unavailable > 0 ? 0 : 13;
}

static void test_outage(void)
{
	struct ucaasauth *ua;
	char buf[4096];
	int64_t t0;
	long logins;
	int r;

	fixture_start(&fix, 4,
	              "token_ttl = 4\nrefresh_ahead = 2\nexpiry_margin = 1\n");
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(header_of(ua, buf, sizeof(buf)), 0);
	CHECK_INT(mock_reset(&fix.mock), 0);
	CHECK_INT(mock_config(&fix.mock, "{\"login_status\": 503}"), 0);
	/* Still valid for about 4 s: served although refreshes fail. */
	t0 = ms_now();
	while (ms_now() - t0 < 2500) {
		CHECK_INT(header_of(ua, buf, sizeof(buf)), 0);
		ms_sleep(20);
	}
	CHECK_INT(mock_customers(&fix.mock, buf), 200);
	CHECK_INT(run_workers(8, outage_worker, NULL), 8);
	r = header_of(ua, buf, sizeof(buf));
	CHECK_INT(r, UCAASAUTH_E_UNAVAILABLE);
	CHECK_ERROR_HAS("503");
	/* Over about 10.5 s of failures, backoff 1, 2, 4 s (+25 %): at most
	 * 5 attempts from 9 processes hammering. */
	logins = mock_stat(&fix.mock, "logins");
	printf("outage: %ld login attempts in 10.5 s\n", logins);
	CHECK(logins >= 2 && logins <= 5);
	/* Back: within the current backoff step (at most 10 s). */
	CHECK_INT(mock_config(&fix.mock, "{\"login_status\": 0}"), 0);
	t0 = ms_now();
	do {
		ms_sleep(100);
		r = header_of(ua, buf, sizeof(buf));
	} while (r != 0 && ms_now() - t0 < 12000);
	CHECK_INT(r, 0);
	CHECK_INT(mock_customers(&fix.mock, buf), 200);
	ucaasauth_close(ua);

	/* Nobody listening at all: unavailable, promptly. */
	fixture_stop(&fix);
	fixture_start(&fix, 0, NULL);
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	t0 = ms_now();
	CHECK_INT(header_of(ua, buf, sizeof(buf)), UCAASAUTH_E_UNAVAILABLE);
	CHECK_ERROR_HAS("127.0.0.1:9");
	CHECK(ms_now() - t0 < 6000);
	ucaasauth_close(ua);
	fixture_stop(&fix);
}

/* A bad password with 32 processes: all denied, a trickle of attempts. */
static int denied_worker(void *arg, int i)
{
	struct ucaasauth *ua;
	char buf[4096];
	int64_t end = ms_now() + 3500;

	if (ucaasauth_open(&ua, "tok", 0) != 0)
		return 10;
	while (ms_now() < end) {
		if (header_of(ua, buf, sizeof(buf)) != UCAASAUTH_E_DENIED)
			return 11;
		ms_sleep(10);
	}
	ucaasauth_close(ua);
	return 0;
}

static void test_denied(void)
{
	struct ucaasauth *ua;
	char buf[4096];
	long logins;

	fixture_start(&fix, 900, NULL);
	fixture_store_password(&fix, "not-the-password");
	CHECK_INT(run_workers(32, denied_worker, NULL), 32);
	/* Attempts at 0, 1-1.25 and 3-3.75 s at the most. */
	logins = mock_stat(&fix.mock, "logins");
	printf("denied: %ld login attempts in 3.5 s from 32 processes\n",
	       logins);
	CHECK(logins >= 1 && logins <= 3);
	CHECK_INT(mock_stat(&fix.mock, "logins_ok"), 0);
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(header_of(ua, buf, sizeof(buf)), UCAASAUTH_E_DENIED);
	CHECK_ERROR_HAS("401");
	CHECK_ERROR_HAS("Invalid credentials");
	ucaasauth_close(ua);
	fixture_stop(&fix);
}

/* 32 processes reject the same header at once: one new login. */
struct reject_arg {
	char header[4096];
};

static int reject_worker(void *arg, int i)
{
	struct reject_arg *ra = arg;
	struct ucaasauth *ua;
	char buf[4096];

	if (ucaasauth_open(&ua, "tok", 0) != 0)
		return 10;
	if (ucaasauth_reject(ua, ra->header) != 0)
		return 11;
	if (header_of(ua, buf, sizeof(buf)) != 0)
		return 12;
	if (strcmp(buf, ra->header) == 0)
		return 13;
	if (mock_customers(&fix.mock, buf) != 200)
		return 14;
	ucaasauth_close(ua);
	return 0;
}

static void test_reject(void)
{
	struct reject_arg ra;
	struct ucaasauth *ua;
	char *token;

	fixture_start(&fix, 900, NULL);
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(header_of(ua, ra.header, sizeof(ra.header)), 0);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 1);
	/* The server forgets the token, as after a server-side revocation. */
	token = mock_stat_str(&fix.mock, "current_token");
	CHECK(token != NULL);
	char cfg[4200];
	snprintf(cfg, sizeof(cfg), "{\"revoke\": \"%s\"}", token);
	free(token);
	CHECK_INT(mock_config(&fix.mock, cfg), 0);
	CHECK_INT(mock_customers(&fix.mock, ra.header), 401);
	CHECK_INT(run_workers(32, reject_worker, &ra), 32);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 2);
	/* A late reject of the old header changes nothing. */
	CHECK_INT(ucaasauth_reject(ua, ra.header), 0);
	CHECK_INT(header_of(ua, ra.header, sizeof(ra.header)), 0);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 2);
	ucaasauth_close(ua);
	fixture_stop(&fix);
}

/* A prefork server: open once, fork, every child gets headers; a child
 * logs in on a connection of its own after the parent used one. */
static void test_fork(void)
{
	struct ucaasauth *ua;
	char buf[4096];
	int status;

	fixture_start(&fix, 900, NULL);
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(header_of(ua, buf, sizeof(buf)), 0);
	for (int i = 0; i < 4; i++) {
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			char mine[4096];
			if (ucaasauth_reject(ua, buf) != 0)
				_exit(10);
			if (header_of(ua, mine, sizeof(mine)) != 0)
				_exit(11);
			_exit(mock_customers(&fix.mock, mine) == 200 ? 0 : 12);
		}
		waitpid(pid, &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		CHECK_INT(header_of(ua, buf, sizeof(buf)), 0);
	}
	CHECK_INT(mock_stat(&fix.mock, "logins"), 5);
	CHECK_INT(mock_customers(&fix.mock, buf), 200);
	ucaasauth_close(ua);
	fixture_stop(&fix);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*run)(void);
	} scenarios[] = {
		{"cold", test_cold},     {"churn", test_churn},
		{"killed", test_killed}, {"outage", test_outage},
		{"denied", test_denied}, {"reject", test_reject},
		{"fork", test_fork},
	};

	for (size_t i = 0; i < sizeof(scenarios) / sizeof(*scenarios); i++)
		if (argc < 2 || strcmp(argv[1], scenarios[i].name) == 0)
			scenarios[i].run();
	TEST_DONE();
}

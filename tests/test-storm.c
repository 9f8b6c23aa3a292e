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

#include "cache.h"
#include "fixture.h"
#include "internal.h"
#include "test.h"

static struct fixture fix;

/*
 * Failed login attempts follow the backoff, whatever the machine's speed:
 * after the k-th failure in a row the next attempt waits at least 3/4 of
 * min(2^(k-1) s, 300 s) (cache.c, backoff_step), counted from when the
 * failure was recorded, which is after the server saw the attempt. So
 * the gaps between the server's arrival times are at least that, less
 * 50 ms for the two clocks (the mock's wall clock, the library's coarse
 * monotonic one). `first` is the number of failures in a row before the
 * first attempt listed. Returns the number of attempts.
 */
static int check_backoff(const char *what, int first)
{
	double t[1000];
	int n = mock_login_times(&fix.mock, t, 1000);

	CHECK_MSG(n >= 0, "no login_times_csv from the mock");

	for (int i = 1; i < n; i++) {
		unsigned k = (unsigned)(first + i);
		double step = BACKOFF_FIRST_MS / 1000.0;

		for (unsigned j = 1; j < k && step < BACKOFF_MAX_MS / 1000.0;
		     j++)
			step *= 2;
		if (step > BACKOFF_MAX_MS / 1000.0)
			step = BACKOFF_MAX_MS / 1000.0;
		printf("%s: attempt %d %.3f s after attempt %d (backoff step "
		       "%.2f s less a quarter at most)\n",
		       what, i + 1, t[i] - t[i - 1], i, step);
		CHECK_MSG(t[i] - t[i - 1] >= step * 0.75 - 0.05,
		          "%s: attempt %d came %.3f s after attempt %d, "
		          "inside the backoff step of %.2f s (at least "
		          "%.3f s)",
		          what, i + 1, t[i] - t[i - 1], i, step,
		          step * 0.75 - 0.05);
	}
	return n;
}

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
	if (header_of(ua, first, sizeof(first)) != 0) {
		fprintf(stderr, "cold worker %d: no header: %s\n", i,
		        ucaasauth_last_error());
		return 11;
	}
	for (int n = 1; n < 10000; n++)
		if (header_of(ua, buf, sizeof(buf)) != 0 ||
		    strcmp(buf, first) != 0) {
			fprintf(stderr, "cold worker %d: call %d: %s\n", i, n,
			        ucaasauth_last_error());
			return 12;
		}
	if (mock_customers(&fix.mock, first) != 200) {
		fprintf(stderr, "cold worker %d: the mock refused the header\n",
		        i);
		return 13;
	}
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
			if (header_of(ua, buf, sizeof(buf)) != 0) {
				fprintf(stderr, "churn worker %d: %s\n", i,
				        ucaasauth_last_error());
				return 11;
			}
		if (mock_customers(&fix.mock, buf) != 200) {
			fprintf(stderr,
			        "churn worker %d: the mock refused "
			        "the header\n",
			        i);
			return 12;
		}
		ms_sleep(50 + i * 7);
	}
	ucaasauth_close(ua);
	return 0;
}

static void test_churn(void)
{
	double t[1000], min_gap = 1e9;
	int64_t t0, took;
	long logins, most;
	int n;

	fixture_start(&fix, 4,
	              "token_ttl = 4\nrefresh_ahead = 2\nexpiry_margin = 1\n");
	t0 = ms_now();
	CHECK_INT(run_workers(16, churn_worker, NULL), 16);
	took = ms_now() - t0;
	CHECK_INT(mock_stat(&fix.mock, "customers_refused"), 0);
	logins = mock_stat(&fix.mock, "logins");
	/* A refresh every 2 to 3 s: at least one per 3 s over the 20 s
	 * every worker ran; at most one per 2 s, and one to spare, over
	 * the time the workers really ran (20 s, more on a loaded machine,
	 * where they start late and their last round overruns). */
	most = took / 2000 + 2;
	printf("churn: %ld logins in %lld ms (6 to %ld)\n", logins,
	       (long long)took, most);
	CHECK_MSG(logins >= 6 && logins <= most,
	          "%ld logins in %lld ms, expected 6 to %ld", logins,
	          (long long)took, most);
	n = mock_login_times(&fix.mock, t, 1000);
	CHECK_INT(n, logins);
	for (int i = 1; i < n; i++)
		if (t[i] - t[i - 1] < min_gap)
			min_gap = t[i] - t[i - 1];
	/* Two logins for one generation would be milliseconds apart. */
	printf("churn: smallest gap %.2f s\n", min_gap);
	CHECK_MSG(min_gap >= 1.0, "two logins %.3f s apart", min_gap);
	fixture_stop(&fix);
}

/* The process logging in is killed mid-login: the others get a token
 * within wait_timeout, round after round. The dead refresher's lease
 * (timeout + 1 s = 601 s) outlasts wait_timeout (60 s) by far, so a
 * header is proof that its death was seen: had the waiters waited for
 * the lease to lapse, the header would have failed (E_TIMEOUT) at
 * wait_timeout, on however fast a machine. */
static int killed_waiter(void *arg, int i)
{
	struct ucaasauth *ua;
	char buf[4096];
	int r;

	if (ucaasauth_open(&ua, "tok", 0) != 0)
		return 10;
	r = header_of(ua, buf, sizeof(buf));
	if (r != 0)
		fprintf(stderr, "killed waiter %d: status %d: %s\n", i, r,
		        ucaasauth_last_error());
	ucaasauth_close(ua);
	return r != 0 ? 11 : 0;
}

static void test_killed(void)
{
	fixture_start(&fix, 900,
	              "wait_timeout = 60\ntimeout = 600\nreject_min_age = 0\n");
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
		for (int64_t end = ms_now() + 60000;
		     mock_stat(&fix.mock, "logins") == before &&
		     ms_now() < end;)
			ms_sleep(10);
		CHECK_MSG(mock_stat(&fix.mock, "logins") > before,
		          "round %d: the refresher's login did not reach the "
		          "mock within 60 s",
		          round);
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
		CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		          "round %d: a waiter got no header (see above)",
		          round);
		/* Start the next round on an empty cache. */
		CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
		CHECK_INT(header_of(ua, buf, sizeof(buf)), 0);
		CHECK_INT(ucaasauth_reject(ua, buf), 0);
		ucaasauth_close(ua);
	}
	fixture_stop(&fix);
}

/* Server failing with a valid token cached: headers until expiry, then
 * UCAASAUTH_E_UNAVAILABLE at once; attempts follow the backoff; recovery.
 * wait_timeout is 60 s: a refusal that waited for anything takes that
 * long, one that comes at once takes milliseconds, so a call of 30 s
 * is a wait on the fastest and the slowest machine alike. */
#define OUTAGE_WAIT_MS 60000

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
		if (r == UCAASAUTH_E_UNAVAILABLE) {
			unavailable++;
		} else if (r != 0) {
			fprintf(stderr, "outage worker %d: status %d: %s\n", i,
			        r, ucaasauth_last_error());
			return 11;
		}
		/* Refusals come at once, not after a wait. */
		if (ms_now() - t0 > OUTAGE_WAIT_MS / 2) {
			fprintf(stderr,
			        "outage worker %d: a call took %lld ms "
			        "(wait_timeout %d s): it waited\n",
			        i, (long long)(ms_now() - t0),
			        OUTAGE_WAIT_MS / 1000);
			return 12;
		}
		ms_sleep(5);
	}
	ucaasauth_close(ua);
	if (!unavailable)
		fprintf(stderr,
		        "outage worker %d: never refused in 8 s, "
		        "though the token lives 4 s\n",
		        i);
	return unavailable > 0 ? 0 : 13;
}

static void test_outage(void)
{
	struct ucaasauth *ua;
	struct refresh_state st;
	char buf[4096], first[4096];
	int64_t t0, end;
	long logins;
	int r, n;

	fixture_start(&fix, 4,
	              "token_ttl = 4\nrefresh_ahead = 2\nexpiry_margin = 1\n"
	              "wait_timeout = 60\n");
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	/* Before the login: the token lives 4 s from a moment after t0. */
	t0 = ms_now();
	CHECK_INT(header_of(ua, first, sizeof(first)), 0);
	CHECK_INT(mock_reset(&fix.mock), 0);
	CHECK_INT(mock_config(&fix.mock, "{\"login_status\": 503}"), 0);
	/* Still valid until 4 s after t0 at least: served although the
	 * refreshes fail (from 2 s on), the same token. */
	while (ms_now() - t0 < 2500) {
		CHECK_INT(header_of(ua, buf, sizeof(buf)), 0);
		CHECK_STR(buf, first);
		ms_sleep(20);
	}
	CHECK_INT(mock_customers(&fix.mock, buf), 200);
	CHECK_INT(run_workers(8, outage_worker, NULL), 8);
	r = header_of(ua, buf, sizeof(buf));
	CHECK_INT(r, UCAASAUTH_E_UNAVAILABLE);
	CHECK_ERROR_HAS("503");
	/* Attempts follow the backoff, 1, 2, 4 s (less up to a quarter),
	 * from 9 processes hammering: judged on the gaps between the
	 * attempts the mock saw, not on how many fit in the time the
	 * workers happened to run. Two at least: the first refresh, and
	 * one a backoff step (1 s) later, well within the workers' 8 s. */
	logins = mock_stat(&fix.mock, "logins");
	printf("outage: %ld login attempts\n", logins);
	n = check_backoff("outage", 0);
	CHECK_INT(n, logins);
	CHECK_MSG(logins >= 2, "%ld login attempts in 10.5 s of failures",
	          logins);
	CHECK_INT(mock_stat(&fix.mock, "logins_ok"), 0);
	/* Back: once the current backoff step is over, the next call logs
	 * in. Polled until then, and 60 s more. */
	CHECK_INT(mock_config(&fix.mock, "{\"login_status\": 0}"), 0);
	cache_refresh_state(atomic_load(&ua->view), now_ms(), &st);
	CHECK_MSG(st.failures >= 2, "%u failures recorded", st.failures);
	end = (st.next_attempt_ms > now_ms() ? st.next_attempt_ms : now_ms()) +
	      60000;
	do {
		ms_sleep(100);
		r = header_of(ua, buf, sizeof(buf));
	} while (r != 0 && now_ms() < end);
	CHECK_MSG(r == 0, "status %d 60 s after the backoff step ended", r);
	CHECK_INT(mock_customers(&fix.mock, buf), 200);
	/* One login for the recovery: the callers in the backoff waited. */
	CHECK_INT(mock_stat(&fix.mock, "logins_ok"), 1);
	ucaasauth_close(ua);

	/* Nobody listening at all: unavailable, promptly. With every
	 * timeout at 100 s, promptly means not waiting for one of them:
	 * a refused connection takes milliseconds, 30 s is a wait. */
	fixture_stop(&fix);
	fixture_start(&fix, 0,
	              "connect_timeout = 100\ntimeout = 100\n"
	              "wait_timeout = 100\n");
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	t0 = ms_now();
	CHECK_INT(header_of(ua, buf, sizeof(buf)), UCAASAUTH_E_UNAVAILABLE);
	CHECK_ERROR_HAS("127.0.0.1:9");
	CHECK_MSG(ms_now() - t0 < 30000,
	          "a refused connection took %lld ms (timeouts of 100 s)",
	          (long long)(ms_now() - t0));
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
		int r = header_of(ua, buf, sizeof(buf));
		if (r != UCAASAUTH_E_DENIED) {
			fprintf(stderr, "denied worker %d: status %d: %s\n", i,
			        r, ucaasauth_last_error());
			return 11;
		}
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
	fixture_store("tok", NULL, FIX_EMAIL, "not-the-password");
	CHECK_INT(run_workers(32, denied_worker, NULL), 32);
	/* A trickle: attempts at 0, then a backoff step (1, 2 s, less up
	 * to a quarter) after each failure, whatever the 32 processes do;
	 * judged on the gaps the mock saw, so that a machine on which the
	 * workers start late and run long is judged as strictly. */
	logins = mock_stat(&fix.mock, "logins");
	printf("denied: %ld login attempts in 3.5 s from 32 processes\n",
	       logins);
	CHECK_INT(check_backoff("denied", 0), logins);
	CHECK_MSG(logins >= 1, "no login attempt");
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

	fixture_start(&fix, 900, "reject_min_age = 0\n");
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

	fixture_start(&fix, 900, "reject_min_age = 0\n");
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

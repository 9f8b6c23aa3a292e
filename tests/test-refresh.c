/*
 * The refresh protocol at its edges (issue 11), each scenario with real
 * processes, real signals and the mock server:
 *   short    a slow server granting 1 s: every call bounded, one login per
 *            backoff step, never an expired header as OK
 *   stopped  a refresher SIGSTOPped mid-login: the host waits at most its
 *            lease, then one waiter logs in; the late refresher publishes
 *            nothing; no header returned OK is one the server refuses
 *   young    header → reject loops in 8 processes: logins at least one
 *            backoff step apart; a reject of an old token: one login
 *   clock    a process whose CLOCK_MONOTONIC is a day ahead (a time
 *            namespace) never makes the host trust a token longer than
 *            its life, and the two do not log in in turn
 *   process-fork  cache = process, fork while a thread logs in: the
 *            child's copy works
 *
 * Usage: test-refresh SCENARIO
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache.h"
#include "fixture.h"
#include "test.h"

static struct fixture fix;

static int header_of(struct ucaasauth *ua, char *buf, size_t size)
{
	size_t len;

	return ucaasauth_header(ua, buf, size, &len);
}

/* Polls (bounded) until the mock has counted `want` logins. */
static void wait_logins(long want)
{
	for (int i = 0; i < 3000 && mock_stat(&fix.mock, "logins") < want; i++)
		ms_sleep(10);
	CHECK(mock_stat(&fix.mock, "logins") >= want);
}

/*
 * A server that takes 1.1 s and grants 1 s: the token arrives expired.
 * Before, header() logged in again and again, unbounded. Now each call
 * ends within wait_timeout + timeout, and the host logs in at most once
 * per backoff step, which the server's own login times show.
 */
static void test_short(void)
{
	struct ucaasauth *ua;
	char buf[4096];
	long logins;
	double gap;

	fixture_start(&fix, 1,
	              "token_ttl = 1\nrefresh_ahead = 0\nexpiry_margin = 0\n"
	              "wait_timeout = 2\ntimeout = 3\n");
	CHECK_INT(mock_config(&fix.mock, "{\"login_delay\": 1.1, "
	                                 "\"login_fault\": \"expires_in\"}"),
	          0);
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	for (int i = 0; i < 40 && mock_stat(&fix.mock, "logins") < 3; i++) {
		int64_t t0 = ms_now();
		int r = header_of(ua, buf, sizeof(buf));

		/* The one bound under test: wait_timeout + one timeout, with
		 * room for a loaded machine; unbounded before. */
		CHECK(ms_now() - t0 < (2 + 3 + 10) * 1000);
		/* Never expired as OK: arrived with no life, it is an error. */
		CHECK(r != 0);
		CHECK(r == UCAASAUTH_E_UNAVAILABLE);
		CHECK_INT(buf[0], 0);
		/* Calls inside the backoff step end at once: go on at its
		 * end, as the segment says. */
		if (i % 4 == 3) {
			struct refresh_state st;
			cache_refresh_state(ua->seg, now_ms(), &st);
			if (st.next_attempt_ms > now_ms())
				ms_sleep(st.next_attempt_ms - now_ms() + 10);
		}
	}
	gap = mock_login_gap(&fix.mock, &logins);
	printf("short: %ld logins, smallest gap %.2f s\n", logins, gap);
	CHECK(logins >= 2);
	/* Backoff steps: 1 s less up to a quarter, then doubling; plus the
	 * 1.1 s the server takes to answer. */
	CHECK(gap >= 0.75);
	ucaasauth_close(ua);
	fixture_stop(&fix);
}

/* Returns 0 if the header it got, if any, is one the server takes. */
static int checked_header(void *arg, int i)
{
	struct ucaasauth *ua;
	char buf[4096];
	int r;

	if (ucaasauth_open(&ua, "tok", 0) != 0)
		return 10;
	r = header_of(ua, buf, sizeof(buf));
	ucaasauth_close(ua);
	if (r != 0)
		return 20 - r;
	return mock_customers(&fix.mock, buf) == 200 ? 0 : 11;
}

/*
 * The cache lock is never held across a login: a refresher stopped in
 * the middle of one holds the lease only, and only until its deadline.
 */
static void test_stopped(void)
{
	pid_t refresher;
	int status;
	char *token, *after;

	/* timeout 8: a lease of 9 s; waiters wait up to 60 s. The login
	 * takes 30 s, so the SIGSTOP lands inside it on any machine (the
	 * refresher's libcurl gives up at 8 s, once resumed). */
	fixture_start(&fix, 900, "timeout = 8\nwait_timeout = 60\n");
	CHECK_INT(mock_config(&fix.mock, "{\"login_delay\": 30}"), 0);
	refresher = fork();
	CHECK(refresher >= 0);
	if (refresher == 0)
		_exit(checked_header(NULL, 0));
	wait_logins(1);
	CHECK_INT(kill(refresher, SIGSTOP), 0);
	CHECK_INT(mock_config(&fix.mock, "{\"login_delay\": 0}"), 0);
	/* Before: every one of them failed with E_TIMEOUT for as long as
	 * the refresher stayed stopped. */
	CHECK_INT(run_workers(8, checked_header, NULL), 8);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 2);
	token = mock_stat_str(&fix.mock, "current_token");
	/* Resumed, the late refresher's answer replaces nothing. */
	CHECK_INT(kill(refresher, SIGCONT), 0);
	CHECK_INT(waitpid(refresher, &status, 0), refresher);
	CHECK(WIFEXITED(status));
	CHECK_INT(WEXITSTATUS(status), 0);
	CHECK_INT(checked_header(NULL, 0), 0);
	after = mock_stat_str(&fix.mock, "current_token");
	CHECK(token && after);
	/* The mock's current token is the last it issued, the stopped
	 * refresher's; the host kept the one published first. */
	CHECK_INT(mock_stat(&fix.mock, "logins"), 2);
	free(token);
	free(after);
	fixture_stop(&fix);
}

/*
 * The header a waiter returns is valid when returned: with a refresher
 * stopped past the token's expiry, the waiter's answer is a status, or a
 * header the server takes, never the old one.
 */
static void test_expiring(void)
{
	struct ucaasauth *ua;
	struct snapshot snap;
	char buf[4096];
	pid_t refresher;
	int status, r;

	/* A token of 4 s, mandatory in its last 3; a lease of 11 s is
	 * longer than the waiter waits (5 s). */
	fixture_start(&fix, 4,
	              "token_ttl = 4\nrefresh_ahead = 3\nexpiry_margin = 3\n"
	              "timeout = 10\nwait_timeout = 5\n");
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(header_of(ua, buf, sizeof(buf)), 0);
	/* Into the mandatory window, by the segment's own deadlines. */
	for (int i = 0; i < 500; i++) {
		CHECK(segment_read(ua->seg, NULL, 0, &snap));
		if (now_ms() >= snap.renew_ms)
			break;
		ms_sleep(10);
	}
	CHECK_INT(mock_config(&fix.mock, "{\"login_delay\": 30}"), 0);
	refresher = fork();
	CHECK(refresher >= 0);
	if (refresher == 0)
		_exit(checked_header(NULL, 0) == 0 ? 0 : 1);
	wait_logins(2);
	CHECK_INT(kill(refresher, SIGSTOP), 0);
	r = header_of(ua, buf, sizeof(buf));
	/* Before: the old header, OK, a second after its expiry. */
	if (r == 0)
		CHECK_INT(mock_customers(&fix.mock, buf), 200);
	else
		CHECK_INT(buf[0], 0);
	printf("expiring: waiter got %s\n",
	       r == 0 ? "a valid header" : ucaasauth_strerror(r));
	kill(refresher, SIGKILL);
	waitpid(refresher, &status, 0);
	ucaasauth_close(ua);
	fixture_stop(&fix);
}

/* Loops header → reject until the host has logged in 4 times, or a
 * bound. */
static int young_worker(void *arg, int i)
{
	struct ucaasauth *ua;
	char buf[4096];

	if (ucaasauth_open(&ua, "tok", 0) != 0)
		return 10;
	for (int n = 0; n < 20000 && mock_stat(&fix.mock, "logins") < 4; n++) {
		int r = header_of(ua, buf, sizeof(buf));
		if (r != 0)
			return 20 - r;
		if (ucaasauth_reject(ua, buf) != 0)
			return 11;
	}
	ucaasauth_close(ua);
	return 0;
}

static int old_rejecter(void *arg, int i)
{
	struct ucaasauth *ua;
	char buf[4096];

	if (ucaasauth_open(&ua, "tok", 0) != 0)
		return 10;
	if (ucaasauth_reject(ua, arg) != 0)
		return 11;
	if (header_of(ua, buf, sizeof(buf)) != 0)
		return 12;
	ucaasauth_close(ua);
	return strcmp(buf, arg) != 0 && mock_customers(&fix.mock, buf) == 200
	               ? 0
	               : 13;
}

static void test_young(void)
{
	struct ucaasauth *ua;
	struct snapshot snap;
	char buf[4096];
	long logins;
	double gap;

	/* Before: a loop of header → reject made 10 logins in 23 ms. */
	fixture_start(&fix, 900, NULL);
	CHECK_INT(run_workers(8, young_worker, NULL), 8);
	gap = mock_login_gap(&fix.mock, &logins);
	printf("young: %ld logins, smallest gap %.2f s\n", logins, gap);
	CHECK(logins >= 2);
	CHECK(gap >= 0.75);
	fixture_stop(&fix);

	/* A token older than reject_min_age: 16 rejects, one new login. */
	fixture_start(&fix, 900, "reject_min_age = 1\n");
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(header_of(ua, buf, sizeof(buf)), 0);
	for (int i = 0; i < 1000; i++) {
		CHECK(segment_read(ua->seg, NULL, 0, &snap));
		if (now_ms() - snap.issued_ms >= 1000)
			break;
		ms_sleep(10);
	}
	CHECK_INT(run_workers(16, old_rejecter, buf), 16);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 2);
	ucaasauth_close(ua);
	fixture_stop(&fix);
}

static void *refresh_thread(void *arg)
{
	char buf[4096];

	return (void *)(intptr_t)header_of(arg, buf, sizeof(buf));
}

/*
 * cache = process: fork while another thread is logging in. The child's
 * copy of the segment has that thread's lease (and, before, its lock):
 * the child must still get a header of its own.
 */
static void test_process_fork(void)
{
	struct ucaasauth *ua;
	pthread_t t;
	void *ret;
	int status;
	pid_t pid;

	fixture_start(&fix, 900, "cache = process\nwait_timeout = 5\n");
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(mock_config(&fix.mock, "{\"login_delay\": 2}"), 0);
	CHECK_INT(pthread_create(&t, NULL, refresh_thread, ua), 0);
	wait_logins(1);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char buf[4096];
		int r = header_of(ua, buf, sizeof(buf));

		if (r != 0) {
			fprintf(stderr, "child: %s\n", ucaasauth_last_error());
			_exit(20 - r);
		}
		_exit(mock_customers(&fix.mock, buf) == 200 ? 0 : 11);
	}
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	/* Before: E_TIMEOUT (exit 28) on every try in the child. */
	CHECK_INT(WEXITSTATUS(status), 0);
	CHECK_INT(pthread_join(t, &ret), 0);
	CHECK(ret == NULL);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 2);
	ucaasauth_close(ua);
	fixture_stop(&fix);
}

/* In a time namespace whose CLOCK_MONOTONIC runs a day ahead. */
static int ahead_child(void)
{
	struct ucaasauth *ua;
	char buf[4096];

	if (ucaasauth_open(&ua, "tok", 0) != 0)
		return 10;
	if (header_of(ua, buf, sizeof(buf)) != 0)
		return 11;
	ucaasauth_close(ua);
	return mock_customers(&fix.mock, buf) == 200 ? 0 : 12;
}

static void test_clock(void)
{
	struct ucaasauth *ua;
	struct snapshot snap;
	char buf[4096];
	int status, fd;
	pid_t pid;

	fixture_start(&fix, 8,
	              "token_ttl = 8\nrefresh_ahead = 4\nexpiry_margin = 2\n");
	CHECK_INT(mock_config(&fix.mock, "{\"login_fault\": \"expires_in\"}"),
	          0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		pid_t child;

		if (unshare(CLONE_NEWTIME) < 0)
			_exit(77);
		fd = open("/proc/self/timens_offsets", O_WRONLY);
		if (fd < 0 || write(fd, "monotonic 86400 0\n", 18) != 18)
			_exit(77);
		close(fd);
		child = fork();
		if (child == 0)
			_exit(ahead_child());
		if (child < 0 || waitpid(child, &status, 0) != child)
			_exit(13);
		_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 14);
	}
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77) {
		printf("clock: no time namespaces here (needs CAP_SYS_ADMIN and "
		       "Linux 5.6): skipped\n");
		fixture_stop(&fix);
		exit(77);
	}
	CHECK_INT(WEXITSTATUS(status), 0);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 1);
	/* Before: valid for 86,407 s. */
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK(token_view(ua->seg, buf, sizeof(buf), &snap));
	printf("clock: the token written a day ahead is valid for %lld ms\n",
	       (long long)(snap.expires_ms - now_ms()));
	CHECK(snap.expires_ms - now_ms() <= 8000);
	/* Served as it is, not replaced: no logins in turn. */
	CHECK_INT(header_of(ua, buf, sizeof(buf)), 0);
	CHECK_INT(mock_customers(&fix.mock, buf), 200);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 1);
	ucaasauth_close(ua);
	fixture_stop(&fix);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*run)(void);
	} scenarios[] = {
		{"short", test_short},
		{"stopped", test_stopped},
		{"expiring", test_expiring},
		{"young", test_young},
		{"clock", test_clock},
		{"process-fork", test_process_fork},
	};

	for (size_t i = 0; i < ARRAY_SIZE(scenarios); i++)
		if (argc == 2 && strcmp(argv[1], scenarios[i].name) == 0) {
			scenarios[i].run();
			TEST_DONE();
		}
	fprintf(stderr, "usage: test-refresh short|stopped|expiring|young|"
	                "clock|process-fork\n");
	return 2;
}

/*
 * The typical fallback, end to end, on the shared cache and with short
 * timings (a header is fresh for 8 s: long enough for what the test does
 * meanwhile on a slow machine, short enough for a quick test): `provider = sufficient login` then `provider = required basic`.
 * While the login route works, the header is a token; when it fails
 * (503), the next refresh gives the Basic header, which the API accepts
 * too; when it recovers, a token again once the Basic header's lifetime
 * (token_ttl) is over. `ucaas-auth status` shows the stack and which
 * provider answered; `ucaas-auth header`, another process, reads the same
 * cached header without a login of its own.
 *
 * Usage: test-stack-fallback UCAAS_AUTH   (the built CLI)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "fixture.h"
#include "internal.h"
#include "test.h"

static struct fixture fix;
static const char *cli;

static void token_header(char *buf, size_t size)
{
	char *token = mock_stat_str(&fix.mock, "current_token");

	CHECK(token != NULL);
	snprintf(buf, size, "Authorization: Token %s", token ? token : "");
	free(token);
}

/* `ucaas-auth status fb`: the stack, and who answered. */
static void check_status(const char *answered_by)
{
	char *argv[] = {(char *)cli, "status", "fb", NULL};
	char out[8192], line[64];

	CHECK_INT(run_captured(argv, out, sizeof(out)), 0);
	printf("---- ucaas-auth status fb\n%s----\n", out);
	CHECK(strstr(out, "profile:      fb\n") != NULL);
	CHECK(strstr(out, "provider:     stack\n") != NULL);
	CHECK(strstr(out, "  1. sufficient login\n") != NULL);
	CHECK(strstr(out, "  2. required   basic\n") != NULL);
	CHECK(strstr(out, "token:        valid") != NULL);
	snprintf(line, sizeof(line), "answered by:  %s\n", answered_by);
	CHECK(strstr(out, line) != NULL);
	/* No secret, ever. */
	CHECK(strstr(out, FIX_APP_KEY) == NULL);
	CHECK(strstr(out, FIX_PASSWORD) == NULL);
	CHECK(strstr(out, "Authorization:") == NULL);
}

/* `ucaas-auth check fb`: the stack, without a network call. */
static void check_check(void)
{
	char *argv[] = {(char *)cli, "check", "fb", NULL};
	char out[8192];

	CHECK_INT(run_captured(argv, out, sizeof(out)), 0);
	CHECK(strstr(out, "profile fb: stack providers, cache = shared\n"));
	CHECK(strstr(out, "  1. sufficient login\n  2. required   basic\n"));
	CHECK(strstr(out, "credentials, modules and commands: ok\n"));
}

/* `ucaas-auth header fb` in another process: the cached header. */
static void check_cli_header(const char *expected)
{
	char *argv[] = {(char *)cli, "header", "fb", NULL};
	char out[8192], want[4200];

	snprintf(want, sizeof(want), "%s\n", expected);
	CHECK_INT(run_captured(argv, out, sizeof(out)), 0);
	CHECK_STR(out, want);
}

/*
 * Calls header every 50 ms until it is not `old` (or `limit_ms` pass);
 * every header seen is `old` or starts with `want_prefix`. Returns when
 * the call that saw the change started: the header it got was published
 * after that.
 */
static int64_t wait_change(struct ucaasauth *ua, const char *old,
                           const char *want_prefix, char *buf, size_t size,
                           int64_t limit_ms)
{
	int64_t t0 = ms_now(), start;
	size_t len;

	for (;;) {
		start = ms_now();
		CHECK_INT(ucaasauth_header(ua, buf, size, &len), 0);
		if (strcmp(buf, old) != 0)
			break;
		CHECK_MSG(ms_now() - t0 < limit_ms,
		          "the header did not change in %lld ms (to %s...)",
		          (long long)limit_ms, want_prefix);
		ms_sleep(50);
	}
	CHECK(strncmp(buf, want_prefix, strlen(want_prefix)) == 0);
	return start;
}

int main(int argc, char **argv)
{
	char token1[4200], token2[4200], basic[4200], buf[4200];
	struct ucaasauth *ua;
	struct snapshot snap;
	int64_t t0, t_basic, last = 0;
	size_t len;
	long logins;

	if (argc != 2) {
		fprintf(stderr, "usage: %s UCAAS_AUTH\n", argv[0]);
		return 2;
	}
	cli = argv[1];
	fixture_start(&fix, 900, NULL);
	conf_reset();
	conf_add("[profile fb]\n"
	         "api_base = %s\n"
	         "app_id = " FIX_APP_ID "\n"
	         "provider = sufficient login\n"
	         "provider = required basic\n"
	         "cache = shared\n"
	         "token_ttl = 12\n"
	         "refresh_ahead = 4\n"
	         "expiry_margin = 0\n"
	         "timeout = 3\n"
	         "connect_timeout = 2\n"
	         "wait_timeout = 10\n",
	         fix.mock.base);
	conf_write(&fix, 0600);
	fixture_store("fb", FIX_APP_KEY, FIX_EMAIL, FIX_PASSWORD);

	check_check();
	CHECK_INT(mock_stat(&fix.mock, "logins"), 0);

	/* The login works: a token. */
	CHECK_INT(ucaasauth_open(&ua, "fb", 0), 0);
	CHECK_INT(ucaasauth_header(ua, token1, sizeof(token1), &len), 0);
	token_header(buf, sizeof(buf));
	CHECK_STR(token1, buf);
	CHECK_INT(mock_customers(&fix.mock, token1), 200);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 1);
	check_status("login");
	check_cli_header(token1);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 1);

	/* The login route fails: within the token's life, the stack runs
	 * again and gives the Basic header. */
	CHECK_INT(mock_config(&fix.mock, "{\"login_status\": 503}"), 0);
	t0 = ms_now();
	t_basic = wait_change(ua, token1, "Authorization: Basic ", basic,
	                      sizeof(basic), 60000);
	/* Its windows, as the segment records them. */
	CHECK(token_view(atomic_load(&ua->view), buf, sizeof(buf), &snap));
	CHECK_STR(buf, basic);
	printf("token -> basic after %lld ms\n", (long long)(t_basic - t0));
	CHECK_STR(basic, fixture_basic_header());
	CHECK_INT(mock_customers(&fix.mock, basic), 200);
	CHECK(mock_stat(&fix.mock, "logins_failed") >= 1);
	CHECK_INT(mock_stat(&fix.mock, "logins_ok"), 1);
	check_status("basic");
	check_cli_header(basic);

	/* The Basic header is cached like a token: no login attempt while
	 * it is fresh (8 s of its 12 from its publication, which came after
	 * t_basic: its fresh_ms in the segment). Calls for 1 s; a call that
	 * a stalled machine made after fresh_ms may log in, and then the
	 * count is not judged (the windows are 8 s: it does not happen). */
	logins = mock_stat(&fix.mock, "logins");
	while (ms_now() - t_basic < 1000) {
		last = now_ms();
		CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
		CHECK_STR(buf, basic);
		ms_sleep(50);
	}
	if (last < snap.fresh_ms)
		CHECK_INT(mock_stat(&fix.mock, "logins"), logins);
	else
		printf("stalled until %lld ms past the header's fresh time: "
		       "login count not judged\n",
		       (long long)(last - snap.fresh_ms));

	/* The route recovers: a token again, once the Basic header's
	 * lifetime is (nearly) over. */
	CHECK_INT(mock_config(&fix.mock, "{\"login_status\": null}"), 0);
	t0 = ms_now();
	wait_change(ua, basic, "Authorization: Token ", token2, sizeof(token2),
	            60000);
	printf("basic -> token %lld ms after the recovery, %lld ms after "
	       "the switch\n",
	       (long long)(ms_now() - t0), (long long)(ms_now() - t_basic));
	/* Not before the Basic header's fresh time (8 s) was over. */
	CHECK_MSG(now_ms() >= snap.fresh_ms,
	          "a token again %lld ms before the Basic header's fresh "
	          "time was over",
	          (long long)(snap.fresh_ms - now_ms()));
	token_header(buf, sizeof(buf));
	CHECK_STR(token2, buf);
	CHECK(strcmp(token2, token1) != 0);
	CHECK_INT(mock_customers(&fix.mock, token2), 200);
	CHECK_INT(mock_stat(&fix.mock, "logins_ok"), 2);
	check_status("login");
	check_cli_header(token2);
	CHECK_INT(mock_stat(&fix.mock, "logins_ok"), 2);
	CHECK_INT(mock_stat(&fix.mock, "customers_refused"), 0);
	ucaasauth_close(ua);

	fixture_stop(&fix);
	TEST_DONE();
}

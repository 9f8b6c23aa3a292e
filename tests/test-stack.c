/*
 * The provider stack's control words, as ucaasauth.conf(5) and the comment
 * above stack_fetch() define them, with real providers: login against the
 * mock server (up, refusing, failing, then stopped), basic, exec commands
 * and the sample module. Each case is a profile of its own with
 * `cache = process`, opened afresh: no cached header, no backoff carried
 * from one case to the next.
 *
 * For each case: the status, the exact header bytes (whose header won),
 * the detail text of a failure, and which providers ran (the sample
 * module and the exec commands append to a counter file per instance; the
 * mock counts logins). Then a failing stack on the shared cache: its
 * failure and backoff are cached for the host like a header.
 *
 * Usage: test-stack SAMPLE_MODULE   (tests/sample-provider.so, built)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "fixture.h"
#include "internal.h"
#include "test.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static struct fixture fix;
static char bin[300], mods[300], state[300];
static char api_base[128]; /* the mock's, kept after it stops */

enum login_mode {
	L_OK,    /* the mock logs in */
	L_401,   /* {"login_status": 401} */
	L_BADPW, /* the profile's stored password is wrong */
	L_503,   /* {"login_status": 503} */
	L_DOWN,  /* the mock is stopped */
};

struct stack_case {
	enum login_mode login;
	/* "CONTROL KIND [MODE NAME]; ...", CONTROL "-" for none; KIND
	 * login, basic, sample (MODE ok, deny, unavailable, crlf, weird) or
	 * exec (MODE ok, fail, garbage). */
	const char *stack;
	int status;
	const char *who;   /* "login", "basic" or a NAME: whose header */
	const char *ran;   /* the NAMEs (and "login") that were asked */
	const char *error; /* in the detail text of a failure */
};

#define OK 0
#define DENIED UCAASAUTH_E_DENIED
#define UNAVAIL UCAASAUTH_E_UNAVAILABLE
#define PROTOCOL UCAASAUTH_E_PROTOCOL

static const struct stack_case up_cases[] = {
	/* sufficient: success stops the stack, failure is ignored. */
	{L_OK, "sufficient login; required basic", OK, "login", "login", NULL},
	{L_503, "sufficient login; required basic", OK, "basic", "login", NULL},
	{L_401, "sufficient login; required basic", OK, "basic", "login", NULL},
	{L_BADPW, "sufficient login; required basic", OK, "basic", "login",
         NULL},
	{L_OK, "sufficient sample ok A; required sample ok B", OK, "A", "A",
         NULL},
	{L_OK, "sufficient sample deny A; required sample ok B", OK, "B", "A B",
         NULL},
	{L_OK,
         "sufficient sample unavailable A; sufficient exec ok X; "
         "required sample ok B",
         OK, "X", "A X", NULL},
	{L_OK, "sufficient exec fail X; sufficient sample ok A", OK, "A", "X A",
         NULL},
	{L_OK, "sufficient exec ok X; required login", OK, "X", "X", NULL},
	/* ... but not after a required failure: the rest still run. */
	{L_OK,
         "required sample deny A; sufficient sample ok B; "
         "optional sample ok C",
         DENIED, NULL, "A B C", "sample A: denied"},
	{L_401, "required login; sufficient basic; optional sample ok A",
         DENIED, NULL, "login A", "HTTP 401"},

	/* requisite: failure stops at once with its status. */
	{L_OK, "requisite sample deny A; required sample ok B", DENIED, NULL,
         "A", "sample A: denied"},
	{L_OK, "requisite sample unavailable A; optional sample ok B", UNAVAIL,
         NULL, "A", "sample A: unavailable"},
	{L_OK, "requisite exec fail X; required basic", UNAVAIL, NULL, "X",
         "exit status 3: token service says no"},
	{L_401, "requisite login; required basic", DENIED, NULL, "login",
         "HTTP 401"},
	{L_BADPW, "requisite login; sufficient sample ok A", DENIED, NULL,
         "login", "Invalid credentials"},
	{L_503, "requisite login; sufficient sample ok A", UNAVAIL, NULL,
         "login", "HTTP 503"},
	{L_OK, "requisite sample ok A; required sample ok B", OK, "A", "A B",
         NULL},
	{L_OK, "requisite login; required sample ok A", OK, "login", "login A",
         NULL},
	/* After a success too: the success is not kept. */
	{L_OK,
         "optional sample ok A; requisite sample deny B; "
         "optional sample ok C",
         DENIED, NULL, "A B", "sample B: denied"},
	/* After a required failure: its own status (the brief's rule;
	 * pam(8) would return the required one's). */
	{L_OK,
         "required sample deny A; requisite sample unavailable B; "
         "optional sample ok C",
         UNAVAIL, NULL, "A B", "sample B: unavailable"},

	/* required: failure fails the stack even if later ones succeed;
	 * the first required failure is the one reported. */
	{L_OK, "required sample deny A; required sample ok B", DENIED, NULL,
         "A B", "sample A: denied"},
	{L_401, "required login; required basic", DENIED, NULL, "login",
         "HTTP 401"},
	{L_503, "required login; required basic", UNAVAIL, NULL, "login",
         "HTTP 503"},
	{L_OK,
         "required sample unavailable A; required sample deny B; "
         "required basic",
         UNAVAIL, NULL, "A B", "sample A: unavailable"},
	{L_OK,
         "optional sample ok A; required exec fail X; "
         "sufficient sample ok B",
         UNAVAIL, NULL, "A X B", "exit status 3"},
	{L_OK, "required sample ok A; required sample ok B", OK, "A", "A B",
         NULL},
	{L_OK, "required login; required basic", OK, "login", "login", NULL},
	{L_OK, "required basic; required login", OK, "basic", "login", NULL},
	{L_OK, "required exec ok X; required basic", OK, "X", "X", NULL},

	/* optional: failure ignored. */
	{L_OK, "optional sample deny A; required sample ok B", OK, "B", "A B",
         NULL},
	{L_OK, "optional exec fail X; optional sample ok A", OK, "A", "X A",
         NULL},
	{L_OK, "optional exec garbage X; required basic", OK, "basic", "X",
         NULL},
	{L_503, "optional login; required sample ok A", OK, "A", "login A",
         NULL},
	{L_OK, "optional sample crlf A; required basic", OK, "basic", "A",
         NULL},
	{L_OK, "optional sample weird A; required sample ok B", OK, "B", "A B",
         NULL},

	/* The first success's header wins. */
	{L_OK, "optional sample ok A; optional sample ok B", OK, "A", "A B",
         NULL},
	{L_OK,
         "optional sample ok A; sufficient sample ok B; "
         "required sample ok C",
         OK, "A", "A B", NULL},
	{L_OK, "optional basic; sufficient login; required sample ok A", OK,
         "basic", "login", NULL},
	{L_OK, "optional sample deny A; optional exec ok X; required login", OK,
         "X", "A X login", NULL},

	/* Where all fail: the last failure's status. */
	{L_OK, "sufficient sample deny A; sufficient sample unavailable B",
         UNAVAIL, NULL, "A B", "sample B: unavailable"},
	{L_OK, "optional sample unavailable A; optional sample deny B", DENIED,
         NULL, "A B", "sample B: denied"},
	{L_503, "sufficient login; optional sample deny A", DENIED, NULL,
         "login A", "sample A: denied"},
	{L_401, "optional login; sufficient exec fail X", UNAVAIL, NULL,
         "login X", "exit status 3"},
	{L_OK, "optional sample deny A; sufficient exec garbage X", PROTOCOL,
         NULL, "A X", "not one JSON document"},
	{L_503, "optional sample deny A; optional login", UNAVAIL, NULL,
         "A login", "HTTP 503"},
	{L_OK, "optional sample deny A; optional sample crlf B", PROTOCOL, NULL,
         "A B", "no single safe header line"},
	{L_OK, "optional sample deny A; optional sample weird B", PROTOCOL,
         NULL, "A B", "returned status -1000"},

	/* One provider, with or without a control word. */
	{L_OK, "- sample deny A", DENIED, NULL, "A", "sample A: denied"},
	{L_OK, "requisite sample ok A", OK, "A", "A", NULL},
	{L_OK, "optional sample unavailable A", UNAVAIL, NULL, "A",
         "sample A: unavailable"},
	{L_401, "sufficient login", DENIED, NULL, "login", "HTTP 401"},
};

/* The same with the mock stopped: login is unavailable. */
static const struct stack_case down_cases[] = {
	{L_DOWN, "sufficient login; required basic", OK, "basic", "", NULL},
	{L_DOWN, "requisite login; required basic", UNAVAIL, NULL, "", "POST "},
	{L_DOWN, "required login; optional sample ok A", UNAVAIL, NULL, "A",
         "POST "},
	{L_DOWN, "optional login; optional sample deny A", DENIED, NULL, "A",
         "sample A: denied"},
	{L_DOWN, "optional sample deny A; optional login", UNAVAIL, NULL, "A",
         "POST "},
	{L_DOWN, "sufficient sample ok A; required login", OK, "A", "A", NULL},
	{L_DOWN, "optional login; required exec ok X", OK, "X", "X", NULL},
	{L_DOWN, "sufficient exec fail X; sufficient login; required basic", OK,
         "basic", "X", NULL},
};

/* Splits "a; b; c" into words per line; returns the number of lines. */
static int split_stack(const char *stack, char lines[8][4][32])
{
	char copy[512], *save = NULL;
	int n = 0;

	snprintf(copy, sizeof(copy), "%s", stack);
	for (char *l = strtok_r(copy, ";", &save); l;
	     l = strtok_r(NULL, ";", &save)) {
		char *wsave = NULL;
		int k = 0;

		if (n == 8)
			fatal("too many lines in '%s'", stack);
		memset(lines[n], 0, sizeof(lines[n]));
		for (char *w = strtok_r(l, " ", &wsave); w && k < 4;
		     w = strtok_r(NULL, " ", &wsave))
			snprintf(lines[n][k++], 32, "%s", w);
		n++;
	}
	return n;
}

static void add_profile(const char *profile, const struct stack_case *c)
{
	char lines[8][4][32];
	int n = split_stack(c->stack, lines);

	conf_add("[profile %s]\n"
	         "api_base = %s\n"
	         "app_id = " FIX_APP_ID "\n"
	         "cache = process\n"
	         "module_dir = %s\n"
	         "timeout = 5\n"
	         "connect_timeout = 2\n",
	         profile, api_base, mods);
	for (int i = 0; i < n; i++) {
		const char *control =
			strcmp(lines[i][0], "-") ? lines[i][0] : "";
		const char *kind = lines[i][1], *mode = lines[i][2],
			   *name = lines[i][3];

		conf_add("provider = %s %s", control, kind);
		if (strcmp(kind, "sample") == 0)
			conf_add(" %s name=%s count=%s/%s-%s", mode, name,
			         state, profile, name);
		else if (strcmp(kind, "exec") == 0 && strcmp(mode, "fail") == 0)
			conf_add(" %s/exec-fail.sh %s/%s-%s", bin, state,
			         profile, name);
		else if (strcmp(kind, "exec") == 0)
			conf_add(" %s/exec-answer.sh %s/%s-%s "
			         "%s/answer-%s-%s",
			         bin, state, profile, name, state, mode, name);
		conf_add("\n");
	}
}

/* The answers the exec instances of a case print. */
static void write_answers(const struct stack_case *c)
{
	char lines[8][4][32], path[600], text[200];
	int n = split_stack(c->stack, lines);

	for (int i = 0; i < n; i++) {
		if (strcmp(lines[i][1], "exec") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/answer-%s-%s", state,
		         lines[i][2], lines[i][3]);
		if (strcmp(lines[i][2], "garbage") == 0)
			snprintf(text, sizeof(text), "this is not JSON\n");
		else
			snprintf(text, sizeof(text),
			         "{\"header\": \"Authorization: Bearer "
			         "exec-%s\"}\n",
			         lines[i][3]);
		write_text(path, text);
	}
}

static bool in_words(const char *words, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = words; (p = strstr(p, word)); p += n)
		if ((p == words || p[-1] == ' ') && (p[n] == 0 || p[n] == ' '))
			return true;
	return false;
}

static void run_case(const char *profile, const struct stack_case *c)
{
	char lines[8][4][32], buf[4096], expected[4096], path[600];
	int n = split_stack(c->stack, lines);
	bool up = c->login != L_DOWN;
	long logins = 0;
	int r;

	printf("%s: [%s] %s\n", profile,
	       (const char *[]){"login ok", "login 401", "bad password",
	                        "login 503", "server down"}[c->login],
	       c->stack);
	fflush(stdout);
	if (up) {
		CHECK_INT(mock_reset(&fix.mock), 0);
		if (c->login == L_401)
			CHECK_INT(mock_config(&fix.mock,
			                      "{\"login_status\": 401}"),
			          0);
		if (c->login == L_503)
			CHECK_INT(mock_config(&fix.mock,
			                      "{\"login_status\": 503}"),
			          0);
		logins = mock_stat(&fix.mock, "logins");
		CHECK_INT(logins, 0);
	}

	r = header_once(profile, buf, sizeof(buf));
	CHECK_INT(r, c->status);
	if (c->status == 0) {
		if (strcmp(c->who, "login") == 0) {
			char *token = mock_stat_str(&fix.mock, "current_token");
			CHECK(token != NULL);
			snprintf(expected, sizeof(expected),
			         "Authorization: Token %s", token);
			free(token);
		} else if (strcmp(c->who, "basic") == 0) {
			snprintf(expected, sizeof(expected), "%s",
			         fixture_basic_header());
		} else {
			const char *kind = "sample";
			for (int i = 0; i < n; i++)
				if (strcmp(lines[i][3], c->who) == 0)
					kind = lines[i][1];
			snprintf(expected, sizeof(expected),
			         "Authorization: Bearer %s-%s", kind, c->who);
		}
		CHECK_STR(buf, expected);
		if (up)
			CHECK_INT(mock_customers(&fix.mock, buf),
			          strcmp(c->who, "login") == 0 ||
			                          strcmp(c->who, "basic") == 0
			                  ? 200
			                  : 401);
	} else {
		CHECK_STR(buf, "");
		CHECK_ERROR_HAS(c->error);
	}

	/* Who was asked, and who was not. */
	for (int i = 0; i < n; i++) {
		if (!lines[i][3][0])
			continue;
		snprintf(path, sizeof(path), "%s/%s-%s", state, profile,
		         lines[i][3]);
		CHECK_INT(count_lines(path), in_words(c->ran, lines[i][3]));
	}
	if (up)
		CHECK_INT(mock_stat(&fix.mock, "logins"),
		          in_words(c->ran, "login"));
}

static void run_cases(const struct stack_case *cases, size_t n,
                      const char *prefix)
{
	char profile[32];

	conf_reset();
	for (size_t i = 0; i < n; i++) {
		snprintf(profile, sizeof(profile), "%s%zu", prefix, i);
		add_profile(profile, &cases[i]);
		write_answers(&cases[i]);
	}
	conf_write(&fix, 0600);
	for (size_t i = 0; i < n; i++) {
		snprintf(profile, sizeof(profile), "%s%zu", prefix, i);
		fixture_store(profile, FIX_APP_KEY, FIX_EMAIL,
		              cases[i].login == L_BADPW ? "wrong-password"
		                                        : FIX_PASSWORD);
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(profile, sizeof(profile), "%s%zu", prefix, i);
		run_case(profile, &cases[i]);
	}
}

/* The profile of the up case with that stack. */
static void up_profile(const char *stack, char *profile, size_t size)
{
	for (size_t i = 0; i < N_ELEMS(up_cases); i++)
		if (strcmp(up_cases[i].stack, stack) == 0) {
			snprintf(profile, size, "up%zu", i);
			return;
		}
	fatal("no case '%s'", stack);
}

/* The detail text of a failing stack is the failing provider's, whatever
 * the stack ran after it; a second handle of a failed profile starts from
 * nothing (cache = process). */
static void test_detail(void)
{
	char buf[4096], deny[32], exec[32];

	up_profile("required sample deny A; sufficient sample ok B; optional "
	           "sample ok C",
	           deny, sizeof(deny));
	up_profile("optional sample ok A; required exec fail X; sufficient "
	           "sample ok B",
	           exec, sizeof(exec));

	CHECK_INT(mock_reset(&fix.mock), 0);
	CHECK_INT(header_once(deny, buf, sizeof(buf)), DENIED);
	CHECK_ERROR_HAS("provider 'sample': sample A: denied");
	CHECK_INT(header_once(deny, buf, sizeof(buf)), DENIED);
	CHECK_INT(header_once(exec, buf, sizeof(buf)), UNAVAIL);
	CHECK_ERROR_HAS("exec command ");
	CHECK_ERROR_HAS("/exec-fail.sh: exit status 3: token service says no: "
	                "account locked");
	CHECK(strstr(ucaasauth_last_error(), "second line") == NULL);
}

/*
 * A stack that fails is cached too: with cache = shared, its failure and
 * backoff are the host's, so a second handle does not ask the providers
 * again until the backoff is over; then the header, cached for all.
 */
static void test_backoff(void)
{
	char buf[4096], mode[400], count[400];
	struct refresh_state st;
	struct ucaasauth *ua;
	int64_t t0, call;
	size_t len;
	int r, asked; /* times the providers were asked */

	snprintf(mode, sizeof(mode), "%s/bk.mode", state);
	snprintf(count, sizeof(count), "%s/bk.count", state);
	write_text(mode, "unavailable\n");
	conf_reset();
	conf_add("[profile bk]\n"
	         "api_base = %s\n"
	         "app_id = " FIX_APP_ID "\n"
	         "module_dir = %s\n"
	         "cache = shared\n"
	         "provider = optional sample deny name=D\n"
	         "provider = required sample @%s name=F count=%s\n",
	         api_base, mods, mode, count);
	conf_write(&fix, 0600);

	CHECK_INT(header_once("bk", buf, sizeof(buf)), UNAVAIL);
	CHECK_ERROR_HAS("sample F: unavailable");
	CHECK_INT(count_lines(count), 1);
	/* Another handle: the recorded failure while the backoff lasts (1 s
	 * less up to a quarter), the sources asked again only after it.
	 * Judged against the backoff the segment records, so that a machine
	 * that stalls here is judged too, not skipped. */
	CHECK_INT(ucaasauth_open(&ua, "bk", 0), 0);
	cache_refresh_state(atomic_load(&ua->view), now_ms(), &st);
	CHECK_MSG(st.failures == 1 && st.next_attempt_ms > 0,
	          "%u failures recorded, next attempt at %lld", st.failures,
	          (long long)st.next_attempt_ms);
	call = now_ms();
	r = ucaasauth_header(ua, buf, sizeof(buf), &len);
	CHECK_INT(r, UNAVAIL);
	CHECK_ERROR_HAS("sample F: unavailable");
	asked = count_lines(count);
	if (asked == 1) {
		CHECK_ERROR_HAS("next login attempt in");
	} else {
		CHECK_MSG(call >= st.next_attempt_ms,
		          "the providers were asked again %lld ms before the "
		          "backoff's end",
		          (long long)(st.next_attempt_ms - call));
		CHECK_INT(count_lines(count), 2);
		printf("backoff: over before the second call (%lld ms late)\n",
		       (long long)(call - st.next_attempt_ms));
	}
	ucaasauth_close(ua);
	/* The source recovers: asked again once the backoff (2 s at most
	 * by now) is over; polled, 60 s at most. */
	write_text(mode, "ok\n");
	t0 = ms_now();
	while ((r = header_once("bk", buf, sizeof(buf))) != 0 &&
	       ms_now() - t0 < 60000)
		ms_sleep(100);
	CHECK_INT(r, 0);
	CHECK_STR(buf, "Authorization: Bearer sample-F");
	CHECK_INT(count_lines(count), asked + 1);
	/* Cached for the host: the sources are not asked again. */
	write_text(mode, "deny\n");
	CHECK_INT(header_once("bk", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer sample-F");
	CHECK_INT(count_lines(count), asked + 1);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s SAMPLE_MODULE\n", argv[0]);
		return 2;
	}
	fixture_start(&fix, 900, NULL);
	snprintf(api_base, sizeof(api_base), "%s", fix.mock.base);
	snprintf(bin, sizeof(bin), "%s/bin", fix.dir);
	snprintf(mods, sizeof(mods), "%s/modules", fix.dir);
	snprintf(state, sizeof(state), "%s/state", fix.dir);
	make_dir(bin, 0700);
	make_dir(mods, 0755);
	make_dir(state, 0700);
	install_script(bin, "exec-answer.sh", 0700);
	install_script(bin, "exec-fail.sh", 0700);
	{
		char path[400];
		snprintf(path, sizeof(path), "%s/sample.so", mods);
		copy_file(argv[1], path, 0644);
	}

	run_cases(up_cases, N_ELEMS(up_cases), "up");
	test_detail();
	test_backoff();
	mock_stop(&fix.mock);
	run_cases(down_cases, N_ELEMS(down_cases), "down");

	fixture_stop(&fix);
	TEST_DONE();
}

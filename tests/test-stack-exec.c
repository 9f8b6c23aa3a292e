/*
 * The exec provider: a command that prints a token or a header as JSON,
 * run without a shell, in a clean environment, with a timeout; its
 * process group killed when it overstays; one run per refresh for the
 * whole host.
 *
 * The test is a child subreaper (PR_SET_CHILD_SUBREAPER): whatever a
 * command leaves behind when it is killed comes back to it, so that it
 * can tell a grandchild the provider killed from one that still runs.
 *
 * Usage: test-stack-exec
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "fixture.h"
#include "test-stack-util.h"
#include "test.h"

static struct fixture fix;
static char bin[300], state[300];
/* /bin when it is a symbolic link to a directory, else one made so. */
static char bin_link[300];

/* A profile of one exec line, cache = process unless `extra` says. */
static void add_exec_profile(const char *name, const char *app_id,
                             const char *extra, const char *command_line)
{
	stack_conf_add("[profile %s]\n"
	               "api_base = %s\n"
	               "app_id = %s\n"
	               "%s"
	               "provider = exec %s\n",
	               name, fix.mock.base, app_id, extra, command_line);
}

/* "exec-answer.sh COUNT ANSWER [DELAY]" for profile `name`, answering
 * `json` after `delay` seconds (NULL: at once). */
static void add_answer_profile(const char *name, const char *extra,
                               const char *json, const char *delay)
{
	char line[2048], path[512];

	snprintf(path, sizeof(path), "%s/%s.json", state, name);
	stack_write(path, json);
	snprintf(line, sizeof(line), "%s/exec-answer.sh %s/%s.count %s %s", bin,
	         state, name, path, delay ? delay : "");
	add_exec_profile(name, FIX_APP_ID, extra, line);
}

static int runs_of(const char *name)
{
	char path[400];

	snprintf(path, sizeof(path), "%s/%s.count", state, name);
	return stack_count_lines(path);
}

/* Unix time t as RFC 3339 in UTC, or at a +02:00 offset with a fraction. */
static void rfc3339(time_t t, bool offset, char *buf, size_t size)
{
	struct tm tm;

	if (offset) {
		t += 7200;
		gmtime_r(&t, &tm);
		strftime(buf, size, "%Y-%m-%dT%H:%M:%S.250+02:00", &tm);
	} else {
		gmtime_r(&t, &tm);
		strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
}

/* The Unix time the cached header of an open handle expires at. */
static long long expires_real(struct ucaasauth *ua)
{
	struct refresh_state st;

	cache_refresh_state(atomic_load(&ua->view), &st);
	return (long long)st.expires_real;
}

/*
 * Reaps what the command of process group `pgid` left (they were
 * re-parented to us), for up to `ms`. Returns how many were killed by
 * SIGKILL, or -1 if one still runs after `ms` or ended otherwise. Sets
 * *gone_pid when `pid` was among them.
 */
static int reap_group(pid_t pgid, pid_t pid, int ms, bool *gone_pid)
{
	int64_t end = ms_now() + ms;
	int killed = 0, status;
	pid_t w;

	for (;;) {
		/* The command's children came to us, the subreaper. */
		w = waitpid(-pgid, &status, WNOHANG);
		if (w < 0 && errno == ECHILD)
			return killed;
		if (w < 0 && errno != EINTR)
			return -1;
		if (w > 0) {
			if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
				return -1;
			killed++;
			if (w == pid)
				*gone_pid = true;
			continue;
		}
		if (ms_now() > end)
			return -1;
		ms_sleep(20);
	}
}

/* A good command: a token with its expiry, cached for its lifetime. */
static void test_good(void)
{
	struct ucaasauth *ua;
	char buf[4096];
	size_t len;
	time_t now = time(NULL);

	CHECK_INT(ucaasauth_open(&ua, "good", 0), 0);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	CHECK_STR(buf, "Authorization: Token tok-exec-1");
	CHECK_INT(len, strlen("Authorization: Token tok-exec-1"));
	CHECK_INT(runs_of("good"), 1);
	/* It expires when the command said, not after token_ttl. */
	CHECK(llabs(expires_real(ua) - (long long)(now + 600)) <= 3);
	/* Cached: the command does not run again for the handle's later
	 * calls (for other processes: test_once). */
	for (int i = 0; i < 100; i++)
		CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	CHECK_STR(buf, "Authorization: Token tok-exec-1");
	CHECK_INT(runs_of("good"), 1);
	ucaasauth_close(ua);

	/* An offset and a fraction of a second. */
	CHECK_INT(ucaasauth_open(&ua, "offset", 0), 0);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	CHECK_STR(buf, "Authorization: Token tok-exec-2");
	CHECK(llabs(expires_real(ua) - (long long)(now + 900)) <= 3);
	ucaasauth_close(ua);

	/* A whole header; without a lifetime it lives token_ttl (300 s in
	 * that profile), with expires_in that many seconds. */
	CHECK_INT(ucaasauth_open(&ua, "header", 0), 0);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	CHECK_STR(buf, "Authorization: Bearer x");
	CHECK(llabs(expires_real(ua) - (long long)(now + 300)) <= 3);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	CHECK_INT(runs_of("header"), 1);
	ucaasauth_close(ua);
	CHECK_INT(ucaasauth_open(&ua, "header-in", 0), 0);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	CHECK_STR(buf, "Authorization: Bearer y.z-1");
	CHECK(llabs(expires_real(ua) - (long long)(now + 120)) <= 3);
	ucaasauth_close(ua);
}

/* Answers that are refused: status PROTOCOL and what the detail says. */
static void test_bad_answers(void)
{
	static const struct {
		const char *profile, *detail;
	} cases[] = {
		{"garbage", "its output is not one JSON object"},
		{"empty", "its output is not one JSON object"},
		{"array", "its output is not one JSON object"},
		{"trailing", "its output is not one JSON object"},
		{"notoken", "no \"token\" or \"header\" string"},
		{"numtoken", "no \"token\" or \"header\" string"},
		{"emptytoken", "an empty, overlong or unsafe token"},
		{"spacetoken", "an empty, overlong or unsafe token"},
		{"niltoken", "an empty, overlong or unsafe token"},
		{"crlf", "no single safe header line"},
		{"lftoken", "no single safe header line"},
		{"tabheader", "no single safe header line"},
		{"nilheader", "an empty, overlong or unsafe token"},
		{"notauth", "no single safe header line"},
		{"longtoken", "an empty, overlong or unsafe token"},
		{"past", "\"expires_at\" is not a future RFC 3339 time"},
		{"badtime", "\"expires_at\" is not a future RFC 3339 time"},
		{"badzone", "\"expires_at\" is not a future RFC 3339 time"},
		{"zeroin", "\"expires_in\" is not a number of seconds"},
		{"negin", "\"expires_in\" is not a number of seconds"},
		{"strin", "\"expires_in\" is not a number of seconds"},
	};
	char buf[4096];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		printf("answer %s\n", cases[i].profile);
		CHECK_INT(stack_header_once(cases[i].profile, buf, sizeof(buf)),
		          UCAASAUTH_E_PROTOCOL);
		CHECK_STR(buf, "");
		CHECK_ERROR_HAS(cases[i].detail);
		CHECK_INT(runs_of(cases[i].profile), 1);
	}
}

/* Overstays timeout = 1: killed with its whole process group. */
static void test_slow(void)
{
	char buf[4096], path[400], *pids;
	int pid = 0, grandchild = 0;
	bool gone = false;
	int64_t t0 = ms_now(), took;

	CHECK_INT(stack_header_once("slow", buf, sizeof(buf)),
	          UCAASAUTH_E_UNAVAILABLE);
	took = ms_now() - t0;
	printf("slow: UNAVAILABLE after %lld ms\n", (long long)took);
	CHECK_ERROR_HAS("/exec-slow.sh: no answer within 1 s, killed");
	CHECK_STR(buf, "");
	CHECK(took >= 900 && took < 4000);
	snprintf(path, sizeof(path), "%s/slow.pids", state);
	pids = stack_read(path);
	CHECK(pids != NULL);
	CHECK_INT(sscanf(pids, "%d %d", &pid, &grandchild), 2);
	free(pids);
	/* The command itself was reaped by the provider: not even a
	 * zombie. */
	CHECK_INT(stack_pid_state(pid), 0);
	/* Its grandchild (sleep 60 &) and its child (sleep 30) were killed
	 * with it and came to us, the subreaper; none still runs. */
	CHECK(reap_group(pid, grandchild, 3000, &gone) >= 1);
	/* On a loaded machine the grandchild may reach us a moment later:
	 * it must be gone within a short grace, killed, never running. */
	for (int64_t end = ms_now() + 3000; !gone && ms_now() < end;) {
		int st;
		if (waitpid(grandchild, &st, WNOHANG) == grandchild) {
			CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
			gone = true;
		} else if (stack_pid_state(grandchild) == 0) {
			gone = true; /* reaped before it was ours */
		}
		ms_sleep(20);
	}
	CHECK(gone);
	CHECK_INT(stack_pid_state(grandchild), 0);
	CHECK(kill(-pid, 0) < 0 && errno == ESRCH);
}

/* A command that fails: UNAVAILABLE with the first line of its stderr;
 * its stdout is not judged. */
static void test_fail(void)
{
	char buf[4096], path[400], *text;

	CHECK_INT(stack_header_once("fail", buf, sizeof(buf)),
	          UCAASAUTH_E_UNAVAILABLE);
	CHECK_STR(buf, "");
	CHECK_ERROR_HAS("/exec-fail.sh: exit status 3: token service says no: "
	                "account locked");
	CHECK(strstr(ucaasauth_last_error(), "second line") == NULL);
	CHECK(strstr(ucaasauth_last_error(), "ignored") == NULL);
	snprintf(path, sizeof(path), "%s/fail.count", state);
	text = stack_read(path);
	CHECK(text != NULL);
	CHECK_INT(stack_pid_state(atoi(text)), 0);
	free(text);
}

/* 10 MB on stdout: refused after 64 kB, killed, our memory bounded. */
static void test_flood(void)
{
	char buf[4096], path[400], *text;
	long hwm = stack_hwm_kb();
	int64_t t0 = ms_now();
	bool gone = false;
	int pid;

	CHECK_INT(stack_header_once("flood", buf, sizeof(buf)),
	          UCAASAUTH_E_PROTOCOL);
	CHECK_ERROR_HAS("/exec-flood.sh: printed more than 65536 bytes, "
	                "killed");
	CHECK(ms_now() - t0 < 5000);
	printf("flood: peak RSS %ld kB -> %ld kB\n", hwm, stack_hwm_kb());
	CHECK(stack_hwm_kb() - hwm < 4096);
	snprintf(path, sizeof(path), "%s/flood.pid", state);
	text = stack_read(path);
	CHECK(text != NULL);
	pid = atoi(text);
	free(text);
	CHECK(pid > 0);
	CHECK_INT(stack_pid_state(pid), 0);
	/* head and tr, killed with it. */
	CHECK(reap_group(pid, 0, 3000, &gone) >= 0);
	CHECK(kill(-pid, 0) < 0 && errno == ESRCH);
}

/* The command sees what it needs and the variables exec_env names. */
static void test_env(void)
{
	char buf[4096], path[400], expect[400], *text;
	static const char *const absent[] = {
		"EXEC_TEST_SECRET=", "HOME=", "UCAASAUTH_CONFIG=",
		"UCAASAUTH_RUNTIME_DIR=", "EXEC_TEST_UNSET=", "MOCK_UCAAS=",
	};

	setenv("EXEC_TEST_SECRET", "must-not-leak", 1);
	setenv("EXEC_TEST_PASSED", "yes it is", 1);
	setenv("HOME", "/root", 0);
	unsetenv("EXEC_TEST_UNSET");
	CHECK_INT(stack_header_once("env", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer env-ok");
	snprintf(path, sizeof(path), "%s/env.out", state);
	text = stack_read(path);
	CHECK(text != NULL);
	printf("env: the command saw:\n%s", text);
	CHECK(strstr(text, "PATH=/usr/local/bin:/usr/bin:/bin\n") == text ||
	      strstr(text, "\nPATH=/usr/local/bin:/usr/bin:/bin\n"));
	CHECK(strstr(text, "UCAASAUTH_PROFILE=env\n") != NULL);
	snprintf(expect, sizeof(expect), "UCAASAUTH_API_BASE=%s\n",
	         fix.mock.base);
	CHECK(strstr(text, expect) != NULL);
	CHECK(strstr(text, "UCAASAUTH_APP_ID=" FIX_APP_ID "\n") != NULL);
	CHECK(strstr(text, "EXEC_TEST_PASSED=yes it is\n") != NULL);
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
		printf("env: no %s\n", absent[i]);
		CHECK(strncmp(text, absent[i], strlen(absent[i])) != 0);
		snprintf(expect, sizeof(expect), "\n%s", absent[i]);
		CHECK(strstr(text, expect) == NULL);
	}
	/* Nothing else at all. */
	CHECK_INT(stack_count_lines(path), 5);
	free(text);
	unsetenv("EXEC_TEST_SECRET");
}

/* The command line and the file, judged at parse or at open. */
static void test_paths(void)
{
	static const struct {
		const char *profile, *detail;
	} refused[] = {
		{"gw-file", "/gw-file/exec-answer.sh: mode 0720 lets group or "
		            "others write it"},
		{"ow-file", "/ow-file/exec-answer.sh: mode 0702 lets group or "
		            "others write it"},
		{"gw-dir", "/gw-dir: mode 0770 lets group or others write it"},
		{"noexec", "/noexec/exec-answer.sh: Permission denied"},
		{"missing", "/bin/no-such-command: No such file or directory"},
		{"missing-dir", "/no-such-dir: No such file or directory"},
		{"dir", "/bin: not a regular file"},
		{"other-uid", "owned by uid 65534, expected root or"},
		{"too-many-env", "exec_env: more than 28 variables"},
	};
	struct ucaasauth *ua = NULL;
	struct config *config = NULL;
	char buf[256], path[400], text[1024];

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		if (strcmp(refused[i].profile, "other-uid") == 0 &&
		    geteuid() != 0) {
			printf("exec: not root, no command of another uid\n");
			continue;
		}
		printf("exec refused: %s\n", refused[i].profile);
		CHECK_INT(ucaasauth_open(&ua, refused[i].profile, 0),
		          UCAASAUTH_E_CONFIG);
		CHECK(ua == NULL);
		CHECK_ERROR_HAS(refused[i].detail);
	}
	/* 28 variables are fine. */
	CHECK_INT(stack_header_once("many-env", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer env-ok");

	/* A relative command is a parse error, with the line. */
	snprintf(buf, sizeof(buf),
	         "[profile rel]\napi_base = http://127.0.0.1:1\napp_id = a\n"
	         "provider = exec bin/exec-answer.sh\n");
	CHECK_INT(config_parse(buf, strlen(buf), "/etc/x.conf", &config),
	          UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("/etc/x.conf:4: provider: exec needs the absolute "
	                "path");
	snprintf(buf, sizeof(buf),
	         "[profile rel]\napi_base = http://127.0.0.1:1\napp_id = a\n"
	         "provider = required exec\n");
	CHECK_INT(config_parse(buf, strlen(buf), "/etc/x.conf", &config),
	          UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("/etc/x.conf:4: provider: exec needs the absolute "
	                "path");
	CHECK(config == NULL);
	/* ... and through ucaasauth_open(), of any profile of the file. */
	snprintf(path, sizeof(path), "%s/relative.conf", fix.dir);
	snprintf(text, sizeof(text),
	         "[profile good]\napi_base = %s\napp_id = " FIX_APP_ID "\n"
	         "provider = basic\n"
	         "[profile rel]\napi_base = %s\napp_id = " FIX_APP_ID "\n"
	         "provider = exec bin/exec-answer.sh\n",
	         fix.mock.base, fix.mock.base);
	stack_write(path, text);
	CHECK_INT(setenv("UCAASAUTH_CONFIG", path, 1), 0);
	CHECK_INT(ucaasauth_open(&ua, "rel", 0), UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("/relative.conf:8: provider: exec needs the absolute "
	                "path of a command");
	CHECK_INT(ucaasauth_open(&ua, "good", 0), UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("/relative.conf:8: provider: exec needs");
	CHECK(ua == NULL);
	CHECK_INT(setenv("UCAASAUTH_CONFIG", fix.conf, 1), 0);
}

/* 16 processes on a cold shared cache: the command runs once. */
static int once_worker(void *arg, int i)
{
	struct ucaasauth *ua;
	char buf[4096];
	size_t len;
	int r;

	(void)arg;
	(void)i;
	if (ucaasauth_open(&ua, "once", 0) != 0)
		return 10;
	r = ucaasauth_header(ua, buf, sizeof(buf), &len);
	ucaasauth_close(ua);
	if (r != 0)
		return 11;
	return strcmp(buf, "Authorization: Token tok-once") == 0 ? 0 : 12;
}

static void test_once(void)
{
	char buf[4096];

	CHECK_INT(run_workers(16, once_worker, NULL), 16);
	CHECK_INT(runs_of("once"), 1);
	/* And later handles on the host take it from the cache. */
	CHECK_INT(stack_header_once("once", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Token tok-once");
	CHECK_INT(runs_of("once"), 1);
}

/*
 * Two exec profiles with different commands (say, two accounts) share
 * one cached header when they share api_base and app_id: the cache
 * identity of a one-provider profile does not name the provider.
 */
static void test_identity(void)
{
	char buf[4096];

	CHECK_INT(stack_header_once("ident-a", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer account-a");
	CHECK_INT(stack_header_once("ident-b", buf, sizeof(buf)), 0);
	/* Regression (fixed): handle.c identity(): the cache identity of a profile of one
	 * exec (or module) provider is uid, api_base, app_id and the
	 * (empty) login email only, so profile ident-b is served the header
	 * that ident-a's command produced; it should run its own command
	 * and get "Authorization: Bearer account-b". */
	CHECK_STR(buf, "Authorization: Bearer account-b");
}

/*
 * A program that ignores SIGCHLD (many daemons do, to be rid of zombies):
 * the kernel reaps the command at once, and its exit status is lost.
 */
static void test_sigchld_ignored(void)
{
	char buf[4096];

	signal(SIGCHLD, SIG_IGN);
	/* The good command still works. */
	CHECK_INT(stack_header_once("good", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Token tok-exec-1");
	/* Regression (fixed): provider-exec.c exec_fetch(): with SIGCHLD ignored, waitpid()
	 * fails with ECHILD and the command's output is judged alone, so a
	 * command that exits 3 after printing {"token": "ignored"} (as
	 * exec-fail.sh does) is taken as a success and its token cached.
	 * Exit status non-zero must stay UNAVAILABLE: e.g. run the command
	 * from an intermediate child that restores SIGCHLD's default and
	 * reports the status through a pipe, or refuse to judge output
	 * without an exit status. */
	CHECK_INT(stack_header_once("fail", buf, sizeof(buf)),
	          UCAASAUTH_E_UNAVAILABLE);
	CHECK_STR(buf, "");
}

/* A command in a directory reached through a symbolic link, such as
 * /bin/cat where /bin -> usr/bin (merged /usr: Debian, Fedora, Arch). */
static void test_dir_link(void)
{
	char buf[4096];

	printf("exec: command %s/cat\n", bin_link);
	/* Regression (fixed): provider.c check_trusted() lstat()s the command's directory,
	 * so a directory reached through a symbolic link (owned by root,
	 * mode 0777 as links are) is refused with the misleading "directory
	 * of /bin: not a directory": `provider = exec /bin/cat ...` fails to
	 * open on every merged-/usr system, as does a module_dir that is a
	 * link. It should check the directory the link leads to (stat(), or
	 * realpath() first) and run the command. */
	CHECK_INT(stack_header_once("bin-link", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer cat");
}

static void write_config(void)
{
	char line[4096], dir[512], path[1024], now_s[64], off_s[64], json[2048];
	time_t now = time(NULL);
	static const struct {
		const char *name, *json;
	} bad[] = {
		{"garbage", "this is not JSON\n"},
		{"empty", ""},
		{"array", "[1, 2]\n"},
		{"trailing", "{\"token\": \"abc\"} and more\n"},
		{"notoken", "{\"tokens\": \"abc\"}\n"},
		{"numtoken", "{\"token\": 5}\n"},
		{"emptytoken", "{\"token\": \"\"}\n"},
		{"spacetoken", "{\"token\": \"a b\"}\n"},
		{"niltoken", "{\"token\": \"a\\u0000b\"}\n"},
		{"crlf", "{\"header\": \"Authorization: Bearer x\\r\\nX-Evil: "
		         "1\"}\n"},
		{"lftoken", "{\"token\": \"abc\\r\\nX-Evil:1\"}\n"},
		{"tabheader", "{\"header\": \"Authorization: Bearer\\tx\"}\n"},
		{"nilheader", "{\"header\": \"Authorization: Bearer "
		              "x\\u0000y\"}\n"},
		{"notauth", "{\"header\": \"X-Api-Key: 1\"}\n"},
		{"past", "{\"token\": \"abc\", \"expires_at\": "
		         "\"2001-01-01T00:00:00Z\"}\n"},
		{"badtime", "{\"token\": \"abc\", \"expires_at\": "
		            "\"tomorrow\"}\n"},
		{"badzone", "{\"token\": \"abc\", \"expires_at\": "
		            "\"2099-01-01T00:00:00+25:00\"}\n"},
		{"zeroin", "{\"token\": \"abc\", \"expires_in\": 0}\n"},
		{"negin", "{\"token\": \"abc\", \"expires_in\": -5}\n"},
		{"strin", "{\"token\": \"abc\", \"expires_in\": \"600\"}\n"},
	};
	char *longtoken;
	struct {
		const char *name;
		mode_t dir_mode, file_mode;
	} modes[] = {
		{"gw-file", 0700, 0720}, {"ow-file", 0700, 0702},
		{"gw-dir", 0770, 0700},  {"noexec", 0700, 0600},
		{"other-uid", 0700, 0700},
	};
	char names[1024] = "";

	stack_conf_reset();
	stack_conf_add("default_profile = good\n");
	rfc3339(now + 600, false, now_s, sizeof(now_s));
	snprintf(json, sizeof(json),
	         "{\"token\": \"tok-exec-1\", \"expires_at\": \"%s\"}\n",
	         now_s);
	add_answer_profile("good", "cache = process\n", json, NULL);
	rfc3339(now + 900, true, off_s, sizeof(off_s));
	snprintf(json, sizeof(json),
	         "{\"expires_at\": \"%s\", \"token\": \"tok-exec-2\"}\n",
	         off_s);
	add_answer_profile("offset", "cache = process\n", json, NULL);
	add_answer_profile("header", "cache = process\ntoken_ttl = 300\n"
	                             "refresh_ahead = 60\nexpiry_margin = 10\n",
	                   "{\"header\": \"Authorization: Bearer x\"}\n", NULL);
	add_answer_profile("header-in", "cache = process\n",
	                   "{\"header\": \"Authorization: Bearer y.z-1\", "
	                   "\"expires_in\": 120}\n", NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		add_answer_profile(bad[i].name, "cache = process\n",
		                   bad[i].json, NULL);
	/* A token one byte longer than the segment holds. */
	longtoken = malloc(TOKEN_MAX + 64);
	if (!longtoken)
		stack_die("out of memory");
	memcpy(longtoken, "{\"token\": \"", 11);
	memset(longtoken + 11, 'a', TOKEN_MAX + 1);
	strcpy(longtoken + 11 + TOKEN_MAX + 1, "\"}\n");
	add_answer_profile("longtoken", "cache = process\n", longtoken, NULL);
	free(longtoken);

	snprintf(path, sizeof(path), "%s/slow.pids", state);
	snprintf(line, sizeof(line), "%s/exec-slow.sh %s", bin, path);
	add_exec_profile("slow", FIX_APP_ID, "cache = process\ntimeout = 1\n",
	                 line);
	snprintf(line, sizeof(line), "%s/exec-fail.sh %s/fail.count", bin,
	         state);
	add_exec_profile("fail", FIX_APP_ID, "cache = process\n", line);
	snprintf(line, sizeof(line), "%s/exec-flood.sh %s/flood.pid", bin,
	         state);
	add_exec_profile("flood", FIX_APP_ID, "cache = process\n", line);
	snprintf(line, sizeof(line), "%s/exec-env.sh %s/env.out", bin, state);
	add_exec_profile("env", FIX_APP_ID,
	                 "cache = process\n"
	                 "exec_env = EXEC_TEST_PASSED EXEC_TEST_UNSET\n",
	                 line);

	/* Commands with the wrong modes, owner or kind. */
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		snprintf(dir, sizeof(dir), "%s/%s", fix.dir, modes[i].name);
		stack_mkdir(dir, modes[i].dir_mode);
		stack_install_script(dir, "exec-answer.sh", modes[i].file_mode);
		snprintf(path, sizeof(path), "%s/exec-answer.sh", dir);
		if (strcmp(modes[i].name, "other-uid") == 0 && geteuid() == 0 &&
		    chown(path, 65534, 65534) < 0)
			stack_die("chown %s", path);
		snprintf(line, sizeof(line), "%s a b", path);
		add_exec_profile(modes[i].name, FIX_APP_ID, "cache = process\n",
		                 line);
	}
	snprintf(line, sizeof(line), "%s/no-such-command", bin);
	add_exec_profile("missing", FIX_APP_ID, "cache = process\n", line);
	snprintf(line, sizeof(line), "%s/no-such-dir/command", fix.dir);
	add_exec_profile("missing-dir", FIX_APP_ID, "cache = process\n", line);
	/* A command from a symbolic link to a directory (/bin -> usr/bin on
	 * a merged-/usr system), with a plain file's answer. */
	snprintf(path, sizeof(path), "%s/bin-link.json", state);
	stack_write(path, "{\"header\": \"Authorization: Bearer cat\"}\n");
	snprintf(line, sizeof(line), "%s/cat %s", bin_link, path);
	add_exec_profile("bin-link", FIX_APP_ID, "cache = process\n", line);
	snprintf(path, sizeof(path), "%s/exec-link.sh", bin);
	snprintf(line, sizeof(line), "%s/exec-answer.sh", bin);
	if (symlink(line, path) < 0)
		stack_die("symlink %s", path);
	add_exec_profile("symlink", FIX_APP_ID, "cache = process\n", path);
	add_exec_profile("dir", FIX_APP_ID, "cache = process\n", bin);

	/* exec_env: 28 variables, then 29. */
	for (int i = 0; i < 29; i++) {
		char var[32];
		snprintf(var, sizeof(var), "EXEC_TEST_V%d", i);
		setenv(var, "1", 1);
		if (i == 28)
			break;
		snprintf(names + strlen(names), sizeof(names) - strlen(names),
		         " %s", var);
	}
	snprintf(line, sizeof(line), "%s/exec-env.sh %s/many.out", bin, state);
	snprintf(json, sizeof(json), "cache = process\nexec_env =%s\n", names);
	add_exec_profile("many-env", FIX_APP_ID, json, line);
	snprintf(json, sizeof(json),
	         "cache = process\nexec_env =%s EXEC_TEST_V28\n", names);
	add_exec_profile("too-many-env", FIX_APP_ID, json, line);

	/* Half a second to answer: every worker finds the lock taken. */
	add_answer_profile("once", "cache = shared\n",
	                   "{\"token\": \"tok-once\", \"expires_in\": 600}\n",
	                   "0.5");

	snprintf(path, sizeof(path), "%s/ident-a.json", state);
	stack_write(path,
	            "{\"header\": \"Authorization: Bearer account-a\"}\n");
	snprintf(line, sizeof(line), "%s/exec-answer.sh %s/ident-a.count %s",
	         bin, state, path);
	add_exec_profile("ident-a", "app-ident", "cache = shared\n", line);
	snprintf(path, sizeof(path), "%s/ident-b.json", state);
	stack_write(path,
	            "{\"header\": \"Authorization: Bearer account-b\"}\n");
	snprintf(line, sizeof(line), "%s/exec-answer.sh %s/ident-b.count %s",
	         bin, state, path);
	add_exec_profile("ident-b", "app-ident", "cache = shared\n", line);

	stack_conf_write(&fix);
}

int main(void)
{
	int bugs = 0;

	fixture_start(&fix, 900, NULL);
	snprintf(bin, sizeof(bin), "%s/bin", fix.dir);
	snprintf(state, sizeof(state), "%s/state", fix.dir);
	stack_mkdir(bin, 0700);
	stack_mkdir(state, 0700);
	stack_install_script(bin, "exec-answer.sh", 0700);
	stack_install_script(bin, "exec-fail.sh", 0700);
	stack_install_script(bin, "exec-slow.sh", 0700);
	stack_install_script(bin, "exec-flood.sh", 0700);
	stack_install_script(bin, "exec-env.sh", 0700);
	{
		struct stat st;
		char target[300];

		if (lstat("/bin", &st) == 0 && S_ISLNK(st.st_mode)) {
			snprintf(bin_link, sizeof(bin_link), "/bin");
		} else {
			/* A link of our own, to a directory owned by root. */
			snprintf(bin_link, sizeof(bin_link), "%s/usr-bin",
			         fix.dir);
			snprintf(target, sizeof(target), "/usr/bin");
			if (symlink(target, bin_link) < 0)
				stack_die("symlink %s", bin_link);
		}
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		stack_die("PR_SET_CHILD_SUBREAPER");
	write_config();

	test_good();
	test_bad_answers();
	test_slow();
	test_fail();
	test_flood();
	test_env();
	test_paths();
	test_once();
	/* Last, each in a process of its own so that both run. */
	bugs += stack_run_bug("identity", test_identity);
	bugs += stack_run_bug("dir-link", test_dir_link);
	bugs += stack_run_bug("sigchld-ignored", test_sigchld_ignored);

	fixture_stop(&fix);
	if (bugs) {
		printf("%d checks passed, %d known bug(s), see above\n",
		       test_checks, bugs);
		return 1;
	}
	TEST_DONE();
}

/*
 * Provider modules: the sample module loaded from a module_dir, and every
 * module the library must refuse, each with its own message; then
 * open/close cycles that must not grow the process (fds, mappings, RSS),
 * and the same under valgrind with no definite leak.
 *
 * Usage: test-stack-module refuse MODULE MODULE_V2 MODULE_NOENTRY [CLI]
 *        test-stack-module cycles MODULE MODULE_V2 MODULE_NOENTRY [N
 *                          [under-valgrind]]
 *        test-stack-module valgrind MODULE MODULE_V2 MODULE_NOENTRY
 * where the modules are tests/sample-provider*.so as built, and CLI the
 * built ucaas-auth. `valgrind` runs `cycles` (100 of them) under
 * $CLI_WRAPPER (as `meson test --setup valgrind` sets it) or else under
 * valgrind with --leak-check=full; it is skipped (77) without valgrind.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "fixture.h"
#include "test.h"

#define DEFAULT_VALGRIND                                                       \
	"valgrind --quiet --error-exitcode=99 --leak-check=full "              \
	"--errors-for-leak-kinds=definite"

static struct fixture fix;
static const char *module, *module_v2, *module_noentry;
static char mods[300];

/* A directory of modules with its mode, and a module in it. */
static void make_module_dir(const char *name, mode_t mode, char *ret,
                            size_t size)
{
	snprintf(ret, size, "%s/%s", fix.dir, name);
	make_dir(ret, mode);
}

static void install(const char *dir, const char *src, const char *name,
                    mode_t mode)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/%s.so", dir, name);
	copy_file(src, path, mode);
}

static void add_profile(const char *name, const char *dir, const char *lines)
{
	conf_add("[profile %s]\n"
	         "api_base = http://127.0.0.1:9/ucaas/v1\n"
	         "app_id = " FIX_APP_ID "\n"
	         "cache = process\n",
	         name);
	if (dir)
		conf_add("module_dir = %s\n", dir);
	conf_add("%s", lines);
}

static void write_config(void)
{
	char dir[400], path[700], lines[600];
	struct stat st;

	make_module_dir("modules", 0755, mods, sizeof(mods));
	install(mods, module, "sample", 0644);
	install(mods, module_v2, "sample-v2", 0644);
	install(mods, module_noentry, "sample-noentry", 0644);
	install(mods, module, "sample-gw", 0664);
	install(mods, module, "sample-ow", 0646);
	install(mods, module, "sample-other", 0644);
	snprintf(path, sizeof(path), "%s/sample-other.so", mods);
	if (geteuid() == 0 && chown(path, 65534, 65534) < 0)
		fatal("chown %s", path);
	snprintf(path, sizeof(path), "%s/sample-link.so", mods);
	if (symlink("sample.so", path) < 0)
		fatal("symlink %s", path);
	snprintf(path, sizeof(path), "%s/junk.so", mods);
	write_text(path, "not an ELF file\n");
	if (chmod(path, 0644) < 0)
		fatal("chmod %s", path);
	snprintf(path, sizeof(path), "%s/sample-dir.so", mods);
	make_dir(path, 0755);

	conf_reset();
	conf_add("default_profile = good\n");
	add_profile("good", mods, "provider = sample ok name=good\n");
	snprintf(lines, sizeof(lines),
	         "provider = sample ok name=counted count=%s/counted.count\n"
	         "reject_min_age = 0\n",
	         fix.dir);
	add_profile("counted", mods, lines);
	add_profile("lifetime", mods,
	            "provider = sample ok name=life lifetime=120\n");
	add_profile("stack", mods,
	            "provider = optional sample deny name=A\n"
	            "provider = required sample ok name=B\n"
	            "provider = optional basic\n");
	add_profile("crlf", mods, "provider = sample crlf\n");
	add_profile("weird", mods, "provider = requisite sample weird\n");
	add_profile("bad-mode", mods, "provider = sample bogus\n");
	add_profile("silent", mods, "provider = sample silent\n");
	add_profile("open-weird", mods, "provider = sample ok open=-1000\n");
	add_profile("open-silent", mods,
	            "provider = optional basic\n"
	            "provider = required sample ok open=-5\n");
	add_profile("bad-arg", mods, "provider = sample ok colour=blue\n");
	add_profile("no-arg", mods, "provider = sample\n");
	add_profile("v2", mods, "provider = sample-v2 ok\n");
	add_profile("noentry", mods, "provider = sample-noentry ok\n");
	add_profile("gw-file", mods, "provider = sample-gw ok\n");
	add_profile("ow-file", mods, "provider = sample-ow ok\n");
	add_profile("other-file", mods, "provider = sample-other ok\n");
	add_profile("link", mods, "provider = sample-link ok\n");
	add_profile("junk", mods, "provider = junk ok\n");
	add_profile("dir", mods, "provider = sample-dir ok\n");
	add_profile("missing", mods, "provider = nosuch ok\n");
	add_profile("default-dir", NULL, "provider = sample ok\n");
	/* A failure in the second line: the first one is closed again. */
	add_profile("second", mods,
	            "provider = optional sample ok\n"
	            "provider = required sample-noentry ok\n");

	make_module_dir("modules-gw", 0775, dir, sizeof(dir));
	install(dir, module, "sample", 0644);
	add_profile("gw-dir", dir, "provider = sample ok\n");
	make_module_dir("modules-ow", 0757, dir, sizeof(dir));
	install(dir, module, "sample", 0644);
	add_profile("ow-dir", dir, "provider = sample ok\n");
	make_module_dir("modules-other", 0755, dir, sizeof(dir));
	install(dir, module, "sample", 0644);
	if (geteuid() == 0 && chown(dir, 65534, 65534) < 0)
		fatal("chown %s", dir);
	add_profile("other-dir", dir, "provider = sample ok\n");
	/* module_dir itself a link to a good directory. */
	snprintf(dir, sizeof(dir), "%s/modules-link", fix.dir);
	if (symlink(mods, dir) < 0)
		fatal("symlink %s", dir);
	add_profile("dir-link", dir, "provider = sample ok name=link\n");
	if (lstat(dir, &st) < 0)
		fatal("lstat %s", dir);

	/* The sample module and basic, for the cycles. */
	snprintf(lines, sizeof(lines),
	         "provider = optional sample deny name=A\n"
	         "provider = sufficient sample ok name=B\n"
	         "provider = required basic\n");
	add_profile("cycle", mods, lines);
	conf_write(&fix, 0600);
	/* Email and password too, which they do not need (see
	 * test_store_app_key). */
	fixture_store("stack", FIX_APP_KEY, FIX_EMAIL, FIX_PASSWORD);
	fixture_store("cycle", FIX_APP_KEY, FIX_EMAIL, FIX_PASSWORD);
	fixture_store("open-silent", FIX_APP_KEY, FIX_EMAIL, FIX_PASSWORD);
}

static void test_good(void)
{
	struct ucaasauth *ua;
	struct refresh_state st;
	char buf[4096], path[400];
	size_t len;
	time_t before, after;

	CHECK_INT(header_once("good", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer sample-good");
	CHECK_INT(header_once("stack", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer sample-B");
	/* Cached; rejected, asked again. */
	CHECK_INT(ucaasauth_open(&ua, "counted", 0), 0);
	for (int i = 0; i < 10; i++)
		CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	CHECK_STR(buf, "Authorization: Bearer sample-counted");
	snprintf(path, sizeof(path), "%s/counted.count", fix.dir);
	CHECK_INT(count_lines(path), 1);
	CHECK_INT(ucaasauth_reject(ua, "Authorization: Bearer other"), 0);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	CHECK_INT(count_lines(path), 1);
	CHECK_INT(ucaasauth_reject(ua, buf), 0);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	CHECK_STR(buf, "Authorization: Bearer sample-counted");
	CHECK_INT(count_lines(path), 2);
	ucaasauth_close(ua);
	/* The lifetime it gives is the cached header's. */
	CHECK_INT(ucaasauth_open(&ua, "lifetime", 0), 0);
	before = time(NULL);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	after = time(NULL);
	CHECK_STR(buf, "Authorization: Bearer sample-life");
	cache_refresh_state(atomic_load(&ua->view), now_ms(), &st);
	/* 120 s from a moment during the call, however long it took. */
	CHECK_MSG(st.expires_real >= before + 120 &&
	                  st.expires_real <= after + 120,
	          "expires %lld s after the call began, %lld s after it "
	          "ended",
	          (long long)(st.expires_real - before),
	          (long long)(st.expires_real - after));
	ucaasauth_close(ua);
	/* What it returns is judged like any provider's answer. */
	CHECK_INT(header_once("crlf", buf, sizeof(buf)), UCAASAUTH_E_PROTOCOL);
	CHECK_ERROR_HAS("provider 'sample' gave no single safe header line");
	CHECK_STR(buf, "");
	CHECK_INT(header_once("weird", buf, sizeof(buf)), UCAASAUTH_E_PROTOCOL);
	CHECK_ERROR_HAS("provider 'sample' returned status -1000");
	/* A failure without detail: the status's sentence. */
	CHECK_INT(header_once("silent", buf, sizeof(buf)), UCAASAUTH_E_DENIED);
	CHECK_ERROR_HAS("provider 'sample': The server refused the "
	                "credentials");
}

static void test_refused(void)
{
	static const struct {
		const char *profile, *detail;
	} cases[] = {
		{"v2", "/modules/sample-v2.so: provider interface version 2, "
	               "this library speaks version 1"},
		{"noentry", "/modules/sample-noentry.so: no symbol "
	                    "ucaasauth_provider_v1: not a libucaasauth "
	                    "provider"},
		{"second", "/modules/sample-noentry.so: no symbol "
	                   "ucaasauth_provider_v1"},
		{"gw-file", "module /"},
		{"gw-file", "/modules/sample-gw.so: mode 0664 lets group or "
	                    "others write it"},
		{"ow-file", "/modules/sample-ow.so: mode 0646 lets group or "
	                    "others write it"},
		{"gw-dir", "/modules-gw/sample.so: directory /"},
		{"gw-dir", "/modules-gw: mode 0775 lets group or others write "
	                   "it"},
		{"ow-dir", "/modules-ow: mode 0757 lets group or others write "
	                   "it"},
		{"other-file", "/modules/sample-other.so: owned by uid 65534, "
	                       "expected root or 0"},
		{"other-dir", "/modules-other: owned by uid 65534, expected "
	                      "root or 0"},
		{"dir", "/modules/sample-dir.so: not a regular file"},
		{"junk", "/modules/junk.so: "},
		{"missing", "/modules/nosuch.so: No such file or directory"},
		/* The first directory missing on the way, which depends on
		 * the prefix. */
		{"default-dir", "/ucaasauth/modules/sample.so: directory /"},
		{"default-dir", ": No such file or directory"},
		{"bad-mode", "provider 'sample': sample: unknown mode 'bogus'"},
		{"bad-arg", "provider 'sample': sample: unknown argument "
	                    "'colour=blue'"},
		{"no-arg", "provider 'sample': sample: usage: sample MODE"},
		{"open-weird", "provider 'sample' returned status -1000"},
	};
	struct ucaasauth *ua;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (geteuid() != 0 &&
		    strncmp(cases[i].profile, "other", 5) == 0)
			continue; /* only root can give a file away */
		printf("refused: %s\n", cases[i].profile);
		ua = NULL;
		CHECK_INT(ucaasauth_open(&ua, cases[i].profile, 0),
		          UCAASAUTH_E_CONFIG);
		CHECK(ua == NULL);
		CHECK_ERROR_HAS(cases[i].detail);
	}
}

/* What the configuration parser refuses: a relative module_dir, and
 * module names that could leave it. */
static void test_parse(void)
{
	static const struct {
		const char *line, *detail;
	} cases[] = {
		{"module_dir = modules\nprovider = sample ok",
	         "x.conf:4: module_dir: 'modules' is not an absolute path"},
		{"module_dir = ./modules\nprovider = sample ok",
	         "x.conf:4: module_dir: './modules' is not an absolute path"},
		{"provider = ../sample ok",
	         "x.conf:4: provider: '../sample' is neither basic, login, "
	         "exec nor a module name"},
		{"provider = required ..",
	         "x.conf:4: provider: '..' is neither"},
		{"provider = a/b", "x.conf:4: provider: 'a/b' is neither"},
		{"provider = /tmp/evil", "x.conf:4: provider: '/tmp/evil' is "
	                                 "neither"},
		{"provider = sufficient sample.so", "'sample.so' is neither"},
		{"provider = Sample", "'Sample' is neither"},
		{"provider = mandatory basic",
	         "unknown control word 'mandatory'"},
		{"provider = required", "'required' names no provider"},
		{"provider = basic\nprovider = required login",
	         "x.conf:4: provider: in a stack of several providers each "
	         "line needs a control word"},
		{"provider = optional basic\nprovider = optional basic\n"
	         "provider = optional basic\nprovider = optional basic\n"
	         "provider = optional basic\nprovider = optional basic\n"
	         "provider = optional basic\nprovider = optional basic\n"
	         "provider = optional basic",
	         "x.conf:12: provider: more than 8 providers"},
		{"provider = required sample 1 2 3 4 5 6 7 8 9 10 11 12 13 14 "
	         "15 16 17",
	         "x.conf:4: provider: more than 16 arguments"},
	};
	struct config *config = NULL;
	char text[600], path[400];
	struct ucaasauth *ua = NULL;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text),
		         "[profile p]\napi_base = http://127.0.0.1:9\n"
		         "app_id = a\n%s\n",
		         cases[i].line);
		printf("parse: %s\n", cases[i].line);
		CHECK_INT(config_parse(text, strlen(text), "/etc/x.conf",
		                       &config),
		          UCAASAUTH_E_CONFIG);
		CHECK(config == NULL);
		CHECK_ERROR_HAS(cases[i].detail);
	}
	/* And through ucaasauth_open(). */
	snprintf(path, sizeof(path), "%s/relative.conf", fix.dir);
	write_text(path, "[profile p]\napi_base = http://127.0.0.1:9\n"
	                 "app_id = a\nmodule_dir = modules\n"
	                 "provider = sample ok\n");
	CHECK_INT(setenv("UCAASAUTH_CONFIG", path, 1), 0);
	CHECK_INT(ucaasauth_open(&ua, "p", 0), UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("relative.conf:4: module_dir: 'modules' is not an "
	                "absolute path");
	write_text(path, "[profile p]\napi_base = http://127.0.0.1:9\n"
	                 "app_id = a\nprovider = ../modules/sample ok\n");
	CHECK_INT(ucaasauth_open(&ua, "p", 0), UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("relative.conf:4: provider: '../modules/sample' is "
	                "neither");
	CHECK(ua == NULL);
	CHECK_INT(setenv("UCAASAUTH_CONFIG", fix.conf, 1), 0);
}

/* At most 16 arguments after a provider's name, control word or not. */
static void test_arg_limit(void)
{
	struct config *config = NULL;
	const struct profile *p;
	char text[600];

	snprintf(text, sizeof(text),
	         "[profile p]\napi_base = http://127.0.0.1:9\napp_id = a\n"
	         "provider = sample 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n");
	CHECK_INT(config_parse(text, strlen(text), "/etc/x.conf", &config), 0);
	CHECK_INT(config_find(config, "p", &p), 0);
	CHECK_INT(p->stack[0].argc, 16);
	config_free(config);
	config = NULL;
	snprintf(text, sizeof(text),
	         "[profile p]\napi_base = http://127.0.0.1:9\napp_id = a\n"
	         "provider = sample 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 "
	         "17\n");
	/* Regression (fixed): config.c set_provider() sizes its word array for a control
	 * word, a name and STACK_ARGS_MAX (16) arguments, and checks the
	 * count of words, not of arguments: without a control word, a line
	 * with 17 arguments is accepted (argc 17 > STACK_ARGS_MAX), while
	 * "provider = required sample" with the same 17 is refused with
	 * "more than 16 arguments". It should refuse both. */
	CHECK_INT(config_parse(text, strlen(text), "/etc/x.conf", &config),
	          UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("more than 16 arguments");
	config_free(config);
}

/* ucaas-auth check: the stack, and the module's refusal, on the way. */
static void test_cli(const char *cli)
{
	char out[8192];
	char *check_good[] = {(char *)cli, "check", "stack", NULL};
	char *check_v2[] = {(char *)cli, "check", "v2", NULL};
	char *check_gw[] = {(char *)cli, "check", "gw-dir", NULL};

	CHECK_INT(run_wrapped(check_good, out, sizeof(out)), 0);
	printf("%s", out);
	CHECK(strstr(out, "profile stack: stack providers, cache = process\n"));
	CHECK(strstr(out, "  1. optional   sample deny name=A\n"));
	CHECK(strstr(out, "  2. required   sample ok name=B\n"));
	CHECK(strstr(out, "  3. optional   basic\n"));
	CHECK(strstr(out, "credentials, modules and commands: ok\n"));
	CHECK_INT(run_wrapped(check_v2, out, sizeof(out)), 1);
	printf("%s", out);
	CHECK(strstr(out, "provider interface version 2, this library speaks "
	                  "version 1"));
	CHECK(!strstr(out, "modules and commands: ok"));
	CHECK_INT(run_wrapped(check_gw, out, sizeof(out)), 1);
	CHECK(strstr(out, "/modules-gw: mode 0775 lets group or others write"));
}

/*
 * A module directory reached through a symbolic link (a packaged
 * /usr/lib/... -> /usr/lib64/..., or /lib -> usr/lib on merged /usr).
 */
static void test_dir_link(void)
{
	char buf[4096];

	/* Regression (fixed): file.c check_trusted() lstat()s the module directory, so
	 * module_dir = a symbolic link to a good directory (owned by us,
	 * mode 0755) is refused with "directory of DIR: not a directory";
	 * it should check the directory the link leads to and load
	 * sample.so from it. */
	CHECK_INT(header_once("dir-link", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer sample-link");
}

/* A module whose open fails without a word of detail. */
static void test_open_silent(void)
{
	struct ucaasauth *ua = NULL;

	/* Something else failed before, in this thread. */
	CHECK_INT(ucaasauth_open(&ua, "no-such-profile", 0),
	          UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("no profile 'no-such-profile'");
	CHECK_INT(ucaasauth_open(&ua, "open-silent", 0),
	          UCAASAUTH_E_UNAVAILABLE);
	CHECK(ua == NULL);
	/* Regression (fixed): stack.c stack_open(): when a module's open() fails with a
	 * UCAASAUTH_E_* status and without calling args->error, the status
	 * is returned bare and ucaasauth_last_error() still holds the text
	 * of the previous, unrelated failure ("no profile
	 * 'no-such-profile'"); it should name the provider and the status,
	 * as fetch_one() does ("provider 'sample': <strerror>"). */
	CHECK_ERROR_HAS("provider 'sample'");
}

/* The secrets of a stack whose only built-in provider is basic: the App
 * Key, nothing else. */
static void test_store_app_key(void)
{
	struct config *config = NULL;
	const struct profile *p;
	struct secrets *secrets = secrets_new();
	char buf[4096];

	CHECK(secrets != NULL);
	CHECK_INT(config_load(fix.conf, &config), 0);
	CHECK_INT(config_find(config, "stack", &p), 0);
	snprintf(secrets->app_key, sizeof(secrets->app_key), "%s", FIX_APP_KEY);
	/* Regression (fixed): credstore.c cred_store() judges a stack profile with
	 * secrets_missing(secrets, PROVIDER_STACK), which asks for email and
	 * password whatever the stack holds: a stack of modules and basic
	 * (optional sample + required sample + optional basic here) cannot
	 * be stored with its App Key alone ("the stack provider needs
	 * email"), while a stack with login and basic is stored without the
	 * App Key it needs. It should require what each built-in provider
	 * of the stack needs, as load_secrets() in handle.c does. */
	CHECK_INT(cred_store(p, secrets), 0);
	CHECK_INT(header_once("stack", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer sample-B");
	secrets_free(secrets);
	config_free(config);
}

/* n open/header/close cycles, and failed opens of refused modules. Under
 * valgrind, whose own memory grows with every dlclose(), RSS is not
 * judged. */
static void cycles(int n, bool under_valgrind)
{
	char buf[4096];
	struct ucaasauth *ua;
	int fds = 0, maps = 0;
	long rss = 0;

	for (int i = 0; i < n + 20; i++) {
		if (i == 20) {
			fds = fd_count();
			maps = map_count();
			rss = rss_kb();
		}
		CHECK_INT(ucaasauth_open(&ua, "cycle", 0), 0);
		CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &(size_t){0}),
		          0);
		CHECK_STR(buf, "Authorization: Bearer sample-B");
		ucaasauth_close(ua);
		CHECK_INT(ucaasauth_open(&ua, "second", 0), UCAASAUTH_E_CONFIG);
		CHECK_INT(ucaasauth_open(&ua, "v2", 0), UCAASAUTH_E_CONFIG);
		CHECK_INT(ucaasauth_open(&ua, "bad-mode", 0),
		          UCAASAUTH_E_CONFIG);
	}
	printf("%d cycles: fds %d -> %d, mappings %d -> %d, RSS %ld -> %ld "
	       "kB\n",
	       n, fds, fd_count(), maps, map_count(), rss, rss_kb());
	CHECK_INT(fd_count(), fds);
	/* The sanitizers' allocators map as they please. */
	if (!TEST_SANITIZED)
		CHECK(map_count() <= maps + 2);
	if (!under_valgrind && !TEST_SANITIZED)
		CHECK(rss_kb() - rss < 2048);
}

/* The same cycles in a child run under valgrind. */
static int run_valgrind(char **argv)
{
	const char *wrapper = getenv("CLI_WRAPPER");
	char words[1024], *args[64], *save = NULL, self[4096];
	int n = 0, status;
	ssize_t len;
	pid_t pid;

	if (TEST_SANITIZED) {
		printf("a sanitizer build cannot run under valgrind: "
		       "skipped\n");
		return 77;
	}
	if (!wrapper || !*wrapper) {
		if (access("/usr/bin/valgrind", X_OK) < 0 &&
		    access("/usr/local/bin/valgrind", X_OK) < 0) {
			printf("valgrind not found: skipped\n");
			return 77;
		}
		wrapper = DEFAULT_VALGRIND;
	}
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len < 0)
		fatal("readlink /proc/self/exe");
	self[len] = 0;
	snprintf(words, sizeof(words), "%s", wrapper);
	for (char *w = strtok_r(words, " \t", &save); w && n < 50;
	     w = strtok_r(NULL, " \t", &save))
		args[n++] = w;
	args[n++] = self;
	args[n++] = "cycles";
	args[n++] = argv[2];
	args[n++] = argv[3];
	args[n++] = argv[4];
	args[n++] = "100";
	args[n++] = "under-valgrind";
	args[n] = NULL;
	printf("running:");
	for (int i = 0; i < n; i++)
		printf(" %s", args[i]);
	printf("\n");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		fatal("fork");
	if (pid == 0) {
		execvp(args[0], args);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			fatal("waitpid");
	CHECK(WIFEXITED(status));
	/* 99: valgrind found an error or a definite leak. */
	CHECK_INT(WEXITSTATUS(status), 0);
	TEST_DONE();
}

int main(int argc, char **argv)
{
	int bugs = 0;

	if (argc < 5) {
		fprintf(stderr,
		        "usage: %s refuse|cycles|valgrind MODULE MODULE_V2 "
		        "MODULE_NOENTRY [CLI|N]\n",
		        argv[0]);
		return 2;
	}
	module = argv[2];
	module_v2 = argv[3];
	module_noentry = argv[4];
	if (strcmp(argv[1], "valgrind") == 0)
		return run_valgrind(argv);

	fixture_start(&fix, 0, NULL);
	write_config();
	if (strcmp(argv[1], "cycles") == 0) {
		cycles(argc > 5 ? atoi(argv[5]) : 1000,
		       argc > 6 && strcmp(argv[6], "under-valgrind") == 0);
	} else if (strcmp(argv[1], "refuse") == 0) {
		test_good();
		test_refused();
		test_parse();
		if (argc > 5)
			test_cli(argv[5]);
		bugs += run_bug("module-dir-link", test_dir_link);
		bugs += run_bug("store-app-key", test_store_app_key);
		bugs += run_bug("open-silent", test_open_silent);
		bugs += run_bug("arg-limit", test_arg_limit);
	} else {
		fprintf(stderr, "unknown scenario %s\n", argv[1]);
		fixture_stop(&fix);
		return 2;
	}
	fixture_stop(&fix);
	if (bugs) {
		printf("%d checks passed, %d known bug(s), see above\n",
		       test_checks, bugs);
		return 1;
	}
	TEST_DONE();
}

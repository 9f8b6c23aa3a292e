/*
 * The trust checks on provider modules and exec commands
 * (file_open_trusted()): every directory from / down is checked, not only
 * the one that holds the file, and what is loaded or run is the very file
 * that was checked, not whatever its name leads to a moment later.
 *
 * The swap tests rename another module or script over the checked one at
 * the one moment between the check and the use. This program is linked
 * with -Wl,--wrap=dlopen,--wrap=pipe2 (tests/meson.build): the library's
 * calls to them, in this program only, come here first. dlopen() is the
 * load itself; pipe2() is the exec provider's first call after it checked
 * the command, before it runs it. The library itself has no hook.
 *
 * Usage: test-stack-trust MODULE HOSTILE_MODULE [TEST...]
 * where MODULE is tests/sample-provider.so and HOSTILE_MODULE the same
 * built with another header prefix ("hostile-"). Each test runs in a
 * process of its own, so that one failure does not hide another.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "test.h"

static struct fixture fix;
static const char *module, *hostile_module;
static char state[300];

/* The swap: swap_from renamed over swap_to at the next call of the
 * function armed. */
enum {
	SWAP_NONE,
	SWAP_AT_DLOPEN,
	SWAP_AT_PIPE2
};
static int armed, swaps;
static char swap_from[600], swap_to[600];

void *__real_dlopen(const char *name, int flags);
void *__wrap_dlopen(const char *name, int flags);
int __real_pipe2(int fds[2], int flags);
int __wrap_pipe2(int fds[2], int flags);

static void swap_if(int at)
{
	if (armed != at)
		return;
	armed = SWAP_NONE;
	if (rename(swap_from, swap_to) < 0)
		fatal("rename %s %s", swap_from, swap_to);
	swaps++;
}

void *__wrap_dlopen(const char *name, int flags)
{
	swap_if(SWAP_AT_DLOPEN);
	return __real_dlopen(name, flags);
}

int __wrap_pipe2(int fds[2], int flags)
{
	swap_if(SWAP_AT_PIPE2);
	return __real_pipe2(fds, flags);
}

/* Names relative to the fixture's directory. */
static void arm(int at, const char *from, const char *to)
{
	snprintf(swap_from, sizeof(swap_from), "%s/%s", fix.dir, from);
	snprintf(swap_to, sizeof(swap_to), "%s/%s", fix.dir, to);
	armed = at;
}

/* fix.dir/rel, made with mode (its path in ret), with a copy of the
 * module src in it as sample.so (NULL: none). */
static void dir_at(const char *rel, mode_t mode, const char *src, char *ret,
                   size_t size)
{
	char path[700];

	snprintf(ret, size, "%s/%s", fix.dir, rel);
	make_dir(ret, mode);
	if (!src)
		return;
	snprintf(path, sizeof(path), "%s/sample.so", ret);
	copy_file(src, path, 0644);
}

static void module_profile(const char *name, const char *dir, const char *line)
{
	conf_add("[profile %s]\n"
	         "api_base = http://127.0.0.1:9/ucaas/v1\n"
	         "app_id = " FIX_APP_ID "\n"
	         "cache = process\n"
	         "module_dir = %s\n"
	         "provider = %s\n",
	         name, dir, line);
}

/* Profile NAME: exec-answer.sh installed in dir, answering
 * "Authorization: Bearer NAME". */
static void exec_profile(const char *name, const char *dir)
{
	char json[600], line[1400];

	snprintf(json, sizeof(json), "%s/%s.json", state, name);
	snprintf(line, sizeof(line),
	         "{\"header\": \"Authorization: Bearer %s\"}\n", name);
	write_text(json, line);
	install_script(dir, "exec-answer.sh", 0700);
	conf_add("[profile %s]\n"
	         "api_base = http://127.0.0.1:9/ucaas/v1\n"
	         "app_id = " FIX_APP_ID "\n"
	         "cache = process\n"
	         "provider = exec %s/exec-answer.sh %s/%s.count %s\n",
	         name, dir, state, name, json);
}

static void write_config(void)
{
	char dir[400], sub[500], path[600];

	snprintf(state, sizeof(state), "%s/state", fix.dir);
	make_dir(state, 0700);
	conf_reset();

	/* A good module directory, for links to lead to; with another
	 * module, loaded after the first from the same descriptor number. */
	dir_at("modules", 0755, module, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/other.so", dir);
	copy_file(hostile_module, path, 0644);
	module_profile("mod-two", dir,
	               "optional sample deny\n"
	               "provider = required other ok name=two");

	/* The module's directory is fine, the one above it is not. */
	dir_at("gp-mod", 0775, NULL, dir, sizeof(dir));
	dir_at("gp-mod/modules", 0755, module, dir, sizeof(dir));
	module_profile("mod-ancestor", dir, "sample ok");

	/* module_dir named through a directory others may write, whose
	 * link leads to a good one. */
	dir_at("open", 0777, NULL, dir, sizeof(dir));
	snprintf(sub, sizeof(sub), "%s/link", dir);
	snprintf(path, sizeof(path), "%s/modules", fix.dir);
	if (symlink(path, sub) < 0)
		fatal("symlink %s", sub);
	module_profile("mod-named-link", sub, "sample ok");

	/* A sticky directory others may write, like /tmp: what is ours in
	 * it is fine, what is another user's is not. */
	dir_at("sticky", 01777, NULL, dir, sizeof(dir));
	dir_at("sticky/modules", 0755, module, dir, sizeof(dir));
	module_profile("mod-sticky", dir, "sample ok name=sticky");
	dir_at("sticky/theirs", 0755, module, dir, sizeof(dir));
	if (geteuid() == 0 && chown(dir, 65534, 65534) < 0)
		fatal("chown %s", dir);
	module_profile("mod-sticky-theirs", dir, "sample ok");
	snprintf(sub, sizeof(sub), "%s/sticky/their-link", fix.dir);
	snprintf(path, sizeof(path), "%s/modules", fix.dir);
	if (symlink(path, sub) < 0)
		fatal("symlink %s", sub);
	if (geteuid() == 0 && lchown(sub, 65534, 65534) < 0)
		fatal("lchown %s", sub);
	module_profile("mod-sticky-link", sub, "sample ok");

	/* The module swapped for another between the check and the load;
	 * the other one waits beside it. */
	dir_at("swap-mod", 0755, module, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/hostile.tmp", dir);
	copy_file(hostile_module, path, 0644);
	module_profile("mod-swap", dir, "sample ok name=swap");

	/* The same for commands. */
	dir_at("gp-exec", 0757, NULL, dir, sizeof(dir));
	dir_at("gp-exec/bin", 0700, NULL, dir, sizeof(dir));
	exec_profile("exec-ancestor", dir);
	dir_at("later", 0755, NULL, dir, sizeof(dir));
	dir_at("later/bin", 0700, NULL, dir, sizeof(dir));
	exec_profile("exec-later", dir);
	dir_at("swap-bin", 0700, NULL, dir, sizeof(dir));
	exec_profile("exec-swap", dir);
	snprintf(path, sizeof(path), "%s/hostile.tmp", dir);
	write_text(path, "#!/bin/sh\n"
	                 "echo '{\"header\": \"Authorization: Bearer "
	                 "hostile\"}'\n");
	if (chmod(path, 0700) < 0)
		fatal("chmod %s", path);
	/* A binary, not a script. */
	snprintf(path, sizeof(path), "%s/cat.json", state);
	write_text(path, "{\"header\": \"Authorization: Bearer cat\"}\n");
	conf_add("[profile exec-binary]\n"
	         "api_base = http://127.0.0.1:9/ucaas/v1\n"
	         "app_id = " FIX_APP_ID "\n"
	         "cache = process\n"
	         "provider = exec /usr/bin/cat %s\n",
	         path);
	conf_write(&fix, 0600);
}

static void refused(const char *profile, const char *detail)
{
	struct ucaasauth *ua = NULL;

	CHECK_INT(ucaasauth_open(&ua, profile, 0), UCAASAUTH_E_CONFIG);
	printf("refused: %s: %s\n", profile, ucaasauth_last_error());
	CHECK(ua == NULL);
	CHECK_ERROR_HAS(detail);
}

/* A directory above the module's directory that group or others may
 * write: the whole path is refused, naming that directory. */
static void test_module_ancestor(void)
{
	refused("mod-ancestor", "/gp-mod/modules/sample.so: directory /");
	refused("mod-ancestor", "/gp-mod: mode 0775 lets group or others "
	                        "write it");
}

static void test_exec_ancestor(void)
{
	refused("exec-ancestor", "/gp-exec/bin/exec-answer.sh: directory /");
	refused("exec-ancestor", "/gp-exec: mode 0757 lets group or others "
	                         "write it");
}

/* The directories the name goes through count, not only those it leads
 * to: whoever can write /open can point /open/link elsewhere. */
static void test_named_link(void)
{
	refused("mod-named-link", "/open: mode 0777 lets group or others "
	                          "write it");
}

/* A sticky directory such as /tmp (the fixture's own is in /tmp): what
 * is ours in it is used, another user's directory or link is not. */
static void test_sticky(void)
{
	char buf[4096];

	CHECK_INT(header_once("mod-sticky", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer sample-sticky");
	if (geteuid() != 0) {
		printf("not root: no directory of another user\n");
		return;
	}
	refused("mod-sticky-theirs", "/sticky/theirs: owned by uid 65534, "
	                             "expected root or 0");
	refused("mod-sticky-link", ": link /");
	refused("mod-sticky-link", "/sticky/their-link: owned by uid 65534");
}

/* An exec command is checked again before each run. */
static void test_exec_later(void)
{
	struct ucaasauth *ua = NULL;
	char buf[4096], dir[400];
	size_t len;

	CHECK_INT(ucaasauth_open(&ua, "exec-later", 0), 0);
	snprintf(dir, sizeof(dir), "%s/later", fix.dir);
	CHECK_INT(chmod(dir, 0777), 0);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len),
	          UCAASAUTH_E_CONFIG);
	printf("exec-later: %s\n", ucaasauth_last_error());
	CHECK_ERROR_HAS("/later: mode 0777 lets group or others write it");
	CHECK_INT(chmod(dir, 0755), 0);
	ucaasauth_close(ua);
}

/*
 * Profile `profile` with `from` renamed over `to` at the call `at`,
 * between the check and the use: the checked file answers `good`. Then,
 * the swap done, the other file answers `other`: the swap was real.
 */
static void swapped(int at, const char *from, const char *to,
                    const char *profile, const char *good, const char *other)
{
	char buf[4096];

	arm(at, from, to);
	CHECK_INT(header_once(profile, buf, sizeof(buf)), 0);
	CHECK_INT(swaps, 1);
	CHECK_STR(buf, good);
	CHECK_INT(header_once(profile, buf, sizeof(buf)), 0);
	CHECK_STR(buf, other);
}

/* Another module renamed over the checked one just before dlopen(). */
static void test_module_swap(void)
{
	swapped(SWAP_AT_DLOPEN, "swap-mod/hostile.tmp", "swap-mod/sample.so",
	        "mod-swap", "Authorization: Bearer sample-swap",
	        "Authorization: Bearer hostile-swap");
}

/* Another script renamed over the checked command just before it runs. */
static void test_exec_swap(void)
{
	swapped(SWAP_AT_PIPE2, "swap-bin/hostile.tmp",
	        "swap-bin/exec-answer.sh", "exec-swap",
	        "Authorization: Bearer exec-swap",
	        "Authorization: Bearer hostile");
}

/* The second module is loaded from the descriptor number the first was
 * loaded from (closed since): it is the second that answers, not the
 * first handed back by dlopen() for the same /proc/self/fd/N. */
static void test_two_modules(void)
{
	char buf[4096];

	CHECK_INT(header_once("mod-two", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer hostile-two");
}

/*
 * Without /proc (root only, in a mount namespace of its own, with an
 * empty tmpfs on /proc): a module cannot be loaded from the descriptor
 * checked, and is refused rather than loaded by its name again; a binary
 * command still runs from its descriptor; a script's interpreter cannot
 * open /dev/fd/3, and says so.
 */
static void test_no_proc(void)
{
	char buf[4096];

	if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("none", "/proc", "tmpfs", 0, NULL) < 0) {
		printf("no mount namespace of our own (%s): skipped\n",
		       strerror(errno));
		return;
	}
	refused("mod-sticky", "/sticky/modules/sample.so: cannot load it "
	                      "through /proc/self/fd (is /proc mounted?)");
	CHECK_INT(header_once("exec-binary", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer cat");
	CHECK_INT(header_once("exec-later", buf, sizeof(buf)),
	          UCAASAUTH_E_UNAVAILABLE);
	printf("no-proc: %s\n", ucaasauth_last_error());
	CHECK_ERROR_HAS("/dev/fd/3");
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{"module-ancestor", test_module_ancestor},
	{"exec-ancestor", test_exec_ancestor},
	{"named-link", test_named_link},
	{"sticky", test_sticky},
	{"exec-later", test_exec_later},
	{"two-modules", test_two_modules},
	{"module-swap", test_module_swap},
	{"exec-swap", test_exec_swap},
	{"no-proc", test_no_proc},
};

int main(int argc, char **argv)
{
	int failed = 0, ran = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: %s MODULE HOSTILE_MODULE [TEST...]\n",
		        argv[0]);
		return 2;
	}
	module = argv[1];
	hostile_module = argv[2];
	fixture_start(&fix, 0, NULL);
	write_config();
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		bool named = argc == 3;

		for (int a = 3; a < argc; a++)
			named |= strcmp(argv[a], tests[i].name) == 0;
		if (!named)
			continue;
		ran++;
		failed += run_apart(tests[i].name, tests[i].fn);
	}
	fixture_stop(&fix);
	if (ran == 0) {
		fprintf(stderr, "no such test\n");
		return 2;
	}
	if (failed) {
		printf("%d of %d tests failed\n", failed, ran);
		return 1;
	}
	printf("ok: %d tests\n", ran);
	return 0;
}

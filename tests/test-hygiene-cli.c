/*
 * Secret hygiene of the CLI: no secret in argv or the environment of
 * `ucaas-auth store` while it reads its secrets, nor in any output of the
 * CLI but the header and the token that `header` and `token` exist to
 * print; refused input is never echoed.
 *
 * usage: test-hygiene-cli PATH-TO-ucaas-auth   (without it: skipped, 77)
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "hygiene.h"
#include "internal.h"
#include "test.h"

/* A NULL-terminated argument list, in place. */
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static const char *cli;

struct run {
	int status;
	char *out, *err; /* wiped and freed by run_free */
	size_t out_len, err_len;
	bool proc_checked, proc_clean; /* its cmdline and environ */
};

static void run_free(struct run *r)
{
	if (r->out)
		sodium_memzero(r->out, r->out_len);
	if (r->err)
		sodium_memzero(r->err, r->err_len);
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

/* True once pid sleeps in read(0): from /proc/PID/syscall, or where that
 * is not readable (ptrace restrictions), once it has exec()ed and
 * sleeps. */
static bool waits_for_stdin(pid_t pid, const char *own_cmdline)
{
	char path[64], *s, *cmd;
	long nr = -1;
	unsigned long fd = 1;
	bool yes;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	s = read_text(path, NULL);
	if (s && s[0]) {
		yes = sscanf(s, "%ld %lx", &nr, &fd) == 2 && nr == SYS_read &&
		      fd == 0;
		free(s);
		return yes;
	}
	free(s);
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	cmd = read_text(path, NULL);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	s = read_text(path, NULL);
	yes = cmd && s && strcmp(cmd, own_cmdline) != 0 && strchr(s, ')') &&
	      strncmp(strrchr(s, ')'), ") S", 3) == 0;
	free(cmd);
	free(s);
	return yes;
}

/* Its cmdline and environ, once it waits in read(0) for its secrets. */
static void inspect(pid_t pid, struct run *r)
{
	char *own = read_text("/proc/self/cmdline", NULL);
	int64_t deadline = ms_now() + 10000;

	CHECK(own != NULL);
	while (!waits_for_stdin(pid, own) && ms_now() < deadline)
		ms_sleep(5);
	free(own);
	r->proc_checked = ms_now() < deadline;
	r->proc_clean = proc_clean(pid);
}

static void drain(int fd, char **buf, size_t *len)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n <= 0)
		return;
	*buf = realloc(*buf, *len + (size_t)n + 1);
	if (!*buf)
		test_fail_("out of memory");
	memcpy(*buf + *len, tmp, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = 0;
	sodium_memzero(tmp, sizeof(tmp));
}

/*
 * Runs the CLI with args; with `input` (from scratch), stdin is a pipe
 * held open until the process waits for it, its /proc entries are
 * inspected, then input is written and the pipe closed.
 */
static void run_cli(const char *const *args, const char *input, struct run *r)
{
	int in[2], out[2], err[2], status;
	const char *argv[16];
	size_t n = 0;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	argv[n++] = cli;
	for (; args[n - 1] && n < ARRAY_SIZE(argv) - 1; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	CHECK_INT(pipe2(in, O_CLOEXEC), 0);
	CHECK_INT(pipe2(out, O_CLOEXEC), 0);
	CHECK_INT(pipe2(err, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		execv(cli, (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (input) {
		size_t len = strlen(input);

		inspect(pid, r);
		CHECK_INT(write(in[1], input, len), (long long)len);
	}
	close(in[1]);
	for (int open_fds = 2; open_fds > 0;) {
		struct pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};

		if (poll(p, 2, 20000) <= 0)
			test_fail_("ucaas-auth %s: no output for 20 s",
			           args[0]);
		open_fds = 0;
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0)
				continue;
			if (p[i].revents) {
				size_t before = i ? r->err_len : r->out_len;
				drain(p[i].fd, i ? &r->err : &r->out,
				      i ? &r->err_len : &r->out_len);
				if (before == (i ? r->err_len : r->out_len)) {
					close(p[i].fd);
					if (i)
						err[0] = -1;
					else
						out[0] = -1;
					continue;
				}
			}
			open_fds++;
		}
	}
	CHECK_INT(waitpid(pid, &status, 0), pid);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
	if (!r->out)
		r->out = calloc(1, 1);
	if (!r->err)
		r->err = calloc(1, 1);
}

#define CHECK_EXIT(r, want)                                                    \
	do {                                                                   \
		if ((r)->status != (want))                                     \
			fprintf(stderr, "ucaas-auth: exit %d\n%s%s\n",         \
			        (r)->status, (r)->out, (r)->err);              \
		CHECK_INT((r)->status, (want));                                \
	} while (0)

/* Every byte it printed, but the header or token `allowed` stands for. */
static void check_outputs(const struct run *r, unsigned allowed,
                          const char *what)
{
	CHECK_CLEAN(r->out, r->out_len, SECRETS & ~allowed, what);
	CHECK_CLEAN(r->err, r->err_len, SECRETS, what);
}

/*
 * `ucaas-auth ARGS` without input: it exits `want` and prints no secret
 * but those in `allowed` (`what` names it in a failure). The run stays in
 * r, for further checks, until run_free.
 */
static void cli_run(struct run *r, const char *what, int want, unsigned allowed,
                    const char *const *args)
{
	run_cli(args, NULL, r);
	CHECK_EXIT(r, want);
	check_outputs(r, allowed, what);
}

/* The same, nothing more to check. */
static void cli_ok(const char *what, int want, unsigned allowed,
                   const char *const *args)
{
	struct run r;

	cli_run(&r, what, want, allowed, args);
	run_free(&r);
}

/*
 * `ucaas-auth store PROFILE` fed `fmt`, each %s in it standing for secret
 * id: it exits `want`; while it waited for its input, its argv and
 * environment held no secret; its output holds none.
 */
static void cli_store(const char *profile, const char *fmt, int id, int want)
{
	char what[64];
	struct run r;

	unmask_fmt(scr->text, fmt, id);
	snprintf(what, sizeof(what), "store %s%s", profile,
	         want ? ", refused input" : "");
	run_cli(ARGS("store", profile), scr->text, &r);
	wipe_scratch();
	CHECK_EXIT(&r, want);
	CHECK(r.proc_checked);
	CHECK(r.proc_clean);
	check_outputs(&r, 0, what);
	run_free(&r);
}

static void test_cli(void)
{
	static const char *const bad[] = {"password=%s\a\n", "%s\n",
	                                  "bogus=%s\n",
	                                  "password=x\npassword=%s\n"};
	char key2[PATH_MAX];
	struct run r;

	snprintf(key2, sizeof(key2), "%s/second.key", world.dir);
	run_cli(ARGS("keygen", "--key-file", key2), NULL, &r);
	CHECK_EXIT(&r, 0);
	/* Learnt before its output is searched for it. */
	CHECK_INT(learn_key(key2, S_KEY2, -1), MASTER_KEY_BYTES);
	check_outputs(&r, 0, "keygen");
	run_free(&r);
	/* Refusing to overwrite it, say so without the key. */
	cli_ok("keygen again", 1, 0, ARGS("keygen", "--key-file", key2));

	/* store: the secrets come on stdin, never argv or environ. */
	cli_store("srv", "app_key=%s\n", S_APP_KEY, 0);
	cli_store("tok", "email=" EMAIL "\npassword=%s\n", S_PASSWORD, 0);
	/* Refused input, a secret in it: never echoed. */
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cli_store("tok", bad[i], S_PASSWORD, 1);

	/* The Basic header is what `header` is for, and the secrets the
	 * store above wrote. */
	cli_run(&r, "header srv", 0, 1u << S_BASIC, ARGS("header", "srv"));
	unmask_fmt(scr->text, "Authorization: Basic %s\n", S_BASIC);
	CHECK(strcmp(r.out, scr->text) == 0);
	wipe_scratch();
	run_free(&r);
	cli_run(&r, "header tok", 0, 0, ARGS("header", "tok"));
	CHECK(strncmp(r.out, "Authorization: Token ", 21) == 0);
	run_free(&r);
	cli_ok("token shr", 0, 0, ARGS("token", "shr"));
	cli_ok("token --json shr", 0, 0, ARGS("token", "--json", "shr"));
	/* status shows the cache, never the token. */
	CHECK_LEARN_TOKEN(S_TOKEN_A);
	cli_run(&r, "status shr", 0, 0, ARGS("status", "shr"));
	CHECK_CLEAN(r.out, r.out_len, 1u << S_TOKEN_A, "status shr");
	run_free(&r);
	cli_ok("status srv", 0, 0, ARGS("status", "srv"));
	cli_ok("flush shr", 0, 0, ARGS("flush", "shr"));

	/* Failures: refused, then backing off (status shows the error). */
	CHECK_INT(mock_config(&world.mock,
	                      "{\"password\": \"not-the-stored-one\"}"),
	          0);
	cli_run(&r, "header shr, denied", 1, 0, ARGS("header", "shr"));
	CHECK(strstr(r.err, "refused") != NULL);
	run_free(&r);
	cli_run(&r, "status shr, after a refusal", 0, 0, ARGS("status", "shr"));
	CHECK(strstr(r.out, "last error") != NULL);
	run_free(&r);
	cli_ok("token down", 1, 0, ARGS("token", "down"));
	CHECK_INT(mock_reset(&world.mock), 0);
}

int main(int argc, char **argv)
{
	if (argc < 2 || access(argv[1], X_OK) != 0) {
		printf("note: no ucaas-auth given (argv[1]): skipped\n");
		return 77;
	}
	cli = argv[1];
	hygiene_start(argv);
	test_cli();
	hygiene_stop();
	TEST_DONE();
}

/*
 * The exec provider: a command that prints a token or a header as JSON,
 * run without a shell, in a clean environment, within a hard time limit;
 * the whole tree it started killed when it overstays, wherever it moved;
 * one run per refresh for the whole host.
 *
 * The test is a child subreaper (PR_SET_CHILD_SUBREAPER): whatever the
 * provider lets go of comes back to it, so that it can tell a process the
 * provider killed and reaped from one that still runs or was left to the
 * host.
 *
 * Usage: test-stack-exec [noclose PRELOAD] [TEST...]
 * With "noclose", runs again with PRELOAD (exec-noclose-range.so) in
 * LD_PRELOAD, so that close_range() fails and the provider's fallback
 * closes descriptors one by one. TEST names run only those tests.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cache.h"
#include "fixture.h"
#include "test.h"

/* The provider's grace after `timeout` (GRACE_MS in provider-exec.c), and
 * the margin a loaded machine (sanitizers, valgrind, a busy CI box) gets on
 * top: the one elapsed-time bound the tests assert, against commands that
 * would hold the caller 30 s. */
#define GRACE_MS 500
#define LOADED_MS 8000
#define BOUND_MS(timeout_s) ((timeout_s)*1000 + GRACE_MS + LOADED_MS)
/* How long a bounded poll for an outcome waits. */
#define SETTLE_MS 10000

static struct fixture fix;
static char bin[300], state[300];
/* /bin when it is a symbolic link to a directory, else one made so. */
static char bin_link[300];

/* A profile of one exec line, cache = process unless `extra` says. */
static void add_exec_profile(const char *name, const char *app_id,
                             const char *extra, const char *command_line)
{
	conf_add("[profile %s]\n"
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
	write_text(path, json);
	snprintf(line, sizeof(line), "%s/exec-answer.sh %s/%s.count %s %s", bin,
	         state, name, path, delay ? delay : "");
	add_exec_profile(name, FIX_APP_ID, extra, line);
}

static int runs_of(const char *name)
{
	char path[400];

	snprintf(path, sizeof(path), "%s/%s.count", state, name);
	return count_lines(path);
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

	cache_refresh_state(atomic_load(&ua->view), now_ms(), &st);
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

/* Polls until `pid` is gone, reaped by whoever its parent was (not even a
 * zombie), for up to `ms`. */
static bool wait_gone(pid_t pid, int ms)
{
	for (int64_t end = ms_now() + ms; pid_state(pid) != 0;) {
		if (ms_now() > end) {
			printf("pid %d still there, state %c\n", (int)pid,
			       pid_state(pid));
			return false;
		}
		ms_sleep(10);
	}
	return true;
}

/* This process's children other than the mock server and except[]: how
 * many, by a pass over /proc, and one of them and its state. */
static int stray_children(const pid_t *except, int nexcept, pid_t *ret_pid,
                          char *ret_state)
{
	char *text;
	int n = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;

	if (!d)
		fatal("opendir /proc");
	while ((e = readdir(d))) {
		char path[300], *paren;
		int ppid;
		bool skip = false;
		pid_t pid = (pid_t)atoi(e->d_name);

		for (int i = 0; i < nexcept; i++)
			skip |= pid == except[i];
		if (pid <= 0 || pid == fix.mock.pid || skip)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		text = read_text(path, NULL);
		paren = text ? strrchr(text, ')') : NULL;
		if (paren && sscanf(paren + 2, "%*c %d", &ppid) == 1 &&
		    ppid == getpid()) {
			*ret_pid = pid;
			*ret_state = paren[2];
			n++;
		}
		free(text);
	}
	closedir(d);
	return n;
}

/* Polls, for up to `ms`, until this process has no child but the mock and
 * except[]: no waiter left unreaped (a zombie), nothing the provider let
 * go of. */
static bool settled_but(const pid_t *except, int nexcept, int ms)
{
	pid_t pid = 0;
	char st = 0;

	for (int64_t end = ms_now() + ms;
	     stray_children(except, nexcept, &pid, &st) > 0;) {
		if (ms_now() > end) {
			printf("child %d of ours left, state %c\n", (int)pid,
			       st);
			return false;
		}
		ms_sleep(10);
	}
	return true;
}

static bool settled(int ms)
{
	return settled_but(NULL, 0, ms);
}

/* The PIDs a command wrote to state/NAME.pids, one a line. */
static int pids_of(const char *name, pid_t *pids, int max)
{
	char path[400], *text, *line, *save = NULL;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s.pids", state, name);
	text = read_text(path, NULL);
	for (line = text ? strtok_r(text, "\n", &save) : NULL; line && n < max;
	     line = strtok_r(NULL, "\n", &save))
		pids[n++] = (pid_t)atoi(line);
	free(text);
	return n;
}

/* One call to an exec profile whose command overstays `timeout` (30 s
 * of sleep): UNAVAILABLE, naming the command and the timeout, within the
 * bound. */
static void call_overstaying(const char *profile, int timeout)
{
	char buf[4096], detail[128];
	int64_t t0 = ms_now(), took;
	int r;

	r = header_once(profile, buf, sizeof(buf));
	took = ms_now() - t0;
	printf("%s: status %d after %lld ms (timeout %d s, bound %d ms; "
	       "the command sleeps 30000 ms)\n",
	       profile, r, (long long)took, timeout, BOUND_MS(timeout));
	CHECK_INT(r, UCAASAUTH_E_UNAVAILABLE);
	snprintf(detail, sizeof(detail),
	         "/exec-escape.sh: no answer within %d s, killed", timeout);
	CHECK_ERROR_HAS(detail);
	CHECK_STR(buf, "");
	CHECK(took < BOUND_MS(timeout));
}

/*
 * A command that leaves the process group the provider made for it (for
 * its parent's, where a kill of its group misses it) and sleeps 30 s,
 * holding its output: the call returns within the bound; the command is
 * killed and reaped by the provider, no child of ours is left.
 */
static void test_escape_pgid(void)
{
	char path[400];
	pid_t pid;

	call_overstaying("escape-pgid", 2);
	CHECK_INT(pids_of("escape-pgid", &pid, 1), 1);
	/* It did leave its group before it was killed. */
	snprintf(path, sizeof(path), "%s/escape-pgid.pids.escaped", state);
	CHECK(access(path, F_OK) == 0);
	CHECK(wait_gone(pid, SETTLE_MS));
	CHECK(settled(SETTLE_MS));
}

/*
 * A command that double-forks a grandchild in a session of its own, which
 * keeps its stdout open and sleeps 30 s, and exits at once: the same.
 * The grandchild comes to the provider's waiter (a subreaper), not to us,
 * and is killed and reaped there.
 */
static void test_escape_daemon(void)
{
	pid_t pid;

	call_overstaying("escape-daemon", 2);
	CHECK_INT(pids_of("escape-daemon", &pid, 1), 1);
	CHECK(wait_gone(pid, SETTLE_MS));
	CHECK(settled(SETTLE_MS));
}

/*
 * A command that cannot be reaped once killed, as one in uninterruptible
 * sleep (a hung NFS or FUSE mount) cannot die: here a tracer of ours
 * ptrace-attaches to it, so that when SIGKILL ends it, it stays a zombie
 * that its parent cannot reap until the tracer lets go (30 s at most).
 * The call still returns within the bound; the waiter does not wait for
 * it; the command, released later, comes to us (the subreaper, where a
 * plain program's init would reap it), killed by SIGKILL.
 */
static void test_escape_unreapable(void)
{
	char path[400], marker[420];
	int64_t end;
	pid_t tracer, pid = 0, w;
	int st;

	snprintf(path, sizeof(path), "%s/escape-traced.pids", state);
	snprintf(marker, sizeof(marker), "%s.attached", path);
	fflush(stdout);
	tracer = fork();
	if (tracer < 0)
		fatal("fork");
	if (tracer == 0) {
		pid_t p = 0;

		for (end = ms_now() + SETTLE_MS; p <= 0 && ms_now() < end;
		     ms_sleep(5))
			pids_of("escape-traced", &p, 1);
		if (p <= 0 || ptrace(PTRACE_SEIZE, p, NULL, NULL) < 0)
			_exit(2);
		write_text(marker, "");
		/* Holds it, never waits for it: 30 s at most. */
		for (int i = 0; i < 3000; i++)
			ms_sleep(10);
		_exit(0);
	}
	call_overstaying("escape-traced", 3);
	CHECK_INT(pids_of("escape-traced", &pid, 1), 1);
	/* It was attached before it was killed (else this proves nothing),
	 * and it is dead but unreaped: our tracer holds it. */
	CHECK(access(marker, F_OK) == 0);
	printf("escape-traced: command %d in state %c at return\n", (int)pid,
	       pid_state(pid));
	CHECK_INT(pid_state(pid), 'Z');
	/* Nothing else of ours is left: the waiter was reaped. (The command
	 * is ours now that the waiter gave it up, held by the tracer.) */
	{
		pid_t known[2] = {tracer, pid};
		CHECK(settled_but(known, 2, SETTLE_MS));
	}
	/* The tracer lets go: the command is released to its parent, us. */
	kill(tracer, SIGKILL);
	while (waitpid(tracer, &st, 0) < 0 && errno == EINTR)
		;
	for (end = ms_now() + SETTLE_MS;
	     (w = waitpid(pid, &st, WNOHANG)) == 0 && ms_now() < end;)
		ms_sleep(10);
	CHECK_INT(w, pid);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	CHECK(settled(SETTLE_MS));
}

/* Four threads, each with its own handle on an overstaying command: each
 * call returns within the bound, all four commands are killed and
 * reaped. */
static void *thread_call(void *arg)
{
	char buf[4096];

	*(int *)arg = header_once("threads", buf, sizeof(buf));
	return NULL;
}

static void test_escape_threads(void)
{
	pthread_t t[4];
	int r[4], n;
	pid_t pids[8];
	int64_t t0 = ms_now(), took;

	for (int i = 0; i < 4; i++)
		CHECK_INT(pthread_create(&t[i], NULL, thread_call, &r[i]), 0);
	for (int i = 0; i < 4; i++)
		CHECK_INT(pthread_join(t[i], NULL), 0);
	took = ms_now() - t0;
	printf("threads: 4 calls in %lld ms (bound %d ms)\n", (long long)took,
	       BOUND_MS(2));
	for (int i = 0; i < 4; i++)
		CHECK_INT(r[i], UCAASAUTH_E_UNAVAILABLE);
	CHECK(took < BOUND_MS(2));
	/* On a loaded machine a command may be killed before it could
	 * write its PID: killed all the same. */
	n = pids_of("threads", pids, 8);
	printf("threads: %d of the 4 commands had started\n", n);
	CHECK(n >= 1 && n <= 4);
	for (int i = 0; i < n; i++)
		CHECK(wait_gone(pids[i], SETTLE_MS));
	CHECK(settled(SETTLE_MS));
}

/*
 * A waiter that cannot exit within the grace (here: stopped with SIGSTOP
 * while its command runs; on a real host, a loaded machine): the call
 * returns within the bound all the same, and the waiter, once it has
 * done its work, is reaped by the next exec call of the process. No
 * zombie stays.
 */
static void *stop_waiter(void *arg)
{
	pid_t *waiter = arg, cmd = 0, pid = 0;
	char st = 0;

	/* Its command runs: it wrote its PID. */
	for (int64_t end = ms_now() + SETTLE_MS; cmd <= 0 && ms_now() < end;
	     ms_sleep(5))
		pids_of("pending", &cmd, 1);
	if (cmd > 0 && stray_children(NULL, 0, &pid, &st) == 1 &&
	    kill(pid, SIGSTOP) == 0)
		*waiter = pid;
	return NULL;
}

static void test_pending(void)
{
	pthread_t t;
	pid_t waiter = 0, cmd = 0;
	char buf[4096];

	CHECK(settled(SETTLE_MS));
	CHECK_INT(pthread_create(&t, NULL, stop_waiter, &waiter), 0);
	call_overstaying("pending", 2);
	CHECK_INT(pthread_join(t, NULL), 0);
	CHECK(waiter > 0);
	CHECK_INT(pids_of("pending", &cmd, 1), 1);
	printf("pending: waiter %d in state %c at return, its command %d in "
	       "%c\n",
	       (int)waiter, pid_state(waiter), (int)cmd, pid_state(cmd));
	CHECK_INT(pid_state(waiter), 'T');
	/* Let go, it kills its command and exits: a zombie of ours... */
	CHECK_INT(kill(waiter, SIGCONT), 0);
	CHECK(wait_gone(cmd, SETTLE_MS));
	for (int64_t end = ms_now() + SETTLE_MS;
	     pid_state(waiter) != 'Z' && ms_now() < end;)
		ms_sleep(10);
	CHECK_INT(pid_state(waiter), 'Z');
	/* ...until the next exec call reaps it. */
	CHECK_INT(header_once("good", buf, sizeof(buf)), 0);
	CHECK_INT(pid_state(waiter), 0);
	CHECK(settled(SETTLE_MS));
}

/*
 * A program with a SIGCHLD handler of its own (one that reaps with
 * waitpid(-1), as many servers have): none of the provider's processes
 * signals it or is reaped by it, whether the command answers, fails or
 * overstays.
 */
static volatile sig_atomic_t sigchld_seen, sigchld_reaped;

static void on_sigchld(int sig)
{
	int saved = errno, st;

	(void)sig;
	sigchld_seen++;
	while (waitpid(-1, &st, WNOHANG) > 0)
		sigchld_reaped++;
	errno = saved;
}

static void test_sigchld_handled(void)
{
	struct sigaction sa = {.sa_handler = on_sigchld}, old;
	char buf[4096];

	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	CHECK_INT(sigaction(SIGCHLD, &sa, &old), 0);
	CHECK_INT(header_once("good", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Token tok-exec-1");
	CHECK_INT(header_once("fail", buf, sizeof(buf)),
	          UCAASAUTH_E_UNAVAILABLE);
	CHECK_ERROR_HAS("exit status 3");
	CHECK_INT(header_once("escape-daemon", buf, sizeof(buf)),
	          UCAASAUTH_E_UNAVAILABLE);
	CHECK(settled(SETTLE_MS));
	printf("sigchld: %d signals, %d children reaped by the program\n",
	       (int)sigchld_seen, (int)sigchld_reaped);
	CHECK_INT(sigchld_seen, 0);
	CHECK_INT(sigchld_reaped, 0);
	CHECK_INT(sigaction(SIGCHLD, &old, NULL), 0);
}

/* The program's stdin is closed: the command gets /dev/null, not a closed
 * descriptor 0 (where its first open() would land). */
static void stdin_closed(void)
{
	char buf[4096];

	close(0);
	CHECK_INT(header_once("stdin", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer stdin-eof");
}

/* All three closed (a daemon's): the pipes land on 0, 1 and 2. Nothing
 * can be printed: the exit status says which check failed. */
static void stdio_closed(void)
{
	char buf[4096];
	int r;

	close(0);
	close(1);
	close(2);
	r = header_once("stdin", buf, sizeof(buf));
	if (r != 0)
		_exit(2);
	if (strcmp(buf, "Authorization: Bearer stdin-closed") == 0)
		_exit(3);
	if (strcmp(buf, "Authorization: Bearer stdin-eof") != 0)
		_exit(4);
}

static void test_stdin(void)
{
	char buf[4096];

	/* As it is: /dev/null. */
	CHECK_INT(header_once("stdin", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer stdin-eof");
	CHECK_INT(run_child(stdin_closed), 0);
	CHECK_INT(run_child(stdio_closed), 0);
}

/*
 * Descriptors the program has open without O_CLOEXEC (37 and 900) reach
 * neither the command nor the waiter, also when close_range() fails (the
 * "noclose" run, where exec-noclose-range.so makes it fail with ENOSYS).
 */
static void test_fds(void)
{
	char buf[4096], path[400];
	int fd;

	snprintf(path, sizeof(path), "%s/fds.open", state);
	write_text(path, "");
	fd = open(path, O_RDONLY);
	if (fd < 0 || dup2(fd, 37) < 0 || dup2(fd, 900) < 0)
		fatal("open %s as 37 and 900", path);
	close(fd);
	CHECK_INT(header_once("fds", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer fds-none");
	close(37);
	close(900);
}

/* Secrets of the "hygiene" answer, masked (the plain bytes live only in
 * the scratch mapping, which the scan skips). */
#define HYG_LEN 32
#define HYG_CHUNK (1u << 20)
static struct {
	uint8_t plain[2][HYG_LEN + 1];
	char json[512], expect[256];
	uint8_t chunk[HYG_CHUNK];
} * hyg;
static uint8_t hyg_masked[2][HYG_LEN], hyg_mask[2][HYG_LEN];

/* Windows of 16 bytes (its first and last) of a secret in buf, read from
 * address `at` of the mapping `map`. */
static int count_in(const uint8_t *buf, size_t len, const uint8_t *secret,
                    unsigned long at, const char *map)
{
	int n = 0;

	for (int half = 0; half < 2; half++) {
		const uint8_t *p = buf, *hit;
		size_t left = len;

		while ((hit = memmem(p, left, secret + half * 16, 16))) {
			n++;
			/* Where, for a look with gdb. */
			if (getenv("EXEC_TEST_WHERE"))
				printf("copy at %#lx in %s",
				       at + (unsigned long)(hit - buf), map);
			left -= (size_t)(hit + 1 - p);
			p = hit + 1;
		}
	}
	return n;
}

/*
 * Copies of the first or last 16 bytes of secret i in our writable
 * memory, the scratch mapping and mappings over 1 GiB aside (sanitizer
 * shadow and reservations: no heap of this test is that big, and reading
 * tens of GiB of untouched pages takes minutes under ThreadSanitizer).
 * The main thread's stack is counted apart, in *ret_stack: at -O0 (the
 * sanitizer builds) the hot path's header check (cache.h header_line_ok)
 * spills 16-byte vectors of the header there, which is not the exec
 * provider's doing.
 */
static int copies_of(int i, int *ret_stack)
{
	FILE *maps = fopen("/proc/self/maps", "re");
	int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC), found = 0;
	char line[512];

	if (!maps || mem < 0)
		fatal("cannot read our own memory");
	*ret_stack = 0;
	for (int j = 0; j < HYG_LEN; j++)
		hyg->plain[i][j] = hyg_masked[i][j] ^ hyg_mask[i][j];
	while (fgets(line, sizeof(line), maps)) {
		unsigned long start, end;
		char perms[8];
		int *count = strstr(line, "[stack]") ? ret_stack : &found;

		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3 ||
		    perms[0] != 'r' || perms[1] != 'w' ||
		    (start <= (uintptr_t)hyg && (uintptr_t)hyg < end) ||
		    end - start > (1ul << 30))
			continue;
		for (unsigned long a = start; a < end;) {
			size_t n = end - a < HYG_CHUNK ? end - a : HYG_CHUNK;
			ssize_t got = pread(mem, hyg->chunk, n, (off_t)a);

			if (got <= 0) {
				a += 4096; /* a page that cannot be read */
				continue;
			}
			*count += count_in(hyg->chunk, (size_t)got,
			                   hyg->plain[i], a, line);
			a += (unsigned long)got;
		}
	}
	sodium_memzero(hyg->plain[i], sizeof(hyg->plain[i]));
	fclose(maps);
	close(mem);
	return found;
}

/*
 * Every string of an answer is wiped before json-c frees it: a "header"
 * (not only a "token") and a member the provider does not even read.
 */
/* New secrets 0 and 1. */
static void hygiene_secrets(void)
{
	for (int i = 0; i < 2; i++) {
		randombytes_buf(hyg_mask[i], HYG_LEN);
		for (int j = 0; j < HYG_LEN; j++)
			hyg_masked[i][j] = hyg_mask[i][j] ^
			                   (uint8_t) "0123456789abcdef"
			                           [randombytes_uniform(16)];
	}
}

/* Writes the "hygiene" answer with secrets 0 and 1, whole or cut short
 * inside an object inside an array, built in the scratch mapping and
 * wiped there after. */
static void hygiene_answer(bool cut)
{
	char path[400];
	int fd;

	for (int i = 0; i < 2; i++)
		for (int j = 0; j < HYG_LEN; j++)
			hyg->plain[i][j] = hyg_masked[i][j] ^ hyg_mask[i][j];
	snprintf(hyg->json, sizeof(hyg->json),
	         cut ? "{\"header\": \"Authorization: Bearer %.*s\", "
	               "\"note\": [\"%.*s\", {\"more\": \"abc"
	             : "{\"header\": \"Authorization: Bearer %.*s\", "
	               "\"note\": [\"%.*s\"], \"expires_in\": 600}\n",
	         HYG_LEN, (char *)hyg->plain[0], HYG_LEN,
	         (char *)hyg->plain[1]);
	snprintf(hyg->expect, sizeof(hyg->expect), "Authorization: Bearer %.*s",
	         HYG_LEN, (char *)hyg->plain[0]);
	snprintf(path, sizeof(path), "%s/hygiene.json", state);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, hyg->json, strlen(hyg->json)) < 0 || close(fd))
		fatal("write %s", path);
	sodium_memzero(hyg->plain, sizeof(hyg->plain));
	sodium_memzero(hyg->json, sizeof(hyg->json));
}

/*
 * Every string of an answer is wiped before json-c frees it: a "header"
 * (not only a "token"), a member the provider does not even read, and
 * what a parse that fails half-way holds (objects not finished).
 */
static void test_hygiene(void)
{
	char buf[4096];
	size_t len = 0;
	struct ucaasauth *ua;
	int on_stack, header_left, other_left, header_stack, other_stack;

	hyg = mmap(NULL, sizeof(*hyg), PROT_READ | PROT_WRITE,
	           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (hyg == MAP_FAILED)
		fatal("mmap");
	hygiene_secrets();
	hygiene_answer(false);
	CHECK_INT(copies_of(0, &on_stack), 0);
	CHECK_INT(copies_of(1, &on_stack), 0);
	CHECK_INT(ucaasauth_open(&ua, "hygiene", 0), 0);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	CHECK(strcmp(buf, hyg->expect) == 0);
	sodium_memzero(buf, sizeof(buf));
	sodium_memzero(hyg->expect, sizeof(hyg->expect));
	/* While open, the header is cached: the scan can find it. */
	CHECK(copies_of(0, &on_stack) > 0);
	ucaasauth_close(ua);
	header_left = copies_of(0, &header_stack);
	other_left = copies_of(1, &other_stack);
	printf("hygiene: after close, %d copies of the header's secret (and "
	       "%d in dead stack), %d of the other member's (%d)\n",
	       header_left, header_stack, other_left, other_stack);
	CHECK_INT(header_left, 0);
	CHECK_INT(other_left, 0);
	/* The header's dead-stack copies, if any, are the hot path's (see
	 * copies_of); the other member never leaves the provider. */
	CHECK_INT(other_stack, 0);

	/* Cut short, inside an object inside an array: refused, and the
	 * unfinished objects the tokener held are wiped too (new secrets,
	 * none of which reaches the hot path). */
	hygiene_secrets();
	hygiene_answer(true);
	sodium_memzero(hyg->expect, sizeof(hyg->expect));
	CHECK_INT(header_once("hygiene", buf, sizeof(buf)),
	          UCAASAUTH_E_PROTOCOL);
	CHECK_ERROR_HAS("its output is not one JSON document");
	header_left = copies_of(0, &header_stack);
	other_left = copies_of(1, &other_stack);
	printf("hygiene: cut short, %d copies of the header's secret (%d in "
	       "dead stack), %d of the other member's (%d)\n",
	       header_left, header_stack, other_left, other_stack);
	CHECK_INT(header_left + header_stack, 0);
	CHECK_INT(other_left + other_stack, 0);
	munmap(hyg, sizeof(*hyg));
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
		{"garbage", "its output is not one JSON document"},
		{"empty", "its output is not one JSON document"},
		{"array", "its output is not a JSON object"},
		{"trailing", "its output is not one JSON document"},
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
		CHECK_INT(header_once(cases[i].profile, buf, sizeof(buf)),
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

	CHECK_INT(header_once("slow", buf, sizeof(buf)),
	          UCAASAUTH_E_UNAVAILABLE);
	took = ms_now() - t0;
	printf("slow: UNAVAILABLE after %lld ms\n", (long long)took);
	CHECK_ERROR_HAS("/exec-slow.sh: no answer within 1 s, killed");
	CHECK_STR(buf, "");
	CHECK(took >= 900 && took < 4000);
	snprintf(path, sizeof(path), "%s/slow.pids", state);
	pids = read_text(path, NULL);
	CHECK(pids != NULL);
	CHECK_INT(sscanf(pids, "%d %d", &pid, &grandchild), 2);
	free(pids);
	/* The command itself was reaped by the provider: not even a
	 * zombie. */
	CHECK_INT(pid_state(pid), 0);
	/* Its grandchild (sleep 60 &) and its child (sleep 30) were killed
	 * with it and reaped by the provider's waiter, their subreaper: none
	 * came to us, none still runs, not even as a zombie. */
	CHECK_INT(reap_group(pid, grandchild, 0, &gone), 0);
	CHECK(wait_gone(grandchild, SETTLE_MS));
	CHECK(kill(-pid, 0) < 0 && errno == ESRCH);
	CHECK(settled(SETTLE_MS));
}

/* A command that fails: UNAVAILABLE with the first line of its stderr;
 * its stdout is not judged. */
static void test_fail(void)
{
	char buf[4096], path[400], *text;

	CHECK_INT(header_once("fail", buf, sizeof(buf)),
	          UCAASAUTH_E_UNAVAILABLE);
	CHECK_STR(buf, "");
	CHECK_ERROR_HAS("/exec-fail.sh: exit status 3: token service says no: "
	                "account locked");
	CHECK(strstr(ucaasauth_last_error(), "second line") == NULL);
	CHECK(strstr(ucaasauth_last_error(), "ignored") == NULL);
	snprintf(path, sizeof(path), "%s/fail.count", state);
	text = read_text(path, NULL);
	CHECK(text != NULL);
	CHECK_INT(pid_state(atoi(text)), 0);
	free(text);
}

/* 10 MB on stdout: refused after 64 kB, killed, our memory bounded. */
static void test_flood(void)
{
	char buf[4096], path[400], *text;
	long hwm = hwm_kb();
	int64_t t0 = ms_now();
	bool gone = false;
	int pid;

	CHECK_INT(header_once("flood", buf, sizeof(buf)), UCAASAUTH_E_PROTOCOL);
	CHECK_ERROR_HAS("/exec-flood.sh: printed more than 65536 bytes, "
	                "killed");
	CHECK(ms_now() - t0 < 5000);
	printf("flood: peak RSS %ld kB -> %ld kB\n", hwm, hwm_kb());
	CHECK(hwm_kb() - hwm < 4096);
	snprintf(path, sizeof(path), "%s/flood.pid", state);
	text = read_text(path, NULL);
	CHECK(text != NULL);
	pid = atoi(text);
	free(text);
	CHECK(pid > 0);
	CHECK_INT(pid_state(pid), 0);
	/* head and tr, killed with it. */
	CHECK(reap_group(pid, 0, 3000, &gone) >= 0);
	CHECK(kill(-pid, 0) < 0 && errno == ESRCH);
}

/* The command sees what it needs and the variables exec_env names. */
static void test_env(void)
{
	char buf[4096], path[400], expect[400], *text;
	static const char *const absent[] = {
		"EXEC_TEST_SECRET=", "HOME=",
		"UCAASAUTH_CONFIG=", "UCAASAUTH_RUNTIME_DIR=",
		"EXEC_TEST_UNSET=",  "MOCK_UCAAS=",
	};

	setenv("EXEC_TEST_SECRET", "must-not-leak", 1);
	setenv("EXEC_TEST_PASSED", "yes it is", 1);
	setenv("HOME", "/root", 0);
	unsetenv("EXEC_TEST_UNSET");
	CHECK_INT(header_once("env", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer env-ok");
	snprintf(path, sizeof(path), "%s/env.out", state);
	text = read_text(path, NULL);
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
	CHECK_INT(count_lines(path), 5);
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
	CHECK_INT(header_once("many-env", buf, sizeof(buf)), 0);
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
	write_text(path, text);
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

	fflush(stdout); /* not once per worker */
	CHECK_INT(run_workers(16, once_worker, NULL), 16);
	CHECK_INT(runs_of("once"), 1);
	/* And later handles on the host take it from the cache. */
	CHECK_INT(header_once("once", buf, sizeof(buf)), 0);
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

	CHECK_INT(header_once("ident-a", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Bearer account-a");
	CHECK_INT(header_once("ident-b", buf, sizeof(buf)), 0);
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
	CHECK_INT(header_once("good", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Authorization: Token tok-exec-1");
	/* Regression (fixed): provider-exec.c exec_fetch(): with SIGCHLD ignored, waitpid()
	 * fails with ECHILD and the command's output is judged alone, so a
	 * command that exits 3 after printing {"token": "ignored"} (as
	 * exec-fail.sh does) is taken as a success and its token cached.
	 * Exit status non-zero must stay UNAVAILABLE: e.g. run the command
	 * from an intermediate child that restores SIGCHLD's default and
	 * reports the status through a pipe, or refuse to judge output
	 * without an exit status. */
	CHECK_INT(header_once("fail", buf, sizeof(buf)),
	          UCAASAUTH_E_UNAVAILABLE);
	CHECK_STR(buf, "");
}

/* A command in a directory reached through a symbolic link, such as
 * /bin/cat where /bin -> usr/bin (merged /usr: Debian, Fedora, Arch). */
static void test_dir_link(void)
{
	char buf[4096];

	printf("exec: command %s/cat\n", bin_link);
	/* Regression (fixed): file.c check_trusted() lstat()s the command's directory,
	 * so a directory reached through a symbolic link (owned by root,
	 * mode 0777 as links are) is refused with the misleading "directory
	 * of /bin: not a directory": `provider = exec /bin/cat ...` fails to
	 * open on every merged-/usr system, as does a module_dir that is a
	 * link. It should check the directory the link leads to (stat(), or
	 * realpath() first) and run the command. */
	CHECK_INT(header_once("bin-link", buf, sizeof(buf)), 0);
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
		{"gw-file", 0700, 0720},   {"ow-file", 0700, 0702},
		{"gw-dir", 0770, 0700},    {"noexec", 0700, 0600},
		{"other-uid", 0700, 0700},
	};
	char names[1024] = "";

	conf_reset();
	conf_add("default_profile = good\n");
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
	add_answer_profile("header",
	                   "cache = process\ntoken_ttl = 300\n"
	                   "refresh_ahead = 60\nexpiry_margin = 10\n",
	                   "{\"header\": \"Authorization: Bearer x\"}\n", NULL);
	add_answer_profile("header-in", "cache = process\n",
	                   "{\"header\": \"Authorization: Bearer y.z-1\", "
	                   "\"expires_in\": 120}\n",
	                   NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		add_answer_profile(bad[i].name, "cache = process\n",
		                   bad[i].json, NULL);
	/* A token one byte longer than the segment holds. */
	longtoken = malloc(TOKEN_MAX + 64);
	if (!longtoken)
		fatal("out of memory");
	memcpy(longtoken, "{\"token\": \"", 11);
	memset(longtoken + 11, 'a', TOKEN_MAX + 1);
	strcpy(longtoken + 11 + TOKEN_MAX + 1, "\"}\n");
	add_answer_profile("longtoken", "cache = process\n", longtoken, NULL);
	free(longtoken);

	snprintf(path, sizeof(path), "%s/slow.pids", state);
	snprintf(line, sizeof(line), "%s/exec-slow.sh %s", bin, path);
	add_exec_profile("slow", FIX_APP_ID, "cache = process\ntimeout = 1\n",
	                 line);
	/* Commands that overstay and try to outlive their timeout. */
	{
		static const struct {
			const char *profile, *mode, *pids, *timeout;
		} escape[] = {
			{"escape-pgid", "pgid", "escape-pgid", "2"},
			{"escape-daemon", "daemon", "escape-daemon", "2"},
			{"escape-traced", "traced", "escape-traced", "3"},
			{"threads", "pgid", "threads", "2"},
			{"pending", "pgid", "pending", "2"},
		};
		for (size_t i = 0; i < sizeof(escape) / sizeof(*escape); i++) {
			snprintf(line, sizeof(line),
			         "%s/exec-escape.sh %s %s/%s.pids", bin,
			         escape[i].mode, state, escape[i].pids);
			snprintf(json, sizeof(json),
			         "cache = process\ntimeout = %s\n",
			         escape[i].timeout);
			add_exec_profile(escape[i].profile, FIX_APP_ID, json,
			                 line);
		}
	}
	snprintf(line, sizeof(line), "%s/exec-stdin.sh", bin);
	add_exec_profile("stdin", FIX_APP_ID, "cache = process\n", line);
	snprintf(line, sizeof(line), "%s/exec-fds.sh 37 900", bin);
	add_exec_profile("fds", FIX_APP_ID, "cache = process\n", line);
	/* Its answer is written by test_hygiene. */
	add_answer_profile("hygiene", "cache = process\n", "{}", NULL);
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
		make_dir(dir, modes[i].dir_mode);
		install_script(dir, "exec-answer.sh", modes[i].file_mode);
		snprintf(path, sizeof(path), "%s/exec-answer.sh", dir);
		if (strcmp(modes[i].name, "other-uid") == 0 && geteuid() == 0 &&
		    chown(path, 65534, 65534) < 0)
			fatal("chown %s", path);
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
	write_text(path, "{\"header\": \"Authorization: Bearer cat\"}\n");
	snprintf(line, sizeof(line), "%s/cat %s", bin_link, path);
	add_exec_profile("bin-link", FIX_APP_ID, "cache = process\n", line);
	snprintf(path, sizeof(path), "%s/exec-link.sh", bin);
	snprintf(line, sizeof(line), "%s/exec-answer.sh", bin);
	if (symlink(line, path) < 0)
		fatal("symlink %s", path);
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
	write_text(path, "{\"header\": \"Authorization: Bearer account-a\"}\n");
	snprintf(line, sizeof(line), "%s/exec-answer.sh %s/ident-a.count %s",
	         bin, state, path);
	add_exec_profile("ident-a", "app-ident", "cache = shared\n", line);
	snprintf(path, sizeof(path), "%s/ident-b.json", state);
	write_text(path, "{\"header\": \"Authorization: Bearer account-b\"}\n");
	snprintf(line, sizeof(line), "%s/exec-answer.sh %s/ident-b.count %s",
	         bin, state, path);
	add_exec_profile("ident-b", "app-ident", "cache = shared\n", line);

	conf_write(&fix, 0600);
}

/* "noclose PRELOAD": runs again with PRELOAD in LD_PRELOAD (once). */
static void preload(char **argv)
{
	const char *asan = getenv("ASAN_OPTIONS");
	char opts[1024], path[4096];

	if (getenv("EXEC_TEST_PRELOADED")) {
		/* The preload works: close_range() fails here too. */
		if (close_range(1000000, 1000000, 0) == 0 || errno != ENOSYS)
			fatal("%s does not make close_range() fail", argv[2]);
		printf("noclose: close_range() fails with ENOSYS\n");
		/* For this process only, not the mock server's. */
		unsetenv("LD_PRELOAD");
		return;
	}
	/* The sanitizers' runtime wants to be first; it may not be. */
	snprintf(opts, sizeof(opts), "%s%sverify_asan_link_order=0",
	         asan ? asan : "", asan && *asan ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
	/* Absolute: processes we start run elsewhere. */
	if (!realpath(argv[2], path))
		fatal("%s", argv[2]);
	setenv("LD_PRELOAD", path, 1);
	setenv("EXEC_TEST_PRELOADED", "1", 1);
	execv("/proc/self/exe", argv);
	fatal("execv /proc/self/exe");
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{"good", test_good},
	{"bad-answers", test_bad_answers},
	{"slow", test_slow},
	{"escape-pgid", test_escape_pgid},
	{"escape-daemon", test_escape_daemon},
	{"escape-unreapable", test_escape_unreapable},
	{"escape-threads", test_escape_threads},
	{"sigchld-handled", test_sigchld_handled},
	{"pending", test_pending},
	{"stdin", test_stdin},
	{"fds", test_fds},
	{"hygiene", test_hygiene},
	{"fail", test_fail},
	{"flood", test_flood},
	{"env", test_env},
	{"paths", test_paths},
	{"once", test_once},
};

int main(int argc, char **argv)
{
	int64_t t0 = ms_now();
	int bugs = 0, first = 1;

	if (argc >= 3 && strcmp(argv[1], "noclose") == 0) {
		preload(argv);
		first = 3;
	}
	fixture_start(&fix, 900, NULL);
	snprintf(bin, sizeof(bin), "%s/bin", fix.dir);
	snprintf(state, sizeof(state), "%s/state", fix.dir);
	make_dir(bin, 0700);
	make_dir(state, 0700);
	install_script(bin, "exec-answer.sh", 0700);
	install_script(bin, "exec-fail.sh", 0700);
	install_script(bin, "exec-slow.sh", 0700);
	install_script(bin, "exec-flood.sh", 0700);
	install_script(bin, "exec-env.sh", 0700);
	install_script(bin, "exec-escape.sh", 0700);
	install_script(bin, "exec-stdin.sh", 0700);
	install_script(bin, "exec-fds.sh", 0700);
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
				fatal("symlink %s", bin_link);
		}
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		fatal("PR_SET_CHILD_SUBREAPER");
	write_config();

	if (argc > first) {
		/* Only the tests named. */
		for (int a = first; a < argc; a++) {
			size_t i = 0;
			while (i < sizeof(tests) / sizeof(tests[0]) &&
			       strcmp(tests[i].name, argv[a]) != 0)
				i++;
			if (i == sizeof(tests) / sizeof(tests[0]))
				fatal("no test %s", argv[a]);
			printf("== %s\n", argv[a]);
			tests[i].fn();
		}
		fixture_stop(&fix);
		TEST_DONE();
	}
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		printf("== %s (at %lld ms)\n", tests[i].name,
		       (long long)(ms_now() - t0));
		tests[i].fn();
	}
	/* Last, each in a process of its own so that both run. */
	bugs += run_bug("identity", test_identity);
	bugs += run_bug("dir-link", test_dir_link);
	bugs += run_bug("sigchld-ignored", test_sigchld_ignored);

	fixture_stop(&fix);
	if (bugs) {
		printf("%d checks passed, %d known bug(s), see above\n",
		       test_checks, bugs);
		return 1;
	}
	TEST_DONE();
}

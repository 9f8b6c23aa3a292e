/*
 * ucaas-authd with real processes: clients that cannot read a credential
 * get headers, strangers get nothing, the daemon alone logs in, survives
 * garbage, and clients survive the daemon.
 *
 * Usage: test-daemon [SCENARIO]   (serve, refuse, reject, killed, reload,
 *                                  garbage, young, short, revoke, squat,
 *                                  strangers; all when none is named)
 * $CLI_WRAPPER (e.g. valgrind) runs the daemon under it.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache.h"
#include "fixture.h"
#include "protocol.h"
#include "test.h"

#define NOBODY 65534

static struct fixture fix;
static char sock_path[400], log_path[400], notify_path[400];
static pid_t daemon_pid, main_pid, fake_pid;
static int notify_fd = -1;

/* Tokens of `ttl` seconds (the mock grants the same). */
/* Rejects of tokens of any age drop them, but in the young test. */
static const char *reject_conf = "reject_min_age = 0\n";
/* nobody is allowed through its group, but after the revoke test's
 * reload; more lines (daemon_user) for the squat test. */
static const char *groups_conf = "allow_groups = 65534\n";
static const char *more_conf = "";

static const char *daemon_profile(int ttl)
{
	static char extra[1200];

	snprintf(extra, sizeof(extra),
	         "cache = daemon\n"
	         "socket = %s\n"
	         "allow_users = 4321\n"
	         "%s"
	         "token_ttl = %d\nrefresh_ahead = %d\nexpiry_margin = %d\n"
	         "%s%s",
	         sock_path, groups_conf, ttl, ttl / 2, ttl / 4, reject_conf,
	         more_conf);
	return extra;
}

/* How long the daemon may take to say READY=1, at start (its first
 * login included) and after a SIGHUP: a bound, not an expectation; it
 * takes well under a second, several under valgrind, and a loaded CI
 * machine multiplies that. */
#define READY_MS 100000

/* The daemon's log, shown when it did not do what it should. */
static void show_log(void)
{
	char log[8192];
	int fd = open(log_path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, log, sizeof(log) - 1) : -1;

	if (fd >= 0)
		close(fd);
	log[n > 0 ? n : 0] = 0;
	fprintf(stderr, "---- %s\n%s----\n", log_path, log);
}

/* Starts the daemon and waits for its READY=1 (sd_notify). */
static void start_daemon(void)
{
	char buf[256];
	const char *wrapper = getenv("CLI_WRAPPER");
	char *argv[32], *words = strdup(wrapper ? wrapper : "");
	int argc = 0;
	int64_t end = ms_now() + READY_MS;

	for (char *w = strtok(words, " "); w && argc < 28;
	     w = strtok(NULL, " "))
		argv[argc++] = w;
	argv[argc++] = UCAAS_AUTHD;
	argv[argc] = NULL;
	daemon_pid = fork();
	CHECK(daemon_pid >= 0);
	if (daemon_pid == 0) {
		int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(fd, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	free(words);
	for (;;) {
		ssize_t n = recv(notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
		if (n > 0) {
			buf[n] = 0;
			if (strstr(buf, "READY=1"))
				break;
		}
		if (ms_now() >= end || waitpid(daemon_pid, NULL, WNOHANG) != 0)
			show_log();
		CHECK_MSG(ms_now() < end,
		          "ucaas-authd sent no READY=1 within "
		          "%d s of its start",
		          READY_MS / 1000);
		CHECK_MSG(waitpid(daemon_pid, NULL, WNOHANG) == 0,
		          "ucaas-authd exited before READY=1");
		ms_sleep(10);
	}
}

/* SIGTERM: a clean stop, exit 0 (valgrind: no error, no leak), the
 * socket removed. */
static void stop_daemon(void)
{
	int status;

	CHECK_INT(kill(daemon_pid, SIGTERM), 0);
	CHECK_INT(waitpid(daemon_pid, &status, 0), daemon_pid);
	CHECK(WIFEXITED(status));
	CHECK_INT(WEXITSTATUS(status), 0);
	CHECK(access(sock_path, F_OK) < 0);
}

static void setup(int ttl)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char dir[420];

	fixture_start(&fix, ttl, NULL);
	snprintf(sock_path, sizeof(sock_path), "%s/sock/authd.sock", fix.dir);
	snprintf(log_path, sizeof(log_path), "%s/daemon.log", fix.dir);
	snprintf(notify_path, sizeof(notify_path), "%s/notify", fix.dir);
	fixture_write_config(&fix, daemon_profile(ttl));
	/* Clients running as other users read the configuration; the key
	 * and credentials stay 0600, the daemon's alone. */
	CHECK_INT(chmod(fix.dir, 0755), 0);
	CHECK_INT(chmod(fix.conf, 0644), 0);
	/* A socket directory others may enter, so that the daemon's own
	 * peer check is what refuses strangers. */
	snprintf(dir, sizeof(dir), "%s/sock", fix.dir);
	CHECK_INT(mkdir(dir, 0755), 0);

	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(notify_fd >= 0);
	memcpy(addr.sun_path, notify_path, strlen(notify_path));
	CHECK_INT(bind(notify_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	setenv("NOTIFY_SOCKET", notify_path, 1);
	start_daemon();
}

static void teardown(void)
{
	char log[65536];
	int fd = open(log_path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, log, sizeof(log) - 1) : -1;

	/* The daemon's log says what it did, and never a secret. */
	CHECK(n > 0);
	log[n > 0 ? n : 0] = 0;
	CHECK(strstr(log, "logged in") || strstr(log, "login"));
	CHECK(strstr(log, FIX_PASSWORD) == NULL);
	CHECK(strstr(log, "Token ") == NULL);
	close(fd);
	close(notify_fd);
	unsetenv("NOTIFY_SOCKET");
	fixture_stop(&fix);
}

static void become(uid_t uid, gid_t gid)
{
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0)
		_exit(90);
}

/* As nobody: no credential readable, a valid header all the same. */
static int client_worker(void *arg, int i)
{
	char path[600], buf[4096];
	struct ucaasauth *ua;
	size_t len;

	become(NOBODY, NOBODY);
	snprintf(path, sizeof(path), "%s/tok.cred", fix.dir);
	if (open(path, O_RDONLY) >= 0 || errno != EACCES)
		return 10;
	snprintf(path, sizeof(path), "%s/master.key", fix.dir);
	if (open(path, O_RDONLY) >= 0 || errno != EACCES)
		return 11;
	if (ucaasauth_open(&ua, "tok", 0) != 0) {
		fprintf(stderr, "client %d: open: %s\n", i,
		        ucaasauth_last_error());
		return 12;
	}
	for (int n = 0; n < 1000; n++)
		if (ucaasauth_header(ua, buf, sizeof(buf), &len) != 0) {
			fprintf(stderr, "client %d: call %d: %s\n", i, n,
			        ucaasauth_last_error());
			return 13;
		}
	if (mock_customers(&fix.mock, buf) != 200) {
		fprintf(stderr, "client %d: the mock refused the header\n", i);
		return 14;
	}
	ucaasauth_close(ua);
	return 0;
}

static void test_serve(void)
{
	setup(900);
	CHECK_INT(run_workers(32, client_worker, NULL), 32);
	/* The daemon's login at start, and no other. */
	CHECK_INT(mock_stat(&fix.mock, "logins"), 1);
	CHECK_INT(mock_stat(&fix.mock, "customers_ok"), 32);
	stop_daemon();
	teardown();
}

/* A stranger reaches the socket but is refused, with nothing handed
 * over; an allowed user is served. */
static int stranger(void *arg, int i)
{
	struct ucaasauth *ua = NULL;
	int fds_before = 0, fds_after = 0, r;

	become(i == 0 ? 1234 : 4321, 1234);
	for (int fd = 0; fd < 256; fd++)
		fds_before += fcntl(fd, F_GETFD) >= 0;
	r = ucaasauth_open(&ua, "tok", 0);
	for (int fd = 0; fd < 256; fd++)
		fds_after += fcntl(fd, F_GETFD) >= 0;
	if (fds_after != fds_before) /* no fd left behind, none received */
		return 20;
	if (i == 1) /* uid 4321 is in allow_users */
		return r == 0 ? 0 : 21;
	if (r != UCAASAUTH_E_DENIED)
		return 22;
	if (!strstr(ucaasauth_last_error(), "uid 1234 is not allowed"))
		return 23;
	return 0;
}

static void test_refuse(void)
{
	setup(900);
	CHECK_INT(run_workers(2, stranger, NULL), 2);
	stop_daemon();
	teardown();
}

/* 16 clients reject the same header at once: one login by the daemon. */
struct reject_arg {
	char header[4096];
};

static int rejecter(void *arg, int i)
{
	struct reject_arg *ra = arg;
	struct ucaasauth *ua;
	char buf[4096];
	size_t len;

	become(NOBODY, NOBODY);
	if (ucaasauth_open(&ua, "tok", 0) != 0)
		return 10;
	if (ucaasauth_reject(ua, ra->header) != 0)
		return 11;
	if (ucaasauth_header(ua, buf, sizeof(buf), &len) != 0)
		return 12;
	if (strcmp(buf, ra->header) == 0)
		return 13;
	ucaasauth_close(ua);
	return mock_customers(&fix.mock, buf) == 200 ? 0 : 14;
}

static void test_reject(void)
{
	struct reject_arg ra;
	struct ucaasauth *ua;
	size_t len;

	setup(900);
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(ucaasauth_header(ua, ra.header, sizeof(ra.header), &len), 0);
	ucaasauth_close(ua);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 1);
	CHECK_INT(run_workers(16, rejecter, &ra), 16);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 2);
	stop_daemon();
	teardown();
}

static int young_rejecter(void *arg, int i)
{
	struct ucaasauth *ua;
	char buf[4096];
	size_t len;

	become(NOBODY, NOBODY);
	if (ucaasauth_open(&ua, "tok", 0) != 0)
		return 10;
	for (int n = 0; n < 20000 && mock_stat(&fix.mock, "logins") < 4; n++) {
		if (ucaasauth_header(ua, buf, sizeof(buf), &len) != 0)
			return 12;
		if (ucaasauth_reject(ua, buf) != 0)
			return 11;
	}
	ucaasauth_close(ua);
	return 0;
}

/* Clients rejecting fresh tokens in a loop cannot make the daemon log in
 * at will: its logins stay a backoff step apart. */
static void test_young(void)
{
	long logins;
	double gap;

	reject_conf = "";
	setup(900);
	CHECK_INT(run_workers(8, young_rejecter, NULL), 8);
	gap = mock_login_gap(&fix.mock, &logins);
	printf("young: %ld logins, smallest gap %.2f s\n", logins, gap);
	CHECK(logins >= 2);
	CHECK(gap >= 0.75);
	stop_daemon();
	teardown();
}

/* A server that takes 1.1 s to grant 1 s: the token arrives expired, and
 * the daemon logs in once per backoff step, not back to back. */
static void test_short(void)
{
	long logins;
	double gap;

	setup(1);
	CHECK_INT(mock_config(&fix.mock, "{\"login_delay\": 1.1, "
	                                 "\"login_fault\": \"expires_in\"}"),
	          0);
	for (int i = 0; i < 6000 && mock_stat(&fix.mock, "logins") < 4; i++)
		ms_sleep(10);
	gap = mock_login_gap(&fix.mock, &logins);
	printf("short: %ld logins, smallest gap %.2f s\n", logins, gap);
	CHECK(logins >= 3);
	CHECK(gap >= 0.75);
	stop_daemon();
	teardown();
}

/* The daemon killed: the cached token until it expires, then a prompt
 * refusal naming the daemon; the daemon back: served again, same handle.
 * Judged against the token's own end, read from the segment, not against
 * the time the test planned; and tokens of 12 s, so that the first header
 * and the kill fit in the token's life on a slow machine too. */
static void test_killed(void)
{
	struct ucaasauth *ua;
	struct snapshot snap;
	char buf[4096];
	size_t len;
	int64_t call, took, t0;
	int r, status, served = 0;

	setup(12);
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	CHECK_INT(kill(daemon_pid, SIGKILL), 0);
	CHECK_INT(waitpid(daemon_pid, &status, 0), daemon_pid);
	/* The token's end on the library's clock (now_ms, as below). */
	CHECK(token_view(atomic_load(&ua->view), buf, sizeof(buf), &snap));
	for (;;) {
		call = now_ms();
		r = ucaasauth_header(ua, buf, sizeof(buf), &len);
		took = now_ms() - call;
		/* Fail fast, never hang: a wait lasts wait_timeout (20 s). */
		CHECK_MSG(took < 10000,
		          "a call took %lld ms, the daemon dead (status %d)",
		          (long long)took, r);
		if (r != 0)
			break;
		CHECK_MSG(call < snap.expires_ms,
		          "served %lld ms after the token's end",
		          (long long)(call - snap.expires_ms));
		served++;
		ms_sleep(20);
	}
	CHECK_INT(r, UCAASAUTH_E_UNAVAILABLE);
	CHECK_ERROR_HAS("ucaas-authd");
	CHECK_ERROR_HAS(sock_path);
	/* Served until the token's end, and refused only then. */
	CHECK_MSG(now_ms() >= snap.expires_ms,
	          "refused %lld ms before the token's end",
	          (long long)(snap.expires_ms - now_ms()));
	CHECK_MSG(served > 0, "not served once after the daemon's death");
	printf("killed: %d headers served after the kill, then refused\n",
	       served);

	unlink(sock_path); /* what SIGKILL left behind */
	start_daemon();
	t0 = ms_now();
	do {
		r = ucaasauth_header(ua, buf, sizeof(buf), &len);
		if (r)
			ms_sleep(50);
	} while (r != 0 && ms_now() - t0 < 60000);
	CHECK_MSG(r == 0, "status %d 60 s after the daemon's restart", r);
	CHECK_INT(mock_customers(&fix.mock, buf), 200);
	CHECK_INT(atomic_load(&atomic_load(&ua->view)->daemon_pid), daemon_pid);
	ucaasauth_close(ua);
	stop_daemon();
	teardown();
}

/* SIGHUP, and its end: RELOADING=1, then READY=1 once every profile has
 * the new settings. */
static void reload_daemon(void)
{
	char buf[256];

	while (recv(notify_fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
	CHECK_INT(kill(daemon_pid, SIGHUP), 0);
	for (int64_t end = ms_now() + READY_MS;;) {
		ssize_t n = recv(notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
		if (n > 0) {
			buf[n] = 0;
			if (strstr(buf, "READY=1"))
				break;
		}
		if (ms_now() >= end)
			show_log();
		CHECK_MSG(ms_now() < end,
		          "ucaas-authd sent no READY=1 within "
		          "%d s of SIGHUP",
		          READY_MS / 1000);
		ms_sleep(10);
	}
}

/* SIGHUP after the password changed: the token stays, the next login
 * uses the new password. */
static void test_reload(void)
{
	struct ucaasauth *ua;
	char before[4096], after[4096];
	size_t len;

	setup(900);
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(ucaasauth_header(ua, before, sizeof(before), &len), 0);
	CHECK_INT(mock_config(&fix.mock, "{\"password\": \"new-Password-2\"}"),
	          0);
	fixture_store("tok", NULL, FIX_EMAIL, "new-Password-2");
	reload_daemon();
	CHECK_INT(ucaasauth_header(ua, after, sizeof(after), &len), 0);
	CHECK_STR(after, before);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 1);
	CHECK_INT(ucaasauth_reject(ua, after), 0);
	CHECK_INT(ucaasauth_header(ua, after, sizeof(after), &len), 0);
	CHECK(strcmp(after, before) != 0);
	CHECK_INT(mock_customers(&fix.mock, after), 200);
	CHECK_INT(mock_stat(&fix.mock, "logins_ok"), 2);
	CHECK_INT(mock_stat(&fix.mock, "logins_failed"), 0);
	ucaasauth_close(ua);
	stop_daemon();
	teardown();
}

static int connect_raw(void)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memcpy(addr.sun_path, sock_path, strlen(sock_path));
	if (fd >= 0 &&
	    connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* What a raw request gets back, as text. */
static void raw_request(const char *req, size_t len, char *out, size_t size)
{
	int fd = connect_raw();
	struct timeval tv = {60, 0}; /* a bound: answered in milliseconds */
	size_t got = 0;
	ssize_t n;

	CHECK(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	send(fd, req, len, MSG_NOSIGNAL);
	while (got < size - 1 &&
	       (n = recv(fd, out + got, size - 1 - got, 0)) > 0)
		got += n;
	out[got] = 0;
	close(fd);
}

/* Garbage, oversized and silent clients never harm the others. */
static void test_garbage(void)
{
	static const char *const bad[] = {
		"\n",
		"command=attach\r\nprofile=tok\r\n\r\n",
		"no equals sign\n\n",
		"command=attach\nprofile=nosuch\n\n",
		"command=fly\nprofile=tok\n\n",
		"command=reject\nprofile=tok\n\n",
		"command=reject\nprofile=tok\ngeneration=-1\n\n",
		"=x\n\n",
		"command=attach\ncommand=attach\n\n",
	};
	int silent[100];
	char out[8192], big[20000];
	struct ucaasauth *ua;
	size_t len;
	char buf[4096];

	setup(900);
	for (size_t i = 0; i < ARRAY_SIZE(silent); i++)
		CHECK((silent[i] = connect_raw()) >= 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		raw_request(bad[i], strlen(bad[i]), out, sizeof(out));
		CHECK(strncmp(out, "status=error\n", 13) == 0);
	}
	memset(big, 'a', sizeof(big));
	raw_request(big, sizeof(big), out, sizeof(out));
	CHECK(strncmp(out, "status=error\n", 13) == 0);
	raw_request("command=attach\nprofile=tok\nx=\0\n\n", 32, out,
	            sizeof(out));
	CHECK(strncmp(out, "status=error\n", 13) == 0);
	/* Unknown keys are ignored. */
	raw_request("command=refresh\nprofile=tok\nfuture=1\n\n", 39, out,
	            sizeof(out));
	CHECK(strncmp(out, "status=ok\n", 10) == 0);

	/* With 100 silent connections open, clients are served. */
	CHECK_INT(run_workers(8, client_worker, NULL), 8);
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	ucaasauth_close(ua);
	/* The silent ones are dropped at their deadline (5 s): each read
	 * ends in EOF, waited for (a bound of 60 s, not a sleep of 5). */
	for (size_t i = 0; i < ARRAY_SIZE(silent); i++) {
		char c;
		struct timeval tv = {60, 0};
		ssize_t n;

		setsockopt(silent[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = recv(silent[i], &c, 1, 0);
		CHECK_MSG(n == 0, "silent connection %zu: %s after 60 s", i,
		          n < 0 ? strerror(errno) : "data");
		close(silent[i]);
	}
	stop_daemon();
	teardown();
}

/* A child for fn(up, down): it writes to the parent on `up` and reads
 * from it on `down`. */
static pid_t spawn(int (*fn)(int up, int down, void *arg), void *arg,
                   int *ret_up, int *ret_down)
{
	int up[2], down[2];
	pid_t pid;

	CHECK_INT(pipe(up), 0);
	CHECK_INT(pipe(down), 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(up[0]);
		close(down[1]);
		_exit(fn(up[1], down[0], arg));
	}
	close(up[1]);
	close(down[0]);
	*ret_up = up[0];
	*ret_down = down[1];
	return pid;
}

static void reap(pid_t pid, int expected)
{
	int status;

	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_INT(WEXITSTATUS(status), expected);
}

/* The token part of a header line. */
static const char *token_of(const char *header)
{
	const char *t = strstr(header, "Token ");

	return t ? t + 6 : header;
}

/* As nobody: attached before the reload that removes nobody; after it,
 * and after a new login, no token at all, and a message that says why. */
static int revoked_client(int up, int down, void *arg)
{
	struct ucaasauth *ua, *again = NULL;
	const struct segment *view;
	char first[4096], newest[4096], buf[4096];
	struct snapshot snap;
	size_t len;
	ssize_t n;
	int r;

	become(NOBODY, NOBODY);
	if (ucaasauth_open(&ua, "tok", 0) != 0 ||
	    ucaasauth_header(ua, first, sizeof(first), &len) != 0)
		return 30;
	view = atomic_load(&ua->view);
	if (write(up, "a", 1) != 1)
		return 31;
	/* The parent's header after the reload and the new login. */
	n = read(down, newest, sizeof(newest) - 1);
	if (n <= 0)
		return 32;
	newest[n] = 0;
	/* The old mapping holds neither token, and says it is retired. */
	if (!segment_read(view, buf, sizeof(buf), &snap) || snap.len != 0 ||
	    !cache_retired(view))
		return 33;
	if (memmem(view, SEGMENT_SIZE, token_of(first),
	           strlen(token_of(first))) ||
	    memmem(view, SEGMENT_SIZE, token_of(newest),
	           strlen(token_of(newest))))
		return 34;
	r = ucaasauth_header(ua, buf, sizeof(buf), &len);
	printf("revoked client: %d, %s\n", r, ucaasauth_last_error());
	fflush(stdout);
	if (r != UCAASAUTH_E_DENIED || buf[0] != 0)
		return 35;
	if (!strstr(ucaasauth_last_error(), "withdrew the segment") ||
	    !strstr(ucaasauth_last_error(), "uid 65534 is not allowed"))
		return 36;
	/* Nor does a new handle get anything. */
	if (ucaasauth_open(&again, "tok", 0) != UCAASAUTH_E_DENIED)
		return 37;
	ucaasauth_close(ua);
	return 0;
}

/* A reload that takes nobody out of allow_groups: the client that
 * attached as nobody before it ends up with no token, while an allowed
 * client carries on, through a new login too. */
static void test_revoke(void)
{
	struct ucaasauth *ua;
	char before[4096], after[4096], c;
	size_t len;
	int up, down;
	pid_t pid;

	setup(900);
	pid = spawn(revoked_client, NULL, &up, &down);
	CHECK_INT(read(up, &c, 1), 1);
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(ucaasauth_header(ua, before, sizeof(before), &len), 0);

	groups_conf = "";
	fixture_write_config(&fix, daemon_profile(900));
	reload_daemon();
	/* The same token, from the new segment: no login for a reload. */
	CHECK_INT(ucaasauth_header(ua, after, sizeof(after), &len), 0);
	CHECK_STR(after, before);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 1);
	/* A new login, forced. */
	CHECK_INT(ucaasauth_reject(ua, after), 0);
	CHECK_INT(ucaasauth_header(ua, after, sizeof(after), &len), 0);
	CHECK(strcmp(after, before) != 0);
	CHECK_INT(mock_customers(&fix.mock, after), 200);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 2);

	CHECK_INT(write(down, after, strlen(after)), (long long)strlen(after));
	reap(pid, 0);
	close(up);
	close(down);
	ucaasauth_close(ua);
	groups_conf = "allow_groups = 65534\n";
	stop_daemon();
	teardown();
}

#define SQUAT_HEADER "Authorization: Token squatter-token-0123456789"

/* Someone else's server on the socket: bound as root, listening as
 * `uid` (SO_PEERCRED names who called listen()), handing every client a
 * sealed segment as good as the daemon's, with a token of its own. */
static int fake_daemon(int up, int down, void *arg)
{
	uid_t uid = *(uid_t *)arg;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int64_t now = now_ms();
	struct token_times t = {now, now + 600000, now + 700000, now + 800000,
	                        0};
	struct segment *seg;
	int memfd, lfd;

	if (cache_new_sealed(&seg, &memfd) < 0 || cache_lock(seg, -1) != 0)
		return 40;
	cache_publish(seg, SQUAT_HEADER, strlen(SQUAT_HEADER), &t, "squat");
	cache_unlock(seg);
	atomic_store(&seg->daemon_pid, getpid());
	atomic_store(&seg->heartbeat_ms, now_ms() + 600000);
	memcpy(addr.sun_path, sock_path, strlen(sock_path));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return 41;
	become(uid, uid);
	if (listen(lfd, 16) < 0 || write(up, "r", 1) != 1)
		return 42;
	for (int i = 0; i < 1000; i++) {
		struct outbuf out = {0};
		char buf[MSG_MAX];
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			continue;
		if (recv(fd, buf, sizeof(buf), 0) > 0) {
			message_add(&out, "status", "ok");
			message_add(&out, "pid", "%d", (int)getpid());
			message_add(&out, "generation", "1");
			message_send(fd, &out, memfd, 0);
		}
		close(fd);
	}
	return 0;
}

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 256; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

static bool segment_mapped(void)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	bool found = false;

	CHECK(f != NULL);
	while (fgets(line, sizeof(line), f))
		found = found || strstr(line, "ucaasauth-segment");
	fclose(f);
	return found;
}

/* The client refuses it with E_CACHE and `why`, holding no fd of its
 * and mapping nothing. */
static void check_squat_refused(const char *why)
{
	struct ucaasauth *ua = NULL;
	int before = count_fds();

	CHECK_INT(ucaasauth_open(&ua, "tok", 0), UCAASAUTH_E_CACHE);
	printf("squat: %s\n", ucaasauth_last_error());
	CHECK_ERROR_HAS(why);
	CHECK_INT(count_fds(), before);
	CHECK(!segment_mapped());
}

/* A socket served by another user is refused, whatever it hands out; the
 * directory too, when others could have put a socket there. */
static void test_squat(void)
{
	struct ucaasauth *ua;
	uid_t uid = NOBODY;
	char dir[420], buf[4096], c;
	size_t len;
	int up, down;

	fixture_start(&fix, 900, NULL);
	snprintf(dir, sizeof(dir), "%s/squat", fix.dir);
	CHECK_INT(mkdir(dir, 0755), 0);
	snprintf(sock_path, sizeof(sock_path), "%s/squat/authd.sock", fix.dir);
	fixture_write_config(&fix, daemon_profile(900));
	fake_pid = spawn(fake_daemon, &uid, &up, &down);
	CHECK_INT(read(up, &c, 1), 1);

	/* In root's own directory, but served by nobody. */
	check_squat_refused("is served by uid 65534");
	CHECK_ERROR_HAS(sock_path);
	/* The check, not something else, refused it: named as the daemon
	 * user, the same server is believed. */
	more_conf = "daemon_user = nobody\n";
	fixture_write_config(&fix, daemon_profile(900));
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	CHECK_STR(buf, SQUAT_HEADER);
	ucaasauth_close(ua);
	more_conf = "";
	fixture_write_config(&fix, daemon_profile(900));
	/* A directory others may write, or another user's. */
	CHECK_INT(chmod(dir, 0777), 0);
	check_squat_refused("mode 0777");
	CHECK_INT(chmod(dir, 0755), 0);
	CHECK_INT(chown(dir, NOBODY, NOBODY), 0);
	check_squat_refused("owned by uid 65534");

	CHECK_INT(kill(fake_pid, SIGKILL), 0);
	CHECK_INT(waitpid(fake_pid, NULL, 0), fake_pid);
	fake_pid = 0;
	close(up);
	close(down);
	fixture_stop(&fix);
}

/* Opens 300 connections as `uid` and holds them until the parent has
 * been served; then reads what each got: `code=N` answers, and EOF. */
static int knocker(int up, int down, void *arg)
{
	uid_t uid = *(uid_t *)arg;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct timeval tv = {20, 0};
	int fds[300], counts[3] = {0, 0, 0}; /* connected, answered, closed */
	char c;

	become(uid, uid);
	memcpy(addr.sun_path, sock_path, strlen(sock_path));
	for (int i = 0; i < 300; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		setsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fds[i], (struct sockaddr *)&addr, sizeof(addr)) <
		    0) {
			close(fds[i]);
			fds[i] = -1;
		}
		counts[0] += fds[i] >= 0;
	}
	if (write(up, counts, sizeof(int)) != sizeof(int) ||
	    read(down, &c, 1) != 1)
		return 50;
	for (int i = 0; i < 300; i++) {
		char buf[1024];
		size_t got = 0;
		ssize_t n;

		if (fds[i] < 0)
			continue;
		while (got < sizeof(buf) - 1 &&
		       (n = recv(fds[i], buf + got, sizeof(buf) - 1 - got, 0)) >
		               0)
			got += n;
		buf[got] = 0;
		counts[1] += strncmp(buf, "status=error\ncode=", 18) == 0;
		counts[2] += n == 0;
		close(fds[i]);
	}
	return write(up, counts + 1, 2 * sizeof(int)) == 2 * sizeof(int) ? 0
	                                                                 : 51;
}

/* 300 connections from a stranger, and 300 from one allowed uid, do not
 * stop the others being served: strangers are answered and closed at
 * accept, and one uid holds at most 64 slots. */
static void test_strangers(void)
{
	uid_t stranger = 1234, hog = 4321;
	pid_t pids[2];
	int up[2], down[2], n, counts[2];
	struct ucaasauth *ua;
	char buf[4096];
	size_t len;

	setup(900);
	pids[0] = spawn(knocker, &stranger, &up[0], &down[0]);
	pids[1] = spawn(knocker, &hog, &up[1], &down[1]);
	for (int k = 0; k < 2; k++) {
		CHECK_INT(read(up[k], &n, sizeof(n)), sizeof(n));
		printf("uid %u: %d connections made\n",
		       (unsigned)(k ? hog : stranger), n);
		CHECK_INT(n, 300);
	}
	/* With the hog holding its slots, nobody's clients are served. */
	CHECK_INT(run_workers(8, client_worker, NULL), 8);
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	ucaasauth_close(ua);
	for (int k = 0; k < 2; k++) {
		CHECK_INT(write(down[k], "g", 1), 1);
		CHECK_INT(read(up[k], counts, sizeof(counts)), sizeof(counts));
		printf("uid %u: %d answered with an error, %d closed\n",
		       (unsigned)(k ? hog : stranger), counts[0], counts[1]);
		/* Every one closed; the stranger's all refused at once, the
		 * hog's beyond its cap. */
		CHECK_INT(counts[1], 300);
		if (k == 0)
			CHECK_INT(counts[0], 300);
		else
			CHECK(counts[0] > 0 && counts[0] < 300);
		reap(pids[k], 0);
		close(up[k]);
		close(down[k]);
	}
	stop_daemon();
	teardown();
}

/* A failed check exits: take the daemon along, whatever it was doing. */
static void kill_daemon(void)
{
	if (getpid() == main_pid && fake_pid > 0) {
		kill(fake_pid, SIGKILL);
		waitpid(fake_pid, NULL, 0);
	}
	if (getpid() == main_pid && daemon_pid > 0 &&
	    waitpid(daemon_pid, NULL, WNOHANG) == 0) {
		kill(daemon_pid, SIGKILL);
		waitpid(daemon_pid, NULL, 0);
	}
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*run)(void);
	} scenarios[] = {
		{"serve", test_serve},         {"refuse", test_refuse},
		{"reject", test_reject},       {"killed", test_killed},
		{"young", test_young},         {"short", test_short},
		{"reload", test_reload},       {"garbage", test_garbage},
		{"revoke", test_revoke},       {"squat", test_squat},
		{"strangers", test_strangers},
	};

	if (geteuid() != 0) {
		printf("skipped: the daemon tests switch users (need root)\n");
		return 77;
	}
	main_pid = getpid();
	atexit(kill_daemon);
	for (size_t i = 0; i < ARRAY_SIZE(scenarios); i++)
		if (argc < 2 || strcmp(argv[1], scenarios[i].name) == 0)
			scenarios[i].run();
	TEST_DONE();
}

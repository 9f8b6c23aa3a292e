/*
 * ucaas-authd with real processes: clients that cannot read a credential
 * get headers, strangers get nothing, the daemon alone logs in, survives
 * garbage, and clients survive the daemon.
 *
 * Usage: test-daemon [SCENARIO]   (serve, refuse, reject, killed, reload,
 *                                  garbage; all when none is named)
 * $CLI_WRAPPER (e.g. valgrind) runs the daemon under it.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache.h"
#include "fixture.h"
#include "test.h"

#define NOBODY 65534

static struct fixture fix;
static char sock_path[400], log_path[400], notify_path[400];
static pid_t daemon_pid, main_pid;
static int notify_fd = -1;

/* Tokens of `ttl` seconds (the mock grants the same). */
static const char *daemon_profile(int ttl)
{
	static char extra[1200];

	snprintf(extra, sizeof(extra),
	         "cache = daemon\n"
	         "socket = %s\n"
	         "allow_users = 4321\n"
	         "allow_groups = %d\n"
	         "token_ttl = %d\nrefresh_ahead = %d\nexpiry_margin = %d\n",
	         sock_path, NOBODY, ttl, ttl / 2, ttl / 4);
	return extra;
}

/* Starts the daemon and waits for its READY=1 (sd_notify). */
static void start_daemon(void)
{
	char buf[256];
	const char *wrapper = getenv("CLI_WRAPPER");
	char *argv[32], *words = strdup(wrapper ? wrapper : "");
	int argc = 0;
	int64_t end = ms_now() + 60000;

	for (char *w = strtok(words, " "); w && argc < 28; w = strtok(NULL, " "))
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
		CHECK(ms_now() < end);
		CHECK(waitpid(daemon_pid, NULL, WNOHANG) == 0);
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
	if (ucaasauth_open(&ua, "tok", 0) != 0)
		return 12;
	for (int n = 0; n < 1000; n++)
		if (ucaasauth_header(ua, buf, sizeof(buf), &len) != 0)
			return 13;
	if (mock_customers(&fix.mock, buf) != 200)
		return 14;
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

/* The daemon killed: the cached token until it expires, then a prompt
 * refusal naming the daemon; the daemon back: served again, same handle. */
static void test_killed(void)
{
	struct ucaasauth *ua;
	char buf[4096];
	size_t len;
	int64_t t0, expired_at = 0;
	int r, status;

	setup(4);
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	CHECK_INT(kill(daemon_pid, SIGKILL), 0);
	CHECK_INT(waitpid(daemon_pid, &status, 0), daemon_pid);
	t0 = ms_now();
	for (;;) {
		int64_t call = ms_now();
		r = ucaasauth_header(ua, buf, sizeof(buf), &len);
		CHECK(ms_now() - call < 2000); /* fail fast, never hang */
		if (r != 0) {
			expired_at = ms_now();
			break;
		}
		CHECK(ms_now() - t0 < 6000);
		ms_sleep(20);
	}
	CHECK_INT(r, UCAASAUTH_E_UNAVAILABLE);
	CHECK_ERROR_HAS("ucaas-authd");
	CHECK_ERROR_HAS(sock_path);
	/* Served until about the token's end (4 s from the login). */
	CHECK(expired_at - t0 >= 1000);

	unlink(sock_path); /* what SIGKILL left behind */
	start_daemon();
	t0 = ms_now();
	do {
		r = ucaasauth_header(ua, buf, sizeof(buf), &len);
		if (r)
			ms_sleep(50);
	} while (r != 0 && ms_now() - t0 < 10000);
	CHECK_INT(r, 0);
	CHECK_INT(mock_customers(&fix.mock, buf), 200);
	CHECK_INT(atomic_load(&atomic_load(&ua->view)->daemon_pid), daemon_pid);
	ucaasauth_close(ua);
	stop_daemon();
	teardown();
}

/* SIGHUP after the password changed: the token stays, the next login
 * uses the new password. */
static void test_reload(void)
{
	struct ucaasauth *ua;
	char before[4096], after[4096];
	size_t len;
	char buf[256];

	setup(900);
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(ucaasauth_header(ua, before, sizeof(before), &len), 0);
	CHECK_INT(mock_config(&fix.mock, "{\"password\": \"new-Password-2\"}"),
	          0);
	fixture_store_password(&fix, "new-Password-2");
	while (recv(notify_fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
	CHECK_INT(kill(daemon_pid, SIGHUP), 0);
	/* RELOADING=1, then READY=1 when done. */
	for (int64_t end = ms_now() + 20000;;) {
		ssize_t n = recv(notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
		if (n > 0) {
			buf[n] = 0;
			if (strstr(buf, "READY=1"))
				break;
		}
		CHECK(ms_now() < end);
		ms_sleep(10);
	}
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
	if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* What a raw request gets back, as text. */
static void raw_request(const char *req, size_t len, char *out, size_t size)
{
	int fd = connect_raw();
	struct timeval tv = {10, 0};
	size_t got = 0;
	ssize_t n;

	CHECK(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	send(fd, req, len, MSG_NOSIGNAL);
	while (got < size - 1 && (n = recv(fd, out + got, size - 1 - got, 0)) > 0)
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
	/* The silent ones are dropped at their deadline (5 s). */
	ms_sleep(6000);
	for (size_t i = 0; i < ARRAY_SIZE(silent); i++) {
		char c;
		struct timeval tv = {2, 0};
		setsockopt(silent[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		CHECK_INT(recv(silent[i], &c, 1, 0), 0);
		close(silent[i]);
	}
	stop_daemon();
	teardown();
}

/* A failed check exits: take the daemon along, whatever it was doing. */
static void kill_daemon(void)
{
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
		{"serve", test_serve},     {"refuse", test_refuse},
		{"reject", test_reject},   {"killed", test_killed},
		{"reload", test_reload},   {"garbage", test_garbage},
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

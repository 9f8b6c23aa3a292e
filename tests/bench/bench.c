/*
 * ucaasauth-bench: what a header costs with libucaasauth's shared cache,
 * against what a program would otherwise use, measured in one run on one
 * machine so that the comparison holds on a noisy one. Run by tools/bench.
 *
 *   ucaasauth-bench [--reps N] [--quick] [--keep] [--csv F] [--plot F]
 *                   [--md F]
 *
 * Sets up a test world (tests/fixture.c: mock UCaaS server on 127.0.0.1,
 * key, configuration, stored credentials), warms the shared cache, puts
 * the same header in a floor segment, the kernel keyring, a token file, a
 * small Unix-socket daemon, a redis-server and a memcached (both started
 * here, on a Unix socket and 127.0.0.1, and killed at the end), then for
 * 1, 2 and 4 processes and each method starts fresh measuring processes
 * (ucaasauth-bench-reader, which uses only the public API through
 * libucaasauth.so.1) released together, and pools their batch timings
 * over the repetitions. Then: instructions per call under callgrind;
 * whole processes (`ucaas-auth header` against `cat`); the shared objects
 * a process that never logs in maps (a client of ucaas-authd, a reader of
 * the warm cache); and the cold-start storm. Each result is printed with
 * its target, PASS or MISS.
 *
 *   ucaasauth-bench worker MODE GO READY OUT MS BATCH MAX
 *   ucaasauth-bench icount MODE CALLS
 * are the workers that need the library's internals: the login rows
 * (login_fetch()) and the in-process profile rows (product-static,
 * segment-read).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAVE_KEYUTILS
#include <keyutils.h>
#endif
#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif
#ifdef HAVE_LIBMEMCACHED
#include <libmemcached/memcached.h>
#endif

#include "bench.h"
#include "fixture.h"
#include "gap.h"
#include "internal.h"

#ifndef BENCH_BUILDTYPE
#define BENCH_BUILDTYPE "unknown"
#endif
#ifndef UCAAS_AUTH
#define UCAAS_AUTH "ucaas-auth"
#endif
#ifndef UCAAS_AUTHD
#define UCAAS_AUTHD "ucaas-authd"
#endif

#define MAX_PROCS 128
#define MAX_REPS 20
#define ICOUNT_CALLS 200000
#define TOKEN_TTL_S 900
#define MAX_SERVERS 4

/* The targets (DESIGN.md, issue 16). */
#define TARGET_FLOOR 1.2    /* x the seqlock floor, same clock */
#define TARGET_PROCESS 2.0  /* x cat, whole processes */
#define TARGET_STORM_MS 5.0 /* cold - warm, beyond one login */

enum {
	M_PRODUCT,
	M_FLOOR,
	M_MONOTONIC,
	M_MEMCPY,
	M_SEGREAD,
	M_STATIC,
	M_MUTEX,
	M_KEYCTL,
	M_SOCKET,
	M_SOCKET_CONNECT,
	M_REDIS_UNIX,
	M_REDIS_TCP,
	M_MEMCACHED,
	M_FILE,
	M_LOGIN_REUSE,
	M_LOGIN_NEW,
	N_METHODS
};

static const struct method {
	const char *id;
	const char *label; /* the table's */
	const char *plot;  /* the plot's, short; NULL: not plotted */
	bool internal;     /* run by this program, not the reader */
	bool one;          /* 1 process only (a profile row) */
	long batch;        /* calls per timed batch */
	int ms;            /* timed loop per process and repetition */
	long max_calls;    /* per process and repetition */
} methods[N_METHODS] = {
	[M_PRODUCT] = {"product", "ucaasauth_header(), warm shared cache",
                       "ucaasauth_header()", false, false, 1000, 300,
                       100000000},
	[M_FLOOR] = {"floor", "floor: seqlock read, coarse clock",
                     "floor (seqlock)", false, false, 1000, 300, 100000000},
	[M_MONOTONIC] = {"floor-monotonic",
                         "(reference: floor with CLOCK_MONOTONIC)",
                         "floor, CLOCK_MONOTONIC", false, false, 1000, 300,
                         100000000},
	[M_MEMCPY] = {"floor-memcpy", "(reference: floor copying with memcpy)",
                      "floor with memcpy", false, true, 1000, 300, 100000000},
	[M_SEGREAD] = {"segment-read",
                       "(profile: segment_read() + fresh check)", NULL, true,
                       true, 1000, 300, 100000000},
	[M_STATIC] = {"product-static",
                      "(profile: ucaasauth_header() linked in, no PLT)", NULL,
                      true, true, 1000, 300, 100000000},
	[M_MUTEX] = {"floor-mutex", "floor with a process-shared mutex",
                     "floor (mutex)", false, false, 1000, 300, 100000000},
	[M_KEYCTL] = {"keyctl", "keyctl_read(), kernel keyring",
                      "keyctl_read()", false, false, 200, 300, 10000000},
	[M_SOCKET] = {"socket", "Unix socket daemon, kept connection",
                      "socket (kept)", false, false, 20, 300, 1000000},
	[M_SOCKET_CONNECT] = {"socket-connect",
                              "Unix socket daemon, connect per request",
                              "socket (connect)", false, false, 10, 300,
                              1000000},
	[M_REDIS_UNIX] = {"redis-unix",
                          "Redis GET (hiredis), Unix socket, kept conn.",
                          "Redis GET (Unix)", false, false, 20, 300, 1000000},
	[M_REDIS_TCP] = {"redis-tcp",
                         "Redis GET (hiredis), 127.0.0.1, kept conn.",
                         "Redis GET (TCP)", false, false, 20, 300, 1000000},
	[M_MEMCACHED] = {"memcached", "memcached get (libmemcached), 127.0.0.1",
                         "memcached get", false, false, 20, 300, 1000000},
	[M_FILE] = {"file", "open + flock(LOCK_SH) + read token file",
                    "file + flock", false, false, 50, 300, 1000000},
	[M_LOGIN_REUSE] = {"login-reuse", "login to the mock, kept connection",
                           "login (kept conn.)", true, false, 1, 400, 2000},
	[M_LOGIN_NEW] = {"login-new", "login to the mock, new connection",
                         "login (new conn.)", true, false, 1, 400, 2000},
};

static const int procs[] = {1, 2, 4};
#define N_PROCS ((int)ARRAY_SIZE(procs))
static const int storm_sizes[] = {8, 32, 128};
#define N_STORMS ((int)ARRAY_SIZE(storm_sizes))
#define STORM_REPS 5

struct cell {
	double *avg; /* pooled batch averages, ns per call */
	size_t n, cap;
	double cps[MAX_REPS]; /* calls per second, summed over processes */
	int reps;
	long calls, allocs;
	bool allocs_unknown;
	char error[300];
	/* Computed. */
	double median, p99, cps_median, cps_best;
};

struct storm {
	double all_ms[STORM_REPS], median_ms[STORM_REPS], open_ms[STORM_REPS];
	double warm_all_ms[STORM_REPS]; /* the same start on a warm cache */
	long logins[STORM_REPS], warm_logins[STORM_REPS];
	int ok[STORM_REPS];
	bool same_header[STORM_REPS];
	int reps;
	/* Computed: medians over the runs. */
	double cold_ms, warm_ms, extra_ms; /* extra: of cold - warm, paired */
};

/* Whole processes, fork + exec to exit, one after the other. */
enum {
	P_HEADER,
	P_CAT,
	P_VERSION,
	N_PROCESS_ROWS
};

static const char *const process_labels[N_PROCESS_ROWS] = {
	[P_HEADER] = "ucaas-auth header, warm cache",
	[P_CAT] = "cat of a file holding the same bytes",
	[P_VERSION] = "ucaas-auth --version",
};

struct process_row {
	double *ms;
	int n, failed;
	char error[200];
	double median, p10, p90;
};

/* A process that never logs in: what it maps after a header. */
enum {
	MAPS_DAEMON,
	MAPS_WARM,
	N_MAPS
};

static const char *const maps_labels[N_MAPS] = {
	[MAPS_DAEMON] = "client of ucaas-authd",
	[MAPS_WARM] = "reader of the warm shared cache",
};

struct maps_result {
	bool ran;
	char error[300];
	int objects;     /* shared objects mapped */
	char found[200]; /* of libcurl, libssl, libcrypto */
	char also[300];  /* other libraries only a login needs */
};

static struct fixture fix;
static struct cell cells[N_METHODS][N_PROCS];
static char skipped[N_METHODS][200]; /* why a method was not measured */
static double icount[N_METHODS];     /* instructions per call, <0: unknown */
static struct storm storms[N_STORMS];
static struct process_row process_rows[N_PROCESS_ROWS];
static long process_logins = -1; /* logins the process rows caused */
static struct maps_result maps[N_MAPS];
static char self_path[PATH_MAX], reader_path[PATH_MAX], preload[PATH_MAX];
static char maps_path[PATH_MAX];
static char header[BENCH_HEADER_MAX + 1];
static size_t header_len;
static long key_serial __attribute__((unused)) = -1; /* keyutils */
static pid_t daemon_pid;
static pid_t servers[MAX_SERVERS]; /* redis-server, memcached, ucaas-authd */
static int n_servers;
static volatile sig_atomic_t interrupted;

static void servers_stop(void);

static _Noreturn PRINTF(1, 2) void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ucaasauth-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (daemon_pid > 0)
		kill(daemon_pid, SIGTERM);
	servers_stop();
	fixture_stop(&fix);
	exit(1);
}

/* ---- the workers that need internals ----------------------------------- */

static int login_worker(int argc, char **argv)
{
	char path[PATH_MAX], token[TOKEN_MAX + 1];
	const struct profile *profile;
	struct secrets *secrets;
	struct config *config;
	struct login login = {0};
	const char *out;
	struct run r;
	bool reuse = strcmp(argv[0], "login-reuse") == 0;
	int go, ready, ttl;

	run_init(&r, argc, argv, &go, &ready, &out);
	if (config_path(path, sizeof(path)) < 0 ||
	    config_load(path, &config) < 0 ||
	    config_find(config, NULL, &profile) < 0 ||
	    cred_load(profile, &secrets) < 0)
		run_fail(out, "%s", ucaasauth_last_error());
	run_wait_go(go, ready);
	/* What a process with no cache does for every header: log in, on
	 * the connection it kept or on a new one. */
	if (reuse)
		MEASURE(&r, login_fetch(&login, profile, secrets, token,
		                        &ttl) == 0);
	else
		MEASURE(&r, (login_free(&login),
		             login_fetch(&login, profile, secrets, token,
		                         &ttl) == 0));
	run_write(&r, out);
	login_free(&login);
	secrets_free(secrets);
	config_free(config);
	return 0;
measure_failed:
	run_fail(out, "login failed after %ld calls: %s", r.calls,
	         ucaasauth_last_error());
}

/* ucaasauth_header() called directly, from the static library the
 * shared one is linked from: the product's code without the PLT. */
__attribute__((noinline)) static size_t static_read(struct ucaasauth *ua,
                                                    char *buf, size_t size)
{
	size_t len;

	if (ucaasauth_header(ua, buf, size, &len) != UCAASAUTH_OK)
		return 0;
	return len;
}

/* The hot path's pieces, in this process: product-static, segment-read.
 * Each call's length is checked and the last header compared, as the
 * reader does for its rows. */
static int profile_worker(int argc, char **argv)
{
	char buf[BENCH_HEADER_MAX + 1], expect[BENCH_HEADER_MAX + 1];
	struct ucaasauth *ua;
	const char *out, *mode = argv[0], *path;
	const void *seg;
	struct run r;
	long want;
	int go, ready;

	run_init(&r, argc, argv, &go, &ready, &out);
	path = getenv("BENCH_EXPECT");
	want = path ? bench_read_file(path, expect, sizeof(expect)) : -1;
	if (want <= 0)
		run_fail(out, "cannot read the expected header");
	if (ucaasauth_open(&ua, NULL, 0) != UCAASAUTH_OK)
		run_fail(out, "ucaasauth_open: %s", ucaasauth_last_error());
	seg = gap_segment(ua);
	if (!seg)
		run_fail(out, "the handle has no segment");
	memset(buf, 0, sizeof(buf));
	run_wait_go(go, ready);
	if (strcmp(mode, "product-static") == 0)
		MEASURE(&r, static_read(ua, buf, sizeof(buf)) == (size_t)want &&
		                    bench_use(buf));
	else
		MEASURE(&r, gap_segment_read(seg, buf, sizeof(buf)) ==
		                            (size_t)want &&
		                    bench_use(buf));
	if (memcmp(buf, expect, (size_t)want + 1) != 0)
		run_fail(out,
		         "%s: the header read differs from the expected "
		         "one",
		         mode);
	run_write(&r, out);
	ucaasauth_close(ua);
	return 0;
measure_failed:
	run_fail(out, "%s: a call failed after %ld calls (%s)", mode, r.calls,
	         ucaasauth_last_error() ? ucaasauth_last_error() : "");
}

static int worker(int argc, char **argv)
{
	if (argc < 1)
		run_fail(NULL, "usage: worker MODE GO READY OUT MS BATCH MAX");
	if (strncmp(argv[0], "login-", 6) == 0)
		return login_worker(argc, argv);
	if (strcmp(argv[0], "product-static") == 0 ||
	    strcmp(argv[0], "segment-read") == 0)
		return profile_worker(argc, argv);
	run_fail(NULL, "worker: no such mode %s", argv[0]);
}

/* CALLS calls and nothing else, for callgrind (the reader's icount, for
 * the profile rows). */
static int icount_worker(int argc, char **argv)
{
	char buf[BENCH_HEADER_MAX + 1];
	struct ucaasauth *ua;
	const void *seg;
	long calls;

	if (argc != 3)
		run_fail(NULL, "usage: icount MODE CALLS");
	calls = atol(argv[2]);
	if (ucaasauth_open(&ua, NULL, 0) != UCAASAUTH_OK)
		run_fail(NULL, "ucaasauth_open: %s", ucaasauth_last_error());
	seg = gap_segment(ua);
	if (strcmp(argv[1], "product-static") == 0) {
		for (long i = 0; i < calls; i++)
			if (!static_read(ua, buf, sizeof(buf)) ||
			    !bench_use(buf))
				run_fail(NULL, "call %ld failed", i);
	} else if (strcmp(argv[1], "segment-read") == 0 && seg) {
		for (long i = 0; i < calls; i++)
			if (!gap_segment_read(seg, buf, sizeof(buf)) ||
			    !bench_use(buf))
				run_fail(NULL, "call %ld failed", i);
	} else {
		run_fail(NULL, "icount: no such mode %s", argv[1]);
	}
	ucaasauth_close(ua);
	return 0;
}

/* ---- the Unix-socket daemon ------------------------------------------ */

/* git-credential-cache--daemon's design, reduced to its round trip: one
 * process holds the token and answers on a Unix socket. One thread, poll;
 * a connection may carry one request (git's way) or many. */
static _Noreturn void serve(int lfd, int64_t expires_ns)
{
	struct pollfd fds[MAX_PROCS * 2 + 1];
	char answer[BENCH_HEADER_MAX + 2], in[256];
	nfds_t n = 1;

	memcpy(answer, header, header_len);
	answer[header_len] = '\n';
	fds[0].fd = lfd;
	fds[0].events = POLLIN;
	for (;;) {
		if (poll(fds, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		for (nfds_t i = n; i-- > 1;) {
			ssize_t got;
			bool drop = false;

			if (!fds[i].revents)
				continue;
			got = read(fds[i].fd, in, sizeof(in));
			if (got <= 0) {
				drop = !(got < 0 && errno == EINTR);
			} else {
				for (ssize_t k = 0; k < got && !drop; k++) {
					size_t len;

					if (in[k] != '\n')
						continue;
					/* Expired: an empty line. */
					len = bench_now_ns() < expires_ns
					              ? header_len + 1
					              : 1;
					drop = write(fds[i].fd,
					             len == 1 ? "\n" : answer,
					             len) != (ssize_t)len;
				}
			}
			if (drop) {
				close(fds[i].fd);
				fds[i] = fds[--n];
			}
		}
		if (fds[0].revents & POLLIN) {
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			if (c >= 0 && n < ARRAY_SIZE(fds)) {
				fds[n].fd = c;
				fds[n].events = POLLIN;
				fds[n].revents = 0;
				n++;
			} else if (c >= 0) {
				close(c);
			}
		}
	}
}

static void daemon_start(const char *path, int64_t expires_ns)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	pid_t parent = getpid();
	int lfd;

	if (strlen(path) >= sizeof(addr.sun_path))
		die("%s: path too long", path);
	strcpy(addr.sun_path, path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(lfd, 512) < 0)
		die("daemon socket %s: %s", path, strerror(errno));
	fflush(NULL);
	daemon_pid = fork();
	if (daemon_pid < 0)
		die("fork: %s", strerror(errno));
	if (daemon_pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		serve(lfd, expires_ns);
	}
	close(lfd);
}

/* ---- setting the table ----------------------------------------------- */

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) < 0)
		die("cannot write %s: %s", path, strerror(errno));
}

static void setenv_path(const char *name, const char *dir, const char *file)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	setenv(name, path, 1);
}

static void floor_setup(int64_t expires_ns)
{
	char path[PATH_MAX];
	struct floor_segment *seg;
	pthread_mutexattr_t attr;
	int fd;

	snprintf(path, sizeof(path), "%s/floor.seg", fix.runtime);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, FLOOR_SIZE) < 0)
		die("%s: %s", path, strerror(errno));
	seg = mmap(NULL, FLOOR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (seg == MAP_FAILED)
		die("%s: %s", path, strerror(errno));
	/* Published the way a writer does: odd, fields, even. */
	atomic_store_explicit(&seg->seq, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&seg->expires_ns, expires_ns,
	                      memory_order_relaxed);
	atomic_store_explicit(&seg->len, (uint32_t)header_len,
	                      memory_order_relaxed);
	for (size_t i = 0; i * 8 < header_len; i++) {
		uint64_t w = 0;

		memcpy(&w, header + i * 8,
		       header_len - i * 8 < 8 ? header_len - i * 8 : 8);
		atomic_store_explicit(&seg->header[i], w, memory_order_relaxed);
	}
	atomic_store_explicit(&seg->seq, 2, memory_order_release);

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(&seg->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	seg->m_expires_ns = expires_ns;
	seg->m_len = (uint32_t)header_len;
	memcpy(seg->m_header, header, header_len);
	munmap(seg, FLOOR_SIZE);
	setenv("BENCH_FLOOR", path, 1);
}

static void keyring_setup(void)
{
#ifdef HAVE_KEYUTILS
	char check[BENCH_HEADER_MAX + 1];
	key_serial_t key;
	long n;

	/* A session keyring of our own, inherited by the workers and gone
	 * with the last of them. */
	if (keyctl_join_session_keyring(NULL) < 0) {
		snprintf(skipped[M_KEYCTL], sizeof(skipped[M_KEYCTL]),
		         "skipped: the kernel refused keyrings: %s",
		         strerror(errno));
		return;
	}
	key = add_key("user", "ucaasauth-bench", header, header_len,
	              KEY_SPEC_SESSION_KEYRING);
	if (key < 0) {
		snprintf(skipped[M_KEYCTL], sizeof(skipped[M_KEYCTL]),
		         "skipped: the kernel refused keyrings: add_key: %s",
		         strerror(errno));
		return;
	}
	/* The kernel drops it when the token expires. */
	keyctl_set_timeout(key, TOKEN_TTL_S);
	n = keyctl_read(key, check, sizeof(check));
	if (n != (long)header_len || memcmp(check, header, header_len) != 0) {
		snprintf(skipped[M_KEYCTL], sizeof(skipped[M_KEYCTL]),
		         "skipped: the kernel refused keyrings: "
		         "keyctl_read: %s",
		         n < 0 ? strerror(errno) : "wrong bytes");
		return;
	}
	key_serial = key;
	snprintf(check, sizeof(check), "%ld", key_serial);
	setenv("BENCH_KEY", check, 1);
#else
	snprintf(skipped[M_KEYCTL], sizeof(skipped[M_KEYCTL]),
	         "skipped: built without libkeyutils "
	         "(tools/install-deps --bench)");
#endif
}

/* ---- servers started for the run: Redis, memcached, ucaas-authd ----- */

/* A program in $PATH, or NULL. */
static const char *in_path(const char *name, char *buf, size_t size)
{
	const char *p = getenv("PATH");

	if (!p)
		p = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
	while (*p) {
		size_t n = strcspn(p, ":");

		snprintf(buf, size, "%.*s/%s", (int)n, p, name);
		if (n && access(buf, X_OK) == 0)
			return buf;
		p += n + (p[n] == ':');
	}
	return NULL;
}

/*
 * Starts argv (its output to `log`, killed if this program dies: the
 * death signal survives the exec) and remembers it for servers_stop().
 * env: "NAME=value" strings set in the child only, NULL-terminated.
 */
static pid_t server_start(const char *const *argv, const char *const *env,
                          const char *log)
{
	pid_t parent = getpid(), pid;

	if (n_servers == MAX_SERVERS)
		die("too many servers");
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		              0600);

		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		for (int i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	servers[n_servers++] = pid;
	return pid;
}

/* SIGTERM, then SIGKILL after 5 s: never left behind. */
static void server_stop(pid_t pid)
{
	int64_t end = bench_now_ns() + 5 * (int64_t)1000000000;
	pid_t r;

	for (int i = 0; i < n_servers; i++)
		if (servers[i] == pid)
			servers[i] = servers[--n_servers];
	if (pid <= 0 || kill(pid, SIGTERM) < 0)
		return;
	while ((r = waitpid(pid, NULL, WNOHANG)) == 0 && bench_now_ns() < end)
		ms_sleep(10);
	if (r == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

static void servers_stop(void)
{
	while (n_servers > 0)
		server_stop(servers[n_servers - 1]);
}

/* A TCP port on 127.0.0.1 that was free a moment ago. */
__attribute__((unused)) static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* Why a server's rows are skipped: the note for each of its methods. */
static PRINTF(3, 4) void skip(int m1, int m2, const char *fmt, ...)
{
	char note[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(note, sizeof(note), fmt, ap);
	va_end(ap);
	for (int m = m1; m <= m2; m++)
		snprintf(skipped[m], sizeof(skipped[m]), "skipped: %.180s",
		         note);
	fprintf(stderr, "ucaasauth-bench: %s: skipped: %s\n", methods[m1].id,
	        note);
}

/*
 * redis-server on a Unix socket in the test world and on 127.0.0.1, no
 * persistence, holding the header under BENCH_KV_KEY with the token's
 * expiry (SET ... EX): what a web shop's workers share a token through.
 */
static void redis_setup(void)
{
#ifdef HAVE_HIREDIS
	char prog[PATH_MAX], sock[PATH_MAX], log[PATH_MAX], port[16];
	redisContext *c = NULL;
	redisReply *rep;
	int64_t end;
	pid_t pid;

	if (!in_path("redis-server", prog, sizeof(prog))) {
		skip(M_REDIS_UNIX, M_REDIS_TCP,
		     "redis-server not found "
		     "(tools/install-deps --bench)");
		return;
	}
	snprintf(sock, sizeof(sock), "%s/redis.sock", fix.dir);
	snprintf(log, sizeof(log), "%s/redis.log", fix.dir);
	snprintf(port, sizeof(port), "%d", free_port());
	{
		const char *argv[] = {prog,        "--port",
		                      port,        "--bind",
		                      "127.0.0.1", "--unixsocket",
		                      sock,        "--unixsocketperm",
		                      "700",       "--save",
		                      "",          "--appendonly",
		                      "no",        "--daemonize",
		                      "no",        "--dir",
		                      fix.dir,     NULL};

		pid = server_start(argv, NULL, log);
	}
	/* Ready when it answers, bounded. */
	end = bench_now_ns() + 20 * (int64_t)1000000000;
	while (bench_now_ns() < end && waitpid(pid, NULL, WNOHANG) == 0) {
		c = redisConnectUnix(sock);
		if (c && !c->err)
			break;
		redisFree(c);
		c = NULL;
		ms_sleep(20);
	}
	if (!c) {
		server_stop(pid);
		skip(M_REDIS_UNIX, M_REDIS_TCP,
		     "redis-server did not start (see its log)");
		return;
	}
	rep = redisCommand(c, "SET %s %b EX %d", BENCH_KV_KEY, header,
	                   header_len, TOKEN_TTL_S);
	if (!rep || rep->type != REDIS_REPLY_STATUS) {
		if (rep)
			freeReplyObject(rep);
		redisFree(c);
		server_stop(pid);
		skip(M_REDIS_UNIX, M_REDIS_TCP, "redis-server refused SET");
		return;
	}
	freeReplyObject(rep);
	redisFree(c);
	setenv("BENCH_REDIS_SOCKET", sock, 1);
	setenv("BENCH_REDIS_PORT", port, 1);
#else
	skip(M_REDIS_UNIX, M_REDIS_TCP,
	     "built without hiredis (tools/install-deps --bench)");
#endif
}

/* memcached on 127.0.0.1, the header stored with the token's expiry. */
static void memcached_setup(void)
{
#ifdef HAVE_LIBMEMCACHED
	char prog[PATH_MAX], log[PATH_MAX], port[16];
	memcached_return_t rc = MEMCACHED_FAILURE;
	memcached_st *mc;
	int64_t end;
	pid_t pid;

	if (!in_path("memcached", prog, sizeof(prog))) {
		skip(M_MEMCACHED, M_MEMCACHED,
		     "memcached not found "
		     "(tools/install-deps --bench)");
		return;
	}
	snprintf(log, sizeof(log), "%s/memcached.log", fix.dir);
	snprintf(port, sizeof(port), "%d", free_port());
	{
		/* As root it wants a user to run as: this one. */
		const char *argv[] = {prog,        "-l",
		                      "127.0.0.1", "-p",
		                      port,        "-U",
		                      "0",         "-m",
		                      "16",        geteuid() == 0 ? "-u" : NULL,
		                      "root",      NULL};

		pid = server_start(argv, NULL, log);
	}
	mc = memcached_create(NULL);
	if (!mc ||
	    memcached_server_add(mc, "127.0.0.1", (in_port_t)atoi(port)) !=
	            MEMCACHED_SUCCESS) {
		memcached_free(mc);
		server_stop(pid);
		skip(M_MEMCACHED, M_MEMCACHED, "libmemcached set-up failed");
		return;
	}
	end = bench_now_ns() + 20 * (int64_t)1000000000;
	while (bench_now_ns() < end && waitpid(pid, NULL, WNOHANG) == 0) {
		rc = memcached_set(mc, BENCH_KV_KEY, strlen(BENCH_KV_KEY),
		                   header, header_len, (time_t)TOKEN_TTL_S, 0);
		if (rc == MEMCACHED_SUCCESS)
			break;
		ms_sleep(20);
	}
	memcached_free(mc);
	if (rc != MEMCACHED_SUCCESS) {
		server_stop(pid);
		skip(M_MEMCACHED, M_MEMCACHED,
		     "memcached did not start (see its log)");
		return;
	}
	setenv("BENCH_MEMCACHED_PORT", port, 1);
#else
	skip(M_MEMCACHED, M_MEMCACHED,
	     "built without libmemcached (tools/install-deps --bench)");
#endif
}

static void setup(void)
{
	struct ucaasauth *ua;
	char data[BENCH_HEADER_MAX + 64], path[PATH_MAX];
	struct timespec real;
	int64_t expires_ns;
	int n, r;

	fixture_start(&fix, TOKEN_TTL_S, NULL);
	/* The product's cache, warmed: one login. */
	r = ucaasauth_open(&ua, NULL, 0);
	if (r == 0)
		r = ucaasauth_header(ua, header, sizeof(header), &header_len);
	if (r != 0)
		die("warming the cache: %s", ucaasauth_last_error());
	ucaasauth_close(ua);
	if (mock_stat(&fix.mock, "logins") != 1)
		die("warming the cache took %ld logins",
		    mock_stat(&fix.mock, "logins"));

	setenv_path("BENCH_EXPECT", fix.dir, "expect");
	write_file(getenv("BENCH_EXPECT"), header, header_len);

	/* Everybody's copy expires with the product's token. */
	expires_ns = bench_now_ns() + (int64_t)TOKEN_TTL_S * 1000000000;
	floor_setup(expires_ns);

	clock_gettime(CLOCK_REALTIME, &real);
	n = snprintf(data, sizeof(data), "%lld\n%s",
	             (long long)(real.tv_sec + TOKEN_TTL_S) * 1000 +
	                     real.tv_nsec / 1000000,
	             header);
	setenv_path("BENCH_FILE", fix.dir, "token");
	write_file(getenv("BENCH_FILE"), data, (size_t)n);

	keyring_setup();

	snprintf(path, sizeof(path), "%s/daemon.sock", fix.dir);
	setenv("BENCH_SOCKET", path, 1);
	daemon_start(path, expires_ns);

	redis_setup();
	memcached_setup();
}

/* ---- running workers ------------------------------------------------- */

/*
 * Starts n processes of `program prefix... GO READY OUT tail...`, waits
 * until all are ready, releases them together, and waits for them. Their
 * result files are dir/out-0 .. dir/out-(n-1). *ret_go gets the release
 * time. Returns how many exited with status 0.
 */
static int launch(const char *program, const char *const *prefix,
                  const char *const *tail, int n, const char *dir,
                  const char *runtime, bool count_allocs, int64_t *ret_go)
{
	pid_t pids[MAX_PROCS];
	int go[2], ready[2], ok = 0, got = 0;
	int64_t deadline;
	char c;

	assert(n <= MAX_PROCS);
	if (pipe(go) < 0 || pipe(ready) < 0)
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	for (int i = 0; i < n; i++) {
		char gofd[16], readyfd[16], out[PATH_MAX + 32];
		const char *argv[32];
		int a = 0;

		snprintf(gofd, sizeof(gofd), "%d", go[0]);
		snprintf(readyfd, sizeof(readyfd), "%d", ready[1]);
		snprintf(out, sizeof(out), "%s/out-%d", dir, i);
		unlink(out);
		argv[a++] = program;
		for (int k = 0; prefix[k]; k++)
			argv[a++] = prefix[k];
		argv[a++] = gofd;
		argv[a++] = readyfd;
		argv[a++] = out;
		for (int k = 0; tail && tail[k]; k++)
			argv[a++] = tail[k];
		argv[a] = NULL;
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork: %s", strerror(errno));
		if (pids[i] == 0) {
			close(go[1]);
			close(ready[0]);
			if (count_allocs && preload[0])
				setenv("LD_PRELOAD", preload, 1);
			if (runtime)
				setenv("UCAASAUTH_RUNTIME_DIR", runtime, 1);
			execv(program, (char **)argv);
			fprintf(stderr, "cannot run %s: %s\n", program,
			        strerror(errno));
			_exit(127);
		}
	}
	close(go[0]);
	close(ready[1]);
	/* Every worker says it is ready; one that dies first ends this. */
	deadline = bench_now_ns() + 60 * (int64_t)1000000000;
	while (got < n && bench_now_ns() < deadline) {
		struct pollfd p = {.fd = ready[0], .events = POLLIN};
		ssize_t r;

		if (poll(&p, 1, 100) <= 0)
			continue;
		r = read(ready[0], &c, 1);
		if (r == 0)
			break;
		if (r == 1)
			got++;
	}
	close(ready[0]);
	*ret_go = bench_now_ns();
	close(go[1]); /* go */
	if (got < n)
		fprintf(stderr,
		        "ucaasauth-bench: only %d of %d workers got "
		        "ready\n",
		        got, n);
	deadline = bench_now_ns() + 120 * (int64_t)1000000000;
	for (int i = 0; i < n; i++) {
		int status;
		pid_t r;

		while ((r = waitpid(pids[i], &status, WNOHANG)) == 0 &&
		       bench_now_ns() < deadline)
			ms_sleep(5);
		if (r == 0) {
			kill(pids[i], SIGKILL);
			waitpid(pids[i], &status, 0);
		}
		if (r > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
			ok++;
	}
	return ok;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Reads one worker's result file into the cell. */
static bool collect(struct cell *cell, const char *path, double *cps)
{
	char word[16], line[64];
	long calls, allocs;
	long long elapsed;
	size_t n;
	FILE *f = fopen(path, "r");

	if (!f) {
		snprintf(cell->error, sizeof(cell->error), "no result");
		return false;
	}
	if (fscanf(f, "%15s", word) != 1 || strcmp(word, "ok") != 0) {
		if (!fgets(line, sizeof(line), f))
			line[0] = 0;
		line[strcspn(line, "\n")] = 0;
		snprintf(cell->error, sizeof(cell->error), "%s", line);
		fclose(f);
		return false;
	}
	if (fscanf(f, "%ld %lld %ld %zu", &calls, &elapsed, &allocs, &n) != 4) {
		fclose(f);
		return false;
	}
	if (cell->n + n > cell->cap) {
		size_t cap = (cell->n + n) * 2;
		double *p = realloc(cell->avg, cap * sizeof(*p));
		if (!p)
			die("out of memory");
		cell->avg = p;
		cell->cap = cap;
	}
	for (size_t i = 0; i < n; i++)
		if (fscanf(f, "%lf", &cell->avg[cell->n]) == 1)
			cell->n++;
	fclose(f);
	cell->calls += calls;
	if (allocs < 0)
		cell->allocs_unknown = true;
	else
		cell->allocs += allocs;
	if (elapsed > 0)
		*cps += (double)calls * 1e9 / (double)elapsed;
	return true;
}

static void run_cell(int m, int p, const char *dir)
{
	const struct method *me = &methods[m];
	struct cell *cell = &cells[m][p];
	char ms[16], batch[16], max[24], out[PATH_MAX + 32];
	const char *prefix[3] = {NULL}, *tail[4] = {ms, batch, max, NULL};
	double cps = 0;
	int64_t t_go;
	int ok;

	if (cell->error[0] || (me->one && p > 0))
		return; /* failed before: do not retry every repetition */
	if (skipped[m][0]) {
		snprintf(cell->error, sizeof(cell->error), "%.199s",
		         skipped[m]);
		return;
	}
	snprintf(ms, sizeof(ms), "%d", me->ms);
	snprintf(batch, sizeof(batch), "%ld", me->batch);
	snprintf(max, sizeof(max), "%ld", me->max_calls);
	if (me->internal) {
		prefix[0] = "worker";
		prefix[1] = me->id;
	} else {
		prefix[0] = me->id;
	}
	ok = launch(me->internal ? self_path : reader_path, prefix, tail,
	            procs[p], dir, NULL, true, &t_go);
	for (int i = 0; i < procs[p]; i++) {
		snprintf(out, sizeof(out), "%s/out-%d", dir, i);
		if (!collect(cell, out, &cps) && !cell->error[0])
			snprintf(cell->error, sizeof(cell->error),
			         "worker failed");
	}
	if (ok != procs[p] && !cell->error[0])
		snprintf(cell->error, sizeof(cell->error),
		         "%d of %d workers failed", procs[p] - ok, procs[p]);
	if (cell->error[0]) {
		fprintf(stderr, "ucaasauth-bench: %s with %d: %s\n", me->id,
		        procs[p], cell->error);
		return;
	}
	cell->cps[cell->reps++] = cps;
}

/* ---- instructions per call ------------------------------------------- */

/* Instructions callgrind counted in `program icount MODE calls`; -1 if
 * it could not. */
static double callgrind(const char *program, const char *mode, long calls)
{
	char out[PATH_MAX], n[24], line[256];
	double total = -1;
	pid_t pid;
	int status;
	FILE *f;

	snprintf(out, sizeof(out), "%s/callgrind.%s.%ld", fix.dir, mode, calls);
	snprintf(n, sizeof(n), "%ld", calls);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char file[PATH_MAX + 32];
		int null = open("/dev/null", O_WRONLY);

		snprintf(file, sizeof(file), "--callgrind-out-file=%s", out);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execlp("valgrind", "valgrind", "--tool=callgrind", file,
		       program, "icount", mode, n, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return -1;
	f = fopen(out, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "summary:", 8) == 0)
			total = strtod(line + 8, NULL);
	fclose(f);
	return total;
}

static void count_instructions(void)
{
	static const int counted[] = {M_PRODUCT, M_FLOOR,   M_MONOTONIC,
	                              M_MEMCPY,  M_SEGREAD, M_STATIC,
	                              M_MUTEX};

	for (int m = 0; m < N_METHODS; m++)
		icount[m] = -1;
	for (size_t i = 0; i < ARRAY_SIZE(counted); i++) {
		const struct method *me = &methods[counted[i]];
		const char *prog = me->internal ? self_path : reader_path;
		double base = callgrind(prog, me->id, 0);
		double full =
			base < 0 ? -1 : callgrind(prog, me->id, ICOUNT_CALLS);

		if (full >= 0)
			icount[counted[i]] = (full - base) / ICOUNT_CALLS;
	}
}

/* ---- whole processes ------------------------------------------------ */

/*
 * Runs argv to its exit with its output in a pipe; the wall time from
 * before fork() to after waitpid() in ms, or -1 when it failed, printed
 * other than `expect` (NULL: anything but nothing) or ran past 10 s.
 */
static double run_process(const char *const *argv, const char *expect)
{
	char out[1024];
	size_t got = 0;
	int fds[2], status;
	int64_t t0, end;
	bool eof = false;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	fflush(NULL);
	t0 = bench_now_ns();
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(fds[1], 1);
		if (null >= 0)
			dup2(null, 2);
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(fds[1]);
	end = t0 + 10 * (int64_t)1000000000;
	while (!eof && bench_now_ns() < end) {
		struct pollfd pf = {.fd = fds[0], .events = POLLIN};
		ssize_t n;

		if (poll(&pf, 1, 100) <= 0)
			continue;
		n = read(fds[0], out + got, sizeof(out) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || got + (size_t)n == sizeof(out) - 1)
			eof = true;
		if (n > 0)
			got += (size_t)n;
	}
	close(fds[0]);
	if (!eof)
		kill(pid, SIGKILL);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	t0 = bench_now_ns() - t0;
	out[got] = 0;
	if (!eof || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    (expect ? strcmp(out, expect) != 0 : got == 0))
		return -1;
	return (double)t0 / 1e6;
}

/*
 * What a shell script pays for its header: `ucaas-auth header` on the
 * warm cache, as a whole process, against `cat` of a file holding the
 * same bytes (the least a process that prints them can do), and
 * `ucaas-auth --version` (the cost of starting the program at all). Run
 * in turn, `runs` times each, so that all three see the same weather;
 * every run's output is checked.
 */
static void run_processes(int runs)
{
	char cat[PATH_MAX], file[PATH_MAX], line[BENCH_HEADER_MAX + 2];
	const char *argv[N_PROCESS_ROWS][4];
	long logins0 = mock_stat(&fix.mock, "logins");

	snprintf(line, sizeof(line), "%s\n", header);
	snprintf(file, sizeof(file), "%s/header-line", fix.dir);
	write_file(file, line, strlen(line));
	if (!in_path("cat", cat, sizeof(cat)))
		snprintf(process_rows[P_CAT].error,
		         sizeof(process_rows[P_CAT].error),
		         "skipped: cat not found");
	if (access(UCAAS_AUTH, X_OK) < 0) {
		snprintf(process_rows[P_HEADER].error,
		         sizeof(process_rows[P_HEADER].error),
		         "skipped: %s: %s (not built)", UCAAS_AUTH,
		         strerror(errno));
		snprintf(process_rows[P_VERSION].error,
		         sizeof(process_rows[P_VERSION].error), "%s",
		         process_rows[P_HEADER].error);
	}
	argv[P_HEADER][0] = UCAAS_AUTH;
	argv[P_HEADER][1] = "header";
	argv[P_HEADER][2] = NULL;
	argv[P_CAT][0] = cat;
	argv[P_CAT][1] = file;
	argv[P_CAT][2] = NULL;
	argv[P_VERSION][0] = UCAAS_AUTH;
	argv[P_VERSION][1] = "--version";
	argv[P_VERSION][2] = NULL;
	for (int k = 0; k < N_PROCESS_ROWS; k++) {
		process_rows[k].ms = calloc((size_t)runs, sizeof(double));
		if (!process_rows[k].ms)
			die("out of memory");
	}
	for (int i = 0; i < runs && !interrupted; i++)
		for (int k = 0; k < N_PROCESS_ROWS; k++) {
			struct process_row *row = &process_rows[k];
			double ms;

			if (row->error[0])
				continue;
			ms = run_process(argv[k], k == P_VERSION ? NULL : line);
			if (ms < 0)
				row->failed++;
			else
				row->ms[row->n++] = ms;
		}
	for (int k = 0; k < N_PROCESS_ROWS; k++)
		if (!process_rows[k].error[0] && process_rows[k].failed)
			snprintf(process_rows[k].error,
			         sizeof(process_rows[k].error),
			         "%d of %d runs failed or printed something "
			         "else",
			         process_rows[k].failed, runs);
	/* A warm cache: not one login. */
	process_logins = mock_stat(&fix.mock, "logins") - logins0;
}

/* ---- what a process that never logs in maps ------------------------- */

/* Runs the maps program with `config` and reads what it found. */
static void maps_run(struct maps_result *res, const char *config,
                     const char *expect)
{
	static const char *const login_only[] = {"libcurl", "libssl",
	                                         "libcrypto"};
	static const char *const also[] = {
		"libnghttp2", "libssh2", "libgssapi", "libldap",   "libjson-c",
		"libpsl",     "libidn2", "librtmp",   "libbrotli", "libzstd"};
	char out[PATH_MAX], line[PATH_MAX], got[BENCH_HEADER_MAX + 2];
	const char *argv[] = {maps_path, out, NULL};
	int status = -1;
	pid_t pid;
	FILE *f;

	res->ran = true;
	snprintf(out, sizeof(out), "%s/maps.out", fix.dir);
	unlink(out);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		setenv("UCAASAUTH_CONFIG", config, 1);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	{
		int64_t end = bench_now_ns() + 60 * (int64_t)1000000000;
		pid_t r;

		while ((r = waitpid(pid, &status, WNOHANG)) == 0 &&
		       bench_now_ns() < end)
			ms_sleep(5);
		if (r == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
		}
	}
	f = fopen(out, "r");
	if (!f || !fgets(line, sizeof(line), f) || strcmp(line, "ok\n") != 0) {
		snprintf(res->error, sizeof(res->error), "%.250s",
		         f ? (line[strcspn(line, "\n")] = 0, line)
		           : "no result");
		if (f)
			fclose(f);
		return;
	}
	if (!fgets(got, sizeof(got), f) ||
	    fscanf(f, "%d\n", &res->objects) != 1) {
		snprintf(res->error, sizeof(res->error), "bad result");
		fclose(f);
		return;
	}
	got[strcspn(got, "\n")] = 0;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		for (size_t i = 0; i < ARRAY_SIZE(login_only); i++)
			if (strncmp(line, login_only[i],
			            strlen(login_only[i])) == 0) {
				size_t l = strlen(res->found);
				snprintf(res->found + l, sizeof(res->found) - l,
				         "%s%s", l ? " " : "", line);
			}
		for (size_t i = 0; i < ARRAY_SIZE(also); i++)
			if (strncmp(line, also[i], strlen(also[i])) == 0) {
				size_t l = strlen(res->also);
				snprintf(res->also + l, sizeof(res->also) - l,
				         "%s%s", l ? " " : "", line);
			}
	}
	fclose(f);
	/* It held a header the server takes (the daemon logged in on its
	 * own: another token than the shared cache's). */
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    (expect ? strcmp(got, expect) != 0
	            : mock_customers(&fix.mock, got) != 200))
		snprintf(res->error, sizeof(res->error),
		         "the header it got is not one the server takes");
}

/*
 * A client of ucaas-authd: the daemon started for one profile (cache =
 * daemon) on a socket in the test world, as tests/test-daemon.c does,
 * ready when it says READY=1 on $NOTIFY_SOCKET; its client opens the
 * profile, gets a header (its own fd to the daemon's sealed segment), and
 * lists what it maps. Then the same for a reader of the warm shared cache.
 */
static void run_maps(void)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char conf[PATH_MAX], dir[PATH_MAX], notify[PATH_MAX], log[PATH_MAX];
	char env_notify[PATH_MAX + 32], env_conf[PATH_MAX + 32];
	char buf[256], uid[16];
	struct maps_result *res = &maps[MAPS_DAEMON];
	bool ready = false;
	int64_t end;
	FILE *f;
	int fd;
	pid_t pid;

	maps_run(&maps[MAPS_WARM], fix.conf, header);

	res->ran = true;
	if (access(UCAAS_AUTHD, X_OK) < 0) {
		snprintf(res->error, sizeof(res->error),
		         "skipped: %s: %s (not built)", UCAAS_AUTHD,
		         strerror(errno));
		return;
	}
	snprintf(conf, sizeof(conf), "%s/daemon.conf", fix.dir);
	snprintf(dir, sizeof(dir), "%s/authd", fix.dir);
	snprintf(notify, sizeof(notify), "%s/notify", fix.dir);
	snprintf(log, sizeof(log), "%s/authd.log", fix.dir);
	snprintf(uid, sizeof(uid), "%u", (unsigned)getuid());
	if (mkdir(dir, 0700) < 0)
		die("%s: %s", dir, strerror(errno));
	/* The profile the fixture stored (tok.cred, master.key beside the
	 * configuration), served by the daemon to this user. */
	f = fopen(conf, "w");
	if (!f)
		die("cannot write %s", conf);
	fprintf(f,
	        "default_profile = tok\n[profile tok]\napi_base = %s\n"
	        "app_id = %s\nprovider = login\ncache = daemon\n"
	        "socket = %s/authd.sock\nallow_users = %s\n",
	        fix.mock.base, FIX_APP_ID, dir, uid);
	if (fclose(f) != 0)
		die("cannot write %s", conf);

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || strlen(notify) >= sizeof(addr.sun_path))
		die("notify socket: %s", strerror(errno));
	memcpy(addr.sun_path, notify, strlen(notify));
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("%s: %s", notify, strerror(errno));
	snprintf(env_notify, sizeof(env_notify), "NOTIFY_SOCKET=%s", notify);
	snprintf(env_conf, sizeof(env_conf), "UCAASAUTH_CONFIG=%s", conf);
	{
		const char *argv[] = {UCAAS_AUTHD, NULL};
		const char *env[] = {env_notify, env_conf, NULL};

		pid = server_start(argv, env, log);
	}
	end = bench_now_ns() + 60 * (int64_t)1000000000;
	while (!ready && bench_now_ns() < end &&
	       waitpid(pid, NULL, WNOHANG) == 0) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&pf, 1, 50) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
		if (n > 0) {
			buf[n] = 0;
			ready = strstr(buf, "READY=1") != NULL;
		}
	}
	close(fd);
	if (!ready) {
		server_stop(pid);
		snprintf(res->error, sizeof(res->error),
		         "ucaas-authd did not get ready (its log: %.200s, "
		         "kept with --keep)",
		         log);
		return;
	}
	maps_run(res, conf, NULL);
	server_stop(pid);
}

/* ---- the cold-start storm -------------------------------------------- */

/* What one start of n processes on the cache directory `runtime` gave. */
struct start {
	double all_ms, median_ms, open_ms; /* from the release */
	int ok;                            /* processes that hold the header */
	bool same_header;                  /* all the same, and first[] */
};

static void storm_start(int n, const char *runtime, struct start *ret,
                        char *first, size_t first_size)
{
	const char *prefix[] = {"storm", NULL};
	char out[PATH_MAX + 32], line[BENCH_HEADER_MAX + 2];
	double ms[MAX_PROCS], opened[MAX_PROCS];
	int64_t t_go;
	int done = 0, ok;

	ok = launch(reader_path, prefix, NULL, n, fix.dir, runtime, false,
	            &t_go);
	ret->same_header = true;
	for (int i = 0; i < n; i++) {
		long long t, t_open;
		FILE *f;

		snprintf(out, sizeof(out), "%s/out-%d", fix.dir, i);
		f = fopen(out, "r");
		if (!f)
			continue;
		if (fscanf(f, "ok %lld %lld\n", &t, &t_open) == 2 &&
		    fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\n")] = 0;
			if (!first[0])
				snprintf(first, first_size, "%s", line);
			else if (strcmp(first, line) != 0)
				ret->same_header = false;
			opened[done] = (double)(t_open - t_go) / 1e6;
			ms[done++] = (double)(t - t_go) / 1e6;
		}
		fclose(f);
	}
	qsort(ms, (size_t)done, sizeof(double), cmp_double);
	qsort(opened, (size_t)done, sizeof(double), cmp_double);
	ret->open_ms = done ? opened[done / 2] : -1;
	ret->all_ms = done ? ms[done - 1] : -1;
	ret->median_ms = done ? ms[done / 2] : -1;
	ret->ok = done < ok ? done : ok;
}

/* n processes on an empty cache, then n more on the cache they filled:
 * the difference is what waiting for the one login costs. */
static void run_storm(int s, int rep)
{
	struct storm *st = &storms[s];
	int n = storm_sizes[s];
	char runtime[PATH_MAX], first[BENCH_HEADER_MAX + 2] = "";
	struct start cold, warm;

	/* An empty cache: a directory no process has used. */
	snprintf(runtime, sizeof(runtime), "%s/storm-%d-%d", fix.dir, n, rep);
	if (mock_reset(&fix.mock) < 0)
		die("cannot reset the mock server");
	storm_start(n, runtime, &cold, first, sizeof(first));
	st->logins[rep] = mock_stat(&fix.mock, "logins");
	storm_start(n, runtime, &warm, first, sizeof(first));
	st->warm_logins[rep] = mock_stat(&fix.mock, "logins") - st->logins[rep];
	st->all_ms[rep] = cold.all_ms;
	st->median_ms[rep] = cold.median_ms;
	st->open_ms[rep] = cold.open_ms;
	st->warm_all_ms[rep] = warm.all_ms;
	st->ok[rep] = cold.ok < warm.ok ? cold.ok : warm.ok;
	st->same_header[rep] = cold.same_header && warm.same_header;
	/* The header they share is one the server takes. */
	if (!first[0] || mock_customers(&fix.mock, first) != 200)
		st->same_header[rep] = false;
	st->reps = rep + 1;
}

/* ---- report ---------------------------------------------------------- */

static double percentile(const double *sorted, size_t n, double q)
{
	size_t i;

	if (n == 0)
		return NAN;
	i = (size_t)ceil(q * (double)n);
	return sorted[i ? i - 1 : 0];
}

static double median_of(double *v, int n)
{
	if (n <= 0)
		return NAN;
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void compute(void)
{
	for (int m = 0; m < N_METHODS; m++)
		for (int p = 0; p < N_PROCS; p++) {
			struct cell *c = &cells[m][p];
			double cps[MAX_REPS];

			qsort(c->avg, c->n, sizeof(double), cmp_double);
			c->median = percentile(c->avg, c->n, 0.5);
			c->p99 = percentile(c->avg, c->n, 0.99);
			memcpy(cps, c->cps, sizeof(cps));
			qsort(cps, (size_t)c->reps, sizeof(double), cmp_double);
			c->cps_median = c->reps ? cps[(c->reps - 1) / 2] : NAN;
			c->cps_best = c->reps ? cps[c->reps - 1] : NAN;
		}
	for (int s = 0; s < N_STORMS; s++) {
		struct storm *st = &storms[s];
		double cold[STORM_REPS], warm[STORM_REPS], extra[STORM_REPS];

		/* Each cold start is paired with the warm start that
		 * followed it, seconds apart: the difference of each pair,
		 * then the median of those. */
		for (int k = 0; k < st->reps; k++) {
			cold[k] = st->all_ms[k];
			warm[k] = st->warm_all_ms[k];
			extra[k] = cold[k] - warm[k];
		}
		st->cold_ms = median_of(cold, st->reps);
		st->warm_ms = median_of(warm, st->reps);
		st->extra_ms = median_of(extra, st->reps);
	}
	for (int k = 0; k < N_PROCESS_ROWS; k++) {
		struct process_row *row = &process_rows[k];

		if (row->n == 0)
			continue;
		qsort(row->ms, (size_t)row->n, sizeof(double), cmp_double);
		row->median = percentile(row->ms, (size_t)row->n, 0.5);
		row->p10 = percentile(row->ms, (size_t)row->n, 0.1);
		row->p90 = percentile(row->ms, (size_t)row->n, 0.9);
	}
}

static bool measured(int m, int p)
{
	return cells[m][p].reps > 0 && !cells[m][p].error[0] &&
	       cells[m][p].n > 0;
}

static double ratio(int m, int ref, int p)
{
	return measured(m, p) && measured(ref, p)
	               ? cells[m][p].median / cells[ref][p].median
	               : NAN;
}

static void fmt_num(char *buf, size_t size, double v, int decimals)
{
	if (isnan(v) || v < 0)
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, "%.*f", decimals, v);
}

static double allocs_per_call(int m, int p)
{
	const struct cell *c = &cells[m][p];

	if (!measured(m, p) || c->allocs_unknown || c->calls == 0)
		return -1;
	return (double)c->allocs / (double)c->calls;
}

static void cpu_model(char *buf, size_t size)
{
	char line[256];
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(buf, size, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "model name", 10) == 0) {
			char *v = strchr(line, ':');
			if (v) {
				v += 1 + strspn(v + 1, " \t");
				v[strcspn(v, "\n")] = 0;
				snprintf(buf, size, "%s", v);
			}
			break;
		}
	fclose(f);
}

static void loadavg(char *buf, size_t size)
{
	if (bench_read_file("/proc/loadavg", buf, size) <= 0)
		snprintf(buf, size, "?");
	buf[strcspn(buf, "\n")] = 0;
	/* The three averages only. */
	for (int spaces = 0, i = 0; buf[i]; i++)
		if (buf[i] == ' ' && ++spaces == 3) {
			buf[i] = 0;
			break;
		}
}

/* CPU time, in seconds, the whole machine spent busy and stolen by the
 * hypervisor, from /proc/stat. */
static void machine_cpu(double *ret_busy, double *ret_steal)
{
	unsigned long long v[8] = {0};
	char line[512];
	double hz = (double)sysconf(_SC_CLK_TCK);

	*ret_busy = *ret_steal = NAN;
	if (bench_read_file("/proc/stat", line, sizeof(line)) <= 0 ||
	    sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
	           &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
		return;
	/* user nice system idle iowait irq softirq steal */
	*ret_busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
	*ret_steal = (double)v[7] / hz;
}

/* CPU time this program and everything it waited for used. */
static double own_cpu(void)
{
	struct rusage self, children;

	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &children);
	return (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec +
	                children.ru_utime.tv_sec + children.ru_stime.tv_sec) +
	       (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec +
	                children.ru_utime.tv_usec + children.ru_stime.tv_usec) /
	               1e6;
}

/* What judge() is told: a target met or missed, a line for information,
 * or a target that could not be measured here (a peer not installed). */
enum {
	MISS = 0,
	PASS = 1,
	INFO = -1,
	SKIP = -2
};

struct verdict {
	char what[160], measured[200];
	int pass; /* PASS, MISS, INFO or SKIP */
};

static const char *verdict_word(int pass)
{
	return pass == INFO   ? "info"
	       : pass == SKIP ? "SKIP"
	       : pass         ? "PASS"
	                      : "MISS";
}

static struct verdict verdicts[48];
static int n_verdicts;

static PRINTF(3, 4) void judge(int pass, const char *what, const char *fmt, ...)
{
	struct verdict *v;
	va_list ap;

	if (n_verdicts == (int)ARRAY_SIZE(verdicts))
		die("too many verdicts");
	v = &verdicts[n_verdicts++];
	v->pass = pass;
	snprintf(v->what, sizeof(v->what), "%s", what);
	va_start(ap, fmt);
	vsnprintf(v->measured, sizeof(v->measured), fmt, ap);
	va_end(ap);
	/* A ratio of something not measured. */
	if (strncmp(v->measured, "nan", 3) == 0 ||
	    strncmp(v->measured, "-nan", 4) == 0)
		snprintf(v->measured, sizeof(v->measured), "not measured");
}

/* One login as a cold start makes it (a new connection), in ms. */
static double login_ms(void)
{
	return measured(M_LOGIN_NEW, 0) ? cells[M_LOGIN_NEW][0].median / 1e6
	                                : NAN;
}

static bool storm_correct(int s)
{
	const struct storm *st = &storms[s];
	bool ok = st->reps > 0;

	for (int k = 0; k < st->reps; k++)
		ok = ok && st->logins[k] == 1 && st->warm_logins[k] == 0 &&
		     st->ok[k] == storm_sizes[s] && st->same_header[k];
	return ok;
}

static bool process_measured(int k)
{
	return !process_rows[k].error[0] && process_rows[k].n > 0;
}

static double icount_ratio(int m, int ref)
{
	return icount[m] >= 0 && icount[ref] > 0 ? icount[m] / icount[ref]
	                                         : NAN;
}

static void judge_all(void)
{
	double r, a;
	bool zero = true, known = true;
	char what[160];

	/* 1. The headline: the product against the seqlock floor with the
	 * product's own clock. */
	for (int p = 0; p < 2; p++) {
		r = ratio(M_PRODUCT, M_FLOOR, p);
		snprintf(what, sizeof(what),
		         "ucaasauth_header() <= %.1fx the seqlock floor "
		         "(same clock), ns/call, %d process%s",
		         TARGET_FLOOR, procs[p], p ? "es" : "");
		judge(!isnan(r) && r <= TARGET_FLOOR, what,
		      "%.2fx (%.1f vs %.1f ns)", r, cells[M_PRODUCT][p].median,
		      cells[M_FLOOR][p].median);
	}
	r = icount_ratio(M_PRODUCT, M_FLOOR);
	snprintf(what, sizeof(what),
	         "ucaasauth_header() <= %.1fx the seqlock floor (same clock), "
	         "instructions/call",
	         TARGET_FLOOR);
	judge(!isnan(r) && r <= TARGET_FLOOR, what, "%.2fx (%.0f vs %.0f)", r,
	      icount[M_PRODUCT], icount[M_FLOOR]);
	/* Where the gap goes, step by step from the floor (information). */
	judge(INFO,
	      "gap: floor -> segment_read() + fresh check (the "
	      "product's fields, ms clock)",
	      "%.1f -> %.1f ns, %.0f -> %.0f instructions",
	      cells[M_FLOOR][0].median, cells[M_SEGREAD][0].median,
	      icount[M_FLOOR], icount[M_SEGREAD]);
	judge(INFO,
	      "gap: -> ucaasauth_header() linked in (entry checks, "
	      "Basic branch, view)",
	      "%.1f -> %.1f ns, %.0f -> %.0f instructions",
	      cells[M_SEGREAD][0].median, cells[M_STATIC][0].median,
	      icount[M_SEGREAD], icount[M_STATIC]);
	judge(INFO,
	      "gap: -> ucaasauth_header() through the PLT of "
	      "libucaasauth.so.1",
	      "%.1f -> %.1f ns, %.0f -> %.0f instructions",
	      cells[M_STATIC][0].median, cells[M_PRODUCT][0].median,
	      icount[M_STATIC], icount[M_PRODUCT]);
	r = ratio(M_PRODUCT, M_MEMCPY, 0);
	judge(INFO,
	      "reference: ucaasauth_header() against a floor copying "
	      "with one memcpy (breaks the no-string-functions rule)",
	      "%.2fx ns (%.1f vs %.1f), %.2fx instructions", r,
	      cells[M_PRODUCT][0].median, cells[M_MEMCPY][0].median,
	      icount_ratio(M_PRODUCT, M_MEMCPY));
	r = ratio(M_PRODUCT, M_MONOTONIC, 0);
	judge(INFO,
	      "reference: ucaasauth_header() against the floor with "
	      "CLOCK_MONOTONIC",
	      "%.2fx ns (%.1f vs %.1f), %.2fx instructions", r,
	      cells[M_PRODUCT][0].median, cells[M_MONOTONIC][0].median,
	      icount_ratio(M_PRODUCT, M_MONOTONIC));

	for (int p = 0; p < N_PROCS; p++) {
		a = allocs_per_call(M_PRODUCT, p);
		if (a < 0)
			known = false;
		else if (a != 0)
			zero = false;
	}
	judge(known && zero, "ucaasauth_header(): 0 allocations per call",
	      known ? "%ld allocations in %ld calls"
	            : "not counted (%ld in %ld)",
	      cells[M_PRODUCT][0].allocs + cells[M_PRODUCT][1].allocs +
	              cells[M_PRODUCT][2].allocs,
	      cells[M_PRODUCT][0].calls + cells[M_PRODUCT][1].calls +
	              cells[M_PRODUCT][2].calls);

	/* 2. The peers. */
	r = ratio(M_SOCKET, M_PRODUCT, 0);
	judge(!isnan(r) && r >= 500,
	      ">= 500x faster than the Unix-socket round trip (kept "
	      "connection), 1 process",
	      "%.0fx", r);
	for (int m = M_REDIS_UNIX; m <= M_MEMCACHED; m++) {
		snprintf(what, sizeof(what),
		         ">= 500x faster than %s, 1 process", methods[m].label);
		r = ratio(m, M_PRODUCT, 0);
		if (isnan(r))
			judge(skipped[m][0] ? SKIP : MISS, what,
			      "not measured: %s",
			      cells[m][0].error[0] ? cells[m][0].error
			                           : "no result");
		else
			judge(r >= 500, what, "%.0fx (%.0f vs %.1f ns)", r,
			      cells[m][0].median, cells[M_PRODUCT][0].median);
	}
	for (int m = M_REDIS_UNIX; m <= M_MEMCACHED; m++) {
		r = measured(m, 0) && measured(m, 2)
		            ? cells[m][2].cps_median / cells[m][0].cps_median
		            : NAN;
		snprintf(what, sizeof(what),
		         "%s: 4 processes' summed calls/s against one's",
		         methods[m].label);
		judge(INFO, what, "%.2fx", r);
	}
	r = ratio(M_KEYCTL, M_PRODUCT, 0);
	if (isnan(r))
		judge(skipped[M_KEYCTL][0] ? SKIP : MISS,
		      ">= 30x faster than keyctl_read(), 1 process",
		      "not measured: %s", cells[M_KEYCTL][0].error);
	else
		judge(r >= 30, ">= 30x faster than keyctl_read(), 1 process",
		      "%.0fx", r);
	r = measured(M_PRODUCT, 0) && measured(M_PRODUCT, 1)
	            ? cells[M_PRODUCT][1].cps_median /
	                      cells[M_PRODUCT][0].cps_median
	            : NAN;
	a = measured(M_PRODUCT, 0) && measured(M_PRODUCT, 1)
	            ? cells[M_PRODUCT][1].cps_best /
	                      cells[M_PRODUCT][0].cps_best
	            : NAN;
	judge(!isnan(r) && r >= 1.8,
	      "2 processes: summed calls/s >= 1.8x one process's",
	      "%.2fx (medians of the repetitions; best of each: %.2fx)", r, a);

	/* 3. Whole processes, and what a process that never logs in maps. */
	r = process_measured(P_HEADER) && process_measured(P_CAT)
	            ? process_rows[P_HEADER].median / process_rows[P_CAT].median
	            : NAN;
	snprintf(what, sizeof(what),
	         "`ucaas-auth header` on a warm cache <= %.0fx `cat` of the "
	         "same bytes, whole processes",
	         TARGET_PROCESS);
	if (isnan(r))
		judge(!strncmp(process_rows[P_HEADER].error, "skipped", 7) ||
		                      !strncmp(process_rows[P_CAT].error,
		                               "skipped", 7)
		              ? SKIP
		              : MISS,
		      what, "not measured: %s",
		      process_rows[P_HEADER].error[0]
		              ? process_rows[P_HEADER].error
		              : process_rows[P_CAT].error);
	else
		judge(r <= TARGET_PROCESS && process_logins == 0, what,
		      "%.2fx (%.2f vs %.2f ms, medians of %d runs; %ld "
		      "logins)",
		      r, process_rows[P_HEADER].median,
		      process_rows[P_CAT].median, process_rows[P_HEADER].n,
		      process_logins);
	for (int k = 0; k < N_MAPS; k++) {
		const struct maps_result *res = &maps[k];

		snprintf(what, sizeof(what),
		         "a %s maps no libcurl, libssl or libcrypto after a "
		         "header",
		         maps_labels[k]);
		if (!res->ran || res->error[0])
			judge(strncmp(res->error, "skipped", 7) == 0 ? SKIP
			                                             : MISS,
			      what, "not measured: %s",
			      res->ran ? res->error : "not run");
		else
			judge(!res->found[0], what, "%d shared objects%s%s",
			      res->objects,
			      res->found[0] ? ", among them " : "", res->found);
	}

	/* 4. The storm. */
	for (int s = 0; s < N_STORMS; s++) {
		const struct storm *st = &storms[s];
		double bound = login_ms() + TARGET_STORM_MS;
		char seen[128] = "";
		bool pass;

		for (int k = 0; k < st->reps; k++) {
			size_t l = strlen(seen);
			snprintf(seen + l, sizeof(seen) - l, "%s%ld",
			         k ? ", " : "", st->logins[k]);
		}
		pass = storm_correct(s) && !isnan(bound) &&
		       st->extra_ms <= bound;
		snprintf(what, sizeof(what),
		         "storm of %d processes: cold - warm <= one login + "
		         "%.0f ms, exactly 1 login",
		         storm_sizes[s], TARGET_STORM_MS);
		if (!st->reps)
			judge(false, what, "not run");
		else
			judge(pass, what,
			      "%.1f ms vs %.1f (median of %d runs' cold - "
			      "warm; cold %.1f, warm %.1f); logins %s%s",
			      st->extra_ms, bound, st->reps, st->cold_ms,
			      st->warm_ms, seen,
			      storm_correct(s) ? "" : " (failed)");
	}

	/* Not targets. */
	r = ratio(M_SOCKET_CONNECT, M_PRODUCT, 0);
	judge(INFO,
	      "faster than the Unix socket with a connection per request "
	      "(git-credential-cache), 1 process",
	      "%.0fx", r);
	r = ratio(M_FILE, M_PRODUCT, 0);
	judge(INFO,
	      "faster than open + flock + read of a token file, 1 process",
	      "%.0fx", r);
	r = ratio(M_LOGIN_REUSE, M_PRODUCT, 0);
	judge(INFO, "faster than a login per call (kept connection), 1 process",
	      "%.0fx", r);
	r = measured(M_PRODUCT, 0) && measured(M_PRODUCT, 2)
	            ? cells[M_PRODUCT][2].cps_median /
	                      cells[M_PRODUCT][0].cps_median
	            : NAN;
	judge(INFO, "4 processes on 2 CPUs: summed calls/s against one process",
	      "%.2fx", r);
	r = process_measured(P_VERSION) && process_measured(P_CAT)
	            ? process_rows[P_VERSION].median /
	                      process_rows[P_CAT].median
	            : NAN;
	judge(INFO, "`ucaas-auth --version` against `cat`, whole processes",
	      "%.2fx", r);
}

static void print_table(FILE *f, bool md)
{
	if (md)
		fprintf(f, "| method | procs | median ns/call | p99 ns/call | "
		           "calls/s (sum, median) | calls/s (sum, best) | "
		           "x floor | instructions/call | allocations/call |\n"
		           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | "
		           "---: | ---: |\n");
	else
		fprintf(f, "%-48s %5s %10s %10s %13s %13s %8s %6s %6s\n",
		        "method", "procs", "median ns", "p99 ns", "calls/s sum",
		        "best calls/s", "x floor", "instr", "allocs");
	for (int m = 0; m < N_METHODS; m++)
		for (int p = 0; p < N_PROCS; p++) {
			const struct cell *c = &cells[m][p];
			char med[32], p99[32], cps[32], best[32], x[32];
			char ins[32], al[32];

			if (methods[m].one && p > 0)
				continue;
			if (!measured(m, p)) {
				if (md)
					fprintf(f,
					        "| %s | %d | %s "
					        "| | | | | | |\n",
					        methods[m].label, procs[p],
					        c->error[0] ? c->error
					                    : "not measured");
				else
					fprintf(f, "%-48s %5d  %s\n",
					        methods[m].label, procs[p],
					        c->error[0] ? c->error
					                    : "not measured");
				continue;
			}
			fmt_num(med, sizeof(med), c->median,
			        c->median < 100 ? 1 : 0);
			fmt_num(p99, sizeof(p99), c->p99, c->p99 < 100 ? 1 : 0);
			fmt_num(cps, sizeof(cps), c->cps_median, 0);
			fmt_num(best, sizeof(best), c->cps_best, 0);
			fmt_num(x, sizeof(x), ratio(m, M_FLOOR, p),
			        ratio(m, M_FLOOR, p) < 10 ? 2 : 0);
			fmt_num(ins, sizeof(ins), p == 0 ? icount[m] : -1, 1);
			fmt_num(al, sizeof(al), allocs_per_call(m, p),
			        allocs_per_call(m, p) == 0 ? 0 : 1);
			if (md)
				fprintf(f,
				        "| %s | %d | %s | %s | %s | %s | %s "
				        "| %s | %s |\n",
				        methods[m].label, procs[p], med, p99,
				        cps, best, x, ins, al);
			else
				fprintf(f,
				        "%-48s %5d %10s %10s %13s %13s %8s "
				        "%6s %6s\n",
				        methods[m].label, procs[p], med, p99,
				        cps, best, x, ins, al);
		}
}

static void print_processes(FILE *f, bool md)
{
	if (md)
		fprintf(f, "| whole process | runs | median ms | p10 ms | "
		           "p90 ms | x cat |\n"
		           "| --- | ---: | ---: | ---: | ---: | ---: |\n");
	else
		fprintf(f, "%-40s %5s %9s %9s %9s %7s\n", "whole process",
		        "runs", "median ms", "p10 ms", "p90 ms", "x cat");
	for (int k = 0; k < N_PROCESS_ROWS; k++) {
		const struct process_row *row = &process_rows[k];
		double x = process_measured(k) && process_measured(P_CAT)
		                   ? row->median / process_rows[P_CAT].median
		                   : NAN;

		if (!process_measured(k)) {
			if (md)
				fprintf(f, "| %s | %s | | | | |\n",
				        process_labels[k],
				        row->error[0] ? row->error : "not run");
			else
				fprintf(f, "%-40s  %s\n", process_labels[k],
				        row->error[0] ? row->error : "not run");
			continue;
		}
		if (md)
			fprintf(f, "| %s | %d | %.2f | %.2f | %.2f | %.2f |\n",
			        process_labels[k], row->n, row->median,
			        row->p10, row->p90, x);
		else
			fprintf(f, "%-40s %5d %9.2f %9.2f %9.2f %7.2f\n",
			        process_labels[k], row->n, row->median,
			        row->p10, row->p90, x);
	}
}

static void print_maps(FILE *f, bool md)
{
	if (md)
		fprintf(f, "| process that never logs in | shared objects "
		           "mapped | libcurl, libssl, libcrypto | other "
		           "libraries only a login needs |\n"
		           "| --- | ---: | --- | --- |\n");
	else
		fprintf(f, "%-32s %7s  %s\n", "never logs in", "objects",
		        "libcurl, libssl, libcrypto mapped");
	for (int k = 0; k < N_MAPS; k++) {
		const struct maps_result *res = &maps[k];

		if (!res->ran || res->error[0]) {
			if (md)
				fprintf(f, "| %s | %s | | |\n", maps_labels[k],
				        res->ran ? res->error : "not run");
			else
				fprintf(f, "%-32s  %s\n", maps_labels[k],
				        res->ran ? res->error : "not run");
			continue;
		}
		if (md)
			fprintf(f, "| %s | %d | %s | %s |\n", maps_labels[k],
			        res->objects,
			        res->found[0] ? res->found : "none",
			        res->also[0] ? res->also : "none");
		else
			fprintf(f, "%-32s %7d  %s\n", maps_labels[k],
			        res->objects,
			        res->found[0] ? res->found : "none");
	}
}

static void print_storms(FILE *f, bool md)
{
	double bound = login_ms() + TARGET_STORM_MS;

	if (md)
		fprintf(f,
		        "| processes | cold: all hold a header (ms) | "
		        "slowest cold run (ms) | warm: all hold (ms) | cold "
		        "- warm (ms) | target: one login + %.0f ms | median "
		        "process holds it, cold (ms) | median process has "
		        "opened, cold (ms) | logins per run | logins, warm "
		        "| |\n"
		        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
		        "---: | --- | --- | --- |\n",
		        TARGET_STORM_MS);
	else
		fprintf(f, "%9s %9s %9s %9s %11s %9s %12s %13s  %s\n",
		        "processes", "cold: all", "slowest", "warm: all",
		        "cold - warm", "target", "median holds",
		        "median opened", "logins (warm start)");
	for (int s = 0; s < N_STORMS; s++) {
		const struct storm *st = &storms[s];
		double med[STORM_REPS], opn[STORM_REPS], worst = 0;
		char logins[128] = "", wlogins[128] = "";
		const char *word;

		if (!st->reps)
			continue;
		for (int k = 0; k < st->reps; k++) {
			size_t l = strlen(logins), wl = strlen(wlogins);
			bool ok = st->ok[k] == storm_sizes[s] &&
			          st->same_header[k];

			med[k] = st->median_ms[k];
			opn[k] = st->open_ms[k];
			worst = st->all_ms[k] > worst ? st->all_ms[k] : worst;
			snprintf(logins + l, sizeof(logins) - l, "%s%ld%s",
			         k ? ", " : "", st->logins[k],
			         ok ? "" : " (failed)");
			snprintf(wlogins + wl, sizeof(wlogins) - wl, "%s%ld",
			         k ? ", " : "", st->warm_logins[k]);
		}
		word = storm_correct(s) && st->extra_ms <= bound ? "PASS"
		                                                 : "MISS";
		if (md)
			fprintf(f,
			        "| %d | %.1f | %.1f | %.1f | %.1f | %.1f | "
			        "%.1f | %.1f | %s | %s | **%s** |\n",
			        storm_sizes[s], st->cold_ms, worst, st->warm_ms,
			        st->extra_ms, bound, median_of(med, st->reps),
			        median_of(opn, st->reps), logins, wlogins,
			        word);
		else
			fprintf(f,
			        "%9d %9.1f %9.1f %9.1f %11.1f %9.1f %12.1f "
			        "%13.1f  %s (%s)  %s\n",
			        storm_sizes[s], st->cold_ms, worst, st->warm_ms,
			        st->extra_ms, bound, median_of(med, st->reps),
			        median_of(opn, st->reps), logins, wlogins,
			        word);
	}
}

static void print_verdicts(FILE *f, bool md)
{
	for (int i = 0; i < n_verdicts; i++) {
		const struct verdict *v = &verdicts[i];

		const char *word = verdict_word(v->pass);
		bool bold = v->pass != INFO;

		if (md)
			fprintf(f, "| %s | %s | %s%s%s |\n", v->what,
			        v->measured, bold ? "**" : "", word,
			        bold ? "**" : "");
		else
			fprintf(f, "%-4s  %s: %s\n", word, v->what,
			        v->measured);
	}
}

/* A CSV field: quoted, inner quotes doubled. */
static void csv_text(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void write_csv(const char *path)
{
	FILE *f = fopen(path, "w");
	double bound = login_ms() + TARGET_STORM_MS;

	if (!f)
		die("cannot write %s: %s", path, strerror(errno));
	/* One header for every section; a row fills what applies to it. */
	fprintf(f, "section,method,label,procs,median_ns,p99_ns,calls_per_s,"
	           "calls_per_s_best,x_floor,instructions_per_call,"
	           "allocs_per_call,reps,batches,all_hold_ms,"
	           "median_process_ms,median_open_ms,logins,warm_all_hold_ms,"
	           "cold_minus_warm_ms,target_ms,verdict,note\n");
	for (int m = 0; m < N_METHODS; m++)
		for (int p = 0; p < N_PROCS; p++) {
			const struct cell *c = &cells[m][p];
			double al = allocs_per_call(m, p);

			if (methods[m].one && p > 0)
				continue;
			if (!measured(m, p)) {
				fprintf(f,
				        "call,%s,\"%s\",%d,,,,,,,,%d,%zu,"
				        ",,,,,,,,",
				        methods[m].id, methods[m].label,
				        procs[p], c->reps, c->n);
				csv_text(f, c->error);
				fputc('\n', f);
				continue;
			}
			fprintf(f,
			        "call,%s,\"%s\",%d,%.2f,%.2f,%.0f,%.0f,"
			        "%.3f,",
			        methods[m].id, methods[m].label, procs[p],
			        c->median, c->p99, c->cps_median, c->cps_best,
			        ratio(m, M_FLOOR, p));
			if (p == 0 && icount[m] >= 0)
				fprintf(f, "%.1f", icount[m]);
			fputc(',', f);
			if (al >= 0)
				fprintf(f, "%.3f", al);
			fprintf(f, ",%d,%zu,,,,,,,,,\n", c->reps, c->n);
		}
	for (int k = 0; k < N_PROCESS_ROWS; k++) {
		const struct process_row *row = &process_rows[k];
		static const char *const ids[N_PROCESS_ROWS] = {
			[P_HEADER] = "process-header",
			[P_CAT] = "process-cat",
			[P_VERSION] = "process-version"};

		/* median_ns: per run; calls_per_s: runs per second. */
		if (!process_measured(k)) {
			fprintf(f, "process,%s,\"%s\",1,,,,,,,,,%d,,,,,,,,,",
			        ids[k], process_labels[k], row->n);
			csv_text(f, row->error);
			fputc('\n', f);
			continue;
		}
		fprintf(f,
		        "process,%s,\"%s\",1,%.0f,%.0f,%.1f,,,,,,%d,,,,%ld,"
		        ",,,,\"p10 %.3f ms, p90 %.3f ms\"\n",
		        ids[k], process_labels[k], row->median * 1e6,
		        row->p90 * 1e6, 1e3 / row->median, row->n,
		        k == P_CAT ? 0 : process_logins, row->p10, row->p90);
	}
	for (int k = 0; k < N_MAPS; k++) {
		const struct maps_result *res = &maps[k];
		char note[600];

		if (!res->ran || res->error[0])
			snprintf(note, sizeof(note), "%s",
			         res->ran ? res->error : "not run");
		else
			snprintf(note, sizeof(note),
			         "%d shared objects; libcurl, libssl, "
			         "libcrypto: %s; others only a login needs: %s",
			         res->objects,
			         res->found[0] ? res->found : "none",
			         res->also[0] ? res->also : "none");
		fprintf(f, "maps,%s,\"%s\",1,,,,,,,,,,,,,,,,,%s,",
		        k == MAPS_DAEMON ? "maps-daemon-client" : "maps-warm",
		        maps_labels[k],
		        !strncmp(res->error, "skipped", 7) ? "SKIP"
		        : res->ran && !res->error[0] && !res->found[0]
		                ? "PASS"
		                : "MISS");
		csv_text(f, note);
		fputc('\n', f);
	}
	for (int s = 0; s < N_STORMS; s++) {
		const struct storm *st = &storms[s];

		for (int k = 0; k < st->reps; k++) {
			bool ok = st->ok[k] == storm_sizes[s] &&
			          st->same_header[k] && st->warm_logins[k] == 0;

			fprintf(f,
			        "storm,storm-run,\"cold start then warm "
			        "start, run %d\",%d,,,,,,,,1,,"
			        "%.2f,%.2f,%.2f,%ld,%.2f,%.2f,,,",
			        k + 1, storm_sizes[s], st->all_ms[k],
			        st->median_ms[k], st->open_ms[k], st->logins[k],
			        st->warm_all_ms[k],
			        st->all_ms[k] - st->warm_all_ms[k]);
			csv_text(f, ok ? ""
			               : "some processes failed or the warm "
			                 "start logged in");
			fputc('\n', f);
		}
		if (st->reps)
			fprintf(f,
			        "storm,storm,\"medians of %d runs\",%d,,,,,,"
			        ",,%d,,%.2f,,,,%.2f,%.2f,%.2f,%s,\"\"\n",
			        st->reps, storm_sizes[s], st->reps, st->cold_ms,
			        st->warm_ms, st->extra_ms, bound,
			        storm_correct(s) && st->extra_ms <= bound
			                ? "PASS"
			                : "MISS");
	}
	for (int i = 0; i < n_verdicts; i++) {
		fprintf(f, "target,,");
		csv_text(f, verdicts[i].what);
		fprintf(f, ",,,,,,,,,,,,,,,,,,%s,",
		        verdict_word(verdicts[i].pass));
		csv_text(f, verdicts[i].measured);
		fputc('\n', f);
	}
	if (fclose(f) != 0)
		die("cannot write %s", path);
}

static void write_plot_data(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die("cannot write %s: %s", path, strerror(errno));
	fprintf(f, "# method  ns/call median with 1 2 4 processes (? : not "
	           "measured)\n");
	for (int m = 0; m < N_METHODS; m++) {
		if (!methods[m].plot || !measured(m, 0))
			continue;
		fprintf(f, "\"%s\"", methods[m].plot);
		/* Rounded as in the table, so that the labels agree. */
		for (int p = 0; p < N_PROCS; p++) {
			double v = measured(m, p) ? cells[m][p].median : NAN;

			if (isnan(v))
				fprintf(f, " ?");
			else
				fprintf(f, " %.*f", v < 100 ? 1 : 0, v);
		}
		fputc('\n', f);
	}
	/* A shell script's header: one process per call. */
	for (int k = 0; k < N_PROCESS_ROWS; k++)
		if (process_measured(k) && k != P_VERSION)
			fprintf(f, "\"%s\" %.0f ? ?\n",
			        k == P_HEADER ? "ucaas-auth header (a process)"
			                      : "cat of a file (a process)",
			        process_rows[k].median * 1e6);
	if (fclose(f) != 0)
		die("cannot write %s", path);
}

/* ---- main ------------------------------------------------------------ */

static void on_signal(int sig)
{
	interrupted = 1;
}

static void find_programs(void)
{
	ssize_t n =
		readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
	char *slash;

	if (n <= 0)
		die("cannot find myself: %s", strerror(errno));
	self_path[n] = 0;
	slash = strrchr(self_path, '/');
	snprintf(reader_path, sizeof(reader_path),
	         "%.*s/ucaasauth-bench-reader", (int)(slash - self_path),
	         self_path);
	snprintf(maps_path, sizeof(maps_path), "%.*s/ucaasauth-bench-maps",
	         (int)(slash - self_path), self_path);
	snprintf(preload, sizeof(preload), "%.*s/bench-malloc-count.so",
	         (int)(slash - self_path), self_path);
	if (access(reader_path, X_OK) < 0)
		die("%s: %s", reader_path, strerror(errno));
	if (access(maps_path, X_OK) < 0)
		die("%s: %s", maps_path, strerror(errno));
	if (access(preload, R_OK) < 0)
		preload[0] = 0; /* allocations are then not counted */
}

/* The whole report, on the terminal or in Markdown. */
static void report(FILE *f, bool md)
{
	if (md)
		fprintf(f, "Header calls: median ns per call over the timed "
		           "batches of every process and repetition; `x "
		           "floor` against the seqlock floor with the "
		           "product's clock:\n\n");
	print_table(f, md);
	fprintf(f,
	        md ? "\nWhole processes, fork + exec to exit, run in "
	             "turn (%d runs each):\n\n"
	           : "\nwhole processes, fork + exec to exit, run in turn "
	             "(%d runs each)\n",
	        process_rows[P_CAT].n + process_rows[P_CAT].failed);
	print_processes(f, md);
	fprintf(f, md ? "\nShared objects mapped by a process that never "
	                "logs in, after one header:\n\n"
	              : "\nshared objects mapped by a process that never "
	                "logs in, after one header\n");
	print_maps(f, md);
	fprintf(f,
	        md ? "\nCold-start storm: milliseconds from the release "
	             "of N processes on an empty cache to the last one "
	             "holding a header (`ucaasauth_open()` included), then "
	             "N more on the cache they filled (warm); medians of "
	             "%d runs, cold - warm paired run by run; the target "
	             "is one login (new connection, %.2f ms in this run) "
	             "+ %.0f ms:\n\n"
	           : "\ncold-start storm: ms from the release of N "
	             "processes on an empty cache to the last holding a "
	             "header (ucaasauth_open() included);\nthen N more on "
	             "the cache they filled (warm); medians of %d runs; "
	             "target: one login (%.2f ms here) + %.0f ms\n",
	        STORM_REPS, login_ms(), TARGET_STORM_MS);
	print_storms(f, md);
	fprintf(f, md ? "\nTargets:\n\n| target | measured | |\n"
	                "| --- | --- | --- |\n"
	              : "\ntargets\n");
	print_verdicts(f, md);
}

int main(int argc, char **argv)
{
	const char *csv = NULL, *plot = NULL, *md = NULL;
	char cpu[128], load0[64], load1[64], dir[PATH_MAX], noise[200];
	double busy0, busy1, steal0, steal1, wall, others;
	struct utsname u;
	int reps = 5, runs = 200;
	bool keep = false;
	int64_t t0;
	FILE *mdf;

	if (argc >= 2 && strcmp(argv[1], "worker") == 0)
		return worker(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "icount") == 0)
		return icount_worker(argc - 1, argv + 1);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--quick") == 0)
			reps = 2, runs = 50;
		else if (strcmp(argv[i], "--keep") == 0)
			keep = true;
		else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc)
			csv = argv[++i];
		else if (strcmp(argv[i], "--plot") == 0 && i + 1 < argc)
			plot = argv[++i];
		else if (strcmp(argv[i], "--md") == 0 && i + 1 < argc)
			md = argv[++i];
		else {
			fprintf(stderr, "usage: ucaasauth-bench [--reps N] "
			                "[--quick] [--keep] [--csv FILE] "
			                "[--plot FILE] [--md FILE]\n");
			return 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS)
		die("--reps: 1 to %d", MAX_REPS);
	find_programs();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	setenv("no_proxy", "*", 1);

	cpu_model(cpu, sizeof(cpu));
	uname(&u);
	loadavg(load0, sizeof(load0));
	printf("machine: %ld CPUs online, %s, Linux %s; load %s\n",
	       sysconf(_SC_NPROCESSORS_ONLN), cpu, u.release, load0);
	printf("build: %s; allocations %s\n", BENCH_BUILDTYPE,
	       preload[0] ? "counted" : "not counted");
	machine_cpu(&busy0, &steal0);
	t0 = bench_now_ns();
	setup();
	printf("header: %zu bytes (\"Authorization: Token \" + %zu); %d "
	       "repetitions\n",
	       header_len, header_len - strlen("Authorization: Token "), reps);
	snprintf(dir, sizeof(dir), "%s/work", fix.dir);
	if (mkdir(dir, 0700) < 0)
		die("%s: %s", dir, strerror(errno));

	/* Every method, at every process count, once per repetition: all
	 * of them see the same weather. */
	for (int rep = 0; rep < reps && !interrupted; rep++) {
		fprintf(stderr, "repetition %d of %d\n", rep + 1, reps);
		for (int p = 0; p < N_PROCS && !interrupted; p++)
			for (int m = 0; m < N_METHODS && !interrupted; m++)
				run_cell(m, p, dir);
	}
	if (!interrupted) {
		fprintf(stderr, "counting instructions with callgrind\n");
		count_instructions();
	}
	/* The servers measured against are done: nothing of theirs runs
	 * while processes are timed. */
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = 0;
	}
	servers_stop();
	if (!interrupted) {
		fprintf(stderr, "whole processes, %d runs each\n", runs);
		run_processes(runs);
	}
	if (!interrupted) {
		fprintf(stderr, "shared objects of processes that never log "
		                "in\n");
		run_maps();
	}
	for (int s = 0; s < N_STORMS && !interrupted; s++) {
		fprintf(stderr, "storm of %d processes\n", storm_sizes[s]);
		for (int k = 0; k < STORM_REPS && !interrupted; k++)
			run_storm(s, k);
	}
	servers_stop();
#ifdef HAVE_KEYUTILS
	if (key_serial >= 0)
		keyctl_invalidate((key_serial_t)key_serial);
#endif
	if (keep) {
		/* For a look at the world afterwards: the workers' files,
		 * callgrind's output, the servers' logs, a warm cache (no
		 * server). */
		mock_stop(&fix.mock);
		fix.has_mock = false;
		fprintf(stderr, "kept %s\n", fix.dir);
	} else {
		fixture_stop(&fix);
	}
	if (interrupted)
		die("interrupted");

	compute();
	judge_all();
	loadavg(load1, sizeof(load1));
	/* How quiet the run was: CPU time the machine spent on anything
	 * but this benchmark, and what the hypervisor took. */
	machine_cpu(&busy1, &steal1);
	wall = (double)(bench_now_ns() - t0) / 1e9;
	others = busy1 - busy0 - own_cpu();
	snprintf(noise, sizeof(noise),
	         "other processes used %.1f CPU-s (%.0f %% of one CPU), the "
	         "hypervisor stole %.1f CPU-s",
	         others < 0 ? 0 : others, others < 0 ? 0 : 100 * others / wall,
	         steal1 - steal0);
	printf("took %.0f s; load %s; %s\n\n", wall, load1, noise);
	report(stdout, false);

	if (csv)
		write_csv(csv);
	if (plot)
		write_plot_data(plot);
	if (md) {
		mdf = fopen(md, "w");
		if (!mdf)
			die("cannot write %s", md);
		fprintf(mdf,
		        "Machine: %ld CPUs online, %s, Linux %s. Build: "
		        "%s. %d repetitions, %.0f s. Load average before "
		        "and after: %s / %s; during the run %s.\n\n",
		        sysconf(_SC_NPROCESSORS_ONLN), cpu, u.release,
		        BENCH_BUILDTYPE, reps, wall, load0, load1, noise);
		report(mdf, true);
		fclose(mdf);
	}
	for (int s = 0; s < N_STORMS; s++)
		if (!storm_correct(s))
			return 3; /* a correctness failure */
	return 0;
}

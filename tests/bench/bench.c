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
 * the same header in a floor segment, the kernel keyring, a token file and
 * a small Unix-socket daemon, then for 1, 2 and 4 processes and each
 * method starts fresh measuring processes (ucaasauth-bench-reader, which
 * uses only the public API through libucaasauth.so.1) released together,
 * and pools their batch timings over the repetitions. Then: instructions
 * per call under callgrind, and the cold-start storm.
 *
 *   ucaasauth-bench worker login-reuse|login-new GO READY OUT MS BATCH MAX
 * is the login worker (it needs the library's internals: login_fetch()).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
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

#include "bench.h"
#include "fixture.h"
#include "internal.h"

#ifndef BENCH_BUILDTYPE
#define BENCH_BUILDTYPE "unknown"
#endif

#define MAX_PROCS 128
#define MAX_REPS 20
#define ICOUNT_CALLS 200000
#define TOKEN_TTL_S 900

enum { M_PRODUCT, M_FLOOR, M_COARSE, M_MUTEX, M_KEYCTL, M_SOCKET,
       M_SOCKET_CONNECT, M_FILE, M_LOGIN_REUSE, M_LOGIN_NEW, N_METHODS };

static const struct method {
	const char *id;
	const char *label; /* the table's */
	const char *plot;  /* the plot's, short */
	bool login;        /* run by this program, not the reader */
	long batch;        /* calls per timed batch */
	int ms;            /* timed loop per process and repetition */
	long max_calls;    /* per process and repetition */
} methods[N_METHODS] = {
	[M_PRODUCT] = {"product", "ucaasauth_header(), warm shared cache",
	               "ucaasauth_header()", false, 1000, 300, 100000000},
	[M_FLOOR] = {"floor", "floor: seqlock read + CLOCK_MONOTONIC",
	             "floor (seqlock)", false, 1000, 300, 100000000},
	[M_COARSE] = {"floor-coarse",
	              "(reference: seqlock + coarse clock)",
	              "seqlock + coarse clock", false, 1000, 300, 100000000},
	[M_MUTEX] = {"floor-mutex", "floor with a process-shared mutex",
	             "floor (mutex)", false, 1000, 300, 100000000},
	[M_KEYCTL] = {"keyctl", "keyctl_read(), kernel keyring",
	              "keyctl_read()", false, 200, 300, 10000000},
	[M_SOCKET] = {"socket", "Unix socket daemon, kept connection",
	              "socket (kept)", false, 20, 300, 1000000},
	[M_SOCKET_CONNECT] = {"socket-connect",
	                      "Unix socket daemon, connect per request",
	                      "socket (connect)", false, 10, 300, 1000000},
	[M_FILE] = {"file", "open + flock(LOCK_SH) + read token file",
	            "file + flock", false, 50, 300, 1000000},
	[M_LOGIN_REUSE] = {"login-reuse", "login to the mock, kept connection",
	                   "login (kept conn.)", true, 1, 400, 2000},
	[M_LOGIN_NEW] = {"login-new", "login to the mock, new connection",
	                 "login (new conn.)", true, 1, 400, 2000},
};

static const int procs[] = {1, 2, 4};
#define N_PROCS ((int)ARRAY_SIZE(procs))
static const int storm_sizes[] = {8, 32, 128};
#define N_STORMS ((int)ARRAY_SIZE(storm_sizes))
#define STORM_REPS 3

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
};

static struct fixture fix;
static struct cell cells[N_METHODS][N_PROCS];
static double icount[N_METHODS]; /* instructions per call, <0: unknown */
static struct storm storms[N_STORMS];
static char self_path[PATH_MAX], reader_path[PATH_MAX], preload[PATH_MAX];
static char header[BENCH_HEADER_MAX + 1];
static size_t header_len;
static char keyring_note[200];
static long key_serial = -1;
static pid_t daemon_pid;
static volatile sig_atomic_t interrupted;

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
	fixture_stop(&fix);
	exit(1);
}

/* ---- the login worker ---------------------------------------------- */

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
	seg = mmap(NULL, FLOOR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
	           0);
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
		snprintf(keyring_note, sizeof(keyring_note),
		         "the kernel refused keyrings: %s", strerror(errno));
		return;
	}
	key = add_key("user", "ucaasauth-bench", header, header_len,
	              KEY_SPEC_SESSION_KEYRING);
	if (key < 0) {
		snprintf(keyring_note, sizeof(keyring_note),
		         "the kernel refused keyrings: add_key: %s",
		         strerror(errno));
		return;
	}
	/* The kernel drops it when the token expires. */
	keyctl_set_timeout(key, TOKEN_TTL_S);
	n = keyctl_read(key, check, sizeof(check));
	if (n != (long)header_len || memcmp(check, header, header_len) != 0) {
		snprintf(keyring_note, sizeof(keyring_note),
		         "the kernel refused keyrings: keyctl_read: %s",
		         n < 0 ? strerror(errno) : "wrong bytes");
		return;
	}
	key_serial = key;
	snprintf(check, sizeof(check), "%ld", key_serial);
	setenv("BENCH_KEY", check, 1);
#else
	snprintf(keyring_note, sizeof(keyring_note),
	         "not measured: built without libkeyutils "
	         "(tools/install-deps --bench)");
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
		fprintf(stderr, "ucaasauth-bench: only %d of %d workers got "
		                "ready\n", got, n);
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
	if (fscanf(f, "%ld %lld %ld %zu", &calls, &elapsed, &allocs, &n) !=
	    4) {
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

	if (cell->error[0])
		return; /* failed before: do not retry every repetition */
	if (m == M_KEYCTL && key_serial < 0) {
		snprintf(cell->error, sizeof(cell->error), "%s", keyring_note);
		return;
	}
	snprintf(ms, sizeof(ms), "%d", me->ms);
	snprintf(batch, sizeof(batch), "%ld", me->batch);
	snprintf(max, sizeof(max), "%ld", me->max_calls);
	if (me->login) {
		prefix[0] = "worker";
		prefix[1] = me->id;
	} else {
		prefix[0] = me->id;
	}
	ok = launch(me->login ? self_path : reader_path, prefix, tail,
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

/* Instructions callgrind counted in `reader icount MODE calls`; -1 if it
 * could not. */
static double callgrind(const char *mode, long calls)
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
		       reader_path, "icount", mode, n, (char *)NULL);
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
	static const int counted[] = {M_PRODUCT, M_FLOOR, M_COARSE, M_MUTEX};

	for (int m = 0; m < N_METHODS; m++)
		icount[m] = -1;
	for (size_t i = 0; i < ARRAY_SIZE(counted); i++) {
		const char *mode = methods[counted[i]].id;
		double base = callgrind(mode, 0);
		double full = base < 0 ? -1 : callgrind(mode, ICOUNT_CALLS);

		if (full >= 0)
			icount[counted[i]] = (full - base) / ICOUNT_CALLS;
	}
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
	st->warm_logins[rep] = mock_stat(&fix.mock, "logins") -
	                       st->logins[rep];
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
	                children.ru_utime.tv_usec +
	                children.ru_stime.tv_usec) / 1e6;
}

struct verdict {
	char what[160], measured[120];
	int pass; /* 1, 0, or -1: not a target, for information */
};

static struct verdict verdicts[32];
static int n_verdicts;

static PRINTF(3, 4) void judge(int pass, const char *what,
                               const char *fmt, ...)
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
}

static void judge_all(void)
{
	double r, a;
	bool zero = true, known = true;

	for (int p = 0; p < 2; p++) {
		char what[160];

		r = ratio(M_PRODUCT, M_FLOOR, p);
		snprintf(what, sizeof(what),
		         "ucaasauth_header() <= 1.5x the floor's ns/call, "
		         "%d process%s", procs[p], p ? "es" : "");
		judge(!isnan(r) && r <= 1.5, what, "%.2fx (%.1f vs %.1f ns)", r,
		      cells[M_PRODUCT][p].median, cells[M_FLOOR][p].median);
	}
	r = icount[M_PRODUCT] >= 0 && icount[M_FLOOR] > 0
	            ? icount[M_PRODUCT] / icount[M_FLOOR]
	            : NAN;
	judge(!isnan(r) && r <= 1.5,
	      "ucaasauth_header() <= 1.5x the floor's instructions/call",
	      "%.2fx (%.0f vs %.0f)", r, icount[M_PRODUCT], icount[M_FLOOR]);
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
	r = ratio(M_SOCKET, M_PRODUCT, 0);
	judge(!isnan(r) && r >= 500,
	      ">= 500x faster than the Unix-socket round trip (kept "
	      "connection), 1 process",
	      "%.0fx", r);
	r = ratio(M_KEYCTL, M_PRODUCT, 0);
	if (isnan(r))
		judge(false, ">= 30x faster than keyctl_read(), 1 process",
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
	      "%.2fx (medians of the repetitions; best of each: %.2fx)", r,
	      a);
	for (int s = 0; s < N_STORMS; s++) {
		char what[160], seen[64] = "";
		bool one = storms[s].reps > 0;

		for (int k = 0; k < storms[s].reps; k++) {
			size_t l = strlen(seen);
			snprintf(seen + l, sizeof(seen) - l, "%s%ld",
			         k ? ", " : "", storms[s].logins[k]);
			one = one && storms[s].logins[k] == 1 &&
			      storms[s].warm_logins[k] == 0 &&
			      storms[s].ok[k] == storm_sizes[s] &&
			      storms[s].same_header[k];
		}
		snprintf(what, sizeof(what),
		         "storm of %d processes: exactly 1 login",
		         storm_sizes[s]);
		judge(one, what, "logins %s", seen);
	}
	/* Not targets: where the product stands against a seqlock read
	 * with its own, coarse, clock. */
	r = ratio(M_PRODUCT, M_COARSE, 0);
	judge(-1, "ucaasauth_header() against seqlock + coarse clock, "
	          "ns/call, 1 process",
	      "%.2fx (%.1f vs %.1f ns)", r, cells[M_PRODUCT][0].median,
	      cells[M_COARSE][0].median);
	r = icount[M_PRODUCT] >= 0 && icount[M_COARSE] > 0
	            ? icount[M_PRODUCT] / icount[M_COARSE]
	            : NAN;
	judge(-1, "ucaasauth_header() against seqlock + coarse clock, "
	          "instructions/call",
	      "%.2fx (%.0f vs %.0f)", r, icount[M_PRODUCT], icount[M_COARSE]);
	r = ratio(M_SOCKET_CONNECT, M_PRODUCT, 0);
	judge(-1, "faster than the Unix socket with a connection per request "
	          "(git-credential-cache), 1 process",
	      "%.0fx", r);
	r = ratio(M_FILE, M_PRODUCT, 0);
	judge(-1, "faster than open + flock + read of a token file, 1 process",
	      "%.0fx", r);
	r = ratio(M_LOGIN_REUSE, M_PRODUCT, 0);
	judge(-1, "faster than a login per call (kept connection), 1 process",
	      "%.0fx", r);
	r = measured(M_PRODUCT, 0) && measured(M_PRODUCT, 2)
	            ? cells[M_PRODUCT][2].cps_median /
	                      cells[M_PRODUCT][0].cps_median
	            : NAN;
	judge(-1, "4 processes on 2 CPUs: summed calls/s against one process",
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
		fprintf(f, "%-42s %5s %10s %10s %13s %13s %8s %6s %6s\n",
		        "method", "procs", "median ns", "p99 ns", "calls/s sum",
		        "best calls/s", "x floor", "instr", "allocs");
	for (int m = 0; m < N_METHODS; m++)
		for (int p = 0; p < N_PROCS; p++) {
			const struct cell *c = &cells[m][p];
			char med[32], p99[32], cps[32], best[32], x[32];
			char ins[32], al[32];

			if (!measured(m, p)) {
				if (md)
					fprintf(f, "| %s | %d | %s "
					           "| | | | | | |\n",
					        methods[m].label, procs[p],
					        c->error[0] ? c->error
					                    : "not measured");
				else
					fprintf(f, "%-42s %5d  %s\n",
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
				fprintf(f, "| %s | %d | %s | %s | %s | %s | %s "
				           "| %s | %s |\n",
				        methods[m].label, procs[p], med, p99,
				        cps, best, x, ins, al);
			else
				fprintf(f, "%-42s %5d %10s %10s %13s %13s %8s "
				           "%6s %6s\n",
				        methods[m].label, procs[p], med, p99,
				        cps, best, x, ins, al);
		}
}

static void print_storms(FILE *f, bool md)
{
	if (md)
		fprintf(f, "| processes | all hold a header (ms) | slowest run "
		           "(ms) | median process holds it (ms) | median "
		           "process has opened (ms) | all hold, warm cache "
		           "(ms) | logins per run | logins, warm cache |\n"
		           "| ---: | ---: | ---: | ---: | ---: | ---: | --- | "
		           "--- |\n");
	else
		fprintf(f, "%9s %9s %9s %13s %13s %10s  %s\n", "processes",
		        "all hold", "slowest", "median holds", "median opened",
		        "warm: all", "logins (warm start)");
	for (int s = 0; s < N_STORMS; s++) {
		const struct storm *st = &storms[s];
		double all[STORM_REPS], med[STORM_REPS], opn[STORM_REPS];
		double warm[STORM_REPS], worst = 0;
		char logins[64] = "", wlogins[64] = "";
		int mid = (st->reps - 1) / 2;

		if (!st->reps)
			continue;
		for (int k = 0; k < st->reps; k++) {
			size_t l = strlen(logins), wl = strlen(wlogins);
			bool ok = st->ok[k] == storm_sizes[s] &&
			          st->same_header[k];

			all[k] = st->all_ms[k];
			med[k] = st->median_ms[k];
			opn[k] = st->open_ms[k];
			warm[k] = st->warm_all_ms[k];
			worst = all[k] > worst ? all[k] : worst;
			snprintf(logins + l, sizeof(logins) - l, "%s%ld%s",
			         k ? ", " : "", st->logins[k],
			         ok ? "" : " (failed)");
			snprintf(wlogins + wl, sizeof(wlogins) - wl, "%s%ld",
			         k ? ", " : "", st->warm_logins[k]);
		}
		qsort(all, (size_t)st->reps, sizeof(double), cmp_double);
		qsort(med, (size_t)st->reps, sizeof(double), cmp_double);
		qsort(opn, (size_t)st->reps, sizeof(double), cmp_double);
		qsort(warm, (size_t)st->reps, sizeof(double), cmp_double);
		if (md)
			fprintf(f, "| %d | %.1f | %.1f | %.1f | %.1f | %.1f | "
			           "%s | %s |\n",
			        storm_sizes[s], all[mid], worst, med[mid],
			        opn[mid], warm[mid], logins, wlogins);
		else
			fprintf(f, "%9d %9.1f %9.1f %13.1f %13.1f %10.1f  %s "
			           "(%s)\n",
			        storm_sizes[s], all[mid], worst, med[mid],
			        opn[mid], warm[mid], logins, wlogins);
	}
}

static void print_verdicts(FILE *f, bool md)
{
	for (int i = 0; i < n_verdicts; i++) {
		const struct verdict *v = &verdicts[i];

		const char *word = v->pass < 0 ? "info"
		                   : v->pass   ? "PASS"
		                               : "MISS";

		if (md)
			fprintf(f, "| %s | %s | %s%s%s |\n", v->what,
			        v->measured, v->pass < 0 ? "" : "**", word,
			        v->pass < 0 ? "" : "**");
		else
			fprintf(f, "%-4s  %s: %s\n", word, v->what,
			        v->measured);
	}
}

static void write_csv(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die("cannot write %s: %s", path, strerror(errno));
	fprintf(f, "section,method,label,procs,median_ns,p99_ns,calls_per_s,"
	           "calls_per_s_best,x_floor,instructions_per_call,"
	           "allocs_per_call,reps,batches,all_hold_ms,"
	           "median_process_ms,median_open_ms,logins,note\n");
	for (int m = 0; m < N_METHODS; m++)
		for (int p = 0; p < N_PROCS; p++) {
			const struct cell *c = &cells[m][p];
			double al = allocs_per_call(m, p);

			if (!measured(m, p)) {
				fprintf(f, "call,%s,\"%s\",%d,,,,,,,,%d,%zu,"
				           ",,,,\"%s\"\n",
				        methods[m].id, methods[m].label,
				        procs[p], c->reps, c->n, c->error);
				continue;
			}
			fprintf(f, "call,%s,\"%s\",%d,%.2f,%.2f,%.0f,%.0f,"
			           "%.3f,",
			        methods[m].id, methods[m].label, procs[p],
			        c->median, c->p99, c->cps_median, c->cps_best,
			        ratio(m, M_FLOOR, p));
			if (p == 0 && icount[m] >= 0)
				fprintf(f, "%.1f", icount[m]);
			fputc(',', f);
			if (al >= 0)
				fprintf(f, "%.3f", al);
			fprintf(f, ",%d,%zu,,,,,\n", c->reps, c->n);
		}
	for (int s = 0; s < N_STORMS; s++)
		for (int k = 0; k < storms[s].reps; k++) {
			const struct storm *st = &storms[s];

			fprintf(f, "storm,storm-cold,\"cold start, run %d\",%d,"
			           ",,,,,,,1,,%.2f,%.2f,%.2f,%ld,\"%s\"\n",
			        k + 1, storm_sizes[s], st->all_ms[k],
			        st->median_ms[k], st->open_ms[k],
			        st->logins[k],
			        st->ok[k] == storm_sizes[s] &&
			                        st->same_header[k]
			                ? ""
			                : "some processes failed");
			fprintf(f, "storm,storm-warm,\"warm start, run %d\",%d,"
			           ",,,,,,,1,,%.2f,,,%ld,\"\"\n",
			        k + 1, storm_sizes[s], st->warm_all_ms[k],
			        st->warm_logins[k]);
		}
	if (fclose(f) != 0)
		die("cannot write %s", path);
}

static void write_plot_data(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die("cannot write %s: %s", path, strerror(errno));
	fprintf(f, "# method  ns/call median with 1 2 4 processes\n");
	for (int m = 0; m < N_METHODS; m++) {
		if (!measured(m, 0))
			continue;
		fprintf(f, "\"%s\"", methods[m].plot);
		/* Rounded as in the table, so that the labels agree. */
		for (int p = 0; p < N_PROCS; p++) {
			double v = measured(m, p) ? cells[m][p].median : NAN;

			fprintf(f, " %.*f", !isnan(v) && v < 100 ? 1 : 0, v);
		}
		fputc('\n', f);
	}
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
	ssize_t n = readlink("/proc/self/exe", self_path,
	                     sizeof(self_path) - 1);
	char *slash;

	if (n <= 0)
		die("cannot find myself: %s", strerror(errno));
	self_path[n] = 0;
	slash = strrchr(self_path, '/');
	snprintf(reader_path, sizeof(reader_path),
	         "%.*s/ucaasauth-bench-reader", (int)(slash - self_path),
	         self_path);
	snprintf(preload, sizeof(preload), "%.*s/bench-malloc-count.so",
	         (int)(slash - self_path), self_path);
	if (access(reader_path, X_OK) < 0)
		die("%s: %s", reader_path, strerror(errno));
	if (access(preload, R_OK) < 0)
		preload[0] = 0; /* allocations are then not counted */
}

int main(int argc, char **argv)
{
	const char *csv = NULL, *plot = NULL, *md = NULL;
	char cpu[128], load0[64], load1[64], dir[PATH_MAX], noise[200];
	double busy0, busy1, steal0, steal1, wall, others;
	struct utsname u;
	int reps = 5;
	bool keep = false;
	int64_t t0;
	FILE *mdf;

	if (argc >= 2 && strcmp(argv[1], "worker") == 0)
		return login_worker(argc - 2, argv + 2);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--quick") == 0)
			reps = 2;
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
	       header_len, header_len - strlen("Authorization: Token "),
	       reps);
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
	for (int s = 0; s < N_STORMS && !interrupted; s++) {
		fprintf(stderr, "storm of %d processes\n", storm_sizes[s]);
		for (int k = 0; k < STORM_REPS && !interrupted; k++)
			run_storm(s, k);
	}
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = 0;
	}
#ifdef HAVE_KEYUTILS
	if (key_serial >= 0)
		keyctl_invalidate((key_serial_t)key_serial);
#endif
	if (keep) {
		/* For a look at the world afterwards: the workers' files,
		 * callgrind's output, a warm cache (no server). */
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
	print_table(stdout, false);
	printf("\ncold-start storm: ms from the release of N processes on an "
	       "empty cache (ucaasauth_open() included);\nthen N more on "
	       "the cache they filled (warm)\n");
	print_storms(stdout, false);
	printf("\ntargets\n");
	print_verdicts(stdout, false);
	if (key_serial < 0)
		printf("\nkeyctl_read(): %s\n", keyring_note);

	if (csv)
		write_csv(csv);
	if (plot)
		write_plot_data(plot);
	if (md) {
		mdf = fopen(md, "w");
		if (!mdf)
			die("cannot write %s", md);
		fprintf(mdf, "Machine: %ld CPUs online, %s, Linux %s. Build: "
		             "%s. %d repetitions, %.0f s. Load average before "
		             "and after: %s / %s; during the run %s.\n\n",
		        sysconf(_SC_NPROCESSORS_ONLN), cpu, u.release,
		        BENCH_BUILDTYPE, reps, wall, load0, load1, noise);
		print_table(mdf, true);
		fprintf(mdf, "\nCold-start storm: milliseconds from the "
		             "release of N processes on an empty cache, %d "
		             "runs (medians, and the slowest run); then N more "
		             "processes on the cache they filled:\n\n",
		        STORM_REPS);
		print_storms(mdf, true);
		fprintf(mdf, "\nTargets:\n\n| target | measured | |\n"
		             "| --- | --- | --- |\n");
		print_verdicts(mdf, true);
		if (key_serial < 0)
			fprintf(mdf, "\nkeyctl_read(): %s\n", keyring_note);
		fclose(mdf);
	}
	for (int s = 0; s < N_STORMS; s++)
		for (int k = 0; k < storms[s].reps; k++)
			if (storms[s].logins[k] != 1 ||
			    storms[s].warm_logins[k] != 0 ||
			    storms[s].ok[k] != storm_sizes[s] ||
			    !storms[s].same_header[k])
				return 3; /* a correctness failure */
	return 0;
}

/*
 * ucaasauth-bench-reader: one measuring process of the benchmark. It uses
 * only the public API, through the shared library libucaasauth.so.1, as
 * any program would; the other ways of getting the same header it
 * measures are written out here.
 *
 *   ucaasauth-bench-reader MODE GO_FD READY_FD OUT DURATION_MS BATCH MAX
 *   ucaasauth-bench-reader storm GO_FD READY_FD OUT
 *   ucaasauth-bench-reader icount MODE CALLS
 *
 * MODE: product, floor, floor-coarse, floor-mutex, keyctl, file, socket,
 * socket-connect.
 * The first form is a worker of tests/bench/bench.c (see bench.h); storm
 * opens the default profile and gets one header once released; icount
 * makes CALLS calls and nothing else, for callgrind to count.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef HAVE_KEYUTILS
#include <keyutils.h>
#endif

#include "bench.h"
#include "ucaasauth.h"

struct ctx {
	const char *mode;
	size_t want; /* the header's length */
	char expect[BENCH_HEADER_MAX + 1];
	struct ucaasauth *ua;
	struct floor_segment *floor;
	long key;
	const char *file;
	struct sockaddr_un addr;
	int sock;
};

/* Copies the header out of the seqlock half of the floor segment: acquire
 * load of the sequence, relaxed word loads, fence, re-check, then the
 * expiry against the clock. The same steps as the product's reader, minus
 * everything that is not a seqlock read. */
static inline __attribute__((always_inline)) size_t
seqlock_read(const struct floor_segment *seg, char *buf, size_t size,
             clockid_t clock)
{
	struct timespec ts;
	int64_t expires;
	uint64_t s1;
	size_t len, i;

	for (;;) {
		s1 = atomic_load_explicit(&seg->seq, memory_order_acquire);
		if (s1 & 1)
			continue;
		expires = atomic_load_explicit(&seg->expires_ns,
		                               memory_order_relaxed);
		len = atomic_load_explicit(&seg->len, memory_order_relaxed);
		if (len < size && len <= BENCH_HEADER_MAX) {
			for (i = 0; i < len / 8; i++) {
				uint64_t w = atomic_load_explicit(
					&seg->header[i], memory_order_relaxed);
				memcpy(buf + i * 8, &w, 8);
			}
			if (len % 8) {
				uint64_t w = atomic_load_explicit(
					&seg->header[i], memory_order_relaxed);
				memcpy(buf + i * 8, &w, len % 8);
			}
		}
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&seg->seq, memory_order_relaxed) == s1)
			break;
	}
	if (len >= size || len > BENCH_HEADER_MAX)
		return 0;
	clock_gettime(clock, &ts);
	if ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec >= expires)
		return 0;
	buf[len] = 0;
	return len;
}

/* The floor: a precise clock. */
__attribute__((noinline)) static size_t
floor_read(const struct floor_segment *seg, char *buf, size_t size)
{
	return seqlock_read(seg, buf, size, CLOCK_MONOTONIC);
}

/* Not a floor, for comparison only: the coarse clock the product reads
 * (the same timeline, ticking every few milliseconds). */
__attribute__((noinline)) static size_t
floor_read_coarse(const struct floor_segment *seg, char *buf, size_t size)
{
	return seqlock_read(seg, buf, size, CLOCK_MONOTONIC_COARSE);
}

/* The same bytes read under a process-shared mutex. */
__attribute__((noinline)) static size_t
floor_read_mutex(struct floor_segment *seg, char *buf, size_t size)
{
	struct timespec ts;
	int64_t expires;
	size_t len;

	if (pthread_mutex_lock(&seg->lock) != 0)
		return 0;
	expires = seg->m_expires_ns;
	len = seg->m_len;
	if (len < size && len <= BENCH_HEADER_MAX)
		memcpy(buf, seg->m_header, len);
	pthread_mutex_unlock(&seg->lock);
	if (len >= size || len > BENCH_HEADER_MAX)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec >= expires)
		return 0;
	buf[len] = 0;
	return len;
}

static size_t product_read(struct ctx *c, char *buf, size_t size)
{
	size_t len;

	if (ucaasauth_header(c->ua, buf, size, &len) != UCAASAUTH_OK)
		return 0;
	return len;
}

static size_t keyctl_get(struct ctx *c, char *buf, size_t size)
{
#ifdef HAVE_KEYUTILS
	/* The kernel enforces the key's timeout: no clock here. */
	long n = keyctl_read((key_serial_t)c->key, buf, size - 1);

	if (n < 0 || (size_t)n >= size)
		return 0;
	buf[n] = 0;
	return (size_t)n;
#else
	return 0;
#endif
}

/* What the AWS CLI and msal-extensions do: a token file, read under a
 * shared lock, with its expiry next to it. */
static size_t file_read(struct ctx *c, char *buf, size_t size)
{
	char data[BENCH_HEADER_MAX + 64], *end;
	struct timespec ts;
	long long expires;
	ssize_t n;
	size_t len;
	int fd = open(c->file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_SH) < 0) {
		close(fd);
		return 0;
	}
	n = read(fd, data, sizeof(data) - 1);
	close(fd); /* drops the lock */
	if (n <= 0)
		return 0;
	data[n] = 0;
	expires = strtoll(data, &end, 10);
	if (*end != '\n')
		return 0;
	len = (size_t)n - (size_t)(end + 1 - data);
	if (len >= size)
		return 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	if ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 >= expires)
		return 0;
	memcpy(buf, end + 1, len);
	buf[len] = 0;
	return len;
}

static bool send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* One request, one answer line. */
static size_t ask(int fd, char *buf, size_t size)
{
	char line[BENCH_HEADER_MAX + 2];
	size_t got = 0;
	char *nl;

	if (!send_all(fd, SOCKET_REQUEST, strlen(SOCKET_REQUEST)))
		return 0;
	for (;;) {
		ssize_t n = read(fd, line + got, sizeof(line) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		got += (size_t)n;
		line[got] = 0;
		nl = memchr(line, '\n', got);
		if (nl)
			break;
		if (got == sizeof(line) - 1)
			return 0;
	}
	if ((size_t)(nl - line) >= size)
		return 0;
	memcpy(buf, line, (size_t)(nl - line));
	buf[nl - line] = 0;
	return (size_t)(nl - line);
}

static int dial(struct ctx *c)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&c->addr, sizeof(c->addr)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* git-credential-cache's way: a connection per request. */
static size_t socket_connect_get(struct ctx *c, char *buf, size_t size)
{
	int fd = dial(c);
	size_t len;

	if (fd < 0)
		return 0;
	len = ask(fd, buf, size);
	close(fd);
	return len;
}

static const char *env(const char *name, const char *out)
{
	const char *v = getenv(name);

	if (!v || !*v)
		run_fail(out, "%s is not set", name);
	return v;
}

static void setup(struct ctx *c, const char *mode, const char *out)
{
	long n;
	int fd, r;

	memset(c, 0, sizeof(*c));
	c->mode = mode;
	c->sock = -1;
	n = bench_read_file(env("BENCH_EXPECT", out), c->expect,
	                    sizeof(c->expect));
	if (n <= 0)
		run_fail(out, "cannot read the expected header");
	c->want = (size_t)n;

	if (strcmp(mode, "product") == 0) {
		r = ucaasauth_open(&c->ua, NULL, 0);
		if (r != UCAASAUTH_OK)
			run_fail(out, "ucaasauth_open: %s (%s)",
			         ucaasauth_strerror(r), ucaasauth_last_error());
	} else if (strncmp(mode, "floor", 5) == 0) {
		const char *path = env("BENCH_FLOOR", out);
		void *p;

		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			run_fail(out, "%s: %s", path, strerror(errno));
		p = mmap(NULL, FLOOR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		         fd, 0);
		close(fd);
		/* Locked in memory like the product's segment. */
		if (p == MAP_FAILED || mlock(p, FLOOR_SIZE) < 0)
			run_fail(out, "%s: %s", path, strerror(errno));
		c->floor = p;
	} else if (strcmp(mode, "keyctl") == 0) {
#ifdef HAVE_KEYUTILS
		c->key = strtol(env("BENCH_KEY", out), NULL, 10);
#else
		run_fail(out, "built without libkeyutils");
#endif
	} else if (strcmp(mode, "file") == 0) {
		c->file = env("BENCH_FILE", out);
	} else if (strcmp(mode, "socket") == 0 ||
	           strcmp(mode, "socket-connect") == 0) {
		const char *path = env("BENCH_SOCKET", out);

		c->addr.sun_family = AF_UNIX;
		if (strlen(path) >= sizeof(c->addr.sun_path))
			run_fail(out, "%s: path too long", path);
		strcpy(c->addr.sun_path, path);
		if (strcmp(mode, "socket") == 0) {
			c->sock = dial(c);
			if (c->sock < 0)
				run_fail(out, "%s: %s", path, strerror(errno));
		}
	} else {
		run_fail(out, "unknown mode %s", mode);
	}
}

/* The right-hand side of each loop, spelled out per mode so that every
 * timed loop calls its method directly. */
#define CALL_OK(expr) ((expr) == c.want && bench_use(buf))

static int worker(int argc, char **argv)
{
	struct ctx c;
	struct run r;
	const char *out, *mode = argv[0];
	char buf[BENCH_HEADER_MAX + 1];
	int go, ready;

	run_init(&r, argc, argv, &go, &ready, &out);
	setup(&c, mode, out);
	memset(buf, 0, sizeof(buf));
	run_wait_go(go, ready);

	if (strcmp(mode, "product") == 0)
		MEASURE(&r, CALL_OK(product_read(&c, buf, sizeof(buf))));
	else if (strcmp(mode, "floor") == 0)
		MEASURE(&r, CALL_OK(floor_read(c.floor, buf, sizeof(buf))));
	else if (strcmp(mode, "floor-coarse") == 0)
		MEASURE(&r,
		        CALL_OK(floor_read_coarse(c.floor, buf, sizeof(buf))));
	else if (strcmp(mode, "floor-mutex") == 0)
		MEASURE(&r,
		        CALL_OK(floor_read_mutex(c.floor, buf, sizeof(buf))));
	else if (strcmp(mode, "keyctl") == 0)
		MEASURE(&r, CALL_OK(keyctl_get(&c, buf, sizeof(buf))));
	else if (strcmp(mode, "file") == 0)
		MEASURE(&r, CALL_OK(file_read(&c, buf, sizeof(buf))));
	else if (strcmp(mode, "socket") == 0)
		MEASURE(&r, CALL_OK(ask(c.sock, buf, sizeof(buf))));
	else
		MEASURE(&r, CALL_OK(socket_connect_get(&c, buf, sizeof(buf))));

	/* Every method must have handed over the very same bytes. */
	if (memcmp(buf, c.expect, c.want + 1) != 0)
		run_fail(out, "%s: the header read differs from the expected "
		              "one", mode);
	run_write(&r, out);
	ucaasauth_close(c.ua);
	return 0;
measure_failed:
	run_fail(out, "%s: a call failed after %ld calls (%s)", mode, r.calls,
	         strcmp(mode, "product") == 0 && ucaasauth_last_error()
	                 ? ucaasauth_last_error()
	                 : strerror(errno));
}

/* One process of the cold-start storm: start, get the header, say when. */
static int storm(int argc, char **argv)
{
	struct ucaasauth *ua;
	char buf[BENCH_HEADER_MAX + 1];
	const char *out;
	size_t len;
	int64_t t, t_open;
	FILE *f;
	int go, ready, r;

	if (argc != 4)
		run_fail(NULL, "usage: storm GO_FD READY_FD OUT");
	go = atoi(argv[1]);
	ready = atoi(argv[2]);
	out = argv[3];
	run_wait_go(go, ready);
	r = ucaasauth_open(&ua, NULL, 0);
	t_open = bench_now_ns();
	if (r != UCAASAUTH_OK)
		run_fail(out, "ucaasauth_open: %s (%s)", ucaasauth_strerror(r),
		         ucaasauth_last_error());
	r = ucaasauth_header(ua, buf, sizeof(buf), &len);
	t = bench_now_ns();
	if (r != UCAASAUTH_OK)
		run_fail(out, "ucaasauth_header: %s (%s)",
		         ucaasauth_strerror(r), ucaasauth_last_error());
	ucaasauth_close(ua);
	f = fopen(out, "w");
	if (!f)
		run_fail(NULL, "cannot write %s", out);
	fprintf(f, "ok %lld %lld\n%s\n", (long long)t, (long long)t_open, buf);
	return fclose(f) == 0 ? 0 : 1;
}

/* CALLS calls and nothing else: callgrind counts the instructions. */
static int icount(int argc, char **argv)
{
	char buf[BENCH_HEADER_MAX + 1];
	const char *mode;
	struct ctx c;
	long calls;

	if (argc != 3)
		run_fail(NULL, "usage: icount MODE CALLS");
	mode = argv[1];
	calls = atol(argv[2]);
	setup(&c, mode, NULL);
	memset(buf, 0, sizeof(buf));
	/* One loop per mode: no dispatch inside what is counted. */
	if (strcmp(mode, "product") == 0) {
		for (long i = 0; i < calls; i++)
			if (!CALL_OK(product_read(&c, buf, sizeof(buf))))
				run_fail(NULL, "%s: call %ld failed", mode, i);
	} else if (strcmp(mode, "floor") == 0) {
		for (long i = 0; i < calls; i++)
			if (!CALL_OK(floor_read(c.floor, buf, sizeof(buf))))
				run_fail(NULL, "%s: call %ld failed", mode, i);
	} else if (strcmp(mode, "floor-coarse") == 0) {
		for (long i = 0; i < calls; i++)
			if (!CALL_OK(floor_read_coarse(c.floor, buf,
			                               sizeof(buf))))
				run_fail(NULL, "%s: call %ld failed", mode, i);
	} else if (strcmp(mode, "floor-mutex") == 0) {
		for (long i = 0; i < calls; i++)
			if (!CALL_OK(floor_read_mutex(c.floor, buf,
			                              sizeof(buf))))
				run_fail(NULL, "%s: call %ld failed", mode, i);
	} else {
		run_fail(NULL, "icount: no such mode %s", mode);
	}
	ucaasauth_close(c.ua);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "storm") == 0)
		return storm(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "icount") == 0)
		return icount(argc - 1, argv + 1);
	if (argc >= 2)
		return worker(argc - 1, argv + 1);
	fprintf(stderr, "usage: ucaasauth-bench-reader MODE GO_FD READY_FD OUT "
	                "DURATION_MS BATCH MAX_CALLS\n"
	                "       ucaasauth-bench-reader storm GO_FD READY_FD "
	                "OUT\n"
	                "       ucaasauth-bench-reader icount MODE CALLS\n");
	return 2;
}

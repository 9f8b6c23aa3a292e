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
 * MODE: product, floor, floor-monotonic, floor-memcpy, floor-mutex,
 * keyctl, file, socket, socket-connect, redis-unix, redis-tcp, memcached.
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
#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif
#ifdef HAVE_LIBMEMCACHED
#include <libmemcached/memcached.h>
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
#ifdef HAVE_HIREDIS
	redisContext *redis;
#endif
#ifdef HAVE_LIBMEMCACHED
	memcached_st *mc;
#endif
};

/*
 * Copies the header out of the seqlock half of the floor segment: acquire
 * load of the sequence, the expiry and the length, the header word by word
 * with relaxed 8-byte atomic loads (the last 1-7 bytes from one more
 * word), acquire fence, re-check of the sequence; then the expiry against
 * the clock. The steps of the product's reader (libucaasauth/cache.h,
 * segment_read) on the same 141 bytes, minus what is not a seqlock read:
 * the product also loads its generation and window fields and converts
 * the clock to milliseconds. Live shared memory is read by atomic loads
 * only, never by an optimised string function: the rule the product
 * keeps (DESIGN.md; glibc's nscd crashed reading its shared cache so).
 */
static inline __attribute__((always_inline)) size_t
seqlock_read(const struct floor_segment *seg, char *buf, size_t size,
             clockid_t clock, bool whole_memcpy)
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
		if (len < size && len <= BENCH_HEADER_MAX && whole_memcpy) {
			/* What the rule forbids: glibc's memcpy on live
			 * shared memory (overlapping vector loads of bytes a
			 * writer may be changing). */
			memcpy(buf, (const char *)seg->header, len);
		} else if (len < size && len <= BENCH_HEADER_MAX) {
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

/* The floor: the clock the product reads, CLOCK_MONOTONIC_COARSE (the
 * vDSO copies the last tick; deadlines are tens of seconds). */
__attribute__((noinline)) static size_t
floor_read(const struct floor_segment *seg, char *buf, size_t size)
{
	return seqlock_read(seg, buf, size, CLOCK_MONOTONIC_COARSE, false);
}

/* A reference, not the floor: the precise clock (the vDSO reads the TSC
 * and scales it), the floor of earlier runs. */
__attribute__((noinline)) static size_t
floor_read_monotonic(const struct floor_segment *seg, char *buf, size_t size)
{
	return seqlock_read(seg, buf, size, CLOCK_MONOTONIC, false);
}

/* A reference that does less than the rules allow: one memcpy of the
 * live header, the coarse clock. */
__attribute__((noinline)) static size_t
floor_read_memcpy(const struct floor_segment *seg, char *buf, size_t size)
{
	return seqlock_read(seg, buf, size, CLOCK_MONOTONIC_COARSE, true);
}

/* The same bytes read under a process-shared mutex, the coarse clock. */
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
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
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

/* What a web shop's workers do with a token they share: GET it from
 * Redis (hiredis, a connection kept per process; the key was SET with
 * EX, so the server enforces the expiry: no clock here). */
static size_t redis_get(struct ctx *c, char *buf, size_t size)
{
#ifdef HAVE_HIREDIS
	redisReply *rep = redisCommand(c->redis, "GET %s", BENCH_KV_KEY);
	size_t len = 0;

	if (!rep)
		return 0;
	if (rep->type == REDIS_REPLY_STRING && rep->len < size) {
		memcpy(buf, rep->str, rep->len);
		buf[rep->len] = 0;
		len = rep->len;
	}
	freeReplyObject(rep);
	return len;
#else
	return 0;
#endif
}

/* The same with memcached (libmemcached, ASCII protocol, TCP_NODELAY,
 * a connection kept per process; the item's expiry set by the driver). */
static size_t memcached_read(struct ctx *c, char *buf, size_t size)
{
#ifdef HAVE_LIBMEMCACHED
	memcached_return_t rc;
	uint32_t flags;
	size_t n, len = 0;
	char *v = memcached_get(c->mc, BENCH_KV_KEY, strlen(BENCH_KV_KEY), &n,
	                        &flags, &rc);

	if (!v)
		return 0;
	if (rc == MEMCACHED_SUCCESS && n < size) {
		memcpy(buf, v, n);
		buf[n] = 0;
		len = n;
	}
	free(v);
	return len;
#else
	return 0;
#endif
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
	} else if (strcmp(mode, "redis-unix") == 0 ||
	           strcmp(mode, "redis-tcp") == 0) {
#ifdef HAVE_HIREDIS
		if (strcmp(mode, "redis-unix") == 0)
			c->redis = redisConnectUnix(
				env("BENCH_REDIS_SOCKET", out));
		else
			c->redis = redisConnect(
				"127.0.0.1",
				atoi(env("BENCH_REDIS_PORT", out)));
		if (!c->redis || c->redis->err)
			run_fail(out, "%s: cannot connect: %s", mode,
			         c->redis ? c->redis->errstr : "out of memory");
#else
		run_fail(out, "built without hiredis");
#endif
	} else if (strcmp(mode, "memcached") == 0) {
#ifdef HAVE_LIBMEMCACHED
		in_port_t port =
			(in_port_t)atoi(env("BENCH_MEMCACHED_PORT", out));

		c->mc = memcached_create(NULL);
		if (!c->mc ||
		    memcached_server_add(c->mc, "127.0.0.1", port) !=
		            MEMCACHED_SUCCESS ||
		    memcached_behavior_set(c->mc,
		                           MEMCACHED_BEHAVIOR_TCP_NODELAY,
		                           1) != MEMCACHED_SUCCESS)
			run_fail(out, "memcached: cannot set up libmemcached");
#else
		run_fail(out, "built without libmemcached");
#endif
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
	else if (strcmp(mode, "floor-monotonic") == 0)
		MEASURE(&r, CALL_OK(floor_read_monotonic(c.floor, buf,
		                                         sizeof(buf))));
	else if (strcmp(mode, "floor-memcpy") == 0)
		MEASURE(&r,
		        CALL_OK(floor_read_memcpy(c.floor, buf, sizeof(buf))));
	else if (strcmp(mode, "floor-mutex") == 0)
		MEASURE(&r,
		        CALL_OK(floor_read_mutex(c.floor, buf, sizeof(buf))));
	else if (strcmp(mode, "keyctl") == 0)
		MEASURE(&r, CALL_OK(keyctl_get(&c, buf, sizeof(buf))));
	else if (strcmp(mode, "file") == 0)
		MEASURE(&r, CALL_OK(file_read(&c, buf, sizeof(buf))));
	else if (strcmp(mode, "socket") == 0)
		MEASURE(&r, CALL_OK(ask(c.sock, buf, sizeof(buf))));
	else if (strncmp(mode, "redis", 5) == 0)
		MEASURE(&r, CALL_OK(redis_get(&c, buf, sizeof(buf))));
	else if (strcmp(mode, "memcached") == 0)
		MEASURE(&r, CALL_OK(memcached_read(&c, buf, sizeof(buf))));
	else
		MEASURE(&r, CALL_OK(socket_connect_get(&c, buf, sizeof(buf))));

	/* Every method must have handed over the very same bytes. */
	if (memcmp(buf, c.expect, c.want + 1) != 0)
		run_fail(out,
		         "%s: the header read differs from the expected "
		         "one",
		         mode);
	run_write(&r, out);
	ucaasauth_close(c.ua);
#ifdef HAVE_HIREDIS
	if (c.redis)
		redisFree(c.redis);
#endif
#ifdef HAVE_LIBMEMCACHED
	if (c.mc)
		memcached_free(c.mc);
#endif
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
	} else if (strcmp(mode, "floor-monotonic") == 0) {
		for (long i = 0; i < calls; i++)
			if (!CALL_OK(floor_read_monotonic(c.floor, buf,
			                                  sizeof(buf))))
				run_fail(NULL, "%s: call %ld failed", mode, i);
	} else if (strcmp(mode, "floor-memcpy") == 0) {
		for (long i = 0; i < calls; i++)
			if (!CALL_OK(floor_read_memcpy(c.floor, buf,
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

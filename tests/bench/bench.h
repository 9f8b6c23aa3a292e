/*
 * What the benchmark's driver (bench.c) and its measuring processes
 * (reader.c) share: the floor's segment, the way a worker is started and
 * released, the timed loop, and the result file a worker leaves behind.
 */
#ifndef UCAASAUTH_BENCH_H
#define UCAASAUTH_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define BENCH_HEADER_MAX 256
#define FLOOR_SIZE 4096u

/*
 * The floor: the least a shared cache can do. The first half is a seqlock
 * segment shaped like the product's (sequence, expiry, length, header
 * words on their own cache lines); the second holds the same bytes behind
 * a process-shared mutex. Written once by the driver, before any reader
 * starts; readers of both halves still do all the work a live writer
 * would demand of them.
 */
struct floor_segment {
	_Alignas(64) _Atomic uint64_t seq;
	/* CLOCK_MONOTONIC, the timeline CLOCK_MONOTONIC_COARSE also reads */
	_Atomic int64_t expires_ns;
	_Atomic uint32_t len;
	_Atomic uint64_t header[BENCH_HEADER_MAX / 8];

	_Alignas(64) pthread_mutex_t lock; /* process-shared */
	int64_t m_expires_ns;
	uint32_t m_len;
	char m_header[BENCH_HEADER_MAX];
};

_Static_assert(sizeof(struct floor_segment) <= FLOOR_SIZE,
               "the floor segment fits in one page");

/* The daemon's wire format: a request line, answered by the header line
 * (an empty line once the token has expired). */
#define SOCKET_REQUEST "get\n"

/* The key under which Redis and memcached hold the header line. */
#define BENCH_KV_KEY "ucaasauth-bench"

/*
 * Environment the driver gives every worker:
 *   BENCH_EXPECT  file holding exactly the expected header line
 *   BENCH_FLOOR   the floor segment
 *   BENCH_FILE    the token file: "<expiry, Unix ms>\n<header>"
 *   BENCH_SOCKET  the daemon's socket
 *   BENCH_KEY     the key's serial number (absent: keyrings refused)
 *   BENCH_REDIS_SOCKET, BENCH_REDIS_PORT  the redis-server the driver
 *                 started (Unix socket; TCP port on 127.0.0.1)
 *   BENCH_MEMCACHED_PORT  the memcached it started, on 127.0.0.1
 * and UCAASAUTH_CONFIG / UCAASAUTH_RUNTIME_DIR for the product.
 *
 * A measuring worker is run as
 *   PROGRAM [worker] MODE GO_FD READY_FD OUT DURATION_MS BATCH MAX_CALLS
 * It sets up, writes one byte to READY_FD, blocks until GO_FD reaches end
 * of file (the driver closes it when every worker is ready), warms up,
 * then times batches of BATCH calls until DURATION_MS or MAX_CALLS.
 */
static inline int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct run {
	int64_t duration_ns, warmup_ns;
	long batch, max_calls;
	size_t max_avg;
	/* Results. */
	long calls;
	int64_t elapsed_ns;
	long allocs; /* during the timed loop; -1: not counted */
	double *avg; /* ns per call of each batch */
	size_t n_avg;
};

/* Parses the worker arguments (argv[0] is MODE) into r; exits on error. */
void run_init(struct run *r, int argc, char **argv, int *ret_go, int *ret_ready,
              const char **ret_out);
/* Tells the driver this worker is ready, and waits to be released. */
void run_wait_go(int go, int ready);
/* Writes "ok CALLS ELAPSED_NS ALLOCS N" and the batch averages to out. */
void run_write(const struct run *r, const char *out);
/* Writes "error MESSAGE" to out, and exits. */
_Noreturn void run_fail(const char *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* malloc, calloc, realloc and memalign calls so far in this process, as
 * counted by bench-malloc-count.so when it is preloaded; -1 otherwise. */
long bench_allocs(void);

/* Reads a whole small file into buf (NUL-terminated); its length or -1. */
long bench_read_file(const char *path, char *buf, size_t size);

/* Keeps the compiler from dropping a copy whose result nobody reads:
 * as far as it knows, the bytes at p are read here. True. */
static inline bool bench_use(const void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
	return true;
}

/*
 * Times r->batch calls of CALL (an expression, true on success) per
 * batch, after r->warmup_ns of untimed calls. Jumps to `measure_failed`
 * in the calling function when a call fails.
 */
#define MEASURE(r, CALL)                                                       \
	do {                                                                   \
		int64_t warm_ = bench_now_ns() + (r)->warmup_ns;               \
		int64_t t0_, tb_, te_;                                         \
		long a0_;                                                      \
		while (bench_now_ns() < warm_)                                 \
			for (long i_ = 0; i_ < (r)->batch; i_++)               \
				if (!(CALL))                                   \
					goto measure_failed;                   \
		a0_ = bench_allocs();                                          \
		t0_ = te_ = bench_now_ns();                                    \
		while ((r)->n_avg < (r)->max_avg &&                            \
		       (r)->calls < (r)->max_calls &&                          \
		       te_ - t0_ < (r)->duration_ns) {                         \
			tb_ = bench_now_ns();                                  \
			for (long i_ = 0; i_ < (r)->batch; i_++)               \
				if (!(CALL))                                   \
					goto measure_failed;                   \
			te_ = bench_now_ns();                                  \
			(r)->avg[(r)->n_avg++] =                               \
				(double)(te_ - tb_) / (double)(r)->batch;      \
			(r)->calls += (r)->batch;                              \
		}                                                              \
		(r)->elapsed_ns = te_ - t0_;                                   \
		(r)->allocs = a0_ < 0 ? -1 : bench_allocs() - a0_;             \
	} while (0)

#endif

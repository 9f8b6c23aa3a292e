/* The worker side of the benchmark protocol, shared by both programs. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static long (*allocs_fn)(void);
static bool allocs_looked_up;

long bench_allocs(void)
{
	/* Looked up once, before any timed loop: dlsym may allocate. */
	if (!allocs_looked_up) {
		allocs_fn = (long (*)(void))dlsym(RTLD_DEFAULT,
		                                  "bench_malloc_count");
		allocs_looked_up = true;
	}
	return allocs_fn ? allocs_fn() : -1;
}

long bench_read_file(const char *path, char *buf, size_t size)
{
	long n = 0;
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while ((size_t)n + 1 < size &&
	       (r = read(fd, buf + n, size - 1 - (size_t)n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			return -1;
		}
		n += r;
	}
	close(fd);
	buf[n] = 0;
	return n;
}

_Noreturn void run_fail(const char *out, const char *fmt, ...)
{
	FILE *f = out ? fopen(out, "w") : NULL;
	va_list ap;

	va_start(ap, fmt);
	if (f) {
		fputs("error ", f);
		vfprintf(f, fmt, ap);
		fputc('\n', f);
		fclose(f);
	} else {
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
	exit(1);
}

static long number(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "bench worker: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

void run_init(struct run *r, int argc, char **argv, int *ret_go, int *ret_ready,
              const char **ret_out)
{
	if (argc != 7) {
		fprintf(stderr, "usage: MODE GO_FD READY_FD OUT DURATION_MS "
		                "BATCH MAX_CALLS\n");
		exit(2);
	}
	memset(r, 0, sizeof(*r));
	*ret_go = (int)number(argv[1], 0, 1 << 20);
	*ret_ready = (int)number(argv[2], 0, 1 << 20);
	*ret_out = argv[3];
	r->duration_ns = number(argv[4], 1, 60000) * 1000000;
	r->batch = number(argv[5], 1, 1000000);
	r->max_calls = number(argv[6], 1, 1L << 40);
	/* About 10 % of the run, at most 20 ms: the first calls fault in
	 * pages, fill caches and train the branch predictor. */
	r->warmup_ns =
		r->duration_ns / 10 < 20000000 ? r->duration_ns / 10 : 20000000;
	r->max_avg = 1 << 20;
	r->avg = malloc(r->max_avg * sizeof(*r->avg));
	if (!r->avg)
		run_fail(*ret_out, "out of memory");
	bench_allocs(); /* resolve it now, outside the loop */
}

void run_wait_go(int go, int ready)
{
	char c = 'r';

	while (write(ready, &c, 1) < 0 && errno == EINTR)
		;
	close(ready);
	/* Released together: the driver closes the other end. */
	while (read(go, &c, 1) < 0 && errno == EINTR)
		;
	close(go);
}

void run_write(const struct run *r, const char *out)
{
	FILE *f = fopen(out, "w");

	if (!f)
		run_fail(NULL, "cannot write %s: %s", out, strerror(errno));
	fprintf(f, "ok %ld %lld %ld %zu\n", r->calls, (long long)r->elapsed_ns,
	        r->allocs, r->n_avg);
	for (size_t i = 0; i < r->n_avg; i++)
		fprintf(f, "%.3f\n", r->avg[i]);
	if (fclose(f) != 0)
		run_fail(NULL, "cannot write %s: %s", out, strerror(errno));
}

/*
 * demo-workers PROFILE PROCESSES CALLS: what a prefork server does. The
 * parent opens the profile once and forks; every worker gets its first
 * header (on a cold cache one of them logs in, the others wait for it),
 * then, released together with the others, calls ucaasauth_header() CALLS
 * times. Then one worker does the same alone.
 *
 * It reports what can be compared with the benchmark (docs/performance.md):
 * each worker's CPU time per call (CLOCK_PROCESS_CPUTIME_ID: the time it
 * spent on a CPU, not the time it waited for one while PROCESSES workers
 * shared the machine's CPUs), and the calls per second of all the workers
 * together against those of one worker alone. Wall time per call would
 * mostly measure the waiting.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ucaasauth.h"

struct result {
	double start_ns, end_ns; /* CLOCK_MONOTONIC: one clock for all */
	double cpu_ns;           /* this worker's CPU time in its loop */
};

static double clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static bool get(struct ucaasauth *ua, char *buf, size_t size)
{
	size_t len;
	int r = ucaasauth_header(ua, buf, size, &len);

	if (r != UCAASAUTH_OK) {
		fprintf(stderr, "worker %d: %s\n", (int)getpid(),
		        ucaasauth_last_error());
		return false;
	}
	return true;
}

static int worker(struct ucaasauth *ua, long calls, int go, int ready, int out)
{
	struct result res;
	char buf[4096], c = 'r';
	double cpu0;

	/* The first header, untimed: on a cold cache, the login. */
	if (!get(ua, buf, sizeof(buf)))
		return 1;
	if (write(ready, &c, 1) != 1)
		return 1;
	close(ready);
	while (read(go, &c, 1) < 0 && errno == EINTR)
		;
	close(go);
	cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	res.start_ns = clock_ns(CLOCK_MONOTONIC);
	for (long i = 0; i < calls; i++)
		if (!get(ua, buf, sizeof(buf)))
			return 1;
	res.end_ns = clock_ns(CLOCK_MONOTONIC);
	res.cpu_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
	/* Smaller than PIPE_BUF: written whole, never interleaved. */
	return write(out, &res, sizeof(res)) == sizeof(res) ? 0 : 1;
}

/*
 * Runs n workers of `calls` calls, released together once all hold a
 * header. Their CPU time per call goes to cpu_per_call[] (sorted), and
 * the calls per second of all of them together, from the first one's
 * start to the last one's end (*ret_span_ms), to *ret_cps. Returns how
 * many failed.
 */
static int run(struct ucaasauth *ua, int n, long calls, double *cpu_per_call,
               double *ret_cps, double *ret_span_ms)
{
	int go[2], ready[2], out[2], failed = 0, got = 0;
	double first = 0, last = 0;
	struct result res;
	char c;

	if (pipe(go) < 0 || pipe(ready) < 0 || pipe(out) < 0)
		return n;
	fflush(NULL);
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			failed += n - i;
			break;
		}
		if (pid == 0) {
			close(go[1]);
			close(ready[0]);
			close(out[0]);
			_exit(worker(ua, calls, go[0], ready[1], out[1]));
		}
	}
	close(go[0]);
	close(ready[1]);
	close(out[1]);
	/* Every worker holds a header (or died): release them. */
	while (read(ready[0], &c, 1) == 1)
		;
	close(ready[0]);
	close(go[1]);
	while (got < n && read(out[0], &res, sizeof(res)) == sizeof(res)) {
		cpu_per_call[got++] = res.cpu_ns / calls;
		if (!first || res.start_ns < first)
			first = res.start_ns;
		if (res.end_ns > last)
			last = res.end_ns;
	}
	close(out[0]);
	for (int i = 0; i < n; i++) {
		int status;

		while (wait(&status) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	}
	qsort(cpu_per_call, got, sizeof(*cpu_per_call), cmp);
	*ret_cps = got && last > first
	                   ? got * (double)calls * 1e9 / (last - first)
	                   : 0;
	*ret_span_ms = (last - first) / 1e6;
	return failed ? failed : n - got;
}

int main(int argc, char **argv)
{
	struct ucaasauth *ua;
	int n, failed, r;
	long calls, cpus = sysconf(_SC_NPROCESSORS_ONLN);
	double *cpu, one_cpu[1], cps, one_cps, span, one_span;

	if (argc != 4 || (n = atoi(argv[2])) < 1 || n > 1024 ||
	    (calls = atol(argv[3])) < 1) {
		fprintf(stderr,
		        "usage: demo-workers PROFILE PROCESSES CALLS\n");
		return 2;
	}
	r = ucaasauth_open(&ua, argv[1], 0);
	if (r != UCAASAUTH_OK) {
		fprintf(stderr, "demo-workers: %s\n", ucaasauth_last_error());
		return 1;
	}
	cpu = calloc(n, sizeof(*cpu));
	if (!cpu)
		return 1;
	failed = run(ua, n, calls, cpu, &cps, &span);
	if (failed) {
		fprintf(stderr, "demo-workers: %d of %d workers failed\n",
		        failed, n);
		return 1;
	}
	if (run(ua, 1, calls, one_cpu, &one_cps, &one_span) != 0) {
		fprintf(stderr, "demo-workers: the lone worker failed\n");
		return 1;
	}
	printf("%d workers x %ld calls, sharing %ld CPUs: 0 failed\n"
	       "CPU time per call: median %.1f ns, slowest worker %.1f ns "
	       "(one worker alone: %.1f ns)\n"
	       "all %d workers together: %.0f million calls/s over %.0f ms, "
	       "%.2fx one worker alone (%.0f million calls/s)\n",
	       n, calls, cpus, cpu[n / 2], cpu[n - 1], one_cpu[0], n, cps / 1e6,
	       span, one_cps > 0 ? cps / one_cps : 0, one_cps / 1e6);
	/* The scheduler spreads freshly woken processes over the CPUs in
	 * milliseconds: a shorter run shows that, not the cache. */
	if (span < 200 && n > 1 && cpus > 1)
		printf("(a run of %.0f ms is too short for the sum to show how "
		       "the workers scale: try more calls)\n",
		       span);
	free(cpu);
	ucaasauth_close(ua);
	return 0;
}

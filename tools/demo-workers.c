/*
 * demo-workers PROFILE PROCESSES CALLS: what a prefork server does. The
 * parent opens the profile once and forks; every worker calls
 * ucaasauth_header() CALLS times and reports its time per call.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ucaasauth.h"

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int worker(struct ucaasauth *ua, long calls, int out)
{
	char buf[4096];
	size_t len;
	double t0, ns;

	t0 = now_ns();
	for (long i = 0; i < calls; i++) {
		int r = ucaasauth_header(ua, buf, sizeof(buf), &len);
		if (r != UCAASAUTH_OK) {
			fprintf(stderr, "worker %d: %s\n", (int)getpid(),
			        ucaasauth_last_error());
			return 1;
		}
	}
	ns = (now_ns() - t0) / calls;
	return write(out, &ns, sizeof(ns)) == sizeof(ns) ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct ucaasauth *ua;
	int n, fds[2], failed = 0, r;
	long calls;
	double *ns, wall;

	if (argc != 4 || (n = atoi(argv[2])) < 1 || n > 1024 ||
	    (calls = atol(argv[3])) < 1) {
		fprintf(stderr, "usage: demo-workers PROFILE PROCESSES CALLS\n");
		return 2;
	}
	r = ucaasauth_open(&ua, argv[1], 0);
	if (r != UCAASAUTH_OK) {
		fprintf(stderr, "demo-workers: %s\n", ucaasauth_last_error());
		return 1;
	}
	if (pipe(fds) < 0)
		return 1;
	wall = now_ns();
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0)
			_exit(worker(ua, calls, fds[1]));
	}
	close(fds[1]);
	for (int i = 0; i < n; i++) {
		int status;
		while (wait(&status) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	}
	wall = (now_ns() - wall) / 1e9;
	ns = calloc(n, sizeof(*ns));
	for (int i = 0; i < n && read(fds[0], &ns[i], sizeof(*ns)) ==
	                                 sizeof(*ns);
	     i++)
		;
	qsort(ns, n, sizeof(*ns), cmp);
	printf("%d workers x %ld calls in %.2f s: %d failed; "
	       "time per call: median %.0f ns, slowest worker %.0f ns\n",
	       n, calls, wall, failed, ns[n / 2], ns[n - 1]);
	free(ns);
	ucaasauth_close(ua);
	return failed ? 1 : 0;
}

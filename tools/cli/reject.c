/* ucaas-auth reject and curl: the shell's compare-and-invalidate, and
 * curl run with the header out of argv. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cache.h"

#include "cli.h"

/*
 * One header line from standard input, exactly as `header` printed it: the
 * line and at most one newline, nothing after. It is a secret: read into
 * guarded memory, which the caller wipes with sodium_free().
 */
static int read_header_line(char **ret, size_t *ret_len)
{
	/* The longest line, its newline, and one byte more to see that
	 * something follows. */
	const size_t cap = HEADER_MAX + 2;
	char *line = sodium_malloc(cap + 1), *nl;
	size_t len = 0;
	int r;

	if (!line)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	while (len < cap) {
		ssize_t n = read(STDIN_FILENO, line + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = fail_errno(UCAASAUTH_E_INVALID, errno, "reading",
			               "standard input");
			goto out;
		}
		if (n == 0)
			break;
		len += n;
	}
	nl = memchr(line, '\n', len);
	if (nl && (size_t)(nl - line) + 1 < len) {
		r = fail(UCAASAUTH_E_INVALID,
		         "standard input: more than one line (give the one "
		         "line that `ucaas-auth header` printed)");
		goto out;
	}
	if (nl)
		len = nl - line;
	if (len > HEADER_MAX) {
		r = fail(UCAASAUTH_E_INVALID,
		         "standard input: the line is longer than a header "
		         "(%zu bytes at most)",
		         (size_t)HEADER_MAX);
		goto out;
	}
	if (len == 0) {
		r = fail(UCAASAUTH_E_INVALID,
		         "standard input: no header line (pipe in what "
		         "`ucaas-auth header` printed)");
		goto out;
	}
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) {
			r = fail(UCAASAUTH_E_INVALID,
			         "standard input: byte %zu of the line is a "
			         "control character",
			         i + 1);
			goto out;
		}
	line[len] = 0;
	*ret = line;
	*ret_len = len;
	return 0;
out:
	sodium_free(line);
	return r;
}

/* The shell's compare-and-invalidate: ucaasauth_reject() on the header
 * line the API refused, read from stdin (never from argv). */
int cmd_reject(int argc, char **argv)
{
	struct ucaasauth *ua;
	const char *name;
	char *line = NULL;
	size_t len;
	int r;

	if (no_options(argc, argv) < 0)
		return usage();
	r = profile_arg(argc, argv, &name);
	if (r < 0)
		return r == -1 ? usage() : 2;
	r = read_header_line(&line, &len);
	if (r < 0)
		return failed(r);
	r = ucaasauth_open(&ua, name, 0);
	if (r == 0) {
		r = ucaasauth_reject(ua, line);
		ucaasauth_close(ua);
	}
	sodium_free(line);
	return r < 0 ? failed(r) : 0;
}

/* ucaas-auth's own failures in `curl` are numbered as env(1) and
 * timeout(1) number theirs, apart from curl's own statuses (1-99). */
#define CURL_OWN_FAILURE 125

static void close_pipe(int fds[2])
{
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* The status of the last status line in the dump of the answer's header
 * lines, kept across reads in line[0..*used). */
static void scan_status(const char *buf, ssize_t n, char *line, size_t size,
                        size_t *used, int *http)
{
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] != '\n') {
			if (*used < size - 1)
				line[(*used)++] = buf[i];
			continue;
		}
		line[*used] = 0;
		*used = 0;
		if (strncmp(line, "HTTP/", 5) == 0 && strchr(line, ' '))
			*http = atoi(strchr(line, ' ') + 1);
	}
}

/*
 * Runs curl once with the header. The header goes in a pipe that curl
 * reads as `-H @/dev/fd/N`: never in curl's argv, which every user can
 * read in /proc, nor in its environment, which whatever curl runs
 * inherits. The answer's header lines come back on another pipe
 * (`-D /dev/fd/M`), so stdin, stdout and stderr stay the user's. The last
 * status line there is the final answer's (after 1xx, redirects, a
 * proxy's CONNECT); *ret_http is 0 when there was none.
 */
static int run_curl(const char *header, size_t len, char **args, int n,
                    int *ret_http, int *ret_exit)
{
	const char *prog = secure_getenv("UCAASAUTH_CURL");
	struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
	char hdr_arg[32], dump_arg[32], line[16], buf[4096];
	char **cargv = calloc(n + 6, sizeof(*cargv));
	int in[2] = {-1, -1}, out[2] = {-1, -1}, http = 0, status, r = 0;
	size_t used = 0;
	ssize_t got;
	pid_t pid;

	if (!prog || !*prog)
		prog = "curl";
	if (!cargv)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	/* At most HEADER_MAX + 1 bytes, less than PIPE_BUF: the write
	 * cannot block, and it is done before curl starts. */
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
	    write(in[1], header, len) != (ssize_t)len ||
	    write(in[1], "\n", 1) != 1) {
		r = fail_errno(UCAASAUTH_E_NOMEM, errno, "a pipe for", prog);
		goto out;
	}
	close(in[1]);
	in[1] = -1;
	snprintf(hdr_arg, sizeof(hdr_arg), "@/dev/fd/%d", in[0]);
	snprintf(dump_arg, sizeof(dump_arg), "/dev/fd/%d", out[1]);
	cargv[0] = (char *)prog;
	cargv[1] = "-H";
	cargv[2] = hdr_arg;
	cargv[3] = "-D";
	cargv[4] = dump_arg;
	memcpy(cargv + 5, args, n * sizeof(*args));
	/* As system(3) does: a ^C at the terminal is curl's to handle. */
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGQUIT, &ign, &old_quit);
	pid = fork();
	if (pid == 0) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGQUIT, &old_quit, NULL);
		if (fcntl(in[0], F_SETFD, 0) == 0 &&
		    fcntl(out[1], F_SETFD, 0) == 0)
			execvp(prog, cargv);
		dprintf(STDERR_FILENO, "ucaas-auth: cannot run %s: %s\n", prog,
		        strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	if (pid < 0)
		r = fail_errno(UCAASAUTH_E_NOMEM, errno, "forking", prog);
	close(out[1]);
	out[1] = -1;
	/* Drained while curl runs, so that a long chain of redirects
	 * cannot block it on a full pipe. */
	while (pid > 0 && ((got = read(out[0], buf, sizeof(buf))) > 0 ||
	                   (got < 0 && errno == EINTR)))
		scan_status(buf, got, line, sizeof(line), &used, &http);
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	if (pid > 0) {
		*ret_http = http;
		*ret_exit = WIFEXITED(status) ? WEXITSTATUS(status)
		                              : 128 + WTERMSIG(status);
	}
out:
	close_pipe(in);
	close_pipe(out);
	free(cargv);
	return r;
}

/*
 * curl with the profile's header; on a 401 or 403 answer, the header is
 * rejected (ucaasauth_reject) and the request made once more with the next
 * one. Exits with curl's status, or CURL_OWN_FAILURE when no header could
 * be had.
 */
int cmd_curl(int argc, char **argv)
{
	struct ucaasauth *ua = NULL;
	char buf[HEADER_MAX + 1];
	const char *name;
	int first = 0, http = 0, code = CURL_OWN_FAILURE, r;
	size_t len;

	/* No getopt: everything after "--" is curl's, untouched. */
	if (argc >= 2 && strcmp(argv[1], "--") == 0)
		first = 2;
	else if (argc >= 3 && strcmp(argv[2], "--") == 0)
		first = 3;
	if (first == 0 || first >= argc)
		return usage();
	if (profile_arg(first - 1, argv, &name) < 0)
		return 2;
	r = ucaasauth_open(&ua, name, 0);
	for (int attempt = 0; r == 0 && attempt < 2; attempt++) {
		r = ucaasauth_header(ua, buf, sizeof(buf), &len);
		if (r == 0)
			r = run_curl(buf, len, argv + first, argc - first,
			             &http, &code);
		if (r < 0 || (http != 401 && http != 403) || attempt == 1)
			break;
		r = ucaasauth_reject(ua, buf);
	}
	if (r < 0) {
		failed(r);
		code = CURL_OWN_FAILURE;
	}
	sodium_memzero(buf, sizeof(buf));
	ucaasauth_close(ua);
	return code;
}

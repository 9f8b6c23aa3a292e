/*
 * The exec provider (kubectl's exec credential plugins, the AWS CLI's
 * credential_process): runs a configured command, without a shell, in a
 * clean environment, with a timeout, and reads its answer as JSON:
 *   {"token": "...", "expires_at": "RFC 3339"}   or
 *   {"header": "Authorization: ...", "expires_in": SECONDS}
 * Its stderr becomes the detail text of a failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "cache.h"
#include "stack.h"

#define OUT_MAX (64 * 1024)
#define ERR_MAX 512
#define ENV_MAX 32

struct exec_state {
	char *const *argv;
	char *env[ENV_MAX + 1];
	int timeout_ms;
	const char *profile;
};

static void free_state(struct exec_state *s)
{
	if (!s)
		return;
	for (size_t i = 0; s->env[i]; i++)
		free(s->env[i]);
	free(s);
}

static int add_env(struct exec_state *s, size_t *n, const char *name,
                   const char *value)
{
	size_t len = strlen(name);

	/* Named twice (exec_env = PATH): the later value replaces. */
	for (size_t i = 0; i < *n; i++)
		if (strncmp(s->env[i], name, len) == 0 && s->env[i][len] == '=') {
			free(s->env[i]);
			s->env[i] = s->env[--*n];
			s->env[*n] = NULL;
			break;
		}
	if (*n == ENV_MAX)
		return fail(UCAASAUTH_E_CONFIG, "exec_env: more than %d variables",
		            ENV_MAX - 4);
	if (asprintf(&s->env[*n], "%s=%s", name, value) < 0) {
		s->env[*n] = NULL;
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	}
	(*n)++;
	return 0;
}

static int exec_open(void **ret_state, const struct ucaasauth_provider_args *args)
{
	const struct profile *p = provider_handle(args)->profile;
	struct exec_state *s;
	char names[1100], *save = NULL;
	size_t n = 0;
	int r;

	/* The command runs with our privileges: only root or we may have
	 * written it, as for modules. */
	r = provider_check_file(args->argv[0], "exec command");
	if (r < 0)
		return r;
	if (access(args->argv[0], X_OK) < 0)
		return fail(UCAASAUTH_E_CONFIG, "exec command %s: %s",
		            args->argv[0], strerror(errno));
	s = calloc(1, sizeof(*s));
	if (!s)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	s->argv = (char *const *)args->argv;
	s->timeout_ms = args->timeout * 1000;
	s->profile = args->profile;
	/* A clean environment: what the command needs to know, and the
	 * variables the profile names, nothing else of ours. */
	r = add_env(s, &n, "PATH", "/usr/local/bin:/usr/bin:/bin");
	if (r == 0)
		r = add_env(s, &n, "UCAASAUTH_PROFILE", args->profile);
	if (r == 0)
		r = add_env(s, &n, "UCAASAUTH_API_BASE", args->api_base);
	if (r == 0)
		r = add_env(s, &n, "UCAASAUTH_APP_ID", args->app_id);
	snprintf(names, sizeof(names), "%s", p->exec_env ? p->exec_env : "");
	for (char *v = strtok_r(names, " \t", &save); v && r == 0;
	     v = strtok_r(NULL, " \t", &save)) {
		const char *value = secure_getenv(v);
		if (value)
			r = add_env(s, &n, v, value);
	}
	if (r < 0) {
		free_state(s);
		return r;
	}
	*ret_state = s;
	return 0;
}

/* "2026-11-28T10:15:00Z", "...T10:15:00.123+01:00": Unix time, or -1. */
static time_t parse_rfc3339(const char *s)
{
	struct tm tm = {0};
	const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	long offset = 0;
	time_t t;

	if (!rest)
		return -1;
	if (*rest == '.')
		while (*++rest >= '0' && *rest <= '9')
			;
	if (*rest == 'Z' || *rest == 'z') {
		rest++;
	} else if (*rest == '+' || *rest == '-') {
		int h, m, n = 0;
		if (sscanf(rest + 1, "%2d:%2d%n", &h, &m, &n) != 2 || n != 5 ||
		    h > 23 || m > 59)
			return -1;
		offset = (h * 3600L + m * 60) * (*rest == '+' ? 1 : -1);
		rest += 6;
	} else {
		return -1;
	}
	if (*rest)
		return -1;
	t = timegm(&tm);
	return t == -1 ? -1 : t - offset;
}

/* Judges the command's JSON: one safe header line and its lifetime. */
static int judge(const char *out, size_t len, const char *cmd, char *buf,
                 size_t size, size_t *ret_len, long *ret_lifetime)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj = NULL, *v;
	const char *s, *prefix;
	long lifetime = 0;
	size_t slen;
	int r;

	if (!tok)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	obj = json_tokener_parse_ex(tok, out, (int)len);
	if (!obj || json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(obj, json_type_object)) {
		r = fail(UCAASAUTH_E_PROTOCOL,
		         "exec command %s: its output is not one JSON object",
		         cmd);
		goto out;
	}
	if (json_object_object_get_ex(obj, "header", &v) &&
	    json_object_is_type(v, json_type_string)) {
		prefix = "";
	} else if (json_object_object_get_ex(obj, "token", &v) &&
	           json_object_is_type(v, json_type_string)) {
		prefix = TOKEN_PREFIX;
	} else {
		r = fail(UCAASAUTH_E_PROTOCOL,
		         "exec command %s: no \"token\" or \"header\" string",
		         cmd);
		goto out;
	}
	s = json_object_get_string(v);
	slen = (size_t)json_object_get_string_len(v);
	/* The rest (CR, LF, control characters) is judged for every
	 * provider by the stack. */
	if (slen == 0 || strlen(s) != slen ||
	    strlen(prefix) + slen >= size ||
	    (*prefix && strpbrk(s, " \t"))) {
		r = fail(UCAASAUTH_E_PROTOCOL,
		         "exec command %s: an empty, overlong or unsafe token "
		         "or header",
		         cmd);
		goto out;
	}
	snprintf(buf, size, "%s%s", prefix, s);
	if (json_object_object_get_ex(obj, "expires_at", &v)) {
		time_t t = json_object_is_type(v, json_type_string)
		                   ? parse_rfc3339(json_object_get_string(v))
		                   : -1;
		lifetime = t == -1 ? -1 : (long)(t - time(NULL));
		if (lifetime <= 0) {
			r = fail(UCAASAUTH_E_PROTOCOL,
			         "exec command %s: \"expires_at\" is not a "
			         "future RFC 3339 time",
			         cmd);
			goto out;
		}
	} else if (json_object_object_get_ex(obj, "expires_in", &v)) {
		lifetime = json_object_is_type(v, json_type_int)
		                   ? (long)json_object_get_int64(v)
		                   : -1;
		if (lifetime <= 0) {
			r = fail(UCAASAUTH_E_PROTOCOL,
			         "exec command %s: \"expires_in\" is not a number "
			         "of seconds",
			         cmd);
			goto out;
		}
	}
	*ret_len = strlen(buf);
	*ret_lifetime = lifetime;
	r = 0;
out:
	if (obj && json_object_object_get_ex(obj, "token", &v) &&
	    json_object_is_type(v, json_type_string))
		sodium_memzero((char *)json_object_get_string(v),
		               (size_t)json_object_get_string_len(v));
	json_object_put(obj);
	if (tok->pb && tok->pb->buf)
		sodium_memzero(tok->pb->buf, (size_t)tok->pb->size);
	json_tokener_free(tok);
	return r;
}

/* The first line of what the command said on stderr, printable. */
static const char *said(char *err, size_t len)
{
	size_t i;

	err[len] = 0;
	for (i = 0; i < len && err[i] != '\n'; i++)
		if ((unsigned char)err[i] < ' ' || err[i] == 0x7f)
			err[i] = '?';
	err[i] = 0;
	return i ? err : "(nothing on stderr)";
}

static void reap(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, __WALL) < 0 && errno == EINTR)
		;
}

static int exec_fetch(void *state, char *buf, size_t size, size_t *ret_len,
                      long *ret_lifetime)
{
	struct exec_state *s = state;
	const char *cmd = s->argv[0];
	char *out, err[ERR_MAX + 1];
	size_t out_len = 0, err_len = 0;
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, stp[2] = {-1, -1};
	int devnull, status = 0, r;
	int64_t deadline = now_ms() + s->timeout_ms;
	bool too_big = false, timed_out = false;
	pid_t pid, group = 0;

	out = sodium_malloc(OUT_MAX + 1); /* it holds the token */
	if (!out)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0 || pipe2(outp, O_CLOEXEC) < 0 ||
	    pipe2(errp, O_CLOEXEC) < 0 || pipe2(stp, O_CLOEXEC) < 0) {
		r = fail(UCAASAUTH_E_NOMEM, "exec: %s", strerror(errno));
		goto out;
	}
	/* fork() without SIGCHLD: the program's own SIGCHLD handler never
	 * hears of our child. We reap it with __WALL. */
	pid = (pid_t)syscall(SYS_clone, 0UL, NULL, NULL, NULL, NULL);
	if (pid < 0) {
		r = fail(UCAASAUTH_E_NOMEM, "exec: fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls until execve: the parent may
		 * have threads. */
		sigset_t none;
		pid_t c;
		int st = 126 << 8;

		/* The program's signal settings are not the command's: an
		 * ignored SIGCHLD would break its shell's waits (and lose
		 * its exit status), a blocked SIGTERM (ucaas-authd blocks
		 * it) its shutdown. */
		for (int sig = 1; sig < NSIG; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				signal(sig, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		c = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, NULL,
		                   NULL, NULL, NULL);
		if (c == 0) {
			/* A process group of its own, so that a timeout
			 * kills whatever it started too, but not the
			 * waiter, which still reaps it. */
			setpgid(0, 0);
			if (dup2(devnull, 0) < 0 || dup2(outp[1], 1) < 0 ||
			    dup2(errp[1], 2) < 0)
				_exit(126);
			close_range(3, ~0U, 0);
			execve(cmd, s->argv, s->env);
			_exit(127);
		}
		/* This process only waits for the command and reports how it
		 * ended, so that the status survives whatever the program
		 * does with SIGCHLD. */
		close(outp[1]);
		close(errp[1]);
		if (c > 0) {
			/* Set on both sides: no kill can miss the group. */
			setpgid(c, c);
			if (write(stp[1], &c, sizeof(c)) != sizeof(c))
				_exit(1);
			while (waitpid(c, &st, 0) < 0 && errno == EINTR)
				;
		}
		if (write(stp[1], &st, sizeof(st)) != sizeof(st))
			_exit(1);
		_exit(0);
	}
	close(stp[1]);
	stp[1] = -1;
	/* The command's pid (its process group), from the waiter, at once. */
	{
		struct pollfd pfd = {stp[0], POLLIN, 0};
		if (poll(&pfd, 1, s->timeout_ms) <= 0 ||
		    read(stp[0], &group, sizeof(group)) != sizeof(group))
			group = 0;
	}
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;
	for (;;) {
		struct pollfd pfd[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (outp[0] < 0 && errp[0] < 0)
			break;
		if (left <= 0) {
			timed_out = true;
			break;
		}
		if (poll(pfd, 2, (int)left) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents) {
			n = read(outp[0], out + out_len, OUT_MAX + 1 - out_len);
			if (n > 0)
				out_len += n;
			if (out_len > OUT_MAX) {
				too_big = true;
				break;
			}
			if (n == 0) {
				close(outp[0]);
				outp[0] = -1;
			}
		}
		if (pfd[1].revents) {
			char sink[512];
			n = err_len < ERR_MAX
			            ? read(errp[0], err + err_len, ERR_MAX - err_len)
			            : read(errp[0], sink, sizeof(sink));
			if (n > 0 && err_len < ERR_MAX)
				err_len += n;
			if (n == 0) {
				close(errp[0]);
				errp[0] = -1;
			}
		}
	}
	/* Its output is closed, but it may linger: its status, bounded. */
	while (!timed_out && !too_big) {
		struct pollfd pfd = {stp[0], POLLIN, 0};
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0) {
			timed_out = true;
			break;
		}
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			break;
		if (!pfd.revents)
			continue;
		n = read(stp[0], &status, sizeof(status));
		if (n == sizeof(status))
			break;
		if (n == 0) {
			status = 127 << 8; /* the waiter died: no status */
			break;
		}
	}
	if ((timed_out || too_big) && group > 0) {
		/* The command and all it started; the waiter reaps the
		 * command and reports, then exits. */
		kill(-group, SIGKILL);
		while (read(stp[0], &status, sizeof(status)) < 0 &&
		       errno == EINTR)
			;
	}
	if (group <= 0)
		kill(pid, SIGKILL); /* no command to wait for */
	/* The waiter: never a zombie (already gone where SIGCHLD is
	 * ignored). */
	reap(pid);
	if (timed_out)
		r = fail(UCAASAUTH_E_UNAVAILABLE,
		         "exec command %s: no answer within %d s, killed", cmd,
		         s->timeout_ms / 1000);
	else if (too_big)
		r = fail(UCAASAUTH_E_PROTOCOL,
		         "exec command %s: printed more than %d bytes, killed",
		         cmd, OUT_MAX);
	else if (WIFSIGNALED(status))
		r = fail(UCAASAUTH_E_UNAVAILABLE,
		         "exec command %s: killed by signal %d: %s", cmd,
		         WTERMSIG(status), said(err, err_len));
	else if (WEXITSTATUS(status) != 0)
		r = fail(UCAASAUTH_E_UNAVAILABLE,
		         "exec command %s: exit status %d: %s", cmd,
		         WEXITSTATUS(status), said(err, err_len));
	else
		r = judge(out, out_len, cmd, buf, size, ret_len, ret_lifetime);
out:
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
		if (stp[i] >= 0)
			close(stp[i]);
	}
	if (devnull >= 0)
		close(devnull);
	sodium_free(out);
	return r;
}

static void exec_close(void *state)
{
	free_state(state);
}

const struct ucaasauth_provider exec_provider = {
	.abi_version = UCAASAUTH_PROVIDER_ABI,
	.name = "exec",
	.open = exec_open,
	.fetch = exec_fetch,
	.close = exec_close,
};

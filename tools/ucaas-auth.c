/* ucaas-auth: the command-line credential helper. */
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

#define INPUT_MAX (16 * 1024)

static const char usage_text[] =
	"usage: ucaas-auth [--config FILE] COMMAND [ARGS]\n"
	"\n"
	"  keygen [--key-file PATH] [PROFILE]  make a new master key\n"
	"  store PROFILE                       encrypt secrets read from stdin\n"
	"  header [PROFILE]                    print the Authorization header\n"
	"  token [--json] [PROFILE]            print the token (token profiles)\n"
	"  status [PROFILE]                    show the cache state, no secret\n"
	"  flush [PROFILE]                     drop the host's cached token\n"
	"  reject [PROFILE]                    after a 401/403: drop the header\n"
	"                                      read from stdin if still current\n"
	"  curl [PROFILE] -- CURL-ARGS...      run curl with the header; on a\n"
	"                                      401/403, reject and retry once\n"
	"  check [PROFILE]                     validate a profile, no network\n"
	"\n"
	"See ucaas-auth(1).\n";

static int usage(void)
{
	fputs(usage_text, stderr);
	return 2;
}

static int failed(int status)
{
	const char *detail = ucaasauth_last_error();

	fprintf(stderr, "ucaas-auth: %s\n",
	        detail ? detail : ucaasauth_strerror(status));
	return 1;
}

static int no_options(int argc, char **argv)
{
	static const struct option none[] = {{0}};

	return getopt_long(argc, argv, "", none, NULL) == -1 ? 0 : -1;
}

/* At most one PROFILE operand after the options. */
static int profile_arg(int argc, char **argv, const char **ret)
{
	if (argc - optind > 1)
		return -1;
	*ret = optind < argc ? argv[optind] : NULL;
	if (*ret && !profile_name_valid(*ret)) {
		fprintf(stderr,
		        "ucaas-auth: '%s' is not a profile name (letters, "
		        "digits, '-', '_')\n",
		        *ret);
		return -2;
	}
	return 0;
}

static int load_profile(const char *name, struct config **config,
                        const struct profile **ret)
{
	char path[PATH_MAX];
	int r;

	r = config_path(path, sizeof(path));
	if (r == 0)
		r = config_load(path, config);
	if (r == 0)
		r = config_find(*config, name, ret);
	return r;
}

static int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{"key-file", required_argument, NULL, 'k'},
		{0},
	};
	struct config *config = NULL;
	const struct profile *p;
	const char *key_file = NULL, *name;
	int c, r;

	while ((c = getopt_long(argc, argv, "k:", opts, NULL)) != -1) {
		if (c != 'k')
			return usage();
		key_file = optarg;
	}
	r = profile_arg(argc, argv, &name);
	if (r < 0)
		return r == -1 ? usage() : 2;
	if (!key_file) {
		r = load_profile(name, &config, &p);
		if (r < 0)
			return failed(r);
		key_file = p->key_file;
	}
	r = key_generate(key_file);
	if (r == 0)
		printf("wrote a new master key to %s\n", key_file);
	config_free(config);
	return r < 0 ? failed(r) : 0;
}

/* The signal that interrupted a secret's prompt: raised again once the
 * terminal has its echo back (OpenBSD's readpassphrase() does the same). */
static volatile sig_atomic_t prompt_signal;

static void prompt_caught(int sig)
{
	prompt_signal = sig;
}

static const int prompt_signals[] = {SIGINT, SIGQUIT, SIGTERM, SIGHUP};
#define N_PROMPT_SIGNALS (sizeof(prompt_signals) / sizeof(prompt_signals[0]))

/*
 * Asks the terminal on standard input for one answer of 1 to max bytes,
 * into out (max + 1 bytes), echo off for secrets; the prompt goes to
 * tty_fd. The answer is read with read(2), a byte at a time, into guarded
 * memory: stdio would keep a copy in a heap buffer that it frees unwiped,
 * and would read past the newline, so that the rest of an overlong answer
 * became the next one. The whole line is consumed, however long, so that
 * none of it is left for the next prompt or, after we exit, for the shell.
 * Messages name the prompt, never the answer.
 */
static int prompt(int tty_fd, const char *label, bool secret, char *out,
                  size_t max)
{
	struct sigaction caught = {.sa_handler = prompt_caught};
	struct sigaction saved[N_PROMPT_SIGNALS];
	struct termios old, quiet;
	bool handlers = false, restore = false;
	/* One byte more than max, to tell an answer that is too long. */
	size_t cap = max + 1, len = 0;
	char *line = sodium_malloc(cap + 1);
	int r = 0;

	if (!line)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	prompt_signal = 0;
	if (secret && tcgetattr(STDIN_FILENO, &old) == 0) {
		/* No SA_RESTART: a signal ends the read() below, and the
		 * echo is back before the signal takes its course. */
		sigemptyset(&caught.sa_mask);
		for (size_t i = 0; i < N_PROMPT_SIGNALS; i++)
			sigaction(prompt_signals[i], &caught, &saved[i]);
		handlers = true;
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		restore = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
	}
	/* Only now, with the echo off: what is typed after the prompt shows
	 * is never echoed, nor flushed. */
	dprintf(tty_fd, "%s: ", label);
	while (!prompt_signal) {
		char *c = line + (len < cap ? len : cap);
		ssize_t n = read(STDIN_FILENO, c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = fail_errno(UCAASAUTH_E_CREDENTIALS, errno,
			               "reading", "the terminal");
			break;
		}
		if (n == 0 || *c == '\n')
			break; /* end of file (Ctrl-D) or of the line */
		len++;
	}
	if (restore) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		dprintf(tty_fd, "\n");
	}
	if (handlers)
		for (size_t i = 0; i < N_PROMPT_SIGNALS; i++)
			sigaction(prompt_signals[i], &saved[i], NULL);
	if (prompt_signal) {
		sodium_free(line);
		raise(prompt_signal); /* as it would have been: usually death */
		return fail(UCAASAUTH_E_CREDENTIALS,
		            "%s: interrupted: nothing stored", label);
	}
	if (r == 0 && len == 0)
		r = fail(UCAASAUTH_E_CREDENTIALS,
		         "%s: an empty answer: nothing stored", label);
	if (r == 0 && len > max)
		r = fail(UCAASAUTH_E_CREDENTIALS,
		         "%s: longer than %zu bytes: nothing stored", label,
		         max);
	for (size_t i = 0; r == 0 && i < len; i++)
		if ((unsigned char)line[i] < ' ' || line[i] == 0x7f)
			r = fail(UCAASAUTH_E_CREDENTIALS,
			         "%s: a control character (only printable "
			         "characters can be stored): nothing stored",
			         label);
	if (r == 0) {
		memcpy(out, line, len);
		out[len] = 0;
	}
	sodium_free(line);
	return r;
}

/* The secrets as "key=value" lines, from a terminal's prompts or stdin;
 * never from argv, where every user could read them. */
static int read_secrets(const struct profile *p, struct secrets *secrets)
{
	char *input = sodium_malloc(INPUT_MAX + 1);
	size_t len = 0;
	int r = UCAASAUTH_E_CREDENTIALS;

	if (!input)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	if (isatty(STDIN_FILENO)) {
		unsigned needs = profile_needs(p);
		/* The answers come from standard input, the prompts go to
		 * the terminal even when standard error is redirected. */
		int tty = open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC);
		int to = tty >= 0 ? tty : STDERR_FILENO;

		r = 0;
		if (needs & NEEDS_APP_KEY)
			r = prompt(to, "App Key", true, secrets->app_key,
			           SECRET_MAX);
		if (r == 0 && (needs & NEEDS_LOGIN))
			r = prompt(to, "Email", false, secrets->email,
			           SECRET_MAX);
		if (r == 0 && (needs & NEEDS_LOGIN))
			r = prompt(to, "Password", true, secrets->password,
			           SECRET_MAX);
		if (tty >= 0)
			close(tty);
		goto out;
	}
	for (;;) {
		ssize_t n = read(STDIN_FILENO, input + len, INPUT_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = fail_errno(UCAASAUTH_E_CREDENTIALS, errno, "reading",
			               "standard input");
			goto out;
		}
		if (n == 0)
			break;
		len += n;
		if (len > INPUT_MAX) {
			r = fail(UCAASAUTH_E_CREDENTIALS,
			         "standard input: more than %d bytes", INPUT_MAX);
			goto out;
		}
	}
	r = secrets_parse(secrets, input, len, "standard input");
out:
	sodium_free(input);
	return r;
}

static int cmd_store(int argc, char **argv)
{
	struct config *config = NULL;
	struct secrets *secrets = NULL;
	const struct profile *p;
	const char *name;
	int r;

	if (no_options(argc, argv) < 0)
		return usage();
	r = profile_arg(argc, argv, &name);
	if (r < 0 || !name)
		return r == -2 ? 2 : usage();
	r = load_profile(name, &config, &p);
	if (r == 0) {
		secrets = secrets_new();
		if (!secrets)
			r = fail(UCAASAUTH_E_NOMEM, "out of memory");
	}
	if (r == 0)
		r = read_secrets(p, secrets);
	if (r == 0)
		r = cred_store(p, secrets);
	if (r == 0)
		fprintf(stderr, "stored the secrets of profile '%s' in %s\n",
		        p->name, p->credentials);
	secrets_free(secrets);
	config_free(config);
	return r < 0 ? failed(r) : 0;
}

static int open_handle(int argc, char **argv, struct ucaasauth **ret)
{
	const char *name;
	int r = profile_arg(argc, argv, &name);

	if (r < 0)
		return r == -1 ? usage() : 2;
	r = ucaasauth_open(ret, name, 0);
	return r < 0 ? failed(r) : 0;
}

static int cmd_header(int argc, char **argv)
{
	struct ucaasauth *ua;
	char buf[HEADER_MAX + 1];
	size_t len;
	int r;

	if (no_options(argc, argv) < 0)
		return usage();
	r = open_handle(argc, argv, &ua);
	if (r)
		return r;
	r = ucaasauth_header(ua, buf, sizeof(buf), &len);
	if (r == 0)
		printf("%s\n", buf);
	else
		r = failed(r);
	sodium_memzero(buf, sizeof(buf));
	ucaasauth_close(ua);
	return r;
}

static void rfc3339(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int cmd_token(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{0},
	};
	struct ucaasauth *ua;
	struct refresh_state st;
	struct snapshot snap;
	char buf[HEADER_MAX + 1], when[32];
	const char *token;
	bool json = false;
	size_t len;
	int c, r;

	while ((c = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		if (c != 'j')
			return usage();
		json = true;
	}
	r = open_handle(argc, argv, &ua);
	if (r)
		return r;
	r = ucaasauth_header(ua, buf, sizeof(buf), &len);
	if (r < 0) {
		r = failed(r);
		goto out;
	}
	if (strncmp(buf, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) != 0) {
		fprintf(stderr,
		        "ucaas-auth: profile '%s' %s: it has a header "
		        "(ucaas-auth header) but no token\n",
		        ua->profile->name,
		        ua->basic ? "uses the basic provider"
		                  : "was last answered with another scheme");
		r = 1;
		goto out;
	}
	token = buf + strlen(TOKEN_PREFIX);
	if (!json) {
		printf("%s\n", token);
		goto out;
	}
	cache_refresh_state(ua->view, now_ms(), &st);
	if (!segment_read(ua->view, NULL, 0, &snap))
		snap.generation = 0;
	rfc3339(st.expires_real, when, sizeof(when));
	/* Tokens are visible ASCII without quotes or backslashes?  Not
	 * promised: escape the two JSON cares about. */
	printf("{\"token\": \"");
	for (const char *t = token; *t; t++)
		printf(*t == '"' || *t == '\\' ? "\\%c" : "%c", *t);
	printf("\", \"header\": \"");
	for (const char *t = buf; *t; t++)
		printf(*t == '"' || *t == '\\' ? "\\%c" : "%c", *t);
	printf("\", \"expires_at\": \"%s\", \"generation\": %llu}\n", when,
	       (unsigned long long)snap.generation);
out:
	sodium_memzero(buf, sizeof(buf));
	ucaasauth_close(ua);
	return r;
}

/* The stack, one line per provider, as configured (arguments included:
 * they are in the configuration file, which holds no secret). */
static void print_stack(const struct profile *p)
{
	if (p->provider != PROVIDER_STACK)
		return;
	for (size_t i = 0; i < p->n_stack; i++) {
		const struct stack_entry *e = &p->stack[i];
		printf("  %zu. %-10s %s", i + 1, control_name(e->control),
		       e->name);
		for (int k = 0; k < e->argc; k++)
			printf(" %s", e->argv[k]);
		printf("\n");
	}
}

static int cmd_status(int argc, char **argv)
{
	struct ucaasauth *ua;
	const struct segment *view;
	struct refresh_state st;
	struct snapshot snap;
	char tmp[HEADER_MAX + 1], when[32], dir[PATH_MAX];
	int64_t now;
	bool valid;
	int r;

	if (no_options(argc, argv) < 0)
		return usage();
	r = open_handle(argc, argv, &ua);
	if (r)
		return r;
	printf("profile:      %s\n", ua->profile->name);
	printf("config:       %s\n", ua->config->path);
	printf("provider:     %s\n", provider_name(ua->profile->provider));
	print_stack(ua->profile);
	printf("api_base:     %s\n", ua->profile->api_base);
	if (ua->basic) {
		printf("header:       static Basic header, nothing cached\n");
		goto out;
	}
	now = now_ms();
	view = atomic_load(&ua->view);
	if (ua->profile->cache == CACHE_SHARED && cache_dir(dir, sizeof(dir)) == 0)
		printf("cache:        shared (%s)\n", dir);
	else if (ua->profile->cache == CACHE_PROCESS)
		printf("cache:        process\n");
	else
		printf("cache:        daemon (%s)\n", ua->profile->socket);
	if (!view) {
		printf("daemon:       not running\n");
		goto out;
	}
	if (ua->profile->cache == CACHE_DAEMON) {
		int64_t beat = now - atomic_load(&view->heartbeat_ms);
		int64_t next = atomic_load(&view->next_refresh_ms) - now;
		printf("daemon:       pid %d, heartbeat %lld.%lld s ago\n",
		       (int)atomic_load(&view->daemon_pid),
		       (long long)beat / 1000, (long long)(beat % 1000) / 100);
		if (ua->profile->provider == PROVIDER_LOGIN && next > 0)
			printf("next refresh: in %lld s\n",
			       (long long)(next + 999) / 1000);
	}
	cache_refresh_state(view, now, &st);
	valid = token_view(view, tmp, sizeof(tmp), &snap);
	sodium_memzero(tmp, sizeof(tmp));
	printf("generation:   %llu\n", (unsigned long long)snap.generation);
	if (snap.len > 0 && ua->profile->provider == PROVIDER_BASIC) {
		printf("header:       Basic, held by the daemon\n");
		goto out;
	}
	if (valid) {
		rfc3339(st.expires_real, when, sizeof(when));
		printf("token:        valid, expires in %lld s (%s)\n",
		       (long long)(snap.expires_ms - now) / 1000, when);
	} else {
		printf("token:        none\n");
	}
	printf("logins:       %llu\n", (unsigned long long)st.logins);
	if (st.answered_by[0] && ua->profile->provider == PROVIDER_STACK)
		printf("answered by:  %s\n", st.answered_by);
	if (st.last_login_real) {
		rfc3339(st.last_login_real, when, sizeof(when));
		printf("last login:   %s\n", when);
	}
	if (st.failures) {
		printf("failures:     %u in a row\n", st.failures);
		printf("last error:   %s (%s)\n",
		       ucaasauth_strerror(st.last_status), st.error);
	}
	if (now < st.next_attempt_ms)
		printf("backoff:      next login attempt in %lld s\n",
		       (long long)(st.next_attempt_ms - now + 999) / 1000);
	else if (st.failures)
		printf("backoff:      over, the next call logs in\n");
	if (ua->seg && cache_lease_holder(ua->seg, now))
		printf("refreshing:   pid %d holds the refresh lease\n",
		       (int)cache_lease_holder(ua->seg, now));
out:
	ucaasauth_close(ua);
	return 0;
}

static int cmd_flush(int argc, char **argv)
{
	struct ucaasauth *ua;
	int r;

	if (no_options(argc, argv) < 0)
		return usage();
	r = open_handle(argc, argv, &ua);
	if (r)
		return r;
	if (ua->seg) {
		/* Rebuilt, not locked: a broken lock or page cannot stop it,
		 * and the backoff goes with the old segment. */
		r = handle_move(ua, ua->seg);
	} else if (!ua->basic) {
		/* The daemon's token: rejected, so the daemon replaces it. */
		struct snapshot snap = {0};
		if (!atomic_load(&ua->view))
			r = fail(UCAASAUTH_E_UNAVAILABLE,
			         "ucaas-authd (socket %s): not running",
			         ua->profile->socket);
		else if (segment_read(ua->view, NULL, 0, &snap) && snap.len)
			r = daemon_reject(ua, snap.generation);
	}
	if (r == 0)
		fprintf(stderr, "flushed the cached token of profile '%s'\n",
		        ua->profile->name);
	ucaasauth_close(ua);
	return r < 0 ? failed(r) : 0;
}

/*
 * Everything ucaasauth_open() checks, without a network call: the
 * configuration, the key and credential files and their permissions, the
 * CA file, the modules and exec commands of the stack, the cache
 * directory (or the daemon's socket). One line per finding.
 */
static int cmd_check(int argc, char **argv)
{
	struct config *config = NULL;
	const struct profile *p;
	struct ucaasauth *ua;
	const char *name;
	int r;

	if (no_options(argc, argv) < 0)
		return usage();
	r = profile_arg(argc, argv, &name);
	if (r < 0)
		return r == -1 ? usage() : 2;
	r = load_profile(name, &config, &p);
	if (r < 0)
		return failed(r);
	printf("configuration %s: ok\n", config->path);
	printf("profile %s: %s provider%s, cache = %s\n", p->name,
	       provider_name(p->provider),
	       p->provider == PROVIDER_STACK ? "s" : "",
	       p->cache == CACHE_SHARED    ? "shared"
	       : p->cache == CACHE_PROCESS ? "process"
	                                   : "daemon");
	print_stack(p);
	config_free(config);
	r = ucaasauth_open(&ua, name, 0);
	if (r < 0)
		return failed(r);
	if (ua->profile->cache == CACHE_DAEMON)
		printf("daemon: %s (socket %s); credentials, modules and "
		       "commands are the daemon's, not checked here\n",
		       atomic_load(&ua->view) ? "running" : "not running",
		       ua->profile->socket);
	else
		printf("credentials, modules and commands: ok\n");
	ucaasauth_close(ua);
	return 0;
}

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
static int cmd_reject(int argc, char **argv)
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
static int cmd_curl(int argc, char **argv)
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} commands[] = {
		{"keygen", cmd_keygen}, {"store", cmd_store},
		{"header", cmd_header}, {"token", cmd_token},
		{"status", cmd_status}, {"flush", cmd_flush},
		{"check", cmd_check}, {"reject", cmd_reject},
		{"curl", cmd_curl},
	};
	int c;

	/* "+": options after the command belong to the command. */
	while ((c = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (setenv("UCAASAUTH_CONFIG", optarg, 1) < 0)
				return 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("ucaas-auth %s\n", UCAASAUTH_VERSION);
			return 0;
		default:
			return usage();
		}
	}
	if (optind >= argc)
		return usage();
	if (sodium_init() < 0) {
		fprintf(stderr, "ucaas-auth: libsodium failed to start\n");
		return 1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(argv[optind], commands[i].name) == 0) {
			/* Each command parses from its own name on. */
			argc -= optind;
			argv += optind;
			optind = 1;
			return commands[i].run(argc, argv);
		}
	fprintf(stderr, "ucaas-auth: unknown command '%s'\n", argv[optind]);
	return usage();
}

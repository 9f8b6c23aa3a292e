/* ucaas-auth: the command-line credential helper. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Reads a line from the terminal, echo off for secrets. */
static int prompt(FILE *tty, const char *label, bool secret, char *out,
                  size_t size)
{
	struct termios old, raw;
	bool restore = false;
	size_t n;

	fprintf(tty, "%s: ", label);
	fflush(tty);
	if (secret && tcgetattr(fileno(tty), &old) == 0) {
		raw = old;
		raw.c_lflag &= ~(tcflag_t)ECHO;
		restore = tcsetattr(fileno(tty), TCSAFLUSH, &raw) == 0;
	}
	if (!fgets(out, (int)size, tty))
		out[0] = 0;
	if (restore) {
		tcsetattr(fileno(tty), TCSAFLUSH, &old);
		fputc('\n', tty);
	}
	n = strcspn(out, "\n");
	out[n] = 0;
	return n > 0 ? 0 : -1;
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
		FILE *tty = fopen("/dev/tty", "r+");
		if (!tty) {
			r = fail_errno(UCAASAUTH_E_CREDENTIALS, errno,
			               "terminal", "/dev/tty");
			goto out;
		}
		r = 0;
		if ((profile_needs(p) & NEEDS_APP_KEY) &&
		    prompt(tty, "App Key", true, secrets->app_key,
		           sizeof(secrets->app_key)) < 0)
			r = -1;
		if ((profile_needs(p) & NEEDS_LOGIN) && r == 0 &&
		    (prompt(tty, "Email", false, secrets->email,
		            sizeof(secrets->email)) < 0 ||
		     prompt(tty, "Password", true, secrets->password,
		            sizeof(secrets->password)) < 0))
			r = -1;
		fclose(tty);
		if (r < 0)
			r = fail(UCAASAUTH_E_CREDENTIALS,
			         "an empty answer: nothing stored");
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
	cache_refresh_state(ua->view, &st);
	{
		char tmp[HEADER_MAX + 1];
		if (!segment_read(ua->view, tmp, sizeof(tmp), &snap))
			snap.generation = 0;
		sodium_memzero(tmp, sizeof(tmp));
	}
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
	cache_refresh_state(view, &st);
	if (!segment_read(view, tmp, sizeof(tmp), &snap))
		snap.len = 0, snap.generation = 0;
	sodium_memzero(tmp, sizeof(tmp));
	printf("generation:   %llu\n", (unsigned long long)snap.generation);
	if (snap.len > 0 && ua->profile->provider == PROVIDER_BASIC) {
		printf("header:       Basic, held by the daemon\n");
		goto out;
	}
	if (snap.len > 0 && now < snap.expires_ms) {
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
		r = cache_lock(ua->seg, now_ms() + ua->wait_ms);
		if (r == 0) {
			cache_drop(ua->seg);
			cache_unlock(ua->seg);
		}
	} else if (!ua->basic) {
		/* The daemon's token: rejected, so the daemon replaces it. */
		struct snapshot snap = {0};
		char tmp[HEADER_MAX + 1];
		if (!atomic_load(&ua->view))
			r = fail(UCAASAUTH_E_UNAVAILABLE,
			         "ucaas-authd (socket %s): not running",
			         ua->profile->socket);
		else if (segment_read(ua->view, tmp, sizeof(tmp), &snap) &&
		         snap.len)
			r = daemon_reject(ua, snap.generation);
		sodium_memzero(tmp, sizeof(tmp));
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
		{"check", cmd_check},
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

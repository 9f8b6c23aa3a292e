/* ucaas-auth header, token, status, flush and check: what a profile gives
 * and what the cache holds (never a secret but the header asked for). */
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

int cmd_header(int argc, char **argv)
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

int cmd_token(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{0},
	};
	struct ucaasauth *ua;
	struct refresh_state st;
	struct handle_info info = {.state = &st};
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
	handle_info(ua, &info);
	if (strncmp(buf, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) != 0) {
		fprintf(stderr,
		        "ucaas-auth: profile '%s' %s: it has a header "
		        "(ucaas-auth header) but no token\n",
		        info.profile->name,
		        info.basic ? "uses the basic provider"
		                   : "was last answered with another scheme");
		r = 1;
		goto out;
	}
	token = buf + strlen(TOKEN_PREFIX);
	if (!json) {
		printf("%s\n", token);
		goto out;
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
	       (unsigned long long)info.generation);
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

int cmd_status(int argc, char **argv)
{
	struct ucaasauth *ua;
	struct refresh_state st;
	struct handle_info info = {.state = &st};
	const struct profile *p;
	char when[32], dir[PATH_MAX];
	int64_t now;
	int r;

	if (no_options(argc, argv) < 0)
		return usage();
	r = open_handle(argc, argv, &ua);
	if (r)
		return r;
	handle_info(ua, &info);
	p = info.profile;
	now = now_ms();
	printf("profile:      %s\n", p->name);
	printf("config:       %s\n", info.config_path);
	printf("provider:     %s\n", provider_name(p->provider));
	print_stack(p);
	printf("api_base:     %s\n", p->api_base);
	if (info.basic) {
		printf("header:       static Basic header, nothing cached\n");
		goto out;
	}
	if (p->cache == CACHE_SHARED && cache_dir(dir, sizeof(dir)) == 0)
		printf("cache:        shared (%s)\n", dir);
	else if (p->cache == CACHE_PROCESS)
		printf("cache:        process\n");
	else
		printf("cache:        daemon (%s)\n", p->socket);
	if (!info.attached) {
		printf("daemon:       not running\n");
		goto out;
	}
	if (p->cache == CACHE_DAEMON) {
		printf("daemon:       pid %d, heartbeat %lld.%lld s ago\n",
		       (int)info.daemon_pid,
		       (long long)info.heartbeat_age_ms / 1000,
		       (long long)(info.heartbeat_age_ms % 1000) / 100);
		if (p->provider == PROVIDER_LOGIN &&
		    info.next_refresh_in_ms > 0)
			printf("next refresh: in %lld s\n",
			       (long long)(info.next_refresh_in_ms + 999) /
			               1000);
	}
	printf("generation:   %llu\n", (unsigned long long)info.generation);
	if (info.holds_header && p->provider == PROVIDER_BASIC) {
		printf("header:       Basic, held by the daemon\n");
		goto out;
	}
	if (info.valid) {
		rfc3339(st.expires_real, when, sizeof(when));
		printf("token:        valid, expires in %lld s (%s)\n",
		       (long long)info.expires_in_ms / 1000, when);
	} else {
		printf("token:        none\n");
	}
	printf("logins:       %llu\n", (unsigned long long)st.logins);
	if (st.answered_by[0] && p->provider == PROVIDER_STACK)
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
	if (info.lease_holder)
		printf("refreshing:   pid %d holds the refresh lease\n",
		       (int)info.lease_holder);
out:
	ucaasauth_close(ua);
	return 0;
}

int cmd_flush(int argc, char **argv)
{
	struct ucaasauth *ua;
	int r;

	if (no_options(argc, argv) < 0)
		return usage();
	r = open_handle(argc, argv, &ua);
	if (r)
		return r;
	r = handle_flush(ua);
	if (r == 0)
		fprintf(stderr, "flushed the cached token of profile '%s'\n",
		        handle_profile(ua)->name);
	ucaasauth_close(ua);
	return r < 0 ? failed(r) : 0;
}

/*
 * Everything ucaasauth_open() checks, without a network call: the
 * configuration, the key and credential files and their permissions, the
 * CA file, the modules and exec commands of the stack, the cache
 * directory (or the daemon's socket). One line per finding.
 */
int cmd_check(int argc, char **argv)
{
	struct config *config = NULL;
	const struct profile *p;
	struct ucaasauth *ua;
	struct refresh_state st;
	struct handle_info info = {.state = &st};
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
	handle_info(ua, &info);
	if (info.profile->cache == CACHE_DAEMON)
		printf("daemon: %s (socket %s); credentials, modules and "
		       "commands are the daemon's, not checked here\n",
		       info.attached ? "running" : "not running",
		       info.profile->socket);
	else
		printf("credentials, modules and commands: ok\n");
	ucaasauth_close(ua);
	return 0;
}

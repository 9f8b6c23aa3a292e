/* ucaasauth_open() and ucaasauth_close(). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <sodium.h>

#include "cache.h"
#include "stack.h"

/* Who shares a token: the same user, server, application and account,
 * and but for a lone login provider, the same providers in the same
 * order with the same arguments. */
static int identity(const struct ucaasauth *ua, char *buf, size_t size)
{
	const struct profile *p = ua->profile;
	int n = snprintf(buf, size, "v1\n%u\n%s\n%s\n%s", (unsigned)geteuid(),
	                 p->api_base, p->app_id, ua->secrets->email);

	/* A one-login profile keeps the identity every login profile had:
	 * processes of other versions still share its token. */
	if (p->provider != PROVIDER_LOGIN && n >= 0 && (size_t)n < size)
		n += snprintf(buf + n, size - n, "\n%s\n%s", p->module_dir,
		              p->exec_env ? p->exec_env : "");
	for (size_t i = 0; p->provider != PROVIDER_LOGIN && i < p->n_stack &&
	                   n >= 0 && (size_t)n < size;
	     i++) {
		const struct stack_entry *e = &p->stack[i];
		n += snprintf(buf + n, size - n, "\n%s %s", control_name(e->control),
		              e->name);
		for (int k = 0; k < e->argc && n >= 0 && (size_t)n < size; k++)
			n += snprintf(buf + n, size - n, " %s", e->argv[k]);
	}
	if (n < 0 || (size_t)n >= size)
		return fail(UCAASAUTH_E_CONFIG, "profile '%s': identity too long",
		            p->name);
	return 0;
}

/* Reads the secrets the stack's built-in providers need, then opens the
 * stack; a profile of one basic provider gets its static header instead. */
static int load_secrets(struct ucaasauth *ua)
{
	const struct profile *p = ua->profile;
	unsigned needs = profile_needs(p);
	const char *missing;
	int r;

	/* exec and modules bring their own: nothing to decrypt for them. */
	r = needs ? cred_load(p, &ua->secrets) : 0;
	if (r < 0)
		return r;
	if (!needs && !(ua->secrets = secrets_new()))
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	missing = secrets_missing(ua->secrets, needs);
	if (missing)
		return fail(UCAASAUTH_E_CREDENTIALS,
		            "credential file %s: no %s, which the providers of "
		            "profile '%s' need (ucaas-auth store %s)",
		            p->credentials, missing, p->name, p->name);
	/* Found now rather than at the first login, where it would look like
	 * an unreachable server and start a backoff. */
	if ((needs & NEEDS_LOGIN) && p->ca_file && access(p->ca_file, R_OK) < 0)
		return fail_errno(UCAASAUTH_E_CONFIG, errno, "ca_file",
		                  p->ca_file);
	if (p->provider == PROVIDER_BASIC)
		return basic_header(p->app_id, ua->secrets->app_key, &ua->basic,
		                    &ua->basic_len);
	return stack_open(ua);
}

static int open_profile(struct ucaasauth *ua, const char *name, bool serve)
{
	/* Values are capped at 1 KiB, stacks at 8 lines. */
	char path[PATH_MAX], id[16384];
	int r;

	r = config_path(path, sizeof(path));
	if (r < 0)
		return r;
	r = config_load(path, &ua->config);
	if (r < 0)
		return r;
	r = config_find(ua->config, name, &ua->profile);
	if (r < 0)
		return r;
	ua->wait_ms = ua->profile->wait_timeout * 1000LL;
	if (ua->profile->cache == CACHE_DAEMON && !serve) {
		/* A daemon client reads no credential: it gets a read-only
		 * view of the daemon's segment, now or, if the daemon is not
		 * up yet (services start in any order), at the first call. */
		r = daemon_attach(ua);
		return r == UCAASAUTH_E_UNAVAILABLE ? 0 : r;
	}
	if (serve && ua->profile->cache != CACHE_DAEMON)
		return fail(UCAASAUTH_E_CONFIG,
		            "%s:%d: profile '%s' is not for the daemon (cache = "
		            "daemon)",
		            path, ua->profile->line, ua->profile->name);
	r = load_secrets(ua);
	if (r < 0)
		return r;
	if (serve) {
		r = cache_new_sealed(&ua->seg, &ua->memfd);
		atomic_store(&ua->view, ua->seg);
		return r;
	}
	if (ua->basic)
		return 0;
	r = identity(ua, id, sizeof(id));
	if (r < 0)
		return r;
	r = cache_open(ua->profile->cache, id, &ua->seg);
	sodium_memzero(id, sizeof(id));
	atomic_store(&ua->view, ua->seg);
	return r;
}

int handle_open(struct ucaasauth **ret, const char *profile, bool serve)
{
	struct ucaasauth *ua;
	int r;

	if (sodium_init() < 0)
		return fail(UCAASAUTH_E_NOMEM, "libsodium failed to start");
	ua = calloc(1, sizeof(*ua));
	if (!ua)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	ua->memfd = -1;
	pthread_mutex_init(&ua->lock, NULL);
	r = open_profile(ua, profile, serve);
	if (r < 0) {
		ucaasauth_close(ua);
		return r;
	}
	*ret = ua;
	return UCAASAUTH_OK;
}

EXPORT int ucaasauth_open(struct ucaasauth **ret, const char *profile,
                          unsigned flags)
{
	if (!ret)
		return fail(UCAASAUTH_E_INVALID, "ucaasauth_open: ret is NULL");
	if (flags != 0)
		return fail(UCAASAUTH_E_INVALID,
		            "ucaasauth_open: flags must be 0, not %#x", flags);
	if (profile && !profile_name_valid(profile))
		return fail(UCAASAUTH_E_INVALID,
		            "ucaasauth_open: a profile name is 1 to %d letters, "
		            "digits, '-' or '_'",
		            PROFILE_NAME_MAX);
	return handle_open(ret, profile, false);
}

EXPORT void ucaasauth_close(struct ucaasauth *ua)
{
	if (!ua)
		return;
	stack_close(ua);
	login_free(&ua->login);
	/* The view is the writable segment, or a daemon's read-only one. */
	cache_close(atomic_load(&ua->view));
	for (size_t i = 0; i < ua->n_retired; i++)
		cache_close(ua->retired[i]);
	free(ua->retired);
	if (ua->memfd >= 0)
		close(ua->memfd);
	pthread_mutex_destroy(&ua->lock);
	if (ua->basic)
		sodium_free(ua->basic);
	secrets_free(ua->secrets);
	config_free(ua->config);
	free(ua);
}

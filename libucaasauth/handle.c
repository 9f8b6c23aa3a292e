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
		n += snprintf(buf + n, size - n, "\n%s %s",
		              control_name(e->control), e->name);
		for (int k = 0; k < e->argc && n >= 0 && (size_t)n < size; k++)
			n += snprintf(buf + n, size - n, " %s", e->argv[k]);
	}
	if (n < 0 || (size_t)n >= size)
		return fail(UCAASAUTH_E_CONFIG,
		            "profile '%s': identity too long", p->name);
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
		return fail(
			UCAASAUTH_E_CONFIG,
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
	atomic_store(&ua->pid, getpid());
	r = cache_open(ua->profile->cache, id, &ua->seg);
	atomic_store(&ua->view, ua->seg);
	if (r == 0 && ua->profile->cache == CACHE_SHARED &&
	    !(ua->identity = sodium_malloc(strlen(id) + 1)))
		r = fail(UCAASAUTH_E_NOMEM, "out of memory");
	if (ua->identity)
		memcpy(ua->identity, id, strlen(id) + 1);
	sodium_memzero(id, sizeof(id));
	return r;
}

/* ---- ucaas-authd's side of a handle opened with `serve` ---------- */

const struct profile *handle_profile(const struct ucaasauth *ua)
{
	return ua->profile;
}

void handle_info(struct ucaasauth *ua, struct handle_info *ret)
{
	const struct segment *view = atomic_load(&ua->view);
	struct refresh_state *st = ret->state;
	struct snapshot snap;
	int64_t now = now_ms();

	memset(ret, 0, sizeof(*ret));
	ret->state = st;
	ret->profile = ua->profile;
	ret->config_path = ua->config->path;
	ret->basic = ua->basic != NULL;
	ret->attached = view != NULL;
	if (!view || ua->basic)
		return;
	cache_refresh_state(view, now, st);
	ret->valid = token_view(view, NULL, 0, &snap);
	ret->generation = snap.generation;
	ret->holds_header = snap.len > 0;
	ret->expires_in_ms = ret->valid ? snap.expires_ms - now : 0;
	if (ua->seg)
		ret->lease_holder = cache_lease_holder(ua->seg, now);
	if (ua->profile->cache == CACHE_DAEMON) {
		ret->daemon_pid = atomic_load(&view->daemon_pid);
		ret->heartbeat_age_ms = now - atomic_load(&view->heartbeat_ms);
		ret->next_refresh_in_ms =
			atomic_load(&view->next_refresh_ms) - now;
	}
}

int handle_flush(struct ucaasauth *ua)
{
	const struct segment *view = atomic_load(&ua->view);
	struct snapshot snap;

	if (ua->basic || ua->profile->cache == CACHE_PROCESS)
		return 0;
	/* Rebuilt, not locked: a broken lock or page cannot stop it. */
	if (ua->seg)
		return handle_move(ua, ua->seg);
	if (!view)
		return fail(UCAASAUTH_E_UNAVAILABLE,
		            "ucaas-authd (socket %s): not running",
		            ua->profile->socket);
	/* The daemon's token: rejected, so the daemon replaces it. */
	if (segment_read(view, NULL, 0, &snap) && snap.len)
		return daemon_reject(ua, snap.generation);
	return 0;
}

struct segment *handle_segment(const struct ucaasauth *ua, int *ret_fd)
{
	if (ret_fd)
		*ret_fd = ua->memfd;
	return ua->seg;
}

int handle_publish_basic(struct ucaasauth *ua)
{
	int64_t now = now_ms();
	/* Never expires: published for the longest life a segment holds,
	 * and again by the daemon before that ends. */
	struct token_times t = {now, now + LIFE_MAX_MS, now + LIFE_MAX_MS,
	                        now + LIFE_MAX_MS, 0};
	int r;

	if (!ua->basic || !ua->seg)
		return 1;
	r = cache_lock(ua->seg, now + ua->wait_ms);
	if (r != 0)
		return r;
	cache_publish(ua->seg, ua->basic, ua->basic_len, &t, "basic");
	cache_unlock(ua->seg);
	return 0;
}

/* The token of a segment being withdrawn, published in its successor:
 * the clients still allowed find it there without a login. */
static void carry_token(const struct segment *old, struct segment *seg)
{
	char header[HEADER_MAX + 1];
	struct refresh_state st;
	struct snapshot snap;

	if (token_view(old, header, sizeof(header), &snap) &&
	    cache_lock(seg, -1) == 0) {
		struct token_times t = {snap.issued_ms, snap.fresh_ms,
		                        snap.renew_ms, snap.expires_ms, 0};

		cache_refresh_state(old, now_ms(), &st);
		t.expires_real = st.expires_real;
		cache_publish(seg, header, snap.len, &t,
		              st.answered_by[0] ? st.answered_by : "reload");
		cache_unlock(seg);
	}
	sodium_memzero(header, sizeof(header));
}

/* Wiped, then retired: its clients hold no token and ask again. The lock
 * is the daemon's alone (clients map it read-only), so it is free here;
 * were it not, the wipe would still happen, without it. */
static void withdraw(struct segment *seg)
{
	bool locked = cache_lock(seg, -1) == 0;

	cache_retire_sealed(seg);
	if (locked)
		cache_unlock(seg);
}

int handle_swap(struct ucaasauth *ua, struct ucaasauth *fresh, bool move)
{
	/* The token belongs to the account, not to its password: a new
	 * password is used at the next login, the token stays. */
	bool same =
		strcmp(ua->profile->api_base, fresh->profile->api_base) == 0 &&
		strcmp(ua->profile->app_id, fresh->profile->app_id) == 0 &&
		strcmp(ua->secrets->email, fresh->secrets->email) == 0;
	struct config *config = ua->config;
	struct secrets *secrets = ua->secrets;
	struct provider *providers = ua->providers;
	size_t n_providers = ua->n_providers;
	char *basic = ua->basic;
	int r = 0;

	assert(ua->memfd >= 0 && fresh->memfd >= 0);
	if (move || !same) {
		struct segment *old = ua->seg;
		int old_fd = ua->memfd;

		if (same)
			carry_token(old, fresh->seg);
		atomic_store(&fresh->seg->daemon_pid,
		             atomic_load(&old->daemon_pid));
		atomic_store(&fresh->seg->heartbeat_ms,
		             atomic_load(&old->heartbeat_ms));
		withdraw(old);
		ua->seg = fresh->seg;
		ua->memfd = fresh->memfd;
		atomic_store(&ua->view, ua->seg);
		fresh->seg = old;
		fresh->memfd = old_fd;
		atomic_store(&fresh->view, old);
		r = same ? SWAP_MOVED : SWAP_MOVED | SWAP_DROPPED;
	}
	/* The rest trades places: fresh takes the old settings, secrets and
	 * stack away to be freed (the stack's arguments point into its own
	 * configuration). */
	ua->config = fresh->config;
	ua->profile = fresh->profile;
	ua->secrets = fresh->secrets;
	ua->basic = fresh->basic;
	ua->basic_len = fresh->basic_len;
	ua->wait_ms = fresh->wait_ms;
	ua->providers = fresh->providers;
	ua->n_providers = fresh->n_providers;
	fresh->config = config;
	fresh->secrets = secrets;
	fresh->basic = basic;
	fresh->providers = providers;
	fresh->n_providers = n_providers;
	for (size_t i = 0; i < ua->n_providers; i++)
		ua->providers[i].ua = ua;
	for (size_t i = 0; i < fresh->n_providers; i++)
		fresh->providers[i].ua = fresh;
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
	pthread_mutex_init(&ua->fork_lock, NULL);
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
		return fail(
			UCAASAUTH_E_INVALID,
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
	pthread_mutex_destroy(&ua->fork_lock);
	if (ua->identity)
		sodium_free(ua->identity);
	if (ua->basic)
		sodium_free(ua->basic);
	secrets_free(ua->secrets);
	config_free(ua->config);
	free(ua);
}

/*
 * The provider stack: a profile's providers, in order, each with a pam.d
 * control word, run behind the interface of provider.h. The built-in
 * providers live beside what they wrap (provider-basic.c, login.c,
 * provider-exec.c), modules are loaded by provider-module.c.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cache.h"
#include "stack.h"

#define LIFETIME_MAX 86400L

/* What a module said about the failure it is returning. */
static _Thread_local char module_error[256];

static void module_say(const char *message)
{
	snprintf(module_error, sizeof(module_error), "%s",
	         message ? message : "");
	for (char *c = module_error; *c; c++)
		if ((unsigned char)*c < ' ' || *c == 0x7f)
			*c = '?';
}

/* A module speaks for its source: denied, unreachable, malformed, out of
 * memory, misconfigured. Anything else it returns (a status that is the
 * caller's to give, a positive or unknown number) becomes `other`. */
static int module_status(int r, int other)
{
	switch (r) {
	case UCAASAUTH_E_CONFIG:
	case UCAASAUTH_E_CREDENTIALS:
	case UCAASAUTH_E_DENIED:
	case UCAASAUTH_E_UNAVAILABLE:
	case UCAASAUTH_E_PROTOCOL:
	case UCAASAUTH_E_NOMEM:
		return r;
	}
	return other;
}

int stack_open(struct ucaasauth *ua)
{
	const struct profile *prof = ua->profile;
	int r;

	ua->providers = calloc(prof->n_stack, sizeof(*ua->providers));
	if (!ua->providers)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	for (size_t i = 0; i < prof->n_stack; i++) {
		struct provider *p = &ua->providers[i];
		const struct stack_entry *e = &prof->stack[i];

		ua->n_providers = i + 1;
		p->ua = ua;
		p->entry = e;
		p->args = (struct ucaasauth_provider_args){
			.size = sizeof(p->args),
			.profile = prof->name,
			.api_base = prof->api_base,
			.app_id = prof->app_id,
			.argc = e->argc,
			.argv = (const char *const *)e->argv,
			.timeout = prof->timeout,
			.error = module_say,
		};
		switch (e->kind) {
		case PROVIDER_BASIC:
			p->ops = &basic_provider;
			break;
		case PROVIDER_LOGIN:
			p->ops = &login_provider;
			break;
		case PROVIDER_EXEC:
			p->ops = &exec_provider;
			break;
		default:
			r = module_load(p, prof->module_dir);
			if (r < 0)
				return r;
		}
		module_error[0] = 0;
		r = p->ops->open(&p->state, &p->args);
		if (r != 0) {
			p->ops = NULL; /* nothing to close */
			if (e->kind != PROVIDER_MODULE)
				return r; /* the built-ins said it themselves */
			if (module_status(r, 0) == 0)
				return fail(UCAASAUTH_E_CONFIG,
				            "provider '%s' returned status %d",
				            e->name, r);
			return fail(r, "provider '%s': %s", e->name,
			            module_error[0] ? module_error
			                            : "could not open (no "
			                              "reason given)");
		}
	}
	return 0;
}

void stack_close(struct ucaasauth *ua)
{
	for (size_t i = 0; i < ua->n_providers; i++) {
		struct provider *p = &ua->providers[i];
		if (p->ops)
			p->ops->close(p->state);
		if (p->dl)
			dlclose(p->dl);
	}
	free(ua->providers);
	ua->providers = NULL;
	ua->n_providers = 0;
}

/* Whatever a provider hands over must be one header line: nothing that
 * could end it and inject another. */
static bool header_safe(const char *h, size_t len)
{
	static const char prefix[] = "Authorization: ";

	if (len <= strlen(prefix) || len > HEADER_MAX ||
	    strncmp(h, prefix, strlen(prefix)) != 0 || strlen(h) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)h[i] < 0x20 || (unsigned char)h[i] > 0x7e)
			return false;
	return true;
}

static int fetch_one(struct provider *p, char *buf, size_t size,
                     size_t *ret_len, long *ret_lifetime)
{
	long lifetime = 0;
	size_t len = 0;
	int r;

	module_error[0] = 0;
	r = p->ops->fetch(p->state, buf, size, &len, &lifetime);
	if (r != 0 && p->entry->kind != PROVIDER_MODULE)
		return r; /* the built-ins said it themselves */
	if (r != 0 && module_status(r, 0) == 0)
		return fail(UCAASAUTH_E_PROTOCOL,
		            "provider '%s' returned status %d", p->entry->name,
		            r);
	if (r != 0)
		return fail(r, "provider '%s': %s", p->entry->name,
		            module_error[0] ? module_error
		                            : ucaasauth_strerror(r));
	if (len >= size || !header_safe(buf, len))
		return fail(UCAASAUTH_E_PROTOCOL,
		            "provider '%s' gave no single safe header line "
		            "(\"Authorization: ...\", visible ASCII, no CR or "
		            "LF, at most %zu bytes)",
		            p->entry->name, (size_t)HEADER_MAX);
	if (lifetime < 0)
		return fail(UCAASAUTH_E_PROTOCOL,
		            "provider '%s' gave a lifetime of %ld s",
		            p->entry->name, lifetime);
	/* Asked again within a day at the latest, whatever it claims. */
	if (lifetime > LIFETIME_MAX)
		lifetime = LIFETIME_MAX;
	*ret_len = len;
	*ret_lifetime = lifetime;
	return 0;
}

/*
 * The stack, as ucaasauth.conf(5) defines it:
 *   sufficient  success: its header, at once (unless a required one
 *               failed before); failure: ignored.
 *   requisite   failure: the stack fails at once with it.
 *   required    failure: the stack will fail with it, the rest still run.
 *   optional    failure: ignored.
 * The header is that of the first provider that succeeded; a stack where
 * none did fails with the status of the last failure.
 */
int stack_fetch(struct ucaasauth *ua, char *buf, size_t size, size_t *ret_len,
                long *ret_lifetime, int *ret_who)
{
	char tmp[HEADER_MAX + 1], required_error[1024] = "",
				  last_error[1024] = "";
	int required = 0, last = 0, who = -1, r;
	long lifetime = 0, l = 0;
	size_t len = 0, n = 0;

	for (size_t i = 0; i < ua->n_providers; i++) {
		struct provider *p = &ua->providers[i];
		enum control c = p->entry->control;

		r = fetch_one(p, tmp, sizeof(tmp), &n, &l);
		if (r < 0) {
			last = r;
			snprintf(last_error, sizeof(last_error), "%s",
			         ucaasauth_last_error());
			if (c == CONTROL_REQUISITE)
				goto out;
			if ((c == CONTROL_REQUIRED || c == CONTROL_NONE) &&
			    !required) {
				required = r;
				memcpy(required_error, last_error,
				       sizeof(last_error));
			}
			continue;
		}
		if (who < 0) {
			memcpy(buf, tmp, n + 1);
			len = n;
			lifetime = l;
			who = (int)i;
		}
		if (c == CONTROL_SUFFICIENT && !required)
			break;
	}
	if (required) {
		r = fail(required, "%s", required_error);
	} else if (who >= 0) {
		*ret_len = len;
		*ret_lifetime = lifetime;
		*ret_who = who;
		r = 0;
	} else {
		r = fail(last ? last : UCAASAUTH_E_CONFIG, "%s",
		         last ? last_error : "no provider in the stack");
	}
out:
	sodium_memzero(tmp, sizeof(tmp));
	return r;
}

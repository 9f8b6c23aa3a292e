/*
 * libucaasauth provider modules: the interface a loadable provider
 * implements. Installed as <ucaasauth/provider.h>.
 *
 * A module is a shared object in the profile's module_dir, named NAME.so
 * for a configuration line "provider = CONTROL NAME ARGS...". It defines
 * one symbol, UCAASAUTH_PROVIDER_SYMBOL, a const struct ucaasauth_provider
 * whose abi_version is UCAASAUTH_PROVIDER_ABI. The library loads it with
 * dlopen(RTLD_NOW | RTLD_LOCAL) after checking that neither the file nor
 * its directory is writable by group or others and that both belong to
 * root or the caller, and refuses it if the symbol is missing or the
 * version differs. The built-in providers (basic, login, exec) implement
 * this same interface.
 *
 * Calls into a module are serialised: for one profile, at most one fetch
 * runs on the host at a time (the cache lock), and the header it returns
 * is cached and shared like a login token. A module must not print, must
 * not keep secrets outside memory it wipes, and must return within the
 * args' timeout.
 *
 * ABI promise: version 1 of this interface is frozen; a change makes
 * version 2, and both sides check the number.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef UCAASAUTH_PROVIDER_H
#define UCAASAUTH_PROVIDER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UCAASAUTH_PROVIDER_ABI 1
#define UCAASAUTH_PROVIDER_SYMBOL "ucaasauth_provider_v1"

/* What the library tells a provider when it opens it. Valid until close. */
struct ucaasauth_provider_args {
	/* sizeof(struct ucaasauth_provider_args): fields are only added at
	 * the end, a module reads those within size. */
	size_t size;
	const char *profile;  /* the profile's name */
	const char *api_base; /* e.g. "https://api.enablex.io/ucaas/v1" */
	const char *app_id;
	int argc;                /* the words after the provider's name */
	const char *const *argv; /* on its configuration line; argv[argc]
	                             is NULL */
	int timeout;             /* seconds a fetch may take at most */
	/* Sets the detail text ucaasauth_last_error() will show for the
	 * status the module is about to return (one line, no secret). */
	void (*error)(const char *message);
};

struct ucaasauth_provider {
	unsigned abi_version; /* UCAASAUTH_PROVIDER_ABI */
	const char *name;

	/*
	 * Prepares the provider for a profile, without network I/O; keeps
	 * what it needs in *ret_state. Returns 0 or a negative UCAASAUTH_E_*
	 * status (UCAASAUTH_E_CONFIG for bad arguments).
	 */
	int (*open)(void **ret_state,
	            const struct ucaasauth_provider_args *args);

	/*
	 * Writes a whole header line ("Authorization: SCHEME VALUE": visible
	 * ASCII and spaces, no CR or LF), NUL-terminated, into buf[0..size),
	 * its length into *ret_len, and the seconds it stays valid into
	 * *ret_lifetime (0: unknown; the profile's token_ttl is used).
	 * Returns 0 or a negative UCAASAUTH_E_* status: UCAASAUTH_E_DENIED when
	 * the credentials were refused, UCAASAUTH_E_UNAVAILABLE when the
	 * source could not be reached. size is at least 2070.
	 */
	int (*fetch)(void *state, char *buf, size_t size, size_t *ret_len,
	             long *ret_lifetime);

	/* Frees and wipes the state. Accepts NULL. */
	void (*close)(void *state);
};

#ifdef __cplusplus
}
#endif

#endif

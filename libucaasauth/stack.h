/* The provider stack: see provider.c, provider-exec.c and provider.h. */
#ifndef UCAASAUTH_STACK_H
#define UCAASAUTH_STACK_H

#include "internal.h"
#include "provider.h"

/* One opened line of a profile's stack. */
struct provider {
	struct ucaasauth_provider_args args; /* what the provider was told */
	struct ucaasauth *ua;
	const struct stack_entry *entry;
	const struct ucaasauth_provider *ops; /* NULL: nothing to close */
	void *state;
	void *dl; /* a module's dlopen() handle */
};

extern const struct ucaasauth_provider exec_provider;

int stack_open(struct ucaasauth *ua);
void stack_close(struct ucaasauth *ua);
/* Runs the stack; the header of the provider that answered goes to buf
 * (at least HEADER_MAX + 1 bytes), its index to *ret_who. */
int stack_fetch(struct ucaasauth *ua, char *buf, size_t size,
                size_t *ret_len, long *ret_lifetime, int *ret_who);

/* The handle behind a built-in provider's args. */
struct ucaasauth *provider_handle(const struct ucaasauth_provider_args *args);
/* A module or command that only root or we could have written. */
int provider_check_file(const char *path, const char *what);

#endif

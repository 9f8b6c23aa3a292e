/* The provider stack (stack.c) and its providers: the built-in ones in
 * provider-basic.c, login.c and provider-exec.c, modules loaded by
 * provider-module.c; their interface is provider.h. */
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

extern const struct ucaasauth_provider basic_provider;
extern const struct ucaasauth_provider login_provider;
extern const struct ucaasauth_provider exec_provider;

/* provider-exec.c: judges an exec command's output (JSON): one header
 * line into buf and its lifetime (0: none given). */
int exec_parse(const char *out, size_t len, const char *cmd, char *buf,
               size_t size, size_t *ret_len, long *ret_lifetime);

/* provider-module.c: loads module_dir/NAME.so for p's entry into p->dl
 * and p->ops. */
int module_load(struct provider *p, const char *module_dir);

int stack_open(struct ucaasauth *ua);
void stack_close(struct ucaasauth *ua);
/* Runs the stack; the header of the provider that answered goes to buf
 * (at least HEADER_MAX + 1 bytes), its index to *ret_who. */
int stack_fetch(struct ucaasauth *ua, char *buf, size_t size, size_t *ret_len,
                long *ret_lifetime, int *ret_who);

/* The opened provider, and its handle, behind a built-in provider's
 * args. */
static inline struct provider *
provider_of(const struct ucaasauth_provider_args *args)
{
	return (struct provider *)((char *)args -
	                           offsetof(struct provider, args));
}

static inline struct ucaasauth *
provider_handle(const struct ucaasauth_provider_args *args)
{
	return provider_of(args)->ua;
}

#endif

/*
 * Providers from shared objects: `provider = NAME` loads
 * module_dir/NAME.so, found by its versioned entry symbol and refused
 * when its interface version is not this library's (provider.h).
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>

#include "stack.h"

int module_load(struct provider *p, const char *module_dir)
{
	char path[PATH_MAX];
	const struct ucaasauth_provider *ops;
	int r;

	if (snprintf(path, sizeof(path), "%s/%s.so", module_dir,
	             p->entry->name) >= (int)sizeof(path))
		return fail(UCAASAUTH_E_CONFIG, "module %s: path too long",
		            p->entry->name);
	r = file_trusted(path, "module");
	if (r < 0)
		return r;
	/* RTLD_LOCAL: its symbols serve it alone. */
	p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!p->dl)
		return fail(UCAASAUTH_E_CONFIG, "module %s: %s", path,
		            dlerror());
	ops = dlsym(p->dl, UCAASAUTH_PROVIDER_SYMBOL);
	if (!ops)
		return fail(UCAASAUTH_E_CONFIG,
		            "module %s: no symbol " UCAASAUTH_PROVIDER_SYMBOL
		            ": not a libucaasauth provider",
		            path);
	if (ops->abi_version != UCAASAUTH_PROVIDER_ABI)
		return fail(UCAASAUTH_E_CONFIG,
		            "module %s: provider interface version %u, this "
		            "library speaks version %d",
		            path, ops->abi_version, UCAASAUTH_PROVIDER_ABI);
	if (!ops->open || !ops->fetch || !ops->close)
		return fail(UCAASAUTH_E_CONFIG,
		            "module %s: a callback is missing", path);
	p->ops = ops;
	return 0;
}

/*
 * Providers from shared objects: `provider = NAME` loads
 * module_dir/NAME.so, found by its versioned entry symbol and refused
 * when its interface version is not this library's (provider.h).
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stack.h"

/*
 * A name by which dlopen() opens the descriptor fd, and that no dlopen()
 * in this process was given before. glibc looks for an object already
 * loaded under the name it is given before it opens anything, and keeps
 * every name an object was loaded by: /proc/self/fd/N alone would hand
 * back the object once loaded from an earlier descriptor N (closed since,
 * ours or another library's), not the file checked. So the name carries a
 * count that only grows, one path component per bit, which the kernel
 * reads away: "./" for a 1, an empty component for a 0
 * (/proc/self/fd/././/5 for the count 6 and descriptor 5).
 */
static int proc_name(int fd, const char *path, char *buf, size_t size)
{
	static _Atomic unsigned long count;
	unsigned long n = atomic_fetch_add(&count, 1) + 1;
	struct stat a, b;
	size_t len = (size_t)snprintf(buf, size, "/proc/self/fd/");
	int bit = (int)(sizeof(n) * CHAR_BIT) - 1;

	while (!(n >> bit & 1))
		bit--;
	for (; bit >= 0 && len + 3 < size; bit--)
		len += (size_t)snprintf(buf + len, size - len, "%s",
		                        n >> bit & 1 ? "./" : "/");
	if (bit >= 0 ||
	    (size_t)snprintf(buf + len, size - len, "%d", fd) >= size - len)
		return fail(UCAASAUTH_E_CONFIG, "module %s: path too long",
		            path);
	/* The name must lead to the file checked: without /proc there is
	 * no way to load it but by its path again, which may lead elsewhere
	 * by now, so none. */
	if (fstat(fd, &a) < 0 || stat(buf, &b) < 0 || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino)
		return fail(UCAASAUTH_E_CONFIG,
		            "module %s: cannot load it through /proc/self/fd "
		            "(is /proc mounted?), and will not open it by its "
		            "name again after checking it",
		            path);
	return 0;
}

int module_load(struct provider *p, const char *module_dir)
{
	char path[PATH_MAX], name[PATH_MAX];
	const struct ucaasauth_provider *ops;
	int fd, r;

	if (snprintf(path, sizeof(path), "%s/%s.so", module_dir,
	             p->entry->name) >= (int)sizeof(path))
		return fail(UCAASAUTH_E_CONFIG, "module %s: path too long",
		            p->entry->name);
	r = file_open_trusted(path, "module", &fd);
	if (r < 0)
		return r;
	r = proc_name(fd, path, name, sizeof(name));
	/* RTLD_LOCAL: its symbols serve it alone. */
	if (r == 0)
		p->dl = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	close(fd);
	if (r < 0)
		return r;
	if (!p->dl) {
		const char *why = dlerror();
		size_t len = strlen(name);

		/* "NAME: why": the path as configured instead. */
		if (why && strncmp(why, name, len) == 0 &&
		    strncmp(why + len, ": ", 2) == 0)
			why += len + 2;
		return fail(UCAASAUTH_E_CONFIG, "module %s: %s", path,
		            why ? why : "cannot be loaded");
	}
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

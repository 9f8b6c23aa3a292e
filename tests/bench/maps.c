/*
 * ucaasauth-bench-maps OUT: a process that never logs in (a daemon client,
 * or a reader of a warm shared cache, whichever the configuration in
 * UCAASAUTH_CONFIG makes it): opens the default profile, gets one header,
 * then lists the shared objects mapped into it, from /proc/self/maps.
 * Linked as any client program is, against libucaasauth.so.1 and nothing
 * else, so what it maps is what the library brings.
 *
 * OUT gets "ok\n<header>\n<number of shared objects>\n" then their file
 * names, one per line; or "error MESSAGE".
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ucaasauth.h"

#define MAX_OBJECTS 256

static _Noreturn void failed(const char *out, const char *what,
                             const char *detail)
{
	FILE *f = fopen(out, "w");

	if (f) {
		fprintf(f, "error %s: %s\n", what, detail ? detail : "");
		fclose(f);
	}
	exit(1);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

int main(int argc, char **argv)
{
	static char names[MAX_OBJECTS][NAME_MAX + 1];
	char buf[4096], line[PATH_MAX + 128];
	struct ucaasauth *ua;
	size_t len, n = 0;
	FILE *maps, *f;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: ucaasauth-bench-maps OUT\n");
		return 2;
	}
	r = ucaasauth_open(&ua, NULL, 0);
	if (r != UCAASAUTH_OK)
		failed(argv[1], "ucaasauth_open", ucaasauth_last_error());
	r = ucaasauth_header(ua, buf, sizeof(buf), &len);
	if (r != UCAASAUTH_OK)
		failed(argv[1], "ucaasauth_header", ucaasauth_last_error());

	/* After the header, with the handle still open: what a worker
	 * carries for the rest of its life. */
	maps = fopen("/proc/self/maps", "r");
	if (!maps)
		failed(argv[1], "/proc/self/maps", strerror(errno));
	while (fgets(line, sizeof(line), maps)) {
		char *path = strchr(line, '/'), *base;
		bool seen = false;

		if (!path)
			continue;
		path[strcspn(path, "\n")] = 0;
		base = strrchr(path, '/') + 1;
		if (!strstr(base, ".so"))
			continue;
		for (size_t i = 0; i < n && !seen; i++)
			seen = strcmp(names[i], base) == 0;
		if (!seen && n < MAX_OBJECTS)
			snprintf(names[n++], sizeof(names[0]), "%s", base);
	}
	fclose(maps);
	ucaasauth_close(ua);
	qsort(names, n, sizeof(names[0]), by_name);

	f = fopen(argv[1], "w");
	if (!f)
		return 1;
	fprintf(f, "ok\n%s\n%zu\n", buf, n);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s\n", names[i]);
	return fclose(f) == 0 ? 0 : 1;
}

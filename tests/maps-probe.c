/*
 * A user program linked with libucaasauth only (the shared library, as
 * any program would): gets a profile's header, then says which of
 * libcurl, libssl and libcrypto its process has mapped. Driven by
 * test-lazy-libcurl.sh.
 *
 * usage: maps-probe PROFILE
 * prints: "scheme=Token libcurl=no libssl=no libcrypto=no" and exits 0,
 * or the library's message on stderr and exits 1.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ucaasauth.h"

/* Whether a mapped file's name starts with `lib` (libcurl.so.4.8.0,
 * libcurl-gnutls.so.4...). */
static bool mapped(const char *lib)
{
	char line[4096];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return true; /* cannot tell: count it against the library */
	while (fgets(line, sizeof(line), f)) {
		const char *slash = strrchr(line, '/');

		if (slash && strncmp(slash + 1, lib, strlen(lib)) == 0)
			found = true;
	}
	fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	static const char *const libs[] = {"libcurl", "libssl", "libcrypto"};
	struct ucaasauth *ua = NULL;
	char header[4096];
	size_t len;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: maps-probe PROFILE\n");
		return 2;
	}
	r = ucaasauth_open(&ua, argv[1], 0);
	if (r == UCAASAUTH_OK)
		r = ucaasauth_header(ua, header, sizeof(header), &len);
	if (r != UCAASAUTH_OK) {
		const char *detail = ucaasauth_last_error();

		fprintf(stderr, "maps-probe: %s: %s (%s)\n", argv[1],
		        ucaasauth_strerror(r), detail ? detail : "no detail");
		ucaasauth_close(ua);
		return 1;
	}
	/* "Authorization: Token ..." or "Authorization: Basic ...". */
	printf("scheme=%.5s", header + strlen("Authorization: "));
	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++)
		printf(" %s=%s", libs[i], mapped(libs[i]) ? "yes" : "no");
	printf("\n");
	memset(header, 0, sizeof(header));
	ucaasauth_close(ua);
	return 0;
}

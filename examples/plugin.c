/*
 * A plugin as a third party would write one: a shared object that some
 * host program loads with dlopen() and may dlclose() whenever it likes,
 * linked with libucaasauth (-lucaasauth, no other library needed).
 *
 * The host knows nothing about libucaasauth: it calls plugin_header(),
 * gets the Authorization header line for a profile, and may unload the
 * plugin right after. libucaasauth must leave nothing behind that points
 * into code the dlclose() unmaps (see docs/design.md, "A guest in other
 * programs"). examples/plugin-host.c is such a host.
 */
#include <stdio.h>

#include "ucaasauth.h"

#define PLUGIN_EXPORT __attribute__((visibility("default")))

PLUGIN_EXPORT int plugin_header(const char *profile, char *buf, size_t size);

/*
 * Opens the profile, writes its header line into buf[0..size) and closes
 * it again. Returns a UCAASAUTH_* status; on failure, buf holds the
 * library's message instead of a header.
 */
int plugin_header(const char *profile, char *buf, size_t size)
{
	struct ucaasauth *ua = NULL;
	size_t len;
	int r;

	r = ucaasauth_open(&ua, profile, 0);
	if (r == UCAASAUTH_OK)
		r = ucaasauth_header(ua, buf, size, &len);
	if (r != UCAASAUTH_OK) {
		const char *detail = ucaasauth_last_error();

		snprintf(buf, size, "profile %s: %s (%s)", profile,
		         ucaasauth_strerror(r), detail ? detail : "no detail");
	}
	ucaasauth_close(ua);
	return r;
}

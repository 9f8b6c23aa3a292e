/* Status sentences and the per-thread last-error text. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char last_error[1024];
static _Thread_local int has_error;

int fail(int status, const char *fmt, ...)
{
	va_list ap;

	assert(status < 0);
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	has_error = 1;
	return status;
}

int fail_errno(int status, int err, const char *what, const char *path)
{
	return fail(status, "%s %s: %s", what, path, strerror(err));
}

EXPORT const char *ucaasauth_strerror(int status)
{
	switch (status) {
	case UCAASAUTH_OK:
		return "Success";
	case UCAASAUTH_E_INVALID:
		return "Invalid argument";
	case UCAASAUTH_E_CONFIG:
		return "Bad or missing configuration or profile";
	case UCAASAUTH_E_CREDENTIALS:
		return "Credential store unreadable, tampered with or unsafe";
	case UCAASAUTH_E_DENIED:
		return "The server refused the credentials";
	case UCAASAUTH_E_UNAVAILABLE:
		return "The server is unavailable and no valid token is cached";
	case UCAASAUTH_E_PROTOCOL:
		return "Malformed answer from the server";
	case UCAASAUTH_E_CACHE:
		return "Shared token cache unsafe or unusable";
	case UCAASAUTH_E_TIMEOUT:
		return "Timed out waiting for another process's refresh";
	case UCAASAUTH_E_TOOSMALL:
		return "Buffer too small";
	case UCAASAUTH_E_NOMEM:
		return "Out of memory";
	}
	return "unknown status";
}

EXPORT const char *ucaasauth_last_error(void)
{
	return has_error ? last_error : NULL;
}

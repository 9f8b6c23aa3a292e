/*
 * The login-answer parser. The first two bytes of an input choose the
 * HTTP status (an index into `statuses`, big-endian, modulo its size); the
 * rest is the body, given without a terminating NUL. The status decides
 * the class of the outcome; only a 200 may give a token, and that token is
 * one a header line can carry. On failure the outputs are untouched.
 */
#include <string.h>

#include "fuzz.h"
#include "internal.h"

#define URL "http://127.0.0.1:8080/ucaas/v1/login"
#define DEFAULT_TTL 900

static const long statuses[] = {
	200, 401, 403, 429, 500, 503, 302, 404, /* 0-7: the usual ones */
	201, 204, 301, 304, 307, 400, 402, 408, 499, 502, 504,
	599, 600, 100, 0,   -1,  199, 299, 300, 399, 999, 2147483647L,
};

/* The statuses of each class, as docs/design.md tabulates them. */
static int expected(long status)
{
	if (status == 401 || status == 403)
		return UCAASAUTH_E_DENIED;
	if (status == 429 || (status >= 500 && status <= 599))
		return UCAASAUTH_E_UNAVAILABLE;
	return UCAASAUTH_E_PROTOCOL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *token;
	long status = 200;
	int ttl = -7, r;

	if (!token) {
		token = malloc(TOKEN_MAX + 1);
		FUZZ_CHECK(token != NULL);
	}
	if (size >= 2) {
		status = statuses[((size_t)data[0] << 8 | data[1]) %
		                  ARRAY_SIZE(statuses)];
		data += 2;
		size -= 2;
	}
	memset(token, 'Z', TOKEN_MAX + 1);
	r = login_parse(status, (const char *)data, size, URL, DEFAULT_TTL,
	                token, &ttl);
	if (r < 0) {
		FUZZ_CHECK(r == expected(status));
		FUZZ_CHECK(strstr(ucaasauth_last_error(), URL) != NULL);
		FUZZ_CHECK(ttl == -7);
		for (size_t i = 0; i <= TOKEN_MAX; i++)
			FUZZ_CHECK(token[i] == 'Z');
		return 0;
	}
	FUZZ_CHECK(r == 0 && status == 200);
	FUZZ_CHECK(ttl >= 1 && ttl <= 86400);
	FUZZ_CHECK(memchr(token, 0, TOKEN_MAX + 1) != NULL);
	FUZZ_CHECK(token[0] != 0);
	for (const char *c = token; *c; c++)
		FUZZ_CHECK(*c >= 0x21 && *c <= 0x7e);
	return 0;
}

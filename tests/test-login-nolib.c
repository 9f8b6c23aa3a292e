/*
 * A host without libcurl: login.c is built again here with a soname that
 * no system has (-DLIBCURL_SONAME=...), and linked before the private
 * library, so that its dlopen() fails as it would where libcurl.so.4 is
 * not installed. The login provider must fail with UCAASAUTH_E_CONFIG, a
 * message naming the library and dlerror()'s reason, and no request; a
 * Basic profile must not care.
 */
#include "fixture.h"
#include "internal.h"
#include "test.h"

static struct fixture fix;

static int header_of(const char *profile, char *buf, size_t size)
{
	struct ucaasauth *ua;
	size_t len;
	int r;

	CHECK_INT(ucaasauth_open(&ua, profile, 0), 0);
	r = ucaasauth_header(ua, buf, size, &len);
	ucaasauth_close(ua);
	return r;
}

int main(void)
{
	char buf[4096];

	fixture_start(&fix, 900, NULL);
	CHECK_INT(header_of("tok", buf, sizeof(buf)), UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("the login provider needs " LIBCURL_SONAME
	                ", which cannot be loaded: ");
	/* dlerror()'s own words */
	CHECK_ERROR_HAS("cannot open shared object file");
	printf("message: %s\n", ucaasauth_last_error());
	/* Again, from the recorded failure or from a new try: the same. */
	CHECK_INT(header_of("tok", buf, sizeof(buf)), UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS(LIBCURL_SONAME);
	CHECK_INT(login_start(), UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS(LIBCURL_SONAME);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 0);

	CHECK_INT(header_of("srv", buf, sizeof(buf)), 0);
	CHECK(strncmp(buf, "Authorization: Basic ", 21) == 0);
	fixture_stop(&fix);
	TEST_DONE();
}

/* What a user writes: only the installed header and library. Prints the
 * header of the default profile. */
#include <stdio.h>
#include <ucaasauth.h>

int main(void)
{
	struct ucaasauth *ua;
	char header[4096];
	size_t len;
	int r;

	r = ucaasauth_open(&ua, NULL, 0);
	if (r == UCAASAUTH_OK)
		r = ucaasauth_header(ua, header, sizeof(header), &len);
	if (r != UCAASAUTH_OK) {
		fprintf(stderr, "%s: %s\n", ucaasauth_strerror(r),
		        ucaasauth_last_error());
		return 1;
	}
	printf("%s\n", header);
	ucaasauth_close(ua);
	return 0;
}

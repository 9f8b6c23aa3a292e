/*
 * Many threads on one handle (and a second handle in the same process)
 * while tokens expire and get rejected: every header whole, no data race
 * (this test also runs under ThreadSanitizer).
 */
#include <pthread.h>

#include "fixture.h"
#include "test.h"

#define THREADS 6

static struct fixture fix;
static struct ucaasauth *shared_ua;
static long rejects; /* made by thread 1 alone */

static void *reader(void *arg)
{
	intptr_t id = (intptr_t)arg;
	struct ucaasauth *ua = shared_ua;
	int64_t end = ms_now() + 5000;
	char buf[4096];
	size_t len;
	int64_t next_reject = ms_now() + 700;
	long calls = 0, bad = 0;

	/* Odd threads share a handle, even ones have their own. */
	if (id % 2 == 0 && ucaasauth_open(&ua, "tok", 0) != 0)
		return (void *)1;
	while (ms_now() < end) {
		int r = ucaasauth_header(ua, buf, sizeof(buf), &len);
		calls++;
		if (r != 0 || len != 21 + 120 || strlen(buf) != len ||
		    strncmp(buf, "Authorization: Token ", 21) != 0) {
			if (!bad)
				fprintf(stderr, "thread %d: status %d (%s)\n",
				        (int)id, r, ucaasauth_last_error());
			bad++;
		}
		if (id == 1 && ms_now() >= next_reject) {
			next_reject += 700;
			if (ucaasauth_reject(ua, buf) != 0)
				bad++;
			rejects++;
		}
	}
	if (ua != shared_ua)
		ucaasauth_close(ua);
	return (void *)(intptr_t)(bad ? 1 : 0);
}

int main(void)
{
	pthread_t t[THREADS];
	char buf[4096];
	size_t len;
	int64_t t0, took;
	long logins, most;

	fixture_start(&fix, 3,
	              "token_ttl = 3\nrefresh_ahead = 2\nexpiry_margin = 1\n");
	CHECK_INT(ucaasauth_open(&shared_ua, "tok", 0), 0);
	t0 = ms_now();
	for (intptr_t i = 0; i < THREADS; i++)
		CHECK_INT(pthread_create(&t[i], NULL, reader, (void *)i), 0);
	for (int i = 0; i < THREADS; i++) {
		void *ret;
		CHECK_INT(pthread_join(t[i], &ret), 0);
		CHECK(ret == NULL);
	}
	took = ms_now() - t0;
	CHECK_INT(ucaasauth_header(shared_ua, buf, sizeof(buf), &len), 0);
	CHECK_INT(mock_customers(&fix.mock, buf), 200);
	CHECK_INT(mock_stat(&fix.mock, "customers_refused"), 0);
	/* One login a second at most (a token is refreshed once it is 1 s
	 * old), plus one replacement for each reject, plus one to spare:
	 * counted over the time the threads really ran (5 s, more on a
	 * loaded machine, where the last calls overrun) and the rejects
	 * really made (7 or 8), not over the 5 s planned. */
	logins = mock_stat(&fix.mock, "logins");
	most = 1 + took / 1000 + rejects + 1;
	printf("threads: %ld logins in %lld ms, %ld rejects (at most %ld)\n",
	       logins, (long long)took, rejects, most);
	CHECK_MSG(logins >= 1 && logins <= most,
	          "%ld logins in %lld ms with %ld rejects, expected 1 to %ld",
	          logins, (long long)took, rejects, most);
	ucaasauth_close(shared_ua);
	fixture_stop(&fix);
	TEST_DONE();
}

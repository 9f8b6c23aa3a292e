/*
 * Secret hygiene in memory, tested on outcomes an attacker can see: after
 * ucaasauth_close(), no copy of the App Key, the password, the master key
 * or the Basic header is left in the process's memory, for a Basic
 * profile, a login profile that logged in, and failed logins; while a
 * handle is open the same scan does find them, in guarded memory, so the
 * scan can fail. No secret in the argv or the environment of a library
 * user.
 *
 * Each scenario runs in a child forked from a parent shown clean by a
 * first scan, so one scenario's leftovers are never blamed on another.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "hygiene.h"
#include "internal.h"
#include "test.h"

struct scenario {
	int open_status, header_status;
	struct scan open_scan;   /* while the handle is open */
	struct scan closed_scan; /* after ucaasauth_close() */
	unsigned guarded[N_IDS]; /* open_scan copies inside the handle's
	                          * sodium_malloc blocks */
	char vmflags[160];       /* of the block holding the secrets */
	bool argv_env_clean;
};

/* In a child, so that its leftovers are its own: open the profile, get a
 * header, scan, close, scan again. */
static void scenario_child(const char *profile, struct scenario *out)
{
	struct ucaasauth *ua = NULL;
	char buf[4096];
	size_t len;

	memset(out, 0, sizeof(*out));
	out->open_status = ucaasauth_open(&ua, profile, 0);
	if (out->open_status < 0)
		return;
	out->header_status = ucaasauth_header(ua, buf, sizeof(buf), &len);
	/* The caller's copy of the header is the caller's to wipe. */
	sodium_memzero(buf, sizeof(buf));
	scan_memory(SECRETS, &out->open_scan);
	for (int id = 0; id < N_IDS; id++) {
		if (ua->secrets)
			out->guarded[id] +=
				copies_within(&out->open_scan, id, ua->secrets,
			                      sizeof(*ua->secrets));
		if (ua->basic)
			out->guarded[id] += copies_within(
				&out->open_scan, id, ua->basic, ua->basic_len);
	}
	if (ua->secrets)
		vmflags_of(ua->secrets, out->vmflags, sizeof(out->vmflags));
	out->argv_env_clean = proc_clean(getpid());
	ucaasauth_close(ua);
	scan_memory(SECRETS, &out->closed_scan);
}

/* The scenario of a profile, run in a child: what it found is printed,
 * under `name`, and returned in out. */
static void run_scenario(const char *profile, const char *name,
                         struct scenario *out)
{
	char when[64];
	int pfd[2], status;
	size_t got = 0;
	pid_t pid;

	CHECK_INT(pipe(pfd), 0);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		static struct scenario s;
		const char *p = (const char *)&s;
		size_t left = sizeof(s);

		close(pfd[0]);
		scenario_child(profile, &s);
		while (left > 0) {
			ssize_t n = write(pfd[1], p, left);
			if (n <= 0)
				_exit(3);
			p += n;
			left -= (size_t)n;
		}
		_exit(0);
	}
	close(pfd[1]);
	while (got < sizeof(*out)) {
		ssize_t n = read(pfd[0], (char *)out + got, sizeof(*out) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(pfd[0]);
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_INT(got, sizeof(*out));
	CHECK_INT(out->open_status, 0);
	CHECK_INT(out->open_scan.errors, 0);
	CHECK_INT(out->closed_scan.errors, 0);
	CHECK(out->open_scan.bytes > 1000000);
	snprintf(when, sizeof(when), "%s, open", name);
	print_found(when, &out->open_scan);
	snprintf(when, sizeof(when), "%s, closed", name);
	print_found(when, &out->closed_scan);
}

/* Results kept for the checks main() runs last (see there). */
static struct scenario basic_run, login_run, denied_run, down_run;

static void test_memory(void)
{
	struct scan base;
	struct scenario *s;

	/* The premise: before any handle, the test holds no secret (they
	 * are masked), so whatever a scan finds later is the library's. */
	scan_memory(SECRETS, &base);
	print_found("before any handle", &base);
	CHECK_INT(base.errors, 0);
	CHECK(base.bytes > 1000000);
	for (int id = 0; id < N_IDS; id++)
		CHECK_INT(base.f[id].copies, 0);
	if (base.skipped)
		printf("note: skipped %llu GiB of sanitizer shadow memory "
		       "(mappings of 64 GiB or more)\n",
		       (unsigned long long)(base.skipped >> 30));

	/* A Basic profile. While open, the scan finds the App Key and its
	 * header (the scan can see secrets: this test can fail), and only
	 * inside the handle's guarded blocks, marked MADV_DONTDUMP. */
	s = &basic_run;
	run_scenario("srv", "basic", s);
	CHECK_INT(s->header_status, 0);
	CHECK(s->open_scan.f[S_APP_KEY].copies >= 1);
	CHECK_INT(s->guarded[S_APP_KEY], s->open_scan.f[S_APP_KEY].copies);
	CHECK(s->open_scan.f[S_BASIC].copies >= 1);
	CHECK_INT(s->guarded[S_BASIC], s->open_scan.f[S_BASIC].copies);
	CHECK(strstr(s->vmflags, " dd ") != NULL);
	/* The master key was needed only to decrypt, and is gone. */
	CHECK_INT(s->open_scan.f[S_MASTER_KEY].copies, 0);
	CHECK_INT(s->open_scan.f[S_MASTER_HEX].copies, 0);
	CHECK(s->argv_env_clean);

	/* A login profile that logged in: the password went through
	 * json-c and libcurl. */
	s = &login_run;
	run_scenario("tok", "login", s);
	CHECK_INT(s->header_status, 0);
	CHECK(s->open_scan.f[S_PASSWORD].copies >= 1);
	CHECK(s->guarded[S_PASSWORD] >= 1);
	CHECK(strstr(s->vmflags, " dd ") != NULL);
	CHECK_INT(s->open_scan.f[S_MASTER_KEY].copies, 0);
	CHECK(s->argv_env_clean);

	/* A login the server refuses. */
	CHECK_INT(mock_config(&world.mock,
	                      "{\"password\": \"not-the-stored-one\"}"),
	          0);
	s = &denied_run;
	run_scenario("tok", "denied", s);
	CHECK_INT(s->header_status, UCAASAUTH_E_DENIED);
	CHECK_INT(mock_reset(&world.mock), 0);

	/* A login that never reaches a server. */
	s = &down_run;
	run_scenario("down", "down", s);
	CHECK_INT(s->header_status, UCAASAUTH_E_UNAVAILABLE);
	for (int id = 0; id < N_IDS; id++)
		CHECK_INT(s->closed_scan.f[id].copies, 0);

	/* Closed: nothing left of the App Key or the master key; the
	 * password is checked last, in main(). */
	for (int id = 0; id < N_IDS; id++) {
		CHECK_INT(basic_run.closed_scan.f[id].copies, 0);
		if (id == S_PASSWORD)
			continue;
		CHECK_INT(login_run.closed_scan.f[id].copies, 0);
		CHECK_INT(denied_run.closed_scan.f[id].copies, 0);
	}
}

int main(int argc, char **argv)
{
	hygiene_start(argv);
	test_memory();
	hygiene_stop();
	/*
	 * Regressions of two leaks found and fixed in login.c:
	 * - libcurl copies the request body (the password) into a buffer it
	 *   frees unwiped: the library now starts libcurl with allocators
	 *   that wipe before freeing (curl_start());
	 * - json-c's tokener collects the token in a printbuf it frees
	 *   unwiped: login_parse() wipes it first.
	 */
	CHECK_INT(login_run.closed_scan.f[S_PASSWORD].copies, 0);
	CHECK_INT(denied_run.closed_scan.f[S_PASSWORD].copies, 0);
	TEST_DONE();
}

/*
 * A ready test world: a temporary directory with a master key, a
 * configuration file, stored credentials, a private cache directory and a
 * running mock UCaaS server.
 */
#ifndef UCAASAUTH_TESTS_FIXTURE_H
#define UCAASAUTH_TESTS_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "mock.h"

#define FIX_APP_ID "app-1234"
#define FIX_APP_KEY "k3y-SECRET-app-key"
#define FIX_EMAIL "ops@example.com"
#define FIX_PASSWORD "Zq9-SECRET-password"

struct fixture {
	char dir[256];     /* temporary directory, removed by fixture_stop */
	char conf[320];    /* its ucaasauth.conf, exported as UCAASAUTH_CONFIG */
	char runtime[320]; /* its cache directory, UCAASAUTH_RUNTIME_DIR */
	struct mock mock;
	bool has_mock;
};

/*
 * Starts the mock with a token lifetime of server_ttl seconds (0: none,
 * no server), writes a configuration with profile "tok" (login provider,
 * plus the extra lines `tok_extra`, e.g. "token_ttl = 4\n") and profile
 * "srv" (basic provider), makes a key and stores both profiles' secrets.
 * Exits the test with a message on any failure.
 */
void fixture_start(struct fixture *f, int server_ttl, const char *tok_extra);
/* Rewrites the "tok" profile's extra lines (no server restart). */
void fixture_write_config(struct fixture *f, const char *tok_extra);
/* Stores another password for "tok". */
void fixture_store_password(struct fixture *f, const char *password);
void fixture_stop(struct fixture *f);

/* Runs fn(arg, i) in n child processes released together; returns how
 * many exited with status 0. */
int run_workers(int n, int (*fn)(void *arg, int i), void *arg);

/* Milliseconds on the monotonic clock, and a sleep. */
int64_t ms_now(void);
void ms_sleep(int64_t ms);

#endif

#ifndef UCAASAUTH_TESTS_MOCK_H
#define UCAASAUTH_TESTS_MOCK_H

#include <sys/types.h>

/*
 * Drives tests/mock-ucaas.py, the mock EnableX UCaaS server, from C tests.
 *
 * Every call uses its own libcurl easy handle, so a test may fork after
 * mock_start() and call the query functions from any process. Only the
 * process that started the mock can stop it: mock_stop() in any other
 * process (a forked worker, an atexit handler inherited across fork) only
 * forgets the mock in that process's copy of the struct.
 *
 * The mock is started with PR_SET_PDEATHSIG, so a test that crashes or
 * exits without mock_stop() does not leave a server behind (its temporary
 * directory does stay).
 */

struct mock {
	pid_t pid;
	int port;
	char base[128]; /* "http://127.0.0.1:PORT/ucaas/v1" (https when tls) */
	char dir[256];  /* temp dir holding the port file */
	char ca[256];   /* tls_dir/ca.pem, "" without tls */
};

/*
 * Starts `python3 SCRIPT` with the given credentials and token ttl, where
 * SCRIPT is $MOCK_UCAAS, or else the compile-time MOCK_UCAAS_SCRIPT.
 * email and password may both be NULL (no login possible). tls_dir is NULL
 * for plain HTTP, or a directory holding server.pem, server.key and ca.pem
 * from tests/make-test-ca.sh for HTTPS.
 * Waits up to 10 s for the server to listen. Returns 0, or -1 with a message
 * on stderr (and nothing left running).
 */
int mock_start(struct mock *m, const char *app_id, const char *app_key,
               const char *email, const char *password, int token_ttl,
               const char *tls_dir);

/* SIGTERM, waitpid (SIGKILL after 5 s), remove the temp dir. Idempotent. */
void mock_stop(struct mock *m);

/*
 * Integer field of GET /_mock/stats ("logins", "customers_403", ...); an
 * array field ("login_times") gives its length, a fractional number is
 * truncated. -1 on error or when the key is missing or not a number.
 */
long mock_stat(struct mock *m, const char *key);

/*
 * String field of /_mock/stats, malloc'd: "current_token", or
 * "login_times_csv" (login attempt times, comma-separated seconds since the
 * epoch, oldest first, last 1000). NULL on error or when null.
 */
char *mock_stat_str(struct mock *m, const char *key);

/*
 * The mock's login attempt times (seconds since the epoch, oldest first,
 * the last 1000) into t[0..max); returns how many, or -1 on error.
 * mock_login_gap(): the smallest gap between two of them in seconds (1e9
 * with fewer than two), and their number in *ret_count.
 */
int mock_login_times(struct mock *m, double *t, int max);
double mock_login_gap(struct mock *m, long *ret_count);

/* POST json (an object, see mock-ucaas.py) to /_mock/config. 0 if the mock took it, -1 if not. */
int mock_config(struct mock *m, const char *json);

/* POST /_mock/reset: zero counters, clear faults, restore start-up credentials. 0 or -1. */
int mock_reset(struct mock *m);

/*
 * GET /customers with header_line ("Authorization: ...") or, when NULL,
 * without one. Returns the HTTP status or -1.
 */
int mock_customers(struct mock *m, const char *header_line);

#endif

/*
 * The test world, and what tests share to build it and look at it: a
 * temporary directory with a master key, a configuration file, stored
 * credentials, a private cache directory and a running mock UCaaS server;
 * configurations written whole, files with exact modes, the built CLI run
 * with its output captured, child processes, and a look at /proc.
 *
 * Setup failures end the test (exit 1) with a message; what a test
 * asserts on is returned, for the caller to CHECK.
 */
#ifndef UCAASAUTH_TESTS_FIXTURE_H
#define UCAASAUTH_TESTS_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mock.h"

#define FIX_APP_ID "app-1234"
#define FIX_APP_KEY "k3y-SECRET-app-key"
#define FIX_EMAIL "ops@example.com"
#define FIX_PASSWORD "Zq9-SECRET-password"

struct secrets;

struct fixture {
	char dir[256];  /* temporary directory, removed by fixture_stop */
	char conf[320]; /* its ucaasauth.conf, exported as UCAASAUTH_CONFIG */
	char runtime[320]; /* its cache directory, UCAASAUTH_RUNTIME_DIR */
	char key[320];     /* its master.key */
	struct mock mock;
	bool has_mock; /* fixture_stop stops the mock */
};

/* Ends the test with a message (and errno's text when set). */
void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/* ---- the world ---- */

/*
 * Starts the mock with a token lifetime of server_ttl seconds (0: none,
 * no server), writes a configuration with profile "tok" (login provider,
 * plus the extra lines `tok_extra`, e.g. "token_ttl = 4\n") and profile
 * "srv" (basic provider), makes a key and stores both profiles' secrets.
 */
void fixture_start(struct fixture *f, int server_ttl, const char *tok_extra);
/* The temporary directory and the environment that names its paths
 * only: no server, configuration, key or secrets. */
void fixture_start_empty(struct fixture *f);
/* Rewrites the "tok" profile's extra lines (no server restart); the file
 * is readable by all, for clients running as other users. */
void fixture_write_config(struct fixture *f, const char *tok_extra);
/* Stores these secrets (NULL: empty) for a profile of the current
 * configuration. */
void fixture_store(const char *profile, const char *app_key, const char *email,
                   const char *password);
/* The same from secrets already in guarded memory. */
void fixture_store_secrets(const char *profile, const struct secrets *s);
/* "Authorization: Basic base64(FIX_APP_ID:FIX_APP_KEY)". */
const char *fixture_basic_header(void);
void fixture_stop(struct fixture *f);

/*
 * A configuration written whole: conf_add appends text (printf-style) to
 * the pending file, conf_write installs it as f's configuration with
 * exactly `mode`. fixture_write_config replaces the pending text.
 */
#define CONF_MAX (256 * 1024)
void conf_reset(void);
void conf_add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void conf_write(const struct fixture *f, mode_t mode);

/* ---- files ---- */

/* Files and directories with exact modes (umask ignored). */
void make_dir(const char *path, mode_t mode);
void copy_file(const char *src, const char *dst, mode_t mode);
void write_text(const char *path, const char *text);
/* Installs TESTS_DIR/name as dir/name with the mode. */
void install_script(const char *dir, const char *name, mode_t mode);
/* The whole file, malloc'd and NUL-terminated (its length, which counts
 * any NUL inside, in *ret_len unless NULL), or NULL. */
char *read_text(const char *path, size_t *ret_len);
/* Lines in a file; 0 if it does not exist. */
int count_lines(const char *path);

/* ---- the library and the CLI ---- */

/* One open/header/close of a profile: the status of the first failing
 * call, the header in buf ("" on failure). */
int header_once(const char *profile, char *buf, size_t size);
/*
 * Runs argv (no shell) with stdout and stderr captured together into out
 * (NUL-terminated, truncated to size). Returns the exit status, or -1.
 */
int run_captured(char *const argv[], char *out, size_t size);
/* The same under $CLI_WRAPPER (e.g. valgrind) when it is set. */
int run_wrapped(char *const argv[], char *out, size_t size);

/* ---- processes ---- */

/* Runs fn(arg, i) in n child processes released together; returns how
 * many exited with status 0. */
int run_workers(int n, int (*fn)(void *arg, int i), void *arg);
/* Runs fn in a child process (a failed CHECK exits it): its exit status,
 * 0 if fn returned, 128 + the signal that ended it. */
int run_child(void (*fn)(void));
/*
 * run_child for checks that run each on its own, so that one failure does
 * not hide another: 0 if it passed, 1 if not, and a line that says which.
 * run_bug() for the checks of known bugs, which run last.
 */
int run_apart(const char *name, void (*fn)(void));
int run_bug(const char *name, void (*fn)(void));
/* A process that still runs (exists and is not a zombie). */
bool pid_running(pid_t pid);
/* Its state letter in /proc/PID/stat, or 0 when it is gone. */
char pid_state(pid_t pid);

/* Milliseconds on the monotonic clock, and a sleep. */
int64_t ms_now(void);
void ms_sleep(int64_t ms);

/* ---- this process ---- */

/* Entries in /proc/self/fd, lines in /proc/self/maps, resident and peak
 * resident kB. */
int fd_count(void);
int map_count(void);
long rss_kb(void);
long hwm_kb(void);

#endif

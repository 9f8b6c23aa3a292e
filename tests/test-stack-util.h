/*
 * What the provider stack tests share: a configuration written whole, the
 * secrets of any profile, files installed with exact modes, the built CLI
 * run with its output captured, and a look at /proc.
 *
 * Setup failures end the test (exit 1) with a message; what a test
 * asserts on is returned, for the caller to CHECK.
 */
#ifndef UCAASAUTH_TESTS_STACK_UTIL_H
#define UCAASAUTH_TESTS_STACK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "fixture.h"

#define STACK_CONF_MAX (256 * 1024)

/* Ends the test with a message (and errno's text when set). */
void stack_die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
                                                    noreturn));

/*
 * The configuration file of the fixture, written whole by stack_conf_write:
 * stack_conf_add appends text (printf-style) to the pending file.
 */
void stack_conf_reset(void);
void stack_conf_add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void stack_conf_write(const struct fixture *f);

/* Stores these secrets (NULL: empty) for a profile of the current
 * configuration. */
void stack_store(const char *profile, const char *app_key, const char *email,
                 const char *password);

/* "Authorization: Basic base64(FIX_APP_ID:FIX_APP_KEY)". */
const char *stack_basic_header(void);

/* Files and directories with exact modes (umask ignored). */
void stack_mkdir(const char *path, mode_t mode);
void stack_copy(const char *src, const char *dst, mode_t mode);
void stack_write(const char *path, const char *text);
/* Installs TESTS_DIR/name as dir/name with the mode. */
void stack_install_script(const char *dir, const char *name, mode_t mode);

/* Lines in a file; 0 if it does not exist. */
int stack_count_lines(const char *path);
/* The whole file, malloc'd and NUL-terminated, or NULL. */
char *stack_read(const char *path);

/* One open/header/close of a profile: the status of the first failing
 * call, the header in buf ("" on failure). */
int stack_header_once(const char *profile, char *buf, size_t size);

/*
 * Runs argv (no shell) with stdout and stderr captured together into out
 * (NUL-terminated, truncated to size). Returns the exit status, or -1.
 */
int stack_run(char *const argv[], char *out, size_t size);
/* The same under $CLI_WRAPPER (e.g. valgrind) when it is set. */
int stack_run_wrapped(char *const argv[], char *out, size_t size);

/* A process that still runs (exists and is not a zombie). */
bool stack_pid_running(pid_t pid);
/* Its state letter in /proc/PID/stat, or 0 when it is gone. */
char stack_pid_state(pid_t pid);

/*
 * Runs fn in a child process (a failed CHECK exits it): 0 if it passed,
 * 1 if not, and says which. So that one failure does not hide another;
 * stack_run_bug() for the checks of known bugs, which run last.
 */
int stack_run_apart(const char *name, void (*fn)(void));
int stack_run_bug(const char *name, void (*fn)(void));

/* Entries in /proc/self/fd, lines in /proc/self/maps, resident and peak
 * resident kB. */
int stack_fd_count(void);
int stack_map_count(void);
long stack_rss_kb(void);
long stack_hwm_kb(void);

#endif

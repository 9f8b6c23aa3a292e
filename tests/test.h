/*
 * A tiny test harness: assertions that say where they failed and what the
 * values were, and a counter the runner reports.
 */
#ifndef UCAASAUTH_TEST_H
#define UCAASAUTH_TEST_H

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "ucaasauth.h"

/*
 * The sanitizers this program was built with, as 0 or 1 for #if and for
 * plain conditions: gcc says so with __SANITIZE_ADDRESS__ and
 * __SANITIZE_THREAD__, clang with __has_feature() (which gcc lacks before
 * version 14, hence the stand-in that answers 0).
 */
#if defined(__has_feature)
#define TEST_HAS_FEATURE_(f) __has_feature(f)
#else
#define TEST_HAS_FEATURE_(f) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || TEST_HAS_FEATURE_(address_sanitizer)
#define TEST_ASAN 1
#else
#define TEST_ASAN 0
#endif
#if defined(__SANITIZE_THREAD__) || TEST_HAS_FEATURE_(thread_sanitizer)
#define TEST_TSAN 1
#else
#define TEST_TSAN 0
#endif
#if TEST_HAS_FEATURE_(memory_sanitizer)
#define TEST_MSAN 1
#else
#define TEST_MSAN 0
#endif
/* Address or thread: their allocators and shadow memory map as they
 * please, and neither runs under valgrind. */
#define TEST_SANITIZED (TEST_ASAN || TEST_TSAN)

static int test_checks;

#define test_fail_(...)                                                        \
	do {                                                                   \
		fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                \
		fprintf(stderr, __VA_ARGS__);                                  \
		fprintf(stderr, "\n");                                         \
		if (ucaasauth_last_error())                                    \
			fprintf(stderr, "  last error: %s\n",                  \
			        ucaasauth_last_error());                       \
		exit(1);                                                       \
	} while (0)

#define CHECK(cond)                                                            \
	do {                                                                   \
		test_checks++;                                                 \
		if (!(cond))                                                   \
			test_fail_("CHECK(%s) failed", #cond);                 \
	} while (0)

/* CHECK with the reason a reader needs: the values behind the condition,
 * e.g. CHECK_MSG(n <= max, "%ld logins, at most %ld", n, max). */
#define CHECK_MSG(cond, ...)                                                   \
	do {                                                                   \
		test_checks++;                                                 \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, \
			        __LINE__, #cond);                              \
			fprintf(stderr, __VA_ARGS__);                          \
			fprintf(stderr, "\n");                                 \
			if (ucaasauth_last_error())                            \
				fprintf(stderr, "  last error: %s\n",          \
				        ucaasauth_last_error());               \
			exit(1);                                               \
		}                                                              \
	} while (0)

#define CHECK_INT(a, b)                                                        \
	do {                                                                   \
		long long a_ = (long long)(a), b_ = (long long)(b);            \
		test_checks++;                                                 \
		if (a_ != b_)                                                  \
			test_fail_("%s == %s failed: %lld != %lld", #a, #b,    \
			           a_, b_);                                    \
	} while (0)

#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *a_ = (a), *b_ = (b);                               \
		test_checks++;                                                 \
		if (!a_ || !b_ || strcmp(a_, b_) != 0)                         \
			test_fail_("%s == %s failed: \"%s\" != \"%s\"", #a,    \
			           #b, a_ ? a_ : "(null)",                     \
			           b_ ? b_ : "(null)");                        \
	} while (0)

/* The last error names what it should (a file, a line, a key). */
#define CHECK_ERROR_HAS(needle)                                                \
	do {                                                                   \
		const char *e_ = ucaasauth_last_error();                       \
		test_checks++;                                                 \
		if (!e_ || !strstr(e_, (needle)))                              \
			test_fail_("last error lacks \"%s\": \"%s\"",          \
			           (needle), e_ ? e_ : "(null)");              \
	} while (0)

/* Writes a whole file with exactly `mode` (whatever the umask). */
static inline void write_file(const char *path, const void *data, size_t len,
                              mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	CHECK(fd >= 0);
	CHECK_INT(write(fd, data, len), (long long)len);
	CHECK_INT(fchmod(fd, mode), 0);
	CHECK_INT(close(fd), 0);
}

#define TEST_DONE()                                                            \
	do {                                                                   \
		printf("ok: %d checks\n", test_checks);                        \
		return 0;                                                      \
	} while (0)

#endif

/*
 * What every fuzz target provides, and the check its properties use.
 *
 * A target builds two ways (p11-kit's way): linked with libFuzzer, which
 * brings its own main() and searches for inputs; and linked with
 * fuzz-main.c, which feeds it every file of its committed corpus, so that
 * `meson test --suite fuzz` replays the corpus in every build.
 */
#ifndef UCAASAUTH_FUZZ_H
#define UCAASAUTH_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ucaasauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken property is a crash: libFuzzer keeps the input that broke it,
 * the replay fails the test. */
#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			const char *e_ = ucaasauth_last_error();               \
			fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n",      \
			        __FILE__, __LINE__, #cond);                    \
			if (e_)                                                \
				fprintf(stderr, "  last error: %s\n", e_);     \
			abort();                                               \
		}                                                              \
	} while (0)

#endif

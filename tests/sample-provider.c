/*
 * A sample provider module, for the tests and as a model for module
 * authors: its answer is driven by its configuration line.
 *
 *   provider = CONTROL sample MODE [name=NAME] [count=FILE] [lifetime=N]
 *                                  [open=N]
 *
 * MODE is what each fetch does:
 *   ok           "Authorization: Bearer sample-NAME" (NAME: the profile's
 *                name when not given), valid for lifetime=N seconds (0,
 *                the default: unknown, the profile's token_ttl)
 *   deny         UCAASAUTH_E_DENIED
 *   unavailable  UCAASAUTH_E_UNAVAILABLE
 *   crlf         a header with CR LF inside (the library must refuse it)
 *   weird        a status that is no UCAASAUTH_E_* at all
 *   silent       UCAASAUTH_E_DENIED without a word of detail
 *   @FILE        the first word of FILE, read at every fetch, is the mode
 *                (a test changes the answer of an open handle)
 * count=FILE gets one line appended per fetch; open=N makes open return N
 * (a negative status, or any number), without a word of detail.
 *
 * Built four ways (see tests/meson.build): as is; with -DSAMPLE_ABI=2 (a
 * module for another version of the interface); with -DSAMPLE_NO_ENTRY
 * (no ucaasauth_provider_v1 symbol); with -DSAMPLE_PREFIX='"hostile-"'
 * (another module, whose headers say so).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "ucaasauth.h"

#ifndef SAMPLE_ABI
#define SAMPLE_ABI UCAASAUTH_PROVIDER_ABI
#endif

#ifndef SAMPLE_PREFIX
#define SAMPLE_PREFIX "sample-"
#endif

#define SAMPLE_EXPORT __attribute__((visibility("default")))

struct sample {
	char *mode;
	char *name;
	char *count;
	long lifetime;
	void (*error)(const char *message);
};

static void sample_close(void *state)
{
	struct sample *s = state;

	if (!s)
		return;
	free(s->mode);
	free(s->name);
	free(s->count);
	free(s);
}

static bool mode_valid(const char *mode)
{
	static const char *const modes[] = {
		"ok", "deny", "unavailable", "crlf", "weird", "silent",
	};

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(mode, modes[i]) == 0)
			return true;
	return false;
}

static int say(const struct sample *s, int status, const char *what)
{
	char msg[200];

	snprintf(msg, sizeof(msg), "sample %s: %s", s->name, what);
	s->error(msg);
	return status;
}

static int sample_open(void **ret_state,
                       const struct ucaasauth_provider_args *args)
{
	struct sample *s;
	char msg[200];
	long open_status = 0;
	int r = 0;

	/* Fields are only added at the end: this one needs all of version
	 * 1's, the error callback included. */
	if (args->size < sizeof(*args))
		return UCAASAUTH_E_CONFIG;
	if (args->argc < 1) {
		args->error("sample: usage: sample MODE [name=NAME] "
		            "[count=FILE] [lifetime=N] [open=N]");
		return UCAASAUTH_E_CONFIG;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return UCAASAUTH_E_NOMEM;
	s->error = args->error;
	s->mode = strdup(args->argv[0]);
	if (!s->mode)
		r = UCAASAUTH_E_NOMEM;
	for (int i = 1; i < args->argc && r == 0; i++) {
		const char *a = args->argv[i];
		char *end;

		if (strncmp(a, "name=", 5) == 0 && !s->name) {
			s->name = strdup(a + 5);
			if (!s->name)
				r = UCAASAUTH_E_NOMEM;
		} else if (strncmp(a, "count=", 6) == 0 && !s->count) {
			s->count = strdup(a + 6);
			if (!s->count)
				r = UCAASAUTH_E_NOMEM;
		} else if (strncmp(a, "lifetime=", 9) == 0) {
			errno = 0;
			s->lifetime = strtol(a + 9, &end, 10);
			if (errno || *end || end == a + 9 || s->lifetime < 0) {
				snprintf(msg, sizeof(msg),
				         "sample: bad lifetime '%s'", a + 9);
				args->error(msg);
				r = UCAASAUTH_E_CONFIG;
			}
		} else if (strncmp(a, "open=", 5) == 0) {
			open_status = strtol(a + 5, NULL, 10);
		} else {
			snprintf(msg, sizeof(msg),
			         "sample: unknown argument '%s'", a);
			args->error(msg);
			r = UCAASAUTH_E_CONFIG;
		}
	}
	if (r == 0 && !s->name) {
		s->name = strdup(args->profile);
		if (!s->name)
			r = UCAASAUTH_E_NOMEM;
	}
	if (r == 0 && s->mode[0] != '@' && !mode_valid(s->mode)) {
		snprintf(msg, sizeof(msg), "sample: unknown mode '%s'",
		         s->mode);
		args->error(msg);
		r = UCAASAUTH_E_CONFIG;
	}
	if (r == 0 && open_status != 0)
		r = (int)open_status;
	if (r != 0) {
		sample_close(s);
		return r;
	}
	*ret_state = s;
	return 0;
}

static int sample_fetch(void *state, char *buf, size_t size, size_t *ret_len,
                        long *ret_lifetime)
{
	struct sample *s = state;
	char mode[32] = "";
	const char *m = s->mode;
	FILE *fp;
	int n;

	if (s->count) {
		fp = fopen(s->count, "ae");
		if (fp) {
			fputs("fetch\n", fp);
			fclose(fp);
		}
	}
	if (m[0] == '@') {
		fp = fopen(m + 1, "re");
		if (!fp || fscanf(fp, "%31s", mode) != 1)
			snprintf(mode, sizeof(mode), "unavailable");
		if (fp)
			fclose(fp);
		m = mode;
	}
	if (strcmp(m, "deny") == 0)
		return say(s, UCAASAUTH_E_DENIED, "denied");
	if (strcmp(m, "unavailable") == 0)
		return say(s, UCAASAUTH_E_UNAVAILABLE, "unavailable");
	if (strcmp(m, "weird") == 0)
		return -1000;
	if (strcmp(m, "silent") == 0)
		return UCAASAUTH_E_DENIED;
	if (strcmp(m, "crlf") == 0)
		n = snprintf(buf, size,
		             "Authorization: Bearer " SAMPLE_PREFIX "%s\r\n"
		             "X-Injected: 1",
		             s->name);
	else if (strcmp(m, "ok") == 0)
		n = snprintf(buf, size,
		             "Authorization: Bearer " SAMPLE_PREFIX "%s",
		             s->name);
	else
		return say(s, UCAASAUTH_E_UNAVAILABLE, "unknown mode in file");
	if (n < 0 || (size_t)n >= size)
		return say(s, UCAASAUTH_E_PROTOCOL, "header too long");
	*ret_len = (size_t)n;
	*ret_lifetime = s->lifetime;
	return 0;
}

#ifdef SAMPLE_NO_ENTRY
/* Everything but the entry symbol: not a libucaasauth provider. */
#define SAMPLE_ENTRY sample_provider_without_entry
#else
#define SAMPLE_ENTRY ucaasauth_provider_v1
#endif

extern SAMPLE_EXPORT const struct ucaasauth_provider SAMPLE_ENTRY;

SAMPLE_EXPORT const struct ucaasauth_provider SAMPLE_ENTRY = {
	.abi_version = SAMPLE_ABI,
	.name = "sample",
	.open = sample_open,
	.fetch = sample_fetch,
	.close = sample_close,
};

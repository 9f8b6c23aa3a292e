/* ucaas-auth keygen and store: the master key, and secrets read from a
 * terminal or standard input, never argv. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cache.h"

#include "cli.h"

#define INPUT_MAX (16 * 1024)

int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{"key-file", required_argument, NULL, 'k'},
		{0},
	};
	struct config *config = NULL;
	const struct profile *p;
	const char *key_file = NULL, *name;
	int c, r;

	while ((c = getopt_long(argc, argv, "k:", opts, NULL)) != -1) {
		if (c != 'k')
			return usage();
		key_file = optarg;
	}
	r = profile_arg(argc, argv, &name);
	if (r < 0)
		return r == -1 ? usage() : 2;
	if (!key_file) {
		r = load_profile(name, &config, &p);
		if (r < 0)
			return failed(r);
		key_file = p->key_file;
	}
	r = key_generate(key_file);
	if (r == 0)
		printf("wrote a new master key to %s\n", key_file);
	config_free(config);
	return r < 0 ? failed(r) : 0;
}

/* The signal that interrupted a secret's prompt: raised again once the
 * terminal has its echo back (OpenBSD's readpassphrase() does the same). */
static volatile sig_atomic_t prompt_signal;

static void prompt_caught(int sig)
{
	prompt_signal = sig;
}

static const int prompt_signals[] = {SIGINT, SIGQUIT, SIGTERM, SIGHUP};
#define N_PROMPT_SIGNALS (sizeof(prompt_signals) / sizeof(prompt_signals[0]))

/*
 * Asks the terminal on standard input for one answer of 1 to max bytes,
 * into out (max + 1 bytes), echo off for secrets; the prompt goes to
 * tty_fd. The answer is read with read(2), a byte at a time, into guarded
 * memory: stdio would keep a copy in a heap buffer that it frees unwiped,
 * and would read past the newline, so that the rest of an overlong answer
 * became the next one. The whole line is consumed, however long, so that
 * none of it is left for the next prompt or, after we exit, for the shell.
 * Messages name the prompt, never the answer.
 */
static int prompt(int tty_fd, const char *label, bool secret, char *out,
                  size_t max)
{
	struct sigaction caught = {.sa_handler = prompt_caught};
	struct sigaction saved[N_PROMPT_SIGNALS];
	struct termios old, quiet;
	bool handlers = false, restore = false;
	/* One byte more than max, to tell an answer that is too long. */
	size_t cap = max + 1, len = 0;
	char *line = sodium_malloc(cap + 1);
	int r = 0;

	if (!line)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	prompt_signal = 0;
	if (secret && tcgetattr(STDIN_FILENO, &old) == 0) {
		/* No SA_RESTART: a signal ends the read() below, and the
		 * echo is back before the signal takes its course. */
		sigemptyset(&caught.sa_mask);
		for (size_t i = 0; i < N_PROMPT_SIGNALS; i++)
			sigaction(prompt_signals[i], &caught, &saved[i]);
		handlers = true;
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		restore = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
	}
	/* Only now, with the echo off: what is typed after the prompt shows
	 * is never echoed, nor flushed. */
	dprintf(tty_fd, "%s: ", label);
	while (!prompt_signal) {
		char *c = line + (len < cap ? len : cap);
		ssize_t n = read(STDIN_FILENO, c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = fail_errno(UCAASAUTH_E_CREDENTIALS, errno,
			               "reading", "the terminal");
			break;
		}
		if (n == 0 || *c == '\n')
			break; /* end of file (Ctrl-D) or of the line */
		len++;
	}
	if (restore) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		dprintf(tty_fd, "\n");
	}
	if (handlers)
		for (size_t i = 0; i < N_PROMPT_SIGNALS; i++)
			sigaction(prompt_signals[i], &saved[i], NULL);
	if (prompt_signal) {
		sodium_free(line);
		raise(prompt_signal); /* as it would have been: usually death */
		return fail(UCAASAUTH_E_CREDENTIALS,
		            "%s: interrupted: nothing stored", label);
	}
	if (r == 0 && len == 0)
		r = fail(UCAASAUTH_E_CREDENTIALS,
		         "%s: an empty answer: nothing stored", label);
	if (r == 0 && len > max)
		r = fail(UCAASAUTH_E_CREDENTIALS,
		         "%s: longer than %zu bytes: nothing stored", label,
		         max);
	for (size_t i = 0; r == 0 && i < len; i++)
		if ((unsigned char)line[i] < ' ' || line[i] == 0x7f)
			r = fail(UCAASAUTH_E_CREDENTIALS,
			         "%s: a control character (only printable "
			         "characters can be stored): nothing stored",
			         label);
	if (r == 0) {
		memcpy(out, line, len);
		out[len] = 0;
	}
	sodium_free(line);
	return r;
}

/* The secrets as "key=value" lines, from a terminal's prompts or stdin;
 * never from argv, where every user could read them. */
static int read_secrets(const struct profile *p, struct secrets *secrets)
{
	char *input = sodium_malloc(INPUT_MAX + 1);
	size_t len = 0;
	int r = UCAASAUTH_E_CREDENTIALS;

	if (!input)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	if (isatty(STDIN_FILENO)) {
		unsigned needs = profile_needs(p);
		/* The answers come from standard input, the prompts go to
		 * the terminal even when standard error is redirected. */
		int tty = open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC);
		int to = tty >= 0 ? tty : STDERR_FILENO;

		r = 0;
		if (needs & NEEDS_APP_KEY)
			r = prompt(to, "App Key", true, secrets->app_key,
			           SECRET_MAX);
		if (r == 0 && (needs & NEEDS_LOGIN))
			r = prompt(to, "Email", false, secrets->email,
			           SECRET_MAX);
		if (r == 0 && (needs & NEEDS_LOGIN))
			r = prompt(to, "Password", true, secrets->password,
			           SECRET_MAX);
		if (tty >= 0)
			close(tty);
		goto out;
	}
	for (;;) {
		ssize_t n =
			read(STDIN_FILENO, input + len, INPUT_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = fail_errno(UCAASAUTH_E_CREDENTIALS, errno,
			               "reading", "standard input");
			goto out;
		}
		if (n == 0)
			break;
		len += n;
		if (len > INPUT_MAX) {
			r = fail(UCAASAUTH_E_CREDENTIALS,
			         "standard input: more than %d bytes",
			         INPUT_MAX);
			goto out;
		}
	}
	r = secrets_parse(secrets, input, len, "standard input");
out:
	sodium_free(input);
	return r;
}

int cmd_store(int argc, char **argv)
{
	struct config *config = NULL;
	struct secrets *secrets = NULL;
	const struct profile *p;
	const char *name;
	int r;

	if (no_options(argc, argv) < 0)
		return usage();
	r = profile_arg(argc, argv, &name);
	if (r < 0 || !name)
		return r == -2 ? 2 : usage();
	r = load_profile(name, &config, &p);
	if (r == 0) {
		secrets = secrets_new();
		if (!secrets)
			r = fail(UCAASAUTH_E_NOMEM, "out of memory");
	}
	if (r == 0)
		r = read_secrets(p, secrets);
	if (r == 0)
		r = cred_store(p, secrets);
	if (r == 0)
		fprintf(stderr, "stored the secrets of profile '%s' in %s\n",
		        p->name, p->credentials);
	secrets_free(secrets);
	config_free(config);
	return r < 0 ? failed(r) : 0;
}

/* ucaas-auth: options, the command table, what the commands share. */
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

static const char usage_text[] =
	"usage: ucaas-auth [--config FILE] COMMAND [ARGS]\n"
	"\n"
	"  keygen [--key-file PATH] [PROFILE]  make a new master key\n"
	"  store PROFILE                       encrypt secrets read from stdin\n"
	"  header [PROFILE]                    print the Authorization header\n"
	"  token [--json] [PROFILE]            print the token (token profiles)\n"
	"  status [PROFILE]                    show the cache state, no secret\n"
	"  flush [PROFILE]                     drop the host's cached token\n"
	"  reject [PROFILE]                    after a 401/403: drop the header\n"
	"                                      read from stdin if still current\n"
	"  curl [PROFILE] -- CURL-ARGS...      run curl with the header; on a\n"
	"                                      401/403, reject and retry once\n"
	"  check [PROFILE]                     validate a profile, no network\n"
	"\n"
	"See ucaas-auth(1).\n";

int usage(void)
{
	fputs(usage_text, stderr);
	return 2;
}

int failed(int status)
{
	const char *detail = ucaasauth_last_error();

	fprintf(stderr, "ucaas-auth: %s\n",
	        detail ? detail : ucaasauth_strerror(status));
	return 1;
}

int no_options(int argc, char **argv)
{
	static const struct option none[] = {{0}};

	return getopt_long(argc, argv, "", none, NULL) == -1 ? 0 : -1;
}

/* At most one PROFILE operand after the options. */
int profile_arg(int argc, char **argv, const char **ret)
{
	if (argc - optind > 1)
		return -1;
	*ret = optind < argc ? argv[optind] : NULL;
	if (*ret && !profile_name_valid(*ret)) {
		fprintf(stderr,
		        "ucaas-auth: '%s' is not a profile name (letters, "
		        "digits, '-', '_')\n",
		        *ret);
		return -2;
	}
	return 0;
}

int load_profile(const char *name, struct config **config,
                 const struct profile **ret)
{
	char path[PATH_MAX];
	int r;

	r = config_path(path, sizeof(path));
	if (r == 0)
		r = config_load(path, config);
	if (r == 0)
		r = config_find(*config, name, ret);
	return r;
}

int open_handle(int argc, char **argv, struct ucaasauth **ret)
{
	const char *name;
	int r = profile_arg(argc, argv, &name);

	if (r < 0)
		return r == -1 ? usage() : 2;
	r = ucaasauth_open(ret, name, 0);
	return r < 0 ? failed(r) : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} commands[] = {
		{"keygen", cmd_keygen}, {"store", cmd_store},
		{"header", cmd_header}, {"token", cmd_token},
		{"status", cmd_status}, {"flush", cmd_flush},
		{"check", cmd_check},   {"reject", cmd_reject},
		{"curl", cmd_curl},
	};
	int c;

	/* "+": options after the command belong to the command. */
	while ((c = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (setenv("UCAASAUTH_CONFIG", optarg, 1) < 0)
				return 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("ucaas-auth %s\n", UCAASAUTH_VERSION);
			return 0;
		default:
			return usage();
		}
	}
	if (optind >= argc)
		return usage();
	if (sodium_init() < 0) {
		fprintf(stderr, "ucaas-auth: libsodium failed to start\n");
		return 1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(argv[optind], commands[i].name) == 0) {
			/* Each command parses from its own name on. */
			argc -= optind;
			argv += optind;
			optind = 1;
			return commands[i].run(argc, argv);
		}
	fprintf(stderr, "ucaas-auth: unknown command '%s'\n", argv[optind]);
	return usage();
}

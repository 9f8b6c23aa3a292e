/*
 * The configuration parser. Every input is parsed as a file in a usual
 * directory, as one in "/" (the two ways relative paths are anchored), and
 * as one in a directory so deep that any relative path or default made
 * from it is too long. A refusal is UCAASAUTH_E_CONFIG, its message
 * starting with the file's name; an accepted file holds only profiles that
 * satisfy every rule the parser promises.
 */
#include <ctype.h>
#include <limits.h>
#include <string.h>

#include "fuzz.h"
#include "internal.h"

static const char *paths[] = {
	"/etc/ucaasauth/ucaasauth.conf", "/ucaasauth.conf",
	NULL, /* /ddd.../u.conf, its directory PATH_MAX - 11 bytes long */
};

static bool clean(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			return false;
	return true;
}

/* Letters, digits and the characters of `also`; NULL passes. */
static bool names(const char *s, const char *also)
{
	if (!s)
		return true;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(also, *s))
			return false;
	return true;
}

static void check_path(const char *p)
{
	FUZZ_CHECK(p == NULL || (p[0] == '/' && clean(p)));
}

/* One provider, or a stack whose every line has a control word; only exec
 * and modules take arguments, exec first the absolute path of a command. */
static void check_stack(const struct profile *p)
{
	FUZZ_CHECK(p->stack && p->n_stack >= 1 && p->n_stack <= STACK_MAX);
	FUZZ_CHECK(p->provider ==
	           (p->n_stack == 1 ? p->stack[0].kind : PROVIDER_STACK));
	for (size_t i = 0; i < p->n_stack; i++) {
		const struct stack_entry *e = &p->stack[i];

		FUZZ_CHECK(e->kind <= PROVIDER_MODULE);
		FUZZ_CHECK(e->control <= CONTROL_OPTIONAL);
		FUZZ_CHECK(p->n_stack == 1 || e->control != CONTROL_NONE);
		FUZZ_CHECK(e->name && e->name[0] && names(e->name, "-_"));
		FUZZ_CHECK(e->argv && e->argc >= 0 &&
		           e->argc <= STACK_ARGS_MAX && !e->argv[e->argc]);
		for (int k = 0; k < e->argc; k++)
			FUZZ_CHECK(e->argv[k] && e->argv[k][0] &&
			           clean(e->argv[k]) &&
			           !strpbrk(e->argv[k], " \t"));
		if (e->kind == PROVIDER_BASIC || e->kind == PROVIDER_LOGIN)
			FUZZ_CHECK(e->argc == 0);
		if (e->kind == PROVIDER_EXEC)
			FUZZ_CHECK(e->argc >= 1 && e->argv[0][0] == '/');
	}
}

static void check_profile(const struct profile *p)
{
	const char *b = p->api_base;

	FUZZ_CHECK(p->name && profile_name_valid(p->name));
	FUZZ_CHECK(b && clean(b) && !strchr(b, '@') && !strchr(b, ' '));
	FUZZ_CHECK(strncmp(b, "https://", 8) == 0 ||
	           strncmp(b, "http://127.0.0.1", 16) == 0 ||
	           strncmp(b, "http://localhost", 16) == 0 ||
	           strncmp(b, "http://[::1]", 12) == 0);
	FUZZ_CHECK(b[strlen(b) - 1] != '/');
	FUZZ_CHECK(p->app_id && p->app_id[0] && clean(p->app_id) &&
	           !strchr(p->app_id, ':') && !strchr(p->app_id, ' '));
	FUZZ_CHECK(p->credentials && p->key_file);
	check_path(p->credentials);
	check_path(p->key_file);
	check_path(p->ca_file);
	FUZZ_CHECK(p->socket);
	check_path(p->socket);
	FUZZ_CHECK(names(p->allow_users, "_.-, \t"));
	FUZZ_CHECK(names(p->allow_groups, "_.-, \t"));
	check_path(p->module_dir);
	FUZZ_CHECK(p->module_dir);
	FUZZ_CHECK(names(p->exec_env, "_ \t"));
	check_stack(p);
	FUZZ_CHECK(p->cache == CACHE_SHARED || p->cache == CACHE_PROCESS ||
	           p->cache == CACHE_DAEMON);
	FUZZ_CHECK(p->token_ttl >= 1 && p->token_ttl <= 86400);
	FUZZ_CHECK(p->expiry_margin >= 0 &&
	           p->expiry_margin <= p->refresh_ahead &&
	           p->refresh_ahead < p->token_ttl);
	FUZZ_CHECK(p->wait_timeout >= 1 && p->connect_timeout >= 1 &&
	           p->timeout >= 1);
	FUZZ_CHECK(p->line >= 1);
}

static void parse(const uint8_t *data, size_t size, const char *path)
{
	const struct profile *p;
	struct config *config = NULL;
	int r;

	r = config_parse((const char *)data, size, path, &config);
	if (r < 0) {
		size_t n = strlen(path);
		FUZZ_CHECK(r == UCAASAUTH_E_CONFIG);
		FUZZ_CHECK(config == NULL);
		FUZZ_CHECK(strncmp(ucaasauth_last_error(), path,
		                   n < 1000 ? n : 1000) == 0);
		return;
	}
	FUZZ_CHECK(r == 0 && config && strcmp(config->path, path) == 0);
	for (size_t i = 0; i < config->n_profiles; i++) {
		check_profile(&config->profiles[i]);
		/* Names are unique: each finds itself. */
		FUZZ_CHECK(config_find(config, config->profiles[i].name, &p) ==
		                   0 &&
		           p == &config->profiles[i]);
	}
	/* The default: default_profile, which must exist, else "default". */
	r = config_find(config, NULL, &p);
	if (config->default_profile)
		FUZZ_CHECK(r == 0 &&
		           strcmp(p->name, config->default_profile) == 0);
	else
		FUZZ_CHECK(r == 0 ? strcmp(p->name, "default") == 0
		                  : r == UCAASAUTH_E_CONFIG);
	config_free(config);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char deep[PATH_MAX];

	if (!deep[0]) {
		memset(deep, 'd', PATH_MAX - 10);
		deep[0] = '/';
		strcpy(deep + PATH_MAX - 11, "/u.conf");
		paths[2] = deep;
	}
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
		parse(data, size, paths[i]);
	return 0;
}

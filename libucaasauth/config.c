/* The configuration file: profiles in an INI-style file. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#define CONFIG_MAX (1024 * 1024)
#define LINE_MAX_LEN 4096
#define VALUE_MAX 1024

/* Where an error is: "file:line: key". */
struct where {
	const char *path;
	int line;
};

PRINTF(2, 3)
static int config_fail(const struct where *w, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return fail(UCAASAUTH_E_CONFIG, "%s:%d: %s", w->path, w->line, msg);
}

bool profile_name_valid(const char *name)
{
	size_t i;

	for (i = 0; name[i]; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' &&
		    name[i] != '_')
			return false;
	return i > 0 && i <= PROFILE_NAME_MAX;
}

const char *provider_name(enum provider_kind kind)
{
	switch (kind) {
	case PROVIDER_BASIC:
		return "basic";
	case PROVIDER_LOGIN:
		return "login";
	case PROVIDER_EXEC:
		return "exec";
	case PROVIDER_MODULE:
		return "module";
	case PROVIDER_STACK:
		break;
	}
	return "stack";
}

const char *control_name(enum control control)
{
	static const char *const names[] = {
		"required", "required", "requisite", "sufficient", "optional",
	};

	return names[control];
}

int config_path(char *buf, size_t size)
{
	const char *env = secure_getenv("UCAASAUTH_CONFIG");
	const char *home = secure_getenv("HOME");
	int n;

	if (env && *env) {
		if (snprintf(buf, size, "%s", env) >= (int)size)
			return fail(UCAASAUTH_E_CONFIG,
			            "UCAASAUTH_CONFIG: path too long");
		return 0;
	}
	if (home && home[0] == '/') {
		n = snprintf(buf, size, "%s/.config/ucaasauth/ucaasauth.conf",
		             home);
		if (n < (int)size && access(buf, F_OK) == 0)
			return 0;
	}
	if (access("/etc/ucaasauth/ucaasauth.conf", F_OK) == 0) {
		snprintf(buf, size, "/etc/ucaasauth/ucaasauth.conf");
		return 0;
	}
	return fail(UCAASAUTH_E_CONFIG,
	            "no configuration file: set UCAASAUTH_CONFIG, or create "
	            "~/.config/ucaasauth/ucaasauth.conf or "
	            "/etc/ucaasauth/ucaasauth.conf");
}

static void profile_clear(struct profile *p)
{
	free(p->name);
	free(p->api_base);
	free(p->app_id);
	free(p->credentials);
	free(p->key_file);
	free(p->ca_file);
	free(p->socket);
	free(p->allow_users);
	free(p->allow_groups);
	free(p->daemon_user);
	free(p->module_dir);
	free(p->exec_env);
	for (size_t i = 0; i < p->n_stack; i++) {
		for (int k = 0; k < p->stack[i].argc; k++)
			free(p->stack[i].argv[k]);
		free(p->stack[i].argv);
		free(p->stack[i].name);
	}
	free(p->stack);
}

void config_free(struct config *config)
{
	if (!config)
		return;
	for (size_t i = 0; i < config->n_profiles; i++)
		profile_clear(&config->profiles[i]);
	free(config->profiles);
	free(config->default_profile);
	free(config->path);
	free(config);
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = 0;
	return s;
}

static int set_string(const struct where *w, const char *key, const char *value,
                      char **field)
{
	if (*field)
		return config_fail(w, "%s: duplicate key", key);
	*field = strdup(value);
	if (!*field)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	return 0;
}

/* A printable word: no spaces, no control characters. */
static bool is_word(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s == 0x7f)
			return false;
	return true;
}

static int set_path(const struct where *w, const char *key, const char *value,
                    const char *dir, char **field)
{
	char buf[PATH_MAX];

	if (!*value)
		return config_fail(w, "%s: empty path", key);
	for (const char *c = value; *c; c++)
		if ((unsigned char)*c < ' ' || *c == 0x7f)
			return config_fail(w, "%s: control character in path",
			                   key);
	if (value[0] == '/')
		return set_string(w, key, value, field);
	/* Relative paths are anchored at the configuration file, never at
	 * whatever directory the program happens to run in. */
	if (snprintf(buf, sizeof(buf), "%s/%s", dir, value) >= (int)sizeof(buf))
		return config_fail(w, "%s: path too long", key);
	return set_string(w, key, buf, field);
}

static int set_int(const struct where *w, const char *key, const char *value,
                   int min, int max, int *field, unsigned *seen, unsigned bit)
{
	char *end;
	long v;

	if (*seen & bit)
		return config_fail(w, "%s: duplicate key", key);
	if (!isdigit((unsigned char)value[0]))
		return config_fail(w, "%s: '%s' is not a number of seconds",
		                   key, value);
	errno = 0;
	v = strtol(value, &end, 10);
	if (*end || errno)
		return config_fail(w, "%s: '%s' is not a number of seconds",
		                   key, value);
	if (v < min || v > max)
		return config_fail(w, "%s: %ld is out of range (%d to %d)", key,
		                   v, min, max);
	*field = (int)v;
	*seen |= bit;
	return 0;
}

/* http:// is only for a server on this host (the mock server, a local
 * proxy); anything that crosses a network must be https://. */
static bool api_base_valid(const char *v)
{
	static const char *const local[] = {
		"http://127.0.0.1",
		"http://localhost",
		"http://[::1]",
	};
	const char *rest = NULL;

	/* No userinfo anywhere: "http://127.0.0.1:80@example.com" is a
	 * request to example.com. */
	if (!is_word(v) || strlen(v) > 512 || strchr(v, '@') ||
	    strchr(v, '?') || strchr(v, '#') || strchr(v, '\\'))
		return false;
	if (strncmp(v, "https://", 8) == 0)
		return v[8] != 0 && v[8] != '/' && v[8] != ':';
	for (size_t i = 0; i < ARRAY_SIZE(local) && !rest; i++)
		if (strncmp(v, local[i], strlen(local[i])) == 0)
			rest = v + strlen(local[i]);
	if (!rest)
		return false;
	/* The host must end there: an optional port, then a path or
	 * nothing ("http://localhost.example.com" is not local). */
	if (*rest == ':') {
		const char *d = ++rest;
		while (isdigit((unsigned char)*rest))
			rest++;
		if (rest == d)
			return false;
	}
	return *rest == 0 || *rest == '/';
}

/* "www-data, 1001 ops": user or group names, or numbers, separated by
 * commas or spaces. */
static bool id_list_valid(const char *v)
{
	size_t words = 0;

	while (*v) {
		size_t n = strspn(v, ", \t");
		v += n;
		n = strcspn(v, ", \t");
		if (n == 0)
			break;
		if (n > 32)
			return false;
		for (size_t i = 0; i < n; i++)
			if (!isalnum((unsigned char)v[i]) && v[i] != '_' &&
			    v[i] != '-' && v[i] != '.')
				return false;
		v += n;
		words++;
	}
	return words > 0;
}

enum {
	SEEN_TTL = 1 << 0,
	SEEN_AHEAD = 1 << 1,
	SEEN_MARGIN = 1 << 2,
	SEEN_WAIT = 1 << 3,
	SEEN_CONNECT = 1 << 4,
	SEEN_TIMEOUT = 1 << 5,
	SEEN_CACHE = 1 << 7,
	SEEN_REJECT_AGE = 1 << 8,
};

static const char *const control_words[] = {
	"required",
	"requisite",
	"sufficient",
	"optional",
};

static const char *const kind_names[] = {
	[PROVIDER_BASIC] = "basic",
	[PROVIDER_LOGIN] = "login",
	[PROVIDER_EXEC] = "exec",
};

/* A module's name becomes a file name: nothing that could leave the
 * module directory. */
static bool module_name_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!islower((unsigned char)s[i]) &&
		    !isdigit((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
			return false;
	return i > 0 && i <= 64;
}

/* provider = [CONTROL] NAME [ARGS...], one line per provider, in order:
 * the way a pam.d file stacks modules. */
static int set_provider(const struct where *w, char *value, struct profile *p)
{
	char *words[STACK_ARGS_MAX + 2], *save = NULL;
	struct stack_entry *stack, *e;
	size_t n = 0, first = 0;
	enum control control = CONTROL_NONE;

	for (char *t = strtok_r(value, " \t", &save); t;
	     t = strtok_r(NULL, " \t", &save)) {
		if (n == ARRAY_SIZE(words))
			return config_fail(w,
			                   "provider: more than %d arguments",
			                   STACK_ARGS_MAX);
		words[n++] = t;
	}
	if (n == 0)
		return config_fail(w, "provider: empty value");
	for (size_t i = 0; i < ARRAY_SIZE(control_words); i++)
		if (strcmp(words[0], control_words[i]) == 0) {
			control = (enum control)(i + 1);
			first = 1;
		}
	if (first == n)
		return config_fail(w, "provider: '%s' names no provider",
		                   words[0]);
	if (n - first - 1 > STACK_ARGS_MAX)
		return config_fail(w, "provider: more than %d arguments",
		                   STACK_ARGS_MAX);
	if (p->n_stack == STACK_MAX)
		return config_fail(w, "provider: more than %d providers",
		                   STACK_MAX);
	stack = realloc(p->stack, (p->n_stack + 1) * sizeof(*stack));
	if (!stack)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	p->stack = stack;
	e = &stack[p->n_stack];
	*e = (struct stack_entry){
		.control = control, .line = w->line, .kind = PROVIDER_MODULE};
	for (size_t k = 0; k < ARRAY_SIZE(kind_names); k++) {
		if (strcmp(words[first], kind_names[k]) == 0)
			e->kind = (enum provider_kind)k;
		/* "mandatory basic" is a misspelt control word, not a module
		 * named "mandatory". */
		if (!first && n > 1 && strcmp(words[1], kind_names[k]) == 0)
			return config_fail(
				w,
				"provider: unknown control word '%s' "
				"(expected required, requisite, "
				"sufficient or optional)",
				words[0]);
	}
	if (e->kind == PROVIDER_MODULE && !module_name_valid(words[first]))
		return config_fail(
			w,
			"provider: '%s' is neither basic, login, exec "
			"nor a module name (lower-case letters, "
			"digits, '-', '_')",
			words[first]);
	if ((e->kind == PROVIDER_BASIC || e->kind == PROVIDER_LOGIN) &&
	    n > first + 1)
		return config_fail(w,
		                   "provider: arguments are not supported by "
		                   "the '%s' provider",
		                   words[first]);
	if (e->kind == PROVIDER_EXEC &&
	    (n < first + 2 || words[first + 1][0] != '/'))
		return config_fail(
			w, "provider: exec needs the absolute path of a "
			   "command (no shell is involved)");
	e->name = strdup(words[first]);
	e->argc = (int)(n - first - 1);
	e->argv = calloc(e->argc + 1, sizeof(*e->argv));
	if (!e->argv)
		e->argc = 0;
	p->n_stack++;
	if (!e->name || !e->argv)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	for (int i = 0; i < e->argc; i++) {
		e->argv[i] = strdup(words[first + 1 + i]);
		if (!e->argv[i])
			return fail(UCAASAUTH_E_NOMEM, "out of memory");
	}
	return 0;
}

/* Names of environment variables: exec_env = HOME KRB5CCNAME */
static bool env_names_valid(const char *v)
{
	size_t words = 0;

	for (;;) {
		v += strspn(v, " \t");
		if (!*v)
			return words > 0;
		if (!isalpha((unsigned char)*v) && *v != '_')
			return false;
		while (isalnum((unsigned char)*v) || *v == '_')
			v++;
		if (*v && *v != ' ' && *v != '\t')
			return false;
		words++;
	}
}

static int set_key(const struct where *w, const char *key, char *value,
                   const char *dir, struct profile *p, unsigned *seen)
{
	if (strlen(value) > VALUE_MAX)
		return config_fail(w, "%s: value longer than %d bytes", key,
		                   VALUE_MAX);
	/* The line check lets DEL through; it would reach an exec
	 * provider's arguments. */
	if (strchr(value, 0x7f))
		return config_fail(w, "%s: control character in value", key);
	if (strcmp(key, "api_base") == 0) {
		size_t n = strlen(value);
		while (n > 0 && value[n - 1] == '/')
			value[--n] = 0;
		if (!api_base_valid(value))
			return config_fail(w,
			                   "api_base: '%s' is not an https:// "
			                   "URL (http:// only for 127.0.0.1, "
			                   "localhost or [::1])",
			                   value);
		return set_string(w, key, value, &p->api_base);
	}
	if (strcmp(key, "app_id") == 0) {
		/* A ':' would make "APP_ID:APP_KEY" ambiguous. */
		if (!is_word(value) || strchr(value, ':') ||
		    strlen(value) > 256)
			return config_fail(w,
			                   "app_id: '%s' must be printable, "
			                   "without spaces or ':'",
			                   value);
		return set_string(w, key, value, &p->app_id);
	}
	if (strcmp(key, "credentials") == 0)
		return set_path(w, key, value, dir, &p->credentials);
	if (strcmp(key, "key_file") == 0)
		return set_path(w, key, value, dir, &p->key_file);
	if (strcmp(key, "ca_file") == 0)
		return set_path(w, key, value, dir, &p->ca_file);
	if (strcmp(key, "socket") == 0)
		return set_path(w, key, value, dir, &p->socket);
	if (strcmp(key, "allow_users") == 0 ||
	    strcmp(key, "allow_groups") == 0) {
		if (!id_list_valid(value))
			return config_fail(w,
			                   "%s: '%s' is not a list of names or "
			                   "numeric ids",
			                   key, value);
		return set_string(w, key, value,
		                  key[6] == 'u' ? &p->allow_users
		                                : &p->allow_groups);
	}
	if (strcmp(key, "daemon_user") == 0) {
		/* One name or uid: who clients accept as the daemon. */
		if (!id_list_valid(value) || value[strcspn(value, ", \t")])
			return config_fail(w,
			                   "daemon_user: '%s' is not one user "
			                   "name or numeric uid",
			                   value);
		return set_string(w, key, value, &p->daemon_user);
	}
	if (strcmp(key, "provider") == 0)
		return set_provider(w, value, p);
	if (strcmp(key, "module_dir") == 0) {
		if (value[0] != '/')
			return config_fail(
				w,
				"module_dir: '%s' is not an absolute "
				"path",
				value);
		return set_path(w, key, value, dir, &p->module_dir);
	}
	if (strcmp(key, "exec_env") == 0) {
		if (!env_names_valid(value))
			return config_fail(w,
			                   "exec_env: '%s' is not a list of "
			                   "variable names",
			                   value);
		return set_string(w, key, value, &p->exec_env);
	}
	if (strcmp(key, "cache") == 0) {
		if (*seen & SEEN_CACHE)
			return config_fail(w, "cache: duplicate key");
		if (strcmp(value, "shared") == 0)
			p->cache = CACHE_SHARED;
		else if (strcmp(value, "process") == 0)
			p->cache = CACHE_PROCESS;
		else if (strcmp(value, "daemon") == 0)
			p->cache = CACHE_DAEMON;
		else
			return config_fail(w,
			                   "cache: '%s' is not shared, process "
			                   "or daemon",
			                   value);
		*seen |= SEEN_CACHE;
		return 0;
	}
	if (strcmp(key, "token_ttl") == 0)
		return set_int(w, key, value, 1, 86400, &p->token_ttl, seen,
		               SEEN_TTL);
	if (strcmp(key, "refresh_ahead") == 0)
		return set_int(w, key, value, 0, 86400, &p->refresh_ahead, seen,
		               SEEN_AHEAD);
	if (strcmp(key, "expiry_margin") == 0)
		return set_int(w, key, value, 0, 86400, &p->expiry_margin, seen,
		               SEEN_MARGIN);
	if (strcmp(key, "reject_min_age") == 0)
		return set_int(w, key, value, 0, 86400, &p->reject_min_age,
		               seen, SEEN_REJECT_AGE);
	if (strcmp(key, "wait_timeout") == 0)
		return set_int(w, key, value, 1, 600, &p->wait_timeout, seen,
		               SEEN_WAIT);
	if (strcmp(key, "connect_timeout") == 0)
		return set_int(w, key, value, 1, 300, &p->connect_timeout, seen,
		               SEEN_CONNECT);
	if (strcmp(key, "timeout") == 0)
		return set_int(w, key, value, 1, 600, &p->timeout, seen,
		               SEEN_TIMEOUT);
	return config_fail(w, "%s: unknown key", key);
}

/* Defaults, required keys and the relations between timings. */
static int finish_profile(const struct config *config, struct profile *p,
                          const char *dir)
{
	struct where w = {config->path, p->line};
	char buf[PATH_MAX];

	if (!p->api_base)
		return config_fail(&w, "profile '%s': missing key api_base",
		                   p->name);
	if (!p->app_id)
		return config_fail(&w, "profile '%s': missing key app_id",
		                   p->name);
	if (!p->credentials) {
		if (snprintf(buf, sizeof(buf), "%s/%s.cred", dir, p->name) >=
		    (int)sizeof(buf))
			return config_fail(&w, "credentials: path too long");
		if (set_string(&w, "credentials", buf, &p->credentials) < 0)
			return UCAASAUTH_E_NOMEM;
	}
	if (!p->key_file) {
		if (snprintf(buf, sizeof(buf), "%s/master.key", dir) >=
		    (int)sizeof(buf))
			return config_fail(&w, "key_file: path too long");
		if (set_string(&w, "key_file", buf, &p->key_file) < 0)
			return UCAASAUTH_E_NOMEM;
	}
	if (p->n_stack == 0) {
		/* No provider line: token login, as the API documents. */
		char login[] = "login";
		int r = set_provider(&w, login, p);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; p->n_stack > 1 && i < p->n_stack; i++)
		if (p->stack[i].control == CONTROL_NONE) {
			w.line = p->stack[i].line;
			return config_fail(
				&w, "provider: in a stack of several "
				    "providers each line needs a control "
				    "word (required, requisite, sufficient "
				    "or optional)");
		}
	p->provider = p->n_stack == 1 ? p->stack[0].kind : PROVIDER_STACK;
	if (!p->module_dir && set_string(&w, "module_dir", UCAASAUTH_MODULE_DIR,
	                                 &p->module_dir) < 0)
		return UCAASAUTH_E_NOMEM;
	if (!p->socket &&
	    set_string(&w, "socket", "/run/ucaasauth/ucaas-authd.sock",
	               &p->socket) < 0)
		return UCAASAUTH_E_NOMEM;
	/* The user tools/ucaas-authd.service runs the daemon as. */
	if (!p->daemon_user &&
	    set_string(&w, "daemon_user", "ucaasauth", &p->daemon_user) < 0)
		return UCAASAUTH_E_NOMEM;
	if (p->refresh_ahead >= p->token_ttl)
		return config_fail(&w,
		                   "profile '%s': refresh_ahead (%d) must be "
		                   "less than token_ttl (%d)",
		                   p->name, p->refresh_ahead, p->token_ttl);
	if (p->expiry_margin > p->refresh_ahead)
		return config_fail(&w,
		                   "profile '%s': expiry_margin (%d) must not "
		                   "exceed refresh_ahead (%d)",
		                   p->name, p->expiry_margin, p->refresh_ahead);
	return 0;
}

static int new_profile(struct config *config, const struct where *w,
                       const char *name, struct profile **ret)
{
	struct profile *profiles, *p;

	if (!profile_name_valid(name))
		return config_fail(w,
		                   "profile name '%s' must be 1 to %d letters, "
		                   "digits, '-' or '_'",
		                   name, PROFILE_NAME_MAX);
	for (size_t i = 0; i < config->n_profiles; i++)
		if (strcmp(config->profiles[i].name, name) == 0)
			return config_fail(w,
			                   "profile '%s' already defined at "
			                   "line %d",
			                   name, config->profiles[i].line);
	profiles = realloc(config->profiles,
	                   (config->n_profiles + 1) * sizeof(*profiles));
	if (!profiles)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	config->profiles = profiles;
	p = &profiles[config->n_profiles];
	*p = (struct profile){
		.name = strdup(name),
		.cache = CACHE_SHARED,
		.token_ttl = 900,     /* the API documents 15 minutes */
		.refresh_ahead = 300, /* the last 5 minutes: advisory */
		.expiry_margin = 60,  /* the last minute: mandatory */
		.wait_timeout = 20,
		.connect_timeout = 5,
		.timeout = 15,
		/* A token the API refuses within 30 s of its issue is not
		 * stale: replacing it at once on every refusal is a storm. */
		.reject_min_age = 30,
		.line = w->line,
	};
	if (!p->name)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	config->n_profiles++;
	*ret = p;
	return 0;
}

/* One line, already split from the text and NUL-terminated. */
static int parse_line(struct config *config, const struct where *w, char *line,
                      const char *dir, struct profile **cur, unsigned *seen)
{
	char *s = trim(line), *eq, *key, *value;
	int r;

	for (char *c = s; *c; c++)
		if ((unsigned char)*c < ' ' && *c != '\t')
			return config_fail(w, "control character in line");
	if (!*s || *s == '#' || *s == ';')
		return 0;
	if (*s == '[') {
		size_t n = strlen(s);
		if (s[n - 1] != ']')
			return config_fail(w, "section header without ']'");
		s[n - 1] = 0;
		s = trim(s + 1);
		if (strncmp(s, "profile", 7) != 0 ||
		    (s[7] != ' ' && s[7] != '\t'))
			return config_fail(w,
			                   "unknown section '[%s]' (expected "
			                   "'[profile NAME]')",
			                   s);
		if (*cur) {
			r = finish_profile(config, *cur, dir);
			if (r < 0)
				return r;
		}
		*seen = 0;
		return new_profile(config, w, trim(s + 7), cur);
	}
	eq = strchr(s, '=');
	if (!eq)
		return config_fail(
			w, "expected 'key = value' or '[profile NAME]'");
	*eq = 0;
	key = trim(s);
	value = trim(eq + 1);
	if (!*key)
		return config_fail(w, "missing key before '='");
	if (!*cur) {
		if (strcmp(key, "default_profile") != 0)
			return config_fail(w,
			                   "%s: only default_profile may come "
			                   "before the first [profile NAME]",
			                   key);
		if (!profile_name_valid(value))
			return config_fail(w,
			                   "default_profile: '%s' is not a "
			                   "profile name",
			                   value);
		config->default_line = w->line;
		return set_string(w, key, value, &config->default_profile);
	}
	return set_key(w, key, value, dir, *cur, seen);
}

int config_parse(const char *text, size_t len, const char *path,
                 struct config **ret)
{
	struct config *config;
	struct profile *cur = NULL;
	char line[LINE_MAX_LEN + 1], dir[PATH_MAX];
	struct where w = {path, 0};
	unsigned seen = 0;
	const char *slash;
	size_t pos = 0;
	int r = 0;

	slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path),
	                  path) >= (int)sizeof(dir))
		return fail(UCAASAUTH_E_CONFIG, "%s: path too long", path);
	if (slash == path)
		snprintf(dir, sizeof(dir), "/");

	config = calloc(1, sizeof(*config));
	if (!config)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	config->path = strdup(path);
	if (!config->path) {
		r = fail(UCAASAUTH_E_NOMEM, "out of memory");
		goto out;
	}
	w.path = config->path;
	while (pos < len) {
		const char *end = memchr(text + pos, '\n', len - pos);
		size_t n = (end ? (size_t)(end - text) : len) - pos;

		w.line++;
		if (n > LINE_MAX_LEN) {
			r = config_fail(&w, "line longer than %d bytes",
			                LINE_MAX_LEN);
			goto out;
		}
		if (memchr(text + pos, 0, n)) {
			r = config_fail(&w, "NUL byte in line");
			goto out;
		}
		memcpy(line, text + pos, n);
		line[n] = 0;
		if (n > 0 && line[n - 1] == '\r')
			line[n - 1] = 0;
		r = parse_line(config, &w, line, dir, &cur, &seen);
		if (r < 0)
			goto out;
		pos += n + 1;
	}
	if (cur) {
		r = finish_profile(config, cur, dir);
		if (r < 0)
			goto out;
	}
	if (config->default_profile) {
		const struct profile *p;
		w.line = config->default_line;
		if (config_find(config, config->default_profile, &p) < 0) {
			r = config_fail(&w, "default_profile: no profile '%s'",
			                config->default_profile);
			goto out;
		}
	}
	*ret = config;
	return 0;
out:
	config_free(config);
	return r;
}

int config_load(const char *path, struct config **ret)
{
	char abs[PATH_MAX];
	uint8_t *text;
	size_t len;
	int r;

	/* Relative paths inside are anchored at the file's directory: that
	 * must not depend on the directory the program runs in. */
	if (path[0] != '/') {
		if (!realpath(path, abs))
			return fail_errno(UCAASAUTH_E_CONFIG, errno,
			                  "configuration file", path);
		path = abs;
	}
	/* Not secret, but whoever can write it decides where passwords are
	 * sent: owned by us or root, writable by nobody else. */
	r = file_read(path, "configuration file", OWNER_SELF_OR_ROOT,
	              CONFIG_MAX, false, UCAASAUTH_E_CONFIG, &text, &len);
	if (r < 0)
		return r;
	r = config_parse((const char *)text, len, path, ret);
	free(text);
	return r;
}

int config_find(const struct config *config, const char *name,
                const struct profile **ret)
{
	const char *want = name                      ? name
	                   : config->default_profile ? config->default_profile
	                                             : "default";

	for (size_t i = 0; i < config->n_profiles; i++)
		if (strcmp(config->profiles[i].name, want) == 0) {
			*ret = &config->profiles[i];
			return 0;
		}
	if (!name && !config->default_profile)
		return fail(UCAASAUTH_E_CONFIG,
		            "%s: no profile named and no default_profile set "
		            "(nor a profile named 'default')",
		            config->path);
	return fail(UCAASAUTH_E_CONFIG, "%s: no profile '%s'", config->path,
	            want);
}

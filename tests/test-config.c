/*
 * The configuration file: what it accepts, the defaults it fills in, and
 * every way it refuses a file, each refusal naming the file, the line and
 * the key at fault.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"

static char tmp[] = "/tmp/test-config.XXXXXX";
static char conf_path[PATH_MAX];
static pid_t main_pid;

/* A minimal valid profile: the section on line 1, keys on lines 2 and 3,
 * so a key appended after it is on line 4. */
#define GOOD_PROFILE                                                           \
	"[profile p]\n"                                                        \
	"api_base = https://api.enablex.io/ucaas/v1\n"                         \
	"app_id = app\n"

/* Parses text of a given length that must be refused with E_CONFIG, the
 * detail naming "path:line:" and `needle` (the key, or what is wrong). */
#define REFUSED_N(text, len, line, needle)                                     \
	do {                                                                   \
		struct config *c_ = NULL;                                      \
		char at_[PATH_MAX + 32];                                       \
		CHECK_INT(config_parse((text), (len), conf_path, &c_),         \
		          UCAASAUTH_E_CONFIG);                                 \
		CHECK(c_ == NULL);                                             \
		snprintf(at_, sizeof(at_), "%s:%d:", conf_path, (line));       \
		CHECK_ERROR_HAS(at_);                                          \
		CHECK_ERROR_HAS(needle);                                       \
	} while (0)

#define REFUSED(text, line, needle)                                            \
	REFUSED_N((text), strlen(text), (line), (needle))

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
	return remove(path);
}

static void cleanup(void)
{
	if (getpid() == main_pid)
		nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int parse(const char *text, struct config **ret)
{
	return config_parse(text, strlen(text), conf_path, ret);
}

static char *in_tmp(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", tmp, name);
	return buf;
}

static void test_good_file(void)
{
	static const char text[] =
		"# libucaasauth test configuration\r\n"           /* 1 */
		"; a comment in the other style\r\n"              /* 2 */
		"\r\n"                                            /* 3 */
		"   default_profile   =   beta   \r\n"            /* 4 */
		"\t\r\n"                                          /* 5 */
		"[profile alpha]\r\n"                             /* 6 */
		"api_base = https://api.enablex.io/ucaas/v1/\r\n" /* 7 */
		"app_id = alpha-app\r\n"                          /* 8 */
		"provider = basic\r\n"                            /* 9 */
		"[ profile   beta ]\n"                            /* 10 */
		"\tapi_base=http://127.0.0.1:8080/ucaas/v1//\n"   /* 11 */
		"  app_id\t=\tbeta_app  \n"                       /* 12 */
		"provider = required login\n"                     /* 13 */
		"token_ttl = 1200\n"                              /* 14 */
		"refresh_ahead = 600\n"                           /* 15 */
		"expiry_margin = 600\n"                           /* 16 */
		"wait_timeout = 7\n"                              /* 17 */
		"connect_timeout = 3\n"                           /* 18 */
		"timeout = 30\n"                                  /* 19 */
		"cache = process\n"                               /* 20 */
		"credentials = sub/beta.cred\n"                   /* 21 */
		"key_file = /etc/keys/beta.key\n"                 /* 22 */
		"ca_file = ca.pem\n"                              /* 23 */
		"  # a last comment without a newline";           /* 24 */
	struct config *config = NULL;
	const struct profile *p;
	char buf[PATH_MAX];

	CHECK_INT(parse(text, &config), UCAASAUTH_OK);
	CHECK(config != NULL);
	CHECK_STR(config->path, conf_path);
	CHECK_INT(config->n_profiles, 2);
	CHECK_STR(config->default_profile, "beta");

	p = &config->profiles[0];
	CHECK_STR(p->name, "alpha");
	CHECK_INT(p->line, 6);
	CHECK_STR(p->api_base, "https://api.enablex.io/ucaas/v1");
	CHECK_STR(p->app_id, "alpha-app");
	CHECK_INT(p->provider, PROVIDER_BASIC);
	CHECK_INT(p->cache, CACHE_SHARED);
	CHECK_STR(p->credentials, in_tmp(buf, sizeof(buf), "alpha.cred"));
	CHECK_STR(p->key_file, in_tmp(buf, sizeof(buf), "master.key"));
	CHECK(p->ca_file == NULL);

	p = &config->profiles[1];
	CHECK_STR(p->name, "beta");
	CHECK_INT(p->line, 10);
	CHECK_STR(p->api_base, "http://127.0.0.1:8080/ucaas/v1");
	CHECK_STR(p->app_id, "beta_app");
	CHECK_INT(p->provider, PROVIDER_LOGIN);
	CHECK_INT(p->token_ttl, 1200);
	CHECK_INT(p->refresh_ahead, 600);
	CHECK_INT(p->expiry_margin, 600);
	CHECK_INT(p->wait_timeout, 7);
	CHECK_INT(p->connect_timeout, 3);
	CHECK_INT(p->timeout, 30);
	CHECK_INT(p->cache, CACHE_PROCESS);
	CHECK_STR(p->credentials, in_tmp(buf, sizeof(buf), "sub/beta.cred"));
	CHECK_STR(p->key_file, "/etc/keys/beta.key");
	CHECK_STR(p->ca_file, in_tmp(buf, sizeof(buf), "ca.pem"));

	/* NULL picks default_profile; names are exact. */
	CHECK_INT(config_find(config, NULL, &p), UCAASAUTH_OK);
	CHECK_STR(p->name, "beta");
	CHECK_INT(config_find(config, "alpha", &p), UCAASAUTH_OK);
	CHECK_STR(p->name, "alpha");
	config_free(config);
	config_free(NULL);
}

static void test_defaults(void)
{
	struct config *config = NULL;
	const struct profile *p;
	char buf[PATH_MAX];

	CHECK_INT(parse(GOOD_PROFILE, &config), UCAASAUTH_OK);
	CHECK_INT(config->n_profiles, 1);
	CHECK(config->default_profile == NULL);
	p = &config->profiles[0];
	CHECK_INT(p->token_ttl, 900);
	CHECK_INT(p->refresh_ahead, 300);
	CHECK_INT(p->expiry_margin, 60);
	CHECK_INT(p->wait_timeout, 20);
	CHECK_INT(p->connect_timeout, 5);
	CHECK_INT(p->timeout, 15);
	CHECK_INT(p->cache, CACHE_SHARED);
	CHECK_INT(p->provider, PROVIDER_LOGIN);
	CHECK_STR(p->credentials, in_tmp(buf, sizeof(buf), "p.cred"));
	CHECK_STR(p->key_file, in_tmp(buf, sizeof(buf), "master.key"));
	CHECK(p->ca_file == NULL);
	config_free(config);

	/* An empty file parses to no profiles. */
	CHECK_INT(config_parse("", 0, conf_path, &config), UCAASAUTH_OK);
	CHECK_INT(config->n_profiles, 0);
	config_free(config);
}

static void test_accepted_values(void)
{
	static const char *const bases[] = {
		"https://api.enablex.io/ucaas/v1",
		"http://127.0.0.1:8080/ucaas/v1",
		"http://127.0.0.1/ucaas/v1",
		"http://localhost:9000/v1",
		"http://[::1]:8443/v1",
	};
	static const char *const controls[] = {
		"required",
		"requisite",
		"sufficient",
		"optional",
	};
	struct config *config = NULL;
	char text[8192], name[PROFILE_NAME_MAX + 1];

	for (size_t i = 0; i < ARRAY_SIZE(bases); i++) {
		snprintf(text, sizeof(text),
		         "[profile p]\napi_base = %s\napp_id = a\n", bases[i]);
		CHECK_INT(parse(text, &config), UCAASAUTH_OK);
		CHECK_STR(config->profiles[0].api_base, bases[i]);
		config_free(config);
	}
	for (size_t i = 0; i < ARRAY_SIZE(controls); i++) {
		snprintf(text, sizeof(text),
		         GOOD_PROFILE "provider = %s basic\n", controls[i]);
		CHECK_INT(parse(text, &config), UCAASAUTH_OK);
		CHECK_INT(config->profiles[0].provider, PROVIDER_BASIC);
		config_free(config);
		snprintf(text, sizeof(text),
		         GOOD_PROFILE "provider =\t%s\tlogin \n", controls[i]);
		CHECK_INT(parse(text, &config), UCAASAUTH_OK);
		CHECK_INT(config->profiles[0].provider, PROVIDER_LOGIN);
		config_free(config);
	}

	/* The limits themselves are inside. */
	CHECK_INT(parse(GOOD_PROFILE "token_ttl = 86400\nrefresh_ahead = 0\n"
	                             "expiry_margin = 0\nwait_timeout = 600\n"
	                             "connect_timeout = 300\ntimeout = 600\n",
	                &config),
	          UCAASAUTH_OK);
	CHECK_INT(config->profiles[0].token_ttl, 86400);
	CHECK_INT(config->profiles[0].refresh_ahead, 0);
	CHECK_INT(config->profiles[0].expiry_margin, 0);
	config_free(config);
	CHECK_INT(parse(GOOD_PROFILE "token_ttl = 301\n", &config),
	          UCAASAUTH_OK);
	config_free(config);
	CHECK_INT(parse(GOOD_PROFILE "cache = daemon\n", &config),
	          UCAASAUTH_OK);
	CHECK_INT(config->profiles[0].cache, CACHE_DAEMON);
	config_free(config);

	/* A 64-character profile name is the longest allowed. */
	memset(name, 'n', PROFILE_NAME_MAX);
	name[PROFILE_NAME_MAX] = 0;
	snprintf(text, sizeof(text),
	         "[profile %s]\napi_base = https://h\napp_id = a\n", name);
	CHECK_INT(parse(text, &config), UCAASAUTH_OK);
	CHECK_STR(config->profiles[0].name, name);
	config_free(config);

	/* A line of exactly 4096 bytes is allowed. */
	memset(text, 0, sizeof(text));
	text[0] = '#';
	memset(text + 1, 'x', 4095);
	text[4096] = '\n';
	CHECK_INT(parse(text, &config), UCAASAUTH_OK);
	config_free(config);
}

static void test_syntax_refusals(void)
{
	static const char nul[] = GOOD_PROFILE "timeout = 1\0 0\n";
	char text[8192], name[PROFILE_NAME_MAX + 2];

	/* A line that is neither a section, a comment nor key = value. */
	REFUSED(GOOD_PROFILE "timeout 10\n", 4, "expected 'key = value'");
	REFUSED(GOOD_PROFILE "= 10\n", 4, "missing key");
	REFUSED(GOOD_PROFILE "colour = blue\n", 4, "colour: unknown key");
	REFUSED(GOOD_PROFILE "Timeout = 10\n", 4, "Timeout: unknown key");

	/* Duplicates, of string and of integer keys. */
	REFUSED(GOOD_PROFILE "app_id = other\n", 4, "app_id: duplicate key");
	REFUSED(GOOD_PROFILE "api_base = https://api.enablex.io/ucaas/v1\n", 4,
	        "api_base: duplicate key");
	REFUSED(GOOD_PROFILE "credentials = a\ncredentials = b\n", 5,
	        "credentials: duplicate key");
	REFUSED(GOOD_PROFILE "key_file = a\nkey_file = b\n", 5,
	        "key_file: duplicate key");
	REFUSED(GOOD_PROFILE "ca_file = a\nca_file = /b\n", 5,
	        "ca_file: duplicate key");
	REFUSED(GOOD_PROFILE "token_ttl = 900\ntoken_ttl = 900\n", 5,
	        "token_ttl: duplicate key");
	REFUSED(GOOD_PROFILE "timeout = 5\ntimeout = 6\n", 5,
	        "timeout: duplicate key");
	REFUSED(GOOD_PROFILE "cache = shared\ncache = shared\n", 5,
	        "cache: duplicate key");
	REFUSED("default_profile = p\ndefault_profile = p\n" GOOD_PROFILE, 2,
	        "default_profile: duplicate key");

	/* Sections. */
	REFUSED(GOOD_PROFILE "[profile q\n", 4, "without ']'");
	REFUSED(GOOD_PROFILE "[server q]\n", 4, "unknown section '[server q]'");
	REFUSED("[profiles q]\n", 1, "unknown section");
	REFUSED("[profile]\n", 1, "unknown section");
	REFUSED("[profile ../x]\n", 1, "profile name '../x'");
	REFUSED("[profile a/b]\n", 1, "profile name 'a/b'");
	/* An empty name: "[profile ]" trims to "[profile]". */
	REFUSED("[profile   ]\n", 1, "profile");
	memset(name, 'n', PROFILE_NAME_MAX + 1);
	name[PROFILE_NAME_MAX + 1] = 0;
	snprintf(text, sizeof(text), "[profile %s]\n", name);
	REFUSED(text, 1, "must be 1 to 64");
	REFUSED(GOOD_PROFILE "[profile p]\n", 4,
	        "profile 'p' already defined at line 1");

	/* Only default_profile may come before the first section. */
	REFUSED("api_base = https://api.enablex.io/ucaas/v1\n" GOOD_PROFILE, 1,
	        "api_base: only default_profile");
	REFUSED("# top\ntimeout = 5\n" GOOD_PROFILE, 2, "timeout");
	REFUSED("default_profile = ../x\n" GOOD_PROFILE, 1, "default_profile");
	REFUSED(GOOD_PROFILE "default_profile = p\n", 4,
	        "default_profile: unknown key");

	/* Bytes a text file should not hold. */
	REFUSED_N(nul, sizeof(nul) - 1, 4, "NUL byte");
	REFUSED(GOOD_PROFILE "timeout = 1\x01\n", 4, "control character");
	REFUSED(GOOD_PROFILE "app_id\x1b = a\n", 4, "control character");
	REFUSED(GOOD_PROFILE "a\rb = 1\n", 4, "control character");
	memset(text, 0, sizeof(text));
	memcpy(text, GOOD_PROFILE, strlen(GOOD_PROFILE));
	text[strlen(GOOD_PROFILE)] = '#';
	memset(text + strlen(GOOD_PROFILE) + 1, 'x', 4096);
	REFUSED(text, 4, "longer than 4096 bytes");
}

static void test_value_refusals(void)
{
	char text[4096], big[1100];

	/* Required keys, named at the profile's line. */
	REFUSED("[profile p]\napp_id = a\n", 1, "missing key api_base");
	REFUSED("[profile p]\napi_base = https://h\n", 1, "missing key app_id");
	REFUSED("[profile p]\napp_id = a\n[profile q]\n", 1,
	        "missing key api_base");
	REFUSED(GOOD_PROFILE "[profile q]\napp_id = a\n", 4,
	        "missing key api_base");

	/* app_id goes into "APP_ID:APP_KEY" and an X-Api-Id header. */
	REFUSED("[profile p]\napi_base = https://h\napp_id = a:b\n", 3,
	        "app_id");
	REFUSED("[profile p]\napi_base = https://h\napp_id = a b\n", 3,
	        "app_id");
	REFUSED("[profile p]\napi_base = https://h\napp_id =\n", 3, "app_id");
	REFUSED("[profile p]\napi_base = https://h\napp_id = a\x7f\n", 3,
	        "app_id");
	memset(big, 'v', 1025);
	big[1025] = 0;
	snprintf(text, sizeof(text),
	         "[profile p]\napi_base = https://h\napp_id = %s\n", big);
	REFUSED(text, 3, "app_id: value longer than 1024 bytes");

	/* Plain http only to this host. */
	REFUSED("[profile p]\napi_base = http://example.com\napp_id = a\n", 2,
	        "api_base: 'http://example.com'");
	REFUSED("[profile p]\napi_base = http://127.0.0.1.example.com/\n"
	        "app_id = a\n",
	        2, "api_base");
	REFUSED("[profile p]\napi_base = http://localhostx/\napp_id = a\n", 2,
	        "api_base");
	REFUSED("[profile p]\napi_base = ftp://api.enablex.io/\napp_id = a\n",
	        2, "api_base");
	REFUSED("[profile p]\napi_base = https://\napp_id = a\n", 2,
	        "api_base");
	REFUSED("[profile p]\napi_base = https:///x\napp_id = a\n", 2,
	        "api_base");
	REFUSED("[profile p]\napi_base = https://a b/\napp_id = a\n", 2,
	        "api_base");
	REFUSED("[profile p]\napi_base =\napp_id = a\n", 2, "api_base");

	/* Integers: digits only, inside their range. */
	REFUSED(GOOD_PROFILE "token_ttl = abc\n", 4, "token_ttl: 'abc'");
	REFUSED(GOOD_PROFILE "token_ttl = 12s\n", 4, "token_ttl: '12s'");
	REFUSED(GOOD_PROFILE "token_ttl = -5\n", 4, "token_ttl");
	REFUSED(GOOD_PROFILE "token_ttl = +5\n", 4, "token_ttl");
	REFUSED(GOOD_PROFILE "token_ttl = 0x10\n", 4, "token_ttl");
	REFUSED(GOOD_PROFILE "token_ttl = 9 0\n", 4, "token_ttl");
	REFUSED(GOOD_PROFILE "token_ttl =\n", 4, "token_ttl");
	REFUSED(GOOD_PROFILE "token_ttl = 0\n", 4, "token_ttl: 0 is out");
	REFUSED(GOOD_PROFILE "token_ttl = 86401\n", 4, "token_ttl: 86401");
	REFUSED(GOOD_PROFILE "token_ttl = 99999999999999999999999\n", 4,
	        "token_ttl");
	REFUSED(GOOD_PROFILE "refresh_ahead = 86401\n", 4, "refresh_ahead");
	REFUSED(GOOD_PROFILE "expiry_margin = 86401\n", 4, "expiry_margin");
	REFUSED(GOOD_PROFILE "wait_timeout = 0\n", 4, "wait_timeout");
	REFUSED(GOOD_PROFILE "wait_timeout = 601\n", 4, "wait_timeout");
	REFUSED(GOOD_PROFILE "connect_timeout = 0\n", 4, "connect_timeout");
	REFUSED(GOOD_PROFILE "connect_timeout = 301\n", 4, "connect_timeout");
	REFUSED(GOOD_PROFILE "timeout = 0\n", 4, "timeout");
	REFUSED(GOOD_PROFILE "timeout = 601\n", 4, "timeout");

	/* The timings must nest: margin <= ahead < ttl. Named at the
	 * profile's line, where the relation is judged. */
	REFUSED(GOOD_PROFILE "token_ttl = 300\n", 1,
	        "refresh_ahead (300) must be less than token_ttl (300)");
	REFUSED(GOOD_PROFILE "refresh_ahead = 900\n", 1, "refresh_ahead");
	REFUSED(GOOD_PROFILE "expiry_margin = 301\n", 1,
	        "expiry_margin (301) must not exceed refresh_ahead (300)");
	REFUSED(GOOD_PROFILE "token_ttl = 300\n[profile q]\n", 1,
	        "refresh_ahead");

	/* Enumerations. */
	REFUSED(GOOD_PROFILE "cache = memory\n", 4, "cache: 'memory'");
	REFUSED(GOOD_PROFILE "cache =\n", 4, "cache");
	REFUSED(GOOD_PROFILE "provider = Kerberos\n", 4,
	        "'Kerberos' is neither basic, login, exec nor a module name");
	REFUSED(GOOD_PROFILE "provider = ../evil\n", 4, "module name");
	REFUSED(GOOD_PROFILE "provider = mandatory basic\n", 4,
	        "provider: unknown control word 'mandatory'");
	REFUSED(GOOD_PROFILE "provider = exec\n", 4,
	        "exec needs the absolute path");
	REFUSED(GOOD_PROFILE "provider = exec bin/token\n", 4,
	        "exec needs the absolute path");
	REFUSED(GOOD_PROFILE "module_dir = lib/modules\n", 4,
	        "module_dir: 'lib/modules' is not an absolute path");
	REFUSED(GOOD_PROFILE "exec_env = HOME 9LIVES\n", 4,
	        "exec_env: 'HOME 9LIVES'");
	REFUSED(GOOD_PROFILE "provider = required\n", 4, "provider");
	REFUSED(GOOD_PROFILE "provider =\n", 4, "provider: empty value");
	REFUSED(GOOD_PROFILE "provider = basic\nprovider = login\n", 4,
	        "each line needs a control word");
	REFUSED(GOOD_PROFILE "provider = sufficient login\n"
	                     "provider = sufficient login\n"
	                     "provider = sufficient login\n"
	                     "provider = sufficient login\n"
	                     "provider = sufficient login\n"
	                     "provider = sufficient login\n"
	                     "provider = sufficient login\n"
	                     "provider = sufficient login\n"
	                     "provider = sufficient login\n",
	        12, "more than 8 providers");
	REFUSED(GOOD_PROFILE "provider = login --verbose\n", 4,
	        "provider: arguments are not supported by the 'login'");
	REFUSED(GOOD_PROFILE "provider = required basic extra\n", 4,
	        "provider: arguments are not supported by the 'basic'");

	/* Paths. */
	REFUSED(GOOD_PROFILE "credentials =\n", 4, "credentials: empty path");
	REFUSED(GOOD_PROFILE "key_file =\n", 4, "key_file: empty path");
}

/* default_profile must name a profile of the file. */
static void test_default_profile_missing(void)
{
	/* Regression: the refusal once lacked the line and the key. */
	REFUSED("default_profile = nosuch\n" GOOD_PROFILE, 1, "nosuch");
	CHECK_ERROR_HAS("default_profile");
}

/* Plain http:// must never leave the host. */
static void test_api_base_userinfo(void)
{
	/* Regression: userinfo once sent "local" http to example.com. */
	REFUSED("[profile p]\napi_base = http://127.0.0.1:80@example.com/v1\n"
	        "app_id = a\n",
	        2, "api_base");
	REFUSED("[profile p]\napi_base = http://localhost:x@example.com/v1\n"
	        "app_id = a\n",
	        2, "api_base");
}

/* The refusal of provider arguments names the provider. */
static void test_provider_arguments_message(void)
{
	/* Regression: the message once named an argument, not the provider. */
	REFUSED(GOOD_PROFILE "provider = login a b c\n", 4,
	        "supported by the 'login' provider");
}

/* Loopback without a port or a path is still loopback. */
static void test_api_base_bare_loopback(void)
{
	struct config *config = NULL;

	/* Regression: a bare loopback URL was once refused. */
	CHECK_INT(parse("[profile p]\napi_base = http://127.0.0.1/\n"
	                "app_id = a\n",
	                &config),
	          UCAASAUTH_OK);
	CHECK_STR(config->profiles[0].api_base, "http://127.0.0.1");
	config_free(config);
}

static void test_find(void)
{
	struct config *config = NULL;
	const struct profile *p = NULL;

	/* With default_profile. */
	CHECK_INT(parse("default_profile = q\n" GOOD_PROFILE
	                "[profile q]\napi_base = https://h\napp_id = b\n",
	                &config),
	          UCAASAUTH_OK);
	CHECK_INT(config_find(config, NULL, &p), UCAASAUTH_OK);
	CHECK_STR(p->name, "q");
	CHECK_INT(config_find(config, "p", &p), UCAASAUTH_OK);
	CHECK_STR(p->name, "p");
	p = NULL;
	CHECK_INT(config_find(config, "zzz", &p), UCAASAUTH_E_CONFIG);
	CHECK(p == NULL);
	CHECK_ERROR_HAS(conf_path);
	CHECK_ERROR_HAS("no profile 'zzz'");
	config_free(config);

	/* No default_profile, but a profile named "default". */
	CHECK_INT(parse(GOOD_PROFILE "[profile default]\n"
	                             "api_base = https://h\napp_id = d\n",
	                &config),
	          UCAASAUTH_OK);
	CHECK_INT(config_find(config, NULL, &p), UCAASAUTH_OK);
	CHECK_STR(p->name, "default");
	CHECK_STR(p->app_id, "d");
	config_free(config);

	/* Neither. */
	CHECK_INT(parse(GOOD_PROFILE, &config), UCAASAUTH_OK);
	p = NULL;
	CHECK_INT(config_find(config, NULL, &p), UCAASAUTH_E_CONFIG);
	CHECK(p == NULL);
	CHECK_ERROR_HAS(conf_path);
	CHECK_ERROR_HAS("no default_profile");
	CHECK_INT(config_find(config, "default", &p), UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("no profile 'default'");
	config_free(config);
}

static void test_load(void)
{
	static const char text[] = GOOD_PROFILE;
	struct config *config = NULL;
	char path[PATH_MAX], big_path[PATH_MAX], at[PATH_MAX + 32], *big;
	size_t big_len = 1024 * 1024 + 1;

	write_file(conf_path, text, strlen(text), 0600);
	CHECK_INT(config_load(conf_path, &config), UCAASAUTH_OK);
	CHECK_STR(config->profiles[0].name, "p");
	config_free(config);
	/* Not secret: others may read it. */
	CHECK_INT(chmod(conf_path, 0644), 0);
	CHECK_INT(config_load(conf_path, &config), UCAASAUTH_OK);
	config_free(config);

	/* Whoever can write it decides where passwords go. */
	config = NULL;
	CHECK_INT(chmod(conf_path, 0666), 0);
	CHECK_INT(config_load(conf_path, &config), UCAASAUTH_E_CONFIG);
	CHECK(config == NULL);
	CHECK_ERROR_HAS(conf_path);
	CHECK_ERROR_HAS("0666");
	CHECK_INT(chmod(conf_path, 0620), 0);
	CHECK_INT(config_load(conf_path, &config), UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("0620");
	CHECK_INT(chmod(conf_path, 0602), 0);
	CHECK_INT(config_load(conf_path, &config), UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("0602");
	CHECK_INT(chmod(conf_path, 0644), 0);

	if (geteuid() == 0) {
		CHECK_INT(chown(conf_path, 65534, 65534), 0);
		CHECK_INT(config_load(conf_path, &config), UCAASAUTH_E_CONFIG);
		CHECK(config == NULL);
		CHECK_ERROR_HAS(conf_path);
		CHECK_ERROR_HAS("owned by uid 65534");
		CHECK_INT(chown(conf_path, 0, 0), 0);
		CHECK_INT(config_load(conf_path, &config), UCAASAUTH_OK);
		config_free(config);
		config = NULL;
	} else {
		printf("note: not root, skipping the config-owned-by-another-"
		       "user checks\n");
	}

	in_tmp(path, sizeof(path), "missing.conf");
	CHECK_INT(config_load(path, &config), UCAASAUTH_E_CONFIG);
	CHECK(config == NULL);
	CHECK_ERROR_HAS(path);
	CHECK_ERROR_HAS(strerror(ENOENT));
	CHECK_INT(config_load(tmp, &config), UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("not a regular file");

	/* More than 1 MiB is not a configuration file. */
	big = malloc(big_len);
	CHECK(big != NULL);
	memset(big, '#', big_len);
	for (size_t i = 100; i < big_len; i += 100)
		big[i] = '\n';
	in_tmp(big_path, sizeof(big_path), "big.conf");
	write_file(big_path, big, big_len, 0600);
	free(big);
	CHECK_INT(config_load(big_path, &config), UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS(big_path);
	CHECK_INT(unlink(big_path), 0);

	/* A refusal from the text names the file it was loaded from. */
	write_file(conf_path, GOOD_PROFILE "colour = blue\n",
	           strlen(GOOD_PROFILE "colour = blue\n"), 0600);
	CHECK_INT(config_load(conf_path, &config), UCAASAUTH_E_CONFIG);
	snprintf(at, sizeof(at), "%s:4:", conf_path);
	CHECK_ERROR_HAS(at);
	CHECK_ERROR_HAS("colour");
}

static void test_open(void)
{
	static char sentinel;
	struct ucaasauth *const mark = (struct ucaasauth *)(void *)&sentinel;
	struct ucaasauth *ua = mark;
	char long_name[PROFILE_NAME_MAX + 2], at[PATH_MAX + 32], path[PATH_MAX];
	const char *text;

	CHECK_INT(setenv("UCAASAUTH_CONFIG", conf_path, 1), 0);

	/* Arguments. */
	CHECK_INT(ucaasauth_open(NULL, NULL, 0), UCAASAUTH_E_INVALID);
	CHECK_INT(ucaasauth_open(NULL, "p", 0), UCAASAUTH_E_INVALID);
	CHECK_INT(ucaasauth_open(&ua, NULL, 1), UCAASAUTH_E_INVALID);
	CHECK(ua == mark);
	CHECK_INT(ucaasauth_open(&ua, "p", 0x80000000u), UCAASAUTH_E_INVALID);
	CHECK(ua == mark);
	CHECK_INT(ucaasauth_open(&ua, "a/b", 0), UCAASAUTH_E_INVALID);
	CHECK(ua == mark);
	CHECK_INT(ucaasauth_open(&ua, "../p", 0), UCAASAUTH_E_INVALID);
	CHECK(ua == mark);
	CHECK_INT(ucaasauth_open(&ua, "", 0), UCAASAUTH_E_INVALID);
	CHECK(ua == mark);
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = 0;
	CHECK_INT(ucaasauth_open(&ua, long_name, 0), UCAASAUTH_E_INVALID);
	CHECK(ua == mark);

	/* A bad file: E_CONFIG naming the file, the line and the key. */
	text = GOOD_PROFILE "token_ttl = soon\n";
	write_file(conf_path, text, strlen(text), 0600);
	CHECK_INT(ucaasauth_open(&ua, "p", 0), UCAASAUTH_E_CONFIG);
	CHECK(ua == mark);
	snprintf(at, sizeof(at), "%s:4:", conf_path);
	CHECK_ERROR_HAS(at);
	CHECK_ERROR_HAS("token_ttl");
	CHECK_INT(ucaasauth_open(&ua, NULL, 0), UCAASAUTH_E_CONFIG);
	CHECK(ua == mark);
	CHECK_ERROR_HAS(at);

	/* Unsafe mode. */
	text = GOOD_PROFILE "provider = basic\n";
	write_file(conf_path, text, strlen(text), 0666);
	CHECK_INT(ucaasauth_open(&ua, "p", 0), UCAASAUTH_E_CONFIG);
	CHECK(ua == mark);
	CHECK_ERROR_HAS(conf_path);
	CHECK_ERROR_HAS("0666");

	/* No such profile, no default. */
	write_file(conf_path, text, strlen(text), 0600);
	CHECK_INT(ucaasauth_open(&ua, "nosuch", 0), UCAASAUTH_E_CONFIG);
	CHECK(ua == mark);
	CHECK_ERROR_HAS(conf_path);
	CHECK_ERROR_HAS("nosuch");
	CHECK_INT(ucaasauth_open(&ua, NULL, 0), UCAASAUTH_E_CONFIG);
	CHECK(ua == mark);
	CHECK_ERROR_HAS("no default_profile");

	/* cache = daemon with no daemon: unavailable, naming the socket. */
	text = GOOD_PROFILE "cache = daemon\nsocket = no-daemon/s.sock\n";
	write_file(conf_path, text, strlen(text), 0600);
	CHECK_INT(ucaasauth_open(&ua, "p", 0), UCAASAUTH_OK);
	{
		char buf[64];
		size_t len;
		CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len),
		          UCAASAUTH_E_UNAVAILABLE);
		ucaasauth_close(ua);
		ua = mark;
	}
	CHECK_ERROR_HAS("ucaas-authd");
	CHECK_ERROR_HAS("no-daemon/s.sock");
	CHECK_ERROR_HAS("not running");

	/* A missing file. */
	in_tmp(path, sizeof(path), "nowhere.conf");
	CHECK_INT(setenv("UCAASAUTH_CONFIG", path, 1), 0);
	CHECK_INT(ucaasauth_open(&ua, "p", 0), UCAASAUTH_E_CONFIG);
	CHECK(ua == mark);
	CHECK_ERROR_HAS(path);

	/* A good file gets past the configuration: the next refusal is the
	 * missing credential store. */
	CHECK_INT(setenv("UCAASAUTH_CONFIG", conf_path, 1), 0);
	text = GOOD_PROFILE "provider = basic\n";
	write_file(conf_path, text, strlen(text), 0600);
	CHECK_INT(ucaasauth_open(&ua, "p", 0), UCAASAUTH_E_CREDENTIALS);
	CHECK(ua == mark);
}

int main(void)
{
	char runtime[PATH_MAX];

	main_pid = getpid();
	CHECK(mkdtemp(tmp) != NULL);
	atexit(cleanup);
	snprintf(conf_path, sizeof(conf_path), "%s/ucaasauth.conf", tmp);
	in_tmp(runtime, sizeof(runtime), "run");
	CHECK_INT(mkdir(runtime, 0700), 0);
	CHECK_INT(setenv("UCAASAUTH_RUNTIME_DIR", runtime, 1), 0);
	CHECK_INT(setenv("UCAASAUTH_CONFIG", conf_path, 1), 0);
	unsetenv("CREDENTIALS_DIRECTORY");

	test_good_file();
	test_defaults();
	test_accepted_values();
	test_syntax_refusals();
	test_value_refusals();
	test_find();
	test_load();
	test_open();
	/* Regressions of bugs found and fixed. */
	test_default_profile_missing();
	test_api_base_userinfo();
	test_provider_arguments_message();
	test_api_base_bare_loopback();
	TEST_DONE();
}

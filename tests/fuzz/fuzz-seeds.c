/*
 * Writes the seed inputs of every fuzz corpus into DIR/<target>/: good
 * configurations and each kind of refusal, real credential files made with
 * cred_encrypt for the fuzz key and damaged copies, plaintexts, login
 * answers good and bad, segments valid and damaged, daemon requests. Not
 * run by any test; the seeds it wrote are committed, so run it only to
 * change them:
 *
 *   ninja -C build tests/fuzz/fuzz-seeds
 *   build/tests/fuzz/fuzz-seeds tests/fuzz/corpus
 *
 * (credential files get a new random nonce each time).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cache.h"
#include "protocol.h"

static const char *top;

static void die(const char *what)
{
	const char *e = ucaasauth_last_error();

	fprintf(stderr, "fuzz-seeds: %s%s%s\n", what, e ? ": " : "",
	        e ? e : "");
	exit(1);
}

static void put(const char *target, const char *name, const void *data,
                size_t len)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", top, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die(path);
	snprintf(path, sizeof(path), "%s/%s/%s", top, target, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) < 0)
		die(path);
}

static void put_str(const char *target, const char *name, const char *s)
{
	put(target, name, s, strlen(s));
}

/* ---- config ---------------------------------------------------------- */

#define GOOD                                                                   \
	"[profile p]\n"                                                        \
	"api_base = https://api.enablex.io/ucaas/v1\n"                         \
	"app_id = app-1234\n"

static const struct {
	const char *name, *text;
} configs[] = {
	{"good-minimal", GOOD},
	{"good-empty", ""},
	{"good-comments", "# a comment\n; another\n\n" GOOD "   \n# end\n"},
	{"good-two-profiles", "default_profile = srv\n"
                              "[profile tok]\n"
                              "api_base = https://api.enablex.io/ucaas/v1/\n"
                              "app_id = app-1234\n"
                              "provider = required login\n"
                              "credentials = tok.cred\n"
                              "key_file = /etc/ucaasauth/master.key\n"
                              "ca_file = certs/ca.pem\n"
                              "cache = process\n"
                              "token_ttl = 600\n"
                              "refresh_ahead = 120\n"
                              "expiry_margin = 30\n"
                              "wait_timeout = 10\n"
                              "connect_timeout = 3\n"
                              "timeout = 9\n"
                              "[ profile\tsrv ]\n"
                              "api_base = http://127.0.0.1:8080/ucaas/v1\n"
                              "app_id = app-1234\n"
                              "provider = basic\n"},
	{"good-daemon", "[profile default]\n"
                        "api_base = http://[::1]:9/x\n"
                        "app_id = a\n"
                        "cache = daemon\n"
                        "socket = run/authd.sock\n"
                        "allow_users = www-data, 1001\n"
                        "allow_groups = ops\n"},
	{"good-crlf", "[profile p]\r\napi_base = http://localhost\r\n"
                      "app_id = x\r\n"},
	{"good-short-ttl", GOOD "token_ttl = 1\nrefresh_ahead = 0\n"
                                "expiry_margin = 0\n"},
	{"good-hash-in-value", GOOD "credentials = /a#b/c;d.cred\n"},
	{"good-longest-name",
         "[profile aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n"
         "api_base = https://x\napp_id = a\nkey_file = /k\n"},
	{"bad-unknown-key", GOOD "colour = red\n"},
	{"bad-unknown-section", "[server p]\n"},
	{"bad-no-bracket", "[profile p\n"},
	{"bad-profile-word", "[profile]\n"},
	{"bad-profile-name", "[profile a/b]\n"},
	{"bad-long-name",
         "[profile aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n"},
	{"bad-duplicate-profile", GOOD GOOD},
	{"bad-key-before-section", "api_base = https://x\n" GOOD},
	{"bad-default-missing", "default_profile = zz\n" GOOD},
	{"bad-default-name", "default_profile = a b\n" GOOD},
	{"bad-no-equals", GOOD "token_ttl 5\n"},
	{"bad-empty-key", GOOD " = 5\n"},
	{"bad-control-char", GOOD "app_id = a\x01"
                                  "b\n"},
	{"bad-missing-api-base", "[profile p]\napp_id = a\n"},
	{"bad-missing-app-id", "[profile p]\napi_base = https://x\n"},
	{"bad-http-remote", "[profile p]\napi_base = http://example.com\n"},
	{"bad-http-local-lookalike",
         "[profile p]\napi_base = http://localhost.example.com\n"},
	{"bad-userinfo", "[profile p]\napi_base = http://127.0.0.1:80@evil\n"},
	{"bad-empty-port", "[profile p]\napi_base = http://[::1]:/x\n"},
	{"bad-https-empty-host", "[profile p]\napi_base = https:///x\n"},
	{"bad-query", "[profile p]\napi_base = https://x/?a=b\n"},
	{"bad-app-id-colon",
         "[profile p]\napi_base = https://x\napp_id = a:b\n"},
	{"bad-app-id-space",
         "[profile p]\napi_base = https://x\napp_id = a b\n"},
	{"bad-duplicate-key", GOOD "app_id = again\n"},
	{"bad-duplicate-int", GOOD "timeout = 5\ntimeout = 6\n"},
	{"bad-duplicate-cache", GOOD "cache = shared\ncache = process\n"},
	{"bad-not-a-number", GOOD "token_ttl = soon\n"},
	{"bad-negative", GOOD "wait_timeout = -1\n"},
	{"bad-huge", GOOD "token_ttl = 99999999999999999999999\n"},
	{"bad-out-of-range", GOOD "token_ttl = 86401\n"},
	{"bad-trailing-unit", GOOD "timeout = 5s\n"},
	{"bad-ahead-ttl", GOOD "token_ttl = 60\nrefresh_ahead = 60\n"},
	{"bad-margin-ahead", GOOD "refresh_ahead = 10\nexpiry_margin = 11\n"},
	{"bad-cache-word", GOOD "cache = disk\n"},
	{"bad-provider-unknown", GOOD "provider = exec\n"},
	{"bad-provider-two", GOOD "provider = login\nprovider = basic\n"},
	{"bad-provider-args", GOOD "provider = sufficient login --fast\n"},
	{"bad-provider-empty", GOOD "provider =\n"},
	{"bad-empty-path", GOOD "credentials =\n"},
	{"bad-allow-users", GOOD "allow_users = a;b\n"},
	{"good-stack", GOOD "provider = sufficient login\n"
                            "provider = required basic\n"},
	{"good-exec", GOOD "provider = exec /usr/bin/get-token --json -v\n"
                           "exec_env = HOME PATH\tLANG\n"},
	{"good-module", GOOD "provider = optional my-mod_2 a=b c\n"
                             "provider = requisite login\n"
                             "module_dir = /usr/lib/ucaasauth\n"},
	{"bad-module-name", GOOD "provider = MyMod\n"},
	{"bad-misspelt-control", GOOD "provider = mandatory basic\n"},
	{"bad-control-only", GOOD "provider = required\n"},
	{"bad-exec-relative", GOOD "provider = exec get-token\n"},
	{"bad-exec-del", GOOD "provider = exec /x a\x7f"
                              "b\n"},
	{"bad-stack-no-control", GOOD "provider = required login\n"
                                      "provider = basic\n"},
	{"bad-stack-nine", GOOD "provider = optional a\nprovider = optional b\n"
                                "provider = optional c\nprovider = optional d\n"
                                "provider = optional e\nprovider = optional f\n"
                                "provider = optional g\nprovider = optional h\n"
                                "provider = optional i\n"},
	{"bad-args-17", GOOD "provider = exec /x 1 2 3 4 5 6 7 8 9 10 11 12 "
                             "13 14 15 16 17\n"},
	{"bad-module-dir-relative", GOOD "module_dir = lib\n"},
	{"bad-exec-env", GOOD "exec_env = 1PATH\n"},
	{"bad-second-profile", GOOD "[profile q]\napi_base = https://y\n"},
};

static void config_seeds(void)
{
	char *long_line;

	for (size_t i = 0; i < ARRAY_SIZE(configs); i++)
		put_str("config", configs[i].name, configs[i].text);
	put("config", "bad-nul-byte", GOOD "app_id = a\0b\n",
	    sizeof(GOOD "app_id = a\0b\n") - 1);

	/* A line one byte too long, and a value one byte too long. */
	long_line = malloc(5000);
	if (!long_line)
		die("out of memory");
	memset(long_line, '#', 4097);
	long_line[4097] = '\n';
	put("config", "bad-long-line", long_line, 4098);
	strcpy(long_line, GOOD "ca_file = /");
	memset(long_line + strlen(long_line), 'c', 1024);
	long_line[strlen(GOOD) + 1035] = '\n';
	put("config", "bad-long-value", long_line, strlen(GOOD) + 1036);
	free(long_line);
}

/* ---- cred ------------------------------------------------------------ */

#define FUZZ_PROFILE "fuzz"

static void put_cred(const char *name, const struct secrets *s,
                     const char *profile, const uint8_t *key,
                     void (*damage)(uint8_t *data, size_t *len))
{
	uint8_t *data;
	size_t len;

	if (cred_encrypt(s, profile, key, &data, &len) < 0)
		die("cred_encrypt");
	if (damage)
		damage(data, &len);
	put("cred", name, data, len);
	free(data);
}

static void flip_tag(uint8_t *d, size_t *len)
{
	d[*len - 1] ^= 0x80;
}

static void flip_text(uint8_t *d, size_t *len)
{
	d[40] ^= 1;
}

static void flip_nonce(uint8_t *d, size_t *len)
{
	d[8] ^= 1;
}

static void bad_magic(uint8_t *d, size_t *len)
{
	d[0] = 'X';
}

static void version_2(uint8_t *d, size_t *len)
{
	d[4] = 2;
}

static void reserved(uint8_t *d, size_t *len)
{
	d[6] = 1;
}

static void header_only(uint8_t *d, size_t *len)
{
	*len = 8;
}

static void one_short(uint8_t *d, size_t *len)
{
	*len = 8 + 24 + 16 - 1;
}

static void drop_last(uint8_t *d, size_t *len)
{
	(*len)--;
}

static const struct {
	const char *name, *text;
} plains[] = {
	{"plain-basic", "app_key=k3y-SECRET\n"},
	{"plain-login", "email=ops@example.com\npassword=Zq9 pass\n"},
	{"plain-all", "app_key=a\nemail=e@x\npassword=p\n"},
	{"plain-no-final-lf", "app_key=abc"},
	{"plain-crlf", "app_key=a\r\nemail=e\r\n"},
	{"plain-blank-line-ends", "app_key=a\n\nnot a line\n"},
	{"plain-unknown-key", "user=a\n"},
	{"plain-duplicate", "email=a\nemail=b\n"},
	{"plain-empty-value", "password=\n"},
	{"plain-no-equals", "app_key\n"},
	{"plain-empty-key", "=value\n"},
	{"plain-equals-in-value", "password=a=b==\n"},
	{"plain-control", "password=a\tb\n"},
	{"plain-del", "password=a\x7f\n"},
	{"plain-utf8", "password=p\xc3\xa4ss\xe2\x82\xac\n"},
	{"plain-lone-cr", "\r\n"},
};

static void cred_seeds(void)
{
	uint8_t key[MASTER_KEY_BYTES], other[MASTER_KEY_BYTES];
	struct secrets *s = secrets_new();
	char *big;

	if (!s)
		die("secrets_new");
	for (size_t i = 0; i < sizeof(key); i++) {
		key[i] = (uint8_t)i; /* the key fuzz-cred.c uses */
		other[i] = (uint8_t)(i + 1);
	}
	put_cred("file-empty", s, FUZZ_PROFILE, key, NULL);
	strcpy(s->app_key, "k3y-SECRET-app-key");
	put_cred("file-basic", s, FUZZ_PROFILE, key, NULL);
	strcpy(s->email, "ops@example.com");
	strcpy(s->password, "Zq9-SECRET-password");
	put_cred("file-all", s, FUZZ_PROFILE, key, NULL);
	put_cred("file-other-profile", s, "other", key, NULL);
	put_cred("file-other-key", s, FUZZ_PROFILE, other, NULL);
	put_cred("file-flipped-tag", s, FUZZ_PROFILE, key, flip_tag);
	put_cred("file-flipped-text", s, FUZZ_PROFILE, key, flip_text);
	put_cred("file-flipped-nonce", s, FUZZ_PROFILE, key, flip_nonce);
	put_cred("file-bad-magic", s, FUZZ_PROFILE, key, bad_magic);
	put_cred("file-version-2", s, FUZZ_PROFILE, key, version_2);
	put_cred("file-reserved", s, FUZZ_PROFILE, key, reserved);
	put_cred("file-header-only", s, FUZZ_PROFILE, key, header_only);
	put_cred("file-one-short", s, FUZZ_PROFILE, key, one_short);
	put_cred("file-truncated", s, FUZZ_PROFILE, key, drop_last);
	memset(s, 0, sizeof(*s));
	strcpy(s->email, "e");
	strcpy(s->password, "p");
	put_cred("file-login", s, FUZZ_PROFILE, key, NULL);
	/* The longest values the store holds. */
	memset(s->app_key, 'k', SECRET_MAX);
	memset(s->email, 'e', SECRET_MAX);
	memset(s->password, 'p', SECRET_MAX);
	put_cred("file-longest", s, FUZZ_PROFILE, key, NULL);
	secrets_free(s);

	for (size_t i = 0; i < ARRAY_SIZE(plains); i++)
		put_str("cred", plains[i].name, plains[i].text);
	put("cred", "plain-nul", "password=a\0b\n", 13);
	big = malloc(SECRET_MAX + 32);
	if (!big)
		die("out of memory");
	strcpy(big, "password=");
	memset(big + 9, 'x', SECRET_MAX + 1);
	big[9 + SECRET_MAX + 1] = '\n';
	put("cred", "plain-too-long", big, SECRET_MAX + 11);
	free(big);
}

/* ---- login ----------------------------------------------------------- */

/* Indices into fuzz-login.c's statuses[]. */
enum {
	S200,
	S401,
	S403,
	S429,
	S500,
	S503,
	S302,
	S404,
	S201
};

static const struct {
	const char *name;
	int status;
	const char *body;
} answers[] = {
	{"200-token", S200, "{\"token\": \"eyJhbGciOi.J9.abc-_~+/=\"}"},
	{"200-expires-in", S200, "{\"token\": \"abc\", \"expires_in\": 1200}"},
	{"200-expires-min", S200, "{\"token\": \"abc\", \"expires_in\": 1}"},
	{"200-expires-max", S200, "{\"expires_in\": 86400, \"token\": \"a\"}"},
	{"200-expires-zero", S200, "{\"token\": \"abc\", \"expires_in\": 0}"},
	{"200-expires-big", S200,
         "{\"token\": \"abc\", \"expires_in\": 86401}"},
	{"200-expires-negative", S200,
         "{\"token\": \"abc\", \"expires_in\": -5}"},
	{"200-expires-float", S200,
         "{\"token\": \"abc\", \"expires_in\": 1.5}"},
	{"200-expires-string", S200,
         "{\"token\": \"abc\", \"expires_in\": \"900\"}"},
	{"200-expires-huge", S200,
         "{\"token\": \"abc\", \"expires_in\": 18446744073709551616}"},
	{"200-escapes", S200, "{\"token\": \"a\\/b\\u0041\\\"c\"}"},
	{"200-extra-keys", S200,
         "{\"result\": 0, \"token\": \"t\", \"user\": {\"id\": [1, 2, null]}, "
         "\"ok\": true}"},
	{"200-duplicate-token", S200, "{\"token\": \"a\", \"token\": \"b\"}"},
	{"200-whitespace", S200, " \r\n\t{ \"token\" : \"abc\" } \n"},
	{"200-empty-body", S200, ""},
	{"200-not-json", S200, "<html><body>OK</body></html>"},
	{"200-null", S200, "null"},
	{"200-array", S200, "[{\"token\": \"abc\"}]"},
	{"200-string", S200, "\"abc\""},
	{"200-no-token", S200, "{\"tok\": \"abc\"}"},
	{"200-token-number", S200, "{\"token\": 12345}"},
	{"200-token-null", S200, "{\"token\": null}"},
	{"200-token-empty", S200, "{\"token\": \"\"}"},
	{"200-token-space", S200, "{\"token\": \"a b\"}"},
	{"200-token-crlf", S200, "{\"token\": \"a\\r\\nX-Evil: 1\"}"},
	{"200-token-nul", S200, "{\"token\": \"a\\u0000b\"}"},
	{"200-token-utf8", S200, "{\"token\": \"caf\\u00e9\"}"},
	{"200-token-del", S200, "{\"token\": \"a\x7f\"}"},
	{"200-trailing", S200, "{\"token\": \"abc\"} x"},
	{"200-two-docs", S200, "{\"token\": \"abc\"}{}"},
	{"200-truncated", S200, "{\"token\": \"ab"},
	{"200-comment", S200, "/* c */ {\"token\": \"abc\"} // d\n"},
	{"200-single-quotes", S200, "{'token': 'abc'}"},
	{"200-deep", S200,
         "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]"
         "]]]]]]]]]]]]]]]]]]]], \"token\": \"abc\"}"},
	{"201-token", S201, "{\"token\": \"abc\"}"},
	{"302-redirect", S302, ""},
	{"401-bad-credentials", S401,
         "{\"result\": 1002, \"msg\": \"Invalid credentials\"}"},
	{"403-expired", S403,
         "{\"result\": 1001, \"msg\": \"Token expired\", \"desc\": \"Log in "
         "again\"}"},
	{"403-msg-control", S403, "{\"msg\": \"bad\\u0007\\r\\nx\"}"},
	{"403-msg-number", S403, "{\"msg\": 5}"},
	{"429-slow-down", S429, "{\"msg\": \"Too many requests\"}"},
	{"500-html", S500, "<html><body>Internal error</body></html>"},
	{"503-busy", S503, "{\"result\": 503, \"msg\": \"busy\"}"},
	{"404-route", S404, "{\"msg\": \"no such route\"}"},
};

static void login_seeds(void)
{
	char buf[TOKEN_MAX + 64];
	size_t n;

	for (size_t i = 0; i < ARRAY_SIZE(answers); i++) {
		n = strlen(answers[i].body);
		buf[0] = 0;
		buf[1] = (char)answers[i].status;
		memcpy(buf + 2, answers[i].body, n);
		put("login", answers[i].name, buf, n + 2);
	}
	/* The longest token, and one byte more. */
	for (int extra = 0; extra < 2; extra++) {
		buf[0] = 0;
		buf[1] = S200;
		strcpy(buf + 2, "{\"token\": \"");
		n = strlen(buf + 2) + 2;
		memset(buf + n, 'T', TOKEN_MAX + extra);
		n += TOKEN_MAX + extra;
		memcpy(buf + n, "\"}", 2);
		put("login", extra ? "200-token-too-long" : "200-token-longest",
		    buf, n + 2);
	}
	put("login", "200-nul-after", "\0\0{\"token\": \"abc\"}\0x", 20);
}

/* ---- segment --------------------------------------------------------- */

/* Byte 0 of a segment input, as fuzz-segment.c reads it. */
enum {
	PADDED,
	EXACT,
	OVER_BODY,
	OVER_AT
};
enum {
	SIZE_PAGE = 0,
	SIZE_0 = 4,
	SIZE_64,
	SIZE_PAGE_LESS_1,
	SIZE_PAGE_PLUS_1
};
enum {
	MODE_0600 = 0,
	MODE_0700 = 5,
	MODE_0640,
	MODE_0606
};

static uint8_t layout(int kind, int size, int mode)
{
	return (uint8_t)(kind | size << 2 | mode << 5);
}

/* Layout 3: `len` bytes of `data` written over the sample at `at`. */
static void put_at(const char *name, size_t at, const void *data, size_t len)
{
	uint8_t buf[3 + SEGMENT_SIZE];

	buf[0] = layout(OVER_AT, SIZE_PAGE, MODE_0600);
	buf[1] = (uint8_t)(at >> 8);
	buf[2] = (uint8_t)at;
	memcpy(buf + 3, data, len);
	put("segment", name, buf, 3 + len);
}

#define PUT_FIELD(name, field, value)                                          \
	do {                                                                   \
		__typeof__(value) v_ = (value);                                \
		put_at(name, offsetof(struct segment, field), &v_,             \
		       sizeof(v_));                                            \
	} while (0)

/* A real segment holding a token and a failure, as fuzz-segment.c's
 * sample, built in a private runtime directory. */
static void real_segment(uint8_t *img)
{
	char dir[] = "/tmp/fuzz-seeds.XXXXXX", run[64], path[128];
	const char *header = TOKEN_PREFIX "seed-token";
	struct token_times times = {500, 1000, 2000, 3000, 1700000000};
	struct segment *seg;

	if (!mkdtemp(dir))
		die("mkdtemp");
	snprintf(run, sizeof(run), "%s/run", dir);
	setenv("UCAASAUTH_RUNTIME_DIR", run, 1);
	if (cache_open(CACHE_SHARED, "seed", &seg) < 0 ||
	    cache_lock(seg, 0) != 0)
		die("cache_open");
	cache_publish(seg, header, strlen(header), &times, "login");
	cache_record_failure(seg, UCAASAUTH_E_DENIED, "seed failure");
	cache_unlock(seg);
	memcpy(img, seg, SEGMENT_SIZE);
	cache_close(seg);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	if (system(path) != 0)
		die(path);
}

static void segment_seeds(void)
{
	static const int sizes[] = {SIZE_0, SIZE_64, SIZE_PAGE_LESS_1,
	                            SIZE_PAGE_PLUS_1};
	static const char *const size_names[] = {
		"size-0", "size-64", "size-page-less-1", "size-page-plus-1"};
	static const int modes[] = {MODE_0700, MODE_0640, MODE_0606};
	static const char *const mode_names[] = {"mode-0700", "mode-0640",
	                                         "mode-0606"};
	uint8_t img[1 + SEGMENT_SIZE], b;
	char text[ERROR_TEXT_MAX];
	uint64_t w;

	b = layout(OVER_BODY, SIZE_PAGE, MODE_0600);
	put("segment", "sample", &b, 1);
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		b = layout(OVER_BODY, sizes[i], MODE_0600);
		put("segment", size_names[i], &b, 1);
	}
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		b = layout(OVER_BODY, SIZE_PAGE, modes[i]);
		put("segment", mode_names[i], &b, 1);
	}

	/* Whole files: a real segment, exactly and padded; nothing; junk. */
	real_segment(img + 1);
	img[0] = layout(EXACT, SIZE_PAGE, MODE_0600);
	put("segment", "exact-real", img, sizeof(img));
	img[0] = layout(PADDED, SIZE_PAGE, MODE_0600);
	put("segment", "padded-header-only", img, 1 + 16);
	img[0] = layout(EXACT, SIZE_PAGE, MODE_0600);
	put("segment", "exact-empty", img, 1);
	put("segment", "exact-header-only", img, 1 + 16);
	for (size_t i = 1; i < sizeof(img); i++)
		img[i] = (uint8_t)(i * 131 + 7);
	put("segment", "exact-junk", img, sizeof(img));
	img[0] = layout(PADDED, SIZE_PAGE, MODE_0600);
	put("segment", "padded-junk", img, 200);

	/* The header, damaged: each is rebuilt. */
	PUT_FIELD("magic", magic, (uint32_t)0xdeadbeef);
	PUT_FIELD("version-old", version, (uint32_t)(SEGMENT_VERSION - 1));
	PUT_FIELD("version-new", version, (uint32_t)(SEGMENT_VERSION + 1));
	PUT_FIELD("size-field", size, (uint32_t)(SEGMENT_SIZE * 2));
	PUT_FIELD("state-empty", state, (uint32_t)SEGMENT_EMPTY);
	PUT_FIELD("state-initialising", state, (uint32_t)SEGMENT_INITIALISING);
	PUT_FIELD("state-garbage", state, (uint32_t)7);

	/* The body, damaged: read as it is, within bounds. */
	memset(img, 0xff, 40);
	put_at("lock-garbage", offsetof(struct segment, lock), img, 40);
	PUT_FIELD("seq-odd", seq, (uint64_t)7);
	PUT_FIELD("seq-max", seq, UINT64_MAX - 1);
	PUT_FIELD("len-0", len, (uint32_t)0);
	PUT_FIELD("len-1", len, (uint32_t)1);
	PUT_FIELD("len-7", len, (uint32_t)7);
	PUT_FIELD("len-8", len, (uint32_t)8);
	PUT_FIELD("len-max", len, (uint32_t)HEADER_MAX);
	PUT_FIELD("len-max-plus-1", len, (uint32_t)(HEADER_MAX + 1));
	PUT_FIELD("len-huge", len, (uint32_t)0xffffffff);
	PUT_FIELD("expires-negative", expires_ms, (int64_t)INT64_MIN);
	PUT_FIELD("generation-max", generation, UINT64_MAX);
	PUT_FIELD("status-positive", last_status, (int32_t)5);
	PUT_FIELD("status-unknown", last_status, (int32_t)-1000);
	PUT_FIELD("status-nomem", last_status, (int32_t)UCAASAUTH_E_NOMEM);
	PUT_FIELD("failures-max", failures, (uint32_t)UINT32_MAX);
	PUT_FIELD("wake", wake, (uint32_t)UINT32_MAX);
	PUT_FIELD("daemon-pid", daemon_pid, (int32_t)-1);
	memset(text, 'A', sizeof(text));
	put_at("error-no-nul", offsetof(struct segment, error), text,
	       sizeof(text));
	put_at("answered-by-no-nul", offsetof(struct segment, answered_by),
	       text, PROVIDER_NAME_MAX);
	w = 0x0a0d0a0d00000000ull;
	put_at("header-crlf", offsetof(struct segment, header) + 16, &w,
	       sizeof(w));
	memset(img, 0, sizeof(img));
	img[0] = layout(OVER_BODY, SIZE_PAGE, MODE_0600);
	put("segment", "body-zero", img, 1 + SEGMENT_SIZE - 64);
}

/* ---- request --------------------------------------------------------- */

static const struct {
	const char *name, *text;
} requests[] = {
	{"attach", "command=attach\nprofile=tok\n\n"},
	{"refresh", "command=refresh\nprofile=tok\n\n"},
	{"reject", "command=reject\nprofile=tok\ngeneration=42\n\n"},
	{"pipelined", "command=attach\nprofile=a\n\ncommand=refresh\n"
                      "profile=a\n\ncommand=reject\n"},
	{"unknown-keys", "command=attach\nprofile=tok\nx_future=1\n\n"},
	{"empty", "\n"},
	{"incomplete", "command=attach\nprofile=tok\n"},
	{"incomplete-line", "command=att"},
	{"incomplete-full", "a=1\nb=2\nc=3\nd=4\ne=5\nf=6\ng=7\nh=8\n"},
	{"value-equals", "command=a=b=c\n\n"},
	{"value-empty", "command=\n\n"},
	{"generation-max", "generation=18446744073709551615\n\n"},
	{"generation-19-digits", "generation=9999999999999999999\n\n"},
	{"generation-20-digits", "generation=10000000000000000000\n\n"},
	{"generation-sign", "generation=-1\n\n"},
	{"bad-crlf", "command=attach\r\n\r\n"},
	{"bad-no-equals", "command\n\n"},
	{"bad-empty-key", "=attach\n\n"},
	{"bad-upper-key", "Command=attach\n\n"},
	{"bad-key-32", "abcdefghijklmnopqrstuvwxyzabcdef=1\n\n"},
	{"bad-duplicate", "profile=a\nprofile=b\n\n"},
	{"bad-seventeen",
         "a=1\nb=1\nc=1\nd=1\ne=1\nf=1\ng=1\nh=1\ni=1\nj=1\nk=1\n"
         "l=1\nm=1\nn=1\no=1\np=1\nq=1\n\n"},
};

static void request_seeds(void)
{
	char buf[MSG_MAX + 16];

	for (size_t i = 0; i < ARRAY_SIZE(requests); i++)
		put_str("request", requests[i].name, requests[i].text);
	put("request", "bad-nul", "command=a\0b\n\n", 13);
	/* The longest line, one byte more, and a message never ended. */
	memcpy(buf, "message=", 8);
	memset(buf + 8, 'm', MSG_LINE_MAX - 8);
	memcpy(buf + MSG_LINE_MAX, "\n\n", 2);
	put("request", "line-longest", buf, MSG_LINE_MAX + 2);
	buf[MSG_LINE_MAX] = 'm';
	memcpy(buf + MSG_LINE_MAX + 1, "\n\n", 2);
	put("request", "bad-line-too-long", buf, MSG_LINE_MAX + 3);
	for (size_t i = 0; i + 4 <= MSG_MAX; i += 4)
		memcpy(buf + i, "a=1\n", 4);
	put("request", "bad-never-ends", buf, MSG_MAX);
	/* An unfinished line past the cap; eight long lines, unfinished. */
	memset(buf, 'm', MSG_LINE_MAX + 1);
	put("request", "bad-line-unfinished", buf, MSG_LINE_MAX + 1);
	for (size_t i = 0; i < 8; i++) {
		char *line = buf + i * MSG_LINE_MAX;
		memset(line, 'v', MSG_LINE_MAX - 1);
		line[0] = (char)('a' + i);
		line[1] = '=';
		line[MSG_LINE_MAX - 1] = '\n';
	}
	put("request", "bad-too-big", buf, 8 * MSG_LINE_MAX);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR\n", argv[0]);
		return 2;
	}
	top = argv[1];
	if (sodium_init() < 0)
		die("sodium_init");
	config_seeds();
	cred_seeds();
	login_seeds();
	segment_seeds();
	request_seeds();
	return 0;
}

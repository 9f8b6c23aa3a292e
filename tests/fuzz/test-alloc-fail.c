/*
 * Allocation failures in every parser. This program defines malloc and its
 * family itself, forwarding to glibc's allocator, and mmap, which
 * sodium_malloc uses. When armed it refuses the Nth allocation and records
 * every block allocated until it is disarmed, forgetting each one freed.
 *
 * Each case runs once unarmed (what it should give), then with N = 1, 2,
 * 3, ... until a run no longer reaches its Nth allocation. Every run that
 * met the refusal must return UCAASAUTH_E_NOMEM, or give exactly what the
 * unarmed run gave (the failure was absorbed: json-c 0.16 falls back to a
 * new locale when duplocale fails); every run must leave no block behind;
 * the last must give what the unarmed run gave.
 */
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "cache.h"
#include "stack.h"
#include "test.h"

/* ThreadSanitizer and MemorySanitizer must own malloc themselves. */
#if TEST_TSAN || TEST_MSAN
int main(void)
{
	printf("skipped: this sanitizer must own malloc\n");
	return 77;
}
#else

/* The allocator runs before a sanitizer's runtime is ready (it allocates
 * while it starts): nothing in it may be instrumented. */
#if defined(__clang__) || __GNUC__ >= 8
#define RAW __attribute__((no_sanitize("address", "undefined")))
#else
#define RAW
#endif

/* glibc's own allocator, under its exported names. */
void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void __libc_free(void *p);
void *__libc_memalign(size_t align, size_t size);

static struct {
	bool armed;
	unsigned long fail_at; /* the allocation to refuse, from 1 */
	unsigned long count;   /* allocations since armed */
	bool failed;           /* the refusal happened */
} inj;

/* The blocks allocated while armed and not yet freed: an open-addressing
 * set of pointers (a freed slot becomes a tombstone). */
#define SLOTS (1u << 16)
static void *slots[SLOTS];
static char tombstone;
static size_t live, used; /* blocks in the set; slots ever taken */

RAW static size_t slot_of(const void *p)
{
	uint64_t x = (uintptr_t)p;

	x ^= x >> 21;
	x *= 0x9e3779b97f4a7c15ull;
	return (size_t)(x >> 40) & (SLOTS - 1);
}

RAW static void track(void *p)
{
	size_t i;

	if (!inj.armed || !p)
		return;
	if (used >= SLOTS / 2)
		abort(); /* a case that big is a bug of its own */
	for (i = slot_of(p); slots[i] && slots[i] != &tombstone;
	     i = (i + 1) & (SLOTS - 1))
		;
	if (!slots[i])
		used++;
	slots[i] = p;
	live++;
}

RAW static bool untrack(void *p)
{
	if (!p || !live)
		return false;
	for (size_t i = slot_of(p); slots[i]; i = (i + 1) & (SLOTS - 1))
		if (slots[i] == p) {
			slots[i] = &tombstone;
			live--;
			return true;
		}
	return false;
}

static bool trace;

RAW static bool refuse(void)
{
	if (!inj.armed || ++inj.count != inj.fail_at)
		return false;
	inj.failed = true;
	/* ALLOC_FAIL_TRACE=1: where each refused allocation was asked for. */
	if (trace) {
		void *frames[16];
		int n = backtrace(frames, 16);
		fprintf(stderr, "-- refusing allocation %lu:\n", inj.count);
		backtrace_symbols_fd(frames, n, 2);
	}
	errno = ENOMEM;
	return true;
}

RAW void *malloc(size_t size)
{
	void *p;

	if (refuse())
		return NULL;
	p = __libc_malloc(size);
	track(p);
	return p;
}

RAW void *calloc(size_t n, size_t size)
{
	void *p;

	if (refuse())
		return NULL;
	p = __libc_calloc(n, size);
	track(p);
	return p;
}

RAW void *realloc(void *old, size_t size)
{
	void *p;

	if (!old)
		return malloc(size);
	if (size == 0) {
		free(old);
		return NULL;
	}
	if (refuse())
		return NULL;
	p = __libc_realloc(old, size);
	if (p && untrack(old))
		track(p);
	return p;
}

RAW void *reallocarray(void *old, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(old, n * size);
}

/* A marker that stands for a secret in some answers below: what is freed
 * unwiped stays in the heap for the next reader of that memory, so no
 * block freed after a parse may hold it. (During the parse json-c frees
 * copies of its own, out of our reach: a member name once it is added,
 * the partial objects of an allocation failure; docs/security.md.) */
#define MARK "s3cr3t-mark"
static unsigned long unwiped; /* freed blocks that held MARK */
static bool watching;         /* a case runs: free() looks */
static int parsing;           /* inside json_tokener_parse_ex() */

/* The bytes of a glibc block: its chunk header, the word before it, holds
 * the chunk's size (flags in the low 3 bits). Read here rather than asked
 * of malloc_usable_size(), which a sanitizer takes over for its own blocks
 * (and calls before its runtime is ready). */
RAW static size_t block_size(const void *p)
{
	size_t head = ((const size_t *)p)[-1] & ~(size_t)7;

	return head > 2 * sizeof(size_t) ? head - 2 * sizeof(size_t) : 0;
}

RAW static bool holds_mark(const unsigned char *p, size_t n)
{
	static const char m[] = MARK;
	const size_t k = sizeof(m) - 1;

	for (size_t i = 0; i + k <= n; i++) {
		size_t j = 0;

		while (j < k && p[i + j] == (unsigned char)m[j])
			j++;
		if (j == k)
			return true;
	}
	return false;
}

RAW void free(void *p)
{
	if (p && watching && !parsing && holds_mark(p, block_size(p)))
		unwiped++;
	untrack(p);
	__libc_free(p);
}

RAW void *memalign(size_t align, size_t size)
{
	void *p;

	if (refuse())
		return NULL;
	p = __libc_memalign(align, size);
	track(p);
	return p;
}

RAW void *aligned_alloc(size_t align, size_t size)
{
	return memalign(align, size);
}

RAW int posix_memalign(void **ret, size_t align, size_t size)
{
	void *p;

	if (align < sizeof(void *) || (align & (align - 1)))
		return EINVAL;
	p = memalign(align, size);
	if (!p)
		return ENOMEM;
	*ret = p;
	return 0;
}

RAW void *valloc(size_t size)
{
	return memalign(sysconf(_SC_PAGESIZE), size);
}

RAW void *pvalloc(size_t size)
{
	size_t page = sysconf(_SC_PAGESIZE);

	return memalign(page, (size + page - 1) & ~(page - 1));
}

#if JSON_C_VERSION_NUM < (17 << 8)
/*
 * json-c before 0.17 uses strdup's result unchecked where it copies an
 * object key: a NULL is dereferenced in json_tokener_parse_ex, or the value
 * leaks in json_object_object_add_ex. That is json-c's bug (fixed in 0.17),
 * not one the library can handle, so those copies are never refused here.
 */
RAW static bool exempt(const void *caller)
{
	Dl_info info;

	return dladdr(caller, &info) && info.dli_fname &&
	       strstr(info.dli_fname, "libjson-c");
}
#else
RAW static bool exempt(const void *caller)
{
	return false;
}
#endif

RAW static void *alloc_string(size_t size, const void *caller)
{
	void *p;

	if (!inj.armed || !exempt(caller))
		return malloc(size);
	p = __libc_malloc(size);
	track(p);
	return p;
}

/* Defined here so that they allocate through malloc above, whatever a
 * sanitizer runtime would do with them. */
RAW char *strdup(const char *s)
{
	size_t n = strlen(s);
	char *p = alloc_string(n + 1, __builtin_return_address(0));

	if (p)
		memcpy(p, s, n + 1);
	return p;
}

RAW char *strndup(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	char *p = alloc_string(n + 1, __builtin_return_address(0));

	if (p) {
		memcpy(p, s, n);
		p[n] = 0;
	}
	return p;
}

/* sodium_malloc maps its guarded blocks: its failures are mmap's. The
 * definitions carry their symbol names: with _FILE_OFFSET_BITS=64 the
 * header renames a function declared as mmap to mmap64. */
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static int (*real_munmap)(void *, size_t);
void *any_mmap(void *addr, size_t len, int prot, int flags, int fd,
               off_t off) __asm__("mmap");
void *any_mmap64(void *addr, size_t len, int prot, int flags, int fd,
                 off_t off) __asm__("mmap64");

static struct json_object *(*real_parse)(struct json_tokener *, const char *,
                                         int);

RAW static void find_real(void)
{
	real_mmap = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(
		RTLD_NEXT, "mmap");
	real_munmap = (int (*)(void *, size_t))dlsym(RTLD_NEXT, "munmap");
	real_parse = (struct json_object *
	              (*)(struct json_tokener *, const char *, int))
		dlsym(RTLD_NEXT, "json_tokener_parse_ex");
	if (!real_mmap || !real_munmap || !real_parse)
		abort();
}

/* json.c's calls land here (the test links the private library), so
 * that what json-c frees inside a parse is told from what is freed after. */
struct json_object *json_tokener_parse_ex(struct json_tokener *tok,
                                          const char *str, int len)
{
	struct json_object *obj;

	parsing++;
	obj = real_parse(tok, str, len);
	parsing--;
	return obj;
}

RAW void *any_mmap(void *addr, size_t len, int prot, int flags, int fd,
                   off_t off)
{
	void *p;

	if (!real_mmap)
		find_real();
	if (refuse())
		return MAP_FAILED;
	p = real_mmap(addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED)
		track(p);
	return p;
}

RAW void *any_mmap64(void *addr, size_t len, int prot, int flags, int fd,
                     off_t off)
{
	return any_mmap(addr, len, prot, flags, fd, off);
}

RAW int munmap(void *addr, size_t len)
{
	if (!real_munmap)
		find_real();
	untrack(addr);
	return real_munmap(addr, len);
}

static void arm(unsigned long fail_at)
{
	memset(slots, 0, sizeof(slots));
	live = used = 0;
	inj.count = 0;
	inj.failed = false;
	inj.fail_at = fail_at;
	inj.armed = true;
}

/* Returns how many blocks the run left allocated. */
static size_t disarm(void)
{
	inj.armed = false;
	return live;
}

/* What a run produced (its result, or its message), hashed (FNV-1a): the
 * last run must produce the same as the unarmed one. Hashing allocates
 * nothing. */
static uint64_t digest;

static void mix(const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++)
		digest = (digest ^ p[i]) * 0x100000001b3ull;
}

static void mix_str(const char *s)
{
	mix(s ? s : "(null)", s ? strlen(s) + 1 : 7);
}

struct test_case {
	const char *name;
	int (*run)(const struct test_case *c);
	const char *text; /* the input */
	size_t len;       /* its length, 0: strlen(text) */
	long status;      /* login_parse: the HTTP status */
	const char *aux;  /* a profile name, a path */
};

static size_t text_len(const struct test_case *c)
{
	return c->len ? c->len : strlen(c->text);
}

static int failures;

/* Runs one case under every allocation failure it can meet. */
static void check_case(const struct test_case *c)
{
	unsigned long n, absorbed = 0;
	uint64_t want_digest;
	size_t leaked;
	int want, r;

	digest = 0xcbf29ce484222325ull;
	unwiped = 0;
	watching = true;
	want = c->run(c);
	if (want < 0)
		mix_str(ucaasauth_last_error());
	want_digest = digest;
	for (n = 1;; n++) {
		digest = 0xcbf29ce484222325ull;
		arm(n);
		r = c->run(c);
		leaked = disarm();
		if (r < 0)
			mix_str(ucaasauth_last_error());
		if (leaked) {
			fprintf(stderr,
			        "%s: failing allocation %lu of %lu: %zu blocks "
			        "left allocated\n",
			        c->name, n, inj.count, leaked);
			failures++;
		}
		if (!inj.failed)
			break;
		if (r == want && digest == want_digest &&
		    r != UCAASAUTH_E_NOMEM)
			absorbed++;
		else if (r != UCAASAUTH_E_NOMEM) {
			fprintf(stderr,
			        "%s: failing allocation %lu of %lu gave %d (%s), "
			        "not UCAASAUTH_E_NOMEM\n  last error: %s\n",
			        c->name, n, inj.count, r, ucaasauth_strerror(r),
			        ucaasauth_last_error());
			failures++;
		}
	}
	if (r != want || digest != want_digest) {
		fprintf(stderr,
		        "%s: gave %d, then %d with a counting allocator\n",
		        c->name, want, r);
		failures++;
	}
	watching = false;
	if (unwiped) {
		fprintf(stderr,
		        "%s: %lu freed blocks still held \"" MARK "\"\n",
		        c->name, unwiped);
		failures++;
	}
	printf("%-36s %3lu allocations, status %3d", c->name, n - 1, want);
	if (absorbed)
		printf(" (%lu failures absorbed)", absorbed);
	printf("\n");
}

#define CONF_PATH "/etc/ucaasauth/ucaasauth.conf"

static int run_config_parse(const struct test_case *c)
{
	struct config *config = NULL;
	int r = config_parse(c->text, text_len(c), CONF_PATH, &config);

	if (r == 0) {
		mix(&config->n_profiles, sizeof(config->n_profiles));
		mix_str(config->default_profile);
		for (size_t i = 0; i < config->n_profiles; i++) {
			const struct profile *p = &config->profiles[i];
			mix_str(p->name);
			mix_str(p->api_base);
			mix_str(p->app_id);
			mix_str(p->credentials);
			mix_str(p->key_file);
			mix_str(p->ca_file);
			mix(&p->token_ttl, sizeof(p->token_ttl));
			for (size_t k = 0; k < p->n_stack; k++) {
				mix_str(p->stack[k].name);
				for (int a = 0; a < p->stack[k].argc; a++)
					mix_str(p->stack[k].argv[a]);
			}
		}
	}
	config_free(config);
	return r;
}

static char tmp[] = "/tmp/test-alloc-fail.XXXXXX";
static char conf_file[PATH_MAX], key_file[PATH_MAX], cred_file[PATH_MAX];
static uint8_t key[MASTER_KEY_BYTES];
static struct profile cred_profile;

static int run_config_load(const struct test_case *c)
{
	struct config *config = NULL;
	int r = config_load(conf_file, &config);

	if (r == 0)
		mix_str(config->profiles[0].credentials);
	config_free(config);
	return r;
}

static void mix_secrets(const struct secrets *s)
{
	mix_str(s->app_key);
	mix_str(s->email);
	mix_str(s->password);
}

/* c->text holds a credential file, c->aux the profile it is opened for. */
static int run_cred_decrypt(const struct test_case *c)
{
	struct secrets *s = NULL;
	int r = cred_decrypt((const uint8_t *)c->text, c->len, c->aux, key,
	                     "test.cred", &s);

	if (r == 0)
		mix_secrets(s);
	secrets_free(s);
	return r;
}

static int run_secrets_parse(const struct test_case *c)
{
	struct secrets *s = secrets_new();
	int r;

	if (!s)
		return UCAASAUTH_E_NOMEM;
	r = secrets_parse(s, c->text, text_len(c), "test.cred");
	if (r == 0)
		mix_secrets(s);
	secrets_free(s);
	return r;
}

static int run_cred_encrypt(const struct test_case *c)
{
	struct secrets *s = secrets_new();
	uint8_t *data;
	size_t len;
	int r;

	if (!s)
		return UCAASAUTH_E_NOMEM;
	snprintf(s->email, sizeof(s->email), "%s", c->text);
	snprintf(s->password, sizeof(s->password), "%s", c->text);
	r = cred_encrypt(s, "p", key, &data, &len);
	if (r == 0) {
		mix(&len, sizeof(len));
		free(data);
	}
	secrets_free(s);
	return r;
}

static int run_cred_load(const struct test_case *c)
{
	struct secrets *s = NULL;
	int r = cred_load(&cred_profile, &s);

	if (r == 0)
		mix_secrets(s);
	secrets_free(s);
	return r;
}

static int run_login_parse(const struct test_case *c)
{
	char token[TOKEN_MAX + 1];
	int ttl = 0, r;

	r = login_parse(c->status, c->text, text_len(c),
	                "http://127.0.0.1/login", 900, token, &ttl);
	if (r == 0) {
		mix_str(token);
		mix(&ttl, sizeof(ttl));
	}
	return r;
}

static int run_exec_parse(const struct test_case *c)
{
	char buf[HEADER_MAX + 1];
	long lifetime = 0;
	size_t len = 0;
	int r;

	r = exec_parse(c->text, text_len(c), "/usr/bin/tok", buf, sizeof(buf),
	               &len, &lifetime);
	if (r == 0) {
		mix(buf, len);
		mix(&lifetime, sizeof(lifetime));
	}
	return r;
}

#define PROFILE_A                                                              \
	"[profile a]\n"                                                        \
	"api_base = https://api.enablex.io/ucaas/v1\n"                         \
	"app_id = app-1\n"

static const struct test_case config_cases[] = {
	{"config_parse: empty", run_config_parse, ""},
	{"config_parse: one profile", run_config_parse, PROFILE_A},
	{"config_parse: every key", run_config_parse,
         "# all of them\n"
         "default_profile = b\r\n" PROFILE_A "[profile b]\n"
         "api_base = http://127.0.0.1:8080/ucaas/v1/\n"
         "app_id = app-2\n"
         "credentials = creds/b.cred\n"
         "key_file = /etc/ucaasauth/master.key\n"
         "ca_file = ca.pem\n"
         "provider = required basic\n"
         "cache = process\n"
         "token_ttl = 600\n"
         "refresh_ahead = 120\n"
         "expiry_margin = 30\n"
         "wait_timeout = 10\n"
         "connect_timeout = 3\n"
         "timeout = 9\n"
         "[profile c]\n"
         "api_base = https://example.com\n"
         "app_id = app-3\n"},
	{"config_parse: unknown key", run_config_parse,
         PROFILE_A "[profile b]\napi_base = https://x\ncolour = red\n"},
	{"config_parse: duplicate profile", run_config_parse,
         PROFILE_A PROFILE_A},
	{"config_parse: missing app_id", run_config_parse,
         PROFILE_A "[profile b]\napi_base = https://x\n"},
	{"config_parse: missing default", run_config_parse,
         "default_profile = zz\n" PROFILE_A},
	{"config_parse: two providers", run_config_parse,
         PROFILE_A "provider = login\nprovider = basic\n"},
	{"config_parse: stack, exec", run_config_parse,
         PROFILE_A "provider = sufficient exec /usr/bin/tok -a b\n"
                   "provider = required login\n"
                   "module_dir = /usr/lib/ucaasauth\n"
                   "exec_env = HOME PATH\n"},
	{"config_parse: bad timings", run_config_parse,
         PROFILE_A "token_ttl = 60\nrefresh_ahead = 60\n"},
	{"config_parse: http to elsewhere", run_config_parse,
         PROFILE_A "[profile b]\napi_base = http://example.com\n"},
	{"config_load", run_config_load, ""},
};

/*
 * json-c 0.16 ignores some failures of its own: a member whose object (11
 * keys and more) or array (32 elements and more) cannot grow is dropped and
 * leaked, and a piece of a string its buffer cannot grow for is dropped.
 * login.c sees the last through errno, unless an integer parsed later clears
 * errno: {"token": "<40 bytes>\/x", "expires_in": 60} can then give the
 * token "/x". These answers stay clear of both; json-c 0.17 reports them.
 */
static const struct test_case login_cases[] = {
	{"login_parse: token", run_login_parse, "{\"token\":\"abc-123\"}", 0,
         200},
	{"login_parse: token, expires_in", run_login_parse,
         "{\"token\": \"abc\", \"expires_in\": 60, \"x\": [1, 2.5, null]}", 0,
         200},
	{"login_parse: long token", run_login_parse, NULL, 0, 200},
	{"login_parse: many keys", run_login_parse,
         "{\"a\":1,\"b\":{\"c\":[true,false,{\"d\":\"eeeeeeeeeeeeeeeeeeeeeee"
         "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\"}]},\"token\":\"t\","
         "\"e\":\"\\u00e9\\n\",\"f\":-1.5e3,\"g\":\"gggggggggggggggggggggg"
         "gggggggggggggggggggggggggggggggggggggggg\"}",
         0, 200},
	{"login_parse: not json", run_login_parse, "<html>hello</html>", 0,
         200},
	{"login_parse: no token", run_login_parse, "{\"tok\": \"abc\"}", 0,
         200},
	{"login_parse: token with space", run_login_parse,
         "{\"token\": \"a b\"}", 0, 200},
	{"login_parse: bad expires_in", run_login_parse,
         "{\"token\": \"abc\", \"expires_in\": \"soon\"}", 0, 200},
	{"login_parse: trailing bytes", run_login_parse,
         "{\"token\": \"abc\"} {}", 0, 200},
	{"login_parse: 401", run_login_parse,
         "{\"result\": 1002, \"msg\": \"Invalid credentials\"}", 0, 401},
	{"login_parse: 403 expired", run_login_parse,
         "{\"result\": 1001, \"msg\": \"Token expired\", \"desc\": \"Your "
         "token has expired, please log in again\"}",
         0, 403},
	{"login_parse: 503 html", run_login_parse,
         "<html><body>busy</body></html>", 0, 503},
	{"login_parse: 404", run_login_parse, "{\"msg\": \"no such route\"}", 0,
         404},
	{"login_parse: 302", run_login_parse, "", 0, 302},
	/* Every string of an answer is wiped, not the token alone. */
	{"login_parse: secrets beside the token", run_login_parse,
         "{\"token\": \"" MARK "-t\", \"refresh\": \"" MARK "-r\", "
         "\"" MARK "-name\": [\"" MARK "-a\", 1.25]}",
         0, 200},
	{"login_parse: secrets, refused", run_login_parse,
         "{\"token\": \"" MARK " t\", \"refresh\": \"" MARK "-r\"}", 0, 200},
	{"login_parse: secrets, cut short", run_login_parse,
         "{\"refresh\": \"" MARK "-r\", \"x\": [{\"" MARK "-n\": \"" MARK, 0,
         200},
	{"login_parse: secrets in a refusal", run_login_parse,
         "{\"msg\": \"bad\", \"hint\": \"" MARK "-h\"}", 0, 403},
};

/* An exec command's answer: the same JSON rules as a login answer. */
static const struct test_case exec_cases[] = {
	{"exec_parse: token", run_exec_parse,
         "{\"token\": \"abc\", \"expires_in\": 60}"},
	{"exec_parse: header", run_exec_parse,
         "{\"header\": \"Authorization: Bearer xyz\", \"x\": [1, 2.5]}"},
	{"exec_parse: expires_at", run_exec_parse,
         "{\"token\": \"abc\", \"expires_at\": \"2999-01-01T00:00:00Z\"}"},
	{"exec_parse: not json", run_exec_parse, "token=abc"},
	{"exec_parse: array", run_exec_parse, "[\"abc\"]"},
	{"exec_parse: cut short", run_exec_parse,
         "{\"a\": [{\"b\": \"secret\", \"token\": \"ab"},
	{"exec_parse: no token", run_exec_parse, "{\"tok\": \"abc\"}"},
	{"exec_parse: bad expires_in", run_exec_parse,
         "{\"token\": \"abc\", \"expires_in\": \"soon\"}"},
	{"exec_parse: secrets beside the header", run_exec_parse,
         "{\"header\": \"Authorization: Bearer " MARK "\", \"token\": "
         "\"" MARK "-t\", \"" MARK "-name\": {\"k\": \"" MARK "-v\"}}"},
	{"exec_parse: secrets, cut short", run_exec_parse,
         "{\"token\": \"" MARK "-t\", \"x\": [\"" MARK},
};

static const struct test_case secrets_cases[] = {
	{"secrets_parse: good", run_secrets_parse,
         "app_key=k\nemail=a@b.c\npassword=p w\n"},
	{"secrets_parse: unknown key", run_secrets_parse, "user=x\n"},
	{"cred_encrypt", run_cred_encrypt, "someone@example.com"},
	{"cred_load", run_cred_load, ""},
};

/* Also when a check fails: test.h exits. */
static void rm_all(void)
{
	unlink(conf_file);
	unlink(key_file);
	unlink(cred_file);
	rmdir(tmp);
}

static void save_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	CHECK(fd >= 0);
	CHECK_INT(write(fd, data, len), (long long)len);
	CHECK_INT(close(fd), 0);
}

/* Credential files made now, for the test key. */
static void cred_cases(void)
{
	struct secrets *s = secrets_new();
	struct test_case c = {.run = run_cred_decrypt};
	uint8_t *good, *bad;
	size_t len;

	CHECK(s != NULL);
	strcpy(s->app_key, "k3y");
	strcpy(s->email, "ops@example.com");
	strcpy(s->password, "pass word");
	CHECK_INT(cred_encrypt(s, "p", key, &good, &len), 0);
	save_file(cred_file, good, len);

	c.name = "cred_decrypt: good";
	c.text = (const char *)good;
	c.len = len;
	c.aux = "p";
	check_case(&c);
	c.name = "cred_decrypt: another profile";
	c.aux = "q";
	check_case(&c);

	bad = malloc(len);
	CHECK(bad != NULL);
	memcpy(bad, good, len);
	bad[len - 1] ^= 1;
	c.name = "cred_decrypt: tampered";
	c.text = (const char *)bad;
	c.aux = "p";
	check_case(&c);
	c.name = "cred_decrypt: truncated";
	c.len = 20;
	check_case(&c);
	free(bad);
	free(good);

	memset(s, 0, sizeof(*s));
	strcpy(s->email, "x=y");
	CHECK_INT(cred_encrypt(s, "p", key, &good, &len), 0);
	good[0] = 'X';
	c.name = "cred_decrypt: bad magic";
	c.text = (const char *)good;
	c.len = len;
	check_case(&c);
	free(good);
	secrets_free(s);
}

int main(void)
{
	struct test_case long_token = login_cases[2];
	char *body;

	find_real();
	if (getenv("ALLOC_FAIL_TRACE")) {
		void *frame;
		backtrace(&frame, 1); /* loads what it needs now */
		trace = true;
	}
	CHECK(sodium_init() >= 0);
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 1);

	CHECK(mkdtemp(tmp) != NULL);
	atexit(rm_all);
	snprintf(conf_file, sizeof(conf_file), "%s/ucaasauth.conf", tmp);
	snprintf(key_file, sizeof(key_file), "%s/master.key", tmp);
	snprintf(cred_file, sizeof(cred_file), "%s/p.cred", tmp);
	save_file(conf_file, config_cases[2].text,
	          strlen(config_cases[2].text));
	save_file(key_file, key, sizeof(key));
	cred_profile = (struct profile){
		.name = "p",
		.credentials = cred_file,
		.key_file = key_file,
	};

	for (size_t i = 0; i < ARRAY_SIZE(config_cases); i++)
		check_case(&config_cases[i]);
	cred_cases();
	for (size_t i = 0; i < ARRAY_SIZE(secrets_cases); i++)
		check_case(&secrets_cases[i]);

	body = malloc(TOKEN_MAX + 32);
	CHECK(body != NULL);
	strcpy(body, "{\"token\": \"");
	memset(body + strlen(body), 'T', TOKEN_MAX);
	strcpy(body + 11 + TOKEN_MAX, "\"}");
	long_token.text = body;
	for (size_t i = 0; i < ARRAY_SIZE(login_cases); i++)
		check_case(i == 2 ? &long_token : &login_cases[i]);
	free(body);
	for (size_t i = 0; i < ARRAY_SIZE(exec_cases); i++)
		check_case(&exec_cases[i]);

	CHECK_INT(failures, 0);
	TEST_DONE();
}
#endif

/*
 * The login provider: POST {api_base}/login, and the judgement of its
 * answer. libcurl failures are mapped to statuses here and nowhere else
 * (json-c's in json.c).
 *
 * libcurl is not linked: it is dlopen()ed when the first login is about
 * to happen, so that a process that never logs in (a daemon client, a
 * reader of a warm cache, a Basic profile) never maps libcurl, OpenSSL
 * and the thirty libraries behind them. The dependency is recorded in an
 * ELF .note.dlopen for packagers (see README.md, "Packaging").
 */
#include <ctype.h>
#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <sodium.h>

#include "cache.h"
#include "stack.h"

#ifndef LIBCURL_SONAME
#define LIBCURL_SONAME "libcurl.so.4"
#endif

/*
 * The FDO dlopen note (https://systemd.io/ELF_DLOPEN_METADATA/), laid out
 * as systemd's ELF_NOTE_DLOPEN lays it out: `readelf -n` and
 * package-notes read it to keep libcurl a dependency of the package.
 */
#define DLOPEN_NOTE_OWNER "FDO"
#define DLOPEN_NOTE_TYPE UINT32_C(0x407c0c0a)
#define DLOPEN_NOTE_JSON                                                       \
	"[{\"feature\":\"login\",\"description\":\"HTTP client for the "       \
	"login provider (POST /login)\",\"priority\":\"required\","            \
	"\"soname\":[\"" LIBCURL_SONAME "\"]}]"

struct dlopen_note {
	struct {
		uint32_t n_namesz, n_descsz, n_type;
	} nhdr;
	char name[sizeof(DLOPEN_NOTE_OWNER)];
	_Alignas(sizeof(uint32_t)) char json[sizeof(DLOPEN_NOTE_JSON)];
};

/* Notes are 4-byte aligned: the explicit alignment also stops the
 * compiler from aligning a large object to 32, which breaks the note. */
/* clang-format cannot lay out an attribute before a declaration. */
/* clang-format off */
__attribute__((used, section(".note.dlopen"))) _Alignas(uint32_t)
static const struct dlopen_note dlopen_note = {
	.nhdr = {
		.n_namesz = sizeof(DLOPEN_NOTE_OWNER),
		.n_descsz = sizeof(DLOPEN_NOTE_JSON),
		.n_type = DLOPEN_NOTE_TYPE,
	},
	.name = DLOPEN_NOTE_OWNER,
	.json = DLOPEN_NOTE_JSON,
};
/* clang-format on */

/* The libcurl functions this file calls, and nothing else: the table is
 * typed from curl.h, so a prototype change fails the build. */
#define CURL_SYMBOLS(X)                                                        \
	X(curl_global_init)                                                    \
	X(curl_global_init_mem)                                                \
	X(curl_easy_init)                                                      \
	X(curl_easy_reset)                                                     \
	X(curl_easy_setopt)                                                    \
	X(curl_easy_perform)                                                   \
	X(curl_easy_getinfo)                                                   \
	X(curl_easy_cleanup)                                                   \
	X(curl_easy_strerror)                                                  \
	X(curl_slist_append)                                                   \
	X(curl_slist_free_all)

#define SYM_DECLARE(name) static __typeof__(name) *sym_##name;
CURL_SYMBOLS(SYM_DECLARE)

struct answer {
	char *data; /* sodium_malloc(ANSWER_MAX + 1): it holds the token */
	size_t len;
	bool too_big;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_status;      /* of curl_start(): 0 or a status */
static char curl_error[768]; /* why it failed */

/*
 * libcurl copies the request, password included, into buffers it later
 * frees without wiping. When this library is the one that starts libcurl
 * in a process (always so in ucaas-auth and ucaas-authd), libcurl's frees
 * wipe first. If the program started libcurl before, its choice stands
 * (curl_global_init_mem() then changes nothing): see docs/security.md.
 */
static void wiping_free(void *p)
{
	if (p) {
		sodium_memzero(p, malloc_usable_size(p));
		free(p);
	}
}

static void *wiping_realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (!p)
		return malloc(n);
	old = malloc_usable_size(p);
	q = malloc(n ? n : 1);
	if (!q)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	wiping_free(p);
	return q;
}

/*
 * libcurl's memory functions are process-wide and outlive whoever set
 * them: once they point into this code, this code must stay mapped. A
 * plugin linked with libucaasauth may be dlclose()d by a host that goes on
 * using libcurl, whose next curl_easy_init() would then jump into
 * unmapped memory. So the object holding this file is first made
 * impossible to unload: RTLD_NODELETE on itself, already loaded. The
 * executable (ucaas-auth, ucaas-authd, a program linked with the static
 * library) is never unloaded. See docs/design.md, "dlclose()".
 */
static bool pin_self(void)
{
	const struct link_map *map;
	void *extra = NULL;
	Dl_info info;

	if (!dladdr1(&curl_once, &info, &extra, RTLD_DL_LINKMAP) || !extra)
		return false;
	map = extra;
	if (!map->l_name || !map->l_name[0])
		return true;
	/* The handle is never closed: it is what keeps us. */
	return dlopen(map->l_name, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE) !=
	       NULL;
}

static void curl_start(void)
{
	CURLcode code;
	void *h;

	/* RTLD_LOCAL: libcurl's symbols stay out of the global scope, as
	 * they were never in it for a program that does not link libcurl. */
	h = dlopen(LIBCURL_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		curl_status = UCAASAUTH_E_CONFIG;
		snprintf(curl_error, sizeof(curl_error),
		         "the login provider needs %s, which cannot be "
		         "loaded: %s",
		         LIBCURL_SONAME, dlerror());
		return;
	}
#define SYM_RESOLVE(name)                                                      \
	sym_##name = (__typeof__(sym_##name))dlsym(h, #name);                  \
	if (!sym_##name) {                                                     \
		curl_status = UCAASAUTH_E_CONFIG;                              \
		snprintf(curl_error, sizeof(curl_error), "%s has no %s: %s",   \
		         LIBCURL_SONAME, #name, dlerror());                    \
		dlclose(h);                                                    \
		return;                                                        \
	}
	CURL_SYMBOLS(SYM_RESOLVE)
#undef SYM_RESOLVE

	/* The wiping allocators only once nothing can unmap them; should
	 * that fail (it should not), libcurl keeps plain malloc and free
	 * rather than be left pointing at code that may go away. */
	if (pin_self())
		code = sym_curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc,
		                                wiping_free, wiping_realloc,
		                                strdup, calloc);
	else
		code = sym_curl_global_init(CURL_GLOBAL_DEFAULT);
	if (code != CURLE_OK) {
		curl_status = code == CURLE_OUT_OF_MEMORY ? UCAASAUTH_E_NOMEM
		                                          : UCAASAUTH_E_CONFIG;
		snprintf(curl_error, sizeof(curl_error),
		         "%s: curl_global_init: %s", LIBCURL_SONAME,
		         sym_curl_easy_strerror(code));
	}
}

int login_start(void)
{
	pthread_once(&curl_once, curl_start);
	if (curl_status < 0)
		return fail(curl_status, "%s", curl_error);
	return 0;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct answer *a = userdata;
	size_t n = size * nmemb;

	/* Capped: a hostile server cannot make us hold 10 MB. */
	if (n > ANSWER_MAX - a->len) {
		a->too_big = true;
		return 0;
	}
	memcpy(a->data + a->len, ptr, n);
	a->len += n;
	return n;
}

/* The server's own words, made safe to put in a message: 0, also when
 * there are none, or UCAASAUTH_E_NOMEM. */
static int server_msg(const char *body, size_t len, char *out, size_t size)
{
	struct json_object *obj;
	const char *msg;
	size_t n, o = 0;
	int r;

	out[0] = 0;
	r = json_parse_object(body, len, "the answer", &obj);
	if (r < 0)
		return r == UCAASAUTH_E_NOMEM ? r : 0;
	if (json_get_string(obj, "msg", &msg, &n)) {
		for (size_t i = 0; i < n && o + 1 < size && o < 120; i++)
			out[o++] =
				isprint((unsigned char)msg[i]) ? msg[i] : '?';
		out[o] = 0;
	}
	json_free_wiped(obj);
	return 0;
}

static bool token_valid(const char *t, size_t len)
{
	if (len == 0 || len > TOKEN_MAX)
		return false;
	/* Visible ASCII only: no space, CR or LF that could end the header
	 * line and inject another. */
	for (size_t i = 0; i < len; i++)
		if (t[i] < 0x21 || t[i] > 0x7e)
			return false;
	return true;
}

int login_parse(long http_status, const char *body, size_t len, const char *url,
                int default_ttl, char *token, int *ret_ttl)
{
	struct json_object *obj, *exp;
	char msg[128], what[1200];
	const char *s;
	size_t n;
	int ttl = default_ttl, r;

	/* Every refusal but a redirect quotes the server's msg. */
	if (http_status != 200 && (http_status < 300 || http_status > 399) &&
	    server_msg(body, len, msg, sizeof(msg)) < 0)
		return fail(UCAASAUTH_E_NOMEM, "POST %s: out of memory", url);
	if (http_status == 401 || http_status == 403)
		return fail(UCAASAUTH_E_DENIED,
		            "POST %s: the server refused the credentials (HTTP "
		            "%ld%s%s)",
		            url, http_status, msg[0] ? ": " : "", msg);
	if (http_status == 429 || (http_status >= 500 && http_status <= 599))
		return fail(UCAASAUTH_E_UNAVAILABLE, "POST %s: HTTP %ld%s%s",
		            url, http_status, msg[0] ? ": " : "", msg);
	if (http_status >= 300 && http_status <= 399)
		return fail(UCAASAUTH_E_PROTOCOL,
		            "POST %s: HTTP %ld redirect, not followed", url,
		            http_status);
	if (http_status != 200)
		return fail(UCAASAUTH_E_PROTOCOL,
		            "POST %s: unexpected HTTP %ld%s%s", url,
		            http_status, msg[0] ? ": " : "", msg);

	snprintf(what, sizeof(what), "POST %s: the answer", url);
	r = json_parse_object(body, len, what, &obj);
	if (r < 0)
		return r;
	if (!json_get_string(obj, "token", &s, &n)) {
		r = fail(UCAASAUTH_E_PROTOCOL,
		         "POST %s: the answer has no \"token\" string", url);
		goto out;
	}
	if (!token_valid(s, n) || strlen(s) != n) {
		r = fail(
			UCAASAUTH_E_PROTOCOL,
			"POST %s: the token is empty, longer than %d bytes, or "
			"holds spaces or control characters",
			url, TOKEN_MAX);
		goto out;
	}
	/* The documented answer has no expiry; honour one if it comes. */
	if (json_object_object_get_ex(obj, "expires_in", &exp)) {
		int64_t v = json_object_get_int64(exp);
		if (!json_object_is_type(exp, json_type_int) || v < 1 ||
		    v > 86400) {
			r = fail(UCAASAUTH_E_PROTOCOL,
			         "POST %s: \"expires_in\" is not a number of "
			         "seconds from 1 to 86400",
			         url);
			goto out;
		}
		ttl = (int)v;
	}
	memcpy(token, s, n);
	token[n] = 0;
	*ret_ttl = ttl;
	r = 0;
out:
	json_free_wiped(obj);
	return r;
}

/* {"email": ..., "password": ...} in guarded memory; json-c's copies are
 * wiped before they are freed. */
static int make_body(const struct secrets *secrets, char **ret, size_t *ret_len)
{
	const char *keys[] = {"email", "password"};
	const char *values[] = {secrets->email, secrets->password};
	struct json_object *obj = json_object_new_object();
	const char *s = NULL;
	size_t len = 0;
	char *body;
	int r = 0;

	for (size_t i = 0; obj && i < ARRAY_SIZE(keys); i++) {
		struct json_object *v = json_object_new_string(values[i]);

		if (!v || json_object_object_add(obj, keys[i], v) < 0) {
			json_free_wiped(v);
			r = fail(UCAASAUTH_E_NOMEM, "out of memory");
			goto out;
		}
	}
	s = obj ? json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN,
	                                            &len)
	        : NULL;
	body = s ? sodium_malloc(len + 1) : NULL;
	if (!body) {
		r = fail(UCAASAUTH_E_NOMEM, "out of memory");
		goto out;
	}
	memcpy(body, s, len + 1);
	*ret = body;
	*ret_len = len;
out:
	if (s)
		sodium_memzero((char *)s, len);
	json_free_wiped(obj);
	return r;
}

static int transport_error(CURLcode code, const char *url, bool too_big)
{
	if (too_big || code == CURLE_FILESIZE_EXCEEDED)
		return fail(UCAASAUTH_E_PROTOCOL,
		            "POST %s: the answer is larger than %d bytes", url,
		            ANSWER_MAX);
	if (code == CURLE_OUT_OF_MEMORY)
		return fail(UCAASAUTH_E_NOMEM, "POST %s: out of memory", url);
	if (code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_URL_MALFORMAT)
		return fail(UCAASAUTH_E_CONFIG, "POST %s: %s", url,
		            sym_curl_easy_strerror(code));
	/* Refused, unreachable, reset, timed out, TLS failures: the server
	 * is not there for us now. */
	return fail(UCAASAUTH_E_UNAVAILABLE, "POST %s: %s", url,
	            sym_curl_easy_strerror(code));
}

static int easy_for(struct login *login, CURL **ret)
{
	pid_t pid = getpid();
	int r;

	/* After fork the parent's connection is not ours: a child that
	 * reused or closed it would corrupt the parent's stream. */
	if (login->easy && login->pid != pid)
		login->easy = NULL;
	if (!login->easy) {
		r = login_start();
		if (r < 0)
			return r;
		login->easy = sym_curl_easy_init();
		if (!login->easy)
			return fail(UCAASAUTH_E_NOMEM,
			            "%s: curl_easy_init failed",
			            LIBCURL_SONAME);
		login->pid = pid;
	}
	*ret = login->easy;
	return 0;
}

int login_fetch(struct login *login, const struct profile *profile,
                const struct secrets *secrets, char *token, int *ret_ttl)
{
	struct answer answer = {0};
	struct curl_slist *headers = NULL, *h;
	char url[1100], api_id[300];
	char *body = NULL;
	size_t body_len = 0;
	long status = 0;
	CURLcode code;
	CURL *easy = NULL;
	int r;

	snprintf(url, sizeof(url), "%s/login", profile->api_base);
	snprintf(api_id, sizeof(api_id), "X-Api-Id: %s", profile->app_id);
	r = easy_for(login, &easy);
	if (r < 0)
		return r;
	answer.data = sodium_malloc(ANSWER_MAX + 1);
	if (!answer.data)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	r = make_body(secrets, &body, &body_len);
	if (r < 0)
		goto out;
	h = sym_curl_slist_append(NULL, api_id);
	if (h) {
		headers = h;
		h = sym_curl_slist_append(headers,
		                          "Content-Type: application/json");
	}
	if (h)
		h = sym_curl_slist_append(headers, "Accept: application/json");
	if (!h) {
		r = fail(UCAASAUTH_E_NOMEM, "out of memory");
		goto out;
	}

	sym_curl_easy_reset(easy);
	sym_curl_easy_setopt(easy, CURLOPT_URL, url);
	sym_curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	sym_curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	sym_curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	sym_curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	sym_curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (profile->ca_file)
		sym_curl_easy_setopt(easy, CURLOPT_CAINFO, profile->ca_file);
	sym_curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT,
	                     (long)profile->connect_timeout);
	sym_curl_easy_setopt(easy, CURLOPT_TIMEOUT, (long)profile->timeout);
	sym_curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
	sym_curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
	sym_curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)body_len);
	sym_curl_easy_setopt(easy, CURLOPT_MAXFILESIZE, (long)ANSWER_MAX);
	sym_curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_data);
	sym_curl_easy_setopt(easy, CURLOPT_WRITEDATA, &answer);
	sym_curl_easy_setopt(easy, CURLOPT_USERAGENT,
	                     "libucaasauth/" UCAASAUTH_VERSION);

	code = sym_curl_easy_perform(easy);
	/* The handle keeps the connection, not our pointers. */
	sym_curl_easy_setopt(easy, CURLOPT_POSTFIELDS, NULL);
	sym_curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
	if (code != CURLE_OK) {
		r = transport_error(code, url, answer.too_big);
		goto out;
	}
	sym_curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	answer.data[answer.len] = 0;
	r = login_parse(status, answer.data, answer.len, url,
	                profile->token_ttl, token, ret_ttl);
out:
	sym_curl_slist_free_all(headers);
	if (body)
		sodium_free(body);
	sodium_free(answer.data);
	return r;
}

void login_free(struct login *login)
{
	if (login->easy && login->pid == getpid())
		sym_curl_easy_cleanup(login->easy);
	login->easy = NULL;
}

/* The login provider behind the stack's interface. */
static int login_open(void **ret_state,
                      const struct ucaasauth_provider_args *args)
{
	/* The provider, not the handle: ucaas-authd's reload moves opened
	 * providers to another handle (provider->ua follows). */
	*ret_state = provider_of(args);
	return 0;
}

static int login_header(void *state, char *buf, size_t size, size_t *ret_len,
                        long *ret_lifetime)
{
	struct ucaasauth *ua = ((struct provider *)state)->ua;
	size_t prefix = strlen(TOKEN_PREFIX);
	int ttl = 0, r;

	assert(size > HEADER_MAX);
	memcpy(buf, TOKEN_PREFIX, prefix);
	r = login_fetch(&ua->login, ua->profile, ua->secrets, buf + prefix,
	                &ttl);
	if (r < 0)
		return r;
	*ret_len = strlen(buf);
	*ret_lifetime = ttl;
	return 0;
}

static void login_close(void *state)
{
}

const struct ucaasauth_provider login_provider = {
	.abi_version = UCAASAUTH_PROVIDER_ABI,
	.name = "login",
	.open = login_open,
	.fetch = login_header,
	.close = login_close,
};

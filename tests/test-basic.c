/*
 * Basic profiles through the public ABI: the exact header bytes, the
 * buffer contract of ucaasauth_header(), reject and close, the status
 * sentences, the per-thread last error, and a handle used after fork().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "internal.h"
#include "test.h"

#define PREFIX "Authorization: Basic "
#define LONG_KEY_LEN SECRET_MAX

static char tmp[] = "/tmp/test-basic.XXXXXX";
static char conf_path[PATH_MAX], key_path[PATH_MAX], runtime[PATH_MAX];
static pid_t main_pid;

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

static char *in_tmp(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", tmp, name);
	return buf;
}

/* RFC 4648 base64 with padding, written here rather than taken from the
 * library under test. */
static void b64(const unsigned char *in, size_t len, char *out)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		unsigned long v = (unsigned long)in[i] << 16 |
		                  (unsigned long)in[i + 1] << 8 | in[i + 2];
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = abc[v >> 6 & 63];
		out[o++] = abc[v & 63];
	}
	if (len - i == 1) {
		unsigned long v = (unsigned long)in[i] << 16;
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		unsigned long v = (unsigned long)in[i] << 16 |
		                  (unsigned long)in[i + 1] << 8;
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = abc[v >> 6 & 63];
		out[o++] = '=';
	}
	out[o] = 0;
}

/* Encrypts these secrets as the credential file of `profile`, whatever
 * its provider needs (cred_store would refuse an incomplete set). */
static void put_secrets(const char *profile, const char *app_key,
                        const char *email, const char *password)
{
	struct secrets *s = secrets_new();
	uint8_t *key = NULL, *data = NULL;
	char path[PATH_MAX], name[PROFILE_NAME_MAX + 8];
	size_t len;

	CHECK(s != NULL);
	snprintf(s->app_key, sizeof(s->app_key), "%s", app_key);
	snprintf(s->email, sizeof(s->email), "%s", email);
	snprintf(s->password, sizeof(s->password), "%s", password);
	CHECK_INT(key_load(key_path, &key), UCAASAUTH_OK);
	CHECK_INT(cred_encrypt(s, profile, key, &data, &len), UCAASAUTH_OK);
	snprintf(name, sizeof(name), "%s.cred", profile);
	write_file(in_tmp(path, sizeof(path), name), data, len, 0600);
	free(data);
	sodium_free(key);
	secrets_free(s);
}

static struct ucaasauth *open_ok(const char *profile)
{
	struct ucaasauth *ua = NULL;

	CHECK_INT(ucaasauth_open(&ua, profile, 0), UCAASAUTH_OK);
	CHECK(ua != NULL);
	return ua;
}

/* The header of `profile` is exactly `want`. */
static void check_header(const char *profile, const char *want)
{
	struct ucaasauth *ua = open_ok(profile);
	char buf[2048];
	size_t len = 0;

	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), UCAASAUTH_OK);
	CHECK_STR(buf, want);
	CHECK_INT(len, strlen(want));
	ucaasauth_close(ua);
}

static void test_vectors(void)
{
	char pair[16 + LONG_KEY_LEN], want[2 * LONG_KEY_LEN + 64];
	char key[LONG_KEY_LEN + 1];
	DIR *d;
	struct dirent *e;
	int entries = 0;

	/* Computed with Python's base64.b64encode. */
	check_header("srv", PREFIX "bXlhcHA6c2VjcmV0MTIz");
	check_header("pad1", PREFIX "bXlhcHA6c2VjcmV0MTI=");
	check_header("pad2", PREFIX "bXlhcHA6c2VjcmV0MQ==");
	check_header("tiny", PREFIX "YTpi");

	/* UTF-8 and the longest key, against the encoder above. */
	snprintf(pair, sizeof(pair), "myapp:p\xc3\xa4ssw\xc3\xb6rd");
	memcpy(want, PREFIX, strlen(PREFIX));
	b64((const unsigned char *)pair, strlen(pair), want + strlen(PREFIX));
	check_header("utf8", want);
	for (size_t i = 0; i < LONG_KEY_LEN; i++)
		key[i] = (char)(' ' + 1 + i % 94); /* '!' to '~' */
	key[LONG_KEY_LEN] = 0;
	put_secrets("long", key, "", "");
	snprintf(pair, sizeof(pair), "myapp:%s", key);
	b64((const unsigned char *)pair, strlen(pair), want + strlen(PREFIX));
	CHECK_INT(strlen(want),
	          strlen(PREFIX) + 4 * ((6 + LONG_KEY_LEN + 2) / 3));
	check_header("long", want);

	/* Basic profiles need no shared cache: nothing was made for one. */
	d = opendir(runtime);
	CHECK(d != NULL);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			entries++;
	closedir(d);
	CHECK_INT(entries, 0);
}

static void test_header_contract(void)
{
	static const char want[] = PREFIX "bXlhcHA6c2VjcmV0MTIz";
	const size_t n = sizeof(want) - 1;
	struct ucaasauth *ua = open_ok("srv");
	char buf[sizeof(want) + 16];
	size_t len;

	/* Just right, and more than enough. */
	memset(buf, 'x', sizeof(buf));
	len = 0;
	CHECK_INT(ucaasauth_header(ua, buf, n + 1, &len), UCAASAUTH_OK);
	CHECK_INT(len, n);
	CHECK(memcmp(buf, want, n + 1) == 0);
	CHECK_INT(buf[n + 1], 'x');
	len = 0;
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), UCAASAUTH_OK);
	CHECK_INT(len, n);
	CHECK_STR(buf, want);

	/* Asking the size. */
	len = 0;
	CHECK_INT(ucaasauth_header(ua, NULL, 0, &len), UCAASAUTH_E_TOOSMALL);
	CHECK_INT(len, n);

	/* One short (no room for the NUL), or far too short: nothing
	 * written, the size needed given back. */
	memset(buf, 'x', sizeof(buf));
	len = 0;
	CHECK_INT(ucaasauth_header(ua, buf, n, &len), UCAASAUTH_E_TOOSMALL);
	CHECK_INT(len, n);
	for (size_t i = 0; i < sizeof(buf); i++)
		CHECK_INT(buf[i], 'x');
	len = 0;
	CHECK_INT(ucaasauth_header(ua, buf, 1, &len), UCAASAUTH_E_TOOSMALL);
	CHECK_INT(len, n);
	CHECK_INT(buf[0], 'x');
	CHECK_INT(ucaasauth_header(ua, buf, 0, &len), UCAASAUTH_E_TOOSMALL);
	CHECK_INT(len, n);
	CHECK_INT(buf[0], 'x');

	/* Bad arguments: E_INVALID, nothing written. */
	len = 12345;
	CHECK_INT(ucaasauth_header(NULL, buf, sizeof(buf), &len),
	          UCAASAUTH_E_INVALID);
	CHECK_INT(len, 12345);
	CHECK_INT(buf[0], 'x');
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), NULL),
	          UCAASAUTH_E_INVALID);
	CHECK_INT(buf[0], 'x');
	CHECK_INT(ucaasauth_header(ua, NULL, 5, &len), UCAASAUTH_E_INVALID);
	CHECK_INT(len, 12345);
	CHECK_INT(ucaasauth_header(NULL, NULL, 0, NULL), UCAASAUTH_E_INVALID);

	/* reject: nothing to drop for Basic; the header is unchanged. */
	CHECK_INT(ucaasauth_reject(ua, want), UCAASAUTH_OK);
	CHECK_INT(ucaasauth_reject(ua, "Authorization: Basic other"),
	          UCAASAUTH_OK);
	CHECK_INT(ucaasauth_reject(ua, ""), UCAASAUTH_OK);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), UCAASAUTH_OK);
	CHECK_STR(buf, want);
	CHECK_INT(ucaasauth_reject(NULL, want), UCAASAUTH_E_INVALID);
	CHECK_INT(ucaasauth_reject(ua, NULL), UCAASAUTH_E_INVALID);
	CHECK_INT(ucaasauth_reject(NULL, NULL), UCAASAUTH_E_INVALID);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), UCAASAUTH_OK);
	CHECK_STR(buf, want);

	ucaasauth_close(ua);
	ucaasauth_close(NULL);
}

static void test_strerror(void)
{
	static const int statuses[] = {
		UCAASAUTH_OK,         UCAASAUTH_E_INVALID,
		UCAASAUTH_E_CONFIG,   UCAASAUTH_E_CREDENTIALS,
		UCAASAUTH_E_DENIED,   UCAASAUTH_E_UNAVAILABLE,
		UCAASAUTH_E_PROTOCOL, UCAASAUTH_E_CACHE,
		UCAASAUTH_E_TIMEOUT,  UCAASAUTH_E_TOOSMALL,
		UCAASAUTH_E_NOMEM,
	};
	static const int unknown[] = {-999, 5, 1, -11, INT_MIN, INT_MAX};

	/* The numbers are ABI: they never change. */
	for (size_t i = 0; i < ARRAY_SIZE(statuses); i++)
		CHECK_INT(statuses[i], -(int)i);
	for (size_t i = 0; i < ARRAY_SIZE(statuses); i++) {
		const char *s = ucaasauth_strerror(statuses[i]);
		CHECK(s != NULL);
		CHECK(s[0] != 0);
		CHECK(strcmp(s, "unknown status") != 0);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(s, ucaasauth_strerror(statuses[j])) != 0);
	}
	for (size_t i = 0; i < ARRAY_SIZE(unknown); i++)
		CHECK_STR(ucaasauth_strerror(unknown[i]), "unknown status");
}

/* What a thread saw, checked by the main thread (the CHECK counter is
 * not for threads). */
struct thread_result {
	int initially_null;
	int status;
	char text[512];
	int stable; /* its own text survived the other thread's failures */
};

static void *fail_in_thread(void *arg)
{
	struct thread_result *res = arg;
	struct ucaasauth *ua = NULL;
	size_t len;

	res->initially_null = ucaasauth_last_error() == NULL;
	res->status = ucaasauth_header(NULL, NULL, 0, &len);
	snprintf(res->text, sizeof(res->text), "%s",
	         ucaasauth_last_error() ? ucaasauth_last_error() : "(null)");
	/* Many failures of another kind here, while the other thread
	 * looks at its own text. */
	res->stable = 1;
	for (int i = 0; i < 2000; i++) {
		if (ucaasauth_open(&ua, "a/b", 0) != UCAASAUTH_E_INVALID)
			res->stable = 0;
		if (!ucaasauth_last_error() ||
		    !strstr(ucaasauth_last_error(), "profile name"))
			res->stable = 0;
	}
	return NULL;
}

static void *fail_other_way(void *arg)
{
	struct thread_result *res = arg;

	res->initially_null = ucaasauth_last_error() == NULL;
	res->stable = 1;
	for (int i = 0; i < 2000; i++) {
		res->status = ucaasauth_reject(NULL, "x");
		if (!ucaasauth_last_error() ||
		    !strstr(ucaasauth_last_error(), "ucaasauth_reject"))
			res->stable = 0;
	}
	snprintf(res->text, sizeof(res->text), "%s",
	         ucaasauth_last_error() ? ucaasauth_last_error() : "(null)");
	return NULL;
}

static void test_last_error_per_thread(void)
{
	struct thread_result a = {0}, b = {0};
	pthread_t ta, tb;
	char mine[512];

	CHECK_INT(ucaasauth_open(NULL, NULL, 0), UCAASAUTH_E_INVALID);
	CHECK_ERROR_HAS("ret is NULL");
	snprintf(mine, sizeof(mine), "%s", ucaasauth_last_error());

	CHECK_INT(pthread_create(&ta, NULL, fail_in_thread, &a), 0);
	CHECK_INT(pthread_create(&tb, NULL, fail_other_way, &b), 0);
	CHECK_INT(pthread_join(ta, NULL), 0);
	CHECK_INT(pthread_join(tb, NULL), 0);

	CHECK(a.initially_null);
	CHECK_INT(a.status, UCAASAUTH_E_INVALID);
	CHECK(strstr(a.text, "ucaasauth_header") != NULL);
	CHECK(a.stable);
	CHECK(b.initially_null);
	CHECK_INT(b.status, UCAASAUTH_E_INVALID);
	CHECK(strstr(b.text, "ucaasauth_reject") != NULL);
	CHECK(b.stable);
	/* This thread's text is its own. */
	CHECK_STR(ucaasauth_last_error(), mine);
}

struct header_run {
	struct ucaasauth *ua;
	const char *want;
	int bad;
};

static void *headers_in_thread(void *arg)
{
	struct header_run *run = arg;
	char buf[256];
	size_t len;

	for (int i = 0; i < 20000; i++)
		if (ucaasauth_header(run->ua, buf, sizeof(buf), &len) != 0 ||
		    len != strlen(run->want) || strcmp(buf, run->want) != 0)
			run->bad++;
	return NULL;
}

/* One handle, many threads. */
static void test_threads_share_handle(void)
{
	struct header_run runs[8];
	pthread_t threads[8];
	struct ucaasauth *ua = open_ok("srv");

	for (size_t i = 0; i < ARRAY_SIZE(runs); i++) {
		runs[i] = (struct header_run){ua, PREFIX "bXlhcHA6c2VjcmV0MTIz",
		                              0};
		CHECK_INT(pthread_create(&threads[i], NULL, headers_in_thread,
		                         &runs[i]),
		          0);
	}
	for (size_t i = 0; i < ARRAY_SIZE(runs); i++) {
		CHECK_INT(pthread_join(threads[i], NULL), 0);
		CHECK_INT(runs[i].bad, 0);
	}
	ucaasauth_close(ua);
}

static void test_missing_secret(void)
{
	char path[PATH_MAX];
	static char s;
	struct ucaasauth *const mark = (struct ucaasauth *)(void *)&s;
	struct ucaasauth *ua = mark;

	/* A login profile whose file lacks the password. */
	put_secrets("usr", "", "user@example.com", "");
	CHECK_INT(ucaasauth_open(&ua, "usr", 0), UCAASAUTH_E_CREDENTIALS);
	CHECK(ua == mark);
	CHECK_ERROR_HAS(in_tmp(path, sizeof(path), "usr.cred"));
	CHECK_ERROR_HAS("password");
	CHECK_ERROR_HAS("usr");

	/* Or the email. */
	put_secrets("usr", "", "", "Zq9-SECRET-VALUE");
	CHECK_INT(ucaasauth_open(&ua, "usr", 0), UCAASAUTH_E_CREDENTIALS);
	CHECK(ua == mark);
	CHECK_ERROR_HAS(path);
	CHECK_ERROR_HAS("email");
	CHECK(strstr(ucaasauth_last_error(), "Zq9-SECRET-VALUE") == NULL);

	/* A basic profile whose file holds only a login. */
	put_secrets("srv2", "", "user@example.com", "Zq9-SECRET-VALUE");
	CHECK_INT(ucaasauth_open(&ua, "srv2", 0), UCAASAUTH_E_CREDENTIALS);
	CHECK(ua == mark);
	CHECK_ERROR_HAS(in_tmp(path, sizeof(path), "srv2.cred"));
	CHECK_ERROR_HAS("app_key");
	CHECK(strstr(ucaasauth_last_error(), "Zq9-SECRET-VALUE") == NULL);
}

/* A handle opened before fork() still works in the child. */
static void test_fork(void)
{
	static const char want[] = PREFIX "bXlhcHA6c2VjcmV0MTIz";
	struct ucaasauth *ua = open_ok("srv");
	char buf[128];
	size_t len;
	pid_t pid;
	int status = 0;

	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), UCAASAUTH_OK);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int code = 0;

		memset(buf, 0, sizeof(buf));
		if (ucaasauth_header(ua, buf, sizeof(buf), &len) != 0)
			code = 10;
		else if (len != strlen(want) || strcmp(buf, want) != 0)
			code = 11;
		else if (ucaasauth_reject(ua, buf) != 0)
			code = 12;
		else if (ucaasauth_header(ua, buf, sizeof(buf), &len) != 0 ||
		         strcmp(buf, want) != 0)
			code = 13;
		ucaasauth_close(ua);
		_exit(code);
	}
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_INT(WEXITSTATUS(status), 0);
	/* The child's close took nothing from the parent. */
	memset(buf, 0, sizeof(buf));
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), UCAASAUTH_OK);
	CHECK_STR(buf, want);
	ucaasauth_close(ua);
}

int main(void)
{
	static const char *const basic[] = {
		"srv", "pad1", "pad2", "tiny", "utf8", "long", "srv2",
	};
	char text[4096];
	size_t n = 0;

	main_pid = getpid();
	CHECK(mkdtemp(tmp) != NULL);
	atexit(cleanup);
	in_tmp(conf_path, sizeof(conf_path), "ucaasauth.conf");
	in_tmp(key_path, sizeof(key_path), "master.key");
	in_tmp(runtime, sizeof(runtime), "run");
	CHECK_INT(mkdir(runtime, 0700), 0);
	CHECK_INT(setenv("UCAASAUTH_RUNTIME_DIR", runtime, 1), 0);
	CHECK_INT(setenv("UCAASAUTH_CONFIG", conf_path, 1), 0);
	unsetenv("CREDENTIALS_DIRECTORY");

	for (size_t i = 0; i < ARRAY_SIZE(basic); i++) {
		const char *app = strcmp(basic[i], "tiny") ? "myapp" : "a";

		n += snprintf(text + n, sizeof(text) - n,
		              "[profile %s]\napi_base = https://api.enablex.io/"
		              "ucaas/v1\napp_id = %s\nprovider = basic\n",
		              basic[i], app);
	}
	n += snprintf(text + n, sizeof(text) - n,
	              "[profile usr]\napi_base = https://api.enablex.io/ucaas/"
	              "v1\napp_id = myapp\nprovider = login\n");
	CHECK(n < sizeof(text));
	write_file(conf_path, text, n, 0600);
	CHECK_INT(key_generate(key_path), UCAASAUTH_OK);
	put_secrets("srv", "secret123", "", "");
	put_secrets("pad1", "secret12", "", "");
	put_secrets("pad2", "secret1", "", "");
	put_secrets("tiny", "b", "", "");
	put_secrets("utf8", "p\xc3\xa4ssw\xc3\xb6rd", "", "");

	test_vectors();
	test_header_contract();
	test_strerror();
	test_last_error_per_thread();
	test_threads_share_handle();
	test_missing_secret();
	test_fork();
	TEST_DONE();
}

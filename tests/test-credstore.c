/*
 * The credential store: the master key file, the encrypted credential
 * files, and the refusal of every file that is missing, too open, owned by
 * someone else, truncated, tampered with, encrypted with another key or
 * for another profile. No refusal ever shows a secret.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "internal.h"
#include "test.h"

#define APP_KEY "secret123"
#define EMAIL "user@example.com"
#define SECRET "Zq9-SECRET-VALUE"

static char tmp[] = "/tmp/test-credstore.XXXXXX";
static char conf_path[PATH_MAX], key_path[PATH_MAX];
static char srv_cred[PATH_MAX], usr_cred[PATH_MAX], other_cred[PATH_MAX];
static struct config *config;
static const struct profile *srv, *usr, *deep;
static pid_t main_pid;

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
	return remove(path);
}

static void cleanup(void)
{
	config_free(config);
	if (getpid() == main_pid)
		nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *in_tmp(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", tmp, name);
	return buf;
}

/* The whole file, malloc'd (one spare byte, NUL); NULL if missing. */
static uint8_t *read_all(const char *path, size_t *ret_len)
{
	struct stat st;
	uint8_t *data;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	CHECK_INT(fstat(fd, &st), 0);
	data = calloc(1, st.st_size + 1);
	CHECK(data != NULL);
	CHECK_INT(read(fd, data, st.st_size), st.st_size);
	close(fd);
	*ret_len = st.st_size;
	return data;
}

static unsigned file_mode(const char *path)
{
	struct stat st;

	CHECK_INT(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

/* The file holds exactly these bytes. */
static int same_bytes(const char *path, const uint8_t *data, size_t len)
{
	size_t n;
	uint8_t *now = read_all(path, &n);
	int same = now && n == len && memcmp(now, data, len) == 0;

	free(now);
	return same;
}

/* No temporary file left behind by an atomic write. */
static int count_temporaries(void)
{
	DIR *d = opendir(tmp);
	struct dirent *e;
	int n = 0;

	CHECK(d != NULL);
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".tmp"))
			n++;
	closedir(d);
	return n;
}

/* A failure to open srv: E_CREDENTIALS naming `needle`, *ret untouched,
 * and never the App Key. */
#define OPEN_REFUSED(profile, needle)                                          \
	do {                                                                   \
		static char s_;                                                \
		struct ucaasauth *m_ = (struct ucaasauth *)(void *)&s_;        \
		struct ucaasauth *u_ = m_;                                     \
		CHECK_INT(ucaasauth_open(&u_, (profile), 0),                   \
		          UCAASAUTH_E_CREDENTIALS);                            \
		CHECK(u_ == m_);                                               \
		CHECK_ERROR_HAS(needle);                                       \
		CHECK(strstr(ucaasauth_last_error(), APP_KEY) == NULL);        \
		CHECK(strstr(ucaasauth_last_error(), SECRET) == NULL);         \
	} while (0)

static void open_ok(const char *profile)
{
	struct ucaasauth *ua = NULL;

	CHECK_INT(ucaasauth_open(&ua, profile, 0), UCAASAUTH_OK);
	CHECK(ua != NULL);
	ucaasauth_close(ua);
}

static struct secrets *make_secrets(const char *app_key, const char *email,
                                    const char *password)
{
	struct secrets *s = secrets_new();

	CHECK(s != NULL);
	snprintf(s->app_key, sizeof(s->app_key), "%s", app_key);
	snprintf(s->email, sizeof(s->email), "%s", email);
	snprintf(s->password, sizeof(s->password), "%s", password);
	return s;
}

static void test_key_generate(void)
{
	char path[PATH_MAX], dir[PATH_MAX], link[PATH_MAX];
	uint8_t *first, *second;
	size_t len, len2;

	/* The parent is made, with its final mode, when missing. */
	in_tmp(dir, sizeof(dir), "keys");
	in_tmp(path, sizeof(path), "keys/k1");
	CHECK_INT(key_generate(path), UCAASAUTH_OK);
	CHECK_INT(file_mode(dir), 0700);
	CHECK_INT(file_mode(path), 0600);
	first = read_all(path, &len);
	CHECK(first != NULL);
	CHECK_INT(len, MASTER_KEY_BYTES);

	/* Never overwritten: every credential file made with it would be
	 * lost. */
	CHECK_INT(key_generate(path), UCAASAUTH_E_CREDENTIALS);
	CHECK_ERROR_HAS(path);
	CHECK_ERROR_HAS("already exists");
	CHECK(same_bytes(path, first, len));
	CHECK_INT(file_mode(path), 0600);

	/* Nor written through a symlink. */
	in_tmp(link, sizeof(link), "keys/link");
	CHECK_INT(symlink(path, link), 0);
	CHECK_INT(key_generate(link), UCAASAUTH_E_CREDENTIALS);
	CHECK_ERROR_HAS(link);
	CHECK(same_bytes(path, first, len));
	CHECK_INT(unlink(link), 0);

	/* Two keys are two keys. */
	in_tmp(path, sizeof(path), "keys/k2");
	CHECK_INT(key_generate(path), UCAASAUTH_OK);
	second = read_all(path, &len2);
	CHECK_INT(len2, MASTER_KEY_BYTES);
	CHECK(memcmp(first, second, MASTER_KEY_BYTES) != 0);
	free(first);
	free(second);
}

static void test_key_load(void)
{
	char path[PATH_MAX], link[PATH_MAX], cdir[PATH_MAX];
	char cpath[PATH_MAX];
	uint8_t *want, *want_cd, *key = NULL;
	uint8_t buf[MASTER_KEY_BYTES + 1];
	size_t len;

	in_tmp(path, sizeof(path), "keys/k1");
	want = read_all(path, &len);
	CHECK(want != NULL);
	CHECK_INT(key_load(path, &key), UCAASAUTH_OK);
	CHECK(memcmp(key, want, MASTER_KEY_BYTES) == 0);
	sodium_free(key);
	key = NULL;
	CHECK_INT(chmod(path, 0400), 0);
	CHECK_INT(key_load(path, &key), UCAASAUTH_OK);
	sodium_free(key);
	key = NULL;

	/* ssh's rule: readable by anyone else is refused. */
	CHECK_INT(chmod(path, 0640), 0);
	CHECK_INT(key_load(path, &key), UCAASAUTH_E_CREDENTIALS);
	CHECK(key == NULL);
	CHECK_ERROR_HAS(path);
	CHECK_ERROR_HAS("0640");
	CHECK_ERROR_HAS("0600");
	CHECK_INT(chmod(path, 0604), 0);
	CHECK_INT(key_load(path, &key), UCAASAUTH_E_CREDENTIALS);
	CHECK_ERROR_HAS(path);
	CHECK_ERROR_HAS("0604");
	CHECK_ERROR_HAS("0600");
	CHECK_INT(chmod(path, 0610), 0);
	CHECK_INT(key_load(path, &key), UCAASAUTH_E_CREDENTIALS);
	CHECK_ERROR_HAS("0610");
	CHECK_INT(chmod(path, 0600), 0);

	if (geteuid() == 0) {
		CHECK_INT(chown(path, 65534, 65534), 0);
		CHECK_INT(key_load(path, &key), UCAASAUTH_E_CREDENTIALS);
		CHECK(key == NULL);
		CHECK_ERROR_HAS(path);
		CHECK_ERROR_HAS("owned by uid 65534");
		CHECK_INT(chown(path, 0, 0), 0);
	} else {
		printf("note: not root, skipping the key-owned-by-another-user "
		       "checks\n");
	}

	/* Never through a symlink, even to a good key. */
	in_tmp(link, sizeof(link), "keys/link");
	CHECK_INT(symlink(path, link), 0);
	CHECK_INT(key_load(link, &key), UCAASAUTH_E_CREDENTIALS);
	CHECK(key == NULL);
	CHECK_ERROR_HAS(link);
	CHECK_ERROR_HAS("symbolic link");
	CHECK_INT(unlink(link), 0);

	/* Exactly 32 bytes. */
	in_tmp(link, sizeof(link), "keys/short");
	memset(buf, 7, sizeof(buf));
	write_file(link, buf, MASTER_KEY_BYTES - 1, 0600);
	CHECK_INT(key_load(link, &key), UCAASAUTH_E_CREDENTIALS);
	CHECK(key == NULL);
	CHECK_ERROR_HAS(link);
	CHECK_ERROR_HAS("31 bytes");
	write_file(link, buf, MASTER_KEY_BYTES + 1, 0600);
	CHECK_INT(key_load(link, &key), UCAASAUTH_E_CREDENTIALS);
	CHECK(key == NULL);
	CHECK_ERROR_HAS(link);
	CHECK_ERROR_HAS("33 bytes");
	write_file(link, buf, 0, 0600);
	CHECK_INT(key_load(link, &key), UCAASAUTH_E_CREDENTIALS);
	CHECK_ERROR_HAS(link);
	CHECK_INT(unlink(link), 0);

	in_tmp(link, sizeof(link), "keys/missing");
	CHECK_INT(key_load(link, &key), UCAASAUTH_E_CREDENTIALS);
	CHECK(key == NULL);
	CHECK_ERROR_HAS(link);
	CHECK_ERROR_HAS(strerror(ENOENT));

	/* systemd's LoadCredential= wins over key_file when it holds the
	 * key, and is ignored when it does not. */
	in_tmp(cdir, sizeof(cdir), "systemd-creds");
	CHECK_INT(mkdir(cdir, 0700), 0);
	CHECK_INT(setenv("CREDENTIALS_DIRECTORY", cdir, 1), 0);
	CHECK_INT(key_load(path, &key), UCAASAUTH_OK);
	CHECK(memcmp(key, want, MASTER_KEY_BYTES) == 0);
	sodium_free(key);
	key = NULL;
	in_tmp(cpath, sizeof(cpath), "systemd-creds/ucaasauth.key");
	CHECK_INT(key_generate(cpath), UCAASAUTH_OK);
	want_cd = read_all(cpath, &len);
	CHECK_INT(key_load(path, &key), UCAASAUTH_OK);
	CHECK(memcmp(key, want_cd, MASTER_KEY_BYTES) == 0);
	sodium_free(key);
	key = NULL;
	/* Even when key_file is missing. */
	CHECK_INT(key_load(link, &key), UCAASAUTH_OK);
	CHECK(memcmp(key, want_cd, MASTER_KEY_BYTES) == 0);
	sodium_free(key);
	key = NULL;
	/* Its key is checked like any other. */
	CHECK_INT(chmod(cpath, 0644), 0);
	CHECK_INT(key_load(path, &key), UCAASAUTH_E_CREDENTIALS);
	CHECK_ERROR_HAS(cpath);
	CHECK_ERROR_HAS("0644");
	CHECK_INT(chmod(cpath, 0600), 0);
	CHECK_INT(unsetenv("CREDENTIALS_DIRECTORY"), 0);
	CHECK_INT(key_load(path, &key), UCAASAUTH_OK);
	CHECK(memcmp(key, want, MASTER_KEY_BYTES) == 0);
	sodium_free(key);
	free(want);
	free(want_cd);
}

static void test_round_trip(void)
{
	struct secrets *in, *out = NULL;
	char dir[PATH_MAX];
	uint8_t *first, *second;
	size_t len, len2;

	CHECK_INT(key_generate(key_path), UCAASAUTH_OK);

	/* basic: the App Key. */
	in = make_secrets(APP_KEY, "", "");
	CHECK_INT(cred_store(srv, in), UCAASAUTH_OK);
	CHECK_INT(file_mode(srv_cred), 0600);
	CHECK_INT(cred_load(srv, &out), UCAASAUTH_OK);
	CHECK_STR(out->app_key, APP_KEY);
	CHECK_STR(out->email, "");
	CHECK_STR(out->password, "");
	secrets_free(out);
	out = NULL;
	first = read_all(srv_cred, &len);
	CHECK(first != NULL);
	CHECK(memmem(first, len, APP_KEY, strlen(APP_KEY)) == NULL);
	CHECK(memcmp(first, "UCAC\x01\0\0\0", 8) == 0);
	open_ok("srv");

	/* Stored again: a new file (fresh nonce) put in place whole, no
	 * temporary left beside it. */
	CHECK_INT(cred_store(srv, in), UCAASAUTH_OK);
	CHECK_INT(file_mode(srv_cred), 0600);
	second = read_all(srv_cred, &len2);
	CHECK_INT(len2, len);
	CHECK(memcmp(first, second, len) != 0);
	CHECK_INT(count_temporaries(), 0);
	CHECK_INT(cred_load(srv, &out), UCAASAUTH_OK);
	CHECK_STR(out->app_key, APP_KEY);
	secrets_free(out);
	out = NULL;
	secrets_free(in);
	free(first);
	free(second);

	/* login: email and password. */
	in = make_secrets("", EMAIL, SECRET);
	CHECK_INT(cred_store(usr, in), UCAASAUTH_OK);
	CHECK_INT(cred_store(usr, in), UCAASAUTH_OK);
	CHECK_INT(file_mode(usr_cred), 0600);
	CHECK_INT(count_temporaries(), 0);
	CHECK_INT(cred_load(usr, &out), UCAASAUTH_OK);
	CHECK_STR(out->app_key, "");
	CHECK_STR(out->email, EMAIL);
	CHECK_STR(out->password, SECRET);
	secrets_free(out);
	out = NULL;
	first = read_all(usr_cred, &len);
	CHECK(first != NULL);
	CHECK(memmem(first, len, SECRET, strlen(SECRET)) == NULL);
	CHECK(memmem(first, len, EMAIL, strlen(EMAIL)) == NULL);
	free(first);
	secrets_free(in);

	/* A missing directory for the credential file is made, 0700. */
	in = make_secrets(APP_KEY, "", "");
	CHECK_INT(cred_store(deep, in), UCAASAUTH_OK);
	CHECK_INT(file_mode(deep->credentials), 0600);
	CHECK_INT(file_mode(in_tmp(dir, sizeof(dir), "creds")), 0700);
	CHECK_INT(cred_load(deep, &out), UCAASAUTH_OK);
	CHECK_STR(out->app_key, APP_KEY);
	secrets_free(out);
	secrets_free(in);
	open_ok("deep");
}

/* A store that fails leaves the previous file as it was. */
static void test_failed_store(void)
{
	char away[PATH_MAX];
	struct secrets *s;
	uint8_t *before, *before_usr;
	size_t len, len_usr;

	before = read_all(srv_cred, &len);
	before_usr = read_all(usr_cred, &len_usr);
	CHECK(before != NULL && before_usr != NULL);

	/* The secret the provider needs is missing. */
	s = make_secrets("", EMAIL, SECRET);
	CHECK_INT(cred_store(srv, s), UCAASAUTH_E_CREDENTIALS);
	CHECK_ERROR_HAS("srv");
	CHECK_ERROR_HAS("app_key");
	CHECK(strstr(ucaasauth_last_error(), SECRET) == NULL);
	CHECK(same_bytes(srv_cred, before, len));
	secrets_free(s);
	s = make_secrets(APP_KEY, EMAIL, "");
	CHECK_INT(cred_store(usr, s), UCAASAUTH_E_CREDENTIALS);
	CHECK_ERROR_HAS("usr");
	CHECK_ERROR_HAS("password");
	CHECK(same_bytes(usr_cred, before_usr, len_usr));
	secrets_free(s);

	/* The key file is missing. */
	in_tmp(away, sizeof(away), "master.key.away");
	CHECK_INT(rename(key_path, away), 0);
	s = make_secrets("another-key", "", "");
	CHECK_INT(cred_store(srv, s), UCAASAUTH_E_CREDENTIALS);
	CHECK_ERROR_HAS(key_path);
	CHECK(same_bytes(srv_cred, before, len));
	/* Or unsafe. */
	CHECK_INT(rename(away, key_path), 0);
	CHECK_INT(chmod(key_path, 0644), 0);
	CHECK_INT(cred_store(srv, s), UCAASAUTH_E_CREDENTIALS);
	CHECK_ERROR_HAS(key_path);
	CHECK_ERROR_HAS("0644");
	CHECK(same_bytes(srv_cred, before, len));
	CHECK_INT(chmod(key_path, 0600), 0);
	CHECK_INT(count_temporaries(), 0);
	secrets_free(s);
	free(before);
	free(before_usr);
	open_ok("srv");
}

static void test_open_refusals(void)
{
	char saved_key[PATH_MAX], second_key[PATH_MAX], link[PATH_MAX];
	char big_path[PATH_MAX];
	static const size_t cuts[] = {0, 10, 40};
	uint8_t *good, *bad, *big;
	size_t len, flips = 0;

	good = read_all(srv_cred, &len);
	CHECK(good != NULL);
	bad = malloc(len);
	CHECK(bad != NULL);
	open_ok("srv");

	/* Another master key. */
	in_tmp(saved_key, sizeof(saved_key), "master.key.saved");
	in_tmp(second_key, sizeof(second_key), "master2.key");
	CHECK_INT(key_generate(second_key), UCAASAUTH_OK);
	CHECK_INT(rename(key_path, saved_key), 0);
	CHECK_INT(rename(second_key, key_path), 0);
	OPEN_REFUSED("srv", srv_cred);
	CHECK_ERROR_HAS("cannot be decrypted");
	CHECK_INT(rename(saved_key, key_path), 0);
	open_ok("srv");

	/* Truncated. */
	for (size_t i = 0; i < ARRAY_SIZE(cuts); i++) {
		write_file(srv_cred, good, cuts[i], 0600);
		OPEN_REFUSED("srv", srv_cred);
	}
	write_file(srv_cred, good, len - 1, 0600);
	OPEN_REFUSED("srv", srv_cred);

	/* Every single bit flipped in turn: refused, every time. */
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(bad, good, len);
			bad[i] ^= (uint8_t)(1u << bit);
			write_file(srv_cred, bad, len, 0600);
			OPEN_REFUSED("srv", srv_cred);
			flips++;
		}
	}
	CHECK_INT(flips, len * 8);

	/* Another version. */
	memcpy(bad, good, len);
	bad[4] = 2;
	write_file(srv_cred, bad, len, 0600);
	OPEN_REFUSED("srv", "unsupported version 2");
	CHECK_ERROR_HAS(srv_cred);
	bad[4] = 0;
	write_file(srv_cred, bad, len, 0600);
	OPEN_REFUSED("srv", "unsupported version 0");

	/* More than any credential file holds. */
	in_tmp(big_path, sizeof(big_path), "big");
	big = calloc(1, 16 * 1024 + 1);
	CHECK(big != NULL);
	memcpy(big, good, len);
	write_file(srv_cred, big, 16 * 1024 + 1, 0600);
	OPEN_REFUSED("srv", srv_cred);
	free(big);

	write_file(srv_cred, good, len, 0600);
	open_ok("srv");

	/* The associated data binds the profile: a file copied to another
	 * profile's name does not decrypt, though the key is the same. */
	write_file(other_cred, good, len, 0600);
	OPEN_REFUSED("other", other_cred);
	CHECK_ERROR_HAS("'other'");
	CHECK_INT(unlink(other_cred), 0);

	/* Unsafe mode, owner, symlink; missing. */
	CHECK_INT(chmod(srv_cred, 0644), 0);
	OPEN_REFUSED("srv", srv_cred);
	CHECK_ERROR_HAS("0644");
	CHECK_INT(chmod(srv_cred, 0640), 0);
	OPEN_REFUSED("srv", "0640");
	CHECK_INT(chmod(srv_cred, 0600), 0);
	if (geteuid() == 0) {
		CHECK_INT(chown(srv_cred, 65534, 65534), 0);
		OPEN_REFUSED("srv", "owned by uid 65534");
		CHECK_ERROR_HAS(srv_cred);
		CHECK_INT(chown(srv_cred, 0, 0), 0);
	} else {
		printf("note: not root, skipping the credential-file-owned-by-"
		       "another-user checks\n");
	}
	in_tmp(link, sizeof(link), "srv.cred.real");
	CHECK_INT(rename(srv_cred, link), 0);
	OPEN_REFUSED("srv", srv_cred);
	CHECK_ERROR_HAS(strerror(ENOENT));
	CHECK_INT(symlink(link, srv_cred), 0);
	OPEN_REFUSED("srv", "symbolic link");
	CHECK_INT(unlink(srv_cred), 0);
	CHECK_INT(rename(link, srv_cred), 0);

	/* A missing or unsafe key file, through open. */
	CHECK_INT(chmod(key_path, 0640), 0);
	OPEN_REFUSED("srv", key_path);
	CHECK_ERROR_HAS("0640");
	CHECK_INT(chmod(key_path, 0600), 0);
	CHECK_INT(rename(key_path, saved_key), 0);
	OPEN_REFUSED("srv", key_path);
	CHECK_INT(rename(saved_key, key_path), 0);

	CHECK(same_bytes(srv_cred, good, len));
	open_ok("srv");
	free(good);
	free(bad);
}

/* A store made under $CREDENTIALS_DIRECTORY's key opens only with it. */
static void test_credentials_directory_open(void)
{
	char cdir[PATH_MAX], saved[PATH_MAX];
	struct secrets *s;
	uint8_t *before;
	size_t len;

	in_tmp(cdir, sizeof(cdir), "systemd-creds");
	in_tmp(saved, sizeof(saved), "srv.cred.saved");
	before = read_all(srv_cred, &len);
	CHECK_INT(setenv("CREDENTIALS_DIRECTORY", cdir, 1), 0);
	s = make_secrets(APP_KEY, "", "");
	CHECK_INT(cred_store(srv, s), UCAASAUTH_OK);
	secrets_free(s);
	open_ok("srv");
	CHECK_INT(unsetenv("CREDENTIALS_DIRECTORY"), 0);
	OPEN_REFUSED("srv", "cannot be decrypted");
	write_file(srv_cred, before, len, 0600);
	open_ok("srv");
	free(before);
}

/* Whatever sits at the credential file's path, open returns. */
static void test_fifo(void)
{
	char real[PATH_MAX];
	int status = 0;
	pid_t pid;

	in_tmp(real, sizeof(real), "srv.cred.real");
	CHECK_INT(rename(srv_cred, real), 0);
	CHECK_INT(mkfifo(srv_cred, 0600), 0);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct ucaasauth *ua = NULL;
		int r;

		alarm(2);
		r = ucaasauth_open(&ua, "srv", 0);
		_exit(r == UCAASAUTH_E_CREDENTIALS && ucaasauth_last_error() &&
		                      strstr(ucaasauth_last_error(), srv_cred)
		              ? 0
		              : 1);
	}
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK_INT(unlink(srv_cred), 0);
	CHECK_INT(rename(real, srv_cred), 0);
	/* Regression: a FIFO at the path once hung open() for ever. */
	CHECK(WIFEXITED(status));
	CHECK_INT(WEXITSTATUS(status), 0);
}

#define PARSE_REFUSED(text, len, needle)                                       \
	do {                                                                   \
		struct secrets *s_ = secrets_new();                            \
		CHECK(s_ != NULL);                                             \
		CHECK_INT(secrets_parse(s_, (text), (len), "stdin-test"),      \
		          UCAASAUTH_E_CREDENTIALS);                            \
		CHECK_ERROR_HAS("stdin-test");                                 \
		CHECK_ERROR_HAS(needle);                                       \
		CHECK(strstr(ucaasauth_last_error(), SECRET) == NULL);         \
		secrets_free(s_);                                              \
	} while (0)

#define PARSE_REFUSED_S(text, needle) PARSE_REFUSED(text, strlen(text), needle)

static void test_secrets_parse(void)
{
	static const char good[] =
		"app_key=" APP_KEY "\r\nemail=" EMAIL "\npassword=" SECRET;
	char big[SECRET_MAX + 64];
	struct secrets *s;
	size_t n;

	s = secrets_new();
	CHECK(s != NULL);
	CHECK_INT(secrets_parse(s, good, strlen(good), "x"), UCAASAUTH_OK);
	CHECK_STR(s->app_key, APP_KEY);
	CHECK_STR(s->email, EMAIL);
	CHECK_STR(s->password, SECRET);
	CHECK(secrets_missing(s, NEEDS_APP_KEY) == NULL);
	CHECK(secrets_missing(s, NEEDS_LOGIN) == NULL);
	secrets_free(s);

	/* '=' in a value is part of it; a blank line ends the secrets. */
	s = secrets_new();
	CHECK_INT(secrets_parse(s, "password=a=b\n\napp_key=x=\n", 25, "x"),
	          UCAASAUTH_OK);
	CHECK_STR(s->password, "a=b");
	CHECK_STR(s->app_key, "");
	CHECK_STR(secrets_missing(s, NEEDS_APP_KEY), "app_key");
	CHECK_STR(secrets_missing(s, NEEDS_LOGIN), "email");
	secrets_free(s);

	/* The longest value, 1024 bytes, is accepted. */
	n = (size_t)snprintf(big, sizeof(big), "password=%s", SECRET);
	memset(big + n, 'p', 9 + SECRET_MAX - n);
	n = 9 + SECRET_MAX;
	s = secrets_new();
	CHECK_INT(secrets_parse(s, big, n, "x"), UCAASAUTH_OK);
	CHECK_INT(strlen(s->password), SECRET_MAX);
	secrets_free(s);
	/* One more is not, and the message does not show it. */
	big[n++] = 'p';
	PARSE_REFUSED(big, n, "password must be 1 to 1024 bytes");

	PARSE_REFUSED_S("passwd=" SECRET "\n", "unknown key");
	PARSE_REFUSED_S(SECRET "=x\n", "unknown key");
	PARSE_REFUSED_S("password=" SECRET "\npassword=" SECRET "\n",
	                "line 2: duplicate key password");
	PARSE_REFUSED_S(SECRET "\n", "line 1: expected key=value");
	PARSE_REFUSED_S("email=" EMAIL "\n" SECRET, "line 2");
	PARSE_REFUSED_S("password=\n", "password must be 1 to");
	PARSE_REFUSED_S("email=" EMAIL "\npassword=\r\n", "line 2");
	PARSE_REFUSED_S("password=" SECRET "\x01\n", "control character");
	PARSE_REFUSED_S("password=" SECRET "\x7f\n", "control character");
	PARSE_REFUSED_S("password=" SECRET "\tx\n", "control character");
	PARSE_REFUSED_S("password=Zq9-\rSECRET-VALUE\n", "control character");
	PARSE_REFUSED("password=" SECRET "\0\n", strlen(SECRET) + 11,
	              "control character");
}

int main(void)
{
	static const char text[] =
		"[profile srv]\n"
		"api_base = https://api.enablex.io/ucaas/v1\n"
		"app_id = myapp\n"
		"provider = basic\n"
		"[profile usr]\n"
		"api_base = https://api.enablex.io/ucaas/v1\n"
		"app_id = myapp\n"
		"provider = login\n"
		"[profile other]\n"
		"api_base = https://api.enablex.io/ucaas/v1\n"
		"app_id = myapp\n"
		"provider = basic\n"
		"[profile deep]\n"
		"api_base = https://api.enablex.io/ucaas/v1\n"
		"app_id = myapp\n"
		"provider = basic\n"
		"credentials = creds/deep.cred\n";
	char runtime[PATH_MAX];

	main_pid = getpid();
	CHECK(mkdtemp(tmp) != NULL);
	atexit(cleanup);
	in_tmp(conf_path, sizeof(conf_path), "ucaasauth.conf");
	in_tmp(key_path, sizeof(key_path), "master.key");
	in_tmp(srv_cred, sizeof(srv_cred), "srv.cred");
	in_tmp(usr_cred, sizeof(usr_cred), "usr.cred");
	in_tmp(other_cred, sizeof(other_cred), "other.cred");
	in_tmp(runtime, sizeof(runtime), "run");
	CHECK_INT(mkdir(runtime, 0700), 0);
	CHECK_INT(setenv("UCAASAUTH_RUNTIME_DIR", runtime, 1), 0);
	CHECK_INT(setenv("UCAASAUTH_CONFIG", conf_path, 1), 0);
	unsetenv("CREDENTIALS_DIRECTORY");
	write_file(conf_path, text, strlen(text), 0600);
	CHECK_INT(config_load(conf_path, &config), UCAASAUTH_OK);
	CHECK_INT(config_find(config, "srv", &srv), UCAASAUTH_OK);
	CHECK_INT(config_find(config, "usr", &usr), UCAASAUTH_OK);
	CHECK_INT(config_find(config, "deep", &deep), UCAASAUTH_OK);
	CHECK_STR(srv->credentials, srv_cred);
	CHECK_STR(srv->key_file, key_path);

	test_key_generate();
	test_key_load();
	test_round_trip();
	test_failed_store();
	test_open_refusals();
	test_credentials_directory_open();
	test_secrets_parse();
	/* Regressions of bugs found and fixed. */
	test_fifo();
	TEST_DONE();
}

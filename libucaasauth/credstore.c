/*
 * The credential store: a master key file and one XChaCha20-Poly1305
 * encrypted file per profile.
 *
 * File layout (version 1):
 *   0  "UCAC"          magic
 *   4  0x01            version
 *   5  0x00 0x00 0x00  reserved, must be zero
 *   8  nonce           24 bytes, random per write
 *   32 ciphertext      the "key=value\n" lines, plus the 16-byte tag
 * The associated data is the first 8 bytes followed by the profile name:
 * a file copied to another profile's name, or with its header edited,
 * fails to decrypt.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <sodium.h>

#include "internal.h"

#define CRED_MAGIC "UCAC"
#define CRED_VERSION 1
#define CRED_HEADER 8
#define CRED_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define CRED_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define CRED_MAX (16 * 1024)
#define KEY_CRED_NAME "ucaasauth.key"

static int crypto_ready(void)
{
	if (sodium_init() < 0)
		return fail(UCAASAUTH_E_CREDENTIALS,
		            "libsodium failed to start");
	return 0;
}

struct secrets *secrets_new(void)
{
	struct secrets *s;

	if (crypto_ready() < 0)
		return NULL;
	s = sodium_malloc(sizeof(*s));
	if (s)
		memset(s, 0, sizeof(*s));
	return s;
}

void secrets_free(struct secrets *secrets)
{
	/* sodium_free wipes before unmapping. */
	if (secrets)
		sodium_free(secrets);
}

/* Messages never echo a line: it may hold a password. */
int secrets_parse(struct secrets *secrets, const char *text, size_t len,
                  const char *what)
{
	size_t pos = 0;
	int line = 0;
	bool seen[3] = {0};

	while (pos < len) {
		const char *s = text + pos, *end = memchr(s, '\n', len - pos);
		size_t n = end ? (size_t)(end - s) : len - pos;
		const char *eq = memchr(s, '=', n);
		char *field;
		size_t k, vlen;
		int i;

		line++;
		pos += n + 1;
		if (n > 0 && s[n - 1] == '\r')
			n--;
		if (n == 0)
			break; /* a blank line ends the secrets */
		if (!eq)
			return fail(UCAASAUTH_E_CREDENTIALS,
			            "%s, line %d: expected key=value", what,
			            line);
		k = eq - s;
		if (k == 7 && memcmp(s, "app_key", 7) == 0)
			i = 0, field = secrets->app_key;
		else if (k == 5 && memcmp(s, "email", 5) == 0)
			i = 1, field = secrets->email;
		else if (k == 8 && memcmp(s, "password", 8) == 0)
			i = 2, field = secrets->password;
		else
			return fail(
				UCAASAUTH_E_CREDENTIALS,
				"%s, line %d: unknown key (expected app_key, "
				"email or password)",
				what, line);
		if (seen[i])
			return fail(UCAASAUTH_E_CREDENTIALS,
			            "%s, line %d: duplicate key %.*s", what,
			            line, (int)k, s);
		vlen = n - k - 1;
		if (vlen == 0 || vlen > SECRET_MAX)
			return fail(UCAASAUTH_E_CREDENTIALS,
			            "%s, line %d: %.*s must be 1 to %d bytes",
			            what, line, (int)k, s, SECRET_MAX);
		for (size_t j = 0; j < vlen; j++) {
			unsigned char c = eq[1 + j];
			if (c < ' ' || c == 0x7f)
				return fail(UCAASAUTH_E_CREDENTIALS,
				            "%s, line %d: control character in "
				            "%.*s",
				            what, line, (int)k, s);
		}
		memcpy(field, eq + 1, vlen);
		field[vlen] = 0;
		seen[i] = true;
	}
	return 0;
}

unsigned profile_needs(const struct profile *p)
{
	unsigned needs = 0;

	for (size_t i = 0; i < p->n_stack; i++) {
		if (p->stack[i].kind == PROVIDER_BASIC)
			needs |= NEEDS_APP_KEY;
		if (p->stack[i].kind == PROVIDER_LOGIN)
			needs |= NEEDS_LOGIN;
	}
	return needs;
}

const char *secrets_missing(const struct secrets *secrets, unsigned needs)
{
	if ((needs & NEEDS_APP_KEY) && !secrets->app_key[0])
		return "app_key";
	if ((needs & NEEDS_LOGIN) && !secrets->email[0])
		return "email";
	if ((needs & NEEDS_LOGIN) && !secrets->password[0])
		return "password";
	return NULL;
}

int key_load(const char *key_file, uint8_t **ret)
{
	const char *dir = secure_getenv("CREDENTIALS_DIRECTORY");
	char path[PATH_MAX];
	uint8_t *key;
	size_t len;
	int r;

	r = crypto_ready();
	if (r < 0)
		return r;
	/* systemd's LoadCredential= puts the key there, readable only by the
	 * service: preferred over any file on disk. */
	if (dir && dir[0] == '/' &&
	    snprintf(path, sizeof(path), "%s/" KEY_CRED_NAME, dir) <
	            (int)sizeof(path) &&
	    access(path, F_OK) == 0)
		key_file = path;
	/* systemd may hand the service a root-owned credential with an ACL
	 * for it; its directory is the service's alone. */
	r = file_read(key_file, "key file",
	              key_file == path ? OWNER_CREDENTIALS_DIR : OWNER_SELF,
	              MASTER_KEY_BYTES, true, UCAASAUTH_E_CREDENTIALS, &key,
	              &len);
	if (r < 0)
		return r;
	if (len != MASTER_KEY_BYTES) {
		sodium_free(key);
		return fail(UCAASAUTH_E_CREDENTIALS,
		            "key file %s: %zu bytes, expected %d (made by "
		            "'ucaas-auth keygen')",
		            key_file, len, MASTER_KEY_BYTES);
	}
	*ret = key;
	return 0;
}

int key_generate(const char *path)
{
	uint8_t *key;
	ssize_t n;
	int fd, r;

	r = crypto_ready();
	if (r < 0)
		return r;
	r = file_make_parent(path, UCAASAUTH_E_CREDENTIALS);
	if (r < 0)
		return r;
	key = sodium_malloc(MASTER_KEY_BYTES);
	if (!key)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	randombytes_buf(key, MASTER_KEY_BYTES);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	          0600);
	if (fd < 0) {
		r = errno == EEXIST
		            ? fail(UCAASAUTH_E_CREDENTIALS,
		                   "key file %s already exists; refusing to "
		                   "overwrite it (every credential file made "
		                   "with it would become unreadable)",
		                   path)
		            : fail_errno(UCAASAUTH_E_CREDENTIALS, errno,
		                         "key file", path);
		goto out;
	}
	n = write(fd, key, MASTER_KEY_BYTES);
	if (n != MASTER_KEY_BYTES || fsync(fd) < 0) {
		r = fail_errno(UCAASAUTH_E_CREDENTIALS, n < 0 ? errno : EIO,
		               "key file", path);
		unlink(path);
	}
	close(fd);
out:
	sodium_free(key);
	return r;
}

static void make_ad(uint8_t *ad, const uint8_t *header, const char *profile,
                    size_t *ret_len)
{
	size_t n = strlen(profile);

	assert(n <= PROFILE_NAME_MAX);
	memcpy(ad, header, CRED_HEADER);
	memcpy(ad + CRED_HEADER, profile, n);
	*ret_len = CRED_HEADER + n;
}

int cred_encrypt(const struct secrets *secrets, const char *profile,
                 const uint8_t *key, uint8_t **ret_data, size_t *ret_len)
{
	uint8_t ad[CRED_HEADER + PROFILE_NAME_MAX], *out;
	char *plain;
	size_t plen, adlen, outlen;
	int r = 0;

	plain = sodium_malloc(sizeof(*secrets) + 64);
	if (!plain)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	plen = 0;
	if (secrets->app_key[0])
		plen += sprintf(plain + plen, "app_key=%s\n", secrets->app_key);
	if (secrets->email[0])
		plen += sprintf(plain + plen, "email=%s\n", secrets->email);
	if (secrets->password[0])
		plen += sprintf(plain + plen, "password=%s\n",
		                secrets->password);
	outlen = CRED_HEADER + CRED_NONCE + plen + CRED_TAG;
	out = malloc(outlen);
	if (!out) {
		r = fail(UCAASAUTH_E_NOMEM, "out of memory");
		goto out;
	}
	memcpy(out, CRED_MAGIC "\x01\0\0\0", CRED_HEADER);
	randombytes_buf(out + CRED_HEADER, CRED_NONCE);
	make_ad(ad, out, profile, &adlen);
	crypto_aead_xchacha20poly1305_ietf_encrypt(
		out + CRED_HEADER + CRED_NONCE, NULL, (uint8_t *)plain, plen,
		ad, adlen, NULL, out + CRED_HEADER, key);
	*ret_data = out;
	*ret_len = outlen;
out:
	sodium_free(plain);
	return r;
}

int cred_decrypt(const uint8_t *data, size_t len, const char *profile,
                 const uint8_t *key, const char *path, struct secrets **ret)
{
	uint8_t ad[CRED_HEADER + PROFILE_NAME_MAX];
	struct secrets *secrets = NULL;
	char *plain = NULL;
	size_t adlen, clen;
	int r;

	if (len < CRED_HEADER + CRED_NONCE + CRED_TAG ||
	    memcmp(data, CRED_MAGIC, 4) != 0)
		return fail(UCAASAUTH_E_CREDENTIALS,
		            "credential file %s: not a libucaasauth credential "
		            "file (truncated or wrong magic)",
		            path);
	if (data[4] != CRED_VERSION)
		return fail(UCAASAUTH_E_CREDENTIALS,
		            "credential file %s: unsupported version %u", path,
		            data[4]);
	if (data[5] || data[6] || data[7])
		return fail(UCAASAUTH_E_CREDENTIALS,
		            "credential file %s: reserved header bytes are not "
		            "zero",
		            path);
	clen = len - CRED_HEADER - CRED_NONCE;
	plain = sodium_malloc(clen);
	secrets = secrets_new();
	if (!plain || !secrets) {
		r = fail(UCAASAUTH_E_NOMEM, "out of memory");
		goto out;
	}
	make_ad(ad, data, profile, &adlen);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    (uint8_t *)plain, NULL, NULL,
		    data + CRED_HEADER + CRED_NONCE, clen, ad, adlen,
		    data + CRED_HEADER, key) != 0) {
		r = fail(UCAASAUTH_E_CREDENTIALS,
		         "credential file %s: cannot be decrypted for profile "
		         "'%s' (wrong key, tampered with, or made for another "
		         "profile)",
		         path, profile);
		goto out;
	}
	r = secrets_parse(secrets, plain, clen - CRED_TAG, path);
	if (r < 0)
		goto out;
	*ret = secrets;
	secrets = NULL;
out:
	if (plain)
		sodium_free(plain);
	secrets_free(secrets);
	return r;
}

/*
 * libsodium's ChaCha20 runs a message's last partial block through a block
 * on the stack, and leaves it there: a short plaintext (our "app_key=...")
 * would stay in the stack, and so in core dumps, until overwritten. The
 * frames below the caller's are wiped after every decryption.
 */
__attribute__((noinline)) static void scrub_stack(void)
{
	char area[16384];

	sodium_memzero(area, sizeof(area));
	__asm__ __volatile__("" : : "r"(area) : "memory");
}

int cred_load(const struct profile *profile, struct secrets **ret)
{
	uint8_t *key = NULL, *data = NULL;
	size_t len;
	int r;

	r = key_load(profile->key_file, &key);
	if (r < 0)
		return r;
	r = file_read(profile->credentials, "credential file", OWNER_SELF,
	              CRED_MAX, false, UCAASAUTH_E_CREDENTIALS, &data, &len);
	if (r < 0)
		goto out;
	r = cred_decrypt(data, len, profile->name, key, profile->credentials,
	                 ret);
	scrub_stack();
out:
	free(data);
	sodium_free(key);
	return r;
}

int cred_store(const struct profile *profile, const struct secrets *secrets)
{
	uint8_t *key = NULL, *data = NULL;
	const char *missing;
	size_t len;
	int r;

	missing = secrets_missing(secrets, profile_needs(profile));
	if (missing)
		return fail(UCAASAUTH_E_CREDENTIALS,
		            "profile '%s': its providers need %s",
		            profile->name, missing);
	r = key_load(profile->key_file, &key);
	if (r < 0)
		return r;
	r = cred_encrypt(secrets, profile->name, key, &data, &len);
	scrub_stack();
	if (r < 0)
		goto out;
	r = file_make_parent(profile->credentials, UCAASAUTH_E_CREDENTIALS);
	if (r < 0)
		goto out;
	r = file_write_atomic(profile->credentials, "credential file", data,
	                      len, 0600, UCAASAUTH_E_CREDENTIALS);
out:
	free(data);
	sodium_free(key);
	return r;
}

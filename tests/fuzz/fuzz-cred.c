/*
 * The credential-file parser. Every input is tried twice:
 *  - as a credential file, decrypted with a fixed test key for profile
 *    "fuzz" (the committed corpus holds real files made with cred_encrypt
 *    for that key and profile, and damaged copies of them);
 *  - as the plaintext inside one: parsed by secrets_parse directly, and
 *    sealed into a credential file that cred_decrypt must open to the very
 *    same secrets, or refuse with the very same status.
 */
#include <string.h>

#include <sodium.h>

#include "fuzz.h"
#include "internal.h"

#define PROFILE "fuzz"
#define HEADER "UCAC\x01\0\0\0"
#define HEADER_LEN 8
#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define PLAIN_MAX (16 * 1024)

/* The corpus's key: bytes 0x00 to 0x1f. */
static uint8_t key[MASTER_KEY_BYTES];
static struct secrets *direct;

static void setup(void)
{
	FUZZ_CHECK(sodium_init() >= 0);
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	direct = secrets_new();
	FUZZ_CHECK(direct != NULL);
}

static void check_field(const char *f)
{
	size_t n = strnlen(f, SECRET_MAX + 1);

	FUZZ_CHECK(n <= SECRET_MAX);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK((unsigned char)f[i] >= ' ' && f[i] != 0x7f);
}

static void check_secrets(const struct secrets *s)
{
	check_field(s->app_key);
	check_field(s->email);
	check_field(s->password);
}

/* A credential file holding `plain`, as credstore.c lays one out (with a
 * fixed nonce: only the format matters here). */
static uint8_t *seal(const uint8_t *plain, size_t len, size_t *ret_len)
{
	uint8_t ad[HEADER_LEN + sizeof(PROFILE) - 1];
	size_t n = HEADER_LEN + NONCE + len + TAG;
	uint8_t *file = malloc(n);

	FUZZ_CHECK(file != NULL);
	memcpy(file, HEADER, HEADER_LEN);
	memset(file + HEADER_LEN, 0, NONCE);
	memcpy(ad, HEADER, HEADER_LEN);
	memcpy(ad + HEADER_LEN, PROFILE, sizeof(PROFILE) - 1);
	crypto_aead_xchacha20poly1305_ietf_encrypt(
		file + HEADER_LEN + NONCE, NULL, plain, len, ad, sizeof(ad),
		NULL, file + HEADER_LEN, key);
	*ret_len = n;
	return file;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct secrets *s = NULL;
	uint8_t *file;
	size_t len;
	int r, r2;

	if (!direct)
		setup();

	r = cred_decrypt(data, size, PROFILE, key, "fuzz.cred", &s);
	if (r == 0) {
		check_secrets(s);
		secrets_free(s);
		s = NULL;
	} else {
		FUZZ_CHECK(r == UCAASAUTH_E_CREDENTIALS && s == NULL);
	}

	if (size > PLAIN_MAX)
		return 0;
	memset(direct, 0, sizeof(*direct));
	r = secrets_parse(direct, (const char *)data, size, "fuzz.cred");
	FUZZ_CHECK(r == 0 || r == UCAASAUTH_E_CREDENTIALS);
	if (r == 0)
		check_secrets(direct);
	file = seal(data, size, &len);
	r2 = cred_decrypt(file, len, PROFILE, key, "fuzz.cred", &s);
	FUZZ_CHECK(r2 == r);
	if (r2 == 0) {
		FUZZ_CHECK(memcmp(s, direct, sizeof(*s)) == 0);
		secrets_free(s);
	}
	free(file);
	return 0;
}

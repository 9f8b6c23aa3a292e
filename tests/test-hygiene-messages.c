/*
 * Secret hygiene in error messages: no secret in ucaasauth_last_error()
 * after every failure the test can provoke, from bad arguments, from
 * every answer the server can give, from a credential file, master key or
 * configuration broken every way, and from lines of a credential file
 * that decrypt but do not parse while carrying a secret.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "hygiene.h"
#include "internal.h"
#include "test.h"

#define CHECK_MSG_CLEAN(what)                                                  \
	do {                                                                   \
		const char *m_ = ucaasauth_last_error();                       \
		CHECK(m_ != NULL);                                             \
		CHECK_CLEAN(m_, strlen(m_), SECRETS, (what));                  \
	} while (0)

/* One header call on a new handle; the status. */
static int header_status(const char *profile)
{
	char buf[4096];
	int r = header_once(profile, buf, sizeof(buf));

	sodium_memzero(buf, sizeof(buf));
	return r;
}

/* tok.cred whose password field is fmt, %s standing for secret id,
 * written as is, newlines and all, so that it can smuggle whole lines in;
 * unmasked into guarded memory only. */
static void write_tok_cred(const char *fmt, int id)
{
	struct secrets *s = secrets_new();
	uint8_t *key = NULL, *data = NULL;
	char path[PATH_MAX];
	size_t len;

	CHECK(s != NULL);
	snprintf(s->email, sizeof(s->email), "%s", EMAIL);
	unmask_fmt(s->password, fmt, id);
	CHECK_INT(key_load(world.key, &key), 0);
	CHECK_INT(cred_encrypt(s, "tok", key, &data, &len), 0);
	snprintf(path, sizeof(path), "%s/tok.cred", world.dir);
	write_file(path, data, len, 0600);
	free(data);
	sodium_free(key);
	secrets_free(s);
}

static void test_messages(void)
{
	static const struct {
		const char *config;
		int status;
	} answers[] = {
		{"{\"password\": \"not-the-stored-one\"}", UCAASAUTH_E_DENIED},
		{"{\"login_status\": 401}", UCAASAUTH_E_DENIED},
		{"{\"login_status\": 500}", UCAASAUTH_E_UNAVAILABLE},
		{"{\"login_status\": 404}", UCAASAUTH_E_PROTOCOL},
		{"{\"login_body\": \"not json\"}", UCAASAUTH_E_PROTOCOL},
		{"{\"login_body\": \"{\\\"token\\\": \\\"a\\\\r\\\\nX: 1\\\"}\"}",
	         UCAASAUTH_E_PROTOCOL},
		{"{\"login_body\": \"{\\\"token\\\": 7}\"}",
	         UCAASAUTH_E_PROTOCOL},
		{"{\"login_body\": \"{\\\"token\\\": \\\"t\\\", "
	         "\\\"expires_in\\\": -1}\"}",
	         UCAASAUTH_E_PROTOCOL},
		{"{\"login_fault\": \"redirect\"}", UCAASAUTH_E_PROTOCOL},
		{"{\"login_fault\": \"huge\"}", UCAASAUTH_E_PROTOCOL},
		{"{\"login_fault\": \"drop\"}", UCAASAUTH_E_UNAVAILABLE},
	};
	/* Credential lines, %s standing for the secret id. */
	static const struct {
		const char *text, *error, *what;
		int id;
	} bad_lines[] = {
		{"x\n%s", "line 3", "line without '='", S_APP_KEY},
		{"x\nbogus=%s", "unknown key", "unknown key", S_APP_KEY},
		{"x\npassword=%s", "duplicate", "duplicate key", S_PASSWORD},
		{"%s\a", "control character", "control character", S_PASSWORD},
	};
	char path[PATH_MAX], other[PATH_MAX], saved[PATH_MAX];
	struct ucaasauth *ua;
	uint8_t *cred;
	size_t len;

	/* Arguments. */
	CHECK_INT(ucaasauth_open(&ua, "tok", 1), UCAASAUTH_E_INVALID);
	CHECK_MSG_CLEAN("flags");
	CHECK_INT(ucaasauth_open(&ua, "no/such", 0), UCAASAUTH_E_INVALID);
	CHECK_MSG_CLEAN("bad name");
	CHECK_INT(ucaasauth_open(&ua, "nosuch", 0), UCAASAUTH_E_CONFIG);
	CHECK_MSG_CLEAN("no profile");
	CHECK_INT(ucaasauth_open(&ua, "srv", 0), 0);
	CHECK_INT(ucaasauth_header(ua, NULL, 0, &len), UCAASAUTH_E_TOOSMALL);
	CHECK_MSG_CLEAN("too small, basic");
	CHECK_INT(ucaasauth_header(ua, NULL, 5, &len), UCAASAUTH_E_INVALID);
	CHECK_MSG_CLEAN("NULL buffer");
	ucaasauth_close(ua);

	/* Every answer the server can give. */
	for (size_t i = 0; i < ARRAY_SIZE(answers); i++) {
		CHECK_INT(mock_reset(&world.mock), 0);
		CHECK_INT(mock_config(&world.mock, answers[i].config), 0);
		CHECK_INT(header_status("tok"), answers[i].status);
		CHECK_MSG_CLEAN(answers[i].config);
	}
	/* The shared cache keeps the failure for every process during the
	 * backoff: that text too. */
	CHECK_INT(mock_reset(&world.mock), 0);
	CHECK_INT(mock_config(&world.mock,
	                      "{\"password\": \"not-the-stored-one\"}"),
	          0);
	CHECK_INT(header_status("shr"), UCAASAUTH_E_DENIED);
	CHECK_MSG_CLEAN("denied, shared");
	CHECK_INT(header_status("shr"), UCAASAUTH_E_DENIED);
	CHECK_ERROR_HAS("next login attempt");
	CHECK_MSG_CLEAN("denied, backing off");
	CHECK_INT(mock_reset(&world.mock), 0);
	world_runtime("run2");
	CHECK_INT(header_status("down"), UCAASAUTH_E_UNAVAILABLE);
	CHECK_MSG_CLEAN("server down");

	/* The credential file, broken every way. */
	snprintf(path, sizeof(path), "%s/tok.cred", world.dir);
	CHECK_INT(file_read(path, "credential file", OWNER_SELF, 65536, false,
	                    UCAASAUTH_E_CREDENTIALS, &cred, &len),
	          0);
	cred[len - 1] ^= 1;
	write_file(path, cred, len, 0600);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("flipped bit");
	cred[len - 1] ^= 1;
	write_file(path, cred, len / 2, 0600);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("truncated");
	write_file(path, cred, len, 0644);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("mode 0644");
	write_file(path, cred, len, 0600);
	CHECK_INT(header_status("tok"), 0);
	/* Another profile's file under this one's name. */
	snprintf(other, sizeof(other), "%s/srv.cred", world.dir);
	snprintf(saved, sizeof(saved), "%s/tok.cred.saved", world.dir);
	CHECK_INT(rename(path, saved), 0);
	CHECK_INT(link(other, path), 0);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("swapped file");
	CHECK_INT(unlink(path), 0);
	CHECK_INT(symlink(other, path), 0);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("symlink");
	CHECK_INT(unlink(path), 0);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("missing");
	CHECK_INT(rename(saved, path), 0);
	/* Another master key; a key file of the wrong size. */
	snprintf(saved, sizeof(saved), "%s/master.key.saved", world.dir);
	CHECK_INT(rename(world.key, saved), 0);
	CHECK_INT(key_generate(world.key), 0);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("another key");
	write_file(world.key, "short", 5, 0600);
	CHECK_INT(header_status("srv"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("short key");
	CHECK_INT(rename(saved, world.key), 0);
	CHECK_INT(header_status("tok"), 0);

	/* Lines that decrypt but do not parse, carrying a secret: the
	 * message names the line and the key, never the value. */
	for (size_t i = 0; i < ARRAY_SIZE(bad_lines); i++) {
		write_tok_cred(bad_lines[i].text, bad_lines[i].id);
		CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
		CHECK_ERROR_HAS(bad_lines[i].error);
		CHECK_MSG_CLEAN(bad_lines[i].what);
	}
	world_store("tok", S_PASSWORD);
	CHECK_INT(header_status("tok"), 0);

	/* A secret pasted into the configuration, where none belongs. */
	unmask_fmt(scr->text, "password = %s\n", S_PASSWORD);
	world_config(scr->text);
	wipe_scratch();
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("unknown key");
	CHECK_MSG_CLEAN("password in the configuration");
	world_config(NULL);
	CHECK_INT(header_status("tok"), 0);
	free(cred);
}

int main(int argc, char **argv)
{
	hygiene_start(argv);
	test_messages();
	hygiene_stop();
	TEST_DONE();
}

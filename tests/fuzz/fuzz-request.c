/*
 * The daemon's wire format (protocol.c): an input is a stream of requests
 * as a client would send them. Each whole message parsed must hold only
 * valid keys, values without CR, LF or NUL, at most MSG_FIELDS of them, no
 * key twice; written back with message_add it must parse to the same
 * message. A refusal is UCAASAUTH_E_PROTOCOL; an incomplete message waits
 * for more bytes, within the caps.
 */
#include <string.h>

#include "fuzz.h"
#include "protocol.h"

static void check_message(const struct message *m)
{
	FUZZ_CHECK(m->n <= MSG_FIELDS);
	for (size_t i = 0; i < m->n; i++) {
		const char *k = m->f[i].key, *v = m->f[i].value;
		size_t kn = strnlen(k, MSG_KEY_MAX), vn;

		FUZZ_CHECK(kn > 0 && kn < MSG_KEY_MAX);
		for (size_t j = 0; j < kn; j++)
			FUZZ_CHECK((k[j] >= 'a' && k[j] <= 'z') || k[j] == '_');
		vn = strnlen(v, MSG_LINE_MAX);
		FUZZ_CHECK(vn < MSG_LINE_MAX);
		FUZZ_CHECK(!memchr(v, '\r', vn) && !memchr(v, '\n', vn));
		/* Keys are unique: each finds its own value. */
		FUZZ_CHECK(message_get(m, k) == v);
	}
}

/* Written back and read again: the same fields, in the same order. */
static void round_trip(const struct message *m)
{
	static struct outbuf out;
	static struct message again;
	uint64_t a, b;
	size_t used;

	out.len = 0;
	for (size_t i = 0; i < m->n; i++)
		if (message_add(&out, m->f[i].key, "%s", m->f[i].value) < 0)
			return; /* longer than a reply may be */
	message_end(&out);
	FUZZ_CHECK(message_parse(out.buf, out.len, &again, &used) == 1);
	FUZZ_CHECK(used == out.len && again.n == m->n);
	for (size_t i = 0; i < m->n; i++) {
		FUZZ_CHECK(strcmp(again.f[i].key, m->f[i].key) == 0);
		FUZZ_CHECK(strcmp(again.f[i].value, m->f[i].value) == 0);
		if (message_get_u64(m, m->f[i].key, &a))
			FUZZ_CHECK(message_get_u64(&again, m->f[i].key, &b) &&
			           a == b);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct message m;
	const char *buf = (const char *)data;
	size_t used;
	int r;

	for (;;) {
		r = message_parse(buf, size, &m, &used);
		if (r == 0 || r == UCAASAUTH_E_PROTOCOL) {
			FUZZ_CHECK(r == 0 || ucaasauth_last_error() != NULL);
			return 0;
		}
		FUZZ_CHECK(r == 1 && used >= 1 && used <= size);
		FUZZ_CHECK(buf[used - 1] == '\n');
		check_message(&m);
		round_trip(&m);
		buf += used;
		size -= used;
	}
}

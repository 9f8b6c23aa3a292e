/*
 * The daemon's wire format (docs/protocol.md): "key=value" lines, a blank
 * line ends a message. Git's credential protocol rules: unknown keys are
 * ignored by the reader, a value never holds CR, LF or NUL, lines and
 * messages are capped.
 */
#include <stdarg.h>
#include <stdio.h>

#include "protocol.h"

static bool key_valid(const char *k, size_t n)
{
	if (n == 0 || n >= MSG_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') || k[i] == '_'))
			return false;
	return true;
}

int message_parse(const char *buf, size_t len, struct message *ret,
                  size_t *ret_used)
{
	struct message m = {0};
	size_t pos = 0;

	while (pos < len) {
		const char *line = buf + pos, *end, *eq;
		size_t n;

		end = memchr(line, '\n', len - pos);
		if (!end)
			break; /* incomplete */
		n = end - line;
		if (n > MSG_LINE_MAX)
			return fail(UCAASAUTH_E_PROTOCOL,
			            "message line longer than %d bytes",
			            MSG_LINE_MAX);
		pos += n + 1;
		if (n == 0) {
			*ret = m;
			*ret_used = pos;
			return 1;
		}
		if (memchr(line, '\r', n) || memchr(line, 0, n))
			return fail(UCAASAUTH_E_PROTOCOL,
			            "message line %zu holds CR or NUL",
			            m.n + 1);
		eq = memchr(line, '=', n);
		if (!eq || !key_valid(line, eq - line))
			return fail(UCAASAUTH_E_PROTOCOL,
			            "message line %zu is not key=value",
			            m.n + 1);
		if (m.n == MSG_FIELDS)
			return fail(UCAASAUTH_E_PROTOCOL,
			            "message of more than %d lines",
			            MSG_FIELDS);
		for (size_t i = 0; i < m.n; i++)
			if (strlen(m.f[i].key) == (size_t)(eq - line) &&
			    memcmp(m.f[i].key, line, eq - line) == 0)
				return fail(UCAASAUTH_E_PROTOCOL,
				            "message repeats key %s", m.f[i].key);
		memcpy(m.f[m.n].key, line, eq - line);
		m.f[m.n].key[eq - line] = 0;
		memcpy(m.f[m.n].value, eq + 1, n - (eq - line) - 1);
		m.f[m.n].value[n - (eq - line) - 1] = 0;
		m.n++;
	}
	if (len - pos > MSG_LINE_MAX)
		return fail(UCAASAUTH_E_PROTOCOL,
		            "message line longer than %d bytes", MSG_LINE_MAX);
	if (len >= MSG_MAX)
		return fail(UCAASAUTH_E_PROTOCOL,
		            "message longer than %d bytes", MSG_MAX);
	return 0;
}

const char *message_get(const struct message *m, const char *key)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->f[i].key, key) == 0)
			return m->f[i].value;
	return NULL;
}

bool message_get_u64(const struct message *m, const char *key,
                     uint64_t *ret)
{
	const char *v = message_get(m, key);
	uint64_t n = 0;

	if (!v || !*v || strlen(v) > 19)
		return false;
	for (; *v; v++) {
		if (*v < '0' || *v > '9')
			return false;
		n = n * 10 + (uint64_t)(*v - '0');
	}
	*ret = n;
	return true;
}

int message_add(struct outbuf *out, const char *key, const char *fmt, ...)
{
	char value[MSG_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	/* Never a line break inside a value: it would forge a key. */
	for (char *c = value; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	n = snprintf(out->buf + out->len, sizeof(out->buf) - out->len,
	             "%s=%s\n", key, value);
	if (n < 0 || (size_t)n >= sizeof(out->buf) - out->len - 1)
		return -1;
	out->len += n;
	return 0;
}

void message_end(struct outbuf *out)
{
	assert(out->len < sizeof(out->buf));
	out->buf[out->len++] = '\n';
}

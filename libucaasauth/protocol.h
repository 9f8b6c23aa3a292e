/* The daemon's wire format: see protocol.c and docs/protocol.md. */
#ifndef UCAASAUTH_PROTOCOL_H
#define UCAASAUTH_PROTOCOL_H

#include "internal.h"

#define MSG_MAX 4096      /* a whole message, blank line included */
#define MSG_LINE_MAX 512  /* one line, without its LF */
#define MSG_KEY_MAX 32
#define MSG_FIELDS 16

struct message {
	size_t n;
	struct {
		char key[MSG_KEY_MAX];
		char value[MSG_LINE_MAX];
	} f[MSG_FIELDS];
};

struct outbuf {
	char buf[MSG_MAX];
	size_t len;
};

/* 1 and *ret_used bytes consumed when buf starts with a whole message,
 * 0 when more bytes are needed, UCAASAUTH_E_PROTOCOL when it is bad. */
int message_parse(const char *buf, size_t len, struct message *ret,
                  size_t *ret_used);
const char *message_get(const struct message *m, const char *key);
bool message_get_u64(const struct message *m, const char *key,
                     uint64_t *ret);
/* Appends "key=value\n"; -1 when it does not fit. */
int message_add(struct outbuf *out, const char *key, const char *fmt, ...)
	PRINTF(3, 4);
void message_end(struct outbuf *out);

#endif

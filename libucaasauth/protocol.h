/* The daemon's wire format: see protocol.c and docs/protocol.md. */
#ifndef UCAASAUTH_PROTOCOL_H
#define UCAASAUTH_PROTOCOL_H

#include "internal.h"

#define MSG_MAX 4096     /* a whole message, blank line included */
#define MSG_LINE_MAX 512 /* one line, without its LF */
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
bool message_get_u64(const struct message *m, const char *key, uint64_t *ret);
/* Appends "key=value\n"; -1 when it does not fit. */
int message_add(struct outbuf *out, const char *key, const char *fmt, ...)
	PRINTF(3, 4);
void message_end(struct outbuf *out);

/*
 * fd passing, for both sides (seatd's common/connection.c). message_send()
 * ends the message and sends all of it, with `fd` (when >= 0) as
 * SCM_RIGHTS on its first byte; 0 or -errno. flags: MSG_DONTWAIT for the
 * daemon, which never blocks on a client.
 */
int message_send(int sock, struct outbuf *out, int fd, int flags);
/* One recvmsg() into buf: the byte count, 0 at EOF, or -errno. A
 * descriptor that comes along goes to *ret_fd if ret_fd is not NULL and
 * *ret_fd is still -1; every other one is closed at once (the daemon
 * takes none). */
ssize_t message_recv(int sock, char *buf, size_t size, int flags, int *ret_fd);

/*
 * The socket's directory, as both sides check it: a directory (not a
 * symbolic link), owned by root, the caller or `also` (the daemon's user,
 * or NO_UID), and not writable by group or others, so that no one else
 * can put another socket at the path. `status` and the detail on
 * failure (file_check()'s rule OWNER_SELF_OR_ROOT).
 */
int socket_dir_check(const char *socket, uid_t also, int status);

#endif

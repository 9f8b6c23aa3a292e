/*
 * The daemon's wire format (docs/protocol.md): "key=value" lines, a blank
 * line ends a message. Git's credential protocol rules: unknown keys are
 * ignored by the reader, a value never holds CR, LF or NUL, lines and
 * messages are capped.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

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
				            "message repeats key %s",
				            m.f[i].key);
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

bool message_get_u64(const struct message *m, const char *key, uint64_t *ret)
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

int message_send(int sock, struct outbuf *out, int fd, int flags)
{
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} control;
	size_t sent = 0;

	message_end(out);
	while (sent < out->len) {
		struct iovec iov = {out->buf + sent, out->len - sent};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n;

		if (fd >= 0 && sent == 0) {
			struct cmsghdr *h;

			memset(&control, 0, sizeof(control));
			msg.msg_control = &control;
			msg.msg_controllen = sizeof(control);
			h = CMSG_FIRSTHDR(&msg);
			h->cmsg_level = SOL_SOCKET;
			h->cmsg_type = SCM_RIGHTS;
			h->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(h), &fd, sizeof(int));
		}
		n = sendmsg(sock, &msg, MSG_NOSIGNAL | flags);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		sent += n;
	}
	return 0;
}

ssize_t message_recv(int sock, char *buf, size_t size, int flags, int *ret_fd)
{
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(4 * sizeof(int))];
	} control;
	struct iovec iov = {buf, size};
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = &control,
		.msg_controllen = sizeof(control),
	};
	ssize_t n;

	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c;
	     c = CMSG_NXTHDR(&msg, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(f));
			if (ret_fd && *ret_fd < 0)
				*ret_fd = f;
			else
				close(f); /* one fd, never more */
		}
	}
	return n;
}

int socket_dir_check(const char *socket, uid_t also, int status)
{
	char dir[PATH_MAX];
	struct stat st;
	const char *slash = strrchr(socket, '/');

	if (!slash || slash == socket ||
	    (size_t)(slash - socket) >= sizeof(dir))
		return fail(status, "socket %s: needs a directory of its own",
		            socket);
	memcpy(dir, socket, slash - socket);
	dir[slash - socket] = 0;
	if (lstat(dir, &st) < 0)
		return fail_errno(status, errno, "socket directory", dir);
	/* Whoever may write the directory may put a socket of theirs at
	 * the path. */
	return file_check(&st, S_IFDIR, OWNER_SELF_OR_ROOT, also,
	                  "socket directory", dir, status);
}

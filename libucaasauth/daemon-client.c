/*
 * The client side of ucaas-authd (cache = daemon): attach to the daemon's
 * sealed segment, ask it for a refresh, and wait for the new generation.
 * A client holds no credential: only the read-only mapping of the token.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>

#include "cache.h"
#include "protocol.h"

/* A daemon whose heartbeat is older than this is taken for dead. */
#define HEARTBEAT_STALE_MS 3000

static int unavailable(const struct profile *p, const char *what)
{
	return fail(UCAASAUTH_E_UNAVAILABLE, "ucaas-authd (socket %s): %s",
	            p->socket, what);
}

static int send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= n;
	}
	return 0;
}

/* Reads one answer, and the fd that may come with its first bytes. */
static int receive(int fd, const struct profile *p, struct message *ret,
                   int *ret_fd)
{
	char buf[MSG_MAX];
	size_t len = 0, used;
	int got_fd = -1, r;

	for (;;) {
		union {
			struct cmsghdr h;
			char space[CMSG_SPACE(sizeof(int))];
		} control;
		struct iovec iov = {buf + len, sizeof(buf) - len};
		struct msghdr msg = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = &control,
			.msg_controllen = sizeof(control),
		};
		struct cmsghdr *c;
		ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = unavailable(p, errno == EAGAIN
			                           ? "no answer in time"
			                           : strerror(errno));
			goto out;
		}
		for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
			if (c->cmsg_level == SOL_SOCKET &&
			    c->cmsg_type == SCM_RIGHTS &&
			    c->cmsg_len == CMSG_LEN(sizeof(int))) {
				int f;
				memcpy(&f, CMSG_DATA(c), sizeof(f));
				if (got_fd >= 0)
					close(f); /* one fd, never more */
				else
					got_fd = f;
			}
		if (n == 0) {
			r = unavailable(p, "closed the connection");
			goto out;
		}
		len += n;
		r = message_parse(buf, len, ret, &used);
		if (r < 0) {
			r = fail(UCAASAUTH_E_PROTOCOL, "ucaas-authd (socket %s): "
			         "a malformed answer", p->socket);
			goto out;
		}
		if (r == 1)
			break;
	}
	r = 0;
	if (ret_fd) {
		*ret_fd = got_fd;
		got_fd = -1;
	}
out:
	if (got_fd >= 0)
		close(got_fd);
	return r;
}

/* One request, one answer, on a connection of its own: requests are rare
 * (a refresh, a reject, an attach), and a connection shared across fork
 * would mix the answers of parent and children. */
static int call(const struct ucaasauth *ua, const char *command,
                uint64_t generation, struct message *answer, int *ret_fd)
{
	const struct profile *p = ua->profile;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct timeval tv = {ua->profile->wait_timeout, 0};
	struct outbuf req = {0};
	const char *status, *text;
	uint64_t code;
	int fd, r;

	if (strlen(p->socket) >= sizeof(addr.sun_path))
		return fail(UCAASAUTH_E_CONFIG, "socket %s: path too long",
		            p->socket);
	memcpy(addr.sun_path, p->socket, strlen(p->socket));
	if (message_add(&req, "command", "%s", command) < 0 ||
	    message_add(&req, "profile", "%s", p->name) < 0 ||
	    (generation &&
	     (message_add(&req, "generation", "%llu",
	                  (unsigned long long)generation) < 0 ||
	      message_add(&req, "pid", "%d",
	                  (int)atomic_load(&atomic_load(&ua->view)->daemon_pid)) <
	              0)))
		return fail(UCAASAUTH_E_INVALID, "request too long");
	message_end(&req);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return unavailable(p, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		r = unavailable(p, errno == ENOENT || errno == ECONNREFUSED
		                           ? "not running"
		                           : strerror(errno));
		goto out;
	}
	r = send_all(fd, req.buf, req.len);
	if (r < 0) {
		r = unavailable(p, strerror(-r));
		goto out;
	}
	r = receive(fd, p, answer, ret_fd);
	if (r < 0)
		goto out;
	status = message_get(answer, "status");
	if (status && strcmp(status, "ok") == 0)
		goto out;
	/* The daemon's own status and words, e.g. a denied login. */
	text = message_get(answer, "message");
	if (!message_get_u64(answer, "code", &code) || code == 0 ||
	    code > (uint64_t)-UCAASAUTH_E_NOMEM)
		code = (uint64_t)-UCAASAUTH_E_UNAVAILABLE;
	r = fail(-(int)code, "ucaas-authd: %s", text ? text : "refused");
	if (ret_fd && *ret_fd >= 0) {
		close(*ret_fd);
		*ret_fd = -1;
	}
out:
	close(fd);
	return r;
}

int daemon_attach(struct ucaasauth *ua)
{
	const struct segment *seg, *old;
	struct message answer;
	int fd = -1, r;

	r = call(ua, "attach", 0, &answer, &fd);
	if (r < 0)
		return r;
	if (fd < 0)
		return fail(UCAASAUTH_E_PROTOCOL,
		            "ucaas-authd (socket %s): no segment in its answer",
		            ua->profile->socket);
	r = cache_attach_fd(fd, &seg);
	close(fd);
	if (r < 0)
		return r;
	/* Readers in other threads may still be copying from the old view:
	 * it stays mapped until the handle is closed. */
	pthread_mutex_lock(&ua->lock);
	old = atomic_load(&ua->view);
	if (old) {
		const struct segment **v = realloc(
			ua->retired, (ua->n_retired + 1) * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&ua->lock);
			cache_close(seg);
			return fail(UCAASAUTH_E_NOMEM, "out of memory");
		}
		v[ua->n_retired++] = old;
		ua->retired = v;
	}
	atomic_store(&ua->view, seg);
	pthread_mutex_unlock(&ua->lock);
	return 0;
}

static bool daemon_alive(const struct segment *seg, int64_t now)
{
	return atomic_load(&seg->daemon_pid) != 0 &&
	       now - atomic_load(&seg->heartbeat_ms) < HEARTBEAT_STALE_MS;
}

/* The daemon that answers is not the one whose segment we read (it was
 * restarted): attach to its segment. */
static int follow(struct ucaasauth *ua, const struct message *answer,
                  const struct segment *view)
{
	uint64_t pid;

	if (message_get_u64(answer, "pid", &pid) &&
	    pid != (uint64_t)atomic_load(&view->daemon_pid))
		return daemon_attach(ua);
	return 0;
}

int daemon_header(struct ucaasauth *ua, char *buf, size_t size,
                  size_t *ret_len)
{
	char header[HEADER_MAX + 1];
	int64_t deadline = now_ms() + ua->wait_ms;
	struct refresh_state st;
	struct snapshot snap = {0};
	struct message answer;
	bool asked = false;
	int r;

	for (;;) {
		const struct segment *view = atomic_load(&ua->view);
		uint32_t seen;
		int64_t now = now_ms();
		bool valid;

		if (!view) {
			/* Opened while the daemon was down. */
			r = daemon_attach(ua);
			if (r < 0)
				goto out;
			continue;
		}
		seen = atomic_load(&view->wake);
		valid = segment_read(view, header, sizeof(header), &snap) &&
		        snap.len > 0 && now < snap.expires_ms;

		/* Fresh or advisory: the daemon refreshes on its own. */
		if (valid && now < snap.renew_ms)
			break;
		if (!daemon_alive(view, now) || !asked) {
			r = call(ua, "refresh", 0, &answer, NULL);
			if (r == 0)
				r = follow(ua, &answer, view);
			if (r < 0) {
				if (valid)
					break;
				goto out;
			}
			if (!asked) {
				asked = true;
				continue;
			}
		}
		cache_refresh_state(view, &st);
		if (asked && st.failures > 0 && now < st.next_attempt_ms) {
			/* The daemon's login failed: its status, at once. */
			if (valid)
				break;
			r = fail(st.last_status, "ucaas-authd: %s", st.error);
			goto out;
		}
		if (now >= deadline) {
			if (valid)
				break;
			r = fail(UCAASAUTH_E_TIMEOUT,
			         "ucaas-authd (socket %s) gave no new token for "
			         "profile '%s' within %lld s",
			         ua->profile->socket, ua->profile->name,
			         (long long)ua->wait_ms / 1000);
			goto out;
		}
		cache_wait(view, seen, deadline);
	}
	r = copy_out(header, snap.len, buf, size, ret_len);
out:
	sodium_memzero(header, sizeof(header));
	return r;
}

int daemon_reject(struct ucaasauth *ua, uint64_t generation)
{
	const struct segment *view = atomic_load(&ua->view);
	struct message answer;
	int r;

	r = call(ua, "reject", generation, &answer, NULL);
	/* Another daemon answered: its token is not the one rejected, but
	 * ours comes from now on. */
	return r < 0 ? r : follow(ua, &answer, view);
}

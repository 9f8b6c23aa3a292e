/*
 * The client side of ucaas-authd (cache = daemon): attach to the daemon's
 * sealed segment, ask it for a refresh, and wait for the new generation.
 * A client holds no credential: only the read-only mapping of the token.
 */
#include <errno.h>
#include <pwd.h>
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

/* daemon_user: a uid, or a name looked up (thread-safe: clients run in
 * threaded hosts). -1 when there is no such user. */
static uid_t daemon_uid(const struct profile *p)
{
	char buf[4096], *end;
	struct passwd pw, *found = NULL;
	unsigned long id = strtoul(p->daemon_user, &end, 10);

	if (*p->daemon_user && !*end)
		return (uid_t)id;
	if (getpwnam_r(p->daemon_user, &pw, buf, sizeof(buf), &found) != 0 ||
	    !found)
		return (uid_t)-1;
	return found->pw_uid;
}

/*
 * Who answers must be the daemon: root, the configured daemon user, or
 * ourselves (who could read our memory anyway). Anyone else could serve
 * a segment of their own, sealed as well as the daemon's, with a token of
 * their account in it. The directory is checked first, as the daemon
 * checks its own; the peer's credentials then prove who listens, whatever
 * the directory. Refused before a byte is read, so no descriptor of
 * theirs is ever received.
 */
static int check_directory(const struct profile *p)
{
	return socket_dir_check(p->socket, daemon_uid(p), UCAASAUTH_E_CACHE);
}

static int check_peer(int fd, const struct profile *p)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	uid_t daemon;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return unavailable(p, strerror(errno));
	if (cred.uid == 0 || cred.uid == geteuid())
		return 0;
	daemon = daemon_uid(p);
	if (cred.uid == daemon)
		return 0;
	return fail(UCAASAUTH_E_CACHE,
	            "socket %s is served by uid %u (pid %d), not by root or "
	            "the daemon user '%s'%s: refused, nothing read from it",
	            p->socket, (unsigned)cred.uid, (int)cred.pid,
	            p->daemon_user,
	            daemon == (uid_t)-1 ? " (no such user here)" : "");
}

/* Reads one answer, and the fd that may come with its first bytes. */
static int receive(int fd, const struct profile *p, struct message *ret,
                   int *ret_fd)
{
	char buf[MSG_MAX];
	size_t len = 0, used;
	int got_fd = -1, r;

	for (;;) {
		ssize_t n = message_recv(fd, buf + len, sizeof(buf) - len, 0,
		                         ret_fd ? &got_fd : NULL);

		if (n < 0) {
			r = unavailable(p, n == -EAGAIN ? "no answer in time"
			                                : strerror((int)-n));
			goto out;
		}
		if (n == 0) {
			r = unavailable(p, "closed the connection");
			goto out;
		}
		len += n;
		r = message_parse(buf, len, ret, &used);
		if (r < 0) {
			r = fail(UCAASAUTH_E_PROTOCOL,
			         "ucaas-authd (socket %s): "
			         "a malformed answer",
			         p->socket);
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
	int fd, r, sent;

	if (ret_fd)
		*ret_fd = -1;
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
	                  (int)atomic_load(
				  &atomic_load(&ua->view)->daemon_pid)) < 0)))
		return fail(UCAASAUTH_E_INVALID, "request too long");

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return unavailable(p, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		r = errno;
		/* A directory we may not enter: is it the daemon's? */
		if (r == EACCES && check_directory(p) < 0)
			r = UCAASAUTH_E_CACHE;
		else
			r = unavailable(p, r == ENOENT || r == ECONNREFUSED
			                           ? "not running"
			                           : strerror(r));
		goto out;
	}
	r = check_directory(p);
	if (r == 0)
		r = check_peer(fd, p);
	if (r < 0)
		goto out;
	/* The daemon answers a peer it refuses at once, without reading:
	 * a send that finds the connection closed still has that answer
	 * waiting. */
	sent = message_send(fd, &req, -1, 0);
	r = receive(fd, p, answer, ret_fd);
	if (r < 0 && sent < 0)
		r = unavailable(p, strerror(-sent));
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
	if (old && handle_retire(ua, old) < 0) {
		pthread_mutex_unlock(&ua->lock);
		cache_close(seg);
		return UCAASAUTH_E_NOMEM;
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

/* A reload that removed someone from the allow lists, or changed the
 * account, leaves the old segment wiped and retired: who is still allowed
 * attaches to the new one, who is not is told why. */
static int withdrawn(const struct ucaasauth *ua, int r)
{
	char why[512];

	snprintf(why, sizeof(why), "%s",
	         r == UCAASAUTH_E_PROTOCOL ? "the new segment was withdrawn too"
	                                   : ucaasauth_last_error());
	return fail(r,
	            "ucaas-authd (socket %s) withdrew the segment of profile "
	            "'%s' (a reload changed who may use it, or its account), "
	            "and attaching again failed: %s",
	            ua->profile->socket, ua->profile->name, why);
}

int daemon_header(struct ucaasauth *ua, char *buf, size_t size, size_t *ret_len)
{
	char header[HEADER_MAX + 1];
	int64_t deadline = now_ms() + ua->wait_ms;
	struct refresh_state st;
	struct snapshot snap = {0};
	struct message answer;
	bool asked = false;
	int r, attached = 0;

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
		if (cache_retired(view)) {
			/* Withdrawn by the daemon: attach again, once. */
			r = attached++ ? UCAASAUTH_E_PROTOCOL
			               : daemon_attach(ua);
			if (r < 0) {
				r = withdrawn(ua, r);
				goto out;
			}
			continue;
		}
		seen = atomic_load(&view->wake);
		valid = token_view(view, header, sizeof(header), &snap);

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
		cache_refresh_state(view, now, &st);
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
			r = fail(
				UCAASAUTH_E_TIMEOUT,
				"ucaas-authd (socket %s) gave no new token for "
				"profile '%s' within %lld s",
				ua->profile->socket, ua->profile->name,
				(long long)ua->wait_ms / 1000);
			goto out;
		}
		cache_wait(view, seen, deadline);
	}
	/* Valid at the moment of return, not only when it was read. */
	if (now_ms() >= snap.expires_ms) {
		r = fail(UCAASAUTH_E_TIMEOUT,
		         "ucaas-authd (socket %s): the token of profile '%s' "
		         "expired while waiting for a new one",
		         ua->profile->socket, ua->profile->name);
		goto out;
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

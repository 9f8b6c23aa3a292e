/*
 * The socket: its directory, accept and the peer check, one request per
 * connection, and the poll loop of the main thread. A peer that no
 * profile allows is answered and closed at accept, before it can hold a
 * slot; one uid holds at most MAX_CONNS_PER_UID slots; a client that says
 * nothing is dropped at its deadline. No request waits on a login.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "authd.h"
#include "cache.h"
#include "protocol.h"

#define MAX_CONNS 256
/* A quarter of the slots: one user's burst (or one compromised user)
 * cannot shut the others out. root and the daemon's own user are not
 * capped: they can stop the daemon anyway. */
#define MAX_CONNS_PER_UID 64
#define ACCEPT_BATCH 64
#define CONN_TIMEOUT_MS 5000
#define HEARTBEAT_MS 1000

struct conn {
	int fd;
	struct peer peer;
	int64_t deadline;
	size_t len;
	char buf[MSG_MAX];
};

static struct conn *conns[MAX_CONNS];

static void answer_error(int fd, int status, const char *fmt, ...) PRINTF(3, 4);
static void answer_error(int fd, int status, const char *fmt, ...)
{
	struct outbuf out = {0};
	char text[MSG_LINE_MAX - 16];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	message_add(&out, "status", "error");
	message_add(&out, "code", "%d", -status);
	message_add(&out, "message", "%s", text);
	/* Small enough for the socket buffer: never blocks. */
	message_send(fd, &out, -1, MSG_DONTWAIT);
}

static struct served *find_served(const char *name)
{
	for (size_t i = 0; name && i < n_served; i++)
		if (strcmp(served[i].name, name) == 0)
			return &served[i];
	return NULL;
}

/* With s->mtx held: the segment and memfd cannot move meanwhile. */
static void serve_request(struct served *s, struct conn *c, const char *command,
                          const struct message *m)
{
	int memfd;
	struct segment *seg = handle_segment(s->ua, &memfd);
	struct outbuf out = {0};
	struct refresh_state st;
	struct snapshot snap = {0};
	uint64_t generation, pid;
	int64_t now = now_ms();
	bool valid;

	valid = token_view(seg, NULL, 0, &snap);
	message_add(&out, "status", "ok");
	message_add(&out, "pid", "%d", (int)getpid());
	if (strcmp(command, "attach") == 0) {
		message_add(&out, "generation", "%llu",
		            (unsigned long long)snap.generation);
		message_send(c->fd, &out, memfd, MSG_DONTWAIT);
		return;
	}
	if (strcmp(command, "refresh") == 0) {
		cache_refresh_state(seg, now, &st);
		if (!valid && st.failures && now < st.next_attempt_ms)
			return answer_error(c->fd, st.last_status, "%s",
			                    st.error);
		if (!valid || now >= snap.renew_ms)
			profile_wake(s);
		message_send(c->fd, &out, -1, MSG_DONTWAIT);
		return;
	}
	if (strcmp(command, "reject") == 0) {
		if (!message_get_u64(m, "generation", &generation))
			return answer_error(c->fd, UCAASAUTH_E_PROTOCOL,
			                    "reject without a generation");
		/* Generations count per daemon: one from a client still
		 * reading a daemon before us says nothing of our token. */
		if (message_get_u64(m, "pid", &pid) &&
		    pid != (uint64_t)getpid()) {
			message_send(c->fd, &out, -1, MSG_DONTWAIT);
			return;
		}
		/* Dropped once however many clients saw the same 401; a
		 * token younger than reject_min_age is replaced once per
		 * backoff step, so no client can make us log in at will. */
		if (generation == snap.generation &&
		    s->provider != PROVIDER_BASIC && cache_lock(seg, -1) == 0) {
			cache_reject(seg, generation, s->reject_min_age_ms);
			cache_unlock(seg);
			profile_wake(s);
		}
		message_send(c->fd, &out, -1, MSG_DONTWAIT);
		return;
	}
	answer_error(c->fd, UCAASAUTH_E_PROTOCOL, "unknown command");
}

static void handle_request(struct conn *c, const struct message *m)
{
	const char *command = message_get(m, "command");
	const char *name = message_get(m, "profile");
	struct served *s = find_served(name);

	if (!command)
		return answer_error(c->fd, UCAASAUTH_E_PROTOCOL, "no command");
	if (!s)
		return answer_error(c->fd, UCAASAUTH_E_CONFIG,
		                    "profile '%s' is not served here",
		                    name ? name : "");
	/* Checked again: a reload since the accept may have removed it. */
	if (!allow_peer(&s->allow, &c->peer)) {
		log_msg(LOG_WARNING,
		        "refused uid %u (gid %u) for profile '%s': not in "
		        "allow_users or allow_groups",
		        (unsigned)c->peer.uid, (unsigned)c->peer.gid, name);
		return answer_error(c->fd, UCAASAUTH_E_DENIED,
		                    "uid %u is not allowed to use profile '%s'",
		                    (unsigned)c->peer.uid, name);
	}
	pthread_mutex_lock(&s->mtx);
	serve_request(s, c, command, m);
	pthread_mutex_unlock(&s->mtx);
}

static void close_conn(size_t i)
{
	close(conns[i]->fd);
	free(conns[i]);
	conns[i] = NULL;
}

static void on_readable(size_t i)
{
	struct conn *c = conns[i];
	struct message m;
	size_t used;
	ssize_t n;
	int r;

	/* Descriptors a client sends are closed unread. */
	n = message_recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len,
	                 MSG_DONTWAIT, NULL);
	if (n == -EAGAIN || n == -EINTR)
		return;
	if (n <= 0)
		return close_conn(i);
	c->len += n;
	r = message_parse(c->buf, c->len, &m, &used);
	if (r < 0) {
		answer_error(c->fd, UCAASAUTH_E_PROTOCOL, "%s",
		             ucaasauth_last_error());
		return close_conn(i);
	}
	if (r == 0)
		return;
	handle_request(c, &m);
	close_conn(i); /* one request per connection */
}

/* Strangers learn nothing, not even which profiles exist. */
static bool allowed_anywhere(const struct peer *peer)
{
	for (size_t i = 0; i < n_served; i++)
		if (allow_peer(&served[i].allow, peer))
			return true;
	return false;
}

/* One line a second at most, however many knock: a stranger must not
 * fill the journal either. */
static void log_refusal(const struct peer *peer, const char *why)
{
	static int64_t next_ms;
	static unsigned quiet;
	int64_t now = now_ms();

	if (now < next_ms) {
		quiet++;
		return;
	}
	log_msg(LOG_WARNING,
	        "refused uid %u (gid %u, pid %d) at accept: %s"
	        " (%u more refused in the second before)",
	        (unsigned)peer->uid, (unsigned)peer->gid, (int)peer->pid, why,
	        quiet);
	quiet = 0;
	next_ms = now + 1000;
}

/* A slot for a peer, or -1 with the peer answered why not. */
static int admit(int fd, const struct peer *peer)
{
	size_t mine = 0, free_slot = MAX_CONNS;
	bool capped = peer->uid != 0 && peer->uid != geteuid();

	if (!allowed_anywhere(peer)) {
		log_refusal(peer, "not in any allow_users or allow_groups");
		answer_error(fd, UCAASAUTH_E_DENIED,
		             "uid %u is not allowed to use this daemon (not in "
		             "any profile's allow_users or allow_groups)",
		             (unsigned)peer->uid);
		return -1;
	}
	for (size_t i = 0; i < MAX_CONNS; i++) {
		if (!conns[i])
			free_slot = free_slot < i ? free_slot : i;
		else if (conns[i]->peer.uid == peer->uid)
			mine++;
	}
	if (capped && mine >= MAX_CONNS_PER_UID) {
		log_refusal(peer, "too many connections from that uid");
		answer_error(fd, UCAASAUTH_E_UNAVAILABLE,
		             "uid %u has %d connections open already",
		             (unsigned)peer->uid, MAX_CONNS_PER_UID);
		return -1;
	}
	if (free_slot == MAX_CONNS) {
		/* The client keeps any valid token it has. */
		answer_error(fd, UCAASAUTH_E_UNAVAILABLE,
		             "busy: %d connections open", MAX_CONNS);
		return -1;
	}
	return (int)free_slot;
}

/* The peer is checked the moment it is accepted (its credentials are
 * the kernel's, from connect()), so a stranger never holds a slot. */
static void on_accept(int lfd)
{
	for (int k = 0; k < ACCEPT_BATCH; k++) {
		struct ucred cred;
		socklen_t len = sizeof(cred);
		struct peer peer = {0};
		struct conn *c;
		int fd, slot;

		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
			close(fd);
			continue;
		}
		peer.uid = cred.uid;
		peer.gid = cred.gid;
		peer.pid = cred.pid;
		len = sizeof(peer.groups);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, peer.groups,
		               &len) == 0)
			peer.n_groups = len / sizeof(gid_t);
		slot = admit(fd, &peer);
		c = slot >= 0 ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->peer = peer;
		c->deadline = now_ms() + CONN_TIMEOUT_MS;
		conns[slot] = c;
	}
}

int server_run(int lfd, int sigfd)
{
	enum {
		LISTEN,
		SIGNALS,
		RELOADS,
		FIRST
	};
	struct pollfd pfd[MAX_CONNS + FIRST];
	size_t map[MAX_CONNS];
	int64_t next_beat = 0;

	for (;;) {
		int64_t now = now_ms(), wait = next_beat - now;
		size_t n = FIRST;
		struct signalfd_siginfo si;
		uint64_t count;

		if (wait <= 0) {
			for (size_t i = 0; i < n_served; i++)
				profile_beat(&served[i], now);
			next_beat = now + HEARTBEAT_MS;
			wait = HEARTBEAT_MS;
		}
		pfd[LISTEN] = (struct pollfd){.fd = lfd, .events = POLLIN};
		pfd[SIGNALS] = (struct pollfd){.fd = sigfd, .events = POLLIN};
		pfd[RELOADS] =
			(struct pollfd){.fd = reload_event, .events = POLLIN};
		for (size_t i = 0; i < MAX_CONNS; i++) {
			if (!conns[i])
				continue;
			/* A client that says nothing is dropped. */
			if (now >= conns[i]->deadline) {
				close_conn(i);
				continue;
			}
			if (conns[i]->deadline - now < wait)
				wait = conns[i]->deadline - now;
			pfd[n] = (struct pollfd){.fd = conns[i]->fd,
			                         .events = POLLIN};
			map[n - FIRST] = i;
			n++;
		}
		if (poll(pfd, n, (int)wait) < 0 && errno != EINTR)
			return -1;
		for (size_t k = FIRST; k < n; k++)
			if (pfd[k].revents && conns[map[k - FIRST]])
				on_readable(map[k - FIRST]);
		if (pfd[LISTEN].revents & POLLIN)
			on_accept(lfd);
		if ((pfd[RELOADS].revents & POLLIN) &&
		    read(reload_event, &count, sizeof(count)) == sizeof(count))
			on_reloaded();
		if ((pfd[SIGNALS].revents & POLLIN) &&
		    read(sigfd, &si, sizeof(si)) == sizeof(si) &&
		    !on_signal((int)si.ssi_signo))
			return 0;
	}
}

void server_close(void)
{
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (conns[i])
			close_conn(i);
}

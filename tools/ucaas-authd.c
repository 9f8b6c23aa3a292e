/*
 * ucaas-authd: holds the credentials of the profiles whose cache = daemon,
 * keeps their tokens fresh ahead of expiry, and hands clients a sealed,
 * read-only view of each token's segment over a Unix socket.
 *
 * One thread polls the socket, the clients and the signals, and beats the
 * heartbeat; one thread per profile logs in. A client that says nothing
 * is dropped at its deadline; no request can make the main thread wait on
 * a login.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>

#include "cache.h"
#include "protocol.h"
#include "stack.h"

#define MAX_CONNS 256
#define MAX_IDS 64
#define CONN_TIMEOUT_MS 5000
#define HEARTBEAT_MS 1000
#define FAR_FUTURE_MS ((int64_t)1 << 62)
#define LOCK_WAIT_MS 60000

enum { LOG_ERR = 3, LOG_WARNING = 4, LOG_INFO = 6 };

struct served {
	struct ucaasauth *ua;
	/* Fixed at start, read by the main thread: the refresher swaps the
	 * handle's settings on reload, so the main thread never reads
	 * them. */
	char name[PROFILE_NAME_MAX + 1];
	enum provider_kind provider;
	size_t n_stack;
	uid_t uids[MAX_IDS];
	gid_t gids[MAX_IDS];
	size_t n_uids, n_gids;
	pthread_t thread;
	bool has_thread;
	pthread_mutex_t mtx; /* guards wanted, stop, pending */
	pthread_cond_t cond;
	bool wanted, stop;
	/* A reloaded handle whose settings and secrets the refresher swaps
	 * in: the main thread never waits for a login to end. */
	struct ucaasauth *pending;
};

struct conn {
	int fd;
	uid_t uid;
	gid_t gid;
	gid_t groups[MAX_IDS];
	int n_groups;
	int64_t deadline;
	size_t len;
	char buf[MSG_MAX];
};

static struct served *served;
static size_t n_served;
static struct conn *conns[MAX_CONNS];
static bool journal;

PRINTF(2, 3)
static void log_msg(int level, const char *fmt, ...)
{
	static const char *const names[] = {
		[LOG_ERR] = "error", [LOG_WARNING] = "warning",
		[LOG_INFO] = "info",
	};
	char text[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* journald reads the level from "<N>"; elsewhere, a plain word. */
	if (journal)
		fprintf(stderr, "<%d>%s\n", level, text);
	else
		fprintf(stderr, "ucaas-authd: %s: %s\n", names[level], text);
}

/* The sd_notify protocol, without libsystemd: one datagram. */
static void notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	size_t len;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@') ||
	    (len = strlen(path)) >= sizeof(addr.sun_path))
		return;
	memcpy(addr.sun_path, path, len);
	if (path[0] == '@')
		addr.sun_path[0] = 0; /* abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr,
	       offsetof(struct sockaddr_un, sun_path) + len);
	close(fd);
}

/* allow_users / allow_groups: names or numbers, commas or spaces. */
static int resolve_ids(const char *list, bool users, unsigned *out,
                       size_t *n, const char *profile)
{
	char word[64];

	*n = 0;
	while (list && *list) {
		size_t len;
		char *end;
		unsigned long id;

		list += strspn(list, ", \t");
		len = strcspn(list, ", \t");
		if (len == 0)
			break;
		snprintf(word, sizeof(word), "%.*s", (int)len, list);
		list += len;
		id = strtoul(word, &end, 10);
		if (*end) {
			struct passwd *pw = users ? getpwnam(word) : NULL;
			struct group *gr = users ? NULL : getgrnam(word);
			if (!pw && !gr) {
				log_msg(LOG_ERR, "profile '%s': no %s named '%s'",
				        profile, users ? "user" : "group", word);
				return -1;
			}
			id = pw ? pw->pw_uid : gr->gr_gid;
		}
		if (*n == MAX_IDS) {
			log_msg(LOG_ERR, "profile '%s': more than %d ids",
			        profile, MAX_IDS);
			return -1;
		}
		out[(*n)++] = (unsigned)id;
	}
	return 0;
}

static int resolve_allowed(struct served *s, const struct profile *p)
{
	unsigned uids[MAX_IDS], gids[MAX_IDS];
	size_t nu, ng;

	if (resolve_ids(p->allow_users, true, uids, &nu, p->name) < 0 ||
	    resolve_ids(p->allow_groups, false, gids, &ng, p->name) < 0)
		return -1;
	for (size_t i = 0; i < nu; i++)
		s->uids[i] = uids[i];
	for (size_t i = 0; i < ng; i++)
		s->gids[i] = gids[i];
	s->n_uids = nu;
	s->n_gids = ng;
	return 0;
}

static bool allowed(const struct served *s, const struct conn *c)
{
	if (c->uid == geteuid())
		return true;
	for (size_t i = 0; i < s->n_uids; i++)
		if (c->uid == s->uids[i])
			return true;
	for (size_t i = 0; i < s->n_gids; i++) {
		if (c->gid == s->gids[i])
			return true;
		for (int j = 0; j < c->n_groups; j++)
			if (c->groups[j] == s->gids[i])
				return true;
	}
	return false;
}

static void describe_token(struct served *s, const char *what)
{
	struct refresh_state st;
	struct snapshot snap = {0};
	char tmp[HEADER_MAX + 1];

	if (!segment_read(s->ua->seg, tmp, sizeof(tmp), &snap))
		snap.generation = 0;
	sodium_memzero(tmp, sizeof(tmp));
	cache_refresh_state(s->ua->seg, &st);
	if (st.failures)
		log_msg(LOG_WARNING,
		        "profile '%s': %s failed (%u in a row): %s; next attempt "
		        "in %lld s",
		        s->ua->profile->name, what, st.failures, st.error,
		        (long long)(st.next_attempt_ms - now_ms() + 999) / 1000);
	else
		log_msg(LOG_INFO,
		        "profile '%s': %s, generation %llu, valid %lld s",
		        s->ua->profile->name, what,
		        (unsigned long long)snap.generation,
		        (long long)(snap.expires_ms - now_ms()) / 1000);
}

/* A Basic profile's header never expires: it is published once. */
static void publish_basic(struct served *s)
{
	struct token_times t = {FAR_FUTURE_MS, FAR_FUTURE_MS, FAR_FUTURE_MS, 0};

	if (cache_lock(s->ua->seg, now_ms() + s->ua->wait_ms) == 0) {
		cache_publish(s->ua->seg, s->ua->basic, s->ua->basic_len, &t,
		              "basic");
		cache_unlock(s->ua->seg);
	}
}

/* SIGHUP, with the cache lock held: the new settings and secrets, same
 * segment and token, unless the account behind the token changed. */
static void swap_in(struct served *s, struct ucaasauth *fresh)
{
	struct ucaasauth *ua = s->ua;
	struct config *old_config = ua->config;
	struct secrets *old_secrets = ua->secrets;
	char *old_basic = ua->basic;
	/* The token belongs to the account, not to its password: a new
	 * password is used at the next login, the token stays. */
	bool same = strcmp(ua->profile->api_base, fresh->profile->api_base) == 0 &&
	            strcmp(ua->profile->app_id, fresh->profile->app_id) == 0 &&
	            strcmp(ua->secrets->email, fresh->secrets->email) == 0;

	/* The fresh handle takes the old settings away to be freed; its own
	 * segment was never handed out. The stack stays the one opened at
	 * start (its arguments point into the old configuration): swap the
	 * stacks too. */
	ua->config = fresh->config;
	ua->profile = fresh->profile;
	ua->secrets = fresh->secrets;
	ua->basic = fresh->basic;
	ua->basic_len = fresh->basic_len;
	ua->wait_ms = fresh->wait_ms;
	fresh->config = old_config;
	fresh->secrets = old_secrets;
	fresh->basic = old_basic;
	{
		struct provider *pv = ua->providers;
		size_t n = ua->n_providers;
		ua->providers = fresh->providers;
		ua->n_providers = fresh->n_providers;
		fresh->providers = pv;
		fresh->n_providers = n;
		for (size_t i = 0; i < ua->n_providers; i++)
			ua->providers[i].ua = ua;
		for (size_t i = 0; i < fresh->n_providers; i++)
			fresh->providers[i].ua = fresh;
	}
	if (!same && !ua->basic)
		cache_drop(ua->seg);
	log_msg(LOG_INFO, "profile '%s': reloaded%s", ua->profile->name,
	        ua->basic ? ""
	        : same    ? ", token kept"
	                  : ", another account: new login");
}

static void *refresher(void *arg)
{
	struct served *s = arg;
	struct segment *seg = s->ua->seg;
	char tmp[HEADER_MAX + 1];
	int64_t refresh_at = 0;
	uint64_t planned_for = 0;

	pthread_mutex_lock(&s->mtx);
	while (!s->stop) {
		struct refresh_state st;
		struct ucaasauth *fresh = s->pending;

		if (fresh) {
			s->pending = NULL;
			pthread_mutex_unlock(&s->mtx);
			if (cache_lock(seg, now_ms() + LOCK_WAIT_MS) == 0) {
				swap_in(s, fresh);
				cache_unlock(seg);
			}
			ucaasauth_close(fresh);
			pthread_mutex_lock(&s->mtx);
			continue;
		}
		struct snapshot snap = {0};
		int64_t now = now_ms(), until;
		bool valid, need;
		struct timespec ts;

		if (segment_read(seg, tmp, sizeof(tmp), &snap))
			sodium_memzero(tmp, snap.len);
		valid = snap.len > 0 && now < snap.expires_ms;
		/* Ahead of expiry, at a random point of the first half of the
		 * advisory window: hosts do not refresh in lockstep. */
		if (valid && planned_for != snap.generation) {
			int64_t span = (snap.renew_ms - snap.fresh_ms) / 2;
			refresh_at = snap.fresh_ms +
			             (span > 0 ? randombytes_uniform(span) : 0);
			planned_for = snap.generation;
			atomic_store(&seg->next_refresh_ms, refresh_at);
		}
		/* A request only wakes us: what is needed is read from the
		 * segment, so requests that came during a login are answered
		 * by that login, not by another. */
		need = !valid || now >= refresh_at;
		cache_refresh_state(seg, &st);
		s->wanted = false;
		if (need && now >= st.next_attempt_ms) {
			pthread_mutex_unlock(&s->mtx);
			/* The settings and secrets are swapped by a reload
			 * under this lock: read them only while holding it. */
			if (cache_lock(seg, now + LOCK_WAIT_MS) == 0) {
				refresh_locked(s->ua);
				describe_token(s, "login");
				cache_unlock(seg);
			}
			pthread_mutex_lock(&s->mtx);
			continue;
		}
		until = need ? st.next_attempt_ms : refresh_at;
		if (until > now + HEARTBEAT_MS)
			until = now + HEARTBEAT_MS;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (until - now) / 1000;
		ts.tv_nsec += ((until - now) % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (!s->wanted && !s->stop && !s->pending)
			pthread_cond_timedwait(&s->cond, &s->mtx, &ts);
	}
	pthread_mutex_unlock(&s->mtx);
	return NULL;
}

static void want_refresh(struct served *s)
{
	pthread_mutex_lock(&s->mtx);
	s->wanted = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mtx);
}

static int start_profile(struct served *s, const char *name)
{
	pthread_condattr_t attr;
	int r;

	r = handle_open(&s->ua, name, true);
	if (r < 0) {
		log_msg(LOG_ERR, "%s", ucaasauth_last_error());
		return -1;
	}
	if (resolve_allowed(s, s->ua->profile) < 0)
		return -1;
	snprintf(s->name, sizeof(s->name), "%s", s->ua->profile->name);
	s->provider = s->ua->profile->provider;
	s->n_stack = s->ua->profile->n_stack;
	pthread_mutex_init(&s->mtx, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &attr);
	pthread_condattr_destroy(&attr);
	atomic_store(&s->ua->seg->daemon_pid, (int32_t)getpid());
	atomic_store(&s->ua->seg->heartbeat_ms, now_ms());
	if (s->ua->basic) {
		publish_basic(s);
		return 0;
	}
	if (pthread_create(&s->thread, NULL, refresher, s) != 0) {
		log_msg(LOG_ERR, "profile '%s': cannot start a thread", name);
		return -1;
	}
	s->has_thread = true;
	return 0;
}

static void stop_profile(struct served *s)
{
	if (s->has_thread) {
		pthread_mutex_lock(&s->mtx);
		s->stop = true;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->mtx);
		pthread_join(s->thread, NULL);
		s->has_thread = false;
	}
	ucaasauth_close(s->pending);
	s->pending = NULL;
	if (s->ua) {
		/* Clients still mapping the segment see the daemon gone. */
		atomic_store(&s->ua->seg->daemon_pid, 0);
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->mtx);
	}
	ucaasauth_close(s->ua);
	s->ua = NULL;
}

static void reload_profile(struct served *s)
{
	struct ucaasauth *fresh;
	const char *name = s->name;

	if (handle_open(&fresh, name, true) < 0) {
		log_msg(LOG_ERR, "reload: %s; keeping the previous settings",
		        ucaasauth_last_error());
		return;
	}
	if (fresh->profile->provider != s->provider ||
	    fresh->profile->n_stack != s->n_stack) {
		log_msg(LOG_ERR,
		        "reload: profile '%s' changed its providers; restart "
		        "ucaas-authd for that (keeping the previous settings)",
		        name);
		ucaasauth_close(fresh);
		return;
	}
	if (resolve_allowed(s, fresh->profile) < 0) {
		ucaasauth_close(fresh);
		return;
	}
	if (s->provider == PROVIDER_BASIC) {
		/* No refresher thread, and no login to wait for. */
		if (cache_lock(s->ua->seg, now_ms() + s->ua->wait_ms) == 0) {
			swap_in(s, fresh);
			cache_unlock(s->ua->seg);
		}
		ucaasauth_close(fresh);
		publish_basic(s);
		return;
	}
	pthread_mutex_lock(&s->mtx);
	ucaasauth_close(s->pending); /* an older reload not yet taken */
	s->pending = fresh;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mtx);
}

static struct served *find_served(const char *name)
{
	for (size_t i = 0; name && i < n_served; i++)
		if (strcmp(served[i].name, name) == 0)
			return &served[i];
	return NULL;
}

static void answer(struct conn *c, struct outbuf *out, int fd)
{
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov = {out->buf, out->len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

	message_end(out);
	iov.iov_len = out->len;
	if (fd >= 0) {
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
	/* Small enough for the socket buffer: never blocks. */
	sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void answer_error(struct conn *c, int status, const char *fmt, ...)
	PRINTF(3, 4);
static void answer_error(struct conn *c, int status, const char *fmt, ...)
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
	answer(c, &out, -1);
}

/* Strangers learn nothing, not even which profiles exist. */
static bool allowed_anywhere(const struct conn *c)
{
	for (size_t i = 0; i < n_served; i++)
		if (allowed(&served[i], c))
			return true;
	return false;
}

static void handle_request(struct conn *c, const struct message *m)
{
	const char *command = message_get(m, "command");
	const char *name = message_get(m, "profile");
	struct served *s = find_served(name);
	struct outbuf out = {0};
	struct refresh_state st;
	struct snapshot snap = {0};
	char tmp[HEADER_MAX + 1];
	uint64_t generation, pid;
	int64_t now = now_ms();
	bool valid;

	if (!allowed_anywhere(c)) {
		log_msg(LOG_WARNING,
		        "refused uid %u (gid %u): not in any allow_users or "
		        "allow_groups",
		        (unsigned)c->uid, (unsigned)c->gid);
		return answer_error(c, UCAASAUTH_E_DENIED,
		                    "uid %u is not allowed to use profile '%s'",
		                    (unsigned)c->uid, name ? name : "");
	}
	if (!command)
		return answer_error(c, UCAASAUTH_E_PROTOCOL, "no command");
	if (!s)
		return answer_error(c, UCAASAUTH_E_CONFIG,
		                    "profile '%s' is not served here",
		                    name ? name : "");
	if (!allowed(s, c)) {
		log_msg(LOG_WARNING,
		        "refused uid %u (gid %u) for profile '%s': not in "
		        "allow_users or allow_groups",
		        (unsigned)c->uid, (unsigned)c->gid, name);
		return answer_error(c, UCAASAUTH_E_DENIED,
		                    "uid %u is not allowed to use profile '%s'",
		                    (unsigned)c->uid, name);
	}
	if (!segment_read(s->ua->seg, tmp, sizeof(tmp), &snap))
		snap.len = 0;
	sodium_memzero(tmp, sizeof(tmp));
	valid = snap.len > 0 && now < snap.expires_ms;
	message_add(&out, "status", "ok");
	message_add(&out, "pid", "%d", (int)getpid());
	if (strcmp(command, "attach") == 0) {
		message_add(&out, "generation", "%llu",
		            (unsigned long long)snap.generation);
		return answer(c, &out, s->ua->memfd);
	}
	if (strcmp(command, "refresh") == 0) {
		cache_refresh_state(s->ua->seg, &st);
		if (!valid && st.failures && now < st.next_attempt_ms)
			return answer_error(c, st.last_status, "%s", st.error);
		if (!valid || now >= snap.renew_ms)
			want_refresh(s);
		return answer(c, &out, -1);
	}
	if (strcmp(command, "reject") == 0) {
		if (!message_get_u64(m, "generation", &generation))
			return answer_error(c, UCAASAUTH_E_PROTOCOL,
			                    "reject without a generation");
		/* Generations count per daemon: one from a client still
		 * reading a daemon before us says nothing of our token. */
		if (message_get_u64(m, "pid", &pid) && pid != (uint64_t)getpid())
			return answer(c, &out, -1);
		/* A busy lock means a login is under way: its token replaces
		 * the rejected one anyway. Never wait here. */
		if (generation == snap.generation &&
		    s->provider != PROVIDER_BASIC &&
		    cache_lock(s->ua->seg, 0) == 0) {
			if (atomic_load(&s->ua->seg->generation) == generation)
				cache_drop(s->ua->seg);
			cache_unlock(s->ua->seg);
			want_refresh(s);
		}
		return answer(c, &out, -1);
	}
	answer_error(c, UCAASAUTH_E_PROTOCOL, "unknown command");
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

	n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len,
	         MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		return close_conn(i);
	c->len += n;
	r = message_parse(c->buf, c->len, &m, &used);
	if (r < 0) {
		answer_error(c, UCAASAUTH_E_PROTOCOL, "%s",
		             ucaasauth_last_error());
		return close_conn(i);
	}
	if (r == 0)
		return;
	handle_request(c, &m);
	close_conn(i); /* one request per connection */
}

static void on_accept(int lfd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct conn *c;
	size_t i;
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	for (i = 0; i < MAX_CONNS && conns[i]; i++)
		;
	c = i < MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
	if (!c || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		/* Too many at once: the client is told the connection
		 * closed (UCAASAUTH_E_UNAVAILABLE), and keeps any valid
		 * token it has. */
		free(c);
		close(fd);
		return;
	}
	c->fd = fd;
	c->uid = cred.uid;
	c->gid = cred.gid;
	len = sizeof(c->groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &len) == 0)
		c->n_groups = len / sizeof(gid_t);
	c->deadline = now_ms() + CONN_TIMEOUT_MS;
	conns[i] = c;
}

/* The socket's directory, made with its final mode: 0700, or 0750 for
 * the first of allow_groups. An existing one (systemd's
 * RuntimeDirectory=) must be ours and writable by nobody else. */
static int make_socket_dir(const char *sock)
{
	char dir[PATH_MAX];
	struct stat st;
	gid_t group = (gid_t)-1;
	char *slash;

	snprintf(dir, sizeof(dir), "%s", sock);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir) {
		log_msg(LOG_ERR, "socket %s: needs a directory of its own", sock);
		return -1;
	}
	*slash = 0;
	for (size_t i = 0; i < n_served && group == (gid_t)-1; i++)
		if (served[i].n_gids)
			group = served[i].gids[0];
	/* Made with its final mode whatever the umask (UMask=0077 would
	 * shut the group out); never chmod-ed afterwards. */
	mode_t old = umask(0);
	int made = mkdir(dir, group == (gid_t)-1 ? 0700 : 0750);
	umask(old);
	if (made == 0) {
		if (group != (gid_t)-1 && chown(dir, (uid_t)-1, group) < 0) {
			log_msg(LOG_ERR, "socket directory %s: chown: %s", dir,
			        strerror(errno));
			return -1;
		}
		return 0;
	}
	if (errno != EEXIST || lstat(dir, &st) < 0) {
		log_msg(LOG_ERR, "socket directory %s: %s", dir,
		        strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022)) {
		log_msg(LOG_ERR,
		        "socket directory %s: must be a directory owned by uid "
		        "%u and writable by nobody else (it is mode %04o, uid "
		        "%u)",
		        dir, (unsigned)geteuid(), (unsigned)(st.st_mode & 07777),
		        (unsigned)st.st_uid);
		return -1;
	}
	return 0;
}

static int listen_on(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct stat st;
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		log_msg(LOG_ERR, "socket %s: path too long", path);
		return -1;
	}
	memcpy(addr.sun_path, path, strlen(path));
	if (make_socket_dir(path) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* A socket left by a daemon that died is replaced; one a live daemon
	 * answers on is not ours to take; anything else is refused. */
	if (lstat(path, &st) == 0) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = probe >= 0 && connect(probe, (struct sockaddr *)&addr,
		                                  sizeof(addr)) == 0;
		if (probe >= 0)
			close(probe);
		if (live || !S_ISSOCK(st.st_mode) || unlink(path) < 0) {
			log_msg(LOG_ERR, "socket %s: %s", path,
			        live ? "another ucaas-authd is serving it"
			             : "exists and is not a socket");
			close(fd);
			return -1;
		}
	}
	/* The directory keeps strangers out; every peer is checked anyway. */
	old = umask(0111);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(fd, 128) < 0) {
		umask(old);
		log_msg(LOG_ERR, "socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	return fd;
}

static int serve(int lfd, int sigfd)
{
	struct pollfd pfd[MAX_CONNS + 2];
	size_t map[MAX_CONNS];
	int64_t next_beat = 0;

	for (;;) {
		int64_t now = now_ms(), wait = next_beat - now;
		size_t n = 2;
		struct signalfd_siginfo si;

		if (wait <= 0) {
			for (size_t i = 0; i < n_served; i++)
				atomic_store(&served[i].ua->seg->heartbeat_ms,
				             now);
			next_beat = now + HEARTBEAT_MS;
			wait = HEARTBEAT_MS;
		}
		pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
		pfd[1] = (struct pollfd){.fd = sigfd, .events = POLLIN};
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
			map[n - 2] = i;
			n++;
		}
		if (poll(pfd, n, (int)wait) < 0 && errno != EINTR)
			return -1;
		for (size_t k = 2; k < n; k++)
			if (pfd[k].revents && conns[map[k - 2]])
				on_readable(map[k - 2]);
		if (pfd[0].revents & POLLIN)
			on_accept(lfd);
		if ((pfd[1].revents & POLLIN) &&
		    read(sigfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo != SIGHUP)
				return 0;
			notify("RELOADING=1");
			log_msg(LOG_INFO, "SIGHUP: reloading");
			for (size_t i = 0; i < n_served; i++)
				reload_profile(&served[i]);
			notify("READY=1");
		}
	}
}

static const char usage_text[] =
	"usage: ucaas-authd [--config FILE] [PROFILE...]\n"
	"Serves the named profiles, or every profile with cache = daemon.\n"
	"See ucaas-authd(8).\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	struct config *config = NULL;
	char path[PATH_MAX];
	const char *sock = NULL;
	sigset_t mask;
	int c, lfd = -1, sigfd = -1, status = 1;

	while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			setenv("UCAASAUTH_CONFIG", optarg, 1);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("ucaas-authd %s\n", UCAASAUTH_VERSION);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	journal = getenv("JOURNAL_STREAM") != NULL;
	if (sodium_init() < 0)
		return 1;
	/* Signals arrive through signalfd in the main loop, never in the
	 * refresher threads (which inherit this mask). */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (config_path(path, sizeof(path)) < 0 ||
	    config_load(path, &config) < 0) {
		log_msg(LOG_ERR, "%s", ucaasauth_last_error());
		return 1;
	}
	served = calloc(config->n_profiles, sizeof(*served));
	if (!served)
		goto out;
	for (int a = optind; a < argc; a++) {
		const struct profile *p;
		if (config_find(config, argv[a], &p) < 0) {
			log_msg(LOG_ERR, "%s", ucaasauth_last_error());
			goto out;
		}
	}
	for (size_t i = 0; i < config->n_profiles; i++) {
		const struct profile *p = &config->profiles[i];
		bool named = optind >= argc;

		for (int a = optind; a < argc; a++)
			named = named || strcmp(argv[a], p->name) == 0;
		if (!named || (optind >= argc && p->cache != CACHE_DAEMON))
			continue;
		if (sock && strcmp(sock, p->socket) != 0) {
			log_msg(LOG_ERR,
			        "profiles name different sockets (%s, %s): run "
			        "one daemon per socket",
			        sock, p->socket);
			goto out;
		}
		sock = p->socket;
		if (start_profile(&served[n_served++], p->name) < 0)
			goto out;
		log_msg(LOG_INFO, "serving profile '%s' (%s provider)", p->name,
		        provider_name(p->provider));
	}
	if (n_served == 0) {
		log_msg(LOG_ERR, "%s: no profile to serve (cache = daemon)",
		        path);
		goto out;
	}
	lfd = listen_on(sock);
	sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (lfd < 0 || sigfd < 0)
		goto out;
	log_msg(LOG_INFO, "listening on %s", sock);
	notify("READY=1");
	status = serve(lfd, sigfd) < 0 ? 1 : 0;
	notify("STOPPING=1");
	log_msg(LOG_INFO, "stopping");
out:
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (conns[i])
			close_conn(i);
	for (size_t i = 0; i < n_served; i++)
		stop_profile(&served[i]);
	free(served);
	if (lfd >= 0) {
		unlink(sock);
		close(lfd);
	}
	if (sigfd >= 0)
		close(sigfd);
	config_free(config);
	return status;
}

/*
 * ucaas-authd, split by role as seatd is: main.c (options, signals, log,
 * sd_notify), server.c (the socket, accept, the peer check, requests),
 * refresher.c (a thread per profile, and reload), allow.c (who may use a
 * profile).
 */
#ifndef UCAAS_AUTHD_H
#define UCAAS_AUTHD_H

#include <pthread.h>

#include "internal.h"

#define MAX_IDS 64

enum {
	LOG_ERR = 3,
	LOG_WARNING = 4,
	LOG_INFO = 6
};

/* main.c */
void log_msg(int level, const char *fmt, ...) PRINTF(2, 3);
/* The sd_notify protocol, without libsystemd. */
void notify(const char *state);
/* Called by the poll loop: a signal (false: stop), and a refresher that
 * finished swapping a reload in. */
bool on_signal(int signo);
void on_reloaded(void);

/* allow.c: allow_users and allow_groups, resolved to ids. */
struct allow {
	uid_t uids[MAX_IDS];
	gid_t gids[MAX_IDS];
	size_t n_uids, n_gids;
};

/* A peer, as the kernel saw it at connect(). */
struct peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	gid_t groups[MAX_IDS];
	int n_groups;
};

int allow_resolve(const struct profile *p, struct allow *ret);
/* The daemon's own uid, a uid listed, or a group listed. */
bool allow_peer(const struct allow *a, const struct peer *peer);
/* Whether `now` leaves out anyone `before` let in. */
bool allow_narrower(const struct allow *before, const struct allow *now);

/* refresher.c: one served profile. */
struct served {
	/*
	 * The profile's handle, opened with `serve`. Its settings, secrets
	 * and providers are the refresher's alone; its segment and memfd are
	 * changed (handle_swap) only with `mtx` held, and the main thread
	 * reaches them only so (handle_segment).
	 */
	struct ucaasauth *ua;
	/* The main thread's own: fixed at start, or set by its reload. */
	char name[PROFILE_NAME_MAX + 1];
	enum provider_kind provider;
	size_t n_stack;
	int64_t reject_min_age_ms;
	struct allow allow;

	pthread_t thread;
	bool has_thread, ready;
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	bool wanted, stop;
	/* A reloaded handle for the refresher to swap in between logins,
	 * and whether it must move to a new segment. */
	struct ucaasauth *pending;
	bool pending_move;
};

extern struct served *served;
extern size_t n_served;
/* eventfd: written by a refresher when it has swapped a reload in. */
extern int reload_event;

int profile_start(struct served *s, const char *name);
void profile_stop(struct served *s);
/* SIGHUP: the new allow lists apply at once; the rest is swapped in by
 * the refresher (here for a Basic profile, which has none). */
void profile_reload(struct served *s);
/* No reload waiting for the refresher. */
bool profile_reloaded(struct served *s);
/* The heartbeat, and a Basic header's renewal. */
void profile_beat(struct served *s, int64_t now);
/* Wakes the refresher; needs s->mtx. */
void profile_wake(struct served *s);

/* server.c */
int server_listen(const char *path);
/* The poll loop: 0 when a signal says stop, -1 when poll fails. */
int server_run(int lfd, int sigfd);
void server_close(void);

#endif

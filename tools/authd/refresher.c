/*
 * One thread per served profile logs in for it, ahead of expiry, and
 * swaps a reload in between two logins: the main thread never waits for a
 * login. A Basic profile has no thread: its header is published at start
 * and renewed by the heartbeat.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <sodium.h>

#include "authd.h"
#include "cache.h"

#define HEARTBEAT_MS 1000
/* A Basic header is published again this long before its life ends. */
#define BASIC_RENEW_MS (3600 * 1000LL)

static void describe_token(struct served *s, const struct segment *seg,
                           const char *what)
{
	struct refresh_state st;
	struct snapshot snap = {0};

	if (!segment_read(seg, NULL, 0, &snap))
		snap.generation = 0;
	cache_refresh_state(seg, now_ms(), &st);
	if (st.failures)
		log_msg(LOG_WARNING,
		        "profile '%s': %s failed (%u in a row): %s; next attempt "
		        "in %lld s",
		        s->name, what, st.failures, st.error,
		        (long long)(st.next_attempt_ms - now_ms() + 999) /
		                1000);
	else
		log_msg(LOG_INFO,
		        "profile '%s': %s, generation %llu, valid %lld s",
		        s->name, what, (unsigned long long)snap.generation,
		        (long long)(snap.expires_ms - now_ms()) / 1000);
}

static void log_swap(const struct served *s, int swapped)
{
	log_msg(LOG_INFO, "profile '%s': reloaded%s", s->name,
	        swapped & SWAP_DROPPED
	                ? ", another account: a new segment, a new login"
	        : swapped & SWAP_MOVED
	                ? "; someone left the allow lists: a new segment, the "
	                  "old one wiped (allowed clients attach again)"
	        : s->provider == PROVIDER_BASIC ? ""
	                                        : ", token kept");
}

/* Needs s->mtx: the handle's segment may move under a reload. */
static void swap_in(struct served *s, struct ucaasauth *fresh, bool move)
{
	int swapped = handle_swap(s->ua, fresh, move);
	uint64_t one = 1;

	log_swap(s, swapped);
	if (s->provider == PROVIDER_BASIC)
		handle_publish_basic(s->ua);
	/* The main loop tells systemd READY=1 once every profile is done. */
	if (write(reload_event, &one, sizeof(one)) < 0)
		log_msg(LOG_WARNING, "reload: cannot wake the main loop");
}

static struct timespec deadline_ts(int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

static void *refresher(void *arg)
{
	struct served *s = arg;
	int64_t refresh_at = 0;
	uint64_t planned_for = UINT64_MAX;

	pthread_mutex_lock(&s->mtx);
	while (!s->stop) {
		struct segment *seg = handle_segment(s->ua, NULL);
		struct ucaasauth *fresh = s->pending;
		struct refresh_state st;
		struct snapshot snap = {0};
		int64_t now = now_ms(), until;
		struct timespec ts;
		bool valid, need;

		if (fresh) {
			s->pending = NULL;
			swap_in(s, fresh, s->pending_move);
			s->pending_move = false;
			planned_for = UINT64_MAX; /* maybe another segment */
			pthread_mutex_unlock(&s->mtx);
			/* Unmaps a segment withdrawn: no one holds it now. */
			ucaasauth_close(fresh);
			pthread_mutex_lock(&s->mtx);
			continue;
		}
		valid = token_view(seg, NULL, 0, &snap);
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
		 * by that login, not by another. A token moved to its
		 * mandatory window (rejected young) is needed too. */
		need = !valid || now >= refresh_at || now >= snap.renew_ms;
		cache_refresh_state(seg, now, &st);
		s->wanted = false;
		if (need && now >= st.next_attempt_ms) {
			pthread_mutex_unlock(&s->mtx);
			/* Without the mutex: the handle's settings are this
			 * thread's, and its segment moves only here. */
			if (refresh_now(s->ua) == 0)
				describe_token(s, seg, "login");
			pthread_mutex_lock(&s->mtx);
			continue;
		}
		until = need ? st.next_attempt_ms : refresh_at;
		if (until > now + HEARTBEAT_MS)
			until = now + HEARTBEAT_MS;
		ts = deadline_ts(until - now);
		if (!s->wanted && !s->stop && !s->pending)
			pthread_cond_timedwait(&s->cond, &s->mtx, &ts);
	}
	pthread_mutex_unlock(&s->mtx);
	return NULL;
}

void profile_wake(struct served *s)
{
	s->wanted = true;
	pthread_cond_signal(&s->cond);
}

int profile_start(struct served *s, const char *name)
{
	pthread_condattr_t attr;
	const struct profile *p;
	struct segment *seg;

	pthread_mutex_init(&s->mtx, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &attr);
	pthread_condattr_destroy(&attr);
	s->ready = true;
	snprintf(s->name, sizeof(s->name), "%s", name);
	if (handle_open(&s->ua, name, true) < 0) {
		log_msg(LOG_ERR, "%s", ucaasauth_last_error());
		return -1;
	}
	p = handle_profile(s->ua);
	if (allow_resolve(p, &s->allow) < 0)
		return -1;
	s->provider = p->provider;
	s->n_stack = p->n_stack;
	s->reject_min_age_ms = p->reject_min_age * 1000LL;
	seg = handle_segment(s->ua, NULL);
	atomic_store(&seg->daemon_pid, (int32_t)getpid());
	atomic_store(&seg->heartbeat_ms, now_ms());
	if (s->provider == PROVIDER_BASIC)
		return handle_publish_basic(s->ua) == 0 ? 0 : -1;
	if (pthread_create(&s->thread, NULL, refresher, s) != 0) {
		log_msg(LOG_ERR, "profile '%s': cannot start a thread", name);
		return -1;
	}
	s->has_thread = true;
	return 0;
}

void profile_stop(struct served *s)
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
	/* Clients still mapping the segment see the daemon gone. */
	if (s->ua)
		atomic_store(&handle_segment(s->ua, NULL)->daemon_pid, 0);
	ucaasauth_close(s->ua);
	s->ua = NULL;
	if (s->ready) {
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->mtx);
		s->ready = false;
	}
}

void profile_reload(struct served *s)
{
	struct ucaasauth *fresh;
	const struct profile *p;
	struct allow allow;
	bool move;

	if (handle_open(&fresh, s->name, true) < 0) {
		log_msg(LOG_ERR, "reload: %s; keeping the previous settings",
		        ucaasauth_last_error());
		return;
	}
	p = handle_profile(fresh);
	if (p->provider != s->provider || p->n_stack != s->n_stack) {
		log_msg(LOG_ERR,
		        "reload: profile '%s' changed its providers; restart "
		        "ucaas-authd for that (keeping the previous settings)",
		        s->name);
		ucaasauth_close(fresh);
		return;
	}
	if (allow_resolve(p, &allow) < 0) {
		ucaasauth_close(fresh);
		return;
	}
	/* New requests meet the new lists at once; clients that attached
	 * under the old ones lose their segment with the swap. */
	move = allow_narrower(&s->allow, &allow);
	s->allow = allow;
	s->reject_min_age_ms = p->reject_min_age * 1000LL;
	pthread_mutex_lock(&s->mtx);
	if (!s->has_thread) {
		swap_in(s, fresh, move);
		pthread_mutex_unlock(&s->mtx);
		ucaasauth_close(fresh);
		return;
	}
	ucaasauth_close(s->pending); /* an older reload not yet taken */
	s->pending = fresh;
	s->pending_move = s->pending_move || move;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mtx);
}

bool profile_reloaded(struct served *s)
{
	bool done;

	pthread_mutex_lock(&s->mtx);
	done = s->pending == NULL;
	pthread_mutex_unlock(&s->mtx);
	return done;
}

void profile_beat(struct served *s, int64_t now)
{
	struct segment *seg;
	struct snapshot snap;

	pthread_mutex_lock(&s->mtx);
	seg = handle_segment(s->ua, NULL);
	atomic_store(&seg->heartbeat_ms, now);
	if (s->provider == PROVIDER_BASIC &&
	    (!segment_read(seg, NULL, 0, &snap) ||
	     now > snap.fresh_ms - BASIC_RENEW_MS))
		handle_publish_basic(s->ua);
	pthread_mutex_unlock(&s->mtx);
}

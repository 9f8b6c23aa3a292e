/*
 * ucaasauth_header() and ucaasauth_reject(): the hot path, and what
 * happens when the token is old, missing or rejected.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cache.h"
#include "stack.h"

/* How long a refresh may hold the lease: every provider of the stack at
 * its timeout, and a second each for what follows the answer. */
static int64_t lease_ms(const struct ucaasauth *ua)
{
	const struct profile *p = ua->profile;
	int64_t n = p->n_stack > 0 ? (int64_t)p->n_stack : 1;

	return n * (p->timeout + 1) * 1000LL;
}

int refresh(struct ucaasauth *ua, struct segment *seg,
            const struct lease *lease)
{
	char header[HEADER_MAX + 1];
	const struct profile *p = ua->profile;
	int64_t t0 = now_ms(), life, ahead, margin, now;
	time_t real0 = time(NULL);
	struct token_times times;
	long ttl = 0;
	size_t len = 0;
	int who = 0, r, failed = 0;

	r = stack_fetch(ua, header, sizeof(header), &len, &ttl, &who);
	if (r < 0) {
		cache_lease_fail(seg, lease, r, ucaasauth_last_error());
		goto out;
	}
	/* A header without a lifetime (Basic, some modules) lives for
	 * token_ttl, then the stack runs again. */
	if (ttl == 0)
		ttl = p->token_ttl;
	/* A server that grants less than token_ttl shrinks the windows in
	 * proportion: with the full windows, every call would fall in the
	 * mandatory one and log in again. */
	life = ttl * 1000LL;
	ahead = p->refresh_ahead * 1000LL;
	margin = p->expiry_margin * 1000LL;
	if (ttl < p->token_ttl) {
		ahead = ahead * ttl / p->token_ttl;
		margin = margin * ttl / p->token_ttl;
	}
	/* The lifetime counts from before the request was sent: the server
	 * started counting after that. */
	times.issued_ms = t0;
	times.expires_ms = t0 + life;
	times.fresh_ms = times.expires_ms - ahead;
	times.renew_ms = times.expires_ms - margin;
	times.expires_real = real0 + ttl;
	/* A token that arrives with less life than its mandatory window (a
	 * slow answer, a tiny grant) is a failed refresh for the backoff:
	 * served while it lasts, fetched again once per backoff step. */
	now = now_ms();
	if (now >= times.renew_ms)
		failed = fail(UCAASAUTH_E_UNAVAILABLE,
		              "profile '%s': provider '%s' gave a token of %ld "
		              "s that arrived after %lld ms, inside its expiry "
		              "margin",
		              p->name, p->stack[who].name, ttl,
		              (long long)(now - t0));
	cache_lease_publish(seg, lease, header, len, &times, p->stack[who].name,
	                    failed, failed ? ucaasauth_last_error() : NULL);
	r = failed;
out:
	sodium_memzero(header, sizeof(header));
	return r;
}

int refresh_now(struct ucaasauth *ua)
{
	struct lease lease;
	int r = cache_lease_take(ua->seg, atomic_load(&ua->seg->generation),
	                         lease_ms(ua), &lease);

	return r == 0 ? refresh(ua, ua->seg, &lease) : r;
}

/* This process forked since it last refreshed a `cache = process`
 * segment: the child's copy is its own, its lock and lease too. */
static void after_fork(struct ucaasauth *ua)
{
	pid_t pid = getpid();

	if (ua->profile->cache != CACHE_PROCESS || atomic_load(&ua->pid) == pid)
		return;
	pthread_mutex_lock(&ua->fork_lock);
	if (atomic_load(&ua->pid) != pid) {
		cache_after_fork(ua->seg);
		atomic_store(&ua->pid, pid);
	}
	pthread_mutex_unlock(&ua->fork_lock);
}

/* The segment could not be locked: rebuilt, or moved to the one another
 * process rebuilt. Costs the token, never the host. */
static int unusable(struct ucaasauth *ua, struct segment *seg, int r)
{
	if (r != UCAASAUTH_E_CACHE)
		return r;
	return handle_move(ua, seg);
}

/* Everything but a fresh token: the windows, the lease and the backoff. */
static int header_slow(struct ucaasauth *ua, char *buf, size_t size,
                       size_t *ret_len)
{
	char header[HEADER_MAX + 1];
	int64_t deadline = now_ms() + ua->wait_ms;
	struct refresh_state st;
	struct snapshot snap;
	struct lease lease;
	bool refreshed = false;
	int r, fetched = 0;

	after_fork(ua);
	for (;;) {
		struct segment *seg = ua->seg;
		uint32_t seen = atomic_load(&seg->wake);
		int64_t now = now_ms();
		bool valid;

		if (cache_retired(seg)) {
			/* Flushed or rebuilt: what we fetched went with the
			 * old segment. Once more on the new one. */
			r = handle_move(ua, seg);
			if (r < 0)
				goto out;
			refreshed = false;
			continue;
		}
		valid = token_view(seg, header, sizeof(header), &snap);
		if (snap.seq & 1) {
			/* A writer died mid-write: the next lock holder
			 * repairs the sequence. */
			r = cache_lock(seg, -1);
			if (r == 0)
				cache_unlock(seg);
			r = unusable(ua, seg, r);
			if (r < 0 && now >= deadline)
				goto out;
			continue;
		}
		/* Fresh, or fetched by this very call (a server that grants
		 * less than the windows must not make us log in again). */
		if (valid && (refreshed || now < snap.fresh_ms))
			break;
		cache_refresh_state(seg, now, &st);
		if (valid && now < snap.renew_ms) {
			/* Advisory: one caller on the host refreshes, the
			 * others keep the valid token without waiting. */
			if (now < st.next_attempt_ms)
				break;
			r = cache_lease_take(seg, snap.generation, lease_ms(ua),
			                     &lease);
			if (r != 0) {
				unusable(ua, seg, r);
				break;
			}
			refresh(ua, seg, &lease);
			refreshed = true;
			continue;
		}
		if (now < st.next_attempt_ms) {
			/* Backing off after a failed refresh: what is still
			 * valid is served, else the recorded failure. */
			if (valid)
				break;
			r = fail(st.last_status,
			         "%s (next login attempt in %lld s)", st.error,
			         (long long)((st.next_attempt_ms - now + 999) /
			                     1000));
			goto out;
		}
		if (refreshed) {
			/* Ours failed and left no record (the segment moved
			 * under us): its status, not another login. */
			if (valid)
				break;
			r = fetched < 0 ? fetched : UCAASAUTH_E_UNAVAILABLE;
			if (fetched >= 0)
				fail(r, "profile '%s': no token after a login",
				     ua->profile->name);
			goto out;
		}
		if (now >= deadline) {
			if (valid)
				break;
			r = fail(UCAASAUTH_E_TIMEOUT,
			         "profile '%s': waited %lld s for another "
			         "process's login",
			         ua->profile->name,
			         (long long)ua->wait_ms / 1000);
			goto out;
		}
		/* Mandatory: one caller takes the lease and logs in; the
		 * others sleep until it publishes, or its lease runs out. */
		r = cache_lease_take(seg, snap.generation, lease_ms(ua),
		                     &lease);
		if (r == 1) {
			cache_wait(seg, seen, deadline);
			continue;
		}
		if (r < 0) {
			r = unusable(ua, seg, r);
			if (r < 0)
				goto out;
			continue;
		}
		fetched = refresh(ua, seg, &lease);
		refreshed = true;
	}
	/* Valid at the moment of return, not only when it was read. */
	if (now_ms() >= snap.expires_ms) {
		r = fail(UCAASAUTH_E_UNAVAILABLE,
		         "profile '%s': the token expired while it was being "
		         "fetched",
		         ua->profile->name);
		goto out;
	}
	r = copy_out(header, snap.len, buf, size, ret_len);
out:
	sodium_memzero(header, sizeof(header));
	return r;
}

EXPORT int ucaasauth_header(struct ucaasauth *ua, char *buf, size_t size,
                            size_t *ret_len)
{
	const struct segment *view;
	struct snapshot snap;
	int r;

	if (!ua || !ret_len || (!buf && size))
		return fail(UCAASAUTH_E_INVALID,
		            "ucaasauth_header: NULL handle, length or buffer");
	if (ua->basic)
		return copy_out(ua->basic, ua->basic_len, buf, size, ret_len);
	/* The hot path: a fresh token, copied out without a lock, a system
	 * call or an allocation. */
	view = atomic_load_explicit(&ua->view, memory_order_acquire);
	if (view && segment_read(view, buf, size, &snap) && snap.len > 0) {
		int64_t now = now_ms();

		if (snap.issued_ms > now || now >= snap.fresh_ms)
			goto slow;
		if (snap.len >= size)
			return fail_too_small(snap.len, ret_len);
		buf[snap.len] = 0;
		*ret_len = snap.len;
		return UCAASAUTH_OK;
	}
slow:
	r = ua->seg ? header_slow(ua, buf, size, ret_len)
	            : daemon_header(ua, buf, size, ret_len);
	/* The hot path may have copied an old header before finding it
	 * stale: a caller that ignores the status must not send it. */
	if (r < 0 && r != UCAASAUTH_E_TOOSMALL && size > 0)
		buf[0] = 0;
	return r;
}

EXPORT int ucaasauth_reject(struct ucaasauth *ua, const char *header)
{
	char current[HEADER_MAX + 1];
	struct segment *seg;
	struct snapshot snap;
	size_t len;
	int r = UCAASAUTH_OK;

	if (!ua || !header)
		return fail(UCAASAUTH_E_INVALID,
		            "ucaasauth_reject: NULL handle or header");
	if (ua->basic)
		return UCAASAUTH_OK; /* nothing cached to drop */
	len = strnlen(header, HEADER_MAX + 1);
	if (!atomic_load(&ua->view) ||
	    !segment_read(atomic_load(&ua->view), current, sizeof(current),
	                  &snap) ||
	    snap.len != len || sodium_memcmp(current, header, len) != 0)
		goto out; /* not the current token: already replaced */
	if (!ua->seg) {
		r = daemon_reject(ua, snap.generation);
		goto out;
	}
	after_fork(ua);
	seg = ua->seg;
	r = cache_lock(seg, -1);
	if (r < 0) {
		/* Rebuilt: the rejected token is gone with the old one. */
		r = unusable(ua, seg, r);
		goto out;
	}
	/* Dropped once, however many processes saw the same 401; a token
	 * younger than reject_min_age is replaced once per backoff step. */
	cache_reject(seg, snap.generation,
	             ua->profile->reject_min_age * 1000LL);
	cache_unlock(seg);
out:
	sodium_memzero(current, sizeof(current));
	return r;
}

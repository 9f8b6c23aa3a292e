/*
 * ucaasauth_header() and ucaasauth_reject(): the hot path, and what
 * happens when the token is old, missing or rejected.
 */
#include <stdio.h>
#include <time.h>

#include <sodium.h>

#include "cache.h"
#include "stack.h"

static int too_small(size_t len, size_t *ret_len)
{
	*ret_len = len;
	return fail(UCAASAUTH_E_TOOSMALL,
	            "the header is %zu bytes, the buffer holds less (%zu "
	            "bytes are needed with the NUL)",
	            len, len + 1);
}

int copy_out(const char *header, size_t len, char *buf, size_t size,
                    size_t *ret_len)
{
	if (len >= size)
		return too_small(len, ret_len);
	memcpy(buf, header, len);
	buf[len] = 0;
	*ret_len = len;
	return UCAASAUTH_OK;
}

int refresh_locked(struct ucaasauth *ua)
{
	char header[HEADER_MAX + 1];
	const struct profile *p = ua->profile;
	int64_t t0 = now_ms(), life, ahead, margin;
	time_t real0 = time(NULL);
	struct token_times times;
	long ttl = 0;
	size_t len = 0;
	int who = 0, r;

	r = stack_fetch(ua, header, sizeof(header), &len, &ttl, &who);
	if (r < 0) {
		cache_record_failure(ua->seg, r, ucaasauth_last_error());
	} else {
		/* A header without a lifetime (Basic, some modules) lives for
		 * token_ttl, then the stack runs again. */
		if (ttl == 0)
			ttl = p->token_ttl;
		/* A server that grants less than token_ttl shrinks the windows
		 * in proportion: with the full windows, every call would fall
		 * in the mandatory one and log in again. */
		life = ttl * 1000LL;
		ahead = p->refresh_ahead * 1000LL;
		margin = p->expiry_margin * 1000LL;
		if (ttl < p->token_ttl) {
			ahead = ahead * ttl / p->token_ttl;
			margin = margin * ttl / p->token_ttl;
		}
		/* The lifetime counts from before the request was sent. */
		times.expires_ms = t0 + life;
		times.fresh_ms = times.expires_ms - ahead;
		times.renew_ms = times.expires_ms - margin;
		times.expires_real = real0 + ttl;
		cache_publish(ua->seg, header, len, &times,
		              p->stack[who].name);
	}
	sodium_memzero(header, sizeof(header));
	return r;
}

/* Everything but a fresh token: the windows, the lock and the backoff. */
static int header_slow(struct ucaasauth *ua, char *buf, size_t size,
                       size_t *ret_len)
{
	char header[HEADER_MAX + 1];
	int64_t deadline = now_ms() + ua->wait_ms;
	struct refresh_state st;
	struct snapshot snap;
	bool refreshed = false;
	int r;

	for (;;) {
		int64_t now = now_ms();
		bool valid = false;
		uint64_t seen;

		if (segment_read(ua->seg, header, sizeof(header), &snap))
			valid = snap.len > 0 && now < snap.expires_ms;
		else
			snap.seq = 1; /* odd: never equal to a settled seq */
		/* Fresh, or fetched by this very call (a server that grants
		 * less than the windows must not make us log in again). */
		if (valid && (refreshed || now < snap.fresh_ms))
			break;
		cache_refresh_state(ua->seg, &st);
		if (valid && now < snap.renew_ms) {
			/* Advisory: one caller on the host refreshes, the
			 * others keep the valid token without waiting. */
			if (now < st.next_attempt_ms ||
			    cache_lock(ua->seg, 0) != 0)
				break;
			seen = snap.seq;
			if (segment_read(ua->seg, header, sizeof(header),
			                 &snap) &&
			    snap.seq == seen)
				refreshed = refresh_locked(ua) == 0;
			cache_unlock(ua->seg);
			continue;
		}
		if (now < st.next_attempt_ms) {
			/* Backing off after a failed login: what is still
			 * valid is served, else the recorded failure. */
			if (valid)
				break;
			r = fail(st.last_status,
			         "%s (next login attempt in %lld s)", st.error,
			         (long long)((st.next_attempt_ms - now + 999) /
			                     1000));
			goto out;
		}
		/* Mandatory: queue on the lock, bounded. */
		seen = snap.seq;
		r = cache_lock(ua->seg, deadline);
		if (r < 0) {
			if (valid)
				break;
			if (r == UCAASAUTH_E_TIMEOUT)
				r = fail(r,
				         "profile '%s': waited %lld s for another "
				         "process's login",
				         ua->profile->name,
				         (long long)ua->wait_ms / 1000);
			goto out;
		}
		/* The first of the queued callers logs in; the ones behind it
		 * find the segment changed and take its outcome. */
		if (!segment_read(ua->seg, header, sizeof(header), &snap) ||
		    snap.seq != seen) {
			cache_unlock(ua->seg);
			continue;
		}
		r = refresh_locked(ua);
		cache_unlock(ua->seg);
		if (r < 0) {
			if (valid)
				break;
			goto out;
		}
		refreshed = true;
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
	if (view && segment_read(view, buf, size, &snap) && snap.len > 0 &&
	    now_ms() < snap.fresh_ms) {
		if (snap.len >= size)
			return too_small(snap.len, ret_len);
		buf[snap.len] = 0;
		*ret_len = snap.len;
		return UCAASAUTH_OK;
	}
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
	r = cache_lock(ua->seg, now_ms() + ua->wait_ms);
	if (r < 0)
		goto out;
	/* Still the same generation under the lock: drop it once, however
	 * many processes saw the same 401. */
	if (atomic_load(&ua->seg->generation) == snap.generation)
		cache_drop(ua->seg);
	cache_unlock(ua->seg);
out:
	sodium_memzero(current, sizeof(current));
	return r;
}

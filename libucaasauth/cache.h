/*
 * The shared token cache: the layout of the segment, and the seqlock that
 * lets readers copy a token out without taking a lock or writing a byte of
 * shared memory.
 */
#ifndef UCAASAUTH_CACHE_H
#define UCAASAUTH_CACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "internal.h"

#define SEGMENT_MAGIC 0x53414355u /* "UCAS" */
#define SEGMENT_VERSION 4u
#define SEGMENT_SIZE 4096u
#define ERROR_TEXT_MAX 256
#define PROVIDER_NAME_MAX 72
#define TOKEN_PREFIX "Authorization: Token "
#define HEADER_MAX (sizeof(TOKEN_PREFIX) - 1 + TOKEN_MAX)
#define HEADER_WORDS ((HEADER_MAX + 7) / 8)
/* The longest life any token is given (stack.c caps lifetimes so);
 * the bound every deadline read from a segment is held to. */
#define LIFE_MAX_MS (86400 * 1000LL)
/* Monotonic and wall clocks that disagree by more than this about a
 * token's age: a writer in another time namespace, or a suspend. */
#define CLOCK_SKEW_MS 5000
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS (300 * 1000)

enum segment_state {
	SEGMENT_EMPTY,
	SEGMENT_INITIALISING,
	SEGMENT_READY,
	SEGMENT_RETIRED, /* replaced by a rebuilt one: reopen */
};

/*
 * Everything from `seq` to `wake` is written only by the holder of `lock`,
 * between an increment of `seq` to an odd value and one back to even.
 * Readers copy what they need and keep it only if `seq` was even and
 * unchanged across the copy; then they validate their private copy, since
 * a stray write changes bytes without touching `seq`. Fields are atomics
 * read and written relaxed: the seqlock gives the ordering, the atomics
 * keep the compiler (and ThreadSanitizer) honest.
 *
 * `lock` is held for microseconds, never across I/O: a login runs under
 * the refresh lease, a few fields taken and given back under the lock.
 */
struct segment {
	uint32_t magic;
	uint32_t version;
	uint32_t size;
	_Atomic uint32_t state;
	uint64_t nonce; /* random, per build: tells a rebuilt file apart */
	pthread_mutex_t lock; /* robust, process-shared: writers only */

	/* Read by every caller; written once per refresh. */
	_Alignas(64) _Atomic uint64_t seq;
	_Atomic uint64_t generation; /* bumped by every publish and drop */
	/* CLOCK_MONOTONIC_COARSE milliseconds, all 0 without a token. */
	_Atomic int64_t issued_ms;      /* published; then fresh */
	_Atomic int64_t issued_real_ms; /* the same, CLOCK_REALTIME */
	_Atomic int64_t fresh_ms;       /* then the advisory window */
	_Atomic int64_t renew_ms;       /* then the mandatory window */
	_Atomic int64_t expires_ms;     /* then expired */
	_Atomic uint32_t len;           /* header length, 0: no token */
	_Atomic uint64_t header[HEADER_WORDS];

	/* The refresh state every process on the host respects. */
	_Alignas(64) _Atomic int64_t expires_real; /* Unix time, for people */
	_Atomic int64_t next_attempt_ms;           /* backoff deadline */
	_Atomic int32_t last_status;
	_Atomic uint32_t failures;
	_Atomic uint64_t logins;
	_Atomic int64_t last_login_real;
	_Atomic uint64_t error[ERROR_TEXT_MAX / 8];
	_Atomic uint64_t answered_by[PROVIDER_NAME_MAX / 8]; /* a name */
	/* Rejections of tokens younger than reject_min_age, in a row, and
	 * the generation of the last one rejected so. */
	_Atomic uint32_t young_rejects;
	_Atomic uint64_t rejected_generation;

	/* The refresh lease: taken and given back under `lock`, outside the
	 * seqlock (readers never look at it). */
	_Alignas(64) _Atomic int32_t lease_pid; /* 0: free */
	_Atomic int64_t lease_deadline_ms;      /* then it may be taken over */
	_Atomic uint64_t lease_id;              /* bumped by every take */
	_Atomic uint64_t lease_generation; /* what the refresh started from */

	/* Bumped after every change above, for futex waiters (waiters on a
	 * login, and daemon clients, who cannot take the lock of a read-only
	 * mapping). */
	_Alignas(64) _Atomic uint32_t wake;
	/* Written by ucaas-authd alone, without the seqlock. */
	_Atomic int32_t daemon_pid;
	_Atomic int64_t heartbeat_ms;
	_Atomic int64_t next_refresh_ms;
};

_Static_assert(sizeof(struct segment) <= SEGMENT_SIZE,
               "the segment must fit in one page");

/* What a reader saw, copied out of the segment and validated. */
struct snapshot {
	uint64_t seq;
	uint64_t generation;
	int64_t issued_ms, fresh_ms, renew_ms, expires_ms;
	int64_t issued_real_ms;
	size_t len; /* 0: no token, or what was there failed validation */
};

/* When a token's windows open, fixed by the process that fetched it. */
struct token_times {
	int64_t issued_ms, fresh_ms, renew_ms, expires_ms;
	int64_t expires_real;
};

/* The refresh state, copied out of the segment and held to its bounds. */
struct refresh_state {
	int64_t expires_real;
	int64_t next_attempt_ms; /* 0: no backoff */
	int last_status;         /* < 0 when failures > 0 */
	unsigned failures;
	uint64_t logins;
	int64_t last_login_real;
	char error[ERROR_TEXT_MAX];
	char answered_by[PROVIDER_NAME_MAX];
};

/* A refresh lease a caller holds: what it publishes against. */
struct lease {
	uint64_t id;
	uint64_t generation;
	int64_t deadline_ms;
};

static inline int64_t now_ms(void)
{
	struct timespec ts;

	/* The coarse clock is read from the vDSO without a system call and
	 * ticks every few milliseconds: margins are tens of seconds. */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Whether a header line copied out (len >= 16) is printable ASCII
 * (0x20-0x7e: no CR, LF, NUL or DEL) and starts "Authorization: ". Runs on
 * the caller's private copy, never on shared memory, so vector loads are
 * safe here: the last 16 bytes are read from len - 16, within the copy.
 */
static inline bool header_line_ok(const char *buf, size_t len)
{
	uint64_t w0, w1;

	memcpy(&w0, buf, 8);
	memcpy(&w1, buf + 8, 8);
	if (w0 != 0x7a69726f68747541ull /* "Authoriz" */ ||
	    (w1 & 0x00ffffffffffffffull) != 0x203a6e6f697461ull /* "ation: " */)
		return false;
#ifdef __SSE2__
	/* Printable bytes, less 0x20, are 0x00-0x5e; all others (wrapping)
	 * above: one subtraction and an unsigned max per 16 bytes. */
	const __m128i space = _mm_set1_epi8(0x20);
	__m128i top = _mm_setzero_si128();
	size_t i;

	/* From byte 15: the prefix compare covers bytes 0-14. */
	/* clang-format would spread these nested calls over 20 lines. */
	/* clang-format off */
	for (i = 15; i + 16 <= len; i += 16)
		top = _mm_max_epu8(top, _mm_sub_epi8(_mm_loadu_si128(
			(const __m128i *)(const void *)(buf + i)), space));
	top = _mm_max_epu8(top, _mm_sub_epi8(_mm_loadu_si128(
		(const __m128i *)(const void *)(buf + len - 16)), space));
	return _mm_movemask_epi8(_mm_cmpeq_epi8(
		       _mm_max_epu8(top, _mm_set1_epi8(0x5e)),
		       _mm_set1_epi8(0x5e))) == 0xffff;
	/* clang-format on */
#else
	/* Carry-free: with no high bit set, w + 0x60 keeps the high bit of
	 * every byte >= 0x20, and w + 0x01 sets it for 0x7f alone. */
	uint64_t hi = 0, lo = ~0ull, w;

	for (size_t i = 0; i < len; i += 8) {
		memcpy(&w, buf + (i + 8 <= len ? i : len - 8), 8);
		hi |= w | (w + 0x0101010101010101ull);
		lo &= w + 0x6060606060606060ull;
	}
	return !(hi & 0x8080808080808080ull) &&
	       (lo & 0x8080808080808080ull) == 0x8080808080808080ull;
#endif
}

/*
 * Copies the header into buf when it fits (size > len) and describes it in
 * *snap, after validating the private copy: a length within bounds, a
 * header line of printable ASCII that starts "Authorization: ", and
 * deadlines in order and within a token's longest life. Anything else reads
 * as no token (len 0). A header too long for buf is reported by its length
 * and not judged (the caller asks again with room). False when a writer
 * kept the seqlock busy for every try (a writer that died mid-write leaves
 * it odd until the next lock holder repairs it).
 */
static inline bool segment_read(const struct segment *seg, char *buf,
                                size_t size, struct snapshot *snap)
{
	for (int tries = 0; tries < 1000; tries++) {
		uint64_t s1 =
			atomic_load_explicit(&seg->seq, memory_order_acquire);
		size_t len, i, words;
		bool copied = false;

		if (s1 & 1)
			continue;
		snap->generation = atomic_load_explicit(&seg->generation,
		                                        memory_order_relaxed);
		snap->issued_ms = atomic_load_explicit(&seg->issued_ms,
		                                       memory_order_relaxed);
		snap->issued_real_ms = atomic_load_explicit(
			&seg->issued_real_ms, memory_order_relaxed);
		snap->fresh_ms = atomic_load_explicit(&seg->fresh_ms,
		                                      memory_order_relaxed);
		snap->renew_ms = atomic_load_explicit(&seg->renew_ms,
		                                      memory_order_relaxed);
		snap->expires_ms = atomic_load_explicit(&seg->expires_ms,
		                                        memory_order_relaxed);
		len = atomic_load_explicit(&seg->len, memory_order_relaxed);
		if (len >= 16 && len <= HEADER_MAX && len < size) {
			words = len / 8;
			for (i = 0; i < words; i++) {
				uint64_t w = atomic_load_explicit(
					&seg->header[i], memory_order_relaxed);
				memcpy(buf + i * 8, &w, 8);
			}
			if (len % 8) {
				uint64_t w = atomic_load_explicit(
					&seg->header[i], memory_order_relaxed);
				/* The whole word where the buffer has room
				 * (the NUL goes over its padding). */
				if (i * 8 + 8 <= size)
					memcpy(buf + i * 8, &w, 8);
				else
					memcpy(buf + i * 8, &w, len % 8);
			}
			copied = true;
		}
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&seg->seq, memory_order_relaxed) != s1)
			continue;
		snap->seq = s1;
		/* Validated after the copy, from the copy: a torn or stray
		 * length never indexes, a stray byte is never served. */
		if (copied) {
			if (!header_line_ok(buf, len))
				len = 0;
		} else if (len > HEADER_MAX || len < 16) {
			len = 0;
		}
		/* Monotonic times are never negative: with that first, no
		 * difference below can overflow. */
		if (!(snap->issued_ms >= 0 &&
		      snap->issued_ms <= snap->fresh_ms &&
		      snap->fresh_ms <= snap->renew_ms &&
		      snap->renew_ms <= snap->expires_ms &&
		      snap->expires_ms - snap->issued_ms <= LIFE_MAX_MS))
			len = 0;
		snap->len = len;
		return true;
	}
	return false;
}

/* A token a caller may use at `now`: validated, issued no later than now
 * (a writer whose clock runs ahead never extends a life), not expired. */
static inline bool snapshot_valid(const struct snapshot *snap, int64_t now)
{
	return snap->len > 0 && snap->issued_ms <= now &&
	       now < snap->expires_ms;
}

/* The token as this process's clocks see it (see usable() in cache.c):
 * copies it into buf (size > HEADER_MAX) and fills *ret; true when it is
 * valid now. ret->seq is odd when the seqlock could not be read. With
 * buf NULL and size 0, its times and length only: nothing is copied (so
 * nothing is to be wiped) and the bytes are not judged, which is for
 * whoever uses them (ucaas-auth status, ucaas-authd's plans). */
bool token_view(const struct segment *seg, char *buf, size_t size,
                struct snapshot *ret);

int cache_open(enum cache_mode mode, const char *identity,
               struct segment **ret);
/* Builds a new segment for the identity, renames it over the old one and
 * retires the old mapping (if any) so that the processes still on it move
 * over: the way out of a segment whose lock or layout is unusable. */
int cache_rebuild(const char *identity, struct segment *old,
                  struct segment **ret);
/* ucaas-authd's segments: a memfd, sealed so that the fd it hands to
 * clients can only ever be mapped read-only, and never resized. */
int cache_new_sealed(struct segment **ret, int *ret_fd);
/* A client's side: checks the seals, size and layout of a received fd and
 * maps it read-only. The fd stays the caller's. */
int cache_attach_fd(int fd, const struct segment **ret);
/* Waits until seg->wake differs from `seen` or deadline_ms passes, at most
 * 100 ms at a time. */
void cache_wait(const struct segment *seg, uint32_t seen, int64_t deadline_ms);
void cache_close(const struct segment *seg);
bool cache_retired(const struct segment *seg);
/* A child's private copy of a `cache = process` segment: its lock may be
 * held by a thread that is not there, its lease by the parent. */
void cache_after_fork(struct segment *seg);
/* The directory segments live in for this user. */
int cache_dir(char *buf, size_t size);
/*
 * Locks for writing, for microseconds. deadline_ms 0: try once (1 when
 * busy); -1: wait as long as a lock can be held; else wait until that
 * CLOCK_MONOTONIC_COARSE time at most (UCAASAUTH_E_TIMEOUT). A lock left by a dead process is taken over and
 * what it was writing repaired. A lock that cannot be had (garbage, an
 * owner that is gone without the kernel knowing, a holder stopped for
 * longer than any write takes) is UCAASAUTH_E_CACHE, with the segment
 * then to be rebuilt (cache_rebuild).
 */
int cache_lock(struct segment *seg, int64_t deadline_ms);
void cache_unlock(struct segment *seg);

/*
 * The refresh lease. cache_lease_take(): 0 and *ret when the caller may
 * refresh (the lease was free, past its deadline, or its owner dead), 1
 * when a live refresher holds it, the generation is no longer `seen`
 * (someone refreshed since the caller looked) or a backoff began since
 * (someone failed), or a status. The caller then refreshes
 * without any lock and ends with cache_lease_publish() or
 * cache_lease_fail(), which take the lock for microseconds and give the
 * lease back if it is still theirs. A result is kept only if the
 * generation the refresh started from is still current: a refresher that
 * was stopped, and whose lease was taken over, changes nothing.
 */
int cache_lease_take(struct segment *seg, uint64_t seen, int64_t lease_ms,
                     struct lease *ret);
/* `failed`: the token came with less life than its mandatory window, and
 * counts as a failed refresh for the backoff (status, error). */
void cache_lease_publish(struct segment *seg, const struct lease *lease,
                         const char *header, size_t len,
                         const struct token_times *times, const char *who,
                         int failed, const char *error);
void cache_lease_fail(struct segment *seg, const struct lease *lease,
                      int status, const char *error);
/* The lease holder's pid, 0 if free, for status displays. */
pid_t cache_lease_holder(const struct segment *seg, int64_t now);

/* The following need the lock. */
void cache_publish(struct segment *seg, const char *header, size_t len,
                   const struct token_times *times, const char *who);
void cache_drop(struct segment *seg);
void cache_record_failure(struct segment *seg, int status, const char *error);
/* A token the API refused: see ucaasauth_reject(). Dropped when it is old
 * enough (min_age_ms); a younger one counts as a failed refresh and is
 * moved to its mandatory window, replaced once the backoff allows. */
void cache_reject(struct segment *seg, uint64_t generation, int64_t min_age_ms);
/* A copy of the refresh state, held to its bounds at `now`: a backoff
 * never ends later than its longest step from now, a status is a real
 * status or none. */
void cache_refresh_state(const struct segment *seg, int64_t now,
                         struct refresh_state *ret);
/* ucaas-authd withdraws a sealed segment (a reload revoked someone, or
 * changed the account): the token wiped, the segment retired, so that its
 * clients ask the daemon for the new one. Needs the lock. */
void cache_retire_sealed(struct segment *seg);

#endif

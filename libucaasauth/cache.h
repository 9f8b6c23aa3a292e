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

#include "internal.h"

#define SEGMENT_MAGIC 0x53414355u /* "UCAS" */
#define SEGMENT_VERSION 3u
#define SEGMENT_SIZE 4096u
#define ERROR_TEXT_MAX 256
#define PROVIDER_NAME_MAX 72
#define TOKEN_PREFIX "Authorization: Token "
#define HEADER_MAX (sizeof(TOKEN_PREFIX) - 1 + TOKEN_MAX)
#define HEADER_WORDS ((HEADER_MAX + 7) / 8)

enum segment_state { SEGMENT_EMPTY, SEGMENT_INITIALISING, SEGMENT_READY };

/*
 * Everything after `seq` is written only by the holder of `lock`, between
 * an increment of `seq` to an odd value and one back to even. Readers copy
 * what they need and keep it only if `seq` was even and unchanged across
 * the copy. Fields are atomics read and written relaxed: the seqlock gives
 * the ordering, the atomics keep the compiler (and ThreadSanitizer) honest.
 */
struct segment {
	uint32_t magic;
	uint32_t version;
	uint32_t size;
	_Atomic uint32_t state;
	pthread_mutex_t lock; /* robust, process-shared: writers only */

	/* Read by every caller; written once per refresh. */
	_Alignas(64) _Atomic uint64_t seq;
	_Atomic uint64_t generation; /* bumped by every publish and drop */
	/* CLOCK_MONOTONIC_COARSE milliseconds, all 0 without a token. */
	_Atomic int64_t fresh_ms;   /* then the advisory window */
	_Atomic int64_t renew_ms;   /* then the mandatory window */
	_Atomic int64_t expires_ms; /* then expired */
	_Atomic uint32_t len;        /* header length, 0: no token */
	_Atomic uint64_t header[HEADER_WORDS];

	/* The refresh state every process on the host respects. */
	_Alignas(64) _Atomic int64_t expires_real; /* Unix time, for people */
	_Atomic int64_t next_attempt_ms;          /* backoff deadline */
	_Atomic int32_t last_status;
	_Atomic uint32_t failures;
	_Atomic uint64_t logins;
	_Atomic int64_t last_login_real;
	_Atomic uint64_t error[ERROR_TEXT_MAX / 8];
	_Atomic uint64_t answered_by[PROVIDER_NAME_MAX / 8]; /* a name */

	/* Bumped after every change above, for futex waiters (daemon
	 * clients, who cannot take the lock of a read-only mapping). */
	_Alignas(64) _Atomic uint32_t wake;
	/* Written by ucaas-authd alone, without the seqlock. */
	_Atomic int32_t daemon_pid;
	_Atomic int64_t heartbeat_ms;
	_Atomic int64_t next_refresh_ms;
};

_Static_assert(sizeof(struct segment) <= SEGMENT_SIZE,
               "the segment must fit in one page");

/* What a reader saw, copied out of the segment. */
struct snapshot {
	uint64_t seq;
	uint64_t generation;
	int64_t fresh_ms, renew_ms, expires_ms;
	size_t len;
};

/* When a token's windows open, fixed by the process that fetched it. */
struct token_times {
	int64_t fresh_ms, renew_ms, expires_ms;
	int64_t expires_real;
};

/* The refresh state, copied out of the segment. */
struct refresh_state {
	int64_t expires_real;
	int64_t next_attempt_ms;
	int last_status;
	unsigned failures;
	uint64_t logins;
	int64_t last_login_real;
	char error[ERROR_TEXT_MAX];
	char answered_by[PROVIDER_NAME_MAX];
};

static inline int64_t now_ms(void)
{
	struct timespec ts;

	/* The coarse clock is read from the vDSO without a system call and
	 * ticks every few milliseconds: margins are tens of seconds. */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Copies the header into buf when it fits (size > len) and describes it in
 * *snap. False when a writer kept the seqlock busy for every try (a writer
 * that died mid-write leaves it odd until the next lock holder repairs it).
 */
static inline bool segment_read(const struct segment *seg, char *buf,
                                size_t size, struct snapshot *snap)
{
	for (int tries = 0; tries < 1000; tries++) {
		uint64_t s1 = atomic_load_explicit(&seg->seq,
		                                   memory_order_acquire);
		size_t len, i, words;

		if (s1 & 1)
			continue;
		snap->generation = atomic_load_explicit(&seg->generation,
		                                        memory_order_relaxed);
		snap->fresh_ms = atomic_load_explicit(&seg->fresh_ms,
		                                      memory_order_relaxed);
		snap->renew_ms = atomic_load_explicit(&seg->renew_ms,
		                                      memory_order_relaxed);
		snap->expires_ms = atomic_load_explicit(&seg->expires_ms,
		                                        memory_order_relaxed);
		len = atomic_load_explicit(&seg->len, memory_order_relaxed);
		if (len <= HEADER_MAX && len < size) {
			words = len / 8;
			for (i = 0; i < words; i++) {
				uint64_t w = atomic_load_explicit(
					&seg->header[i], memory_order_relaxed);
				memcpy(buf + i * 8, &w, 8);
			}
			if (len % 8) {
				uint64_t w = atomic_load_explicit(
					&seg->header[i], memory_order_relaxed);
				memcpy(buf + i * 8, &w, len % 8);
			}
		}
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&seg->seq, memory_order_relaxed) !=
		    s1)
			continue;
		/* Validated after the copy: a torn length never indexes. */
		if (len > HEADER_MAX)
			len = 0;
		snap->seq = s1;
		snap->len = len;
		return true;
	}
	return false;
}

int cache_open(enum cache_mode mode, const char *identity,
               struct segment **ret);
/* ucaas-authd's segments: a memfd, sealed so that the fd it hands to
 * clients can only ever be mapped read-only, and never resized. */
int cache_new_sealed(struct segment **ret, int *ret_fd);
/* A client's side: checks the seals, size and layout of a received fd and
 * maps it read-only. The fd stays the caller's. */
int cache_attach_fd(int fd, const struct segment **ret);
/* Waits until seg->wake differs from `seen` or deadline_ms passes. */
void cache_wait(const struct segment *seg, uint32_t seen, int64_t deadline_ms);
void cache_close(const struct segment *seg);
/* The directory segments live in for this user. */
int cache_dir(char *buf, size_t size);
/* Locks for writing. deadline_ms 0: try once (1 when busy); else wait until
 * that CLOCK_MONOTONIC time (UCAASAUTH_E_TIMEOUT). A lock left by a dead
 * process is taken over and its half-written token dropped. */
int cache_lock(struct segment *seg, int64_t deadline_ms);
void cache_unlock(struct segment *seg);
/* The following need the lock. */
void cache_publish(struct segment *seg, const char *header, size_t len,
                   const struct token_times *times, const char *who);
void cache_drop(struct segment *seg);
void cache_record_failure(struct segment *seg, int status, const char *error);
void cache_refresh_state(const struct segment *seg, struct refresh_state *ret);

#endif

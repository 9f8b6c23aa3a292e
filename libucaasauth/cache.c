/* The shared token cache: finding, checking, building and locking segments. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <linux/futex.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sodium.h>

#include "cache.h"

/* A write under the lock takes microseconds: a lock not had in this long
 * is held by no one who will give it back (a forged owner, a holder
 * stopped mid-write), and the segment is rebuilt. */
#define LOCK_STUCK_MS 1000

int cache_dir(char *buf, size_t size)
{
	const char *dir = secure_getenv("UCAASAUTH_RUNTIME_DIR");
	const char *xdg = secure_getenv("XDG_RUNTIME_DIR");
	int n;

	if (dir && dir[0] == '/')
		n = snprintf(buf, size, "%s", dir);
	else if (xdg && xdg[0] == '/')
		n = snprintf(buf, size, "%s/ucaasauth", xdg);
	else
		/* /dev/shm is world-writable: the directory is checked below,
		 * so one squatted by another user is refused. */
		n = snprintf(buf, size, "/dev/shm/ucaasauth-%u",
		             (unsigned)geteuid());
	if (n < 0 || (size_t)n >= size)
		return fail(UCAASAUTH_E_CACHE,
		            "cache directory: path too long");
	return 0;
}

/* Opens the directory, creating it with its final mode, and refuses one
 * that another user could have planted or can enter. */
static int open_dir(const char *dir)
{
	struct stat st;
	int fd, r;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return fail_errno(UCAASAUTH_E_CACHE, errno, "cache directory",
		                  dir);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return fail(UCAASAUTH_E_CACHE, "cache directory %s: %s", dir,
		            errno == ENOTDIR || errno == ELOOP
		                    ? "not a directory (or a symbolic link)"
		                    : strerror(errno));
	r = fstat(fd, &st) < 0
	            ? fail_errno(UCAASAUTH_E_CACHE, errno, "cache directory",
	                         dir)
	            : file_check(&st, S_IFDIR, OWNER_SELF, NO_UID,
	                         "cache directory", dir, UCAASAUTH_E_CACHE);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

static void segment_init(struct segment *seg)
{
	pthread_mutexattr_t attr;

	memset(seg, 0, sizeof(*seg));
	seg->magic = SEGMENT_MAGIC;
	seg->version = SEGMENT_VERSION;
	seg->size = SEGMENT_SIZE;
	randombytes_buf(&seg->nonce, sizeof(seg->nonce));
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&seg->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	atomic_store_explicit(&seg->state, SEGMENT_READY, memory_order_release);
}

static bool segment_valid(const struct segment *seg)
{
	return seg->magic == SEGMENT_MAGIC && seg->version == SEGMENT_VERSION &&
	       seg->size == SEGMENT_SIZE &&
	       atomic_load_explicit(&seg->state, memory_order_acquire) ==
	               SEGMENT_READY;
}

/* Tokens never reach swap or a core dump. */
static int protect(struct segment *seg, const char *path)
{
	if (mlock(seg, SEGMENT_SIZE) < 0)
		return fail(UCAASAUTH_E_CACHE,
		            "cache segment %s: cannot lock it in memory (%s); "
		            "raise RLIMIT_MEMLOCK (ulimit -l)",
		            path, strerror(errno));
	if (madvise(seg, SEGMENT_SIZE, MADV_DONTDUMP) < 0)
		return fail_errno(UCAASAUTH_E_CACHE, errno, "cache segment",
		                  path);
	return 0;
}

static int map_fd(int fd, const char *path, struct segment **ret)
{
	void *p = mmap(NULL, SEGMENT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
	               fd, 0);

	if (p == MAP_FAILED)
		return fail_errno(UCAASAUTH_E_CACHE, errno, "cache segment",
		                  path);
	if (protect(p, path) < 0) {
		munmap(p, SEGMENT_SIZE);
		return UCAASAUTH_E_CACHE;
	}
	*ret = p;
	return 0;
}

/* A new segment is built under a temporary name and renamed into place
 * only when whole, so no process can map a half-initialised one. Processes
 * still mapping a segment it replaces keep their own copy. */
static int build(int dirfd, const char *path, const char *name,
                 struct segment **ret)
{
	char tmp[NAME_MAX + 1];
	struct segment *seg = NULL;
	int fd, r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%08x", name,
	             randombytes_random()) >= (int)sizeof(tmp))
		return fail(UCAASAUTH_E_CACHE, "cache segment: name too long");
	fd = openat(dirfd, tmp,
	            O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail_errno(UCAASAUTH_E_CACHE, errno, "cache segment",
		                  path);
	if (ftruncate(fd, SEGMENT_SIZE) < 0) {
		r = fail_errno(UCAASAUTH_E_CACHE, errno, "cache segment", path);
		goto fail;
	}
	r = map_fd(fd, path, &seg);
	if (r < 0)
		goto fail;
	segment_init(seg);
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		r = fail_errno(UCAASAUTH_E_CACHE, errno, "cache segment", path);
		munmap(seg, SEGMENT_SIZE);
		goto fail;
	}
	close(fd);
	*ret = seg;
	return 0;
fail:
	unlinkat(dirfd, tmp, 0);
	close(fd);
	return r;
}

static int open_existing(int fd, const char *path, struct segment **ret)
{
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0)
		return fail_errno(UCAASAUTH_E_CACHE, errno, "cache segment",
		                  path);
	r = file_check(&st, S_IFREG, OWNER_SELF, NO_UID, "cache segment", path,
	               UCAASAUTH_E_CACHE);
	if (r < 0)
		return r;
	if (st.st_size != SEGMENT_SIZE)
		return 1; /* not ours to read: rebuild */
	return map_fd(fd, path, ret);
}

/* old: the segment found unusable, rebuilt unless another process
 * already replaced it. */
static int open_shared(const char *identity, const struct segment *old,
                       struct segment **ret)
{
	char dir[PATH_MAX], path[PATH_MAX], name[NAME_MAX + 1];
	unsigned char hash[16];
	char hex[sizeof(hash) * 2 + 1];
	struct segment *seg = NULL;
	int dirfd, fd, r;

	r = cache_dir(dir, sizeof(dir));
	if (r < 0)
		return r;
	/* The name says nothing about the identity behind it. */
	crypto_generichash(hash, sizeof(hash), (const uint8_t *)identity,
	                   strlen(identity), NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), hash, sizeof(hash));
	snprintf(name, sizeof(name), "%s.seg", hex);
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    (int)sizeof(path))
		return fail(UCAASAUTH_E_CACHE,
		            "cache directory: path too long");

	dirfd = open_dir(dir);
	if (dirfd < 0)
		return dirfd;
	/* Serialises building and rebuilding among the host's processes;
	 * taken only when opening, never on the header path. */
	if (flock(dirfd, LOCK_EX) < 0) {
		r = fail_errno(UCAASAUTH_E_CACHE, errno, "cache directory",
		               dir);
		goto out;
	}
	fd = openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno != ENOENT) {
		r = fail(UCAASAUTH_E_CACHE, "cache segment %s: %s", path,
		         errno == ELOOP ? "is a symbolic link"
		                        : strerror(errno));
		goto out;
	}
	if (fd >= 0) {
		r = open_existing(fd, path, &seg);
		close(fd);
		if (r < 0)
			goto out;
		if (seg && (!segment_valid(seg) ||
		            (old && seg->nonce == old->nonce))) {
			/* Garbage, another layout, or a builder that died:
			 * never read as valid, replaced whole. */
			munmap(seg, SEGMENT_SIZE);
			seg = NULL;
		}
	}
	r = seg ? 0 : build(dirfd, path, name, &seg);
	if (r == 0)
		*ret = seg;
out:
	close(dirfd); /* drops the flock */
	return r;
}

int cache_open(enum cache_mode mode, const char *identity, struct segment **ret)
{
	struct segment *seg = NULL;

	if (mode == CACHE_SHARED)
		return open_shared(identity, NULL, ret);
	/* cache = process: the same logic on memory no other process sees. */
	seg = mmap(NULL, SEGMENT_SIZE, PROT_READ | PROT_WRITE,
	           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (seg == MAP_FAILED)
		return fail(UCAASAUTH_E_NOMEM, "process cache: %s",
		            strerror(errno));
	if (protect(seg, "(process memory)") < 0) {
		munmap(seg, SEGMENT_SIZE);
		return UCAASAUTH_E_CACHE;
	}
	segment_init(seg);
	*ret = seg;
	return 0;
}

/* Tells the processes still on a replaced segment to move: they find it
 * retired on their next slow path, which the cleared length sends them
 * to. Plain stores: its lock may be what made it unusable. */
static void retire(struct segment *seg)
{
	atomic_store_explicit(&seg->len, 0, memory_order_relaxed);
	atomic_store_explicit(&seg->fresh_ms, 0, memory_order_relaxed);
	for (size_t i = 0; i < HEADER_WORDS; i++)
		atomic_store_explicit(&seg->header[i], 0, memory_order_relaxed);
	atomic_store_explicit(&seg->state, SEGMENT_RETIRED,
	                      memory_order_release);
	atomic_fetch_add_explicit(&seg->wake, 1, memory_order_release);
	syscall(SYS_futex, &seg->wake, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

int cache_rebuild(const char *identity, struct segment *old,
                  struct segment **ret)
{
	struct segment *seg = NULL;
	int r;

	r = open_shared(identity, old, &seg);
	if (r < 0)
		return r;
	if (old)
		retire(old);
	*ret = seg;
	return 0;
}

bool cache_retired(const struct segment *seg)
{
	return atomic_load_explicit(&seg->state, memory_order_acquire) !=
	       SEGMENT_READY;
}

void cache_after_fork(struct segment *seg)
{
	pthread_mutexattr_t attr;

	/* Only this thread runs in the child: nothing else can hold it. */
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&seg->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	atomic_store(&seg->lease_pid, 0);
	atomic_store(&seg->lease_deadline_ms, 0);
	if (atomic_load(&seg->seq) & 1)
		atomic_fetch_add(&seg->seq, 1);
}

void cache_close(const struct segment *seg)
{
	if (seg)
		munmap((void *)seg, SEGMENT_SIZE);
}

#define REQUIRED_SEALS                                                         \
	(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL)

int cache_new_sealed(struct segment **ret, int *ret_fd)
{
	struct segment *seg = NULL;
	int fd, r;

	fd = memfd_create("ucaasauth-segment", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return fail(UCAASAUTH_E_CACHE, "memfd_create: %s",
		            strerror(errno));
	if (ftruncate(fd, SEGMENT_SIZE) < 0) {
		r = fail(UCAASAUTH_E_CACHE, "memfd: %s", strerror(errno));
		goto fail;
	}
	r = map_fd(fd, "(memfd)", &seg);
	if (r < 0)
		goto fail;
	segment_init(seg);
	/* Our writable mapping stays; no one can make another, write through
	 * the fd, resize it or lift the seals. */
	if (fcntl(fd, F_ADD_SEALS, REQUIRED_SEALS) < 0) {
		r = fail(UCAASAUTH_E_CACHE, "sealing the memfd: %s",
		         strerror(errno));
		munmap(seg, SEGMENT_SIZE);
		goto fail;
	}
	*ret = seg;
	*ret_fd = fd;
	return 0;
fail:
	close(fd);
	return r;
}

int cache_attach_fd(int fd, const struct segment **ret)
{
	struct stat st;
	struct segment *seg = NULL;
	void *p;
	int seals;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size != SEGMENT_SIZE)
		return fail(UCAASAUTH_E_CACHE,
		            "the daemon's segment is not a %u-byte file",
		            SEGMENT_SIZE);
	/* Unsealed, it could shrink under us (SIGBUS) or be written by
	 * someone else than the daemon. */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & REQUIRED_SEALS) != REQUIRED_SEALS)
		return fail(UCAASAUTH_E_CACHE,
		            "the daemon's segment is not sealed");
	p = mmap(NULL, SEGMENT_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return fail(UCAASAUTH_E_CACHE,
		            "mapping the daemon's segment: %s",
		            strerror(errno));
	seg = p;
	if (protect(seg, "(daemon segment)") < 0 || !segment_valid(seg)) {
		munmap(p, SEGMENT_SIZE);
		return fail(UCAASAUTH_E_CACHE,
		            "the daemon's segment has another layout or cannot "
		            "be locked in memory");
	}
	*ret = seg;
	return 0;
}

static void wake_waiters(struct segment *seg)
{
	atomic_fetch_add_explicit(&seg->wake, 1, memory_order_release);
	syscall(SYS_futex, &seg->wake, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void cache_wait(const struct segment *seg, uint32_t seen, int64_t deadline_ms)
{
	int64_t left = deadline_ms - now_ms();
	struct timespec ts;

	if (left <= 0 ||
	    atomic_load_explicit(&seg->wake, memory_order_acquire) != seen)
		return;
	/* Never longer than 100 ms at a time: a daemon that died cannot
	 * wake us, and the caller rechecks its heartbeat. */
	if (left > 100)
		left = 100;
	ts.tv_sec = left / 1000;
	ts.tv_nsec = (left % 1000) * 1000000;
	/* Shared, not private: the word is in memory other processes map. */
	syscall(SYS_futex, &seg->wake, FUTEX_WAIT, seen, &ts, NULL, 0);
}

static void write_begin(struct segment *seg)
{
	uint64_t s = atomic_load_explicit(&seg->seq, memory_order_relaxed);

	/* Even under the lock (cache_lock repairs an odd one): odd now. */
	atomic_store_explicit(&seg->seq, (s | 1) + (s & 1 ? 2 : 0),
	                      memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static void write_end(struct segment *seg)
{
	uint64_t s = atomic_load_explicit(&seg->seq, memory_order_relaxed);

	atomic_store_explicit(&seg->seq, (s + 1) & ~(uint64_t)1,
	                      memory_order_release);
}

static void clear_token(struct segment *seg)
{
	atomic_store_explicit(&seg->len, 0, memory_order_relaxed);
	atomic_store_explicit(&seg->issued_ms, 0, memory_order_relaxed);
	atomic_store_explicit(&seg->fresh_ms, 0, memory_order_relaxed);
	atomic_store_explicit(&seg->renew_ms, 0, memory_order_relaxed);
	atomic_store_explicit(&seg->expires_ms, 0, memory_order_relaxed);
	atomic_store_explicit(&seg->expires_real, 0, memory_order_relaxed);
	atomic_store_explicit(&seg->issued_real_ms, 0, memory_order_relaxed);
	for (size_t i = 0; i < HEADER_WORDS; i++)
		atomic_store_explicit(&seg->header[i], 0, memory_order_relaxed);
	atomic_fetch_add_explicit(&seg->generation, 1, memory_order_relaxed);
}

static bool real_status(int status)
{
	return status < 0 && status >= UCAASAUTH_E_NOMEM;
}

/*
 * Run by every lock holder before it writes: what a writer that died
 * mid-write, or a stray write, left behind is put right, so that one
 * damaged page costs at most one login. An odd sequence means a writer
 * died whatever the mutex says (the mutex is robust, a stray write is
 * not); fields out of range are reset.
 */
static void repair(struct segment *seg)
{
	uint64_t s = atomic_load_explicit(&seg->seq, memory_order_relaxed);
	int64_t now = now_ms();
	struct snapshot snap = {0};
	char tmp[HEADER_MAX + 1];
	bool bad_token, bad_state;
	int status;
	unsigned failures;
	int64_t next;

	if (s & 1) {
		clear_token(seg);
		atomic_store_explicit(&seg->seq, s + 1, memory_order_release);
	}
	/* Even now, and only we write: one read is the truth. */
	bad_token = segment_read(seg, tmp, sizeof(tmp), &snap) &&
	            snap.len == 0 &&
	            atomic_load_explicit(&seg->len, memory_order_relaxed) != 0;
	sodium_memzero(tmp, sizeof(tmp));
	status = atomic_load_explicit(&seg->last_status, memory_order_relaxed);
	failures = atomic_load_explicit(&seg->failures, memory_order_relaxed);
	next = atomic_load_explicit(&seg->next_attempt_ms,
	                            memory_order_relaxed);
	bad_state = (failures > 0) != real_status(status) ||
	            next > now + BACKOFF_MAX_MS || (failures == 0 && next != 0);
	if (bad_token || bad_state) {
		write_begin(seg);
		if (bad_token)
			clear_token(seg);
		if (bad_state) {
			atomic_store_explicit(&seg->failures, 0,
			                      memory_order_relaxed);
			atomic_store_explicit(&seg->last_status, 0,
			                      memory_order_relaxed);
			atomic_store_explicit(&seg->next_attempt_ms, 0,
			                      memory_order_relaxed);
			atomic_store_explicit(&seg->young_rejects, 0,
			                      memory_order_relaxed);
		}
		write_end(seg);
	}
	if (atomic_load_explicit(&seg->lease_deadline_ms,
	                         memory_order_relaxed) > now + LIFE_MAX_MS)
		atomic_store_explicit(&seg->lease_pid, 0, memory_order_relaxed);
}

#if defined(__SANITIZE_THREAD__)
#define TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN 1
#endif
#endif

static int lock_until(pthread_mutex_t *lock, int64_t deadline_ms)
{
	struct timespec ts;

#ifdef TSAN
	/* ThreadSanitizer (clang 14) does not know pthread_mutex_clocklock
	 * and would report every unlock as wrong: its builds wait on the
	 * realtime clock instead, which a clock step can stretch. */
	int64_t left = deadline_ms - now_ms();

	clock_gettime(CLOCK_REALTIME, &ts);
	left = left > 0 ? left : 0;
	ts.tv_sec += left / 1000;
	ts.tv_nsec += (left % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_mutex_timedlock(lock, &ts);
#else
	/* The deadline is on the coarse clock, which never runs ahead of
	 * the monotonic one; a step of the wall clock cannot stretch it. */
	ts.tv_sec = deadline_ms / 1000;
	ts.tv_nsec = (deadline_ms % 1000) * 1000000;
	return pthread_mutex_clocklock(lock, CLOCK_MONOTONIC, &ts);
#endif
}

/* Who the lock word names, for a message. */
static pid_t lock_owner(const struct segment *seg)
{
	return (pid_t)(seg->lock.__data.__owner & 0x3fffffff);
}

/* The kind word a segment's mutex was made with. glibc trusts that word
 * (a priority-protect kind ends in an assertion, a priority-inherit one
 * in the kernel): a stray write there must never reach pthread. */
static int mutex_kind(void)
{
	static _Atomic int kind = -1;
	int k = atomic_load_explicit(&kind, memory_order_relaxed);

	if (k < 0) {
		pthread_mutexattr_t attr;
		pthread_mutex_t m;

		pthread_mutexattr_init(&attr);
		pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
		pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
		pthread_mutex_init(&m, &attr);
		pthread_mutexattr_destroy(&attr);
		k = m.__data.__kind;
		pthread_mutex_destroy(&m);
		atomic_store_explicit(&kind, k, memory_order_relaxed);
	}
	return k;
}

int cache_lock(struct segment *seg, int64_t deadline_ms)
{
	int64_t start = now_ms(), until;
	int r;

	if (seg->lock.__data.__kind != mutex_kind())
		return fail(UCAASAUTH_E_CACHE,
		            "cache lock: not the mutex this segment was made "
		            "with (kind %#x): the segment is rebuilt",
		            (unsigned)seg->lock.__data.__kind);
	if (deadline_ms == 0) {
		r = pthread_mutex_trylock(&seg->lock);
		if (r == EBUSY)
			return 1;
	} else {
		/* Held for microseconds by anyone: waiting longer than a
		 * stuck lock takes would only wait for nothing. */
		bool stuck;

		until = start + LOCK_STUCK_MS;
		stuck = deadline_ms < 0 || deadline_ms >= until;
		if (!stuck)
			until = deadline_ms;
		r = lock_until(&seg->lock, until);
		if (r == ETIMEDOUT && !stuck)
			return fail(UCAASAUTH_E_TIMEOUT,
			            "waited too long for the cache lock");
		if (r == ETIMEDOUT)
			return fail(
				UCAASAUTH_E_CACHE,
				"cache lock: held for over %d ms by thread "
				"%d, which a write never takes: the segment "
				"is rebuilt",
				LOCK_STUCK_MS, (int)lock_owner(seg));
	}
	if (r == EOWNERDEAD) {
		pthread_mutex_consistent(&seg->lock);
		r = 0;
	}
	if (r != 0)
		return fail(UCAASAUTH_E_CACHE,
		            "cache lock: %s: the segment is rebuilt",
		            strerror(r));
	repair(seg);
	return 0;
}

void cache_unlock(struct segment *seg)
{
	pthread_mutex_unlock(&seg->lock);
}

/* Copies a string into atomic words, NUL-padded. */
static void store_text(_Atomic uint64_t *words, size_t size, const char *s)
{
	char text[ERROR_TEXT_MAX] = {0};

	assert(size <= sizeof(text) && size % 8 == 0);
	snprintf(text, size, "%s", s ? s : "");
	for (size_t i = 0; i < size / 8; i++) {
		uint64_t w;
		memcpy(&w, text + i * 8, 8);
		atomic_store_explicit(&words[i], w, memory_order_relaxed);
	}
}

static void load_text(const _Atomic uint64_t *words, size_t size, char *out)
{
	for (size_t i = 0; i < size / 8; i++) {
		uint64_t w =
			atomic_load_explicit(&words[i], memory_order_relaxed);
		memcpy(out + i * 8, &w, 8);
	}
}

/* 1 s doubling to 300 s, less up to a quarter at random so that hosts
 * that failed together do not retry together, at the cap too. */
static int64_t backoff_step(unsigned failures)
{
	int64_t delay = BACKOFF_FIRST_MS;

	for (unsigned i = 1; i < failures && delay < BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	return delay - randombytes_uniform(delay / 4 + 1);
}

/* Inside write_begin/write_end. */
static void set_failure(struct segment *seg, unsigned failures, int status,
                        const char *error)
{
	atomic_store_explicit(&seg->failures, failures, memory_order_relaxed);
	atomic_store_explicit(&seg->next_attempt_ms,
	                      now_ms() + backoff_step(failures),
	                      memory_order_relaxed);
	atomic_store_explicit(&seg->last_status, status, memory_order_relaxed);
	store_text(seg->error, ERROR_TEXT_MAX, error);
}

static void publish(struct segment *seg, const char *header, size_t len,
                    const struct token_times *times, const char *who,
                    int failed, const char *error)
{
	uint64_t w, gen = atomic_load_explicit(&seg->generation,
	                                       memory_order_relaxed);
	unsigned failures =
		atomic_load_explicit(&seg->failures, memory_order_relaxed);

	assert(len > 0 && len <= HEADER_MAX);
	write_begin(seg);
	/* A token that lived until it was replaced, not rejected young:
	 * the young rejections are over. */
	if (atomic_load_explicit(&seg->rejected_generation,
	                         memory_order_relaxed) != gen)
		atomic_store_explicit(&seg->young_rejects, 0,
		                      memory_order_relaxed);
	clear_token(seg);
	for (size_t i = 0; i * 8 < len; i++) {
		w = 0;
		memcpy(&w, header + i * 8, len - i * 8 < 8 ? len - i * 8 : 8);
		atomic_store_explicit(&seg->header[i], w, memory_order_relaxed);
	}
	atomic_store_explicit(&seg->len, len, memory_order_relaxed);
	atomic_store_explicit(&seg->issued_ms, times->issued_ms,
	                      memory_order_relaxed);
	atomic_store_explicit(&seg->fresh_ms, times->fresh_ms,
	                      memory_order_relaxed);
	atomic_store_explicit(&seg->renew_ms, times->renew_ms,
	                      memory_order_relaxed);
	atomic_store_explicit(&seg->expires_ms, times->expires_ms,
	                      memory_order_relaxed);
	atomic_store_explicit(&seg->expires_real, times->expires_real,
	                      memory_order_relaxed);
	atomic_store_explicit(&seg->issued_real_ms, real_ms(),
	                      memory_order_relaxed);
	if (failed) {
		/* Usable for what little life it has, but the refresh that
		 * fetched it failed: the host backs off before the next. */
		set_failure(seg, failures + 1, failed, error);
	} else {
		atomic_store_explicit(&seg->next_attempt_ms, 0,
		                      memory_order_relaxed);
		atomic_store_explicit(&seg->last_status, 0,
		                      memory_order_relaxed);
		atomic_store_explicit(&seg->failures, 0, memory_order_relaxed);
	}
	atomic_fetch_add_explicit(&seg->logins, 1, memory_order_relaxed);
	atomic_store_explicit(&seg->last_login_real, time(NULL),
	                      memory_order_relaxed);
	store_text(seg->answered_by, PROVIDER_NAME_MAX, who);
	write_end(seg);
	wake_waiters(seg);
}

void cache_publish(struct segment *seg, const char *header, size_t len,
                   const struct token_times *times, const char *who)
{
	publish(seg, header, len, times, who, 0, NULL);
}

void cache_drop(struct segment *seg)
{
	write_begin(seg);
	clear_token(seg);
	write_end(seg);
	wake_waiters(seg);
}

void cache_record_failure(struct segment *seg, int status, const char *error)
{
	unsigned failures =
		atomic_load_explicit(&seg->failures, memory_order_relaxed) + 1;

	assert(real_status(status));
	write_begin(seg);
	set_failure(seg, failures, status, error);
	write_end(seg);
	wake_waiters(seg);
}

void cache_reject(struct segment *seg, uint64_t generation, int64_t min_age_ms)
{
	int64_t now = now_ms(), issued, age, next;
	unsigned young;
	char error[ERROR_TEXT_MAX];

	if (atomic_load_explicit(&seg->generation, memory_order_relaxed) !=
	    generation)
		return; /* already replaced: one login for N rejections */
	if (atomic_load_explicit(&seg->rejected_generation,
	                         memory_order_relaxed) == generation)
		return; /* counted once: replaced when the backoff ends */
	issued = atomic_load_explicit(&seg->issued_ms, memory_order_relaxed);
	age = now - issued;
	/* A token of a short life is old once its mandatory window opens. */
	if (min_age_ms >
	    atomic_load_explicit(&seg->renew_ms, memory_order_relaxed) - issued)
		min_age_ms = atomic_load_explicit(&seg->renew_ms,
		                                  memory_order_relaxed) -
		             issued;
	if (age >= min_age_ms && issued <= now) {
		/* An old token the API no longer takes: expired early,
		 * revoked. Dropped; the next caller logs in. */
		write_begin(seg);
		atomic_store_explicit(&seg->young_rejects, 0,
		                      memory_order_relaxed);
		clear_token(seg);
		write_end(seg);
		wake_waiters(seg);
		return;
	}
	/* A young one: the API refuses something else than its age (a
	 * permission on one endpoint), or keeps refusing what it just
	 * issued. Replacing it on every refusal would turn every API call
	 * into a login: it is replaced once per backoff step, and served
	 * until then. */
	next = atomic_load_explicit(&seg->next_attempt_ms,
	                            memory_order_relaxed);
	if (now < next)
		return;
	young = atomic_load_explicit(&seg->young_rejects,
	                             memory_order_relaxed) +
	        1;
	snprintf(error, sizeof(error),
	         "the API refused a token %lld ms after it was issued (less "
	         "than reject_min_age): counted as a failed refresh (%u in a "
	         "row)",
	         (long long)(age > 0 ? age : 0), young);
	write_begin(seg);
	atomic_store_explicit(&seg->young_rejects, young, memory_order_relaxed);
	atomic_store_explicit(&seg->rejected_generation, generation,
	                      memory_order_relaxed);
	set_failure(seg, young, UCAASAUTH_E_DENIED, error);
	/* Into its mandatory window: replaced when the backoff ends. */
	if (issued > now)
		now = issued;
	if (atomic_load_explicit(&seg->fresh_ms, memory_order_relaxed) > now)
		atomic_store_explicit(&seg->fresh_ms, now,
		                      memory_order_relaxed);
	if (atomic_load_explicit(&seg->renew_ms, memory_order_relaxed) > now)
		atomic_store_explicit(&seg->renew_ms, now,
		                      memory_order_relaxed);
	write_end(seg);
	wake_waiters(seg);
}

static bool alive(pid_t pid)
{
	return pid == getpid() || kill(pid, 0) == 0 || errno == EPERM;
}

int cache_lease_take(struct segment *seg, uint64_t seen, int64_t lease_ms,
                     struct lease *ret)
{
	int64_t now = now_ms();
	pid_t holder;
	int r;

	r = cache_lock(seg, -1);
	if (r != 0)
		return r < 0 ? r : 1;
	/* Published or dropped since the caller looked: its refresh is
	 * done, by someone else. Or failed since: the backoff it started
	 * holds for this caller too (a failure leaves the generation). */
	if (atomic_load_explicit(&seg->generation, memory_order_relaxed) !=
	            seen ||
	    (atomic_load_explicit(&seg->failures, memory_order_relaxed) > 0 &&
	     now < atomic_load_explicit(&seg->next_attempt_ms,
	                                memory_order_relaxed))) {
		cache_unlock(seg);
		return 1;
	}
	holder = atomic_load_explicit(&seg->lease_pid, memory_order_relaxed);
	if (holder > 0 &&
	    now < atomic_load_explicit(&seg->lease_deadline_ms,
	                               memory_order_relaxed) &&
	    alive(holder)) {
		cache_unlock(seg);
		return 1;
	}
	/* Free, past its deadline, or its owner dead (SIGKILLed mid-login):
	 * ours. A stopped owner keeps it only until its deadline. */
	ret->id =
		atomic_load_explicit(&seg->lease_id, memory_order_relaxed) + 1;
	ret->generation =
		atomic_load_explicit(&seg->generation, memory_order_relaxed);
	ret->deadline_ms = now + lease_ms;
	atomic_store_explicit(&seg->lease_id, ret->id, memory_order_relaxed);
	atomic_store_explicit(&seg->lease_generation, ret->generation,
	                      memory_order_relaxed);
	atomic_store_explicit(&seg->lease_deadline_ms, ret->deadline_ms,
	                      memory_order_relaxed);
	atomic_store_explicit(&seg->lease_pid, getpid(), memory_order_relaxed);
	cache_unlock(seg);
	return 0;
}

/* Under the lock: the lease back, if no one took it over. */
static void lease_release(struct segment *seg, const struct lease *lease)
{
	if (atomic_load_explicit(&seg->lease_id, memory_order_relaxed) ==
	    lease->id) {
		atomic_store_explicit(&seg->lease_pid, 0, memory_order_relaxed);
		atomic_store_explicit(&seg->lease_deadline_ms, 0,
		                      memory_order_relaxed);
	}
}

void cache_lease_publish(struct segment *seg, const struct lease *lease,
                         const char *header, size_t len,
                         const struct token_times *times, const char *who,
                         int failed, const char *error)
{
	if (cache_lock(seg, -1) != 0)
		return; /* the next caller rebuilds; this result is lost */
	/* Another refresher already published (it took over a lease we
	 * held too long): ours would replace a newer token. */
	if (atomic_load_explicit(&seg->generation, memory_order_relaxed) ==
	    lease->generation)
		publish(seg, header, len, times, who, failed, error);
	lease_release(seg, lease);
	cache_unlock(seg);
	wake_waiters(seg);
}

void cache_lease_fail(struct segment *seg, const struct lease *lease,
                      int status, const char *error)
{
	if (cache_lock(seg, -1) != 0)
		return;
	if (atomic_load_explicit(&seg->generation, memory_order_relaxed) ==
	    lease->generation)
		cache_record_failure(seg, status, error);
	lease_release(seg, lease);
	cache_unlock(seg);
	wake_waiters(seg);
}

pid_t cache_lease_holder(const struct segment *seg, int64_t now)
{
	pid_t pid = atomic_load_explicit(&seg->lease_pid, memory_order_relaxed);

	return pid > 0 && now < atomic_load_explicit(&seg->lease_deadline_ms,
	                                             memory_order_relaxed)
	               ? pid
	               : 0;
}

void cache_refresh_state(const struct segment *seg, int64_t now,
                         struct refresh_state *ret)
{
	struct refresh_state st;

	memset(&st, 0, sizeof(st));
	/* Bounded: a writer that died mid-write leaves seq odd until the
	 * next lock holder repairs it. */
	for (int tries = 0; tries < 100000; tries++) {
		uint64_t s1 =
			atomic_load_explicit(&seg->seq, memory_order_acquire);
		if (s1 & 1)
			continue;
		st.expires_real = atomic_load_explicit(&seg->expires_real,
		                                       memory_order_relaxed);
		st.next_attempt_ms = atomic_load_explicit(&seg->next_attempt_ms,
		                                          memory_order_relaxed);
		st.last_status = atomic_load_explicit(&seg->last_status,
		                                      memory_order_relaxed);
		st.failures = atomic_load_explicit(&seg->failures,
		                                   memory_order_relaxed);
		st.logins = atomic_load_explicit(&seg->logins,
		                                 memory_order_relaxed);
		st.last_login_real = atomic_load_explicit(&seg->last_login_real,
		                                          memory_order_relaxed);
		load_text(seg->error, ERROR_TEXT_MAX, st.error);
		load_text(seg->answered_by, PROVIDER_NAME_MAX, st.answered_by);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&seg->seq, memory_order_relaxed) == s1)
			break;
		memset(&st, 0, sizeof(st));
	}
	/* Validated after the copy, from the copy: a stray write must not
	 * make a status of 0 a failure (callers pass it to fail()), nor a
	 * backoff outlast its longest step. */
	st.error[ERROR_TEXT_MAX - 1] = 0;
	st.answered_by[PROVIDER_NAME_MAX - 1] = 0;
	for (char *c = st.error; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
	if (st.failures == 0 || !real_status(st.last_status)) {
		st.failures = 0;
		st.last_status = 0;
		st.next_attempt_ms = 0;
		st.error[0] = 0;
	}
	if (st.next_attempt_ms > now + BACKOFF_MAX_MS)
		st.next_attempt_ms = now + BACKOFF_MAX_MS;
	*ret = st;
}

void cache_retire_sealed(struct segment *seg)
{
	cache_drop(seg);
	retire(seg);
}

/*
 * A token's windows as this process's clock sees them. The deadlines are
 * the writer's CLOCK_MONOTONIC_COARSE; a writer in another time namespace,
 * or a suspend since, makes that clock disagree with the wall clock about
 * the token's age. Then the wall clock, the one all processes share,
 * decides the age, and the windows keep their offsets from the issue: a
 * token is never valid for longer than its lifetime from now.
 */
static bool usable(const struct snapshot *snap, int64_t now, int64_t real,
                   struct snapshot *ret)
{
	int64_t age, age_real = 0;
	/* A wall time out of all range is no wall time. */
	bool wall = snap->issued_real_ms > 0 &&
	            snap->issued_real_ms <= real + LIFE_MAX_MS;

	*ret = *snap;
	if (snap->len == 0)
		return false;
	/* Validated: 0 <= issued <= expires, within a day of each other. */
	age = now - snap->issued_ms;
	if (wall)
		age_real = real - snap->issued_real_ms;
	if (age < 0 || (wall && (age_real - age > CLOCK_SKEW_MS ||
	                         age - age_real > CLOCK_SKEW_MS))) {
		if (!wall || age_real < 0)
			return false;
		age = age_real;
	}
	ret->issued_ms = now - age;
	ret->fresh_ms = ret->issued_ms + (snap->fresh_ms - snap->issued_ms);
	ret->renew_ms = ret->issued_ms + (snap->renew_ms - snap->issued_ms);
	ret->expires_ms = ret->issued_ms + (snap->expires_ms - snap->issued_ms);
	return now < ret->expires_ms;
}

bool token_view(const struct segment *seg, char *buf, size_t size,
                struct snapshot *ret)
{
	struct snapshot snap;

	if (!segment_read(seg, buf, size, &snap)) {
		memset(ret, 0, sizeof(*ret));
		ret->seq = 1; /* odd: a writer busy or dead */
		return false;
	}
	return usable(&snap, now_ms(), real_ms(), ret);
}

/*
 * A live segment under stray writes (issue 12). Each input is a list of
 * writes, each record: 2 bytes of offset (big-endian, modulo the page), 1
 * byte of length (1 to 16), that many bytes. They land on a segment that
 * holds a token, one at a time, with the plain stores of a buggy process;
 * after each, a reader takes what the library's readers take (the same
 * segment_read(), token_view() and cache_refresh_state()), and must see
 * either no token or a well-formed header line with ordered deadlines,
 * and a bounded refresh state. Then a lock holder takes the lock (a try:
 * a lock too damaged to take is what a rebuild is for, and the target
 * moves to a fresh segment as the library does), repairs, and a refresh
 * under the lease publishes a token that must read back exactly.
 */
#include <sys/mman.h>

#include "cache.h"
#include "fuzz.h"

#define TOKEN_HEADER                                                           \
	TOKEN_PREFIX "fuzz-live-0123456789abcdefghijklmnopqrstuvwxyz"

static void check_reader(const struct segment *seg)
{
	char buf[HEADER_MAX + 1];
	struct snapshot snap;
	struct refresh_state st;
	int64_t now = now_ms();

	if (segment_read(seg, buf, sizeof(buf), &snap) && snap.len > 0) {
		FUZZ_CHECK(snap.len >= 16 && snap.len <= HEADER_MAX);
		FUZZ_CHECK(memcmp(buf, "Authorization: ", 15) == 0);
		for (size_t i = 0; i < snap.len; i++)
			FUZZ_CHECK(buf[i] >= 0x20 && buf[i] <= 0x7e);
		FUZZ_CHECK(snap.issued_ms <= snap.fresh_ms &&
		           snap.fresh_ms <= snap.renew_ms &&
		           snap.renew_ms <= snap.expires_ms &&
		           snap.expires_ms - snap.issued_ms <= LIFE_MAX_MS);
	}
	if (token_view(seg, buf, sizeof(buf), &snap))
		FUZZ_CHECK(snap.expires_ms - now <=
		           LIFE_MAX_MS + CLOCK_SKEW_MS);
	cache_refresh_state(seg, now, &st);
	FUZZ_CHECK(st.next_attempt_ms <= now + BACKOFF_MAX_MS);
	FUZZ_CHECK((st.failures > 0) == (st.last_status < 0));
	FUZZ_CHECK(st.last_status >= UCAASAUTH_E_NOMEM);
	FUZZ_CHECK(memchr(st.error, 0, sizeof(st.error)) != NULL);
}

static void publish_token(struct segment *seg)
{
	int64_t now = now_ms();
	struct token_times t = {now, now + 600000, now + 840000, now + 900000,
	                        0};
	struct lease lease;
	char buf[HEADER_MAX + 1];
	struct snapshot snap;

	FUZZ_CHECK(segment_read(seg, NULL, 0, &snap));
	FUZZ_CHECK(cache_lease_take(seg, snap.generation, 10000, &lease) == 0);
	cache_lease_publish(seg, &lease, TOKEN_HEADER, strlen(TOKEN_HEADER), &t,
	                    "login", 0, NULL);
	FUZZ_CHECK(segment_read(seg, buf, sizeof(buf), &snap));
	FUZZ_CHECK(snap.len == strlen(TOKEN_HEADER));
	FUZZ_CHECK(memcmp(buf, TOKEN_HEADER, snap.len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct segment *seg = NULL;
	size_t at = 0;
	int r;

	FUZZ_CHECK(cache_open(CACHE_PROCESS, NULL, &seg) == 0);
	publish_token(seg);
	while (at + 3 <= size) {
		size_t off =
			((size_t)data[at] << 8 | data[at + 1]) % SEGMENT_SIZE;
		size_t n = 1 + data[at + 2] % 16;

		at += 3;
		for (size_t k = 0; k < n && at < size && off + k < SEGMENT_SIZE;
		     k++)
			((volatile uint8_t *)seg)[off + k] = data[at++];
		check_reader(seg);
	}
	r = cache_lock(seg, 0);
	if (r == 0) {
		cache_unlock(seg);
		/* Repaired: what is left reads as a token or none, and
		 * the state as a state. */
		check_reader(seg);
	} else {
		/* Unusable (or held by no one who will give it back): the
		 * library rebuilds. */
		cache_close(seg);
		FUZZ_CHECK(cache_open(CACHE_PROCESS, NULL, &seg) == 0);
	}
	/* A refresh after the damage works and is what readers get, unless
	 * the lease itself was written into (a live holder), which its
	 * deadline ends, or a backoff was written (which holds for the lease
 * too): the target then stops here. */
	struct refresh_state st;

	cache_refresh_state(seg, now_ms(), &st);
	if ((atomic_load(&seg->lease_pid) == 0 ||
	     atomic_load(&seg->lease_deadline_ms) <= now_ms()) &&
	    st.next_attempt_ms <= now_ms())
		publish_token(seg);
	cache_close(seg);
	return 0;
}

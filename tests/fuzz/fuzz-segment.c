/*
 * The segment validator. Each input becomes the bytes of a segment file in
 * a private runtime directory, at the path of the test identity; then
 * cache_open() must refuse it (a mode open to others), keep it (exactly
 * one page with a valid header: the mapping is then the file), or rebuild
 * it (anything else: the mapping is then a fresh segment). The result is
 * read through segment_read() and cache_refresh_state(), which must give a
 * bounded result consistent with the bytes written, or report a writer
 * busy when the sequence is odd. The same bytes, in a sealed memfd as
 * ucaas-authd hands them to its clients, must be refused by
 * cache_attach_fd() or mapped and read the same way.
 *
 * Byte 0 of an input lays the file out:
 *   bits 0-1  0: the rest, zero-padded or cut to the size;
 *             1: the rest, exactly (any size);
 *             2: a valid segment holding a token and a recorded failure,
 *                with the rest written over it from `seq` on;
 *             3: that segment, with the rest after bytes 1-2 (an offset,
 *                big-endian) written over it there;
 *   bits 2-4  the size for layouts 0, 2 and 3 (see `sizes`);
 *   bits 5-7  the file's mode (see `modes`).
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "fuzz.h"

#define IDENTITY                                                               \
	"v1\n0\nhttps://api.enablex.io/ucaas/v1\nfuzz-app\nfuzz@example.com"
#define TOKEN_HEADER TOKEN_PREFIX "fuzz-token-0123456789"
#define ERROR_TEXT "POST https://api.enablex.io/ucaas/v1/login: HTTP 503"

enum {
	PADDED,
	EXACT,
	OVER_BODY,
	OVER_AT
};

static const size_t sizes[8] = {
	SEGMENT_SIZE, SEGMENT_SIZE,     SEGMENT_SIZE,     SEGMENT_SIZE, 0,
	64,           SEGMENT_SIZE - 1, SEGMENT_SIZE + 1,
};
static const mode_t modes[8] = {
	0600, 0600, 0600, 0600, 0600, 0700, 0640, 0606,
};

static char dir[256], run[300], seg_path[PATH_MAX];
/* A segment just built, and one holding a token and a failure. */
static uint8_t fresh[SEGMENT_SIZE], sample[SEGMENT_SIZE];
static uint8_t *image;
static char *buf;

static void cleanup(void)
{
	struct dirent *e;
	char path[PATH_MAX + NAME_MAX + 2];
	DIR *d = opendir(run);

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", run, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(run);
	rmdir(dir);
}

static void find_segment(void)
{
	struct dirent *e;
	DIR *d = opendir(run);

	FUZZ_CHECK(d != NULL);
	while ((e = readdir(d)))
		if (strlen(e->d_name) == 32 + 4 &&
		    strcmp(e->d_name + 32, ".seg") == 0)
			snprintf(seg_path, sizeof(seg_path), "%s/%s", run,
			         e->d_name);
	closedir(d);
	FUZZ_CHECK(seg_path[0] != 0);
}

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");
	struct token_times times;
	struct segment *seg;
	int64_t now = now_ms();

	FUZZ_CHECK(snprintf(dir, sizeof(dir), "%s/fuzz-segment.XXXXXX",
	                    tmp && tmp[0] == '/' ? tmp : "/tmp") <
	           (int)sizeof(dir));
	FUZZ_CHECK(mkdtemp(dir) != NULL);
	atexit(cleanup);
	snprintf(run, sizeof(run), "%s/run", dir);
	FUZZ_CHECK(setenv("UCAASAUTH_RUNTIME_DIR", run, 1) == 0);

	FUZZ_CHECK(cache_open(CACHE_SHARED, IDENTITY, &seg) == 0);
	find_segment();
	memcpy(fresh, seg, SEGMENT_SIZE);
	times.issued_ms = now;
	times.fresh_ms = now + 600000;
	times.renew_ms = now + 840000;
	times.expires_ms = now + 900000;
	times.expires_real = 1700000000;
	FUZZ_CHECK(cache_lock(seg, 0) == 0);
	cache_publish(seg, TOKEN_HEADER, strlen(TOKEN_HEADER), &times, "login");
	cache_record_failure(seg, UCAASAUTH_E_UNAVAILABLE, ERROR_TEXT);
	cache_unlock(seg);
	memcpy(sample, seg, SEGMENT_SIZE);
	cache_close(seg);

	image = malloc(SEGMENT_SIZE * 2 + 65536);
	buf = malloc(HEADER_MAX + 1);
	FUZZ_CHECK(image && buf);
}

/* Lays out the file's bytes from the input; returns its size. */
static size_t lay_out(const uint8_t *data, size_t size, mode_t *ret_mode)
{
	size_t n, at = 0, len;
	int kind;

	if (size == 0) {
		*ret_mode = 0600;
		return 0;
	}
	kind = data[0] & 3;
	n = sizes[(data[0] >> 2) & 7];
	*ret_mode = modes[data[0] >> 5];
	data++;
	size--;
	if (kind == EXACT) {
		if (size > SEGMENT_SIZE * 2 + 65536)
			size = SEGMENT_SIZE * 2 + 65536;
		memcpy(image, data, size);
		return size;
	}
	memset(image, 0, n);
	if (kind == PADDED) {
		memcpy(image, data, size < n ? size : n);
		return n;
	}
	memcpy(image, sample, n < SEGMENT_SIZE ? n : SEGMENT_SIZE);
	if (kind == OVER_BODY) {
		at = offsetof(struct segment, seq);
	} else if (size >= 2) {
		at = ((size_t)data[0] << 8 | data[1]) % (SEGMENT_SIZE + 2);
		data += 2;
		size -= 2;
	}
	if (at < n) {
		len = n - at < size ? n - at : size;
		memcpy(image + at, data, len);
	}
	return n;
}

static void write_file(size_t len, mode_t mode)
{
	int fd = open(seg_path,
	              O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	              0600);

	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(fchmod(fd, mode) == 0);
	FUZZ_CHECK(write(fd, image, len) == (ssize_t)len);
	FUZZ_CHECK(close(fd) == 0);
}

/* A field of a segment image, by its offset (x86-64 and other
 * little-endian hosts: the low bytes come first). */
static uint64_t field(const uint8_t *img, size_t offset, size_t size)
{
	uint64_t v = 0;

	memcpy(&v, img + offset, size);
	return v;
}

#define FIELD(img, name)                                                       \
	field((img), offsetof(struct segment, name),                           \
	      sizeof(((struct segment *)0)->name))

/* What cache.c promises to keep: one page, our magic, layout and size,
 * and a builder that finished. */
static bool keepable(const uint8_t *img, size_t len)
{
	return len == SEGMENT_SIZE && FIELD(img, magic) == SEGMENT_MAGIC &&
	       FIELD(img, version) == SEGMENT_VERSION &&
	       FIELD(img, size) == SEGMENT_SIZE &&
	       FIELD(img, state) == SEGMENT_READY;
}

/* What a reader may take from the bytes, judged one byte at a time: the
 * reference for segment_read()'s word-at-a-time validation. */
static size_t servable(const uint8_t *img, bool copied)
{
	const uint8_t *h = img + offsetof(struct segment, header);
	uint32_t len = FIELD(img, len);
	int64_t issued = FIELD(img, issued_ms), fresh_at = FIELD(img, fresh_ms),
		renew = FIELD(img, renew_ms), expires = FIELD(img, expires_ms);

	if (len < 16 || len > HEADER_MAX)
		return 0;
	if (!(issued <= fresh_at && fresh_at <= renew && renew <= expires &&
	      expires - issued <= LIFE_MAX_MS))
		return 0;
	if (!copied)
		return len;
	if (memcmp(h, "Authorization: ", 15) != 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (h[i] < 0x20 || h[i] > 0x7e)
			return 0;
	return len;
}

/* The token part, through the seqlock, into buffers of several sizes. */
static void check_read(const struct segment *seg, const uint8_t *img)
{
	uint64_t seq = FIELD(img, seq);
	size_t want = servable(img, true), len = FIELD(img, len);
	struct snapshot snap;
	char *exact;
	bool ok;

	ok = segment_read(seg, buf, HEADER_MAX + 1, &snap);
	FUZZ_CHECK(ok == !(seq & 1));
	if (!ok)
		return;
	FUZZ_CHECK(snap.seq == seq && snap.len == want);
	FUZZ_CHECK(snap.generation == FIELD(img, generation));
	FUZZ_CHECK(snap.issued_ms == (int64_t)FIELD(img, issued_ms));
	FUZZ_CHECK(snap.fresh_ms == (int64_t)FIELD(img, fresh_ms));
	FUZZ_CHECK(snap.renew_ms == (int64_t)FIELD(img, renew_ms));
	FUZZ_CHECK(snap.expires_ms == (int64_t)FIELD(img, expires_ms));
	FUZZ_CHECK(memcmp(buf, img + offsetof(struct segment, header), want) ==
	           0);

	/* A buffer with no room for the NUL gets nothing written to it, and
	 * the length it would need (not judged: nothing was copied). */
	want = len < HEADER_MAX + 1 ? servable(img, false) : 0;
	exact = malloc(len ? len : 1);
	FUZZ_CHECK(exact != NULL);
	if (len <= HEADER_MAX)
		FUZZ_CHECK(segment_read(seg, exact, len, &snap) &&
		           snap.len == want);
	free(exact);
	exact = malloc(8);
	FUZZ_CHECK(exact != NULL);
	FUZZ_CHECK(segment_read(seg, exact, 8, &snap) && snap.len == want);
	free(exact);
}

static void check_state(const struct segment *seg, const uint8_t *img)
{
	int32_t status = (int32_t)FIELD(img, last_status);
	uint32_t failures = FIELD(img, failures);
	int64_t next = FIELD(img, next_attempt_ms), now = now_ms();
	bool failed = failures > 0 && status < 0 && status >= UCAASAUTH_E_NOMEM;
	struct refresh_state st;

	cache_refresh_state(seg, now, &st);
	FUZZ_CHECK(memchr(st.error, 0, sizeof(st.error)) != NULL);
	FUZZ_CHECK(st.last_status <= 0 && st.last_status >= UCAASAUTH_E_NOMEM);
	/* Never a backoff past its longest step, nor a status of 0 with a
	 * failure recorded. */
	FUZZ_CHECK(st.next_attempt_ms <= now_ms() + BACKOFF_MAX_MS);
	FUZZ_CHECK((st.failures > 0) == (st.last_status < 0));
	if (FIELD(img, seq) & 1)
		return; /* a writer that never finished: all zero */
	FUZZ_CHECK(st.logins == FIELD(img, logins));
	FUZZ_CHECK(st.expires_real == (int64_t)FIELD(img, expires_real));
	FUZZ_CHECK(st.failures == (failed ? failures : 0));
	FUZZ_CHECK(st.last_status == (failed ? status : 0));
	if (failed && next <= now + BACKOFF_MAX_MS)
		FUZZ_CHECK(st.next_attempt_ms == next);
	FUZZ_CHECK(memchr(st.answered_by, 0, sizeof(st.answered_by)) != NULL);
	FUZZ_CHECK(strncmp(st.answered_by,
	                   (const char *)img +
	                           offsetof(struct segment, answered_by),
	                   PROVIDER_NAME_MAX - 1) == 0);
}

/* A daemon client's side: the bytes as a sealed memfd. */
static void check_attach(size_t len)
{
	const struct segment *seg = NULL;
	int fd, r;

	fd = memfd_create("fuzz-segment", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write(fd, image, len) == (ssize_t)len);
	FUZZ_CHECK(fcntl(fd, F_ADD_SEALS,
	                 F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE |
	                         F_SEAL_SEAL) == 0);
	r = cache_attach_fd(fd, &seg);
	close(fd);
	if (!keepable(image, len)) {
		FUZZ_CHECK(r == UCAASAUTH_E_CACHE && seg == NULL);
		return;
	}
	FUZZ_CHECK(r == 0 && seg != NULL);
	FUZZ_CHECK(memcmp(seg, image, SEGMENT_SIZE) == 0);
	check_read(seg, image);
	check_state(seg, image);
	cache_close(seg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct segment *seg = NULL;
	const uint8_t *expect;
	mode_t mode;
	size_t len;
	int r;

	if (!image)
		setup();
	len = lay_out(data, size, &mode);
	check_attach(len);
	write_file(len, mode);

	r = cache_open(CACHE_SHARED, IDENTITY, &seg);
	if (mode & 077) {
		FUZZ_CHECK(r == UCAASAUTH_E_CACHE && seg == NULL);
		FUZZ_CHECK(strstr(ucaasauth_last_error(), "mode") != NULL);
		return 0;
	}
	FUZZ_CHECK(r == 0 && seg != NULL);
	expect = keepable(image, len) ? image : fresh;
	if (expect == fresh) /* each build draws a nonce of its own */
		memcpy(fresh + offsetof(struct segment, nonce), &seg->nonce,
		       sizeof(seg->nonce));
	FUZZ_CHECK(memcmp(seg, expect, SEGMENT_SIZE) == 0);
	check_read(seg, expect);
	check_state(seg, expect);
	cache_close(seg);
	return 0;
}

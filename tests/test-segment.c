/*
 * The shared segment under attack: squatted, loosened, swapped for a
 * symlink, truncated, from another version, or garbage. Each is refused
 * with UCAASAUTH_E_CACHE or rebuilt whole; none is ever read as valid.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "fixture.h"
#include "test.h"

static struct fixture fix;
static char seg_path[600];

/* Opens "tok" and returns the status of open, then of one header call. */
static int open_and_get(char *buf, size_t size)
{
	struct ucaasauth *ua;
	size_t len;
	int r;

	r = ucaasauth_open(&ua, "tok", 0);
	if (r < 0)
		return r;
	r = ucaasauth_header(ua, buf, size, &len);
	ucaasauth_close(ua);
	return r;
}

static void find_segment(void)
{
	struct dirent *e;
	DIR *d = opendir(fix.runtime);

	CHECK(d != NULL);
	seg_path[0] = 0;
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".seg") &&
		    strlen(e->d_name) == 32 + strlen(".seg"))
			snprintf(seg_path, sizeof(seg_path), "%s/%s",
			         fix.runtime, e->d_name);
	closedir(d);
	CHECK(seg_path[0] != 0);
}

/* Writes `len` bytes of `data` at `offset` of the segment file. */
static void poke(off_t offset, const void *data, size_t len)
{
	int fd = open(seg_path, O_WRONLY);

	CHECK(fd >= 0);
	CHECK_INT(pwrite(fd, data, len, offset), (long long)len);
	close(fd);
}

/* After damage: open rebuilds, a new login happens, the header works. */
static void expect_rebuilt(const char *what)
{
	char buf[4096];
	long before = mock_stat(&fix.mock, "logins");

	printf("rebuilt: %s\n", what);
	CHECK_INT(open_and_get(buf, sizeof(buf)), 0);
	CHECK_INT(mock_stat(&fix.mock, "logins"), before + 1);
	CHECK_INT(mock_customers(&fix.mock, buf), 200);
}

static void expect_refused(const char *what, const char *detail)
{
	char buf[4096];
	long before = mock_stat(&fix.mock, "logins");

	printf("refused: %s\n", what);
	CHECK_INT(open_and_get(buf, sizeof(buf)), UCAASAUTH_E_CACHE);
	CHECK_ERROR_HAS(detail);
	CHECK_INT(mock_stat(&fix.mock, "logins"), before);
}

static void test_content(void)
{
	char buf[4096], junk[SEGMENT_SIZE];
	uint32_t v;

	CHECK_INT(open_and_get(buf, sizeof(buf)), 0);
	find_segment();

	v = SEGMENT_VERSION + 1;
	poke(offsetof(struct segment, version), &v, sizeof(v));
	expect_rebuilt("another layout version");

	v = 0xdeadbeef;
	poke(offsetof(struct segment, magic), &v, sizeof(v));
	expect_rebuilt("wrong magic");

	v = SEGMENT_INITIALISING;
	poke(offsetof(struct segment, state), &v, sizeof(v));
	expect_rebuilt("half initialised");

	CHECK_INT(truncate(seg_path, 100), 0);
	expect_rebuilt("too small");

	CHECK_INT(truncate(seg_path, 2 * SEGMENT_SIZE), 0);
	expect_rebuilt("too large");

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 7);
	poke(0, junk, sizeof(junk));
	expect_rebuilt("garbage");

	/* A valid header but a length beyond the buffer: never indexed. */
	CHECK_INT(open_and_get(buf, sizeof(buf)), 0);
	v = 0xffff;
	poke(offsetof(struct segment, len), &v, sizeof(v));
	{
		long before = mock_stat(&fix.mock, "logins");
		/* Read as "no token": a login, and a sound header. */
		CHECK_INT(open_and_get(buf, sizeof(buf)), 0);
		CHECK_INT(mock_stat(&fix.mock, "logins"), before + 1);
		CHECK_INT(mock_customers(&fix.mock, buf), 200);
	}
}

static void test_permissions(void)
{
	char buf[4096], other[700];

	CHECK_INT(open_and_get(buf, sizeof(buf)), 0);
	find_segment();

	CHECK_INT(chmod(seg_path, 0660), 0);
	expect_refused("group-writable segment", "mode 0660");
	CHECK_INT(chmod(seg_path, 0604), 0);
	expect_refused("world-readable segment", "mode 0604");
	CHECK_INT(chmod(seg_path, 0600), 0);

	snprintf(other, sizeof(other), "%s/elsewhere", fix.dir);
	CHECK_INT(rename(seg_path, other), 0);
	CHECK_INT(symlink(other, seg_path), 0);
	expect_refused("symlinked segment", "symbolic link");
	CHECK_INT(unlink(seg_path), 0);
	CHECK_INT(rename(other, seg_path), 0);

	CHECK_INT(mkfifo(other, 0600), 0);
	CHECK_INT(unlink(seg_path), 0);
	CHECK_INT(rename(other, seg_path), 0);
	expect_refused("a FIFO", "not a regular file");
	CHECK_INT(unlink(seg_path), 0);
	CHECK_INT(open_and_get(buf, sizeof(buf)), 0);

	CHECK_INT(chmod(fix.runtime, 0755), 0);
	expect_refused("cache directory open to others", "mode 0755");
	CHECK_INT(chmod(fix.runtime, 0700), 0);

	if (geteuid() != 0) {
		printf("skipped: other-user cases need root\n");
		return;
	}
	CHECK_INT(chown(seg_path, 65534, 65534), 0);
	expect_refused("segment owned by another user", "owned by uid 65534");
	CHECK_INT(chown(seg_path, 0, 0), 0);

	/* The /dev/shm attack: another user made our directory first. */
	CHECK_INT(chown(fix.runtime, 65534, 65534), 0);
	expect_refused("cache directory owned by another user",
	               "owned by uid 65534");
	CHECK_INT(chown(fix.runtime, 0, 0), 0);

	snprintf(other, sizeof(other), "%s/run-real", fix.dir);
	CHECK_INT(rename(fix.runtime, other), 0);
	CHECK_INT(symlink(other, fix.runtime), 0);
	expect_refused("cache directory is a symlink", "symbolic link");
	CHECK_INT(unlink(fix.runtime), 0);
	CHECK_INT(rename(other, fix.runtime), 0);
	CHECK_INT(open_and_get(buf, sizeof(buf)), 0);
}

/* The mapping is locked in memory and kept out of core dumps. */
static void test_mapping(void)
{
	struct ucaasauth *ua;
	char line[512], buf[4096];
	size_t len;
	bool found = false;
	FILE *fp;

	CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
	find_segment();
	fp = fopen("/proc/self/smaps", "r");
	CHECK(fp != NULL);
	while (fgets(line, sizeof(line), fp)) {
		if (strstr(line, seg_path))
			found = true;
		else if (found && strncmp(line, "VmFlags:", 8) == 0) {
			/* AddressSanitizer turns mlock() into a no-op. */
			if (!TEST_ASAN)
				CHECK(strstr(line, " lo") !=
				      NULL);                /* mlocked */
			CHECK(strstr(line, " dd") != NULL); /* no dump */
			break;
		}
	}
	fclose(fp);
	CHECK(found);
	ucaasauth_close(ua);
}

/* The reader's header check, word and vector arithmetic, against the
 * byte-by-byte rule: every length, a bad byte of every kind at every
 * place. */
static void test_header_check(void)
{
	static const unsigned char bad[] = {0x00, 0x0a, 0x0d, 0x1f, 0x7f,
	                                    0x80, 0xa0, 0xdf, 0xff};
	char line[HEADER_MAX + 16];
	unsigned checked = 0;

	for (size_t len = 16; len <= 300; len++) {
		memcpy(line, "Authorization: Token ", 21);
		for (size_t i = 15; i < len; i++)
			line[i] = (char)(0x20 + (i * 7) % 0x5f);
		memcpy(line, "Authorization: ", 15);
		CHECK(header_line_ok(line, len));
		for (size_t at = 0; at < len; at++)
			for (size_t b = 0; b < sizeof(bad); b++) {
				char keep = line[at];
				line[at] = (char)bad[b];
				if (header_line_ok(line, len))
					fprintf(stderr,
					        "byte %#x at %zu of %zu "
					        "passed\n",
					        bad[b], at, len);
				CHECK(!header_line_ok(line, len));
				line[at] = keep;
				checked++;
			}
		/* Printable, but not a header line. */
		line[3] = 'X';
		CHECK(!header_line_ok(line, len));
	}
	printf("header check: %u bad lines refused\n", checked);
}

int main(void)
{
	test_header_check();
	fixture_start(&fix, 900, NULL);
	test_content();
	test_permissions();
	test_mapping();
	fixture_stop(&fix);
	TEST_DONE();
}

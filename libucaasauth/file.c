/* Reading and writing the files that hold secrets or decide where they go. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "internal.h"

/*
 * Who may own a file or directory that holds secrets or decides what runs,
 * and which mode bits it must not have: one table for every such check in
 * the library and the daemon. ssh's rule for private keys, PAM's for its
 * modules: a secret another user could read, or a file another user could
 * have written, is refused rather than trusted.
 */
static const struct {
	bool root_ok;       /* root may own it too */
	unsigned forbidden; /* mode bits it must not have */
	const char *too_open; /* what those bits would let others do */
} rules[] = {
	[OWNER_SELF] = {false, 077, "lets group or others in (expected no "
	                            "access for them: 0600, or 0700 for a "
	                            "directory)"},
	[OWNER_SELF_OR_ROOT] = {true, 022, "lets group or others write it"},
	[OWNER_CREDENTIALS_DIR] = {true, 007, "lets others in (expected no "
	                                      "access for others)"},
};

int file_check(const struct stat *st, mode_t type, enum file_owner owner,
               uid_t also, const char *what, const char *path, int status)
{
	uid_t uid = geteuid();
	unsigned mode = st->st_mode & 07777;
	char expected[64];

	if ((st->st_mode & S_IFMT) != type)
		return fail(status, "%s %s: not a %s", what, path,
		            type == S_IFDIR ? "directory" : "regular file");
	if (st->st_uid != uid && st->st_uid != also &&
	    !(rules[owner].root_ok && st->st_uid == 0)) {
		int n = snprintf(expected, sizeof(expected), "%s%u",
		                 rules[owner].root_ok ? "root or " : "",
		                 (unsigned)uid);
		if (also != NO_UID && n > 0 && (size_t)n < sizeof(expected))
			snprintf(expected + n, sizeof(expected) - n, " or %u",
			         (unsigned)also);
		return fail(status, "%s %s: owned by uid %u, expected %s", what,
		            path, (unsigned)st->st_uid, expected);
	}
	if (mode & rules[owner].forbidden)
		return fail(status, "%s %s: mode %04o %s", what, path, mode,
		            rules[owner].too_open);
	return 0;
}

/* PAM's rule for its modules: a file or directory that anyone but root
 * or us could write could run anyone's code in our process. Directories
 * are judged where their links lead. */
static int check_trusted(const char *path, const char *what, bool dir)
{
	struct stat st;

	if ((dir ? stat(path, &st) : lstat(path, &st)) < 0)
		return fail(UCAASAUTH_E_CONFIG, "%s %s: %s", what, path,
		            strerror(errno));
	return file_check(&st, dir ? S_IFDIR : S_IFREG, OWNER_SELF_OR_ROOT,
	                  NO_UID, what, path, UCAASAUTH_E_CONFIG);
}

/* The directory part of path, "/" for a file at the root. */
static void parent(const char *path, char *out, size_t size)
{
	char *slash;

	snprintf(out, size, "%s", path);
	slash = strrchr(out, '/');
	if (slash)
		slash[slash == out ? 1 : 0] = 0;
}

int file_trusted(const char *path, const char *what)
{
	char dir[PATH_MAX], real[PATH_MAX];
	int r;

	if (path[0] != '/')
		return fail(UCAASAUTH_E_CONFIG, "%s %s: not an absolute path",
		            what, path);
	/* The directory named (whoever can write it can swap the name),
	 * then the file where it really is, and the directory holding it. */
	parent(path, dir, sizeof(dir));
	r = check_trusted(dir, "directory of", true);
	if (r < 0)
		return r;
	if (!realpath(path, real))
		return fail(UCAASAUTH_E_CONFIG, "%s %s: %s", what, path,
		            strerror(errno));
	parent(real, dir, sizeof(dir));
	r = check_trusted(dir, "directory of", true);
	return r < 0 ? r : check_trusted(real, what, false);
}

int file_read(const char *path, const char *what, enum file_owner owner,
              size_t max, bool secret, int status, uint8_t **ret_data,
              size_t *ret_len)
{
	struct stat st;
	uint8_t *data = NULL;
	size_t len = 0;
	int r, fd;

	/* Secrets are never read through a symlink: the link could point
	 * anywhere the attacker likes after our checks. */
	/* O_NONBLOCK: a FIFO planted at the path must not hang us before
	 * the type check refuses it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
	                        (owner == OWNER_SELF ? O_NOFOLLOW : 0));
	if (fd < 0) {
		if (errno == ELOOP)
			return fail(status, "%s %s: is a symbolic link", what,
			            path);
		return fail_errno(status, errno, what, path);
	}
	if (fstat(fd, &st) < 0) {
		r = fail_errno(status, errno, what, path);
		goto out;
	}
	r = file_check(&st, S_IFREG, owner, NO_UID, what, path, status);
	if (r < 0)
		goto out;
	if ((uintmax_t)st.st_size > max) {
		r = fail(status, "%s %s: %jd bytes, more than the %zu allowed",
		         what, path, (intmax_t)st.st_size, max);
		goto out;
	}
	/* One byte more than the size, for a NUL and to notice growth. */
	data = secret ? sodium_malloc(st.st_size + 1)
	              : malloc(st.st_size + 1);
	if (!data) {
		r = fail(UCAASAUTH_E_NOMEM, "%s %s: out of memory", what, path);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, data + len, st.st_size + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = fail_errno(status, errno, what, path);
			goto out;
		}
		if (n == 0)
			break;
		len += n;
		if (len > (size_t)st.st_size) {
			r = fail(status, "%s %s: changed while being read",
			         what, path);
			goto out;
		}
	}
	data[len] = 0;
	*ret_data = data;
	*ret_len = len;
	data = NULL;
	r = 0;
out:
	if (data) {
		if (secret)
			sodium_free(data);
		else
			free(data);
	}
	close(fd);
	return r;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= n;
	}
	return 0;
}

static int fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	int fd, r = 0;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int file_write_atomic(const char *path, const char *what, const void *data,
                      size_t len, mode_t mode, int status)
{
	char tmp[PATH_MAX];
	uint32_t rnd = randombytes_random();
	int fd, r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%08x", path, rnd) >=
	    (int)sizeof(tmp))
		return fail(status, "%s %s: path too long", what, path);
	/* Created with its final mode: there is no moment at which another
	 * user could open it. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	          mode);
	if (fd < 0)
		return fail_errno(status, errno, what, tmp);
	r = write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return fail_errno(status, -r, what, path);
	}
	r = fsync_parent(path);
	if (r < 0)
		return fail_errno(status, -r, what, path);
	return 0;
}

int file_make_parent(const char *path, int status)
{
	char dir[PATH_MAX];
	const char *d;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return fail(status, "%s: path too long", path);
	d = dirname(dir);
	/* Made with its final mode, never chmod-ed: see git's
	 * credential-cache daemon for the race a later chmod opens. */
	if (mkdir(d, 0700) < 0 && errno != EEXIST)
		return fail_errno(status, errno, "directory", d);
	return 0;
}

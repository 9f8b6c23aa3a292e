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
	bool root_ok;         /* root may own it too */
	unsigned forbidden;   /* mode bits it must not have */
	const char *too_open; /* what those bits would let others do */
} rules[] = {
	[OWNER_SELF] = {false, 077,
                        "lets group or others in (expected no "
                        "access for them: 0600, or 0700 for a "
                        "directory)"},
	[OWNER_SELF_OR_ROOT] = {true, 022, "lets group or others write it"},
	[OWNER_CREDENTIALS_DIR] = {true, 007,
                                   "lets others in (expected no "
                                   "access for others)"},
	/* A symbolic link (its mode means nothing), or a sticky directory
	 * such as /tmp: others may add names to it but not rename or remove
	 * ours, and the walk below checks what it takes from it in turn. */
	[OWNER_SELF_OR_ROOT_ANY_MODE] = {true, 0, ""},
};

int file_check(const struct stat *st, mode_t type, enum file_owner owner,
               uid_t also, const char *what, const char *path, int status)
{
	uid_t uid = geteuid();
	unsigned mode = st->st_mode & 07777;
	char expected[64];

	if ((st->st_mode & S_IFMT) != type)
		return fail(status, "%s %s: not a %s", what, path,
		            type == S_IFDIR   ? "directory"
		            : type == S_IFLNK ? "symbolic link"
		                              : "regular file");
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

/*
 * file_open_trusted() resolves a path the way the kernel would, one name
 * at a time from "/", each opened with O_PATH | O_NOFOLLOW relative to the
 * directory before it; it reads and follows symbolic links itself, and
 * checks every directory it passes through: OpenSSH's safe_path(), which
 * checks each directory above a file, extended to the directories a link
 * leads through (whoever can write one of them can swap a name in it).
 * PAM's rule for its modules: anything that anyone but root or we could
 * write could run anyone's code in our process. What was checked is what
 * the caller uses: the final file as a descriptor, never its name again.
 */
#define LINKS_MAX 40 /* the kernel's limit on links in one lookup */

struct walk {
	const char *path, *what; /* as configured, for messages */
	char where[PATH_MAX];    /* the directory reached, as a path */
	int dir;                 /* ... and open, O_PATH */
};

/* st of `at`, judged with the rule, the message naming the path as
 * configured and, when the walk found another, that one too. */
static int check(const struct walk *w, const struct stat *st, mode_t type,
                 enum file_owner owner, const char *kind, const char *at)
{
	char label[PATH_MAX + 64];

	if (!kind && strcmp(at, w->path) == 0)
		return file_check(st, type, owner, NO_UID, w->what, w->path,
		                  UCAASAUTH_E_CONFIG);
	snprintf(label, sizeof(label), "%s %s: %s", w->what, w->path,
	         kind ? kind : "file");
	return file_check(st, type, owner, NO_UID, label, at,
	                  UCAASAUTH_E_CONFIG);
}

static int refuse_errno(const struct walk *w, int err, const char *kind,
                        const char *at)
{
	if (!kind && strcmp(at, w->path) == 0)
		return fail_errno(UCAASAUTH_E_CONFIG, err, w->what, w->path);
	return fail(UCAASAUTH_E_CONFIG, "%s %s: %s %s: %s", w->what, w->path,
	            kind ? kind : "file", at, strerror(err));
}

/* A directory the walk passes through. Sticky (/tmp) may be writable by
 * others: nobody else can rename or remove what is ours or root's in it,
 * and whatever the walk takes from it next must be ours or root's. */
static int check_dir(const struct walk *w, const struct stat *st,
                     const char *at)
{
	return check(w, st, S_IFDIR,
	             (st->st_mode & S_ISVTX) ? OWNER_SELF_OR_ROOT_ANY_MODE
	                                     : OWNER_SELF_OR_ROOT,
	             "directory", at);
}

/* Back to "/", checked. */
static int walk_root(struct walk *w)
{
	struct stat st;

	if (w->dir >= 0)
		close(w->dir);
	snprintf(w->where, sizeof(w->where), "/");
	w->dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (w->dir < 0 || fstat(w->dir, &st) < 0)
		return refuse_errno(w, errno, "directory", "/");
	return check_dir(w, &st, "/");
}

/* where/name, or where's parent for "..". */
static int step(const struct walk *w, const char *name, char *out, size_t size)
{
	char *slash;

	if (strcmp(name, "..") == 0) {
		snprintf(out, size, "%s", w->where);
		slash = strrchr(out, '/');
		slash[slash == out ? 1 : 0] = 0;
		return 0;
	}
	if (snprintf(out, size, "%s%s%s", w->where,
	             strcmp(w->where, "/") == 0 ? "" : "/", name) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

int file_open_trusted(const char *path, const char *what, int *ret_fd)
{
	struct walk w = {.path = path, .what = what, .dir = -1};
	char rest[PATH_MAX], target[PATH_MAX], name[NAME_MAX + 1], at[PATH_MAX];
	const char *p = rest;
	int links = 0, fd = -1, r;

	if (path[0] != '/')
		return fail(UCAASAUTH_E_CONFIG, "%s %s: not an absolute path",
		            what, path);
	if (snprintf(rest, sizeof(rest), "%s", path) >= (int)sizeof(rest))
		return fail(UCAASAUTH_E_CONFIG, "%s %s: path too long", what,
		            path);
	r = walk_root(&w);
	while (r == 0) {
		struct stat st;
		size_t len;
		bool last;

		p += strspn(p, "/");
		len = strcspn(p, "/");
		if (len == 0) { /* "/", or a name ending in '/' */
			if (fstat(w.dir, &st) < 0)
				r = refuse_errno(&w, errno, NULL, w.where);
			else
				r = check(&w, &st, S_IFREG, OWNER_SELF_OR_ROOT,
				          NULL, w.where);
			break;
		}
		if (len > NAME_MAX) {
			r = refuse_errno(&w, ENAMETOOLONG, NULL, path);
			break;
		}
		memcpy(name, p, len);
		name[len] = 0;
		p += len;
		last = *p == 0; /* "dir/" ends in the branch above */
		if (strcmp(name, ".") == 0 && !last)
			continue;
		if (step(&w, name, at, sizeof(at)) < 0) {
			r = refuse_errno(&w, ENAMETOOLONG, NULL, path);
			break;
		}
		fd = openat(w.dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0) {
			r = refuse_errno(&w, errno, last ? NULL : "directory",
			                 at);
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			ssize_t n;

			r = check(&w, &st, S_IFLNK, OWNER_SELF_OR_ROOT_ANY_MODE,
			          "link", at);
			if (r < 0)
				break;
			if (++links > LINKS_MAX) {
				r = refuse_errno(&w, ELOOP, NULL, path);
				break;
			}
			/* Read from the link opened, not by its name again. */
			n = readlinkat(fd, "", target, sizeof(target));
			if (n <= 0 || n == sizeof(target)) {
				r = refuse_errno(&w,
				                 n < 0    ? errno
				                 : n == 0 ? ENOENT
				                          : ENAMETOOLONG,
				                 "link", at);
				break;
			}
			close(fd);
			fd = -1;
			/* The link's text in place of its name: p is empty
			 * or starts with '/'. */
			if (snprintf(at, sizeof(at), "%.*s%s", (int)n, target,
			             p) >= (int)sizeof(at)) {
				r = refuse_errno(&w, ENAMETOOLONG, NULL, path);
				break;
			}
			memcpy(rest, at, sizeof(rest));
			p = rest;
			if (target[0] == '/')
				r = walk_root(&w);
			continue;
		}
		if (!last) {
			r = check_dir(&w, &st, at);
			if (r < 0)
				break;
			close(w.dir);
			w.dir = fd;
			fd = -1;
			memcpy(w.where, at, sizeof(w.where));
			continue;
		}
		r = check(&w, &st, S_IFREG, OWNER_SELF_OR_ROOT, NULL, at);
		if (r == 0) {
			*ret_fd = fd;
			fd = -1;
		}
		break;
	}
	if (fd >= 0)
		close(fd);
	if (w.dir >= 0)
		close(w.dir);
	return r;
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
	data = secret ? sodium_malloc(st.st_size + 1) : malloc(st.st_size + 1);
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

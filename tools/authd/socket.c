/*
 * The socket and its directory, made so that only the daemon's user (and
 * root) can put a socket at the path: what the clients check before they
 * believe an answer.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "authd.h"
#include "protocol.h"

/* Made with its final mode: 0700, or 0750 for the first of allow_groups.
 * An existing one (systemd's RuntimeDirectory=) must be ours or root's
 * and writable by nobody else: what the clients check too. */
static int make_socket_dir(const char *sock)
{
	char dir[PATH_MAX];
	gid_t group = (gid_t)-1;
	char *slash;

	snprintf(dir, sizeof(dir), "%s", sock);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir) {
		log_msg(LOG_ERR, "socket %s: needs a directory of its own",
		        sock);
		return -1;
	}
	*slash = 0;
	for (size_t i = 0; i < n_served && group == (gid_t)-1; i++)
		if (served[i].allow.n_gids)
			group = served[i].allow.gids[0];
	/* Made with its final mode whatever the umask (UMask=0077 would
	 * shut the group out); never chmod-ed afterwards. */
	mode_t old = umask(0);
	int made = mkdir(dir, group == (gid_t)-1 ? 0700 : 0750);
	umask(old);
	if (made == 0) {
		if (group != (gid_t)-1 && chown(dir, (uid_t)-1, group) < 0) {
			log_msg(LOG_ERR, "socket directory %s: chown: %s", dir,
			        strerror(errno));
			return -1;
		}
		return 0;
	}
	if (errno != EEXIST) {
		log_msg(LOG_ERR, "socket directory %s: %s", dir,
		        strerror(errno));
		return -1;
	}
	if (socket_dir_check(sock, NO_UID, UCAASAUTH_E_CONFIG) < 0) {
		log_msg(LOG_ERR, "%s", ucaasauth_last_error());
		return -1;
	}
	return 0;
}

int server_listen(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct stat st;
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		log_msg(LOG_ERR, "socket %s: path too long", path);
		return -1;
	}
	memcpy(addr.sun_path, path, strlen(path));
	if (make_socket_dir(path) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* A socket left by a daemon that died is replaced; one a live daemon
	 * answers on is not ours to take; anything else is refused. */
	if (lstat(path, &st) == 0) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live =
			probe >= 0 && connect(probe, (struct sockaddr *)&addr,
		                              sizeof(addr)) == 0;
		if (probe >= 0)
			close(probe);
		if (live || !S_ISSOCK(st.st_mode) || unlink(path) < 0) {
			log_msg(LOG_ERR, "socket %s: %s", path,
			        live ? "another ucaas-authd is serving it"
			             : "exists and is not a socket");
			close(fd);
			return -1;
		}
	}
	/* The directory keeps strangers out; every peer is checked anyway. */
	old = umask(0111);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(fd, 128) < 0) {
		umask(old);
		log_msg(LOG_ERR, "socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	return fd;
}

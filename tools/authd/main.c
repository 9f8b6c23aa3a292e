/*
 * ucaas-authd: holds the credentials of the profiles whose cache = daemon,
 * keeps their tokens fresh ahead of expiry, and hands clients a sealed,
 * read-only view of each token's segment over a Unix socket.
 *
 * This file: options, signals, the log and sd_notify. The main thread
 * polls the socket, the clients and the signals (server.c); one thread
 * per profile logs in (refresher.c).
 */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>

#include "authd.h"

struct served *served;
size_t n_served;
int reload_event = -1;
static bool journal, reloading;

void log_msg(int level, const char *fmt, ...)
{
	static const char *const names[] = {
		[LOG_ERR] = "error",
		[LOG_WARNING] = "warning",
		[LOG_INFO] = "info",
	};
	char text[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* journald reads the level from "<N>"; elsewhere, a plain word. */
	if (journal)
		fprintf(stderr, "<%d>%s\n", level, text);
	else
		fprintf(stderr, "ucaas-authd: %s: %s\n", names[level], text);
}

/* One datagram, without libsystemd. */
void notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	size_t len;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@') ||
	    (len = strlen(path)) >= sizeof(addr.sun_path))
		return;
	memcpy(addr.sun_path, path, len);
	if (path[0] == '@')
		addr.sun_path[0] = 0; /* abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr,
	       offsetof(struct sockaddr_un, sun_path) + len);
	close(fd);
}

/* READY=1 once every refresher has swapped the reload in: when systemctl
 * reload returns, who was removed from an allow list has lost the
 * segment. */
void on_reloaded(void)
{
	for (size_t i = 0; reloading && i < n_served; i++)
		if (!profile_reloaded(&served[i]))
			return;
	if (reloading)
		notify("READY=1");
	reloading = false;
}

bool on_signal(int signo)
{
	if (signo != SIGHUP)
		return false;
	notify("RELOADING=1");
	log_msg(LOG_INFO, "SIGHUP: reloading");
	for (size_t i = 0; i < n_served; i++)
		profile_reload(&served[i]);
	reloading = true;
	on_reloaded();
	return true;
}

/* The profiles named, or every one with cache = daemon; all on one
 * socket. */
static int start_profiles(const struct config *config, int argc, char **argv,
                          const char **ret_sock)
{
	const char *sock = NULL;

	for (int a = optind; a < argc; a++) {
		const struct profile *p;
		if (config_find(config, argv[a], &p) < 0) {
			log_msg(LOG_ERR, "%s", ucaasauth_last_error());
			return -1;
		}
	}
	for (size_t i = 0; i < config->n_profiles; i++) {
		const struct profile *p = &config->profiles[i];
		bool named = optind >= argc;

		for (int a = optind; a < argc; a++)
			named = named || strcmp(argv[a], p->name) == 0;
		if (!named || (optind >= argc && p->cache != CACHE_DAEMON))
			continue;
		if (sock && strcmp(sock, p->socket) != 0) {
			log_msg(LOG_ERR,
			        "profiles name different sockets (%s, %s): run "
			        "one daemon per socket",
			        sock, p->socket);
			return -1;
		}
		sock = p->socket;
		if (profile_start(&served[n_served++], p->name) < 0)
			return -1;
		log_msg(LOG_INFO, "serving profile '%s' (%s provider)", p->name,
		        provider_name(p->provider));
	}
	if (n_served == 0) {
		log_msg(LOG_ERR, "%s: no profile to serve (cache = daemon)",
		        config->path);
		return -1;
	}
	*ret_sock = sock;
	return 0;
}

static const char usage_text[] =
	"usage: ucaas-authd [--config FILE] [PROFILE...]\n"
	"Serves the named profiles, or every profile with cache = daemon.\n"
	"See ucaas-authd(8).\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	struct config *config = NULL;
	char path[PATH_MAX];
	char *sock = NULL;
	const char *name;
	sigset_t mask;
	int c, lfd = -1, sigfd = -1, status = 1;

	while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			setenv("UCAASAUTH_CONFIG", optarg, 1);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("ucaas-authd %s\n", UCAASAUTH_VERSION);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	journal = getenv("JOURNAL_STREAM") != NULL;
	if (sodium_init() < 0)
		return 1;
	/* Signals arrive through signalfd in the main loop, never in the
	 * refresher threads (which inherit this mask). */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (config_path(path, sizeof(path)) < 0 ||
	    config_load(path, &config) < 0) {
		log_msg(LOG_ERR, "%s", ucaasauth_last_error());
		return 1;
	}
	served = calloc(config->n_profiles, sizeof(*served));
	reload_event = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!served || reload_event < 0 ||
	    start_profiles(config, argc, argv, &name) < 0 ||
	    !(sock = strdup(name)))
		goto out;
	/* The socket's path outlives the configuration read at start. */
	config_free(config);
	config = NULL;
	lfd = server_listen(sock);
	sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (lfd < 0 || sigfd < 0)
		goto out;
	log_msg(LOG_INFO, "listening on %s", sock);
	notify("READY=1");
	status = server_run(lfd, sigfd) < 0 ? 1 : 0;
	notify("STOPPING=1");
	log_msg(LOG_INFO, "stopping");
out:
	server_close();
	for (size_t i = 0; i < n_served; i++)
		profile_stop(&served[i]);
	free(served);
	if (lfd >= 0) {
		unlink(sock);
		close(lfd);
	}
	if (sigfd >= 0)
		close(sigfd);
	if (reload_event >= 0)
		close(reload_event);
	free(sock);
	config_free(config);
	return status;
}

/*
 * prefork-server PROFILE URL PORT-FILE [WORKERS]: a prefork HTTP server
 * that calls the UCaaS API for every request it serves, the way a program
 * of this kind uses libucaasauth:
 *
 *  - the parent opens the profile once (ucaasauth_open does no network
 *    I/O), listens on 127.0.0.1 and forks WORKERS (default 4) workers,
 *    which share the handle and the listening socket;
 *  - each worker takes one connection at a time and serves its requests
 *    (HTTP/1.1 with keep-alive, no request bodies): for each, it GETs URL
 *    with the header from ucaasauth_header() and, on a 401 or 403, calls
 *    ucaasauth_reject() with the header it sent and tries once more;
 *  - it answers 200 when the API said 200, 502 otherwise.
 *
 * However many workers there are, the host logs in once per token
 * lifetime, and once more when the API drops the token: the workers that
 * see the same 401 reject the same header, and only the first reject
 * drops it.
 *
 * The port, chosen by the kernel, is written to PORT-FILE (a temporary
 * file renamed into place) once the workers run. SIGTERM or SIGINT stops
 * the server: the parent ends the workers and reaps them; a worker whose
 * parent dies ends too. Exits 1 if a worker ends on its own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ucaasauth.h"

#define WORKERS_MAX 64

/* Only the status of the API's answer matters here. */
static size_t discard(char *data, size_t size, size_t n, void *user)
{
	return size * n;
}

/* One GET of the API with the header line: the HTTP status, or 0 when
 * there was no answer. */
static long get(CURL *curl, const char *url, const char *header)
{
	struct curl_slist *list = curl_slist_append(NULL, header);
	long status = 0;

	if (!list)
		return 0;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
	if (curl_easy_perform(curl) == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
	/* The list holds a copy of the header: wiping it is ours to do. */
	explicit_bzero(list->data, strlen(list->data));
	curl_slist_free_all(list);
	return status;
}

/* The API call behind one request: 200 if the API said 200, else 502. */
static int call_api(struct ucaasauth *ua, CURL *curl, const char *url)
{
	char header[4096];
	size_t len;
	long status = 0;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (ucaasauth_header(ua, header, sizeof(header), &len) !=
		    UCAASAUTH_OK) {
			fprintf(stderr, "prefork-server: %s\n",
			        ucaasauth_last_error());
			break;
		}
		status = get(curl, url, header);
		if (status != 401 && status != 403)
			break;
		/* This exact header, not "whatever is current": if another
		 * worker has already replaced it, nothing is dropped. */
		if (ucaasauth_reject(ua, header) != UCAASAUTH_OK) {
			fprintf(stderr, "prefork-server: %s\n",
			        ucaasauth_last_error());
			break;
		}
	}
	explicit_bzero(header, sizeof(header));
	return status == 200 ? 200 : 502;
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Serves a connection's requests until the client closes it or asks to,
 * goes idle for 10 s, or sends what this server does not take. */
static void serve(int fd, struct ucaasauth *ua, CURL *curl, const char *url)
{
	char buf[8192], out[256];
	size_t used = 0;

	for (;;) {
		const char *text = "ok\n";
		char *end;
		size_t head;
		bool close_after;
		int code, n;

		while (!(end = memmem(buf, used, "\r\n\r\n", 4))) {
			ssize_t got;
			if (used == sizeof(buf) - 1)
				return; /* headers too long */
			got = read(fd, buf + used, sizeof(buf) - 1 - used);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				return;
			used += (size_t)got;
		}
		head = (size_t)(end - buf) + 4;
		end[2] = 0; /* the request line and headers, each ending \r\n */
		close_after = strcasestr(buf, "\nconnection: close\r") ||
		              strstr(buf, " HTTP/1.0\r");
		if (strcasestr(buf, "\ncontent-length:") ||
		    strcasestr(buf, "\ntransfer-encoding:")) {
			code = 400;
			text = "no request bodies here\n";
			close_after = true;
		} else {
			code = call_api(ua, curl, url);
			if (code != 200)
				text = "the API refused the call\n";
		}
		n = snprintf(out, sizeof(out),
		             "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
		             "Content-Length: %zu\r\n%s\r\n%s",
		             code,
		             code == 200   ? "OK"
		             : code == 400 ? "Bad Request"
		                           : "Bad Gateway",
		             strlen(text),
		             close_after ? "Connection: close\r\n" : "", text);
		if (!write_all(fd, out, (size_t)n) || close_after)
			return;
		memmove(buf, buf + head, used - head);
		used -= head;
	}
}

static int worker(int lfd, struct ucaasauth *ua, const char *url, pid_t parent)
{
	struct timeval idle = {.tv_sec = 10};
	CURL *curl;

	/* Dies with the parent, whatever killed it. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
		return 1;
	/* One handle per worker, kept: its connection to the API too. */
	curl = curl_easy_init();
	if (!curl)
		return 1;
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0 && errno == EINTR)
			continue;
		if (fd < 0) {
			perror("prefork-server: accept");
			break;
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof(idle));
		serve(fd, ua, curl, url);
		close(fd);
	}
	curl_easy_cleanup(curl);
	return 1;
}

static int listen_loopback(int *ret_port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		perror("prefork-server: listening on 127.0.0.1");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*ret_port = ntohs(sa.sin_port);
	return fd;
}

static int write_port(const char *path, int port)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 ||
	    rename(tmp, path) < 0) {
		perror(path);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	pid_t workers[WORKERS_MAX], parent = getpid();
	struct ucaasauth *ua;
	sigset_t set, old;
	int n = 4, lfd, port, sig, status = 0;

	if (argc < 4 || argc > 5 ||
	    (argc == 5 && ((n = atoi(argv[4])) < 1 || n > WORKERS_MAX))) {
		fprintf(stderr, "usage: prefork-server PROFILE URL PORT-FILE "
		                "[WORKERS]\n");
		return 2;
	}
	/* The host starts libcurl itself, before any thread or fork. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	if (ucaasauth_open(&ua, argv[1], 0) != UCAASAUTH_OK) {
		fprintf(stderr, "prefork-server: %s\n", ucaasauth_last_error());
		return 1;
	}
	lfd = listen_loopback(&port);
	if (lfd < 0)
		return 1;
	/* Taken with sigwaitinfo() below, so none is lost in a race. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);
	for (int i = 0; i < n; i++) {
		workers[i] = fork();
		if (workers[i] == 0) {
			sigprocmask(SIG_SETMASK, &old, NULL);
			_exit(worker(lfd, ua, argv[2], parent));
		}
		if (workers[i] < 0) {
			perror("prefork-server: fork");
			n = i;
			status = 1;
			break;
		}
	}
	if (status == 0 && write_port(argv[3], port) < 0)
		status = 1;
	while (status == 0) {
		sig = sigwaitinfo(&set, NULL);
		if (sig == SIGCHLD) {
			fprintf(stderr, "prefork-server: a worker ended\n");
			status = 1;
		} else if (sig > 0) {
			break;
		}
	}
	for (int i = 0; i < n; i++)
		kill(workers[i], SIGTERM);
	for (int i = 0; i < n; i++)
		waitpid(workers[i], NULL, 0);
	close(lfd);
	ucaasauth_close(ua);
	curl_global_cleanup();
	return status;
}

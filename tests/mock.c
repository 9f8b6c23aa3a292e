#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mock.h"

#define START_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS 5000
#define MAX_ANSWER (1 << 20)

struct buffer {
	char *data;
	size_t len;
};

static void nap(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
	                      .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static const char *locate(void)
{
	const char *path = getenv("MOCK_UCAAS");
	if (path && *path)
		return path;
#ifdef MOCK_UCAAS_SCRIPT
	return MOCK_UCAAS_SCRIPT;
#else
	return NULL;
#endif
}

static void clear_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
	rmdir(dir);
}

/* Reaps the mock if it has exited. 1: gone, 0: still running, -1: not our child. */
static int reap(pid_t pid, int *ret_status)
{
	int status;
	pid_t r;
	do {
		r = waitpid(pid, &status, WNOHANG);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	if (r == 0)
		return 0;
	if (ret_status)
		*ret_status = status;
	return 1;
}

static void terminate(pid_t pid)
{
	kill(pid, SIGTERM);
	for (int waited = 0; waited < STOP_TIMEOUT_MS; waited += 10) {
		if (reap(pid, NULL) != 0)
			return;
		nap(10);
	}
	fprintf(stderr, "mock: pid %d ignored SIGTERM for %d ms, killing it\n",
	        (int)pid, STOP_TIMEOUT_MS);
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static pid_t spawn(char *const argv[])
{
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid != 0)
		return pid;

	/* A test that dies without mock_stop() must not leave a server behind. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(1);
	/* A blocked SIGTERM would survive exec and make the mock unstoppable. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	int fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && fd != STDIN_FILENO) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	execvp(argv[0], argv);
	fprintf(stderr, "mock: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int read_port(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char line[32];
	int port = 0;
	if (fgets(line, sizeof(line), f)) {
		char *end;
		long v = strtol(line, &end, 10);
		if (end != line && *end == '\n' && v > 0 && v < 65536)
			port = (int)v;
	}
	fclose(f);
	return port;
}

static int wait_port(struct mock *m, const char *port_file)
{
	for (int waited = 0; waited < START_TIMEOUT_MS; waited += 10) {
		int port = read_port(port_file);
		if (port > 0)
			return port;
		int status;
		int r = reap(m->pid, &status);
		if (r != 0) {
			if (r > 0 && WIFEXITED(status))
				fprintf(stderr,
				        "mock: server exited with status %d before listening\n",
				        WEXITSTATUS(status));
			else
				fprintf(stderr,
				        "mock: server died before listening\n");
			m->pid = 0;
			return -1;
		}
		nap(10);
	}
	fprintf(stderr, "mock: server did not listen within %d ms\n",
	        START_TIMEOUT_MS);
	return -1;
}

int mock_start(struct mock *m, const char *app_id, const char *app_key,
               const char *email, const char *password, int token_ttl,
               const char *tls_dir)
{
	char port_file[300], ttl[32], cert[300], key[300];

	memset(m, 0, sizeof(*m));
	const char *path = locate();
	if (!path) {
		fprintf(stderr,
		        "mock: set MOCK_UCAAS to the path of tests/mock-ucaas.py\n");
		return -1;
	}
	if (!app_id || !app_key || !email != !password || token_ttl < 0) {
		fprintf(stderr, "mock: bad arguments to mock_start\n");
		return -1;
	}
	if (tls_dir) {
		int a = snprintf(cert, sizeof(cert), "%s/server.pem", tls_dir);
		int b = snprintf(key, sizeof(key), "%s/server.key", tls_dir);
		int c = snprintf(m->ca, sizeof(m->ca), "%s/ca.pem", tls_dir);
		if (a < 0 || (size_t)a >= sizeof(cert) || b < 0 ||
		    (size_t)b >= sizeof(key) || c < 0 ||
		    (size_t)c >= sizeof(m->ca)) {
			fprintf(stderr, "mock: tls_dir path too long\n");
			m->ca[0] = '\0';
			return -1;
		}
	}

	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	int n = snprintf(m->dir, sizeof(m->dir), "%s/mock-ucaas.XXXXXX", tmp);
	if (n < 0 || (size_t)n >= sizeof(m->dir) || !mkdtemp(m->dir)) {
		fprintf(stderr,
		        "mock: cannot create a temporary directory in %s\n",
		        tmp);
		memset(m, 0, sizeof(*m));
		return -1;
	}
	snprintf(port_file, sizeof(port_file), "%s/port", m->dir);
	snprintf(ttl, sizeof(ttl), "%d", token_ttl);

	char *argv[20];
	int i = 0;
	argv[i++] = "python3";
	argv[i++] = (char *)path;
	argv[i++] = "--port-file";
	argv[i++] = port_file;
	argv[i++] = "--app-id";
	argv[i++] = (char *)app_id;
	argv[i++] = "--app-key";
	argv[i++] = (char *)app_key;
	argv[i++] = "--token-ttl";
	argv[i++] = ttl;
	if (email) {
		argv[i++] = "--email";
		argv[i++] = (char *)email;
		argv[i++] = "--password";
		argv[i++] = (char *)password;
	}
	if (tls_dir) {
		argv[i++] = "--tls-cert";
		argv[i++] = cert;
		argv[i++] = "--tls-key";
		argv[i++] = key;
	}
	argv[i] = NULL;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "mock: curl_global_init failed\n");
		clear_dir(m->dir);
		memset(m, 0, sizeof(*m));
		return -1;
	}
	m->pid = spawn(argv);
	if (m->pid < 0) {
		fprintf(stderr, "mock: fork: %s\n", strerror(errno));
		goto fail;
	}
	int port = wait_port(m, port_file);
	if (port < 0)
		goto fail;
	m->port = port;
	snprintf(m->base, sizeof(m->base), "%s://127.0.0.1:%d/ucaas/v1",
	         tls_dir ? "https" : "http", port);
	return 0;

fail:
	if (m->pid > 0)
		terminate(m->pid);
	curl_global_cleanup();
	clear_dir(m->dir);
	memset(m, 0, sizeof(*m));
	return -1;
}

void mock_stop(struct mock *m)
{
	if (!m)
		return;
	if (m->pid > 0) {
		int r = reap(m->pid, NULL);
		if (r < 0) {
			/* Not our child: we are a forked copy of the test. */
			memset(m, 0, sizeof(*m));
			return;
		}
		if (r == 0)
			terminate(m->pid);
		curl_global_cleanup();
	}
	if (m->dir[0])
		clear_dir(m->dir);
	memset(m, 0, sizeof(*m));
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct buffer *b = userdata;
	size_t n = size * nmemb;
	if (b->len + n > MAX_ANSWER)
		return 0;
	char *p = realloc(b->data, b->len + n + 1);
	if (!p)
		return 0;
	memcpy(p + b->len, ptr, n);
	b->len += n;
	p[b->len] = '\0';
	b->data = p;
	return n;
}

/*
 * One request on a fresh easy handle. path starts with '/': "/_mock/..." is
 * relative to the server root, anything else to the API base.
 * Returns the HTTP status or -1; *ret_body (if not NULL) gets the answer.
 */
static int request(struct mock *m, const char *method, const char *path,
                   const char *body, const char *header, char **ret_body)
{
	char url[512];
	struct buffer answer = {0};
	struct curl_slist *headers = NULL;
	long status = -1;

	if (!m || m->port <= 0)
		return -1;
	if (strncmp(path, "/_mock/", 7) == 0)
		snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s",
		         m->ca[0] ? "https" : "http", m->port, path);
	else
		snprintf(url, sizeof(url), "%s%s", m->base, path);

	CURL *curl = curl_easy_init();
	if (!curl)
		return -1;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	/* A bound, not an expectation: the mock answers in milliseconds,
	 * but a loaded machine (64 workers, sanitizers, busy CPUs) can
	 * stall one answer for seconds, and a stall is not a failure. */
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
	/* An http_proxy in the environment must not capture loopback traffic. */
	curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
	if (m->ca[0])
		curl_easy_setopt(curl, CURLOPT_CAINFO, m->ca);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
		headers = curl_slist_append(headers,
		                            "Content-Type: application/json");
		if (!headers)
			goto out;
	}
	if (header) {
		struct curl_slist *h = curl_slist_append(headers, header);
		if (!h)
			goto out;
		headers = h;
	}
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

	CURLcode rc = curl_easy_perform(curl);
	if (rc != CURLE_OK) {
		fprintf(stderr, "mock: %s %s: %s\n", method, url,
		        curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (ret_body) {
		*ret_body = answer.data;
		answer.data = NULL;
	}

out:
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	free(answer.data);
	return (int)status;
}

static struct json_object *fetch(struct mock *m, const char *key)
{
	char *body = NULL;
	if (request(m, "GET", "/_mock/stats", NULL, NULL, &body) != 200) {
		free(body);
		return NULL;
	}
	struct json_object *root = json_tokener_parse(body);
	free(body);
	struct json_object *value;
	if (!root || !json_object_object_get_ex(root, key, &value)) {
		json_object_put(root);
		return NULL;
	}
	json_object_get(value);
	json_object_put(root);
	return value;
}

long mock_stat(struct mock *m, const char *key)
{
	struct json_object *v = fetch(m, key);
	long ret = -1;
	switch (json_object_get_type(v)) {
	case json_type_int:
		ret = (long)json_object_get_int64(v);
		break;
	case json_type_double:
		ret = (long)json_object_get_double(v);
		break;
	case json_type_boolean:
		ret = json_object_get_boolean(v) ? 1 : 0;
		break;
	case json_type_array:
		ret = (long)json_object_array_length(v);
		break;
	default:
		break;
	}
	json_object_put(v);
	return ret;
}

char *mock_stat_str(struct mock *m, const char *key)
{
	struct json_object *v = fetch(m, key);
	char *ret = NULL;
	if (json_object_is_type(v, json_type_string))
		ret = strdup(json_object_get_string(v));
	json_object_put(v);
	return ret;
}

int mock_config(struct mock *m, const char *json)
{
	return request(m, "POST", "/_mock/config", json, NULL, NULL) == 200
	               ? 0
	               : -1;
}

int mock_reset(struct mock *m)
{
	return request(m, "POST", "/_mock/reset", "{}", NULL, NULL) == 200 ? 0
	                                                                   : -1;
}

int mock_customers(struct mock *m, const char *header_line)
{
	return request(m, "GET", "/customers", NULL, header_line, NULL);
}

int mock_login_times(struct mock *m, double *t, int max)
{
	char *csv = mock_stat_str(m, "login_times_csv"), *p;
	int n = 0;

	if (!csv)
		return -1;
	for (p = csv; *p && n < max;) {
		t[n++] = strtod(p, &p);
		if (*p == ',')
			p++;
	}
	free(csv);
	return n;
}

double mock_login_gap(struct mock *m, long *ret_count)
{
	double t[1000], gap = 1e9;
	int n = mock_login_times(m, t, 1000);

	for (int i = 1; i < n; i++)
		if (t[i] - t[i - 1] < gap)
			gap = t[i] - t[i - 1];
	*ret_count = n < 0 ? 0 : n;
	return gap;
}

/*
 * A host program that loads a plugin with dlopen(), lets it get an
 * Authorization header from libucaasauth, unloads it with dlclose(), and
 * then uses libcurl itself, as a web server, a language runtime or a
 * media framework that loads plugins would. The plugin is
 * examples/plugin.c; the host knows nothing about libucaasauth.
 *
 * usage: plugin-host [--host-first] [--private-every N] [--no-maps]
 *                    PLUGIN URL CYCLES
 *
 * URL is the mock UCaaS server's root (http://127.0.0.1:PORT); the
 * configuration in $UCAASAUTH_CONFIG has two login profiles for it:
 * "shared" (cache = shared: one login for every cycle) and "private"
 * (cache = process: a login each time it is opened), which the plugin
 * opens every N cycles (default 10), so that logins also happen after
 * earlier plugins were unloaded. --host-first: the host starts libcurl
 * before it first loads the plugin (by default the plugin's library is
 * the first to start it).
 *
 * Each cycle: dlopen, the plugin's header, dlclose (checked: the plugin
 * is gone), then a GET /ucaas/v1/customers of the host's own with that
 * header through libcurl (curl_easy_init, curl_slist_append: calls that
 * allocate and free through libcurl's memory functions). Checked over the
 * cycles: every request answered 200; the open file descriptors and
 * threads as many as before the first cycle; /proc/self/maps no longer
 * than after the first cycle (--no-maps skips this, for valgrind, whose
 * own mappings change); the mock's login count what the cycles imply.
 * Exits 0 and prints the figures, or 1 with the first failure.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int plugin_header_fn(const char *profile, char *buf, size_t size);

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt,
                                                                ...)
{
	va_list ap;

	fprintf(stderr, "plugin-host: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* ---- what the process holds ---- */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		die("/proc/self/fd: %m");
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* Lines of a /proc file, or the value of one "Key:\t" line of it. */
static long proc_read(const char *path, const char *key)
{
	static char text[1 << 20];
	size_t len = 0;
	ssize_t n;
	long lines = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("%s: %m", path);
	while ((n = read(fd, text + len, sizeof(text) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (n < 0 || len == sizeof(text) - 1)
		die("%s: cannot read it whole", path);
	text[len] = 0;
	if (key) {
		char *p = strstr(text, key);

		if (!p)
			die("%s: no %s", path, key);
		return strtol(p + strlen(key), NULL, 10);
	}
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	return lines;
}

static long count_maps(void)
{
	return proc_read("/proc/self/maps", NULL);
}

static long count_threads(void)
{
	return proc_read("/proc/self/status", "\nThreads:");
}

/* ---- the host's own use of libcurl ---- */

struct body {
	char data[8192];
	size_t len;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct body *b = userdata;
	size_t n = size * nmemb;

	if (n > sizeof(b->data) - 1 - b->len)
		return 0;
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = 0;
	return n;
}

/* GET url with the header line (or none); returns the HTTP status. */
static long host_get(const char *url, const char *header, struct body *body)
{
	struct curl_slist *headers = NULL;
	CURL *easy = curl_easy_init();
	long status = 0;
	CURLcode code;

	if (!easy)
		die("curl_easy_init failed");
	if (header) {
		headers = curl_slist_append(NULL, header);
		if (!headers)
			die("curl_slist_append failed");
	}
	body->len = 0;
	body->data[0] = 0;
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, body);
	code = curl_easy_perform(easy);
	if (code != CURLE_OK)
		die("GET %s: %s", url, curl_easy_strerror(code));
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(easy);
	/* The header is a credential: libcurl's copy is freed by
	 * curl_slist_free_all(), ours is wiped. */
	curl_slist_free_all(headers);
	return status;
}

static long mock_logins(const char *root)
{
	struct body body;
	char url[512];
	const char *p;

	snprintf(url, sizeof(url), "%s/_mock/stats", root);
	if (host_get(url, NULL, &body) != 200)
		die("GET %s: not 200", url);
	p = strstr(body.data, "\"logins\":");
	if (!p)
		die("GET %s: no \"logins\" in %s", url, body.data);
	return strtol(p + strlen("\"logins\":"), NULL, 10);
}

/* ---- one cycle ---- */

static void plugin_cycle(const char *path, bool private_login, char *header,
                         size_t size)
{
	char other[4096];
	plugin_header_fn *fn;
	void *h, *again;
	int r;

	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		die("dlopen %s: %s", path, dlerror());
	fn = (plugin_header_fn *)dlsym(h, "plugin_header");
	if (!fn)
		die("dlsym plugin_header: %s", dlerror());
	r = fn("shared", header, size);
	if (r != 0)
		die("%s", header);
	if (strncmp(header, "Authorization: Token ", 21) != 0)
		die("profile shared: not a token header");
	if (private_login) {
		r = fn("private", other, sizeof(other));
		if (r != 0)
			die("%s", other);
		explicit_bzero(other, sizeof(other));
	}
	if (dlclose(h) != 0)
		die("dlclose %s: %s", path, dlerror());
	/* The plugin must really be gone, or the cycle proves nothing. */
	again = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	if (again)
		die("%s is still loaded after dlclose", path);
}

static bool still_loaded(const char *soname)
{
	void *h = dlopen(soname, RTLD_NOW | RTLD_NOLOAD);

	if (h)
		dlclose(h);
	return h != NULL;
}

int main(int argc, char **argv)
{
	bool host_first = false, check_maps = true;
	long every = 10, cycles, fds0, threads0, maps1 = 0, maps_max = 0;
	long logins, want_logins = 1, fds_max, threads_max;
	char header[4096], url[512];
	struct body body;
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--host-first") == 0)
			host_first = true;
		else if (strcmp(argv[i], "--no-maps") == 0)
			check_maps = false;
		else if (strcmp(argv[i], "--private-every") == 0 &&
		         i + 1 < argc)
			every = atol(argv[++i]);
		else
			break;
	}
	if (argc - i != 3 || every < 1 || atol(argv[i + 2]) < 1) {
		fprintf(stderr, "usage: plugin-host [--host-first] "
		                "[--private-every N] [--no-maps] PLUGIN URL "
		                "CYCLES\n");
		return 2;
	}
	cycles = atol(argv[i + 2]);
	snprintf(url, sizeof(url), "%s/ucaas/v1/customers", argv[i + 1]);

	if (host_first && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		die("curl_global_init failed");
	fds0 = fds_max = count_fds();
	threads0 = threads_max = count_threads();
	for (long c = 0; c < cycles; c++) {
		bool private_login = c % every == 0;
		long n;

		plugin_cycle(argv[i], private_login, header, sizeof(header));
		want_logins += private_login;
		/* The host's libcurl, after the plugin and its libraries
		 * were unloaded. */
		n = host_get(url, header, &body);
		explicit_bzero(header, sizeof(header));
		if (n != 200)
			die("cycle %ld: GET %s answered %ld", c + 1, url, n);

		n = count_fds();
		fds_max = n > fds_max ? n : fds_max;
		n = count_threads();
		threads_max = n > threads_max ? n : threads_max;
		if (check_maps) {
			n = count_maps();
			if (c == 0)
				maps1 = maps_max = n;
			maps_max = n > maps_max ? n : maps_max;
		}
	}
	logins = mock_logins(argv[i + 1]);
	printf("plugin-host: %ld cycles (%s first), %ld logins (expected %ld), "
	       "%ld requests of its own answered 200\n",
	       cycles, host_first ? "host" : "plugin", logins, want_logins,
	       cycles);
	printf("plugin-host: fds %ld before, at most %ld after a cycle; "
	       "threads %ld before, at most %ld after\n",
	       fds0, fds_max, threads0, threads_max);
	if (check_maps)
		printf("plugin-host: maps %ld lines after cycle 1, at most %ld "
		       "after any later one, %ld at the end\n",
		       maps1, maps_max, count_maps());
	printf("plugin-host: libucaasauth.so.1 %s after the last dlclose\n",
	       still_loaded("libucaasauth.so.1") ? "stays loaded"
	                                         : "was unloaded");
	if (logins != want_logins)
		die("the mock counted %ld logins, expected %ld", logins,
		    want_logins);
	if (fds_max != fds0)
		die("file descriptors grew from %ld to %ld", fds0, fds_max);
	if (threads_max != threads0)
		die("threads grew from %ld to %ld", threads0, threads_max);
	if (check_maps && maps_max != maps1)
		die("mappings grew from %ld to %ld lines", maps1, maps_max);
	if (host_first)
		curl_global_cleanup();
	return 0;
}

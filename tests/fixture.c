#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fixture.h"
#include "internal.h"

static char conf_text[CONF_MAX];
static size_t conf_len;

void fatal(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	fprintf(stderr, "test setup: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (%s; last error: %s)\n", strerror(err),
	        ucaasauth_last_error() ? ucaasauth_last_error() : "none");
	exit(1);
}

/* ---- the world ---- */

void conf_reset(void)
{
	/* Wiped, not only cut: the hygiene tests paste a secret into a
	 * configuration, and scan this process afterwards. */
	sodium_memzero(conf_text, conf_len);
	conf_len = 0;
	conf_text[0] = 0;
}

void conf_add(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(conf_text + conf_len, sizeof(conf_text) - conf_len, fmt,
	              ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(conf_text) - conf_len)
		fatal("configuration text too long");
	conf_len += (size_t)n;
}

void conf_write(const struct fixture *f, mode_t mode)
{
	char tmp[400];

	snprintf(tmp, sizeof(tmp), "%s.new", f->conf);
	write_text(tmp, conf_text);
	if (chmod(tmp, mode) < 0 || rename(tmp, f->conf) < 0)
		fatal("cannot install %s", f->conf);
}

void fixture_write_config(struct fixture *f, const char *tok_extra)
{
	const char *base =
		f->has_mock ? f->mock.base : "http://127.0.0.1:9/ucaas/v1";

	conf_reset();
	conf_add("default_profile = tok\n"
	         "[profile tok]\n"
	         "api_base = %s\n"
	         "app_id = " FIX_APP_ID "\n"
	         "provider = login\n"
	         "%s"
	         "[profile srv]\n"
	         "api_base = %s\n"
	         "app_id = " FIX_APP_ID "\n"
	         "provider = basic\n",
	         base, tok_extra ? tok_extra : "", base);
	conf_write(f, 0644);
}

void fixture_store_secrets(const char *profile, const struct secrets *s)
{
	struct config *config;
	const struct profile *p;

	if (config_load(getenv("UCAASAUTH_CONFIG"), &config) < 0)
		fatal("cannot load the configuration");
	if (config_find(config, profile, &p) < 0)
		fatal("no profile %s", profile);
	if (cred_store(p, s) < 0)
		fatal("cannot store the secrets of profile %s", profile);
	config_free(config);
}

void fixture_store(const char *profile, const char *app_key, const char *email,
                   const char *password)
{
	struct secrets *s = secrets_new();

	if (!s)
		fatal("out of memory");
	snprintf(s->app_key, sizeof(s->app_key), "%s", app_key ? app_key : "");
	snprintf(s->email, sizeof(s->email), "%s", email ? email : "");
	snprintf(s->password, sizeof(s->password), "%s",
	         password ? password : "");
	fixture_store_secrets(profile, s);
	secrets_free(s);
}

const char *fixture_basic_header(void)
{
	static char header[256];
	const char pair[] = FIX_APP_ID ":" FIX_APP_KEY;
	size_t prefix;

	if (!header[0]) {
		prefix = (size_t)snprintf(header, sizeof(header),
		                          "Authorization: Basic ");
		sodium_bin2base64(header + prefix, sizeof(header) - prefix,
		                  (const unsigned char *)pair, strlen(pair),
		                  sodium_base64_VARIANT_ORIGINAL);
	}
	return header;
}

void fixture_start_empty(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/ucaasauth-test-XXXXXX");
	if (!mkdtemp(f->dir))
		fatal("mkdtemp");
	snprintf(f->conf, sizeof(f->conf), "%s/ucaasauth.conf", f->dir);
	snprintf(f->runtime, sizeof(f->runtime), "%s/run", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/master.key", f->dir);
	setenv("UCAASAUTH_CONFIG", f->conf, 1);
	setenv("UCAASAUTH_RUNTIME_DIR", f->runtime, 1);
	unsetenv("CREDENTIALS_DIRECTORY");
}

void fixture_start(struct fixture *f, int server_ttl, const char *tok_extra)
{
	fixture_start_empty(f);
	if (server_ttl > 0) {
		if (mock_start(&f->mock, FIX_APP_ID, FIX_APP_KEY, FIX_EMAIL,
		               FIX_PASSWORD, server_ttl, NULL) < 0)
			fatal("cannot start the mock server");
		f->has_mock = true;
	}
	fixture_write_config(f, tok_extra);
	if (key_generate(f->key) < 0)
		fatal("cannot make a key");
	fixture_store("tok", NULL, FIX_EMAIL, FIX_PASSWORD);
	fixture_store("srv", FIX_APP_KEY, NULL, NULL);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
	remove(path);
	return 0;
}

void fixture_stop(struct fixture *f)
{
	if (f->has_mock)
		mock_stop(&f->mock);
	f->has_mock = false;
	if (f->dir[0])
		nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	f->dir[0] = 0;
}

/* ---- files ---- */

void make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		fatal("mkdir %s", path);
	if (chmod(path, mode) < 0)
		fatal("chmod %s", path);
}

void copy_file(const char *src, const char *dst, mode_t mode)
{
	char buf[65536];
	int in, out;
	ssize_t n;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		fatal("open %s", src);
	unlink(dst);
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		fatal("create %s", dst);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			fatal("write %s", dst);
	if (n < 0 || fchmod(out, mode) < 0 || close(out) < 0)
		fatal("copy %s to %s", src, dst);
	close(in);
}

void write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "we");

	if (!fp || fputs(text, fp) < 0 || fclose(fp) != 0)
		fatal("cannot write %s", path);
}

void install_script(const char *dir, const char *name, mode_t mode)
{
	char src[512], dst[512];

	snprintf(src, sizeof(src), "%s/%s", TESTS_DIR, name);
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	copy_file(src, dst, mode);
}

char *read_text(const char *path, size_t *ret_len)
{
	FILE *fp = fopen(path, "re");
	char *text = NULL;
	size_t len = 0, cap = 0, n;

	if (!fp)
		return NULL;
	for (;;) {
		if (cap - len < 4097) {
			char *t = realloc(text, cap += 65536);
			if (!t)
				fatal("out of memory");
			text = t;
		}
		n = fread(text + len, 1, cap - len - 1, fp);
		len += n;
		if (n == 0)
			break;
	}
	fclose(fp);
	text[len] = 0;
	if (ret_len)
		*ret_len = len;
	return text;
}

int count_lines(const char *path)
{
	char *text = read_text(path, NULL);
	int n = 0;

	for (char *c = text; c && *c; c++)
		n += *c == '\n';
	free(text);
	return n;
}

/* ---- the library and the CLI ---- */

int header_once(const char *profile, char *buf, size_t size)
{
	struct ucaasauth *ua;
	size_t len = 0;
	int r;

	buf[0] = 0;
	r = ucaasauth_open(&ua, profile, 0);
	if (r < 0)
		return r;
	r = ucaasauth_header(ua, buf, size, &len);
	if (r == 0 && len != strlen(buf))
		r = UCAASAUTH_E_PROTOCOL; /* caught by the caller's check */
	ucaasauth_close(ua);
	return r;
}

int run_captured(char *const argv[], char *out, size_t size)
{
	size_t len = 0;
	int fds[2], status;
	pid_t pid;
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		char sink[512];

		if (len + 1 < size)
			n = read(fds[0], out + len, size - 1 - len);
		else
			n = read(fds[0], sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (len + 1 < size)
			len += (size_t)n;
	}
	close(fds[0]);
	out[len] = 0;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int run_wrapped(char *const argv[], char *out, size_t size)
{
	const char *wrapper = getenv("CLI_WRAPPER");
	char words[1024], *args[64], *save = NULL;
	int n = 0;

	if (!wrapper || !*wrapper)
		return run_captured(argv, out, size);
	snprintf(words, sizeof(words), "%s", wrapper);
	for (char *w = strtok_r(words, " \t", &save); w && n < 32;
	     w = strtok_r(NULL, " \t", &save))
		args[n++] = w;
	/* execv() wants a path: the wrapper's first word is looked up. */
	if (args[0][0] != '/') {
		static char path[512];
		const char *dirs[] = {"/usr/local/bin", "/usr/bin", "/bin"};
		for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", dirs[i], args[0]);
			if (access(path, X_OK) == 0) {
				args[0] = path;
				break;
			}
		}
	}
	for (int i = 0; argv[i] && n < 63; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	return run_captured(args, out, size);
}

/* ---- processes ---- */

int run_workers(int n, int (*fn)(void *arg, int i), void *arg)
{
	pid_t *pids = calloc(n, sizeof(*pids));
	int go[2], ok = 0;

	if (!pids || pipe(go) < 0)
		fatal("run_workers");
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			fatal("fork");
		if (pids[i] == 0) {
			char c;
			close(go[1]);
			/* Released together when the parent closes the pipe. */
			while (read(go[0], &c, 1) < 0 && errno == EINTR)
				;
			_exit(fn(arg, i));
		}
	}
	close(go[0]);
	close(go[1]);
	for (int i = 0; i < n; i++) {
		int status;
		while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
			;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			ok++;
		else
			fprintf(stderr, "worker %d: %s %d\n", i,
			        WIFEXITED(status) ? "exit" : "signal",
			        WIFEXITED(status) ? WEXITSTATUS(status)
			                          : WTERMSIG(status));
	}
	free(pids);
	return ok;
}

int run_child(void (*fn)(void))
{
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		fatal("fork");
	if (pid == 0) {
		fn();
		fflush(stdout);
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			fatal("waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int run_apart(const char *name, void (*fn)(void))
{
	if (run_child(fn) == 0) {
		printf("%s: passed\n", name);
		return 0;
	}
	printf("%s: FAILED\n", name);
	return 1;
}

int run_bug(const char *name, void (*fn)(void))
{
	if (run_apart(name, fn) == 0)
		return 0;
	printf("%s: a known bug, see the BUG comment above the check\n", name);
	return 1;
}

char pid_state(pid_t pid)
{
	char path[64], text[512], *paren;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return 0;
	n = fread(text, 1, sizeof(text) - 1, fp);
	fclose(fp);
	text[n] = 0;
	/* "PID (COMM) S ...": COMM may hold anything, the last ')' ends it. */
	paren = strrchr(text, ')');
	if (!paren || paren[1] != ' ' || !paren[2])
		return 0;
	return paren[2];
}

bool pid_running(pid_t pid)
{
	char s = pid_state(pid);

	return s != 0 && s != 'Z' && s != 'X';
}

int64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ms_sleep(int64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- this process ---- */

int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		fatal("opendir /proc/self/fd");
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own fd */
}

int map_count(void)
{
	return count_lines("/proc/self/maps");
}

static long status_kb(const char *key)
{
	char *text = read_text("/proc/self/status", NULL), *line;
	long kb = -1;

	if (!text)
		fatal("cannot read /proc/self/status");
	line = strstr(text, key);
	if (line)
		kb = strtol(line + strlen(key), NULL, 10);
	free(text);
	return kb;
}

long rss_kb(void)
{
	return status_kb("\nVmRSS:");
}

long hwm_kb(void)
{
	return status_kb("\nVmHWM:");
}

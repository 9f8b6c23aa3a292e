#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "internal.h"
#include "test-stack-util.h"

static char conf_text[STACK_CONF_MAX];
static size_t conf_len;

void stack_die(const char *fmt, ...)
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

void stack_conf_reset(void)
{
	conf_len = 0;
	conf_text[0] = 0;
}

void stack_conf_add(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(conf_text + conf_len, sizeof(conf_text) - conf_len, fmt,
	              ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(conf_text) - conf_len)
		stack_die("configuration text too long");
	conf_len += (size_t)n;
}

void stack_conf_write(const struct fixture *f)
{
	char tmp[400];

	snprintf(tmp, sizeof(tmp), "%s.new", f->conf);
	stack_write(tmp, conf_text);
	if (chmod(tmp, 0600) < 0 || rename(tmp, f->conf) < 0)
		stack_die("cannot install %s", f->conf);
}

void stack_store(const char *profile, const char *app_key, const char *email,
                 const char *password)
{
	struct config *config;
	const struct profile *p;
	struct secrets *s = secrets_new();

	if (!s || config_load(getenv("UCAASAUTH_CONFIG"), &config) < 0)
		stack_die("cannot load the configuration");
	if (config_find(config, profile, &p) < 0)
		stack_die("no profile %s", profile);
	snprintf(s->app_key, sizeof(s->app_key), "%s", app_key ? app_key : "");
	snprintf(s->email, sizeof(s->email), "%s", email ? email : "");
	snprintf(s->password, sizeof(s->password), "%s",
	         password ? password : "");
	if (cred_store(p, s) < 0)
		stack_die("cannot store the secrets of profile %s", profile);
	secrets_free(s);
	config_free(config);
}

const char *stack_basic_header(void)
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

void stack_mkdir(const char *path, mode_t mode)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		stack_die("mkdir %s", path);
	if (chmod(path, mode) < 0)
		stack_die("chmod %s", path);
}

void stack_copy(const char *src, const char *dst, mode_t mode)
{
	char buf[65536];
	int in, out;
	ssize_t n;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		stack_die("open %s", src);
	unlink(dst);
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		stack_die("create %s", dst);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			stack_die("write %s", dst);
	if (n < 0 || fchmod(out, mode) < 0 || close(out) < 0)
		stack_die("copy %s to %s", src, dst);
	close(in);
}

void stack_write(const char *path, const char *text)
{
	FILE *fp = fopen(path, "we");

	if (!fp || fputs(text, fp) < 0 || fclose(fp) != 0)
		stack_die("cannot write %s", path);
}

void stack_install_script(const char *dir, const char *name, mode_t mode)
{
	char src[512], dst[512];

	snprintf(src, sizeof(src), "%s/%s", TESTS_DIR, name);
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	stack_copy(src, dst, mode);
}

char *stack_read(const char *path)
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
				stack_die("out of memory");
			text = t;
		}
		n = fread(text + len, 1, cap - len - 1, fp);
		len += n;
		if (n == 0)
			break;
	}
	fclose(fp);
	text[len] = 0;
	return text;
}

int stack_count_lines(const char *path)
{
	char *text = stack_read(path);
	int n = 0;

	for (char *c = text; c && *c; c++)
		n += *c == '\n';
	free(text);
	return n;
}

int stack_header_once(const char *profile, char *buf, size_t size)
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

int stack_run(char *const argv[], char *out, size_t size)
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

int stack_run_wrapped(char *const argv[], char *out, size_t size)
{
	const char *wrapper = getenv("CLI_WRAPPER");
	char words[1024], *args[64], *save = NULL;
	int n = 0;

	if (!wrapper || !*wrapper)
		return stack_run(argv, out, size);
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
	return stack_run(args, out, size);
}

char stack_pid_state(pid_t pid)
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

bool stack_pid_running(pid_t pid)
{
	char s = stack_pid_state(pid);

	return s != 0 && s != 'Z' && s != 'X';
}

int stack_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		stack_die("opendir /proc/self/fd");
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own fd */
}

int stack_map_count(void)
{
	return stack_count_lines("/proc/self/maps");
}

static long status_kb(const char *key)
{
	char *text = stack_read("/proc/self/status"), *line;
	long kb = -1;

	if (!text)
		stack_die("cannot read /proc/self/status");
	line = strstr(text, key);
	if (line)
		kb = strtol(line + strlen(key), NULL, 10);
	free(text);
	return kb;
}

long stack_rss_kb(void)
{
	return status_kb("\nVmRSS:");
}

long stack_hwm_kb(void)
{
	return status_kb("\nVmHWM:");
}

int stack_run_apart(const char *name, void (*fn)(void))
{
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		stack_die("fork");
	if (pid == 0) {
		fn();
		fflush(stdout);
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			stack_die("waitpid");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		printf("%s: passed\n", name);
		return 0;
	}
	printf("%s: FAILED\n", name);
	return 1;
}

int stack_run_bug(const char *name, void (*fn)(void))
{
	if (stack_run_apart(name, fn) == 0)
		return 0;
	printf("%s: a known bug, see the BUG comment above the check\n", name);
	return 1;
}

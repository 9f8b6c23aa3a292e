/*
 * The replay driver: feeds a fuzz target every file named on the command
 * line, or every file in a directory named there, each in a buffer of
 * exactly its size (so that AddressSanitizer sees a read past its end).
 * Fails when no input was found: a wrong corpus path must not pass. When
 * an input crashes, its path is the last line of the output.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

/* Set by the sanitizers' runtimes, which report and exit on their own. */
void __sanitizer_set_death_callback(void (*callback)(void))
	__attribute__((weak));

static const char *current;

static void say_which(void)
{
	static const char msg[] = "fuzz-main: the input was ";

	if (!current)
		return;
	if (write(2, msg, sizeof(msg) - 1) < 0 ||
	    write(2, current, strlen(current)) < 0 || write(2, "\n", 1) < 0)
		return;
}

static void on_signal(int sig)
{
	say_which();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int run_file(const char *path)
{
	struct stat st;
	uint8_t *data;
	size_t len = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		exit(1);
	}
	data = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!data) {
		fprintf(stderr, "%s: out of memory\n", path);
		exit(1);
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, data + len, st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "%s: short read\n", path);
			exit(1);
		}
		len += n;
	}
	close(fd);
	current = path;
	LLVMFuzzerTestOneInput(data, len);
	current = NULL;
	free(data);
	return 1;
}

static int run_dir(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *e;
	struct stat st;
	int n = 0;
	DIR *d = opendir(dir);

	if (!d) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		exit(1);
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
			n += run_file(path);
	}
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	struct stat st;
	int n = 0;

	signal(SIGABRT, on_signal);
	signal(SIGSEGV, on_signal);
	signal(SIGBUS, on_signal);
	signal(SIGFPE, on_signal);
	if (__sanitizer_set_death_callback)
		__sanitizer_set_death_callback(say_which);
	for (int i = 1; i < argc; i++) {
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		n += S_ISDIR(st.st_mode) ? run_dir(argv[i]) : run_file(argv[i]);
	}
	if (n == 0) {
		fprintf(stderr, "usage: %s FILE|DIR...: no input found\n",
		        argv[0]);
		return 1;
	}
	printf("ok: %d inputs\n", n);
	return 0;
}

/*
 * Secret hygiene of core dumps: a core dump (gcore) of a process holding
 * a token, a password and an App Key holds none of them, but does hold
 * what that process kept in ordinary memory.
 *
 * Skipped (77) without gdb, where ptrace is not permitted, and in an
 * AddressSanitizer build.
 */
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "hygiene.h"
#include "internal.h"
#include "test.h"

/* The markers, made from the nonce on the child's command line so that
 * neither is in argv, the binary, or the parent's memory. */
static void markers(const char *nonce, char *plain_mark, char *guard_mark)
{
	size_t n = strlen(nonce);

	for (size_t i = 0; i < n; i++) {
		plain_mark[i] = (char)('G' + (nonce[i] & 15));
		guard_mark[i] = (char)('g' + (nonce[i] & 15));
	}
	plain_mark[n] = guard_mark[n] = 0;
}

/* The process gcore looks at: a Basic handle, two token handles
 * (process cache and shared cache), every header got and the caller's
 * copies wiped, and two markers. Stops after each login so that the
 * parent can learn the token the mock issued. */
/* Escape, so that no compiler drops them. */
static char *volatile kept_marker, *volatile guarded_marker;

static int core_child(const char *nonce)
{
	struct ucaasauth *srv, *tok, *shr;
	char buf[4096], plain_mark[64], *guard_mark;
	size_t len;

	if (sodium_init() < 0 || strlen(nonce) != 32)
		return 2;
	/* Yama (ptrace_scope 1) lets only ancestors attach: gdb is a child
	 * of our parent, not an ancestor of ours. Fails harmlessly
	 * without Yama. */
	prctl(PR_SET_PTRACER, (unsigned long)getppid(), 0, 0, 0);
	guard_mark = sodium_malloc(64);
	if (!guard_mark)
		return 2;
	markers(nonce, plain_mark, guard_mark);
	guarded_marker = guard_mark;
	kept_marker = strdup(plain_mark);
	sodium_memzero(plain_mark, sizeof(plain_mark));
	if (!kept_marker || ucaasauth_open(&srv, "srv", 0) < 0 ||
	    ucaasauth_header(srv, buf, sizeof(buf), &len) < 0)
		return 3;
	if (ucaasauth_open(&tok, "tok", 0) < 0 ||
	    ucaasauth_header(tok, buf, sizeof(buf), &len) < 0)
		return 4;
	sodium_memzero(buf, sizeof(buf));
	raise(SIGSTOP);
	if (ucaasauth_open(&shr, "shr", 0) < 0 ||
	    ucaasauth_header(shr, buf, sizeof(buf), &len) < 0)
		return 5;
	sodium_memzero(buf, sizeof(buf));
	raise(SIGSTOP);
	for (;;)
		pause();
}

static bool have_gcore(void)
{
	return system("command -v gcore >/dev/null 2>&1 && "
	              "command -v gdb >/dev/null 2>&1") == 0;
}

static int wait_stopped(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, WUNTRACED) != pid)
		return -1;
	if (!WIFSTOPPED(status)) {
		fprintf(stderr, "core child: %s %d\n",
		        WIFEXITED(status) ? "exit" : "signal",
		        WIFEXITED(status) ? WEXITSTATUS(status)
		                          : WTERMSIG(status));
		return -1;
	}
	return 0;
}

/* gcore -o prefix pid, bounded; 0, or -1 with its log on stderr. */
static int gcore(pid_t pid, const char *prefix, const char *log)
{
	char pidtext[16];
	int64_t deadline = ms_now() + 30000;
	int status = 0;
	pid_t g;

	snprintf(pidtext, sizeof(pidtext), "%d", (int)pid);
	fflush(NULL);
	g = fork();
	if (g < 0)
		return -1;
	if (g == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int null = open("/dev/null", O_RDONLY);
		if (fd < 0 || null < 0)
			_exit(126);
		dup2(null, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execlp("gcore", "gcore", "-o", prefix, pidtext, (char *)NULL);
		_exit(127);
	}
	while (waitpid(g, &status, WNOHANG) == 0) {
		if (ms_now() > deadline) {
			kill(g, SIGKILL);
			waitpid(g, &status, 0);
			fprintf(stderr, "gcore took more than 30 s\n");
			return -1;
		}
		ms_sleep(20);
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static struct scan core_scan, regs_scan;
static bool core_taken;

/* Register state: what a thread had in its registers when it stopped. */
static bool register_note(uint32_t type)
{
	return type == NT_PRSTATUS || type == NT_PRFPREG ||
	       type == NT_PRXFPREG || type == NT_X86_XSTATE;
}

/*
 * Searches a core file by its program headers: every PT_LOAD segment (the
 * process's memory) and every note but the register ones go to core_scan,
 * which must hold no secret; the register notes go to regs_scan, which is
 * only reported. Which vector registers still hold fragments of the last
 * strings copied depends on the CPU and on the string functions glibc
 * picked for it: see docs/security.md, "Core dumps".
 */
static void scan_core(const uint8_t *core, size_t size, struct needles *nd)
{
	const Elf64_Ehdr *eh = (const void *)core;

	CHECK(size >= sizeof(*eh) && memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0);
	CHECK_INT(eh->e_ident[EI_CLASS], ELFCLASS64);
	CHECK(eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) <= size);
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph =
			(const void *)(core + eh->e_phoff + i * sizeof(*ph));
		uint64_t off = ph->p_offset, end = off + ph->p_filesz;

		CHECK(end >= off && end <= size);
		if (ph->p_type == PT_LOAD) {
			search(nd, core + off, end - off, (uintptr_t)off,
			       "core (memory)", &core_scan);
			core_scan.bytes += end - off;
			continue;
		}
		if (ph->p_type != PT_NOTE)
			continue;
		while (off + sizeof(Elf64_Nhdr) <= end) {
			const Elf64_Nhdr *nh = (const void *)(core + off);
			uint64_t desc =
				off + sizeof(*nh) + ((nh->n_namesz + 3) & ~3u);
			uint64_t next = desc + ((nh->n_descsz + 3) & ~3u);

			CHECK(next <= end);
			search(nd, core + off, desc - off, (uintptr_t)off,
			       "core (note name)", &core_scan);
			search(nd, core + desc, nh->n_descsz, (uintptr_t)desc,
			       register_note(nh->n_type) ? "core (registers)"
			                                 : "core (note)",
			       register_note(nh->n_type) ? &regs_scan
			                                 : &core_scan);
			off = next;
		}
	}
}

static void test_core(const char *self)
{
	char nonce[33], plain_mark[64], guard_mark[64], prefix[PATH_MAX],
		core[PATH_MAX + 16], log[PATH_MAX];
	uint8_t rnd[16];
	struct needles nd;
	struct stat st;
	uint8_t *map;
	int fd;
	pid_t pid;

	if (!have_gcore()) {
		printf("note: gdb (gcore) is not installed: core dump checks "
		       "skipped (tools/install-deps should install gdb)\n");
		return;
	}
	if (TEST_ASAN) {
		/* gcore of an ASan process (terabytes of reserved shadow
		 * memory) did not finish within a minute when tried; the
		 * plain build runs these checks. */
		printf("note: AddressSanitizer build: core dump checks "
		       "skipped (gcore of an ASan process does not finish "
		       "within a minute); the plain build runs them\n");
		return;
	}
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(nonce, sizeof(nonce), rnd, sizeof(rnd));
	markers(nonce, plain_mark, guard_mark);
	mask_from(S_PLAIN_MARK, plain_mark, strlen(plain_mark));
	mask_from(S_GUARD_MARK, guard_mark, strlen(guard_mark));

	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* A new image: nothing of this test's memory in its core. */
		execl(self, self, "--core-child", nonce, (char *)NULL);
		_exit(127);
	}
	CHECK_INT(wait_stopped(pid), 0);
	CHECK_LEARN_TOKEN(S_TOKEN_A);
	CHECK_INT(kill(pid, SIGCONT), 0);
	CHECK_INT(wait_stopped(pid), 0);
	CHECK_LEARN_TOKEN(S_TOKEN_B);

	snprintf(prefix, sizeof(prefix), "%s/core", world.dir);
	snprintf(core, sizeof(core), "%s.%d", prefix, (int)pid);
	snprintf(log, sizeof(log), "%s/gcore.log", world.dir);
	if (gcore(pid, prefix, log) < 0) {
		char *text = read_text(log, NULL);

		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (text && strstr(text, "ptrace: Operation not permitted")) {
			printf("note: ptrace is not permitted here: core dump "
			       "checks skipped\n");
			free(text);
			return;
		}
		fprintf(stderr, "gcore failed:\n%s\n", text ? text : "");
		free(text);
		CHECK(!"gcore failed");
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	fd = open(core, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_INT(fstat(fd, &st), 0);
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	CHECK(map != MAP_FAILED);
	close(fd);
	memset(&core_scan, 0, sizeof(core_scan));
	memset(&regs_scan, 0, sizeof(regs_scan));
	arm(SECRETS | 1u << S_TOKEN_A | 1u << S_TOKEN_B | 1u << S_PLAIN_MARK |
	            1u << S_GUARD_MARK,
	    &nd);
	scan_core(map, (size_t)st.st_size, &nd);
	munmap(map, (size_t)st.st_size);
	wipe_scratch();
	unlink(core);
	core_taken = true;
	if (regs_scan.f[S_TOKEN_A].copies || regs_scan.f[S_TOKEN_B].copies ||
	    regs_scan.f[S_PASSWORD].copies)
		printf("note: the saved registers hold fragments of the last "
		       "strings copied (not a failure, see docs/security.md):\n");
	print_found("core registers", &regs_scan);
	print_found("core dump", &core_scan);

	/* The core is real: it holds what the child kept in plain memory,
	 * and gdb left out what was marked MADV_DONTDUMP. */
	CHECK(core_scan.bytes > 100000);
	CHECK(core_scan.f[S_PLAIN_MARK].copies >= 1);
	CHECK_INT(core_scan.f[S_GUARD_MARK].copies, 0);
	CHECK_INT(core_scan.f[S_APP_KEY].copies, 0);
	CHECK_INT(core_scan.f[S_BASIC].copies, 0);
	CHECK_INT(core_scan.f[S_MASTER_KEY].copies, 0);
	CHECK_INT(core_scan.f[S_MASTER_HEX].copies, 0);
	/* The password and the tokens: checked last, in main(). */
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--core-child") == 0)
		return core_child(argv[2]);
	hygiene_start(argv);
	test_core("/proc/self/exe");
	hygiene_stop();
	if (!core_taken)
		return 77; /* the note above says why */
	/* Checked last, as in test-hygiene-memory: the password went
	 * through libcurl and json-c, which free their buffers unwiped
	 * unless the library sees to it (login.c). */
	CHECK_INT(core_scan.f[S_PASSWORD].copies, 0);
	CHECK_INT(core_scan.f[S_TOKEN_A].copies, 0);
	CHECK_INT(core_scan.f[S_TOKEN_B].copies, 0);
	TEST_DONE();
}

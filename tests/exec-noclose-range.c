/*
 * Preloaded (LD_PRELOAD) by test-stack-exec's "noclose" run: close_range()
 * fails with ENOSYS, as on a kernel older than 5.9 or under a seccomp
 * filter that refuses it, so that the exec provider must close the
 * descriptors one by one.
 */
#include <errno.h>

int close_range(unsigned int first, unsigned int last, int flags);

int close_range(unsigned int first, unsigned int last, int flags)
{
	(void)first;
	(void)last;
	(void)flags;
	errno = ENOSYS;
	return -1;
}

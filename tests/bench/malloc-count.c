/*
 * bench-malloc-count.so: preloaded (LD_PRELOAD) into the benchmark's
 * workers, it counts every malloc, calloc, realloc and aligned allocation
 * the process makes, the shared library's included, and hands the count
 * to bench_allocs() through bench_malloc_count(). glibc's own entry points
 * (__libc_malloc and friends) do the allocating.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include <malloc.h>

void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void *__libc_memalign(size_t align, size_t size);
long bench_malloc_count(void);

static long count;

static void counted(void)
{
	__atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
}

long bench_malloc_count(void)
{
	return __atomic_load_n(&count, __ATOMIC_RELAXED);
}

void *malloc(size_t size)
{
	counted();
	return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
	counted();
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
	counted();
	return __libc_realloc(p, size);
}

void *memalign(size_t align, size_t size)
{
	counted();
	return __libc_memalign(align, size);
}

void *aligned_alloc(size_t align, size_t size)
{
	counted();
	return __libc_memalign(align, size);
}

int posix_memalign(void **ret, size_t align, size_t size)
{
	void *p;

	if (align < sizeof(void *) || (align & (align - 1)))
		return EINVAL;
	counted();
	p = __libc_memalign(align, size);
	if (!p)
		return ENOMEM;
	*ret = p;
	return 0;
}

/* The product's hot path in pieces, for the benchmark's profile rows. */
#ifndef UCAASAUTH_BENCH_GAP_H
#define UCAASAUTH_BENCH_GAP_H

#include <stddef.h>

struct ucaasauth;

/* The segment an open handle reads its header from. */
const void *gap_segment(struct ucaasauth *ua);
/* The header's length, copied into buf and NUL-terminated, when the
 * segment holds a fresh one that fits; else 0. */
size_t gap_segment_read(const void *seg, char *buf, size_t size);

#endif

/* The shape wp-swap and wp-zap share: protect, evict, read back, write (see wp_evict.c). */
#ifndef AGENT_WP_EVICT_H
#define AGENT_WP_EVICT_H

#include "fixture.h"

/*
 * Protect the populated area, let evict() take its pages away (recording its own checks,
 * under its own phase), read the even pages back, then write every page: each write
 * must still raise one WP fault. The caller has already checked for uffd-wp support.
 * npages and extra_hugepages as fx_setup() takes them (0, 0: the run's defaults).
 */
void wp_evict(struct run *run, void (*evict)(struct fx *fx), size_t npages, size_t extra_hugepages);

/*
 * The second half of that shape, for a protected area whose pages are away: read the
 * even pages back (no message, bit 57 kept, initial bytes), then write every page (one
 * WP fault each, bit 57 clear after, data intact). False if it stopped early.
 */
bool wp_read_back_then_write(struct fx *fx);

/* MADV_PAGEOUT over the whole area until no page is present (a few rounds); 0 or errno. */
int wp_page_out(struct fx *fx);
/* kB of the area's pages in swap: smaps Swap of the VMA, or of a shared view of its file. */
long wp_swap_kb(const struct fx *fx);
/*
 * MADV_PAGEOUT, then check the whole area went to swap: no page present, the area's
 * size in smaps Swap, and for pages of the process's own (anonymous memory, or with
 * `copies` the private copies written into a private file mapping) every pagemap entry
 * a swap entry. Pages of a file are counted in swap through a shared view of the file.
 * False if a check failed.
 */
bool wp_swap_out(struct fx *fx, bool copies);

#endif

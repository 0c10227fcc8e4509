/* /proc/self/pagemap: per-4K-entry bits, and the PAGEMAP_SCAN ioctl. */
#ifndef AGENT_PAGEMAP_H
#define AGENT_PAGEMAP_H

#include <stddef.h>
#include <stdint.h>

#include "uapi.h"

struct pm_counts {
	size_t entries;	 /* 4 KiB entries examined */
	size_t wp;	 /* with bit 57 (uffd-wp) */
	size_t present;	 /* with bit 63 */
	size_t swapped;	 /* with bit 62 */
	size_t file;	 /* with bit 61: a page-cache (or shared anon) page */
	size_t first_wp; /* index of the first entry with bit 57, if wp */
};

/* 0 or -errno. Uses only open/pread/close: safe in a child forked from threads. */
int pagemap_count(const void *addr, size_t len, struct pm_counts *c);
/*
 * For a forked child's report: pagemap_count() into *entries, *wp and (unless NULL)
 * *present; a failure's errno goes to *err unless one is already there. Same safety.
 */
void pagemap_count_into(const void *addr, size_t len, int32_t *err, uint64_t *entries, uint64_t *wp,
			uint64_t *present);

/* The raw 64-bit entries of the n 4 KiB pages from addr into out: 0 or -errno. */
int pagemap_read(const void *addr, size_t n, uint64_t *out);

/* PAGEMAP_SCAN over [start, start+len): regions into vec; returns the count or -errno. */
long pagemap_scan(const void *start, size_t len, uint64_t flags, uint64_t category_mask,
		  uint64_t return_mask, struct page_region *vec, size_t vec_len);
/* 0 when the running kernel has PAGEMAP_SCAN, else -errno (ENOTTY before 6.7). */
int pagemap_scan_probe(void);

#endif

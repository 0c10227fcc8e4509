/*
 * wp-zap: after MADV_DONTNEED of shared file memory the uffd-wp bit lives in a PTE
 * marker: pagemap bit 57 persists, the file keeps its bytes, fault-in keeps the page
 * protected and the next write still faults. A second MADV_DONTNEED meets the markers
 * themselves (zap_pte_range() keeps a uffd-wp marker unless the zap asks to drop them,
 * as munmap() does; hugetlb's zap likewise): the bit persists through it too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>

#include "fixture.h"
#include "wp_evict.h"

static void zap(struct fx *fx)
{
	struct result *r = fx->r;
	int rc;

	set_phase(r, "MADV_DONTNEED");
	rc = madvise(fx->a.base, fx->a.size, MADV_DONTNEED) ? errno : 0;
	check_errno(r, "madv-dontneed", rc, 0, "madvise(MADV_DONTNEED)");
	check_present(r, "zapped", fx->a.base, fx->a.size, false);
	check_wp_bits(r, "wp-bit-kept-as-marker", fx->a.base, fx->a.size, true);
	check_data(fx, "file-keeps-data", fx->a.alias, NULL, GEN_INITIAL);

	set_phase(r, "MADV_DONTNEED over the markers");
	rc = madvise(fx->a.base, fx->a.size, MADV_DONTNEED) ? errno : 0;
	check_errno(r, "madv-dontneed-again", rc, 0, "a second madvise(MADV_DONTNEED), over the markers");
	check_wp_bits(r, "wp-bit-kept-after-second-zap", fx->a.base, fx->a.size, true);
}

void wp_zap(struct run *run)
{
	if (!need_wp(run, 0))
		return;
	wp_evict(run, zap, 0, 0);
}

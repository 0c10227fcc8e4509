#define _GNU_SOURCE
#include "workloads.h"

#include <string.h>

#define PRIVATE_TYPES (MEMBIT(MEM_ANON) | MEMBIT(MEM_ANON_THP) | MEMBIT(MEM_SHMEM_PRIVATE))
/* The five types of the kernel's own uffd tests: no THP, no 1 GiB page. */
#define CLASSIC_TYPES                                                                                              \
	(MEMBIT(MEM_ANON) | MEMBIT(MEM_SHMEM) | MEMBIT(MEM_SHMEM_PRIVATE) | MEMBIT(MEM_HUGETLB) |                   \
	 MEMBIT(MEM_HUGETLB_PRIVATE))

const struct workload workloads[] = {
	{ "wp-basic", MEM_ALL,
	  "REGISTER bitmasks with and without MODE_WP; protect; reads never fault; threaded writes raise one "
	  "WP|WRITE fault each at the written address; bit 57 set then clear; data intact",
	  wp_basic },
	{ "wp-dontwake", MEM_ALL,
	  "WP|DONTWAKE is EINVAL; unprotect with DONTWAKE leaves the writer blocked until UFFDIO_WAKE", wp_dontwake },
	{ "wp-mprotect", MEM_ALL,
	  "protection (bit 57) survives mprotect(PROT_READ) then PROT_READ|PROT_WRITE; writes still fault",
	  wp_mprotect },
	{ "wp-fork-cow", MEM_ALL,
	  "fork without EVENT_FORK clears the child's bit 57; with it the child's uffd arrives and its pages "
	  "stay protected; parent writes fault before COW completes, child keeps its bytes",
	  wp_fork_cow },
	{ "wp-swap", PRIVATE_TYPES | MEMBIT(MEM_SHMEM),
	  "after MADV_PAGEOUT bit 57 survives in the swap entry (or marker); pages read back stay protected; "
	  "writes after swap-in, and straight onto swapped pages, still fault",
	  wp_swap },
	{ "wp-swap-protect", PRIVATE_TYPES | MEMBIT(MEM_SHMEM),
	  "protect pages already swapped out: bit 57 set on the swap entries (markers for shmem), swap-in "
	  "keeps it and every write faults; unprotect while swapped: bit 57 clear, swap-in unprotected, "
	  "writes do not fault",
	  wp_swap_protect },
	{ "wp-fork-swap", MEM_ALL,
	  "fork while protected pages are swap entries (anon, after MADV_PAGEOUT) or PTE markers (file, after "
	  "MADV_DONTNEED): without EVENT_FORK the child has no bit 57 before or after reading them back; with "
	  "it the child's entries keep bit 57, reads keep it and its writes fault on the child's uffd; the "
	  "parent keeps its bits",
	  wp_fork_swap },
	{ "wp-fork-released", MEMBIT(MEM_SHMEM),
	  "fork with EVENT_FORK over uffd-wp PTE markers (after MADV_DONTNEED), the uffd closed instead of the "
	  "event read: the child's VMA is unregistered with the markers left in it; each first touch drops its "
	  "marker: no SIGBUS, no hang, the file's bytes, bit 57 clear after the read, writes land; the parent's "
	  "bits were reset by the release",
	  wp_fork_released },
	{ "wp-swapoff", PRIVATE_TYPES,
	  "protect, MADV_PAGEOUT, then swapoff every swap area and swapon it again: unuse_pte keeps bit 57 on "
	  "the pages it maps back, each write faults once at its address, data intact, swap listed again",
	  wp_swapoff },
	{ "wp-migrate", CLASSIC_TYPES | MEMBIT(MEM_ANON_THP),
	  "protect, then MADV_SOFT_OFFLINE moves every page to a new frame (migration entries; a THP split "
	  "first): new PFNs, bit 57 kept, reads raise nothing, each write faults once at its address, data intact",
	  wp_migrate },
	{ "wp-numa-migrate", CLASSIC_TYPES | MEMBIT(MEM_ANON_THP),
	  "protect on node 0, then move_pages() moves every page to node 1 (migration entries; a THP "
	  "moves whole through a PMD migration entry): all on node 1, THP still huge, bit 57 kept, reads raise "
	  "nothing, each write faults once at its address, data intact",
	  wp_numa_migrate },
	{ "wp-force-write", MEMBIT(MEM_ANON) | MEMBIT(MEM_ANON_THP),
	  "writes through /proc/self/mem (GUP with FOLL_FORCE) into protected pages of a read-only private "
	  "mapping (a PMD-mapped THP first on anon-thp) raise one WP fault each before they land; again: none",
	  wp_force_write },
	{ "wp-private-file", MEMBIT(MEM_SHMEM_PRIVATE) | MEMBIT(MEM_HUGETLB_PRIVATE),
	  "a private file mapping still mapping the file's pages (filled through a shared alias, read through "
	  "the registered view): protect; each write raises one WP fault, then copies the page: the view sees "
	  "the writes, the file keeps its bytes, bit 57 clear",
	  wp_private_file },
	{ "wp-zap", MEM_SHARED_FILE,
	  "after MADV_DONTNEED bit 57 persists as a PTE marker; fault-in keeps it; the next write still faults",
	  wp_zap },
	{ "wp-thp", MEMBIT(MEM_ANON_THP),
	  "protect a whole PMD-mapped THP: it stays PMD-mapped and one write faults once; protect one 4K page "
	  "of a fresh THP: the PMD splits and only that page faults",
	  wp_thp },
	{ "wp-thp-split", MEMBIT(MEM_ANON_THP),
	  "protect a whole PMD-mapped THP, then split it by mprotect, munmap, MADV_DONTNEED or unprotect of one "
	  "4K page: bit 57 stays on every other page, sampled writes fault once each, the split-off page does not",
	  wp_thp_split },
	{ "wp-collapse", MEMBIT(MEM_ANON_THP) | MEMBIT(MEM_SHMEM),
	  "protect 4K pages of a PTE-mapped THP-sized range, let khugepaged scan it and ask MADV_COLLAPSE: collapsed "
	  "or not, bit 57 stays on exactly those pages, their writes fault once each, the others write freely",
	  wp_collapse },
	{ "wp-mremap", CLASSIC_TYPES | MEMBIT(MEM_ANON_THP),
	  "mremap a protected range (a THP as one PMD): with EVENT_REMAP the message has from/to/len, bit 57 and "
	  "the faults follow the move; without it the moved range is unregistered: bit 57 clear, writes free; "
	  "moved PTE markers (shmem, hugetlb: zapped first) are dropped at the first touch, no message",
	  wp_mremap },
	{ "wp-unregister", MEM_ALL,
	  "after UFFDIO_UNREGISTER, and after close(uffd), bit 57 is clear and writes do not fault", wp_unregister },
	{ "wp-errors", MEM_ALL,
	  "WRITEPROTECT errors: ENOENT off WP-registered ranges, EINVAL for unknown mode bits, zero, unaligned "
	  "or wrapping ranges and hugetlb misalignment; REGISTER/API misuse is EINVAL",
	  wp_errors },
	{ "wp-unpopulated", MEM_ALL,
	  "protect unpopulated memory (anon needs UFFD_FEATURE_WP_UNPOPULATED): markers set bit 57, unprotect "
	  "clears them, reads keep them, writes fault; on anon MADV_DONTNEED drops them",
	  wp_unpopulated },
	{ "wp-async", MEM_ALL,
	  "UFFD_FEATURE_WP_ASYNC + PAGEMAP_SCAN: writes never block or message; the scan reports exactly the "
	  "written pages; WP_MATCHING re-protects them so the next scan sees only new writes",
	  wp_async },
	{ "minor-basic", MEM_SHARED_FILE,
	  "REGISTER bitmasks with and without MODE_MINOR; fill and modify through the alias without faults; each "
	  "first read through the registered mapping raises one MINOR fault at its address; CONTINUE maps the "
	  "whole page with the alias's bytes; a second CONTINUE is EEXIST (mapped -EEXIST); no MISSING faults",
	  minor_basic },
	{ "minor-private", MEMBIT(MEM_SHMEM_PRIVATE) | MEMBIT(MEM_HUGETLB_PRIVATE),
	  "MODE_MINOR on a private file mapping: CONTINUE maps the page-cache page read-only; a write then "
	  "copies it (no fault message) and the file keeps its bytes",
	  minor_private },
	{ "minor-anon-rejected", MEMBIT(MEM_ANON) | MEMBIT(MEM_ANON_THP),
	  "REGISTER with MODE_MINOR (alone or with MISSING) on anonymous memory is EINVAL and registers nothing; "
	  "CONTINUE on anonymous memory is EINVAL",
	  minor_anon_rejected },
	{ "minor-fallocate", MEMBIT(MEM_SHMEM) | MEMBIT(MEM_HUGETLB),
	  "pages created by fallocate() and first read through the registered mapping raise MINOR faults that "
	  "CONTINUE resolves, reading zeros",
	  minor_fallocate },
	{ "continue-errors", MEM_SHARED_FILE,
	  "CONTINUE errors: EFAULT on a page-cache hole, ENOENT off registered ranges (mapped = -errno), EINVAL "
	  "for unknown modes, zero, unaligned, wrapping and partial-hugepage ranges, EEXIST when mapped; what it "
	  "does on a range registered without MODE_MINOR (whose bitmask lacks it) is recorded",
	  continue_errors },
	{ "continue-dontwake", MEM_SHARED_FILE,
	  "CONTINUE with DONTWAKE maps the page but leaves the reader blocked until UFFDIO_WAKE; it then sees the "
	  "alias's bytes",
	  continue_dontwake },
	{ "continue-wp", MEM_SHARED_FILE,
	  "UFFDIO_CONTINUE_MODE_WP (6.4) maps pages write-protected: bit 57 set, each write raises one WP fault; "
	  "the mode is EINVAL where WP is not registered",
	  continue_wp },
	{ "missing-copy", CLASSIC_TYPES | MEMBIT(MEM_ANON_THP),
	  "first touches raise one MISSING fault each at the right address, FLAG_WRITE exactly for stores; COPY "
	  "fills whole pages with the given bytes (private copies stay out of the file); a second COPY is EEXIST",
	  missing_copy },
	{ "missing-zeropage", CLASSIC_TYPES,
	  "ZEROPAGE resolves MISSING faults with zeros, later stores need no fault and a second ZEROPAGE is "
	  "EEXIST; on hugetlb it is EINVAL and absent from the REGISTER bitmask",
	  missing_zeropage },
	{ "missing-dontwake", CLASSIC_TYPES,
	  "COPY (and ZEROPAGE, not on hugetlb) with DONTWAKE maps the page of a held MISSING fault but leaves "
	  "the reader asleep until UFFDIO_WAKE; it then sees the copied bytes (zeros)",
	  missing_dontwake },
	{ "fill-contract", CLASSIC_TYPES,
	  "UFFDIO_API refuses a wrong api (zeroing the struct) and reports REGISTER|UNREGISTER|API; a second uffd "
	  "cannot register a taken range (EBUSY); COPY: unknown mode EINVAL, a multi-page COPY reports its length, "
	  "one that meets a populated page is EAGAIN with the bytes done; COPY_MODE_WP is EINVAL without MODE_WP, "
	  "and after REGISTER adds it maps the page with bit 57 set, whose first write raises a WP fault; "
	  "UNREGISTER of the middle of a protected range clears bit 57 there only; a COPY from a never-touched "
	  "source succeeds whole (the kernel's retry outside the lock) and maps zeros",
	  fill_contract },
	{ "api", MEMBIT(MEM_ANON),
	  "UFFDIO_API: unreadable arg EFAULT, unknown feature EINVAL (zeroed), read-only arg EFAULT then API works; "
	  "fdinfo API: fields and pending/total through a fault; /dev/userfaultfd IOC_NEW and its EINVALs; "
	  "without capabilities userfaultfd(0) EPERM unless the sysctl allows, USER_MODE_ONLY ok, EVENT_FORK "
	  "EPERM; EMFILE at RLIMIT_NOFILE",
	  api },
	{ "detach", CLASSIC_TYPES,
	  "UFFDIO_UNREGISTER and close() release a pending MISSING fault (the reader completes on a zeroed page, "
	  "no SIGBUS); mremap of part of a range by a uffd without EVENT_REMAP unregisters the moved pages "
	  "(no message, zeros) and leaves the rest registered (not on hugetlb)",
	  detach },
	{ "events", CLASSIC_TYPES,
	  "UFFD_EVENT_FORK delivers the child's uffd, which serves the child's faults; REMAP reports from/to/len "
	  "and faults follow the move; REMOVE (MADV_DONTNEED/MADV_REMOVE) reports the range and its pages fault "
	  "again; UNMAP reports the range",
	  events },
	{ "sigbus", CLASSIC_TYPES,
	  "with UFFD_FEATURE_SIGBUS every missing fault is a SIGBUS at the touched address, never a message; "
	  "after COPY the touch succeeds; a child forked with EVENT_FORK gets SIGBUS too; a store to a page "
	  "COPY'd with COPY_MODE_WP is a SIGBUS at that address, a load is not, and after unprotect it lands",
	  sigbus },
	{ "stress", CLASSIC_TYPES,
	  "uffd-stress-like bounces for --seconds (default 3): lockers increment per-page counters under "
	  "in-page mutexes while handlers and copiers race to COPY (write-protecting where possible) and, on "
	  "shared memory, CONTINUE; every counter and page verified each bounce; faults/s and latency by kind",
	  stress },
};

const size_t nworkloads = sizeof(workloads) / sizeof(workloads[0]);

const struct workload *workload_by_name(const char *name)
{
	for (size_t i = 0; i < nworkloads; i++)
		if (!strcmp(workloads[i].name, name))
			return &workloads[i];
	return NULL;
}

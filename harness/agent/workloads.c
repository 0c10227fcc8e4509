#define _GNU_SOURCE
#include "workloads.h"

#include <string.h>

#define PRIVATE_TYPES (MEMBIT(MEM_ANON) | MEMBIT(MEM_ANON_THP) | MEMBIT(MEM_SHMEM_PRIVATE))

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
	{ "wp-zap", MEM_SHARED_FILE,
	  "after MADV_DONTNEED bit 57 persists as a PTE marker; fault-in keeps it; the next write still faults",
	  wp_zap },
	{ "wp-thp", MEMBIT(MEM_ANON_THP),
	  "protect a whole PMD-mapped THP: it stays PMD-mapped and one write faults once; protect one 4K page "
	  "of a fresh THP: the PMD splits and only that page faults",
	  wp_thp },
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
};

const size_t nworkloads = sizeof(workloads) / sizeof(workloads[0]);

const struct workload *workload_by_name(const char *name)
{
	for (size_t i = 0; i < nworkloads; i++)
		if (!strcmp(workloads[i].name, name))
			return &workloads[i];
	return NULL;
}

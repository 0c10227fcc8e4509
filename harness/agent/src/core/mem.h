/*
 * Memory types a workload runs on, and the areas they provide.
 *
 * Content is checked through "stamps": the first 8 bytes of every 4 KiB subpage hold
 * stamp(seed, generation, subpage), so a lost, stale or misplaced write is visible
 * without comparing whole pages (which would be slow on 1 GiB pages under TCG).
 */
#ifndef AGENT_MEM_H
#define AGENT_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mem_type {
	MEM_ANON,
	MEM_ANON_THP,
	MEM_SHMEM,
	MEM_SHMEM_PRIVATE,
	MEM_HUGETLB,
	MEM_HUGETLB_PRIVATE,
	MEM_HUGETLB_1G,
	MEM_NTYPES,
};

#define MEMBIT(t) (1U << (t))
#define MEM_ALL ((1U << MEM_NTYPES) - 1)
#define MEM_SHARED_FILE (MEMBIT(MEM_SHMEM) | MEMBIT(MEM_HUGETLB) | MEMBIT(MEM_HUGETLB_1G))

struct mem_info {
	const char *name;
	size_t psize;	      /* protection/fault unit the workloads use */
	bool shared;	      /* MAP_SHARED with an alias mapping */
	bool hugetlb;
	bool anon;	      /* anonymous VMA (no file behind the registered mapping) */
	size_t default_pages;
};

const struct mem_info *mem_info(enum mem_type t);
int mem_by_name(const char *name);

struct area {
	enum mem_type type;
	char *base;  /* the mapping workloads register */
	char *alias; /* a second MAP_SHARED mapping of the same pages, or NULL */
	size_t size, psize, npages;
	int fd;	     /* memfd for shmem and hugetlb memfd types, else -1 */
};

/*
 * Private types backed by a memfd (hugetlb-private too) that also get a MAP_SHARED alias:
 * minor faults need page-cache pages that a second mapping can fill.
 */
#define AREA_FILE_ALIAS (1U << 0)
/*
 * shmem: map the file at a PMD-aligned address, so its pages can be collapsed into a THP;
 * anon: so that a whole page table of base pages can move as one PMD (mremap).
 */
#define AREA_PMD_ALIGN (1U << 1)

/*
 * 0: ready. 1: this system cannot provide it (why says what is missing: a skip).
 * -1: an unexpected error (why says which call failed). extra_hugepages: hugetlb pages
 * the workload will need beyond the area itself (copy-on-write copies).
 */
int area_alloc(struct area *a, enum mem_type t, size_t npages, size_t extra_hugepages, unsigned flags, char *why,
	       size_t n);
void area_free(struct area *a);
/* Can this type be provided at all (THP mode, hugepage pool)? 0 or 1 as above. */
int mem_available(enum mem_type t, size_t npages, size_t extra_hugepages, char *why, size_t n);

/* Stamp generations the workloads use. */
enum { GEN_INITIAL = 1, GEN_WRITTEN = 2, GEN_CHILD = 3 };

size_t subpages_per_page(const struct area *a);
uint64_t stamp(uint64_t seed, unsigned gen, size_t subpage);
static inline volatile uint64_t *stamp_at(const char *view, size_t subpage)
{
	return (volatile uint64_t *)(view + subpage * 4096UL);
}

/* Populate every page with generation gen. 1 means skip (e.g. no THP could be had). */
int area_populate(struct area *a, uint64_t seed, unsigned gen, char *why, size_t n);
/*
 * Subpages of pages [from, to) whose stamp differs from generation gens[page]
 * (gens == NULL: gen for all). first_bad is set to the first bad subpage when any.
 * Async-signal-safe: forked children use it.
 */
size_t area_mismatches(const struct area *a, const char *view, size_t from, size_t to, uint64_t seed,
		       const unsigned *gens, unsigned gen, size_t *first_bad);

/* PMD-mapped anonymous THP in the VMA holding addr, in kB (smaps AnonHugePages), or -1. */
long anon_huge_kb(const void *addr);
/* The same summed over every VMA that overlaps [addr, addr+len), or -1 if unreadable. */
long anon_huge_kb_range(const void *addr, size_t len);
/* Any smaps "Field: N kB" line (ShmemPmdMapped, ...) summed the same way. */
long smaps_kb_range(const void *addr, size_t len, const char *field);
/* THP "enabled" mode: "always", "madvise", "never", or "" when the kernel has no THP. */
const char *thp_mode(char *buf, size_t n);
size_t thp_pmd_size(void);
bool swap_active(void);
/* Why swap-based workloads cannot run here ("no swap: ..."), or NULL when swap is on. */
const char *swap_missing(void);

#endif

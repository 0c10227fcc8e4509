#define _GNU_SOURCE
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uapi.h"
#include "util.h"

static const struct mem_info infos[MEM_NTYPES] = {
	[MEM_ANON] = { "anon", BASE_PAGE, false, false, true, 64 },
	/* 1024 base pages = two 2 MiB THPs: enough to protect one whole and split the other. */
	[MEM_ANON_THP] = { "anon-thp", BASE_PAGE, false, false, true, 1024 },
	[MEM_SHMEM] = { "shmem", BASE_PAGE, true, false, false, 64 },
	[MEM_SHMEM_PRIVATE] = { "shmem-private", BASE_PAGE, false, false, false, 64 },
	[MEM_HUGETLB] = { "hugetlb", 2 * MIB, true, true, false, 8 },
	[MEM_HUGETLB_PRIVATE] = { "hugetlb-private", 2 * MIB, false, true, false, 8 },
	/* Shared so its alias costs no second page: guests usually have a single 1 GiB page. */
	[MEM_HUGETLB_1G] = { "hugetlb-1g", GIB, true, true, false, 1 },
};

const struct mem_info *mem_info(enum mem_type t)
{
	return &infos[t];
}

int mem_by_name(const char *name)
{
	for (int t = 0; t < MEM_NTYPES; t++)
		if (!strcmp(infos[t].name, name))
			return t;
	return -1;
}

const char *thp_mode(char *buf, size_t n)
{
	return read_choice("/sys/kernel/mm/transparent_hugepage/enabled", buf, n);
}

size_t thp_pmd_size(void)
{
	long long v = read_ll("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", 2 * MIB);

	return v > 0 ? (size_t)v : 2 * MIB;
}

bool swap_active(void)
{
	char text[4096];
	char *nl;

	/* The first line is a header; any further line is an active swap area. */
	if (read_text("/proc/swaps", text, sizeof(text)) <= 0)
		return false;
	nl = strchr(text, '\n');
	return nl && nl[1] != '\0';
}

const char *swap_missing(void)
{
	/* /proc/swaps exists exactly when the kernel has CONFIG_SWAP. */
	if (access("/proc/swaps", F_OK) != 0)
		return "no swap: kernel built without CONFIG_SWAP (no /proc/swaps)";
	if (!swap_active())
		return "no swap: /proc/swaps lists no active swap area";
	return NULL;
}

static int hugetlb_available(size_t psize, size_t need, char *why, size_t n)
{
	char dir[96], path[128];
	long long free_, resv;

	snprintf(dir, sizeof(dir), "/sys/kernel/mm/hugepages/hugepages-%zukB", psize / KIB);
	snprintf(path, sizeof(path), "%s/free_hugepages", dir);
	free_ = read_ll(path, -1);
	if (free_ < 0) {
		snprintf(why, n, "kernel offers no %zu kB hugetlb pages (no %s)", psize / KIB, dir);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/resv_hugepages", dir);
	resv = read_ll(path, 0);
	if (free_ - resv < (long long)need) {
		snprintf(why, n,
			 "needs %zu free %zu kB hugetlb pages, %lld free and %lld reserved "
			 "(boot with hugepagesz=/hugepages= or set %s/nr_hugepages)",
			 need, psize / KIB, free_, resv, dir);
		return 1;
	}
	return 0;
}

int mem_available(enum mem_type t, size_t npages, size_t extra_hugepages, char *why, size_t n)
{
	char mode[32];

	switch (t) {
	case MEM_ANON_THP:
		thp_mode(mode, sizeof(mode));
		if (!mode[0]) {
			snprintf(why, n, "kernel has no transparent hugepages (no /sys/kernel/mm/transparent_hugepage)");
			return 1;
		}
		if (!strcmp(mode, "never")) {
			snprintf(why, n, "THP disabled (transparent_hugepage/enabled is never)");
			return 1;
		}
		return 0;
	case MEM_HUGETLB:
	case MEM_HUGETLB_PRIVATE:
	case MEM_HUGETLB_1G:
		return hugetlb_available(infos[t].psize, npages + extra_hugepages, why, n);
	default:
		return 0;
	}
}

static int agent_memfd(unsigned flags)
{
	return (int)syscall(__NR_memfd_create, "uffd-agent", MFD_CLOEXEC | flags);
}

static unsigned huge_flag(size_t psize)
{
	return psize == GIB ? AGENT_HUGE_1GB : AGENT_HUGE_2MB;
}

/* A free address for len bytes aligned to align (reserved, then released), or NULL. */
static void *aligned_hole(size_t len, size_t align)
{
	char *raw = mmap(NULL, len + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (raw == MAP_FAILED)
		return NULL;
	munmap(raw, len + align);
	return (void *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
}

static int map_file(struct area *a, bool shared, bool alias, bool pmd_align, char *why, size_t n)
{
	int flags = shared ? MAP_SHARED : MAP_PRIVATE;
	void *at = NULL;

	if (ftruncate(a->fd, (off_t)a->size)) {
		snprintf(why, n, "ftruncate(memfd, %zu): %s", a->size, errno_name(errno));
		return -1;
	}
	if (pmd_align) {
		at = aligned_hole(a->size, thp_pmd_size());
		if (!at) {
			snprintf(why, n, "mmap(%zu PROT_NONE) for a PMD-aligned address: %s", a->size, errno_name(errno));
			return -1;
		}
		flags |= MAP_FIXED;
	}
	a->base = mmap(at, a->size, PROT_READ | PROT_WRITE, flags, a->fd, 0);
	if (a->base == MAP_FAILED) {
		a->base = NULL;
		snprintf(why, n, "mmap(memfd, %zu): %s", a->size, errno_name(errno));
		return infos[a->type].hugetlb && errno == ENOMEM ? 1 : -1;
	}
	if (!alias)
		return 0;
	a->alias = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
	if (a->alias == MAP_FAILED) {
		a->alias = NULL;
		snprintf(why, n, "mmap(alias of memfd, %zu): %s", a->size, errno_name(errno));
		return -1;
	}
	return 0;
}

static int alloc_thp(struct area *a, char *why, size_t n)
{
	size_t pmd = thp_pmd_size();
	char *raw, *aligned;

	a->size = (a->size + pmd - 1) / pmd * pmd;
	a->npages = a->size / a->psize;
	raw = mmap(NULL, a->size + pmd, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED) {
		snprintf(why, n, "mmap(%zu anon): %s", a->size + pmd, errno_name(errno));
		return -1;
	}
	/* A THP needs a PMD-aligned range: trim the slack on both sides. */
	aligned = (char *)(((uintptr_t)raw + pmd - 1) & ~(uintptr_t)(pmd - 1));
	if (aligned > raw)
		munmap(raw, (size_t)(aligned - raw));
	if (aligned + a->size < raw + a->size + pmd)
		munmap(aligned + a->size, (size_t)(raw + a->size + pmd - (aligned + a->size)));
	a->base = aligned;
	if (madvise(a->base, a->size, MADV_HUGEPAGE)) {
		snprintf(why, n, "madvise(MADV_HUGEPAGE): %s", errno_name(errno));
		return 1;
	}
	return 0;
}

static int map_hugetlb_anon_private(struct area *a, char *why, size_t n)
{
	a->base = mmap(NULL, a->size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (int)huge_flag(a->psize), -1, 0);
	if (a->base == MAP_FAILED) {
		a->base = NULL;
		snprintf(why, n, "mmap(MAP_HUGETLB private, %zu): %s", a->size, errno_name(errno));
		return 1;
	}
	return 0;
}

int area_alloc(struct area *a, enum mem_type t, size_t npages, size_t extra_hugepages, unsigned flags, char *why,
	       size_t n)
{
	const struct mem_info *mi = &infos[t];
	bool alias = mi->shared || (flags & AREA_FILE_ALIAS);
	int rc;

	memset(a, 0, sizeof(*a));
	a->type = t;
	a->fd = -1;
	a->psize = mi->psize;
	a->npages = npages;
	a->size = npages * mi->psize;
	rc = mem_available(t, npages, extra_hugepages, why, n);
	if (rc)
		return rc;

	switch (t) {
	case MEM_ANON: {
		void *at = (flags & AREA_PMD_ALIGN) ? aligned_hole(a->size, thp_pmd_size()) : NULL;

		if ((flags & AREA_PMD_ALIGN) && !at) {
			snprintf(why, n, "mmap(%zu PROT_NONE) for a PMD-aligned address: %s", a->size, errno_name(errno));
			return -1;
		}
		a->base = mmap(at, a->size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | (at ? MAP_FIXED : 0), -1, 0);
		if (a->base == MAP_FAILED) {
			a->base = NULL;
			snprintf(why, n, "mmap(%zu anon): %s", a->size, errno_name(errno));
			return -1;
		}
		/* Keep "anon" base pages even where THP is "always"; EINVAL without THP is fine. */
		madvise(a->base, a->size, MADV_NOHUGEPAGE);
		return 0;
	}
	case MEM_ANON_THP:
		return alloc_thp(a, why, n);
	case MEM_SHMEM:
	case MEM_SHMEM_PRIVATE:
		a->fd = agent_memfd(0);
		if (a->fd < 0) {
			snprintf(why, n, "memfd_create: %s", errno_name(errno));
			return errno == ENOSYS ? 1 : -1;
		}
		return map_file(a, mi->shared, alias, flags & AREA_PMD_ALIGN, why, n);
	case MEM_HUGETLB_PRIVATE:
		if (!alias)
			return map_hugetlb_anon_private(a, why, n);
		/* fall through */
	case MEM_HUGETLB:
	case MEM_HUGETLB_1G:
		a->fd = agent_memfd(MFD_HUGETLB | huge_flag(mi->psize));
		if (a->fd < 0) {
			snprintf(why, n, "memfd_create(MFD_HUGETLB, %zu kB): %s", mi->psize / KIB, errno_name(errno));
			return 1;
		}
		return map_file(a, mi->shared, true, false, why, n);
	case MEM_NTYPES:
		break;
	}
	snprintf(why, n, "unknown memory type %d", (int)t);
	return -1;
}

void area_free(struct area *a)
{
	if (a->base)
		munmap(a->base, a->size);
	if (a->alias)
		munmap(a->alias, a->size);
	if (a->fd >= 0)
		close(a->fd);
	a->base = a->alias = NULL;
	a->fd = -1;
}

size_t subpages_per_page(const struct area *a)
{
	return a->psize / BASE_PAGE;
}

uint64_t stamp(uint64_t seed, unsigned gen, size_t subpage)
{
	return mix64(mix64(seed) ^ ((uint64_t)gen << 48) ^ subpage);
}

long anon_huge_kb(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[512];
	bool in_vma = false;
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char c;

		/* VMA header lines are "lo-hi perms ..."; no "Name: value" line parses so. */
		if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3) {
			in_vma = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (in_vma && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

long anon_huge_kb_range(const void *addr, size_t len)
{
	return smaps_kb_range(addr, len, "AnonHugePages");
}

long smaps_kb_range(const void *addr, size_t len, const char *field)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	uintptr_t a = (uintptr_t)addr, end = a + len;
	char line[512];
	bool in_range = false;
	size_t flen = strlen(field);
	long kb, sum = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char c;

		if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3) {
			in_range = lo < end && hi > a;
			continue;
		}
		if (in_range && !strncmp(line, field, flen) && line[flen] == ':' &&
		    sscanf(line + flen + 1, "%ld kB", &kb) == 1)
			sum += kb;
	}
	fclose(f);
	return sum;
}

static int populate_file_private(struct area *a, uint64_t seed, unsigned gen, char *why, size_t n)
{
	size_t nsub = a->size / BASE_PAGE;

	/* Fill the file, then read-fault it in: the private mapping then maps page-cache
	 * pages read-only, and writes must copy-on-write them, unlike plain anon. */
	for (size_t s = 0; s < nsub; s++) {
		uint64_t v = stamp(seed, gen, s);

		if (pwrite(a->fd, &v, sizeof(v), (off_t)(s * BASE_PAGE)) != (ssize_t)sizeof(v)) {
			snprintf(why, n, "pwrite(memfd): %s", errno_name(errno));
			return -1;
		}
	}
	for (size_t s = 0; s < nsub; s++)
		(void)*stamp_at(a->base, s);
	return 0;
}

int area_populate(struct area *a, uint64_t seed, unsigned gen, char *why, size_t n)
{
	size_t nsub = a->size / BASE_PAGE;
	long kb;

	if (a->type == MEM_SHMEM_PRIVATE)
		return populate_file_private(a, seed, gen, why, n);
	for (size_t s = 0; s < nsub; s++)
		*stamp_at(a->base, s) = stamp(seed, gen, s);
	if (a->type != MEM_ANON_THP)
		return 0;
	kb = anon_huge_kb(a->base);
	if (kb != (long)(a->size / KIB)) {
		snprintf(why, n, "could not get PMD-mapped THPs: AnonHugePages %ld kB of %zu kB after MADV_HUGEPAGE",
			 kb, a->size / KIB);
		return 1;
	}
	return 0;
}

size_t area_mismatches(const struct area *a, const char *view, size_t from, size_t to, uint64_t seed,
		       const unsigned *gens, unsigned gen, size_t *first_bad)
{
	size_t spp = subpages_per_page(a), bad = 0;

	for (size_t p = from; p < to; p++) {
		unsigned g = gens ? gens[p] : gen;

		for (size_t s = p * spp; s < (p + 1) * spp; s++) {
			if (*stamp_at(view, s) == stamp(seed, g, s))
				continue;
			if (!bad++ && first_bad)
				*first_bad = s;
		}
	}
	return bad;
}

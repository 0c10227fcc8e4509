/* The workload registry and what every workload receives. */
#ifndef AGENT_WORKLOADS_H
#define AGENT_WORKLOADS_H

#include <stddef.h>
#include <stdint.h>

#include "mem.h"
#include "result.h"

struct run {
	struct result *r;
	enum mem_type mem;
	size_t pages;	   /* the memory type's default unless --pages */
	unsigned threads;
	uint64_t seed;
	uint64_t features; /* what UFFDIO_API offers on this kernel */
};

struct workload {
	const char *name;
	unsigned mems; /* MEMBIT()s it runs on */
	const char *summary;
	void (*fn)(struct run *run);
};

extern const struct workload workloads[];
extern const size_t nworkloads;
const struct workload *workload_by_name(const char *name);

void wp_basic(struct run *run);
void wp_dontwake(struct run *run);
void wp_mprotect(struct run *run);
void wp_fork_cow(struct run *run);
void wp_swap(struct run *run);
void wp_swap_protect(struct run *run);
void wp_fork_swap(struct run *run);
void wp_fork_released(struct run *run);
void wp_force_write(struct run *run);
void wp_private_file(struct run *run);
void wp_swapoff(struct run *run);
void wp_migrate(struct run *run);
void wp_numa_migrate(struct run *run);
void api(struct run *run);
void wp_zap(struct run *run);
void wp_thp(struct run *run);
void wp_thp_split(struct run *run);
void wp_collapse(struct run *run);
void wp_mremap(struct run *run);
void wp_unregister(struct run *run);
void wp_errors(struct run *run);
void wp_unpopulated(struct run *run);
void wp_async(struct run *run);
void minor_basic(struct run *run);
void minor_private(struct run *run);
void minor_anon_rejected(struct run *run);
void minor_fallocate(struct run *run);
void continue_errors(struct run *run);
void continue_dontwake(struct run *run);
void continue_wp(struct run *run);
void missing_copy(struct run *run);
void missing_zeropage(struct run *run);
void missing_dontwake(struct run *run);
void fill_contract(struct run *run);
void detach(struct run *run);
void events(struct run *run);
void sigbus(struct run *run);
void stress(struct run *run);

#endif

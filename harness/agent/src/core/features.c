#define _GNU_SOURCE
#include "features.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "mem.h"
#include "pagemap.h"
#include "uffd.h"
#include "util.h"

static void kernel_json(struct jw *w)
{
	struct utsname u;

	uname(&u);
	jw_key(w, "kernel");
	jw_obj(w);
	jw_key(w, "release");
	jw_str(w, u.release);
	jw_key(w, "version");
	jw_str(w, u.version);
	jw_key(w, "machine");
	jw_str(w, u.machine);
	jw_end_obj(w);
}

static void uffd_json(struct jw *w)
{
	uint64_t features = 0, ioctls = 0;
	char source[48] = "";
	int rc = uffd_probe(&features, &ioctls, source, sizeof(source));

	jw_key(w, "userfaultfd");
	jw_obj(w);
	jw_key(w, "available");
	jw_bool(w, rc == 0);
	jw_key(w, "error");
	if (rc)
		jw_str(w, errno_name(-rc));
	else
		jw_null(w);
	jw_key(w, "source");
	jw_str(w, source);
	jw_key(w, "dev_userfaultfd");
	jw_bool(w, access("/dev/userfaultfd", F_OK) == 0);
	jw_key(w, "unprivileged_userfaultfd");
	jw_int(w, read_ll("/proc/sys/vm/unprivileged_userfaultfd", -1));
	jw_key(w, "features_mask");
	jw_uint(w, features);
	jw_key(w, "features");
	jw_arr(w);
	for (unsigned bit = 0; bit < 64; bit++) {
		char other[16];
		const char *name = uffd_feature_name(bit);

		if (!(features & (1ULL << bit)))
			continue;
		snprintf(other, sizeof(other), "bit%u", bit);
		jw_str(w, name ? name : other);
	}
	jw_end_arr(w);
	jw_key(w, "api_ioctls");
	jw_arr(w);
	for (unsigned bit = 0; bit < 64; bit++) {
		const char *name = uffd_ioctl_name(bit);

		if ((ioctls & (1ULL << bit)) && name)
			jw_str(w, name);
	}
	jw_end_arr(w);
	jw_end_obj(w);
	jw_key(w, "pagemap_scan");
	jw_bool(w, pagemap_scan_probe() == 0);
}

static int by_size(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return x < y ? -1 : x > y;
}

static void hugepages_json(struct jw *w)
{
	DIR *d = opendir("/sys/kernel/mm/hugepages");
	struct dirent *e;
	long sizes[16];
	size_t n = 0;

	while (d && (e = readdir(d)) && n < ARRAY_SIZE(sizes)) {
		long kb;

		if (sscanf(e->d_name, "hugepages-%ldkB", &kb) == 1)
			sizes[n++] = kb;
	}
	if (d)
		closedir(d);
	qsort(sizes, n, sizeof(sizes[0]), by_size);
	jw_key(w, "hugepages");
	jw_arr(w);
	for (size_t i = 0; i < n; i++) {
		static const char *const fields[] = { "nr_hugepages", "free_hugepages", "resv_hugepages",
						      "surplus_hugepages" };
		static const char *const keys[] = { "total", "free", "reserved", "surplus" };
		char path[128];

		jw_obj(w);
		jw_key(w, "size_kb");
		jw_int(w, sizes[i]);
		for (size_t f = 0; f < ARRAY_SIZE(fields); f++) {
			snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%ldkB/%s", sizes[i], fields[f]);
			jw_key(w, keys[f]);
			jw_int(w, read_ll(path, -1));
		}
		jw_end_obj(w);
	}
	jw_end_arr(w);
}

static void thp_json(struct jw *w)
{
	char mode[32];

	jw_key(w, "thp");
	jw_obj(w);
	jw_key(w, "enabled");
	thp_mode(mode, sizeof(mode));
	if (mode[0])
		jw_str(w, mode);
	else
		jw_null(w);
	jw_key(w, "defrag");
	read_choice("/sys/kernel/mm/transparent_hugepage/defrag", mode, sizeof(mode));
	jw_str(w, mode);
	jw_key(w, "shmem_enabled");
	read_choice("/sys/kernel/mm/transparent_hugepage/shmem_enabled", mode, sizeof(mode));
	jw_str(w, mode);
	jw_key(w, "pmd_size");
	jw_uint(w, thp_pmd_size());
	jw_end_obj(w);
}

static void swap_json(struct jw *w)
{
	char text[4096], *line, *save = NULL;
	long long total = 0;
	bool header = true;

	jw_key(w, "swap");
	jw_obj(w);
	jw_key(w, "active");
	jw_bool(w, swap_active());
	jw_key(w, "devices");
	jw_arr(w);
	if (read_text("/proc/swaps", text, sizeof(text)) > 0) {
		for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			char name[256], type[32];
			long long size, used;

			if (header) {
				header = false;
				continue;
			}
			if (sscanf(line, "%255s %31s %lld %lld", name, type, &size, &used) != 4)
				continue;
			total += size;
			jw_obj(w);
			jw_key(w, "name");
			jw_str(w, name);
			jw_key(w, "type");
			jw_str(w, type);
			jw_key(w, "size_kb");
			jw_int(w, size);
			jw_key(w, "used_kb");
			jw_int(w, used);
			jw_end_obj(w);
		}
	}
	jw_end_arr(w);
	jw_key(w, "total_kb");
	jw_int(w, total);
	jw_end_obj(w);
}

static void mem_types_json(struct jw *w)
{
	jw_key(w, "mem_types");
	jw_obj(w);
	for (int t = 0; t < MEM_NTYPES; t++) {
		const struct mem_info *mi = mem_info((enum mem_type)t);
		char why[256] = "";
		int rc = mem_available((enum mem_type)t, mi->default_pages, 0, why, sizeof(why));

		jw_key(w, mi->name);
		jw_obj(w);
		jw_key(w, "available");
		jw_bool(w, rc == 0);
		jw_key(w, "reason");
		jw_str(w, why);
		jw_end_obj(w);
	}
	jw_end_obj(w);
}

void features_json(struct jw *w)
{
	jw_obj(w);
	kernel_json(w);
	uffd_json(w);
	jw_key(w, "page_size");
	jw_int(w, sysconf(_SC_PAGESIZE));
	hugepages_json(w);
	thp_json(w);
	swap_json(w);
	mem_types_json(w);
	jw_end_obj(w);
}

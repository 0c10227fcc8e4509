#define _GNU_SOURCE
#include "pagemap.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util.h"

void pagemap_count_into(const void *addr, size_t len, int32_t *err, uint64_t *entries, uint64_t *wp,
			uint64_t *present)
{
	struct pm_counts c;
	int rc = pagemap_count(addr, len, &c);

	if (rc && !*err)
		*err = -rc;
	*wp = c.wp;
	if (present)
		*present = c.present;
	*entries = c.entries;
}

int pagemap_count(const void *addr, size_t len, struct pm_counts *c)
{
	uint64_t buf[512];
	size_t first = (uintptr_t)addr / BASE_PAGE, n = len / BASE_PAGE;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	memset(c, 0, sizeof(*c));
	if (fd < 0)
		return -errno;
	for (size_t done = 0; done < n;) {
		size_t chunk = n - done < ARRAY_SIZE(buf) ? n - done : ARRAY_SIZE(buf);
		ssize_t got = pread(fd, buf, chunk * sizeof(uint64_t), (off_t)((first + done) * sizeof(uint64_t)));

		if (got != (ssize_t)(chunk * sizeof(uint64_t))) {
			int err = got < 0 ? errno : EIO;

			close(fd);
			return -err;
		}
		for (size_t i = 0; i < chunk; i++) {
			if ((buf[i] & PM_UFFD_WP) && !c->wp++)
				c->first_wp = done + i;
			c->present += !!(buf[i] & PM_PRESENT);
			c->swapped += !!(buf[i] & PM_SWAP);
			c->file += !!(buf[i] & PM_FILE);
		}
		done += chunk;
	}
	c->entries = n;
	close(fd);
	return 0;
}

int pagemap_read(const void *addr, size_t n, uint64_t *out)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	size_t want = n * sizeof(uint64_t);
	ssize_t got;

	if (fd < 0)
		return -errno;
	got = pread(fd, out, want, (off_t)((uintptr_t)addr / BASE_PAGE * sizeof(uint64_t)));
	if (got != (ssize_t)want) {
		int err = got < 0 ? errno : EIO;

		close(fd);
		return -err;
	}
	close(fd);
	return 0;
}

long pagemap_scan(const void *start, size_t len, uint64_t flags, uint64_t category_mask,
		  uint64_t return_mask, struct page_region *vec, size_t vec_len)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = flags,
		.start = (uintptr_t)start,
		.end = (uintptr_t)start + len,
		.vec = (uintptr_t)vec,
		.vec_len = vec_len,
		.category_mask = category_mask,
		.return_mask = return_mask,
	};
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	long rc;

	if (fd < 0)
		return -errno;
	rc = ioctl(fd, PAGEMAP_SCAN, &arg);
	if (rc < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int pagemap_scan_probe(void)
{
	static char page[4096] __attribute__((aligned(4096)));
	struct page_region vec[1];
	long rc = pagemap_scan(page, sizeof(page), 0, PAGE_IS_PRESENT, PAGE_IS_PRESENT, vec, 1);

	return rc < 0 ? (int)rc : 0;
}

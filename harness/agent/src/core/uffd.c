#define _GNU_SOURCE
#include "uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util.h"

int uffd_open(char *source, size_t n)
{
	int flags = O_CLOEXEC | O_NONBLOCK;
	int fd, dev, err;

	fd = (int)syscall(__NR_userfaultfd, flags | UFFD_USER_MODE_ONLY);
	if (fd >= 0) {
		snprintf(source, n, "syscall+user-mode-only");
		return fd;
	}
	fd = (int)syscall(__NR_userfaultfd, flags);
	if (fd >= 0) {
		snprintf(source, n, "syscall");
		return fd;
	}
	err = errno;
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -err;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
	err = errno;
	close(dev);
	if (fd < 0)
		return -err;
	snprintf(source, n, "/dev/userfaultfd");
	return fd;
}

int uffd_api(int fd, uint64_t features, uint64_t *got)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	if (ioctl(fd, UFFDIO_API, &api))
		return -errno;
	if (got)
		*got = api.features;
	return 0;
}

int uffd_new(uint64_t features, uint64_t *got, char *source, size_t n)
{
	int fd = uffd_open(source, n);
	int rc;

	if (fd < 0)
		return fd;
	rc = uffd_api(fd, features, got);
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

int uffd_probe(uint64_t *features, uint64_t *api_ioctls, char *source, size_t n)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = uffd_open(source, n);
	int rc = 0;

	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api))
		rc = -errno;
	close(fd);
	*features = api.features;
	if (api_ioctls)
		*api_ioctls = api.ioctls;
	return rc;
}

int uffd_register(int fd, const void *addr, size_t len, uint64_t mode, uint64_t *ioctls)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		return -errno;
	if (ioctls)
		*ioctls = reg.ioctls;
	return 0;
}

int uffd_unregister(int fd, const void *addr, size_t len)
{
	struct uffdio_range range = { .start = (uintptr_t)addr, .len = len };

	return ioctl(fd, UFFDIO_UNREGISTER, &range) ? -errno : 0;
}

int uffd_writeprotect(int fd, const void *addr, size_t len, uint64_t mode)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};

	return ioctl(fd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}

int uffd_wake(int fd, const void *addr, size_t len)
{
	struct uffdio_range range = { .start = (uintptr_t)addr, .len = len };

	return ioctl(fd, UFFDIO_WAKE, &range) ? -errno : 0;
}

int uffd_copy(int fd, void *dst, const void *src, size_t len, uint64_t mode, int64_t *out)
{
	struct uffdio_copy c = { .dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len, .mode = mode };
	int rc = ioctl(fd, UFFDIO_COPY, &c) ? -errno : 0;

	if (out)
		*out = c.copy;
	return rc;
}

int uffd_zeropage(int fd, void *addr, size_t len, uint64_t mode, int64_t *out)
{
	struct uffdio_zeropage z = { .range = { .start = (uintptr_t)addr, .len = len }, .mode = mode };
	int rc = ioctl(fd, UFFDIO_ZEROPAGE, &z) ? -errno : 0;

	if (out)
		*out = z.zeropage;
	return rc;
}

int uffd_continue(int fd, void *addr, size_t len, uint64_t mode, int64_t *out)
{
	struct uffdio_continue c = { .range = { .start = (uintptr_t)addr, .len = len }, .mode = mode };
	int rc = ioctl(fd, UFFDIO_CONTINUE, &c) ? -errno : 0;

	if (out)
		*out = c.mapped;
	return rc;
}

const char *uffd_feature_name(unsigned bit)
{
	static const char *const names[] = {
		"PAGEFAULT_FLAG_WP", "EVENT_FORK",     "EVENT_REMAP",	  "EVENT_REMOVE",
		"MISSING_HUGETLBFS", "MISSING_SHMEM",  "EVENT_UNMAP",	  "SIGBUS",
		"THREAD_ID",	     "MINOR_HUGETLBFS", "MINOR_SHMEM",	  "EXACT_ADDRESS",
		"WP_HUGETLBFS_SHMEM", "WP_UNPOPULATED", "POISON",	  "WP_ASYNC",
		"MOVE",
	};

	return bit < ARRAY_SIZE(names) ? names[bit] : NULL;
}

const char *uffd_ioctl_name(unsigned bit)
{
	switch (bit) {
	case _UFFDIO_REGISTER:
		return "REGISTER";
	case _UFFDIO_UNREGISTER:
		return "UNREGISTER";
	case _UFFDIO_WAKE:
		return "WAKE";
	case _UFFDIO_COPY:
		return "COPY";
	case _UFFDIO_ZEROPAGE:
		return "ZEROPAGE";
	case _UFFDIO_MOVE:
		return "MOVE";
	case _UFFDIO_WRITEPROTECT:
		return "WRITEPROTECT";
	case _UFFDIO_CONTINUE:
		return "CONTINUE";
	case _UFFDIO_POISON:
		return "POISON";
	case _UFFDIO_API:
		return "API";
	}
	return NULL;
}

void uffd_feature_names(uint64_t mask, char *buf, size_t n)
{
	size_t len = 0;

	buf[0] = '\0';
	for (unsigned bit = 0; bit < 64 && len < n; bit++) {
		const char *name = uffd_feature_name(bit);
		char other[16];

		if (!(mask & (1ULL << bit)))
			continue;
		if (!name) {
			snprintf(other, sizeof(other), "bit%u", bit);
			name = other;
		}
		len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? " " : "", name);
	}
}

/* Thin wrappers over the userfaultfd uAPI: every call returns 0 or -errno. */
#ifndef AGENT_UFFD_H
#define AGENT_UFFD_H

#include <stddef.h>
#include <stdint.h>

#include "uapi.h"

/*
 * A new userfaultfd, O_CLOEXEC|O_NONBLOCK: the syscall with UFFD_USER_MODE_ONLY, the
 * syscall without it (kernels before 5.11), then /dev/userfaultfd (needed where
 * vm.unprivileged_userfaultfd=0 and we lack CAP_SYS_PTRACE). source names the way that
 * worked. Returns the fd or -errno of the last attempt.
 */
int uffd_open(char *source, size_t n);
/* UFFDIO_API asking for features; *got receives what the kernel granted. */
int uffd_api(int fd, uint64_t features, uint64_t *got);
/* uffd_open + uffd_api; returns the fd or -errno. */
int uffd_new(uint64_t features, uint64_t *got, char *source, size_t n);
/* Features this kernel offers (UFFDIO_API with 0 on a throw-away fd). */
int uffd_probe(uint64_t *features, uint64_t *api_ioctls, char *source, size_t n);

int uffd_register(int fd, const void *addr, size_t len, uint64_t mode, uint64_t *ioctls);
int uffd_unregister(int fd, const void *addr, size_t len);
int uffd_writeprotect(int fd, const void *addr, size_t len, uint64_t mode);
int uffd_wake(int fd, const void *addr, size_t len);
/*
 * The resolving ioctls. *out receives the kernel's output field (bytes done, or
 * -errno); it stays 0 where the kernel failed before writing it.
 */
int uffd_copy(int fd, void *dst, const void *src, size_t len, uint64_t mode, int64_t *out);
int uffd_zeropage(int fd, void *addr, size_t len, uint64_t mode, int64_t *out);
int uffd_continue(int fd, void *addr, size_t len, uint64_t mode, int64_t *out);

const char *uffd_feature_name(unsigned bit);
const char *uffd_ioctl_name(unsigned bit);
/* Space-separated names of the features in mask ("" when none). */
void uffd_feature_names(uint64_t mask, char *buf, size_t n);

#endif

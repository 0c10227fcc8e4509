/* The mmap_changing window, in which every resolving ioctl must fail with EAGAIN. */
#ifndef AGENT_MMAP_CHANGING_H
#define AGENT_MMAP_CHANGING_H

#include <stdbool.h>
#include <stddef.h>

#include "result.h"

/*
 * Run op(arg) inside uffd's mmap_changing window: uffd, registered over zap with
 * UFFD_FEATURE_EVENT_REMOVE and read by no handler, gets a REMOVE event from a thread's
 * MADV_DONTNEED of [zap, zap+len), which waits until it is read. False if the window
 * could not be had (recorded), or the thread got stuck (r->stuck).
 */
bool while_mmap_changing(struct result *r, int uffd, char *zap, size_t len, void (*op)(void *arg), void *arg);

#endif

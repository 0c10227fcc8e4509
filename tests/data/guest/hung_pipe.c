/*
 * hung_pipe SECONDS: make the kernel report a hung task, a real report that does not kill
 * the guest, on any kernel with userfaultfd and the hung-task detector (Debian's 6.1 too).
 *
 * A thread write()s a pipe from a userfaultfd-registered page that nobody serves: the copy
 * faults inside pipe_write, which holds pipe->mutex, and handle_userfault sleeps
 * (interruptibly). A second thread read()s the pipe and blocks on that mutex in D state,
 * which khungtaskd reports after kernel.hung_task_timeout_secs. After SECONDS the process
 * exits; its exit wakes the writer and releases the mutex, and the reports stop.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static int pipefd[2];
static char *page;

static void *writer(void *arg)
{
	(void)arg;
	if (write(pipefd[1], page, 4096) < 0)
		perror("write");
	return NULL;
}

static void *reader(void *arg)
{
	char buf[16];

	(void)arg;
	usleep(200 * 1000); /* the writer holds the mutex by now */
	if (read(pipefd[0], buf, sizeof(buf)) < 0)
		perror("read");
	return NULL;
}

int main(int argc, char **argv)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	pthread_t w, r;
	int uffd;

	if (argc != 2)
		return 2;
	uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api)) {
		perror("userfaultfd");
		return 1;
	}
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	reg.range.start = (unsigned long)page;
	reg.range.len = 4096;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (page == MAP_FAILED || pipe(pipefd) || ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		perror("setup");
		return 1;
	}
	pthread_create(&w, NULL, writer, NULL);
	pthread_create(&r, NULL, reader, NULL);
	sleep(atoi(argv[1]));
	_exit(0);
}

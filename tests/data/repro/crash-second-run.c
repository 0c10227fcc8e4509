/* Passes once, then crashes the kernel (SysRq c): a stand-in for a reproducer that hits. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	int seen = access("/tmp/ran-once", F_OK) == 0;
	int fd;

	if (!seen) {
		close(open("/tmp/ran-once", O_CREAT | O_WRONLY, 0644));
		return 0;
	}
	fd = open("/proc/sysrq-trigger", O_WRONLY);
	return fd >= 0 && write(fd, "c", 1) == 1 ? 0 : 1;
}

/* Never returns: the hang path of `uffd-harness repro`. */
#include <unistd.h>

int main(void)
{
	for (;;)
		pause();
}

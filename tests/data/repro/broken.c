/* Does not compile: `uffd-harness repro` must say so in one line. */
int main(void)
{
	return undeclared_thing;
}

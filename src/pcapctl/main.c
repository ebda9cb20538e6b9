#include <stdio.h>
int main(void)
{
	fputs("pcapctl: not built yet\n", stderr);
	return 1;
}

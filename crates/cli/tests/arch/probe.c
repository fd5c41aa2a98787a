/* A static test program for guests of another architecture: prints the machine the kernel
 * reports and exits as its argument says (a number, or "segv" to die by SIGSEGV). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

int main(int argc, char **argv) {
    struct utsname name;
    if (uname(&name) != 0)
        return 100;
    printf("machine=%s\n", name.machine);
    fprintf(stderr, "to stderr\n");
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "segv") == 0)
        raise(SIGSEGV);
    return argc > 1 ? atoi(argv[1]) : 0;
}

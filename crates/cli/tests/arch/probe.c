/* A static test program for guests of another architecture: prints the machine the kernel
 * reports and exits as its argument says (a number, or "segv" to die by SIGSEGV); "fresh"
 * prints a random UUID and the wall clock instead, "sleep" sleeps a fifth of a second, so a
 * guest whose timer never fires hangs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

int main(int argc, char **argv) {
    struct utsname name;
    if (uname(&name) != 0)
        return 100;
    printf("machine=%s\n", name.machine);
    fprintf(stderr, "to stderr\n");
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "segv") == 0)
        raise(SIGSEGV);
    if (argc > 1 && strcmp(argv[1], "sleep") == 0) {
        struct timespec fifth = {0, 200000000};
        if (nanosleep(&fifth, NULL) != 0)
            return 102;
        printf("slept\n");
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "fresh") == 0) {
        /* What a restored guest must not repeat: its random numbers and its clock. */
        char uuid[64] = "";
        FILE *f = fopen("/proc/sys/kernel/random/uuid", "r");
        if (!f || !fgets(uuid, sizeof uuid, f))
            return 101;
        printf("uuid=%sclock=%lld\n", uuid, (long long)time(NULL));
        return 0;
    }
    return argc > 1 ? atoi(argv[1]) : 0;
}

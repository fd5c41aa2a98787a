/*
 * A syscall probe for FreeBSD guests, the kind vmlane's minimal FreeBSD guest runs: static,
 * freestanding, raw syscalls, no FreeBSD sysroot needed to build it on Linux:
 *
 *   clang --target=x86_64-unknown-freebsd15.0 -ffreestanding -nostdlib -static \
 *         -fno-stack-protector -fuse-ld=lld -O2 -o probe probe.c
 *
 *   probe SYSCALL [OP]   calls SYSCALL(OP) and prints the result as one JSON line;
 *                        exits 0 when it succeeded, 1 when it failed.
 *   probe exit N         exits with N (for checking exit statuses).
 *   probe panic          panics the kernel through the debug.kdb.panic sysctl.
 *   probe cat FILE       copies FILE to stdout (relative paths: the working directory).
 *   probe say OUT ERR    writes OUT to stdout and ERR to stderr, each with a newline (for
 *                        checking the two arrive apart).
 *   probe clock          prints the wall clock's seconds since the epoch (CLOCK_REALTIME).
 *   probe random         prints 16 random bytes from getrandom(2) in hex (a guest restored
 *                        from a saved one must not repeat them).
 *   probe sleep MS       sleeps MS milliseconds by the guest's clock (timed from the host,
 *                        it shows whether the guest's clock runs at the right rate).
 *
 * A kernel without SYSCALL kills the probe with SIGSYS (vmlane exits 140).
 */

typedef unsigned long u64;

#define SYS_exit 1
#define SYS_read 3
#define SYS_write 4
#define SYS_open 5
#define SYS_clock_gettime 232
#define SYS_getrandom 563
#define SYS___sysctlbyname 570
#define SYS_nanosleep 240

static long raw_syscall6(long number, long a1, long a2, long a3, long a4, long a5, long a6,
    int *failed)
{
	long ret;
	unsigned char carry;
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	register long r9 __asm__("r9") = a6;
	__asm__ volatile("syscall; setc %1"
	    : "=a"(ret), "=r"(carry), "+D"(a1), "+S"(a2), "+d"(a3), "+r"(r10), "+r"(r8),
	      "+r"(r9)
	    : "a"(number)
	    : "rcx", "r11", "memory", "cc");
	*failed = carry;
	return ret;
}

static long raw_syscall(long number, long a1, long a2, long a3, int *failed)
{
	return raw_syscall6(number, a1, a2, a3, 0, 0, 0, failed);
}

static u64 length(const char *s)
{
	u64 n = 0;
	while (s[n])
		n++;
	return n;
}

static void put_fd(int fd, const char *s)
{
	int failed;
	raw_syscall(SYS_write, fd, (long)s, (long)length(s), &failed);
}

static void put(const char *s)
{
	put_fd(1, s);
}

static void put_number(long n)
{
	char buf[24];
	int i = sizeof buf - 1;
	int negative = n < 0;
	u64 v = negative ? -(u64)n : (u64)n;
	buf[i] = 0;
	do {
		buf[--i] = '0' + v % 10;
		v /= 10;
	} while (v);
	if (negative)
		buf[--i] = '-';
	put(&buf[i]);
}

static long parse(const char *s)
{
	long n = 0;
	while (*s >= '0' && *s <= '9')
		n = n * 10 + (*s++ - '0');
	return n;
}

static int same(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static const char *errno_name(long e)
{
	switch (e) {
	case 1: return "EPERM";
	case 2: return "ENOENT";
	case 9: return "EBADF";
	case 14: return "EFAULT";
	case 22: return "EINVAL";
	case 45: return "EOPNOTSUPP";
	case 78: return "ENOSYS";
	default: return "E?";
	}
}

static void __attribute__((noreturn)) leave(long code)
{
	int failed;
	raw_syscall(SYS_exit, code, 0, 0, &failed);
	__builtin_unreachable();
}

static int probe_main(int argc, char **argv)
{
	put("probe:");
	for (int i = 1; i < argc; i++) {
		put(" [");
		put(argv[i]);
		put("]");
	}
	put("\n");
	if (argc >= 3 && same(argv[1], "exit"))
		return (int)parse(argv[2]);
	if (argc >= 4 && same(argv[1], "say")) {
		put(argv[2]);
		put("\n");
		put_fd(2, argv[3]);
		put_fd(2, "\n");
		return 0;
	}
	if (argc >= 3 && same(argv[1], "cat")) {
		static char buf[4096];
		int failed;
		long fd = raw_syscall(SYS_open, (long)argv[2], 0, 0, &failed);
		if (failed) {
			put("probe: cannot open the file: ");
			put(errno_name(fd));
			put("\n");
			return 1;
		}
		for (;;) {
			long n = raw_syscall(SYS_read, fd, (long)buf, sizeof buf, &failed);
			if (failed || n <= 0)
				return failed;
			raw_syscall(SYS_write, 1, (long)buf, n, &failed);
		}
	}
	if (argc >= 2 && same(argv[1], "clock")) {
		long ts[2];
		int failed;
		raw_syscall(SYS_clock_gettime, 0 /* CLOCK_REALTIME */, (long)ts, 0, &failed);
		put_number(failed ? -1 : ts[0]);
		put("\n");
		return failed;
	}
	if (argc >= 3 && same(argv[1], "sleep")) {
		/* The guest's idea of MS milliseconds: a host timing it sees the guest clock's rate. */
		long ms = parse(argv[2]);
		long ts[2] = { ms / 1000, (ms % 1000) * 1000000 };
		int failed;
		raw_syscall(SYS_nanosleep, (long)ts, 0, 0, &failed);
		return failed;
	}
	if (argc >= 2 && same(argv[1], "random")) {
		static const char hex[] = "0123456789abcdef";
		unsigned char bytes[16];
		char text[33];
		int failed;
		raw_syscall(SYS_getrandom, (long)bytes, sizeof bytes, 0, &failed);
		for (int i = 0; i < 16; i++) {
			text[2 * i] = hex[bytes[i] >> 4];
			text[2 * i + 1] = hex[bytes[i] & 15];
		}
		text[32] = 0;
		put(failed ? "getrandom failed" : text);
		put("\n");
		return failed;
	}
	if (argc >= 2 && same(argv[1], "panic")) {
		static const char name[] = "debug.kdb.panic";
		int one = 1, failed;
		long rc = raw_syscall6(SYS___sysctlbyname, (long)name, sizeof name - 1, 0, 0,
		    (long)&one, sizeof one, &failed);
		put("probe: the kernel did not panic\n");
		return failed ? (int)rc : 1;
	}
	if (argc < 2)
		return 2;
	long number = parse(argv[1]);
	long op = argc >= 3 ? parse(argv[2]) : 0;
	int failed;
	long rc = raw_syscall(number, op, 0, 0, &failed);
	put("{\"kind\":\"probe\",\"status\":\"");
	put(failed ? "syscall_error" : "ok");
	put("\",\"data\":{\"syscall\":");
	put_number(number);
	put(",\"op\":");
	put_number(op);
	put(",\"rc\":");
	put_number(failed ? -1 : rc);
	if (failed) {
		put(",\"errno\":");
		put_number(rc);
		put(",\"errno_name\":\"");
		put(errno_name(rc));
		put("\"");
	}
	put("}}\n");
	return failed ? 1 : 0;
}

/* FreeBSD starts a process with %rdi pointing at argc, then argv (%rsp is only near it). */
void __attribute__((used)) probe_start(long *stack)
{
	leave(probe_main((int)stack[0], (char **)(stack + 1)));
}

__asm__(".globl _start\n"
	"_start:\n"
	"  andq $-16, %rsp\n"
	"  call probe_start\n"
	"  hlt\n");

/*
 * Raw FreeBSD/amd64 system calls for vmlane's FreeBSD init.
 *
 * There is no FreeBSD libc to link against, so the init talks to the kernel
 * directly. Numbers and constants were checked against the FreeBSD 15.1
 * headers (sys/sys/syscall.h, fcntl.h, reboot.h, ttycom.h, mount.h,
 * errno.h, wait.h, poll.h, signal.h, _timespec.h, _clock_id.h); they are
 * part of the stable FreeBSD ABI.
 */
#ifndef VMLANE_SYSCALL_H
#define VMLANE_SYSCALL_H

typedef unsigned long size_t;
typedef long ssize_t;
typedef unsigned int u32;

/* sys/sys/syscall.h */
#define SYS__exit 1
#define SYS_fork 2
#define SYS_read 3
#define SYS_write 4
#define SYS_open 5
#define SYS_close 6
#define SYS_wait4 7
#define SYS_chdir 12
#define SYS_mkdir 136
#define SYS_ioctl 54
#define SYS_reboot 55
#define SYS_execve 59
#define SYS_dup2 90
#define SYS_fcntl 92
#define SYS_setsid 147
#define SYS_poll 209
#define SYS_clock_settime 233
#define SYS_sigprocmask 340
#define SYS_nmount 378
#define SYS_kenv 390
#define SYS_posix_openpt 504
#define SYS_pipe2 542

/* sys/sys/fcntl.h */
#define O_RDONLY 0x0000
#define O_WRONLY 0x0001
#define O_RDWR 0x0002
#define O_NONBLOCK 0x0004
#define O_NOCTTY 0x8000
#define O_CLOEXEC 0x00100000
#define F_GETFL 3
#define F_SETFL 4

/* sys/sys/signal.h, sys/sys/_sigset.h */
#define SIG_BLOCK 1
#define SIG_SETMASK 3
#define SIGPIPE 13
typedef struct {
	u32 bits[4];
} sigset_t;

/* sys/sys/wait.h */
#define WNOHANG 1

/* sys/sys/poll.h */
#define POLLIN 0x0001
#define POLLOUT 0x0004
#define POLLERR 0x0008
#define POLLHUP 0x0010
#define POLLNVAL 0x0020
struct pollfd {
	int fd;
	short events;
	short revents;
};

/* sys/sys/mount.h */
#define MNT_RDONLY 0x1

/* sys/sys/reboot.h: RB_AUTOBOOT is 0. */
#define RB_NOSYNC 0x004

/* sys/sys/ttycom.h, sys/sys/ioccom.h: _IO(g, n) = IOC_VOID | (g << 8) | n. */
#define TIOCDRAIN 0x2000745eUL /* _IO('t', 94) */
#define TIOCSCTTY 0x20007461UL /* _IO('t', 97) */

/* sys/sys/errno.h */
#define EPERM 1
#define ENOENT 2
#define ESRCH 3
#define EINTR 4
#define EIO 5
#define ENXIO 6
#define E2BIG 7
#define ENOEXEC 8
#define EBADF 9
#define ECHILD 10
#define ENOMEM 12
#define EACCES 13
#define EFAULT 14
#define EBUSY 16
#define EEXIST 17
#define ENODEV 19
#define ENOTDIR 20
#define EISDIR 21
#define EINVAL 22
#define ENFILE 23
#define EMFILE 24
#define ENOTTY 25
#define EFBIG 27
#define ENOSPC 28
#define EROFS 30
#define EPIPE 32
#define EAGAIN 35
#define EPROTONOSUPPORT 43
#define EOPNOTSUPP 45
#define ETIMEDOUT 60
#define ECONNREFUSED 61
#define ELOOP 62
#define ENAMETOOLONG 63
#define ENOSYS 78

/* sys/sys/_timespec.h (time_t is 64 bits on amd64), sys/sys/_clock_id.h */
struct timespec {
	long tv_sec;
	long tv_nsec;
};
#define CLOCK_REALTIME 0

/* sys/sys/_iovec.h */
struct iovec {
	void *iov_base;
	size_t iov_len;
};

/*
 * One raw system call. Returns the result, or -errno when the kernel set
 * the carry flag. None of the calls used here can succeed with a negative
 * value, so the two never overlap.
 *
 * Register contract (sys/amd64/amd64/exception.S, fast_syscall): the number
 * goes in rax, arguments in rdi, rsi, rdx, r10, r8, r9. On return rax and
 * rdx hold the two result values, rcx and r11 hold the user rip and rflags
 * (clobbered by `syscall`/`sysret`), and r8, r9, r10 are zeroed. rdi and
 * rsi are restored today, but that is not promised, so every argument
 * register is declared as clobbered. rbx, rbp, r12-r15 and rsp survive.
 * The kernel reads and writes user memory, hence "memory".
 */
static inline long
sys6(long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
	register long rax __asm__("rax") = n;
	register long rdi __asm__("rdi") = a1;
	register long rsi __asm__("rsi") = a2;
	register long rdx __asm__("rdx") = a3;
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	register long r9 __asm__("r9") = a6;
	unsigned char failed;

	__asm__ volatile("syscall"
	    : "+r"(rax), "+r"(rdi), "+r"(rsi), "+r"(rdx), "+r"(r10),
	      "+r"(r8), "+r"(r9), "=@ccc"(failed)
	    :
	    : "rcx", "r11", "memory");
	return failed ? -rax : rax;
}

#define sys0(n) sys6((n), 0, 0, 0, 0, 0, 0)
#define sys1(n, a) sys6((n), (long)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) \
	sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

/* kenv(KENV_GET, name, buf, len): the length of the value with its NUL. */
#define KENV_GET 0

static inline long
sys_kenv_get(const char *name, char *buf, int len)
{
	return sys4(SYS_kenv, KENV_GET, name, buf, len);
}

static inline long
sys_fork(void)
{
	/*
	 * The child gets rax = 0 (and rdx = 1, the old System V hint); the
	 * parent gets the child's pid (sys/amd64/amd64/vm_machdep.c).
	 */
	return sys0(SYS_fork);
}

static inline ssize_t
sys_read(int fd, void *buf, size_t len)
{
	return sys3(SYS_read, fd, buf, len);
}

static inline ssize_t
sys_write(int fd, const void *buf, size_t len)
{
	return sys3(SYS_write, fd, buf, len);
}

static inline long
sys_open(const char *path, int flags)
{
	return sys3(SYS_open, path, flags, 0);
}

static inline long
sys_close(int fd)
{
	return sys1(SYS_close, fd);
}

static inline long
sys_wait4(int pid, int *status, int options)
{
	return sys4(SYS_wait4, pid, status, options, 0);
}

static inline long
sys_chdir(const char *path)
{
	return sys1(SYS_chdir, path);
}

static inline long
sys_mkdir(const char *path, int mode)
{
	return sys2(SYS_mkdir, path, mode);
}

static inline long
sys_ioctl(int fd, unsigned long cmd, void *arg)
{
	return sys3(SYS_ioctl, fd, cmd, arg);
}

static inline long
sys_reboot(int how)
{
	return sys1(SYS_reboot, how);
}

static inline long
sys_execve(const char *path, char *const argv[], char *const envp[])
{
	return sys3(SYS_execve, path, argv, envp);
}

static inline long
sys_dup2(int from, int to)
{
	return sys2(SYS_dup2, from, to);
}

static inline long
sys_setsid(void)
{
	return sys0(SYS_setsid);
}

static inline long
sys_sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	return sys3(SYS_sigprocmask, how, set, old);
}

static inline long
sys_nmount(struct iovec *iov, unsigned int iovcnt, int flags)
{
	return sys3(SYS_nmount, iov, iovcnt, flags);
}

static inline long
sys_poll(struct pollfd *fds, unsigned int nfds, int timeout_ms)
{
	return sys3(SYS_poll, fds, nfds, timeout_ms);
}

static inline long
sys_pipe2(int fds[2], int flags)
{
	return sys2(SYS_pipe2, fds, flags);
}

static inline long
sys_fcntl(int fd, int cmd, long arg)
{
	return sys3(SYS_fcntl, fd, cmd, arg);
}

static inline long
sys_clock_settime(int clock, const struct timespec *ts)
{
	return sys2(SYS_clock_settime, clock, ts);
}

/* A new pseudo-terminal's master (sys/kern/tty_pts.c, sys_posix_openpt). */
static inline long
sys_posix_openpt(int flags)
{
	return sys1(SYS_posix_openpt, flags);
}

/*
 * Blocks SIGPIPE, so a write to a pipe whose reader is gone fails with
 * EPIPE instead of killing the writer. Signal n is bit n-1 of the set.
 */
static inline long
sys_block_sigpipe(void)
{
	sigset_t pipe = { { 1U << (SIGPIPE - 1), 0, 0, 0 } };

	return sys_sigprocmask(SIG_BLOCK, &pipe, 0);
}

static inline __attribute__((noreturn)) void
sys_exit(int status)
{
	sys1(SYS__exit, status);
	for (;;)
		;
}

#endif

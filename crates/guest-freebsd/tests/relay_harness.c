/*
 * vmlane-relay (init/relay.h) built for the host, used by tests/relay.rs:
 * the relay's own code over the host's system calls, given the shape
 * syscall.h gives FreeBSD's (the result, or -errno).
 *
 * Its channel may be any file. FreeBSD's termios ioctls mean nothing to
 * this host, so they are stood in for: they succeed, unless
 * VMLANE_TEST_NOT_A_TTY is set, when reading the settings fails with
 * ENOTTY as it does on a file that is not a terminal.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../init/frame.h"
#include "../init/rawtty.h"

/* FreeBSD's, from init/syscall.h; stood in for by sys_ioctl(). */
#define TIOCDRAIN 0x2000745eUL

extern char **environ;

static long
host(long r)
{
	return r < 0 ? -errno : r;
}

static ssize_t
sys_read(int fd, void *buf, size_t len)
{
	return host(read(fd, buf, len));
}

static ssize_t
sys_write(int fd, const void *buf, size_t len)
{
	return host(write(fd, buf, len));
}

static long
sys_open(const char *path, int flags)
{
	return host(open(path, flags));
}

static long
sys_close(int fd)
{
	return host(close(fd));
}

static long
sys_wait4(int pid, int *status, int options)
{
	return host(wait4(pid, status, options, NULL));
}

static long
sys_execve(const char *path, char *const argv[], char *const envp[])
{
	return host(execve(path, argv, envp));
}

static long
sys_dup2(int from, int to)
{
	return host(dup2(from, to));
}

static long
sys_pipe2(int fds[2], int flags)
{
	return host(pipe2(fds, flags));
}

static long
sys_fork(void)
{
	return host(fork());
}

static long
sys_poll(struct pollfd *fds, unsigned int nfds, int timeout_ms)
{
	return host(poll(fds, nfds, timeout_ms));
}

static long
sys_sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	return host(sigprocmask(how, set, old));
}

static __attribute__((noreturn)) void
sys_exit(int status)
{
	_exit(status);
}

static long
sys_ioctl(int fd, unsigned long cmd, void *arg)
{
	(void)fd;
	if (cmd == FBSD_TIOCGETA) {
		if (getenv("VMLANE_TEST_NOT_A_TTY") != NULL)
			return -ENOTTY;
		memset(arg, 0, sizeof(struct fbsd_termios));
		return 0;
	}
	if (cmd == FBSD_TIOCSETA || cmd == TIOCDRAIN)
		return 0;
	return -ENOTTY;
}

#include "../init/line.h"
#include "../init/channel.h"
#include "../init/relay.h"

int
main(int argc, char **argv)
{
	return relay_main(argc, argv, environ);
}

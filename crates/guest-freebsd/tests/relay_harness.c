/*
 * vmlane-relay (init/relay.h) built for the host, used by tests/relay.rs:
 * the relay's own code over the host's system calls, given the shape
 * syscall.h gives FreeBSD's (the result, or -errno).
 *
 * Its channel may be any file, or the socket on the harness's stdin when
 * the device is "vmlane-test-stdin", so a test can talk to it both ways.
 * FreeBSD's termios ioctls mean nothing to this host, so they are stood in
 * for: they succeed, unless VMLANE_TEST_NOT_A_TTY is set, when reading the
 * settings fails with ENOTTY as it does on a file that is not a terminal.
 * FreeBSD's pseudo-terminal ioctls (pty.h) become Linux's, and FIODGNAME
 * ptsname_r(3). Setting the clock is recorded in the file
 * VMLANE_TEST_CLOCK names ("SEC NSEC"), and fails with EPERM without it;
 * Prepare's entropy goes to the file VMLANE_TEST_RANDOM names. A share's
 * mount is recorded in the file VMLANE_TEST_MOUNTS names ("FSTYPE FROM ON
 * ro"), and fails with EPERM without it; its mkdir does nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../init/frame.h"
#include "../init/hostframe.h"
#include "../init/rawtty.h"
#include "../init/pty.h"

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
	if (strcmp(path, "vmlane-test-stdin") == 0)
		return host(fcntl(0, F_DUPFD_CLOEXEC, 3));
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

static long
sys_chdir(const char *path)
{
	return host(chdir(path));
}

static long
sys_setsid(void)
{
	return host(setsid());
}

static long
sys_fcntl(int fd, int cmd, long arg)
{
	return host(fcntl(fd, cmd, arg));
}

/* Linux also wants the slave unlocked before it can be opened. */
static long
sys_posix_openpt(int flags)
{
	int fd = posix_openpt(flags);

	if (fd >= 0 && (grantpt(fd) < 0 || unlockpt(fd) < 0)) {
		int e = errno;

		close(fd);
		return -e;
	}
	return host(fd);
}

static long
sys_block_sigpipe(void)
{
	sigset_t pipe;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	return host(sigprocmask(SIG_BLOCK, &pipe, NULL));
}

static long
sys_clock_settime(int clock, const struct timespec *ts)
{
	const char *path = getenv("VMLANE_TEST_CLOCK");
	FILE *f;

	if (clock != CLOCK_REALTIME)
		return -EINVAL;
	if (path == NULL || (f = fopen(path, "w")) == NULL)
		return -EPERM;
	fprintf(f, "%ld %ld", (long)ts->tv_sec, ts->tv_nsec);
	fclose(f);
	return 0;
}

static const char *
random_path(void)
{
	const char *path = getenv("VMLANE_TEST_RANDOM");

	return path != NULL ? path : "/nonexistent/random";
}

#define CHANNEL_RANDOM_PATH random_path()

/* FIODGNAME: the slave's name without "/dev/", as FreeBSD gives it. */
static long
pty_name(int fd, struct fbsd_fiodgname_arg *arg)
{
	char path[128];

	if (ptsname_r(fd, path, sizeof(path)) != 0)
		return -errno;
	if (strncmp(path, "/dev/", 5) != 0 ||
	    strlen(path + 5) + 1 > (size_t)arg->len)
		return -EINVAL;
	memcpy(arg->buf, path + 5, strlen(path + 5) + 1);
	return 0;
}

static __attribute__((noreturn)) void
sys_exit(int status)
{
	_exit(status);
}

static long
sys_ioctl(int fd, unsigned long cmd, void *arg)
{
	if (cmd == FBSD_TIOCGETA) {
		if (getenv("VMLANE_TEST_NOT_A_TTY") != NULL)
			return -ENOTTY;
		memset(arg, 0, sizeof(struct fbsd_termios));
		return 0;
	}
	if (cmd == FBSD_TIOCSETA || cmd == TIOCDRAIN)
		return 0;
	if (cmd == FBSD_TIOCSWINSZ)
		return host(ioctl(fd, TIOCSWINSZ, arg));
	if (cmd == FBSD_FIODGNAME)
		return pty_name(fd, arg);
	if (cmd == TIOCSCTTY)
		return host(ioctl(fd, TIOCSCTTY, 0));
	return -ENOTTY;
}

/* FreeBSD's, from init/syscall.h. */
#define MNT_RDONLY 0x1

static long
sys_mkdir(const char *path, int mode)
{
	(void)path;
	(void)mode;
	return 0;
}

/* Records the name/value pairs the relay passes, in the order a test checks. */
static long
sys_nmount(struct iovec *iov, unsigned int n, int flags)
{
	const char *path = getenv("VMLANE_TEST_MOUNTS");
	const char *fstype = "", *from = "", *on = "";
	FILE *f;

	for (unsigned int i = 0; i + 1 < n; i += 2) {
		if (strcmp(iov[i].iov_base, "fstype") == 0)
			fstype = iov[i + 1].iov_base;
		else if (strcmp(iov[i].iov_base, "from") == 0)
			from = iov[i + 1].iov_base;
		else if (strcmp(iov[i].iov_base, "fspath") == 0)
			on = iov[i + 1].iov_base;
	}
	if (path == NULL || (f = fopen(path, "a")) == NULL)
		return -EPERM;
	fprintf(f, "%s %s %s%s\n", fstype, from, on, (flags & MNT_RDONLY) ? " ro" : "");
	fclose(f);
	return 0;
}

#include "../init/line.h"
#include "../init/channel.h"
#include "../init/share.h"
#include "../init/relay.h"

int
main(int argc, char **argv)
{
	return relay_main(argc, argv, environ);
}

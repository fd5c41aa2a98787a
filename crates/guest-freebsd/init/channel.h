/*
 * Running one command with its stdout and stderr relayed as frames on
 * the channel (a serial port made raw: rawtty.h, frame.h), as they come,
 * followed by how it ended. Shared by vmlane's init (PID 1 of the minimal
 * guest) and vmlane-relay (which a full image's rc.d hook runs the command
 * through).
 *
 * The includer gives the system calls and constants (syscall.h, or the
 * host's in tests/relay_harness.c, which runs this code on the host) and
 * defines fail(), which reports a failed step and does not return.
 */
#ifndef VMLANE_CHANNEL_H
#define VMLANE_CHANNEL_H

/*
 * Reports that `step` failed with errno `err` (as a Failed frame once the
 * channel is open) and ends the program; each includer's own.
 */
static __attribute__((noreturn)) void fail(const char *step, long err);

/* A frame_sink over a descriptor; ctx points at the int. */
static long
channel_write(void *ctx, const void *buf, unsigned long len)
{
	return sys_write(*(const int *)ctx, buf, len);
}

/*
 * Opens the channel at `path` and makes it raw, so frames reach the host
 * byte for byte; returns its descriptor. Fails with the step that did not
 * work, before anything can go on the channel.
 */
static int
channel_open(const char *path)
{
	struct fbsd_termios t;
	struct line step;
	long fd, r;

	step.len = 0;
	put(&step, "open the channel ");
	put_clean(&step, path, 256);

	fd = sys_open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		fail(line_text(&step), -fd);
	r = sys_ioctl((int)fd, FBSD_TIOCGETA, &t);
	if (r < 0)
		fail("read the channel's terminal settings", -r);
	rawtty_make_raw(&t);
	r = sys_ioctl((int)fd, FBSD_TIOCSETA, &t);
	if (r < 0)
		fail("make the channel raw", -r);
	return (int)fd;
}

/* ---- starting the command ------------------------------------------ */

/* Where execvp(3) looks when PATH is unset: FreeBSD's _PATH_DEFPATH. */
#define COMMAND_DEFAULT_PATH \
	"/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"
/* Longest path tried in a PATH search (FreeBSD's MAXPATHLEN). */
#define COMMAND_PATH_MAX 1024

static int
command_has_slash(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '/')
			return 1;
	}
	return 0;
}

static const char *
command_search_path(char *const *envp)
{
	const char *e;

	for (; *envp != 0; envp++) {
		e = *envp;
		if (e[0] == 'P' && e[1] == 'A' && e[2] == 'T' && e[3] == 'H' &&
		    e[4] == '=')
			return e + 5;
	}
	return COMMAND_DEFAULT_PATH;
}

/*
 * `dir` (`len` bytes; empty is the working directory) and `name` joined
 * into `buf`; 0 when that does not fit.
 */
static int
command_join(char *buf, const char *dir, size_t len, const char *name)
{
	size_t n;

	if (len == 0) {
		dir = ".";
		len = 1;
	}
	if (len + 2 > COMMAND_PATH_MAX)
		return 0;
	for (n = 0; n < len; n++)
		buf[n] = dir[n];
	buf[n++] = '/';
	for (; *name != '\0'; name++) {
		if (n + 1 >= COMMAND_PATH_MAX)
			return 0;
		buf[n++] = *name;
	}
	buf[n] = '\0';
	return 1;
}

/*
 * execve(2) of argv[0], looked up in PATH as execvp(3) does when it has
 * no slash; returns only on failure, with -errno: for a search, -EACCES
 * when something was found but could not be run, else -ENOENT.
 */
static long
command_exec(char *const *argv, char *const *envp)
{
	char path[COMMAND_PATH_MAX];
	const char *dir, *end;
	int denied = 0;
	long r;

	if (command_has_slash(argv[0]))
		return sys_execve(argv[0], argv, envp);
	if (argv[0][0] == '\0')
		return -ENOENT;
	for (dir = command_search_path(envp);; dir = end + 1) {
		for (end = dir; *end != ':' && *end != '\0'; end++)
			;
		if (command_join(path, dir, (size_t)(end - dir), argv[0])) {
			r = sys_execve(path, argv, envp);
			if (r == -EACCES)
				denied = 1;
			else if (r != -ENOENT && r != -ENOTDIR && r != -ELOOP &&
			    r != -ENAMETOOLONG)
				return r;
		}
		if (*end == '\0')
			break;
	}
	return denied ? -EACCES : -ENOENT;
}

/* How a started command ended. */
struct ending {
	int exec_errno; /* nonzero: the exec failed with it */
	int status;     /* the wait status, when the exec worked */
};

/*
 * Forks the command with stdout and stderr on `out` and `err`, or left as
 * they are where those are -1; returns its pid and the read end of a pipe
 * that reports a failed exec.
 */
static long
command_spawn(char *const *argv, char *const *envp, int out, int err,
    int *exec_fd)
{
	int fds[2];
	long pid, r;

	r = sys_pipe2(fds, O_CLOEXEC);
	if (r < 0)
		fail("create the exec status pipe", -r);

	pid = sys_fork();
	if (pid < 0)
		fail("fork", -pid);
	if (pid == 0) {
		sigset_t none = { { 0 } };
		int e;

		sys_close(fds[0]);
		/* A negative errno: the output pipes could not be put in place. */
		if ((out >= 0 && (r = sys_dup2(out, 1)) < 0) ||
		    (err >= 0 && (r = sys_dup2(err, 2)) < 0)) {
			e = (int)r;
			write_all(fds[1], (const char *)&e, sizeof(e));
			sys_exit(127);
		}
		/* The mask survives exec; the command gets signals normally. */
		sys_sigprocmask(SIG_SETMASK, &none, 0);
		r = command_exec(argv, envp);
		e = (int)-r;
		write_all(fds[1], (const char *)&e, sizeof(e));
		sys_exit(127);
	}
	sys_close(fds[1]);
	*exec_fd = fds[0];
	return pid;
}

/*
 * The write end of the exec status pipe is close-on-exec: EOF means the
 * exec worked, four bytes are the errno of a failed one (negated when the
 * child failed before it).
 */
static int
command_exec_result(int fd)
{
	int exec_errno = 0;
	size_t got = 0;
	long r;

	while (got < sizeof(exec_errno)) {
		r = sys_read(fd, (char *)&exec_errno + got,
		    sizeof(exec_errno) - got);
		if (r == -EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	sys_close(fd);
	if (got < sizeof(exec_errno))
		return 0;
	if (exec_errno < 0)
		fail("give the command its output pipes", -exec_errno);
	return exec_errno != 0 ? exec_errno : EINVAL;
}

/* ---- waiting for it -------------------------------------------------- */

/* Waits for `pid`, reaping any other child (PID 1 inherits orphans). */
static int
command_wait(long pid)
{
	int status;
	long r;

	for (;;) {
		status = 0;
		r = sys_wait4(-1, &status, 0);
		if (r == pid)
			return status;
		if (r == -EINTR || r > 0)
			continue;
		fail("wait for the command", -r);
	}
}

/*
 * Reaps what has exited without waiting; returns 1 with *status once
 * `pid` is among them.
 */
static int
command_reap_exited(long pid, int *status)
{
	int s;
	long r;

	for (;;) {
		s = 0;
		r = sys_wait4(-1, &s, WNOHANG);
		if (r == pid) {
			*status = s;
			return 1;
		}
		if (r == -EINTR || r > 0)
			continue;
		return 0; /* none left (0), or no children at all (ECHILD) */
	}
}

/* ---- relaying its output --------------------------------------------- */

/* One of the command's outputs and the frame kind it travels in. */
struct output {
	int fd; /* -1 once it has ended */
	unsigned char kind;
};

/* How often the relay checks for the command's exit while output is open. */
#define EXIT_POLL_MS 100
/*
 * Reads per output after the command exited: a child it left running may
 * hold the pipes open, and write forever.
 */
#define MAX_DRAIN_READS 256

static char relay_buf[FRAME_CHUNK];

/* Sends one read of `o` on `channel`; closes it at its end. */
static void
relay_once(const struct frame_sink *channel, struct output *o)
{
	long n, r;

	n = sys_read(o->fd, relay_buf, sizeof(relay_buf));
	if (n == -EINTR || n == -EAGAIN)
		return;
	if (n < 0)
		fail("read the command's output", -n);
	if (n == 0) {
		sys_close(o->fd);
		o->fd = -1;
		return;
	}
	r = frame_output(channel, o->kind, relay_buf, (unsigned long)n);
	if (r < 0)
		fail("write to the channel", -r);
}

/*
 * Waits up to `timeout_ms` for output and relays what came; returns how
 * many outputs were ready.
 */
static long
relay_ready(const struct frame_sink *channel, struct output *outputs,
    int timeout_ms)
{
	struct pollfd fds[2];
	long n;
	int i;

	for (i = 0; i < 2; i++) {
		/* poll(2) skips negative descriptors. */
		fds[i].fd = outputs[i].fd;
		fds[i].events = POLLIN;
		fds[i].revents = 0;
	}
	n = sys_poll(fds, 2, timeout_ms);
	if (n == -EINTR)
		return 0;
	if (n < 0)
		fail("wait for the command's output", -n);
	for (i = 0; i < 2; i++) {
		if (fds[i].fd >= 0 && fds[i].revents != 0)
			relay_once(channel, &outputs[i]);
	}
	return n;
}

/*
 * Relays the outputs as they come, until both end or, once the command
 * has exited, nothing more is waiting; returns its wait status.
 */
static int
relay_until_exit(const struct frame_sink *channel, long pid,
    struct output *outputs)
{
	int status = 0, exited = 0, drained = 0;
	long ready;

	while (outputs[0].fd >= 0 || outputs[1].fd >= 0) {
		ready = relay_ready(channel, outputs, exited ? 0 : EXIT_POLL_MS);
		if (exited && (ready == 0 || ++drained > MAX_DRAIN_READS))
			break;
		if (!exited)
			exited = command_reap_exited(pid, &status);
	}
	if (!exited)
		status = command_wait(pid);
	return status;
}

/*
 * Runs the command with pipes for stdout and stderr whose bytes go out on
 * `channel` as Stdout and Stderr frames as they come; *e says how it
 * ended.
 */
static void
command_relay(char *const *argv, char *const *envp,
    const struct frame_sink *channel, struct ending *e)
{
	struct output outputs[2];
	int out[2], err[2];
	int exec_fd, i;
	long pid, r;

	r = sys_pipe2(out, O_CLOEXEC);
	if (r < 0)
		fail("create the stdout pipe", -r);
	r = sys_pipe2(err, O_CLOEXEC);
	if (r < 0)
		fail("create the stderr pipe", -r);
	pid = command_spawn(argv, envp, out[1], err[1], &exec_fd);
	sys_close(out[1]);
	sys_close(err[1]);
	e->exec_errno = command_exec_result(exec_fd);

	outputs[0].fd = out[0];
	outputs[0].kind = FRAME_STDOUT;
	outputs[1].fd = err[0];
	outputs[1].kind = FRAME_STDERR;
	e->status = relay_until_exit(channel, pid, outputs);
	for (i = 0; i < 2; i++) {
		if (outputs[i].fd >= 0)
			sys_close(outputs[i].fd);
	}
}

/* Sends how the command ended as the Exit frame. */
static void
channel_send_ending(const struct frame_sink *channel, const struct ending *e)
{
	unsigned int status = (unsigned int)e->status;
	long r = 0;

	if (e->exec_errno == ENOENT || e->exec_errno == ENOTDIR)
		r = frame_exit(channel, FRAME_NOT_FOUND, 0);
	else if (e->exec_errno != 0)
		r = frame_exit(channel, FRAME_NOT_EXECUTABLE, 0);
	else if ((status & 0x7f) == 0)
		/* WIFEXITED; WEXITSTATUS is bits 8-15. */
		r = frame_exit(channel, FRAME_EXITED, (status >> 8) & 0xff);
	else if ((status & 0x7f) != 0x7f)
		/* WIFSIGNALED; WTERMSIG is the low 7 bits (0x80 = core). */
		r = frame_exit(channel, FRAME_SIGNALED, status & 0x7f);
	else
		/* Stopped: wait4 without WUNTRACED never reports this. */
		fail("wait for the command (stopped)", EINVAL);
	if (r < 0)
		fail("write to the channel", -r);
}

#endif

/*
 * vmlane's FreeBSD init (PID 1).
 *
 * The kernel starts it with init_path=/vmlane/init. It mounts what a
 * command needs, runs the one command described by /vmlane/run, reports
 * how it ended and ends the VM. It is a static, freestanding binary that
 * speaks raw system calls (syscall.h) because vmlane builds it on hosts
 * without a FreeBSD sysroot.
 *
 * When the run file names a channel (a second serial port, /dev/cuau1),
 * the command's stdout and stderr are pipes whose bytes go there as
 * frames (frame.h), followed by its Exit frame; the console then carries
 * only the kernel's messages and the lines below. Without a channel the
 * command writes to the console and its end is a marker line.
 *
 * Console protocol, each line preceded by "\n" so it starts a line:
 *   vmlane:TOKEN:start
 *   vmlane:TOKEN:exit N | signal N | notfound | noexec   (no channel)
 *   vmlane:TOKEN:failed STEP: errno N (NAME)             (also sent as a
 *                                                         Failed frame once
 *                                                         the channel is open)
 */
#include "syscall.h"
#include "runfile.h"
#include "frame.h"
#include "rawtty.h"

#define RUN_FILE_PATH "/vmlane/run"
#define CONSOLE_PATH "/dev/console"
#define SHARE_MOUNT_POINT "/host"

/*
 * The compiler may emit calls to these for struct copies and zeroing, even
 * when freestanding.
 */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);

void *
memset(void *dst, int c, size_t n)
{
	unsigned char *d = dst;

	while (n-- > 0)
		*d++ = (unsigned char)c;
	return dst;
}

void *
memcpy(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	while (n-- > 0)
		*d++ = *s++;
	return dst;
}

/* +1 byte so a file larger than the limit is noticed rather than cut. */
static char run_buf[RUN_MAX_BYTES + 1];
static char *run_argv[RUN_MAX_STRINGS + 1];
static char *run_env[RUN_MAX_STRINGS + 1];
/* Filled by nmount's "errmsg" option with the kernel's reason. */
static char mount_errmsg[256];

/* Printed in marker lines; "?" until the run file gave a valid token. */
static const char *token = "?";

/* The channel's descriptor once it is open and raw, else -1. */
static int channel_fd = -1;

/* ---- console output ------------------------------------------------ */

/*
 * One output line, built in place and cut (not overflowed) when too long.
 * The last byte is always kept free for the final newline.
 */
struct line {
	char buf[1024];
	size_t len;
};

static void
put(struct line *l, const char *s)
{
	while (*s != '\0' && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = *s++;
}

static void
put_ulong(struct line *l, unsigned long v)
{
	char digits[24];
	size_t n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0 && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = digits[--n];
}

/* Copies untrusted text, replacing anything unprintable with '?'. */
static void
put_clean(struct line *l, const char *s, size_t max)
{
	size_t i;

	for (i = 0; i < max && s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		char one[2] = { (c < ' ' || c >= 0x7f) ? '?' : (char)c, '\0' };
		put(l, one);
	}
}

static void
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = sys_write(fd, p, n);
		if (w == -EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere left to report this */
		p += w;
		n -= (size_t)w;
	}
}

static void
emit(struct line *l)
{
	l->buf[l->len++] = '\n'; /* room was kept by put() */
	write_all(1, l->buf, l->len);
}

/* Starts a marker line: "\nvmlane:TOKEN:" */
static void
marker(struct line *l)
{
	l->len = 0;
	put(l, "\nvmlane:");
	put(l, token);
	put(l, ":");
}

static const char *
errno_name(long e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case E2BIG: return "E2BIG";
	case ENOEXEC: return "ENOEXEC";
	case EBADF: return "EBADF";
	case ECHILD: return "ECHILD";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ENFILE: return "ENFILE";
	case EMFILE: return "EMFILE";
	case ENOTTY: return "ENOTTY";
	case EFBIG: return "EFBIG";
	case ENOSPC: return "ENOSPC";
	case EROFS: return "EROFS";
	case EAGAIN: return "EAGAIN";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ELOOP: return "ELOOP";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOSYS: return "ENOSYS";
	default: return 0;
	}
}

/* "errno N (NAME)" */
static void
put_errno(struct line *l, long err)
{
	const char *name = errno_name(err);

	put(l, "errno ");
	put_ulong(l, (unsigned long)err);
	if (name != 0) {
		put(l, " (");
		put(l, name);
		put(l, ")");
	}
}

/* ---- the channel ---------------------------------------------------- */

static long
channel_write(void *ctx, const void *buf, unsigned long len)
{
	return sys_write(*(const int *)ctx, buf, len);
}

static const struct frame_sink channel = { channel_write, &channel_fd };

/*
 * Reports a failed step on the channel, when it is open. Errors are
 * ignored: the console line that follows reports the failure as well.
 */
static void
send_failed(const char *step, const char *why)
{
	if (channel_fd < 0)
		return;
	frame_failed(&channel, step, why);
}

/* ---- ending the VM ------------------------------------------------- */

static __attribute__((noreturn)) void
end_vm(void)
{
	/*
	 * Writes sit in a tty's output queue until the UART sends them; the
	 * reset below would drop whatever is still queued, such as the Exit
	 * frame or the result line. Each fails harmlessly when not there.
	 */
	if (channel_fd >= 0)
		sys_ioctl(channel_fd, TIOCDRAIN, 0);
	sys_ioctl(1, TIOCDRAIN, 0);
	/*
	 * RB_AUTOBOOT (0) | RB_NOSYNC: the root is thrown away, so skip the
	 * sync. QEMU runs with -no-reboot, so the reset ends it.
	 */
	sys_reboot(RB_NOSYNC);
	/* The host ends the VM once it has seen the result line. */
	for (;;)
		__asm__ volatile("pause");
}

/*
 * Sends Failed{STEP, "errno N (NAME)"} on the channel when it is open,
 * prints "vmlane:TOKEN:failed STEP: errno N (NAME)" and ends the VM.
 */
static __attribute__((noreturn)) void
fail(const char *step, long err)
{
	struct line why;
	struct line l;

	why.len = 0;
	put_errno(&why, err);
	why.buf[why.len] = '\0'; /* room was kept by put() */
	send_failed(step, why.buf);

	marker(&l);
	put(&l, "failed ");
	put(&l, step);
	put(&l, ": ");
	put(&l, why.buf);
	emit(&l);
	end_vm();
}

/* ---- steps --------------------------------------------------------- */

/*
 * nmount(2) takes name/value iovec pairs; string values include their NUL,
 * flag options like "ro" have an empty value.
 */
static void
iov_pair(struct iovec *iov, unsigned int *n, const char *name,
    const char *value)
{
	size_t nl = 0, vl = 0;

	while (name[nl] != '\0')
		nl++;
	iov[*n].iov_base = (void *)name;
	iov[*n].iov_len = nl + 1;
	if (value != 0) {
		while (value[vl] != '\0')
			vl++;
		vl++;
	}
	iov[*n + 1].iov_base = (void *)value;
	iov[*n + 1].iov_len = vl;
	*n += 2;
}

/*
 * Mounts `fstype` on `path`. On failure prints the kernel's errmsg, if it
 * gave one, as a plain (non-marker) line and returns -errno.
 */
static long
mount_fs(const char *fstype, const char *path, const char *from,
    const char *mode, int readonly)
{
	struct iovec iov[12];
	unsigned int n = 0;
	long r;

	iov_pair(iov, &n, "fstype", fstype);
	iov_pair(iov, &n, "fspath", path);
	iov_pair(iov, &n, "from", from);
	if (mode != 0)
		iov_pair(iov, &n, "mode", mode);
	if (readonly)
		iov_pair(iov, &n, "ro", 0);
	mount_errmsg[0] = '\0';
	iov[n].iov_base = "errmsg";
	iov[n].iov_len = sizeof("errmsg");
	iov[n + 1].iov_base = mount_errmsg;
	iov[n + 1].iov_len = sizeof(mount_errmsg);
	n += 2;

	r = sys_nmount(iov, n, readonly ? MNT_RDONLY : 0);
	if (r < 0 && mount_errmsg[0] != '\0') {
		struct line l;

		l.len = 0;
		put(&l, "\nvmlane-init: mount ");
		put(&l, fstype);
		put(&l, " on ");
		put(&l, path);
		put(&l, ": ");
		put_clean(&l, mount_errmsg, sizeof(mount_errmsg));
		emit(&l);
	}
	return r;
}

/* Makes fd the console on 0, 1 and 2. */
static long
open_console(void)
{
	long fd, r;
	int i;

	fd = sys_open(CONSOLE_PATH, O_RDWR | O_NOCTTY);
	if (fd < 0)
		return fd;
	for (i = 0; i <= 2; i++) {
		if (fd == i)
			continue;
		r = sys_dup2((int)fd, i);
		if (r < 0)
			return r;
	}
	if (fd > 2)
		sys_close((int)fd);
	return 0;
}

static void
warn(const char *what, long err)
{
	struct line l;

	l.len = 0;
	put(&l, "\nvmlane-init: warning: ");
	put(&l, what);
	put(&l, ": errno ");
	put_ulong(&l, (unsigned long)err);
	emit(&l);
}

static void
setup_console(void)
{
	long r;

	/*
	 * The kernel normally moves its devfs to /dev after mounting the
	 * root, so /dev/console may already be there; only mount devfs when
	 * it is not.
	 */
	if (open_console() < 0) {
		r = mount_fs("devfs", "/dev", "devfs", 0, 0);
		if (r < 0)
			fail("mount devfs on /dev", -r); /* no console: unseen */
		r = open_console();
		if (r < 0)
			fail("open /dev/console", -r); /* unseen as well */
	}

	/*
	 * A controlling terminal lets the command get SIGINT and friends
	 * from the console. Without one it still runs, so only warn.
	 */
	r = sys_setsid();
	if (r < 0 && r != -EPERM)
		warn("setsid", -r);
	r = sys_ioctl(0, TIOCSCTTY, 0);
	if (r < 0)
		warn("make /dev/console the controlling terminal", -r);
}

/* Reads the run file into run_buf; returns its length. */
static unsigned long
read_run_file(void)
{
	unsigned long len = 0;
	long fd, r;

	fd = sys_open(RUN_FILE_PATH, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("read /vmlane/run", -fd);
	while (len < sizeof(run_buf)) {
		r = sys_read((int)fd, run_buf + len, sizeof(run_buf) - len);
		if (r == -EINTR)
			continue;
		if (r < 0)
			fail("read /vmlane/run", -r);
		if (r == 0)
			break;
		len += (unsigned long)r;
	}
	sys_close((int)fd);
	if (len > RUN_MAX_BYTES)
		fail("read /vmlane/run (larger than 1 MiB)", EFBIG);
	return len;
}

/*
 * The run's token from the kernel environment (`vmlane.token=` on the command
 * line), so the image itself need not change from run to run.
 */
static char kenv_token[RUN_MAX_TOKEN];

static int
token_from_kenv(void)
{
	long r = sys_kenv_get("vmlane.token", kenv_token, sizeof kenv_token);

	if (r <= 0 || !run_token_ok(kenv_token))
		return 0;
	token = kenv_token;
	return 1;
}

static void
parse_run_file(unsigned long len, struct run *run)
{
	enum run_error e = run_parse(run_buf, len, run, run_argv, run_env);

	if (run->token != 0 && kenv_token[0] == 0)
		token = run->token;
	switch (e) {
	case RUN_OK:
		return;
	case RUN_TRUNCATED:
		fail("parse /vmlane/run (truncated)", EINVAL);
	case RUN_BAD_MAGIC:
		fail("parse /vmlane/run (not \"" RUN_MAGIC "\")", EINVAL);
	case RUN_BAD_TOKEN:
		fail("parse /vmlane/run (bad token)", EINVAL);
	case RUN_BAD_COUNT:
		fail("parse /vmlane/run (bad argument or environment count)",
		    EINVAL);
	case RUN_EMPTY_ARGV:
		fail("parse /vmlane/run (empty argv)", EINVAL);
	case RUN_TRAILING:
		fail("parse /vmlane/run (trailing bytes)", EINVAL);
	}
	fail("parse /vmlane/run", EINVAL);
}

static void
mount_share(const char *tag)
{
	long r;

	/*
	 * "from" is the virtio 9p mount tag; "trans" defaults to virtio, the
	 * only transport p9fs has. The kernel must have virtio_p9fs built
	 * in: the minimal root holds no modules, and without the transport
	 * the mount fails with a bare EINVAL.
	 */
	r = mount_fs("p9fs", SHARE_MOUNT_POINT, tag, 0, 1);
	if (r < 0)
		fail("mount the host share", -r);
}

/*
 * Opens the channel the run file names and makes it raw, so frames reach
 * the host byte for byte. Until this succeeds, failures go to the console.
 */
static void
open_channel(const char *path)
{
	struct fbsd_termios t;
	struct line step;
	long fd, r;

	step.len = 0;
	put(&step, "open the channel ");
	put_clean(&step, path, 256);
	step.buf[step.len] = '\0';

	fd = sys_open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		fail(step.buf, -fd);
	r = sys_ioctl((int)fd, FBSD_TIOCGETA, &t);
	if (r < 0)
		fail("read the channel's terminal settings", -r);
	rawtty_make_raw(&t);
	r = sys_ioctl((int)fd, FBSD_TIOCSETA, &t);
	if (r < 0)
		fail("make the channel raw", -r);
	channel_fd = (int)fd;
}

/* ---- running the command ------------------------------------------- */

static void
print_start(void)
{
	struct line l;

	marker(&l);
	put(&l, "start");
	emit(&l);
}

/* Waits for `pid`, reaping any orphan that is re-parented to PID 1. */
static int
wait_for(long pid)
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
reap_exited(long pid, int *status)
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

/* How a started command ended. */
struct ending {
	int exec_errno; /* nonzero: the exec failed with it */
	int status;     /* the wait status, when the exec worked */
};

/*
 * Forks the command with stdout and stderr on `out` and `err`, or on the
 * console where they are -1; returns its pid and the read end of a pipe
 * that reports a failed exec.
 */
static long
spawn(int out, int err, int *exec_fd)
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
		sigset_t none = { { 0, 0, 0, 0 } };
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
		r = sys_execve(run_argv[0], run_argv, run_env);
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
exec_result(int fd)
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

/* Prints how the command ended as a marker line. */
static void
print_ending(const struct ending *e)
{
	struct line l;
	unsigned int status = (unsigned int)e->status;

	marker(&l);
	if (e->exec_errno == ENOENT || e->exec_errno == ENOTDIR) {
		put(&l, "notfound");
	} else if (e->exec_errno != 0) {
		put(&l, "noexec");
	} else if ((status & 0x7f) == 0) {
		/* WIFEXITED; WEXITSTATUS is bits 8-15. */
		put(&l, "exit ");
		put_ulong(&l, (status >> 8) & 0xff);
	} else if ((status & 0x7f) != 0x7f) {
		/* WIFSIGNALED; WTERMSIG is the low 7 bits (0x80 = core). */
		put(&l, "signal ");
		put_ulong(&l, status & 0x7f);
	} else {
		/* Stopped: wait4 without WUNTRACED never reports this. */
		fail("wait for the command (stopped)", EINVAL);
	}
	emit(&l);
}

/* Sends how the command ended as the Exit frame. */
static void
send_ending(const struct ending *e)
{
	unsigned int status = (unsigned int)e->status;
	long r = 0;

	if (e->exec_errno == ENOENT || e->exec_errno == ENOTDIR)
		r = frame_exit(&channel, FRAME_NOT_FOUND, 0);
	else if (e->exec_errno != 0)
		r = frame_exit(&channel, FRAME_NOT_EXECUTABLE, 0);
	else if ((status & 0x7f) == 0)
		r = frame_exit(&channel, FRAME_EXITED, (status >> 8) & 0xff);
	else if ((status & 0x7f) != 0x7f)
		r = frame_exit(&channel, FRAME_SIGNALED, status & 0x7f);
	else
		fail("wait for the command (stopped)", EINVAL);
	if (r < 0)
		fail("write to the channel", -r);
}

/* The command writing to the console; its end is a marker line. */
static __attribute__((noreturn)) void
run_on_console(void)
{
	struct ending e;
	int exec_fd;
	long pid;

	pid = spawn(-1, -1, &exec_fd);
	e.exec_errno = exec_result(exec_fd);
	e.status = wait_for(pid);
	print_ending(&e);
	end_vm();
}

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

/* Sends one read of `o` on the channel; closes it at its end. */
static void
relay_once(struct output *o)
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
	r = frame_output(&channel, o->kind, relay_buf, (unsigned long)n);
	if (r < 0)
		fail("write to the channel", -r);
}

/*
 * Waits up to `timeout_ms` for output and relays what came; returns how
 * many outputs were ready.
 */
static long
relay_ready(struct output *outputs, int timeout_ms)
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
			relay_once(&outputs[i]);
	}
	return n;
}

/*
 * Relays the outputs as they come, until both end or, once the command
 * has exited, nothing more is waiting; returns its wait status.
 */
static int
relay_until_exit(long pid, struct output *outputs)
{
	int status = 0, exited = 0, drained = 0;
	long ready;

	while (outputs[0].fd >= 0 || outputs[1].fd >= 0) {
		ready = relay_ready(outputs, exited ? 0 : EXIT_POLL_MS);
		if (exited && (ready == 0 || ++drained > MAX_DRAIN_READS))
			break;
		if (!exited)
			exited = reap_exited(pid, &status);
	}
	if (!exited)
		status = wait_for(pid);
	return status;
}

/*
 * The command writing into pipes whose bytes go out as Stdout and Stderr
 * frames, as they come; its end is the Exit frame.
 */
static __attribute__((noreturn)) void
run_on_channel(void)
{
	struct output outputs[2];
	struct ending e;
	int out[2], err[2];
	int exec_fd, i;
	long pid, r;

	r = sys_pipe2(out, O_CLOEXEC);
	if (r < 0)
		fail("create the stdout pipe", -r);
	r = sys_pipe2(err, O_CLOEXEC);
	if (r < 0)
		fail("create the stderr pipe", -r);
	pid = spawn(out[1], err[1], &exec_fd);
	sys_close(out[1]);
	sys_close(err[1]);
	e.exec_errno = exec_result(exec_fd);

	outputs[0].fd = out[0];
	outputs[0].kind = FRAME_STDOUT;
	outputs[1].fd = err[0];
	outputs[1].kind = FRAME_STDERR;
	e.status = relay_until_exit(pid, outputs);
	for (i = 0; i < 2; i++) {
		if (outputs[i].fd >= 0)
			sys_close(outputs[i].fd);
	}
	send_ending(&e);
	end_vm();
}

/* ---- entry --------------------------------------------------------- */

__attribute__((noreturn, used)) void init_main(void);

void
init_main(void)
{
	sigset_t all = { { ~0U, ~0U, ~0U, ~0U } };
	struct run run;
	long r;

	/*
	 * The command shares init's process group, the console's foreground
	 * group, so ^C and friends reach init too; a default action would kill
	 * PID 1 and panic the kernel. Blocked signals just stay pending.
	 */
	sys_sigprocmask(SIG_BLOCK, &all, 0);
	if (!token_from_kenv())
		kenv_token[0] = 0;
	setup_console();
	parse_run_file(read_run_file(), &run);

	r = mount_fs("tmpfs", "/tmp", "tmpfs", "1777", 0);
	if (r < 0 && r != -ENOENT)
		fail("mount tmpfs on /tmp", -r);

	if (run.share != 0)
		mount_share(run.share);

	r = sys_chdir(run.cwd);
	if (r < 0)
		fail("change to the working directory", -r);

	if (run.channel != 0)
		open_channel(run.channel);
	print_start();
	if (channel_fd >= 0)
		run_on_channel();
	run_on_console();
}

/*
 * The kernel enters here with rsp near argc/argv/envp (unused: everything
 * comes from the run file). Clear the frame pointer for debuggers, align
 * the stack as the SysV ABI wants before a call, and never return.
 */
__asm__(
    ".text\n"
    ".globl _start\n"
    ".type _start,@function\n"
    "_start:\n"
    "	xorl %ebp, %ebp\n"
    "	andq $-16, %rsp\n"
    "	call init_main\n"
    "	ud2\n"
    ".size _start, .-_start\n");

/*
 * FreeBSD ABI tag note (NT_FREEBSD_ABI_TAG = 1, name "FreeBSD"), the brand
 * crt1 normally adds. EI_OSABI = 9 alone already brands the binary; the
 * note is a second, preferred brand. osrel 1300000 (13.0) keeps the kernel's
 * "osrel too high" check happy on FreeBSD 13 and later.
 */
__asm__(
    ".section .note.tag,\"a\",@note\n"
    ".p2align 2\n"
    ".long 8\n"
    ".long 4\n"
    ".long 1\n"
    ".asciz \"FreeBSD\"\n"
    ".long 1300000\n"
    ".text\n");

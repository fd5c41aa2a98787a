/*
 * vmlane's FreeBSD init (PID 1).
 *
 * The kernel starts it with init_path=/vmlane/init. It mounts what a
 * command needs, runs the one command described by /vmlane/run, prints the
 * result as a marker line on the console and ends the VM. It is a static,
 * freestanding binary that speaks raw system calls (syscall.h) because
 * vmlane builds it on hosts without a FreeBSD sysroot.
 *
 * Console protocol, each line preceded by "\n" so it starts a line:
 *   vmlane:TOKEN:start
 *   vmlane:TOKEN:exit N | signal N | notfound | noexec
 *   vmlane:TOKEN:failed STEP: errno N (NAME)
 */
#include "syscall.h"
#include "runfile.h"

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

/* ---- ending the VM ------------------------------------------------- */

static __attribute__((noreturn)) void
end_vm(void)
{
	/*
	 * Console writes sit in the tty's output queue until the UART sends
	 * them; the reset below would drop whatever is still queued, such as
	 * the result line. Fails harmlessly when there is no console.
	 */
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

/* Prints "vmlane:TOKEN:failed STEP: errno N (NAME)" and ends the VM. */
static __attribute__((noreturn)) void
fail(const char *step, long err)
{
	struct line l;
	const char *name = errno_name(err);

	marker(&l);
	put(&l, "failed ");
	put(&l, step);
	put(&l, ": errno ");
	put_ulong(&l, (unsigned long)err);
	if (name != 0) {
		put(&l, " (");
		put(&l, name);
		put(&l, ")");
	}
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

static __attribute__((noreturn)) void
run_command(void)
{
	struct line l;
	int fds[2];
	int exec_errno = 0;
	size_t got = 0;
	long pid, r;
	int status;

	r = sys_pipe2(fds, O_CLOEXEC);
	if (r < 0)
		fail("create the exec status pipe", -r);

	pid = sys_fork();
	if (pid < 0)
		fail("fork", -pid);
	if (pid == 0) {
		sigset_t none = { { 0, 0, 0, 0 } };
		int err;

		sys_close(fds[0]);
		/* The mask survives exec; the command gets signals normally. */
		sys_sigprocmask(SIG_SETMASK, &none, 0);
		r = sys_execve(run_argv[0], run_argv, run_env);
		err = (int)-r;
		write_all(fds[1], (const char *)&err, sizeof(err));
		sys_exit(127);
	}

	/*
	 * The write end is close-on-exec: EOF means the exec worked, four
	 * bytes are the errno of a failed one.
	 */
	sys_close(fds[1]);
	while (got < sizeof(exec_errno)) {
		r = sys_read(fds[0], (char *)&exec_errno + got,
		    sizeof(exec_errno) - got);
		if (r == -EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	sys_close(fds[0]);

	status = wait_for(pid);

	marker(&l);
	if (got == sizeof(exec_errno)) {
		if (exec_errno == ENOENT || exec_errno == ENOTDIR)
			put(&l, "notfound");
		else
			put(&l, "noexec");
	} else if ((status & 0x7f) == 0) {
		/* WIFEXITED; WEXITSTATUS is bits 8-15. */
		put(&l, "exit ");
		put_ulong(&l, ((unsigned int)status >> 8) & 0xff);
	} else if ((status & 0x7f) != 0x7f) {
		/* WIFSIGNALED; WTERMSIG is the low 7 bits (0x80 = core). */
		put(&l, "signal ");
		put_ulong(&l, (unsigned int)status & 0x7f);
	} else {
		/* Stopped: wait4 without WUNTRACED never reports this. */
		fail("wait for the command (stopped)", EINVAL);
	}
	emit(&l);
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

	print_start();
	run_command();
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

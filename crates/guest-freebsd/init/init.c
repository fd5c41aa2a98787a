/*
 * vmlane's FreeBSD init (PID 1).
 *
 * The kernel starts it with init_path=/vmlane/init. It mounts what a
 * command needs, runs one command, reports how it ended and ends the VM.
 * It is a static, freestanding binary that speaks raw system calls
 * (syscall.h) because vmlane builds it on hosts without a FreeBSD sysroot.
 *
 * When the run file (/vmlane/run) names a channel (a second serial port,
 * /dev/cuau1), the command comes from the host over it (channel.h): the
 * init sends Ready, applies Prepare (clock, entropy), and runs what the
 * Run frame says, in its directory, with its environment and its input
 * kind (null, pipe or terminal; empty argv: a login shell), its share
 * (p9fs) mounted read-only on /host, or else the run file's. Any argv,
 * environment and directory in the run file are then unused. Stdout and
 * stderr go back as frames (frame.h), then the Exit frame; the console
 * carries only the kernel's messages and the lines below. Without a
 * channel the run file's command runs on the console and its end is a
 * marker line.
 *
 * Console protocol, each line preceded by "\n" so it starts a line:
 *   vmlane:TOKEN:start
 *   vmlane:TOKEN:exit N | signal N | notfound | noexec   (no channel)
 *   vmlane:TOKEN:failed STEP: errno N (NAME)             (also sent as a
 *                                                         Failed frame once
 *                                                         the channel is open)
 */
#include "syscall.h"
#include "freestanding.h"
#include "runfile.h"
#include "frame.h"
#include "hostframe.h"
#include "rawtty.h"
#include "pty.h"
#include "line.h"
#include "channel.h"
#include "share.h"

/* A Run frame holds as many strings as a run file. */
_Static_assert(HOST_MAX_STRINGS == RUN_MAX_STRINGS, "string limits differ");

#define RUN_FILE_PATH "/vmlane/run"
#define CONSOLE_PATH "/dev/console"

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

static void
emit(struct line *l)
{
	emit_to(1, l);
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

/* ---- the channel ---------------------------------------------------- */

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
	send_failed(step, line_text(&why));

	marker(&l);
	put(&l, "failed ");
	put(&l, step);
	put(&l, ": ");
	put(&l, why.buf);
	emit(&l);
	end_vm();
}

/* ---- steps --------------------------------------------------------- */

/* Prints the kernel's reason a mount failed, if it gave one, as a plain line. */
static void
say_mount_errmsg(const char *fstype, const char *path)
{
	struct line l;

	if (mount_errmsg[0] == '\0')
		return;
	l.len = 0;
	put(&l, "\nvmlane-init: mount ");
	put(&l, fstype);
	put(&l, " on ");
	put(&l, path);
	put(&l, ": ");
	put_clean(&l, mount_errmsg, sizeof(mount_errmsg));
	emit(&l);
}

/*
 * Mounts `fstype` on `path`. On failure prints the kernel's errmsg, if it
 * gave one, and returns -errno.
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
	if (r < 0)
		say_mount_errmsg(fstype, path);
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
	put(&l, ": ");
	put_errno(&l, err);
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
		fail("parse /vmlane/run (empty argv without a channel)",
		    EINVAL);
	case RUN_TRAILING:
		fail("parse /vmlane/run (trailing bytes)", EINVAL);
	}
	fail("parse /vmlane/run", EINVAL);
}

static void
mount_share(const char *tag)
{
	long r;

	r = share_mount(tag, mount_errmsg, sizeof(mount_errmsg));
	if (r < 0) {
		say_mount_errmsg("p9fs", SHARE_MOUNT_POINT);
		fail("mount the host share", -r);
	}
}

/*
 * The Run request's share, else the run file's: p9fs is the only kind a
 * FreeBSD guest mounts, and its mount data is not needed. Writable
 * directories are not supported and only warned about.
 */
static void
mount_requested_share(const struct host_run *r, const char *file_tag)
{
	if (r->rwdirs != 0)
		warn("mount writable directories (ignored)", EOPNOTSUPP);
	if (r->fstype == 0) {
		if (file_tag != 0)
			mount_share(file_tag);
		return;
	}
	if (!share_is_p9fs(r->fstype))
		fail("mount the host share (not p9fs)", EOPNOTSUPP);
	mount_share(r->tag);
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

/* The run file's command writing to the console; its end is a marker line. */
static __attribute__((noreturn)) void
run_on_console(void)
{
	struct command c = { run_argv[0], run_argv, run_env, 0, 0, 0 };
	struct ending e;
	int exec_fd;
	long pid;

	pid = command_spawn(&c, -1, -1, -1, 0, &exec_fd);
	e.exec_errno = command_exec_result(exec_fd);
	e.status = command_wait(pid);
	print_ending(&e);
	end_vm();
}

static struct host_run host_run;

/*
 * The host's command, from its frames on the channel, writing into pipes
 * or a terminal whose bytes go out as Stdout and Stderr frames, as they
 * come; its end is the Exit frame.
 */
static __attribute__((noreturn)) void
run_on_channel(const struct run *run)
{
	struct command c;
	struct ending e;

	channel_fd = channel_open(run->channel);
	print_start();
	channel_handshake(&channel, channel_fd, &host_run);
	mount_requested_share(&host_run, run->share);
	channel_chdir(host_run.cwd);
	command_from_run(&host_run, &c);
	command_relay(&c, &channel, &e);
	channel_send_ending(&channel, &e);
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

	if (run.channel != 0)
		run_on_channel(&run);
	if (run.share != 0)
		mount_share(run.share);
	r = sys_chdir(run.cwd);
	if (r < 0)
		fail("change to the working directory", -r);
	print_start();
	run_on_console();
}

/* argc, argv and envp are unused: the run file and the channel say it all. */
FREESTANDING_ENTRY(init_main);

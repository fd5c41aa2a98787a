/*
 * The channel (a serial port made raw: rawtty.h) both ways, and running
 * one command over it. Shared by vmlane's init (PID 1 of the minimal
 * guest) and vmlane-relay (which a full image's rc.d hook runs).
 *
 * Once the channel is open the guest sends Ready (frame.h), the frame the
 * host waits for before it sends anything; then it reads the host's frames
 * (hostframe.h): Prepare sets the clock and feeds the random device, Run
 * says what to run. The command's stdout and stderr go out as Stdout and
 * Stderr frames as they come, followed by how it ended; its stdin is what
 * the Run request says: /dev/null, a pipe fed by Stdin frames until
 * StdinClosed, or a pseudo-terminal (pty.h) whose output is all Stdout
 * and whose size WindowSize frames change.
 *
 * The includer gives the system calls and constants (syscall.h, or the
 * host's in tests/relay_harness.c, which runs this code on the host) and
 * defines fail(), which reports a failed step and does not return, and
 * warn(), which reports one that the run survives.
 */
#ifndef VMLANE_CHANNEL_H
#define VMLANE_CHANNEL_H

/*
 * Reports that `step` failed with errno `err` (as a Failed frame once the
 * channel is open) and ends the program; each includer's own.
 */
static __attribute__((noreturn)) void fail(const char *step, long err);
/* Reports that `what` failed with errno `err`; the run goes on. */
static void warn(const char *what, long err);

/* Where Prepare's entropy goes; the host tests point it elsewhere. */
#ifndef CHANNEL_RANDOM_PATH
#define CHANNEL_RANDOM_PATH "/dev/random"
#endif
/*
 * Each write to /dev/random becomes four 8-byte events spread over
 * Fortuna's 32 pools in turn (randomdev_accumulate), and a read reseeds
 * only once pool 0 holds 64 bytes (fs_minpoolsize): 64 writes fill it,
 * so a restored guest's first read reseeds from the host's entropy.
 */
#define CHANNEL_RANDOM_WRITES 64

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

/* ---- the host's frames ----------------------------------------------- */

/* Frames read from the channel and not yet decoded. */
struct host_stream {
	int fd;
	int ended; /* the channel said end of file: nothing more comes */
	unsigned char buf[FRAME_CHUNK];
	unsigned long pos, len;
	struct host_decoder dec;
};

static struct host_stream host_in;
/* Where a frame is put together, and where the Run request's strings go. */
static unsigned char host_frame_buf[HOST_FRAME_MAX];
static char host_strings[HOST_FRAME_MAX];
static char *host_argv[HOST_MAX_STRINGS + 1];
static char *host_env[HOST_MAX_STRINGS + 1];

/* A refused frame ends the run: what follows it cannot be trusted. */
static __attribute__((noreturn)) void
host_refused(enum host_error e)
{
	struct line step;

	step.len = 0;
	put(&step, "read the host's request (");
	put(&step, host_error_text(e));
	put(&step, ")");
	fail(line_text(&step), EINVAL);
}

/*
 * Sends Ready on `fd` and starts reading the host's frames from it: the
 * host sends nothing before it has seen Ready.
 */
static void
channel_ready(const struct frame_sink *channel, int fd)
{
	long r = frame_ready(channel);

	if (r < 0)
		fail("write to the channel", -r);
	host_in.fd = fd;
	host_in.ended = 0;
	host_in.pos = host_in.len = 0;
	host_init(&host_in.dec, host_frame_buf);
}

/* One read of what the channel has; sets `ended` at its end of file. */
static void
host_read(struct host_stream *h)
{
	long n;

	do {
		n = sys_read(h->fd, h->buf, sizeof(h->buf));
	} while (n == -EINTR);
	if (n == -EAGAIN)
		return;
	if (n < 0)
		fail("read the host's request", -n);
	h->pos = 0;
	h->len = (unsigned long)n;
	if (n == 0)
		h->ended = 1;
}

/*
 * The next whole frame among the bytes already read: 1 with *m, 0 when
 * more must be read. A refused frame ends the run.
 */
static int
host_next(struct host_stream *h, struct host_message *m)
{
	unsigned long used;
	int r;

	if (h->pos >= h->len)
		return 0;
	r = host_feed(&h->dec, h->buf + h->pos, h->len - h->pos, &used, m);
	h->pos += used;
	if (r == HOST_FEED_FAILED)
		host_refused(h->dec.error);
	return r == HOST_FEED_MESSAGE;
}

/*
 * Prepare: the host's wall clock and fresh entropy, which a guest restored
 * from a snapshot would otherwise lack. Failures only warn: the command
 * can still run.
 */
static int channel_write_entropy(int fd, const unsigned char *data,
    unsigned long len);

static void
host_prepare(const struct host_message *m)
{
	struct timespec ts;
	unsigned char byte;
	long fd, r;
	int i;

	ts.tv_sec = (long)(m->wall_clock_ns / 1000000000ULL);
	ts.tv_nsec = (long)(m->wall_clock_ns % 1000000000ULL);
	r = sys_clock_settime(CLOCK_REALTIME, &ts);
	if (r < 0)
		warn("set the clock", -r);
	if (m->len == 0)
		return;
	fd = sys_open(CHANNEL_RANDOM_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		warn("open the random device", -fd);
		return;
	}
	for (i = 0; i < CHANNEL_RANDOM_WRITES; i++) {
		if (!channel_write_entropy((int)fd, m->data, m->len))
			break;
	}
	/* A read is when Fortuna reseeds (random_fortuna_pre_read). */
	r = sys_read((int)fd, &byte, 1);
	if (r < 0)
		warn("read the random device", -r);
	sys_close((int)fd);
}

/* Writes the entropy whole; 0 (having warned) when the device would not take it. */
static int
channel_write_entropy(int fd, const unsigned char *data, unsigned long len)
{
	unsigned long done = 0;
	long r;

	while (done < len) {
		r = sys_write(fd, data + done, len - done);
		if (r == -EINTR)
			continue;
		if (r <= 0) {
			warn("write the host's entropy", r < 0 ? -r : EIO);
			return 0;
		}
		done += (unsigned long)r;
	}
	return 1;
}

/*
 * Sends Ready, then takes the host's frames until its Run request, which
 * *run gets: Prepare on the way is applied, anything else refused.
 */
static void
channel_handshake(const struct frame_sink *channel, int fd,
    struct host_run *run)
{
	struct host_message m;
	enum host_error e;

	channel_ready(channel, fd);
	for (;;) {
		while (!host_next(&host_in, &m)) {
			host_read(&host_in);
			if (host_in.ended)
				fail("read the host's request (the channel "
				     "ended)", EIO);
		}
		if (m.kind == HOST_PREPARE) {
			host_prepare(&m);
			continue;
		}
		if (m.kind != HOST_RUN)
			fail("read the host's request (input before the Run "
			     "request)", EINVAL);
		e = host_run_decode(m.data, m.len, run, host_strings,
		    host_argv, host_env);
		if (e != HOST_OK)
			host_refused(e);
		return;
	}
}

/* Changes to the Run request's directory; an empty one stays put. */
static void
channel_chdir(const char *cwd)
{
	long r;

	if (cwd[0] == '\0')
		return;
	r = sys_chdir(cwd);
	if (r < 0)
		fail("change to the working directory", -r);
}

/* ---- starting the command ------------------------------------------ */

/* Where execvp(3) looks when PATH is unset: FreeBSD's _PATH_DEFPATH. */
#define COMMAND_DEFAULT_PATH \
	"/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"
/* Longest path tried in a PATH search (FreeBSD's MAXPATHLEN). */
#define COMMAND_PATH_MAX 1024
/* The login shell when the environment names none. */
#define COMMAND_DEFAULT_SHELL "/bin/sh"

/* What to run and what its stdin is. */
struct command {
	const char *file; /* the program; without a slash, found in PATH */
	char *const *argv;
	char *const *envp;
	int input; /* HOST_INPUT_* */
	unsigned short rows, cols; /* the terminal's size */
};

static int
command_has_slash(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '/')
			return 1;
	}
	return 0;
}

/* The value of `name` ("NAME=") in `envp`, or NULL. */
static const char *
command_getenv(char *const *envp, const char *name)
{
	const char *e, *n;

	for (; *envp != 0; envp++) {
		for (e = *envp, n = name; *n != '\0' && *e == *n; e++, n++)
			;
		if (*n == '\0')
			return e;
	}
	return 0;
}

static const char *
command_search_path(char *const *envp)
{
	const char *path = command_getenv(envp, "PATH=");

	return path != 0 ? path : COMMAND_DEFAULT_PATH;
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
 * execve(2) of `file`, looked up in PATH as execvp(3) does when it has
 * no slash; returns only on failure, with -errno: for a search, -EACCES
 * when something was found but could not be run, else -ENOENT.
 */
static long
command_exec(const char *file, char *const *argv, char *const *envp)
{
	char path[COMMAND_PATH_MAX];
	const char *dir, *end;
	int denied = 0;
	long r;

	if (command_has_slash(file))
		return sys_execve(file, argv, envp);
	if (file[0] == '\0')
		return -ENOENT;
	for (dir = command_search_path(envp);; dir = end + 1) {
		for (end = dir; *end != ':' && *end != '\0'; end++)
			;
		if (command_join(path, dir, (size_t)(end - dir), file)) {
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

static char command_login_name[COMMAND_PATH_MAX];
static char *command_login_argv[2] = { command_login_name, 0 };
static char command_sh_name[] = "-sh";
static char *command_sh_argv[2] = { command_sh_name, 0 };

/*
 * An empty argv asks for a login shell, as ssh runs one: $SHELL, else (or
 * when the guest has no such file) /bin/sh, with a '-' before its name in
 * argv[0] so it reads its profile.
 */
static void
command_login_shell(struct command *c)
{
	const char *shell = command_getenv(c->envp, "SHELL=");
	const char *base, *p;
	size_t n = 1;

	if (shell == 0 || shell[0] == '\0')
		shell = COMMAND_DEFAULT_SHELL;
	for (base = p = shell; *p != '\0'; p++) {
		if (*p == '/')
			base = p + 1;
	}
	command_login_name[0] = '-';
	for (; *base != '\0' && n < COMMAND_PATH_MAX - 1; base++)
		command_login_name[n++] = *base;
	command_login_name[n] = '\0';
	c->file = shell;
	c->argv = command_login_argv;
}

/* The command a Run request asks for. */
static void
command_from_run(const struct host_run *run, struct command *c)
{
	c->file = run->argv[0];
	c->argv = run->argv;
	c->envp = run->env;
	c->input = run->input;
	c->rows = run->rows;
	c->cols = run->cols;
	if (run->argc == 0)
		command_login_shell(c);
}

/*
 * In the child: a session of its own whose controlling terminal is the
 * slave at `tty`, on 0, 1 and 2. Returns -errno of what failed.
 */
static long
command_take_terminal(const char *tty)
{
	long fd, r;
	int i;

	r = sys_setsid();
	if (r < 0)
		return r;
	fd = sys_open(tty, O_RDWR);
	if (fd < 0)
		return fd;
	r = sys_ioctl((int)fd, TIOCSCTTY, 0);
	if (r < 0)
		return r;
	for (i = 0; i <= 2; i++) {
		if (fd != i && (r = sys_dup2((int)fd, i)) < 0)
			return r;
	}
	if (fd > 2)
		sys_close((int)fd);
	return 0;
}

/* In the child: `in`, `out` and `err` on 0, 1 and 2 where not -1. */
static long
command_take_stdio(int in, int out, int err)
{
	long r = 0;

	if ((in >= 0 && (r = sys_dup2(in, 0)) < 0) ||
	    (out >= 0 && (r = sys_dup2(out, 1)) < 0) ||
	    (err >= 0 && (r = sys_dup2(err, 2)) < 0))
		return r;
	return 0;
}

/* How a started command ended. */
struct ending {
	int exec_errno; /* nonzero: the exec failed with it */
	int status;     /* the wait status, when the exec worked */
};

/*
 * Forks the command with stdin, stdout and stderr on `in`, `out` and
 * `err`, or left as they are where those are -1, or all three on the
 * terminal `tty` when that is not NULL; returns its pid and the read end
 * of a pipe that reports a failed exec.
 */
static long
command_spawn(const struct command *c, int in, int out, int err,
    const char *tty, int *exec_fd)
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
		r = tty != 0 ? command_take_terminal(tty) :
		    command_take_stdio(in, out, err);
		/* A negative errno: its stdio could not be put in place. */
		if (r < 0) {
			e = (int)r;
			write_all(fds[1], (const char *)&e, sizeof(e));
			sys_exit(127);
		}
		/* The mask survives exec; the command gets signals normally. */
		sys_sigprocmask(SIG_SETMASK, &none, 0);
		r = command_exec(c->file, c->argv, c->envp);
		/* The host's $SHELL (bash, say) may not be in the guest. */
		if (r == -ENOENT && c->argv == command_login_argv)
			r = command_exec(COMMAND_DEFAULT_SHELL, command_sh_argv,
			    c->envp);
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
		fail("give the command its stdin and outputs", -exec_errno);
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

/* ---- its stdin -------------------------------------------------------- */

/* Writes to `fd` return EAGAIN instead of blocking the output relay. */
static void
set_nonblocking(int fd)
{
	long flags = sys_fcntl(fd, F_GETFL, 0);

	if (flags >= 0)
		flags = sys_fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	if (flags < 0)
		fail("make the command's input non-blocking", -flags);
}

/* /dev/null, for a command that gets no input. */
static int
stdin_null(void)
{
	long fd = sys_open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		fail("open /dev/null", -fd);
	return (int)fd;
}

/* Sets the terminal's size; the kernel tells the command by SIGWINCH. */
static long
terminal_resize(int master, unsigned short rows, unsigned short cols)
{
	struct fbsd_winsize ws;

	ws.ws_row = rows;
	ws.ws_col = cols;
	ws.ws_xpixel = 0;
	ws.ws_ypixel = 0;
	return sys_ioctl(master, FBSD_TIOCSWINSZ, &ws);
}

/* "/dev/" and the slave's name ("pts/N"). */
static char terminal_path[sizeof(PTY_DEV_PREFIX) + PTY_NAME_MAX + 1];

/*
 * A new pseudo-terminal of the given size: returns its master, with the
 * slave's path in terminal_path for the child to open.
 */
static int
terminal_open(unsigned short rows, unsigned short cols)
{
	struct fbsd_fiodgname_arg arg;
	const char *prefix = PTY_DEV_PREFIX;
	size_t n;
	long fd, r;

	fd = sys_posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		fail("open a pseudo-terminal", -fd);
	for (n = 0; prefix[n] != '\0'; n++)
		terminal_path[n] = prefix[n];
	arg.len = (int)(sizeof(terminal_path) - n - 1);
	arg.buf = terminal_path + n;
	r = sys_ioctl((int)fd, FBSD_FIODGNAME, &arg);
	if (r < 0)
		fail("find the pseudo-terminal's name", -r);
	terminal_path[sizeof(terminal_path) - 1] = '\0';
	r = terminal_resize((int)fd, rows, cols);
	if (r < 0)
		fail("set the terminal's size", -r);
	set_nonblocking((int)fd);
	return (int)fd;
}

/* ---- relaying its output and input ------------------------------------ */

/* One of the command's outputs and the frame kind it travels in. */
struct output {
	int fd; /* -1 once it has ended */
	unsigned char kind;
};

/* The running command's descriptors, and the input on its way to it. */
struct session {
	long pid;
	struct output outputs[2];
	int terminal; /* in_fd is the master, outputs[0] as well */
	int in_fd;    /* where Stdin bytes go; -1: nowhere, or closed */
	int closing;  /* StdinClosed came: close in_fd once pending is out */
	const unsigned char *pending; /* in the decoder's buffer */
	unsigned long pending_len;
};

/* How often the relay checks for the command's exit while output is open. */
#define EXIT_POLL_MS 100
/*
 * Reads per output after the command exited: a child it left running may
 * hold the pipes open, and write forever.
 */
#define MAX_DRAIN_READS 256

static char relay_buf[FRAME_CHUNK];

/*
 * Sends one read of `o` on `channel`; closes it at its end (EIO is a
 * terminal's master once no one has the slave open).
 */
static void
relay_once(const struct frame_sink *channel, struct output *o)
{
	long n, r;

	n = sys_read(o->fd, relay_buf, sizeof(relay_buf));
	if (n == -EINTR || n == -EAGAIN)
		return;
	if (n < 0 && n != -EIO)
		fail("read the command's output", -n);
	if (n <= 0) {
		sys_close(o->fd);
		o->fd = -1;
		return;
	}
	r = frame_output(channel, o->kind, relay_buf, (unsigned long)n);
	if (r < 0)
		fail("write to the channel", -r);
}

/* Ends the command's input; a terminal's master closing hangs it up. */
static void
session_close_input(struct session *s)
{
	if (s->in_fd >= 0)
		sys_close(s->in_fd);
	if (s->terminal)
		s->outputs[0].fd = -1;
	s->in_fd = -1;
	s->pending_len = 0;
}

/*
 * Writes what the command takes of the pending input, without blocking;
 * then closes it if StdinClosed came. A command that stopped reading
 * (EPIPE, or EIO from a hung-up terminal) drops the rest.
 */
static void
session_flush(struct session *s)
{
	long w;

	while (s->pending_len > 0 && s->in_fd >= 0) {
		w = sys_write(s->in_fd, s->pending, s->pending_len);
		if (w == -EINTR)
			continue;
		if (w == -EAGAIN || w == 0)
			return;
		if (w == -EPIPE || w == -EIO) {
			session_close_input(s);
			return;
		}
		if (w < 0)
			fail("write to the command's input", -w);
		s->pending += w;
		s->pending_len -= (unsigned long)w;
	}
	if (s->closing && s->pending_len == 0 && s->in_fd >= 0)
		session_close_input(s);
}

/*
 * One host frame while the command runs. Stdin without a pipe or terminal
 * is dropped, as is a Run (the relay's old form runs its own command).
 */
static void
session_take(struct session *s, const struct host_message *m)
{
	long r;

	switch (m->kind) {
	case HOST_STDIN:
		if (s->in_fd < 0 || s->closing)
			return;
		s->pending = m->data;
		s->pending_len = m->len;
		session_flush(s);
		return;
	case HOST_STDIN_CLOSED:
		s->closing = 1;
		session_flush(s);
		return;
	case HOST_WINDOW_SIZE:
		if (!s->terminal || s->in_fd < 0)
			return;
		r = terminal_resize(s->in_fd, m->rows, m->cols);
		if (r < 0)
			warn("set the terminal's size", -r);
		return;
	case HOST_PREPARE:
		host_prepare(m);
		return;
	}
}

/* Takes the frames already read, while the command's input keeps up. */
static void
session_serve(struct session *s)
{
	struct host_message m;

	while (s->pending_len == 0 && host_next(&host_in, &m))
		session_take(s, &m);
}

/*
 * Waits up to `timeout_ms` for output, for room for pending input, or
 * (until the command exited) for host frames, and handles what came;
 * returns how many outputs were ready.
 */
static long
relay_ready(const struct frame_sink *channel, struct session *s,
    int timeout_ms, int exited)
{
	struct pollfd fds[4];
	long n, ready = 0;
	int i;

	session_serve(s);
	for (i = 0; i < 2; i++) {
		/* poll(2) skips negative descriptors. */
		fds[i].fd = s->outputs[i].fd;
		fds[i].events = POLLIN;
	}
	fds[2].fd = !exited && s->pending_len > 0 ? s->in_fd : -1;
	fds[2].events = POLLOUT;
	fds[3].fd = !exited && !host_in.ended && s->pending_len == 0 &&
		host_in.pos >= host_in.len ? host_in.fd : -1;
	fds[3].events = POLLIN;
	for (i = 0; i < 4; i++)
		fds[i].revents = 0;
	n = sys_poll(fds, 4, timeout_ms);
	if (n == -EINTR)
		return 0;
	if (n < 0)
		fail("wait for the command's output", -n);
	for (i = 0; i < 2; i++) {
		if (fds[i].fd >= 0 && fds[i].revents != 0 &&
		    s->outputs[i].fd >= 0) {
			relay_once(channel, &s->outputs[i]);
			ready++;
		}
	}
	if (s->terminal && s->outputs[0].fd < 0) {
		/* The master was closed with its output: no input goes in. */
		s->in_fd = -1;
		s->pending_len = 0;
	}
	if (fds[2].fd >= 0 && fds[2].revents != 0 && s->in_fd >= 0)
		session_flush(s);
	if (fds[3].fd >= 0 && fds[3].revents != 0)
		host_read(&host_in);
	return ready;
}

/*
 * Relays the outputs as they come and the host's input as the command
 * takes it, until the outputs end (or, once the command has exited,
 * nothing more is waiting) and no more input can come; returns its wait
 * status.
 */
static int
relay_until_exit(const struct frame_sink *channel, struct session *s)
{
	int status = 0, exited = 0, drained = 0;
	long ready;

	while (s->outputs[0].fd >= 0 || s->outputs[1].fd >= 0 ||
	    (!exited && !host_in.ended)) {
		ready = relay_ready(channel, s, exited ? 0 : EXIT_POLL_MS,
		    exited);
		if (exited && (ready == 0 || ++drained > MAX_DRAIN_READS))
			break;
		if (!exited)
			exited = command_reap_exited(s->pid, &status);
	}
	if (!exited)
		status = command_wait(s->pid);
	return status;
}

/*
 * Starts the command with its stdin as it asks and pipes for stdout and
 * stderr, or all three on a new terminal; fills in `s`.
 */
static void
session_start(const struct command *c, struct session *s, int *exec_fd)
{
	int in[2] = { -1, -1 }, out[2], err[2];
	long r;

	s->terminal = c->input == HOST_INPUT_TERMINAL;
	s->closing = 0;
	s->pending_len = 0;
	s->outputs[0].kind = FRAME_STDOUT;
	s->outputs[1].kind = FRAME_STDERR;
	if (s->terminal) {
		s->in_fd = terminal_open(c->rows, c->cols);
		s->outputs[0].fd = s->in_fd;
		s->outputs[1].fd = -1;
		s->pid = command_spawn(c, -1, -1, -1, terminal_path, exec_fd);
		return;
	}
	r = sys_pipe2(out, O_CLOEXEC);
	if (r < 0)
		fail("create the stdout pipe", -r);
	r = sys_pipe2(err, O_CLOEXEC);
	if (r < 0)
		fail("create the stderr pipe", -r);
	if (c->input == HOST_INPUT_PIPE) {
		r = sys_pipe2(in, O_CLOEXEC);
		if (r < 0)
			fail("create the stdin pipe", -r);
		set_nonblocking(in[1]);
	} else {
		in[0] = stdin_null();
	}
	s->pid = command_spawn(c, in[0], out[1], err[1], 0, exec_fd);
	sys_close(in[0]);
	sys_close(out[1]);
	sys_close(err[1]);
	s->in_fd = in[1];
	s->outputs[0].fd = out[0];
	s->outputs[1].fd = err[0];
}

/*
 * Runs the command with its stdin fed by the host's frames and its output
 * sent on `channel` as Stdout and Stderr frames as they come; *e says how
 * it ended. channel_ready() or channel_handshake() came first.
 */
static void
command_relay(const struct command *c, const struct frame_sink *channel,
    struct ending *e)
{
	struct session s;
	int exec_fd, i;

	/* Input for a command that is gone fails with EPIPE, not a signal. */
	sys_block_sigpipe();
	session_start(c, &s, &exec_fd);
	e->exec_errno = command_exec_result(exec_fd);
	e->status = relay_until_exit(channel, &s);
	for (i = 0; i < 2; i++) {
		if (s.outputs[i].fd >= 0)
			sys_close(s.outputs[i].fd);
	}
	if (!s.terminal && s.in_fd >= 0)
		sys_close(s.in_fd);
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

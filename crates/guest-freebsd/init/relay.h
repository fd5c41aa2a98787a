/*
 * vmlane-relay: runs one command with its stdout and stderr relayed as
 * frames on a channel (channel.h), then its Exit frame, so that a full
 * FreeBSD image's run reports the way the minimal guest's init does. The
 * image's rc.d hook runs it when the VM has its second serial port:
 *
 *   vmlane-relay /dev/cuau1
 *     Sends Ready and takes the command from the host's frames: Prepare
 *     (clock, entropy), then Run, whose argv (empty: a login shell, $SHELL
 *     from its environment or /bin/sh), environment, directory and input
 *     kind (null, pipe, terminal) are what runs; nothing is mounted.
 *
 *   vmlane-relay /dev/cuau1 -- env -- KEY=VALUE ... COMMAND ARGUMENT ...
 *     The old form: sends Ready and runs the command at once, in the
 *     relay's working directory, with its environment and /dev/null as
 *     stdin. Host frames are still read: Prepare is applied; Run, Stdin,
 *     StdinClosed and WindowSize are dropped. As from the shell the hook
 *     ran commands with before, the exit statuses 127 and 126 (env(1) and
 *     sh(1): not found, found but not executable) are sent as those.
 *
 * Either way a command without a slash is looked up in PATH and a signal
 * is sent as a signal.
 *
 * Exit status: 0 once the Exit frame is sent; 1 once a failed step went
 * out as a Failed frame (a frame the host sent that is refused is one:
 * "read the host's request (WHY)"); 2 when the channel does not have the
 * result (bad arguments, a channel that could not be opened or written).
 * A failure is one line on stderr, "vmlane-relay: STEP: WHY", which the
 * hook turns into its failure line on the console; a warning (the clock
 * or the entropy of Prepare) is "vmlane-relay: warning: STEP: WHY".
 *
 * Free of FreeBSD's numbers like channel.h: relay.c is its entry on
 * FreeBSD, tests/relay_harness.c on the host.
 */
#ifndef VMLANE_RELAY_H
#define VMLANE_RELAY_H

#define RELAY_SENT 0
#define RELAY_FAILED_SENT 1
#define RELAY_NOT_SENT 2

/* The shell's statuses for a command it could not run (sh(1), env(1)). */
#define RELAY_STATUS_NOEXEC 126
#define RELAY_STATUS_NOTFOUND 127

/* The channel's descriptor once it is open and raw, else -1. */
static int relay_fd = -1;
static const struct frame_sink relay_channel = { channel_write, &relay_fd };

/* What the arguments say. */
struct relay_args {
	const char *device;
	char **argv; /* the command, NULL-terminated; NULL: the host's Run */
};

static int
relay_streq(const char *a, const char *b)
{
	while (*a != '\0' && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

/*
 * "DEVICE" or "DEVICE -- COMMAND [ARGUMENT ...]"; 0 when they are not
 * that. A DEVICE starting with '-' is refused, which keeps room for
 * options.
 */
static int
relay_parse(int argc, char **argv, struct relay_args *a)
{
	if (argc < 2 || argv[1][0] == '\0' || argv[1][0] == '-')
		return 0;
	if (argc != 2 && (argc < 4 || !relay_streq(argv[2], "--")))
		return 0;
	a->device = argv[1];
	a->argv = argc == 2 ? 0 : argv + 3;
	return 1;
}

/* Writes "vmlane-relay: STEP: WHY" to stderr. */
static void
relay_say(const char *step, const char *why)
{
	struct line l;

	l.len = 0;
	put(&l, "vmlane-relay: ");
	put(&l, step);
	put(&l, ": ");
	put(&l, why);
	emit_to(2, &l);
}

/* Writes "vmlane-relay: warning: WHAT: errno N (NAME)" to stderr. */
static void
warn(const char *what, long err)
{
	struct line why;
	struct line l;

	why.len = 0;
	put_errno(&why, err);
	l.len = 0;
	put(&l, "vmlane-relay: warning: ");
	put(&l, what);
	put(&l, ": ");
	put(&l, line_text(&why));
	emit_to(2, &l);
}

/* Waits until the UART has sent what was written to it, and exits. */
static __attribute__((noreturn)) void
relay_exit(int status)
{
	if (relay_fd >= 0)
		sys_ioctl(relay_fd, TIOCDRAIN, 0);
	sys_exit(status);
}

/*
 * Sends Failed{STEP, "errno N (NAME)"} when the channel is open, says so
 * on stderr either way, and exits with whether the channel has it.
 */
static __attribute__((noreturn)) void
fail(const char *step, long err)
{
	struct line why;
	int sent;

	why.len = 0;
	put_errno(&why, err);
	sent = relay_fd >= 0 &&
	    frame_failed(&relay_channel, step, line_text(&why)) == 0;
	relay_say(step, line_text(&why));
	relay_exit(sent ? RELAY_FAILED_SENT : RELAY_NOT_SENT);
}

/* The statuses the shell gives a command it could not run, as such. */
static void
relay_shell_statuses(struct ending *e)
{
	unsigned int status = (unsigned int)e->status;

	if (e->exec_errno != 0 || (status & 0x7f) != 0)
		return;
	if (((status >> 8) & 0xff) == RELAY_STATUS_NOTFOUND)
		e->exec_errno = ENOENT;
	else if (((status >> 8) & 0xff) == RELAY_STATUS_NOEXEC)
		e->exec_errno = EACCES;
}

/* The host's Run request, once the handshake has it. */
static struct host_run relay_run;

/* The Run request's share, mounted before the command starts in it. */
static void
relay_mount_share(const struct host_run *r)
{
	static char errmsg[160];
	long err;

	if (r->fstype == 0)
		return;
	if (!share_is_p9fs(r->fstype))
		fail("mount the host share (not p9fs)", EOPNOTSUPP);
	err = share_mount(r->tag, errmsg, sizeof(errmsg));
	if (err < 0) {
		if (errmsg[0] != '\0')
			relay_say("mount the host share", errmsg);
		fail("mount the host share", -err);
	}
}

/* The new form: everything comes from the host's frames. */
static void
relay_from_host(struct command *c)
{
	channel_handshake(&relay_channel, relay_fd, &relay_run);
	relay_mount_share(&relay_run);
	channel_chdir(relay_run.cwd);
	command_from_run(&relay_run, c);
}

/* The old form: the arguments' command, at once, with no input. */
static void
relay_from_arguments(char **argv, char **envp, struct command *c)
{
	channel_ready(&relay_channel, relay_fd);
	c->file = argv[0];
	c->argv = argv;
	c->envp = envp;
	c->input = HOST_INPUT_NULL;
	c->rows = c->cols = 0;
}

static int
relay_main(int argc, char **argv, char **envp)
{
	struct relay_args args;
	struct command c;
	struct ending e;

	if (!relay_parse(argc, argv, &args)) {
		relay_say("read the arguments",
		    "usage: vmlane-relay DEVICE [-- COMMAND [ARGUMENT ...]]");
		return RELAY_NOT_SENT;
	}
	relay_fd = channel_open(args.device);
	if (args.argv == 0)
		relay_from_host(&c);
	else
		relay_from_arguments(args.argv, envp, &c);
	command_relay(&c, &relay_channel, &e);
	if (args.argv != 0)
		relay_shell_statuses(&e);
	channel_send_ending(&relay_channel, &e);
	relay_exit(RELAY_SENT);
}

#endif

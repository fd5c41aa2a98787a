/*
 * Host-side driver for init/frame.h and init/rawtty.h, used by
 * tests/channel_framing.rs.
 *
 * Usage: channel-harness MAX_WRITE. Reads all of stdin as output bytes and
 * writes to stdout, through a writer that takes at most MAX_WRITE bytes a
 * call and fails every third call with EINTR (the init's loop must go on):
 *   the input as Stdout frames, its first half as Stderr frames, an Exit
 *   frame of each kind, two Failed frames (the second with a step longer
 *   than a frame carries) and Ready.
 * On stderr, one line per check that needs no decoder:
 *   "W <r>" what frame_send returns through a writer that fails with EIO,
 *   "Z <r>" and through one that takes nothing;
 *   "T <sizeof> <c_cc> <c_ispeed> <c_ospeed> <TIOCGETA> <TIOCSETA>" the
 *   termios layout and its ioctls, then "R <iflag> <oflag> <cflag> <lflag>
 *   <VMIN> <VTIME> <ispeed>" FreeBSD's default settings made raw;
 *   "P <sizeof winsize> <ws_col> <ws_ypixel> <TIOCSWINSZ> <sizeof
 *   fiodgname_arg> <buf> <FIODGNAME>" the pseudo-terminal's layouts and
 *   ioctls (pty.h).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../init/frame.h"
#include "../init/rawtty.h"
#include "../init/pty.h"

struct limited {
	unsigned long max;
	unsigned long calls;
};

static long
limited_write(void *ctx, const void *buf, unsigned long len)
{
	struct limited *l = ctx;
	unsigned long n = len < l->max ? len : l->max;

	if (++l->calls % 3 == 0)
		return -FRAME_EINTR;
	if (fwrite(buf, 1, n, stdout) != n)
		exit(2);
	return (long)n;
}

static long
failing_write(void *ctx, const void *buf, unsigned long len)
{
	(void)ctx;
	(void)buf;
	(void)len;
	return -FRAME_EIO;
}

static long
full_write(void *ctx, const void *buf, unsigned long len)
{
	(void)ctx;
	(void)buf;
	(void)len;
	return 0;
}

/* All of stdin; *len is its size. */
static unsigned char *
read_input(unsigned long *len)
{
	unsigned long cap = 4096, n = 0;
	unsigned char *buf = malloc(cap);
	size_t got;

	while (buf != NULL && (got = fread(buf + n, 1, cap - n, stdin)) > 0) {
		n += got;
		if (n == cap)
			buf = realloc(buf, cap *= 2);
	}
	if (buf == NULL || ferror(stdin))
		exit(2);
	*len = n;
	return buf;
}

static void
check(long r)
{
	if (r != 0) {
		fprintf(stderr, "frame call failed: %ld\n", r);
		exit(3);
	}
}

/* FreeBSD's default settings (sys/sys/ttydefaults.h), then raw mode. */
static void
report_termios(void)
{
	struct fbsd_termios t;

	fprintf(stderr, "T %zu %zu %zu %zu %#lx %#lx\n", sizeof(t),
	    offsetof(struct fbsd_termios, c_cc),
	    offsetof(struct fbsd_termios, c_ispeed),
	    offsetof(struct fbsd_termios, c_ospeed),
	    (unsigned long)FBSD_TIOCGETA, (unsigned long)FBSD_TIOCSETA);
	memset(&t, 0, sizeof(t));
	t.c_iflag = FBSD_BRKINT | FBSD_ICRNL | FBSD_IMAXBEL | FBSD_IXON |
	    FBSD_IXANY;
	t.c_oflag = FBSD_OPOST | 0x2; /* ONLCR */
	t.c_lflag = FBSD_ECHO | FBSD_ICANON | FBSD_ISIG | FBSD_IEXTEN |
	    FBSD_ECHOE | 0x1 | 0x40; /* ECHOKE, ECHOCTL */
	t.c_cflag = FBSD_CREAD | FBSD_CS8 | 0x4000; /* HUPCL */
	t.c_cc[FBSD_VMIN] = 1;
	t.c_cc[FBSD_VTIME] = 0;
	t.c_ispeed = t.c_ospeed = 9600;
	rawtty_make_raw(&t);
	fprintf(stderr, "R %#x %#x %#x %#x %u %u %u\n", t.c_iflag, t.c_oflag,
	    t.c_cflag, t.c_lflag, t.c_cc[FBSD_VMIN], t.c_cc[FBSD_VTIME],
	    t.c_ispeed);
}

static void
report_pty(void)
{
	fprintf(stderr, "P %zu %zu %zu %#lx %zu %zu %#lx\n",
	    sizeof(struct fbsd_winsize),
	    offsetof(struct fbsd_winsize, ws_col),
	    offsetof(struct fbsd_winsize, ws_ypixel),
	    (unsigned long)FBSD_TIOCSWINSZ, sizeof(struct fbsd_fiodgname_arg),
	    offsetof(struct fbsd_fiodgname_arg, buf),
	    (unsigned long)FBSD_FIODGNAME);
}

int
main(int argc, char **argv)
{
	struct limited l = { 0, 0 };
	struct frame_sink sink = { limited_write, &l };
	struct frame_sink failing = { failing_write, NULL };
	struct frame_sink full = { full_write, NULL };
	char long_step[FRAME_TEXT_MAX + 100];
	unsigned char *data;
	unsigned long len;

	if (argc != 2)
		return 2;
	l.max = strtoul(argv[1], NULL, 10);
	data = read_input(&len);

	check(frame_output(&sink, FRAME_STDOUT, data, len));
	check(frame_output(&sink, FRAME_STDERR, data, len / 2));
	check(frame_exit(&sink, FRAME_EXITED, 7));
	check(frame_exit(&sink, FRAME_EXITED, 255));
	check(frame_exit(&sink, FRAME_SIGNALED, 12));
	check(frame_exit(&sink, FRAME_NOT_FOUND, 0));
	check(frame_exit(&sink, FRAME_NOT_EXECUTABLE, 0));
	check(frame_failed(&sink, "make the channel raw", "errno 25 (ENOTTY)"));
	memset(long_step, 'x', sizeof(long_step) - 1);
	long_step[sizeof(long_step) - 1] = '\0';
	check(frame_failed(&sink, long_step, ""));
	check(frame_ready(&sink));
	if (fflush(stdout) != 0)
		return 2;

	fprintf(stderr, "W %ld\n", frame_send(&failing, FRAME_STDOUT, "x", 1));
	fprintf(stderr, "Z %ld\n", frame_send(&full, FRAME_STDOUT, "x", 1));
	report_termios();
	report_pty();
	free(data);
	return 0;
}

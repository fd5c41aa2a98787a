/*
 * FreeBSD's pseudo-terminal ioctls and their argument layouts, for a
 * command whose input kind is a terminal (channel.h). Free of system calls
 * and libc like rawtty.h, whose FBSD_IOC it uses, so
 * tests/channel_framing.rs can check the numbers and layouts on the host.
 *
 * From FreeBSD 15.1: sys/sys/_winsize.h (struct winsize), sys/sys/ttycom.h
 * (TIOCSWINSZ), sys/sys/filio.h (FIODGNAME, struct fiodgname_arg). TIOCGPTN
 * is only answered by kernels built with PTS_COMPAT or PTS_LINUX
 * (sys/kern/tty_pts.c), so the slave's name comes from FIODGNAME, as
 * ptsname(3) gets it (lib/libc/stdlib/ptsname.c).
 */
#ifndef VMLANE_PTY_H
#define VMLANE_PTY_H

struct fbsd_winsize {
	unsigned short ws_row;
	unsigned short ws_col;
	unsigned short ws_xpixel;
	unsigned short ws_ypixel;
};

struct fbsd_fiodgname_arg {
	int len;
	void *buf;
};

/* _IOW('t', 103, struct winsize): the kernel sends SIGWINCH on a change. */
#define FBSD_TIOCSWINSZ \
	FBSD_IOC(FBSD_IOC_IN, 't', 103, sizeof(struct fbsd_winsize))
/* _IOW('f', 120, struct fiodgname_arg): the device's name, "pts/N". */
#define FBSD_FIODGNAME \
	FBSD_IOC(FBSD_IOC_IN, 'f', 120, sizeof(struct fbsd_fiodgname_arg))

/* Where FreeBSD's devfs has the slave: "/dev/" + its name. */
#define PTY_DEV_PREFIX "/dev/"
/* sys/sys/param.h: SPECNAMELEN, the longest device name. */
#define PTY_NAME_MAX 255

#endif

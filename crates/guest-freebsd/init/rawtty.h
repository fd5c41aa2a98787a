/*
 * FreeBSD's struct termios and the raw mode vmlane's init puts its channel
 * (a serial port) in, so every byte of a frame reaches the host as it was
 * written: no CR/LF mapping, no echo, no line discipline, 8 data bits.
 *
 * Free of system calls and libc so tests/channel_framing.rs can check the
 * layout and the flags on the host. Values from FreeBSD 15.1's
 * sys/sys/_termios.h, sys/sys/ttycom.h and lib/libc/gen/termios.c
 * (cfmakeraw); they are part of the stable ABI.
 */
#ifndef VMLANE_RAWTTY_H
#define VMLANE_RAWTTY_H

#define FBSD_NCCS 20
#define FBSD_VMIN 16
#define FBSD_VTIME 17

/* c_iflag */
#define FBSD_IGNBRK 0x00000001U
#define FBSD_BRKINT 0x00000002U
#define FBSD_IGNPAR 0x00000004U
#define FBSD_PARMRK 0x00000008U
#define FBSD_INPCK 0x00000010U
#define FBSD_ISTRIP 0x00000020U
#define FBSD_INLCR 0x00000040U
#define FBSD_IGNCR 0x00000080U
#define FBSD_ICRNL 0x00000100U
#define FBSD_IXON 0x00000200U
#define FBSD_IXOFF 0x00000400U
#define FBSD_IXANY 0x00000800U
#define FBSD_IMAXBEL 0x00002000U

/* c_oflag */
#define FBSD_OPOST 0x00000001U

/* c_cflag */
#define FBSD_CSIZE 0x00000300U
#define FBSD_CS8 0x00000300U
#define FBSD_CSTOPB 0x00000400U
#define FBSD_CREAD 0x00000800U
#define FBSD_PARENB 0x00001000U
#define FBSD_CLOCAL 0x00008000U
#define FBSD_CCTS_OFLOW 0x00010000U
#define FBSD_CRTS_IFLOW 0x00020000U
#define FBSD_CDTR_IFLOW 0x00040000U
#define FBSD_CDSR_OFLOW 0x00080000U
#define FBSD_CCAR_OFLOW 0x00100000U

/* c_lflag */
#define FBSD_ECHOE 0x00000002U
#define FBSD_ECHOK 0x00000004U
#define FBSD_ECHO 0x00000008U
#define FBSD_ECHONL 0x00000010U
#define FBSD_ISIG 0x00000080U
#define FBSD_ICANON 0x00000100U
#define FBSD_IEXTEN 0x00000400U
#define FBSD_TOSTOP 0x00400000U
#define FBSD_PENDIN 0x20000000U
#define FBSD_NOFLSH 0x80000000U

/* The channel's speed. QEMU's UART does not pace its output by it. */
#define FBSD_B115200 115200U

struct fbsd_termios {
	unsigned int c_iflag;
	unsigned int c_oflag;
	unsigned int c_cflag;
	unsigned int c_lflag;
	unsigned char c_cc[FBSD_NCCS];
	unsigned int c_ispeed;
	unsigned int c_ospeed;
};

/*
 * sys/sys/ioccom.h: _IOR/_IOW put the argument's size in bits 16-28.
 * TIOCGETA is _IOR('t', 19, struct termios), TIOCSETA _IOW('t', 20, ...).
 */
#define FBSD_IOC_OUT 0x40000000UL
#define FBSD_IOC_IN 0x80000000UL
#define FBSD_IOC(inout, group, num, len) \
	((inout) | (((unsigned long)(len) & 0x1fffUL) << 16) | \
	    ((unsigned long)(group) << 8) | (unsigned long)(num))
#define FBSD_TIOCGETA \
	FBSD_IOC(FBSD_IOC_OUT, 't', 19, sizeof(struct fbsd_termios))
#define FBSD_TIOCSETA \
	FBSD_IOC(FBSD_IOC_IN, 't', 20, sizeof(struct fbsd_termios))

/*
 * cfmakeraw(), plus what a channel to a program needs and a terminal does
 * not: no modem lines (CLOCAL) or hardware flow control to wait for, one
 * stop bit, and a fixed speed.
 */
static void
rawtty_make_raw(struct fbsd_termios *t)
{
	t->c_iflag &= ~(FBSD_IMAXBEL | FBSD_IXOFF | FBSD_INPCK | FBSD_BRKINT |
	    FBSD_PARMRK | FBSD_ISTRIP | FBSD_INLCR | FBSD_IGNCR | FBSD_ICRNL |
	    FBSD_IXON | FBSD_IGNPAR | FBSD_IXANY);
	t->c_iflag |= FBSD_IGNBRK;
	t->c_oflag &= ~FBSD_OPOST;
	t->c_lflag &= ~(FBSD_ECHO | FBSD_ECHOE | FBSD_ECHOK | FBSD_ECHONL |
	    FBSD_ICANON | FBSD_ISIG | FBSD_IEXTEN | FBSD_NOFLSH | FBSD_TOSTOP |
	    FBSD_PENDIN);
	t->c_cflag &= ~(FBSD_CSIZE | FBSD_PARENB | FBSD_CSTOPB |
	    FBSD_CCTS_OFLOW | FBSD_CRTS_IFLOW | FBSD_CDTR_IFLOW |
	    FBSD_CDSR_OFLOW | FBSD_CCAR_OFLOW);
	t->c_cflag |= FBSD_CS8 | FBSD_CREAD | FBSD_CLOCAL;
	t->c_cc[FBSD_VMIN] = 1;
	t->c_cc[FBSD_VTIME] = 0;
	t->c_ispeed = FBSD_B115200;
	t->c_ospeed = FBSD_B115200;
}

#endif

/*
 * Lines of text for the console or stderr, built in place, and the names
 * of errno values, shared by vmlane's init and vmlane-relay.
 *
 * The includer gives sys_write() and the errno constants (syscall.h, or
 * the host's for tests), so the same code runs in tests on the host.
 */
#ifndef VMLANE_LINE_H
#define VMLANE_LINE_H

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

/* The line so far as a C string; room for its NUL was kept by put(). */
static const char *
line_text(struct line *l)
{
	l->buf[l->len] = '\0';
	return l->buf;
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

/* Ends the line and writes it to `fd`. */
static void
emit_to(int fd, struct line *l)
{
	l->buf[l->len++] = '\n'; /* room was kept by put() */
	write_all(fd, l->buf, l->len);
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
	case EPIPE: return "EPIPE";
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

#endif

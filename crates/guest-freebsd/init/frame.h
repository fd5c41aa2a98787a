/*
 * The frames vmlane's FreeBSD init sends on its channel, in the wire
 * format of every vmlane guest (crates/proto, codec.rs):
 *   [kind: u8][length: u32 little-endian][payload]
 * Ready has no payload; Stdout and Stderr carry raw output bytes; Exit
 * carries a status tag and a u32; Failed carries two length-prefixed
 * strings (step, message). What the host sends back is hostframe.h's.
 *
 * Free of system calls and libc: the writer is a function the caller
 * gives, so the same code runs in the init, in vmlane's test kernels and
 * on the host, where tests/channel_framing.rs decodes what it writes with
 * vmlane's own decoder.
 */
#ifndef VMLANE_FRAME_H
#define VMLANE_FRAME_H

/* crates/proto/src/codec.rs: frame kinds the host accepts from a guest. */
#define FRAME_STDOUT 17
#define FRAME_STDERR 18
#define FRAME_EXIT 19
#define FRAME_FAILED 20
#define FRAME_READY 21

/* The tags of an Exit frame's status. */
#define FRAME_EXITED 0
#define FRAME_SIGNALED 1
#define FRAME_NOT_FOUND 2
#define FRAME_NOT_EXECUTABLE 3

#define FRAME_HEADER 5
/* Output bytes per frame: small next to the host's 1 MiB limit. */
#define FRAME_CHUNK 4096UL
/* Longest step or message a Failed frame carries; longer ones are cut. */
#define FRAME_TEXT_MAX 512UL

/* EINTR and EIO have these numbers on FreeBSD and Linux alike. */
#define FRAME_EINTR 4
#define FRAME_EIO 5

/*
 * Writes up to `len` bytes; returns how many, or -errno. A short count is
 * not an error: frame_write_all() writes the rest.
 */
typedef long (*frame_write_fn)(void *ctx, const void *buf, unsigned long len);

struct frame_sink {
	frame_write_fn write;
	void *ctx;
};

/* Writes all `n` bytes; 0, or -errno of the write that failed. */
static long
frame_write_all(const struct frame_sink *sink, const unsigned char *p,
    unsigned long n)
{
	long w;

	while (n > 0) {
		w = sink->write(sink->ctx, p, n);
		if (w == -FRAME_EINTR)
			continue;
		if (w < 0)
			return w;
		if (w == 0)
			return -FRAME_EIO; /* a device that takes nothing */
		p += w;
		n -= (unsigned long)w;
	}
	return 0;
}

static void
frame_put_u32(unsigned char *p, unsigned long v)
{
	p[0] = (unsigned char)(v & 0xff);
	p[1] = (unsigned char)((v >> 8) & 0xff);
	p[2] = (unsigned char)((v >> 16) & 0xff);
	p[3] = (unsigned char)((v >> 24) & 0xff);
}

static void
frame_copy(unsigned char *dst, const unsigned char *src, unsigned long n)
{
	while (n-- > 0)
		*dst++ = *src++;
}

/* One frame whose payload is at most FRAME_CHUNK bytes, with one write. */
static long
frame_send(const struct frame_sink *sink, unsigned char kind,
    const void *payload, unsigned long len)
{
	unsigned char buf[FRAME_HEADER + FRAME_CHUNK];

	if (len > FRAME_CHUNK)
		return -22; /* EINVAL: callers split output first */
	buf[0] = kind;
	frame_put_u32(buf + 1, len);
	frame_copy(buf + FRAME_HEADER, payload, len);
	return frame_write_all(sink, buf, FRAME_HEADER + len);
}

/* Output as Stdout or Stderr frames of at most FRAME_CHUNK bytes each. */
static long
frame_output(const struct frame_sink *sink, unsigned char kind,
    const void *data, unsigned long len)
{
	const unsigned char *p = data;
	unsigned long n;
	long r;

	while (len > 0) {
		n = len < FRAME_CHUNK ? len : FRAME_CHUNK;
		r = frame_send(sink, kind, p, n);
		if (r < 0)
			return r;
		p += n;
		len -= n;
	}
	return 0;
}

/* Ready: the host holds every frame for the guest until it sees this. */
static __attribute__((unused)) long
frame_ready(const struct frame_sink *sink)
{
	return frame_send(sink, FRAME_READY, "", 0);
}

/* Exit: the status tag, then the exit code or signal (0 for the others). */
static long
frame_exit(const struct frame_sink *sink, unsigned char tag,
    unsigned long value)
{
	unsigned char payload[5];

	payload[0] = tag;
	frame_put_u32(payload + 1, value);
	return frame_send(sink, FRAME_EXIT, payload, sizeof(payload));
}

static unsigned long
frame_text_len(const char *s)
{
	unsigned long n = 0;

	while (n < FRAME_TEXT_MAX && s[n] != '\0')
		n++;
	return n;
}

/* Failed: the step and why, each a u32 length and its bytes. */
static long
frame_failed(const struct frame_sink *sink, const char *step,
    const char *message)
{
	unsigned char payload[8 + 2 * FRAME_TEXT_MAX];
	unsigned long step_len = frame_text_len(step);
	unsigned long message_len = frame_text_len(message);
	unsigned char *p = payload;

	frame_put_u32(p, step_len);
	frame_copy(p + 4, (const unsigned char *)step, step_len);
	p += 4 + step_len;
	frame_put_u32(p, message_len);
	frame_copy(p + 4, (const unsigned char *)message, message_len);
	p += 4 + message_len;
	return frame_send(sink, FRAME_FAILED, payload,
	    (unsigned long)(p - payload));
}

#endif

/*
 * The frames the host sends on the channel, decoded as they arrive, in the
 * wire format of every vmlane guest (crates/proto, codec.rs):
 *   [kind: u8][length: u32 little-endian][payload]
 * Prepare: u64 wall clock (ns), entropy bytes (at most 512).
 * Run: argv list, env list, cwd bytes, share flag u8 (1: fstype, tag,
 *   options), rwdir count u32 (each: fstype, tag, options, target),
 *   input kind u8 (0 null, 1 pipe, 2 terminal: u16 rows, u16 cols).
 * Stdin: raw bytes. StdinClosed: nothing. WindowSize: u16 rows, u16 cols.
 * Bytes are u32 length + bytes; a list is u32 count + that many bytes.
 *
 * The bytes are untrusted: every length and count is checked against what
 * is left before it is used, and nothing is read or written outside the
 * caller's buffers. Free of system calls and libc, so
 * tests/host_frames.rs runs it on the host under AddressSanitizer against
 * vmlane's own encoder.
 */
#ifndef VMLANE_HOSTFRAME_H
#define VMLANE_HOSTFRAME_H

/* crates/proto/src/codec.rs: frame kinds a guest accepts from the host. */
#define HOST_RUN 1
#define HOST_STDIN 2
#define HOST_STDIN_CLOSED 3
#define HOST_WINDOW_SIZE 4
#define HOST_PREPARE 5

#define HOST_INPUT_NULL 0
#define HOST_INPUT_PIPE 1
#define HOST_INPUT_TERMINAL 2

#define HOST_HEADER 5
/* MAX_FRAME: the largest payload; the decoder's buffer holds one. */
#define HOST_FRAME_MAX (1UL << 20)
/* MAX_ENTROPY in crates/proto/src/message.rs. */
#define HOST_ENTROPY_MAX 512UL
/* Most argv and most env strings of a Run: RUN_MAX_STRINGS (runfile.h). */
#define HOST_MAX_STRINGS 65536UL

/* Why a frame was refused; the stream is unusable after it. */
enum host_error {
	HOST_OK = 0,
	HOST_TOO_LARGE,   /* a length over HOST_FRAME_MAX */
	HOST_UNKNOWN_KIND,
	HOST_MALFORMED,   /* the payload ends early or has bytes left over */
	HOST_TOO_MANY,    /* more strings than HOST_MAX_STRINGS */
	HOST_NUL,         /* a NUL inside a string that becomes a C string */
	HOST_BAD_TAG,     /* a share flag or input kind out of range */
	HOST_ENTROPY,     /* more than HOST_ENTROPY_MAX bytes of entropy */
};

/* One decoded frame other than Run's details (host_run_decode has those). */
struct host_message {
	unsigned char kind;
	/* Stdin: its bytes; Prepare: the entropy; Run: the whole payload. */
	const unsigned char *data;
	unsigned long len;
	unsigned long long wall_clock_ns; /* Prepare */
	unsigned short rows, cols;        /* WindowSize */
};

/* A frame being received; `buf` is the caller's, HOST_FRAME_MAX bytes. */
struct host_decoder {
	unsigned char *buf;
	unsigned char head[HOST_HEADER];
	unsigned long have; /* bytes of the current frame so far */
	unsigned long len;  /* its payload length, once the header is in */
	enum host_error error;
};

/* What host_feed() found. */
#define HOST_FEED_MORE 0
#define HOST_FEED_MESSAGE 1
#define HOST_FEED_FAILED (-1)

/* The Run request, its strings NUL-terminated in the caller's storage. */
struct host_run {
	char **argv; /* NULL-terminated; argc 0 asks for a login shell */
	char **env;  /* NULL-terminated */
	unsigned long argc, envc;
	const char *cwd;
	/* The share, or all NULL when there is none. */
	const char *fstype, *tag, *options;
	unsigned long rwdirs; /* writable directories, counted, not kept */
	unsigned char input;  /* HOST_INPUT_* */
	unsigned short rows, cols;
};

/* Text for "read the host's request (...)" failures. */
static const char *
host_error_text(enum host_error e)
{
	switch (e) {
	case HOST_OK: return "no error";
	case HOST_TOO_LARGE: return "a frame over 1 MiB";
	case HOST_UNKNOWN_KIND: return "an unknown frame kind";
	case HOST_MALFORMED: return "a payload that ends early or runs over";
	case HOST_TOO_MANY: return "more than 65536 strings";
	case HOST_NUL: return "a NUL inside a string";
	case HOST_BAD_TAG: return "a bad share flag or input kind";
	case HOST_ENTROPY: return "more than 512 bytes of entropy";
	}
	return "an unknown error";
}

static void
host_init(struct host_decoder *d, unsigned char *buf)
{
	d->buf = buf;
	d->have = 0;
	d->len = 0;
	d->error = HOST_OK;
}

static unsigned long
host_get_u32(const unsigned char *p)
{
	return (unsigned long)p[0] | (unsigned long)p[1] << 8 |
	    (unsigned long)p[2] << 16 | (unsigned long)p[3] << 24;
}

static unsigned short
host_get_u16(const unsigned char *p)
{
	return (unsigned short)(p[0] | p[1] << 8);
}

/* Known kinds are refused or taken as soon as their header is in. */
static int
host_kind_known(unsigned char kind)
{
	return kind >= HOST_RUN && kind <= HOST_PREPARE;
}

/* The fixed layouts; Run is left whole for host_run_decode(). */
static enum host_error
host_decode(unsigned char kind, const unsigned char *p, unsigned long len,
    struct host_message *m)
{
	unsigned long elen;

	m->kind = kind;
	m->data = p;
	m->len = len;
	switch (kind) {
	case HOST_PREPARE:
		if (len < 12)
			return HOST_MALFORMED;
		m->wall_clock_ns = (unsigned long long)host_get_u32(p) |
		    (unsigned long long)host_get_u32(p + 4) << 32;
		elen = host_get_u32(p + 8);
		if (elen != len - 12)
			return HOST_MALFORMED;
		if (elen > HOST_ENTROPY_MAX)
			return HOST_ENTROPY;
		m->data = p + 12;
		m->len = elen;
		return HOST_OK;
	case HOST_STDIN_CLOSED:
		return len == 0 ? HOST_OK : HOST_MALFORMED;
	case HOST_WINDOW_SIZE:
		if (len != 4)
			return HOST_MALFORMED;
		m->rows = host_get_u16(p);
		m->cols = host_get_u16(p + 2);
		return HOST_OK;
	case HOST_RUN:
	case HOST_STDIN:
		return HOST_OK;
	}
	return HOST_UNKNOWN_KIND;
}

static int
host_failed(struct host_decoder *d, enum host_error e)
{
	d->error = e;
	return HOST_FEED_FAILED;
}

/*
 * Takes bytes from p[0..n) until one frame is whole (HOST_FEED_MESSAGE,
 * *m valid until the next call), all were taken (HOST_FEED_MORE) or a
 * frame is refused (HOST_FEED_FAILED, d->error says why, for good).
 * *used is how many bytes were taken.
 */
static int
host_feed(struct host_decoder *d, const unsigned char *p, unsigned long n,
    unsigned long *used, struct host_message *m)
{
	unsigned long got, take;
	enum host_error e;

	*used = 0;
	if (d->error != HOST_OK)
		return HOST_FEED_FAILED;
	if (d->have < HOST_HEADER) {
		while (d->have < HOST_HEADER && *used < n)
			d->head[d->have++] = p[(*used)++];
		if (d->have < HOST_HEADER)
			return HOST_FEED_MORE;
		d->len = host_get_u32(d->head + 1);
		if (d->len > HOST_FRAME_MAX)
			return host_failed(d, HOST_TOO_LARGE);
		if (!host_kind_known(d->head[0]))
			return host_failed(d, HOST_UNKNOWN_KIND);
	}
	got = d->have - HOST_HEADER;
	take = d->len - got;
	if (take > n - *used)
		take = n - *used;
	for (; take > 0; take--)
		d->buf[got++] = p[(*used)++];
	d->have = HOST_HEADER + got;
	if (got < d->len)
		return HOST_FEED_MORE;
	d->have = 0;
	e = host_decode(d->head[0], d->buf, d->len, m);
	if (e != HOST_OK)
		return host_failed(d, e);
	return HOST_FEED_MESSAGE;
}

/* ---- the Run request ------------------------------------------------ */

/* A Run payload being read; strings are copied out to `out`. */
struct host_reader {
	const unsigned char *p;
	unsigned long left;
	char *out;
	enum host_error error; /* the first problem; later reads do nothing */
};

static const unsigned char *
host_take(struct host_reader *r, unsigned long n)
{
	const unsigned char *p = r->p;

	if (r->error != HOST_OK)
		return 0;
	if (n > r->left) {
		r->error = HOST_MALFORMED;
		return 0;
	}
	r->p += n;
	r->left -= n;
	return p;
}

static unsigned long
host_u32(struct host_reader *r)
{
	const unsigned char *p = host_take(r, 4);

	return p != 0 ? host_get_u32(p) : 0;
}

static unsigned short
host_u16(struct host_reader *r)
{
	const unsigned char *p = host_take(r, 2);

	return p != 0 ? host_get_u16(p) : 0;
}

static unsigned char
host_u8(struct host_reader *r)
{
	const unsigned char *p = host_take(r, 1);

	return p != 0 ? p[0] : 0;
}

/*
 * Bytes as a C string in r->out, which has room: each costs its 4-byte
 * length in the payload and only one NUL out. NULL on any problem.
 */
static const char *
host_string(struct host_reader *r)
{
	unsigned long n = host_u32(r), i;
	const unsigned char *p = host_take(r, n);
	char *s = r->out;

	if (p == 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (p[i] == '\0') {
			r->error = HOST_NUL;
			return 0;
		}
		s[i] = (char)p[i];
	}
	s[n] = '\0';
	r->out += n + 1;
	return s;
}

/* Bytes that are not kept. */
static void
host_skip(struct host_reader *r)
{
	host_take(r, host_u32(r));
}

/*
 * A list into `items` (room for HOST_MAX_STRINGS + 1), NULL-terminated;
 * its count, bounded before anything is stored.
 */
static unsigned long
host_list(struct host_reader *r, char **items)
{
	unsigned long count = host_u32(r), i;

	items[0] = 0;
	if (r->error != HOST_OK)
		return 0;
	if (count > HOST_MAX_STRINGS) {
		r->error = HOST_TOO_MANY;
		return 0;
	}
	if (count > r->left / 4) {
		r->error = HOST_MALFORMED;
		return 0;
	}
	for (i = 0; i < count; i++) {
		/* The cast drops const for execve's prototype only. */
		items[i] = (char *)host_string(r);
		if (items[i] == 0)
			return 0;
	}
	items[count] = 0;
	return count;
}

/*
 * Decodes a Run payload p[0..len) into *run. `strings` must have room for
 * `len` bytes, `argv` and `env` for HOST_MAX_STRINGS + 1 pointers each.
 */
static enum host_error
host_run_decode(const unsigned char *p, unsigned long len,
    struct host_run *run, char *strings, char **argv, char **env)
{
	struct host_reader r = { p, len, strings, HOST_OK };
	unsigned long i;
	unsigned char flag;

	run->argv = argv;
	run->env = env;
	run->argc = host_list(&r, argv);
	run->envc = host_list(&r, env);
	run->cwd = host_string(&r);
	run->fstype = run->tag = run->options = 0;
	flag = host_u8(&r);
	if (flag == 1) {
		run->fstype = host_string(&r);
		run->tag = host_string(&r);
		run->options = host_string(&r);
	} else if (flag != 0 && r.error == HOST_OK) {
		r.error = HOST_BAD_TAG;
	}
	/* Each costs at least its four 4-byte lengths. */
	run->rwdirs = host_u32(&r);
	if (r.error == HOST_OK && run->rwdirs > r.left / 16)
		r.error = HOST_MALFORMED;
	for (i = 0; r.error == HOST_OK && i < run->rwdirs; i++) {
		host_skip(&r);
		host_skip(&r);
		host_skip(&r);
		host_skip(&r);
	}
	run->input = host_u8(&r);
	run->rows = run->cols = 0;
	if (run->input == HOST_INPUT_TERMINAL) {
		run->rows = host_u16(&r);
		run->cols = host_u16(&r);
	} else if (run->input > HOST_INPUT_TERMINAL && r.error == HOST_OK) {
		r.error = HOST_BAD_TAG;
	}
	if (r.error == HOST_OK && r.left != 0)
		r.error = HOST_MALFORMED;
	return r.error;
}

#endif

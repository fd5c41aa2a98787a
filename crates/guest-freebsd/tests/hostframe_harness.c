/*
 * Host-side driver for init/hostframe.h, used by tests/host_frames.rs.
 *
 * Reads records from stdin: u32 little-endian chunk size, u32 length, then
 * that many bytes, a stream of host frames. Each is fed to a fresh decoder
 * in pieces of the chunk size, from a heap copy of exactly each piece, so
 * AddressSanitizer catches any read past what was given; a Run payload is
 * decoded into a string buffer of exactly its length. Prints a line per
 * frame, hex for bytes:
 *   "prepare <ns> <entropy>", "stdin <bytes>", "closed",
 *   "winsize <rows> <cols>", "run <argc> <envc> <input> <rows> <cols>
 *   <rwdirs>" followed by "a <arg>" lines, "e <var>" lines, "c <cwd>" and
 *   "s <fstype> <tag> <options>" or "s -";
 * "error <enum host_error>" for a refused frame, which ends the record,
 * and last "end <1 when a frame was left partial, else 0>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../init/hostframe.h"

static char *argv_buf[HOST_MAX_STRINGS + 1];
static char *env_buf[HOST_MAX_STRINGS + 1];

static void
hex(const void *p, unsigned long n)
{
	const unsigned char *b = p;
	unsigned long i;

	for (i = 0; i < n; i++)
		printf("%02x", b[i]);
}

static void
hex_line(const char *tag, const char *s)
{
	printf("%s ", tag);
	hex(s, strlen(s));
	putchar('\n');
}

/* Prints a Run request; its error when it is refused. */
static int
print_run(const struct host_message *m)
{
	struct host_run r;
	char *strings = malloc(m->len ? m->len : 1);
	enum host_error e;
	unsigned long i;

	if (strings == NULL)
		exit(2);
	e = host_run_decode(m->data, m->len, &r, strings, argv_buf, env_buf);
	if (e != HOST_OK) {
		free(strings);
		printf("error %d\n", (int)e);
		return 0;
	}
	if (r.argv[r.argc] != NULL || r.env[r.envc] != NULL)
		exit(3);
	printf("run %lu %lu %u %u %u %lu\n", r.argc, r.envc, r.input, r.rows,
	    r.cols, r.rwdirs);
	for (i = 0; i < r.argc; i++)
		hex_line("a", r.argv[i]);
	for (i = 0; i < r.envc; i++)
		hex_line("e", r.env[i]);
	hex_line("c", r.cwd);
	if (r.fstype == NULL) {
		printf("s -\n");
	} else {
		printf("s ");
		hex(r.fstype, strlen(r.fstype));
		putchar(' ');
		hex(r.tag, strlen(r.tag));
		putchar(' ');
		hex(r.options, strlen(r.options));
		putchar('\n');
	}
	free(strings);
	return 1;
}

/* Prints one decoded frame; 0 when it is refused after all. */
static int
print_message(const struct host_message *m)
{
	switch (m->kind) {
	case HOST_PREPARE:
		printf("prepare %llu ", m->wall_clock_ns);
		hex(m->data, m->len);
		putchar('\n');
		return 1;
	case HOST_STDIN:
		printf("stdin ");
		hex(m->data, m->len);
		putchar('\n');
		return 1;
	case HOST_STDIN_CLOSED:
		printf("closed\n");
		return 1;
	case HOST_WINDOW_SIZE:
		printf("winsize %u %u\n", m->rows, m->cols);
		return 1;
	case HOST_RUN:
		return print_run(m);
	}
	exit(4);
}

/* Feeds one piece; 0 once the stream is refused. */
static int
feed(struct host_decoder *d, const unsigned char *piece, unsigned long n)
{
	struct host_message m;
	unsigned long off = 0, used;
	int r;

	while (off < n) {
		r = host_feed(d, piece + off, n - off, &used, &m);
		off += used;
		if (r == HOST_FEED_FAILED) {
			/* Every error has its words for the Failed frame. */
			if (host_error_text(d->error)[0] == '\0')
				exit(6);
			printf("error %d\n", (int)d->error);
			return 0;
		}
		if (r == HOST_FEED_MESSAGE && !print_message(&m))
			return 0;
		if (r == HOST_FEED_MORE && off != n)
			exit(5);
	}
	return 1;
}

static unsigned long
read_u32(void)
{
	unsigned char b[4];

	if (fread(b, 1, 4, stdin) != 4)
		return (unsigned long)-1;
	return (unsigned long)b[0] | (unsigned long)b[1] << 8 |
	    (unsigned long)b[2] << 16 | (unsigned long)b[3] << 24;
}

int
main(void)
{
	unsigned char *frame = malloc(HOST_FRAME_MAX);
	unsigned long chunk, len, off, n;
	struct host_decoder d;

	if (frame == NULL)
		return 2;
	while ((chunk = read_u32()) != (unsigned long)-1) {
		unsigned char *data;
		int alive = 1;

		len = read_u32();
		data = malloc(len ? len : 1);
		if (chunk == 0 || data == NULL || fread(data, 1, len, stdin) != len)
			return 2;
		host_init(&d, frame);
		for (off = 0; alive && off < len; off += n) {
			unsigned char *piece;

			n = len - off < chunk ? len - off : chunk;
			piece = malloc(n);
			if (piece == NULL)
				return 2;
			memcpy(piece, data + off, n);
			alive = feed(&d, piece, n);
			free(piece);
		}
		printf("end %d\n", alive && d.have != 0);
		free(data);
	}
	free(frame);
	return ferror(stdin) ? 2 : 0;
}

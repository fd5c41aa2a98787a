/*
 * What both test kernels share; see common.h. Functions that show up in a backtrace are
 * global and never inlined, so the native kernel's backtrace walks real frames.
 */

#include "common.h"
/* vmlane's FreeBSD init's framing: these kernels send what the init sends. */
#include "frame.h"

#define NOINLINE __attribute__((noinline))

/* A FreeBSD kernel's version string, which tools read its release from (`uname -r`). */
__attribute__((used)) static const char version[] =
	"@(#)FreeBSD 15.0-VMLANE vmlane-testkernel\n";

/* ---- the serial ports: 16550s at COM1 (the console) and COM2 (the channel), polled ---- */

#define COM1 0x3f8
#define COM2 0x2f8
#define LSR_DR 0x01   /* a byte has arrived */
#define LSR_THRE 0x20 /* room for another byte */
#define LSR_TEMT 0x40 /* everything sent */

static inline void outb(u16 port, u8 value)
{
	__asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline u8 inb(u16 port)
{
	u8 value;
	__asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
	return value;
}

static void uart_init(u16 base)
{
	outb(base + 1, 0x00); /* no interrupts */
	outb(base + 3, 0x80); /* divisor latch on */
	outb(base + 0, 0x01); /* 115200 baud */
	outb(base + 1, 0x00);
	outb(base + 3, 0x03); /* 8N1, divisor latch off */
	outb(base + 2, 0x07); /* FIFOs on and cleared */
	outb(base + 4, 0x03); /* DTR, RTS */
}

/* A missing UART reads as 0xff, so these never spin forever. */
static void uart_put(u16 base, u8 c)
{
	while (!(inb(base + 5) & LSR_THRE))
		;
	outb(base, c);
}

/* Waits for the next byte received; a missing UART reads as 0xff, a byte always there. */
static u8 uart_get(u16 base)
{
	while (!(inb(base + 5) & LSR_DR))
		;
	return inb(base);
}

static void uart_drain(u16 base)
{
	while (!(inb(base + 5) & LSR_TEMT))
		;
}

void serial_init(void)
{
	uart_init(COM1);
}

void put_char(char c)
{
	uart_put(COM1, (u8)c);
}

/* Whether the run gave COM2 and this kernel sends its results there. */
static int channel;

static void serial_drain(void)
{
	uart_drain(COM1);
	if (channel)
		uart_drain(COM2);
}

static long com2_write(void *ctx, const void *buf, unsigned long len)
{
	const u8 *p = buf;
	(void)ctx;
	for (unsigned long i = 0; i < len; i++)
		uart_put(COM2, p[i]);
	return (long)len;
}

static const struct frame_sink com2 = {com2_write, 0};

/* ---- frames from the host on COM2, read as they are parsed: no payload is buffered ---- */

/* crates/proto/src/codec.rs: the frames the host sends, and the guest's Ready that opens them. */
#define HOST_RUN 1
#define HOST_STDIN 2
#define HOST_STDIN_CLOSED 3
#define HOST_WINDOW_SIZE 4
#define HOST_PREPARE 5
#ifndef FRAME_READY
#define FRAME_READY 21
#endif
#define INPUT_NULL 0
#define INPUT_PIPE 1
#define INPUT_TERMINAL 2

/* One frame from the host: its kind, how much of its payload is still unread, whether it broke. */
struct incoming {
	u8 kind;
	u32 left;
	int bad; /* a field ran past the payload's end, or held a value the codec refuses */
};

/* Reads a frame's header; its payload stays on the UART for the take_ functions. */
static struct incoming next_frame(void)
{
	struct incoming f = {uart_get(COM2), 0, 0};
	for (int i = 0; i < 4; i++)
		f.left |= (u32)uart_get(COM2) << (8 * i);
	return f;
}

/* The payload's next byte; past its end, 0 and the frame is bad, so nothing past it is read. */
static u8 take_u8(struct incoming *f)
{
	if (!f->left) {
		f->bad = 1;
		return 0;
	}
	f->left--;
	return uart_get(COM2);
}

/* A little-endian number of `bytes` bytes (at most 4). */
static u32 take_le(struct incoming *f, int bytes)
{
	u32 v = 0;
	for (int i = 0; i < bytes; i++)
		v |= (u32)take_u8(f) << (8 * i);
	return v;
}

static u64 take_u64(struct incoming *f)
{
	u64 low = take_le(f, 4);
	return low | (u64)take_le(f, 4) << 32;
}

/* Up to `n` payload bytes, dropped; a length beyond the payload makes the frame bad. */
static void skip_bytes(struct incoming *f, u32 n)
{
	if (n > f->left) {
		f->bad = 1;
		n = f->left;
	}
	while (n--)
		take_u8(f);
}

static void skip_rest(struct incoming *f)
{
	skip_bytes(f, f->left);
}

/* `count` length-prefixed strings, dropped. Each costs 4 bytes, so a bad count stops early. */
static void skip_strings(struct incoming *f, u32 count)
{
	for (u32 i = 0; i < count && !f->bad; i++)
		skip_bytes(f, take_le(f, 4));
}

/* ---- output ---- */

void print(const char *s)
{
	while (*s)
		put_char(*s++);
}

void print_str(struct str s)
{
	for (usize i = 0; i < s.n; i++)
		put_char(s.p[i]);
}

void print_hex(u64 v)
{
	int shift = 60;
	print("0x");
	while (shift > 0 && ((v >> shift) & 0xf) == 0)
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		put_char("0123456789abcdef"[(v >> shift) & 0xf]);
}

/* v's decimal digits, least significant first; returns how many. */
static int dec_digits(u32 v, char digits[10])
{
	int n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return n;
}

void print_dec_width(u32 v, int width)
{
	char digits[10];
	int n = dec_digits(v, digits);
	for (; width > n; width--)
		put_char('0');
	while (n)
		put_char(digits[--n]);
}

void print_dec(u32 v)
{
	print_dec_width(v, 1);
}

void reset(void)
{
	serial_drain();
	vmlane_reset();
}

void hang(void)
{
	serial_drain();
	vmlane_hang();
}

/* ---- words ---- */

struct str str_from(const char *s, usize max)
{
	struct str out = {s, 0};
	while (out.n < max && s[out.n])
		out.n++;
	return out;
}

int strip_prefix(struct str s, const char *prefix, struct str *rest)
{
	usize i = 0;
	for (; prefix[i]; i++)
		if (i >= s.n || s.p[i] != prefix[i])
			return 0;
	rest->p = s.p + i;
	rest->n = s.n - i;
	return 1;
}

int equals(struct str s, const char *text)
{
	struct str rest;
	return strip_prefix(s, text, &rest) && rest.n == 0;
}

int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return 99;
}

int take_number(struct str *s, u32 base, u64 *out)
{
	usize i = 0, first;
	u64 v = 0;
	if (base == 0) {
		base = 10;
		if (s->n >= 3 && s->p[0] == '0' && (s->p[1] | 0x20) == 'x' &&
		    digit_value(s->p[2]) < 16) {
			base = 16;
			i = 2;
		} else if (s->n >= 1 && s->p[0] == '0') {
			base = 8;
		}
	}
	first = i;
	for (; i < s->n && (u32)digit_value(s->p[i]) < base; i++)
		v = v * base + (u32)digit_value(s->p[i]);
	if (i == first)
		return 0;
	s->p += i;
	s->n -= i;
	*out = v;
	return 1;
}

int parse_u32(struct str s, u32 *out)
{
	u64 v;
	if (!take_number(&s, 10, &v) || s.n || v > 0xffffffffu)
		return 0;
	*out = (u32)v;
	return 1;
}

/* ---- the actions: what vmlane's FreeBSD guest init, or FreeBSD itself, would print ---- */

/* The run's token, in every result line. */
static struct str token;

/* A result line, as vmlane's FreeBSD init prints it: on a line of its own. */
static void result(const char *what)
{
	print("\nvmlane:");
	print_str(token);
	print(":");
	print(what);
}

/* The "command" writes to its stdout or stderr: frames on the channel, else the console. */
static void command_writes(u8 kind, const char *data, usize n)
{
	if (channel) {
		frame_output(&com2, kind, data, n);
		return;
	}
	for (usize i = 0; i < n; i++)
		put_char(data[i]);
}

static void command_prints(u8 kind, const char *text)
{
	command_writes(kind, text, str_from(text, 65536).n);
}

/* How the "command" ended: an Exit frame on the channel, else the init's result line. */
__attribute__((noreturn)) static void command_ends(u8 tag, u32 value)
{
	if (channel) {
		frame_exit(&com2, tag, value);
		reset();
	}
	switch (tag) {
	case FRAME_EXITED:
		result("exit ");
		print_dec(value);
		break;
	case FRAME_SIGNALED:
		result("signal ");
		print_dec(value);
		break;
	case FRAME_NOT_FOUND:
		result("notfound");
		break;
	default:
		result("noexec");
		break;
	}
	print("\n");
	reset();
}

/* `s` with underscores as spaces, NUL-terminated in `buf` (cut to fit). */
static const char *spaced(struct str s, char *buf, usize size)
{
	usize n = 0;
	for (; n < s.n && n + 1 < size; n++)
		buf[n] = s.p[n] == '_' ? ' ' : s.p[n];
	buf[n] = '\0';
	return buf;
}

/*
 * The init's step `step` failed: a Failed frame once the channel is open, and the console
 * line either way, as the init reports it.
 */
__attribute__((noreturn)) static void step_fails(struct str step, const char *why, int channel_open)
{
	char text[128];
	spaced(step, text, sizeof text);
	if (channel && channel_open)
		frame_failed(&com2, text, why);
	result("failed ");
	print(text);
	print(": ");
	print(why);
	print("\n");
	reset();
}

/* FreeBSD's panic(): the report, then the debugger or a reset. */
NOINLINE __attribute__((noreturn)) void vmlane_panic(struct str message, int debugger)
{
	print("panic: ");
	for (usize i = 0; i < message.n; i++)
		put_char(message.p[i] == '_' ? ' ' : message.p[i]);
	print("\ncpuid = 0\ntime = 1\n");
	print("KDB: stack backtrace:\n");
	vmlane_backtrace();
	print("Uptime: 1s\n");
	if (debugger) {
		print("KDB: enter: panic\n"
		      "[ thread pid 1 tid 100001 ]\n"
		      "Stopped at      kdb_enter+0x33: movq    $0,0xde0f8a(%rip)\n"
		      "db> ");
		hang();
	}
	print("Automatic reboot in 0 seconds - press a key on the console to abort\n");
	reset();
}

/* What calls panic(): `vmlane_test.action=panic:MESSAGE`, underscores for spaces. */
NOINLINE __attribute__((noreturn)) void vmlane_test_panic(struct str message, int debugger)
{
	vmlane_panic(message, debugger);
}

NOINLINE __attribute__((noreturn)) void vmlane_test_trap(void)
{
	print("Fatal trap 12: page fault while in kernel mode\n"
	      "cpuid = 0; apic id = 00\n"
	      "fault virtual address   = 0x0\n"
	      "fault code              = supervisor read data, page not present\n"
	      "instruction pointer     = 0x20:0xffffffff80f6a3c1\n"
	      "panic: page fault\n"
	      "KDB: stack backtrace:\n");
	vmlane_backtrace();
	reset();
}

__attribute__((noreturn)) static void act_flood(void)
{
	char line[16] = "flood 00000000\n";
	result("start\n");
	for (u32 n = 0;; n = (n + 1) % 100000000) {
		for (u32 i = 0, v = n; i < 8; i++, v /= 10)
			line[13 - i] = (char)('0' + v % 10);
		command_writes(FRAME_STDOUT, line, 15);
	}
}

/*
 * Stdout and stderr in turns, a kernel message on the console between them, and bytes a line
 * discipline would change: what must reach the host apart and exact.
 */
__attribute__((noreturn)) static void act_streams(void)
{
	static const char odd[] = {'\0', (char)0xff, '\r', '\n', '\t', 'e', 'n', 'd'};
	result("start\n");
	command_prints(FRAME_STDOUT, "out 1\n");
	command_prints(FRAME_STDERR, "err 1\n");
	print("pid 15 (sleep), jid 0, uid 0: exited on signal 6 (core dumped)\n");
	command_writes(FRAME_STDOUT, odd, sizeof odd);
	command_prints(FRAME_STDERR, "err 2, no newline");
	command_ends(FRAME_EXITED, 0);
}

/* `n` bytes whose values follow a pattern the host checks: byte i is (i * 7 + i / 251) % 256. */
__attribute__((noreturn)) static void act_big(u32 n)
{
	char chunk[1000];
	result("start\n");
	for (u32 done = 0; done < n;) {
		u32 size = n - done < sizeof chunk ? n - done : sizeof chunk;
		for (u32 i = 0; i < size; i++)
			chunk[i] = (char)((done + i) * 7 + (done + i) / 251);
		command_writes(FRAME_STDOUT, chunk, size);
		done += size;
	}
	command_ends(FRAME_EXITED, 0);
}

/* A line the "command" writes, built as the host's frame is read; what does not fit is cut. */
struct reply {
	char text[1024];
	usize n;
};

static void reply_byte(struct reply *r, char c)
{
	if (r->n < sizeof r->text)
		r->text[r->n++] = c;
}

static void reply_text(struct reply *r, const char *s)
{
	while (*s)
		reply_byte(r, *s++);
}

static void reply_dec(struct reply *r, u32 v)
{
	char digits[10];
	int n = dec_digits(v, digits);
	while (n)
		reply_byte(r, digits[--n]);
}

/* A length-prefixed string from the frame, into the reply. */
static void take_string(struct incoming *f, struct reply *r)
{
	u32 n = take_le(f, 4);
	if (n > f->left) {
		f->bad = 1;
		return;
	}
	while (n--)
		reply_byte(r, (char)take_u8(f));
}

/* A broken frame from the host ends the run as the init would: a Failed frame and its line. */
__attribute__((noreturn)) static void request_broken(const char *why)
{
	step_fails(str_from("read_the_host's_frames", 64), why, 1);
}

/* Whole seconds in `ns`, by long division: the PVH kernel's 32-bit code has no 64-bit divide. */
static u32 whole_seconds(u64 ns)
{
	u64 q = 0, r = 0;
	for (int i = 63; i >= 0; i--) {
		r = r << 1 | ((ns >> i) & 1);
		if (r >= 1000000000u) {
			r -= 1000000000u;
			q |= 1ull << i;
		}
	}
	return q > 0xffffffffu ? 0xffffffffu : (u32)q;
}

/* Prepare (u64 wall clock ns, entropy bytes): the console says what came, as a check. */
static void report_prepare(struct incoming *f)
{
	u64 ns = take_u64(f);
	u32 entropy = take_le(f, 4);
	skip_bytes(f, entropy);
	if (f->bad || f->left)
		request_broken("a malformed Prepare frame");
	print("vmlane-test: prepare clock=");
	print_dec(whole_seconds(ns));
	print(" entropy=");
	print_dec(entropy);
	print("\n");
}

/*
 * Run: the "command" prints one line of its argv, cwd and input, the fields a test can check;
 * the environment and mounts are read past. Returns the input kind.
 */
static u8 report_run(struct incoming *f)
{
	struct reply r;
	u8 input;
	u32 argc = take_le(f, 4);

	r.n = 0;
	reply_text(&r, "argv=");
	for (u32 i = 0; i < argc && !f->bad; i++) {
		if (i)
			reply_byte(&r, ',');
		take_string(f, &r);
	}
	skip_strings(f, take_le(f, 4)); /* env */
	reply_text(&r, " cwd=");
	take_string(f, &r);
	switch (take_u8(f)) { /* the root share: none, or three strings */
	case 0:
		break;
	case 1:
		skip_strings(f, 3);
		break;
	default:
		f->bad = 1;
	}
	for (u32 dirs = take_le(f, 4), i = 0; i < dirs && !f->bad; i++)
		skip_strings(f, 4); /* a share's three strings and its target */
	reply_text(&r, " input=");
	input = take_u8(f);
	if (input == INPUT_NULL) {
		reply_text(&r, "null");
	} else if (input == INPUT_PIPE) {
		reply_text(&r, "pipe");
	} else if (input == INPUT_TERMINAL) {
		reply_text(&r, "terminal ");
		reply_dec(&r, take_le(f, 2));
		reply_byte(&r, 'x');
		reply_dec(&r, take_le(f, 2));
	} else {
		f->bad = 1;
	}
	if (f->bad || f->left)
		request_broken("a malformed Run frame");
	reply_byte(&r, '\n');
	command_writes(FRAME_STDOUT, r.text, r.n);
	return input;
}

/* Until the Run frame, reporting a Prepare and dropping anything else; the Run's input kind. */
static u8 await_run(void)
{
	for (;;) {
		struct incoming f = next_frame();
		if (f.kind == HOST_RUN)
			return report_run(&f);
		if (f.kind == HOST_PREPARE)
			report_prepare(&f);
		else
			skip_rest(&f);
	}
}

/*
 * Stdin comes straight back as Stdout, in chunks, so a frame of any size echoes whole. A Ctrl-C
 * ends the command as the terminal's SIGINT would: what came before it is echoed, not after.
 */
static void echo_stdin(struct incoming *f)
{
	char chunk[512];
	while (f->left) {
		usize n = 0;
		while (f->left && n < sizeof chunk) {
			char c = (char)take_u8(f);
			if (c == 0x03) {
				command_writes(FRAME_STDOUT, chunk, n);
				command_ends(FRAME_SIGNALED, 2);
			}
			chunk[n++] = c;
		}
		command_writes(FRAME_STDOUT, chunk, n);
	}
}

/* WindowSize (u16 rows, u16 cols): a Stdout line, so the host sees each resize arrive. */
static void report_window_size(struct incoming *f)
{
	struct reply r;
	u32 rows = take_le(f, 2), cols = take_le(f, 2);
	if (f->bad || f->left)
		request_broken("a malformed WindowSize frame");
	r.n = 0;
	reply_text(&r, "winsize ");
	reply_dec(&r, rows);
	reply_byte(&r, 'x');
	reply_dec(&r, cols);
	reply_byte(&r, '\n');
	command_writes(FRAME_STDOUT, r.text, r.n);
}

/*
 * `request`: as the init does once it has COM2, Ready, then the host's frames: Prepare and Run
 * reported, then Stdin echoed and resizes told until StdinClosed (exit 0) or a Ctrl-C (SIGINT).
 */
__attribute__((noreturn)) static void act_request(void)
{
	if (!channel) {
		print("vmlane-testkernel: action request needs the channel (hint.uart.1.port="
		      CHANNEL_PORT_HINT ")\n");
		reset();
	}
	if (inb(COM2 + 5) == 0xff) {
		print("vmlane-testkernel: action request: no UART at COM2\n");
		reset();
	}
	frame_send(&com2, FRAME_READY, 0, 0);
	result("start\n");
	if (await_run() == INPUT_NULL)
		command_ends(FRAME_EXITED, 0);
	for (;;) {
		struct incoming f = next_frame();
		if (f.kind == HOST_STDIN)
			echo_stdin(&f);
		else if (f.kind == HOST_WINDOW_SIZE)
			report_window_size(&f);
		else if (f.kind == HOST_STDIN_CLOSED)
			command_ends(FRAME_EXITED, 0);
		else
			skip_rest(&f);
	}
}

NOINLINE void vmlane_act(struct str run_token, struct str action, int debugger, int com2_given)
{
	struct str arg;
	u32 n;

	token = run_token;
	channel = com2_given;
	if (channel)
		uart_init(COM2);
	if (strip_prefix(action, "exit:", &arg) && parse_u32(arg, &n)) {
		result("start\n");
		command_prints(FRAME_STDOUT,
			       "hello from the test kernel\n"
			       "{\"kind\":\"probe\",\"status\":\"ok\",\"data\":{\"n\":1}}\n");
		command_ends(FRAME_EXITED, n);
	}
	if (strip_prefix(action, "signal:", &arg) && parse_u32(arg, &n)) {
		result("start\n");
		print("pid 14 (probe), jid 0, uid 0: exited on signal ");
		print_dec(n);
		print("\n");
		command_ends(FRAME_SIGNALED, n);
	}
	if (equals(action, "streams"))
		act_streams();
	if (strip_prefix(action, "big:", &arg) && parse_u32(arg, &n))
		act_big(n);
	if (equals(action, "notfound")) {
		result("start\n");
		command_ends(FRAME_NOT_FOUND, 0);
	}
	if (equals(action, "noexec")) {
		result("start\n");
		command_ends(FRAME_NOT_EXECUTABLE, 0);
	}
	/* A step before the channel is open, such as opening it: the console alone says so. */
	if (strip_prefix(action, "fail-early:", &arg))
		step_fails(arg, "errno 2 (ENOENT)", 0);
	/* A step after it, such as the fork. */
	if (strip_prefix(action, "fail:", &arg)) {
		result("start\n");
		step_fails(arg, "errno 35 (EAGAIN)", 1);
	}
	if (strip_prefix(action, "panic-mid:", &arg)) {
		result("start\n");
		command_prints(FRAME_STDOUT, "before the panic\n");
		vmlane_test_panic(arg, debugger);
	}
	if (strip_prefix(action, "panic:", &arg))
		vmlane_test_panic(arg, debugger);
	if (equals(action, "trap"))
		vmlane_test_trap();
	if (equals(action, "mountroot")) {
		print("Mounting from ufs:/dev/vtbd0 failed with error 19.\n"
		      "Loader variables:\n"
		      "  vfs.root.mountfrom=ufs:/dev/vtbd0\n"
		      "\n"
		      "mountroot> ");
		hang();
	}
	if (equals(action, "trap-hang")) {
		/* How a stock kernel at its PVH entry under TCG sometimes stops: mid-report. */
		print("Fatal trap 12: page fault while in kernel mode\n"
		      "cpuid = 0; apic id = 00\n"
		      "fault virtual address   = 0x0\n");
		hang();
	}
	if (equals(action, "hang"))
		hang();
	/* A deployed image's boot: rc's steps, a failure among them, its date line, getty. */
	if (equals(action, "multiuser")) {
		print("Trying to mount root from ufs:/dev/vtbd0 []...\r\n"
		      "Setting hostname: deploy.\r\n"
		      "mount: fdesc: Invalid fstype\r\n"
		      "Starting devd.\r\n"
		      "Starting sshd.\r\n"
		      "Sat Dec  5 10:00:00 UTC 2026\r\n"
		      "\r\n"
		      "FreeBSD/amd64 (deploy) (ttyu0)\r\n"
		      "\r\n"
		      "login: ");
		hang();
	}
	/* An rc that stops at a step and falls back to single-user mode. */
	if (equals(action, "single-user")) {
		print("Trying to mount root from ufs:/dev/vtbd0 []...\n"
		      "Starting file system checks:\n"
		      "/dev/vtbd0: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.\n"
		      "Enter full pathname of shell or RETURN for /bin/sh: ");
		hang();
	}
	if (equals(action, "flood"))
		act_flood();
	if (equals(action, "request"))
		act_request();
	print("vmlane-testkernel: unknown action ");
	print_str(action);
	print("\n");
	reset();
}

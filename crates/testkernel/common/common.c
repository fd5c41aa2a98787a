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

void print_dec_width(u32 v, int width)
{
	char digits[10];
	int n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
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
	if (equals(action, "flood"))
		act_flood();
	print("vmlane-testkernel: unknown action ");
	print_str(action);
	print("\n");
	reset();
}

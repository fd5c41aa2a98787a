/*
 * What both test kernels share; see common.h. Functions that show up in a backtrace are
 * global and never inlined, so the native kernel's backtrace walks real frames.
 */

#include "common.h"

#define NOINLINE __attribute__((noinline))

/* A FreeBSD kernel's version string, which tools read its release from (`uname -r`). */
__attribute__((used)) static const char version[] =
	"@(#)FreeBSD 15.0-VMLANE vmlane-testkernel\n";

/* ---- the serial port: a 16550 at COM1, polled ---- */

#define COM1 0x3f8
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

void serial_init(void)
{
	outb(COM1 + 1, 0x00); /* no interrupts */
	outb(COM1 + 3, 0x80); /* divisor latch on */
	outb(COM1 + 0, 0x01); /* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1, divisor latch off */
	outb(COM1 + 2, 0x07); /* FIFOs on and cleared */
	outb(COM1 + 4, 0x03); /* DTR, RTS */
}

/* A missing UART reads as 0xff, so these never spin forever. */
void put_char(char c)
{
	while (!(inb(COM1 + 5) & LSR_THRE))
		;
	outb(COM1, (u8)c);
}

static void serial_drain(void)
{
	while (!(inb(COM1 + 5) & LSR_TEMT))
		;
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

/* A result line, as vmlane's FreeBSD init prints it: on a line of its own. */
static void result(struct str token, const char *what)
{
	print("\nvmlane:");
	print_str(token);
	print(":");
	print(what);
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

__attribute__((noreturn)) static void act_flood(struct str token)
{
	result(token, "start\n");
	for (u32 n = 0;; n = (n + 1) % 100000000) {
		print("flood ");
		print_dec_width(n, 8);
		print("\n");
	}
}

NOINLINE void vmlane_act(struct str token, struct str action, int debugger)
{
	struct str arg;
	u32 n;

	if (strip_prefix(action, "exit:", &arg) && parse_u32(arg, &n)) {
		result(token, "start\n");
		print("hello from the test kernel\n"
		      "{\"kind\":\"probe\",\"status\":\"ok\",\"data\":{\"n\":1}}\n");
		result(token, "exit ");
		print_dec(n);
		print("\n");
		reset();
	}
	if (strip_prefix(action, "signal:", &arg) && parse_u32(arg, &n)) {
		result(token, "start\n");
		result(token, "signal ");
		print_dec(n);
		print("\n");
		reset();
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
		act_flood(token);
	print("vmlane-testkernel: unknown action ");
	print_str(action);
	print("\n");
	reset();
}

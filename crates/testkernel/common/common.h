/*
 * What both test kernels share: the serial port, number printing, parsing of words, and the
 * actions (`vmlane_test.action=`). common.c is compiled for each kernel's own target.
 */
#ifndef VMLANE_TESTKERNEL_COMMON_H
#define VMLANE_TESTKERNEL_COMMON_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned long usize;

/* A string that need not be NUL-terminated where it ends. */
struct str {
	const char *p;
	usize n;
};

/* entry.S of each kernel */
__attribute__((noreturn)) void vmlane_reset(void);
__attribute__((noreturn)) void vmlane_hang(void);

/* Each kernel's own: the frames of `KDB: stack backtrace:`, one `#N ...` line each. */
void vmlane_backtrace(void);

/* The serial port: a 16550 at COM1, polled. */
void serial_init(void);
void put_char(char c);

void print(const char *s);
void print_str(struct str s);
void print_hex(u64 v);
/* At least `width` digits, zero-padded. */
void print_dec_width(u32 v, int width);
void print_dec(u32 v);

/* Ends the VM (a triple fault) once the UART has sent everything. */
__attribute__((noreturn)) void reset(void);
/* Stops for good once the UART has sent everything. */
__attribute__((noreturn)) void hang(void);

/* A NUL-terminated string, at most `max` bytes of it. */
struct str str_from(const char *s, usize max);
/* Whether `s` starts with `prefix`; if so, `rest` is what follows it. */
int strip_prefix(struct str s, const char *prefix, struct str *rest);
int equals(struct str s, const char *text);
int digit_value(char c);
/*
 * Takes an unsigned number off the front of *s: in `base`, or for base 0 as C writes it
 * (0x hex, 0 octal, else decimal), as Linux's simple_strtoull reads it. 0 if there is none.
 */
int take_number(struct str *s, u32 base, u64 *out);
/* A whole decimal word that fits 32 bits, such as an exit status. */
int parse_u32(struct str s, u32 *out);

/* The value of the `hint.uart.1.port` vmlane gives a run whose results come on COM2. */
#define CHANNEL_PORT_HINT "0x2F8"

/*
 * Does what `action` says, printing what vmlane's FreeBSD guest init (or a panicking FreeBSD)
 * would, with result lines under `token`; a panic stops at the debugger if `debugger`. With
 * `channel` (the run gave COM2), the "command's" output and status go there as frames, the
 * way the init sends them, and the console keeps only what the kernel and the init print.
 * The `request` action also reads the host's frames there, as the init does once it is Ready.
 */
__attribute__((noreturn)) void vmlane_act(struct str token, struct str action, int debugger,
					  int channel);

/* A panic goes vmlane_act -> vmlane_test_panic -> vmlane_panic (FreeBSD's panic()). */
__attribute__((noreturn)) void vmlane_test_panic(struct str message, int debugger);
__attribute__((noreturn)) void vmlane_panic(struct str message, int debugger);
__attribute__((noreturn)) void vmlane_test_trap(void);

#endif

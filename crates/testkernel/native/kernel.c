/*
 * vmlane's native test kernel: entered at btext the way FreeBSD's own loader enters an amd64
 * kernel. It prints every piece of the loader's metadata on the serial port, checks the symbol
 * table it was handed (and names its panic backtrace from it), then does what the environment's
 * `vmlane_test.action` asks, as the PVH test kernel does (on COM2 when the environment gives
 * `hint.uart.1.port`).
 *
 * Physical addresses below 1 GB are read at KERNBASE + address, through the loader's tables.
 */

#include "common.h"

#define KERNBASE 0xffffffff80000000ull
/* How much physical memory the loader's page tables map. */
#define MAPPED 0x40000000ull

/* sys/sys/linker.h and sys/x86/include/metadata.h */
#define MODINFO_NAME 0x0001
#define MODINFO_TYPE 0x0002
#define MODINFO_ADDR 0x0003
#define MODINFO_SIZE 0x0004
#define MODINFO_ARGS 0x0006
#define MODINFO_METADATA 0x8000
#define MODINFOMD_SSYM 0x0003
#define MODINFOMD_ESYM 0x0004
#define MODINFOMD_ENVP 0x0006
#define MODINFOMD_HOWTO 0x0007
#define MODINFOMD_KERNEND 0x0008
#define MODINFOMD_SMAP 0x1001

/* More than any loader writes: walks stop here rather than run through memory. */
#define METADATA_MAX 0x100000ull
#define ENV_MAX 0x10000ull
#define SMAP_ENTRY 20
#define ELF64_SYM 24
#define STT_FUNC 2
#define BACKTRACE_MAX 16

/* entry.S */
void btext(void);
extern char stack[], stack_top[];

void kmain(u32 modulep, u32 kernend);

/* In .data, so a loader that leaves out the data segment shows at once. */
static char prefix[] = "vmlane-testkernel: ";

/* ---- physical memory ---- */

static int mapped(u64 pa, u64 len)
{
	return pa < MAPPED && len <= MAPPED - pa;
}

static const char *phys(u64 pa)
{
	return (const char *)(usize)(KERNBASE + pa);
}

static u32 load32(const char *p)
{
	u32 v;
	__builtin_memcpy(&v, p, sizeof v);
	return v;
}

static u64 load64(const char *p)
{
	u64 v;
	__builtin_memcpy(&v, p, sizeof v);
	return v;
}

static u64 roundup8(u64 n)
{
	return (n + 7) & ~7ull;
}

/* ---- the metadata records ---- */

struct record {
	u64 at; /* physical */
	u32 type;
	u32 size;
	const char *data;
};

struct cursor {
	u64 at;
	u64 end;
	const char *error;
};

static struct cursor records_at(u64 pa)
{
	struct cursor c = {pa, pa, 0};
	if (!mapped(pa, 8))
		c.error = "beyond the first 1 GB";
	else
		c.end = mapped(pa, METADATA_MAX) ? pa + METADATA_MAX : MAPPED;
	return c;
}

/* 1 with the next record, 0 at the end record, -1 if the list is broken (c->error says how). */
static int next_record(struct cursor *c, struct record *r)
{
	if (c->error)
		return -1;
	if (c->end - c->at < 8) {
		c->error = "no end record";
		return -1;
	}
	r->at = c->at;
	r->type = load32(phys(c->at));
	r->size = load32(phys(c->at + 4));
	if (r->type == 0 && r->size == 0)
		return 0;
	if (r->size > c->end - c->at - 8) {
		c->error = "a record runs past the end";
		return -1;
	}
	r->data = phys(c->at + 8);
	c->at += 8 + roundup8(r->size);
	if (c->at > c->end)
		c->at = c->end;
	return 1;
}

static struct str record_str(const struct record *r)
{
	return str_from(r->data, r->size);
}

static void print_broken(const struct cursor *c)
{
	print(prefix);
	print("metadata: corrupt at ");
	print_hex(c->at);
	print(": ");
	print(c->error);
	print("\n");
}

/* A number the kernel reads from a record of a known size. */
struct field {
	int state; /* 0 absent, 1 read, 2 of the wrong size */
	u32 size;
	u64 value;
};

static void take_field(struct field *f, const struct record *r, u32 size)
{
	if (f->state)
		return; /* the first one counts, as in preload_search_info */
	f->size = r->size;
	if (r->size != size) {
		f->state = 2;
		return;
	}
	f->state = 1;
	f->value = size == 8 ? load64(r->data) : load32(r->data);
}

static void print_field(const struct field *f)
{
	if (f->state == 1) {
		print_hex(f->value);
	} else if (f->state == 0) {
		print("none");
	} else {
		print("bad-size-");
		print_dec(f->size);
	}
}

/* ---- modules ---- */

struct module {
	struct str name;
	struct str type;
	struct str args;
	int has_type;
	int has_args;
	struct field addr;
	struct field size;
};

static void print_module(const struct module *m)
{
	print(prefix);
	print("module: name=");
	print_str(m->name);
	print(" type=");
	if (m->has_type)
		print_str(m->type);
	else
		print("none");
	print(" addr=");
	print_field(&m->addr);
	print(" size=");
	print_field(&m->size);
	if (m->has_args) {
		print(" args=");
		print_str(m->args);
	}
	print("\n");
}

/* Prints every module; returns where the `elf kernel` module's records start, 0 if nowhere. */
static u64 report_modules(u64 modulep)
{
	struct cursor c = records_at(modulep);
	struct module m = {{0, 0}, {0, 0}, {0, 0}, 0, 0, {0, 0, 0}, {0, 0, 0}};
	struct record r;
	u64 module_at = 0, kernel_at = 0;
	int found, in_module = 0;

	while ((found = next_record(&c, &r)) > 0) {
		if (r.type == MODINFO_NAME) {
			if (in_module)
				print_module(&m);
			m = (struct module){record_str(&r), {0, 0}, {0, 0}, 0, 0, {0, 0, 0}, {0, 0, 0}};
			module_at = r.at;
			in_module = 1;
			continue;
		}
		if (!in_module) {
			print(prefix);
			print("metadata: record type=");
			print_hex(r.type);
			print(" before any module name\n");
			continue;
		}
		switch (r.type) {
		case MODINFO_TYPE:
			if (!m.has_type) {
				m.type = record_str(&r);
				m.has_type = 1;
				if (!kernel_at && equals(m.type, "elf kernel"))
					kernel_at = module_at;
			}
			break;
		case MODINFO_ADDR:
			take_field(&m.addr, &r, 8);
			break;
		case MODINFO_SIZE:
			take_field(&m.size, &r, 8);
			break;
		case MODINFO_ARGS:
			if (!m.has_args) {
				m.args = record_str(&r);
				m.has_args = 1;
			}
			break;
		}
	}
	if (in_module)
		print_module(&m);
	if (found < 0)
		print_broken(&c);
	return kernel_at;
}

/* ---- the kernel's own metadata ---- */

struct kernel_info {
	struct field howto;
	struct field ssym;
	struct field esym;
	struct field kernend;
	struct field envp;
	int has_smap;
	u64 smap_at; /* physical */
	u32 smap_size;
};

/* The kernel module's metadata: from its name record up to the next module's. */
static struct kernel_info read_kernel_info(u64 kernel_at)
{
	struct kernel_info k = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}, 0, 0, 0};
	struct cursor c;
	struct record r;
	int first = 1;

	if (!kernel_at)
		return k;
	c = records_at(kernel_at);
	while (next_record(&c, &r) > 0) {
		if (r.type == MODINFO_NAME && !first)
			break;
		first = 0;
		switch (r.type) {
		case MODINFO_METADATA | MODINFOMD_HOWTO:
			take_field(&k.howto, &r, 4);
			break;
		case MODINFO_METADATA | MODINFOMD_SSYM:
			take_field(&k.ssym, &r, 8);
			break;
		case MODINFO_METADATA | MODINFOMD_ESYM:
			take_field(&k.esym, &r, 8);
			break;
		case MODINFO_METADATA | MODINFOMD_KERNEND:
			take_field(&k.kernend, &r, 8);
			break;
		case MODINFO_METADATA | MODINFOMD_ENVP:
			take_field(&k.envp, &r, 8);
			break;
		case MODINFO_METADATA | MODINFOMD_SMAP:
			if (!k.has_smap) {
				k.has_smap = 1;
				k.smap_at = r.at + 8;
				k.smap_size = r.size;
			}
			break;
		}
	}
	return k;
}

static void report_kernel_info(const struct kernel_info *k)
{
	print(prefix);
	print("howto=");
	print_field(&k->howto);
	print("\n");
	print(prefix);
	print("ssym=");
	print_field(&k->ssym);
	print(" esym=");
	print_field(&k->esym);
	print("\n");
	print(prefix);
	print("kernend-record=");
	print_field(&k->kernend);
	print("\n");
	print(prefix);
	print("envp=");
	print_field(&k->envp);
	print("\n");
}

static void report_smap(const struct kernel_info *k)
{
	if (!k->has_smap)
		return;
	if (k->smap_size % SMAP_ENTRY) {
		print(prefix);
		print("smap: corrupt: size ");
		print_hex(k->smap_size);
		print(" is not a multiple of 20\n");
		return;
	}
	for (u32 off = 0; off < k->smap_size; off += SMAP_ENTRY) {
		const char *e = phys(k->smap_at + off);
		print(prefix);
		print("smap: base=");
		print_hex(load64(e));
		print(" length=");
		print_hex(load64(e + 8));
		print(" type=");
		print_dec(load32(e + 16));
		print("\n");
	}
}

/* ---- the environment: NUL-terminated `key=value` strings, then an empty one ---- */

struct env {
	u64 at; /* physical */
	u64 end;
	const char *error;
};

static struct env env_at(const struct kernel_info *k)
{
	struct env e = {0, 0, 0};
	if (k->envp.state != 1)
		return e;
	if (!mapped(k->envp.value, 1)) {
		e.error = "beyond the first 1 GB";
		return e;
	}
	e.at = k->envp.value;
	e.end = mapped(e.at, ENV_MAX) ? e.at + ENV_MAX : MAPPED;
	return e;
}

/* 1 with the next string, 0 at the empty one (or without an environment), -1 if unterminated. */
static int next_env(struct env *e, struct str *s)
{
	if (e->error)
		return -1;
	if (!e->at)
		return 0;
	*s = str_from(phys(e->at), e->end - e->at);
	if (e->at + s->n >= e->end) {
		e->error = "no empty string at its end";
		return -1;
	}
	e->at += s->n + 1;
	return s->n ? 1 : 0;
}

static void report_env(const struct kernel_info *k)
{
	struct env e = env_at(k);
	struct str s;
	while (next_env(&e, &s) > 0) {
		print(prefix);
		print("env: ");
		print_str(s);
		print("\n");
	}
	if (e.error) {
		print(prefix);
		print("environment: corrupt: ");
		print(e.error);
		print("\n");
	}
}

/* The value of the first `key=value` string, as FreeBSD's kern_getenv finds it. */
static struct str kenv(const struct kernel_info *k, const char *key, const char *fallback)
{
	struct env e = env_at(k);
	struct str s, value;
	while (next_env(&e, &s) > 0)
		if (strip_prefix(s, key, &value) && strip_prefix(value, "=", &value))
			return value;
	return str_from(fallback, ENV_MAX);
}

/* ---- the symbol table: [u64 size][Elf64_Sym...][u64 size][strings], each padded to 8 ---- */

struct symtab {
	int ok;
	const char *syms;
	u64 count;
	const char *strs;
	u64 strsize;
};

static struct symtab symbols;

#define NO_VALUE (~0ull)

/* `symbols: corrupt: <why> [<value>]` */
static void symbols_corrupt(const char *why, u64 value)
{
	print(prefix);
	print("symbols: corrupt: ");
	print(why);
	if (value != NO_VALUE) {
		print(" ");
		print_hex(value);
	}
	print("\n");
}

/* Checks the table as FreeBSD's link_elf and ddb read it, and stricter: ESYM must be its end. */
static struct symtab check_symbols(const struct kernel_info *k)
{
	struct symtab t = {0, 0, 0, 0, 0};
	u64 ssym = k->ssym.value, esym = k->esym.value, at, symsize, strsize;

	if (k->ssym.state != 1 || k->esym.state != 1) {
		symbols_corrupt("no usable ssym and esym records", NO_VALUE);
		return t;
	}
	if (esym <= ssym) {
		symbols_corrupt("esym is not past ssym: esym", esym);
		return t;
	}
	if (!mapped(ssym, esym - ssym)) {
		symbols_corrupt("beyond the first 1 GB: esym", esym);
		return t;
	}
	if (ssym % 8) {
		symbols_corrupt("ssym is not 8-byte aligned:", ssym);
		return t;
	}
	if (esym - ssym < 16) {
		symbols_corrupt("too short for two size words: esym", esym);
		return t;
	}
	symsize = load64(phys(ssym));
	if (!symsize) {
		symbols_corrupt("the symbol table is empty", NO_VALUE);
		return t;
	}
	if (symsize % ELF64_SYM) {
		symbols_corrupt("symbol table size is not a multiple of 24:", symsize);
		return t;
	}
	if (symsize > esym - ssym - 16) {
		symbols_corrupt("symbol table runs past esym: size", symsize);
		return t;
	}
	at = ssym + 8 + roundup8(symsize);
	strsize = load64(phys(at));
	if (strsize > esym - at - 8) {
		symbols_corrupt("string table runs past esym: size", strsize);
		return t;
	}
	if (at + 8 + roundup8(strsize) != esym) {
		symbols_corrupt("the tables, padded to 8, do not end at esym but at",
				at + 8 + roundup8(strsize));
		return t;
	}
	t.syms = phys(ssym + 8);
	t.count = symsize / ELF64_SYM;
	t.strs = phys(at + 8);
	t.strsize = strsize;
	if (!strsize || t.strs[strsize - 1]) {
		symbols_corrupt("the string table does not end in a NUL: size", strsize);
		return t;
	}
	for (u64 i = 0; i < t.count; i++) {
		u32 name = load32(t.syms + i * ELF64_SYM);
		if (name >= strsize) {
			symbols_corrupt("a name lies outside the string table: offset", name);
			return t;
		}
	}
	t.ok = 1;
	print(prefix);
	print("symbols: ");
	print_dec((u32)t.count);
	print(" entries, ");
	print_dec((u32)strsize);
	print(" bytes of strings, ok\n");
	return t;
}

struct sym {
	const char *name;
	u8 info;
	u16 shndx;
	u64 value;
	u64 size;
};

static struct sym sym_at(const struct symtab *t, u64 i)
{
	const char *e = t->syms + i * ELF64_SYM;
	struct sym s = {t->strs + load32(e), (u8)e[4], (u16)(load32(e + 4) >> 16),
			load64(e + 8), load64(e + 16)};
	return s;
}

static int same_name(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

/* A defined symbol's value by name. */
static int find_symbol(const struct symtab *t, const char *name, u64 *value)
{
	for (u64 i = 0; t->ok && i < t->count; i++) {
		struct sym s = sym_at(t, i);
		if (s.shndx && same_name(s.name, name)) {
			*value = s.value;
			return 1;
		}
	}
	return 0;
}

/* The function that holds `addr`, as a backtrace names it. */
static int enclosing_function(const struct symtab *t, u64 addr, struct sym *out)
{
	int found = 0;
	for (u64 i = 0; t->ok && i < t->count; i++) {
		struct sym s = sym_at(t, i);
		if ((s.info & 0xf) != STT_FUNC || !s.shndx || !s.name[0] || s.value > addr)
			continue;
		if (addr - s.value >= (s.size ? s.size : 1))
			continue;
		if (!found || s.value > out->value) {
			*out = s;
			found = 1;
		}
	}
	return found;
}

/* Prints a symbol's value from the table; whether it is where the function really is. */
static int check_symbol(const char *name, u64 function)
{
	u64 value;
	print(prefix);
	print("symbol: ");
	print(name);
	if (!find_symbol(&symbols, name, &value)) {
		print(" not found\n");
		return 0;
	}
	print("=");
	print_hex(value);
	print("\n");
	return value == function;
}

static void report_symbols(void)
{
	int ok = check_symbol("btext", (u64)(usize)&btext);
	ok &= check_symbol("vmlane_test_panic", (u64)(usize)&vmlane_test_panic);
	print(prefix);
	print(ok ? "symbol-check: ok\n" : "symbol-check: mismatch\n");
}

/* ---- the backtrace: frame pointers, named from the symbol table the loader handed over ---- */

/* `lookup` is inside the function: a return address may be just past a call at its end. */
static void print_frame(u32 n, u64 addr, u64 lookup)
{
	struct sym s;
	print("#");
	print_dec(n);
	print(" ");
	print_hex(addr);
	print(" at ");
	if (enclosing_function(&symbols, lookup, &s)) {
		print(s.name);
		print("+");
		print_hex(addr - s.value);
	} else {
		print("??");
	}
	print("\n");
}

static int on_stack(const u64 *frame)
{
	usize at = (usize)frame;
	return at % 8 == 0 && at >= (usize)stack && at + 16 <= (usize)stack_top;
}

__attribute__((noinline)) void vmlane_backtrace(void)
{
	const u64 *frame = __builtin_frame_address(0);
	u64 pc;
	__asm__ volatile("leaq 0(%%rip), %0" : "=r"(pc));
	print_frame(0, pc, pc);
	for (u32 n = 1; n < BACKTRACE_MAX && on_stack(frame) && frame[1]; n++) {
		print_frame(n, frame[1], frame[1] - 1);
		frame = (const u64 *)(usize)frame[0];
	}
}

/* ---- the entry from btext ---- */

void kmain(u32 modulep, u32 kernend)
{
	struct kernel_info k;
	u64 kernel_at;

	serial_init();
	print(prefix);
	print("entry: modulep=");
	print_hex(modulep);
	print(" kernend=");
	print_hex(kernend);
	print("\n");
	kernel_at = report_modules(modulep);
	if (!kernel_at) {
		print(prefix);
		print("no module of type elf kernel\n");
	}
	k = read_kernel_info(kernel_at);
	report_kernel_info(&k);
	report_env(&k);
	report_smap(&k);
	symbols = check_symbols(&k);
	report_symbols();
	vmlane_act(kenv(&k, "vmlane.token", "?"), kenv(&k, "vmlane_test.action", "exit:0"),
		   equals(kenv(&k, "vmlane_test.debugger", ""), "1"),
		   equals(kenv(&k, "hint.uart.1.port", ""), CHANNEL_PORT_HINT));
}

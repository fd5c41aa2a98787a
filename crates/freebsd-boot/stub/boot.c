/*
 * vmlane's FreeBSD boot stub. QEMU starts it at its PVH entry with the FreeBSD kernel (or a
 * container holding the kernel and further modules) as module 0; the stub lays the kernel
 * out and enters it as FreeBSD's BIOS loader does: segments at their physical addresses,
 * the symbol tables after them, the modules, the metadata and the environment, page tables
 * mapping the first 1 GiB everywhere, and a jump to the entry in long mode. Entered that
 * way, the kernel uses the i8254 for its early clock, which QEMU's TCG offers; its own PVH
 * entry needs a paravirtual clock, which TCG lacks.
 *
 * The code is 32-bit with paging off: physical addresses are used as they are, so all it
 * reads lies below 4 GiB. On any error it prints one line starting "vmlane-boot: " on the
 * serial port and ends the VM.
 */

#include "layout.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned long usize;

#define noreturn __attribute__((noreturn))

/* entry.S */
noreturn void vmlane_reset(void);
noreturn void enter_kernel(void);
void *memcpy(void *dst, const void *src, usize n);
void *memmove(void *dst, const void *src, usize n);
void *memset(void *dst, int c, usize n);
void stub_main(u32 start_info);

#define MIB (1ull << 20)

/* ---- what enter_kernel hands over ---- */

u64 boot_entry;
u32 boot_modulep;
u32 boot_kernend;
u64 boot_pml4[512] __attribute__((aligned(4096)));
u64 boot_pdpt[512] __attribute__((aligned(4096)));
u64 boot_pd[512] __attribute__((aligned(4096)));

#define PG_V 0x001
#define PG_RW 0x002
#define PG_PS 0x080

/* ---- FreeBSD's boot interface: sys/sys/linker.h, sys/x86/include/metadata.h, sys/sys/reboot.h ---- */

#define MODINFO_END 0x0000
#define MODINFO_NAME 0x0001
#define MODINFO_TYPE 0x0002
#define MODINFO_ADDR 0x0003
#define MODINFO_SIZE 0x0004
#define MODINFO_METADATA 0x8000
#define MODINFOMD_SSYM 0x0003
#define MODINFOMD_ESYM 0x0004
#define MODINFOMD_ENVP 0x0006
#define MODINFOMD_HOWTO 0x0007
#define MODINFOMD_KERNEND 0x0008
#define MODINFOMD_CTORS_ADDR 0x000a
#define MODINFOMD_CTORS_SIZE 0x000b
#define MODINFOMD_SMAP 0x1001
#define MODINFOMD_MODULEP 0x1006

#define KERNEL_NAME "/boot/kernel/kernel"
#define KERNEL_TYPE "elf kernel"

#define RB_ASKNAME 0x001
#define RB_SINGLE 0x002
#define RB_DFLTROOT 0x020
#define RB_KDB 0x040
#define RB_VERBOSE 0x800
#define RB_SERIAL 0x1000
#define RB_CDROM 0x2000
#define RB_GDB 0x8000
#define RB_MUTE 0x10000
#define RB_PAUSE 0x100000
#define RB_MUTEMSGS 0x800000
#define RB_PROBE 0x10000000
#define RB_MULTIPLE 0x20000000

/* ---- the PVH boot ABI (Xen's hvm_start_info, as QEMU fills it in) ---- */

#define HVM_START_MAGIC 0x336ec578u
#define E820_RAM 1

struct hvm_start_info {
	u32 magic;
	u32 version;
	u32 flags;
	u32 nr_modules;
	u64 modlist_paddr;
	u64 cmdline_paddr;
	u64 rsdp_paddr;
	u64 memmap_paddr; /* version >= 1 */
	u32 memmap_entries;
	u32 reserved;
};

struct hvm_modlist_entry {
	u64 paddr;
	u64 size;
	u64 cmdline_paddr;
	u64 reserved;
};

struct hvm_memmap_entry {
	u64 addr;
	u64 size;
	u32 type;
	u32 reserved;
};

/* ---- the serial console: a 16550 at COM1, polled ---- */

#define COM1 0x3f8
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

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

static void serial_init(void)
{
	outb(COM1 + 1, 0x00); /* no interrupts */
	outb(COM1 + 3, 0x80); /* divisor latch */
	outb(COM1 + 0, 0x01); /* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1 */
	outb(COM1 + 2, 0x07); /* FIFOs on and cleared */
	outb(COM1 + 4, 0x03); /* DTR, RTS */
}

/* Bounded waits: a missing UART must not hang the stub. */
static void serial_wait(u8 bit)
{
	for (u32 i = 0; i < 1000000 && !(inb(COM1 + 5) & bit); i++)
		;
}

static void put_char(char c)
{
	serial_wait(LSR_THRE);
	outb(COM1, (u8)c);
}

static void print(const char *s)
{
	while (*s)
		put_char(*s++);
}

static void print_dec(u32 v)
{
	char buf[11];
	int i = sizeof(buf);
	buf[--i] = 0;
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	print(buf + i);
}

static void print_hex(u64 v)
{
	char buf[19];
	int i = sizeof(buf);
	buf[--i] = 0;
	do {
		buf[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	buf[--i] = 'x';
	buf[--i] = '0';
	print(buf + i);
}

/* An error: say() starts the line, print() its parts, die() ends it and the VM. */
static void say(void)
{
	print("vmlane-boot: ");
}

static noreturn void die(void)
{
	print("\n");
	serial_wait(LSR_TEMT);
	vmlane_reset();
}

static noreturn void fail(const char *message)
{
	say();
	print(message);
	die();
}

/* ---- small helpers ---- */

static u64 round_up(u64 v, u64 align)
{
	return (v + align - 1) & ~(align - 1);
}

static u16 rd16(const u8 *p)
{
	return (u16)(p[0] | p[1] << 8);
}

static u32 rd32(const u8 *p)
{
	return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static u64 rd64(const u8 *p)
{
	return (u64)rd32(p) | (u64)rd32(p + 4) << 32;
}

static void wr32(u8 *p, u32 v)
{
	memcpy(p, &v, 4);
}

static void wr64(u8 *p, u64 v)
{
	memcpy(p, &v, 8);
}

static usize str_len(const char *s)
{
	usize n = 0;
	while (s[n])
		n++;
	return n;
}

/* Whether the `n` bytes at `a` spell out the string `b`. */
static int same(const char *a, usize n, const char *b)
{
	for (usize i = 0; i < n; i++)
		if (!b[i] || a[i] != b[i])
			return 0;
	return !b[n];
}

static int same_nocase(const char *a, usize n, const char *b)
{
	for (usize i = 0; i < n; i++) {
		if (!b[i] || (a[i] | 0x20) != (b[i] | 0x20))
			return 0;
	}
	return !b[n];
}

/* The physical address `p` as a pointer; the callers have checked it lies below 4 GiB. */
static void *phys(u64 p)
{
	return (void *)(usize)p;
}

/* Whether [a, a + an) and [b, b + bn) share a byte. */
static int overlaps(u64 a, u64 an, u64 b, u64 bn)
{
	return an && bn && a < b + bn && b < a + an;
}

/* ---- what the stub copied out of the start info ---- */

static struct {
	u64 module;
	u64 module_size;
	u64 rsdp;
	u32 memmap_count;
	struct hvm_memmap_entry memmap[MEMMAP_MAX];
	char cmdline[CMDLINE_MAX];
} pvh;

static void read_start_info(u32 address)
{
	const struct hvm_start_info *info = (const struct hvm_start_info *)(usize)address;
	const struct hvm_modlist_entry *mod;

	if (info->magic != HVM_START_MAGIC)
		fail("not started at the PVH entry: no start info");
	if (info->nr_modules == 0 || info->modlist_paddr == 0)
		fail("no module: pass the FreeBSD kernel, or a container holding it, as module 0 (-initrd)");
	if (info->modlist_paddr > 0xffffffffu - sizeof(*mod))
		fail("the module list lies above 4 GiB");
	mod = phys(info->modlist_paddr);
	pvh.module = mod->paddr;
	pvh.module_size = mod->size;
	if (pvh.module > 0xffffffffu || pvh.module_size > 0x100000000ull - pvh.module)
		fail("module 0 lies above 4 GiB, out of the stub's reach");

	if (info->cmdline_paddr > 0xffffffffu - CMDLINE_MAX)
		fail("the command line lies above 4 GiB");
	if (info->cmdline_paddr) {
		const char *cmdline = phys(info->cmdline_paddr);
		usize n = 0;
		while (cmdline[n]) {
			if (n == CMDLINE_MAX - 1) {
				say();
				print("the command line is longer than ");
				print_dec(CMDLINE_MAX - 1);
				print(" bytes");
				die();
			}
			pvh.cmdline[n] = cmdline[n];
			n++;
		}
	}

	if (info->version < 1 || info->memmap_paddr == 0 || info->memmap_entries == 0)
		fail("the PVH start info has no memory map");
	if (info->memmap_entries > MEMMAP_MAX) {
		say();
		print("the memory map has ");
		print_dec(info->memmap_entries);
		print(" entries; the stub takes at most ");
		print_dec(MEMMAP_MAX);
		die();
	}
	if (info->memmap_paddr > 0xffffffffu - sizeof(pvh.memmap))
		fail("the memory map lies above 4 GiB");
	pvh.memmap_count = info->memmap_entries;
	memcpy(pvh.memmap, phys(info->memmap_paddr),
	       info->memmap_entries * sizeof(struct hvm_memmap_entry));
	pvh.rsdp = info->rsdp_paddr;
}

/* Whether RAM covers [start, end), possibly across adjacent memory map entries. */
static int ram_covers(u64 start, u64 end)
{
	/* Each round moves `start` past one entry; more rounds than entries find nothing new. */
	for (u32 round = 0; round <= pvh.memmap_count && start < end; round++) {
		int moved = 0;
		for (u32 i = 0; i < pvh.memmap_count; i++) {
			const struct hvm_memmap_entry *e = &pvh.memmap[i];
			if (e->type == E820_RAM && e->addr <= start && start < e->addr + e->size) {
				start = e->addr + e->size;
				moved = 1;
			}
		}
		if (!moved)
			return 0;
	}
	return start >= end;
}

/* ---- module 0: the kernel, or a container of the kernel and further modules ---- */

struct module {
	const u8 *data;
	u64 size;
	const char *name; /* NUL-terminated within the container */
	const char *type;
	u64 dest;
};

static struct module modules[MODULES_MAX];
static u32 module_count;

static const char container_magic[8] = "VMLBOOT1";

static noreturn void bad_entry(u32 i, const char *problem)
{
	say();
	print("the boot container is damaged: entry ");
	print_dec(i);
	print(problem);
	die();
}

/* The container's field `field` of `len` bytes: NUL-terminated, not empty. */
static const char *field_string(const u8 *field, u32 len, u32 i, const char *what)
{
	u32 n = 0;
	while (n < len && field[n])
		n++;
	if (n == len || n == 0) {
		say();
		print("the boot container is damaged: entry ");
		print_dec(i);
		print(n ? " has an unterminated " : " has no ");
		print(what);
		die();
	}
	return (const char *)field;
}

static int streq(const char *a, const char *b)
{
	return same(a, str_len(a), b);
}

static int is_container(const u8 *base, u64 size)
{
	if (size < sizeof(container_magic))
		return 0;
	for (usize i = 0; i < sizeof(container_magic); i++)
		if (base[i] != (u8)container_magic[i])
			return 0;
	return 1;
}

/* Fills in modules[]: the kernel first, then a container's further modules. Returns whether
 * module 0 is a container. */
static int read_module0(void)
{
	const u8 *base = phys(pvh.module);
	u64 size = pvh.module_size;
	u32 count;

	if (!is_container(base, size)) {
		modules[0].data = base;
		modules[0].size = size;
		modules[0].name = KERNEL_NAME;
		modules[0].type = KERNEL_TYPE;
		module_count = 1;
		return 0;
	}
	if (size < CONTAINER_HEADER_SIZE)
		fail("the boot container is damaged: its header is cut short");
	count = rd32(base + 8);
	if (count == 0)
		fail("the boot container is empty: its first entry must be the kernel");
	if (count > MODULES_MAX) {
		say();
		print("the boot container holds ");
		print_dec(count);
		print(" modules; the stub takes at most ");
		print_dec(MODULES_MAX);
		die();
	}
	if (CONTAINER_HEADER_SIZE + (u64)count * CONTAINER_ENTRY_SIZE > size)
		fail("the boot container is damaged: its entry table is cut short");
	for (u32 i = 0; i < count; i++) {
		const u8 *e = base + CONTAINER_HEADER_SIZE + i * CONTAINER_ENTRY_SIZE;
		u64 offset = rd64(e);
		u64 len = rd64(e + 8);
		if (offset > size || len > size - offset)
			bad_entry(i, " lies outside the container");
		modules[i].data = base + offset;
		modules[i].size = len;
		modules[i].name = field_string(e + 16, CONTAINER_NAME_LEN, i, "name");
		modules[i].type = field_string(e + 16 + CONTAINER_NAME_LEN, CONTAINER_TYPE_LEN, i, "type");
	}
	if (!streq(modules[0].type, KERNEL_TYPE)) {
		say();
		print("the boot container's first entry has the type \"");
		print(modules[0].type);
		print("\"; it must be the kernel, of type \"" KERNEL_TYPE "\"");
		die();
	}
	module_count = count;
	return 1;
}

/* ---- the kernel's ELF headers ---- */

#define ELFCLASS32 1
#define ELFCLASS64 2
#define ELFDATA2LSB 1
#define ELFDATA2MSB 2
#define ET_EXEC 2
#define EM_X86_64 62
#define PT_LOAD 1
#define SHT_SYMTAB 2
#define SHT_STRTAB 3
#define EHDR_SIZE 64
#define PHDR_SIZE 56
#define SHDR_SIZE 64

struct segment {
	u64 paddr;
	u64 offset;
	u64 filesz;
	u64 memsz;
};

static struct {
	const u8 *image;
	u64 size;
	u64 entry;
	struct segment seg[SEGMENTS_MAX];
	u32 nseg;
	u64 lowest;  /* the lowest address a segment loads at */
	u64 highest; /* the end of the highest segment */
	int has_syms;
	u64 symtab_off, symtab_size;
	u64 strtab_off, strtab_size;
	int has_ctors;
	u64 ctors_addr, ctors_size;
} kernel;

static int in_file(u64 offset, u64 len)
{
	return offset <= kernel.size && len <= kernel.size - offset;
}

static noreturn void bad_segment(u32 i, const char *problem)
{
	say();
	print("the kernel's program header ");
	print_dec(i);
	print(problem);
	die();
}

/* "the kernel's program header <i> <problem><a><then>" */
static noreturn void bad_segment_at(u32 i, const char *problem, u64 a, const char *then)
{
	say();
	print("the kernel's program header ");
	print_dec(i);
	print(problem);
	print_hex(a);
	print(then);
	die();
}

static void read_segments(u64 phoff, u32 phentsize, u32 phnum)
{
	const u8 *p = kernel.image;

	if (phnum && phentsize != PHDR_SIZE) {
		say();
		print("the kernel's program headers have an unexpected size (");
		print_dec(phentsize);
		print(" bytes)");
		die();
	}
	if (!in_file(phoff, (u64)phnum * PHDR_SIZE))
		fail("the kernel's program headers lie outside the file");
	for (u32 i = 0; i < phnum; i++) {
		const u8 *ph = p + phoff + i * PHDR_SIZE;
		u64 offset = rd64(ph + 8), vaddr = rd64(ph + 16), paddr = rd64(ph + 24);
		u64 filesz = rd64(ph + 32), memsz = rd64(ph + 40);
		struct segment *s;

		if (rd32(ph) != PT_LOAD || memsz == 0)
			continue;
		if (filesz > memsz)
			bad_segment(i, " is larger in the file than in memory");
		if (!in_file(offset, filesz))
			bad_segment(i, " lies outside the file");
		if (paddr < KERNEL_MIN)
			bad_segment_at(i, " loads at ", paddr, ", below 2 MiB, where the boot stub lives");
		if (paddr >= MAPPED_LIMIT || memsz > MAPPED_LIMIT - paddr)
			bad_segment_at(i, " loads at ", paddr,
				       ", past the first 1 GiB that the boot page tables map");
		if ((vaddr & (MAPPED_LIMIT - 1)) != paddr) {
			say();
			print("the kernel's program header ");
			print_dec(i);
			print(" is linked at ");
			print_hex(vaddr);
			print(" but loads at ");
			print_hex(paddr);
			die();
		}
		if (kernel.nseg == SEGMENTS_MAX) {
			say();
			print("the kernel has more than ");
			print_dec(SEGMENTS_MAX);
			print(" loadable segments");
			die();
		}
		s = &kernel.seg[kernel.nseg++];
		s->paddr = paddr;
		s->offset = offset;
		s->filesz = filesz;
		s->memsz = memsz;
		if (kernel.nseg == 1 || paddr < kernel.lowest)
			kernel.lowest = paddr;
		if (paddr + memsz > kernel.highest)
			kernel.highest = paddr + memsz;
	}
	if (kernel.nseg == 0)
		fail("the kernel has no loadable segments");
}

/* Whether the file bytes [offset, offset + len) are part of a loaded segment already. */
static int loaded(u64 offset, u64 len)
{
	for (u32 i = 0; i < kernel.nseg; i++) {
		const struct segment *s = &kernel.seg[i];
		if (offset >= s->offset && offset + len <= s->offset + s->filesz)
			return 1;
	}
	return 0;
}

/*
 * The symbol table and its string table, which the kernel's debugger and linker name
 * functions with, and .ctors, as FreeBSD's loader finds them. Broken section headers only
 * cost the symbols, as with the loader.
 */
static void read_sections(u64 shoff, u32 shentsize, u32 shnum, u32 shstrndx)
{
	const u8 *p = kernel.image;

	if (shoff == 0 || shnum == 0 || shentsize != SHDR_SIZE || !in_file(shoff, (u64)shnum * SHDR_SIZE))
		return;
	for (u32 i = 0; i < shnum; i++) {
		const u8 *sh = p + shoff + i * SHDR_SIZE;
		const u8 *str;
		u64 off = rd64(sh + 24), len = rd64(sh + 32);
		u32 link = rd32(sh + 40);

		if (rd32(sh + 4) != SHT_SYMTAB || len == 0 || !in_file(off, len) || loaded(off, len) ||
		    link >= shnum)
			continue;
		str = p + shoff + link * SHDR_SIZE;
		if (rd32(str + 4) != SHT_STRTAB || !in_file(rd64(str + 24), rd64(str + 32)))
			continue;
		kernel.has_syms = 1;
		kernel.symtab_off = off;
		kernel.symtab_size = len;
		kernel.strtab_off = rd64(str + 24);
		kernel.strtab_size = rd64(str + 32);
	}

	if (shstrndx < shnum) {
		const u8 *names = p + shoff + shstrndx * SHDR_SIZE;
		u64 off = rd64(names + 24), len = rd64(names + 32);
		static const char ctors[] = ".ctors";

		if (!in_file(off, len))
			return;
		for (u32 i = 0; i < shnum; i++) {
			const u8 *sh = p + shoff + i * SHDR_SIZE;
			u32 name = rd32(sh);
			if (name < len && len - name >= sizeof(ctors) &&
			    same((const char *)p + off + name, sizeof(ctors) - 1, ctors) &&
			    p[off + name + sizeof(ctors) - 1] == 0) {
				kernel.has_ctors = 1;
				kernel.ctors_addr = rd64(sh + 16);
				kernel.ctors_size = rd64(sh + 32);
				break;
			}
		}
	}
}

static void check_kernel(const char *what)
{
	const u8 *p = modules[0].data;
	u64 size = modules[0].size;
	u64 low;
	u32 i;

	kernel.image = p;
	kernel.size = size;
	if (size == 0) {
		say();
		print(what);
		print(" is empty");
		die();
	}
	if (size < 4 || p[0] != 0x7f || p[1] != 'E' || p[2] != 'L' || p[3] != 'F') {
		say();
		print(what);
		print(" is not an ELF file");
		die();
	}
	if (size < 6)
		fail("the kernel's ELF header is cut short");
	if (p[4] == ELFCLASS32)
		fail("the kernel is a 32-bit ELF; FreeBSD amd64 kernels are ELF64");
	if (p[4] != ELFCLASS64) {
		say();
		print("the kernel has an unknown ELF class ");
		print_dec(p[4]);
		die();
	}
	if (p[5] == ELFDATA2MSB)
		fail("the kernel is a big-endian ELF; FreeBSD amd64 kernels are little-endian");
	if (p[5] != ELFDATA2LSB) {
		say();
		print("the kernel has an unknown ELF data encoding ");
		print_dec(p[5]);
		die();
	}
	if (size < EHDR_SIZE)
		fail("the kernel's ELF header is cut short");
	if (rd16(p + 18) != EM_X86_64) {
		say();
		print("the kernel is not an x86-64 ELF (e_machine ");
		print_dec(rd16(p + 18));
		print(")");
		die();
	}
	if (rd16(p + 16) != ET_EXEC) {
		say();
		print("the kernel is not an executable ELF (e_type ");
		print_dec(rd16(p + 16));
		print("); FreeBSD kernels are ET_EXEC");
		die();
	}
	kernel.entry = rd64(p + 24);
	read_segments(rd64(p + 32), rd16(p + 54), rd16(p + 56));

	/* The boot page tables map virtual to physical addresses modulo 1 GiB. */
	low = kernel.entry & (MAPPED_LIMIT - 1);
	for (i = 0; i < kernel.nseg; i++) {
		const struct segment *s = &kernel.seg[i];
		if (s->paddr <= low && low < s->paddr + s->filesz)
			break;
	}
	if (i == kernel.nseg) {
		say();
		print("the kernel's entry point ");
		print_hex(kernel.entry);
		print(" lies outside its loaded segments");
		die();
	}
	read_sections(rd64(p + 40), rd16(p + 58), rd16(p + 60), rd16(p + 62));
}

/* ---- the environment and boot flags, from the command line ---- */

static char env[ENV_MAX];
static u32 env_len; /* up to the last variable's NUL; the block's final NUL follows */
static u32 howto;

/* FreeBSD's boot flags: the loader's `-x` letters and the variables that stand for them. */
static const struct {
	char letter;
	u32 flag;
	const char *name;
} boot_flags[] = {
	{'a', RB_ASKNAME, "boot_askname"},
	{'C', RB_CDROM, "boot_cdrom"},
	{'d', RB_KDB, "boot_ddb"},
	{'r', RB_DFLTROOT, "boot_dfltroot"},
	{'g', RB_GDB, "boot_gdb"},
	{'D', RB_MULTIPLE, "boot_multicons"},
	{'m', RB_MUTE, "boot_mute"},
	{'M', RB_MUTEMSGS, "boot_mutemsgs"},
	{'p', RB_PAUSE, "boot_pause"},
	{'h', RB_SERIAL, "boot_serial"},
	{'s', RB_SINGLE, "boot_single"},
	{'v', RB_VERBOSE, "boot_verbose"},
	{'P', RB_PROBE, 0},
};

#define N_BOOT_FLAGS (sizeof(boot_flags) / sizeof(boot_flags[0]))

static int bytes_equal(const char *a, const char *b, usize n)
{
	for (usize i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

/* The offset of the variable `key` in env, or -1. */
static int env_find(const char *key, usize klen)
{
	u32 at = 0;
	while (at < env_len) {
		const char *var = env + at;
		usize n = str_len(var);
		if (n > klen && var[klen] == '=' && bytes_equal(var, key, klen))
			return (int)at;
		at += n + 1;
	}
	return -1;
}

static const char *env_get(const char *key)
{
	usize klen = str_len(key);
	int at = env_find(key, klen);
	return at < 0 ? 0 : env + at + klen + 1;
}

/* Sets a variable; a later word replaces an earlier one, as the loader's setenv does. */
static void env_set(const char *key, usize klen, const char *value, usize vlen)
{
	int at = env_find(key, klen);
	if (at >= 0) {
		u32 n = str_len(env + at) + 1;
		memmove(env + at, env + at + n, env_len - at - n);
		env_len -= n;
	}
	/* key, '=', value, NUL, and the block's final NUL */
	if (env_len + klen + vlen + 3 > ENV_MAX) {
		say();
		print("the environment from the command line is larger than ");
		print_dec(ENV_MAX);
		print(" bytes");
		die();
	}
	memcpy(env + env_len, key, klen);
	env_len += klen;
	env[env_len++] = '=';
	memcpy(env + env_len, value, vlen);
	env_len += vlen;
	env[env_len++] = 0;
}

static void env_set_str(const char *key, const char *value)
{
	env_set(key, str_len(key), value, str_len(value));
}

static void parse_flags(const char *word, usize n)
{
	for (usize i = 1; i < n; i++) {
		if (word[i] == 'S') {
			/* -S<speed>, the rest of the word */
			env_set("comconsole_speed", 16, word + i + 1, n - i - 1);
			return;
		}
		for (usize f = 0; f < N_BOOT_FLAGS; f++)
			if (word[i] == boot_flags[f].letter)
				howto |= boot_flags[f].flag;
	}
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

#define VIRTIO_MMIO_DEVICE "virtio_mmio.device"

static void parse_cmdline(void)
{
	const char *s = pvh.cmdline;
	u32 mmio_devices = 0;

	/* As FreeBSD's loader does; for the kernel's ACPI, where the firmware's tables are. */
	if (pvh.rsdp && pvh.rsdp <= 0xffffffffu) {
		char hex[11];
		for (int i = 0; i < 8; i++)
			hex[2 + i] = "0123456789abcdef"[(pvh.rsdp >> (28 - 4 * i)) & 15];
		hex[0] = '0';
		hex[1] = 'x';
		hex[10] = 0;
		env_set_str("acpi.rsdp", hex);
	}

	for (;;) {
		const char *word, *eq;
		usize n, klen;
		char key[sizeof(VIRTIO_MMIO_DEVICE "_4294967295")];

		while (is_space(*s))
			s++;
		if (!*s)
			break;
		word = s;
		while (*s && !is_space(*s))
			s++;
		n = (usize)(s - word);
		if (word[0] == '-') {
			parse_flags(word, n);
			continue;
		}
		for (eq = word; eq < s && *eq != '='; eq++)
			;
		if (eq == s || eq == word)
			continue; /* not key=value */
		klen = (usize)(eq - word);
		/*
		 * QEMU's microvm adds one virtio_mmio.device= word per transport; FreeBSD's
		 * virtio_mmio reads them as virtio_mmio.device, virtio_mmio.device_1, _2, ...
		 */
		if (same(word, klen, VIRTIO_MMIO_DEVICE) && mmio_devices++ > 0) {
			char digits[10];
			u32 v = mmio_devices - 1, nd = 0;
			usize k = sizeof(VIRTIO_MMIO_DEVICE) - 1;
			memcpy(key, VIRTIO_MMIO_DEVICE, k);
			key[k++] = '_';
			do {
				digits[nd++] = (char)('0' + v % 10);
				v /= 10;
			} while (v);
			while (nd)
				key[k++] = digits[--nd];
			env_set(key, k, eq + 1, (usize)(s - eq - 1));
		} else {
			env_set(word, klen, eq + 1, (usize)(s - eq - 1));
		}
	}

	/* Flags set as variables count too, and set flags show up as variables, as with the loader. */
	for (usize f = 0; f < N_BOOT_FLAGS; f++) {
		const char *v = boot_flags[f].name ? env_get(boot_flags[f].name) : 0;
		if (v && !same_nocase(v, str_len(v), "no"))
			howto |= boot_flags[f].flag;
	}
	for (usize f = 0; f < N_BOOT_FLAGS; f++)
		if (boot_flags[f].name && (howto & boot_flags[f].flag))
			env_set_str(boot_flags[f].name, "YES");
}

/* ---- where everything goes ---- */

static struct {
	u64 ssym, esym;  /* the symbols, when the kernel has them */
	u64 kernel_end;  /* past the segments and symbols */
	u64 modulep;     /* the metadata */
	u64 envp;        /* the environment */
	u64 kernend;     /* past everything, page aligned */
} lay;

static u8 md[METADATA_MAX];
static u32 md_len;
static u8 smap[MEMMAP_MAX * 20];

static void md_add(u32 type, const void *data, u32 size)
{
	u32 padded = (u32)round_up(size, 8);
	/* room for the record and the end marker */
	if (md_len + 8 + padded + 8 > METADATA_MAX)
		fail("the module metadata is too large");
	wr32(md + md_len, type);
	wr32(md + md_len + 4, size);
	memcpy(md + md_len + 8, data, size);
	memset(md + md_len + 8 + size, 0, padded - size);
	md_len += 8 + padded;
}

static void md_str(u32 type, const char *s)
{
	md_add(type, s, str_len(s) + 1);
}

static void md_u64(u32 type, u64 v)
{
	md_add(type, &v, sizeof(v));
}

/* The metadata as bootinfo64.c lays it out: the kernel's records first, then each module's. */
static void build_metadata(void)
{
	u32 n = 0;

	md_len = 0;
	md_str(MODINFO_NAME, modules[0].name);
	md_str(MODINFO_TYPE, KERNEL_TYPE);
	md_u64(MODINFO_ADDR, kernel.lowest);
	md_u64(MODINFO_SIZE, lay.kernel_end - kernel.lowest);
	if (kernel.has_syms) {
		md_u64(MODINFO_METADATA | MODINFOMD_SSYM, lay.ssym);
		md_u64(MODINFO_METADATA | MODINFOMD_ESYM, lay.esym);
	}
	if (kernel.has_ctors) {
		md_u64(MODINFO_METADATA | MODINFOMD_CTORS_ADDR, kernel.ctors_addr);
		md_u64(MODINFO_METADATA | MODINFOMD_CTORS_SIZE, kernel.ctors_size);
	}
	md_add(MODINFO_METADATA | MODINFOMD_HOWTO, &howto, sizeof(howto));
	md_u64(MODINFO_METADATA | MODINFOMD_ENVP, lay.envp);
	md_u64(MODINFO_METADATA | MODINFOMD_KERNEND, lay.kernend);
	md_u64(MODINFO_METADATA | MODINFOMD_MODULEP, lay.modulep);
	for (u32 i = 0; i < pvh.memmap_count; i++) {
		const struct hvm_memmap_entry *e = &pvh.memmap[i];
		if (!e->size)
			continue;
		wr64(smap + n * 20, e->addr);
		wr64(smap + n * 20 + 8, e->size);
		wr32(smap + n * 20 + 16, e->type);
		n++;
	}
	md_add(MODINFO_METADATA | MODINFOMD_SMAP, smap, n * 20);
	for (u32 i = 1; i < module_count; i++) {
		md_str(MODINFO_NAME, modules[i].name);
		md_str(MODINFO_TYPE, modules[i].type);
		md_u64(MODINFO_ADDR, modules[i].dest);
		md_u64(MODINFO_SIZE, modules[i].size);
	}
	wr32(md + md_len, MODINFO_END);
	wr32(md + md_len + 4, 0);
	md_len += 8;
}

static void check_limit(u64 end)
{
	if (end <= MAPPED_LIMIT)
		return;
	say();
	print("the kernel and its modules would end at ");
	print_dec((u32)((end + MIB - 1) >> 20));
	print(" MiB, past the first 1 GiB that the kernel can reach when it starts");
	die();
}

/* The layout of FreeBSD's loader: segments, symbols, modules, metadata, environment. */
static void lay_out(void)
{
	u64 addr = round_up(kernel.highest, 8);

	if (kernel.has_syms) {
		lay.ssym = addr;
		addr = round_up(addr + 8 + kernel.symtab_size, 8);
		check_limit(addr);
		addr = round_up(addr + 8 + kernel.strtab_size, 8);
		check_limit(addr);
		lay.esym = addr;
	}
	lay.kernel_end = addr;
	for (u32 i = 1; i < module_count; i++) {
		addr = round_up(addr, PAGE_SIZE);
		modules[i].dest = addr;
		addr += modules[i].size;
		check_limit(addr);
	}
	lay.modulep = round_up(addr, PAGE_SIZE);
	/* Once for the size, with the addresses still unknown; then for real. */
	build_metadata();
	lay.envp = round_up(lay.modulep + md_len, PAGE_SIZE);
	lay.kernend = round_up(lay.envp + env_len + 1, PAGE_SIZE);
	check_limit(lay.kernend);
	build_metadata();
}

static void check_memory(void)
{
	u64 need = lay.kernend + round_up(pvh.module_size, PAGE_SIZE) + TOP_RESERVE;

	if (ram_covers(kernel.lowest, lay.kernend) &&
	    !overlaps(kernel.lowest, lay.kernend - kernel.lowest, pvh.module, pvh.module_size))
		return;
	say();
	print("not enough memory: the kernel and its modules need ");
	print_dec((u32)((need + MIB - 1) >> 20));
	print(" MiB");
	die();
}

static void place(void)
{
	const u8 *image = kernel.image;

	for (u32 i = 0; i < kernel.nseg; i++) {
		const struct segment *s = &kernel.seg[i];
		memcpy(phys(s->paddr), image + s->offset, (usize)s->filesz);
		memset(phys(s->paddr + s->filesz), 0, (usize)(s->memsz - s->filesz));
	}
	if (kernel.has_syms) {
		u64 at = lay.ssym;
		memset(phys(kernel.highest), 0, (usize)(lay.ssym - kernel.highest));
		wr64(phys(at), kernel.symtab_size);
		memcpy(phys(at + 8), image + kernel.symtab_off, (usize)kernel.symtab_size);
		at += 8 + kernel.symtab_size;
		memset(phys(at), 0, (usize)(round_up(at, 8) - at));
		at = round_up(at, 8);
		wr64(phys(at), kernel.strtab_size);
		memcpy(phys(at + 8), image + kernel.strtab_off, (usize)kernel.strtab_size);
		at += 8 + kernel.strtab_size;
		memset(phys(at), 0, (usize)(lay.esym - at));
	}
	for (u32 i = 1; i < module_count; i++)
		memcpy(phys(modules[i].dest), modules[i].data, (usize)modules[i].size);
	memcpy(phys(lay.modulep), md, md_len);
	memcpy(phys(lay.envp), env, env_len);
	*(u8 *)phys(lay.envp + env_len) = 0;
}

/* ---- the handover ---- */

static void cpuid(u32 leaf, u32 *a, u32 *d)
{
	u32 b, c;
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(b), "=c"(c), "=d"(*d) : "a"(leaf), "c"(0));
}

static void check_long_mode(void)
{
	u32 a, d;
	cpuid(0x80000000u, &a, &d);
	if (a >= 0x80000001u) {
		cpuid(0x80000001u, &a, &d);
		if (d & (1u << 29))
			return;
	}
	fail("the CPU has no long mode: FreeBSD amd64 kernels need a 64-bit CPU (-cpu max)");
}

/* As FreeBSD's BIOS loader builds them: every slot of each level points to the one page
 * directory, which maps the first 1 GiB with 2 MiB pages. The kernel reads its own load
 * address from them. */
static void build_page_tables(void)
{
	for (u32 i = 0; i < 512; i++) {
		boot_pml4[i] = (u32)(usize)boot_pdpt | PG_V | PG_RW;
		boot_pdpt[i] = (u32)(usize)boot_pd | PG_V | PG_RW;
		boot_pd[i] = ((u64)i << 21) | PG_V | PG_RW | PG_PS;
	}
}

void stub_main(u32 start_info)
{
	serial_init();
	read_start_info(start_info);
	check_long_mode();
	check_kernel(read_module0() ? "the boot container's kernel" : "module 0");
	parse_cmdline();
	lay_out();
	check_memory();
	place();
	build_page_tables();
	boot_entry = kernel.entry;
	boot_modulep = (u32)lay.modulep;
	boot_kernend = (u32)lay.kernend;
	enter_kernel();
}

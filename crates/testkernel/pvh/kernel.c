/*
 * vmlane's PVH test kernel. It stands in for a FreeBSD kernel in vmlane's end-to-end tests,
 * since no real one can be downloaded in CI: it reports on the serial port what QEMU handed
 * it, then prints what vmlane's FreeBSD guest init (or a panicking FreeBSD) would, as the
 * command line's `vmlane_test.action=` asks: results on COM2 as frames when the command line
 * gives that port (`hint.uart.1.port=`), else marker lines on the console.
 *
 * entry.S calls kmain in 32-bit protected mode with paging off, so physical addresses, MMIO
 * included, are used as they are.
 */

#include "common.h"

/*
 * The symbols by which vmlane recognises a FIRECRACKER-style FreeBSD kernel (virtio-mmio
 * devices from the command line, CPUs from an MP table, the virtio network driver): with
 * them this kernel is booted on microvm, and given a network card, as such kernels are.
 */
__attribute__((used)) const int vtmmio_cmdline_driver = 0;
__attribute__((used)) void mptable_probe(void) {}
__attribute__((used)) const int vtnet_driver = 0;

void kmain(u32 start_info);

#define HVM_START_MAGIC 0x336ec578u

/* Xen's struct hvm_start_info, as QEMU fills it in (the PVH boot ABI). */
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

struct hvm_memmap_entry {
	u64 addr;
	u64 size;
	u32 type;
	u32 reserved;
};

/* ---- the command line ---- */

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The next word of `line` from *pos on; empty at the end. */
static struct str next_word(struct str line, usize *pos)
{
	usize start;
	while (*pos < line.n && is_space(line.p[*pos]))
		(*pos)++;
	start = *pos;
	while (*pos < line.n && !is_space(line.p[*pos]))
		(*pos)++;
	return (struct str){line.p + start, *pos - start};
}

/* The value of the last `key=value` word (later words win, as in Linux and FreeBSD). */
static struct str param(struct str line, const char *key, const char *fallback)
{
	struct str found = {fallback, 0}, word, value;
	usize pos = 0;
	while (fallback[found.n])
		found.n++;
	while ((word = next_word(line, &pos)).n)
		if (strip_prefix(word, key, &value))
			found = value;
	return found;
}

static int has_word(struct str line, const char *text)
{
	struct str word;
	usize pos = 0;
	while ((word = next_word(line, &pos)).n)
		if (equals(word, text))
			return 1;
	return 0;
}

/* A size or address as Linux's memparse reads it: a number, then maybe K, M, G, T, P or E. */
static int take_size(struct str *s, u64 *out)
{
	static const char suffixes[] = "kmgtpe";
	if (!take_number(s, 0, out))
		return 0;
	if (s->n) {
		for (int i = 0; suffixes[i]; i++) {
			if ((s->p[0] | 0x20) == suffixes[i]) {
				*out <<= 10 * (i + 1);
				s->p++;
				s->n--;
				break;
			}
		}
	}
	return 1;
}

static int take_char(struct str *s, char c)
{
	if (!s->n || s->p[0] != c)
		return 0;
	s->p++;
	s->n--;
	return 1;
}

/* ---- what QEMU handed over ---- */

static void report_memmap(const struct hvm_start_info *info)
{
	const struct hvm_memmap_entry *map;
	if (info->version < 1 || !info->memmap_paddr || info->memmap_paddr > 0xffffffffu)
		return;
	map = (const struct hvm_memmap_entry *)(usize)info->memmap_paddr;
	for (u32 i = 0; i < info->memmap_entries; i++) {
		print("vmlane-testkernel: memmap: addr=");
		print_hex(map[i].addr);
		print(" size=");
		print_hex(map[i].size);
		print(" type=");
		print_dec(map[i].type);
		print("\n");
	}
}

static u32 mmio_read32(u32 addr)
{
	return *(volatile const u32 *)(usize)addr;
}

/* `virtio_mmio.device=<size>@<addr>:<irq>[:<id>]`, as QEMU's microvm adds them without ACPI. */
static void report_virtio_mmio(struct str spec, struct str word)
{
	u64 size, addr, irq, id;
	if (!take_size(&spec, &size) || !take_char(&spec, '@') || !take_size(&spec, &addr) ||
	    !take_char(&spec, ':') || !take_number(&spec, 10, &irq) ||
	    (take_char(&spec, ':') && !take_number(&spec, 10, &id)) || spec.n) {
		print("vmlane-testkernel: virtio_mmio: cannot parse ");
		print_str(word);
		print("\n");
		return;
	}
	print("vmlane-testkernel: virtio_mmio: addr=");
	print_hex(addr);
	print(" size=");
	print_hex(size);
	print(" irq=");
	print_dec((u32)irq);
	if (addr > 0xfffffff0u) {
		print(" out of reach without paging\n");
		return;
	}
	print(" magic=");
	print_hex(mmio_read32((u32)addr));
	print(" version=");
	print_dec(mmio_read32((u32)addr + 4));
	print(" device_id=");
	print_dec(mmio_read32((u32)addr + 8));
	print("\n");
}

/* Frames of a real FreeBSD kernel's panic: this kernel has no symbols to name its own. */
void vmlane_backtrace(void)
{
	print("#0 0xffffffff80b8f1ad at kdb_backtrace+0x5d\n"
	      "#1 0xffffffff80b40ba2 at vpanic+0x132\n"
	      "#2 0xffffffff80b40a63 at panic+0x43\n"
	      "#3 0xffffffff80f6a3c1 at vmlane_test_panic+0x11\n");
}

void kmain(u32 start_info)
{
	const struct hvm_start_info *info = (const struct hvm_start_info *)(usize)start_info;
	struct str line = {"", 0}, word, spec;
	usize pos = 0;

	serial_init();
	if (!info || info->magic != HVM_START_MAGIC) {
		print("vmlane-testkernel: no PVH start info\n");
		reset();
	}
	if (info->cmdline_paddr && info->cmdline_paddr <= 0xffffffffu)
		line = str_from((const char *)(usize)info->cmdline_paddr, 65536);
	print("vmlane-testkernel: cmdline: ");
	print_str(line);
	print("\n");
	report_memmap(info);
	while ((word = next_word(line, &pos)).n)
		if (strip_prefix(word, "virtio_mmio.device=", &spec))
			report_virtio_mmio(spec, word);
	vmlane_act(param(line, "vmlane.token=", "?"), param(line, "vmlane_test.action=", "exit:0"),
		   has_word(line, "vmlane_test.debugger=1"),
		   equals(param(line, "hint.uart.1.port=", ""), CHANNEL_PORT_HINT));
}

// The numbers the boot stub and the host side must agree on. `build.rs` includes this file and
// hands every constant to the stub's C code as a `#define`, so the two cannot drift apart.

/// Where the stub is linked. Its whole image (stack and page tables included) stays below
/// `KERNEL_MIN`.
pub const STUB_BASE: u64 = 0x10_0000;
/// The lowest address a kernel segment may load at: everything below belongs to the stub.
pub const KERNEL_MIN: u64 = 0x20_0000;
/// The boot page tables map the first 1 GiB only, and the kernel reads its metadata, symbols
/// and environment before it builds its own: everything the stub places must end below this.
pub const MAPPED_LIMIT: u64 = 1 << 30;
pub const PAGE_SIZE: u64 = 4096;
/// The longest command line the stub takes, its NUL included.
pub const CMDLINE_MAX: u64 = 8192;
/// The environment block the stub builds from the command line: room for every word of the
/// longest command line, the `_N` suffixes of repeated `virtio_mmio.device` words and the
/// variables the stub adds itself.
pub const ENV_MAX: u64 = 2 * CMDLINE_MAX;
/// The metadata records: the kernel's, an SMAP of `MEMMAP_MAX` entries and `MODULES_MAX`
/// modules' records fit with room to spare.
pub const METADATA_MAX: u64 = 12288;
/// Memory map entries the stub copies from the PVH start info.
pub const MEMMAP_MAX: u64 = 128;
/// Loadable segments of a kernel.
pub const SEGMENTS_MAX: u64 = 16;
/// Entries of a container, the kernel included.
pub const MODULES_MAX: u64 = 32;
/// The container: a header of magic, count and a reserved word, then one entry per module.
pub const CONTAINER_HEADER_SIZE: u64 = 16;
pub const CONTAINER_ENTRY_SIZE: u64 = 112;
pub const CONTAINER_NAME_LEN: u64 = 64;
pub const CONTAINER_TYPE_LEN: u64 = 32;
/// What QEMU keeps above the module it loads at the top of low memory (ACPI tables and the
/// module's own page rounding), with a margin.
pub const TOP_RESERVE: u64 = 1 << 20;

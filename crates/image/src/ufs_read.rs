//! A read-only UFS reader, for images vmlane wrote (bare file systems, no partition table):
//! the superblock (where FreeBSD looks for it, held to the layout rules FreeBSD's own
//! validation applies), inodes found through their cylinder groups, directories, symlinks and
//! file contents through direct and indirect blocks. UFS2, and UFS1, which is what vmlane
//! writes with NetBSD's makefs. Little-endian only.
//!
//! Images are untrusted input: every offset and size is checked against the image, reads
//! are bounded, and nothing here panics on a damaged image; it says what is wrong instead.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Where FreeBSD takes each version's superblock from (it refuses a UFS2 one elsewhere).
const SBLOCK_UFS2: u64 = 65536;
const SBLOCK_UFS1: u64 = 8192;
const SBLOCKSIZE: u64 = 8192;
/// The part of the superblock read: up to and including `fs_magic`.
const SUPERBLOCK_READ: usize = 1376;
const FS_UFS2_MAGIC: u32 = 0x1954_0119;
const FS_UFS1_MAGIC: u32 = 0x0001_1954;
const NDADDR: usize = 12;
const NIADDR: usize = 3;
/// The root directory's inode.
pub(crate) const ROOT_INO: u32 = 2;
/// Largest directory read, in bytes.
const MAX_DIRECTORY: u64 = 32 << 20;

pub(crate) const IFMT: u16 = 0o170000;
pub(crate) const IFDIR: u16 = 0o040000;
pub(crate) const IFREG: u16 = 0o100000;
pub(crate) const IFLNK: u16 = 0o120000;

/// Why an image cannot be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UfsError {
    /// The host could not read the image file.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// No UFS superblock where FreeBSD looks for one.
    #[error("no UFS superblock at byte 65536 or 8192 (a partitioned disk or another file system)")]
    NoSuperblock,
    /// The image contradicts itself.
    #[error("damaged UFS image: {0}")]
    Damaged(String),
}

fn damaged(what: impl Into<String>) -> UfsError {
    UfsError::Damaged(what.into())
}

/// An open UFS image.
pub(crate) struct Ufs {
    file: File,
    len: u64,
    /// 2 or 1.
    pub version: u8,
    fsize: u64,
    bsize: u64,
    frag: u64,
    iblkno: u64,
    ipg: u64,
    fpg: u64,
    ncg: u64,
    inopb: u64,
    nindir: u64,
    maxsymlinklen: u64,
    old_cgoffset: u64,
    old_cgmask: u32,
}

/// An inode, as far as reading files needs (owners, links and modes are for the tests
/// that check what makefs wrote).
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Inode {
    pub ino: u32,
    pub mode: u16,
    pub nlink: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    blocks: u64,
    db: [i64; NDADDR],
    ib: [i64; NIADDR],
    shortlink: Vec<u8>,
}

impl Inode {
    #[cfg(test)]
    pub fn perm(&self) -> u16 {
        self.mode & 0o7777
    }

    pub fn kind(&self) -> u16 {
        self.mode & IFMT
    }
}

/// Little-endian fields of a buffer whose length the caller checked.
fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
fn i32_at(b: &[u8], off: usize) -> i32 {
    u32_at(b, off) as i32
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from(u32_at(b, off)) | (u64::from(u32_at(b, off + 4)) << 32)
}
fn i64_at(b: &[u8], off: usize) -> i64 {
    u64_at(b, off) as i64
}

impl Ufs {
    /// Opens the image at `path` and checks its superblock.
    pub fn read_image(path: &Path) -> Result<Ufs, UfsError> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ufs::from_file(file, len)
    }

    fn from_file(file: File, len: u64) -> Result<Ufs, UfsError> {
        let read_superblock = |loc: u64| -> Option<Vec<u8>> {
            let mut sb = vec![0u8; SUPERBLOCK_READ];
            file.read_exact_at(&mut sb, loc).ok()?;
            Some(sb)
        };
        let magic_at = |loc: u64, magic: u32| {
            read_superblock(loc).filter(|sb| u32_at(sb, SUPERBLOCK_READ - 4) == magic)
        };
        let (version, sb, loc) = if let Some(sb) = magic_at(SBLOCK_UFS2, FS_UFS2_MAGIC) {
            (2, sb, SBLOCK_UFS2)
        } else if let Some(sb) = magic_at(SBLOCK_UFS1, FS_UFS1_MAGIC) {
            (1, sb, SBLOCK_UFS1)
        } else {
            return Err(UfsError::NoSuperblock);
        };
        let field = |off| u64::from(u32_at(&sb, off));
        let fs = Ufs {
            file,
            len,
            version,
            iblkno: field(16),
            ncg: field(44),
            bsize: field(48),
            fsize: field(52),
            frag: field(56),
            nindir: field(116),
            inopb: field(120),
            ipg: field(184),
            fpg: field(188),
            maxsymlinklen: field(1320),
            old_cgoffset: field(24),
            old_cgmask: u32_at(&sb, 28),
        };
        fs.check_layout(&sb, loc)?;
        Ok(fs)
    }

    /// The rules FreeBSD's superblock validation applies to sizes and to where the
    /// superblock copy, cylinder group header, inodes and data sit in each group.
    fn check_layout(&self, sb: &[u8], loc: u64) -> Result<(), UfsError> {
        let require = |ok: bool, what: &str| if ok { Ok(()) } else { Err(damaged(what)) };
        let field = |off| u64::from(u32_at(sb, off));
        let (sblkno, cblkno, dblkno) = (field(8), field(12), field(20));
        require(
            self.bsize.is_power_of_two() && (4096..=65536).contains(&self.bsize),
            "block size",
        )?;
        require(
            self.fsize.is_power_of_two() && self.fsize >= 512 && self.fsize <= self.bsize,
            "fragment size",
        )?;
        require(
            self.fsize * self.frag == self.bsize && self.frag <= 8,
            "fragments per block",
        )?;
        require(
            self.ipg > 0 && self.fpg > 0 && self.ncg > 0,
            "cylinder groups",
        )?;
        require(u64_at(sb, 1000) == loc, "fs_sblockloc")?;
        let ptr = if self.version == 2 { 8 } else { 4 };
        require(
            self.inopb == self.bsize / self.inode_size(),
            "inodes per block",
        )?;
        require(self.nindir == self.bsize / ptr, "pointers per block")?;
        require(self.maxsymlinklen == 15 * ptr, "short symlink length")?;
        let roundup = |x: u64, y: u64| x.div_ceil(y) * y;
        require(
            sblkno == roundup((loc + SBLOCKSIZE).div_ceil(self.fsize), self.frag),
            "superblock copy offset",
        )?;
        require(
            cblkno == sblkno + roundup(SBLOCKSIZE.div_ceil(self.fsize), self.frag),
            "cylinder group offset",
        )?;
        require(self.iblkno == cblkno + self.frag, "inode offset")?;
        let inopf = self.inopb / self.frag;
        require(
            inopf > 0 && dblkno == self.iblkno + self.ipg / inopf,
            "data offset",
        )
    }

    fn inode_size(&self) -> u64 {
        if self.version == 2 {
            256
        } else {
            128
        }
    }

    /// `count` bytes at `offset`, which must lie inside the image.
    fn bytes(&self, offset: u64, count: u64) -> Result<Vec<u8>, UfsError> {
        let end = offset
            .checked_add(count)
            .filter(|&end| end <= self.len)
            .ok_or_else(|| damaged(format!("a read at byte {offset} past the image's end")))?;
        let mut buf = vec![0u8; (end - offset) as usize];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// The byte offset of fragment address `addr`.
    fn fragment(&self, addr: i64) -> Result<u64, UfsError> {
        u64::try_from(addr)
            .ok()
            .and_then(|a| a.checked_mul(self.fsize))
            .filter(|&off| off < self.len)
            .ok_or_else(|| damaged(format!("block address {addr} outside the image")))
    }

    /// The start of cylinder group `cg` (UFS1 may stagger groups; makefs does not).
    fn cgstart(&self, cg: u64) -> Option<u64> {
        let base = self.fpg.checked_mul(cg)?;
        if self.version == 2 {
            Some(base)
        } else {
            let stagger = cg & !u64::from(self.old_cgmask) & 0xffff_ffff;
            base.checked_add(self.old_cgoffset.checked_mul(stagger)?)
        }
    }

    /// Inode `ino`.
    pub fn inode(&self, ino: u32) -> Result<Inode, UfsError> {
        let ino64 = u64::from(ino);
        let bad = || damaged(format!("inode {ino} outside the inode table"));
        if ino64 >= self.ipg.checked_mul(self.ncg).ok_or_else(bad)? {
            return Err(bad());
        }
        let cg = ino64 / self.ipg;
        // The inode's block: the group's start, its inode area, the block within it.
        let fsba = self
            .cgstart(cg)
            .and_then(|s| s.checked_add(self.iblkno))
            .and_then(|s| s.checked_add(((ino64 % self.ipg) / self.inopb) * self.frag))
            .ok_or_else(bad)?;
        let offset = fsba
            .checked_mul(self.fsize)
            .and_then(|o| o.checked_add((ino64 % self.inopb) * self.inode_size()))
            .ok_or_else(bad)?;
        let d = self.bytes(offset, self.inode_size())?;
        Ok(if self.version == 2 {
            Inode {
                ino,
                mode: u16_at(&d, 0),
                nlink: u16_at(&d, 2),
                uid: u32_at(&d, 4),
                gid: u32_at(&d, 8),
                size: u64_at(&d, 16),
                blocks: u64_at(&d, 24),
                db: std::array::from_fn(|i| i64_at(&d, 112 + 8 * i)),
                ib: std::array::from_fn(|i| i64_at(&d, 208 + 8 * i)),
                shortlink: d[112..232].to_vec(),
            }
        } else {
            Inode {
                ino,
                mode: u16_at(&d, 0),
                nlink: u16_at(&d, 2),
                uid: u32_at(&d, 112),
                gid: u32_at(&d, 116),
                size: u64_at(&d, 8),
                blocks: u64::from(u32_at(&d, 104)),
                db: std::array::from_fn(|i| i64::from(i32_at(&d, 40 + 4 * i))),
                ib: std::array::from_fn(|i| i64::from(i32_at(&d, 88 + 4 * i))),
                shortlink: d[40..100].to_vec(),
            }
        })
    }

    /// Entry `index` of the indirect block at `addr`.
    fn pointer(&self, addr: i64, index: u64) -> Result<i64, UfsError> {
        let ptr = if self.version == 2 { 8 } else { 4 };
        let at = self.fragment(addr)? + index * ptr;
        let b = self.bytes(at, ptr)?;
        Ok(if self.version == 2 {
            i64_at(&b, 0)
        } else {
            i64::from(i32_at(&b, 0))
        })
    }

    /// The address of logical block `lbn`, 0 for a hole.
    fn bmap(&self, inode: &Inode, lbn: u64) -> Result<i64, UfsError> {
        if lbn < NDADDR as u64 {
            return Ok(inode.db[lbn as usize]);
        }
        let mut lbn = lbn - NDADDR as u64;
        let mut span = 1u64;
        for (level, &top) in inode.ib.iter().enumerate() {
            span = span.saturating_mul(self.nindir);
            if lbn >= span {
                lbn -= span;
                continue;
            }
            // Down the levels: each step picks the entry covering lbn.
            let mut addr = top;
            let mut below = span;
            for _ in 0..=level {
                if addr == 0 {
                    return Ok(0);
                }
                below /= self.nindir;
                addr = self.pointer(addr, lbn / below)?;
                lbn %= below;
            }
            return Ok(addr);
        }
        Err(damaged(format!(
            "inode {} is larger than UFS allows",
            inode.ino
        )))
    }

    /// Up to `buf.len()` bytes of `inode`'s contents from byte `pos`; 0 at the end.
    fn read_at(&self, inode: &Inode, pos: u64, buf: &mut [u8]) -> Result<usize, UfsError> {
        if pos >= inode.size || buf.is_empty() {
            return Ok(0);
        }
        let (lbn, within) = (pos / self.bsize, pos % self.bsize);
        let count = (buf.len() as u64)
            .min(self.bsize - within)
            .min(inode.size - pos) as usize;
        match self.bmap(inode, lbn)? {
            0 => buf[..count].fill(0),
            addr => {
                let at = self.fragment(addr)? + within;
                let bytes = self.bytes(at, count as u64)?;
                buf[..count].copy_from_slice(&bytes);
            }
        }
        Ok(count)
    }

    /// Up to `limit` bytes of `inode`'s contents (a short symlink's target is in the inode).
    pub fn contents(&self, inode: &Inode, limit: u64) -> Result<Vec<u8>, UfsError> {
        if inode.kind() == IFLNK && inode.size < self.maxsymlinklen && inode.blocks == 0 {
            let len = (inode.size.min(limit) as usize).min(inode.shortlink.len());
            return Ok(inode.shortlink[..len].to_vec());
        }
        let want = inode.size.min(limit);
        let mut out = vec![0u8; usize::try_from(want).map_err(|_| damaged("file size"))?];
        let mut done = 0;
        while done < out.len() {
            let n = self.read_at(inode, done as u64, &mut out[done..])?;
            if n == 0 {
                break;
            }
            done += n;
        }
        out.truncate(done);
        Ok(out)
    }

    /// A directory's entries, `.` and `..` included: (name, inode, d_type).
    pub fn dir_entries(&self, dir: &Inode) -> Result<Vec<(Vec<u8>, u32, u8)>, UfsError> {
        if dir.kind() != IFDIR {
            return Err(damaged(format!("inode {} is not a directory", dir.ino)));
        }
        if dir.size > MAX_DIRECTORY {
            return Err(damaged(format!("directory inode {} is too large", dir.ino)));
        }
        let data = self.contents(dir, MAX_DIRECTORY)?;
        let mut entries = Vec::new();
        let mut off = 0;
        while off + 8 <= data.len() {
            let ino = u32_at(&data, off);
            let reclen = usize::from(u16_at(&data, off + 4));
            let dtype = data[off + 6];
            let namlen = usize::from(data[off + 7]);
            if reclen < 8 || off + reclen > data.len() || namlen > reclen - 8 {
                return Err(damaged(format!(
                    "directory inode {} entry at {off}",
                    dir.ino
                )));
            }
            if ino != 0 {
                entries.push((data[off + 8..off + 8 + namlen].to_vec(), ino, dtype));
            }
            off += reclen;
        }
        Ok(entries)
    }

    /// A reader over a regular file's contents.
    pub fn reader(&self, inode: Inode) -> UfsFile<'_> {
        UfsFile {
            fs: self,
            inode,
            pos: 0,
        }
    }
}

/// A file in a UFS image, read block by block as asked.
pub(crate) struct UfsFile<'a> {
    fs: &'a Ufs,
    inode: Inode,
    pos: u64,
}

impl Read for UfsFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .fs
            .read_at(&self.inode, self.pos, buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for UfsFile<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.inode.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

/// Conveniences for tests that check what makefs wrote: they panic on any error.
#[cfg(test)]
impl Ufs {
    pub fn open(path: &Path) -> Ufs {
        Ufs::read_image(path).unwrap()
    }

    /// The inode at `path` (absolute), following no symlinks; `None` if it is not there.
    pub fn find(&self, path: &[u8]) -> Result<Option<Inode>, UfsError> {
        let mut inode = self.inode(ROOT_INO)?;
        for name in path.split(|&b| b == b'/').filter(|n| !n.is_empty()) {
            if inode.kind() != IFDIR {
                return Ok(None);
            }
            let found = self
                .dir_entries(&inode)?
                .into_iter()
                .find(|(n, _, _)| n == name);
            match found {
                Some((_, ino, _)) => inode = self.inode(ino)?,
                None => return Ok(None),
            }
        }
        Ok(Some(inode))
    }

    pub fn lookup(&self, path: &str) -> Option<Inode> {
        self.find(path.as_bytes()).unwrap()
    }

    pub fn read(&self, inode: &Inode) -> Vec<u8> {
        self.contents(inode, u64::MAX).unwrap()
    }

    pub fn file(&self, path: &str) -> Vec<u8> {
        let inode = self
            .lookup(path)
            .unwrap_or_else(|| panic!("{path} is not in the image"));
        self.read(&inode)
    }

    pub fn names(&self, path: &str) -> Vec<String> {
        let dir = self.lookup(path).unwrap();
        let mut names: Vec<String> = self
            .dir_entries(&dir)
            .unwrap()
            .into_iter()
            .map(|(n, _, _)| String::from_utf8_lossy(&n).into_owned())
            .filter(|n| n != "." && n != "..")
            .collect();
        names.sort();
        names
    }
}

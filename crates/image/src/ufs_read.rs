//! A small read-only UFS reader for checking what makefs wrote: the superblock (where
//! FreeBSD looks for it, laid out as FreeBSD requires), inodes found through their cylinder
//! groups, directories and file contents (direct, single and double indirect blocks).
//! UFS2, and UFS1, which is what vmlane writes with NetBSD's makefs. Little-endian only.

use std::path::Path;

/// Where FreeBSD takes each version's superblock from (it refuses a UFS2 one elsewhere).
const SBLOCK_UFS2: u64 = 65536;
const SBLOCK_UFS1: u64 = 8192;
const SBLOCKSIZE: u64 = 8192;
const FS_UFS2_MAGIC: u32 = 0x1954_0119;
const FS_UFS1_MAGIC: u32 = 0x0001_1954;
const NDADDR: usize = 12;
pub const ROOT_INO: u32 = 2;

pub const IFMT: u16 = 0o170000;
pub const IFDIR: u16 = 0o040000;
pub const IFREG: u16 = 0o100000;
pub const IFLNK: u16 = 0o120000;

pub struct Ufs {
    data: Vec<u8>,
    /// 2 or 1.
    pub version: u8,
    fsize: u64,
    bsize: u64,
    frag: u64,
    iblkno: u64,
    ipg: u64,
    fpg: u64,
    inopb: u64,
    nindir: u64,
    maxsymlinklen: u64,
    old_cgoffset: u64,
    old_cgmask: u32,
}

#[derive(Debug, Clone)]
pub struct Inode {
    pub ino: u32,
    pub mode: u16,
    pub nlink: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    blocks: u64,
    db: [i64; NDADDR],
    ib: [i64; 3],
    shortlink: Vec<u8>,
}

impl Inode {
    pub fn perm(&self) -> u16 {
        self.mode & 0o7777
    }

    pub fn kind(&self) -> u16 {
        self.mode & IFMT
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
fn i32_at(b: &[u8], off: usize) -> i32 {
    i32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
fn i64_at(b: &[u8], off: usize) -> i64 {
    i64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

impl Ufs {
    pub fn open(path: &Path) -> Ufs {
        Ufs::new(std::fs::read(path).unwrap())
    }

    /// Finds the superblock as FreeBSD does and checks the layout rules FreeBSD's
    /// superblock validation applies to where things are.
    pub fn new(data: Vec<u8>) -> Ufs {
        let at = |loc: u64| &data[loc as usize..(loc + 1376) as usize];
        let (version, sb, loc) = if u32_at(at(SBLOCK_UFS2), 1372) == FS_UFS2_MAGIC {
            (2, at(SBLOCK_UFS2), SBLOCK_UFS2)
        } else if u32_at(at(SBLOCK_UFS1), 1372) == FS_UFS1_MAGIC {
            (1, at(SBLOCK_UFS1), SBLOCK_UFS1)
        } else {
            panic!("no superblock where FreeBSD looks for one")
        };
        let field = |off| u32_at(sb, off) as u64;
        let (sblkno, cblkno, dblkno) = (field(8), field(12), field(20));
        let sblockloc = i64_at(sb, 1000) as u64;
        let mut fs = Ufs {
            version,
            iblkno: field(16),
            bsize: field(48),
            fsize: field(52),
            frag: field(56),
            nindir: field(116),
            inopb: field(120),
            ipg: field(184),
            fpg: field(188),
            maxsymlinklen: field(1320),
            old_cgoffset: field(24),
            old_cgmask: u32_at(sb, 28),
            data: Vec::new(),
        };
        // fs_sblockloc, and the offsets of the superblock copy, cylinder group header,
        // inodes and data in each group.
        assert_eq!(sblockloc, loc, "fs_sblockloc");
        let roundup = |x: u64, y: u64| x.div_ceil(y) * y;
        assert_eq!(
            sblkno,
            roundup((loc + SBLOCKSIZE).div_ceil(fs.fsize), fs.frag)
        );
        assert_eq!(
            cblkno,
            sblkno + roundup(SBLOCKSIZE.div_ceil(fs.fsize), fs.frag)
        );
        assert_eq!(fs.iblkno, cblkno + fs.frag);
        let inode_size = if version == 2 { 256 } else { 128 };
        let inopf = fs.inopb / fs.frag;
        assert_eq!(dblkno, fs.iblkno + fs.ipg / inopf);
        assert_eq!(fs.inopb, fs.bsize / inode_size);
        assert_eq!(fs.nindir, fs.bsize / if version == 2 { 8 } else { 4 });
        assert_eq!(fs.maxsymlinklen, 15 * if version == 2 { 8 } else { 4 });
        assert_eq!(fs.fsize * fs.frag, fs.bsize);
        fs.data = data;
        fs
    }

    fn inode_size(&self) -> usize {
        if self.version == 2 {
            256
        } else {
            128
        }
    }

    /// The start of cylinder group `cg` (UFS1 may stagger groups; makefs does not).
    fn cgstart(&self, cg: u64) -> u64 {
        let base = self.fpg * cg;
        if self.version == 2 {
            base
        } else {
            base + self.old_cgoffset * (cg & !(self.old_cgmask as u64) & 0xffff_ffff)
        }
    }

    pub fn inode(&self, ino: u32) -> Inode {
        let ino64 = ino as u64;
        let cg = ino64 / self.ipg;
        // The inode's block: the group's start, its inode area, the block within it.
        let fsba = self.cgstart(cg) + self.iblkno + ((ino64 % self.ipg) / self.inopb) * self.frag;
        let size = self.inode_size();
        let off = (fsba * self.fsize) as usize + (ino64 % self.inopb) as usize * size;
        let d = &self.data[off..off + size];
        let mut db = [0i64; NDADDR];
        if self.version == 2 {
            for (i, slot) in db.iter_mut().enumerate() {
                *slot = i64_at(d, 112 + 8 * i);
            }
            Inode {
                ino,
                mode: u16_at(d, 0),
                nlink: u16_at(d, 2),
                uid: u32_at(d, 4),
                gid: u32_at(d, 8),
                size: u64::from_le_bytes(d[16..24].try_into().unwrap()),
                blocks: u64::from_le_bytes(d[24..32].try_into().unwrap()),
                db,
                ib: [i64_at(d, 208), i64_at(d, 216), i64_at(d, 224)],
                shortlink: d[112..232].to_vec(),
            }
        } else {
            for (i, slot) in db.iter_mut().enumerate() {
                *slot = i32_at(d, 40 + 4 * i) as i64;
            }
            Inode {
                ino,
                mode: u16_at(d, 0),
                nlink: u16_at(d, 2),
                uid: u32_at(d, 112),
                gid: u32_at(d, 116),
                size: u64::from_le_bytes(d[8..16].try_into().unwrap()),
                blocks: u32_at(d, 104) as u64,
                db,
                ib: [
                    i32_at(d, 88) as i64,
                    i32_at(d, 92) as i64,
                    i32_at(d, 96) as i64,
                ],
                shortlink: d[40..100].to_vec(),
            }
        }
    }

    fn block(&self, addr: i64, len: usize) -> &[u8] {
        let off = addr as usize * self.fsize as usize;
        &self.data[off..off + len]
    }

    fn pointers(&self, addr: i64) -> Vec<i64> {
        let block = self.block(addr, self.bsize as usize);
        (0..self.nindir as usize)
            .map(|i| {
                if self.version == 2 {
                    i64_at(block, 8 * i)
                } else {
                    i32_at(block, 4 * i) as i64
                }
            })
            .collect()
    }

    /// The address of logical block `lbn`, 0 for a hole.
    fn bmap(&self, inode: &Inode, lbn: u64) -> i64 {
        if lbn < NDADDR as u64 {
            return inode.db[lbn as usize];
        }
        let lbn = lbn - NDADDR as u64;
        if lbn < self.nindir {
            return match inode.ib[0] {
                0 => 0,
                ind => self.pointers(ind)[lbn as usize],
            };
        }
        let lbn = lbn - self.nindir;
        assert!(
            lbn < self.nindir * self.nindir,
            "triple indirect blocks not read"
        );
        match inode.ib[1] {
            0 => 0,
            dind => match self.pointers(dind)[(lbn / self.nindir) as usize] {
                0 => 0,
                ind => self.pointers(ind)[(lbn % self.nindir) as usize],
            },
        }
    }

    pub fn read(&self, inode: &Inode) -> Vec<u8> {
        if inode.kind() == IFLNK && inode.size < self.maxsymlinklen && inode.blocks == 0 {
            return inode.shortlink[..inode.size as usize].to_vec();
        }
        let mut out = Vec::with_capacity(inode.size as usize);
        let mut lbn = 0;
        while (out.len() as u64) < inode.size {
            let len = (inode.size - out.len() as u64).min(self.bsize) as usize;
            match self.bmap(inode, lbn) {
                0 => out.resize(out.len() + len, 0),
                addr => out.extend_from_slice(self.block(addr, len)),
            }
            lbn += 1;
        }
        out
    }

    /// A directory's entries, `.` and `..` included: (name, inode, d_type).
    pub fn entries(&self, dir: &Inode) -> Vec<(Vec<u8>, u32, u8)> {
        assert_eq!(dir.kind(), IFDIR, "inode {} is not a directory", dir.ino);
        let data = self.read(dir);
        let mut entries = Vec::new();
        let mut off = 0;
        while off + 8 <= data.len() {
            let ino = u32_at(&data, off);
            let reclen = u16_at(&data, off + 4) as usize;
            let dtype = data[off + 6];
            let namlen = data[off + 7] as usize;
            assert!(reclen >= 8, "broken directory entry at {off}");
            if ino != 0 {
                entries.push((data[off + 8..off + 8 + namlen].to_vec(), ino, dtype));
            }
            off += reclen;
        }
        entries
    }

    /// The inode at `path` (absolute), following no symlinks; `None` if it is not there.
    pub fn lookup(&self, path: &str) -> Option<Inode> {
        let mut inode = self.inode(ROOT_INO);
        for name in path.split('/').filter(|n| !n.is_empty()) {
            let (_, ino, _) = self
                .entries(&inode)
                .into_iter()
                .find(|(n, _, _)| n == name.as_bytes())?;
            inode = self.inode(ino);
        }
        Some(inode)
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
            .entries(&dir)
            .into_iter()
            .map(|(n, _, _)| String::from_utf8_lossy(&n).into_owned())
            .filter(|n| n != "." && n != "..")
            .collect();
        names.sort();
        names
    }
}

//! From an unpacked kernel package to a kernel as the cache keeps it: `boot/vmlinuz-<release>`
//! (what QEMU loads), `boot/config-<release>`, `lib/modules/<release>`, and for x86 the
//! uncompressed `boot/vmlinux-<release>` that boots at its PVH entry.

use super::package::ImageKind;
use crate::image::bzimage;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Fills the cache's staging directory `stage` from the package unpacked at `package`.
pub fn stage(package: &Path, kind: ImageKind, release: &str, stage: &Path) -> io::Result<()> {
    let boot = stage.join("boot");
    std::fs::create_dir_all(&boot)?;
    let image = boot.join(format!("vmlinuz-{release}"));
    std::fs::copy(package.join(kind.file_in_package(release)), &image)?;
    std::fs::copy(
        package.join(format!("boot/config-{release}")),
        boot.join(format!("config-{release}")),
    )?;
    // trixie moved modules to /usr/lib/modules; bookworm keeps /lib/modules.
    let modules = ["usr/lib/modules", "lib/modules"]
        .iter()
        .map(|dir| package.join(dir).join(release))
        .find(|dir| dir.is_dir())
        .ok_or_else(|| io::Error::other(format!("the package has no modules for {release}")))?;
    std::fs::create_dir_all(stage.join("lib/modules"))?;
    std::fs::rename(modules, stage.join("lib/modules").join(release))?;
    match kind {
        ImageKind::Arm64Image => gunzip_in_place(&image)?,
        ImageKind::BzImage => {
            let vmlinux = boot.join(format!("vmlinux-{release}"));
            // Without it the bzImage boots through its decompressor, seconds slower under TCG.
            if !extract_vmlinux(&image, &vmlinux)? {
                let _ = std::fs::remove_file(&vmlinux);
            }
        }
        ImageKind::S390Image | ImageKind::Vmlinux => {}
    }
    Ok(())
}

/// Some releases ship arm64's Image gzipped; QEMU's `virt` loads only the raw one.
fn gunzip_in_place(image: &Path) -> io::Result<()> {
    let data = std::fs::read(image)?;
    if !data.starts_with(b"\x1f\x8b") {
        return Ok(());
    }
    let raw = decompress("gzip", &[], &data)?;
    std::fs::write(image, raw)
}

/// Writes the ELF vmlinux compressed inside a bzImage's payload to `out`; false when the
/// payload's compression has no tool here or the result is no ELF file.
pub fn extract_vmlinux(bzimage: &Path, out: &Path) -> io::Result<bool> {
    let data = std::fs::read(bzimage)?;
    let Some(payload) = bzimage::payload(&data) else {
        return Ok(false);
    };
    let Some((tool, args)) = decompressor(payload) else {
        return Ok(false);
    };
    // The kernel appends the uncompressed size after the stream, which the tools report as
    // trailing garbage after writing everything: the ELF check below is what counts.
    let elf = match decompress(tool, args, payload) {
        Ok(elf) => elf,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !elf.starts_with(b"\x7fELF") {
        return Ok(false);
    }
    std::fs::write(out, elf)?;
    Ok(true)
}

/// The program that undoes a payload's compression, by its magic number.
fn decompressor(payload: &[u8]) -> Option<(&'static str, &'static [&'static str])> {
    const KINDS: &[(&[u8], &str, &[&str])] = &[
        (b"\x1f\x8b", "gzip", &[]),
        (b"\xfd7zXZ\0", "xz", &[]),
        (b"\x02\x21\x4c\x18", "lz4", &[]),
        (b"\x28\xb5\x2f\xfd", "zstd", &[]),
        (b"BZh", "bzip2", &[]),
        (b"\x5d\0\0", "xz", &["--format=lzma"]),
    ];
    KINDS
        .iter()
        .find(|(magic, _, _)| payload.starts_with(magic))
        .map(|(_, tool, args)| (*tool, *args))
}

/// `tool -dc` over `input`, whatever its exit status once it has written something.
fn decompress(tool: &str, args: &[&str], input: &[u8]) -> io::Result<Vec<u8>> {
    let mut child = Command::new(tool)
        .args(args)
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        // The tool may stop reading at the end of its stream: a broken pipe is expected.
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output()?;
    let _ = feeder.join();
    if output.stdout.is_empty() && !output.status.success() {
        return Err(io::Error::other(format!("{tool} -dc failed")));
    }
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        decompress_like("gzip", data)
    }

    /// `tool -c`, to make test payloads.
    fn decompress_like(tool: &str, data: &[u8]) -> Vec<u8> {
        let mut child = Command::new(tool)
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        child.wait_with_output().unwrap().stdout
    }

    /// A boot-protocol 2.15 image with `payload` at its payload offset, and the 4-byte size
    /// the kernel appends after it.
    fn fake_bzimage(payload: &[u8]) -> Vec<u8> {
        let mut image = vec![0u8; 5 * 512];
        image[0x1f1] = 4;
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        image[0x248..0x24c].copy_from_slice(&0x100u32.to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        image.extend(vec![0u8; 0x100]);
        image.extend_from_slice(payload);
        image.extend_from_slice(&12345u32.to_le_bytes());
        image
    }

    #[test]
    fn the_vmlinux_inside_a_bzimage_is_extracted_through_its_compressor() {
        let dir = tempfile::tempdir().unwrap();
        let elf = b"\x7fELF\x02\x01\x01 an uncompressed kernel".repeat(50);
        for tool in ["gzip", "xz"] {
            let image = dir.path().join(format!("vmlinuz-{tool}"));
            std::fs::write(&image, fake_bzimage(&decompress_like(tool, &elf))).unwrap();
            let out = dir.path().join(format!("vmlinux-{tool}"));
            assert!(extract_vmlinux(&image, &out).unwrap(), "{tool}");
            assert_eq!(std::fs::read(&out).unwrap(), elf, "{tool}");
        }
    }

    #[test]
    fn a_payload_that_is_no_elf_file_or_no_bzimage_extracts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("vmlinux");
        let image = dir.path().join("vmlinuz");
        std::fs::write(&image, fake_bzimage(&gzip(b"not a kernel"))).unwrap();
        assert!(!extract_vmlinux(&image, &out).unwrap());
        std::fs::write(&image, fake_bzimage(b"stored without compression")).unwrap();
        assert!(!extract_vmlinux(&image, &out).unwrap());
        std::fs::write(&image, b"MZ not a boot image").unwrap();
        assert!(!extract_vmlinux(&image, &out).unwrap());
        assert!(!out.exists());
    }

    #[test]
    fn a_package_is_staged_as_the_cache_keeps_kernels() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("package");
        let release = "6.1.0-57-arm64";
        std::fs::create_dir_all(package.join("boot")).unwrap();
        let mut raw = vec![0u8; 0x40];
        raw[0x38..0x3c].copy_from_slice(b"ARMd");
        std::fs::write(package.join(format!("boot/vmlinuz-{release}")), gzip(&raw)).unwrap();
        std::fs::write(
            package.join(format!("boot/config-{release}")),
            "CONFIG_ARM64=y\n",
        )
        .unwrap();
        let modules = package.join(format!("lib/modules/{release}/kernel"));
        std::fs::create_dir_all(&modules).unwrap();
        std::fs::write(modules.join("virtio_blk.ko"), "module").unwrap();
        let staged = dir.path().join("stage");
        stage(&package, ImageKind::Arm64Image, release, &staged).unwrap();
        assert_eq!(
            std::fs::read(staged.join(format!("boot/vmlinuz-{release}"))).unwrap(),
            raw,
            "gunzipped"
        );
        assert!(staged.join(format!("boot/config-{release}")).is_file());
        assert!(staged
            .join(format!("lib/modules/{release}/kernel/virtio_blk.ko"))
            .is_file());
    }

    #[test]
    fn a_package_without_modules_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("package");
        std::fs::create_dir_all(package.join("boot")).unwrap();
        std::fs::write(package.join("boot/vmlinux-6.1.0-50-powerpc64le"), "elf").unwrap();
        std::fs::write(package.join("boot/config-6.1.0-50-powerpc64le"), "").unwrap();
        let error = stage(
            &package,
            ImageKind::Vmlinux,
            "6.1.0-50-powerpc64le",
            &dir.path().join("stage"),
        )
        .unwrap_err();
        assert!(error.to_string().contains("no modules"), "{error}");
    }
}

//! `/boot/loader.conf` and where a custom kernel goes, the way `make installkernel
//! INSTKERNNAME=NAME NO_MODULES=yes` puts one: `/boot/NAME/kernel`, next to the stock
//! `/boot/kernel`, which stays bootable (`boot NAME` or `boot kernel` at the loader prompt).

use crate::error::ImageError;

/// The default `--kernel-name`.
pub const DEFAULT_KERNEL_NAME: &str = "vmlane";

/// Checks that `name` can be a directory in `/boot` that is not the stock kernel's.
pub fn validate_kernel_name(name: &str) -> Result<(), ImageError> {
    let reason = if name.is_empty() {
        "is empty"
    } else if name.contains('/') {
        "has a `/`; it names one directory in /boot"
    } else if name == "kernel" {
        "is the stock kernel's directory, which vmlane leaves alone so it still boots"
    } else if name == "." || name == ".." {
        "is not a directory name"
    } else if name.len() > 64 {
        "is too long"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
    {
        "may only have letters, digits and `._-+` (the loader reads it from a quoted string)"
    } else {
        return Ok(());
    };
    Err(ImageError::KernelName {
        name: name.to_string(),
        reason,
    })
}

/// What vmlane appends to loader.conf (later settings win): the serial console, which is
/// where vmlane reads the VM's output, no boot menu or countdown, the root file system, and
/// with a custom kernel, that kernel with the stock modules still findable.
pub fn loader_conf_additions(kernel_name: Option<&str>) -> String {
    let mut text = String::from(
        "\n# Added by vmlane for a throwaway test VM.\n\
         boot_serial=\"YES\"\n\
         console=\"comconsole\"\n\
         autoboot_delay=\"-1\"\n\
         beastie_disable=\"YES\"\n",
    );
    text.push_str(&format!(
        "vfs.root.mountfrom=\"ufs:{}\"\n",
        crate::fstab::ROOT_DEVICE
    ));
    if let Some(name) = kernel_name {
        text.push_str(&format!(
            "kernel=\"{name}\"\nmodule_path=\"/boot/kernel;/boot/modules;/boot/{name}\"\n"
        ));
    }
    text
}

/// loader.conf with vmlane's additions after what the source had (`None`: it had none).
pub fn loader_conf(existing: Option<&[u8]>, kernel_name: Option<&str>) -> Vec<u8> {
    let mut text = existing.unwrap_or_default().to_vec();
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    text.extend_from_slice(loader_conf_additions(kernel_name).as_bytes());
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_that_cannot_be_a_boot_directory_are_refused() {
        for bad in ["", "kernel", "a/b", "/vmlane", ".", "..", "a b", "x\"y"] {
            let error = validate_kernel_name(bad).unwrap_err();
            assert!(
                matches!(error, ImageError::KernelName { .. }),
                "{bad:?}: {error}"
            );
        }
        for good in ["vmlane", "kernel.debug", "FIRECRACKER", "test-1_2+x"] {
            validate_kernel_name(good).unwrap();
        }
        let message = validate_kernel_name("kernel").unwrap_err().to_string();
        assert!(message.contains("stock kernel"), "{message}");
    }

    #[test]
    fn a_custom_kernel_is_selected_with_the_stock_modules_on_the_path() {
        let text =
            String::from_utf8(loader_conf(Some(b"zfs_load=\"YES\""), Some("vmlane"))).unwrap();
        assert!(text.starts_with("zfs_load=\"YES\"\n"), "{text}");
        for line in [
            "kernel=\"vmlane\"",
            "module_path=\"/boot/kernel;/boot/modules;/boot/vmlane\"",
            "boot_serial=\"YES\"",
            "console=\"comconsole\"",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}: {text}");
        }
    }

    #[test]
    fn without_a_custom_kernel_only_the_console_is_set() {
        let text = loader_conf_additions(None);
        assert!(text.contains("console=\"comconsole\"\n"));
        assert!(!text.contains("kernel="), "{text}");
        assert!(!text.contains("module_path"), "{text}");
    }
}

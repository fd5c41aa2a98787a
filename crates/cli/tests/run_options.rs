//! `vmlane run --disk SIZE|IMAGE[,ro]`, `--net user`, `--forward` and `--gdb` end to end, on
//! real kernels and real QEMU.

mod common;

use common::{assert_code, has_program, kernels, text, Sandbox, TestKernel};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the kernel's config builds `CONFIG_<option>` in or as a module.
fn kernel_has(kernel: &TestKernel, option: &str) -> bool {
    let configs = std::fs::read_dir(kernel.dir.join("boot")).unwrap();
    configs.flatten().any(|entry| {
        let name = entry.file_name();
        name.to_string_lossy().starts_with("config-")
            && std::fs::read_to_string(entry.path()).is_ok_and(|config| {
                config
                    .lines()
                    .any(|l| l == format!("CONFIG_{option}=y") || l == format!("CONFIG_{option}=m"))
            })
    })
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn scratch_read_only_and_throwaway_disks_appear_in_order() {
    for kernel in kernels() {
        let sandbox = Sandbox::new();
        let image = sandbox.work().join("base.img");
        let mut content = b"vmlane-base-image".to_vec();
        content.resize(1 << 20, 0);
        std::fs::write(&image, &content).unwrap();
        let script = "\
            cat /sys/block/vda/size /sys/block/vda/ro /sys/block/vdb/ro /sys/block/vdc/ro; \
            printf scratch | dd of=/dev/vda conv=fsync 2>/dev/null && head -c 7 /dev/vda; echo; \
            head -c 17 /dev/vdb; echo; \
            printf x | dd of=/dev/vdb conv=fsync 2>/dev/null || echo vdb-refused-writes; \
            printf overwritten | dd of=/dev/vdc conv=notrunc,fsync 2>/dev/null; head -c 11 /dev/vdc; echo";
        let output = sandbox.run(
            &kernel,
            &[
                "--disk",
                "64M",
                "--disk",
                "base.img,ro",
                "--disk",
                "base.img",
            ],
            &["sh", "-c", script],
        );
        assert_code(&kernel, &output, 0);
        assert_eq!(
            text(&output.stdout),
            "131072\n0\n1\n0\nscratch\nvmlane-base-image\nvdb-refused-writes\noverwritten\n",
            "[{}] {}",
            kernel.label,
            text(&output.stderr)
        );
        assert_eq!(
            std::fs::read(&image).unwrap(),
            content,
            "[{}] the image changed",
            kernel.label
        );
    }
}

#[test]
fn unusable_disks_are_refused_before_any_vm_starts() {
    let Some(kernel) = kernels().into_iter().next() else {
        return;
    };
    let sandbox = Sandbox::new();
    let missing = sandbox.run(&kernel, &["--disk", "no-such.img,ro"], &["true"]);
    assert_code(&kernel, &missing, 125);
    let stderr = text(&missing.stderr);
    assert!(
        stderr.contains("no-such.img: it does not exist")
            && stderr.contains("or a size such as 1G"),
        "{stderr}"
    );
    for (disk, why) in [
        ("1G,ro", "cannot be read-only"),
        ("0M", "above zero"),
        ("", "empty"),
    ] {
        let output = sandbox.run(&kernel, &["--disk", disk], &["true"]);
        assert!(!output.status.success(), "--disk {disk:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(why), "--disk {disk:?}: {stderr}");
    }
    std::fs::write(sandbox.work().join("base.img"), [0u8; 512]).unwrap();
    let output = sandbox.run(&kernel, &["--disk", "base.img,rw"], &["true"]);
    assert!(
        text(&output.stderr).contains("unknown disk option `rw`"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn the_guest_reaches_a_server_on_the_hosts_loopback_at_10_0_2_2() {
    for kernel in kernels() {
        let sandbox = Sandbox::new();
        if !kernel_has(&kernel, "VIRTIO_NET") {
            // vmlane's own kernel has no NIC driver unless built with one.
            let output = sandbox.run(&kernel, &["--net", "user"], &["true"]);
            assert_code(&kernel, &output, 125);
            let stderr = text(&output.stderr);
            assert!(
                stderr.contains("has no virtio-net driver") && stderr.contains("-e VIRTIO_NET"),
                "[{}] {stderr}",
                kernel.label
            );
            continue;
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let server = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let (stream, _) = loop {
                match listener.accept() {
                    Ok(accepted) => break accepted,
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    Err(e) => return Err(e.to_string()),
                }
            };
            stream.set_nonblocking(false).unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            (&stream).write_all(b"pong from the host\n").unwrap();
            Ok(line)
        });
        let script = format!(
            "exec 3<>/dev/tcp/10.0.2.2/{port} && echo ping from the guest >&3 && head -n 1 <&3"
        );
        let output = sandbox.run(
            &kernel,
            &["--net", "user", "--timeout", "120"],
            &["bash", "-c", &script],
        );
        assert_code(&kernel, &output, 0);
        assert_eq!(
            text(&output.stdout),
            "pong from the host\n",
            "[{}]",
            kernel.label
        );
        assert_eq!(
            server.join().unwrap().as_deref(),
            Ok("ping from the guest\n"),
            "[{}]",
            kernel.label
        );
    }
}

#[test]
fn without_net_the_guest_has_no_network_device() {
    for kernel in kernels().into_iter().take(1) {
        let sandbox = Sandbox::new();
        let output = sandbox.run(&kernel, &[], &["ls", "/sys/class/net"]);
        assert_code(&kernel, &output, 0);
        assert!(
            !text(&output.stdout).contains("eth0"),
            "[{}] {}",
            kernel.label,
            text(&output.stdout)
        );
    }
}

#[test]
fn a_forwarded_host_port_reaches_a_server_in_the_guest() {
    let python = "/usr/bin/python3";
    if !std::path::Path::new(python).is_file() {
        eprintln!("skipped: the guest's server is {python}, which the host lacks");
        return;
    }
    let Some(kernel) = kernels().into_iter().find(|k| kernel_has(k, "VIRTIO_NET")) else {
        return;
    };
    let sandbox = Sandbox::new();
    let host_port = free_port();
    let forward = format!("{host_port}:8080");
    let server = "import socket\n\
        s = socket.socket()\n\
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
        s.bind(('', 8080))\n\
        s.listen()\n\
        print('listening', flush=True)\n\
        c, peer = s.accept()\n\
        c.sendall(b'hello from the guest\\n')\n\
        c.close()\n\
        print('served', flush=True)\n";
    let mut child = sandbox
        .command(
            &kernel,
            &["--net", "user", "--forward", &forward, "--timeout", "180"],
            &[python, "-c", server],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "listening\n", "[{}]", kernel.label);
    let mut stream = TcpStream::connect(("127.0.0.1", host_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "hello from the guest\n", "[{}]", kernel.label);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "[{}] {stderr}", kernel.label);
    assert_eq!(rest, "served\n");
    sandbox.assert_nothing_left(&kernel);
}

#[test]
fn taken_ports_and_forwards_without_a_network_are_refused_before_the_vm_starts() {
    let Some(kernel) = kernels().into_iter().next() else {
        return;
    };
    let sandbox = Sandbox::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for (extra, what) in [
        (
            &["--net", "user", "--forward", &format!("{port}:80")][..],
            format!("--forward {port}:80"),
        ),
        (&["--gdb", &port][..], "--gdb".to_string()),
    ] {
        let started = Instant::now();
        let output = sandbox.run(&kernel, extra, &["true"]);
        assert_code(&kernel, &output, 125);
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains(&format!(
                "cannot listen on 127.0.0.1:{port} for {what}: the port is in use"
            )),
            "{stderr}"
        );
        assert!(started.elapsed() < Duration::from_secs(20), "a VM started");
    }
    let output = sandbox.run(&kernel, &["--forward", "8080:80"], &["true"]);
    assert_code(&kernel, &output, 125);
    assert!(
        text(&output.stderr).contains("--forward needs --net user"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn gdb_attaches_to_the_halted_vm_and_stops_at_a_boot_breakpoint() {
    if !has_program("gdb") {
        let why = "gdb is not installed (apt-get install gdb, or run scripts/setup)";
        assert!(std::env::var_os("VMLANE_E2E_REQUIRED").is_none(), "{why}");
        eprintln!("skipped: {why}");
        return;
    }
    let Some(kernel) = kernels().into_iter().find(|k| k.label == "vmlane-built") else {
        return;
    };
    let sandbox = Sandbox::new();
    let port = free_port();
    let mut child = sandbox
        .command(
            &kernel,
            &["--gdb", &port.to_string(), "--timeout", "300"],
            &["echo", "the command ran"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut announced = String::new();
    let command = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("[{}] no gdb command was printed: {announced}", kernel.label);
        }
        announced.push_str(&line);
        if let Some(command) = line.trim().strip_prefix("vmlane:   gdb ") {
            break command.to_string();
        }
    };
    let target = format!("-ex 'target remote 127.0.0.1:{port}' ");
    let vmlinux = command
        .strip_prefix(&target)
        .unwrap_or_else(|| panic!("[{}] {announced}", kernel.label));
    assert!(
        vmlinux.contains("/boot/vmlinux-") && std::path::Path::new(vmlinux).is_file(),
        "[{}] {announced}",
        kernel.label
    );
    let gdb = Command::new("timeout")
        .arg("240")
        .args(["gdb", "-batch", "-nx"])
        .args(["-ex", &format!("target remote 127.0.0.1:{port}")])
        .args(["-ex", "hbreak kernel_init", "-ex", "continue"])
        .args(["-ex", "delete", "-ex", "detach"])
        .arg(vmlinux)
        .output()
        .unwrap();
    let gdb_out = format!("{}{}", text(&gdb.stdout), text(&gdb.stderr));
    assert!(
        gdb_out.contains("Breakpoint 1, ") && gdb_out.contains("kernel_init"),
        "[{}] {gdb_out}",
        kernel.label
    );
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(0), "[{}] {rest}", kernel.label);
    assert_eq!(stdout, "the command ran\n", "[{}]", kernel.label);
    sandbox.assert_nothing_left(&kernel);
}

#[test]
fn usage_errors_exit_125_and_help_exits_0() {
    let vmlane = env!("CARGO_BIN_EXE_vmlane");
    let bad = Command::new(vmlane)
        .args(["run", "--no-such-flag", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(125), "{}", text(&bad.stderr));
    assert!(
        text(&bad.stderr).contains("--no-such-flag"),
        "{}",
        text(&bad.stderr)
    );
    let help = Command::new(vmlane)
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(
        text(&help.stdout).contains("Usage"),
        "{}",
        text(&help.stdout)
    );
}

use super::*;
use crate::TextPattern;

/// A Linux 6.1 WARNING from a module, surrounded by ordinary boot lines.
const WARNING_6_1: &str = "\
[    0.512345] Run /init as init process
[    1.100000] ------------[ cut here ]------------
[    1.100001] WARNING: CPU: 0 PID: 1 at drivers/misc/vmlane_probe.c:42 probe_write+0x2b/0x40
[    1.100002] Modules linked in:
[    1.100003] CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0 #1
[    1.100004] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS rel-1.16.2 04/01/2014
[    1.100005] RIP: 0010:probe_write+0x2b/0x40
[    1.100006] Code: 48 89 e5 41 54 53 48 89 fb e8 0e 00 00 00 <0f> 0b 5b 41 5c 5d c3 cc cc cc cc
[    1.100007] RSP: 0018:ffffc90000013e28 EFLAGS: 00010246
[    1.100008] RAX: 0000000000000000 RBX: ffff888003a4b2c8 RCX: 0000000000000000
[    1.100009] R13: 0000000000000001 R14: ffff888003a4b2c8 R15: 0000000000000000
[    1.100010] FS:  00000000004c8380(0000) GS:ffff88801f000000(0000) knlGS:0000000000000000
[    1.100011] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[    1.100012] CR2: 00000000004c9000 CR3: 0000000003a2a000 CR4: 00000000000006f0
[    1.100013] Call Trace:
[    1.100014]  <TASK>
[    1.100015]  vfs_write+0xb9/0x3f0
[    1.100016]  ksys_write+0x5f/0xe0
[    1.100017]  do_syscall_64+0x3b/0x90
[    1.100018]  entry_SYSCALL_64_after_hwframe+0x63/0xcd
[    1.100019] RIP: 0033:0x4018a1
[    1.100020]  </TASK>
[    1.100021] ---[ end trace 0000000000000000 ]---
[    1.100500] vmlane: command exited with 0
";

/// An x86 NULL dereference: BUG + Oops headers of one fault, then the panic it causes.
const NULL_DEREF_PANIC: &str = "\
[    2.000000] sysrq: Trigger a crash\r
[    2.000001] BUG: kernel NULL pointer dereference, address: 0000000000000000\r
[    2.000002] #PF: supervisor write access in kernel mode\r
[    2.000003] #PF: error_code(0x0002) - not-present page\r
[    2.000004] PGD 0 P4D 0 \r
[    2.000005] Oops: 0002 [#1] PREEMPT SMP NOPTI\r
[    2.000006] CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0 #1\r
[    2.000007] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996)\r
[    2.000008] RIP: 0010:sysrq_handle_crash+0x16/0x20\r
[    2.000009] RSP: 0018:ffffc90000013d80 EFLAGS: 00010246\r
[    2.000010] Call Trace:\r
[    2.000011]  <TASK>\r
[    2.000012]  __handle_sysrq.cold+0x43/0x11e\r
[    2.000013]  write_sysrq_trigger+0x24/0x40\r
[    2.000014]  proc_reg_write+0x51/0x90\r
[    2.000015]  </TASK>\r
[    2.000016] Modules linked in:\r
[    2.000017] CR2: 0000000000000000\r
[    2.000018] ---[ end trace 0000000000000000 ]---\r
[    2.000019] RIP: 0010:sysrq_handle_crash+0x16/0x20\r
[    2.000020] RSP: 0018:ffffc90000013d80 EFLAGS: 00010246\r
[    2.000021] Kernel panic - not syncing: Fatal exception\r
[    2.000022] Kernel Offset: disabled\r
[    2.000023] ---[ end Kernel panic - not syncing: Fatal exception ]---\r
";

/// A hung task in 6.1, followed by an unrelated message.
const HUNG_TASK: &str = "\
[  245.123456] INFO: task sh:57 blocked for more than 122 seconds.
[  245.123460]       Not tainted 6.1.0 #1
[  245.123461] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.
[  245.123462] task:sh              state:D stack:0     pid:57    ppid:1      flags:0x00004000
[  245.123463] Call Trace:
[  245.123464]  <TASK>
[  245.123465]  __schedule+0x2d3/0x870
[  245.123466]  schedule+0x5d/0xe0
[  245.123467]  schedule_preempt_disabled+0x14/0x30
[  245.123468]  __mutex_lock.constprop.0+0x3a6/0x6d0
[  245.123469]  </TASK>
[  250.000000] random: crng reseeded
";

/// FreeBSD 14 on a NULL dereference, stopped in the debugger.
const FREEBSD_TRAP: &str = "\
Trying to mount root from cd9660:/dev/iso9660/VMLANE []...


Fatal trap 12: page fault while in kernel mode
cpuid = 0; apic id = 00
fault virtual address\t= 0x0
fault code\t\t= supervisor read data, page not present
instruction pointer\t= 0x20:0xffffffff80b1c2d3
stack pointer\t        = 0x28:0xfffffe00e1b3f8a0
frame pointer\t        = 0x28:0xfffffe00e1b3f8c0
code segment\t\t= base 0x0, limit 0xfffff, type 0x1b
\t\t\t= DPL 0, pres 1, long 1, def32 0, gran 1
processor eflags\t= interrupt enabled, resume, IOPL = 0
current process\t\t= 1 (init)
trap number\t\t= 12
panic: page fault
cpuid = 0
time = 1700000000
KDB: stack backtrace:
db_trace_self_wrapper() at db_trace_self_wrapper+0x2b/frame 0xfffffe00e1b3f6b0
vpanic() at vpanic+0x151/frame 0xfffffe00e1b3f700
panic() at panic+0x43/frame 0xfffffe00e1b3f760
trap_fatal() at trap_fatal+0x387/frame 0xfffffe00e1b3f7c0
--- trap 0xc, rip = 0xffffffff80b1c2d3, rsp = 0xfffffe00e1b3f8a0, rbp = 0xfffffe00e1b3f8c0 ---
vmlane_probe() at vmlane_probe+0x13/frame 0xfffffe00e1b3f8c0
KDB: enter: panic
[ thread pid 1 tid 100002 ]
Stopped at      kdb_enter+0x37: movq    $0,0x1286cc6(%rip)
db> ";

#[test]
fn a_warning_runs_to_its_end_trace_marker() {
    let splats = scan(WARNING_6_1);
    assert_eq!(splats.len(), 1, "{splats:#?}");
    let warning = &splats[0];
    assert_eq!(warning.kind, SplatKind::Warning);
    assert_eq!(warning.line_number, 3);
    assert_eq!(
        warning.first_line,
        "WARNING: CPU: 0 PID: 1 at drivers/misc/vmlane_probe.c:42 probe_write+0x2b/0x40"
    );
    assert!(warning.ended);
    assert_eq!(warning.body.len(), 21);
    assert_eq!(
        warning.body.last().unwrap(),
        "---[ end trace 0000000000000000 ]---"
    );
    assert!(warning.body.contains(&" <TASK>".to_string()));
    assert!(!warning.text().contains("command exited"));
    assert!(!warning.text().contains("cut here"));
}

#[test]
fn an_oops_after_a_bug_is_one_report_and_the_panic_another() {
    let splats = scan(NULL_DEREF_PANIC);
    let kinds: Vec<_> = splats.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [SplatKind::Bug, SplatKind::Panic], "{splats:#?}");
    let (bug, panic) = (&splats[0], &splats[1]);
    assert_eq!(bug.line_number, 2);
    assert!(bug.ended);
    assert_eq!(bug.body.len(), 18);
    assert!(bug
        .body
        .contains(&"Oops: 0002 [#1] PREEMPT SMP NOPTI".to_string()));
    assert!(bug.body.iter().all(|line| !line.ends_with('\r')));
    assert_eq!(
        panic.first_line,
        "Kernel panic - not syncing: Fatal exception"
    );
    assert_eq!(panic.line_number, 22);
    assert!(panic.ended);
    assert_eq!(
        panic.body,
        [
            "Kernel panic - not syncing: Fatal exception",
            "Kernel Offset: disabled",
            "---[ end Kernel panic - not syncing: Fatal exception ]---",
        ]
    );
    // Reports never share lines.
    assert!(bug.line_number + bug.body.len() <= panic.line_number);
}

#[test]
fn a_panic_inside_a_warning_ends_the_warning() {
    let log = "\
WARNING: CPU: 0 PID: 1 at kernel/x.c:1 f+0x1/0x2
Modules linked in:
Kernel panic - not syncing: kernel: panic_on_warn set ...
CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0 #1
Call Trace:
 <TASK>
 panic+0x10d/0x2d5
 </TASK>
Kernel Offset: disabled
---[ end Kernel panic - not syncing: kernel: panic_on_warn set ... ]---
";
    let splats = scan(log);
    assert_eq!(splats.len(), 2);
    assert_eq!(splats[0].kind, SplatKind::Warning);
    assert_eq!(splats[0].body.len(), 2);
    assert!(!splats[0].ended);
    assert_eq!(splats[1].kind, SplatKind::Panic);
    assert_eq!(splats[1].body.len(), 8);
    assert!(splats[1].ended);
}

#[test]
fn a_hung_task_ends_where_report_lines_stop() {
    let splats = scan(HUNG_TASK);
    assert_eq!(splats.len(), 1);
    let hung = &splats[0];
    assert_eq!(hung.kind, SplatKind::HungTask);
    assert!(!hung.ended);
    assert_eq!(hung.body.len(), 11);
    assert_eq!(hung.body.last().unwrap(), " </TASK>");
    assert!(!hung.text().contains("crng"));
}

#[test]
fn freebsd_trap_panic_and_debugger_are_three_reports() {
    let splats = scan(FREEBSD_TRAP);
    let kinds: Vec<_> = splats.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            SplatKind::FatalTrap,
            SplatKind::FreeBsdPanic,
            SplatKind::Debugger
        ]
    );
    let (trap, panic, db) = (&splats[0], &splats[1], &splats[2]);
    assert_eq!(trap.line_number, 4);
    assert_eq!(trap.body.len(), 12);
    assert_eq!(trap.body.last().unwrap(), "trap number\t\t= 12");
    assert_eq!(panic.first_line, "panic: page fault");
    assert_eq!(panic.body.len(), 13);
    assert_eq!(
        panic.body.last().unwrap(),
        "Stopped at      kdb_enter+0x37: movq    $0,0x1286cc6(%rip)"
    );
    assert_eq!(db.first_line, "db> ");
    assert_eq!(db.line_number, 29);
}

#[test]
fn freebsd_numbered_backtrace_frames_belong_to_the_panic() {
    let log = "\
vtbd0: 4MB
panic: vm_fault: fault on nofault entry, addr: 0xfffffe00
cpuid = 0
time = 2
KDB: stack backtrace:
#0 0xffffffff80b8f1ad at kdb_backtrace+0x5d
#1 0xffffffff80b40ba2 at vpanic+0x132
#2 0xffffffff80b40a63 at panic+0x43
#3 0xffffffff80f6a3c1 at sys_twq_probe+0x11
Uptime: 2s
Automatic reboot in 0 seconds - press a key on the console to abort
random line after
";
    let splats = scan(log);
    assert_eq!(splats.len(), 1);
    let panic = &splats[0];
    assert_eq!(panic.kind, SplatKind::FreeBsdPanic);
    assert_eq!(panic.body.len(), 10);
    assert_eq!(panic.body[7], "#3 0xffffffff80f6a3c1 at sys_twq_probe+0x11");
}

#[test]
fn kasan_runs_to_its_closing_rule_through_free_text() {
    let log = "\
[    3.000000] ==================================================================
[    3.000001] BUG: KASAN: slab-use-after-free in vmlane_probe+0x4e/0x90
[    3.000002] Read of size 8 at addr ffff888003a4b2c8 by task sh/1
[    3.000003] 
[    3.000004] CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0 #1
[    3.000005] Call Trace:
[    3.000006]  <TASK>
[    3.000007]  dump_stack_lvl+0x34/0x48
[    3.000008]  </TASK>
[    3.000009] 
[    3.000010] Allocated by task 1:
[    3.000011]  kasan_save_stack+0x22/0x50
[    3.000012] 
[    3.000013] The buggy address belongs to the object at ffff888003a4b2c0
[    3.000014]  which belongs to the cache kmalloc-64 of size 64
[    3.000015] ==================================================================
[    3.000016] Disabling lock debugging due to kernel taint
";
    let splats = scan(log);
    assert_eq!(splats.len(), 1);
    assert_eq!(splats[0].kind, SplatKind::Kasan);
    assert!(splats[0].ended);
    assert_eq!(splats[0].body.len(), 15);
    assert!(splats[0].text().contains("The buggy address"));
    assert!(!splats[0].text().contains("Disabling lock debugging"));
}

#[test]
fn ubsan_between_rules_is_found() {
    let log = "\
================================================================================
UBSAN: array-index-out-of-bounds in drivers/misc/vmlane_probe.c:12:5
index 5 is out of range for type 'int [4]'
CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0 #1
Call Trace:
 <TASK>
 dump_stack_lvl+0x34/0x48
 </TASK>
================================================================================
done
";
    let splats = scan(log);
    assert_eq!(splats.len(), 1);
    assert_eq!(splats[0].kind, SplatKind::Ubsan);
    assert_eq!(splats[0].line_number, 2);
    assert_eq!(splats[0].body.len(), 8);
    assert!(splats[0].ended);
}

#[test]
fn lockdep_free_text_is_kept_up_to_the_backtrace() {
    let log = "\
[    4.000000] ======================================================
[    4.000001] WARNING: possible circular locking dependency detected
[    4.000002] 6.1.0 #1 Not tainted
[    4.000003] ------------------------------------------------------
[    4.000004] sh/1 is trying to acquire lock:
[    4.000005] ffffffff82a5e0f8 (lock_b){+.+.}-{3:3}, at: probe_b+0x15/0x40
[    4.000006] 
[    4.000007] but task is already holding lock:
[    4.000008] ffffffff82a5e098 (lock_a){+.+.}-{3:3}, at: probe_a+0x15/0x40
[    4.000009] 
[    4.000010]  Possible unsafe locking scenario:
[    4.000011] 
[    4.000012]        CPU0                    CPU1
[    4.000013]        ----                    ----
[    4.000014]   lock(lock_a);
[    4.000015]  *** DEADLOCK ***
[    4.000016] 
[    4.000017] 1 lock held by sh/1:
[    4.000018] 
[    4.000019] stack backtrace:
[    4.000020] CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0 #1
[    4.000021] Call Trace:
[    4.000022]  <TASK>
[    4.000023]  dump_stack_lvl+0x34/0x48
[    4.000024]  </TASK>
[    4.000025] sh (1) used greatest stack depth: 13432 bytes left
[    4.000026] vmlane: init done
[    4.000027] vmlane: command exited with 0
";
    let splats = scan(log);
    assert_eq!(splats.len(), 1);
    let lockdep = &splats[0];
    assert_eq!(lockdep.kind, SplatKind::Lockdep);
    assert_eq!(lockdep.body.len(), 24);
    assert_eq!(lockdep.body.last().unwrap(), " </TASK>");
    assert!(lockdep.text().contains("*** DEADLOCK ***"));
}

#[test]
fn rcu_stall_spans_irq_and_task_stacks() {
    let log = "\
[   30.000000] rcu: INFO: rcu_sched self-detected stall on CPU
[   30.000001] rcu: \t0-....: (21000 ticks this GP) idle=2cb4/1/0x4000000000000000
[   30.000002] \t(t=21002 jiffies g=1293 q=25 ncpus=1)
[   30.000003] NMI backtrace for cpu 0
[   30.000004] CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0 #1
[   30.000005] Call Trace:
[   30.000006]  <IRQ>
[   30.000007]  rcu_dump_cpu_stacks+0x8e/0xc4
[   30.000008]  </IRQ>
[   30.000009]  <TASK>
[   30.000010]  probe_spin+0x12/0x20
[   30.000011]  </TASK>
[   31.000000] vmlane: timeout
";
    let splats = scan(log);
    assert_eq!(splats.len(), 1);
    assert_eq!(splats[0].kind, SplatKind::RcuStall);
    assert_eq!(splats[0].body.len(), 12);
}

#[test]
fn a_line_written_mid_report_is_bridged_but_trailing_ones_are_not() {
    let log = "\
BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580
in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 1, name: sh
hello from the guest
CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0 #1
Call Trace:
 <TASK>
 __might_resched+0x13e/0x160
 </TASK>
hello again
still hello
and more
Call Trace:
";
    let splats = scan(log);
    assert_eq!(splats.len(), 1);
    assert_eq!(splats[0].body.len(), 8);
    assert_eq!(splats[0].body[2], "hello from the guest");
    assert_eq!(splats[0].body.last().unwrap(), " </TASK>");
}

#[test]
fn bodies_are_capped() {
    let mut log = String::from("WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2\nCall Trace:\n");
    for i in 0..1000 {
        log.push_str(&format!(" frame_{i}+0x1/0x2\n"));
    }
    log.push_str("---[ end trace 0000000000000000 ]---\n");
    log.push_str("WARNING: CPU: 0 PID: 1 at y.c:2 g+0x1/0x2\n");
    let splats = scan(&log);
    assert_eq!(splats.len(), 2);
    assert_eq!(splats[0].body.len(), MAX_BODY_LINES);
    assert!(!splats[0].ended);
    assert_eq!(splats[1].line_number, 1004);
}

#[test]
fn the_scanner_reports_as_lines_arrive() {
    let mut scanner = SplatScanner::new();
    let mut seen = Vec::new();
    for line in NULL_DEREF_PANIC.split_inclusive('\n') {
        seen.extend(scanner.push(line));
        if seen.len() == 1 {
            // The BUG is out as soon as its end marker arrives, before the panic.
            assert!(seen[0].ended);
        }
    }
    assert_eq!(seen.len(), 2);
    assert!(scanner.finish().is_none());
    assert_eq!(seen, scan(NULL_DEREF_PANIC));
}

#[test]
fn a_log_without_reports_has_none() {
    let log = "[    0.000000] Linux version 6.1.0\n[    0.100000] rcu: Hierarchical RCU implementation.\nhello\n";
    assert!(scan(log).is_empty());
    assert!(scan("").is_empty());
}

#[test]
fn freebsd_boot_notices_are_not_warnings() {
    let log = "WARNING: WITNESS option enabled, expect reduced performance.\n\
WARNING: Device driver \"foo\" has a deprecated feature\n";
    assert!(scan(log).is_empty());
    let old_linux = scan("WARNING: at kernel/sched/core.c:123 foo()\n");
    assert_eq!(old_linux.len(), 1);
    assert_eq!(old_linux[0].kind, SplatKind::Warning);
}

#[test]
fn odd_input_does_not_panic() {
    let inputs = [
        "\u{0}\u{feff}[\r\n]\n\n\r\r".to_string(),
        "db>".repeat(1000),
        "WARNING: ".to_string() + &"é".repeat(5000),
        "[ 1.2] ".repeat(100) + "BUG: x",
        "===\n==========\nUBSAN: x\n".repeat(300),
    ];
    for input in inputs {
        let _ = scan(&input);
    }
    let ubsans = scan(&"===\n==========\nUBSAN: x\n".repeat(3));
    assert_eq!(ubsans.len(), 3);
}

#[test]
fn triage_splits_expected_from_unexpected() {
    let splats = scan(NULL_DEREF_PANIC);
    let matchers = [
        SplatMatcher::kind(SplatKind::Bug)
            .with_first_line(TextPattern::substring("NULL pointer dereference")),
        SplatMatcher::kind(SplatKind::Kasan),
    ];
    let result = triage(splats, &matchers);
    assert_eq!(result.expected.len(), 1);
    assert_eq!(result.expected[0].kind, SplatKind::Bug);
    assert_eq!(result.unexpected.len(), 1);
    assert_eq!(result.unexpected[0].kind, SplatKind::Panic);
    assert_eq!(result.unmatched, [1]);
    assert!(!result.passed());

    let all = [
        SplatMatcher::first_line(TextPattern::regex(r"^BUG: kernel NULL").unwrap()),
        SplatMatcher::kind(SplatKind::Panic),
    ];
    let result = triage(scan(NULL_DEREF_PANIC), &all);
    assert!(result.passed(), "{result:#?}");
    assert_eq!(result.expected.len(), 2);
}

#[test]
fn a_matcher_needs_kind_and_first_line_to_agree() {
    let warning = &scan(WARNING_6_1)[0];
    assert!(SplatMatcher::default().matches(warning));
    assert!(SplatMatcher::kind(SplatKind::Warning).matches(warning));
    assert!(!SplatMatcher::kind(SplatKind::Bug).matches(warning));
    assert!(!SplatMatcher::kind(SplatKind::Warning)
        .with_first_line(TextPattern::substring("other.c"))
        .matches(warning));
    assert_eq!(
        SplatMatcher::kind(SplatKind::Warning)
            .with_first_line(TextPattern::substring("x"))
            .to_string(),
        "a warning splat whose first line has \"x\""
    );
    assert_eq!(
        warning.to_string(),
        "warning at console line 3: WARNING: CPU: 0 PID: 1 at drivers/misc/vmlane_probe.c:42 probe_write+0x2b/0x40"
    );
}

#[test]
fn arm64_fault_headers_are_one_oops() {
    let log = "\
[    5.000000] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000
[    5.000001] Mem abort info:
[    5.000002]   ESR = 0x0000000096000045
[    5.000003] Internal error: Oops: 0000000096000045 [#1] PREEMPT SMP
[    5.000004] Modules linked in:
[    5.000005] CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0 #1
[    5.000006] pc : sysrq_handle_crash+0x24/0x30
[    5.000007] lr : __handle_sysrq+0x90/0x180
[    5.000008] Call trace:
[    5.000009]  sysrq_handle_crash+0x24/0x30
[    5.000010] Code: d503201f b000ef01 52800020 b9028820 (3900003f)
[    5.000011] ---[ end trace 0000000000000000 ]---
";
    let splats = scan(log);
    assert_eq!(splats.len(), 1, "{splats:#?}");
    assert_eq!(splats[0].kind, SplatKind::Oops);
    assert_eq!(splats[0].body.len(), 12);
    assert!(splats[0].ended);
}

#[test]
fn repeated_debugger_prompts_are_one_session_but_a_new_fault_is_not() {
    let log = "db> bt\nTracing pid 1 tid 100002 td 0xfffff80003a4b000\ndb> \nFatal trap 9: general protection fault while in kernel mode\n";
    let splats = scan(log);
    let kinds: Vec<_> = splats.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [SplatKind::Debugger, SplatKind::FatalTrap]);
    assert_eq!(splats[0].body.len(), 3);
}

#[test]
fn a_second_warning_after_an_end_marker_is_its_own_splat() {
    let log = format!("{WARNING_6_1}{WARNING_6_1}");
    let splats = scan(&log);
    assert_eq!(splats.len(), 2);
    assert_eq!(splats[1].line_number, 3 + WARNING_6_1.lines().count());
    assert_eq!(splats[0].body, splats[1].body);
}

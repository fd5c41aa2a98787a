//! Check 2: the commands `rc` and the enabled rc.d scripts run are in the image. A script
//! calling a program the image lacks fails at boot with one line on the console, if that;
//! this finds it before. The scan is conservative (`shell`): a command is reported only
//! when it is plainly written and plainly missing, and when it runs whenever its script (or
//! function) does: a command behind `if`, `case`, `&&`, `||` or in a loop depends on
//! settings and files the lint does not weigh, and is left alone. Of rc and rc.subr, mostly
//! functions for others to call, only the functions the boot is sure to call count.

use super::files;
use super::finding::Findings;
use super::image::{shown, Image};
use super::settings::{Settings, MAX_CONFIG};
use super::shell::{literal, scan, Command, Scan};
use std::collections::{BTreeSet, HashMap};

/// Where rc finds its scripts.
pub(crate) const RC_D_DIRS: &[&str] = &["etc/rc.d", "usr/local/etc/rc.d"];

/// Always run: init runs rc, which sources rc.subr.
const BOOT_SCRIPTS: &[&str] = &["etc/rc", "etc/rc.subr"];

/// Defines functions rc.subr calls (`source_rc_confs`).
const DEFAULTS: &str = "etc/defaults/rc.conf";

/// rc's `PATH`, where bare command names are looked up.
const COMMAND_DIRS: &[&str] = &["/bin", "/sbin", "/usr/bin", "/usr/sbin"];

/// Scripts (and files they source) read per image, at most.
const MAX_SCRIPTS: usize = 2048;
/// Files one script sources that are read for their functions.
const MAX_SOURCED: usize = 8;

/// FreeBSD `sh`'s built-in commands, which need no program.
const BUILTINS: &[&str] = &[
    ":", ".", "[", "alias", "bg", "bind", "break", "builtin", "cd", "chdir", "command", "continue",
    "echo", "eval", "exec", "exit", "export", "false", "fc", "fg", "getopts", "hash", "jobid",
    "jobs", "kill", "local", "printf", "pwd", "read", "readonly", "return", "set", "setvar",
    "shift", "test", "times", "trap", "true", "type", "ulimit", "umask", "unalias", "unset",
    "wait",
];

/// Functions FreeBSD's rc.subr defines, known even when an image's rc.subr is not
/// FreeBSD's: a script calling them is calling rc.subr, not a program.
const RC_SUBR_FUNCTIONS: &[&str] = &[
    "backup_file",
    "check_jail",
    "check_kern_features",
    "check_pidfile",
    "check_process",
    "check_required_after",
    "check_required_before",
    "check_startmsgs",
    "checkyesno",
    "debug",
    "devfs_apply_ruleset",
    "devfs_domount",
    "devfs_init_rulesets",
    "devfs_rulesets_from_file",
    "devfs_set_ruleset",
    "dot",
    "err",
    "force_depend",
    "geli_make_list",
    "get_pidfile_from_conf",
    "have",
    "info",
    "load_kld",
    "load_rc_config",
    "load_rc_config_var",
    "ltr",
    "make_symlink",
    "mount_critical_filesystems",
    "mount_md",
    "rc_log",
    "rc_trace",
    "rc_usage",
    "reverse_list",
    "root_hold_wait",
    "run_rc_command",
    "run_rc_script",
    "run_rc_scripts",
    "sdot",
    "set_rcvar",
    "sort_lite",
    "startmsg",
    "stop_boot",
    "vdot",
    "wait_for_pids",
    "warn",
];

/// Runs check 2 over `image`.
pub(crate) fn check(image: &Image, settings: &Settings, findings: &mut Findings) {
    let mut budget = MAX_SCRIPTS;
    let boot: Vec<(String, Scan)> = BOOT_SCRIPTS
        .iter()
        .filter_map(|file| {
            Some((
                file.to_string(),
                read_scan(image, file.as_bytes(), &mut budget)?,
            ))
        })
        .collect();
    let mut known: BTreeSet<String> = RC_SUBR_FUNCTIONS.iter().map(|f| f.to_string()).collect();
    for (_, scan) in &boot {
        known.extend(scan.functions.iter().cloned());
    }
    if let Some(defaults) = read_scan(image, DEFAULTS.as_bytes(), &mut budget) {
        known.extend(defaults.functions);
    }
    let services = enabled_scripts(image, settings, &mut budget);
    let boot_scans: Vec<&Scan> = boot.iter().map(|(_, scan)| scan).collect();
    // What each enabled script runs, and with it what rc and rc.subr run.
    let mut library = running(top_level(&boot_scans), &boot_scans);
    let mut per_service = Vec::new();
    for (_, scan, _) in &services {
        let mut scans = vec![scan];
        scans.extend(&boot_scans);
        let mut roots = top_level(&[scan]);
        roots.extend(start_methods(scan));
        let runs = running(roots, &scans);
        library.extend(runs.iter().cloned());
        per_service.push(runs);
    }
    let runs_in = |running: &BTreeSet<String>, c: &Command| {
        !c.conditional && c.function.as_ref().is_none_or(|f| running.contains(f))
    };
    for (file, scan) in &boot {
        let counts = |c: &Command| runs_in(&library, c);
        check_script(image, file, scan, counts, &known, &mut budget, findings);
    }
    for ((file, scan, service), running) in services.iter().zip(&per_service) {
        let counts = |c: &Command| runs_in(running, c);
        check_script(image, file, scan, counts, &known, &mut budget, findings);
        check_command(image, file, scan, service, findings);
    }
}

/// What the scripts' top levels run whatever happens.
fn top_level(scans: &[&Scan]) -> BTreeSet<String> {
    scans
        .iter()
        .flat_map(|scan| scan.commands.iter())
        .filter(|c| !c.conditional && c.function.is_none())
        .map(|c| c.name.clone())
        .collect()
}

/// The functions `run_rc_command start` calls, as the script names them (`start_cmd`,
/// `start_precmd`, `start_postcmd`).
fn start_methods(scan: &Scan) -> Vec<String> {
    let own = own_variables(scan);
    ["start_precmd", "start_cmd", "start_postcmd"]
        .iter()
        .filter_map(|method| own.get(method))
        .filter_map(|value| value.split_whitespace().next().map(str::to_string))
        .collect()
}

/// `roots` and the functions they run whatever happens, and those these run, through the
/// functions defined in `scans`.
fn running(roots: BTreeSet<String>, scans: &[&Scan]) -> BTreeSet<String> {
    let mut calls: HashMap<&str, Vec<&str>> = HashMap::new();
    for command in scans
        .iter()
        .flat_map(|s| &s.commands)
        .filter(|c| !c.conditional)
    {
        if let Some(function) = &command.function {
            calls.entry(function).or_default().push(&command.name);
        }
    }
    let mut queue: Vec<String> = roots.iter().cloned().collect();
    let mut running = roots;
    while let Some(function) = queue.pop() {
        for &callee in calls.get(function.as_str()).into_iter().flatten() {
            if running.insert(callee.to_string()) {
                queue.push(callee.to_string());
            }
        }
    }
    running
}

/// The rc.d scripts rc runs, with the settings each runs with.
fn enabled_scripts(
    image: &Image,
    settings: &Settings,
    budget: &mut usize,
) -> Vec<(String, Scan, Settings)> {
    let mut services = Vec::new();
    for dir in RC_D_DIRS {
        for name in image.list(dir.as_bytes()) {
            let file = format!("{dir}/{}", String::from_utf8_lossy(&name));
            let Some(text) = read_text(image, file.as_bytes(), budget) else {
                continue;
            };
            // rc leaves these to be started by hand or by devd.
            if keywords(&text).any(|k| k == "nostart") {
                continue;
            }
            let scan = scan(&text);
            if let Some(service) = enabled(image, settings, &scan) {
                services.push((file, scan, service));
            }
        }
    }
    services
}

/// A script's scan, if it is a regular file (links followed inside the image).
fn read_scan(image: &Image, path: &[u8], budget: &mut usize) -> Option<Scan> {
    Some(scan(&read_text(image, path, budget)?))
}

/// A script's text, while the budget lasts.
fn read_text(image: &Image, path: &[u8], budget: &mut usize) -> Option<String> {
    if *budget == 0 {
        return None;
    }
    *budget -= 1;
    let bytes = image.read(path, MAX_CONFIG)?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The words of a script's `# KEYWORD:` lines, which rcorder reads.
fn keywords(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix("# KEYWORD:"))
        .flat_map(str::split_whitespace)
}

/// The settings a script runs with when rc runs it: it has no `rcvar`, or its `rcvar`
/// is set to yes. `None` when it stays off, or when that cannot be told.
fn enabled(image: &Image, settings: &Settings, scan: &Scan) -> Option<Settings> {
    let own = own_variables(scan);
    let name = own.get("name").unwrap_or_default().to_string();
    let mut service = settings.for_service(image, &name);
    for default in scan.assignments.iter().filter(|a| a.top && a.default) {
        if !service.is_set(&default.name) {
            service.set(&default.name, own.expand(&default.value));
        }
    }
    // An rcvar set under a condition (per instance, per setting) cannot be told.
    if scan.assignments.iter().any(|a| a.name == "rcvar" && !a.top) {
        return None;
    }
    let Some(rcvar) = scan.top_value("rcvar") else {
        return Some(service);
    };
    let rcvar = own.expand(rcvar)?;
    if rcvar.is_empty() {
        return Some(service);
    }
    if rcvar.contains(char::is_whitespace) {
        return None;
    }
    (service.enabled(&rcvar) == Some(true)).then_some(service)
}

/// A script's own top-level variables (`name`, `rcvar`, `command`), in order.
fn own_variables(scan: &Scan) -> Settings {
    let mut own = Settings::default();
    for assignment in scan.assignments.iter().filter(|a| a.top && !a.default) {
        let value = own.expand(&assignment.value);
        own.set(&assignment.name, value);
    }
    own
}

/// Reports the commands of `scan` that `counts` that the image lacks.
fn check_script(
    image: &Image,
    file: &str,
    scan: &Scan,
    counts: impl Fn(&Command) -> bool,
    known: &BTreeSet<String>,
    budget: &mut usize,
    findings: &mut Findings,
) {
    let mut functions = known.clone();
    functions.extend(scan.functions.iter().cloned());
    for sourced in scan.sourced.iter().take(MAX_SOURCED) {
        let checked_elsewhere = files::covers(sourced);
        if !sourced.starts_with('/') || scan.tested.contains(sourced) || checked_elsewhere {
            continue;
        }
        match read_scan(image, sourced.as_bytes(), budget) {
            Some(more) => functions.extend(more.functions),
            None if !image.has_file(sourced.as_bytes()) => {
                findings.add(file, format!("sources {sourced}, which the image lacks"));
            }
            None => {}
        }
    }
    let path = SearchPath::of(scan);
    let commands: BTreeSet<&String> = scan
        .commands
        .iter()
        .filter(|c| counts(c))
        .map(|c| &c.name)
        .collect();
    for command in commands {
        let skip = BUILTINS.contains(&command.as_str())
            || functions.contains(command)
            || scan.tested.contains(command);
        if skip || missing(image, command, &path) != Some(true) {
            continue;
        }
        findings.add(file, format!("calls {command}, which the image lacks"));
    }
}

/// Where a script's bare command names are found.
enum SearchPath {
    /// rc's own PATH.
    Rc,
    /// A PATH of the script's own, spelled out: its directories, and rc's.
    Literal(Vec<String>),
    /// A PATH of the script's own that the scan cannot work out.
    Unknown,
}

impl SearchPath {
    fn of(scan: &Scan) -> SearchPath {
        let mut dirs = Vec::new();
        for assignment in scan.assignments.iter().filter(|a| a.name == "PATH") {
            match literal(&assignment.value) {
                Some(value) => dirs.extend(value.split(':').map(str::to_string)),
                None => return SearchPath::Unknown,
            }
        }
        match dirs.is_empty() {
            true => SearchPath::Rc,
            false => SearchPath::Literal(dirs),
        }
    }
}

/// Whether `command` is missing: `None` when that cannot be told (a relative path, or a
/// bare name under a PATH the scan cannot work out).
fn missing(image: &Image, command: &str, path: &SearchPath) -> Option<bool> {
    if command.starts_with('/') {
        return Some(!image.has_file(command.as_bytes()));
    }
    if command.contains('/') {
        return None;
    }
    let own: &[String] = match path {
        SearchPath::Literal(dirs) => dirs,
        _ => &[],
    };
    let found = COMMAND_DIRS
        .iter()
        .copied()
        .chain(own.iter().map(String::as_str))
        .filter(|dir| dir.starts_with('/'))
        .any(|dir| image.has_file(format!("{dir}/{command}").as_bytes()));
    match (found, path) {
        (true, _) => Some(false),
        (false, SearchPath::Unknown) => None,
        (false, _) => Some(true),
    }
}

/// The program `run_rc_command` starts (`command=`, or rc.conf's `NAME_program`) must be
/// there: rc.subr skips a service whose program is missing with one warning. Scripts with
/// a `start_cmd` of their own start something else.
fn check_command(
    image: &Image,
    file: &str,
    scan: &Scan,
    service: &Settings,
    findings: &mut Findings,
) {
    if !scan.runs("run_rc_command") || scan.assignments.iter().any(|a| a.name == "start_cmd") {
        return;
    }
    let own = own_variables(scan);
    let name = own.get("name").unwrap_or_default();
    let override_name = format!("{name}_program");
    let program = if service.is_set(&override_name) {
        service.get(&override_name).map(str::to_string)
    } else {
        scan.top_value("command").and_then(|v| own.expand(v))
    };
    let Some(program) = program.filter(|p| p.starts_with('/')) else {
        return;
    };
    if scan.tested.contains(&program) {
        return;
    }
    if !image.has_file(program.as_bytes()) {
        findings.add(
            file,
            format!(
                "runs {} (its command), which the image lacks",
                shown(program.as_bytes())
            ),
        );
    }
}

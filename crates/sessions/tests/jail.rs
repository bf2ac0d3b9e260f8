//! Runs in real bubblewrap jails (`.ci/run` installs `bubblewrap`), as
//! root like the server, in real control groups: each test takes its own
//! host uid and session group.

use std::{os::unix::fs::chown, time::Duration};

use sbx_sessions::{
    BoxSpec, Cgroups, EventKind, Group, GroupLimits, Jail, Language, Limits, Output, Program,
    Runtime, SessionBox, Status, UidPool, run, run_in, runtime::Bwrap,
};

fn cgroups() -> Cgroups {
    Cgroups::detect("tests").expect("the server runs as root with the cgroup controllers")
}

const GROUP_LIMITS: GroupLimits = GroupLimits {
    memory_bytes: 256 * 1024 * 1024,
    pids: 64,
    cpu_cores: 1.0,
};

/// The seccomp program, written once for the test process.
fn seccomp_filter() -> std::path::PathBuf {
    static FILTER: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FILTER
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap().keep();
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            let path = dir.join("seccomp.bpf");
            sbx_sessions::seccomp::write(&path).unwrap();
            path
        })
        .clone()
}

struct Session {
    jail: Jail,
    group: Group,
    _workspace: tempfile::TempDir,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.group.remove().unwrap();
    }
}

impl Session {
    /// A new run's group, inside the session's.
    fn run_group(&self) -> Group {
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.group.child(&format!("run-{n}"))
    }
}

fn session(uid: u32, limits: Limits) -> Session {
    session_with(uid, limits, &GROUP_LIMITS)
}

fn session_with(uid: u32, limits: Limits, group_limits: &GroupLimits) -> Session {
    sbx_sessions::jail::check().expect(".ci/run installs bubblewrap");
    let workspace = tempfile::tempdir().unwrap();
    chown(workspace.path(), Some(uid), Some(uid)).unwrap();
    let group = cgroups().group(&format!("test-{uid}-{}", std::process::id()));
    group.create(Some(group_limits)).unwrap();
    Session {
        group,
        jail: Jail {
            workspace: workspace.path().to_owned(),
            uid,
            limits,
            cpus: None,
            seccomp: Some(seccomp_filter()),
            egress: None,
            layer: None,
        },
        _workspace: workspace,
    }
}

async fn python(session: &Session, code: &str, timeout: Duration) -> (sbx_sessions::Ended, Output) {
    let output = Output::default();
    let ended = run(
        &session.jail,
        Some(&session.run_group()),
        Program {
            env: vec![("GREETING".into(), "hej".into())],
            ..Language::Python.program(code)
        },
        timeout,
        &output,
        std::future::pending(),
    )
    .await;
    (ended, output)
}

/// Processes the host runs as `uid`.
fn processes_of(uid: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let owner = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next()?.parse::<u32>().ok());
        if owner == Some(uid) {
            let state = status
                .lines()
                .find(|l| l.starts_with("State:"))
                .unwrap_or_default();
            let parent = status
                .lines()
                .find(|l| l.starts_with("PPid:"))
                .unwrap_or_default();
            found.push(format!(
                "{} {state} {parent}",
                status.lines().next().unwrap_or_default()
            ));
        }
    }
    found
}

#[tokio::test]
async fn code_runs_as_the_sessions_uid_and_its_output_is_numbered_events() {
    let pool = UidPool::new(3_100_000, 8);
    let slot = pool.take().unwrap();
    let session = session(slot.uid(), Limits::default());
    let code = "import os, sys\nassert os.sched_getscheduler(0) == os.SCHED_IDLE\nprint('hi', os.getuid(), os.environ['GREETING'])\nprint('oops', file=sys.stderr)\nopen('made.txt', 'w').write('kept')";
    let (ended, output) = python(&session, code, Duration::from_secs(20)).await;
    assert_eq!(ended.status, Status::Ok, "{ended:?} {:?}", output.texts());
    assert_eq!(ended.exit_code, Some(0));
    let (out, err) = output.texts();
    assert_eq!(out, format!("hi {} hej\n", slot.uid()));
    assert_eq!(err, "oops\n");
    let (events, done) = output.since(0);
    assert!(done);
    assert!(matches!(events[0].kind, EventKind::Start { pid } if pid > 0));
    assert!(events.iter().enumerate().all(|(i, e)| e.seq == i as u64));
    assert!(matches!(events.last().unwrap().kind, EventKind::End(_)));
    let (later, _) = output.since(events.len() as u64 - 1);
    assert_eq!(later.len(), 1, "read again from an offset");
    let made = session.jail.workspace.join("made.txt");
    assert_eq!(std::fs::read_to_string(made).unwrap(), "kept");

    let (ended, output) = python(&session, "raise SystemExit(3)", Duration::from_secs(20)).await;
    assert_eq!(
        (ended.status, ended.exit_code),
        (Status::Error, Some(3)),
        "{:?}",
        output.texts()
    );
}

#[tokio::test]
async fn nothing_outside_the_workspace_is_reachable() {
    let session = session(3_100_100, Limits::default());
    let code = r#"
import os, socket
tried = {}
for path in ['/usr/escape', '/etc/escape', '/escape', '/proc/escape']:
    try:
        open(path, 'w').write('x'); tried[path] = 'written'
    except OSError as e:
        tried[path] = type(e).__name__
for path in ['/etc/shadow', '/root', '/home', '/var/lib', '/run']:
    tried[path] = 'present' if os.path.exists(path) else 'absent'
for host in [('1.1.1.1', 80), ('127.0.0.1', 22), ('169.254.169.254', 80)]:
    try:
        socket.create_connection(host, timeout=1); tried[host[0]] = 'connected'
    except OSError as e:
        tried[host[0]] = 'refused'
tried['processes'] = sorted(p for p in os.listdir('/proc') if p.isdigit())
try:
    os.setuid(0); tried['setuid'] = 'root'
except OSError:
    tried['setuid'] = 'refused'
print(tried)
"#;
    let (ended, output) = python(&session, code, Duration::from_secs(20)).await;
    let (out, err) = output.texts();
    assert_eq!(ended.status, Status::Ok, "{out} {err}");
    for escape in ["'written'", "'present'", "'connected'", "'root'"] {
        assert!(!out.contains(escape), "{escape} in {out}");
    }
    assert!(
        out.contains("'processes': ['1', '2']"),
        "only the jail's own: {out}"
    );
    for path in ["/usr/escape", "/etc/escape", "/escape"] {
        assert!(!std::path::Path::new(path).exists());
    }
}

#[tokio::test]
async fn limits_end_runs_with_their_reason_and_leave_no_process() {
    let limits = Limits {
        cpu_seconds: 1,
        file_bytes: 1024 * 1024,
        ..Limits::default()
    };
    let session = session(3_100_200, limits);
    let (ended, _) = python(&session, "while True: pass", Duration::from_secs(20)).await;
    assert_eq!(ended.status, Status::CpuLimit, "{ended:?}");
    // Python ignores SIGXFSZ: its write fails instead.
    let (ended, output) = python(
        &session,
        "open('big', 'wb').write(b'x' * 2_000_000)",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(ended.status, Status::Error, "{ended:?}");
    assert!(
        output.texts().1.contains("File too large"),
        "{:?}",
        output.texts()
    );
    let output = Output::default();
    let shell = Language::Shell.program("head -c 2000000 /dev/zero > big");
    let ended = run(
        &session.jail,
        Some(&session.run_group()),
        shell,
        Duration::from_secs(20),
        &output,
        std::future::pending(),
    )
    .await;
    assert_eq!(ended.status, Status::FileLimit, "{ended:?}");
    let started = std::time::Instant::now();
    let (ended, _) = python(
        &session,
        "import time; time.sleep(60)",
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(ended.status, Status::Timeout, "{ended:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // A fork bomb meets the uid's process limit, and is killed whole.
    let bomb = "import os, time\nfor _ in range(500):\n    try:\n        os.fork()\n    except OSError:\n        break\ntime.sleep(60)";
    let (ended, _) = python(&session, bomb, Duration::from_secs(2)).await;
    assert_eq!(ended.status, Status::Timeout, "{ended:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        processes_of(3_100_200),
        Vec::<String>::new(),
        "nothing left running"
    );
}

#[tokio::test]
async fn a_run_is_stopped_from_outside_and_a_missing_interpreter_is_an_error() {
    let session = session(3_100_300, Limits::default());
    let output = Output::default();
    let ended = run(
        &session.jail,
        Some(&session.run_group()),
        Language::Shell.program("echo started; sleep 60"),
        Duration::from_secs(60),
        &output,
        tokio::time::sleep(Duration::from_millis(800)),
    )
    .await;
    assert_eq!(ended.status, Status::Killed, "{ended:?}");
    assert_eq!(output.texts().0, "started\n");
    let (ended, _) = {
        let output = Output::default();
        let ended = run(
            &session.jail,
            None,
            Program {
                argv: vec!["no-such-interpreter".to_owned()],
                ..Program::default()
            },
            Duration::from_secs(10),
            &output,
            std::future::pending(),
        )
        .await;
        (ended, output)
    };
    assert_eq!(ended.status, Status::Error, "{ended:?}");
}

#[tokio::test]
async fn the_kernels_riskiest_calls_are_refused_inside_the_jail() {
    let session = session(3_100_400, Limits::default());
    let code = r#"
import ctypes, errno, fcntl, os, termios
libc = ctypes.CDLL(None, use_errno=True)
refused = {}
# x86_64 numbers: keyctl, bpf, userfaultfd, io_uring_setup, ptrace, mount, unshare, perf_event_open, setns, init_module
for name, nr in [('keyctl', 250), ('bpf', 321), ('userfaultfd', 323), ('io_uring_setup', 425), ('ptrace', 101),
                 ('mount', 165), ('unshare', 272), ('perf_event_open', 298), ('setns', 308), ('init_module', 175),
                 # The x32 ABI (bit 30): a denied call by another number, and a harmless one.
                 ('x32 keyctl', 0x40000000 | 250), ('x32 getpid', 0x40000000 | 39)]:
    result = libc.syscall(nr, 0, 0, 0, 0, 0)
    refused[name] = errno.errorcode.get(ctypes.get_errno()) if result == -1 else 'allowed'
r, w = os.pipe()
try:
    fcntl.ioctl(r, termios.TIOCSTI, b'x'); refused['TIOCSTI'] = 'allowed'
except OSError as e:
    refused['TIOCSTI'] = errno.errorcode[e.errno]
try:
    fcntl.ioctl(r, termios.FIONREAD, b'    '); refused['FIONREAD'] = 'allowed'
except OSError as e:
    refused['FIONREAD'] = errno.errorcode[e.errno]
print(refused)
"#;
    let (ended, output) = python(&session, code, Duration::from_secs(20)).await;
    let (out, err) = output.texts();
    assert_eq!(ended.status, Status::Ok, "{out} {err}");
    for name in [
        "keyctl",
        "bpf",
        "userfaultfd",
        "io_uring_setup",
        "ptrace",
        "mount",
        "unshare",
        "perf_event_open",
        "setns",
        "init_module",
        "x32 keyctl",
        "x32 getpid",
        "TIOCSTI",
    ] {
        assert!(
            out.contains(&format!("'{name}': 'EPERM'")),
            "{name} in {out}"
        );
    }
    assert!(
        out.contains("'FIONREAD': 'allowed'"),
        "other ioctls work: {out}"
    );
}

#[tokio::test]
async fn the_kernel_enforces_memory_processes_and_cpu_and_names_an_oom() {
    let limits = GroupLimits {
        memory_bytes: 64 * 1024 * 1024,
        pids: 12,
        cpu_cores: 0.25,
    };
    let session = session_with(3_100_500, Limits::default(), &limits);
    // A memory bomb is killed by the kernel, and the end says so.
    let bomb = "chunks = []\nwhile True:\n    chunks.append(bytearray(8 * 1024 * 1024))";
    let (ended, output) = python(&session, bomb, Duration::from_secs(30)).await;
    assert_eq!(ended.status, Status::Oom, "{ended:?} {:?}", output.texts());
    let peak = ended.peak_memory_bytes.unwrap();
    assert!(
        peak > 32 * 1024 * 1024 && peak <= 64 * 1024 * 1024,
        "peak {peak} under the 64 MiB limit"
    );
    // Processes: the group's limit stops a fork bomb (the uid's is 64).
    let forks = "import os\nn = 0\nfor _ in range(100):\n    try:\n        if os.fork() == 0:\n            import time; time.sleep(5); os._exit(0)\n        n += 1\n    except OSError:\n        break\nprint(n)";
    let (ended, output) = python(&session, forks, Duration::from_secs(2)).await;
    let started: u32 = output.texts().0.trim().parse().unwrap_or(999);
    assert!(
        started < 12,
        "{started} forks under pids.max 12 ({ended:?})"
    );
    // CPU: a quarter of a core, whatever the program asks for.
    let (ended, _) = python(
        &session,
        "import time\nend = time.time() + 2\nwhile time.time() < end: pass",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(ended.status, Status::Ok, "{ended:?}");
    let cpu = ended.cpu_ms.unwrap();
    assert!(
        (300..=900).contains(&cpu),
        "{cpu} ms of CPU in 2 s at 0.25 cores"
    );
}

#[tokio::test]
async fn a_removed_group_takes_its_processes_with_it() {
    let cgroups = cgroups();
    let group = cgroups.group(&format!("test-sweep-{}", std::process::id()));
    group.create(Some(&GROUP_LIMITS)).unwrap();
    let inner = group.child("run-0");
    inner.create(None).unwrap();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    inner.add(sleeper.id()).unwrap();
    group.remove().unwrap();
    let status = sleeper.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(!group.exists() && !inner.exists());
}

#[tokio::test]
async fn a_sweep_removes_what_a_previous_process_left() {
    // A server's groups as a killed process left them, found again.
    let instance = "tests-sweep";
    let before = Cgroups::detect(instance).unwrap();
    let left = before.group("ses_left");
    left.create(Some(&GROUP_LIMITS)).unwrap();
    left.child("run-0").create(None).unwrap();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    left.child("run-0").add(sleeper.id()).unwrap();
    let swept = Cgroups::detect(instance).unwrap().sweep();
    assert!(swept.contains(&"ses_left".to_owned()), "{swept:?}");
    let status = sleeper.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(!left.exists());
}

/// Runs `code` in `boxed` through its agent, with `GREETING` set.
async fn in_box(
    boxed: &dyn SessionBox,
    workspace: &std::path::Path,
    language: Language,
    code: &str,
) -> (sbx_sessions::Ended, Output) {
    let output = Output::default();
    let program = Program {
        env: vec![("GREETING".into(), "hej".into())],
        ..language.program(code)
    };
    let ended = run_in(
        boxed,
        workspace,
        program,
        Duration::from_secs(20),
        &output,
        std::future::pending(),
    )
    .await;
    (ended, output)
}

/// Live processes (not zombies) the host runs as `uid`.
fn live_processes_of(uid: u32) -> Vec<String> {
    processes_of(uid)
        .into_iter()
        .filter(|p| !p.contains("zombie"))
        .collect()
}

#[tokio::test]
async fn a_sessions_agent_starts_its_runs_and_ends_what_each_leaves() {
    let uid = 3_100_600;
    let workspace = tempfile::tempdir().unwrap();
    chown(workspace.path(), Some(uid), Some(uid)).unwrap();
    let runtime = Bwrap {
        cgroups: cgroups(),
        cpus: None,
        seccomp: Some(seccomp_filter()),
    };
    let boxed = runtime
        .open(BoxSpec {
            id: format!("test-agent-{}", std::process::id()),
            workspace: workspace.path().to_owned(),
            uid,
            limits: Limits::default(),
            group: GROUP_LIMITS,
            egress: None,
            layer: None,
        })
        .await
        .unwrap();
    let at = workspace.path();

    // The run's environment and stdin are its own; its pid is the host's.
    let (ended, output) = in_box(
        &*boxed,
        at,
        Language::Python,
        "import os\nprint(os.environ['GREETING'], os.getppid())",
    )
    .await;
    assert_eq!(ended.status, Status::Ok, "{ended:?} {:?}", output.texts());
    let agent = output.texts().0;
    assert!(agent.starts_with("hej "), "{agent}");
    let Some(EventKind::Start { pid }) = output.since(0).0.first().map(|e| e.kind.clone()) else {
        panic!("no start event");
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    assert!(
        status.is_empty() || status.contains(&uid.to_string()),
        "{status}"
    );

    // Runs at once: each a child of the same agent, each in its own group.
    let code = "import os, time\ntime.sleep(0.5)\nprint(os.getppid())";
    let ((a, a_out), (b, b_out)) = tokio::join!(
        in_box(&*boxed, at, Language::Python, code),
        in_box(&*boxed, at, Language::Python, code),
    );
    assert_eq!((a.status, b.status), (Status::Ok, Status::Ok));
    assert_eq!(a_out.texts().0, b_out.texts().0);
    assert_eq!(
        format!("hej {}", a_out.texts().0),
        agent,
        "one agent ran them all"
    );
    assert!(
        a.peak_memory_bytes.unwrap() > 1_000_000 && a.cpu_ms.is_some(),
        "{a:?}"
    );

    // What a run leaves in the background (here holding its stdout) ends
    // with it.
    let started = std::time::Instant::now();
    let (ended, _) = in_box(&*boxed, at, Language::Shell, "sleep 60 & echo left").await;
    assert_eq!(ended.status, Status::Ok);
    assert!(started.elapsed() < Duration::from_secs(10));
    let left: Vec<String> = live_processes_of(uid)
        .into_iter()
        .filter(|p| p.starts_with("Name:\tsleep"))
        .collect();
    assert_eq!(left, Vec::<String>::new());

    // A failed exec is an error with its reason, not a hang.
    let output = Output::default();
    let program = Program {
        argv: vec!["no-such-command".into()],
        ..Program::default()
    };
    let ended = run_in(
        &*boxed,
        at,
        program,
        Duration::from_secs(10),
        &output,
        std::future::pending(),
    )
    .await;
    assert_eq!((ended.status, ended.exit_code), (Status::Error, Some(127)));
    assert!(
        output.texts().1.contains("No such file"),
        "{:?}",
        output.texts()
    );

    // A run that kills its agent (it shares the agent's uid) ends killed;
    // the next run gets a new agent.
    let (ended, _) = in_box(&*boxed, at, Language::Shell, "kill -9 $PPID; sleep 5").await;
    assert_eq!(ended.status, Status::Killed, "{ended:?}");
    let (ended, output) = in_box(&*boxed, at, Language::Shell, "echo again").await;
    assert_eq!(
        (ended.status, output.texts().0.as_str()),
        (Status::Ok, "again\n")
    );

    // Closing leaves nothing running as the session's uid.
    boxed.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(live_processes_of(uid), Vec::<String>::new());
}

#[tokio::test]
async fn the_server_adopts_and_reaps_what_bubblewrap_leaves() {
    sbx_sessions::reaper::adopt_orphans().unwrap();
    let session = session(3_100_700, Limits::default());
    let (ended, _) = python(&session, "print('done')", Duration::from_secs(10)).await;
    assert_eq!(ended.status, Status::Ok);
    let mut reaped = 0;
    for _ in 0..50 {
        reaped += sbx_sessions::reaper::reap_orphans();
        if processes_of(3_100_700).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        processes_of(3_100_700),
        Vec::<String>::new(),
        "not even a zombie"
    );
    assert!(reaped >= 1, "the jail's init came to this process");
}

//! Control groups: the kernel enforces a session's memory (swap
//! included), process count and CPU share, tells an OOM kill from any
//! other death, counts each run's peak memory and CPU time, and kills a
//! session's processes all at once.
//!
//! Both layouts are handled: cgroup v1 (a hierarchy per controller) and
//! v2 (one unified hierarchy). Groups live beneath the server's own group,
//! in `sbx-sessions/{instance}/{session}/{run}` (an instance per data
//! directory, so servers sharing a machine never touch each other's): limits are set on the session's
//! group, each run is a child group (its own accounting), and a session is
//! killed through its group — the freezer on v1, `cgroup.kill` on v2.
//!
//! The files are written directly: the crates for this (`cgroups-rs`)
//! either panic on a missing file or bring a D-Bus client along, and the
//! interface is a handful of files documented by the kernel.

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::Serialize;

/// Where, beneath the server's group, session groups are made.
const BASE: &str = "sbx-sessions";

/// The v1 hierarchies a session needs.
const V1_CONTROLLERS: [&str; 5] = ["memory", "pids", "cpu", "cpuacct", "freezer"];

/// The v2 controllers a session needs, enabled for its children.
const V2_CONTROLLERS: &str = "+memory +pids +cpu";

/// The CFS period quotas are counted in.
const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "control groups are not available here ({0}): sessions need the memory, pids, cpu and freezer controllers, writable by the server (run it as root on a host or in a privileged container)"
    )]
    Unavailable(String),
    #[error("control group {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(io_error(path))
}

/// Limits the kernel enforces on a whole session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupLimits {
    /// Memory, swap included (a run past it is OOM-killed).
    pub memory_bytes: u64,
    /// Processes and threads at once (a fork past it fails).
    pub pids: u64,
    /// CPU time per wall-clock time, in cores (`0.5` is half a core).
    pub cpu_cores: f64,
}

/// What a run used, read from its group when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Most memory in use at once, in bytes (0 where the kernel does not
    /// count it: v2 before Linux 5.19).
    pub peak_memory_bytes: u64,
    /// CPU time, user and system.
    pub cpu_ms: u64,
    /// Processes the OOM killer ended.
    pub oom_kills: u64,
}

/// The layout found on this machine, and where session groups go.
#[derive(Debug, Clone)]
pub struct Cgroups {
    v2: bool,
    /// One base directory per v1 controller, or the single v2 one.
    bases: Vec<PathBuf>,
}

/// A group: a directory in each hierarchy (one on v2).
#[derive(Debug, Clone)]
pub struct Group {
    v2: bool,
    dirs: Vec<PathBuf>,
}

impl Cgroups {
    /// Finds the hierarchies and readies `sbx-sessions/{instance}`
    /// beneath the server's own group, saying what is missing when it
    /// cannot.
    pub fn detect(instance: &str) -> Result<Self, CgroupError> {
        let unavailable = |what: &dyn std::fmt::Display| CgroupError::Unavailable(what.to_string());
        let me = procfs::process::Process::myself().map_err(|e| unavailable(&e))?;
        let mounts = me.mountinfo().map_err(|e| unavailable(&e))?;
        let groups = me.cgroups().map_err(|e| unavailable(&e))?.0;
        let within = |mount: &procfs::process::MountInfo, path: &str| {
            let relative = Path::new(path)
                .strip_prefix(&mount.root)
                .unwrap_or(Path::new(""));
            mount.mount_point.join(relative).join(BASE)
        };
        let instance_of = |base: PathBuf| base.join(instance);
        let unified = mounts.iter().find(|m| {
            m.fs_type == "cgroup2"
                && fs::read_to_string(m.mount_point.join("cgroup.controllers"))
                    .is_ok_and(|c| ["memory", "pids"].iter().all(|n| c.contains(n)))
        });
        let cgroups = if let Some(mount) = unified {
            let mine = groups
                .iter()
                .find(|g| g.hierarchy == 0)
                .ok_or_else(|| unavailable(&"the server's v2 group is unknown"))?;
            let base = within(mount, &mine.pathname);
            Self::ready_v2(&base)?;
            let base = instance_of(base);
            Self {
                v2: true,
                bases: vec![base],
            }
        } else {
            let mut bases = Vec::new();
            for controller in V1_CONTROLLERS {
                let mount = mounts
                    .iter()
                    .find(|m| m.fs_type == "cgroup" && m.super_options.contains_key(controller))
                    .ok_or_else(|| unavailable(&format!("no {controller} hierarchy is mounted")))?;
                let path = groups
                    .iter()
                    .find(|g| g.controllers.iter().any(|c| c == controller))
                    .map_or("/", |g| g.pathname.as_str());
                let base = within(mount, path);
                fs::create_dir_all(&base).map_err(|e| unavailable(&e))?;
                bases.push(instance_of(base));
            }
            bases.dedup();
            Self { v2: false, bases }
        };
        Ok(cgroups)
    }

    /// On v2 a group with processes cannot hand controllers to children:
    /// the server moves itself into a leaf (`sbx-server`) beside the
    /// sessions' base first when its own group refuses.
    fn ready_v2(base: &Path) -> Result<(), CgroupError> {
        let unavailable = |e: &dyn std::fmt::Display| CgroupError::Unavailable(e.to_string());
        let mine = base.parent().unwrap_or(base);
        let control = mine.join("cgroup.subtree_control");
        if fs::write(&control, V2_CONTROLLERS).is_err() {
            let leaf = mine.join("sbx-server");
            fs::create_dir_all(&leaf).map_err(|e| unavailable(&e))?;
            fs::write(leaf.join("cgroup.procs"), std::process::id().to_string())
                .map_err(|e| unavailable(&e))?;
            fs::write(&control, V2_CONTROLLERS).map_err(|e| unavailable(&e))?;
        }
        fs::create_dir_all(base).map_err(|e| unavailable(&e))?;
        fs::write(base.join("cgroup.subtree_control"), V2_CONTROLLERS).map_err(|e| unavailable(&e))
    }

    /// `cgroup v1` or `cgroup v2`, for logs and errors.
    pub fn version(&self) -> &'static str {
        if self.v2 { "cgroup v2" } else { "cgroup v1" }
    }

    /// The group named `name` (not made until [`Group::create`]).
    pub fn group(&self, name: &str) -> Group {
        Group {
            v2: self.v2,
            dirs: self.bases.iter().map(|base| base.join(name)).collect(),
        }
    }

    /// Removes the instance's directories if no group is left in them
    /// (they are made again with the next session's group).
    pub fn close(&self) {
        for base in &self.bases {
            let _ = fs::remove_dir(base);
        }
    }

    /// Kills and removes every session group, as a previous process left
    /// them; the names of those that were there.
    pub fn sweep(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .bases
            .iter()
            .filter_map(|base| fs::read_dir(base).ok())
            .flat_map(|entries| entries.filter_map(Result::ok))
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        names.sort();
        names.dedup();
        for name in &names {
            if let Err(error) = self.group(name).remove() {
                tracing::warn!(%error, group = %name, "removing a session group left by a previous process failed");
            }
        }
        self.close();
        names
    }
}

impl Group {
    /// Makes the group, with `limits` when given (a session's); a child
    /// group without them is bound by its parent's.
    pub fn create(&self, limits: Option<&GroupLimits>) -> Result<(), CgroupError> {
        for dir in &self.dirs {
            fs::create_dir_all(dir).map_err(io_error(dir))?;
        }
        if let Some(limits) = limits {
            self.limit(limits)?;
        }
        Ok(())
    }

    /// The child group `name`.
    pub fn child(&self, name: &str) -> Self {
        Self {
            v2: self.v2,
            dirs: self.dirs.iter().map(|dir| dir.join(name)).collect(),
        }
    }

    fn file(&self, name: &str) -> Option<PathBuf> {
        self.dirs
            .iter()
            .map(|dir| dir.join(name))
            .find(|path| path.exists())
    }

    fn set(&self, name: &str, value: &str) -> Result<(), CgroupError> {
        let path = self.file(name).ok_or_else(|| CgroupError::Io {
            path: PathBuf::from(name),
            source: io::ErrorKind::NotFound.into(),
        })?;
        write(&path, value)
    }

    fn limit(&self, limits: &GroupLimits) -> Result<(), CgroupError> {
        let memory = limits.memory_bytes.to_string();
        let quota = ((limits.cpu_cores * CPU_PERIOD_US as f64) as u64).max(1000);
        self.set("pids.max", &limits.pids.to_string())?;
        if self.v2 {
            // Its parent (the instance) hands it the controllers.
            for dir in &self.dirs {
                if let Some(parent) = dir.parent() {
                    write(&parent.join("cgroup.subtree_control"), V2_CONTROLLERS)?;
                }
            }
            self.set("memory.max", &memory)?;
            // No swap: what the memory limit allows is all a session gets.
            if self.file("memory.swap.max").is_some() {
                self.set("memory.swap.max", "0")?;
            }
            self.set("cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
            self.set("cgroup.subtree_control", V2_CONTROLLERS)
        } else {
            self.set("memory.limit_in_bytes", &memory)?;
            // Memory and swap together (absent when swap is not counted).
            if self.file("memory.memsw.limit_in_bytes").is_some() {
                self.set("memory.memsw.limit_in_bytes", &memory)?;
            }
            self.set("cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
            self.set("cpu.cfs_quota_us", &quota.to_string())
        }
    }

    /// Moves process `pid` (and its threads) into the group.
    pub fn add(&self, pid: u32) -> Result<(), CgroupError> {
        let pid = pid.to_string();
        for dir in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid)?;
        }
        Ok(())
    }

    fn read(&self, name: &str) -> String {
        self.file(name)
            .and_then(|path| fs::read_to_string(path).ok())
            .unwrap_or_default()
    }

    /// A `key value` line's value in a flat-keyed file.
    fn keyed(&self, name: &str, key: &str) -> u64 {
        self.read(name)
            .lines()
            .filter_map(|line| line.split_once(' '))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn number(&self, name: &str) -> u64 {
        self.read(name).trim().parse().unwrap_or(0)
    }

    /// What the group's processes used so far.
    pub fn usage(&self) -> Usage {
        if self.v2 {
            Usage {
                peak_memory_bytes: self.number("memory.peak"),
                cpu_ms: self.keyed("cpu.stat", "usage_usec") / 1000,
                oom_kills: self.keyed("memory.events", "oom_kill"),
            }
        } else {
            Usage {
                peak_memory_bytes: self.number("memory.max_usage_in_bytes"),
                cpu_ms: self.number("cpuacct.usage") / 1_000_000,
                oom_kills: self.keyed("memory.oom_control", "oom_kill"),
            }
        }
    }

    /// Memory the group holds now (its processes' and the files they
    /// wrote to a tmpfs), in bytes.
    pub fn memory_bytes(&self) -> u64 {
        if self.v2 {
            self.number("memory.current")
        } else {
            self.number("memory.usage_in_bytes")
        }
    }

    /// Every process in the group and its children.
    fn processes(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for dir in &self.dirs {
            collect_processes(dir, &mut pids);
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Kills what is left in the group, if anything is (most runs leave
    /// nothing: then no group is frozen).
    pub fn kill_leftovers(&self) {
        if !self.processes().is_empty() {
            self.kill();
        }
    }

    /// Kills every process in the group and its children at once: none
    /// can fork away while it happens.
    pub fn kill(&self) {
        if self.v2 {
            if let Some(kill) = self.file("cgroup.kill")
                && fs::write(kill, "1").is_ok()
            {
                return;
            }
            // Before Linux 5.14: kill until none is left.
            for _ in 0..100 {
                let pids = self.processes();
                if pids.is_empty() {
                    return;
                }
                signal_all(&pids);
            }
            return;
        }
        let state = self.file("freezer.state");
        if let Some(state) = &state {
            let _ = fs::write(state, "FROZEN");
            let deadline = Instant::now() + Duration::from_millis(500);
            while fs::read_to_string(state).is_ok_and(|s| s.trim() != "FROZEN")
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        signal_all(&self.processes());
        if let Some(state) = &state {
            // Killed processes die when thawed.
            let _ = fs::write(state, "THAWED");
        }
    }

    /// Kills the group's processes, waits for them to be gone, and
    /// removes the group and its children.
    pub fn remove(&self) -> Result<(), CgroupError> {
        self.kill_leftovers();
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        for dir in &self.dirs {
            remove_tree(dir)?;
        }
        Ok(())
    }

    /// Whether any of its directories still exists.
    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|dir| dir.is_dir())
    }
}

fn collect_processes(dir: &Path, pids: &mut Vec<i32>) {
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(
            procs
                .lines()
                .filter_map(|line| line.trim().parse::<i32>().ok()),
        );
    }
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            collect_processes(&entry.path(), pids);
        }
    }
}

fn signal_all(pids: &[i32]) {
    for pid in pids
        .iter()
        .filter_map(|p| rustix::process::Pid::from_raw(*p))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Removes a group directory, its children first (a group's directory
/// holds only the kernel's files, which go with it).
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let children = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(dir)(e)),
    };
    for entry in children.flatten() {
        if entry.path().is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(dir)(e)),
        _ => Ok(()),
    }
}

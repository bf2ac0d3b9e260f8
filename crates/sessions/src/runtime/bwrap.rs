//! The default runtime: every run in a bubblewrap [`Jail`] of its own, as
//! the session's host uid, in a child of the session's control group (so
//! each run's memory, CPU and OOM kills are its own). A jail is started
//! ahead of the next run ([`Warm`]) so a run skips bubblewrap's setup.

use std::{
    os::unix::process::ExitStatusExt,
    path::PathBuf,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use tokio::io::AsyncWriteExt;

use super::{BoxFuture, BoxSpec, Control, Exit, Process, RunUsage, Runtime, SessionBox};
use crate::{
    cgroup::{Cgroups, Group, Usage},
    jail::{Jail, JailError},
    output::Output,
    run::{Ended, Program, run_with},
};

/// Jails on this machine, in control groups under one instance.
#[derive(Debug)]
pub struct Bwrap {
    pub cgroups: Cgroups,
    /// CPUs jails run on (`taskset -c`), leaving the rest to the server.
    pub cpus: Option<String>,
    /// The seccomp program every jail loads.
    pub seccomp: Option<PathBuf>,
}

impl Bwrap {
    /// The jail `spec`'s runs happen in.
    fn jail(&self, spec: &BoxSpec) -> Jail {
        Jail {
            workspace: spec.workspace.clone(),
            uid: spec.uid,
            limits: spec.limits,
            cpus: self.cpus.clone(),
            seccomp: self.seccomp.clone(),
            egress: spec.egress.clone(),
            layer: spec.layer.clone(),
        }
    }
}

impl Runtime for Bwrap {
    fn name(&self) -> &'static str {
        "bwrap"
    }

    fn check(&self) -> Result<(), String> {
        crate::jail::check().map_err(|e| e.to_string())
    }

    fn open(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Arc<dyn SessionBox>, String>> {
        Box::pin(async move {
            self.check()?;
            let group = self.cgroups.group(&spec.id);
            let (made, limits) = (group.clone(), spec.group);
            tokio::task::spawn_blocking(move || made.create(Some(&limits)))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            let boxed = Arc::new_cyclic(|me| BwrapBox {
                me: me.clone(),
                jail: self.jail(&spec),
                group,
                warm: Mutex::new(None),
                prewarm: spec.prewarm,
            });
            boxed.prewarm();
            Ok(boxed as Arc<dyn SessionBox>)
        })
    }

    fn sweep(&self) -> BoxFuture<'_, usize> {
        Box::pin(async move { self.cgroups.sweep().len() })
    }
}

/// One session's jails: its control group, and a jail waiting for its
/// next run.
#[derive(Debug)]
pub struct BwrapBox {
    me: Weak<BwrapBox>,
    pub jail: Jail,
    pub group: Group,
    warm: Mutex<Option<Warm>>,
    /// Whether a jail is started ahead of each run.
    prewarm: bool,
}

impl BwrapBox {
    fn warm_slot(&self) -> std::sync::MutexGuard<'_, Option<Warm>> {
        self.warm.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the next run's jail now, unless one waits already.
    pub fn prewarm(&self) {
        let Some(me) = self.me.upgrade() else { return };
        if !self.prewarm || self.warm_slot().is_some() || !self.group.exists() {
            return;
        }
        let group = self.group.child(&format!("warm-{}", super::run_token()));
        tokio::spawn(async move {
            match Warm::start(&me.jail, Some(group)).await {
                Ok(warm) => {
                    let unused = {
                        let mut slot = me.warm_slot();
                        if slot.is_none() && me.group.exists() {
                            *slot = Some(warm);
                            None
                        } else {
                            Some(warm)
                        }
                    };
                    if let Some(warm) = unused {
                        warm.discard().await;
                    }
                }
                Err(error) => tracing::warn!(%error, "a warm jail did not start"),
            }
        });
    }
}

impl SessionBox for BwrapBox {
    fn start(&self, program: Program) -> BoxFuture<'_, Result<Process, String>> {
        Box::pin(async move {
            let warm = self.warm_slot().take();
            let launched = match warm {
                Some(warm) => warm.launch(program.clone()).await,
                None => Err("no jail waits".to_owned()),
            };
            // A waiting jail that died meanwhile is replaced by a new one.
            let mut process = match launched {
                Ok(process) => process,
                Err(_) => {
                    let group = self.group.child(&format!("run-{}", super::run_token()));
                    spawn(&self.jail, Some(group), program, 0).await?
                }
            };
            // The next jail starts once this run is over: started beside
            // it, it would take the CPU the run needs.
            process.control = Box::new(Rewarm {
                inner: process.control,
                then: self.me.clone(),
            });
            Ok(process)
        })
    }

    fn memory_held(&self) -> Option<u64> {
        Some(self.group.memory_bytes())
    }

    fn fault(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            (!self.group.exists())
                .then(|| "its control group was removed from outside the server".to_owned())
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let warm = self.warm_slot().take();
            if let Some(warm) = warm {
                warm.discard().await;
            }
            let group = self.group.clone();
            let removed = tokio::task::spawn_blocking(move || group.remove()).await;
            if let Ok(Err(error)) = removed {
                tracing::warn!(%error, "removing a session's control group failed");
            }
        })
    }
}

/// A run's control that starts the session's next jail once it is over.
struct Rewarm {
    inner: Box<dyn Control>,
    then: Weak<BwrapBox>,
}

impl Control for Rewarm {
    fn wait(&mut self) -> BoxFuture<'_, std::io::Result<Exit>> {
        self.inner.wait()
    }

    fn kill(&mut self) -> BoxFuture<'_, std::io::Result<Exit>> {
        self.inner.kill()
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, RunUsage> {
        Box::pin(async move {
            let usage = self.inner.finish().await;
            if let Some(boxed) = self.then.upgrade() {
                boxed.prewarm();
            }
            usage
        })
    }
}

/// A jailed child process, in its own control group (removed at the end).
struct ChildControl {
    child: tokio::process::Child,
    group: Option<Group>,
    /// CPU its group had used before the run (a warm jail's start).
    cpu_before: u64,
}

fn exit(status: std::process::ExitStatus) -> Exit {
    Exit {
        code: status.code(),
        signal: status.signal(),
    }
}

impl Control for ChildControl {
    fn wait(&mut self) -> BoxFuture<'_, std::io::Result<Exit>> {
        Box::pin(async move { self.child.wait().await.map(exit) })
    }

    fn kill(&mut self) -> BoxFuture<'_, std::io::Result<Exit>> {
        Box::pin(async move { end_jail(&mut self.child).await.map(exit) })
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, RunUsage> {
        Box::pin(async move {
            // A run that was not waited for (a worker dropped) ends here.
            if self.child.try_wait().ok().flatten().is_none() {
                let _ = end_jail(&mut self.child).await;
            }
            let Some(group) = self.group.take() else {
                return RunUsage::default();
            };
            let mut usage = finish(&group).await;
            usage.cpu_ms = usage.cpu_ms.saturating_sub(self.cpu_before);
            usage.into()
        })
    }
}

/// Starts the jail's command, moved into `group` (made here) before it
/// runs anything; its stdin stays open for the caller.
pub(crate) async fn spawn(
    jail: &Jail,
    group: Option<Group>,
    program: Program,
    cpu_before: u64,
) -> Result<Process, String> {
    let (child, stdin) = spawn_child(jail, group.as_ref(), program).await?;
    Ok(process(child, stdin, group, cpu_before))
}

/// [`spawn`]'s child and its open stdin.
async fn spawn_child(
    jail: &Jail,
    group: Option<&Group>,
    program: Program,
) -> Result<(tokio::process::Child, Option<tokio::process::ChildStdin>), String> {
    let mut command = jail
        .command(&program.argv, &program.env)
        .map_err(|e: JailError| e.to_string())?;
    if let Some(group) = group {
        group
            .create(None)
            .map_err(|e| format!("the run's control group could not be made: {e}"))?;
    }
    let spawned = command.spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            if let Some(group) = group {
                let _ = group.remove();
            }
            return Err(format!("the jail did not start: {e}"));
        }
    };
    let entered = match (group, child.id()) {
        (Some(group), Some(pid)) => group
            .add(pid)
            .map_err(|e| format!("the jail could not join its control group: {e}")),
        _ => Ok(()),
    };
    let mut stdin = child.stdin.take();
    let released = match (&entered, &mut stdin) {
        (Ok(()), Some(stdin)) => stdin
            .write_all(b"\n")
            .await
            .map_err(|e| format!("the jail did not start: {e}")),
        _ => Ok(()),
    };
    if let Err(error) = entered.and(released) {
        let _ = child.start_kill();
        let _ = child.wait().await;
        if let Some(group) = group {
            finish(group).await;
        }
        return Err(error);
    }
    Ok((child, stdin))
}

fn process(
    mut child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    group: Option<Group>,
    cpu_before: u64,
) -> Process {
    Process {
        pid: child.id().unwrap_or(0),
        stdin: stdin.map(|s| Box::pin(s) as _),
        stdout: child.stdout.take().map(|s| Box::pin(s) as _),
        stderr: child.stderr.take().map(|s| Box::pin(s) as _),
        control: Box::new(ChildControl {
            child,
            group,
            cpu_before,
        }),
    }
}

/// Reads what the run's group used, then kills whatever is left in it and
/// removes it.
pub(crate) async fn finish(group: &Group) -> Usage {
    let group = group.clone();
    tokio::task::spawn_blocking(move || {
        let usage = group.usage();
        if let Err(error) = group.remove() {
            tracing::warn!(%error, "removing a run's control group failed");
        }
        usage
    })
    .await
    .unwrap_or_default()
}

/// Ends a jail whole. Killing the first process of its PID namespace
/// (bubblewrap's child) kills every process in it; bubblewrap then exits
/// and reaps it, leaving no zombie behind (killing bubblewrap first would
/// orphan that process to the host's init).
pub(crate) async fn end_jail(
    child: &mut tokio::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    if let Some(pid) = child.id() {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for inner in children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            if let Some(inner) = rustix::process::Pid::from_raw(inner) {
                let _ = rustix::process::kill_process(inner, rustix::process::Signal::KILL);
            }
        }
    }
    match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
        Ok(waited) => waited,
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await
        }
    }
}

/// Waits for a run's line of `{argv, env}` on stdin, then becomes it.
const LAUNCHER: &str = include_str!("../jail/launch.py");

/// A jail started ahead of its run: namespaces made, mounts done, in its
/// own control group, its launcher waiting on stdin for what to run. A
/// run in it starts without bubblewrap's setup; each is used once.
#[derive(Debug)]
pub struct Warm {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    group: Option<Group>,
    workspace: PathBuf,
}

impl Warm {
    /// Starts a jail whose launcher waits for a run, in `group` (made here).
    pub async fn start(jail: &Jail, group: Option<Group>) -> Result<Self, String> {
        let launcher = Program {
            argv: ["python3", "-c", LAUNCHER].map(str::to_owned).to_vec(),
            ..Program::default()
        };
        let (mut child, stdin) = spawn_child(jail, group.as_ref(), launcher).await?;
        let Some(stdin) = stdin else {
            let _ = end_jail(&mut child).await;
            return Err("the jail has no stdin".to_owned());
        };
        Ok(Self {
            child,
            stdin,
            group,
            workspace: jail.workspace.clone(),
        })
    }

    /// Hands `program` to the waiting launcher: the run's process.
    pub async fn launch(mut self, program: Program) -> Result<Process, String> {
        let cpu_before = self.group.as_ref().map_or(0, |g| g.usage().cpu_ms);
        let env: std::collections::BTreeMap<_, _> = program.env.iter().cloned().collect();
        let spec = serde_json::json!({"argv": program.argv, "env": env});
        let mut line = spec.to_string().into_bytes();
        line.push(b'\n');
        if let Err(e) = self.stdin.write_all(&line).await {
            let _ = end_jail(&mut self.child).await;
            if let Some(group) = &self.group {
                finish(group).await;
            }
            return Err(format!("the warm jail did not take the run: {e}"));
        }
        Ok(process(
            self.child,
            Some(self.stdin),
            self.group,
            cpu_before,
        ))
    }

    /// Runs `program` in the waiting jail, as [`crate::run`] would have.
    pub async fn run(
        self,
        program: Program,
        timeout: Duration,
        output: &Output,
        stop: impl std::future::Future<Output = ()>,
    ) -> Ended {
        let workspace = self.workspace.clone();
        let start = |program| self.launch(program);
        run_with(start, &workspace, program, timeout, output, stop).await
    }

    /// Ends the waiting jail unused, its group removed.
    pub async fn discard(mut self) {
        drop(self.stdin);
        let _ = end_jail(&mut self.child).await;
        if let Some(group) = self.group {
            finish(&group).await;
        }
    }
}

//! The default runtime: one bubblewrap [`Jail`] per session, as the
//! session's host uid, with the session's agent in it ([`AgentJail`]).
//! Every run is a fork of the agent, moved into a child of the session's
//! control group before it runs anything (so each run's memory, CPU and
//! OOM kills are its own), and its leftovers are killed when it ends.

use std::{
    os::unix::process::ExitStatusExt,
    path::PathBuf,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::io::AsyncWriteExt;

use super::{
    BoxFuture, BoxSpec, Control, Exit, Process, RunUsage, Runtime, SessionBox,
    agent::{self, Admitted, AgentSocket},
};
use crate::{
    cgroup::{Cgroups, Group, Usage},
    jail::{Jail, JailError},
    run::Program,
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
                agent: tokio::sync::Mutex::new(None),
                ready: Mutex::new(None),
                preparing: AtomicBool::new(false),
            });
            // Started now, so the session's first run finds it waiting.
            if let Err(error) = boxed.agent().await {
                boxed.close().await;
                return Err(error);
            }
            boxed.prepare_next();
            Ok(boxed as Arc<dyn SessionBox>)
        })
    }

    fn sweep(&self) -> BoxFuture<'_, usize> {
        Box::pin(async move { self.cgroups.sweep().len() })
    }
}

/// One session's jail: its control group, the agent that starts its runs
/// (started again when it died), and the next run, forked and waiting.
#[derive(Debug)]
pub struct BwrapBox {
    me: Weak<BwrapBox>,
    pub jail: Jail,
    pub group: Group,
    agent: tokio::sync::Mutex<Option<AgentJail>>,
    /// The next run's process, forked and in its group ahead of the run:
    /// joining a control group waits for the kernel (an RCU grace period
    /// on v1, several milliseconds on an idle machine).
    ready: Mutex<Option<Ready>>,
    preparing: AtomicBool,
}

/// A run's process the agent forked ahead, in its own control group.
#[derive(Debug)]
struct Ready {
    admitted: Admitted,
    group: Group,
    /// The agent that forked it (its pid): a process forked by an agent
    /// that died since dies with it.
    agent: Option<u32>,
}

impl BwrapBox {
    /// Makes sure a live agent waits, starting one when none does.
    async fn agent(&self) -> Result<tokio::sync::MutexGuard<'_, Option<AgentJail>>, String> {
        let mut slot = self.agent.lock().await;
        if let Some(dead) = slot.take_if(|agent| !agent.alive()) {
            dead.end().await;
        }
        if slot.is_none() {
            let group = self.group.child(&format!("agent-{}", super::run_token()));
            *slot = Some(AgentJail::start(&self.jail, group).await?);
        }
        Ok(slot)
    }

    /// Has the agent fork a run's process, moved into a control group of
    /// its own before it runs anything.
    async fn prepare(&self) -> Result<Ready, String> {
        let group = self.group.child(&format!("run-{}", super::run_token()));
        let admitted = group.clone();
        let admit = move |pid: u32| -> BoxFuture<'static, Result<(), String>> {
            Box::pin(async move {
                tokio::task::spawn_blocking(move || {
                    admitted.create(None)?;
                    admitted.add(pid)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("the run could not join its control group: {e}"))
            })
        };
        let (handed, agent) = {
            let agent = self.agent().await?;
            let Some(agent) = agent.as_ref() else {
                return Err("the session's agent did not start".to_owned());
            };
            (agent.socket.hand_over()?, agent.child.id())
        };
        match handed.admit(admit).await {
            Ok(admitted) => Ok(Ready {
                admitted,
                group,
                agent,
            }),
            Err(error) => {
                finish(&group).await;
                Err(error)
            }
        }
    }

    /// Prepares the next run's process in the background, unless one waits
    /// or is on its way.
    fn prepare_next(&self) {
        let Some(me) = self.me.upgrade() else { return };
        if self.ready_slot().is_some() || self.preparing.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(async move {
            let prepared = me.prepare().await;
            let unused = match prepared {
                Ok(ready) if me.group.exists() => me.ready_slot().replace(ready),
                Ok(ready) => Some(ready),
                Err(error) => {
                    tracing::debug!(%error, "a session's next run could not be prepared");
                    None
                }
            };
            me.preparing.store(false, Ordering::SeqCst);
            if let Some(unused) = unused {
                finish(&unused.group).await;
            }
        });
    }

    /// Whether the agent with pid `agent` is the box's agent and alive.
    async fn agent_still(&self, agent: Option<u32>) -> bool {
        let mut slot = self.agent.lock().await;
        slot.as_mut()
            .is_some_and(|live| agent.is_some() && live.child.id() == agent && live.alive())
    }

    fn ready_slot(&self) -> std::sync::MutexGuard<'_, Option<Ready>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `program` in the prepared process, or in one prepared now.
    async fn start_run(&self, program: &Program) -> Result<Process, String> {
        let waiting = self.ready_slot().take();
        let ready = match waiting {
            Some(ready) if self.agent_still(ready.agent).await => ready,
            Some(orphaned) => {
                // Its agent died (a run may kill it: they share its uid).
                finish(&orphaned.group).await;
                self.prepare().await?
            }
            None => self.prepare().await?,
        };
        let Ready {
            admitted, group, ..
        } = ready;
        let leftovers = group.clone();
        match admitted
            .launch(program, move |_| leftovers.kill_leftovers())
            .await
        {
            Ok(run) => Ok(run.into_process(|ended| Box::new(AgentControl { ended, group }))),
            Err(error) => {
                finish(&group).await;
                Err(error)
            }
        }
    }
}

impl SessionBox for BwrapBox {
    fn start(&self, program: Program) -> BoxFuture<'_, Result<Process, String>> {
        Box::pin(async move {
            let started = match self.start_run(&program).await {
                // A process prepared by an agent that died since (a run can
                // kill it: they share its uid) fails: once more, with a new
                // agent.
                Err(_) => self.start_run(&program).await,
                started => started,
            };
            self.prepare_next();
            started
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
            // Its process exits when its control socket closes; its group
            // goes with the session's.
            drop(self.ready_slot().take());
            let agent = self.agent.lock().await.take();
            if let Some(agent) = agent {
                agent.end().await;
            }
            let group = self.group.clone();
            let removed = tokio::task::spawn_blocking(move || group.remove()).await;
            if let Ok(Err(error)) = removed {
                tracing::warn!(%error, "removing a session's control group failed");
            }
        })
    }
}

/// A session's agent, in its jail and its own control group.
#[derive(Debug)]
struct AgentJail {
    child: tokio::process::Child,
    socket: AgentSocket,
    group: Group,
}

impl AgentJail {
    async fn start(jail: &Jail, group: Group) -> Result<Self, String> {
        let (socket, theirs) =
            AgentSocket::pair().map_err(|e| format!("the session's agent could not start: {e}"))?;
        let mut command = jail.agent_command().map_err(|e| e.to_string())?;
        command
            .stdin(std::process::Stdio::from(theirs))
            .stdout(std::process::Stdio::null());
        let (child, _) = spawn_child(command, Some(&group), Release::Agent(&socket)).await?;
        Ok(Self {
            child,
            socket,
            group,
        })
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Ends the agent, its jail and whatever still runs in it.
    async fn end(mut self) {
        drop(self.socket);
        let _ = end_jail(&mut self.child).await;
        finish(&self.group).await;
    }
}

/// A run the agent started, in its own control group (removed at the end).
struct AgentControl {
    ended: tokio::sync::watch::Receiver<Option<Exit>>,
    group: Group,
}

impl AgentControl {
    async fn kill_group(&self) {
        let group = self.group.clone();
        let _ = tokio::task::spawn_blocking(move || group.kill()).await;
    }
}

impl Control for AgentControl {
    fn wait(&mut self) -> BoxFuture<'_, std::io::Result<Exit>> {
        agent::wait(&mut self.ended)
    }

    fn kill(&mut self) -> BoxFuture<'_, std::io::Result<Exit>> {
        Box::pin(async move {
            self.kill_group().await;
            agent::wait(&mut self.ended).await
        })
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, RunUsage> {
        Box::pin(async move {
            // A run nobody waited for (a worker dropped) ends here.
            if self.ended.borrow().is_none() {
                self.kill_group().await;
            }
            finish(&self.group).await.into()
        })
    }
}

/// A one-off jail's process, in its own control group (removed at the end).
struct ChildControl {
    child: tokio::process::Child,
    group: Option<Group>,
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
            if self.child.try_wait().ok().flatten().is_none() {
                let _ = end_jail(&mut self.child).await;
            }
            match self.group.take() {
                Some(group) => finish(&group).await.into(),
                None => RunUsage::default(),
            }
        })
    }
}

/// Starts `program` in a jail of its own, moved into `group` (made here)
/// before it runs anything; its stdin stays open for the caller.
pub(crate) async fn spawn(
    jail: &Jail,
    group: Option<Group>,
    program: Program,
) -> Result<Process, String> {
    let command = jail
        .command(&program.argv, &program.env)
        .map_err(|e: JailError| e.to_string())?;
    let (mut child, stdin) = spawn_child(command, group.as_ref(), Release::Stdin).await?;
    Ok(Process {
        pid: child.id().unwrap_or(0),
        stdin: stdin.map(|s| Box::pin(s) as _),
        stdout: child.stdout.take().map(|s| Box::pin(s) as _),
        stderr: child.stderr.take().map(|s| Box::pin(s) as _),
        control: Box::new(ChildControl { child, group }),
    })
}

/// How a jail's shell is told to go on once it is in its group.
enum Release<'a> {
    /// A line on its stdin (which then stays the program's).
    Stdin,
    /// A line on the agent's socket (its stdin).
    Agent(&'a AgentSocket),
}

/// Spawns a jail's `command`, moves it into `group` (made here), then
/// releases it: no process of it ever runs outside the group.
async fn spawn_child(
    mut command: tokio::process::Command,
    group: Option<&Group>,
    release: Release<'_>,
) -> Result<(tokio::process::Child, Option<tokio::process::ChildStdin>), String> {
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
    let released = match (&entered, &mut stdin, release) {
        (Ok(()), Some(stdin), Release::Stdin) => stdin.write_all(b"\n").await,
        (Ok(()), _, Release::Agent(socket)) => socket.release(),
        _ => Ok(()),
    }
    .map_err(|e| format!("the jail did not start: {e}"));
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

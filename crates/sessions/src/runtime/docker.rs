//! Sessions as Docker containers on a local engine (crate `bollard`): one
//! container per session, whose first process is the session's agent
//! ([`super::agent`]), reaping orphans as an init does: each run is a fork of it, as the
//! session's uid, its output streamed as it comes. The agent connects to a
//! socket this side listens on, bound into the container, once, at its
//! start.
//!
//! The container gets what a bwrap jail gets, in Docker's terms: no
//! network (or the egress relay), every capability dropped,
//! `no-new-privileges`, the jail's seccomp denylist as a Docker profile, a
//! read-only root, a sized tmpfs `/tmp`, memory with swap, a pids limit,
//! CPU quota and rlimits. The workspace is the session's folder on this
//! machine, bound at `/workspace`, so files, snapshots and the server's
//! checks work as they do for jails — which is why the engine must be local.
//!
//! With no image configured the container is made of nothing but this
//! machine's `/usr`, bound read-only (as a jail sees it), from a tiny image
//! the runtime imports once: no registry is needed. A configured image
//! (say `python:3.12-slim`) is used as it is.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bollard::{
    models::{ContainerCreateBody, HostConfig, ResourcesUlimits},
    query_parameters::{
        CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
        ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    },
};
use futures_util::StreamExt;
use std::os::fd::OwnedFd;

use super::{
    BoxFuture, BoxSpec, Control, Exit, INSTANCE_LABEL, Process, RunUsage, Runtime, SESSION_LABEL,
    SessionBox,
    agent::{self, AGENT, AgentSocket},
    box_name,
};
use crate::{
    jail::{self, LAYER},
    run::Program,
    seccomp,
};

/// The image made of this machine's `/usr` (see the module's doc).
pub const HOST_IMAGE: &str = "smartsandbox/host-root:1";

/// Where a container finds its agent's socket.
const AGENT_SOCKET: &str = "/run/sbx-agent.sock";

/// Starts the egress relay (the first five arguments) in the background,
/// then becomes the agent (the rest), which the relay's process then
/// belongs to.
const EGRESS_THEN_AGENT: &str = r#""$1" "$2" "$3" "$4" "$5" & shift 5; exec "$@""#;

/// How long a container's agent may take to connect.
const AGENT_START: Duration = Duration::from_secs(20);

/// Docker's API version this speaks at least (Engine 20.10).
const MIN_API: bollard::ClientVersion = bollard::ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// Sessions as containers of one engine.
#[derive(Debug)]
pub struct Docker {
    client: bollard::Docker,
    /// The server instance the containers are labelled with.
    instance: String,
    /// The image sessions run; [`HOST_IMAGE`] binds this machine's `/usr`.
    image: String,
    /// The seccomp profile, as Docker's JSON.
    seccomp_profile: String,
    /// CPUs containers run on, leaving the rest to the server.
    cpus: Option<String>,
    /// Where the agents' sockets are made (each bound into its container).
    agents: PathBuf,
}

fn engine_error(error: bollard::errors::Error) -> String {
    format!("the Docker engine answered: {error}")
}

impl Docker {
    /// Connects to the engine at `socket` (`DOCKER_HOST`'s default when
    /// `None`), readying [`HOST_IMAGE`] when `image` is `None`. Fails,
    /// saying what to do, when no engine answers.
    pub async fn connect(
        socket: Option<&str>,
        instance: &str,
        image: Option<String>,
        cpus: Option<String>,
    ) -> Result<Self, String> {
        let unreachable = |e: bollard::errors::Error| {
            format!(
                "no Docker engine answers ({e}): install and start one (Debian: apt-get install docker.io; dockerd), or set session_runtime.docker_socket"
            )
        };
        let client = match socket {
            Some(socket) => bollard::Docker::connect_with_unix(socket, 120, &MIN_API),
            None => bollard::Docker::connect_with_local_defaults(),
        }
        .map_err(unreachable)?;
        let client = client.negotiate_version().await.map_err(unreachable)?;
        client.ping().await.map_err(unreachable)?;
        let agents = std::env::temp_dir().join(format!("sbx-agents-{}", box_name(instance, "")));
        make_private_dir(&agents).map_err(|e| {
            format!(
                "the agents' folder {} could not be made: {e}",
                agents.display()
            )
        })?;
        let docker = Self {
            client,
            instance: instance.to_owned(),
            image: image.clone().unwrap_or_else(|| HOST_IMAGE.to_owned()),
            seccomp_profile: seccomp::docker_profile(),
            cpus,
            agents,
        };
        if image.is_none() {
            docker.ready_host_image().await?;
        }
        Ok(docker)
    }

    /// Imports [`HOST_IMAGE`] unless the engine has it: a few links and
    /// empty folders, `/usr` comes from the host at each start.
    async fn ready_host_image(&self) -> Result<(), String> {
        if self.client.inspect_image(HOST_IMAGE).await.is_ok() {
            return Ok(());
        }
        let (repo, tag) = HOST_IMAGE.split_once(':').unwrap_or((HOST_IMAGE, "latest"));
        let options = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .build();
        let root = host_root_tar().map_err(|e| format!("building {HOST_IMAGE}: {e}"))?;
        let mut progress =
            self.client
                .create_image(Some(options), Some(bollard::body_full(root.into())), None);
        while let Some(step) = progress.next().await {
            step.map_err(|e| format!("importing {HOST_IMAGE}: {e}"))?;
        }
        Ok(())
    }

    fn container_body(&self, spec: &BoxSpec, agent: &std::path::Path) -> ContainerCreateBody {
        let workspace = spec.workspace.to_string_lossy().into_owned();
        let mut binds = vec![
            format!("{workspace}:/workspace:rw"),
            format!("{}:{AGENT_SOCKET}:rw", agent.display()),
        ];
        if self.image == HOST_IMAGE {
            binds.push("/usr:/usr:ro".to_owned());
            for shared in ["/etc/alternatives", "/etc/ssl/certs"] {
                if std::path::Path::new(shared).exists() {
                    binds.push(format!("{shared}:{shared}:ro"));
                }
            }
        }
        if let Some(layer) = &spec.layer {
            binds.push(format!("{}:{LAYER}:ro", layer.display()));
        }
        if let Some(socket) = &spec.egress {
            binds.push(format!("{}:{}:rw", socket.display(), jail::EGRESS_SOCKET));
        }
        let limits = &spec.limits;
        let ulimit = |name: &str, soft: u64, hard: u64| ResourcesUlimits {
            name: Some(name.to_owned()),
            soft: Some(i64::try_from(soft).unwrap_or(i64::MAX)),
            hard: Some(i64::try_from(hard).unwrap_or(i64::MAX)),
        };
        let memory = i64::try_from(spec.group.memory_bytes).unwrap_or(i64::MAX);
        let labels = HashMap::from([
            (INSTANCE_LABEL.to_owned(), self.instance.clone()),
            (SESSION_LABEL.to_owned(), spec.id.clone()),
        ]);
        let env = jail::environment(spec.egress.is_some(), spec.layer.is_some(), &[])
            .into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        // The agent is the container's first process (it reaps orphans);
        // with egress, the relay is started beside it first.
        let mut cmd: Vec<String> = Vec::new();
        if spec.egress.is_some() {
            cmd.extend(["/bin/sh", "-c", EGRESS_THEN_AGENT, "sbx"].map(str::to_owned));
            cmd.extend(jail::EGRESS_RELAY.map(str::to_owned));
        }
        cmd.extend(AGENT.map(str::to_owned));
        cmd.push(AGENT_SOCKET.to_owned());
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(cmd),
            env: Some(env),
            user: Some(format!("{0}:{0}", spec.uid)),
            working_dir: Some("/workspace".to_owned()),
            hostname: Some("sandbox".to_owned()),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                binds: Some(binds),
                network_mode: Some("none".to_owned()),
                cap_drop: Some(vec!["ALL".to_owned()]),
                security_opt: Some(vec![
                    "no-new-privileges".to_owned(),
                    format!("seccomp={}", self.seccomp_profile),
                ]),
                readonly_rootfs: Some(true),
                tmpfs: Some(HashMap::from([(
                    "/tmp".to_owned(),
                    format!("rw,nosuid,nodev,size={}", limits.tmp_bytes),
                )])),
                memory: Some(memory),
                memory_swap: Some(memory),
                pids_limit: Some(i64::try_from(spec.group.pids).unwrap_or(i64::MAX)),
                nano_cpus: Some((spec.group.cpu_cores * 1e9) as i64),
                cpuset_cpus: self.cpus.clone(),
                // Per process, as in a jail: each run's processes count
                // their own CPU seconds (SIGXCPU at the soft limit).
                ulimits: Some(vec![
                    ulimit("core", 0, 0),
                    ulimit("cpu", limits.cpu_seconds, limits.cpu_seconds + 1),
                    ulimit("nofile", limits.open_files, limits.open_files),
                    ulimit("fsize", limits.file_bytes, limits.file_bytes),
                ]),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        }
    }
}

impl Docker {
    /// Creates and starts `spec`'s container, then takes its agent's
    /// connection on `listener`.
    async fn open_container(
        &self,
        spec: &BoxSpec,
        name: &str,
        path: &std::path::Path,
        listener: tokio::net::UnixListener,
    ) -> Result<(ContainerGroup, AgentSocket), String> {
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        self.client
            .create_container(Some(options), self.container_body(spec, path))
            .await
            .map_err(engine_error)?;
        self.client
            .start_container(name, None)
            .await
            .map_err(engine_error)?;
        let (connected, uid) = tokio::time::timeout(AGENT_START, accept(&listener))
            .await
            .map_err(|_| {
                format!(
                    "the session's agent did not start in its container: the image ({}) needs python3 on its PATH",
                    self.image
                )
            })?
            .map_err(|e| format!("the session's agent did not connect: {e}"))?;
        if uid != spec.uid {
            return Err("something other than the session's agent connected".to_owned());
        }
        let group = match self.client.inspect_container(name, None).await {
            Ok(found) => found
                .state
                .and_then(|state| state.pid)
                .and_then(|pid| u32::try_from(pid).ok())
                .map(ContainerGroup::of)
                .unwrap_or_default(),
            Err(_) => ContainerGroup::default(),
        };
        Ok((group, AgentSocket::from_connected(connected)))
    }
}

/// A folder only root can list, for sockets each bound into one container.
fn make_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o711).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let found = std::fs::symlink_metadata(dir)?;
            if !found.is_dir() || found.uid() != 0 {
                return Err(std::io::Error::other("it exists and is not root's folder"));
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
        }
        Err(e) => Err(e),
    }
}

/// A socket at `path` that only `uid` may connect to.
fn listen(path: &std::path::Path, uid: u32) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    std::os::unix::fs::chown(path, Some(uid), Some(uid))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// The first connection to `listener`, and the uid of what made it.
async fn accept(listener: &tokio::net::UnixListener) -> std::io::Result<(OwnedFd, u32)> {
    let (stream, _) = listener.accept().await?;
    let uid = stream.peer_cred()?.uid();
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    Ok((OwnedFd::from(stream), uid))
}

/// Removes a container and what it runs, whatever its state.
async fn remove(client: &bollard::Docker, name: &str) -> Result<(), String> {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match client.remove_container(name, Some(options)).await {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(error) => Err(engine_error(error)),
    }
}

impl Runtime for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn open(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Arc<dyn SessionBox>, String>> {
        Box::pin(async move {
            let name = box_name(&self.instance, &spec.id);
            let path = self.agents.join(format!("{name}.sock"));
            let listener = listen(&path, spec.uid)
                .map_err(|e| format!("the session's agent socket could not be made: {e}"))?;
            let opened = self.open_container(&spec, &name, &path, listener).await;
            let _ = std::fs::remove_file(&path);
            let (group, socket) = match opened {
                Ok(opened) => opened,
                Err(error) => {
                    let _ = remove(&self.client, &name).await;
                    return Err(error);
                }
            };
            Ok(Arc::new(DockerBox {
                client: self.client.clone(),
                name,
                group: Arc::new(group),
                runs: Arc::default(),
                agent: socket,
            }) as Arc<dyn SessionBox>)
        })
    }

    fn sweep(&self) -> BoxFuture<'_, usize> {
        Box::pin(async move {
            let filters = HashMap::from([(
                "label".to_owned(),
                vec![format!("{INSTANCE_LABEL}={}", self.instance)],
            )]);
            let options = ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build();
            for stale in std::fs::read_dir(&self.agents)
                .into_iter()
                .flatten()
                .flatten()
            {
                let _ = std::fs::remove_file(stale.path());
            }
            let Ok(left) = self.client.list_containers(Some(options)).await else {
                return 0;
            };
            let mut removed = 0;
            for container in left {
                if let Some(id) = container.id
                    && remove(&self.client, &id).await.is_ok()
                {
                    removed += 1;
                }
            }
            removed
        })
    }
}

/// One session's container.
#[derive(Debug)]
pub struct DockerBox {
    client: bollard::Docker,
    name: String,
    /// The container's control group, as this machine mounts it.
    group: Arc<ContainerGroup>,
    /// Its runs, to tell one that ran alone (whose usage is the group's).
    runs: Arc<Runs>,
    agent: AgentSocket,
}

impl SessionBox for DockerBox {
    fn start(&self, program: Program) -> BoxFuture<'_, Result<Process, String>> {
        Box::pin(async move {
            let started_at = time::OffsetDateTime::now_utc();
            let account = Account::begin(&self.group, &self.runs);
            let admit =
                |_| -> BoxFuture<'static, Result<(), String>> { Box::pin(async { Ok(()) }) };
            let procs = self.group.procs.clone();
            let run = self
                .agent
                .hand_over()?
                .admit(admit)
                .await?
                .launch(&program, move |pid| kill_session(procs.as_deref(), pid))
                .await?;
            let pid = run.pid;
            Ok(run.into_process(|ended| {
                Box::new(RunControl {
                    client: self.client.clone(),
                    container: self.name.clone(),
                    procs: self.group.procs.clone(),
                    pid,
                    ended,
                    started_at,
                    account,
                })
            }))
        })
    }

    fn memory_held(&self) -> Option<u64> {
        number(self.group.memory.as_ref()?)
    }

    fn fault(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            match self.client.inspect_container(&self.name, None).await {
                Ok(found) if found.state.as_ref().and_then(|s| s.running) == Some(true) => None,
                Ok(_) => Some("its container stopped".to_owned()),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Some("its container was removed from outside the server".to_owned()),
                // An engine that does not answer now may answer later.
                Err(_) => None,
            }
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(error) = remove(&self.client, &self.name).await {
                tracing::warn!(%error, container = %self.name, "removing a session's container failed");
            }
        })
    }
}

/// One run the container's agent started.
struct RunControl {
    client: bollard::Docker,
    container: String,
    procs: Option<PathBuf>,
    /// Its first process, as this machine sees it.
    pid: u32,
    ended: tokio::sync::watch::Receiver<Option<Exit>>,
    started_at: time::OffsetDateTime,
    account: Account,
}

impl Control for RunControl {
    fn wait(&mut self) -> BoxFuture<'_, std::io::Result<Exit>> {
        agent::wait(&mut self.ended)
    }

    fn kill(&mut self) -> BoxFuture<'_, std::io::Result<Exit>> {
        Box::pin(async move {
            let (procs, pid) = (self.procs.clone(), self.pid);
            let _ = tokio::task::spawn_blocking(move || kill_session(procs.as_deref(), pid)).await;
            agent::wait(&mut self.ended).await
        })
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, RunUsage> {
        Box::pin(async move {
            if self.ended.borrow().is_none() {
                let _ = self.kill().await;
            }
            let used = self.account.end();
            // A SIGKILL this side did not send: the kernel's OOM killer's,
            // maybe, which the engine reports as an event a moment after.
            let exit = self.ended.borrow().unwrap_or_default();
            if exit.signal != Some(9) && exit.code != Some(137) {
                return used;
            }
            let filters = HashMap::from([
                ("container".to_owned(), vec![self.container.clone()]),
                ("event".to_owned(), vec!["oom".to_owned()]),
            ]);
            let until = time::OffsetDateTime::now_utc() + OOM_EVENT_GRACE;
            let options = EventsOptionsBuilder::new()
                .since(&timestamp(self.started_at))
                .until(&timestamp(until))
                .filters(&filters)
                .build();
            let events = self.client.events(Some(options));
            let oom_kills = tokio::time::timeout(Duration::from_secs(3), events.count())
                .await
                .unwrap_or(0);
            RunUsage {
                oom_kills: u64::try_from(oom_kills).unwrap_or(0),
                ..used
            }
        })
    }
}

/// How long after a run's `SIGKILL` the engine's OOM event is waited for.
const OOM_EVENT_GRACE: time::Duration = time::Duration::milliseconds(300);

/// A time as the engine's event filters take it: `seconds.nanoseconds`.
fn timestamp(at: time::OffsetDateTime) -> String {
    format!("{}.{:09}", at.unix_timestamp(), at.nanosecond())
}

/// The files of a container's control group (the engine makes one per
/// container) this side reads, as this machine mounts them; each `None`
/// where it is not found.
#[derive(Debug, Default)]
struct ContainerGroup {
    /// Memory in use (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    memory: Option<PathBuf>,
    /// Most memory in use since last reset (v1 `memory.max_usage_in_bytes`,
    /// reset by writing 0; v2's `memory.peak` cannot be reset everywhere).
    peak: Option<PathBuf>,
    /// CPU time used: v1 `cpuacct.usage` (ns), v2 `cpu.stat` (`usage_usec`).
    cpu: Option<(PathBuf, bool)>,
    /// Its processes (`cgroup.procs`).
    procs: Option<PathBuf>,
}

impl ContainerGroup {
    /// The group of process `pid` (a container's first process).
    fn of(pid: u32) -> Self {
        let mut group = Self::default();
        let listed = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let root = std::path::Path::new("/sys/fs/cgroup");
        let found = |file: PathBuf| file.is_file().then_some(file);
        for line in listed.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let path = path.trim_start_matches('/');
            let named = |wanted: &str| controllers.split(',').any(|c| c == wanted);
            if named("memory") {
                let dir = root.join("memory").join(path);
                group.memory = group
                    .memory
                    .or_else(|| found(dir.join("memory.usage_in_bytes")));
                group.peak = group
                    .peak
                    .or_else(|| found(dir.join("memory.max_usage_in_bytes")));
                group.procs = group.procs.or_else(|| found(dir.join("cgroup.procs")));
            } else if named("cpuacct") {
                let file = root.join(controllers).join(path).join("cpuacct.usage");
                group.cpu = group.cpu.or_else(|| found(file).map(|f| (f, false)));
            } else if controllers.is_empty() {
                let dir = root.join(path);
                group.memory = group.memory.or_else(|| found(dir.join("memory.current")));
                group.procs = group.procs.or_else(|| found(dir.join("cgroup.procs")));
                group.cpu = group
                    .cpu
                    .or_else(|| found(dir.join("cpu.stat")).map(|f| (f, true)));
            }
        }
        group
    }

    /// CPU time used so far, in milliseconds.
    fn cpu_ms(&self) -> Option<u64> {
        let (file, v2) = self.cpu.as_ref()?;
        if *v2 {
            let stat = std::fs::read_to_string(file).ok()?;
            let micros = stat
                .lines()
                .find_map(|line| line.strip_prefix("usage_usec "))?;
            micros.trim().parse::<u64>().ok().map(|us| us / 1000)
        } else {
            number(file).map(|ns| ns / 1_000_000)
        }
    }
}

fn number(file: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// The runs of one container: how many go on, and how many began.
#[derive(Debug, Default)]
struct Runs {
    active: AtomicUsize,
    begun: AtomicU64,
}

/// One run's share of its container's accounting. A run that had the
/// container to itself (none before it still going, none begun after)
/// gets the group's peak memory (reset at its start) and CPU time;
/// others get none, rather than their neighbours'.
struct Account {
    group: Arc<ContainerGroup>,
    runs: Arc<Runs>,
    /// `begun` once this run began, when it began alone.
    alone_from: Option<u64>,
    cpu_before: Option<u64>,
    ended: bool,
}

impl Account {
    fn begin(group: &Arc<ContainerGroup>, runs: &Arc<Runs>) -> Self {
        let alone = runs.active.fetch_add(1, Ordering::SeqCst) == 0;
        let mark = runs.begun.fetch_add(1, Ordering::SeqCst) + 1;
        if alone && let Some(peak) = &group.peak {
            let _ = std::fs::write(peak, "0");
        }
        Self {
            group: group.clone(),
            runs: runs.clone(),
            alone_from: alone.then_some(mark),
            cpu_before: group.cpu_ms(),
            ended: false,
        }
    }

    /// What the run used, if it ran alone; the run is over.
    fn end(&mut self) -> RunUsage {
        let alone = self.alone_from == Some(self.runs.begun.load(Ordering::SeqCst));
        self.finish();
        if !alone {
            return RunUsage::default();
        }
        RunUsage {
            peak_memory_bytes: self.group.peak.as_deref().and_then(number),
            cpu_ms: self
                .group
                .cpu_ms()
                .zip(self.cpu_before)
                .map(|(now, before)| now.saturating_sub(before)),
            oom_kills: 0,
        }
    }

    fn finish(&mut self) {
        if !std::mem::replace(&mut self.ended, true) {
            self.runs.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Kills run `pid`'s processes: its process group, then whatever else is
/// in its session (the agent starts each run as a session's leader),
/// found among the container's `procs`.
fn kill_session(procs: Option<&std::path::Path>, pid: u32) {
    if let Some(leader) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(leader, rustix::process::Signal::KILL);
    }
    let Some(procs) = procs else { return };
    let listed = std::fs::read_to_string(procs).unwrap_or_default();
    for process in listed.lines().filter_map(|p| p.trim().parse::<u32>().ok()) {
        let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).unwrap_or_default();
        // The fields after the command's closing parenthesis: state, ppid,
        // pgrp, session.
        let session = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(3))
            .and_then(|s| s.parse::<u32>().ok());
        if session == Some(pid)
            && let Some(target) = i32::try_from(process)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(target, rustix::process::Signal::KILL);
        }
    }
}

/// [`HOST_IMAGE`]'s root: `/bin`, `/lib`… linking into `/usr` (bound at
/// each start), and the empty folders a container needs.
fn host_root_tar() -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for dir in ["usr", "etc", "tmp", "workspace", "run", "opt"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
        header.set_size(0);
        tar.append_data(&mut header, format!("{dir}/"), std::io::empty())?;
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        tar.append_link(&mut header, link, target)?;
    }
    for (file, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nsandbox:x:1000:1000::/workspace:/bin/sh\n",
        ),
        ("etc/group", "root:x:0:\n"),
        ("etc/hosts", "127.0.0.1 localhost sandbox\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(text.len() as u64);
        tar.append_data(&mut header, file, text.as_bytes())?;
    }
    tar.into_inner()
}

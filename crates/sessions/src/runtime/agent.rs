//! The server's side of a session's agent (`jail/agent.py`): the one
//! long-lived process in a session's box, which starts each run by forking
//! itself, so a run costs a fork and an exec rather than a new jail.
//!
//! A run's stdin, stdout and stderr are pipes made here and handed to the
//! agent with `SCM_RIGHTS`, with a control socket of its own. The run's
//! first byte on that socket carries its pid as the kernel translates it
//! into this process's PID namespace (`SCM_CREDENTIALS`), so the caller can
//! move it into a control group before it runs anything; only then is it
//! told what to run. How it ended comes back on the same socket.

use std::{
    io::{IoSlice, IoSliceMut},
    mem::MaybeUninit,
    os::fd::{AsFd, OwnedFd},
    sync::Mutex,
    time::Duration,
};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, Interest},
    net::{
        UnixStream,
        unix::pipe::{Receiver, Sender},
    },
    sync::watch,
};

use super::{BoxFuture, Control, Exit, Process};
use crate::run::Program;

/// The descriptor the agent finds its socket on.
pub(crate) const AGENT_FD: i32 = 4;

/// The agent's command line.
pub(crate) const AGENT: [&str; 3] = ["python3", "-c", include_str!("../jail/agent.py")];

/// How long a run may take to report its pid: a live agent forks at once.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The server's end of an agent's socket.
#[derive(Debug)]
pub(crate) struct AgentSocket {
    socket: Mutex<OwnedFd>,
}

/// A run the agent started: its pid, its pipes, and its end to come.
pub(crate) struct AgentRun {
    pub pid: u32,
    stdin: Sender,
    stdout: Receiver,
    stderr: Receiver,
    ended: watch::Receiver<Option<Exit>>,
}

impl AgentRun {
    /// The run as a runtime's [`Process`], its `control` made from the
    /// run's end to come.
    pub fn into_process(
        self,
        control: impl FnOnce(watch::Receiver<Option<Exit>>) -> Box<dyn Control>,
    ) -> Process {
        Process {
            pid: self.pid,
            stdin: Some(Box::pin(self.stdin)),
            stdout: Some(Box::pin(self.stdout)),
            stderr: Some(Box::pin(self.stderr)),
            control: control(self.ended),
        }
    }
}

impl AgentSocket {
    /// A socket pair: the server's end, and the one the agent's jail gets
    /// as its stdin (its shell moves it to [`AGENT_FD`]).
    pub fn pair() -> std::io::Result<(Self, OwnedFd)> {
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        Ok((
            Self {
                socket: Mutex::new(ours),
            },
            theirs,
        ))
    }

    /// Hands a new run's descriptors to the agent, which forks for it; the
    /// child then waits ([`Handed::admit`], [`Admitted::launch`]) for what
    /// to run.
    pub fn hand_over(&self) -> Result<Handed, String> {
        let (stdin_read, stdin_write) = pipe().map_err(broken)?;
        let (stdout_read, stdout_write) = pipe().map_err(broken)?;
        let (stderr_read, stderr_write) = pipe().map_err(broken)?;
        let (control, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| broken(e.into()))?;
        rustix::net::sockopt::set_socket_passcred(&control, true).map_err(|e| broken(e.into()))?;
        let fds = [&stdin_read, &stdout_write, &stderr_write, &theirs].map(AsFd::as_fd);
        self.send(b"r", &fds).map_err(broken)?;
        Ok(Handed {
            control,
            stdin: stdin_write,
            stdout: stdout_read,
            stderr: stderr_read,
        })
    }

    /// The server's end of an agent's socket that connected to a listener.
    pub fn from_connected(socket: OwnedFd) -> Self {
        Self {
            socket: Mutex::new(socket),
        }
    }

    /// Lets the jail's start go on (its shell reads one line first, as
    /// every jail's does, while it is moved into its control group).
    pub fn release(&self) -> std::io::Result<()> {
        self.send(b"\n", &[])
    }

    /// Sends one message, never waiting: an agent that stopped reading is
    /// a broken one.
    fn send(&self, bytes: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]) -> std::io::Result<()> {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut ancillary = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() {
            ancillary.push(SendAncillaryMessage::ScmRights(fds));
        }
        let socket = self.socket.lock().unwrap_or_else(|e| e.into_inner());
        rustix::net::sendmsg(
            &*socket,
            &[IoSlice::new(bytes)],
            &mut ancillary,
            SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
        )?;
        Ok(())
    }
}

/// A run the agent has, waiting to be told what to run.
pub(crate) struct Handed {
    control: OwnedFd,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

impl Handed {
    /// Learns the run's pid and lets `admit` take it (into a control
    /// group) before it runs anything.
    pub async fn admit(
        self,
        admit: impl FnOnce(u32) -> BoxFuture<'static, Result<(), String>>,
    ) -> Result<Admitted, String> {
        let control = std::os::unix::net::UnixStream::from(self.control);
        control.set_nonblocking(true).map_err(broken)?;
        let control = UnixStream::from_std(control).map_err(broken)?;
        let pid = tokio::time::timeout(HANDSHAKE, sender_pid(&control))
            .await
            .map_err(|_| "the session's agent did not start the run in time".to_owned())?
            .map_err(broken)?;
        admit(pid).await?;
        Ok(Admitted {
            pid,
            control,
            stdin: Sender::from_owned_fd(self.stdin).map_err(broken)?,
            stdout: Receiver::from_owned_fd(self.stdout).map_err(broken)?,
            stderr: Receiver::from_owned_fd(self.stderr).map_err(broken)?,
        })
    }
}

/// A forked run, admitted, waiting for what to run; dropped, it exits.
#[derive(Debug)]
pub(crate) struct Admitted {
    pid: u32,
    control: UnixStream,
    stdin: Sender,
    stdout: Receiver,
    stderr: Receiver,
}

impl Admitted {
    /// Starts `program` (its `stdin` not written: the caller does).
    /// `leftovers` gets its pid once its main process is over, to end what
    /// it left.
    pub async fn launch(
        self,
        program: &Program,
        leftovers: impl FnOnce(u32) + Send + 'static,
    ) -> Result<AgentRun, String> {
        crate::jail::check_env(&program.env).map_err(|e| e.to_string())?;
        let spec = serde_json::json!({
            "argv": program.argv,
            "env": program.env.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        });
        let mut go = b"g".to_vec();
        go.extend(spec.to_string().into_bytes());
        go.push(b'\n');
        let Self {
            pid,
            mut control,
            stdin,
            stdout,
            stderr,
        } = self;
        control.write_all(&go).await.map_err(broken)?;
        let (report, ended) = watch::channel(None);
        tokio::spawn(async move {
            let mut ending = Vec::new();
            let _ = control.read_to_end(&mut ending).await;
            // No report: the agent itself is gone, and the run with it.
            let exit = serde_json::from_slice::<Reported>(&ending).map_or(
                Exit {
                    code: None,
                    signal: Some(9),
                },
                |reported| Exit {
                    code: reported.code,
                    signal: reported.signal,
                },
            );
            let _ = tokio::task::spawn_blocking(move || leftovers(pid)).await;
            report.send_replace(Some(exit));
        });
        Ok(AgentRun {
            pid,
            stdin,
            stdout,
            stderr,
            ended,
        })
    }
}

fn broken(e: std::io::Error) -> String {
    format!("the session's agent did not take the run: {e}")
}

/// Waits for a run's end, as the agent reported it.
pub(crate) fn wait(
    ended: &mut watch::Receiver<Option<Exit>>,
) -> BoxFuture<'_, std::io::Result<Exit>> {
    Box::pin(async move {
        let exit = ended
            .wait_for(Option::is_some)
            .await
            .map_err(|_| std::io::Error::other("the run's report was lost"))?;
        Ok(exit.unwrap_or_default())
    })
}

#[derive(serde::Deserialize)]
struct Reported {
    code: Option<i32>,
    signal: Option<i32>,
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// The pid the kernel attached to the first byte on `control`.
async fn sender_pid(control: &UnixStream) -> std::io::Result<u32> {
    loop {
        let received = control
            .async_io(Interest::READABLE, || {
                let mut byte = [0u8; 1];
                let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmCredentials(1))];
                let mut ancillary = RecvAncillaryBuffer::new(&mut space);
                let got = rustix::net::recvmsg(
                    control,
                    &mut [IoSliceMut::new(&mut byte)],
                    &mut ancillary,
                    RecvFlags::DONTWAIT,
                )?;
                let pid = ancillary.drain().find_map(|message| match message {
                    RecvAncillaryMessage::ScmCredentials(credentials) => {
                        Some(credentials.pid.as_raw_nonzero().get())
                    }
                    _ => None,
                });
                Ok((got.bytes, pid))
            })
            .await?;
        match received {
            (0, _) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the run ended before it began",
                ));
            }
            (_, Some(pid)) => return u32::try_from(pid).map_err(std::io::Error::other),
            (_, None) => {}
        }
    }
}

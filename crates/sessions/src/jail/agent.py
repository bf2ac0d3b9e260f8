# A session's agent: the one long-lived process of its jail or container,
# which starts every run of the session without a new one. Its socket is
# fd 4 (a jail's), or the path it is given (a container's) to connect to.
# Each message on it brings a run's four descriptors: its stdin, stdout and stderr, and
# its control socket. The agent forks; the child writes one byte on the
# control socket (the server reads the child's pid from the kernel's
# credentials and moves it into the run's control group), then reads "g"
# and the run's {argv, env} as one line, and becomes that command in a
# session of its own. The agent writes how the run ended, {code} or
# {signal}, on the control socket. It exits when the server closes its
# socket, and with it the jail.
import json
import os
import selectors
import signal
import socket
import sys

AGENT_FD = 4
if len(sys.argv) > 1:
    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    agent.connect(sys.argv[1])
else:
    agent = socket.socket(fileno=AGENT_FD)
    os.set_inheritable(AGENT_FD, False)
# Nobody else may read or write this process's descriptors through /proc.
try:
    import ctypes

    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
except (OSError, AttributeError):
    pass
base_env = dict(os.environ)
selector = selectors.DefaultSelector()
selector.register(agent, selectors.EVENT_READ)
# Children's ends arrive as SIGCHLD, through a wakeup socket the selector
# watches. Every child is reaped, runs and orphans alike: in a container
# the agent is the first process, which orphans come to.
woken, waker = socket.socketpair()
woken.setblocking(False)
waker.setblocking(False)
signal.set_wakeup_fd(waker.fileno())
signal.signal(signal.SIGCHLD, lambda *_: None)
selector.register(woken, selectors.EVENT_READ)
runs = {}


def become(fds):
    """In the forked child: the run's command, or exit 127 saying why not."""
    stdin, stdout, stderr, control = fds
    argv = ["?"]
    try:
        os.dup2(stdin, 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        # Nothing else the agent holds stays open here: this process may
        # wait a while before it runs, and another run's control socket
        # held open would hide that run's end.
        os.closerange(3, control)
        os.closerange(control + 1, os.sysconf("SC_OPEN_MAX"))
        os.write(control, b"r")
        line = b""
        while not line.endswith(b"\n"):
            chunk = os.read(control, 65536)
            if not chunk:
                os._exit(0)
            line += chunk
        if not line.startswith(b"g"):
            os._exit(0)
        spec = json.loads(line[1:])
        argv = spec["argv"]
        env = dict(base_env)
        env.update(spec["env"])
        os.setsid()
        for default in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(default, signal.SIG_DFL)
        os.execvpe(argv[0], argv, env)
    except BaseException as error:
        try:
            reason = error.strerror if isinstance(error, OSError) else error
            os.write(2, f"{argv[0]}: {reason}\n".encode())
        finally:
            os._exit(127)


def start(fds):
    for fd in fds:
        os.set_inheritable(fd, False)
    pid = os.fork()
    if pid == 0:
        become(fds)
    for fd in fds[:3]:
        os.close(fd)
    runs[pid] = fds[3]


def reap():
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        control = runs.pop(pid, None)
        if control is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        ended = {"signal": -code} if code < 0 else {"code": code}
        try:
            os.write(control, json.dumps(ended).encode())
        except OSError:
            pass
        os.close(control)


while True:
    for key, _ in selector.select():
        if key.fileobj is woken:
            try:
                while woken.recv(512):
                    pass
            except OSError:
                pass
            reap()
            continue
        try:
            # One byte a message (its descriptors never span two), whatever
            # the socket's kind.
            message, fds, _, _ = socket.recv_fds(agent, 1, 4)
        except OSError:
            sys.exit(0)
        if not message and not fds:
            sys.exit(0)
        if len(fds) == 4:
            start(fds)
        else:
            for fd in fds:
                os.close(fd)

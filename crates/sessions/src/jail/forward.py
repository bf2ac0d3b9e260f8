# Inside a jail with egress: listens on the jail's own 127.0.0.1:PORT (its
# HTTP proxy, named by HTTP(S)_PROXY), relays each connection to the
# server's proxy socket bound into the jail, runs the command, and exits
# as the command does (128 + the signal that killed it). With no command,
# it relays until it is killed.
import socket
import subprocess
import sys
import threading

port, path, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(64)


def pipe(source, target):
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    try:
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def relay(client):
    with client, socket.socket(socket.AF_UNIX) as upstream:
        try:
            upstream.connect(path)
        except OSError:
            return
        back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        back.start()
        pipe(client, upstream)
        back.join()


def serve():
    while True:
        client, _ = listener.accept()
        threading.Thread(target=relay, args=(client,), daemon=True).start()


if not argv:
    serve()
threading.Thread(target=serve, daemon=True).start()
# The command keeps what it inherited (a session agent its socket).
code = subprocess.Popen(argv, close_fds=False).wait()
sys.exit(128 - code if code < 0 else code)

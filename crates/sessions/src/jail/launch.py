# A warm jail's launcher: waits for one line of JSON, {argv, env}, on
# stdin (read byte by byte: what follows is the run's own stdin), then
# becomes that command.
import json
import os

line = b""
while not line.endswith(b"\n"):
    byte = os.read(0, 1)
    if not byte:
        raise SystemExit(0)
    line += byte
spec = json.loads(line)
env = dict(os.environ)
env.update(spec["env"])
os.execvpe(spec["argv"][0], spec["argv"], env)

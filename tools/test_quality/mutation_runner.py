"""A preloaded pytest runner for tools.test_quality.mutation: runs each mutant's tests in a fork
of a process that has already imported torch and the other third-party libraries.

Why: a fresh pytest process spends about 3 s importing torch and torchvision and well under a
second in the tests of one core module, so most of a mutation run was import time. The server
imports the third-party libraries once and never imports ``mrcnn`` or the tests; each request
forks it, and the child imports the (mutated) ``mrcnn`` files from disk and runs pytest, so every
mutant is still tested on a fresh import of the code under test.

    python -m tools.test_quality.mutation_runner serve SOCKET     # started by mutation.py
    python -m tools.test_quality.mutation_runner run SOCKET TIMEOUT -- PYTEST_ARGS...  # per test
    python -m tools.test_quality.mutation_runner stop SOCKET

(run in the repository's copy: its folder is the current one and on PYTHONPATH).

``run`` exits with pytest's exit status. cosmic-ray's own timeout still applies: it kills the
client, and the server kills the child a few seconds later.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

# Imported by the server before any fork. Nothing from this repository: the code under test
# must be imported by each child, after the mutant is on disk.
PRELOAD = (
    "numpy",
    "torch",
    "torch.nn.functional",
    "torch._dynamo",
    "torchvision",
    "torchvision.ops",
    "torchvision.models.detection",
    "torchvision.transforms.v2",
    "PIL.Image",
    "cv2",
    "h5py",
    "safetensors.torch",
    "tqdm",
    "pycocotools.mask",
    "pycocotools.coco",
    "pycocotools.cocoeval",
    "matplotlib",
    "skimage.transform",
    "pytest",
    "hypothesis",  # a pytest plugin: 2 s per run when pytest imports (and rewrites) it
)
GRACE_SECONDS = 5.0  # after the request's timeout, the child is killed


def serve(path: str) -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    assert not any(m == "mrcnn" or m.startswith("mrcnn.") for m in sys.modules), "mrcnn preloaded"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    while True:
        connection, _ = listener.accept()
        with connection:
            request = json.loads(connection.makefile().readline())
            if request.get("stop"):
                connection.sendall(b"0\n")
                break
            status = run_in_fork(request, listener, connection)
            try:
                connection.sendall(f"{status}\n".encode())
            except OSError:  # the client was killed (cosmic-ray's timeout)
                pass
    listener.close()
    os.unlink(path)


def run_in_fork(request: dict, listener: socket.socket, connection: socket.socket) -> int:
    """Runs pytest with the request's arguments in a forked child; returns its exit status."""
    child = os.fork()
    if child == 0:
        listener.close()
        connection.close()
        os.chdir(request["cwd"])
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        import pytest

        os._exit(int(pytest.main(request["args"])))
    deadline = time.monotonic() + request["timeout"] + GRACE_SECONDS
    while time.monotonic() < deadline:
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 1  # a child killed by a signal (a crash) failed
        time.sleep(0.02)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    return 124


def request(path: str, message: dict) -> int:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for _ in range(600):  # the server may still be importing torch
        try:
            client.connect(path)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(0.1)
    else:
        raise SystemExit(f"error: no mutation runner listens on {path}")
    with client:
        client.sendall((json.dumps(message) + "\n").encode())
        answer = client.makefile().readline()
    if not answer.strip():
        # Not a verdict: reading it as "passed" or "failed" would count the mutant wrongly.
        raise SystemExit(f"error: the mutation runner on {path} closed without an answer")
    return int(answer)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    command, path, *rest = argv
    if command == "serve":
        serve(path)
        return 0
    if command == "stop":
        return request(path, {"stop": True})
    if command == "run":
        timeout, *args = rest
        args = args[1:] if args[:1] == ["--"] else args
        return request(path, {"cwd": os.getcwd(), "args": args, "timeout": float(timeout)})
    raise SystemExit(f"error: unknown command {command!r} (serve, run or stop)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""benchmarks/mutation_runner.py: each request runs pytest in a fork that imports the code under
test afresh, so a mutant written to disk between two requests is what the second one tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[1] / "benchmarks" / "mutation_runner.py"


@pytest.fixture(scope="module")
def served_folder():
    # A short folder name: a Unix socket path may not pass about 100 characters.
    with tempfile.TemporaryDirectory(prefix="mr_") as folder:
        folder = Path(folder)
        socket = folder / "runner.sock"
        server = subprocess.Popen(
            [sys.executable, str(RUNNER), "serve", str(socket)],
            cwd=folder,
            env={"PYTHONPATH": str(folder), "PYTHONDONTWRITEBYTECODE": "1", "PATH": ""},
        )
        try:
            yield folder, socket
        finally:
            subprocess.run([sys.executable, str(RUNNER), "stop", str(socket)], timeout=60)
            server.wait(timeout=60)


def run_tests(folder: Path, socket: Path, timeout: int = 60) -> int:
    command = [sys.executable, str(RUNNER), "run", str(socket), str(timeout), "--", "-q"]
    return subprocess.run([*command, "test_code.py"], cwd=folder, timeout=120).returncode


def test_each_request_imports_the_code_as_it_is_on_disk_now(served_folder):
    folder, socket = served_folder
    (folder / "test_code.py").write_text(
        "import code_under_test\n\ndef test_answer():\n    assert code_under_test.answer() == 42\n"
    )
    (folder / "code_under_test.py").write_text("def answer():\n    return 42\n")
    assert run_tests(folder, socket) == 0
    (folder / "code_under_test.py").write_text("def answer():\n    return 43\n")  # the mutant
    assert run_tests(folder, socket) == 1
    (folder / "code_under_test.py").write_text("def answer():\n    return 42\n")
    assert run_tests(folder, socket) == 0


def test_a_crash_or_a_hang_counts_as_a_failure(served_folder):
    folder, socket = served_folder
    (folder / "test_code.py").write_text("import os\n\ndef test_crash():\n    os.abort()\n")
    assert run_tests(folder, socket) == 1
    (folder / "test_code.py").write_text("import time\n\ndef test_hang():\n    time.sleep(600)\n")
    assert run_tests(folder, socket, timeout=1) == 124


def test_a_runner_that_closes_without_an_answer_is_an_error_not_a_verdict(tmp_path):
    # A dead server must not read as "the tests passed" (a surviving mutant) or as a kill.
    path = tmp_path / "closing.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def close_without_answer():
        connection, _ = listener.accept()
        connection.makefile().readline()
        connection.close()

    thread = threading.Thread(target=close_without_answer)
    thread.start()
    command = [sys.executable, str(RUNNER), "run", str(path), "5", "--", "-q"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    thread.join()
    listener.close()
    assert done.returncode != 0
    assert "closed without an answer" in done.stderr

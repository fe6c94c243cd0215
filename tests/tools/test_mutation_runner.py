"""tools/test_quality/mutation_runner.py: each request runs pytest in a fork that imports the code
under test afresh, so a mutant written to disk between two requests is what the second one tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

#: The runner as tools.test_quality.mutation starts it (there from the repository's copy).
RUNNER = [sys.executable, "-m", "tools.test_quality.mutation_runner"]


def environment(folder: Path) -> dict[str, str]:
    """The folder under test first on the import path (its code is what the tests import),
    then the repository (where ``python -m`` finds the runner)."""
    path = os.pathsep.join([str(folder), str(REPO)])
    return {"PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1", "PATH": ""}


@pytest.fixture(scope="module")
def served_folder():
    # A short folder name: a Unix socket path may not pass about 100 characters.
    with tempfile.TemporaryDirectory(prefix="mr_") as folder:
        folder = Path(folder)
        socket = folder / "runner.sock"
        server = subprocess.Popen(
            [*RUNNER, "serve", str(socket)], cwd=folder, env=environment(folder)
        )
        try:
            yield folder, socket
        finally:
            stop = [*RUNNER, "stop", str(socket)]
            subprocess.run(stop, cwd=folder, env=environment(folder), timeout=60)
            server.wait(timeout=60)


def run_tests(folder: Path, socket: Path, timeout: int = 60) -> int:
    command = [*RUNNER, "run", str(socket), str(timeout), "--", "-q", "test_code.py"]
    return subprocess.run(command, cwd=folder, env=environment(folder), timeout=120).returncode


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
    command = [*RUNNER, "run", str(path), "5", "--", "-q"]
    done = subprocess.run(
        command, cwd=tmp_path, env=environment(tmp_path), capture_output=True, text=True, timeout=60
    )
    thread.join()
    listener.close()
    assert done.returncode != 0
    assert "closed without an answer" in done.stderr

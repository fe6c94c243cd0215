"""``mrcnn export --input-size``: a size the exporter could not trace is refused in one line
before anything is loaded or allocated (issue 31: 100000x100000 asked for some 120 GB)."""

from __future__ import annotations

import pytest

from mrcnn.cli import main
from mrcnn.commands.export import parse_size
from mrcnn.deploy import export as exporting
from mrcnn.structures.resize_plan import MAX_EXPORT_SIDE
from tests.helpers.tiny_model import tiny_model


def test_parse_size_bounds_each_side():
    assert parse_size(None) is None
    assert parse_size(" 800 x 1088 ") == (800, 1088)
    assert parse_size(f"64x{MAX_EXPORT_SIDE}") == (64, MAX_EXPORT_SIDE)
    for text in ("100000x100000", f"64x{MAX_EXPORT_SIDE + 1}", "8x800"):
        with pytest.raises(ValueError) as error:
            parse_size(text)
        message = str(error.value)
        assert "\n" not in message and message.startswith(f"--input-size {text}: each side")
        assert f"64 to {MAX_EXPORT_SIDE} pixels" in message


def test_export_refuses_a_huge_input_size_in_one_line_before_loading(tmp_path, capsys):
    missing = tmp_path / "absent.pt"  # the refusal comes before the weights are read
    out = tmp_path / "model.pt2"
    args = ["export", "--weights", str(missing), "--input-size", "100000x100000", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "--input-size 100000x100000: each side must be 64 to 8192 pixels" in err
    assert not out.exists()


def test_the_python_export_refuses_a_huge_input_size_before_tracing(tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the graph was built for an oversized input")

    monkeypatch.setattr(exporting, "InferenceGraph", never)  # nothing big is ever allocated
    with pytest.raises(ValueError, match=r"^input size 100000x64 is too large: at most 8192 "):
        exporting.export_program(tiny_model(), tmp_path / "m.pt2", (100000, 64))
    assert not list(tmp_path.iterdir())

"""The seven findings of issue 11, each as it was tried (a real `idn`
process, 2 cores): they now end in one line naming the file and the key,
exit status 2. Findings 6 (a truncated sweep result counted as done) and 7
(a corrupt or pickled checkpoint) are tests/test_store_trust.py's and
tests/test_checkpoint_data.py's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCENARIO = Path(__file__).resolve().parents[1] / "examples" / "tiny.yaml"


def idn(*args, timeout=60):
    """A hang (finding 1 ran for 10 minutes) fails here by the timeout."""
    return subprocess.run([sys.executable, "-m", "idn.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def error_line(p) -> str:
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    return p.stderr.rstrip("\n")


def mutated(tmp_path, old: str, new: str) -> Path:
    text = SCENARIO.read_text()
    assert old in text
    path = tmp_path / "s.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_1_an_infinite_latency_is_refused_at_once(tmp_path):
    path = mutated(tmp_path, "latency_ms: 2.0", "latency_ms: .inf")
    assert error_line(idn("validate", path)) == f"idn: error: {path}: links[0].latency_ms: must be a finite number, got inf"


@pytest.mark.parametrize("size", ["1e400", "1.0e+400", ".nan", "-.inf"])
def test_2_a_size_of_1e400_is_refused(tmp_path, size):
    path = mutated(tmp_path, "size_mb: 14", f"size_mb: {size}")
    assert error_line(idn("validate", path)).startswith(
        f"idn: error: {path}: tasks[0].models[0].size_mb: must be a finite number, got "
    )


def test_3_a_binary_file_is_named_in_one_line(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_bytes(b"\x7fELF\xd0\x02\x01\x00" + bytes(range(256)))
    assert error_line(idn("validate", path)) == (
        f"idn: error: {path}: not a text file (a NUL byte at offset 7); expected a scenario in YAML or JSON"
    )
    path.write_bytes(b"n\xd0me: x\n")  # no NUL, not UTF-8 either
    assert error_line(idn("validate", path)) == (
        f"idn: error: {path}: not a UTF-8 text file (byte 0xd0 at offset 1); expected a scenario in YAML or JSON"
    )


def test_4_an_empty_file_is_named_once(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert error_line(idn("validate", path)) == f"idn: error: {path}: empty scenario file"


@pytest.mark.parametrize(
    "param, message",
    [
        ("eta=-1", "parameter eta must be a finite number > 0 and <= 1e+06, or null, got -1"),
        ("eta=inf", "parameter eta must be a finite number > 0 and <= 1e+06, or null, got 'inf'"),
        ("eta=Infinity", "parameter eta must be a finite number > 0 and <= 1e+06, or null, got inf"),
        ("eta_scale=nan", "parameter eta_scale must be a finite number > 0 and <= 1e+06, got 'nan'"),
        ("rounding=coupld", "parameter rounding must be one of 'fresh', 'coupled', got 'coupld'"),
    ],
)
def test_5_bad_policy_parameters_fail_before_the_first_step(tmp_path, param, message):
    p = idn("run", SCENARIO, "--policy", "infida", "--param", param, "--slots", 5, "--out", tmp_path / "o", "--quiet")
    assert error_line(p) == f"idn: error: policy 'infida': {message}"
    assert not (tmp_path / "o").exists()  # refused before anything ran

"""What a command loads: everyday commands never import the training code (import-linter
checks the static imports in CI; this checks what really ends up in sys.modules)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from docpress.cli import app
try:
    app(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(m for m in sys.modules if m.startswith("docpress"))}))
"""


def _run(args: list[str]) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("command", [
    pytest.param(["search", "volcanic eruption lava"], marks=pytest.mark.slow),
    pytest.param(["search", "volcanic eruption lava", "--method", "maxsim"], marks=pytest.mark.slow),
    ["info"],
    ["ls"],
])
def test_everyday_commands_load_no_training_code(topic_index, command):
    result = _run([*command, "--index", str(topic_index.directory), "--json"])
    assert result["code"] in (0, None)
    loaded = [m for m in result["modules"] if m.startswith(("docpress.train", "docpress.tune"))]
    assert loaded == []
    if command[0] == "search":  # the probe really searched: the encoder and retriever were used
        assert "docpress.encoders.text" in result["modules"]


def test_the_probe_sees_training_code_when_it_is_loaded(tmp_path):
    """The check above can fail: `tune` loads the training code (then finds no index here)."""
    result = _run(["tune", "--index", str(tmp_path / "none")])
    assert result["code"] == 1
    assert any(m.startswith("docpress.tune") for m in result["modules"])

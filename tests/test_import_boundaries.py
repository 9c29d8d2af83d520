"""What a command loads: everyday commands never import the training code (import-linter
checks the static imports in CI; this checks what really ends up in sys.modules)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# Runs each command given (one JSON list of arguments per line of stdin) through the CLI in
# one process, and prints after each the docpress modules loaded so far.
PROBE = """
import json, sys
from docpress.cli import app
for line in sys.stdin:
    try:
        app(json.loads(line))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    print(json.dumps({"code": code, "modules": sorted(m for m in sys.modules if m.startswith("docpress")),
                      "heavy": [m for m in ("torch", "transformers") if m in sys.modules]}))
"""


def _run(commands: list[list[str]]) -> list[dict]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                         input="\n".join(json.dumps(c) for c in commands) + "\n", timeout=300)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith('{"code"')]


def _training(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith(("docpress.train", "docpress.tune"))]


def test_everyday_commands_load_no_training_code_until_tune_does(topic_index, tmp_path):
    index = ["--index", str(topic_index.directory)]
    commands = [["ls", *index, "--json"], ["info", *index, "--json"],
                ["search", "volcanic eruption lava", *index, "--json"],
                ["search", "volcanic eruption lava", "--method", "maxsim", *index, "--json"],
                ["tune", "--index", str(tmp_path / "none")]]  # loads the training code, finds no index
    results = _run(commands)
    assert [r["code"] for r in results] == [0, 0, 0, 0, 1]
    for command, result in zip(commands[:4], results):
        assert _training(result["modules"]) == [], command
    assert "docpress.encoders.text" not in results[1]["modules"]  # info loads no model
    assert "docpress.encoders.text" in results[2]["modules"]  # search really searched
    assert _training(results[4]["modules"])  # the probe sees training code once it is loaded


def test_fast_commands_import_no_torch_or_transformers(topic_index):
    index = ["--index", str(topic_index.directory)]
    commands = [["--help"], ["--version"], ["ls", *index], ["info", *index, "--json"],
                ["rm", "no-such-file.pdf", *index], ["check", *index]]
    results = _run(commands)
    assert [r["code"] for r in results] == [0, 0, 0, 0, 1, 0]
    for command, result in zip(commands, results):
        assert result["heavy"] == [], command

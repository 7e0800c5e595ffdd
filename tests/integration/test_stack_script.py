"""`make up` is idempotent and `make down` leaves no process behind.

Runs a second, private stack (own folder, own ports) so the shared one other tests use stays up.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "scripts" / "stack.sh"


def run_stack(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(STACK), command], env=env, capture_output=True, text=True, timeout=300
    )


def pids(stack_dir: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in stack_dir.glob("*/*.pid")}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_twice_is_harmless_and_down_stops_everything(tmp_path: Path):
    env = {
        **os.environ,
        "NSM_STACK_DIR": str(tmp_path),
        "NSM_KAFKA_PORT": "19092",
        "NSM_KAFKA_CONTROLLER_PORT": "19093",
        "NSM_REDIS_PORT": "16379",
        "NSM_PROMETHEUS_PORT": "19090",
    }
    try:
        first = run_stack("up", env)
        assert first.returncode == 0, first.stdout + first.stderr
        started = pids(tmp_path)
        assert set(started) == {"kafka", "redis", "prometheus"}
        assert all(alive(pid) for pid in started.values())

        second = run_stack("up", env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert second.stdout.count("already running") == 3
        assert pids(tmp_path) == started, "a second `up` started nothing new"

        status = run_stack("status", env)
        assert status.returncode == 0 and status.stdout.count(" up ") == 3
    finally:
        down = run_stack("down", env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(alive(pid) for pid in started.values())
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftovers.stdout == "", f"processes left behind: {leftovers.stdout}"
    assert run_stack("status", env).returncode == 1


def test_a_taken_port_is_reported_by_name(tmp_path: Path):
    env = {
        **os.environ,
        "NSM_STACK_DIR": str(tmp_path),
        # The shared stack's Redis already listens here.
        "NSM_REDIS_PORT": os.environ.get("NSM_REDIS_PORT", "6379"),
    }
    result = run_stack("up", env)
    assert result.returncode != 0
    assert "port" in result.stderr and "NSM_REDIS_PORT" in result.stderr

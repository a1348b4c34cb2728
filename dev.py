#!/usr/bin/env python3
"""The project's two commands, needing nothing but Python 3.11+.

    python3 dev.py run    # create .venv if needed, install the locked dependencies, start the bot
    python3 dev.py test   # same environment, then ruff, mypy and the whole test suite

FFmpeg and libopus come inside wheels (imageio-ffmpeg, PyAV), so nothing is installed system-wide
for the bot. The tests also start throwaway PostgreSQL and Redis servers (tests/services.py); when
their programs are missing, `test` installs Debian's postgresql and redis-server packages if it runs
as root with apt-get (CI does), and otherwise says how to install them: their tests are then skipped,
or fail when CI=true. VOXCORD_NO_APT=1 turns the installing off.
The virtual environment is rebuilt only when requirements.lock or pyproject.toml changes.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements.lock"
STAMP = VENV / ".voxcord-installed"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in (LOCK, ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def install_steps(python: str, *, lock: str, project: str) -> list[list[str]]:
    """The pip commands that fill an environment; the Dockerfile runs the same ones (a test checks)."""
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    return [
        [*pip, "-r", lock],
        # The project itself, without re-resolving: the lock already pinned every dependency.
        [*pip, "--no-deps", "-e", project],
    ]


def ensure_venv() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"Voxcord needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    wanted = _fingerprint()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print("Creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing locked dependencies into .venv ...", flush=True)
    for step in install_steps(str(PYTHON), lock=str(LOCK), project=str(ROOT)):
        subprocess.run(step, check=True)
    STAMP.write_text(wanted)


def run(args: list[str]) -> int:
    return subprocess.call([str(PYTHON), "-m", "bot", *args], cwd=ROOT)


def _missing_test_servers() -> list[str]:
    """Debian packages whose programs the PostgreSQL and Redis tests need but cannot find."""
    missing = []
    if not (shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")):
        missing.append("postgresql")
    if not shutil.which("redis-server"):
        missing.append("redis-server")
    return missing


def ensure_test_servers() -> None:
    missing = _missing_test_servers()
    if not missing:
        return
    is_root = getattr(os, "geteuid", lambda: -1)() == 0
    if is_root and shutil.which("apt-get") and os.environ.get("VOXCORD_NO_APT") != "1":
        print(f"Installing {' '.join(missing)} for the storage and rate-limit tests (apt-get) ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        quiet = {"stdin": subprocess.DEVNULL, "env": env, "timeout": 900}
        subprocess.run(["apt-get", "update", "-qq"], check=True, **quiet)  # noqa: S607 - the system's apt-get
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],  # noqa: S607
                       check=True, stdout=subprocess.DEVNULL, **quiet)
        return
    ci = os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}
    outcome = "so their tests will FAIL (CI is set)" if ci else "so their tests are skipped"
    print(f"Not found: {', '.join(missing)}, {outcome}. To run them: sudo apt-get install {' '.join(missing)}",
          file=sys.stderr, flush=True)


def test(args: list[str]) -> int:
    ensure_test_servers()
    lint = subprocess.call([str(PYTHON), "-m", "ruff", "check", "."], cwd=ROOT)
    if lint != 0:
        return lint
    # Strict on bot/ and cogs/ (pyproject.toml): a type error fails the run like a lint error.
    types = subprocess.call([str(PYTHON), "-m", "mypy"], cwd=ROOT)
    if types != 0:
        return types
    code = subprocess.call([str(PYTHON), "-m", "pytest", *args], cwd=ROOT)
    if code == 5:  # pytest: no tests were collected, which must never pass as green
        print("pytest collected no tests: failing on purpose.", file=sys.stderr)
        return 1
    return code


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"run", "test", "setup"}:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ensure_venv()
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "setup":
        return 0
    return run(rest) if command == "run" else test(rest)


if __name__ == "__main__":
    sys.exit(main())

"""scripts/bootstrap.sh: a set-up done by test.sh (requirements-dev.txt) serves run.sh (requirements.txt) too."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def project_with_stamp(tmp_path: Path, stamped: str) -> Path:
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    for script in ("bootstrap.sh", "offline_env.sh"):
        shutil.copy(ROOT / "scripts" / script, project / "scripts" / script)
    for name in ("requirements.txt", "requirements-dev.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, project / name)
    digest = hashlib.sha1(b"".join((project / name).read_bytes() for name in ("requirements.txt", "requirements-dev.txt", "pyproject.toml"))).hexdigest()[:12]
    (project / ".venv").mkdir()
    (project / ".venv" / f".installed-{stamped}-{digest}").touch()
    return project


def bootstrap(project: Path, requirements: str) -> subprocess.CompletedProcess:
    # PYTHON=false: any attempt to create or install would fail, so exit 0 means "nothing to do".
    env = {"PATH": "/usr/bin:/bin", "PYTHON": "false", "HOME": str(project)}
    return subprocess.run(["bash", "scripts/bootstrap.sh", requirements], cwd=project, env=env, capture_output=True, text=True, timeout=60)


def test_dev_set_up_covers_the_runtime_requirements(tmp_path: Path) -> None:
    completed = bootstrap(project_with_stamp(tmp_path, "requirements-dev"), "requirements.txt")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Installing" not in completed.stdout


def test_runtime_set_up_does_not_cover_the_test_tools(tmp_path: Path) -> None:
    completed = bootstrap(project_with_stamp(tmp_path, "requirements"), "requirements-dev.txt")
    assert completed.returncode != 0  # it tried to install (and PYTHON=false stopped it)

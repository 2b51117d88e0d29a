"""A worker's own git checkout of the project, so no two `dvc repro` ever share a workspace.

DVC locks its repository while it runs, and a stage writes its outputs in place: two flow runs in one workspace would
block or clobber each other. So every flow run takes a checkout slot under the worker's home
(`S2F_WORKER_HOME/checkout-N`), holding an exclusive file lock on it for the run; concurrent runs on one machine take
different slots. Slots are reused (a fetch and a checkout of the wanted commit, not a fresh clone), and all of them
share one DVC cache, so a restore is a local copy once the objects are on the machine.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WORKER_HOME_ENV = "S2F_WORKER_HOME"
REMOTE_ENV = "S2F_DVC_REMOTE"
REMOTE_NAME = "s2f"
_SHA = re.compile(r"^[0-9a-f]{40}$")


class CheckoutError(RuntimeError):
    pass


def worker_home() -> Path:
    return Path(os.environ.get(WORKER_HOME_ENV) or Path.home() / ".cache" / "s2f" / "worker")


def git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CheckoutError(f"git {' '.join(args)} failed in {cwd or Path.cwd()}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def resolve_commit(repo_url: str, rev: str = "HEAD") -> str:
    """The commit `rev` names in `repo_url`, fixed once so every stage of a pipeline run builds the same code."""
    if _SHA.match(rev):
        return rev
    lines = git("ls-remote", repo_url, rev).splitlines()
    if not lines:
        raise CheckoutError(f"{repo_url} has no ref {rev!r}")
    return lines[0].split()[0]


def _sync(path: Path, repo_url: str, commit: str) -> None:
    if not (path / ".git").is_dir():
        git("clone", "--quiet", "--no-checkout", repo_url, str(path))
    else:
        git("remote", "set-url", "origin", repo_url, cwd=path)
    try:
        git("cat-file", "-e", f"{commit}^{{commit}}", cwd=path)
    except CheckoutError:
        git("fetch", "--quiet", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*", cwd=path)
    git("checkout", "--quiet", "--force", "--detach", commit, cwd=path)
    git("clean", "-fdq", cwd=path)  # untracked files only; DVC outputs (git-ignored) stay for a fast restore


def _dvc(path: Path, *args: str) -> None:
    proc = subprocess.run(["dvc", *args], cwd=path, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CheckoutError(f"dvc {' '.join(args)} failed in {path}: {(proc.stderr or proc.stdout).strip()}")


def configure_dvc(path: Path, cache_dir: Path) -> None:
    """The shared cache and the remote from the environment (`S2F_DVC_REMOTE`, endpoint `AWS_ENDPOINT_URL`), set in
    the checkout's git-ignored `.dvc/config.local`; without `S2F_DVC_REMOTE` the repository's default remote is used."""
    _dvc(path, "cache", "dir", "--local", str(cache_dir))
    remote = os.environ.get(REMOTE_ENV)
    if not remote:
        return
    _dvc(path, "remote", "add", "--local", "--force", "--default", REMOTE_NAME, remote)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if remote.startswith("s3://") and endpoint:
        _dvc(path, "remote", "modify", "--local", REMOTE_NAME, "endpointurl", endpoint)


@contextmanager
def worker_checkout(repo_url: str, commit: str, home: Path | None = None, slots: int = 8) -> Iterator[Path]:
    """An exclusively held checkout of `commit`, DVC configured; released (not deleted) afterwards."""
    home = home or worker_home()
    home.mkdir(parents=True, exist_ok=True)
    for slot in range(slots):
        lock = open(home / f"checkout-{slot}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            path = home / f"checkout-{slot}"
            _sync(path, repo_url, commit)
            configure_dvc(path, home / "dvc-cache")
            yield path
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
        return
    raise CheckoutError(f"all {slots} checkout slots under {home} are in use")

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
    refs = dict(reversed(line.split("\t", 1)) for line in git("ls-remote", repo_url, rev).splitlines())
    for ref in (f"refs/tags/{rev}^{{}}", f"refs/tags/{rev}", f"refs/heads/{rev}", rev):  # a tag's commit, not object
        if ref in refs:
            return refs[ref]
    if not refs:
        raise CheckoutError(f"{repo_url} has no ref {rev!r}")
    return next(iter(refs.values()))


def _sync(path: Path, repo_url: str, commit: str) -> None:
    if not (path / ".git").is_dir():
        git("clone", "--quiet", "--no-checkout", repo_url, str(path))
    else:
        git("remote", "set-url", "origin", repo_url, cwd=path)
        # The slot's flock makes this run the only user: a lock left by a killed run is stale, not someone else's.
        (path / ".git" / "index.lock").unlink(missing_ok=True)
    try:
        git("cat-file", "-e", f"{commit}^{{commit}}", cwd=path)
    except CheckoutError:
        try:  # the exact commit (also a detached HEAD or a tag's commit), where the server allows it
            git("fetch", "--quiet", "origin", commit, cwd=path)
        except CheckoutError:
            git("fetch", "--quiet", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*", cwd=path)
    git("checkout", "--quiet", "--force", "--detach", commit, cwd=path)
    git("clean", "-fdq", cwd=path)  # untracked files only; DVC outputs (git-ignored) stay for a fast restore
    # Workers resolve stages by the run-cache (code + params + input hashes), not by the committed dvc.lock: the
    # outputs that lock names were built elsewhere and may never have been pushed, and then `dvc repro --pull`
    # recomputes the stage and everything upstream instead of restoring what another worker published.
    (path / "dvc.lock").unlink(missing_ok=True)


def _dvc(path: Path, *args: str) -> None:
    proc = subprocess.run(["dvc", *args], cwd=path, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CheckoutError(f"dvc {' '.join(args)} failed in {path}: {(proc.stderr or proc.stdout).strip()}")


def s3_endpoint(env: dict[str, str] | os._Environ = os.environ) -> str | None:
    return env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")


def configure_remote(path: Path, remote: str, endpoint: str | None = None) -> None:
    """Make `remote` (a URL or folder) the default DVC remote `s2f` of the repository at `path`, in its git-ignored
    `.dvc/config.local`, with `endpoint` (an S3-compatible server's URL) as its `endpointurl`."""
    _dvc(path, "remote", "add", "--local", "--force", "--default", REMOTE_NAME, remote)
    if remote.startswith("s3://") and endpoint:
        _dvc(path, "remote", "modify", "--local", REMOTE_NAME, "endpointurl", endpoint)


def configure_dvc(path: Path, cache_dir: Path) -> None:
    """The shared cache, and the remote from `S2F_DVC_REMOTE`; without it, the repository's own default remote
    (committed in `.dvc/config`). A checkout without any remote could build but publish nothing: refused here."""
    _dvc(path, "cache", "dir", "--local", str(cache_dir))
    remote = os.environ.get(REMOTE_ENV)
    if remote:
        configure_remote(path, remote, s3_endpoint())
        return
    subprocess.run(["dvc", "remote", "remove", "--local", REMOTE_NAME], cwd=path, capture_output=True)  # stale
    if subprocess.run(["dvc", "remote", "default"], cwd=path, capture_output=True).returncode != 0:  # none set
        raise CheckoutError(f"{REMOTE_ENV} is not set and {path} has no default DVC remote: workers could not "
                            "share their results (set it, e.g. from infra/s2f.env)")


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

"""Real round trips through a moto S3 server on 127.0.0.1: boto3 helpers, clip localization, and a DVC S3 remote."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

from s2f.io import storage
from s2f.io.shards import shard_name, write_shard
from s2f.io.storage import StorageError
from tests.s3_server import free_port, s3_env, s3_server  # noqa: F401  (fixtures)


def _put(bucket: str, key: str, body: bytes) -> None:
    storage.s3_client().put_object(Bucket=bucket, Key=key, Body=body)


def test_split_s3_and_join():
    assert storage.split_s3("s3://b/a/c.npz") == ("b", "a/c.npz")
    assert storage.split_s3("s3://b") == ("b", "")
    assert storage.join("s3://b/shards/", "train", "/x.npz") == "s3://b/shards/train/x.npz"
    assert storage.is_s3("s3://b/k") and not storage.is_s3("/data/s3://x") and not storage.is_s3("clips/a.mp4")
    for bad in ("http://b/k", "s3:///k", "b/k"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            storage.split_s3(bad)


def test_client_endpoint_comes_from_the_environment_and_is_cached_per_process(s3_env, monkeypatch):
    endpoint, _ = s3_env
    client = storage.s3_client()
    assert client.meta.endpoint_url == endpoint
    assert storage.s3_client() is client
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)  # the service-specific variable wins
    assert storage.s3_client().meta.endpoint_url == endpoint
    real_pid = os.getpid()
    monkeypatch.setattr(storage.os, "getpid", lambda: real_pid + 1)  # as in a forked worker
    assert storage.s3_client() is not client


def test_upload_download_list_exists_round_trip(s3_env, tmp_path):
    _, bucket = s3_env
    src = tmp_path / "src.npz"
    write_shard(src, {"x": np.arange(10, dtype=np.float32)})
    prefix = f"s3://{bucket}/shards/"
    uris = [storage.join(prefix, shard_name(i)) for i in range(3)]
    assert not storage.exists(uris[0])
    for uri in uris:
        storage.upload_file(src, uri)
    _put(bucket, "shards-old/other.npz", b"x")  # shares the text prefix "shards" but not the folder
    assert storage.exists(uris[0])
    assert storage.list_uris(prefix) == uris
    assert storage.list_uris(prefix, page_size=2) == uris  # several pages
    assert storage.list_uris(f"s3://{bucket}/nothing/") == []
    out = storage.download_file(uris[1], tmp_path / "dl" / "got.npz")
    assert out.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["got.npz"]  # no temporary file left behind


def test_localize_relative_absolute_and_s3_downloads_once(s3_env, tmp_path):
    _, bucket = s3_env
    base, cache = tmp_path / "base", tmp_path / "cache"
    assert storage.localize("clips/a.mp4", base, cache) == base / "clips/a.mp4"
    assert storage.localize(str(tmp_path / "abs.mp4"), base, cache) == tmp_path / "abs.mp4"
    uri = f"s3://{bucket}/raw/id001/clip.mp4"
    _put(bucket, "raw/id001/clip.mp4", b"video bytes")
    local = storage.localize(uri, base, cache)
    assert local.parent == cache and local.suffix == ".mp4" and local.read_bytes() == b"video bytes"
    storage.s3_client().delete_object(Bucket=bucket, Key="raw/id001/clip.mp4")
    assert storage.localize(uri, base, cache) == local  # served from the cache: S3 no longer has it
    _put(bucket, "raw/id002/clip.mp4", b"other")  # same file name, other URI: another cache entry
    assert storage.localize(f"s3://{bucket}/raw/id002/clip.mp4", base, cache).read_bytes() == b"other"


def test_forked_workers_build_their_own_client(s3_env, tmp_path):
    _, bucket = s3_env
    _put(bucket, "raw/a.mp4", b"a")
    storage.s3_client()  # the parent's client exists before the fork
    uris = [f"s3://{bucket}/raw/a.mp4", f"s3://{bucket}/raw/missing.mp4"]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        results = list(pool.map(_localize_or_reason, uris, [tmp_path / "cache"] * 2))
    assert results == [b"a", "s3_not_found"]  # the StorageError crossed the process boundary intact


def _localize_or_reason(uri: str, cache: Path) -> bytes | str:
    try:
        return storage.localize(uri, cache, cache).read_bytes()
    except StorageError as exc:
        return exc.reason


def test_missing_object_and_bucket_give_s3_not_found(s3_env, tmp_path):
    _, bucket = s3_env
    uri = f"s3://{bucket}/raw/missing.mp4"
    with pytest.raises(StorageError) as err:
        storage.localize(uri, tmp_path, tmp_path / "cache")
    assert (err.value.uri, err.value.reason) == (uri, "s3_not_found")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    src = tmp_path / "f.bin"
    src.write_bytes(b"1")
    with pytest.raises(StorageError, match="s3_not_found"):  # boto3 wraps upload errors; the chain is followed
        storage.upload_file(src, "s3://no-such-bucket-s2f/x.bin")
    with pytest.raises(StorageError, match="s3_not_found"):
        storage.list_uris("s3://no-such-bucket-s2f/")
    with pytest.raises(StorageError, match="s3_bad_uri"):
        storage.localize(f"s3://{bucket}/", tmp_path, tmp_path / "cache")


def test_closed_port_gives_s3_unreachable_quickly(s3_env, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    start = time.monotonic()
    with pytest.raises(StorageError) as err:
        storage.download_file("s3://b/k.mp4", tmp_path / "k.mp4")
    assert err.value.reason == "s3_unreachable"
    with pytest.raises(StorageError, match="s3_unreachable"):
        storage.exists("s3://b/k.mp4")  # unreachable is not "missing"
    assert time.monotonic() - start < 5
    assert list(tmp_path.iterdir()) == []


def test_no_credentials_and_denied_reasons(s3_env, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata probe
    with pytest.raises(StorageError, match="s3_no_credentials"):
        storage.download_file(f"s3://{s3_env[1]}/k", tmp_path / "k")
    denied = ClientError({"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject")
    assert storage._reason(denied) == ("s3_access_denied", "AccessDenied")


def test_storage_error_survives_pickling_across_processes():
    error = pickle.loads(pickle.dumps(StorageError("s3://b/k", "s3_not_found", "NoSuchKey")))
    assert (error.uri, error.reason, error.detail, str(error)) == ("s3://b/k", "s3_not_found", "NoSuchKey",
                                                                   "s3://b/k: s3_not_found (NoSuchKey)")


# ---- DVC with an S3 remote -------------------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


@pytest.mark.slow
def test_dvc_push_and_pull_through_an_s3_remote(s3_env, tmp_path):
    endpoint, bucket = s3_env
    # No AWS_* variables reach DVC: the endpoint is in .dvc/config, the credentials only in .dvc/config.local.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"DVC_NO_ANALYTICS": "1", "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"), "AWS_EC2_METADATA_DISABLED": "true"}
    dvc = str(Path(sys.executable).parent / "dvc")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]

    repo = tmp_path / "repo"
    repo.mkdir()
    _run(["git", "init", "-q"], repo, env)
    _run([dvc, "init", "-q"], repo, env)
    rng = np.random.default_rng(0)
    for i in range(2):
        write_shard(repo / "data/shards" / shard_name(i), {"mel": rng.normal(size=(4, 40, 32)).astype(np.float32),
                                                          "speaker": np.arange(4)})
    _run([dvc, "add", "-q", "data/shards"], repo, env)
    _run([dvc, "remote", "add", "-d", "store", f"s3://{bucket}/dvcstore"], repo, env)
    _run([dvc, "remote", "modify", "store", "endpointurl", endpoint], repo, env)
    _run([dvc, "remote", "modify", "--local", "store", "access_key_id", "testing-key"], repo, env)
    _run([dvc, "remote", "modify", "--local", "store", "secret_access_key", "testing-secret"], repo, env)
    config = (repo / ".dvc/config").read_text()
    assert endpoint in config and "testing" not in config and "access_key" not in config
    assert "testing-key" in (local := (repo / ".dvc/config.local").read_text()) and "testing-secret" in local
    _run([*git, "add", "-A"], repo, env)
    _run([*git, "commit", "-qm", "shards"], repo, env)
    assert "config.local" not in _run(["git", "ls-files"], repo, env)  # DVC's own .gitignore keeps it out

    _run([dvc, "push"], repo, env)
    keys = boto3.session.Session().client("s3", endpoint_url=endpoint).list_objects_v2(
        Bucket=bucket, Prefix="dvcstore/")["Contents"]
    assert len(keys) >= 3  # two shards plus the directory listing (.dir)
    assert all(obj["Key"].startswith("dvcstore/files/md5/") for obj in keys)

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    assert not (clone / "data/shards").exists()
    shutil.copy(repo / ".dvc/config.local", clone / ".dvc/config.local")
    _run([dvc, "pull"], clone, env)
    for i in range(2):
        name = f"data/shards/{shard_name(i)}"
        assert (clone / name).read_bytes() == (repo / name).read_bytes()

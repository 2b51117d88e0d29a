"""Raw clips and shards under `s3://` through boto3, with failures reduced to a short reason for the quarantine table.

Why these choices:
- The endpoint and the credentials come only from the environment or the AWS config files (boto3 itself reads
  `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `~/.aws/...`), never from `params.yaml`: params are
  committed, secrets must not be. The same code then talks to AWS, MinIO or the tests' moto server.
- One client per process, created lazily: boto3 clients are thread-safe but must not cross a `fork()`, so the cache is
  keyed by the PID (a worker process builds its own) and by the AWS environment (a changed endpoint takes effect).
- Every failure is a `StorageError(uri, reason)` with a reason such as `s3_not_found`, so a preprocessing worker can
  quarantine one bad clip and go on instead of crashing the stage.
- Downloads are written to a temporary name and renamed, so a killed run or two workers fetching the same clip never
  leave a half-written file where a finished one is expected.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import boto3
from boto3.exceptions import Boto3Error
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

S3_SCHEME = "s3://"

# Small timeouts and one retry: an unreachable endpoint must fail a clip in about a second, not stall a worker for
# minutes (botocore's backoff before retry n is up to 2**n s). `AWS_MAX_ATTEMPTS` (total attempts) overrides the 2.
CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 60
DEFAULT_MAX_ATTEMPTS = 2

# The environment that decides which endpoint and identity a client gets: part of the cache key.
_AWS_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_MAX_ATTEMPTS")
_CLIENTS: dict[tuple, BaseClient] = {}

_NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
           "AllAccessDisabled"}
_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)


class StorageError(Exception):
    """A storage operation on `uri` failed; `reason` is a short stable code fit for a quarantine table."""

    def __init__(self, uri: str, reason: str, detail: str = "") -> None:
        super().__init__(f"{uri}: {reason}" + (f" ({detail})" if detail else ""))
        self.uri = uri
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # survive pickling across a process pool (the default would replay only the message)
        return type(self), (self.uri, self.reason, self.detail)


def is_s3(uri: str) -> bool:
    return str(uri).startswith(S3_SCHEME)


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b.npz` -> `("bucket", "a/b.npz")`; the key may be empty (a whole bucket as a prefix)."""
    if not is_s3(uri):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len(S3_SCHEME):].partition("/")
    if not bucket:
        raise ValueError(f"s3 URI without a bucket: {uri!r}")
    return bucket, key


def join(uri: str, *parts: str) -> str:
    """`join("s3://b/shards/", "train", "shard-00000.npz")` -> `s3://b/shards/train/shard-00000.npz`."""
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def _client_config() -> Config:
    retries = {"mode": "standard"}
    if not os.environ.get("AWS_MAX_ATTEMPTS"):  # when set, botocore reads it itself
        retries["total_max_attempts"] = DEFAULT_MAX_ATTEMPTS
    return Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S, retries=retries)


def s3_client() -> BaseClient:
    """This process's S3 client for the current AWS environment (endpoint from `AWS_ENDPOINT_URL[_S3]`)."""
    key = (os.getpid(), *(os.environ.get(name) for name in _AWS_ENV))
    client = _CLIENTS.get(key)
    if client is None:
        # A fresh Session: the default one caches credentials resolved earlier, under another environment.
        client = boto3.session.Session().client("s3", config=_client_config())
        _CLIENTS[key] = client
    return client


def _reason(exc: BaseException) -> tuple[str, str]:
    """Map a boto3/botocore failure to (reason, detail); follows the chain because boto3 wraps upload errors."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClientError):
            code = str(seen.response.get("Error", {}).get("Code", ""))
            status = str(seen.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in _NOT_FOUND or status == "404":
                return "s3_not_found", code
            if code in _DENIED or status == "403":
                return "s3_access_denied", code
            return "s3_error", code or status
        if isinstance(seen, (NoCredentialsError, PartialCredentialsError)):
            return "s3_no_credentials", type(seen).__name__
        if isinstance(seen, _UNREACHABLE):
            return "s3_unreachable", type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    return "s3_error", f"{type(exc).__name__}: {exc}"


def _storage_error(uri: str, exc: BaseException) -> StorageError:
    reason, detail = _reason(exc)
    return StorageError(uri, reason, detail)


def upload_file(local: Path, uri: str) -> None:
    bucket, key = split_s3(uri)
    try:
        s3_client().upload_file(str(local), bucket, key)
    except (BotoCoreError, ClientError, Boto3Error) as exc:
        raise _storage_error(uri, exc) from exc


def download_file(uri: str, local: Path) -> Path:
    """Fetch `uri` to `local` through a temporary file in the same folder, renamed into place when complete."""
    bucket, key = split_s3(uri)
    local.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.", suffix=".tmp")
    os.close(fd)
    try:
        s3_client().download_file(bucket, key, tmp)
        os.replace(tmp, local)
    except (BotoCoreError, ClientError, Boto3Error) as exc:
        raise _storage_error(uri, exc) from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return local


def list_uris(prefix_uri: str, page_size: int = 1000) -> list[str]:
    """Every object URI under `prefix_uri` (a plain key prefix, so end it with `/` to mean a folder), sorted."""
    bucket, prefix = split_s3(prefix_uri)
    uris = []
    try:
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix,
                                                                         PaginationConfig={"PageSize": page_size}):
            uris.extend(f"{S3_SCHEME}{bucket}/{obj['Key']}" for obj in page.get("Contents", []))
    except (BotoCoreError, ClientError) as exc:
        raise _storage_error(prefix_uri, exc) from exc
    return sorted(uris)


def exists(uri: str) -> bool:
    """Whether the object exists; other failures (denied, unreachable) raise rather than read as "missing"."""
    bucket, key = split_s3(uri)
    try:
        s3_client().head_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        error = _storage_error(uri, exc)
        if error.reason == "s3_not_found":
            return False
        raise error from exc
    return True


def object_size(uri: str) -> int:
    bucket, key = split_s3(uri)
    try:
        return int(s3_client().head_object(Bucket=bucket, Key=key)["ContentLength"])
    except (BotoCoreError, ClientError) as exc:
        raise _storage_error(uri, exc) from exc


def read_range(uri: str, offset: int, size: int) -> bytes:
    """`size` bytes of the object from `offset` (one ranged GET): how training reads single rows of S3 shards."""
    bucket, key = split_s3(uri)
    try:
        body = s3_client().get_object(Bucket=bucket, Key=key, Range=f"bytes={offset}-{offset + size - 1}")["Body"]
        data = body.read()
    except (BotoCoreError, ClientError) as exc:
        raise _storage_error(uri, exc) from exc
    if len(data) != size:
        raise StorageError(uri, "s3_error", f"{size} bytes wanted at {offset}, {len(data)} returned")
    return data


def cache_path(uri: str, cache_dir: Path) -> Path:
    """Where `localize` keeps `uri`: a hash of the whole URI (no collisions) plus the file name (keeps the suffix)."""
    key = split_s3(uri)[1]
    if not key or key.endswith("/"):
        raise ValueError(f"s3 URI names no object: {uri!r}")
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return cache_dir / f"{digest}-{Path(key).name}"


def localize(uri_or_path: str | Path, base: Path, cache_dir: Path) -> Path:
    """A local file for a manifest entry: relative paths join `base`, absolute ones stay, `s3://` is fetched once.

    A cached download is reused without asking S3 again: raw clips are treated as immutable (a changed clip gets a new
    URI). A malformed `s3://` entry raises `StorageError(..., "s3_bad_uri")` so it is quarantined like any bad clip.
    """
    text = str(uri_or_path)
    if not is_s3(text):
        path = Path(text)
        return path if path.is_absolute() else base / path
    try:
        local = cache_path(text, cache_dir)
    except ValueError as exc:
        raise StorageError(text, "s3_bad_uri", str(exc)) from exc
    if not local.is_file():
        download_file(text, local)
    return local

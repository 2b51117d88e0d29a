"""AVSpeech fetching with real yt-dlp and ffmpeg against servers on 127.0.0.1 (no YouTube, no mocks of yt-dlp)."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import socket
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from yt_dlp.utils import DownloadError, ExtractorError

from s2f.config import AvspeechSourceParams
from s2f.io.media import probe
from s2f.sources.avspeech import (AvspeechFetchError, RateLimiter, Segment, classify, fetch_avspeech,
                                  read_avspeech_csv)
from tests.conftest import ROOT, ffmpeg

METADATA = ROOT.parent / "shared" / "data" / "metadata"
VID = "Ab3_-xYz019"  # 11 characters, with the '-' and '_' real ids contain


class Server:
    """Static files over HTTP; `/<status>/…` (429, 503, 404, 410) answers with that status. Counts requests."""

    def __init__(self, root: Path):
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                status = self.path.split("/")[1]
                if status.isdigit():
                    self.send_response(int(status))
                    self.send_header("Retry-After", "7")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=root))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Serves an 8 s talking-test-pattern mp4 as `/<VID>.mp4`."""
    root = tmp_path_factory.mktemp("www")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=8", "-f", "lavfi",
           "-i", "sine=frequency=440:duration=8", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-shortest", "-movflags", "+faststart", str(root / f"{VID}.mp4"))
    srv = Server(root)
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("".join(r + "\n" for r in rows))
    return path


def params(csv: Path, url_template: str, **kw: object) -> AvspeechSourceParams:
    base = dict(csv=str(csv), url_template=url_template, requests_per_minute=6000.0, max_attempts=2,
                backoff_seconds=0.0, timeout_seconds=20.0)
    return AvspeechSourceParams(**{**base, **kw})


def ledger_rows(out: Path) -> dict[str, dict]:
    with sqlite3.connect(out / "ledger.sqlite") as db:
        db.row_factory = sqlite3.Row
        return {r["sample_id"]: dict(r) for r in db.execute("SELECT * FROM segments")}


# ------------------------------------------------------------------------------------------------------------ CSV


@pytest.mark.parametrize("name, valid, rejected", [
    ("avspeech_test_subset_mayurnewase.csv", 499, {"bad_face_position": 1}),  # header + index column
    ("avspeech_train_subset_mayurnewase.csv", 500, {}),
    ("avspeech_train_subset_mitali72.csv", 130, {}),  # no header, UTF-8 BOM, CRLF
])
def test_reads_the_real_csv_formats(name: str, valid: int, rejected: dict) -> None:
    path = METADATA / name
    if not path.is_file():
        pytest.fail(f"AVSpeech metadata not found at {path}: clone beside ../shared")
    segments, bad = read_avspeech_csv(path)
    assert len(segments) == valid
    assert bad["reason"].value_counts().to_dict() == rejected
    assert all(len(s.youtube_id) == 11 and 0 <= s.start < s.end for s in segments)
    if name.endswith("mitali72.csv"):
        assert segments[0] == Segment("PmD-LzPS2rg", 282.5823, 285.5853, 0.371875, 0.425, 0)  # BOM stripped
        assert segments[0].sample_id == "ytPmD-LzPS2rg_282582_285585"


def test_bad_rows_are_rejected_before_any_request(tmp_path: Path, server: Server) -> None:
    csv = write_csv(tmp_path / "av.csv", [
        f"{VID},1,4,0.5,0.5",                 # valid; served as 404 below
        f"{VID}x,1,4,0.5,0.5",                # 12 characters
        "abc;rm -rf,1,4,0.5,0.5",
        "Bb3_-xYz019,9,4,0.5,0.5",
        "Cb3_-xYz019,nan,4,0.5,0.5",
        "Db3_-xYz019,-1,4,0.5,0.5",
        "Eb3_-xYz019,1,4,1.5,0.5",
        "Fb3_-xYz019,1,4",
        f"{VID},1,4,0.5,0.5",                 # duplicate
    ])
    segments, bad = read_avspeech_csv(csv)
    assert [s.youtube_id for s in segments] == [VID]
    assert bad[["row", "reason"]].values.tolist() == [
        [1, "malformed_youtube_id"], [2, "malformed_youtube_id"], [3, "end_before_start"], [4, "bad_time"],
        [5, "bad_time"], [6, "bad_face_position"], [7, "bad_row"], [8, "duplicate"]]

    before = len(server.requests)
    out = tmp_path / "out"
    with pytest.raises(AvspeechFetchError):
        fetch_avspeech(params(csv, server.url + "/404/{youtube_id}.mp4"), out)
    assert server.requests[before:] == [f"/404/{VID}.mp4"]  # one request, for the one valid row only
    assert list(ledger_rows(out)) == [segments[0].sample_id]
    summary = json.loads((out / "fetch_summary.json").read_text())
    assert summary["invalid_rows"] == {"malformed_youtube_id": 2, "end_before_start": 1, "bad_time": 2,
                                       "bad_face_position": 1, "bad_row": 1, "duplicate": 1}


# -------------------------------------------------------------------------------------------------------- failures


def test_unreachable_host_ends_with_a_summary_and_waits_before_retrying(tmp_path: Path, closed_port: int) -> None:
    csv = write_csv(tmp_path / "av.csv", [f"{VID},1,4,0.5,0.5", "Zb3_-xYz019,2,5,0.5,0.5"])
    p = params(csv, f"http://127.0.0.1:{closed_port}/{{youtube_id}}.mp4")
    out = tmp_path / "out"
    with pytest.raises(AvspeechFetchError) as err:
        fetch_avspeech(p, out)
    message = str(err.value)
    assert "no segment could be fetched" in message and "network_error=2" in message
    assert str(out / "ledger.sqlite") in message
    rows = ledger_rows(out)
    assert {r["reason"] for r in rows.values()} == {"network_error"}
    assert {r["attempts"] for r in rows.values()} == {2}
    assert not any(r["permanent"] for r in rows.values())
    assert all(datetime.fromisoformat(r["retry_after"]) > datetime.now(UTC) + timedelta(hours=23)
               for r in rows.values())

    with pytest.raises(AvspeechFetchError):  # before retry_after: nothing is tried
        fetch_avspeech(p, out)
    assert {r["attempts"] for r in ledger_rows(out).values()} == {2}
    assert json.loads((out / "fetch_summary.json").read_text())["skipped_not_due"] == 2

    later = datetime.now(UTC) + timedelta(hours=25)
    with pytest.raises(AvspeechFetchError):  # after it: tried again, attempts accumulate
        fetch_avspeech(p, out, now=lambda: later)
    assert {r["attempts"] for r in ledger_rows(out).values()} == {4}


@pytest.mark.reliability
def test_run_stops_early_when_the_service_is_down(tmp_path: Path, closed_port: int) -> None:
    ids = ["Ab3_-xYz01" + c for c in "abcde"]
    csv = write_csv(tmp_path / "av.csv", [f"{i},1,4,0.5,0.5" for i in ids])
    out = tmp_path / "out"
    with pytest.raises(AvspeechFetchError) as err:
        fetch_avspeech(params(csv, f"http://127.0.0.1:{closed_port}/{{youtube_id}}.mp4", max_attempts=1), out)
    assert "stopped early" in str(err.value)
    assert len(ledger_rows(out)) == 3
    assert err.value.summary["not_tried"] == 2


@pytest.mark.parametrize("status, reason", [(429, "http_429"), (503, "http_5xx")])
def test_rate_limit_and_server_errors_are_transient(tmp_path: Path, server: Server, status: int, reason: str) -> None:
    csv = write_csv(tmp_path / "av.csv", [f"{VID},1,4,0.5,0.5"])
    slept: list[float] = []
    out = tmp_path / "out"
    with pytest.raises(AvspeechFetchError):
        fetch_avspeech(params(csv, f"{server.url}/{status}/{{youtube_id}}.mp4"), out, sleep=slept.append)
    (row,) = ledger_rows(out).values()
    assert (row["reason"], row["permanent"], row["attempts"]) == (reason, 0, 2)
    assert 7.0 in slept  # the server's Retry-After beats the (zero) backoff


@pytest.mark.parametrize("status", [404, 410])
def test_missing_video_is_permanent_and_never_retried(tmp_path: Path, server: Server, status: int) -> None:
    csv = write_csv(tmp_path / "av.csv", [f"{VID},1,4,0.5,0.5"])
    p = params(csv, f"{server.url}/{status}/{{youtube_id}}.mp4", max_attempts=3)
    out = tmp_path / "out"
    before = len(server.requests)
    with pytest.raises(AvspeechFetchError):
        fetch_avspeech(p, out)
    assert len(server.requests) == before + 1  # a permanent failure is not retried within the run
    (row,) = ledger_rows(out).values()
    assert (row["reason"], row["permanent"], row["attempts"], row["retry_after"]) == ("video_unavailable", 1, 1, None)
    far = datetime.now(UTC) + timedelta(days=365)
    with pytest.raises(AvspeechFetchError):
        fetch_avspeech(p, out, now=lambda: far)
    assert len(server.requests) == before + 1  # nor in a later run


@pytest.mark.parametrize("message, reason, permanent", [
    ("Video unavailable. This video has been removed by the uploader", "video_unavailable", True),
    ("Video unavailable. This video is no longer available because the YouTube account associated with this video "
     "has been terminated.", "video_unavailable", True),
    ("Private video. Sign in if you've been granted access to this video", "private_video", True),
    ("Video unavailable. This video contains content from SME, who has blocked it on copyright grounds",
     "copyright", True),
    ("Sign in to confirm you're not a bot. Use --cookies-from-browser or --cookies for the authentication.",
     "http_429", False),
    ("Unable to download webpage: HTTP Error 503: Service Unavailable", "http_5xx", False),
    ("Unable to download API page: The read operation timed out", "network_error", False),
    ("ffmpeg exited with code 1", "download_failed", False),
])
def test_youtube_messages_are_classified(message: str, reason: str, permanent: bool) -> None:
    cause = ExtractorError(message, expected=True)
    failure = classify(DownloadError(f"ERROR: [youtube] {VID}: {message}", (type(cause), cause, None)))
    assert (failure.reason, failure.permanent) == (reason, permanent)


def test_rate_limiter_spaces_starts() -> None:
    t = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        t[0] += s

    limiter = RateLimiter(30.0, clock=lambda: t[0], sleep=sleep)  # one start per 2 s
    limiter.wait()
    t[0] += 0.5
    limiter.wait()
    t[0] += 10.0
    limiter.wait()
    assert slept == [1.5]


# --------------------------------------------------------------------------------------------------------- success


def test_downloads_only_the_segment_and_never_twice(tmp_path: Path, server: Server) -> None:
    csv = write_csv(tmp_path / "av.csv", [f"{VID},2,5,0.25,0.75", "Zb3_-xYz019,2,5,0.5,0.5"])  # 2nd: 404
    p = params(csv, server.url + "/{youtube_id}.mp4")
    out = tmp_path / "out"
    manifest = fetch_avspeech(p, out)
    assert manifest.to_dict("records") == [{"sample_id": f"yt{VID}_2000_5000", "clip": f"clips/yt{VID}_2000_5000.mp4",
                                            "speaker": VID, "face_x": 0.25, "face_y": 0.75}]
    info = probe(out / manifest["clip"].iloc[0])
    assert abs(info.duration - 3.0) < 0.25 and info.has_video and info.has_audio
    assert sorted(p.name for p in (out / "clips").iterdir()) == [f"yt{VID}_2000_5000.mp4"]  # no leftovers
    summary = json.loads((out / "fetch_summary.json").read_text())
    assert (summary["done"], summary["fetched_now"], summary["failed"]) == (1, 1, {"video_unavailable": 1})

    before = len(server.requests)
    again = fetch_avspeech(p, out)
    assert len(server.requests) == before
    assert again.equals(manifest)
    assert json.loads((out / "fetch_summary.json").read_text())["skipped_done"] == 1


@pytest.mark.reliability
def test_download_stage_keeps_its_ledger_outside_the_dvc_output(tmp_path: Path, server: Server) -> None:
    """DVC deletes `data/raw` before rerunning `download`; the ledger in the work folder still prevents a refetch."""
    import yaml

    from s2f.stages import download

    csv = write_csv(tmp_path / "av.csv", [f"{VID},1,4,0.5,0.5"])
    p = params(csv, server.url + "/{youtube_id}.mp4")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"source": "avspeech", "avspeech": p.model_dump()}}))
    out, work = tmp_path / "raw", tmp_path / "interim"
    argv = ["--params", str(tmp_path / "params.yaml"), "--out", str(out), "--work", str(work)]
    download.main(argv)
    first = pd.read_csv(out / "manifest.csv")
    assert first["clip"].tolist() == [f"clips/yt{VID}_1000_4000.mp4"] and (out / first["clip"].iloc[0]).is_file()
    assert (work / "ledger.sqlite").is_file() and not (out / "ledger.sqlite").exists()
    shutil.rmtree(out)  # what dvc repro does to a stage's outputs
    before = len(server.requests)
    download.main(argv)
    assert len(server.requests) == before and (out / first["clip"].iloc[0]).is_file()

"""The `local` source: media already on disk (or under `s3://`), described three ways.

- `manifest`: a CSV with `clip` and `speaker` columns (optional: `sample_id`, `image`, `face_x`, `face_y`,
  `gender`); relative paths are relative to the CSV's folder. `../shared/data/realsample/manifest.csv` is one.
- `folder`: talking-face videos; the first sub-folder below the root names the speaker (VoxCeleb2's
  `<id>/<video>/<n>.mp4` layout); a video directly in the root is its own speaker.
- `voxceleb`: VoxCeleb audio (`<id>/<video>/<n>.wav|m4a`) joined by identity with VGGFace photos
  (`<VGGFace name or id>/<n>.jpg`) through `vox1_meta.csv`/`vox2_meta.csv`; each utterance gets one photo of its
  speaker, chosen round-robin so that photos are spread over utterances.

With `copy_clips` the media is copied under the output folder, so DVC versions exactly what was trained on; without
it the manifest names the files where they are (large corpora, or `s3://` URIs, which are never copied here).

Media must lie under the corpus's own folder (the manifest's, `folder`, or the VoxCeleb and VGGFace roots), symlinks
resolved, or under one of `allowed_roots`: a manifest row `../../../../etc/passwd` would otherwise be copied under
data/raw and uploaded by `dvc push`. A manifest naming any such path fails as a whole, listing the rows, as a
manifest with a row missing its clip does: the manifest is wrong, not one clip.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from s2f.config import LocalSourceParams
from s2f.partitions import Partition
from s2f.sources.ids import safe_id

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".mpg", ".mpeg", ".m4v"}
AUDIO_SUFFIXES = {".wav", ".m4a", ".flac", ".mp3", ".ogg"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def fetch_local(params: LocalSourceParams, out_dir: Path, partition: Partition | None = None) -> pd.DataFrame:
    """The corpus's clip manifest, its media checked to lie where the corpus is, then copied or referenced;
    with a `partition`, only its rows (row r in partition r mod P), indexed by their rows in the whole corpus."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest, base, homes, where = _read_corpus(params)
    if partition is not None:
        manifest = manifest.reset_index(drop=True)
        manifest = manifest[[partition.owns(r) for r in range(len(manifest))]]
    refuse_escapes(manifest, base, [*homes, *map(Path, params.allowed_roots)], where)
    return _place(manifest, base, out_dir, params.copy_clips)


def _read_corpus(params: LocalSourceParams) -> tuple[pd.DataFrame, Path, list[Path], str]:
    """(manifest, the folder relative paths start from, the corpus's own folders, what to name in errors)."""
    if params.kind == "manifest":
        base = Path(_required(params.manifest, "manifest")).parent
        return from_manifest(params.manifest), base, [base], params.manifest
    if params.kind == "folder":
        folder = Path(_required(params.folder, "folder"))
        return from_folder(folder), folder, [folder], params.folder
    audio = Path(_required(params.voxceleb_audio, "voxceleb_audio"))
    images = Path(_required(params.vggface_images, "vggface_images"))
    manifest = from_voxceleb(audio, images, Path(_required(params.voxceleb_meta, "voxceleb_meta")))
    return manifest, Path("/"), [audio, images], params.voxceleb_audio


def _required(value: str | None, key: str) -> str:
    if not value:
        raise ValueError(f"data.local.{key} is required for this kind of local source")
    return value


def read_table(path: Path | str) -> pd.DataFrame:
    """A CSV whose delimiter (comma or tab), BOM and padded cells vary between corpora, as stripped strings.

    Object columns, not pandas' Arrow strings: a file name that is not valid UTF-8 must survive as Python's
    surrogate escapes (Arrow refuses them).
    """
    table = pd.read_csv(path, sep=None, engine="python", dtype=object, encoding="utf-8-sig",
                        encoding_errors="surrogateescape", skipinitialspace=True)
    table.columns = [c.strip() for c in table.columns]
    return table.apply(lambda col: col.str.strip())


def from_manifest(path: Path | str) -> pd.DataFrame:
    if not Path(path).is_file():
        raise ValueError(f"{path}: clip manifest not found")
    table = read_table(path)
    missing = {"clip", "speaker"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: the manifest needs columns clip and speaker; missing {sorted(missing)}")
    empty = table["clip"].isna() | table["speaker"].isna()
    if empty.any():
        raise ValueError(f"{path}: rows {list(table.index[empty][:5])} have no clip or no speaker")
    if "sample_id" not in table.columns:  # every path part: VoxCeleb's <id>/<video>/00001.mp4 repeats the stem
        table["sample_id"] = [safe_id("__".join(Path(c).with_suffix("").parts).lstrip("_.")) for c in table["clip"]]
    for col in ("face_x", "face_y"):
        if col in table.columns:
            table[col] = pd.to_numeric(table[col], errors="coerce")
    keep = [c for c in ("sample_id", "clip", "speaker", "image", "face_x", "face_y", "gender") if c in table.columns]
    return _unique(table[keep], path)


def from_folder(root: Path) -> pd.DataFrame:
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder of videos")
    rows = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()):
        rel = path.relative_to(root)
        speaker = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        rows.append({"sample_id": safe_id("__".join(rel.with_suffix("").parts)), "clip": str(rel),
                     "speaker": safe_id(speaker)})
    if not rows:
        raise ValueError(f"{root}: no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return _unique(pd.DataFrame(rows, dtype=object), root)  # object: non-UTF-8 names survive (see read_table)


def voxceleb_identities(meta_csv: Path) -> pd.DataFrame:
    """VoxCeleb id → VGGFace identity (and gender) from either VoxCeleb release's metadata file."""
    meta = read_table(meta_csv)
    vox = next((c for c in meta.columns if c.startswith("VoxCeleb")), None)
    face = next((c for c in meta.columns if c.startswith("VGGFace")), None)
    if vox is None or face is None:
        raise ValueError(f"{meta_csv}: expected 'VoxCeleb… ID' and 'VGGFace… ID' columns, found {list(meta.columns)}")
    gender = meta["Gender"] if "Gender" in meta.columns else None
    return pd.DataFrame({"speaker": meta[vox], "face_id": meta[face], "gender": gender})


def from_voxceleb(audio_root: Path, image_root: Path, meta_csv: Path) -> pd.DataFrame:
    for path in (audio_root, image_root, meta_csv):
        if not path.exists():
            raise ValueError(f"{path}: not found")
    ids = voxceleb_identities(meta_csv).dropna(subset=["face_id"]).drop_duplicates("speaker").set_index("speaker")
    rows, unmatched = [], set()
    for speaker_dir in sorted(p for p in audio_root.iterdir() if p.is_dir()):
        speaker = speaker_dir.name
        photos = _files(image_root / ids.at[speaker, "face_id"], IMAGE_SUFFIXES) if speaker in ids.index else []
        if not photos:
            unmatched.add(speaker)
            continue
        for n, audio in enumerate(_files(speaker_dir, AUDIO_SUFFIXES)):
            rel = audio.relative_to(audio_root)
            rows.append({"sample_id": safe_id("__".join(rel.with_suffix("").parts)), "clip": str(audio.resolve()),
                         "speaker": speaker, "image": str(photos[n % len(photos)].resolve()),
                         "gender": ids.at[speaker, "gender"]})
    if not rows:
        raise ValueError(f"{audio_root}: no utterance has a matching photo folder under {image_root} "
                         f"(identities without photos: {sorted(unmatched)[:5]})")
    if unmatched:
        print(f"local: {len(unmatched)} VoxCeleb identities have no photos and were skipped: {sorted(unmatched)[:5]}")
    return _unique(pd.DataFrame(rows, dtype=object), audio_root)


def _files(folder: Path, suffixes: set[str]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.is_file())


def _unique(table: pd.DataFrame, where: Path | str) -> pd.DataFrame:
    dupes = table["sample_id"][table["sample_id"].duplicated()].tolist()
    if dupes:
        raise ValueError(f"{where}: sample ids must be unique; repeated: {dupes[:5]}")
    return table.reset_index(drop=True)


def refuse_escapes(manifest: pd.DataFrame, base: Path, allowed: list[Path], where: Path | str) -> None:
    """A ValueError listing the rows whose clip or image resolves (symlinks followed) outside every `allowed`
    folder; `s3://` URIs are not local paths and always pass."""
    roots = [root.resolve() for root in allowed]
    escapes = []
    for col in [c for c in ("clip", "image") if c in manifest.columns]:
        for row, value in manifest[col].items():
            target = _local_target(value, base)
            if target is not None and not any(target.is_relative_to(root) for root in roots):
                escapes.append(f"row {row} {col} {value!r} → {target}")
    if escapes:
        raise ValueError(f"{where}: {len(escapes)} media paths resolve outside {', '.join(map(str, roots))} "
                         f"(add their folder to data.local.allowed_roots, or s2f ingest --allow-root): "
                         + "; ".join(escapes[:5]) + ("; …" if len(escapes) > 5 else ""))


def _local_target(value: object, base: Path) -> Path | None:
    """Where a manifest entry really is on this machine; None for an s3:// URI (or an empty cell)."""
    if not isinstance(value, str) or value.startswith("s3://"):
        return None
    return (base / value).resolve()


def _place(manifest: pd.DataFrame, base: Path, out_dir: Path, copy: bool) -> pd.DataFrame:
    """Copy the media under `out_dir/clips` (copy=True) or point at it with absolute paths; s3:// stays a URI."""
    manifest = manifest.copy()
    for col in [c for c in ("clip", "image") if c in manifest.columns]:
        manifest[col] = [_place_one(v, base, out_dir, copy) if isinstance(v, str) else v for v in manifest[col]]
    return manifest


def _place_one(value: str, base: Path, out_dir: Path, copy: bool) -> str:
    if value.startswith("s3://"):
        return value
    src = (base / value).resolve()
    if not copy:
        return str(src)
    inside = not Path(value).is_absolute() and ".." not in Path(value).parts
    rel = Path(value) if inside else Path("clips") / Path(*src.parts[1:])
    dst = out_dir / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_file():
        shutil.copy2(src, dst)
    return str(rel)

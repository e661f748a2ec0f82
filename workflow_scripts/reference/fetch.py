"""The real reference data: a local path, or a download from ``url`` checked by sha256.

``reference.<set>.source`` in the config says which: ``path`` (the file or folder must be
there; the error says what to fetch and from where), ``url`` (the workflow downloads it to
``path``; a ``.tar``/``.tar.gz``/``.tgz`` archive is unpacked into the ``path`` folder) or
``standin`` (the demo's offline stand-ins). Any URL urllib opens works, ``file://`` included.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

# What to fetch when a data set is missing (shown in the error message).
PUBLIC_SOURCES = {
    "mptrj": (
        "MPtrj_2022.9_full.json (11.3 GB) from https://figshare.com/articles/dataset/23713842 "
        "(direct file: https://figshare.com/ndownloader/files/41619375)"
    ),
    "omat24": (
        "OMat24 .aselmdb shards: a val (or train) sub-dataset archive listed in fairchem's "
        "OMat24 documentation (github.com/FAIR-Chem/fairchem, docs/core/datasets/omat24.md), e.g. "
        "https://dl.fbaipublicfiles.com/opencatalystproject/data/omat/241220/omat/val/"
        "rattled-300-subsampled.tar.gz, unpacked into one folder"
    ),
}
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")


class MissingDataError(FileNotFoundError):
    """A reference data set is not where the config says; the message says what to do."""


def missing_data_message(dataset: str, path: str | Path, config_key: str) -> str:
    what = PUBLIC_SOURCES.get(dataset, dataset)
    return (
        f"{dataset}: nothing at {path} ({config_key}.path). Fetch {what} and put it at {path}, "
        f"or set {config_key}.source: url (with {config_key}.url and {config_key}.sha256) so "
        f"the workflow downloads it, or {config_key}.source: standin for the offline stand-in."
    )


def require_local(dataset: str, path: str | Path, config_key: str) -> Path:
    """``path`` if it exists, else :class:`MissingDataError` naming what to fetch."""
    path = Path(path)
    if not path.exists():
        raise MissingDataError(missing_data_message(dataset, path, config_key))
    return path


def download(url: str, dest: Path, sha256: str | None = None, progress: bool = True) -> Path:
    """``url`` -> ``dest`` through a temporary file; a checksum mismatch deletes it."""
    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    with urllib.request.urlopen(url) as response, open(partial, "wb") as handle:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress
        ) as bar:
            while chunk := response.read(1 << 20):
                handle.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    actual = digest.hexdigest()
    if sha256 and actual != sha256.lower():
        partial.unlink()
        raise ValueError(f"{url}: sha256 {actual} does not match the expected {sha256}")
    if not sha256:
        print(f"warning: no sha256 given for {url}; it is {actual} (put it in the config)")
    partial.replace(dest)
    return dest


def fetch(url: str, dest: Path, sha256: str | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest``; an archive URL is unpacked into the folder ``dest``."""
    dest = Path(dest)
    if not url.endswith(ARCHIVE_SUFFIXES):
        return download(url, dest, sha256, progress)
    archive = dest.with_name(dest.name + ".archive")
    download(url, archive, sha256, progress)
    unpacking = dest.with_name(dest.name + ".unpacking")
    shutil.rmtree(unpacking, ignore_errors=True)
    with tarfile.open(archive) as tar:
        tar.extractall(unpacking, filter="data")
    archive.unlink()
    shutil.rmtree(dest, ignore_errors=True)
    unpacking.replace(dest)
    return dest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.reference.fetch")
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", type=Path, required=True, help="file, or folder for archives")
    parser.add_argument("--sha256", default=None)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    path = fetch(args.url, args.out, args.sha256 or None, progress=not args.no_progress)
    print(f"{args.url} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reference data sources: local paths, file:// downloads with sha256, archives, messages."""

import hashlib
import tarfile

import pytest

from workflow_scripts.reference import fetch, plan


def test_download_checks_sha256(tmp_path):
    source = tmp_path / "MPtrj.json"
    source.write_text('{"mp-1": {}}')
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    dest = tmp_path / "data" / "MPtrj_2022.9_full.json"
    assert fetch.fetch(source.as_uri(), dest, digest, progress=False) == dest
    assert dest.read_text() == '{"mp-1": {}}'
    wrong = tmp_path / "data" / "wrong.json"
    with pytest.raises(ValueError, match="does not match"):
        fetch.fetch(source.as_uri(), wrong, "0" * 64, progress=False)
    assert not wrong.exists() and not wrong.with_name("wrong.json.part").exists()


def test_download_without_checksum_prints_it(tmp_path, capsys):
    source = tmp_path / "a.json"
    source.write_text("{}")
    assert (
        fetch.main(["--url", source.as_uri(), "--out", str(tmp_path / "b.json"), "--no-progress"])
        == 0
    )
    assert hashlib.sha256(b"{}").hexdigest() in capsys.readouterr().out


def test_archive_is_unpacked_into_the_folder(tmp_path):
    content = tmp_path / "content" / "rattled-300"
    content.mkdir(parents=True)
    (content / "data.0000.aselmdb").write_bytes(b"lmdb")
    archive = tmp_path / "rattled-300.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(content, arcname="rattled-300")
    dest = tmp_path / "data" / "omat24" / "val"
    fetch.fetch(
        archive.as_uri(), dest, hashlib.sha256(archive.read_bytes()).hexdigest(), progress=False
    )
    assert (dest / "rattled-300" / "data.0000.aselmdb").read_bytes() == b"lmdb"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["val"]


def test_missing_local_data_names_what_to_fetch(tmp_path):
    with pytest.raises(fetch.MissingDataError) as error:
        fetch.require_local("mptrj", tmp_path / "MPtrj.json", "reference.mptrj")
    message = str(error.value)
    assert "figshare.com/ndownloader/files/41619375" in message
    assert "reference.mptrj.source: url" in message and str(tmp_path / "MPtrj.json") in message
    config = {
        "reference": {"mptrj": {"name": "MPtrj", "source": "path", "path": str(tmp_path / "x")}}
    }
    with pytest.raises(fetch.MissingDataError, match="MPtrj_2022.9_full.json"):
        plan.source(config, "mptrj")
    config["reference"]["mptrj"]["source"] = "standin"
    assert plan.source(config, "mptrj") == "results/standins/MPtrj/MPtrj.json"

"""Offline stand-ins: the demo chemistry, MPtrj's exact JSON layout, an OMat24-style .aselmdb,
and CHGNet labels that survive the round trip through the real ingestion (unit and sign)."""

import json

import ase.io
import numpy as np
import pytest

from workflow_scripts.reference import mptrj, omat24, standins

DEMO_ELEMENTS = {"Sr", "Ti", "O", "Ba", "Zr", "Cs", "Pb", "Br", "Rb", "Sn"}
MPTRJ_KEYS = [
    "structure",
    "uncorrected_total_energy",
    "corrected_total_energy",
    "energy_per_atom",
    "ef_per_atom",
    "e_per_atom_relaxed",
    "ef_per_atom_relaxed",
    "force",
    "stress",
    "magmom",
    "bandgap",
    "mp_id",
]


def fake_labels(frames):
    """Deterministic labels standing in for CHGNet (fast)."""
    for k, atoms in enumerate(frames):
        n = len(atoms)
        atoms.info["REF_energy"] = -5.0 * n - 0.01 * k
        atoms.info["REF_stress"] = np.array([1, 2, 3, 0.4, 0.5, 0.6]) * 1e-3 * (k - 5)
        atoms.arrays["REF_forces"] = np.arange(3 * n).reshape(n, 3) * 0.001 * (k + 1)
        atoms.arrays["REF_magmom"] = np.full(n, 0.01 * k)
    return frames


def test_prototypes_are_the_demo_chemistry():
    cells = standins.prototypes()
    assert len(cells) == len({name for name, _ in cells}) == 24
    # no doped supercells: MPtrj has none of the Perovs-Dopants structures
    assert all(len(atoms) <= 6 for _, atoms in cells)
    for name, atoms in cells:
        assert set(atoms.get_chemical_symbols()) <= DEMO_ELEMENTS, name
        assert 1 <= len(atoms) <= 12 and atoms.pbc.all() and atoms.get_volume() > 0
    assert {s for _, a in cells for s in a.get_chemical_symbols()} == DEMO_ELEMENTS
    assert standins.standin_elements() == sorted(DEMO_ELEMENTS)


def test_build_frames():
    frames = standins.build_frames(31, 3, standins.MPTRJ_FRAMES, 0, True, "mptrj-stand-in")
    assert len(frames) == 31
    ids = [a.info["material_id"] for a in frames]
    assert all("stand-in" in i for i in ids) and len(set(ids)) == 11
    assert [a.info["frame_id"] for a in frames[:3]] == [f"{ids[0]}-0-{k}" for k in range(3)]
    ideal, moved = frames[0], frames[1]
    assert ideal.info["ideal"] and not moved.info["ideal"]
    assert np.abs(moved.positions - ideal.positions).max() > 0.01
    again = standins.build_frames(31, 3, standins.MPTRJ_FRAMES, 0, True, "mptrj-stand-in")
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(frames, again, strict=True))
    omat = standins.build_frames(10, 2, standins.OMAT24_FRAMES, 1, False, "omat24-stand-in")
    assert not any(a.info["ideal"] for a in omat)


def test_mptrj_layout_and_round_trip_through_ingestion(tmp_path):
    frames = fake_labels(
        standins.build_frames(12, 3, standins.MPTRJ_FRAMES, 0, True, "mptrj-stand-in")
    )
    document = standins.mptrj_document(frames)
    first = document["mptrj-stand-in-00000"]["mptrj-stand-in-00000-0-0"]
    assert list(first) == MPTRJ_KEYS
    assert first["stress"][0][0] == pytest.approx(
        -10 * 1e-3 * (0 - 5) * 160.21766208
    )  # kBar, VASP sign
    assert first["e_per_atom_relaxed"] == pytest.approx(first["energy_per_atom"])
    assert first["structure"]["sites"][0]["properties"] == {"magmom": 0.0}
    source = tmp_path / "MPtrj-stand-in.json"
    source.write_text(json.dumps(document))
    out = tmp_path / "all.extxyz"
    mptrj.convert_all(source, out, "MPtrj-stand-in", progress=False)
    ingested = ase.io.read(out, index=":")
    assert len(ingested) == 12
    for original, got in zip(frames, ingested, strict=True):
        assert got.info["REF_energy"] == pytest.approx(original.info["REF_energy"], abs=1e-12)
        np.testing.assert_allclose(got.info["REF_stress"], original.info["REF_stress"], atol=1e-15)
        np.testing.assert_allclose(
            got.arrays["REF_forces"], original.arrays["REF_forces"], atol=1e-12
        )
        np.testing.assert_allclose(got.positions, original.positions, atol=1e-9)
        assert got.get_chemical_symbols() == original.get_chemical_symbols()


def test_aselmdb_round_trip(tmp_path):
    frames = fake_labels(
        standins.build_frames(10, 2, standins.OMAT24_FRAMES, 1, False, "omat24-stand-in")
    )
    db = tmp_path / "OMat24-stand-in" / "OMat24-stand-in.aselmdb"
    standins.write_aselmdb(frames, db)
    omat24.ingest(
        db, tmp_path / "train.extxyz", tmp_path / "test.extxyz", "OMat24-stand-in", 6, 4, 0
    )
    got = {a.info["sid"]: a for a in ase.io.read(tmp_path / "train.extxyz", index=":")}
    assert len(got) == 6
    for original in frames:
        if original.info["frame_id"] in got:
            frame = got[original.info["frame_id"]]
            assert frame.info["REF_energy"] == original.info["REF_energy"]
            np.testing.assert_allclose(frame.info["REF_stress"], original.info["REF_stress"])
            np.testing.assert_allclose(frame.arrays["REF_forces"], original.arrays["REF_forces"])


def test_chgnet_labels_survive_the_round_trip(tmp_path):
    """CHGNet loads offline; after MPtrj JSON (kBar, VASP sign) and ingestion, REF_stress is
    CHGNet's own ASE-convention stress again (a sign error would flip it)."""
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    frames = standins.build_frames(3, 3, standins.MPTRJ_FRAMES, 2, True, "mptrj-stand-in")
    standins.label_frames(frames, batch_size=3)
    source = tmp_path / "stand-in.json"
    source.write_text(json.dumps(standins.mptrj_document(frames)))
    out = tmp_path / "all.extxyz"
    mptrj.convert_all(source, out, "MPtrj-stand-in", progress=False)
    calculator = CHGNetCalculator(CHGNet.load(verbose=False), use_device="cpu")
    for original, got in zip(frames, ase.io.read(out, index=":"), strict=True):
        atoms = original.copy()
        atoms.calc = calculator
        stress = atoms.get_stress()  # ASE: eV/Å³, positive = tensile
        assert np.abs(stress).max() > 1e-3  # strained cells: a sign error would show
        np.testing.assert_allclose(got.info["REF_stress"], stress, rtol=1e-4, atol=1e-6)
        assert got.info["REF_energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-4)
        np.testing.assert_allclose(got.arrays["REF_forces"], atoms.get_forces(), atol=1e-4)


def test_cli_build_json_and_db(tmp_path):
    settings = tmp_path / "reference.json"
    standin = {"structures": 12, "frames_per_material": 3, "seed": 0, "labeller": "chgnet"}
    settings.write_text(json.dumps({"mptrj": {"standin": standin}, "omat24": {"standin": standin}}))
    structures = tmp_path / "structures.extxyz"
    assert (
        standins.main(
            ["build", "--kind", "mptrj", "--settings", str(settings), "--out", str(structures)]
        )
        == 0
    )
    labelled = tmp_path / "labelled.extxyz"
    ase.io.write(labelled, fake_labels(ase.io.read(structures, index=":")), format="extxyz")
    out = tmp_path / "MPtrj-stand-in.json"
    assert standins.main(["mptrj-json", "--labelled", str(labelled), "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())) == 4
    db = tmp_path / "x.aselmdb"
    assert standins.main(["omat24-db", "--labelled", str(labelled), "--out", str(db)]) == 0
    assert omat24.ingest(db, tmp_path / "a.extxyz", tmp_path / "b.extxyz", "x", 2, 2, 0)[0] == 12

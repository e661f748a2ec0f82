"""MPtrj ingestion: labels, units and signs against hand-computed values; streaming across
block boundaries; the test/pool split by material; the CP2K subset."""

import json

import ase.io
import ase.units
import numpy as np
import pytest

from workflow_scripts.reference import mptrj, mptrj_frames, mptrj_stream, mptrj_subset
from workflow_scripts.reference.extxyz import iter_raw_frames

# MPtrj stress is VASP's, in kBar, positive = compressive. 10 kBar = 1 GPa
# = 1e9 J/m³ / 1.6021766208e-19 J/eV / 1e30 Å³/m³ = 0.006241509125883258 eV/Å³
# (CODATA 2014, as ase.units). ASE's sign is the opposite.
ONE_GPA_EV_A3 = 0.006241509125883258
STRESS_KBAR = [[10.0, 1.0, 2.0], [1.0, 20.0, 3.0], [2.0, 3.0, -30.0]]
# Voigt xx yy zz yz xz xy, ASE sign, eV/Å³: -(kBar / 10) GPa
STRESS_ASE = [
    -1.0 * ONE_GPA_EV_A3,
    -2.0 * ONE_GPA_EV_A3,
    3.0 * ONE_GPA_EV_A3,
    -0.3 * ONE_GPA_EV_A3,
    -0.2 * ONE_GPA_EV_A3,
    -0.1 * ONE_GPA_EV_A3,
]


def site(element, abc, lattice, magmom=0.0, with_xyz=True):
    entry = {"species": [{"element": element, "occu": 1}], "abc": list(abc)}
    if with_xyz:
        entry["xyz"] = (np.asarray(abc) @ np.asarray(lattice)).tolist()
    entry.update(label=element, properties={"magmom": magmom})
    return entry


def structure(elements, fracs, lattice, with_xyz=True):
    return {
        "@module": "pymatgen.core.structure",
        "@class": "Structure",
        "charge": 0,
        "lattice": {
            "matrix": lattice,
            "pbc": [True, True, True],
            "a": 1.0,
            "b": 1.0,
            "c": 1.0,
            "alpha": 90.0,
            "beta": 90.0,
            "gamma": 90.0,
            "volume": 1.0,
        },
        "properties": {},
        "sites": [
            site(e, f, lattice, with_xyz=with_xyz) for e, f in zip(elements, fracs, strict=True)
        ],
    }


def frame(mp_id, elements, fracs, lattice, energy, forces, stress=STRESS_KBAR, **overrides):
    """One frame with MPtrj's keys in MPtrj's order."""
    n = len(elements)
    record = {
        "structure": structure(elements, fracs, lattice, overrides.pop("with_xyz", True)),
        "uncorrected_total_energy": energy,
        "corrected_total_energy": energy - 1.5,  # MP2020 corrections: must not be the label
        "energy_per_atom": (energy - 1.5) / n,
        "ef_per_atom": -1.0,
        "e_per_atom_relaxed": energy / n,
        "ef_per_atom_relaxed": -1.0,
        "force": forces,
        "stress": stress,
        "magmom": [0.0] * n,
        "bandgap": 1.2,
        "mp_id": mp_id,
    }
    record.update(overrides)
    return record


LATTICE = [[3.9, 0.0, 0.0], [0.1, 4.0, 0.0], [0.0, 0.2, 4.1]]
CSBR = (["Cs", "Br"], [[0, 0, 0], [0.5, 0.5, 0.5]])
SRTIO3 = (
    ["Sr", "Ti", "O", "O", "O"],
    [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
)


def document():
    forces = [[0.01 * i, -0.02 * i, 0.5 - i] for i in range(5)]
    return {
        "mp-1": {
            "mp-1-0-0": frame("mp-1", *SRTIO3, LATTICE, -39.25, forces),
            "mp-1-0-1": frame("mp-1", *SRTIO3, LATTICE, -39.5, forces, stress=None),
        },
        "mp-2": {
            "mp-2-0-0": frame("mp-2", *CSBR, LATTICE, -7.0, [[0.1, 0.2, 0.3], [-0.1, -0.2, -0.3]]),
        },
    }


def write(path, doc, **dump_args):
    path.write_text(json.dumps(doc, **dump_args))
    return path


def convert(path, **kwargs):
    out = path.with_suffix(".extxyz")
    stats, offsets, materials = mptrj.convert_all(path, out, "MPtrj", progress=False, **kwargs)
    return stats, ase.io.read(out, index=":", format="extxyz"), list(materials)


def test_labels_units_and_signs_against_hand_computed_values(tmp_path):
    stats, frames, materials = convert(write(tmp_path / "mptrj.json", document()))
    assert stats.frames_read == stats.frames_kept == 3 and not stats.skipped
    assert materials == [0, 0, 1]
    first = frames[0]
    assert first.get_chemical_symbols() == ["Sr", "Ti", "O", "O", "O"]
    assert first.info["REF_energy"] == -39.25  # uncorrected_total_energy, not the corrected one
    np.testing.assert_allclose(first.info["REF_stress"], STRESS_ASE, rtol=0, atol=1e-15)
    np.testing.assert_allclose(  # the same from ASE's unit constant
        first.info["REF_stress"],
        -0.1 * ase.units.GPa * np.array([10, 20, -30, 3, 2, 1]),
        rtol=1e-9,
    )
    np.testing.assert_allclose(first.arrays["REF_forces"][4], [0.04, -0.08, -3.5], atol=1e-15)
    np.testing.assert_allclose(first.cell.array, LATTICE, atol=1e-15)
    np.testing.assert_allclose(first.positions[1], np.array([0.5, 0.5, 0.5]) @ np.array(LATTICE))
    assert first.pbc.all()
    assert first.info["mp_id"] == "mp-1" and first.info["frame_id"] == "mp-1-0-0"
    assert first.info["config_type"] == first.info["dataset"] == "MPtrj"
    assert "REF_stress" not in frames[1].info  # stress null -> no stress label
    assert frames[2].info["REF_energy"] == -7.0
    assert set(first.info) == {
        "REF_energy",
        "REF_stress",
        "mp_id",
        "frame_id",
        "config_type",
        "dataset",
    }


def test_fast_path_and_full_parse_agree(tmp_path):
    doc = document()
    buffer = json.dumps(doc["mp-1"]["mp-1-0-0"]).encode()
    fast, elements = mptrj_frames.frame_fast(buffer, 0, len(buffer), "mp-1", "mp-1-0-0", "MPtrj")
    parsed, _ = mptrj_frames.frame_parsed(doc["mp-1"]["mp-1-0-0"], "mp-1", "mp-1-0-0", "MPtrj")
    assert set(elements) == {b"Sr", b"Ti", b"O"}
    (tmp_path / "fast.extxyz").write_bytes(fast)
    (tmp_path / "parsed.extxyz").write_bytes(parsed)
    a, b = ase.io.read(tmp_path / "fast.extxyz"), ase.io.read(tmp_path / "parsed.extxyz")
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.arrays["REF_forces"], b.arrays["REF_forces"])
    np.testing.assert_array_equal(a.info["REF_stress"], b.info["REF_stress"])
    assert a.info["REF_energy"] == b.info["REF_energy"]
    # no cartesian coordinates: the fast path declines, the full parse uses abc @ lattice
    no_xyz = frame("mp-1", *SRTIO3, LATTICE, -39.25, [[0, 0, 0]] * 5, with_xyz=False)
    text = json.dumps(no_xyz).encode()
    assert mptrj_frames.frame_fast(text, 0, len(text), "mp-1", "x", "MPtrj") is None
    converted, _ = mptrj_frames.convert_frame(text, 0, len(text), "mp-1", "x", "MPtrj")
    (tmp_path / "abc.extxyz").write_bytes(converted)
    np.testing.assert_allclose(
        ase.io.read(tmp_path / "abc.extxyz").positions, a.positions, atol=1e-12
    )


def test_unusable_frames_are_skipped_and_counted(tmp_path):
    doc = document()
    doc["mp-1"]["mp-1-0-1"]["uncorrected_total_energy"] = None
    disordered = doc["mp-2"]["mp-2-0-0"]["structure"]["sites"][0]
    disordered["species"] = [{"element": "Cs", "occu": 0.5}, {"element": "Rb", "occu": 0.5}]
    # 3 atoms, no forces: the 3x3 stress that follows must not be taken for forces
    ba_o2 = (["Ba", "O", "O"], [[0, 0, 0], [0.25, 0.25, 0.25], [0.75, 0.75, 0.75]])
    doc["mp-3"] = {"mp-3-0-0": frame("mp-3", *ba_o2, LATTICE, -20.0, [])}
    stats, frames, _ = convert(write(tmp_path / "mptrj.json", doc))
    assert stats.frames_kept == 1 and len(frames) == 1
    assert stats.skipped == {
        "no uncorrected_total_energy": 1,
        "disordered site": 1,
        "forces missing or not one per atom": 1,
    }


def test_element_filter(tmp_path):
    stats, frames, _ = convert(write(tmp_path / "m.json", document()), elements={"Cs", "Br", "Rb"})
    assert [f.get_chemical_formula() for f in frames] == ["BrCs"]
    assert stats.skipped == {"element filter": 2}


def test_streaming_is_independent_of_block_size_and_layout(tmp_path):
    doc = document()
    # keys with braces and escaped quotes must not confuse the brace scanner
    odd = frame('mp-"3"{x}', *CSBR, LATTICE, -3.0, [[0, 0, 1], [0, 0, -1]])
    doc['mp-"3"{x}'] = {'mp-"3"-0-0}': odd}
    compact = write(tmp_path / "compact.json", doc, separators=(",", ":"))
    indented = write(tmp_path / "indented.json", doc, indent=2)
    reference = [(m.mp_id, [f[0] for f in m.frames]) for m in mptrj_stream.iter_materials(compact)]
    assert reference[-1] == ('mp-"3"{x}', ['mp-"3"-0-0}'])
    for path in (compact, indented):
        for block in (7, 64, 1000, 1 << 20):
            got = [
                (m.mp_id, [f[0] for f in m.frames])
                for m in mptrj_stream.iter_materials(path, block)
            ]
            assert got == reference
    _, a, _ = convert(compact)
    _, b, _ = convert(indented)
    assert len(a) == len(b) == 4
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.positions, y.positions)
        assert x.info["REF_energy"] == y.info["REF_energy"]


def test_truncated_file_raises(tmp_path):
    text = json.dumps(document())
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="truncated"):
        list(mptrj_stream.iter_materials(tmp_path / "cut.json", block_bytes=256))


def _many_materials(n_materials=40, frames_each=(1, 2, 3, 4)):
    rng = np.random.default_rng(0)
    doc = {}
    for m in range(n_materials):
        mp_id = f"mp-{100 + m}"
        doc[mp_id] = {}
        for k in range(frames_each[m % len(frames_each)]):
            forces = rng.normal(size=(5, 3)).tolist()
            doc[mp_id][f"{mp_id}-0-{k}"] = frame(
                mp_id, *SRTIO3, LATTICE, -40.0 - m - 0.1 * k, forces
            )
    return doc


def test_test_subset_is_split_by_material_from_the_pool(tmp_path):
    doc = _many_materials()
    source = write(tmp_path / "mptrj.json", doc)
    runs = {}
    for tag, seed in (("a", 0), ("b", 0), ("c", 1)):
        test, pool = tmp_path / tag / "test.extxyz", tmp_path / tag / "pool.extxyz"
        stats = mptrj.ingest(source, test, pool, "MPtrj", test_size=12, seed=seed, progress=False)
        runs[tag] = (test.read_bytes(), pool.read_bytes(), stats)
    test_frames = ase.io.read(tmp_path / "a" / "test.extxyz", index=":")
    pool_frames = ase.io.read(tmp_path / "a" / "pool.extxyz", index=":")
    stats = runs["a"][2]
    total = sum(len(v) for v in doc.values())
    assert len(test_frames) == stats.test_frames == 12
    test_materials = {f.info["mp_id"] for f in test_frames}
    pool_materials = {f.info["mp_id"] for f in pool_frames}
    assert not test_materials & pool_materials
    assert stats.test_materials == len(test_materials)
    held_out = sum(len(doc[m]) for m in test_materials)
    assert len(pool_frames) == stats.pool_frames == total - held_out
    assert pool_materials == set(doc) - test_materials
    # frames are unchanged copies of the converted ones
    for f in test_frames + pool_frames:
        source_frame = doc[f.info["mp_id"]][f.info["frame_id"]]
        assert f.info["REF_energy"] == source_frame["uncorrected_total_energy"]
    assert runs["a"][:2] == runs["b"][:2]  # same seed, same files
    assert runs["a"][0] != runs["c"][0]  # another seed, another test set
    assert not (tmp_path / "a" / ".pool.extxyz.all-frames.tmp").exists()


def test_test_size_larger_than_the_data_is_an_error(tmp_path):
    source = write(tmp_path / "m.json", document())
    with pytest.raises(ValueError, match="test_size 5 > 3"):
        mptrj.ingest(
            source, tmp_path / "t.extxyz", tmp_path / "p.extxyz", "MPtrj", 5, 0, progress=False
        )


def test_cp2k_subset(tmp_path):
    doc = _many_materials()
    doc["mp-999"] = {"mp-999-0-0": frame("mp-999", *CSBR, LATTICE, -7.0, [[0, 0, 0]] * 2)}
    source = write(tmp_path / "m.json", doc)
    test, pool = tmp_path / "test.extxyz", tmp_path / "pool.extxyz"
    mptrj.ingest(source, test, pool, "MPtrj", test_size=5, seed=0, progress=False)
    out = tmp_path / "cp2k_subset_structures.extxyz"
    chosen = mptrj_subset.select_cp2k_subset(pool, out, size=6, seed=0, max_atoms=10)
    pool_texts = [f.text for f in iter_raw_frames(pool)]
    subset_texts = [f.text for f in iter_raw_frames(out)]
    assert subset_texts == [pool_texts[i] for i in chosen]  # labels kept verbatim
    assert len(set(chosen)) == 6 and chosen == sorted(chosen)
    assert chosen == mptrj_subset.select_cp2k_subset(pool, tmp_path / "again.extxyz", 6, 0, 10)
    small = mptrj_subset.select_cp2k_subset(pool, tmp_path / "small.extxyz", 1, 0, max_atoms=2)
    assert ase.io.read(tmp_path / "small.extxyz").get_chemical_formula() == "BrCs"
    assert len(small) == 1
    only = mptrj_subset.select_cp2k_subset(
        pool, tmp_path / "el.extxyz", 1, 0, elements=["Cs", "Br"]
    )
    assert only == small
    with pytest.raises(ValueError, match="eligible"):
        mptrj_subset.select_cp2k_subset(pool, tmp_path / "x.extxyz", 2, 0, max_atoms=2)


def test_cli(tmp_path):
    source = write(tmp_path / "m.json", _many_materials())
    settings = tmp_path / "reference.json"
    section = {"name": "MPtrj-stand-in", "test_size": 4, "seed": 2, "elements": None}
    section.update(cp2k_subset_size=3, cp2k_subset_max_atoms=None, cp2k_subset_elements=None)
    settings.write_text(json.dumps({"mptrj": section}))
    test, pool = tmp_path / "out" / "test.extxyz", tmp_path / "out" / "pool.extxyz"
    argv = ["ingest", "--source", str(source), "--settings", str(settings), "--test", str(test)]
    assert mptrj.main([*argv, "--pool", str(pool), "--no-progress"]) == 0
    frames = ase.io.read(test, index=":")
    assert len(frames) == 4 and {f.info["dataset"] for f in frames} == {"MPtrj-stand-in"}
    subset = tmp_path / "out" / "cp2k.extxyz"
    argv = ["cp2k-subset", "--pool", str(pool), "--settings", str(settings), "--out", str(subset)]
    assert mptrj.main(argv) == 0
    assert len(ase.io.read(subset, index=":")) == 3


def _pool_of(tmp_path, formulas):
    from ase import Atoms

    frames = []
    for k, formula in enumerate(formulas):
        atoms = Atoms(formula, positions=np.random.default_rng(k).random((len(Atoms(formula)), 3)))
        atoms.cell, atoms.pbc = [6.0, 6.0, 6.0], True
        atoms.info["REF_energy"] = -1.0 * k
        atoms.info["mp_id"] = f"mp-{k}"
        frames.append(atoms)
    path = tmp_path / "pool.extxyz"
    ase.io.write(path, frames, format="extxyz")
    return path


def test_cp2k_subset_is_stratified_so_every_dataset_element_is_determined(tmp_path):
    from collections import Counter

    from workflow_scripts.analysis.alignment_fit import fit_offsets

    # mostly SrTiO3: a random pick of 5 rarely separates Sr, Ti, O and never sees Ba often
    formulas = ["SrTiO3"] * 60 + ["SrO", "TiO2", "Ba", "BaTiO3", "Fe2O3", "FeS", "S8", "KBr"]
    pool = _pool_of(tmp_path, formulas)
    cover = ["Sr", "Ti", "O", "Ba", "Fe", "Nd"]
    report = mptrj_subset.select_cp2k_subset_report(
        pool, tmp_path / "a.extxyz", size=7, seed=3, cover_elements=cover
    )
    # Fe from FeS and S8 (no U without O or F; Fe2O3 is PBE+U in MPtrj and is no help)
    assert report.determined == ["Ba", "Fe", "O", "Sr", "Ti"]
    assert report.not_in_pool == ["Nd"] and report.not_determined == []
    assert report.stratified == 6 and len(report.chosen) == 7
    subset = ase.io.read(tmp_path / "a.extxyz", index=":")
    assert [f.info["mp_id"] for f in subset] == [f"mp-{i}" for i in report.chosen]
    compositions = [dict(Counter(f.get_chemical_symbols())) for f in subset]
    u_free = [c for c in compositions if not ({"Fe"} & set(c) and "O" in c)]
    fit = fit_offsets(u_free, [0.0] * len(u_free))
    assert all(fit.determined(el) for el in ["Sr", "Ti", "O", "Ba", "Fe"])
    # seeded and deterministic; another seed may fill differently but covers the same
    again = mptrj_subset.select_cp2k_subset(pool, tmp_path / "b.extxyz", 7, 3, cover_elements=cover)
    assert again == report.chosen
    assert (tmp_path / "a.extxyz").read_text() == (tmp_path / "b.extxyz").read_text()
    other = mptrj_subset.select_cp2k_subset_report(
        pool, tmp_path / "c.extxyz", 7, 4, cover_elements=cover
    )
    assert other.determined == report.determined
    # without the cover list the subset is the plain seeded random pick
    plain = mptrj_subset.select_cp2k_subset(pool, tmp_path / "d.extxyz", 6, 3)
    assert plain == mptrj_subset.select_cp2k_subset(
        pool, tmp_path / "e.extxyz", 6, 3, cover_elements=[]
    )


def test_cp2k_subset_too_small_to_cover_says_so(tmp_path):
    pool = _pool_of(tmp_path, ["SrTiO3"] * 10 + ["SrO", "TiO2", "Ba", "BaO"])
    report = mptrj_subset.select_cp2k_subset_report(
        pool, tmp_path / "a.extxyz", size=2, seed=0, cover_elements=["Sr", "Ti", "O", "Ba"]
    )
    assert len(report.chosen) == 2
    assert report.not_determined  # named, not silently dropped
    assert "not determined (cp2k_subset_size too small)" in report.text()


def test_cli_subset_keeps_to_the_elements_cp2k_can_compute(tmp_path, capsys):
    """The rule passes the elements with a CP2K basis and an isolated atom: a frame with Th
    (no basis in CP2K's data files) is never chosen, and the log says what the subset allows."""
    pool = _pool_of(tmp_path, ["ThO2", "SrTiO3", "ThO2", "SrO", "Th", "TiO2", "ThO2"])
    settings = tmp_path / "reference.json"
    section = {"cp2k_subset_size": 3, "seed": 0, "cp2k_subset_max_atoms": None}
    settings.write_text(json.dumps({"mptrj": {**section, "cp2k_subset_elements": None}}))
    subset = tmp_path / "cp2k.extxyz"
    argv = ["cp2k-subset", "--pool", str(pool), "--settings", str(settings), "--out", str(subset)]
    assert mptrj.main([*argv, "--allowed-elements", "O", "Sr", "Ti"]) == 0
    chosen = ase.io.read(subset, index=":")
    assert sorted(f.get_chemical_formula() for f in chosen) == ["O2Ti", "O3SrTi", "OSr"]
    assert "CP2K subset restricted to 3 elements CP2K can compute" in capsys.readouterr().out
    # four allowed frames are not enough for four places: an error, not a silent Th frame
    with pytest.raises(ValueError, match="cp2k_subset_size 4 > 3 eligible"):
        section["cp2k_subset_size"] = 4
        settings.write_text(json.dumps({"mptrj": {**section, "cp2k_subset_elements": None}}))
        mptrj.main([*argv, "--allowed-elements", "O", "Sr", "Ti"])

"""Embedding maps: the MPtrj sample, the initial structures, t-SNE/PHATE tables (Fig. 2,
Fig. 3b) on tiny data."""

import json

import ase.io
import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from threadpoolctl import threadpool_limits

from workflow_scripts.analysis import embedding_figures, embeddings, structure_sets

MODELS = {"pretrained": "found", "standard": "ft-std", "multihead": "ft-mh"}
INITIAL = "perovs_dopants_initial"
SIZES = {"mptrj_embedding_sample": 12, "omat24": 8, INITIAL: 10}
NAMES = {
    "mptrj_embedding_sample": "MPtrj-stand-in",
    "omat24": "OMat24-stand-in",
    INITIAL: "Perovs-Dopants (initial structures)",
}


@pytest.fixture(autouse=True)
def one_thread():
    with threadpool_limits(limits=1):
        yield


def _frame(index, config_type="MPtrj-stand-in"):
    atoms = Atoms("SrTiO3", cell=[3.9] * 3, pbc=True)
    atoms.positions = np.random.default_rng(index).uniform(0, 3.9, (5, 3))
    atoms.info.update(
        {"REF_energy": -40.0 - index, "config_type": config_type, "mp_id": f"mp-{index}"}
    )
    atoms.arrays["REF_forces"] = np.zeros((5, 3))
    return atoms


def test_sample_draws_distinct_pool_frames_without_isolated_atoms(tmp_path):
    pool = tmp_path / "pool.extxyz"
    frames = [_frame(i) for i in range(10)]
    isolated = Atoms("O", cell=[12] * 3, pbc=False)
    isolated.info.update({"REF_energy": -430.0, "config_type": "IsolatedAtom"})
    ase.io.write(pool, [isolated, *frames[:5], isolated, *frames[5:]], format="extxyz")
    assert len(structure_sets.frame_offsets(pool)) == 10

    out = tmp_path / "sample.extxyz"
    embeddings.main(
        ["sample", "--pool", str(pool), "--size", "4", "--seed", "3", "--out", str(out)]
    )
    sample = ase.io.read(out, index=":")
    ids = [atoms.info["mp_id"] for atoms in sample]
    assert len(ids) == len(set(ids)) == 4
    assert ids == sorted(ids, key=lambda x: int(x.split("-")[1]))  # pool order kept
    by_id = {atoms.info["mp_id"]: atoms for atoms in frames}
    for atoms in sample:
        original = by_id[atoms.info["mp_id"]]
        assert atoms.info["REF_energy"] == original.info["REF_energy"]
        np.testing.assert_allclose(atoms.positions, original.positions)

    again = tmp_path / "again.extxyz"
    structure_sets.sample_frames(pool, again, 4, 3)
    assert again.read_bytes() == out.read_bytes()
    everything = tmp_path / "all.extxyz"
    assert structure_sets.sample_frames(pool, everything, 100, 0) == 10


def _trajectory(path, steps, unconverged=()):
    frames = []
    for step in steps:
        atoms = _frame(100 * len(path.name) + step, "Perovs-Dopants")
        atoms.info.update(
            {"step": step, "scf_converged": step not in unconverged, "defect": path.stem}
        )
        frames.append(atoms)
    path.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(path, frames, format="extxyz")
    return frames


def test_initial_structures_are_the_step_0_frame_of_every_trajectory(tmp_path, caplog):
    root = tmp_path / "trajectories"
    fe = _trajectory(root / "SrTiO3" / "sub_Fe_on_B.extxyz", [0, 1, 2])
    vac = _trajectory(root / "CsPbBr3" / "vac_A.extxyz", [0, 1])
    _trajectory(root / "SrTiO3" / "vac_B.extxyz", [1, 2])  # step 0 did not converge: absent
    _trajectory(root / "SrTiO3" / "sub_Nb_on_B.extxyz", [0, 1], unconverged=[0])
    paths = sorted(root.rglob("*.extxyz"), reverse=True)
    out = tmp_path / "initial_structures.extxyz"
    with caplog.at_level("WARNING"):
        embeddings.main(["initial", "--out", str(out), *map(str, paths)])
    initial = ase.io.read(out, index=":")
    assert [atoms.info["defect"] for atoms in initial] == ["vac_A", "sub_Fe_on_B"]  # path order
    assert all(atoms.info["step"] == 0 for atoms in initial)
    np.testing.assert_allclose(initial[0].positions, vac[0].positions, atol=1e-7)
    np.testing.assert_allclose(initial[1].positions, fe[0].positions, atol=1e-7)
    assert initial[1].info["REF_energy"] == fe[0].info["REF_energy"]
    assert "no converged step-0 frame in 2 trajectories" in caplog.text
    with pytest.raises(ValueError, match="step-0 frame"):
        structure_sets.initial_frames([root / "SrTiO3" / "vac_B.extxyz"], tmp_path / "none.extxyz")


def _write_descriptors(tmp_path, shift_dopants=0.0):
    rng = np.random.default_rng(0)
    for model in MODELS.values():
        for offset, (dataset, size) in enumerate(SIZES.items()):
            folder = tmp_path / "descriptors" / model
            folder.mkdir(parents=True, exist_ok=True)
            centre = 20.0 * offset + (shift_dopants if dataset == INITIAL else 0)
            points = centre + rng.normal(0, 1, (size, 16))
            np.save(folder / f"{dataset}.npy", points.astype(np.float32))


def _write_predictions(tmp_path, model, n_frames):
    frames = []
    for i in range(n_frames):
        atoms = _frame(i, "Perovs-Dopants")
        atoms.info["MACE_energy"] = atoms.info["REF_energy"] + 5 * 0.01 * i  # 0.01·i eV/atom
        atoms.info["substituent"] = ["Ba", "Nd", "vacancy"][i % 3]
        frames.append(atoms)
    folder = tmp_path / "predictions" / model
    folder.mkdir(parents=True, exist_ok=True)
    ase.io.write(folder / f"{INITIAL}.extxyz", frames, format="extxyz")


def _settings(tmp_path):
    path = tmp_path / "analysis.json"
    path.write_text(json.dumps({"run_label": "test", "tsne": {"perplexity": 5, "max_iter": 250}}))
    return path


def _keyed(folder, suffix) -> dict:
    """{(model, data set): file} of every ``folder/{model}/{data set}{suffix}``."""
    return {(p.parent.name, p.stem): p for p in sorted(folder.glob(f"*/*{suffix}"))}


def _keyed_flags(flag, folder, suffix) -> list[str]:
    return [f"{flag}={m}/{d}={p}" for (m, d), p in _keyed(folder, suffix).items()]


def _dataset_flags():
    return [flag for key, name in NAMES.items() for flag in ("--dataset", f"{key}={name}")]


def test_maps_table_has_every_structure_and_the_energy_errors(tmp_path):
    _write_descriptors(tmp_path)
    for model in ("ft-std", "ft-mh"):
        _write_predictions(tmp_path, model, SIZES[INITIAL])
    out = tmp_path / "figures" / "embedding_maps.png"
    model_flags = [f for role, m in MODELS.items() for f in ("--model", f"{role}={m}")]
    embeddings.main(
        [
            "maps",
            "--settings",
            str(_settings(tmp_path)),
            *model_flags,
            *_dataset_flags(),
            *_keyed_flags("--descriptor", tmp_path / "descriptors", ".npy"),
            *_keyed_flags("--prediction", tmp_path / "predictions", ".extxyz"),
            "--out",
            str(out),
        ]
    )
    assert out.stat().st_size > 20_000
    table = pd.read_csv(out.with_suffix(".csv"), keep_default_na=False, na_values=[""])
    assert list(table.columns) == [
        "model_role",
        "model",
        "dataset_key",
        "dataset",
        "frame_index",
        "tsne_1",
        "tsne_2",
        "phate_1",
        "phate_2",
        "energy_error_ev_per_atom",
        "substituent",
    ]
    assert len(table) == 3 * sum(SIZES.values())
    assert set(table["dataset"]) == set(NAMES.values())
    counts = table.groupby(["model", "dataset_key"]).size()
    for model in MODELS.values():
        for dataset, size in SIZES.items():
            assert counts[(model, dataset)] == size
    assert np.isfinite(table[["tsne_1", "tsne_2", "phate_1", "phate_2"]]).all().all()

    dopants = table[(table["dataset_key"] == INITIAL) & (table["model"] == "ft-mh")]
    np.testing.assert_allclose(dopants["energy_error_ev_per_atom"], 0.01 * np.arange(10))
    assert list(dopants["substituent"][:3]) == ["Ba", "Nd", "vacancy"]
    others = table[(table["model"] == "found") | (table["dataset_key"] != INITIAL)]
    assert others["energy_error_ev_per_atom"].isna().all()

    # the three data sets are 20 units apart in descriptor space: t-SNE keeps them apart
    found = table[table["model"] == "found"]
    centres = found.groupby("dataset_key")[["tsne_1", "tsne_2"]].mean()
    spread = found.groupby("dataset_key")[["tsne_1", "tsne_2"]].std().to_numpy().max()
    gaps = [np.linalg.norm(centres.iloc[i] - centres.iloc[j]) for i, j in [(0, 1), (0, 2), (1, 2)]]
    assert min(gaps) > 2 * spread


def test_maps_reject_predictions_that_do_not_match_the_descriptors(tmp_path):
    _write_descriptors(tmp_path)
    _write_predictions(tmp_path, "ft-std", SIZES[INITIAL] - 1)
    settings = embeddings.load_settings(_settings(tmp_path))
    with pytest.raises(ValueError, match="9 frames but 10 descriptor rows"):
        embeddings.embedding_table(
            {"standard": "ft-std"},
            NAMES,
            INITIAL,
            _keyed(tmp_path / "descriptors", ".npy"),
            _keyed(tmp_path / "predictions", ".extxyz"),
            settings,
        )


def test_maps_colour_only_the_error_roles(tmp_path):
    _write_descriptors(tmp_path)
    _write_predictions(tmp_path, "ft-mh", SIZES[INITIAL])  # no predictions of ft-std needed
    settings = embeddings.load_settings(_settings(tmp_path))
    table = embeddings.embedding_table(
        MODELS,
        NAMES,
        INITIAL,
        _keyed(tmp_path / "descriptors", ".npy"),
        _keyed(tmp_path / "predictions", ".extxyz"),
        settings,
        error_roles=["multihead"],
    )
    coloured = table[table["energy_error_ev_per_atom"].notna()]
    assert set(coloured["model"]) == {"ft-mh"}
    assert len(coloured) == SIZES[INITIAL]


def test_energy_error_colours_follow_the_array():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    errors = np.array([0.0, 0.02, np.nan, 0.08])
    norm, cmap = embedding_figures.energy_error_scale(errors)
    assert (norm.vmin, norm.vmax) == (0.0, 0.08)
    fig, ax = plt.subplots()
    embedding_figures.draw_energy_errors(ax, [0, 1, 2, 3], [0, 1, 2, 3], errors, norm, cmap)
    fig.canvas.draw()
    points = ax.collections[0]
    np.testing.assert_array_equal(points.get_array().filled(np.nan), errors)
    colours = points.get_facecolors()
    np.testing.assert_allclose(colours[0], cmap(0.0))
    np.testing.assert_allclose(colours[-1], cmap(1.0))
    plt.close(fig)


def test_coverage_table_holds_the_two_data_sets(tmp_path):
    _write_descriptors(tmp_path)
    out = tmp_path / "dataset_coverage_tsne.png"
    embeddings.main(
        [
            "coverage",
            "--settings",
            str(_settings(tmp_path)),
            "--model",
            "found",
            "--dataset",
            "mptrj_embedding_sample=MPtrj-stand-in",
            "--dataset",
            f"{INITIAL}=Perovs-Dopants",
            *_keyed_flags("--descriptor", tmp_path / "descriptors", ".npy"),
            "--out",
            str(out),
        ]
    )
    table = pd.read_csv(out.with_suffix(".csv"))
    assert table["dataset_key"].value_counts().to_dict() == {
        "mptrj_embedding_sample": 12,
        INITIAL: 10,
    }
    assert set(table["dataset"]) == {"MPtrj-stand-in", "Perovs-Dopants"}
    assert np.isfinite(table[["tsne_1", "tsne_2"]]).all().all()


def test_projections_of_tiny_sets_have_two_columns():
    points = np.random.default_rng(1).normal(size=(5, 300))
    tsne = embeddings.tsne_map(
        points, {"perplexity": 30, "max_iter": 250, "pca_components": 50}, seed=0
    )
    phate = embeddings.phate_map(points, {"knn": 5, "decay": 40}, seed=0)
    assert tsne.shape == phate.shape == (5, 2)
    with pytest.raises(ValueError, match="at least 4"):
        embeddings.tsne_map(
            points[:3], {"perplexity": 30, "max_iter": 250, "pca_components": 50}, seed=0
        )

"""The studies' findings checked on synthetic tables: reproduced, not reproduced, not computed."""

import json

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.analysis import findings, findings_checks, findings_criteria

VARIANTS = {
    "MACE-MP-0b3": {"method": "zero_shot"},
    "ft-dopants-standard": {"method": "standard", "data": "perovs_dopants"},
    "ft-dopants-multihead": {"method": "multihead", "data": "perovs_dopants"},
    "ft-mptrj-cp2k-standard": {"method": "standard", "data": "mptrj_cp2k"},
    "ft-omat24-multihead": {"method": "multihead", "data": "omat24"},
    "scratch-dopants": {"method": "scratch", "data": "perovs_dopants", "lr": 1.0e-2},
    "ft-dopants-standard-lr5e-4": {"method": "standard", "data": "perovs_dopants", "lr": 5e-4},
}
LR = 1.0e-5
NAMES = {"perovs_dopants": "Perovs-Dopants", "mptrj": "MPtrj"}

# force MAE (eV/Å) on (Perovs-Dopants, MPtrj): every finding holds (standard and multihead
# are the study's Table 1 numbers)
HOLDS = {
    "MACE-MP-0b3": (0.119, 0.060),
    "ft-dopants-standard": (0.037, 0.246),
    "ft-dopants-multihead": (0.033, 0.086),
    "ft-mptrj-cp2k-standard": (0.110, 0.070),
    "ft-omat24-multihead": (0.100, 0.065),
    "scratch-dopants": (0.045, 0.900),
    "ft-dopants-standard-lr5e-4": (0.030, 0.400),
}
# every finding fails
FAILS = {
    "MACE-MP-0b3": (0.050, 0.060),  # a: dopants below MPtrj
    "ft-dopants-standard": (0.050, 0.060),  # b: no gain on dopants; c: no forgetting
    "ft-dopants-multihead": (0.033, 0.059),  # d: MPtrj not well below standard's
    "ft-mptrj-cp2k-standard": (0.020, 0.070),  # g: dopant error removed
    "ft-omat24-multihead": (0.100, 0.065),
    "scratch-dopants": (0.200, 0.080),  # f: far worse on dopants, not far above on MPtrj
    "ft-dopants-standard-lr5e-4": (0.030, 0.055),  # e: forgets less
}


def table_a1(values, partial=("scratch-dopants",)):
    rows = []
    for model, pair in values.items():
        for test_set, value in zip(("perovs_dopants", "mptrj"), pair, strict=True):
            evaluated = 5 if model in partial and test_set == "mptrj" else 20
            rows.append(
                {
                    "model": model,
                    "test_set": test_set,
                    "test_set_name": NAMES[test_set],
                    "n_frames": 20,
                    "n_evaluated": evaluated,
                    "force_mae_ev_per_a": value,
                }
            )
    return pd.DataFrame(rows)


def force_shift(tmp_path, shift, model_error):
    path = tmp_path / "force_shift_density_summary.csv"
    pd.DataFrame(
        {
            "series": ["VASP force", "VASP - CP2K", "VASP - MACE-MP-0b3", "CP2K - MACE-MP-0b3"],
            "mae_ev_per_a": [0.5, shift, model_error, 0.1],
        }
    ).to_csv(path, index=False)
    return path


def rotation(dim, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return q


def descriptors(tmp_path, dopants_outside=True, multihead_keeps=True):
    """Pretrained descriptors: MPtrj sample and OMat24 around 0, dopants 25 units away (or
    next to MPtrj structures). One finetuned model's are a rotation of them (CKA 1), the other's
    a nonlinear map (CKA well below 1)."""
    rng = np.random.default_rng(0)
    dim = 8
    mptrj = rng.normal(size=(200, dim))
    near = mptrj[:30] + rng.normal(scale=0.01, size=(30, dim))  # inside the MPtrj cloud
    base = {
        "mptrj_embedding_sample": mptrj,
        "omat24": rng.normal(size=(40, dim)),
        "perovs_dopants_initial": near + 25.0 if dopants_outside else near,
    }
    kept = {key: value @ rotation(dim, 1) for key, value in base.items()}
    mixing = rng.normal(size=(dim, dim))
    changed = {key: np.sin(3 * value @ mixing) for key, value in base.items()}
    models = {
        "MACE-MP-0b3": base,
        "ft-dopants-multihead": kept if multihead_keeps else changed,
        "ft-dopants-standard": changed if multihead_keeps else kept,
    }
    files = {}
    for model, sets in models.items():
        (tmp_path / "descriptors" / model).mkdir(parents=True, exist_ok=True)
        for key, value in sets.items():
            files[model, key] = tmp_path / "descriptors" / model / f"{key}.npy"
            np.save(files[model, key], value.astype(np.float32))
    return files


def by_id(results):
    return {finding.id: finding for finding in results}


def test_every_finding_reproduced_when_the_tables_show_it(tmp_path):
    results = findings.check_all(
        table_a1(HOLDS),
        VARIANTS,
        LR,
        force_shift_summary=force_shift(tmp_path, 0.12, 0.05),
        descriptors=descriptors(tmp_path),
    )
    assert [f.id for f in results] == list("abcdefghij")
    assert {f.id: f.verdict for f in results} == dict.fromkeys("abcdefghij", "reproduced")
    rows = by_id(results)
    assert "ft-dopants-multihead on MPtrj = 0.0860 eV/Å" in rows["d"].numbers
    assert "ft-dopants-standard on MPtrj = 0.2460 eV/Å" in rows["d"].numbers
    assert "MPtrj ratio = 0.3496" in rows["d"].numbers
    assert "≤ 0.7" in rows["d"].criterion and "max(25%, 0.01 eV/Å)" in rows["d"].criterion
    assert "(lr 0.0005)" in rows["e"].numbers and "(lr 1e-05)" in rows["e"].numbers
    assert "scratch-dopants on MPtrj = 0.9000 eV/Å (5/20 frames)" in rows["f"].numbers
    assert "MAE(VASP - CP2K) = 0.1200" in rows["h"].numbers
    assert "MAE(VASP - MACE-MP-0b3) = 0.0500" in rows["h"].numbers
    assert "CKA(MACE-MP-0b3, ft-dopants-multihead) = 1.0000" in rows["j"].numbers
    assert "270 structures" in rows["j"].numbers


def test_every_finding_not_reproduced_when_the_tables_contradict_it(tmp_path):
    results = findings.check_all(
        table_a1(FAILS),
        VARIANTS,
        LR,
        force_shift_summary=force_shift(tmp_path, 0.03, 0.05),
        descriptors=descriptors(tmp_path, dopants_outside=False, multihead_keeps=False),
    )
    assert {f.id: f.verdict for f in results} == dict.fromkeys("abcdefghij", "not reproduced")
    rows = by_id(results)
    # the numbers that decided it are in the row
    assert "MACE-MP-0b3 on Perovs-Dopants = 0.0500 eV/Å" in rows["a"].numbers
    assert "MACE-MP-0b3 on MPtrj = 0.0600 eV/Å" in rows["a"].numbers
    assert "ratio = 0.8333" in rows["a"].numbers
    assert "ratio = 1.0000" in rows["b"].numbers and "ratio = 1.0000" in rows["c"].numbers
    assert "ft-dopants-standard-lr5e-4 on MPtrj = 0.0550 eV/Å" in rows["e"].numbers
    assert "ft-mptrj-cp2k-standard on Perovs-Dopants = 0.0200 eV/Å" in rows["g"].numbers
    assert "ratio = 0.6000" in rows["h"].numbers
    assert "ratio = " in rows["i"].numbers and rows["i"].criterion
    assert "CKA(MACE-MP-0b3, ft-dopants-standard) = 1.0000" in rows["j"].numbers


def test_partial_failures_are_not_reproduced():
    values = dict(HOLDS)
    values["ft-dopants-multihead"] = (0.060, 0.086)  # MPtrj fine, dopants 62 % above standard
    values["scratch-dopants"] = (0.045, 0.300)  # dopants fine, MPtrj only 1.2x standard's
    rows = by_id(findings.check_all(table_a1(values), VARIANTS, LR))
    assert rows["d"].verdict == rows["f"].verdict == "not reproduced"
    assert "dopant limit = 0.0470 eV/Å" in rows["d"].numbers  # 0.037 + 0.01 (> 25 %)
    assert "dopant limit = 0.0555 eV/Å" in rows["f"].numbers  # 0.037 + 50 %
    assert rows["a"].verdict == "reproduced"


def test_missing_variants_files_and_test_sets_are_not_computed():
    variants = {k: VARIANTS[k] for k in ("MACE-MP-0b3", "ft-dopants-standard")}
    table = table_a1({k: HOLDS[k] for k in variants})
    rows = by_id(findings.check_all(table, variants, LR))
    assert rows["a"].verdict == rows["b"].verdict == rows["c"].verdict == "reproduced"
    assert rows["d"].verdict == (
        "not computed (no multihead variant finetuned on perovs_dopants in the config)"
    )
    assert rows["e"].verdict.startswith("not computed (fewer than two standard perovs_dopants")
    assert rows["f"].verdict == (
        "not computed (no scratch variant trained on perovs_dopants in the config)"
    )
    assert rows["g"].verdict == "not computed (no variant finetuned on mptrj_cp2k in the config)"
    assert rows["h"].verdict.startswith("not computed (no force-shift summary")
    assert rows["i"].verdict == "not computed (no descriptor files given)"
    assert rows["j"].verdict.startswith("not computed (no multihead variant")
    assert rows["d"].numbers == "" and rows["d"].criterion == findings_criteria.CRITERIA["d"]

    without_mptrj = table[table["test_set"] != "mptrj"]
    rows = by_id(findings.check_all(without_mptrj, variants, LR))
    assert rows["a"].verdict == "not computed (test set mptrj is not in evaluation.test_sets)"
    unevaluated = table.copy()
    unevaluated.loc[unevaluated["model"] == "ft-dopants-standard", "force_mae_ev_per_a"] = np.nan
    rows = by_id(findings.check_all(unevaluated, variants, LR))
    assert "ft-dopants-standard was evaluated on no" in rows["b"].verdict


def test_learning_rate_pair_uses_the_default_lr():
    roles = findings_criteria.finding_models(VARIANTS, LR)
    assert roles["lr_low"] == "ft-dopants-standard"
    assert roles["lr_high"] == "ft-dopants-standard-lr5e-4"
    assert roles["scratch"] == "scratch-dopants"
    assert roles["mptrj_cp2k"] == "ft-mptrj-cp2k-standard"
    assert roles["multihead"] == "ft-dopants-multihead"  # not the OMat24 one
    assert findings_criteria.finding_models(VARIANTS, 5e-4)["lr_low"] is None  # both 5e-4: no pair


def test_cka_is_one_for_identical_and_rotated_sets_and_lower_otherwise():
    x = np.random.default_rng(3).normal(size=(100, 6))
    assert findings_checks.linear_cka(x, x) == pytest.approx(1.0)
    assert findings_checks.linear_cka(x, x @ rotation(6, 4)) == pytest.approx(1.0)
    assert findings_checks.linear_cka(x, 3.0 * x @ rotation(6, 5) + 7.0) == pytest.approx(1.0)
    unrelated = np.random.default_rng(4).normal(size=(100, 6))
    assert findings_checks.linear_cka(x, unrelated) < 0.3
    with pytest.raises(ValueError, match="same structures"):
        findings_checks.linear_cka(x, x[:-1])


def test_nearest_neighbour_ratio_of_a_known_layout():
    # reference: 10 points 1 apart on a line (within-set NN distance 1 for every point)
    reference = np.column_stack([np.arange(10.0), np.zeros(10)])
    points = np.array([[-3.0, 0.0], [12.0, 0.0], [4.5, 4.0]])  # NN distances 3, 3, 4.03
    result = findings_checks.nn_distance_ratio(points, reference)
    assert result.median_within_reference == pytest.approx(1.0)
    assert result.median_to_reference == pytest.approx(3.0)
    assert result.ratio == pytest.approx(3.0)
    inside = findings_checks.nn_distance_ratio(np.array([[4.0, 0.25]]), reference)
    assert inside.ratio == pytest.approx(0.25)


def test_cli_writes_csv_and_markdown_that_say_stand_in(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    table = tmp_path / "tableA1.csv"
    table_a1(HOLDS).to_csv(table, index=False)
    (config / "variants.json").write_text(json.dumps({**VARIANTS, "run_label": "demo-run"}))
    (config / "mace.json").write_text(json.dumps({"hyperparameters": {"lr": LR}}))
    (config / "analysis.json").write_text(json.dumps({"run_label": "demo-run"}))
    (config / "reference.json").write_text(
        json.dumps({"mptrj": {"name": "MPtrj-stand-in", "source": "standin"}})
    )
    out = tmp_path / "metrics" / "findings.csv"
    findings.main(
        [
            "--table-a1",
            str(table),
            "--variants-config",
            str(config / "variants.json"),
            "--mace-config",
            str(config / "mace.json"),
            "--analysis-config",
            str(config / "analysis.json"),
            "--reference-config",
            str(config / "reference.json"),
            "--force-shift-summary",
            str(force_shift(tmp_path, 0.12, 0.05)),
            "--config-file",
            "demo/config.yaml",
            "--out",
            str(out),
        ]
    )
    csv = pd.read_csv(out, keep_default_na=False)
    assert list(csv.columns) == ["id", "finding", "numbers", "criterion", "verdict"]
    assert list(csv["id"]) == list("abcdefghij")
    assert list(csv["verdict"][:8]) == ["reproduced"] * 8
    assert csv["verdict"][8].startswith("not computed (")  # no descriptors in this run
    markdown = out.with_suffix(".md").read_text()
    assert "demo-run" in markdown and "`demo/config.yaml`" in markdown
    assert "**Stand-in data (demo)**" in markdown
    assert "10 findings: 8 reproduced, 0 not reproduced, 2 not computed." in markdown
    assert markdown.count("\n| ") == 11  # header and ten findings


def test_baseline_section_judges_each_baseline_by_finding_a():
    import pandas as pd

    from workflow_scripts.analysis import baseline_findings

    rows = [
        ("zero", "mptrj", 0.030), ("zero", "perovs_dopants", 0.042),
        ("ft", "mptrj", 0.062), ("ft", "perovs_dopants", 0.020),
        ("mh", "mptrj", 0.037), ("mh", "perovs_dopants", 0.025),
        ("labeller", "mptrj", 0.0), ("labeller", "perovs_dopants", 0.051),
        ("other", "mptrj", 0.040), ("other", "perovs_dopants", 0.040),
    ]  # fmt: skip
    table = pd.DataFrame(
        [
            {"model": m, "test_set": t, "force_mae_ev_per_a": v,
             "test_set_name": {"mptrj": "MPtrj", "perovs_dopants": "Perovs-Dopants"}[t]}
            for m, t, v in rows
        ]
    )  # fmt: skip
    variants = {
        "zero": {"method": "zero_shot"},
        "ft": {"method": "standard", "data": "perovs_dopants"},
        "mh": {"method": "multihead", "data": "perovs_dopants"},
    }
    result = baseline_findings.baseline_rows(table, variants, {"mptrj": "labeller"})
    assert [row[0] for row in result] == ["labeller", "other"]
    labeller, other = result
    assert labeller[2] == "0.0000 §" and labeller[4].startswith("not judged")
    assert labeller[5] == f"{0.051 / 0.042:.2f}" and labeller[6] == f"{0.051 / 0.020:.2f}"
    assert other[3] == "1.00" and other[4] == "no"  # 0.040 / 0.040 < 1.1
    text = baseline_findings.markdown_section(table, variants, {"mptrj": "labeller"})
    assert "F MAE Perovs-Dopants (eV/Å)" in text and "§ this model made" in text
    assert (
        baseline_findings.markdown_section(
            table[table["model"] != "labeller"][lambda t: t["model"] != "other"], variants, {}
        )
        == ""
    )

"""mace_run_train command lines, training-file preparation and the read-back of mace's outputs.

No training here (see test_mace_pipeline.py): the commands are parsed by mace's own argument
parser, the read-back by log lines in mace 0.3.16's format.
"""

from pathlib import Path

import pytest
from ase.io import read, write

from workflow_scripts.mace import readback, train, train_check, train_command
from workflow_scripts.mace.synthetic import emt_bulk_frames, emt_isolated_atoms

HYPER = {
    "lr": 1e-5,
    "max_num_epochs": 20,
    "batch_size": 4,
    "seed": 0,
    "valid_fraction": 0.1,
    "loss": "universal",
    "energy_weight": 1.0,
    "forces_weight": 100.0,
    "stress_weight": 1.0,
    "weight_pt_head": 1.0,
    "ema": False,
    "ema_decay": 0.99,
    "scheduler_patience": 50,
    "clip_grad": 10.0,
    "extra_args": [],
    "e0s": "isolated_atoms",
}
FILES = train_command.TrainingFiles(
    train=Path("train.extxyz"),
    valid=Path("valid.extxyz"),
    replay=Path("replay_fps.extxyz"),
    foundation=Path("foundation.model"),
)
ARCHITECTURE = {"num_channels": 16, "max_L": 0, "r_max": 5.0, "num_interactions": 2}
ARCHITECTURE["correlation"] = 2


def command(method, hyper=HYPER, files=FILES):
    return train_command.build_command(
        "v",
        method,
        files,
        hyper,
        work_dir=Path("work"),
        device="cpu",
        dtype="float64",
        scratch_architecture=ARCHITECTURE,
    )


def parsed(arguments):
    """The arguments as mace-torch 0.3.16's own parser reads them."""
    train.settings.import_mace()
    from mace.tools import build_default_arg_parser

    return build_default_arg_parser().parse_args(arguments)


def test_standard_turns_multihead_off_and_keeps_foundation_elements():
    args = parsed(command("standard"))
    assert args.multiheads_finetuning is False
    assert args.foundation_model == "foundation.model"
    assert args.foundation_model_elements is True
    assert args.pt_train_file is None
    assert args.plot is False
    assert args.lr == 1e-5
    # E0s come from the IsolatedAtom frames in the training file, so no --E0s is passed
    assert args.E0s is None


def test_multihead_forces_lr_and_passes_the_replay_file():
    arguments = command("multihead")
    args = parsed(arguments)
    assert args.multiheads_finetuning is True
    assert args.force_mh_ft_lr is True
    assert args.pt_train_file == "replay_fps.extxyz"
    assert args.ema is False
    assert args.lr == 1e-5
    assert not any(a.startswith("--pt_train_file=mp") for a in arguments)


def test_multihead_ema_only_on_request_and_e0s_average_refused():
    args = parsed(command("multihead", {**HYPER, "ema": True, "ema_decay": 0.995}))
    assert args.ema is True
    assert args.ema_decay == 0.995
    with pytest.raises(ValueError, match="average"):
        command("multihead", {**HYPER, "e0s": "average"})
    with pytest.raises(ValueError, match="replay"):
        command(
            "multihead", files=train_command.TrainingFiles(train=Path("t"), foundation=Path("f"))
        )
    with pytest.raises(ValueError, match="replay"):
        command(
            "multihead", files=train_command.TrainingFiles(Path("t"), None, Path("mp"), Path("f"))
        )


def test_scratch_has_architecture_and_no_foundation():
    args = parsed(command("scratch"))
    assert args.foundation_model is None
    assert args.multiheads_finetuning is False
    assert (args.num_channels, args.max_L, args.r_max, args.correlation) == (16, 0, 5.0, 2)


def test_foundation_e0s_and_valid_fraction_when_there_is_no_valid_file():
    files = train_command.TrainingFiles(train=Path("omat.extxyz"), foundation=Path("f.model"))
    args = parsed(command("standard", {**HYPER, "e0s": "foundation"}, files))
    assert args.E0s == "foundation"
    assert args.valid_file is None
    assert args.valid_fraction == 0.1


def test_standard_refuses_e0s_that_mace_would_overwrite():
    with pytest.raises(ValueError, match="estimated"):
        command("standard", {**HYPER, "e0s": "estimated"})


def test_extra_args_cannot_override_guarded_flags():
    assert "--num_workers=2" in command("standard", {**HYPER, "extra_args": ["--num_workers=2"]})
    with pytest.raises(ValueError, match="--lr"):
        command("standard", {**HYPER, "extra_args": ["--lr=0.1"]})
    with pytest.raises(ValueError, match="--multiheads_finetuning"):
        command("standard", {**HYPER, "extra_args": ["--multiheads_finetuning=True"]})


def test_variant_overrides_and_default_e0s():
    shared = {key: value for key, value in HYPER.items() if key != "e0s"}
    resolved = train_command.resolve_hyperparameters(
        {"method": "standard", "data": "perovs_dopants", "lr": 5e-4, "max_num_epochs": None},
        shared,
    )
    assert resolved["lr"] == 5e-4
    assert resolved["max_num_epochs"] == 20
    assert resolved["e0s"] == "isolated_atoms"
    omat = train_command.resolve_hyperparameters({"method": "multihead", "data": "omat24"}, shared)
    assert omat["e0s"] == "foundation"


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    data = emt_bulk_frames(4, ("Cu", "Ni"), seed=3)
    isolated = emt_isolated_atoms(("Cu", "Ni", "Al"))
    write(root / "data.extxyz", data)
    write(root / "with_isolated.extxyz", isolated[:2] + data)
    write(root / "isolated.extxyz", isolated)
    write(root / "isolated_cu.extxyz", isolated[:1])
    return root


def test_training_file_gets_isolated_atoms_only_when_e0s_use_them(frames, tmp_path):
    out = tmp_path / "train.extxyz"
    prepared = train.prepare_training_file(
        frames / "data.extxyz",
        out,
        "isolated_atoms",
        isolated_atoms_path=frames / "isolated.extxyz",
    )
    written = read(prepared, ":")
    assert prepared == out
    assert [a.info["config_type"] for a in written[:3]] == ["IsolatedAtom"] * 3
    assert len(written) == 7
    # IsolatedAtom frames would override --E0s=foundation: they are removed
    stripped = train.prepare_training_file(
        frames / "with_isolated.extxyz", tmp_path / "stripped.extxyz", "foundation"
    )
    assert [a.info["config_type"] for a in read(stripped, ":")] == ["synthetic"] * 4
    # already fine: used as is
    same = train.prepare_training_file(frames / "with_isolated.extxyz", out, "isolated_atoms")
    assert same == frames / "with_isolated.extxyz"


def test_missing_isolated_atom_is_an_error_naming_the_element(frames, tmp_path):
    with pytest.raises(ValueError, match=r"\['Ni'\]"):
        train.prepare_training_file(
            frames / "data.extxyz",
            tmp_path / "t.extxyz",
            "isolated_atoms",
            isolated_atoms_path=frames / "isolated_cu.extxyz",
        )


# Lines as mace-torch 0.3.16 writes them for a multihead run with --force_mh_ft_lr=True: its
# "setting learning rate to 0.0001" line is printed even though the rate stays 1e-5.
MULTIHEAD_LOG = """\
2026-11-23 23:29:56.700 INFO: ===========VERIFYING SETTINGS===========
2026-11-23 23:29:56.700 INFO: MACE version: 0.3.16
2026-11-23 23:29:56.814 INFO: Using multiheads finetuning mode, setting learning rate to 0.0001 and EMA to True
2026-11-23 23:29:56.814 INFO: Using heads: ['Default', 'pt_head']
2026-11-23 23:29:56.856 INFO: ==================Using multiheads finetuning mode==================
2026-11-23 23:29:56.856 INFO: Total number of configurations in pretraining: train=16, valid=4
2026-11-23 23:29:56.857 INFO: Atomic Energies used (z: eV) for head Default: {13: 3.936, 28: 5.328}
2026-11-23 23:29:56.857 INFO: Atomic Energies used (z: eV) for head pt_head: {13: 0.58, 28: 0.25}
2026-11-23 23:29:56.941 INFO: Loading FOUNDATION model
2026-11-23 23:29:56.942 INFO: Using universal loss function for fine-tuning
2026-11-23 23:29:58.411 INFO: Learning rate: 1e-05, weight decay: 5e-07
2026-11-23 23:29:58.411 INFO: UniversalLoss(energy_weight=1.000, forces_weight=100.000, stress_weight=1.000)
2026-11-23 23:29:58.412 INFO: Param group 0: lr = 1e-05
2026-11-23 23:29:58.412 INFO: Param group 1: lr = 1e-05
"""  # noqa: E501
DEBUG_LOG = """\
2026-11-23 23:29:56.700 INFO: ===========VERIFYING SETTINGS===========
2026-11-23 23:29:56.701 DEBUG: Configuration: Namespace(name='mh', foundation_model='f.model', pt_train_file='replay.extxyz', train_file='ft.extxyz', valid_file=None, E0s='foundation')
2026-11-23 23:29:56.814 INFO: =============    Processing head Default     ===========
2026-11-23 23:29:56.814 DEBUG: Loading training file: ft.extxyz
2026-11-23 23:29:56.840 INFO: =============    Processing head pt_head     ===========
2026-11-23 23:29:56.840 DEBUG: Loading training file: replay.extxyz
"""  # noqa: E501


def test_log_parser_reads_the_rate_really_used():
    log = readback.parse_log(MULTIHEAD_LOG)
    assert log["lr"] == 1e-5
    assert log["param_group_lrs"] == [1e-5, 1e-5]
    assert log["multihead_finetuning"] is True
    assert log["heads_declared"] == ["Default", "pt_head"]
    assert log["e0s"]["Default"] == {13: 3.936, 28: 5.328}
    assert log["loss_function"] == "UniversalLoss"
    assert log["ema_decay"] is None
    assert log["pretraining_configs"] == {"train": 16, "valid": 4}
    debug = readback.parse_debug_log(DEBUG_LOG)
    assert debug["training_files"] == {"Default": ["ft.extxyz"], "pt_head": ["replay.extxyz"]}
    assert debug["arguments"]["pt_train_file"] == "replay.extxyz"
    assert debug["arguments"]["valid_file"] is None


def test_resumed_run_is_read_from_its_last_section():
    earlier = MULTIHEAD_LOG.replace("1e-05", "0.0001")
    log = readback.parse_log(earlier + MULTIHEAD_LOG)
    assert log["lr"] == 1e-5
    debug = readback.parse_debug_log(DEBUG_LOG + DEBUG_LOG)
    assert debug["training_files"]["pt_head"] == ["replay.extxyz"]


def _outputs(
    lr=1e-5, heads=("pt_head", "Default"), multihead=True, pt_file="replay.extxyz", stored_e0=-1.5
):
    return {
        "log": {
            "lr": lr,
            "param_group_lrs": [lr, lr],
            "ema_decay": None,
            "multihead_finetuning": multihead,
            "multihead_fallback_warning": False,
            "foundation_loaded": True,
            "e0s": {"Default": {29: -1.5}},
            "epochs_completed": 20,
        },
        "debug": {"training_files": {"pt_head": [pt_file]} if pt_file else {}},
        "model": {"heads": list(heads), "e0s": {"Default": {29: stored_e0}}},
    }


def test_verification_catches_each_silent_change(tmp_path):
    files = train_command.TrainingFiles(
        train=tmp_path / "t", replay=Path("replay.extxyz"), foundation=tmp_path / "f"
    )
    hyper = dict(HYPER)
    assert train_check.verify_training("multihead", hyper, files, _outputs(), {"Cu": -1.5}) == []
    problems = train_check.verify_training("multihead", hyper, files, _outputs(lr=1e-4), {})
    assert any("learning rate" in p for p in problems)
    fallback = _outputs(heads=("Default",), multihead=False, pt_file=None)
    problems = train_check.verify_training("multihead", hyper, files, fallback, {})
    assert any("multihead finetuning mode" in p for p in problems)
    assert any("heads" in p for p in problems)
    assert any("pt_head trained on []" in p for p in problems)
    problems = train_check.verify_training("multihead", hyper, files, _outputs(), {"Cu": -1.0})
    assert problems == ["E0 of Cu in the model -1.5 != isolated atom -1.0"]
    # mace logs the isolated-atom E0s but stores the foundation's (standard finetuning)
    single = _outputs(heads=("Default",), multihead=False, pt_file=None, stored_e0=-3.0)
    problems = train_check.verify_training("standard", hyper, files, single, {"Cu": -1.5})
    assert problems == [
        "E0 of Z=29 in the model -3.0 != logged -1.5",
        "E0 of Cu in the model -3.0 != isolated atom -1.5",
    ]
    single = _outputs(heads=("Default",), multihead=False, pt_file=None)
    assert train_check.verify_training("standard", hyper, files, single, {}) == []
    assert train_check.verify_training("standard", hyper, files, _outputs(), {})


RECIPE = {
    **HYPER,
    "batch_size": 16,
    "valid_batch_size": 32,
    "energy_weight": 1.0,
    "forces_weight": 10.0,
    "stress_weight": 10.0,
    "ema": True,
    "ema_decay": 0.99999,
    "optimizer": "adam",
    "amsgrad": True,
    "weight_decay": 1e-8,
    "scheduler": "ReduceLROnPlateau",
    "lr_factor": 0.8,
    "scheduler_patience": 5,
    "lr_scheduler_gamma": 0.9993,
    "clip_grad": 100.0,
}


@pytest.mark.parametrize("method", ["standard", "multihead", "scratch"])
def test_recipe_settings_reach_the_command(method):
    """Loss weights, EMA, optimiser and scheduler as mace's own parser reads them."""
    args = parsed(command(method, RECIPE))
    assert (args.energy_weight, args.forces_weight, args.stress_weight) == (1.0, 10.0, 10.0)
    assert args.ema is True and args.ema_decay == 0.99999
    assert args.optimizer == "adam" and args.amsgrad is True
    assert args.weight_decay == 1e-8
    assert (args.scheduler, args.lr_factor, args.scheduler_patience) == (
        "ReduceLROnPlateau",
        0.8,
        5,
    )
    assert args.lr_scheduler_gamma == 0.9993
    assert args.clip_grad == 100.0
    assert (args.batch_size, args.valid_batch_size) == (16, 32)
    assert args.lr == 1e-5


def test_settings_not_in_config_keep_mace_defaults():
    """A hyperparameters section without the optimiser keys gives mace's own defaults."""
    train.settings.import_mace()
    from mace.tools import build_default_arg_parser

    parser = build_default_arg_parser()
    args = parsed(command("standard"))
    for key in ("optimizer", "amsgrad", "weight_decay", "scheduler", "lr_factor"):
        assert getattr(args, key) == parser.get_default(key), key
    assert args.lr_scheduler_gamma == parser.get_default("lr_scheduler_gamma")
    assert args.valid_batch_size == HYPER["batch_size"]
    arguments = command("standard", {**RECIPE, "optimizer": "adamw", "scheduler": "ExponentialLR"})
    assert (parsed(arguments).optimizer, parsed(arguments).scheduler) == ("adamw", "ExponentialLR")


def test_amsgrad_off_and_recipe_flags_in_extra_args_are_refused():
    with pytest.raises(ValueError, match="AMSGrad"):
        command("standard", {**RECIPE, "amsgrad": False})
    for flag in ("--weight_decay=0", "--ema_decay=0.9", "--stress_weight=1", "--scheduler=X"):
        with pytest.raises(ValueError, match=flag.split("=")[0]):
            command("standard", {**RECIPE, "extra_args": [flag]})


@pytest.mark.parametrize(
    ("config_file", "stress_weight", "ema_decay"),
    [("config.yaml", 10.0, 0.99999), ("config.mace-mp-0.yaml", 100.0, 0.995)],
)
def test_study_configs_train_with_their_foundations_recipe(config_file, stress_weight, ema_decay):
    """Both studies' variants get the pretraining recipe of their foundation model
    (ACEsuit/mace-mp: mace_mp_0b3/mace-mp0-b3.sh and mace_mp_0a/2024-01-07-mace-128-L2.sh)."""
    from workflow_scripts.config import REPO_ROOT, load_config

    config = load_config(REPO_ROOT / config_file)
    trained = {n: v for n, v in config["variants"].items() if v["method"] != "zero_shot"}
    assert trained
    for name, variant in trained.items():
        hyper = train_command.resolve_hyperparameters(variant, config["mace"]["hyperparameters"])
        files = (
            FILES
            if variant["data"] == "perovs_dopants"
            else train_command.TrainingFiles(
                train=Path("t.extxyz"), replay=FILES.replay, foundation=FILES.foundation
            )
        )
        args = parsed(command(variant["method"], {**hyper, "e0s": "isolated_atoms"}, files))
        assert (args.energy_weight, args.forces_weight) == (1.0, 10.0), name
        assert args.stress_weight == stress_weight, name
        assert args.ema is True and args.ema_decay == ema_decay, name
        assert args.amsgrad is True and args.weight_decay == 1e-8, name
        assert (args.scheduler_patience, args.clip_grad, args.batch_size) == (5, 100.0, 16), name
        assert args.valid_batch_size == 32, name
        assert args.max_num_epochs == 20, name


def test_verification_catches_another_weight_or_ema_decay(tmp_path):
    files = train_command.TrainingFiles(train=tmp_path / "t", foundation=tmp_path / "f")
    single = _outputs(heads=("Default",), multihead=False, pt_file=None)
    single["log"]["weight_decay"] = 5e-7
    hyper = {**RECIPE, "ema": False}
    problems = train_check.verify_training("standard", hyper, files, single, {})
    assert problems == ["weight decay used 5e-07 != requested 1e-08"]
    single["log"].update(weight_decay=1e-8, ema_decay=0.99)
    problems = train_check.verify_training("standard", {**RECIPE}, files, single, {})
    assert problems == ["EMA decay used 0.99 != requested 0.99999"]

"""``--resume`` loads only search folders this user's FastTune signed: a crafted ``tuner.pkl``
(or trial ``params.pkl``) that would run code is refused with one error line, and its code
does not run. Also: the signing key's permissions, a failed start leaving nothing behind, and
the base config checked before Ray starts."""

from __future__ import annotations

import json
import os
import pickle

import pytest

from projects.FastTune.fasttune import trust
from projects.FastTune.fasttune.search import _remove_failed_start, _search_started
from projects.FastTune.tune_net import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RECIPE = os.path.join(REPO, "configs", "Synthetic", "bagtricks_R18.yml")


class Payload:
    """Unpickling this creates the folder ``marker``: proof that the file's code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def fake_search(folder, *, trial="run_trial_abc_00000_0_x"):
    """A search folder laid out as Ray leaves it (harmless contents)."""
    os.makedirs(os.path.join(folder, trial))
    with open(os.path.join(folder, "tuner.pkl"), "wb") as f:
        pickle.dump({"harmless": True}, f)
    with open(os.path.join(folder, "experiment_state-2026-01-01_00-00-00.json"), "w") as f:
        json.dump({"trial_data": []}, f)
    with open(os.path.join(folder, trial, "params.pkl"), "wb") as f:
        pickle.dump({"SOLVER.BASE_LR": 0.001}, f)
    with open(os.path.join(folder, trial, "log.txt"), "w") as f:
        f.write("a trial's log, changed by every run\n")
    return folder


def resume(tmp_path, capsys, out):
    import ray

    config = tmp_path / "search.yml"
    config.write_text(
        f"_BASE_: {RECIPE}\nTUNE:\n  SPACE:\n    SOLVER.BASE_LR: [loguniform, 1.0e-4, 1.0e-2]\n"
    )
    root = tmp_path / "datasets"
    if not root.exists():
        from fastreid.data.synthetic import generate_synthetic_dataset

        generate_synthetic_dataset(str(root), num_ids=4, seed=0, height=16, width=8, num_cams=2)
    with pytest.raises(SystemExit) as exit_info:
        cli(
            ["--config-file", str(config), "--srch-algo", "random", "--resume",
             "DATASETS.ROOT", str(root), "OUTPUT_DIR", str(out)]
        )  # fmt: skip
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    assert not ray.is_initialized()  # refused before Ray started
    return errors[0]


def test_a_crafted_tuner_pkl_is_refused_and_its_code_does_not_run(tmp_path, capsys):
    out = tmp_path / "out"
    folder = fake_search(str(out / "random"))
    marker = tmp_path / "code_ran"
    with open(os.path.join(folder, "tuner.pkl"), "wb") as f:
        pickle.dump(Payload(str(marker)), f)

    error = resume(tmp_path, capsys, out)
    assert "has no fasttune_signatures.json" in error and "was not written by FastTune" in error
    assert not marker.exists()


def test_a_signed_folder_whose_pickles_change_later_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    folder = fake_search(str(out / "random"))
    trust.sign_search_folder(folder)
    trust.verify_search_folder(folder)  # as signed: accepted
    with open(os.path.join(folder, "run_trial_abc_00000_0_x", "log.txt"), "a") as f:
        f.write("logs are not state: they may change\n")
    trust.verify_search_folder(folder)

    marker = tmp_path / "code_ran"
    with open(os.path.join(folder, "tuner.pkl"), "wb") as f:
        pickle.dump(Payload(str(marker)), f)
    error = resume(tmp_path, capsys, out)
    assert "tuner.pkl' was changed after FastTune signed it" in error
    assert not marker.exists()


@pytest.mark.parametrize(
    "name", ["run_trial_abc_00000_0_x/params.pkl", "run_trial_new/params.pkl", "searcher.pkl"]
)
def test_an_unsigned_or_changed_pickle_anywhere_is_refused(tmp_path, name):
    folder = fake_search(str(tmp_path / "search"))
    trust.sign_search_folder(folder)
    path = os.path.join(folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(Payload(str(tmp_path / "code_ran")), f)
    with pytest.raises(trust.UntrustedSearchError, match="Ray would run code from it"):
        trust.verify_search_folder(folder)
    assert not (tmp_path / "code_ran").exists()


def test_another_users_key_does_not_verify(tmp_path, monkeypatch):
    folder = fake_search(str(tmp_path / "search"))
    trust.sign_search_folder(folder)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "other_user"))
    trust.load_or_create_key()  # a different random key
    with pytest.raises(trust.UntrustedSearchError, match="was changed after FastTune signed it"):
        trust.verify_search_folder(folder)


def test_the_key_is_private_and_a_shared_key_is_refused(tmp_path):
    key = trust.load_or_create_key()
    path = trust.key_path()
    assert path.startswith(str(tmp_path / "config"))
    assert len(key) == 32 and os.stat(path).st_mode & 0o777 == 0o600
    assert trust.load_or_create_key() == key  # the same key every time
    os.chmod(path, 0o644)
    with pytest.raises(trust.UntrustedSearchError, match="chmod 600"):
        trust.load_or_create_key()


def test_no_key_means_nothing_is_trusted(tmp_path):
    folder = fake_search(str(tmp_path / "search"))
    with open(os.path.join(folder, trust.SIGNATURE_FILE), "w") as f:
        json.dump({"format": 1, "hmac_sha256": {"tuner.pkl": "0" * 64}}, f)
    with pytest.raises(trust.UntrustedSearchError, match="there is no FastTune key"):
        trust.verify_search_folder(folder)
    assert not os.path.exists(trust.key_path())  # verifying never creates a key


def test_a_start_that_failed_before_any_trial_leaves_nothing_that_blocks_a_rerun(tmp_path):
    folder = tmp_path / "pbt"
    folder.mkdir()
    (folder / "tuner.pkl").write_bytes(b"left by a failed start")
    assert not _search_started(str(folder))
    _remove_failed_start(str(folder))
    assert not (folder / "tuner.pkl").exists()

    started = fake_search(str(tmp_path / "random"))
    _remove_failed_start(started)  # a search that ran is never touched
    assert os.path.exists(os.path.join(started, "tuner.pkl"))


@pytest.mark.parametrize(
    "opts, message",
    [
        (["DATASETS.TESTS", "('SynthReID',)"], "No object named 'SynthReID' in the 'DATASET'"),
        (["DATASETS.NAMES", "('SynthReID',)"], "No object named 'SynthReID' in the 'DATASET'"),
        (["DATASETS.ROOT", "MISSING"], "DATASETS.ROOT '"),
        (
            ["TUNE.POINTS_TO_EVALUATE", "[{'SOLVER.BASE_LR': 0.5}]"],
            "TUNE.POINTS_TO_EVALUATE[0]: SOLVER.BASE_LR=0.5 is outside loguniform",
        ),
        (
            ["TUNE.POINTS_TO_EVALUATE", "[{'SOLVER.BASE_LRR': 0.001}]"],
            "'SOLVER.BASE_LRR' is not a searched key",
        ),
        (["--workers-per-trial", "0"], "--workers-per-trial must be at least 1, got 0"),
        (
            ["--workers-per-trial", "3"],
            "SOLVER.IMS_PER_BATCH 32 cannot be split over 3 processes per trial",
        ),
    ],
)
def test_a_bad_base_config_is_one_error_before_ray_starts(tmp_path, capsys, opts, message):
    import ray

    from fastreid.data.synthetic import generate_synthetic_dataset

    root = tmp_path / "datasets"
    generate_synthetic_dataset(str(root), num_ids=4, seed=0, height=16, width=8, num_cams=2)
    config = tmp_path / "search.yml"
    config.write_text(
        f"_BASE_: {RECIPE}\nTUNE:\n  SPACE:\n    SOLVER.BASE_LR: [loguniform, 1.0e-4, 1.0e-2]\n"
    )
    opts = [o.replace("MISSING", str(tmp_path / "missing")) for o in opts]
    flags, keys = (opts, []) if opts[0].startswith("--") else ([], opts)
    with pytest.raises(SystemExit) as exit_info:
        cli(
            ["--config-file", str(config), *flags, "DATASETS.ROOT", str(root),
             "OUTPUT_DIR", str(tmp_path / "out"), *keys]
        )  # fmt: skip
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], errors
    assert not ray.is_initialized()
    assert not (tmp_path / "out").exists()  # nothing written

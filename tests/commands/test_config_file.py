"""``--config FILE``: run configurations set options, the command line overrides them, mistakes are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aaclip_med import cli
from aaclip_med.commands.config_file import apply_config, read_config, split_config_argument

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ALL_CONFIGS = sorted(CONFIGS.rglob("*.json"))
# the spec numbers live once, in TrainConfig: a run configuration must not restate them
SPEC_KEYS = {"epochs_stage1", "epochs_stage2", "lr_stage1", "lr_stage2", "batch_size_stage1", "batch_size_stage2",
             "milestones", "disentangle_weight"}
ENV = {"DATA": "/data", "WORK": "/work/runs", "INPUT": "/data/study", "WEIGHTS": "a.safetensors", "CLIP_WEIGHTS": "c.pt"}


def _parse(command: str, values: dict, argv: list[str], source: str = "test.json"):
    parser = cli._command_parser(command)
    apply_config(parser, lambda: cli._command_parser(command, with_config=False), values, argv, source)
    return parser.parse_args(argv)


def _write(tmp_path, data) -> Path:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    return path


def test_the_shipped_configurations_cover_the_paper_and_the_modalities():
    names = {p.relative_to(CONFIGS).as_posix() for p in ALL_CONFIGS}
    tests = {"mvtec", "btad", "mpdd", "brain_mri", "liver_ct", "retina_oct", "kvasir", "clinicdb", "colondb", "cvc300"}
    assert {f"paper/test_{name}.json" for name in tests} <= names
    assert {"paper/train_visa.json", "paper/train_visa_2shot.json", "paper/train_visa_16shot.json",
            "paper/train_visa_64shot.json"} <= names
    assert {f"medical/{m}.json" for m in ("ct", "mr", "oct", "endoscopy")} <= names


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_every_section_of_every_configuration_parses(path, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    data = json.loads(path.read_text())
    assert isinstance(data.get("description"), str) and data["description"]
    sections = set(data) - {"description"}
    assert sections and sections <= set(cli.COMMANDS)
    for command in sections:
        values = read_config(path, command)
        args = _parse(command, values, [])
        for key, value in values.items():
            assert getattr(args, key) == value, (command, key)
        if command == "train":
            assert not SPEC_KEYS & set(values), "spec numbers belong to TrainConfig, not to a run configuration"


def test_paper_configurations_use_the_published_splits_and_protocol(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    train = read_config(CONFIGS / "paper/train_visa.json", "prepare")
    assert (train["dataset"], train["split"], train["root"]) == ("visa", "test", "/data/VisA_20220922")
    assert read_config(CONFIGS / "paper/train_visa_16shot.json", "train")["shot"] == 16
    for path in CONFIGS.glob("paper/test_*.json"):
        evaluate = read_config(path, "evaluate")
        assert evaluate["protocol"] == "paper" and evaluate["dataset"] == path.stem.removeprefix("test_")
        assert read_config(path, "infer")["manifest"] == read_config(path, "prepare")["out"] == evaluate["manifest"]


def test_command_line_overrides_and_positionals_come_from_the_file(tmp_path):
    values = {"dataset": "mvtec", "root": "/data/mvtec", "out": "m.jsonl", "split": "test", "seed": 3}
    args = _parse("prepare", values, ["--seed", "7"])
    assert (args.dataset, args.root, args.out, args.split, args.seed) == ("mvtec", "/data/mvtec", "m.jsonl", "test", 7)
    args = _parse("prepare", values, ["btad", "/data/btad"])  # positionals given: the file's are not used
    assert (args.dataset, args.root) == ("btad", "/data/btad")
    args = _parse("infer", {"inputs": ["/a", "/b"], "out": "o", "skip_empty": True, "batch_size": 2}, [])
    assert (args.inputs, args.out, args.skip_empty, args.batch_size) == (["/a", "/b"], "o", True, 2)


def test_mistakes_are_refused_with_the_file_and_the_choices(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"run.json: dataset_rot is no option of this command; .*dataset_root"):
        _parse("infer", {"dataset_rot": "x", "out": "o"}, [], "run.json")
    with pytest.raises(ValueError, match=r"\[protocol\]: 'papers' is not one of \['paper', 'deployment'\]"):
        _parse("evaluate", {"protocol": "papers"}, [])
    with pytest.raises(ValueError, match=r"\[batch_size\]: 'eight' is not a valid value for --batch-size"):
        _parse("infer", {"batch_size": "eight", "out": "o"}, [])
    with pytest.raises(ValueError, match=r"--skip-empty is a switch"):
        _parse("infer", {"skip_empty": "yes", "out": "o"}, [])
    monkeypatch.delenv("AACLIP_TEST_UNSET", raising=False)
    path = _write(tmp_path, {"infer": {"out": "${AACLIP_TEST_UNSET}/o"}})
    with pytest.raises(ValueError, match=r"run.json \[infer.out\]: environment variable AACLIP_TEST_UNSET is not set"):
        read_config(path, "infer")
    assert read_config(_write(tmp_path, {"infer": {"out": "${AACLIP_TEST_UNSET:-runs}/o"}}), "infer")["out"] == "runs/o"
    with pytest.raises(ValueError, match=r"has no 'train' section; it has: infer"):
        read_config(path, "train")
    assert split_config_argument(["--out", "o", "--config=a.json", "x"]) == ("a.json", ["--out", "o", "x"])


def test_cli_prepare_from_the_shipped_mvtec_configuration(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data" / "mvtec_anomaly_detection" / "bottle"
    for folder in ("test/good", "test/broken_large", "ground_truth/broken_large"):
        (root / folder).mkdir(parents=True)
    image = np.full((16, 16, 3), 90, np.uint8)
    Image.fromarray(image).save(root / "test/good/000.png")
    Image.fromarray(image).save(root / "test/broken_large/000.png")
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(root / "ground_truth/broken_large/000_mask.png")
    monkeypatch.setenv("DATA", str(tmp_path / "data"))
    monkeypatch.setenv("WORK", str(tmp_path / "runs"))
    assert cli.main(["prepare", "--config", str(CONFIGS / "paper/test_mvtec.json")]) == 0
    lines = [json.loads(line) for line in (tmp_path / "runs/manifests/mvtec_test.jsonl").read_text().splitlines()]
    assert [(r["class_name"], r["label"], r["mask_path"]) for r in lines] == [
        ("bottle", 1.0, "bottle/ground_truth/broken_large/000_mask.png"), ("bottle", 0.0, "")]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["prepare", "--config", str(tmp_path / "missing.json")])
    assert exit_info.value.code == 2 and "cannot read the run configuration" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "key", "value"), [("infer", "inputs", "sample_data/x"),
                                                       ("train", "milestones", "3")])
def test_a_string_where_a_list_belongs_is_refused(command, key, value):
    """Read as a list, the string would be split into characters ("input s: no such file")."""
    with pytest.raises(ValueError, match=rf"test.json \[{key}\]: .* takes a list \(e.g. \[\"a\", \"b\"\]\), "
                                         rf"got the string {value!r}"):
        _parse(command, {key: value}, [])

"""The bundle commands the tests run, exactly as bundles/aaclip_zero_shot/docs/README.md shows them.

Each command is a template: the README's placeholder folders (``/data/...``) are replaced by the
test's folders, ``python``/``torchrun`` by the virtual environment's, and the tiny-model overrides
are appended, so the same command line a user types is what runs here.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

BUNDLE_DIR = Path(__file__).resolve().parents[2] / "bundles" / "aaclip_zero_shot"

# README placeholders -> keys of the folders a test passes to `command_argv`
PLACEHOLDERS = {
    "/data/train_set": "train_set",
    "/data/test_set": "test_set",
    "/data/cases": "cases",
}

COMMANDS = {
    "verify_metadata": (
        "python -m monai.bundle verify_metadata --meta_file configs/metadata.json"
        " --filepath docs/meta_schema_20240725.json"
    ),
    "verify_net_in_out": (
        "python -m monai.bundle verify_net_in_out network_def --meta_file configs/metadata.json"
        " --config_file configs/inference.json"
    ),
    "save_checkpoint": "python -m monai.bundle run --config_file \"['configs/inference.json','configs/export.json']\"",
    "ckpt_export": (
        "python -m monai.bundle ckpt_export network_def --filepath models/model.ts --ckpt_file models/model.pt"
        " --config_file configs/inference.json --use_trace True"
    ),
    "inference_exported": (
        "python -m monai.bundle run --config_file \"['configs/inference.json','configs/inference_exported.json']\""
        " --dataset_dir /data/cases"
    ),
    "verify_net_in_out_other_size": (
        "python -m monai.bundle verify_net_in_out network_def --meta_file configs/metadata.json"
        " --config_file configs/inference.json --image_size 224"
        " --_meta_#network_data_format#inputs#image#spatial_shape \"[224,224]\""
    ),
    "train_stage1": (
        "python -m monai.bundle run --config_file configs/train.json --dataset_dir /data/train_set --stages \"[1]\""
    ),
    "train_stage2": (
        "python -m monai.bundle run --config_file configs/train.json --dataset_dir /data/train_set --stages \"[2]\""
    ),
    "inference": "python -m monai.bundle run --config_file configs/inference.json --dataset_dir /data/cases",
    "evaluate": (
        "python -m monai.bundle run --config_file \"['configs/inference.json','configs/evaluate.json']\""
        " --dataset_dir /data/test_set"
    ),
    "multi_gpu_train": (
        "torchrun --nproc_per_node 2 -m monai.bundle run"
        " --config_file \"['configs/train.json','configs/multi_gpu_train.json']\" --dataset_dir /data/train_set"
    ),
    "multi_gpu_inference": (
        "torchrun --nproc_per_node 2 -m monai.bundle run"
        " --config_file \"['configs/inference.json','configs/multi_gpu_inference.json']\" --dataset_dir /data/cases"
    ),
}



def tiny_model(weights: Path | str) -> list[str]:
    """Overrides for a tiny CLIP (same code path as ViT-L-14-336, seconds on a CPU).

    ``weights``: a local weights file (seeded, so separate runs build the same network) or "random".
    """
    return ["--backbone", "aaclip-tiny", "--image_size", "112", "--backbone_weights", str(weights)]

# one short epoch per stage
TINY_TRAINING = ["--stage1#epochs", "1", "--stage2#epochs", "1", "--stage1#batch_size", "2", "--stage2#batch_size", "2"]


def command_argv(name: str, folders: Mapping[str, Path], extra: Sequence[str] = ()) -> list[str]:
    """The argv of command ``name`` with the test's folders, this venv's executables and ``extra``."""
    argv = shlex.split(COMMANDS[name])
    argv = [str(folders[PLACEHOLDERS[a]]) if a in PLACEHOLDERS else a for a in argv]
    if argv[0] == "python":
        argv[0] = sys.executable
    elif argv[0] == "torchrun":
        # `python -m torch.distributed.run` is what the torchrun script runs; a free port keeps
        # concurrent test runs on one machine apart
        argv[:1] = [sys.executable, "-m", "torch.distributed.run", "--master_port", str(_free_port())]
    return argv + list(extra)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_command(name: str, bundle: Path, folders: Mapping[str, Path], extra: Sequence[str] = (),
                timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a bundle command in ``bundle`` (its working directory); fail with its output if it fails."""
    # CPU only (gloo for the 2-process runs), whatever the machine has
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    argv = command_argv(name, folders, extra)
    proc = subprocess.run(argv, cwd=bundle, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-6000:]
        raise AssertionError(f"{name} failed (exit {proc.returncode}): {shlex.join(argv)}\n{tail}")
    return proc

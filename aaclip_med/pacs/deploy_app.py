"""The DICOM-folder flow of ``aaclip-med pacs`` as a MONAI Deploy App SDK application (``deploy`` extra).

Two operators on the SDK's (Holoscan) runtime:

1. :class:`SeriesIntakeOperator` files every DICOM series found under the input folder into
   ``OUT/incoming/<key>/`` (as ``pacs listen`` files what it receives);
2. :class:`AAClipSeriesOperator` checks, infers and records each series with the package's
   :class:`~aaclip_med.pacs.processing.SeriesProcessor`, i.e. the same
   :func:`~aaclip_med.inference.run_inference` call and DICOM SEG / Parametric Map writers as
   ``pacs run`` and ``aaclip-med infer --dicom-out``. Results stay in ``OUT/results/<key>/``: a
   MONAI Deploy app hands its output folder to the platform, which routes it (there is no
   network store here).

Run it with the SDK's conventions (``-i`` input, ``-o`` output, or ``HOLOSCAN_INPUT_PATH`` /
``HOLOSCAN_OUTPUT_PATH``)::

    python -m aaclip_med.pacs.deploy_app -i dicom_in -o out --weights adapters.safetensors

Runs on CPU: Holoscan falls back to host memory when no CUDA driver is present.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

import pydicom

from aaclip_med.data.dicom import find_dicom_series
from aaclip_med.data.errors import DataError
from aaclip_med.inference.options import InferenceOptions
from aaclip_med.packages import require
from aaclip_med.pacs.processing import SeriesProcessor
from aaclip_med.pacs.state import INCOMING_DIR, instance_name, series_key

_deploy = require("monai.deploy.core", "the MONAI Deploy app")
Application, Operator, OperatorSpec = _deploy.Application, _deploy.Operator, _deploy.OperatorSpec

__all__ = ["AAClipDeployApp", "SeriesIntakeOperator", "AAClipSeriesOperator", "main"]

logger = logging.getLogger(__name__)


def _intake(source: Path, out_dir: Path) -> list[str]:
    """Copy each DICOM series under ``source`` to ``out_dir/incoming/<key>/``; returns the keys."""
    try:
        # every series, reports too: the processor records a non-image series as "ignored" (as pacs listen)
        series = find_dicom_series(source, recursive=True, images_only=False)
    except DataError as err:
        raise DataError(source, "holds no DICOM series for the app") from err
    keys = []
    for found in series:
        key = series_key(found.uid)
        folder = out_dir / INCOMING_DIR / key
        folder.mkdir(parents=True, exist_ok=True)
        for path in found.files:
            sop = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            shutil.copyfile(path, folder / instance_name(sop))
        keys.append(key)
    logger.info("intake: %d series from %s", len(keys), source)
    return keys


def _keep_local(files, what) -> list[str]:
    """The app's "store": results stay in the output folder; returns their SOP Instance UIDs."""
    return [str(pydicom.dcmread(str(p), stop_before_pixels=True).SOPInstanceUID) for p in files]


class SeriesIntakeOperator(Operator):
    """Emits the keys of the DICOM series found under ``input_folder`` (copied to the output folder)."""

    def __init__(self, fragment, *args, input_folder: Path, output_folder: Path, **kwargs) -> None:
        self.input_folder, self.output_folder = Path(input_folder), Path(output_folder)
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.output("series_keys")

    def compute(self, op_input, op_output, context) -> None:
        op_output.emit(_intake(self.input_folder, self.output_folder), "series_keys")


class AAClipSeriesOperator(Operator):
    """Infers each received series key with :class:`SeriesProcessor`; keeps the statuses in ``self.statuses``."""

    def __init__(self, fragment, *args, model, options: InferenceOptions, output_folder: Path, **kwargs) -> None:
        self.processor = SeriesProcessor(model, options, output_folder, _keep_local, keep_sources=False)
        self.statuses: dict[str, str] = {}
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("series_keys")

    def compute(self, op_input, op_output, context) -> None:
        for key in op_input.receive("series_keys"):
            self.statuses[key] = self.processor.process(key)
        logger.info("aaclip: %s", ", ".join(f"{k} {s}" for k, s in self.statuses.items()))


class AAClipDeployApp(Application):
    """Input folder of DICOM series -> DICOM SEG / Parametric Map per series in the output folder.

    Args:
        model: the network (e.g. from ``load_adapters``).
        options: inference settings (default :class:`InferenceOptions`; ``threshold`` for a SEG),
            checked against ``model`` here.
        input_folder, output_folder: default to the SDK's input/output (``-i``/``-o`` or
            ``HOLOSCAN_INPUT_PATH``/``HOLOSCAN_OUTPUT_PATH``).
    """

    def __init__(self, model, options: InferenceOptions | None = None, input_folder=None, output_folder=None,
                 *args, **kwargs) -> None:
        options = (options or InferenceOptions()).replace(dicom=True)
        options.check_model(model)  # refused here, at start, rather than once per series
        super().__init__(*args, **kwargs)
        # Application already has an ``options`` property: our attributes carry a prefix
        self.aaclip_model, self.aaclip_options = model, options
        self.input_folder, self.output_folder = input_folder, output_folder
        self.statuses: dict[str, str] = {}

    def compose(self) -> None:
        from holoscan.conditions import CountCondition

        context = None if self.input_folder and self.output_folder else Application.init_app_context({})
        source = Path(self.input_folder or context.input_path)
        target = Path(self.output_folder or context.output_path)
        intake = SeriesIntakeOperator(self, CountCondition(self, 1), input_folder=source, output_folder=target,
                                      name="series_intake")
        infer = AAClipSeriesOperator(self, model=self.aaclip_model, options=self.aaclip_options, output_folder=target,
                                     name="aaclip")
        self.statuses = infer.statuses
        self.add_flow(intake, infer, {("series_keys", "series_keys")})


def main(argv: list[str] | None = None) -> int:
    """``python -m aaclip_med.pacs.deploy_app -i IN -o OUT [model and inference options]``.

    The options are those of ``aaclip-med pacs run`` (one declaration); a bad value is refused in
    one line before the model is built or any series is read.
    """
    from aaclip_med.arguments import (
        add_inference_arguments,
        add_model_arguments,
        check_model_arguments,
        inference_options_from_args,
        model_from_args,
    )
    from aaclip_med.flags import cli_message

    parser = argparse.ArgumentParser(prog="aaclip_med.pacs.deploy_app", description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--input", required=True, help="folder of DICOM series")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    add_inference_arguments(parser, dicom_flag=False)
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        check_model_arguments(args)
        options = inference_options_from_args(args, dicom=True)
        import torch

        torch.manual_seed(args.seed)
        app = AAClipDeployApp(model_from_args(args, options=options), options, args.input, args.output)
    except (ValueError, OSError) as err:
        print(f"{parser.prog}: error: {cli_message(err)}", file=sys.stderr)
        return 1
    app.run()
    failed = [k for k, s in app.statuses.items() if s == "failed"]
    print(f"{len(app.statuses) - len(failed)} series done or ignored, {len(failed)} failed -> {args.output}")
    return 1 if failed or not app.statuses else 0


if __name__ == "__main__":
    sys.exit(main())

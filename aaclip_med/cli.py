"""``aaclip-med`` command line: one subcommand per job, each a thin layer over library functions.

Each subcommand lives in ``aaclip_med/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so ``aaclip-med --help``
stays fast and one broken optional dependency cannot break the other commands. Command modules
import only the standard library at module level (torch, MONAI and open_clip inside ``run``), so
``aaclip-med CMD --help``, option errors and path checks answer at once. Every option's default
is shown in ``--help`` (:class:`_HelpFormatter`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from aaclip_med.commands.config_file import CONFIG_OPTION, apply_config, read_config, split_config_argument
from aaclip_med.flags import cli_message

__all__ = ["main", "COMMANDS"]

# open_clip's notice while a model is built, before its weights are read (or when aaclip-med's own
# "RANDOM weights" warning says it once, clearly)
_RANDOM_INIT_NOTICE = "initialized randomly"
# ignite's line when Ctrl-C stops an engine: the exception has no text (our own line follows)
_IGNITE_INTERRUPT = "Engine run is terminating due to exception:"

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "infer": ("aaclip_med.commands.infer", "anomaly maps, overlays and scores for images, DICOM or NIfTI"),
    "train": ("aaclip_med.commands.train", "two-stage AA-CLIP training on a manifest"),
    "evaluate": ("aaclip_med.commands.evaluate", "metrics and reports from predictions + ground truth"),
    "prepare": ("aaclip_med.commands.prepare", "write a manifest for a public dataset layout or a cohort"),
    "import-weights": ("aaclip_med.commands.import_weights", "convert the authors' text/image adapter .pth files"),
    "sample": ("aaclip_med.commands.sample", "generate the bundled multi-modality sample data set"),
    "demo": ("aaclip_med.commands.demo", "sample data -> inference -> overlays -> evaluation report"),
    "references": ("aaclip_med.commands.references", "build a reference memory of normal scans for 'infer --references'"),
    "export": ("aaclip_med.commands.export", "one graph from image to anomaly map: TorchScript, ONNX, OpenVINO, int8"),
    "pacs": ("aaclip_med.commands.pacs", "PACS: retrieve series (DICOMweb) or receive them (DIMSE), store SEG/PM back"),
}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None, False, a help text
    that already states it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS or "default" in text:
            return text
        return super()._get_help_string(action)


def _version() -> str:
    from aaclip_med import __version__

    return f"aaclip-med {__version__}"


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aaclip-med", description="AA-CLIP anomaly detection for MONAI pipelines.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Our own progress messages show by default; -v / -vv open the rest (set every time, since an
    # earlier call in the same process may have set another level).
    logging.getLogger("aaclip_med").setLevel(logging.INFO if verbosity < 2 else logging.DEBUG)
    # MONAI announces on every DICOM import that the optional GPU JPEG decoder is absent; that is
    # expected on CPU machines and hides the messages that matter.
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*nvImageCodec decoder plugin did not register.*")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _DropNoise) for f in handler.filters):
            handler.addFilter(_DropNoise())


class _DropNoise(logging.Filter):
    """Drops other libraries' log lines that would mislead a CLI user (see the constants above)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return _RANDOM_INIT_NOTICE not in message and message.strip() != _IGNITE_INTERRUPT


def _command_parser(command: str, with_config: bool = True) -> argparse.ArgumentParser:
    module_name, help_text = COMMANDS[command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"aaclip-med {command}", description=help_text, formatter_class=_HelpFormatter)
    module.add_arguments(parser)
    if with_config:
        parser.add_argument(CONFIG_OPTION, metavar="FILE", help="run configuration (JSON, e.g. from the project's "
                            f"configs/): its '{command}' section sets options; the command line overrides them")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aaclip-med`` console script; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    top, rest = parser.parse_known_args(argv)
    if top.command is None:
        parser.print_help()
        return 2
    sub = _command_parser(top.command)
    try:  # a run configuration's section: defaults that the command line overrides
        config_path, rest = split_config_argument(rest)
        if config_path is not None:
            values = read_config(config_path, top.command)
            apply_config(sub, lambda: _command_parser(top.command, with_config=False), values, rest, config_path)
    except ValueError as err:
        sub.error(str(err))
    args = sub.parse_args(rest)
    _configure_logging(top.verbose)
    module = importlib.import_module(COMMANDS[top.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("\naaclip-med: interrupted; finished outputs are kept, re-run the same command to resume", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, ImportError) as err:
        # Errors users can act on: print the message (it names the file and the fix, or the extra
        # to install), no traceback.
        print(f"aaclip-med {top.command}: error: {cli_message(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

"""One series, from its folder of instances to results stored at the destination.

The same steps serve ``pacs run`` (DICOMweb) and ``pacs listen`` (DIMSE); only the ``store``
callable differs (STOW-RS or C-STORE). Inference is the package's own
:func:`aaclip_med.inference.run_inference` with DICOM outputs on, called in exactly one place
(:func:`infer_series`), so the SEG and Parametric Map are those of ``aaclip-med infer --dicom-out``.

Layout of the output folder::

    OUT/state/<key>.json            what was done to each series (see state.py)
    OUT/incoming/<key>/*.dcm        the series as received/retrieved (removed once stored,
                                    unless keep_sources)
    OUT/results/<key>/              run_inference's outputs: <key>_anomaly.nii.gz, <key>_pmap.dcm,
                                    <key>_seg.dcm (with a threshold), <key>_scores.json, run.json ...

``<key>`` is a hash of the SeriesInstanceUID (:func:`~aaclip_med.pacs.state.series_key`).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from torch import nn

from aaclip_med.inference.errors import short_error
from aaclip_med.inference.options import InferenceOptions
from aaclip_med.inference.resume import RUN_FILE
from aaclip_med.pacs.errors import NotAnImageSeries, PacsError, SeriesError
from aaclip_med.pacs.series import SeriesInfo, inspect_series, preset_for_modality
from aaclip_med.pacs.state import FINISHED, INCOMING_DIR, RESULTS_DIR, SeriesState
from aaclip_med.pacs.uids import assign_result_uids

__all__ = ["infer_series", "SeriesProcessor", "StoreFn", "output_files"]

logger = logging.getLogger(__name__)

StoreFn = Callable[[Sequence[Path], str], list[str]]
"""store(files, what) -> their SOP Instance UIDs; raises PacsError."""


def infer_series(model: nn.Module, options: InferenceOptions, modality: str, source: Path, out_dir: Path) -> dict:
    """The one call of the inference library: ``source`` (one series) -> ``out_dir``; returns its summary.

    ``options`` are used as given (every setting, slicing included), with the series' ``modality``
    preset and DICOM outputs on.
    """
    from aaclip_med.distributed import working_alone
    from aaclip_med.inference import run_inference

    with working_alone():  # under torchrun, each rank infers its own series: no collective with the others
        return run_inference([source], out_dir, model, options.replace(modality=modality, dicom=True))


def output_files(results: Path, key: str) -> list[Path]:
    """The DICOM objects written for series ``key``: Parametric Map, then SEG when a threshold was set."""
    return [p for p in (results / f"{key}_pmap.dcm", results / f"{key}_seg.dcm") if p.is_file()]


class SeriesProcessor:
    """Checks, infers and stores series of an output folder, recording each step in its state.

    Args:
        model: the network (built once, used for every series).
        options: inference settings (default :class:`InferenceOptions`; DICOM outputs are always
            written). They are checked against ``model`` here, before any series is touched.
        out_dir: the output folder (see module docstring).
        store: sends the DICOM outputs to the destination.
        keep_sources: keep ``incoming/<key>`` after the results are stored.
    """

    def __init__(self, model: nn.Module, options: InferenceOptions | None, out_dir: str | Path, store: StoreFn,
                 keep_sources: bool = False) -> None:
        from aaclip_med.inference.api import settle_options

        options = (options or InferenceOptions()).replace(dicom=True)
        options.check_model(model)  # e.g. a threshold no map can reach: refused once, not per series
        options = settle_options(options, model)  # the reference memory read once, not per series
        self.model, self.options, self.store, self.keep_sources = model, options, store, keep_sources
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.state = SeriesState(self.out_dir)

    def incoming(self, key: str) -> Path:
        return self.out_dir / INCOMING_DIR / key

    def results(self, key: str) -> Path:
        return self.out_dir / RESULTS_DIR / key

    def _infer(self, key: str, info: SeriesInfo) -> list[Path]:
        modality = preset_for_modality(self.options.modality, info)
        logger.info("series %s: %s, %d instance(s), preset %s", info.series_uid, info.modality, info.instances, modality)
        summary = infer_series(self.model, self.options, modality, self.incoming(key), self.results(key))
        if summary["failed"]:
            raise SeriesError(f"series {info.series_uid}: inference failed: {summary['failed'][0]['error']}")
        files = output_files(self.results(key), key)
        if not files:
            raise SeriesError(f"series {info.series_uid}: no DICOM output was written (is it a DICOM image series?)")
        return files

    def _send(self, key: str, record: dict) -> dict:
        files = [self.results(key) / name for name in record["outputs"]]
        missing = [p.name for p in files if not p.is_file()]
        if missing:
            raise SeriesError(f"series {record['series_uid']}: output {', '.join(missing)} vanished; "
                              f"delete {self.results(key)} and {self.state.file(key)} to redo it")
        stored = self.store(files, f"results of series {record['series_uid']}")
        logger.info("series %s: stored %s", record["series_uid"], ", ".join(record["outputs"]))
        record = self.state.update(key, status="done", stored=stored, error=None)
        if not self.keep_sources:
            self.remove_incoming(key)
        return record

    def remove_incoming(self, key: str) -> None:
        """Delete the received/retrieved instances of series ``key``."""
        shutil.rmtree(self.incoming(key), ignore_errors=True)

    def process(self, key: str, series_uid: str | None = None, fetch: Callable[[], object] | None = None,
                non_image_fails: bool = False) -> str:
        """Bring series ``key`` to "done" from wherever it stands; returns its status.

        A finished series is left alone ("done"/"ignored"); an inferred one is only stored; else
        ``fetch()`` (if given) puts its instances into ``incoming/<key>``, then it is checked,
        inferred and stored. A bad series is recorded "failed" with a one-line error naming its
        UID; a series that is not an image series is "ignored" (or "failed" with
        ``non_image_fails``: the user asked for it by UID). :class:`ServerError` propagates and the
        record keeps its step, so that a later attempt resumes there.
        """
        record = self.state.get(key) or {}
        if record.get("status") in FINISHED:
            return record["status"]
        label = series_uid or record.get("series_uid") or key
        try:
            if record.get("status") != "inferred":
                if fetch is not None:
                    fetch()
                record = self._check_and_infer(key, series_uid)
            return self._send(key, record)["status"]
        except NotAnImageSeries as err:
            status = "failed" if non_image_fails else "ignored"
            logger.log(logging.ERROR if non_image_fails else logging.WARNING, "%s; skipped", err)
            self.state.update(key, status=status, series_uid=label, error=str(err))
            if not self.keep_sources:
                self.remove_incoming(key)
            return status
        except SeriesError as err:
            return self._fail(key, label, str(err))
        except PacsError:  # server-wide (ServerError): the caller decides
            raise
        except (ValueError, OSError, RuntimeError) as err:
            return self._fail(key, label, f"series {label}: {short_error(err, 300)}")

    def _check_and_infer(self, key: str, series_uid: str | None) -> dict:
        info = inspect_series(self.incoming(key), series_uid)
        files = self._infer(key, info)
        # UIDs from the source series and the run's identity: storing again replaces, never duplicates
        uids = assign_result_uids(files, info.series_uid, self.results(key) / RUN_FILE)
        return self.state.update(key, status="inferred", study_uid=info.study_uid, series_uid=info.series_uid,
                                 modality=info.modality, instances=info.instances, outputs=[p.name for p in files],
                                 output_uids=uids, error=None)

    def _fail(self, key: str, label: str, message: str) -> str:
        logger.error("%s", message)
        self.state.update(key, status="failed", series_uid=label, error=message)
        return "failed"

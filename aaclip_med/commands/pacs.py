"""``aaclip-med pacs run | listen | status``: inference on series of a PACS, results stored back (see docs/pacs.md).

Thin layer over :func:`aaclip_med.pacs.run_pacs` (DICOMweb, one process or torchrun ranks),
:func:`aaclip_med.pacs.listen` (DIMSE) and the status files of an archive run. Secrets are never options: a password or token comes from ``$AACLIP_PACS_PASSWORD`` /
``$AACLIP_PACS_TOKEN`` or from ``--password-file`` / ``--token-file``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from aaclip_med.arguments import (
    add_inference_arguments,
    add_model_arguments,
    check_model_arguments,
    inference_options_from_args,
    model_from_args,
)
from aaclip_med.pacs.settings import PAGE_SIZE

__all__ = ["add_arguments", "run"]

logger = logging.getLogger(__name__)


def _add_infer_arguments(parser: argparse.ArgumentParser) -> None:
    # the same declaration as 'aaclip-med infer' (DICOM outputs are always written here)
    add_inference_arguments(parser, dicom_flag=False)
    add_model_arguments(parser)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="DICOMweb root, e.g. http://pacs:8042/dicom-web")
    parser.add_argument("--study", action="append", default=[], metavar="UID", help="a Study Instance UID (repeatable)")
    parser.add_argument("--series", action="append", default=[], metavar="UID", help="a Series Instance UID (repeatable)")
    parser.add_argument("--query", help="QIDO-RS series filters, e.g. 'Modality=MR&StudyDate=20240101-20240131'")
    parser.add_argument("--out", required=True, help="output folder (the only place written to)")
    auth = parser.add_argument_group("connection (secrets from $AACLIP_PACS_PASSWORD / $AACLIP_PACS_TOKEN or files)")
    auth.add_argument("--user", help="HTTP basic user (default $AACLIP_PACS_USER)")
    auth.add_argument("--password-file", help="file holding the HTTP basic password on one line")
    auth.add_argument("--token-file", help="file holding a bearer token on one line")
    auth.add_argument("--ca-bundle", help="PEM file of the CA(s) to trust for https")
    auth.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (test servers only)")
    auth.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server (default 30)")
    auth.add_argument("--retries", type=int, default=3, help="retries after a refused connection, timeout, 429/502/503/504")
    parser.add_argument("--keep-sources", action="store_true", help="keep the retrieved instances in OUT/incoming")
    parser.add_argument("--refresh-query", action="store_true",
                        help="search again and add new series to the work list stored in OUT")
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE, help=f"series per QIDO-RS page (default {PAGE_SIZE})")
    _add_infer_arguments(parser)


def _add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="the output folder of a pacs run (readable while it runs)")


def _add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ae-title", required=True, help="our AE title (senders call it)")
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    parser.add_argument("--forward", required=True, metavar="HOST:PORT:AE", help="where SEG / Parametric Map go (C-STORE)")
    parser.add_argument("--out", required=True, help="output folder (the only place written to)")
    parser.add_argument("--quiet-seconds", type=float, default=30.0, help="a series is complete after this long without news")
    parser.add_argument("--resend-seconds", type=float, default=60.0, help="wait before re-sending to a destination that was down")
    parser.add_argument("--accept-from", action="append", default=[], metavar="AE", help="accept only these calling AEs")
    parser.add_argument("--timeout", type=float, default=30.0, help="network timeout of associations (s)")
    parser.add_argument("--keep-sources", action="store_true", help="keep received instances in OUT/incoming")
    _add_infer_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="pacs_command", metavar="{run,listen,status}", required=True)
    # no abbreviations: "--password SECRET" must be an error, not the prefix of --password-file
    _add_run_arguments(sub.add_parser("run", allow_abbrev=False,
                                      help="DICOMweb: retrieve series, infer, store SEG / Parametric Map back"))
    _add_listen_arguments(sub.add_parser("listen", allow_abbrev=False,
                                         help="DIMSE: receive series, infer each when complete, forward results"))
    _add_status_arguments(sub.add_parser("status", help="progress of a pacs run: every rank, their sum, the work list"))


def _options(args: argparse.Namespace):
    """The run's InferenceOptions, validated (a bad value is refused before any model or series work)."""
    return inference_options_from_args(args, dicom=True)


def _model(args: argparse.Namespace, options):
    import torch  # here, not at import: `pacs --help` and option errors answer without torch

    torch.manual_seed(args.seed)  # (a random backbone is announced once, by the backbone loader)
    return model_from_args(args, options=options)


def _run(args: argparse.Namespace, options) -> int:
    from aaclip_med.pacs import DicomWebServer, read_credentials, run_pacs
    from aaclip_med.pacs.run import EXIT_NOTHING_MATCHED
    from aaclip_med.pacs.worklist import describe_request

    credentials = read_credentials(args.user, args.password_file, args.token_file)
    server = DicomWebServer(args.url, credentials, args.ca_bundle, not args.insecure, args.timeout, args.retries)
    record = run_pacs(server, _model(args, options), args.out, studies=args.study, series=args.series, query=args.query,
                      options=options, keep_sources=args.keep_sources, refresh_query=args.refresh_query,
                      page_size=args.page_size)
    counts = record["counts"]
    if not record["merged"]:  # another rank is still at work; the last one to finish prints the run's summary
        print(f"rank {record['rank']}/{record['world_size']} finished its share: done {counts['done']}, "
              f"ignored {counts['ignored']}, failed {counts['failed']}; the other ranks go on -> {args.out}")
        return 0
    if not record["worklist"]:
        print(f"no series matched {describe_request(record['request'])} on {record['server']}: nothing to do "
              f"(exit status {EXIT_NOTHING_MATCHED})")
        for item in record["request_errors"]:
            print(f"  {item['error']}")
        return EXIT_NOTHING_MATCHED
    rate = record["throughput"]["series_per_hour"]
    print(f"done {counts['done']}, skipped {counts['skipped']}, ignored {counts['ignored']}, "
          f"failed {counts['failed']}, not processed {counts['not processed']} ({rate:.1f} series/h over "
          f"{len(record['throughput']['ranks'])} rank(s)) -> {args.out}")
    for item in [*record["request_errors"], *record["failures"]]:
        print(f"  failed: {item['error']}")
    return 1 if counts["failed"] or counts["not processed"] else 0


def _status(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from aaclip_med.pacs.progress import read_rank_status, status_table
    from aaclip_med.pacs.run import RUN_RECORD, overall_counts

    out = Path(args.out)
    path = out / RUN_RECORD
    if not path.is_file():
        raise ValueError(f"{out} holds no pacs run ({RUN_RECORD} is missing)")
    record = json.loads(path.read_text(encoding="utf-8"))
    ranks = read_rank_status(out, record.get("run_id"))
    print(f"run {record.get('run_id')} started {record.get('started')} on {record.get('world_size')} rank(s), "
          + (f"finished {record['finished']}" if record.get("finished") else "not finished"))
    print(status_table(ranks, overall_counts(out)))
    failures = [f for r in ranks for f in r.get("failures", [])]
    for failure in failures:
        print(f"  failed: {failure['error']}")
    return 0


def _listen(args: argparse.Namespace, options) -> int:
    from aaclip_med.pacs import DimseNode, listen

    forward = DimseNode.parse(args.forward)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    counts = listen(_model(args, options), args.out, ae_title=args.ae_title, port=args.port, forward=forward,
                    options=options, host=args.host, quiet_seconds=args.quiet_seconds,
                    resend_seconds=args.resend_seconds, accept_from=args.accept_from, keep_sources=args.keep_sources,
                    timeout=args.timeout, stop=stop)
    print(f"stopped: done {counts['done']}, ignored {counts['ignored']}, failed {counts['failed']}, "
          f"waiting to be forwarded {counts['waiting_to_forward']}, not processed {counts['not_processed']}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.pacs_command == "status":
        return _status(args)
    # pynetdicom logs whole PDUs at debug level; its info lines are enough for network problems
    logging.getLogger("pynetdicom").setLevel(max(logging.getLogger("pynetdicom").getEffectiveLevel(), logging.INFO))
    check_model_arguments(args)  # wrong paths and sizes are refused before any model work
    options = _options(args)
    return _run(args, options) if args.pacs_command == "run" else _listen(args, options)

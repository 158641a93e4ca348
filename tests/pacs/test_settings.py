"""PACS settings without a server: credentials never on the command line, URLs, nodes, queries, state."""

from __future__ import annotations

import json
import logging

import pytest

from aaclip_med.cli import main
from aaclip_med.pacs import Credentials, DicomWebServer, DimseNode, SeriesState, read_credentials, series_key
from aaclip_med.pacs.dicomweb import parse_query, redacted_query


def test_credentials_from_environment():
    creds = read_credentials(environ={"AACLIP_PACS_USER": "alice", "AACLIP_PACS_PASSWORD": "pw"})
    assert (creds.user, creds.password, creds.token, creds.source) == ("alice", "pw", None, "$AACLIP_PACS_PASSWORD")
    assert "pw" not in repr(creds)
    assert read_credentials(environ={}).source == "none"


def test_credentials_from_files_win_over_environment(tmp_path, caplog):
    secret = tmp_path / "pw.txt"
    secret.write_text("file-pw\n")
    secret.chmod(0o600)
    creds = read_credentials("bob", password_file=secret, environ={"AACLIP_PACS_PASSWORD": "env-pw"})
    assert (creds.user, creds.password) == ("bob", "file-pw") and str(secret) in creds.source
    token = tmp_path / "token.txt"
    token.write_text("tok")
    token.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="aaclip_med"):
        assert read_credentials(token_file=token, environ={}).token == "tok"
    assert "readable by other users; chmod 600" in caplog.text


@pytest.mark.parametrize(("kwargs", "environ", "message"), [
    ({}, {"AACLIP_PACS_PASSWORD": "pw"}, "no user"),
    ({}, {"AACLIP_PACS_USER": "a", "AACLIP_PACS_PASSWORD": "pw", "AACLIP_PACS_TOKEN": "t"}, "both a bearer token and a password"),
    ({"password_file": "/nonexistent/pw"}, {"AACLIP_PACS_USER": "a"}, "cannot read the password file /nonexistent/pw"),
])
def test_bad_credentials_are_refused(kwargs, environ, message):
    with pytest.raises(ValueError, match=message):
        read_credentials(**kwargs, environ=environ)


def test_empty_secret_file_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="must hold the token on one line"):
        read_credentials(token_file=empty, environ={})


def test_no_secret_option_on_the_command_line(capsys):
    with pytest.raises(SystemExit):
        main(["pacs", "run", "--url", "http://x/dicom-web", "--study", "1.2", "--out", "o", "--password", "pw"])
    assert "unrecognized arguments: --password" in capsys.readouterr().err


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"url": "ftp://pacs/dicom-web"}, "is not an http"),
    ({"url": "http://alice:pw@pacs/dicom-web"}, "must not carry credentials"),
    ({"url": "http://pacs/dicom-web", "timeout": 0}, "timeout 0 must be > 0"),
    ({"url": "https://pacs/dicom-web", "ca_bundle": "/nonexistent.pem"}, "--ca-bundle /nonexistent.pem is not a file"),
])
def test_bad_server_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DicomWebServer(**kwargs)


def test_server_display_and_tls_contradiction(tmp_path):
    assert DicomWebServer("https://pacs:443/dicom-web/?x=1").display == "https://pacs:443/dicom-web"
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ValueError, match="contradict"):
        DicomWebServer("https://pacs/dicom-web", Credentials(), ca_bundle=str(bundle), verify_tls=False)


def test_dimse_node_parsing():
    node = DimseNode.parse("pacs.local:4242:ORTHANC")
    assert (node.host, node.port, node.ae_title, str(node)) == ("pacs.local", 4242, "ORTHANC", "ORTHANC@pacs.local:4242")
    for bad, message in (("pacs:4242", "not HOST:PORT:AE"), ("pacs:x:AE", "not HOST:PORT:AE"),
                         ("pacs:70000:AE", "not in 1..65535"), ("pacs:4242:" + "A" * 17, "1 to 16 characters")):
        with pytest.raises(ValueError, match=message):
            DimseNode.parse(bad)


def test_query_parsing_and_redaction():
    filters = parse_query("Modality=MR&StudyDate=20240101-20240131&PatientID=12345&00100010=Doe*")
    assert filters["StudyDate"] == "20240101-20240131"
    shown = redacted_query(filters)
    assert shown == "Modality=MR&StudyDate=20240101-20240131&PatientID=*&00100010=*"
    with pytest.raises(ValueError, match="'Modalty' is not a DICOM keyword"):
        parse_query("Modalty=MR")
    with pytest.raises(ValueError, match="holds no KEY=VALUE"):
        parse_query("&")


def test_series_key_is_stable_and_reveals_nothing():
    key = series_key("1.2.840.113619.2.55.3.604688119")
    assert key == series_key("1.2.840.113619.2.55.3.604688119") and key.startswith("s") and len(key) == 17
    assert "113619" not in key and key != series_key("1.2.840.113619.2.55.3.604688118")


def test_state_survives_reload_and_refuses_foreign_files(tmp_path):
    state = SeriesState(tmp_path)
    state.update("s1", status="inferred", series_uid="1.2.3", outputs=["s1_pmap.dcm"])
    state.update("s1", status="done", stored=["9.8.7"])
    again = SeriesState(tmp_path)
    assert again.get("s1")["status"] == "done" and again.get("s1")["outputs"] == ["s1_pmap.dcm"]
    assert json.loads((tmp_path / "state" / "s1.json").read_text())["stored"] == ["9.8.7"]  # one file per series
    (tmp_path / "state" / "s2.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match=r"s2\.json is not a series record of aaclip-med pacs; delete it"):
        SeriesState(tmp_path)


@pytest.mark.parametrize("command", [
    ["infer", "x", "--out", "o", "--dicom-out"], ["pacs", "run", "--url", "http://x/dicom-web", "--out", "o"],
    ["pacs", "listen", "--ae-title", "A", "--port", "1", "--forward", "h:1:B", "--out", "o"]])
def test_every_pmap_writer_takes_pmap_values(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--pmap-values", "percent"])
    err = capsys.readouterr().err.replace("'", "")  # argparse quotes the choices from Python 3.12 on
    assert "--pmap-values: invalid choice: percent (choose from raw, probability)" in err


def test_old_calibration_is_refused_before_the_model_is_built(tmp_path, capsys, monkeypatch):
    from aaclip_med.commands import pacs as pacs_command

    monkeypatch.setattr(pacs_command, "_model", lambda args: pytest.fail("the model was built first"))
    entry = {"class_name": "scan", "description": "scan", "domain": "medical", "image_scores": [1.0, 2.0],
             "image_mean": 1.5, "image_std": 0.7, "pixel_mean": 0.0, "pixel_std": 1.0, "pixel_quantiles": {}}
    (tmp_path / "old.json").write_text(json.dumps({"format_version": 1, "classes": {"scan": entry}}))
    code = main(["pacs", "run", "--url", "http://127.0.0.1:9/dicom-web", "--out", str(tmp_path / "o"), "--study", "1.2",
                 "--calibration", str(tmp_path / "old.json"), "--backbone", "aaclip-tiny"])
    assert code != 0 and "fit the calibration again" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()

"""Every command in README.md and docs/ parses with the real parsers, and every file it names exists.

Shell lines of ```bash blocks must be one of the kinds below; a new kind of command in the docs
must get a check here (or a test elsewhere) before it is documented.
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from pathlib import Path

import pytest

from aaclip_med import cli
from aaclip_med.cli import COMMANDS
from aaclip_med.commands.config_file import apply_config, read_config, split_config_argument

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "aaclip_zero_shot"
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_REPO_PREFIXES = ("docs/", "bundles/", "aaclip_med/", "benchmarks/", "tests/")  # configs/: read by _parse_cli


def _blocks(kind: str) -> list[tuple[Path, str]]:
    return [(doc, body) for doc in DOCS for lang, body in _BLOCK.findall(doc.read_text()) if lang == kind]


def _shell_lines() -> list[tuple[str, str]]:
    return [(doc.name, line.strip()) for doc, body in _blocks("bash") for line in body.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _cli_args(tokens: list[str]) -> list[str] | None:
    """Arguments after ``aaclip-med`` (or ``-m aaclip_med.cli``), or None for other commands."""
    for marker in ("aaclip-med", "aaclip_med.cli"):
        if marker in tokens:
            return tokens[tokens.index(marker) + 1 :]
    return None


def _parse_cli(args: list[str]) -> None:
    if args == ["--help"]:
        return
    sub, rest = args[0], args[1:]
    assert sub in COMMANDS, f"unknown subcommand {sub!r}"
    parser = cli._command_parser(sub)
    config, rest = split_config_argument(rest)
    if config is not None:  # the run configuration's section, as the CLI applies it
        values = read_config(REPO / config, sub)
        apply_config(parser, lambda: cli._command_parser(sub, with_config=False), values, rest, config)
    try:
        parser.parse_args(rest)
    except SystemExit as stop:
        assert stop.code == 0 and rest == ["--help"], f"aaclip-med {sub} rejects {rest}"


def _check_other(line: str, tokens: list[str]) -> None:
    if tokens[:1] == ["export"]:
        assert all(re.match(r"^[A-Z_]+=\S+$", t) for t in tokens[1:]), line
    elif tokens[:1] == ["make"]:
        makefile = (REPO / "Makefile").read_text()
        assert all(re.search(rf"^{t}:", makefile, re.M) for t in tokens[1:]), line
    elif "monai.bundle" in tokens:
        # run by the bundle's tests exactly as its README gives them
        readme = BUNDLE / "docs" / "README.md"
        assert line in readme.read_text(), f"not a command of the bundle README: {line}"
        configs = [c for t in tokens for c in re.findall(r"configs/[\w.]+\.json", t)]
        assert configs and all((BUNDLE / c).is_file() for c in configs), line
    elif tokens[:3] == ["python3", "-m", "venv"] or tokens[:4] == [".venv/bin/python", "-m", "pip", "install"]:
        extras = re.findall(r"\[([\w,]+)\]", line)
        pyproject = (REPO / "pyproject.toml").read_text()
        assert all(re.search(rf"^{e} = ", pyproject, re.M) for x in extras for e in x.split(",")), line
    elif tokens[:1] in (["python"], ["python3"]) and tokens[1:2] and tokens[1].startswith("benchmarks/"):
        assert tokens[1].endswith(".py"), line  # the script's existence is checked with the other paths
    else:
        raise AssertionError(f"no check for this documented command: {line}")


@pytest.mark.parametrize(("doc", "line"), _shell_lines(), ids=lambda v: v[:60] if isinstance(v, str) else v)
def test_documented_command_is_valid(doc, line):
    tokens = shlex.split(line)
    while tokens and re.match(r"^[A-Z_]+=", tokens[0]):  # environment assignments
        tokens = tokens[1:]
    for token in tokens:
        if token.startswith(_REPO_PREFIXES):
            assert (REPO / token).exists(), f"{doc}: {token} does not exist"
    args = _cli_args(tokens)
    if args is not None:
        _parse_cli(args)
    else:
        _check_other(line, tokens)


def test_docs_have_commands():
    assert len(_shell_lines()) > 20


@pytest.mark.parametrize(("doc", "code"), [(d.name, b) for d, b in _blocks("python")])
def test_python_examples_import_real_names(doc, code):
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            missing = [a.name for a in node.names if not hasattr(module, a.name)]
            assert not missing, f"{doc}: {node.module} has no {missing}"


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_point_at_existing_files_and_headings(doc):
    for target in _LINK.findall(doc.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        assert file.exists(), f"{doc.name}: link to missing {target}"
        if anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", file.read_text(), re.M)
            assert anchor in {_slug(h) for h in headings}, f"{doc.name}: no heading #{anchor} in {file.name}"

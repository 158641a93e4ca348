"""Library errors name parameters; the CLI shows the same errors under its flags (aaclip_med/flags.py)."""

import argparse

from aaclip_med.cli import COMMANDS, _command_parser
from aaclip_med.errors import ParameterError
from aaclip_med.flags import FLAGS, cli_message


def test_library_message_names_keywords_and_the_cli_names_flags():
    err = ParameterError("pmap_values", "probability", "needs {calibration} FILE; or pass {pmap_values}=raw")
    assert str(err) == "pmap_values='probability': needs calibration FILE; or pass pmap_values=raw"
    assert cli_message(err) == "--pmap-values probability: needs --calibration FILE; or pass --pmap-values=raw"
    assert isinstance(err, ValueError)  # callers that catch ValueError still catch it


def test_a_parameter_without_a_flag_keeps_its_keyword_and_other_errors_pass_through():
    err = ParameterError("capacity_bytes", 10, "less than one patch; raise {max_mb}")
    assert cli_message(err) == "capacity_bytes=10: less than one patch; raise --max-mb"
    assert cli_message(ValueError("x.png: not an image")) == "x.png: not an image"


def test_every_flag_in_the_table_is_a_flag_of_the_cli():
    """A flag named in an error must exist: each one is accepted by at least one command."""
    flags = set()
    for name in COMMANDS:
        parser = _command_parser(name)
        flags |= {option for action in parser._actions for option in action.option_strings}
        for action in parser._actions:  # sub-commands (references build, pacs run)
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    flags |= {option for a in sub._actions for option in a.option_strings}
    assert set(FLAGS.values()) <= flags, set(FLAGS.values()) - flags

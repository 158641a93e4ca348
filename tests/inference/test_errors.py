"""One-line errors: the first line, bounded, with the type in front for failures."""

from aaclip_med.inference.errors import one_line, short_error


def test_first_line_only_and_bounded():
    assert one_line("  bad header\nTraceback (most recent call last):\n  ...") == "bad header"
    assert one_line("x" * 50, limit=10) == "xxxxxxx..." and one_line("") == ""
    assert short_error(ValueError("f.nii: truncated\n<html>page</html>"), 30) == "ValueError: f.nii: truncated"
    assert short_error(OSError("y" * 20), 8) == "OSError: yyyyy..."

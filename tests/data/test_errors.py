from aaclip_med.data.errors import DataError


def test_message_names_path_and_problem():
    err = DataError("/x/a.png", "the file is empty")
    assert isinstance(err, ValueError)
    assert str(err) == "/x/a.png: the file is empty"
    assert err.path == "/x/a.png" and err.problem == "the file is empty"


def test_without_path():
    assert str(DataError(None, "bad")) == "bad"

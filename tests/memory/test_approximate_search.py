"""The approximate reference search (faiss): exact where its index is exhaustive, close and never above
the exact maximum otherwise, recorded in run.json, refused on a resume with another search, refused
clearly without faiss."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from aaclip_med.errors import ParameterError
from aaclip_med.inference.options import InferenceOptions
from aaclip_med.memory import search
from aaclip_med.memory.search import APPROXIMATE_NPROBE, APPROXIMATE_RECIPE, max_cosine

needs_faiss = pytest.mark.skipif(not search.faiss_available(), reason="faiss-cpu (the 'ann' extra) is not installed")


def _unit(*shape, seed=0):
    return torch.nn.functional.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _full(queries, bank):
    """The plain search: the whole (Q, N) float32 similarity matrix, then its row maxima."""
    return (queries.float() @ bank.float().T).amax(dim=1)


def _clustered(count, centres, width, spread, seed):
    """Unit rows around ``centres`` random directions (patch features of one tissue cluster so)."""
    generator = torch.Generator().manual_seed(seed)
    middle = torch.randn(centres, width, generator=torch.Generator().manual_seed(99))
    rows = middle[torch.randint(0, centres, (count,), generator=generator)]
    return torch.nn.functional.normalize(rows + spread * torch.randn(count, width, generator=generator), dim=1)


def test_cluster_count_follows_the_rule():
    assert search.inverted_lists(1) == search.inverted_lists(77) == 1  # under 2 x 39 rows: one cluster, exhaustive
    assert search.inverted_lists(78 * 39) == 78 * 39 // 39  # the 39-rows floor decides
    assert search.inverted_lists(43690) == int(4 * 43690**0.5)  # a 256 MB ViT-L level: 836 clusters


@needs_faiss
@pytest.mark.parametrize(("size", "nprobe"), [(60, APPROXIMATE_NPROBE), (5000, 10**6), (600, APPROXIMATE_NPROBE)])
def test_an_exhaustive_index_returns_the_exact_maximum(size, nprobe):
    """One cluster (60 rows), every cluster probed (nprobe above their count), or no more clusters than
    nprobe (600 rows: 15): every row is scored, so the float32 maximum of the float16 bank comes back."""
    queries, bank = _unit(200, 32, seed=1), _unit(size, 32, seed=2).half()
    index = search.ApproximateBank(bank, nprobe=nprobe)
    assert index.exhaustive
    torch.testing.assert_close(index.max_cosine(queries), _full(queries, bank), rtol=0, atol=1e-6)


@needs_faiss
def test_a_probing_index_is_close_and_never_above_the_exact_maximum():
    """20 000 patch-like rows (400 tissue clusters) in 512 index clusters (the 39-rows floor), 16 probed
    (about 3 % of the rows scored per query): most queries find their exact nearest row, none finds
    more than it, the misses are small."""
    bank = _clustered(20000, 400, 48, 0.5, seed=3).half()
    queries = _clustered(2000, 400, 48, 0.5, seed=4)
    index = search.ApproximateBank(bank)
    assert not index.exhaustive and index.lists == 20000 // 39
    found, exact = index.max_cosine(queries), _full(queries, bank)
    gap = exact - found
    assert gap.min() >= -1e-6  # a real dot product of a bank row: never above the maximum
    recall = float((gap.abs() <= 1e-4).float().mean())
    assert recall >= 0.9, f"recall@1 {recall:.3f}"
    assert float(gap.mean()) < 5e-3 and float(gap.max()) < 0.2


@needs_faiss
def test_an_index_is_reproducible_and_checks_its_input():
    bank, queries = _unit(4000, 16, seed=5).half(), _unit(300, 16, seed=6)
    first, second = search.ApproximateBank(bank), search.ApproximateBank(bank)
    assert torch.equal(first.max_cosine(queries), second.max_cosine(queries))  # seeded k-means: the same maps again
    with pytest.raises(ValueError, match=r"queries of shape \(3, 8\) for a bank of width 16"):
        first.max_cosine(torch.zeros(3, 8))
    broken = bank.clone()
    broken[7, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite values cannot be indexed"):
        search.ApproximateBank(broken)
    with pytest.raises(ValueError, match=r"non-empty \(N, D\) matrix, got shape \(0, 4\)"):
        search.ApproximateBank(torch.zeros(0, 4))


@needs_faiss
def test_queries_whose_probed_clusters_are_empty_are_searched_exactly(monkeypatch):
    bank, queries = _unit(4000, 16, seed=7).half(), _unit(50, 16, seed=8)
    index = search.ApproximateBank(bank)
    values, labels = np.full((50, 1), -3.4e38, np.float32), np.full((50, 1), -1, np.int64)
    monkeypatch.setattr(index, "index", type("Empty", (), {"search": lambda self, x, k: (values, labels)})())
    torch.testing.assert_close(index.max_cosine(queries), max_cosine(queries, bank.float()), rtol=0, atol=1e-6)


def test_without_faiss_the_search_is_refused_saying_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` fails, find_spec says None
    assert not search.faiss_available()
    with pytest.raises(ParameterError, match=r"reference_search='approximate': needs faiss, which is not installed: "
                                             r"pip install 'aaclip-med\[ann\]'"):
        InferenceOptions(references="refs.safetensors", reference_search="approximate")
    with pytest.raises(ImportError, match=r"approximate reference search needs faiss: pip install 'aaclip-med\[ann\]'"):
        search.ApproximateBank(_unit(10, 4).half())
    with pytest.raises(ImportError, match="needs faiss"):
        search.resolve_search("approximate", "cpu")
    InferenceOptions(references="refs.safetensors", reference_search="screen")  # the exact ones need nothing


def test_the_option_is_checked():
    with pytest.raises(ParameterError, match=r"reference_search='faiss': is not a reference search; choose one of "
                                             r"\['auto', 'screen', 'gemm', 'approximate'\]"):
        InferenceOptions(references="refs.safetensors", reference_search="faiss")
    with pytest.raises(ParameterError, match="is given without references: it searches a reference memory"):
        InferenceOptions(reference_search="gemm")
    assert InferenceOptions().reference_search == "auto"


@needs_faiss
def test_an_approximate_run_is_recorded_warned_and_refused_on_resume_with_another_search(tmp_path, capsys, caplog):
    from aaclip_med.cli import main
    from tests.commands.test_references import TINY, _pngs

    refs = tmp_path / "refs.safetensors"
    assert main(["references", "build", str(_pngs(tmp_path / "normals", 3)), "--out", str(refs), "--modality", "photo",
                 *TINY]) == 0
    image = np.random.default_rng(9).normal(120, 10, (48, 48)).clip(0, 255).astype(np.uint8)
    image[16:32, 16:32] = 255
    Image.fromarray(image).save(tmp_path / "test.png")

    def infer(out, *extra):
        return main(["infer", str(tmp_path / "test.png"), "--out", str(tmp_path / out), "--modality", "photo", *TINY,
                     "--references", str(refs), *extra])

    with caplog.at_level(logging.WARNING):
        assert infer("a", "--reference-search", "approximate") == 0
    assert "the maps and scores are approximate" in caplog.text
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert record["references"]["search"] == APPROXIMATE_RECIPE
    capsys.readouterr()
    assert infer("a") == 1  # the exact search into approximate work
    assert f"references.search: finished work {APPROXIMATE_RECIPE[:40]!r}"[:-1] in capsys.readouterr().err
    assert infer("a", "--reference-search", "approximate") == 0  # the same search: resumes
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["skipped"] == 1
    assert infer("b", "--reference-search", "screen") == 0  # exact, float32 as the approximate search
    assert "search" not in json.loads((tmp_path / "b" / "run.json").read_text())["references"]  # exact: as before
    capsys.readouterr()
    assert infer("b", "--reference-search", "approximate") == 1
    assert "references.search: finished work None, this run 'approximate: faiss IVF" in capsys.readouterr().err
    # a calibration fitted on exact scores is not applied to approximate ones
    assert infer("c", "--calibrate-normals", str(tmp_path / "normals")) == 0
    capsys.readouterr()
    assert infer("d", "--reference-search", "approximate", "--calibration", str(tmp_path / "c" / "calibration.json")) == 1
    assert "references.search: calibration None, this run 'approximate" in capsys.readouterr().err
    # 3 images x 64 patches: 4 clusters, all probed, so the approximate scores are the exact ones
    approximate, exact = (json.loads((tmp_path / out / "test_scores.json").read_text())["slices"][0] for out in "ab")
    for key in ("image_score", "map_max"):
        assert approximate[key] == pytest.approx(exact[key], abs=1e-4)

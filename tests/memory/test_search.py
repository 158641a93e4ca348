"""The reference memory's nearest-neighbour searches against the plain full-matrix product."""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from aaclip_med.memory import search
from aaclip_med.memory.search import ScreenedBank, max_cosine, resolve_search

needs_screen = pytest.mark.skipif(not search.screen_available("cpu"), reason="int8 screen: x86 CPUs with torch._int_mm")


def _unit(*shape, seed=0):
    return torch.nn.functional.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _full(queries, bank):
    """The plain search: the whole (Q, N) float32 similarity matrix, then its row maxima."""
    return (queries.float() @ bank.float().T).amax(dim=1)


def _largest_allocation(fn) -> int:
    """Bytes of the largest single allocation an operator made while ``fn`` ran."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(event.cpu_memory_usage for event in prof.events())


def test_blocked_search_equals_the_full_product():
    queries, bank = torch.randn(50, 16), torch.randn(77, 16)
    expected = _full(queries, bank)
    torch.testing.assert_close(max_cosine(queries, bank, block=10, chunk=200), expected)  # 20 rows x 10 at a time
    torch.testing.assert_close(max_cosine(queries, bank), expected)


@needs_screen
@pytest.mark.parametrize(("count", "size", "width", "block", "chunk"), [
    (137, 1001, 40, 300, 5000),  # blocks of 320 rows (whole tiles of 64), 15 query rows per product, a short last block
    (50, 77, 16, 8192, 2**24),  # one block, padded to 128 rows by repeats of a real row
    (1, 3, 5, 64, 64),  # one query, fewer bank rows than a tile
])
def test_screened_search_equals_the_full_float32_product(count, size, width, block, chunk):
    """Random unit features in shapes that divide neither the block nor the tile: the same maxima as the
    full float32 product of the float16 bank, up to float32 summation order (1e-6 for unit vectors)."""
    queries, bank = _unit(count, width, seed=1), _unit(size, width, seed=2).half()
    screened = ScreenedBank(bank, block=block, chunk=chunk)
    torch.testing.assert_close(screened.max_cosine(queries), _full(queries, bank), rtol=0, atol=1e-6)
    assert screened.candidates < count * size / 2 or size < 128  # the screen ruled most pairs out


@needs_screen
def test_screen_finds_a_neighbour_that_int8_rounding_cannot_tell_apart(monkeypatch):
    """Near-duplicates 1e-4 apart (the int8 step is ~1e-2): the exact float32 winner is found, as the
    bound keeps every pair it cannot rule out; also with the pairs rescored in many small flushes and
    products (the paths that bound their memory)."""
    base = _unit(40, 64, seed=3)
    nudged = torch.nn.functional.normalize(base + 1e-4 * _unit(40, 64, seed=4), dim=1)
    bank = torch.cat([base, nudged]).half()  # each query's two best rows agree in int8
    queries = torch.nn.functional.normalize(base + 0.05 * _unit(40, 64, seed=5), dim=1)
    expected = _full(queries, bank)
    torch.testing.assert_close(ScreenedBank(bank, block=64).max_cosine(queries), expected, rtol=0, atol=1e-6)
    monkeypatch.setattr(search, "_PENDING_PAIRS", 3)
    monkeypatch.setattr(search, "_PAIR_CHUNK", 5)
    torch.testing.assert_close(ScreenedBank(bank, block=64).max_cosine(queries), expected, rtol=0, atol=1e-6)


@needs_screen
def test_screen_with_negative_maxima_and_a_zero_query():
    """Every bank row on the far side of the queries (all maxima negative), and a zero query (maximum 0)."""
    axis = torch.zeros(24)
    axis[0] = 1.0
    bank = torch.nn.functional.normalize(_unit(300, 24, seed=9) + 3 * axis, dim=1).half()
    queries = torch.cat([torch.nn.functional.normalize(0.3 * _unit(20, 24, seed=10) - axis, dim=1), torch.zeros(1, 24)])
    expected = _full(queries, bank)
    assert (expected[:-1] < 0).all() and expected[-1] == 0
    torch.testing.assert_close(ScreenedBank(bank, block=128).max_cosine(queries), expected, rtol=0, atol=1e-6)


@needs_screen
def test_screen_memory_is_one_block_not_the_full_matrix():
    queries, bank = _unit(600, 32, seed=7), _unit(5000, 32, seed=8).half()
    full = 600 * 5000 * 4  # the float32 similarity matrix the plain search writes: 12 MB
    screened = ScreenedBank(bank, block=1024, chunk=2**16)  # similarity blocks of 64 x 1024 int32 = 256 kB
    peak = _largest_allocation(lambda: screened.max_cosine(queries))  # pair gathers: at most 8192 x 32 float32
    assert peak <= 2**16 * 4, f"largest allocation {peak} B, the similarity block is {2**16 * 4} B (full matrix {full} B)"
    bank32 = bank.float()
    blocked = _largest_allocation(lambda: max_cosine(queries, bank32, block=1000, chunk=2**16))
    assert blocked <= 2**16 * 4


def test_search_names_are_checked():
    with pytest.raises(ValueError, match="unknown reference search 'faiss'"):
        resolve_search("faiss", "cpu")
    with pytest.raises(ValueError, match="runs on the CPU, not on meta"):
        resolve_search("screen", "meta")
    assert resolve_search("auto", "meta") == "gemm"
    with pytest.raises(ValueError, match=r"non-empty \(N, D\) matrix, got shape \(0, 4\)"):
        ScreenedBank(torch.zeros(0, 4))

"""Nearest-neighbour search of a reference memory: the largest cosine of each query to a bank.

Two exact searches, neither of which writes the full (queries x bank) similarity matrix:

- :func:`max_cosine`: blocked matrix products in the bank's dtype, each block's row maxima folded
  into a running maximum (the values carry that dtype's rounding: bf16 or fp32);
- :class:`ScreenedBank`: an int8 screen with a proven error bound, then float32 dot products for
  the few bank rows the bound cannot rule out. Its result is the float32 maximum over the whole
  bank (the stored float16 values, exactly converted), up to the summation order of float32.

Why a screen: at the default 256 MB the search is a third of the ViT-L forward's multiply-adds, so
no GEMM in the forward's own dtype can cost much less than a third of it. int8 products of the
search's shape ran 2-3x the bf16 and 4-5x the fp32 rate on an AVX512-VNNI CPU (the whole screened
search: 0.50-0.77 of the bf16 GEMM's time, 0.69 of the fp32 one with AVX2 kernels); the bound
keeps the result exact.

One approximate search, off by default (``approximate``, :class:`ApproximateBank`): a faiss
inverted-file index (the optional ``ann`` extra, ``faiss-cpu``) that scores each query against the
bank rows of its few nearest clusters only. Its maximum is never above the exact one and is
below it where the nearest row lies in a cluster not probed; docs/reference-memory.md gives its
recall and map differences.

The bound: a query ``q`` is rounded to ``q' = s_q * round(q / s_q)`` (one scale per query), a bank
block to ``b' = s_b * round(b / s_b)`` (one scale per block), and the int32 product ``I = q'.b' /
(s_q s_b)`` is exact. Then ``|q.b - q'.b'| <= |q| |b - b'| + |q - q'| |b'| <= E`` with the largest
``|b - b'|`` and ``|b'|`` of the block. Every ``b`` whose ``q'.b' + E`` falls below a proven lower
bound of the maximum (the best exact value found so far, or ``max q'.b' - E``) cannot be the
nearest row; the others are rescored in float32.
"""

from __future__ import annotations

import importlib.util
import math
import platform

import numpy as np
import torch

from aaclip_med.memory.names import REFERENCE_SEARCHES

__all__ = ["APPROXIMATE_NPROBE", "APPROXIMATE_RECIPE", "BANK_BLOCK", "SCORE_CHUNK", "ApproximateBank",
           "ScreenedBank", "faiss_available", "inverted_lists", "max_cosine", "resolve_search", "screen_available"]

# ``screen``: ScreenedBank (exact float32); ``gemm``: max_cosine in the predictor's dtype; ``auto``:
# the screen where screen_available says it was measured faster, else gemm; ``approximate``:
# ApproximateBank (faiss, float32, never the default). The names are REFERENCE_SEARCHES of
# aaclip_med.memory.names, which the CLI reads without torch.

APPROXIMATE_NPROBE = 16  # clusters scored per query (docs/reference-memory.md: recall against cost)
_LISTS_PER_SQRT = 4  # clusters = 4 sqrt(N), faiss's usual range; at least 39 bank rows each (faiss's floor for k-means)
_MIN_ROWS_PER_LIST = 39
# what run.json records of an approximate search: a change of recipe changes the maps, so it refuses a resume
APPROXIMATE_RECIPE = (f"approximate: faiss IVF, float16 rows, inner product, {_LISTS_PER_SQRT} sqrt(N) clusters, "
                      f"nprobe {APPROXIMATE_NPROBE}")

SCORE_CHUNK = 2**24  # largest similarity block of max_cosine, in elements (32 MB of bf16)
BANK_BLOCK = 8192  # bank rows per product of max_cosine (measured faster than one product per level on a 2-core Xeon)
SCREEN_BLOCK = 8192  # bank rows per int8 block: one scale each
_PAIR_CHUNK = 8192  # candidate pairs rescored at once: two (8192, D) float32 gathers (25 MB at D = 768)
_TILE = 64  # similarity columns per tile of the candidate search
_PENDING_PAIRS = 2**20  # candidate pairs held before they are rescored (bounds their memory)
_SLACK_REL, _SLACK_ABS = 1e-4, 1e-4  # covers the float32 rounding of the bound and of the rescored dots


def max_cosine(queries: torch.Tensor, bank: torch.Tensor, block: int = BANK_BLOCK, chunk: int = SCORE_CHUNK) -> torch.Tensor:
    """Largest dot product of each query row with the bank rows, in the bank's dtype.

    The products run in blocks of ``block`` bank rows into one reused buffer of at most ``chunk``
    elements, each block's row maxima folded into a running maximum: memory stays bounded, and
    no block allocates (and page-faults) a fresh output as large as queries x bank.

    Args:
        queries: (Q, D), cast to the bank's dtype.
        bank: (N, D).

    Returns:
        (Q,) float32.
    """
    queries = queries.to(bank.dtype)
    count, size = queries.shape[0], bank.shape[0]
    block = max(1, min(block, size))
    rows = max(1, min(count, chunk // block))
    buffer = torch.empty(rows, block, dtype=bank.dtype, device=bank.device)
    best = torch.full((count,), -float("inf"), dtype=torch.float32, device=bank.device)
    for row in range(0, count, rows):
        part = queries[row : row + rows]
        target = best[row : row + part.shape[0]]
        for start in range(0, size, block):
            rows_of_bank = bank[start : start + block]
            out = buffer[: part.shape[0], : rows_of_bank.shape[0]]
            torch.mm(part, rows_of_bank.t(), out=out)  # (rows, block): a linear layer's layout
            torch.maximum(target, out.amax(dim=1).float(), out=target)
    return best


def screen_available(device: torch.device | str) -> bool:
    """True where the int8 screen is the faster search: x86 CPUs with PyTorch's int8 GEMM (``torch._int_mm``).

    Measured faster than the bf16 and fp32 GEMMs on an AVX512-VNNI CPU and with AVX2 kernels
    (docs/reference-memory.md). Elsewhere (GPUs, other CPUs) it was not measured, and
    :func:`max_cosine` in the predictor's dtype is used.
    """
    x86 = platform.machine().lower() in ("x86_64", "amd64", "x86")
    return torch.device(device).type == "cpu" and x86 and hasattr(torch, "_int_mm")


def faiss_available() -> bool:
    """True where faiss (the ``ann`` extra: ``pip install 'aaclip-med[ann]'``) can be imported."""
    return importlib.util.find_spec("faiss") is not None


def _faiss():
    try:
        import faiss
    except ImportError as err:
        raise ImportError("the approximate reference search needs faiss: pip install 'aaclip-med[ann]' (faiss-cpu), "
                          "or use an exact search (auto, screen, gemm)") from err
    return faiss


def resolve_search(search: str, device: torch.device | str) -> str:
    """``screen``, ``gemm`` or ``approximate`` for a name of :data:`~aaclip_med.memory.names.REFERENCE_SEARCHES` on ``device``.

    Raises:
        ValueError: an unknown name, or ``screen`` where it cannot run.
        ImportError: ``approximate`` without faiss.
    """
    if search not in REFERENCE_SEARCHES:
        raise ValueError(f"unknown reference search {search!r}; choose one of {list(REFERENCE_SEARCHES)}")
    if search == "auto":
        return "screen" if screen_available(device) else "gemm"
    if search == "screen" and torch.device(device).type != "cpu":
        raise ValueError(f"the int8-screened reference search runs on the CPU, not on {device}; use 'gemm' or 'auto'")
    if search == "approximate":
        _faiss()
    return search


def inverted_lists(size: int) -> int:
    """Clusters of the approximate index of a ``size``-row bank: ``4 sqrt(N)``, at most ``N / 39``, at least 1.

    With one cluster (banks under 78 rows) or ``nprobe`` clusters or fewer, every row is scored: the
    search is then exhaustive and returns the exact float32 maximum.
    """
    return max(1, min(int(_LISTS_PER_SQRT * math.sqrt(size)), size // _MIN_ROWS_PER_LIST))


class ApproximateBank:
    """One level's bank in a faiss inverted-file index (inner product, float16 rows), built once.

    k-means (faiss's, seeded, so the same bank gives the same index and the same maps) splits the
    bank into :func:`inverted_lists` clusters; a query is scored, in float32, against the rows of
    its ``nprobe`` nearest clusters only. The result is a real dot product of the query with a bank
    row, so never above the exact maximum; a query whose probed clusters are empty (a degenerate
    bank) is searched exactly.

    The rows are stored as float16 (faiss's ``SQfp16``, not relative to their centroid), which the
    memory's file holds already: a scored row's dot product is the float32 one of the stored
    values, and the index takes the bank's own size again (plus the centroids). It was measured
    faster than a float32 copy (``IVF-Flat``), which reads twice the bytes.

    Args:
        bank: (N, D) unit rows, any float dtype.
        nprobe: clusters scored per query.
    """

    def __init__(self, bank: torch.Tensor, nprobe: int = APPROXIMATE_NPROBE) -> None:
        if bank.ndim != 2 or bank.shape[0] == 0:
            raise ValueError(f"a reference bank is a non-empty (N, D) matrix, got shape {tuple(bank.shape)}")
        if not torch.isfinite(bank).all():  # k-means would spread NaN through the centroids, and every map with it
            raise ValueError("a reference bank with non-finite values cannot be indexed (load_references refuses such files)")
        faiss = _faiss()
        self.faiss = faiss
        size, self.width = bank.shape
        self.bank = bank.detach().to("cpu")
        rows = np.ascontiguousarray(self.bank.float().numpy())
        self.lists = inverted_lists(size)
        self.nprobe = max(1, min(int(nprobe), self.lists))
        quantizer = faiss.IndexFlatIP(self.width)
        self.index = faiss.IndexIVFScalarQuantizer(quantizer, self.width, self.lists, faiss.ScalarQuantizer.QT_fp16,
                                                   faiss.METRIC_INNER_PRODUCT)
        self.index.by_residual = False  # the rows themselves in float16: the stored values, exactly
        self.index.cp.seed = 1234  # faiss's default, pinned: the clusters (and so the maps) are reproducible
        self.index.cp.min_points_per_centroid = 1  # inverted_lists keeps 39 or more per cluster; no warning
        with _faiss_threads(faiss):
            self.index.train(rows)
            self.index.add(rows)
        self.index.nprobe = self.nprobe
        self.quantizer = quantizer  # the index refers to it: keep it alive
        self.exhaustive = self.nprobe >= self.lists

    def max_cosine(self, queries: torch.Tensor) -> torch.Tensor:
        """(Q,) float32: the largest dot product of each (Q, D) query with the rows of its probed clusters."""
        if queries.ndim != 2 or queries.shape[1] != self.width:
            raise ValueError(f"queries of shape {tuple(queries.shape)} for a bank of width {self.width}")
        exact = np.ascontiguousarray(queries.detach().to("cpu", torch.float32).numpy())
        with _faiss_threads(self.faiss):
            values, labels = self.index.search(exact, 1)
        best = torch.from_numpy(values[:, 0].copy())
        missing = torch.from_numpy(labels[:, 0] < 0).nonzero()[:, 0]
        if missing.numel():  # no row in the probed clusters: the exact search for those queries
            best[missing] = max_cosine(torch.from_numpy(exact)[missing], self.bank.float())
        return best


class _faiss_threads:
    """faiss's OpenMP threads set to PyTorch's for the block (``--threads`` and torch.set_num_threads apply)."""

    def __init__(self, faiss) -> None:
        self.faiss = faiss

    def __enter__(self) -> None:
        self.before = self.faiss.omp_get_max_threads()
        self.faiss.omp_set_num_threads(torch.get_num_threads())

    def __exit__(self, *exc) -> None:
        self.faiss.omp_set_num_threads(self.before)


def _quantise(values: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """int8 codes ``round(values / scale)`` (the scale makes every code fit in [-127, 127])."""
    return torch.round(values / scale).clamp_(-127, 127).to(torch.int8)


def _residual_norms(exact: torch.Tensor, codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(n,) ``|x - s * code|`` per row: what the int8 rounding moved each vector."""
    return torch.linalg.vector_norm(exact - codes.float() * scale, dim=1)


class _Tiles:
    """A similarity block seen as tiles of ``_TILE`` columns, with each tile's maximum (one pass over the block).

    Candidates are sparse (about one in a thousand): the row maxima, each row's best column and the
    values at or above a threshold are then found from the tile maxima and the few tiles they
    point to, instead of comparing every value.

    Args:
        sims: (R, C) with C a multiple of ``_TILE``.
    """

    def __init__(self, sims: torch.Tensor) -> None:
        rows, columns = sims.shape
        self.tiles = sims.view(rows, columns // _TILE, _TILE)
        self.maxima = self.tiles.amax(dim=2)  # (R, C / _TILE)

    def top(self) -> torch.Tensor:
        """(R,) the row maxima."""
        return self.maxima.amax(dim=1)

    def best_columns(self, rows: torch.Tensor) -> torch.Tensor:
        """The column of the maximum of each of ``rows``."""
        tile = self.maxima.index_select(0, rows).argmax(dim=1)
        return tile * _TILE + self.tiles[rows, tile].argmax(dim=1)

    def at_least(self, threshold: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(row, column, value) of the values at or above their row's ``threshold`` (R,)."""
        row, tile = (self.maxima >= threshold[:, None]).nonzero().unbind(dim=1)
        values = self.tiles[row, tile]  # (H, _TILE)
        hit, offset = (values >= threshold[row, None]).nonzero().unbind(dim=1)
        return row[hit], tile[hit] * _TILE + offset, values[hit, offset]


class ScreenedBank:
    """One level's bank for the exact int8-screened search (module docstring), prepared once.

    Memory: the bank itself is shared, not copied (float16 from the file; rescored rows are
    converted when gathered); its int8 codes add half its float16 size. A search holds one
    similarity block of at most ``chunk`` int32 values, its tile maxima, the candidate pairs
    (rescored once they pass a bound) and two float32 gathers of ``_PAIR_CHUNK`` rows.

    Args:
        bank: (N, D) on the CPU, any float dtype (kept as it is).
        block: bank rows per int8 block (one scale each).
        chunk: largest similarity block in elements (query rows per product = ``chunk // block``).
    """

    def __init__(self, bank: torch.Tensor, block: int = SCREEN_BLOCK, chunk: int = SCORE_CHUNK) -> None:
        if bank.ndim != 2 or bank.shape[0] == 0:
            raise ValueError(f"a reference bank is a non-empty (N, D) matrix, got shape {tuple(bank.shape)}")
        size, self.width = bank.shape
        padded = _TILE * math.ceil(size / _TILE)
        self.block = _TILE * math.ceil(min(max(1, int(block)), padded) / _TILE)
        self.query_rows = max(1, int(chunk) // self.block)
        self.bank = bank.contiguous()  # the caller's tensor (no copy when contiguous)
        # rows in the order of their largest value, so that each block's one scale nearly fits each
        # of its rows (a tighter bound), the last one repeated up to whole tiles: neither the order
        # nor a repeated row changes a maximum
        order = self.bank.abs().amax(dim=1).argsort()
        self.order = torch.cat([order, order[-1:].expand(padded - size)])  # (N padded,)
        self.starts = list(range(0, padded, self.block))
        self.codes, self.scales, self.residuals, self.norms = [], [], [], []
        for start in self.starts:
            exact = self.bank.index_select(0, self.order[start : start + self.block]).float()  # exact from float16
            scale = torch.tensor(max(float(exact.abs().max()) / 127.0, 1e-30))
            codes = _quantise(exact, scale)
            self.codes.append(codes.t().contiguous())  # (D, n): the layout torch._int_mm measured fastest
            self.scales.append(float(scale))
            self.residuals.append(float(_residual_norms(exact, codes, scale).max()))
            self.norms.append(float(torch.linalg.vector_norm(codes.float() * scale, dim=1).max()))
        self.candidates = 0  # pairs rescored by the last search (benchmarks print it)

    def max_cosine(self, queries: torch.Tensor) -> torch.Tensor:
        """(Q,) float32: the largest float32 dot product of each (Q, D) query with the bank rows."""
        if queries.ndim != 2 or queries.shape[1] != self.width:
            raise ValueError(f"queries of shape {tuple(queries.shape)} for a bank of width {self.width}")
        exact = queries.detach().to("cpu", torch.float32).contiguous()
        scale = (exact.abs().amax(dim=1) / 127.0).clamp_min_(1e-30)  # (Q,)
        codes = _quantise(exact, scale[:, None])
        norm, residual = torch.linalg.vector_norm(exact, dim=1), _residual_norms(exact, codes, scale[:, None])
        best = torch.full((exact.shape[0],), -float("inf"))
        rows = min(self.query_rows, exact.shape[0])
        sims = torch.empty(rows * self.block, dtype=torch.int32)
        self.candidates = 0
        for row in range(0, exact.shape[0], rows):
            part = slice(row, row + rows)
            self._search(exact[part], codes[part], scale[part], norm[part], residual[part], best[part], sims)
        return best

    def _search(self, exact, codes, scale, norm, residual, best, sims_buffer) -> None:
        """Every block of the bank against these query rows; ``best`` (a view) ends as their exact maximum."""
        count = exact.shape[0]
        pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (query, bank row, upper bound)
        held = 0
        for start, codes_t, bank_scale, bank_residual, bank_norm in zip(
                self.starts, self.codes, self.scales, self.residuals, self.norms, strict=True):
            size = codes_t.shape[1]
            sims = sims_buffer[: count * size].view(count, size)
            torch._int_mm(codes, codes_t, out=sims)  # (count, size) int32: q'.b' / (s_q s_b), exact
            unit = scale * bank_scale  # (count,): one integer step of q'.b'
            bound = (norm * bank_residual + residual * bank_norm) * (1 + _SLACK_REL) + _SLACK_ABS  # E per row
            tiles = _Tiles(sims)
            # rows whose screen proves a row better than their best: rescore it, a proven floor
            improved = (tiles.top().float() * unit - bound > best).nonzero()[:, 0]
            if improved.numel():
                self._rescore(exact, improved, start + tiles.best_columns(improved), best)
            # candidates: q'.b' + E >= floor, i.e. I >= (floor - E) / unit (one step lower for the rounding)
            threshold = torch.floor((best - bound) / unit - 1).clamp_(-(2.0**30), 2.0**30).to(torch.int32)
            query, column, value = tiles.at_least(threshold)
            upper = value.float() * unit[query] + bound[query]
            pending.append((query, start + column, upper))
            held += query.numel()
            if held > _PENDING_PAIRS:
                self._flush(exact, pending, best)
                held = 0
        self._flush(exact, pending, best)

    def _flush(self, exact: torch.Tensor, pending: list, best: torch.Tensor) -> None:
        """Rescore the held pairs that the floor does not rule out (it only rises), then drop them."""
        if not pending:
            return
        query, bank_row, upper = (torch.cat(parts) for parts in zip(*pending, strict=True))
        pending.clear()
        keep = (upper >= best[query]).nonzero()[:, 0]
        self._rescore(exact, query[keep], bank_row[keep], best)

    def _rescore(self, exact: torch.Tensor, query: torch.Tensor, bank_row: torch.Tensor, best: torch.Tensor) -> None:
        """Float32 dots of the (query, bank row) pairs, folded into ``best`` by query.

        A few large gathers rather than many small products: each operator call of a multi-threaded
        PyTorch waits for all its threads, which on a loaded host costs more than the arithmetic.
        """
        self.candidates += query.numel()
        for start in range(0, query.numel(), _PAIR_CHUNK):
            rows_q, rows_b = query[start : start + _PAIR_CHUNK], bank_row[start : start + _PAIR_CHUNK]
            named = self.bank.index_select(0, self.order.index_select(0, rows_b)).float()  # (P, D)
            dots = torch.linalg.vecdot(exact.index_select(0, rows_q), named)
            best.scatter_reduce_(0, rows_q, dots, reduce="amax")

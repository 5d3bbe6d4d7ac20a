"""Where each simulation expands: MuZero's pUCT, walked down all B trees in one numba kernel.

The score of candidate ``a`` at a node with ``N`` visits whose child has ``n`` visits is

    (log((N + c2 + 1) / c2) + c1) * sqrt(N) / (n + 1) * prior[a]  +  normalise(Q[a])

with ``Q[a] = reward + discount * value_sum / visits`` of the child, min-max normalised over its
tree, and 0 for unvisited children: the paper's pseudocode term for term, with the same
floating-point operations on the same operands in the same order, so a plain per-node
implementation makes the same choices bit for bit. Only real candidates are scored (padding is
never chosen).

Ties are broken at random, as mctx does: every score gets ``TIE_BREAK_SCALE * u`` added, ``u`` in
[0, 1) a hash of (the tree's seed, simulation, depth, candidate). Without it every tie (all
unvisited children under a flat prior, say) would go to the lowest index, a fixed bias toward the
candidates a game happens to list first. The hash (SplitMix64 over a counter) makes the noise a
function of the seed the search drew from its generator, so results stay reproducible, and a
plain implementation can compute the same noise without sharing any state with this one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from priorzero_pl.mcts.tree import Tree

TIE_BREAK_SCALE = 1e-7
"""mctx's scale of the tie-breaking noise: far below any real difference between two scores."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


@dataclass
class ExplorationTables:
    """pUCT's parent-only factors by parent visit count ``N``, computed once per search.

    Attributes:
        pb_c: ``[N_max + 1]`` ``log((N + c2 + 1) / c2) + c1``.
        sqrt_visits: ``[N_max + 1]`` ``sqrt(N)``.
    """

    pb_c: np.ndarray
    sqrt_visits: np.ndarray


def exploration_tables(pb_c_base: float, pb_c_init: float, max_visits: int) -> ExplorationTables:
    """Tables for parents with up to ``max_visits`` visits (``math`` like the pseudocode, so the
    logs round the same way whatever libm numba's code would call)."""
    visits = range(max_visits + 1)
    return ExplorationTables(
        pb_c=np.array([math.log((n + pb_c_base + 1) / pb_c_base) + pb_c_init for n in visits]),
        sqrt_visits=np.array([math.sqrt(n) for n in visits]),
    )


def select_leaves(
    tree: Tree, tables: ExplorationTables, discount: float, simulation: int, tie_seed: np.ndarray
) -> None:
    """Walk every tree from its root by pUCT until the chosen candidate has no node yet, and
    record the node ``simulation`` will create there: its ``parent``, ``action`` and ``depth`` in
    ``tree.block(simulation)``. The tree is otherwise unchanged until ``expand_and_backup``.
    ``tie_seed`` ``[B]`` uint64 seeds each tree's tie-breaking noise."""
    _select_leaves(
        tree.children, tree.prior, tree.visits, tree.value_sum, tree.reward, tree.num_candidates, tree.min_value,
        tree.max_value, tables.pb_c, tables.sqrt_visits, float(discount), simulation, tree.num_roots, tie_seed,
        tree.parent, tree.action, tree.depth,
    )


def tie_noise(tie_seed: np.ndarray, simulation: int, depth: int, width: int) -> np.ndarray:
    """``[B, width]`` the tie-breaking uniforms of each tree's candidates at (``simulation``,
    ``depth``): what ``select_leaves`` adds (scaled) to the pUCT scores there."""
    table = np.empty((len(tie_seed), width))
    _tie_noise_table(np.ascontiguousarray(tie_seed, dtype=np.uint64), simulation, depth, table)
    return table


@numba.njit(cache=True)
def _splitmix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True)
def _tie_uniform(seed: np.uint64, simulation: int, depth: int, action: int) -> float:
    """A uniform in [0, 1) from the 53 top bits of three SplitMix64 rounds over the counter."""
    z = _splitmix(seed + np.uint64(simulation) * _GOLDEN)
    z = _splitmix(z + np.uint64(depth) * _GOLDEN)
    z = _splitmix(z + np.uint64(action) * _GOLDEN)
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True)
def _tie_noise_table(tie_seed: np.ndarray, simulation: int, depth: int, table: np.ndarray) -> None:
    for tree in range(table.shape[0]):
        for a in range(table.shape[1]):
            table[tree, a] = _tie_uniform(tie_seed[tree], simulation, depth, a)


@numba.njit(cache=True)
def _select_leaves(
    children: np.ndarray,
    prior: np.ndarray,
    visits: np.ndarray,
    value_sum: np.ndarray,
    reward: np.ndarray,
    num_candidates: np.ndarray,
    min_value: np.ndarray,
    max_value: np.ndarray,
    pb_c: np.ndarray,
    sqrt_visits: np.ndarray,
    discount: float,
    simulation: int,
    num_roots: int,
    tie_seed: np.ndarray,
    parent: np.ndarray,
    action: np.ndarray,
    depth: np.ndarray,
) -> None:
    """The walk of ``select_leaves``; the node of tree ``b`` goes to row ``simulation * B + b``."""
    first_row = simulation * num_roots
    for tree in range(num_candidates.shape[0]):
        low, high = min_value[tree], max_value[tree]
        node = tree
        while True:
            parent_visits = visits[node]
            best_score, best = -np.inf, 0
            for a in range(num_candidates[tree]):
                child = children[node, a]
                child_visits = visits[child] if child >= 0 else 0
                exploration = pb_c[parent_visits] * (sqrt_visits[parent_visits] / (child_visits + 1))
                value_score = 0.0
                if child_visits > 0:
                    q = reward[child] + discount * (value_sum[child] / child_visits)
                    # MinMaxStats.normalize returns Q as it is until the tree has two different values.
                    value_score = (q - low) / (high - low) if high > low else q
                score = exploration * prior[node, a] + value_score
                score += TIE_BREAK_SCALE * _tie_uniform(tie_seed[tree], simulation, depth[node], a)
                if score > best_score:
                    best_score, best = score, a
            child = children[node, best]
            if child < 0:
                row = first_row + tree
                parent[row], action[row], depth[row] = node, best, depth[node] + 1
                break
            node = child

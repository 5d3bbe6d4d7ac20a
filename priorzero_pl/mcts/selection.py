"""Where each simulation expands: MuZero's pUCT, walked down all B trees in one numba kernel.

The score of candidate ``a`` at a node with ``N`` visits whose child has ``n`` visits is

    (log((N + c2 + 1) / c2) + c1) * sqrt(N) / (n + 1) * prior[a]  +  normalise(Q[a])

with ``Q[a] = reward + discount * value_sum / visits`` of the child, min-max normalised over its
tree, and 0 for unvisited children: the paper's pseudocode term for term, with the same
floating-point operations on the same operands in the same order, so a plain per-node
implementation makes the same choices bit for bit. Only real candidates are scored (padding is
never chosen); ties go to the lowest index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from priorzero_pl.mcts.tree import Tree


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


def select_leaves(tree: Tree, tables: ExplorationTables, discount: float, simulation: int) -> None:
    """Walk every tree from its root by pUCT until the chosen candidate has no node yet, and
    record the node ``simulation`` will create there: its ``parent``, ``action`` and ``depth`` in
    ``tree.block(simulation)``. The tree is otherwise unchanged until ``expand_and_backup``."""
    _select_leaves(
        tree.children, tree.prior, tree.visits, tree.value_sum, tree.reward, tree.num_candidates, tree.min_value,
        tree.max_value, tables.pb_c, tables.sqrt_visits, float(discount), simulation * tree.num_roots, tree.parent,
        tree.action, tree.depth,
    )


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
    first_row: int,
    parent: np.ndarray,
    action: np.ndarray,
    depth: np.ndarray,
) -> None:
    """The walk of ``select_leaves``; the node of tree ``b`` goes to row ``first_row + b``."""
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
                if score > best_score:
                    best_score, best = score, a
            child = children[node, best]
            if child < 0:
                row = first_row + tree
                parent[row], action[row], depth[row] = node, best, depth[node] + 1
                break
            node = child

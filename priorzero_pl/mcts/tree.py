"""The B search trees as flat arrays, and the update MuZero makes to them after each model call:
attach the new nodes and back their values up to the roots.

The trees grow in lockstep, one node per tree per simulation, so node ``j`` of root ``b`` is row
``j * B + b``: the roots are rows ``[0, B)`` and simulation ``j`` fills rows ``[j * B, (j + 1) * B)``,
one contiguous block that the search's kernels and the model's outputs read and write as a slice.
Every statistic of every tree is one array, updated by numba kernels; there is no Python object
per node.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np


@dataclass
class Tree:
    """``B`` trees of ``N`` nodes each over ``A`` candidates; ``R = N * B`` rows.

    Attributes:
        mask: ``[B, A]`` True on real candidates (the same at every node of a tree).
        num_candidates: ``[B]`` real candidates per tree (the mask is a prefix).
        children: ``[R, A]`` row of the child reached by each candidate, -1 while unexpanded.
        prior: ``[R, A]`` the policy each node explores with (0 on padding).
        visits: ``[R]`` visit counts (a node's own expansion counts as its first visit).
        value_sum: ``[R]`` sum of the discounted returns backed up through each node.
        reward: ``[R]`` reward of the transition into each node.
        parent: ``[R]`` parent row (-1 for roots).
        action: ``[R]`` the candidate that leads from the parent to each node.
        depth: ``[R]`` depth of each node (roots are at 0).
        min_value: ``[B]`` smallest ``reward + discount * value_sum / visits`` of any node (roots
            included) after any backup in each tree.
        max_value: ``[B]`` the largest (MuZero's MinMaxStats, one per tree).
    """

    mask: np.ndarray
    num_candidates: np.ndarray
    children: np.ndarray
    prior: np.ndarray
    visits: np.ndarray
    value_sum: np.ndarray
    reward: np.ndarray
    parent: np.ndarray
    action: np.ndarray
    depth: np.ndarray
    min_value: np.ndarray
    max_value: np.ndarray

    @property
    def num_roots(self) -> int:
        return self.mask.shape[0]

    def block(self, simulation: int) -> slice:
        """Rows of the nodes that ``simulation`` creates (0: the roots)."""
        return slice(simulation * self.num_roots, (simulation + 1) * self.num_roots)


def new_tree(mask: np.ndarray, nodes_per_tree: int, root_prior: np.ndarray) -> Tree:
    """Trees for ``nodes_per_tree`` nodes each, holding only their roots' ``root_prior``
    ``[B, A]``. Roots are not visited yet: ``expand_and_backup`` of block 0 does that."""
    num_roots, width = mask.shape
    rows = nodes_per_tree * num_roots
    tree = Tree(
        mask=mask,
        num_candidates=mask.sum(axis=1),
        children=np.full((rows, width), -1, dtype=np.int64),
        prior=np.zeros((rows, width)),
        visits=np.zeros(rows, dtype=np.int64),
        value_sum=np.zeros(rows),
        reward=np.zeros(rows),
        parent=np.full(rows, -1, dtype=np.int64),
        action=np.zeros(rows, dtype=np.int64),
        depth=np.zeros(rows, dtype=np.int64),
        min_value=np.full(num_roots, np.inf),
        max_value=np.full(num_roots, -np.inf),
    )
    tree.prior[tree.block(0)] = root_prior
    return tree


def expand_and_backup(tree: Tree, simulation: int, reward: np.ndarray, value: np.ndarray, discount: float) -> None:
    """Attach the nodes of ``simulation``'s block (their parent and action already set by the
    selection) with their ``reward`` ``[B]``, and back their ``value`` ``[B]`` up to the roots."""
    _expand_and_backup(
        tree.children, tree.visits, tree.value_sum, tree.reward, tree.parent, tree.action, tree.min_value,
        tree.max_value, simulation * tree.num_roots, reward, value, float(discount),
    )


@numba.njit(cache=True)
def _expand_and_backup(
    children: np.ndarray,
    visits: np.ndarray,
    value_sum: np.ndarray,
    reward: np.ndarray,
    parent: np.ndarray,
    action: np.ndarray,
    min_value: np.ndarray,
    max_value: np.ndarray,
    first_row: int,
    new_reward: np.ndarray,
    value: np.ndarray,
    discount: float,
) -> None:
    """MuZero's expansion and backpropagate for rows ``[first_row, first_row + B)`` (roots have
    no parent to attach to). Each node on the path gains the discounted return and one visit,
    and its ``reward + discount * value_sum / visits`` widens its tree's min-max statistics:
    the pseudocode's operations in its order, so returns round exactly as a per-node search's."""
    for tree in range(value.shape[0]):
        row = first_row + tree
        reward[row] = new_reward[tree]
        if parent[row] >= 0:
            children[parent[row], action[row]] = row
        discounted_return = value[tree]
        while row >= 0:
            value_sum[row] += discounted_return
            visits[row] += 1
            q = reward[row] + discount * (value_sum[row] / visits[row])
            if q < min_value[tree]:
                min_value[tree] = q
            if q > max_value[tree]:
                max_value[tree] = q
            discounted_return = reward[row] + discount * discounted_return
            row = parent[row]

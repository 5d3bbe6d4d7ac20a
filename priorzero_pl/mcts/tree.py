"""The B search trees as flat arrays, and the two updates MuZero makes to them: expand a node and
back its value up to the root.

Node ``j`` of root ``b`` is row ``b * N + j`` (``N = num_simulations + 1``: the root and one new
node per simulation), so every per-node statistic of every tree is one array and the search walks
all trees at once with fancy indexing instead of Python objects. Two extra rows end the arrays:

- ``empty``: the child of every edge not expanded yet, with 0 visits, so gathering a node's
  children needs no mask;
- ``above_root``: the parent of every root, with a NaN reward, so a backup that has passed the
  root keeps running in lockstep on that row without touching real nodes, and ``np.fmin`` /
  ``np.fmax`` (which skip NaN) leave the min-max statistics alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Tree:
    """``B`` trees of ``N`` nodes each over ``A`` candidates; ``R = B * N + 2`` rows.

    Attributes:
        mask: ``[B, A]`` True on real candidates (the same at every node of a tree).
        children: ``[R, A]`` row of the child reached by each candidate, ``empty`` if unexpanded.
        prior: ``[R, A]`` the policy each node explores with (0 on padding).
        visits: ``[R]`` visit counts (a node's own expansion counts as its first visit).
        value_sum: ``[R]`` sum of the discounted returns backed up through each node.
        reward: ``[R]`` reward of the transition into each node.
        parent: ``[R]`` parent row (``above_root`` for roots).
        depth: ``[R]`` depth of each node (roots are at 0).
        min_value: ``[B]`` smallest ``reward + discount * value`` backed up in each tree.
        max_value: ``[B]`` largest one (MuZero's MinMaxStats, one per tree).
    """

    mask: np.ndarray
    children: np.ndarray
    prior: np.ndarray
    visits: np.ndarray
    value_sum: np.ndarray
    reward: np.ndarray
    parent: np.ndarray
    depth: np.ndarray
    min_value: np.ndarray
    max_value: np.ndarray

    @property
    def num_roots(self) -> int:
        return self.mask.shape[0]

    @property
    def nodes_per_tree(self) -> int:
        return (self.visits.shape[0] - 2) // self.num_roots

    @property
    def empty(self) -> int:
        """Row standing for every unexpanded child."""
        return self.visits.shape[0] - 2

    @property
    def above_root(self) -> int:
        """Row standing for the parent of every root."""
        return self.visits.shape[0] - 1

    @property
    def root_rows(self) -> np.ndarray:
        """``[B]`` row of each root."""
        return np.arange(self.num_roots) * self.nodes_per_tree

    def node_rows(self, slot: int) -> np.ndarray:
        """``[B]`` row of node ``slot`` in every tree (slot ``s`` is made by simulation ``s``)."""
        return self.root_rows + slot


def new_tree(
    mask: np.ndarray,
    nodes_per_tree: int,
    root_prior: np.ndarray,
    root_reward: np.ndarray,
    root_value: np.ndarray,
    discount: float,
) -> Tree:
    """Trees holding only their expanded roots. The root's evaluation is backed up as its first
    visit, as every other node's is: without it the first simulation sees a parent with 0 visits,
    every pUCT score is 0, and the first child would be picked by tie-break instead of the prior."""
    num_roots, width = mask.shape
    rows = num_roots * nodes_per_tree + 2
    tree = Tree(
        mask=mask,
        children=np.full((rows, width), rows - 2, dtype=np.int64),
        prior=np.zeros((rows, width)),
        visits=np.zeros(rows, dtype=np.int64),
        value_sum=np.zeros(rows),
        reward=np.zeros(rows),
        parent=np.full(rows, rows - 1, dtype=np.int64),
        depth=np.zeros(rows, dtype=np.int64),
        min_value=np.full(num_roots, np.inf),
        max_value=np.full(num_roots, -np.inf),
    )
    tree.reward[tree.above_root] = np.nan
    roots = tree.root_rows
    tree.prior[roots] = root_prior
    tree.reward[roots] = root_reward
    backup(tree, roots, root_value, discount)
    return tree


def expand(
    tree: Tree,
    slot: int,
    parent_rows: np.ndarray,
    actions: np.ndarray,
    prior: np.ndarray,
    reward: np.ndarray,
) -> np.ndarray:
    """Attach node ``slot`` of every tree below ``parent_rows`` ``[B]`` via ``actions`` ``[B]``,
    with its ``prior`` ``[B, A]`` and ``reward`` ``[B]``; returns the new rows ``[B]``."""
    rows = tree.node_rows(slot)
    tree.children[parent_rows, actions] = rows
    tree.parent[rows] = parent_rows
    tree.depth[rows] = tree.depth[parent_rows] + 1
    tree.prior[rows] = prior
    tree.reward[rows] = reward
    return rows


def backup(tree: Tree, rows: np.ndarray, value: np.ndarray, discount: float) -> None:
    """MuZero's backpropagate from ``rows`` ``[B]`` with leaf ``value`` ``[B]``, all trees in
    lockstep: each node on the path gains the discounted return, one visit, and updates its
    tree's min-max statistics with ``reward + discount * mean value``."""
    value = value.astype(np.float64, copy=True)
    for _ in range(int(tree.depth[rows].max()) + 1):
        tree.value_sum[rows] += value
        tree.visits[rows] += 1
        node_return = tree.reward[rows] + discount * (tree.value_sum[rows] / tree.visits[rows])
        np.fmin(tree.min_value, node_return, out=tree.min_value)
        np.fmax(tree.max_value, node_return, out=tree.max_value)
        value = tree.reward[rows] + discount * value
        rows = tree.parent[rows]

"""A plain per-node MuZero search, written like the paper's pseudocode (Node objects, dicts of
children, one model call per node): the yardstick that ``priorzero_pl.mcts`` is checked against
(``tests/test_mcts_search.py``) and timed against (``benchmarks/mcts.py``). It is not part of the
library.

Two choices that the pseudocode leaves to Python and that the batched search makes explicitly:
ties in pUCT are broken by mctx-style tiny noise (``TIE_BREAK_SCALE * u``, ``u`` a SplitMix64 hash
of the tree's seed, the simulation, the depth and the candidate, written out again here in plain
integers), and the root's own evaluation is backed up as its first visit (like every other
node's), so the first simulation follows the prior.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from priorzero_pl.mcts.config import MCTSConfig
from priorzero_pl.mcts.types import SearchModel


class Node:
    def __init__(self, prior: float, depth: int) -> None:
        self.visit_count = 0
        self.prior = prior
        self.depth = depth
        self.value_sum = 0.0
        self.children: dict[int, Node] = {}
        self.hidden_state: torch.Tensor | None = None
        self.reward = 0.0

    def expanded(self) -> bool:
        return len(self.children) > 0

    def value(self) -> float:
        if self.visit_count == 0:
            return 0.0
        return self.value_sum / self.visit_count


class MinMaxStats:
    def __init__(self) -> None:
        self.maximum = -float("inf")
        self.minimum = float("inf")

    def update(self, value: float) -> None:
        self.maximum = max(self.maximum, value)
        self.minimum = min(self.minimum, value)

    def normalize(self, value: float) -> float:
        if self.maximum > self.minimum:
            return (value - self.minimum) / (self.maximum - self.minimum)
        return value


TIE_BREAK_SCALE = 1e-7
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _splitmix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def tie_uniform(seed: int, simulation: int, depth: int, action: int) -> float:
    """The uniform in [0, 1) that breaks ties between ``action`` and its siblings at ``depth`` in
    ``simulation`` (1-based) of the tree seeded ``seed``."""
    z = _splitmix((seed + simulation * _GOLDEN) & _MASK64)
    z = _splitmix((z + depth * _GOLDEN) & _MASK64)
    z = _splitmix((z + action * _GOLDEN) & _MASK64)
    return (z >> 11) * (1.0 / 9007199254740992.0)


NodePrior = Callable[[int, list[float]], list[float]]
"""``(depth, world-model policy) -> policy the node explores with`` (prior injection)."""


def reference_search(
    model: SearchModel,
    observation: str,
    candidates: Sequence[str],
    config: MCTSConfig,
    noise: Sequence[float] | None = None,
    node_prior: NodePrior | None = None,
    tie_seed: int = 0,
) -> Node:
    """Search one root; returns the root ``Node``. ``noise`` is mixed into the root prior with
    ``config.root_exploration_fraction``; ``node_prior`` replaces each node's policy; ``tie_seed``
    seeds the tie-breaking noise."""
    with torch.no_grad():
        output, context = model.initial_inference([observation], [list(candidates)])
        root = Node(0.0, 0)
        expand_node(root, output, len(candidates), node_prior)
        if noise is not None:
            add_exploration_noise(config, root, noise)
        min_max_stats = MinMaxStats()
        backpropagate([root], float(output.value[0]), config.discount, min_max_stats)
        for simulation in range(1, config.num_simulations + 1):
            node = root
            search_path = [node]
            action = -1
            while node.expanded():
                action, node = select_child(config, node, min_max_stats, tie_seed, simulation)
                search_path.append(node)
            parent = search_path[-2]
            output = model.recurrent_inference(parent.hidden_state, torch.tensor([action]), context)
            expand_node(node, output, len(candidates), node_prior)
            backpropagate(search_path, float(output.value[0]), config.discount, min_max_stats)
    return root


def select_child(
    config: MCTSConfig, node: Node, min_max_stats: MinMaxStats, tie_seed: int, simulation: int
) -> tuple[int, Node]:
    best_action, best_child, best_score = -1, None, -float("inf")
    for action, child in node.children.items():
        score = ucb_score(config, node, child, min_max_stats)
        score += TIE_BREAK_SCALE * tie_uniform(tie_seed, simulation, node.depth, action)
        if score > best_score:
            best_action, best_child, best_score = action, child, score
    return best_action, best_child


def ucb_score(config: MCTSConfig, parent: Node, child: Node, min_max_stats: MinMaxStats) -> float:
    pb_c = math.log((parent.visit_count + config.pb_c_base + 1) / config.pb_c_base) + config.pb_c_init
    pb_c *= math.sqrt(parent.visit_count) / (child.visit_count + 1)
    prior_score = pb_c * child.prior
    if child.visit_count > 0:
        value_score = min_max_stats.normalize(child.reward + config.discount * child.value())
    else:
        value_score = 0
    return prior_score + value_score


def expand_node(node: Node, output, num_candidates: int, node_prior: NodePrior | None) -> None:
    node.hidden_state = output.latent
    node.reward = float(output.reward[0])
    logits = output.policy_logits[0, :num_candidates].tolist()
    policy = [math.exp(logit) for logit in logits]
    policy_sum = sum(policy)
    policy = [p / policy_sum for p in policy]
    if node_prior is not None:
        policy = node_prior(node.depth, policy)
    for action, p in enumerate(policy):
        node.children[action] = Node(p, node.depth + 1)


def backpropagate(search_path: list[Node], value: float, discount: float, min_max_stats: MinMaxStats) -> None:
    for node in reversed(search_path):
        node.value_sum += value
        node.visit_count += 1
        min_max_stats.update(node.reward + discount * node.value())
        value = node.reward + discount * value


def add_exploration_noise(config: MCTSConfig, node: Node, noise: Sequence[float]) -> None:
    frac = config.root_exploration_fraction
    for action, n in zip(list(node.children), noise):
        node.children[action].prior = node.children[action].prior * (1 - frac) + n * frac

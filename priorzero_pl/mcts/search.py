"""One batched MuZero search over a learned world model, with an external prior at the root.

B roots are searched together, each with its own candidate list (padded to the longest, with a
mask). The roots are prepared first (``root.py``: the model's first call, prior and noise); then
every simulation walks all B trees down by pUCT (one kernel, ``selection.py``), calls the
model once for the whole batch, computes the new nodes' policies (one kernel, ``prior_injection.py``) and
attaches them and backs their values up (one kernel, ``tree.py``). The trees are flat numpy arrays
and the latents one ``[N, B, D]`` tensor on the model's device, laid out like the tree's rows.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.mcts.config import MCTSConfig
from priorzero_pl.mcts.prior_injection import node_policies
from priorzero_pl.mcts.randomness import RootDraws, draw_root_randomness
from priorzero_pl.mcts.root import PriorLogProbs, Root, candidate_mask, prepare_root
from priorzero_pl.mcts.selection import exploration_tables, select_leaves
from priorzero_pl.mcts.tree import Tree, expand_and_backup, new_tree
from priorzero_pl.mcts.types import OutputBuffers, SearchModel, SearchOutput
from priorzero_pl.mcts.visit_policy import (
    action_distribution,
    most_visited,
    sample_action,
    total_variation,
    visit_fractions,
)


def run_search(
    model: SearchModel,
    observations: Sequence[str],
    candidates: Sequence[Sequence[str]],
    prior_log_probs: PriorLogProbs | None,
    config: MCTSConfig,
    rng: np.random.Generator,
    *,
    add_noise: bool = True,
    greedy: bool = False,
    prior_weight: float | None = None,
    action_temperature: float = 1.0,
) -> SearchOutput:
    """Search ``B = len(observations)`` roots and return their visit policies and actions:
    draw the randomness, prepare the roots (``root.py``), search the trees, pick the actions.

    Args:
        model: the world model (two batched calls, see ``SearchModel``).
        observations: ``[B]`` root observation texts.
        candidates: ``[B][A_i]`` candidate action texts per root (``A_i >= 1``).
        prior_log_probs: the external prior's log-probs per root (``[A_i]`` each, or padded
            ``[B, >=A]``), renormalised over the candidates; None searches with the world model's
            policy alone.
        config: search settings; ``prior_mode`` says how the prior enters.
        rng: the only source of randomness, consumed per root in batch order (``randomness.py``),
            so a batched search equals the same roots searched one by one in order.
        add_noise: Dirichlet noise at the root (training); off for evaluation.
        greedy: take the most visited candidate (ties broken at random) instead of sampling.
        prior_weight: mixture weight for this call (a schedule's value); default ``config``'s.
        action_temperature: the action is sampled from ``N^(1/T)`` (0: uniform over the most
            visited). It shapes only the action: the visit policy is the raw visit fractions.
    """
    mask = candidate_mask(observations, candidates)
    weight = config.prior_weight if prior_weight is None else prior_weight
    if not 0 <= weight <= 1:
        raise PriorZeroInputError(f"prior_weight must be in [0, 1], got {weight}")
    if not action_temperature >= 0:
        raise PriorZeroInputError(f"action_temperature must be >= 0, got {action_temperature}")
    noise_on = add_noise and config.root_exploration_fraction > 0
    draws = draw_root_randomness(
        rng, mask.sum(axis=1), mask.shape[1], config.dirichlet_alpha if noise_on else None, sample_action=not greedy
    )
    with torch.no_grad():
        root = prepare_root(model, observations, candidates, mask, prior_log_probs, config, weight, draws.noise)
        tree = search_tree(model, root, config, weight, draws.tie_seed)
    return _search_output(tree, config.discount, action_temperature, draws, root)


def search_tree(model: SearchModel, root: Root, config: MCTSConfig, weight: float, tie_seed: np.ndarray) -> Tree:
    """The tree search proper: ``config.num_simulations`` simulations from the prepared ``root``.

    Each walks all B trees down by pUCT (ties broken by ``tie_seed``), calls the model once for
    the batch, gives the new nodes their policies (the root's prior injected down to
    ``config.prior_depth``, at ``weight``) and backs their values up. Call under ``torch.no_grad()``.
    """
    mask = root.mask
    outputs = OutputBuffers(mask.shape)
    nodes = config.num_simulations + 1
    tree = new_tree(mask, nodes, root.policy)
    tables = exploration_tables(config.pb_c_base, config.pb_c_init, nodes)
    # The root's evaluation is its first visit, as every other node's is: without it the first
    # simulation sees a parent with 0 visits, every pUCT score is 0, and a tie-break instead
    # of the prior picks the first child.
    expand_and_backup(tree, 0, root.reward, root.value, config.discount)
    root_latent = root.latent
    latents = root_latent.new_empty((nodes, *root_latent.shape))
    latents[0] = root_latent
    # Viewed flat, latent row r is tree row r: the parents' latents are one index_select away.
    latent_rows = latents.view(-1, *root_latent.shape[1:])
    # Views of the tree's own arrays: selection writes the new nodes' parents and actions there.
    parents, actions = torch.from_numpy(tree.parent), torch.from_numpy(tree.action)
    for simulation in range(1, nodes):
        select_leaves(tree, tables, config.discount, simulation, tie_seed)
        block = tree.block(simulation)
        output = model.recurrent_inference(
            latent_rows.index_select(0, parents[block].to(latents.device)),
            actions[block].to(latents.device),
            root.context,
        )
        latents[simulation] = output.latent
        outputs.read(output)
        node_policies(
            outputs.logits, mask, root.prior_log_policy, tree.depth[block], config.prior_depth, config.prior_mode,
            weight, config.prior_temperature, tree.prior[block],
        )
        expand_and_backup(tree, simulation, outputs.reward, outputs.value, config.discount)
    return tree


def _search_output(
    tree: Tree,
    discount: float,
    temperature: float,
    draws: RootDraws,
    root: Root,
) -> SearchOutput:
    roots = tree.block(0)
    children = tree.children[roots]
    expanded = children >= 0
    # Row 0 (a visited root) stands in for missing children, so that the division below is
    # defined; np.where drops what it gives.
    children = np.where(expanded, children, 0)
    child_visits = tree.visits[children]
    counts = np.where(expanded, child_visits, 0)
    q = np.where(expanded, tree.reward[children] + discount * (tree.value_sum[children] / child_visits), 0.0)
    policy = visit_fractions(counts)
    world_model_policy = np.exp(root.world_model_log_policy)
    if draws.action_uniform is None:
        action = most_visited(counts, tree.mask, draws.tie_seed)
        action_policy = np.zeros_like(policy)
        action_policy[np.arange(len(action)), action] = 1.0
    else:
        action_policy = action_distribution(counts, temperature)
        action = sample_action(action_policy, draws.action_uniform)
    return SearchOutput(
        visit_counts=counts,
        visit_policy=policy,
        action_policy=action_policy,
        root_value=tree.value_sum[roots] / tree.visits[roots],
        q_values=q,
        action=action,
        mask=tree.mask,
        root_prior=root.policy,
        world_model_policy=world_model_policy,
        max_depth=tree.depth.reshape(-1, tree.num_roots).max(axis=0),
        prior_tv=total_variation(policy, world_model_policy),
    )

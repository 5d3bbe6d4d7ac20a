"""One batched MuZero search over a learned world model, with the LLM prior at the root.

B roots are searched together, each with its own candidate list (padded to the longest, with a
mask). Every simulation walks all B trees down by pUCT (one kernel, ``selection.py``), calls the
model once for the whole batch, computes the new nodes' policies (one kernel, ``prior.py``) and
attaches them and backs their values up (one kernel, ``tree.py``). The trees are flat numpy arrays
and the latents one ``[N, B, D]`` tensor on the model's device, laid out like the tree's rows.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.mcts.config import MCTSConfig
from priorzero_pl.mcts.prior import inject_prior, llm_log_prior_array, masked_log_softmax, node_policies
from priorzero_pl.mcts.randomness import RootDraws, draw_root_randomness
from priorzero_pl.mcts.selection import exploration_tables, select_leaves
from priorzero_pl.mcts.tree import Tree, expand_and_backup, new_tree
from priorzero_pl.mcts.types import ModelOutput, SearchModel, SearchOutput
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
    llm_log_prior: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor | None,
    config: MCTSConfig,
    rng: np.random.Generator,
    *,
    add_noise: bool = True,
    greedy: bool = False,
    prior_weight: float | None = None,
    action_temperature: float = 1.0,
) -> SearchOutput:
    """Search ``B = len(observations)`` roots and return their visit policies and actions.

    Args:
        model: the world model (two batched calls, see ``SearchModel``).
        observations: ``[B]`` root observation texts.
        candidates: ``[B][A_i]`` candidate action texts per root (``A_i >= 1``).
        llm_log_prior: LLM log-probs per root (``[A_i]`` each, or padded ``[B, >=A]``), renormalised
            over the candidates; None searches with the world model's policy alone.
        config: search settings; ``prior_mode`` says how the LLM prior enters.
        rng: the only source of randomness, consumed per root in batch order (``randomness.py``),
            so a batched search equals the same roots searched one by one in order.
        add_noise: Dirichlet noise at the root (training); off for evaluation.
        greedy: take the most visited candidate (ties broken at random) instead of sampling.
        prior_weight: mixture weight for this call (a schedule's value); default ``config``'s.
        action_temperature: the action is sampled from ``N^(1/T)`` (0: uniform over the most
            visited). It shapes only the action: the visit policy is the raw visit fractions.
    """
    mask = _candidate_mask(observations, candidates)
    weight = config.prior_weight if prior_weight is None else prior_weight
    if not 0 <= weight <= 1:
        raise PriorZeroInputError(f"prior_weight must be in [0, 1], got {weight}")
    if not action_temperature >= 0:
        raise PriorZeroInputError(f"action_temperature must be >= 0, got {action_temperature}")
    use_llm = llm_log_prior is not None and config.prior_mode != "none"
    llm_log = llm_log_prior_array(llm_log_prior, mask) if use_llm else None
    noise_on = add_noise and config.root_exploration_fraction > 0
    draws = draw_root_randomness(
        rng, mask.sum(axis=1), mask.shape[1], config.dirichlet_alpha if noise_on else None, sample_action=not greedy
    )

    with torch.no_grad():
        root_output, context = model.initial_inference(list(observations), [list(c) for c in candidates])
        outputs = _OutputBuffers(mask.shape)
        outputs.read(root_output)
        world_model_log = masked_log_softmax(outputs.logits, mask)
        world_model_policy = np.exp(world_model_log)
        root_prior = world_model_policy
        if llm_log is not None:
            root_prior = inject_prior(world_model_log, llm_log, config.prior_mode, weight, config.prior_temperature)
        if draws.noise is not None:
            fraction = config.root_exploration_fraction
            root_prior = root_prior * (1 - fraction) + draws.noise * fraction

        nodes = config.num_simulations + 1
        tree = new_tree(mask, nodes, root_prior)
        tables = exploration_tables(config.pb_c_base, config.pb_c_init, nodes)
        # The root's evaluation is its first visit, as every other node's is: without it the first
        # simulation sees a parent with 0 visits, every pUCT score is 0, and a tie-break instead
        # of the prior picks the first child.
        expand_and_backup(tree, 0, outputs.reward, outputs.value, config.discount)
        latents = root_output.latent.new_empty((nodes, *root_output.latent.shape))
        latents[0] = root_output.latent
        # Viewed flat, latent row r is tree row r: the parents' latents are one index_select away.
        latent_rows = latents.view(-1, *root_output.latent.shape[1:])
        # Views of the tree's own arrays: selection writes the new nodes' parents and actions there.
        parents, actions = torch.from_numpy(tree.parent), torch.from_numpy(tree.action)
        for simulation in range(1, nodes):
            select_leaves(tree, tables, config.discount, simulation, draws.tie_seed)
            block = tree.block(simulation)
            output = model.recurrent_inference(
                latent_rows.index_select(0, parents[block].to(latents.device)),
                actions[block].to(latents.device),
                context,
            )
            latents[simulation] = output.latent
            outputs.read(output)
            node_policies(
                outputs.logits, mask, llm_log, tree.depth[block], config.prior_depth, config.prior_mode, weight,
                config.prior_temperature, tree.prior[block],
            )
            expand_and_backup(tree, simulation, outputs.reward, outputs.value, config.discount)

    return _search_output(tree, config.discount, action_temperature, draws, root_prior, world_model_policy)


class _OutputBuffers:
    """``reward`` ``[B]``, ``value`` ``[B]`` and ``policy_logits`` ``[B, A]`` of the latest model
    call, as float64 numpy arrays on the CPU that the kernels read. Allocated once per search:
    copying into them converts device and dtype in one step per field, about three times
    cheaper than a fresh tensor per field and simulation."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shapes = ((shape[0],), (shape[0],), shape)
        self.reward, self.value, self.logits = np.zeros(shape[0]), np.zeros(shape[0]), np.zeros(shape)
        self._views = tuple(torch.from_numpy(array) for array in (self.reward, self.value, self.logits))

    def read(self, output: ModelOutput) -> None:
        """Copy ``output`` in, after checking the model kept the batch's shape (``copy_`` would
        broadcast a wrong one silently)."""
        fields = (output.reward, output.value, output.policy_logits)
        shapes = tuple(tuple(field.shape) for field in fields)
        if shapes != self.shapes:
            raise PriorZeroInputError(
                f"model returned reward/value/policy_logits of shapes {shapes}; expected {self.shapes}"
            )
        for view, field in zip(self._views, fields):
            view.copy_(field)


def _candidate_mask(observations: Sequence[str], candidates: Sequence[Sequence[str]]) -> np.ndarray:
    """``[B, A]`` True on real candidates; rejects empty batches and empty candidate lists."""
    if len(observations) == 0:
        raise PriorZeroInputError("run_search needs at least one root observation")
    if len(candidates) != len(observations):
        raise PriorZeroInputError(f"got {len(observations)} observations but {len(candidates)} candidate lists")
    counts = np.array([len(c) for c in candidates])
    if (counts == 0).any():
        raise PriorZeroInputError(f"roots {np.flatnonzero(counts == 0).tolist()} have no candidate actions")
    return np.arange(counts.max()) < counts[:, None]


def _search_output(
    tree: Tree,
    discount: float,
    temperature: float,
    draws: RootDraws,
    root_prior: np.ndarray,
    world_model_policy: np.ndarray,
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
        root_prior=root_prior,
        world_model_policy=world_model_policy,
        max_depth=tree.depth.reshape(-1, tree.num_roots).max(axis=0),
        prior_tv=total_variation(policy, world_model_policy),
    )

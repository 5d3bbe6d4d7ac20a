"""Candidate scoring on the tiny LM: the shared-prefix KV pass against one full pass per candidate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from priorzero_pl.assets.embedded import PRETRAINED_PRIOR
from priorzero_pl.llm import LLMPolicy, tokenization
from priorzero_pl.llm.config import LLMConfig
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.module import PriorZeroModule
from priorzero_pl.objectives.distillation import distillation_loss
from priorzero_pl.llm.loading import load_llm
from priorzero_pl.llm.candidate_scoring import candidate_logprobs, normalise_scores
from priorzero_pl.prior.hf_backend import HFPrior
from priorzero_pl.prior.prompt import HistoryStep, PromptBuilder
from priorzero_pl.llm.tokenization import encode_candidates
from tests.references.prior_scoring import naive_candidate_logprobs


@pytest.fixture(scope="module")
def llm(tiny_lm_path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    return load_llm(tiny_lm_path)


PROMPTS = [
    "Kitchen\nYou are in the kitchen of the white house.\nNext action:\n",
    "West of House\nThere is a small mailbox here.\nNext action:\n",
]
CANDIDATES = [
    ["go north", "take lamp", "open the small mailbox", "x", "put sword in trophy case"],
    ["open mailbox", "read leaflet"],
]


def test_normalise_scores_sums_to_one_and_temperature_flattens() -> None:
    scores = torch.tensor([-3.0, -1.0, -7.5, 0.0])
    logprobs = normalise_scores(scores)
    assert torch.logsumexp(logprobs, 0).abs() < 1e-6
    assert torch.allclose(logprobs, torch.log_softmax(scores, 0))
    hot = normalise_scores(scores, temperature=4.0)
    assert torch.logsumexp(hot, 0).abs() < 1e-6
    assert torch.allclose(hot, torch.log_softmax(scores / 4.0, 0))
    assert (hot.max() - hot.min()) < (logprobs.max() - logprobs.min())
    with pytest.raises(PriorZeroInputError, match="temperature"):
        normalise_scores(scores, temperature=0.0)


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "batched"])
def test_shared_prefix_equals_naive(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase], packed: bool) -> None:
    model, tokenizer = llm
    with torch.no_grad():
        shared = candidate_logprobs(model, tokenizer, PROMPTS, CANDIDATES, packed=packed)
        for prompt, cands, got in zip(PROMPTS, CANDIDATES, shared):
            assert got.shape == (len(cands),)
            want = naive_candidate_logprobs(model, tokenizer, prompt, cands)
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)


def test_length_normalise_is_mean_over_scored_tokens(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> None:
    model, tokenizer = llm
    with torch.no_grad():
        total = candidate_logprobs(model, tokenizer, PROMPTS[:1], CANDIDATES[:1])[0]
        mean = candidate_logprobs(model, tokenizer, PROMPTS[:1], CANDIDATES[:1], length_normalise=True)[0]
    lengths = torch.tensor([len(c) for c in encode_candidates(tokenizer, PROMPTS[0], CANDIDATES[0]).continuations])
    torch.testing.assert_close(mean, total / lengths)


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "batched"])
def test_gradients_flow_through_the_shared_cache(
    llm: tuple[PreTrainedModel, PreTrainedTokenizerBase], packed: bool
) -> None:
    """The loss on shared-prefix scores has the same gradient as the loss on naive scores: the
    prompt pass (reached only through the repeated KV cache) is part of the graph."""
    model, tokenizer = llm
    model.train()
    try:
        def grads(loss: torch.Tensor) -> dict[str, torch.Tensor]:
            model.zero_grad()
            loss.backward()
            return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

        target = torch.tensor(2)
        shared = candidate_logprobs(model, tokenizer, PROMPTS[:1], CANDIDATES[:1], packed=packed)[0]
        g_shared = grads(-normalise_scores(shared)[target])
        naive = naive_candidate_logprobs(model, tokenizer, PROMPTS[0], CANDIDATES[0])
        g_naive = grads(-normalise_scores(naive)[target])
    finally:
        model.zero_grad()
        model.eval()
    assert g_shared.keys() == g_naive.keys()
    assert any(g.abs().sum() > 0 for g in g_shared.values())
    for name in g_naive:
        torch.testing.assert_close(g_shared[name], g_naive[name], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "batched"])
def test_distillation_step_under_gradient_checkpointing_matches_naive(tiny_lm_path: Path, packed: bool) -> None:
    """``model.llm.gradient_checkpointing: true``: in training mode transformers keeps no KV cache, so
    the shared-prefix pass cannot build on one. A distillation step must still run and give the loss
    and gradients of naive scoring on a model without checkpointing."""
    checkpointed = PriorZeroModule(llm=LLMConfig(path=str(tiny_lm_path), gradient_checkpointing=True)).llm
    plain, tokenizer = load_llm(tiny_lm_path)
    plain.train()
    assert checkpointed.training and any(getattr(m, "gradient_checkpointing", False) for m in checkpointed.modules())
    visits = [torch.tensor([0.5, 0.2, 0.1, 0.1, 0.1]), torch.tensor([0.25, 0.75])]

    def step(loss: torch.Tensor, model: PreTrainedModel) -> dict[str, torch.Tensor]:
        loss.backward()
        return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    scores = candidate_logprobs(checkpointed, tokenizer, PROMPTS, CANDIDATES, packed=packed)
    loss = distillation_loss([normalise_scores(s) for s in scores], visits)
    naive = [naive_candidate_logprobs(plain, tokenizer, p, c) for p, c in zip(PROMPTS, CANDIDATES)]
    naive_loss = distillation_loss([normalise_scores(s) for s in naive], visits)
    torch.testing.assert_close(loss, naive_loss, atol=1e-5, rtol=1e-5)
    got, want = step(loss, checkpointed), step(naive_loss, plain)
    assert got.keys() == want.keys() and any(g.abs().sum() > 0 for g in got.values())
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-5, rtol=1e-4)


def test_eager_attention_matches_naive(tiny_lm_path: Path) -> None:
    """The packed layout's additive float mask must also hold for the eager implementation."""
    model, tokenizer = load_llm(tiny_lm_path)
    model.set_attn_implementation("eager")
    assert model.config._attn_implementation == "eager"
    with torch.no_grad():
        got = candidate_logprobs(model, tokenizer, PROMPTS[:1], CANDIDATES[:1])[0]
        want = naive_candidate_logprobs(model, tokenizer, PROMPTS[0], CANDIDATES[0])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)


def test_single_token_candidates_need_no_candidate_pass(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> None:
    model, tokenizer = llm
    with torch.no_grad():
        got = candidate_logprobs(model, tokenizer, ["Next action:\n"], [["", ""]])[0]
        torch.testing.assert_close(got, naive_candidate_logprobs(model, tokenizer, "Next action:\n", ["", ""]))


def test_prompt_tokens_merging_with_the_candidate(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> None:
    """Byte-level BPE merges a prompt's trailing space into the action (" go"): the boundary backs
    off to the last token the prompt and all candidates share, and the candidate is scored on the
    tokens the tokenizer really produces."""
    model, tokenizer = llm
    prompt = "West of House\nYou see a mailbox. > "
    candidates = ["go north", "open mailbox", "\nwait"]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(prompt + candidates[0], add_special_tokens=False)["input_ids"]
    assert full_ids[: len(prompt_ids)] != prompt_ids, "the tiny tokenizer should merge ' ' + 'go'"

    tokens = encode_candidates(tokenizer, prompt, candidates)
    assert tokens.prefix == [tokenizer.bos_token_id] + tokenizer(prompt[:-1], add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(tokens.continuations[0][:-1]) == " go north"
    assert tokens.continuations[0][-1] == tokenizer.eos_token_id
    # The candidate that does not merge still scores the shared tail (" ") so all are comparable.
    assert tokenizer.decode(tokens.continuations[2][:-1]) == " \nwait"

    with torch.no_grad():
        merged = candidate_logprobs(model, tokenizer, [prompt], [candidates])[0]
        moved = candidate_logprobs(model, tokenizer, [prompt[:-1]], [[" " + c for c in candidates]])[0]
        naive = naive_candidate_logprobs(model, tokenizer, prompt, candidates)
    torch.testing.assert_close(merged, moved)
    torch.testing.assert_close(merged, naive, atol=1e-4, rtol=1e-5)


def test_chat_prompt_scores_match_naive(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> None:
    model, tokenizer = llm
    cands = ["go north", "take lamp", "examine rug"]
    prompt = PromptBuilder(tokenizer).build([], "You are in the attic.", cands)
    tokens = encode_candidates(tokenizer, prompt, cands)
    assert tokens.prefix.count(tokenizer.bos_token_id) == 1
    assert tokens.prefix == tokenizer(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        got = candidate_logprobs(model, tokenizer, [prompt], [cands])[0]
        torch.testing.assert_close(got, naive_candidate_logprobs(model, tokenizer, prompt, cands), atol=1e-4, rtol=1e-5)


def test_hf_prior_normalises_and_restores_module_modes(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> None:
    model, tokenizer = llm
    prior = HFPrior(LLMPolicy(model, tokenizer, temperature=2.0))
    assert prior.policy.model is model
    model.train()
    frozen = model.get_input_embeddings()
    frozen.eval()
    try:
        out = prior.score(PROMPTS, CANDIDATES)
        assert model.training and model.model.layers[0].training
        assert not frozen.training
    finally:
        model.eval()
    with torch.no_grad():
        raw = candidate_logprobs(model, tokenizer, PROMPTS, CANDIDATES)
    for got, scores in zip(out, raw):
        assert got.dtype == torch.float32 and not got.requires_grad
        assert torch.logsumexp(got, 0).abs() < 1e-5
        torch.testing.assert_close(got, torch.log_softmax(scores / 2.0, 0))


def test_bad_inputs(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> None:
    model, tokenizer = llm
    with pytest.raises(PriorZeroInputError, match="empty candidate"):
        candidate_logprobs(model, tokenizer, ["prompt"], [[]])
    with pytest.raises(PriorZeroInputError, match="2 prompts but 1"):
        candidate_logprobs(model, tokenizer, ["a", "b"], [["x"]])


def test_load_llm_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(PriorZeroInputError, match="does not exist"):
        load_llm(tmp_path / "missing")
    with pytest.raises(PriorZeroInputError, match="no config.json"):
        load_llm(tmp_path)
    (tmp_path / "config.json").write_text("not json")
    with pytest.raises(PriorZeroInputError, match="could not load"):
        load_llm(tmp_path)


def test_load_llm_sets_missing_pad_token(tiny_lm_path: Path, tmp_path: Path) -> None:
    import json
    import shutil

    copy = tmp_path / "nopad"
    shutil.copytree(tiny_lm_path, copy)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config.pop("pad_token", None)
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    model, tokenizer = load_llm(copy)
    assert tokenizer.pad_token == tokenizer.eos_token
    assert model.config.pad_token_id is not None


def _whole_string_ids(tokenizer: PreTrainedTokenizerBase, prompt: str, candidates: list[str]) -> list[list[int]]:
    """Each ``prompt + candidate`` tokenised as one string, bos first: what splicing must equal."""
    encoded = tokenizer([prompt + c for c in candidates], add_special_tokens=False)["input_ids"]
    return [ids if ids[:1] == [tokenizer.bos_token_id] else [tokenizer.bos_token_id, *ids] for ids in encoded]


@pytest.mark.parametrize("tokenizer_source", ["tiny", "shipped"])
@pytest.mark.parametrize("ending", ["chat", "merging space"])
def test_spliced_tokenisation_equals_whole_string(
    llm: tuple[PreTrainedModel, PreTrainedTokenizerBase], tokenizer_source: str, ending: str
) -> None:
    """The prompt is tokenised once and each candidate with a short tail of it: on long prompts the
    splice is taken (else the speed-up is silently lost) and every candidate's ids are exactly its
    whole-string tokenisation, including when a trailing space merges into the action."""

    tokenizer = llm[1] if tokenizer_source == "tiny" else load_llm(PRETRAINED_PRIOR)[1]
    cands = ["go north", "take brass lantern from the case", "examine rug", "put sword in trophy case", "x"]
    history = [HistoryStep(f"Room {i}. A long, winding passage leads on.", f"go east {i}", float(i % 2)) for i in range(4)]
    prompt = PromptBuilder(tokenizer, history_len=4).build(history, "You are in the attic. It is dusty.", cands)
    if ending == "merging space":
        prompt = prompt + "> "
    assert len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) > 4 * tokenization._TAIL_TOKENS
    assert tokenization._spliced_encodings(tokenizer, prompt, cands) is not None

    tokens = encode_candidates(tokenizer, prompt, cands)
    eos = tokenizer.eos_token_id
    assert [tokens.prefix + c[:-1] for c in tokens.continuations] == _whole_string_ids(tokenizer, prompt, cands)
    assert all(c[-1] == eos for c in tokens.continuations)


def test_prompt_pass_computes_only_the_last_logits(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> None:
    """Only the prompt's last position predicts a scored token: the LM head must not run over the
    other ``P - 1`` positions (on a 1,000-token prompt that is a quarter of a tiny model's work)."""
    model, tokenizer = llm
    prompt = PromptBuilder(tokenizer).build([], "You are in the attic. " * 20, CANDIDATES[0])
    rows: list[int] = []
    hook = model.get_output_embeddings().register_forward_hook(lambda _m, inputs, _o: rows.append(inputs[0].shape[1]))
    try:
        with torch.no_grad():
            got = candidate_logprobs(model, tokenizer, [prompt], CANDIDATES[:1], packed=True)[0]
    finally:
        hook.remove()
    fed = sum(len(c) - 1 for c in encode_candidates(tokenizer, prompt, CANDIDATES[0]).continuations)
    assert rows == [1, fed]
    torch.testing.assert_close(got, naive_candidate_logprobs(model, tokenizer, prompt, CANDIDATES[0]), atol=1e-4, rtol=1e-5)


class _AdapterWrapper(torch.nn.Module):
    """Stands in for a PEFT model: names a few forward arguments and passes ``**kwargs`` through."""

    def __init__(self, base: PreTrainedModel) -> None:
        super().__init__()
        self.base = base
        self.config = base.config

    def get_base_model(self) -> PreTrainedModel:
        return self.base

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.base.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None, **kwargs: object):  # noqa: ANN201
        return self.base(input_ids=input_ids, attention_mask=attention_mask, **kwargs)


def test_adapter_wrapper_gets_the_base_models_cache_and_logits_arguments(
    llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]
) -> None:
    """A wrapper that names some arguments and forwards the rest must still be called with the
    base model's cache name and ``logits_to_keep``, not fall back to computing every logit."""
    model, tokenizer = llm
    wrapped = _AdapterWrapper(model)
    prompt = PromptBuilder(tokenizer).build([], "You are in the attic. " * 20, CANDIDATES[0])
    rows: list[int] = []
    hook = model.get_output_embeddings().register_forward_hook(lambda _m, inputs, _o: rows.append(inputs[0].shape[1]))
    try:
        with torch.no_grad():
            got = candidate_logprobs(wrapped, tokenizer, [prompt], CANDIDATES[:1], packed=True)[0]
    finally:
        hook.remove()
    assert rows[0] == 1
    torch.testing.assert_close(got, naive_candidate_logprobs(model, tokenizer, prompt, CANDIDATES[0]), atol=1e-4, rtol=1e-5)

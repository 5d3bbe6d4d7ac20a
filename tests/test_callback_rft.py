"""``callbacks.RFT``: rounds of fine-tuning minibatches on the best recent episodes."""

from __future__ import annotations

import pytest

from callbacks import RFT
from tests.callback_fakes import RecordingModule, fake_trainer, segment


def test_rft_queues_minibatches_of_the_best_recent_episodes() -> None:
    segments = [segment(f"e{i}", [float(i), 0.0, 0.0], [0.0] * 3, terminal=True) for i in range(8)]
    rft = RFT(every_n_steps=10, recent_episodes=4, top_fraction=0.5, minibatch_size=4, loss="candidates")
    module = RecordingModule()
    rft.on_fit_start(fake_trainer(0), module)

    rft.on_train_batch_end(fake_trainer(9, segments), module, None, None, 0)
    assert module.queued == []
    rft.on_train_batch_end(fake_trainer(10, segments), module, None, None, 0)
    # recent 4 = e4..e7, top half = e7, e6: 6 steps -> minibatches of 4 and 2
    assert [len(batch) for _, batch in module.queued] == [4, 2]
    prompts = {p for _, batch in module.queued for p in batch.prompts}
    assert prompts == {f"e{i} prompt {t}" for i in (6, 7) for t in range(3)}
    assert all(objective.name == "rft" for objective, _ in module.queued)
    assert module.logged["llm/rft_episodes"] == 2.0 and module.logged["llm/rft_return_mean"] == 6.5

    rft.on_train_batch_end(fake_trainer(10, segments), module, None, None, 1)
    assert len(module.queued) == 2, "a second batch at the same global step (accumulation) starts no round"


def test_rft_skips_a_round_while_the_queue_is_full() -> None:
    segments = [segment("e", [1.0], [0.0], terminal=True)]
    rft = RFT(every_n_steps=10, loss="candidates")
    module = RecordingModule(queue_size=10)
    rft.on_fit_start(fake_trainer(0), module)
    with pytest.warns(UserWarning, match="skipping a round"):
        rft.on_train_batch_end(fake_trainer(10, segments), module, None, None, 0)
    assert module.queued == []

"""The valid-action cache key of a Jericho game state: everything the game can read, nothing else.

Jericho's search restores the state that ``FrotzEnv.get_state()`` returns before every
candidate, so its valid actions are a function of that state, and a hash of all of it cannot give
two states with different valid actions the same key. (Frotz keeps a little interpreter state
outside it, window and cursor bookkeeping, which Jericho's own search does not restore either;
``TextGame``'s cache audit would count any effect.) Jericho's ``get_world_state_hash()`` covers
only the object tree and a few RAM cells and does alias such states (inhumane's desert: the
player's position is an ordinary global). Three parts of ``get_state()`` are left out because the
game cannot read them; leaving them in would only split equal states:

- ``narrative``: the interface's copy of the last output text. No opcode can reach it, and every
  step overwrites it before reading it. Jericho's won/lost tests search it for some games
  (acorncourt's ``victory()``), but ``TextGame`` only searches states that those tests call
  unfinished, where it cannot change the list.
- the stack below the stack pointer: Frotz's stack grows down (``*--sp = v``), and a cell below
  ``sp`` is written by the push that brings it into use before any read (``pop`` is ``*sp++``).
  It holds leftovers of deeper calls that depend on history.
- the random-number generator's dormant half. ``z_random`` reads ``counter`` and ``interval``
  only in Frotz's "predictable" mode (``interval != 0``) and ``A`` only in standard mode; each
  mode's entry (``seed_random``) rewrites the fields that mode reads. In standard mode the next
  ``A`` is ``0x015a4e35 * A + 1`` and the result is bits 16-30 of it, so bits 31 and up of ``A``
  never reach a result (multiplication and addition carry only upwards).

``tests/test_envs_valid_actions.py`` checks that varying each left-out part changes neither the key
nor the game's behaviour, and that varying a kept part changes the key.
"""

from __future__ import annotations

import hashlib

import numpy as np

RNG_LOW_BITS = (1 << 31) - 1
"""Bits of Frotz's standard-mode RNG state ``A`` that can reach a random number."""


def jericho_state_key(state: tuple) -> str:
    """Hex digest of a ``FrotzEnv.get_state()`` tuple, less the parts the game cannot read (see module doc)."""
    ram, stack, pc, sp, fp, frame_count, opcode, (rng_a, rng_interval, rng_counter), _narrative = state
    live_stack = np.asarray(stack, dtype=np.uint8)[2 * int(sp):]  # sp counts 16-bit cells
    rng = (0, int(rng_interval), int(rng_counter)) if rng_interval else (int(rng_a) & RNG_LOW_BITS, 0, 0)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.asarray(ram, dtype=np.uint8).tobytes())
    digest.update(live_stack.tobytes())
    digest.update(repr((int(pc), int(sp), int(fp), int(frame_count), int(opcode), rng)).encode())
    return digest.hexdigest()

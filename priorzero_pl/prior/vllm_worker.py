"""Code that runs inside vLLM's worker processes, and the weight payload it accepts.

vLLM mixes ``worker_extension_cls`` into its worker class, and ``collective_rpc`` calls the
extension's methods by *name*: unlike sending a function, that needs no pickled callables (which
vLLM refuses unless ``VLLM_ALLOW_INSECURE_SERIALIZATION`` is set).

The arguments cross into the engine process through vLLM's msgpack encoder. A ``torch.Tensor``
does not survive that trip as a tensor: for utility calls such as ``collective_rpc`` vLLM 0.32
decodes the arguments untyped, so a tensor arrives as a ``[dtype, shape, buffer-index]`` list whose
buffer is gone. The weights therefore travel as :class:`WeightChunk` dicts of plain msgpack types
(strings, ints, lists, one ``bytes``), which any msgpack encoder carries without hooks, and the
worker rebuilds the tensors from them.

The module imports nothing from vLLM, so it is importable (and testable) anywhere.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator, TypedDict

import torch

WORKER_EXTENSION = f"{__name__}.WeightSyncWorkerExtension"
"""The dotted path ``VLLMPrior.from_model_path`` passes as ``worker_extension_cls``."""

LOAD_WEIGHTS_METHOD = "priorzero_load_weights"
"""The ``collective_rpc`` method name that loads one :class:`WeightChunk`."""

DEFAULT_CHUNK_BYTES = 256 << 20
"""Tensor bytes per chunk: one ``collective_rpc`` message each, so the whole model is never one
buffer in the trainer or the engine process."""

_ALIGNMENT = 64
"""Each tensor starts at a multiple of this many bytes in ``data``, so the views the worker makes
are aligned for any dtype."""


class WeightChunk(TypedDict):
    """Some whole tensors of the model, as plain msgpack types (``T`` tensors in the chunk).

    Keys:
        names: ``[T]`` Hugging Face parameter names.
        dtypes: ``[T]`` torch dtype names without the ``torch.`` prefix (``"bfloat16"``).
        shapes: ``[T][ndim]`` tensor shapes.
        offsets: ``[T]`` byte offset of each tensor in ``data``.
        data: the tensors' bytes (C order, native byte order), each starting at its offset.
    """

    names: list[str]
    dtypes: list[str]
    shapes: list[list[int]]
    offsets: list[int]
    data: bytes


def pack_weights(
    named_tensors: Iterable[tuple[str, torch.Tensor]], max_chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[WeightChunk]:
    """Yield :class:`WeightChunk` s holding ``named_tensors`` in order, each with at most
    ``max_chunk_bytes`` of ``data`` unless one tensor alone is larger (tensors are never split).

    Tensors are copied to CPU as they are packed, so at most one chunk is held at a time."""
    if max_chunk_bytes < 1:
        raise ValueError(f"max_chunk_bytes must be >= 1, got {max_chunk_bytes}")
    chunk = _ChunkBuilder()
    for name, tensor in named_tensors:
        raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8).cpu()
        if chunk.names and chunk.size_with(raw) > max_chunk_bytes:
            yield chunk.finish()
            chunk = _ChunkBuilder()
        chunk.add(name, tensor, raw)
    if chunk.names:
        yield chunk.finish()


def unpack_weights(chunk: WeightChunk) -> list[tuple[str, torch.Tensor]]:
    """The ``(name, tensor)`` pairs of one chunk, as CPU tensors sharing one writable buffer.

    Raises ``ValueError`` when the chunk's fields disagree (lengths, dtypes, sizes)."""
    names, dtypes, shapes, offsets = chunk["names"], chunk["dtypes"], chunk["shapes"], chunk["offsets"]
    if not len(names) == len(dtypes) == len(shapes) == len(offsets):
        raise ValueError(
            f"weight chunk fields differ in length: {len(names)} names, {len(dtypes)} dtypes, "
            f"{len(shapes)} shapes, {len(offsets)} offsets"
        )
    buffer = bytearray(chunk["data"])  # writable: torch warns on (and must not write to) read-only memory
    out = []
    for name, dtype_name, shape, offset in zip(names, dtypes, shapes, offsets):
        dtype = _dtype(dtype_name)
        count = math.prod(shape)
        end = offset + count * dtype.itemsize
        if end > len(buffer):
            raise ValueError(f"weight chunk: {name} needs bytes {offset}..{end} but data has {len(buffer)}")
        flat = torch.frombuffer(buffer, dtype=dtype, count=count, offset=offset) if count else torch.empty(0, dtype=dtype)
        out.append((name, flat.reshape(shape)))
    return out


class _ChunkBuilder:
    """The chunk being filled by :func:`pack_weights`."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.dtypes: list[str] = []
        self.shapes: list[list[int]] = []
        self.offsets: list[int] = []
        self.parts: list[torch.Tensor] = []
        self.size = 0

    def size_with(self, raw: torch.Tensor) -> int:
        """Bytes of ``data`` once ``raw`` is added (alignment padding included)."""
        return self.size + -self.size % _ALIGNMENT + raw.numel()

    def add(self, name: str, tensor: torch.Tensor, raw: torch.Tensor) -> None:
        padding = -self.size % _ALIGNMENT
        if padding:
            self.parts.append(torch.zeros(padding, dtype=torch.uint8))
        self.names.append(name)
        self.dtypes.append(str(tensor.dtype).removeprefix("torch."))
        self.shapes.append(list(tensor.shape))
        self.offsets.append(self.size + padding)
        self.parts.append(raw)
        self.size += padding + raw.numel()

    def finish(self) -> WeightChunk:
        data = torch.cat(self.parts).numpy().tobytes() if self.parts else b""
        return WeightChunk(names=self.names, dtypes=self.dtypes, shapes=self.shapes, offsets=self.offsets, data=data)


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"weight chunk names an unknown torch dtype {name!r}")
    return dtype


class WeightSyncWorkerExtension:
    """Adds :meth:`priorzero_load_weights` to every vLLM worker (``self`` is the worker)."""

    model_runner: Any

    def priorzero_load_weights(self, chunk: WeightChunk) -> int:
        """Load one chunk of Hugging Face-named tensors into the worker's model and return how many
        tensors it held (the trainer checks the count). vLLM's ``load_weights`` maps the names (e.g.
        fuses q/k/v), shards them for tensor parallelism and copies them to the device itself.
        ``get_model`` unwraps the CUDA-graph wrapper around the model."""
        weights = unpack_weights(chunk)
        self.model_runner.get_model().load_weights(weights=weights)
        return len(weights)

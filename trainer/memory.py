"""Free memory of a device and the peak tensor memory of a block of code, on CUDA and on the CPU alike.

    free = free_bytes("cuda")                    # torch.cuda.mem_get_info; "cpu": MemAvailable of this machine
    with TensorPeak("cpu") as peak:              # CUDA: torch.cuda.max_memory_allocated
        loss.backward()
    peak.bytes, peak.saved_bytes                 # peak above entry; bytes saved for backward (saved_tensors=True)

Torch keeps no allocator statistics on the CPU, so there `TensorPeak` counts every storage that an operator
creates inside the block (a `TorchDispatchMode`; a weak reference per storage takes its bytes off when it
is freed) and keeps the maximum. That is the tensor memory autograd and the kernels ask for; kernel-internal
scratch buffers and the allocator's own slack are not in it (RSS is reported beside it for that).
`trainer.plan`'s estimate is calibrated against these numbers (docs/training.md#memory-plan).
"""

from __future__ import annotations

import contextlib
import os
import weakref
from pathlib import Path
from typing import Any

# A CPU run's share of the machine's available memory. The RAM is shared with every other process (another
# stage, an annotator's browser, a second job), whose memory grows during a run as ours does: a
# smollm2-135m demo planned at 10.6 GiB of 22.6 available was OOM-killed when another job grew beside it.
# A smaller device batch with more accumulation costs a CPU little speed (its matmuls run near the roof from
# a few hundred rows), so the plan keeps half back.
CPU_SHARE = 0.5


def free_bytes(device: str) -> int:
    """Bytes a training run may take on `device`: CUDA's free memory, or `CPU_SHARE` of the machine's
    MemAvailable."""
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index
        free, _total = torch.cuda.mem_get_info(index if index is not None else torch.cuda.current_device())
        return int(free)
    try:
        import psutil  # a dependency of accelerate, so always installed with it

        available = int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil ships with accelerate
        lines = [line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemAvailable:")]
        available = (int(lines[0].split()[1]) * 1024 if lines
                     else int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")))
    return int(available * CPU_SHARE)


def rss_bytes() -> tuple[int, int]:
    """(current, peak) resident set size of this process (Linux /proc; zeros elsewhere)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0, 0
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    kib = lambda key: int(fields.get(key, "0 kB").split()[0]) * 1024  # noqa: E731
    return kib("VmRSS"), kib("VmHWM")


def reset_rss_peak() -> bool:
    """Set the process's peak RSS back to its current RSS (Linux `clear_refs` 5); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class TensorPeak:
    """Peak tensor bytes allocated inside the block, above what was allocated on entry.

    Args:
        device: "cuda[:N]" reads torch's CUDA allocator statistics; anything else tracks CPU storages.
        saved_tensors: also sum the distinct storages autograd saves for backward inside the block
            (`saved_bytes`; parameters excluded): the activation memory, as opposed to the peak.
    """

    def __init__(self, device: str = "cpu", *, saved_tensors: bool = False, exclude: Any = ()):
        self.device = device
        self.bytes = 0
        self.saved_bytes = 0
        self.rss_peak_bytes = 0
        self._saved_tensors = saved_tensors
        self._exclude = {t.untyped_storage().data_ptr() for t in exclude}
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> TensorPeak:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
        else:
            self._mode = _LiveStorages()
            self._stack.enter_context(self._mode)
            self._rss_start = rss_bytes()[0] if reset_rss_peak() else None
        if self._saved_tensors:
            self._seen: dict[int, int] = {}
            self._stack.enter_context(torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t))
        return self

    def _pack(self, tensor: Any) -> Any:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if tensor.device.type != "meta" and key not in self._exclude and key not in self._seen:
            self._seen[key] = storage.nbytes()
        return tensor

    def __exit__(self, *exc: Any) -> None:
        import torch

        self._stack.close()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.bytes = torch.cuda.max_memory_allocated() - self._start
        else:
            self.bytes = self._mode.peak
            if self._rss_start is not None:
                self.rss_peak_bytes = rss_bytes()[1] - self._rss_start
        if self._saved_tensors:
            self.saved_bytes = sum(self._seen.values())


def _dispatch_mode_base() -> type:
    from torch.utils._python_dispatch import TorchDispatchMode

    return TorchDispatchMode


class _LiveStorages(_dispatch_mode_base()):  # type: ignore[misc]
    """Bytes of the storages created by operators while the mode is on and not yet freed; and their peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, Any] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        import torch
        from torch.utils._pytree import tree_flatten

        out = func(*args, **(kwargs or {}))
        # An output sharing an input's storage is a view or an in-place result: nothing was allocated
        # (counting it would count parameters and optimizer state the block did not create).
        inputs = {id(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor) and t.device.type != "meta"}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                if id(storage) not in inputs:
                    self._track(storage)
        return out

    def _track(self, storage: Any) -> None:
        key = id(storage)
        if key in self._refs and self._refs[key]() is storage:
            return  # an in-place op or a view: the storage is already counted
        size = storage.nbytes()
        self.live += size
        self.peak = max(self.peak, self.live)
        self._refs[key] = weakref.ref(storage, lambda _ref, k=key, n=size: self._free(k, n))

    def _free(self, key: int, size: int) -> None:
        self.live -= size
        self._refs.pop(key, None)

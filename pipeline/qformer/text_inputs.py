"""What the Q-Former reads for each text: the pooled CLIP text embedding, or the text tower's
per-token hidden states.

Token states are ragged (a caption of 12 tokens has 12 rows, not the context length's 77), so
they are kept without padding, as one (T, W) array of every text's tokens back to back and an
(N + 1,) offsets array: text i owns rows [offsets[i], offsets[i + 1]). A batch is padded only
when it is gathered, on the device, in one indexing operation: no per-sample Python.

Both kinds answer `batch(index) -> (inputs, mask)` for `TextToImageQFormer`, and `subset(rows)`
without copying the features, so a training split and a validation split share one table on
the device.
"""

from __future__ import annotations

import copy

import torch

from pipeline.features.store import RaggedTokens


class TextView:
    """Texts of a table that stays on the device, by row: a view holds row positions, so
    `subset` copies no features and a training and a validation split share one table."""

    def __init__(self, values: torch.Tensor, count: int):
        self.values = values  # the table: (N, D) pooled features or (T, W) token states
        self.rows = torch.arange(count, device=values.device)  # (n,) the texts of this view

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def width(self) -> int:
        return self.values.shape[1]

    @property
    def device(self) -> torch.device:
        return self.values.device

    def subset(self, rows) -> TextView:
        view = copy.copy(self)
        view.rows = self.rows[torch.as_tensor(rows, device=self.device)]
        return view

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The Q-Former's (inputs, mask) for the view's texts `index`."""
        return self.gather(self.rows[index])

    def gather(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError


class PooledTexts(TextView):
    """One vector per text: features (N, D) on the device."""

    def __init__(self, features: torch.Tensor):
        super().__init__(features, len(features))

    def gather(self, rows: torch.Tensor) -> tuple[torch.Tensor, None]:
        """(B, D) float32 features; no mask."""
        return self.values[rows].float(), None


class TokenTexts(TextView):
    """Per-token states of N texts on the device, without padding (see the module docstring):
    values (T, W), offsets (N + 1,)."""

    def __init__(self, values: torch.Tensor, offsets: torch.Tensor):
        super().__init__(values, len(offsets) - 1)
        self.offsets = offsets

    @classmethod
    def from_ragged(cls, tokens: RaggedTokens, device: torch.device | str) -> TokenTexts:
        return cls(torch.as_tensor(tokens.values, device=device),
                   torch.as_tensor(tokens.offsets, device=device))

    def gather(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, W) float32 token states padded to the batch's longest text with zeros, and the
        (B, L) attention mask (1 = a real token)."""
        start = self.offsets[rows]  # (B,)
        length = self.offsets[rows + 1] - start  # (B,)
        steps = torch.arange(int(length.max()), device=self.device)  # (L,)
        mask = steps[None, :] < length[:, None]  # (B, L)
        position = torch.where(mask, start[:, None] + steps[None, :], 0)  # (B, L) rows of values
        states = self.values[position].float() * mask[..., None]  # (B, L, W)
        return states, mask.long()


"""What every CLIP library's model looks like to the rest of the pipeline (`Clip`), without
importing any of them: the loaders (`pipeline.clip.loaders`) subclass it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeline.clip.fingerprint import fingerprint_of


@dataclasses.dataclass
class Clip:
    """A loaded CLIP with what it takes to feed it. `model` encodes: `encode_image(pixels)`
    ((B, 3, H, W) preprocessed -> (B, D)) and `encode_text(ids)` ((B, L) -> (B, D)); the
    library's subclass tokenizes and gives per-token states."""

    model: object  # a torch.nn.Module
    preprocess: object  # torchvision transform: PIL image -> (3, H, W) tensor
    card: dict

    @property
    def fingerprint(self) -> dict:
        return fingerprint_of(self.card)

    @property
    def embed_dim(self) -> int:
        return int(self.card["embed_dim"])

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, L) token ids as the model takes them, and (N,) the count of real tokens of each
        (start and end tokens included, padding not)."""
        raise NotImplementedError

    def encode_text_states(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) text features and (B, L, W) the final layer's per-token states (after its
        layer norm, before pooling and projection)."""
        raise NotImplementedError

    @property
    def token_width(self) -> int:
        """W of `encode_text_states`: the text tower's width (need not be D)."""
        raise NotImplementedError

    def save_files(self, folder: Path) -> None:
        """Files besides the weights and card that loading needs offline (a tokenizer's)."""

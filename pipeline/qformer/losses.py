"""Losses that teach the Q-Former to map a CLIP text feature onto its image's CLIP feature.

Notation (SPEC section 2): a batch of N pairs, I_i the CLIP image feature, I'_j = f_Q(T_j) the
Q-Former's pseudo image feature. `pred` holds the I' rows, `target` the I rows, both (N, D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_cosine_loss(pred: torch.Tensor, target: torch.Tensor, margin: float = 0.0, *,
                         weighting: str) -> torch.Tensor:
    """The paper's loss, with the sign its typeset equation swaps put right.

        S_ij = cos(I_i, I'_j)
        l_ij = 1 - S_ii                     if i == j   (pull matched pairs together)
               max(0, S_ij - margin)        if i != j   (push unmatched pairs apart)
        L    = (1 / N^2) * sum_ij l_ij                       weighting="all_pairs" (the paper)
        L    = mean_i l_ii + mean_{i != j} l_ij              weighting="balanced"

    This is the cosine-embedding loss applied to all N^2 pairs of the batch; margin 0 in the
    paper. Under "all_pairs" the N matched pairs weigh 1/N of the total, so large batches mostly
    push apart; "balanced" gives matched and unmatched pairs equal weight whatever N is.
    """
    sim = F.normalize(target, dim=-1) @ F.normalize(pred, dim=-1).T  # (N, N): S_ij
    matched = torch.eye(len(sim), dtype=torch.bool, device=sim.device)
    per_pair = torch.where(matched, 1.0 - sim, (sim - margin).clamp(min=0.0))
    if weighting == "all_pairs":
        return per_pair.mean()
    if weighting == "balanced":
        unmatched = per_pair[~matched]
        return per_pair[matched].mean() + (unmatched.mean() if len(unmatched) else 0.0)
    raise ValueError(f"weighting must be 'all_pairs' or 'balanced', got {weighting!r}")


def info_nce_loss(pred: torch.Tensor, target: torch.Tensor, temperature: float,
                  similarity: str = "cosine") -> torch.Tensor:
    """Symmetric InfoNCE between pseudo and real image features.

        S_ij = sim(I'_i, I_j) / tau,  sim = cosine (default) or the raw dot product ("dot")
        L    = 1/2 * [ CE(S, diag) + CE(S^T, diag) ]

    i.e. each I'_i must pick out its own I_i among the batch's images, and each I_i its I'_i.
    """
    if similarity == "cosine":
        pred, target = F.normalize(pred, dim=-1), F.normalize(target, dim=-1)
    elif similarity != "dot":
        raise ValueError(f"similarity must be 'cosine' or 'dot', got {similarity!r}")
    logits = pred @ target.T / temperature  # (N, N)
    labels = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


LOSSES = ("pairwise_cosine", "info_nce", "info_nce_dot")


def qformer_loss(name: str, pred: torch.Tensor, target: torch.Tensor, *, margin: float,
                 temperature: float, weighting: str) -> torch.Tensor:
    """Dispatch on the loss name used in params (`LOSSES`)."""
    if name == "pairwise_cosine":
        return pairwise_cosine_loss(pred, target, margin, weighting=weighting)
    if name == "info_nce":
        return info_nce_loss(pred, target, temperature, "cosine")
    if name == "info_nce_dot":
        return info_nce_loss(pred, target, temperature, "dot")
    raise ValueError(f"unknown loss {name!r}; choose from {LOSSES}")

"""How fast does the Q-Former train? `train_qformer` (today's loop, eager, and with the training
forward compiled) against the loop as it was before it (AdamW unfused, the loss read back to the
host every step), on the same synthetic features from the same initial weights, timed in one
run: pairs/s, and the achieved TFLOP/s by the usual 6 x parameters x tokens count. The compiled
loop is warmed up first (compiling is paid once per run, not per epoch).

Synthetic features are enough: speed does not depend on the values, only on the shapes (the
model, the batch, pooled text features).
"""

from __future__ import annotations

import copy
import dataclasses
import time

import torch

from pipeline.clip.training import cosine_schedule
from pipeline.qformer.losses import qformer_loss
from pipeline.qformer.model import QFormerConfig, TextToImageQFormer
from pipeline.qformer.settings import TrainQFormer
from pipeline.qformer.text_inputs import PooledTexts
from pipeline.qformer.training import train_qformer

WAYS = ("before", "ours", "compiled")  # the reference loop first: the table reads as a speed-up
VALIDATION_PAIRS = 64  # train_qformer scores a held-out set each epoch: kept negligible


@dataclasses.dataclass
class QFormerBench:
    pairs: int  # training pairs per timed epoch
    batch_size: int
    parameters: int
    tokens_per_pair: int  # queries + text tokens (1: a pooled text feature)
    device: str
    seconds: dict[str, float]  # way -> the best of `repeats` epochs
    weight_difference: dict[str, float]  # way -> max |difference| to `before`'s trained weights
    repeats: int = 1

    def pairs_per_second(self, way: str) -> float:
        return self.pairs / self.seconds[way]

    def tflops(self, way: str) -> float:
        return 6 * self.parameters * self.tokens_per_pair * self.pairs_per_second(way) / 1e12

    def report(self) -> str:
        lines = [f"{self.pairs} pairs (batch {self.batch_size}), {self.parameters / 1e6:.1f}M "
                 f"parameters, {self.tokens_per_pair} tokens a pair, {self.device}, best of "
                 f"{self.repeats}", f"{'loop':<8} {'seconds':>9} {'pairs/s':>10} {'TFLOP/s':>9}"]
        lines += [f"{way:<8} {self.seconds[way]:9.3f} {self.pairs_per_second(way):10,.0f} "
                  f"{self.tflops(way):9.3f}" for way in WAYS if way in self.seconds]
        lines += [f"{way} / before = {self.seconds['before'] / self.seconds[way]:.2f}x; max "
                  f"|weight difference| {self.weight_difference[way]:.2e}"
                  for way in WAYS[1:] if way in self.seconds]
        return "\n".join(lines)


def bench_qformer(settings: TrainQFormer, width: int, pairs: int, device: str | torch.device,
                  repeats: int, compile: bool) -> QFormerBench:
    """Train one epoch of `pairs` random pairs of `width`-wide features each way (`compiled`
    too, with `compile`), `repeats` times interleaved, from the same weights: the model, batch,
    loss and optimiser of `settings` (train_qformer's section)."""
    device, batch_size, seed = torch.device(device), settings.batch_size, settings.seed
    config = QFormerConfig.of(settings.model, text_width=width, image_width=width)
    generator = torch.Generator().manual_seed(seed)
    text = PooledTexts(torch.randn(pairs, config.text_width, generator=generator).to(device))
    image = torch.randn(pairs, config.image_width, generator=generator).to(device)
    val_text = PooledTexts(torch.randn(VALIDATION_PAIRS, config.text_width,
                                       generator=generator).to(device))
    val_images = torch.randn(VALIDATION_PAIRS, config.image_width, generator=generator).to(device)
    torch.manual_seed(seed)
    start_model = TextToImageQFormer(config).to(device)
    one_epoch = settings.model_copy(update={"epochs": 1})
    ways = WAYS if compile else WAYS[:2]
    validation = dict(val_text=val_text, val_images=val_images,
                      val_caption_image=torch.arange(VALIDATION_PAIRS, device=device),
                      show_progress=False, settings=one_epoch)
    if compile:  # compile outside the clock, on batches of the same shapes
        warm_up = min(len(text), 2 * batch_size)
        train_qformer(copy.deepcopy(start_model), text.subset(torch.arange(warm_up)),
                      image[:warm_up], compile=True, **validation)
    seconds, trained = {way: float("inf") for way in ways}, {}
    for _ in range(repeats):
        for way in ways:
            model = copy.deepcopy(start_model)
            _synchronize(device)
            start = time.perf_counter()
            if way == "before":
                _epoch_before(model, text, image, one_epoch)
            else:
                train_qformer(model, text, image, compile=way == "compiled", **validation)
            _synchronize(device)
            seconds[way] = min(seconds[way], time.perf_counter() - start)
            trained[way] = model
    difference = {way: max((a - b).abs().max().item() for a, b in
                           zip(trained[way].parameters(), trained["before"].parameters()))
                  for way in ways[1:]}
    return QFormerBench(pairs=max(1, pairs // batch_size) * batch_size, batch_size=batch_size,
                        parameters=sum(p.numel() for p in start_model.parameters()),
                        tokens_per_pair=config.num_queries + 1, device=str(device),
                        seconds=seconds, weight_difference=difference, repeats=repeats)


def _epoch_before(model: TextToImageQFormer, text: PooledTexts, image: torch.Tensor,
                  settings: TrainQFormer) -> float:
    """The training loop as `train_qformer` ran it before issue 14 (one epoch, no validation):
    the reference the bench measures against."""
    device, batch_size = image.device, settings.batch_size
    torch.manual_seed(settings.seed)
    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    steps = max(1, len(text) // batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr,
                                  weight_decay=settings.weight_decay)
    total = steps * settings.epochs
    schedule = cosine_schedule(optimizer, max(1, int(settings.warmup_fraction * total)), total)
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16,
                              enabled=device.type == "cuda")
    model.train()
    order = torch.randperm(len(text), generator=generator).to(device)
    running = 0.0
    for step in range(steps):
        index = order[step * batch_size:(step + 1) * batch_size]
        with autocast:
            pred = model(*text.batch(index))
        value = qformer_loss(settings.loss, pred.float(), image[index], margin=settings.margin,
                             temperature=settings.temperature, weighting=settings.weighting)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        schedule.step()
        running += value.item()  # a host sync every step
    return running / steps


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

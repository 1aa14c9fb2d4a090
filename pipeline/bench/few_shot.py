"""How long does the few-shot grid take at CUB's size? Every few-shot method of
`train_adapter.methods` over every budget of `train_adapter.budgets` (shots over their seeds,
ratios over theirs), trained on a random table the size of CUB's (5,994 train images, 200
classes, width 768: a ViT-B CLIP's), each method timed in one run beside a baseline measured in
the same run: one L-BFGS probe on every train image at the probe's fixed strength.

The table is class-structured, so the solvers meet conditioning like real features': each class
has a random unit centre and each image is its centre plus isotropic noise of 7 times the
centre's length (at CUB's size, the nearest centre is right for about 88% of the images, as a
good probe is on CUB); each class's descriptions lie around a prior direction, its centre
plus a random unit offset (their mean classifies about half the images, as CBD's descriptions do
on CUB with ViT-B/32: a prior that helps but misleads often). Random features are what the
timing needs; the accuracies they give are not reported.

What it leaves out: the paper's `linear` grid (its texts go through a Q-Former; `fgvc bench
adapter` times it), and the priors: a text-prior method is timed on one prior set, so a
pipeline with P sets of `train_adapter.priors` spends about P times its figure.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd

CUB_SIZE = {"train": 5994, "classes": 200, "width": 768}
IMAGE_NOISE = 7.0  # an image's noise, in lengths of its class centre
TEXT_NOISE = 1.0  # a description's noise around its class's prior direction


@dataclasses.dataclass
class MethodTime:
    method: str
    seconds: float
    classifiers: int  # rows of its runs table: one per budget and seed
    cpu_seconds: float  # the process's CPU time over it, every thread's: on a busy machine
    # the work done, where wall seconds also count the waits for a core

    def row(self, baseline: float) -> str:
        return (f"{self.method:<12}{self.seconds:9.1f} s  {self.classifiers:4d} classifiers  "
                f"= {self.seconds / baseline:7.1f} baseline fits  "
                f"(CPU {self.cpu_seconds:.1f} s)")


@dataclasses.dataclass
class FewShotBench:
    train: int
    classes: int
    width: int
    budgets: int  # budget x seed cells of the protocol
    threads: int  # torch's CPU threads
    workers: int  # budgets trained at once (train_adapter.cpu_threads on the CPU)
    device: str
    baseline_seconds: float  # one probe on every train image
    methods: list[MethodTime]
    skipped: list[str]  # methods of the params not timed here, and why

    @property
    def total_seconds(self) -> float:
        return sum(m.seconds for m in self.methods)

    def report(self) -> str:
        lines = [f"{self.train} train images x {self.classes} classes, width {self.width}, "
                 f"{self.budgets} budget cells, {self.device}, {self.threads} torch thread(s), "
                 f"{self.workers} budget(s) at once",
                 f"baseline: one probe on every train image {self.baseline_seconds:8.2f} s"]
        lines += [m.row(self.baseline_seconds) for m in self.methods]
        at_cub_size = (self.train, self.classes, self.width) == tuple(CUB_SIZE.values())
        goal = " (goal at CUB's size: under 300 s on 2 CPU cores)" if at_cub_size else ""
        lines.append(f"{'total':<12}{self.total_seconds:9.1f} s  = "
                     f"{self.total_seconds / self.baseline_seconds:.1f} baseline fits{goal}  "
                     f"(CPU {sum(m.cpu_seconds for m in self.methods):.1f} s)")
        lines += [f"not timed: {line}" for line in self.skipped]
        return "\n".join(lines)

    def as_json(self) -> dict:
        return dict(dataclasses.asdict(self), total_seconds=self.total_seconds)


def random_inputs(train: int, classes: int, width: int, descriptions_per_class: int,
                  seed: int, device):
    """`AdapterInputs` (no mapped rows, no captions) of `train` images spread evenly over
    `classes`, and `descriptions_per_class` descriptions each, class-structured as the module
    says, on `device` (a torch.device)."""
    import torch
    import torch.nn.functional as F

    from pipeline.adapter.inputs import AdapterInputs
    from pipeline.adapter.training_mix import TrainingTable

    if train < 2 * classes:
        raise ValueError(f"{train} train images for {classes} classes: the bench needs at least "
                         "two per class")
    generator = torch.Generator().manual_seed(seed)

    def noise(rows: int, length: float) -> torch.Tensor:  # isotropic, of about that length
        return length / width ** 0.5 * torch.randn(rows, width, generator=generator)

    centres = F.normalize(noise(classes, 1.0), dim=-1)
    priors = centres + F.normalize(noise(classes, 1.0), dim=-1)  # a unit step off the centre
    image_class = torch.arange(train) % classes
    text_class = torch.arange(classes).repeat_interleave(descriptions_per_class)
    table = TrainingTable(
        images=pd.DataFrame({"image_id": np.arange(1, train + 1),
                             "class_index": image_class.numpy()}),
        captions=pd.DataFrame({"image_id": np.zeros(0, np.int64),
                               "class_index": np.zeros(0, np.int64)}),
        descriptions=pd.DataFrame({"class_index": text_class.numpy()}))
    features = torch.cat([centres[image_class] + noise(train, IMAGE_NOISE),
                          priors[text_class] + noise(len(text_class), TEXT_NOISE)]).to(device)
    return AdapterInputs(features, torch.as_tensor(table.labels, device=device), table,
                         np.arange(1, classes + 1), {"bench": "random features"}, mapped=False)


def bench_few_shot(protocol, *, train: int, classes: int, width: int,
                   descriptions_per_class: int, seed: int, device: str,
                   methods: list[str] | None = None) -> FewShotBench:
    """Time each few-shot method of `protocol` (a `TrainAdapter`; `methods`: some of its
    methods, default all) on `random_inputs`, after the baseline fit."""
    import torch

    from pipeline.adapter.few_shot import denormals_flushed, protocol_budgets
    from pipeline.adapter.logistic import fit_logistic_heads
    from pipeline.adapter.methods import ADAPTER_METHODS
    from pipeline.common import InputError

    names = list(protocol.methods) if methods is None else list(methods)
    missing = [name for name in names if name not in protocol.methods]
    if missing:
        raise InputError(f"train_adapter.methods has no method {', '.join(map(repr, missing))} "
                         f"(methods: {', '.join(protocol.methods)})")
    torch_device = torch.device(device)
    inputs = random_inputs(train, classes, width, descriptions_per_class, seed, torch_device)
    skipped = [f"{name} (it trains on texts the Q-Former maps, which a random table has not"
               + ("; fgvc bench adapter times the linear grid)" if name == "linear" else ")")
               for name in names if ADAPTER_METHODS.get(name).maps_texts(protocol.methods[name])]
    timed = [name for name in names if not ADAPTER_METHODS.get(name).maps_texts(
        protocol.methods[name])]

    def synchronize():
        if torch_device.type == "cuda":
            torch.cuda.synchronize()

    images = torch.nn.functional.normalize(inputs.features[:train], dim=-1)
    labels = inputs.labels[:train]
    from pipeline.adapter.methods.probe import Probe

    probe_settings = protocol.methods.get("probe") or Probe()  # the probe's own defaults

    def probe(rows: int, max_iter: int) -> float:
        synchronize()
        start = time.perf_counter()
        fit_logistic_heads(images[:rows], labels[:rows], torch.ones(1, rows, device=torch_device),
                           classes, torch.tensor([probe_settings.fixed_strength],
                                                 device=torch_device), None, max_iter=max_iter)
        synchronize()
        return time.perf_counter() - start

    times = []
    with denormals_flushed():  # as train_adapters trains them
        probe(2 * classes, 5)  # warm-up: the first call pays the kernels' and allocator's start
        baseline = probe(train, probe_settings.max_iter)
        for name in timed:
            synchronize()
            start, cpu = time.perf_counter(), time.process_time()
            trained = ADAPTER_METHODS.get(name).train(inputs, protocol, protocol.methods[name])
            synchronize()
            times.append(MethodTime(name, time.perf_counter() - start, len(trained.runs),
                                    time.process_time() - cpu))
    workers = (protocol.cpu_threads or torch.get_num_threads()) if torch_device.type == "cpu" else 1
    return FewShotBench(train, classes, width, len(protocol_budgets(protocol)),
                        torch.get_num_threads(), workers, str(torch_device), baseline, times,
                        skipped)

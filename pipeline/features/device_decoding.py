"""JPEG decoding on the model's device (`extract.images.decode: torchvision | nvimgcodec`).

On a GPU, PIL decoding on CPU workers is what bounds extraction (a ViT-B-32 encodes far more
images per second than 16 cores decode). With a device decoder, workers only read file bytes;
each batch is decoded on the device and resized there in batches (`preprocessing`). Two
decoders:

    torchvision   `torchvision.io.decode_jpeg(list, device=...)`: nvJPEG on CUDA (the SMs);
                  also runs on the CPU
    nvimgcodec    NVIDIA's nvImageCodec (`pip install -e '.[nvimgcodec]'`): on an A100/H100
                  the hardware JPEG engines decode beside the SMs that run the model

Files that are not JPEGs, or that the decoder refuses, go through the PIL path instead
(`decoding`), so nothing is lost and bad files still get their reason. Pixels differ slightly
from PIL's (another IDCT), so features differ slightly too: the feature set records the decoder,
and shards of one decoder are never mixed with another's.
"""

from __future__ import annotations

import importlib.util
import warnings

import torch
from torchvision.io import ImageReadMode, decode_jpeg

from pipeline.common import InputError

JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"  # EOI: a file without it was cut short
DEVICE_DECODERS = ("torchvision", "nvimgcodec")

# What a decoder returns: one (3, h, w) uint8 image on the device per input, None where it failed.
Decoded = list[torch.Tensor | None]


def is_jpeg(data: bytes) -> bool:
    return data[:3] == JPEG_MAGIC


class TorchvisionDecoder:
    """torchvision's batched `decode_jpeg`: the whole list in one call when every file decodes;
    after a failure, one by one, so one bad file costs only itself."""

    def __init__(self, device: str | torch.device):
        self.device = torch.device(device)

    def __call__(self, data: list[torch.Tensor]) -> Decoded:
        if not data:
            return []
        with warnings.catch_warnings():
            # torchvision 0.29 deprecates its codecs in favour of TorchCodec, whose batched GPU
            # image decoding is the migration path once it is as widely installed; until then
            # one warning per batch would bury the progress bar.
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device))
            except RuntimeError:
                return [self._one(item) for item in data]

    def _one(self, item: torch.Tensor) -> torch.Tensor | None:
        try:
            return decode_jpeg(item, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError:
            return None


class NvImageCodecDecoder:
    """nvImageCodec's batched decoder on a CUDA device, with its default backends (the hardware
    JPEG engines where the GPU has them, else nvJPEG on the SMs, else the CPU). EXIF orientation
    is not applied, as PIL's `Image.open` does not apply it either. A file it cannot decode comes
    back as None (nvImageCodec's own answer); should the batch call raise, the files are tried
    one by one."""

    def __init__(self, device: str | torch.device):
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise InputError("extract.images.decode: nvimgcodec decodes on a CUDA GPU; set "
                             "extract.device to cuda, or use decode: torchvision or pil")
        if importlib.util.find_spec("nvidia.nvimgcodec") is None:
            raise InputError("extract.images.decode: nvimgcodec needs nvImageCodec: "
                             "pip install -e '.[nvimgcodec]' (CUDA 13; for CUDA 12: "
                             "pip install nvidia-nvimgcodec-cu12 nvidia-nvjpeg-cu12)")
        from nvidia import nvimgcodec

        self.codec = nvimgcodec
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        self.decoder = nvimgcodec.Decoder(device_id=index)
        self.params = nvimgcodec.DecodeParams(apply_exif_orientation=False,
                                              color_spec=nvimgcodec.ColorSpec.SRGB,
                                              sample_format=nvimgcodec.SampleFormat.I_RGB)
        self._in_use: list = []

    def __call__(self, data: list[torch.Tensor]) -> Decoded:
        if not data:
            return []
        stream = torch.cuda.current_stream(self.device).cuda_stream
        try:
            decoded = self.decoder.decode([self.codec.CodeStream(item.numpy()) for item in data],
                                          params=self.params, cuda_stream=stream)
        except RuntimeError:
            decoded = [self._one(item, stream) for item in data]
        # The tensors below borrow nvImageCodec's buffers; the work queued on them is done by
        # the time the next batch is decoded (the encoder's results have come back to the host
        # in between), so the previous batch's images are released only then.
        self._in_use = decoded
        return [None if image is None
                else torch.as_tensor(image, device=self.device).permute(2, 0, 1)
                for image in decoded]

    def _one(self, item: torch.Tensor, stream: int):
        try:
            return self.decoder.decode(self.codec.CodeStream(item.numpy()), params=self.params,
                                       cuda_stream=stream)
        except RuntimeError:
            return None


def device_decoder(name: str, device: str | torch.device):
    """The decoder `extract.images.decode` names, on `device`."""
    if name == "torchvision":
        return TorchvisionDecoder(device)
    if name == "nvimgcodec":
        return NvImageCodecDecoder(device)
    raise ValueError(f"no device decoder {name!r}; known: {', '.join(DEVICE_DECODERS)}")

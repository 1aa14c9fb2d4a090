"""The `extract` section: how images and texts become frozen-CLIP feature shards."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.config import Device, Section


class RayEngine(Section):
    """Ray Data: decode tasks and one CLIP encoder actor per GPU (`pip install -e '.[ray]'`)."""

    address: str | None = Field(None, description="null: a local Ray instance | auto | "
                                "ray://head:10001")
    encoders: int = Field(1, ge=1, description="CLIP encoder actors (one per GPU on a cluster)")
    gpus_per_encoder: float = Field(0.0, ge=0, description="1 on a GPU cluster; 0 encodes on "
                                    "the CPU")
    cpus_per_encoder: float = Field(1.0, gt=0)
    decode_cpus: float = Field(1.0, gt=0, description="CPUs per decode task")


class ExtractImages(Section):
    """Image sets: decoding, batching, and what to do with files that cannot be read."""

    batch_size: int = Field(256, ge=1)
    num_workers: int = Field(1, ge=0, description="decode processes beside the encoder (0: "
                             "decode inline)")
    max_image_pixels: int = Field(100_000_000, ge=1, description="larger images: JPEG draft "
                                  "decode, else skipped")
    max_bad_fraction: float = Field(0.01, ge=0, le=1, description="fail if more images than "
                                    "this could not be decoded")
    decode: Literal["pil", "torchvision", "nvimgcodec"] = Field(
        "pil", description="pil (CPU workers) | torchvision | nvimgcodec (JPEGs decoded on the "
        "GPU)")
    engine: Literal["local", "ray"] = Field("local", description="local | ray (Ray Data: "
                                            "decode tasks + one CLIP actor per GPU)")
    ray: RayEngine = Field(default_factory=RayEngine)

    @model_validator(mode="after")
    def _ray_decodes_with_pil(self) -> ExtractImages:
        if self.engine == "ray" and self.decode != "pil":
            raise ValueError("engine 'ray' decodes in CPU tasks: set decode to 'pil'")
        return self


class ExtractTexts(Section):
    """Text sets: batching, and whether to keep the text tower's per-token states."""

    batch_size: int = Field(1024, ge=1)
    tokens: bool = Field(False, description="also keep per-token states, no padding "
                         "(train_qformer.text_input: tokens)")


class ExtractSettings(Section):
    """Frozen-CLIP features in resumable Parquet shards."""

    precision: Literal["float16", "float32"] = Field("float16", description="stored "
                                                     "embeddings: float16 | float32")
    shard_rows: int = Field(1024, ge=1, description="rows per Parquet shard (a killed run "
                            "loses at most the shards in flight)")
    device: Device = "auto"
    amp: Literal["float16", "bfloat16", "none"] = Field(
        "float16", description="autocast on CUDA: float16 | bfloat16 | none (CPU always "
        "float32)")
    images: ExtractImages = Field(default_factory=ExtractImages)
    texts: ExtractTexts = Field(default_factory=ExtractTexts)

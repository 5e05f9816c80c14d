"""A small text-conditional latent diffusion model for DiffEdit (Couairon et al., 2023) on digits:
the same diffusers and transformers building blocks as Stable Diffusion (``AutoencoderKL``,
``UNet2DConditionModel``, ``CLIPTextModel``) plus a word-level tokenizer over a fixed caption
vocabulary (:func:`xad.data.labelled.caption`), small enough to train on CPU on 32 px digits
(:mod:`xad.train.diffedit`). It saves and loads through :mod:`xad.weights` (safetensors only).
The DiffEdit pipeline around it is :mod:`xad.models.diffedit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from xad.data.labelled import COLOUR_NAMES, DIGIT_NAMES
from xad.weights import register

#: Special tokens, in id order: pad 0, unk 1, bos 2, eos 3.
SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
#: The caption vocabulary (lower case; the tokenizer lower-cases its input).
WORDS = ("a", "photo", "of", "the", "digit", "number", "handwritten", *COLOUR_NAMES, *DIGIT_NAMES)



@dataclass(frozen=True)
class TextLDMConfig:
    """The architecture of :class:`TextLDM` (the constructor's only argument; saved in config.json)."""

    image_size: int = 32
    # AutoencoderKL: one down-sampling per extra level (32 px, 2 levels -> 16x16 latents)
    vae_channels: tuple[int, ...] = (32, 64)
    vae_layers_per_block: int = 1
    vae_norm_groups: int = 16
    latent_channels: int = 4
    scaling_factor: float = 1.0  # 1 / std of the training latents, set after the VAE stage
    # UNet2DConditionModel on the latents; cross-attention on the text encoder's hidden states
    unet_channels: tuple[int, ...] = (32, 64, 64)
    unet_layers_per_block: int = 1
    unet_norm_groups: int = 16
    unet_heads: int = 4
    # CLIPTextModel (random init, trained with the UNet) over the word vocabulary
    text_hidden: int = 32
    text_layers: int = 2
    text_heads: int = 2
    text_intermediate: int = 64
    max_tokens: int = 16
    words: tuple[str, ...] = WORDS
    # DDPM noise schedule (Stable Diffusion's): T steps, scaled_linear betas
    timesteps: int = 1000
    beta_schedule: str = "scaled_linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012

    def __post_init__(self) -> None:
        if self.image_size % 2 ** (len(self.vae_channels) - 1):
            raise ValueError("image_size must be divisible by the VAE's down-sampling factor")
        if self.latent_size % 2 ** (len(self.unet_channels) - 1):
            raise ValueError("the latent size must be divisible by the UNet's down-sampling factor")
        if len(set(self.words)) != len(self.words) or set(self.words) & set(SPECIAL_TOKENS):
            raise ValueError("words must be unique and must not contain the special tokens")

    @property
    def latent_size(self) -> int:
        """Side of the (square) latents."""
        return self.image_size // 2 ** (len(self.vae_channels) - 1)

    @property
    def vocab(self) -> dict[str, int]:
        """Token -> id: the special tokens first, then the words in order."""
        return {w: i for i, w in enumerate((*SPECIAL_TOKENS, *self.words))}


PRESETS = {
    # 2.1 M parameters (VAE 0.66 M, UNet 1.47 M, text encoder 18 k): 16x16x4 latents, a 3-level
    # UNet with cross-attention at 16 and 8 px
    "cpu": TextLDMConfig(),
    # for tests (70 k parameters): built from configs in well under a second
    "tiny": TextLDMConfig(vae_channels=(8, 8), vae_norm_groups=4, unet_channels=(8, 16),
                          unet_norm_groups=4, unet_heads=2, text_hidden=16, text_layers=1,
                          text_heads=2, text_intermediate=32),
}


def build_tokenizer(config: TextLDMConfig | None = None):  # noqa: ANN201 - transformers type
    """A ``transformers.PreTrainedTokenizerFast`` over ``config.words`` (word level, lower-cased,
    split on whitespace and punctuation; unknown words -> ``<unk>``; ``<bos> ... <eos>`` added;
    padded with ``<pad>`` to ``model_max_length = config.max_tokens``). Deterministic: the same
    config gives the same ids."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    c = config or TextLDMConfig()
    vocab = c.vocab
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", pair="<bos> $A <eos> $B <eos>",
        special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=c.max_tokens,
                                   pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
                                   eos_token="<eos>", padding_side="right")


@register
class TextLDM(nn.Module):
    """A small text-conditional latent diffusion model: ``vae`` (AutoencoderKL), ``unet``
    (UNet2DConditionModel, epsilon prediction) and ``text_encoder`` (CLIPTextModel), all built
    from ``config``; ``tokenizer`` is rebuilt from the config's vocabulary (not a tensor)."""

    Config = TextLDMConfig

    def __init__(self, config: TextLDMConfig) -> None:
        super().__init__()
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        c = config
        self.config = c
        nv = len(c.vae_channels)
        self.vae = AutoencoderKL(
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * nv,
            up_block_types=("UpDecoderBlock2D",) * nv, block_out_channels=c.vae_channels,
            layers_per_block=c.vae_layers_per_block, latent_channels=c.latent_channels,
            norm_num_groups=c.vae_norm_groups, sample_size=c.image_size,
            scaling_factor=c.scaling_factor)
        nu = len(c.unet_channels)
        self.unet = UNet2DConditionModel(
            sample_size=c.latent_size, in_channels=c.latent_channels, out_channels=c.latent_channels,
            down_block_types=("CrossAttnDownBlock2D",) * (nu - 1) + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (nu - 1),
            block_out_channels=c.unet_channels, layers_per_block=c.unet_layers_per_block,
            norm_num_groups=c.unet_norm_groups, cross_attention_dim=c.text_hidden,
            attention_head_dim=c.unet_heads)
        vocab = c.vocab
        self.text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(vocab), hidden_size=c.text_hidden, intermediate_size=c.text_intermediate,
            projection_dim=c.text_hidden, num_hidden_layers=c.text_layers,
            num_attention_heads=c.text_heads, max_position_embeddings=c.max_tokens,
            pad_token_id=vocab["<pad>"], bos_token_id=vocab["<bos>"], eos_token_id=vocab["<eos>"]))
        self.tokenizer = build_tokenizer(c)

    def set_scaling_factor(self, value: float) -> None:
        """Set the latent scaling factor in the config and in the VAE's config (the pipeline's)."""
        import dataclasses

        self.config = dataclasses.replace(self.config, scaling_factor=float(value))
        self.vae.register_to_config(scaling_factor=float(value))

    def token_ids(self, captions: list[str]) -> torch.Tensor:
        """Captions -> (B, max_tokens) ids, padded and truncated as the pipeline tokenizes."""
        return self.tokenizer(captions, padding="max_length", max_length=self.config.max_tokens,
                              truncation=True, return_tensors="pt").input_ids

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids -> the text encoder's last hidden states (B, max_tokens, text_hidden), as
        the pipeline computes its prompt embeddings (no attention mask)."""
        return self.text_encoder(ids)[0]

    def noise_scheduler(self):  # noqa: ANN201 - diffusers type
        """The training schedule: ``DDPMScheduler`` (T steps, the config's betas)."""
        from diffusers import DDPMScheduler

        return DDPMScheduler(**self.schedule_kwargs())

    def schedule_kwargs(self) -> dict[str, Any]:
        """The beta schedule shared by training and the DDIM / DDIM-inverse samplers."""
        c = self.config
        return {"num_train_timesteps": c.timesteps, "beta_schedule": c.beta_schedule,
                "beta_start": c.beta_start, "beta_end": c.beta_end, "clip_sample": False}

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The noise prediction eps(z_t, t, caption) (B, C, h, w)."""
        return self.unet(noisy, t, encoder_hidden_states=self.embed(ids)).sample

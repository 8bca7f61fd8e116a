"""Vision Transformer for re-ID in the style of TransReID (He et al.).

Overlapping patches (a patch-embedding stride smaller than the patch size) and a side-information
embedding (SIE): a learned vector per camera id added to every token, weighted by ``sie_coe``.
Names follow timm / TransReID (``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``sie_embed``,
``blocks.N.attn.qkv``, ``norm``), so their ImageNet / re-ID checkpoints load.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from fastreid.config import CfgNode

from .build import BACKBONE_REGISTRY
from .pretrained import load_backbone_pretrain

__all__ = ["VisionTransformer", "build_vit_backbone", "vit_key_mapper"]

# depth, heads, mlp ratio, qkv bias, attention scale (FastReID's "small" keeps 768 dims)
VIT_VARIANTS = {
    "small": (8, 8, 3.0, False, 768**-0.5),
    "base": (12, 12, 4.0, True, None),
}


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``p``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class Attention(nn.Module):
    """Multi-head self-attention. ``(B, N, C) -> (B, N, C)``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0, scale=self.scale
        )
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block. ``(B, N, C) -> (B, N, C)``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        qk_scale: Optional[float],
        drop: float,
        attn_drop: float,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Image to patch tokens with a possibly overlapping stride. ``(B, 3, H, W) -> (B, N, C)``."""

    def __init__(self, patch_size: int, stride: Tuple[int, int], embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=tuple(stride))

    def grid(self, height: int, width: int) -> Tuple[int, int]:
        sy, sx = self.proj.stride
        return (height - self.patch_size) // sy + 1, (width - self.patch_size) // sx + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def resize_pos_embed(
    pos_embed: torch.Tensor, grid: Tuple[int, int], old_grid: Optional[Tuple[int, int]] = None
) -> torch.Tensor:
    """Bilinearly resize ``(1, 1 + gh*gw, C)`` position embeddings (CLS first) to ``grid``.

    ``old_grid`` defaults to a square grid (ImageNet checkpoints).
    """
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
    old = patch_pos.shape[1]
    if old_grid is None:
        side = int(round(math.sqrt(old)))
        old_grid = (side, old // side)
    old_h, old_w = old_grid
    if old_h * old_w != old:
        raise ValueError(
            f"A position embedding with {old} patches does not fit a {old_h}x{old_w} grid."
        )
    if (old_h, old_w) == tuple(grid):
        return pos_embed
    patch_pos = patch_pos.reshape(1, old_h, old_w, -1).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos, size=grid, mode="bilinear", align_corners=False)
    return torch.cat([cls_pos, patch_pos.permute(0, 2, 3, 1).flatten(1, 2)], dim=1)


class VisionTransformer(nn.Module):
    """TransReID-style ViT returning the CLS token as a ``(B, C, 1, 1)`` feature map.

    Args:
        img_size: training input ``(H, W)``; other sizes are handled by resizing ``pos_embed``.
        stride_size: patch-embedding stride; below ``patch_size`` the patches overlap.
        num_cameras: size of the side-information embedding (0 disables it).
        sie_coe: weight of the camera embedding.
    """

    accepts_camids = True

    def __init__(
        self,
        img_size: Sequence[int] = (256, 128),
        patch_size: int = 16,
        stride_size: Sequence[int] = (16, 16),
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        num_cameras: int = 0,
        sie_coe: float = 3.0,
    ) -> None:
        super().__init__()
        self.feat_dim = embed_dim
        self.patch_embed = PatchEmbed(patch_size, tuple(stride_size), embed_dim)
        self.grid = self.patch_embed.grid(*img_size)
        if min(self.grid) < 1:
            raise ValueError(f"Input {tuple(img_size)} is smaller than the {patch_size}px patch.")
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], embed_dim))
        self.num_cameras = int(num_cameras)
        self.sie_coe = sie_coe
        if self.num_cameras > 0:
            self.sie_embed = nn.Parameter(torch.zeros(self.num_cameras, 1, embed_dim))
            nn.init.trunc_normal_(self.sie_embed, std=0.02)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, qk_scale, drop_rate, attn_drop_rate, r)
            for r in rates
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, camids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x (B, 3, H, W)``, ``camids (B,)`` int64 or None -> CLS feature ``(B, C, 1, 1)``.

        Without ``camids`` (e.g. feature extraction without camera labels) the camera
        embedding is left out.
        """
        b = x.shape[0]
        grid = self.patch_embed.grid(x.shape[-2], x.shape[-1])
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        pos_embed = self.pos_embed
        if grid != self.grid:
            pos_embed = resize_pos_embed(pos_embed, grid, old_grid=self.grid)
        tokens = tokens + pos_embed
        if self.num_cameras > 0 and camids is not None:
            camids = camids.to(device=tokens.device, dtype=torch.long).view(-1)
            if camids.numel() and (camids.min() < 0 or camids.max() >= self.num_cameras):
                raise ValueError(
                    f"Camera ids must lie in [0, {self.num_cameras}) for the side-information "
                    f"embedding, got {camids.min().item()}..{camids.max().item()}; raise "
                    "MODEL.BACKBONE.NUM_CAMERAS."
                )
            tokens = tokens + self.sie_coe * self.sie_embed[camids]
        tokens = self.pos_drop(tokens)
        for block in self.blocks:
            tokens = block(tokens)
        cls = self.norm(tokens)[:, 0]
        return cls.reshape(b, -1, 1, 1)


def vit_key_mapper(model: VisionTransformer):
    """A mapper from timm / TransReID ViT checkpoints: drops the classifier head and resizes
    ``pos_embed`` to the model's patch grid."""

    def mapper(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        out = {}
        for key, value in state.items():
            if key.startswith(("head.", "pre_logits.", "fc_norm.", "dist_token", "head_dist.")):
                continue
            if key == "pos_embed" and value.shape != model.pos_embed.shape:
                value = resize_pos_embed(value.float(), model.grid)
            out[key] = value
        return out

    return mapper


@BACKBONE_REGISTRY.register()
def build_vit_backbone(cfg: CfgNode) -> VisionTransformer:
    """ViT from ``MODEL.BACKBONE``: DEPTH small/base (FEAT_DIM 768), STRIDE_SIZE, SIE_COE,
    NUM_CAMERAS, DROP_RATIO, ATT_DROP_RATE, DROP_PATH_RATIO; input size from INPUT.SIZE_TRAIN."""
    bb = cfg.MODEL.BACKBONE
    depth = str(bb.DEPTH).lower()
    if depth not in VIT_VARIANTS:
        raise KeyError(f"MODEL.BACKBONE.DEPTH {bb.DEPTH!r} is not a ViT size; use small or base.")
    layers, heads, mlp_ratio, qkv_bias, qk_scale = VIT_VARIANTS[depth]
    model = VisionTransformer(
        img_size=tuple(cfg.INPUT.SIZE_TRAIN),
        stride_size=tuple(bb.STRIDE_SIZE),
        depth=layers,
        num_heads=heads,
        mlp_ratio=mlp_ratio,
        qkv_bias=qkv_bias,
        qk_scale=qk_scale,
        drop_rate=bb.DROP_RATIO,
        attn_drop_rate=bb.ATT_DROP_RATE,
        drop_path_rate=bb.DROP_PATH_RATIO,
        num_cameras=bb.get("NUM_CAMERAS", 0),
        sie_coe=bb.SIE_COE,
    )
    load_backbone_pretrain(model, cfg, key_mapper=vit_key_mapper(model))
    return model

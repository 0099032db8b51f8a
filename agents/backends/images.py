"""Image observations for the agents that read them: checking, keeping per turn, and PNG data URLs both ways.

Used by the vision-language backend (`hf-vlm:`), the OpenAI-compatible agent (`openai:URL?images=1`, which sends
`image_url` content parts with base64 PNG data URLs) and `turngym serve` (which decodes them for a served VLM).
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

import numpy as np

from turngym.errors import ConfigError

MAX_IMAGE_PIXELS = 4096 * 4096  # larger images are refused (a decoded image lives in memory as H*W*3 bytes)


def as_image(img: Any, where: str) -> np.ndarray:
    """An observation image as a contiguous HxWx3 uint8 array, or a ConfigError naming what was wrong."""
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ConfigError(f"{where}: an image must be an HxWx3 array, got shape {a.shape}")
    if a.dtype != np.uint8:
        raise ConfigError(f"{where}: an image must be uint8 (0..255), got dtype {a.dtype}")
    if a.shape[0] * a.shape[1] > MAX_IMAGE_PIXELS:
        raise ConfigError(
            f"{where}: image of {a.shape[1]}x{a.shape[0]} pixels is over {MAX_IMAGE_PIXELS} pixels"
        )
    return np.ascontiguousarray(a)


def record_turn_image(ctx: Any) -> list[np.ndarray | None]:
    """Keep the current observation's image in `ctx.state["images"][turn]` (turn = `len(ctx.history)`, once per
    turn; None when the observation has none) and return that list: an `Agent` sees only the latest observation,
    so images of earlier turns exist only where it kept them."""
    imgs = ctx.state.setdefault("images", [])
    turn = len(ctx.history)
    while len(imgs) <= turn:
        imgs.append(None)
    img = ctx.observation.get("image") if isinstance(ctx.observation, dict) else None
    if imgs[turn] is None and img is not None:
        imgs[turn] = as_image(img, f"observation image of turn {turn}")
    return imgs


def kept_turns(n_turns: int, keep: int | None) -> range:
    """The user turns (0-based) that keep their image when only the last `keep` do (None: all)."""
    first = 0 if keep is None else max(0, n_turns - int(keep))
    return range(first, n_turns)


def png_data_url(img: Any) -> str:
    """`data:image/png;base64,...` of an HxWx3 uint8 image (what OpenAI-compatible APIs take as `image_url`)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(as_image(img, "png_data_url")).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def decode_data_url(url: Any, where: str = "image_url") -> np.ndarray:
    """An `image_url` (a `data:image/...;base64,` URL: PNG, JPEG, WebP, GIF) as an HxWx3 uint8 array. Remote
    URLs are refused (a server fetching arbitrary URLs for its clients is a hazard, and often has no network)."""
    from PIL import Image

    if not isinstance(url, str):
        raise ConfigError(f"{where}: the image url must be a string, got {type(url).__name__}")
    head, sep, data = url.partition(",")
    if not (sep and head.startswith("data:image/") and head.endswith(";base64")):
        shown = url[:40] + ("..." if len(url) > 40 else "")
        raise ConfigError(
            f"{where}: only base64 data URLs (data:image/png;base64,...) are accepted, got {shown!r}"
        )
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{where}: the data URL is not valid base64 ({exc})") from exc
    try:
        with Image.open(io.BytesIO(raw)) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise ConfigError(
                    f"{where}: image of {im.width}x{im.height} pixels is over {MAX_IMAGE_PIXELS} pixels"
                )
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad bytes; one clear error instead
        raise ConfigError(
            f"{where}: the data URL does not hold a readable image ({type(exc).__name__}: {exc})"
        ) from exc
    return np.ascontiguousarray(arr)

"""The vision-language backend: a transformers image-text-to-text model + its processor as a batched policy.

`VLMPolicy` keeps `HFPolicy`'s contract (batched multi-turn sampling with per-token log-probs, stop strings, the
chat template as append-only token deltas, `act()` for evaluation) and adds images: an observation with `"image"`
(an HxWx3 uint8 array) becomes an image part of that turn's user message, rendered by the chat template as
`<|vision_start|><|image_pad|><|vision_end|>` and expanded, as the model's processor does, to one `<|image_pad|>`
per merged vision patch. The model reads the pixels there.

Token prompts with images: a prompt is a list of ids whose image placeholder runs are already expanded, and
`generate(prompts, images=[[img, ...], ...])` gives each prompt its images in order (one per placeholder run).
`expand_images(ids, images)` turns the template's single placeholder per image into those runs, so the rollout engine
builds one append-only sequence per episode exactly as `processor.apply_chat_template` renders the conversation
(tested token by token).

Models: Qwen2-VL-shaped ones (`Qwen2VLForConditionalGeneration`: multimodal RoPE positions from
`get_rope_index`, `pixel_values` + `image_grid_thw` + `mm_token_type_ids`). `VLMPolicy.from_pretrained("tiny-vl")`
builds a small random one locally (a character tokenizer with the Qwen2-VL special tokens, an image processor
that resizes to at most 168x168 pixels = 36 image tokens, 2 text + 2 vision layers): for trying the pipelines on
CPU, not for results. KV reuse across turns is not implemented for this backend (each turn re-reads its prompt).

`keep_images=k` (evaluation, `act()`): only the last k turns' observations keep their image in the prompt (older
turns keep their text), which bounds the prompt. The rollout engine keeps every image of an episode, because its
one token sequence is both what the model saw and what the trainer scores; it refuses a policy with `keep_images`.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from turngym.agents.backends import flag
from turngym.agents.backends.hf import HFPolicy
from turngym.agents.backends.images import as_image, kept_turns, record_turn_image
from turngym.agents.base import EpisodeContext
from turngym.agents.policy import Generation
from turngym.agents.prompting import context_messages
from turngym.errors import ConfigError
from turngym.optional import require

log = logging.getLogger(__name__)

IMAGE_TOKEN = "<|image_pad|>"
VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", IMAGE_TOKEN, "<|video_pad|>"]

# ChatML with Qwen2-VL's image parts: content is a string, or a list of {"type": "image"} / {"type": "text"} parts
VL_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TINY_MIN_PIXELS = 56 * 56
TINY_MAX_PIXELS = 168 * 168


def image_processor_class() -> Any:
    """`Qwen2VLImageProcessorPil` where this transformers has it (no torchvision needed), else the default one."""
    transformers = require("transformers", extra="train")
    return getattr(transformers, "Qwen2VLImageProcessorPil", None) or transformers.Qwen2VLImageProcessor


def images_only_processor(image_processor: Any, tokenizer: Any, chat_template: str | None = None) -> Any:
    """A `Qwen2VLProcessor` without the video processor (which needs torchvision): images and text only."""
    transformers = require("transformers", extra="train")
    from transformers.processing_utils import ProcessorMixin

    class Qwen2VLImageTextProcessor(transformers.Qwen2VLProcessor):
        def __init__(
            self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kw
        ):
            self.image_token = getattr(tokenizer, "image_token", None) or IMAGE_TOKEN
            self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    return Qwen2VLImageTextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=chat_template or tokenizer.chat_template,
    )


def tiny_vl_processor(max_pixels: int = TINY_MAX_PIXELS) -> Any:
    """The local tokenizer (`char_tokenizer` + the Qwen2-VL vision tokens, template `VL_TEMPLATE`) and an image
    processor (14-pixel patches, 2x2 merge, at most `max_pixels` pixels), as one processor."""
    from turngym.agents.backends.tiny import char_tokenizer

    tok = char_tokenizer(VL_TEMPLATE)
    tok.add_special_tokens({"additional_special_tokens": VISION_TOKENS})
    ip = image_processor_class()(
        min_pixels=TINY_MIN_PIXELS,
        max_pixels=int(max_pixels),
        patch_size=14,
        merge_size=2,
        temporal_patch_size=2,
    )
    return images_only_processor(ip, tok, VL_TEMPLATE)


def tiny_qwen2_vl(
    tokenizer: Any, hidden: int = 64, layers: int = 2, vision_layers: int = 2, seed: int = 0
) -> Any:
    """A randomly initialised `Qwen2VLForConditionalGeneration` (float32) over `tokenizer`'s vocabulary."""
    torch = require("torch", extra="train")
    transformers = require("transformers", extra="train")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    heads = max(1, hidden // 16)
    cfg = transformers.Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=hidden * 2,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 2),
            max_position_embeddings=8192,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 2, 4]},
            tie_word_embeddings=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=None,
        ),
        vision_config=dict(
            depth=vision_layers,
            embed_dim=hidden,
            hidden_size=hidden,
            num_heads=heads,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            in_chans=3,
            mlp_ratio=2,
        ),
        image_token_id=ids[IMAGE_TOKEN],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = transformers.Qwen2VLForConditionalGeneration(cfg)
    model.eval()
    return model


class VLMPolicy(HFPolicy):
    """An image-text-to-text model as a batched policy. See the module docstring for the image contract."""

    name = "hf-vlm"
    multimodal = True

    def __init__(
        self,
        model: Any,
        processor: Any,
        keep_images: int | None = None,
        use_images: bool = True,
        freeze_vision: bool = False,
        **kwargs: Any,
    ):
        if kwargs.get("kv_reuse"):
            raise ConfigError("kv_reuse is not implemented for VLMPolicy (hf-vlm); leave it off")
        if kwargs.get("max_context_tokens"):
            raise ConfigError(
                "max_context_tokens is not supported by VLMPolicy (hf-vlm): bound the prompt with keep_images "
                "(the last k turns' images) and the env's max_turns"
            )
        if keep_images is not None and int(keep_images) < 0:
            raise ConfigError(f"keep_images must be >= 0 (or None for all), got {keep_images}")
        if not hasattr(model, "model") or not hasattr(model.model, "get_rope_index"):
            raise ConfigError(
                f"VLMPolicy supports Qwen2-VL-shaped models (multimodal RoPE via get_rope_index); got "
                f"{type(model).__name__}"
            )
        kwargs.setdefault("spec", f"hf-vlm:{getattr(model, 'name_or_path', '') or type(model).__name__}")
        super().__init__(model, processor.tokenizer, fast_decode=False, **kwargs)
        self.processor = processor
        self.image_processor = processor.image_processor
        self.keep_images = None if keep_images is None else int(keep_images)
        self.use_images = flag(use_images)
        self.image_token_id = int(model.config.image_token_id)
        self.merge = int(getattr(self.image_processor, "merge_size", 2))
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        if flag(freeze_vision):
            self.freeze_vision()

    # ---- construction ----------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, dtype: Any = "float32", **kwargs: Any) -> VLMPolicy:  # type: ignore[override]
        """`tiny-vl` (built locally, random weights from `seed`) or a checkpoint folder of an image-text-to-text
        model with its processor files (loaded with `AutoModelForImageTextToText`; without torchvision the
        processor is rebuilt from its image processor and tokenizer, images only)."""
        if str(path) == "tiny-vl":
            return tiny_vl_policy(**kwargs)
        torch = require("torch", extra="train", purpose="the vision-language backend")
        transformers = require("transformers", extra="train", purpose="the vision-language backend")
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"VLM model path {str(path)!r} is not a checkpoint folder (no config.json); pass a folder saved by "
                "save_pretrained (model + processor) or 'tiny-vl' (a small random model built locally)"
            )
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        model = transformers.AutoModelForImageTextToText.from_pretrained(str(folder), dtype=dtype)
        model.eval()
        processor = load_processor(folder)
        kwargs.setdefault("spec", f"hf-vlm:{folder}")
        return cls(model, processor, **kwargs)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Model weights, config and processor files: what `VLMPolicy.from_pretrained(folder)` loads."""
        self.model.save_pretrained(str(folder))
        self.processor.save_pretrained(str(folder))

    def replica(self) -> VLMPolicy:
        import copy

        r = VLMPolicy(
            copy.deepcopy(self.model),
            self.processor,
            keep_images=self.keep_images,
            use_images=self.use_images,
            **self.settings(),
        )
        r.constrain(self.constraint_spec)
        return r

    @property
    def base_model(self) -> Any:
        """The transformers model under any adapter wrapper (a trainer's LoRA wraps `self.model` with peft)."""
        unwrap = getattr(self.model, "get_base_model", None)
        return unwrap() if callable(unwrap) else self.model

    def freeze_vision(self) -> int:
        """Stop training the vision tower (requires_grad False; trainers optimise only trainable parameters).
        Returns the number of frozen parameters."""
        visual = getattr(self.base_model.model, "visual", None)
        if visual is None:
            raise ConfigError(f"{type(self.model).__name__} has no vision tower at model.model.visual")
        n = 0
        for p in visual.parameters():
            p.requires_grad_(False)
            n += p.numel()
        return n

    # ---- images ----------------------------------------------------------------------------------------------
    def image_inputs(self, images: list[np.ndarray]) -> dict[str, Any]:
        """The processor's `pixel_values` [patches, C*T*P*P] and `image_grid_thw` [n, 3] for images in order."""
        torch = require("torch", extra="train")
        if not images:
            return {}
        imgs = [as_image(im, "VLMPolicy") for im in images]
        out = self.image_processor(images=imgs, return_tensors="pt")
        return {
            "pixel_values": out["pixel_values"].to(torch.float32),
            "image_grid_thw": out["image_grid_thw"].to(torch.long),
        }

    def num_image_tokens(self, grid_thw: Any) -> int:
        t, h, w = (int(x) for x in grid_thw)
        return t * h * w // (self.merge * self.merge)

    def expand_images(self, ids: list[int], images: list[np.ndarray]) -> list[int]:
        """Replace the template's single `<|image_pad|>` per image in `ids` with that image's run of placeholders
        (one per merged patch), as the processor does. The number of placeholders must equal `len(images)`."""
        singles = [i for i, t in enumerate(ids) if t == self.image_token_id]
        if len(singles) != len(images):
            raise ConfigError(
                f"expand_images: {len(singles)} image placeholder(s) in the prompt for {len(images)} image(s)"
            )
        if not images:
            return list(ids)
        grids = self.image_inputs(images)["image_grid_thw"]
        out: list[int] = []
        k = 0
        for t in ids:
            if t == self.image_token_id:
                out.extend([t] * self.num_image_tokens(grids[k]))
                k += 1
            else:
                out.append(t)
        return out

    def user_content(self, text: str, image: Any) -> str | list[dict[str, str]]:
        """A user message's content: the text alone, or an image part then the text (when images are used).

        The vision tokens' spellings in the text (a web page may show `<|image_pad|>`) are defused (`<|` becomes
        `< |`), so only real images make placeholders."""
        text = defuse_vision_tokens(text)
        if image is None or not self.use_images:
            return text
        return [{"type": "image"}, {"type": "text", "text": text}]

    def vision_token_ids(self) -> list[int]:
        """Ids the policy never generates (placeholders and vision delimiters): masked out of every sampling
        distribution, here and in the trainers' forward (`mask_vision_logits`)."""
        return vision_token_ids(self.model.config)

    def mm_token_type_ids(self, ids: list[int]) -> list[int]:
        return [1 if t == self.image_token_id else 0 for t in ids]

    def _check_runs(self, ids: list[int], grids: Any, where: str) -> None:
        """The placeholder runs of `ids` match the images' token counts, one run per image (a wrong image list
        would otherwise put one image's features at another's positions, or fail deep inside the model)."""
        runs, k = [], 0
        while k < len(ids):
            if ids[k] == self.image_token_id:
                j = k
                while j < len(ids) and ids[j] == self.image_token_id:
                    j += 1
                runs.append(j - k)
                k = j
            else:
                k += 1
        want = [self.num_image_tokens(g) for g in grids] if grids is not None else []
        if runs != want:
            raise ConfigError(
                f"{where}: the prompt's image placeholder runs {runs} do not match its images' token counts {want} "
                "(pass one image per placeholder run, in order)"
            )

    # ---- generation ------------------------------------------------------------------------------------------
    def generate(  # type: ignore[override]
        self,
        prompts: list[list[int]],
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: list[str] | None = None,
        seed: int | list[int] | None = None,
        cache_keys: list[Any] | None = None,
        cancel: list[Any] | None = None,
        images: list[list[np.ndarray]] | None = None,
        constraints: list[Any] | None = None,
    ) -> list[Generation]:
        """`HFPolicy.generate` with `images`: per prompt, the images of its placeholder runs, in order (None: no
        images anywhere). Positions are the model's multimodal RoPE indices over each row's real tokens, so a row's
        samples and log-probs do not depend on the padding its batch needs."""
        torch = require("torch", extra="train")
        if not prompts:
            return []
        sampling = self._sampling(
            prompts, max_new_tokens, temperature, top_p, stop, seed, cancel, constraints
        )
        n = len(prompts)
        if images is None:
            images = [[] for _ in prompts]
        if len(images) != n:
            raise ConfigError(f"generate() got {len(images)} image lists for {n} prompts")
        device = next(self.model.parameters()).device
        flat = [im for row in images for im in row]
        vis = self.image_inputs(flat)
        grids = vis.get("image_grid_thw")
        k = 0
        for i, (p, row) in enumerate(zip(prompts, images)):
            self._check_runs(p, grids[k : k + len(row)] if row else None, f"generate() prompt {i}")
            k += len(row)
        width = max(len(p) for p in prompts)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p) :] = 1
        mm = (ids == self.image_token_id).long() * mask
        ids, mask, mm = ids.to(device), mask.to(device), mm.to(device)
        self.prefill_tokens += int(mask.sum())
        pos, _ = self.base_model.model.get_rope_index(
            ids,
            mm_token_type_ids=mm,
            image_grid_thw=grids.to(device) if grids is not None else None,
            attention_mask=mask,
        )
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                kw: dict[str, Any] = dict(
                    input_ids=ids, attention_mask=mask, position_ids=pos, mm_token_type_ids=mm, use_cache=True
                )
                if vis:
                    kw.update(
                        pixel_values=vis["pixel_values"].to(device),
                        image_grid_thw=vis["image_grid_thw"].to(device),
                    )
                out = self.model(**kw, logits_to_keep=1)
                past, logits = _cache_of(out), out.logits[:, -1, :]
                last = pos[:, :, -1:]  # [3, n, 1]: each row's last position (rows are left-padded)

                def advance(feed: Any) -> Any:
                    nonlocal mask, last, past
                    mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=device)], dim=1)
                    last = last + 1
                    out = self.model(
                        input_ids=feed,
                        attention_mask=mask,
                        position_ids=last,
                        use_cache=True,
                        **{self._cache_kw: past},
                    )
                    past = _cache_of(out)
                    return out.logits[:, -1, :]

                out_ids, out_lp, reason, allowed = self._decode(logits, advance, sampling, device)
        finally:
            self.model.train(was_training)
        return [
            Generation(out_ids[i], out_lp[i], self._reply(sampling, i, out_ids[i]), reason[i], allowed[i])
            for i in range(n)
        ]

    def _adjust_logits(self, logits: Any) -> Any:
        """Never sample the image placeholder / vision delimiter ids."""
        return mask_vision_logits(logits, self.model.config)

    # ---- the Agent interface (evaluation) ---------------------------------------------------------------------
    def observe_image(self, ctx: EpisodeContext) -> None:
        """Record the current observation's image for turn `len(ctx.history)` (once per turn)."""
        record_turn_image(ctx)

    def messages_for(self, ctx: EpisodeContext) -> list[dict[str, Any]]:  # type: ignore[override]
        """The conversation with the image of each of the last `keep_images` turns (all with None) before that
        turn's text. Images are taken from `ctx.state["images"]` (recorded by `act`)."""
        self.observe_image(ctx)
        msgs: list[dict[str, Any]] = context_messages(ctx, ctx.state.get("system_prompt", self.system_prompt))
        imgs = ctx.state.get("images", [])
        users = [i for i, m in enumerate(msgs) if m["role"] == "user"]
        kept = kept_turns(len(users), self.keep_images)
        for turn, i in enumerate(users):
            img = imgs[turn] if turn < len(imgs) and turn in kept else None
            msgs[i] = {"role": "user", "content": self.user_content(msgs[i]["content"], img)}
        return msgs

    def encode_conversation(self, messages: list[dict[str, Any]], images: list[np.ndarray]) -> list[int]:
        """Prompt ids (with the generation prompt) of a conversation whose image parts take `images` in order."""
        return self.expand_images(self.chat.prompt_ids(messages), images)

    def answer_episode(
        self,
        messages: list[dict[str, Any]],
        images: list[np.ndarray],
        answer: str,
        reward: float = 1.0,
        task_id: str = "",
        group: int = 0,
    ) -> Any:
        """A one-turn `TokenEpisode` for supervised training (SFT data): the prompt of `messages` (whose image
        parts take `images` in order) exactly as the rollout engine renders it, then `answer` + the end-of-turn id
        as policy tokens and the template's closing ids, with the image inputs and token types a VLM episode
        carries."""
        from turngym.agents.trajectory import TokenEpisode

        prompt = self.encode_conversation(messages, images)
        gen = self.chat.encode(answer) + [self.chat.end_ids[0]]
        close, _ = self.chat.close_assistant([*messages, {"role": "assistant", "content": answer}], gen)
        ids = prompt + gen + close
        mask = [0] * len(prompt) + [1] * len(gen) + [0] * len(close)
        return TokenEpisode(
            input_ids=ids,
            policy_mask=mask,
            logprobs=[0.0] * len(ids),
            turn_index=[0 if m else -1 for m in mask],
            rewards=[float(reward)],
            obs_keys=[""],
            infos=[{}],
            task_id=task_id,
            group=group,
            images=[as_image(im, "answer_episode") for im in images],
            image_inputs=self.image_inputs(images),
            mm_token_type_ids=self.mm_token_type_ids(ids),
        )

    def conversation_images(self, ctx: EpisodeContext, messages: list[dict[str, Any]]) -> list[np.ndarray]:
        imgs = ctx.state.get("images", [])
        users = [m for m in messages if m["role"] == "user"]
        return [imgs[t] for t, m in enumerate(users) if not isinstance(m["content"], str)]

    def prompts_for(self, contexts: list[EpisodeContext]) -> tuple[list[list[int]], dict[str, Any]]:
        prompts, images = [], []
        for ctx in contexts:
            msgs = self.messages_for(ctx)
            imgs = self.conversation_images(ctx, msgs)
            prompts.append(self.encode_conversation(msgs, imgs))
            images.append(imgs)
        return prompts, {"images": images}


def _cache_of(out: Any) -> Any:
    """The KV cache of a model output (`cache` in recent transformers, `past_key_values` before)."""
    keys = out.keys() if hasattr(out, "keys") else []
    return out["cache"] if "cache" in keys else out.past_key_values


def defuse_vision_tokens(text: str) -> str:
    for tok in VISION_TOKENS:
        text = text.replace(tok, tok.replace("<|", "< |"))
    return text


def vision_token_ids(config: Any) -> list[int]:
    """The image/video placeholder and vision start/end ids of a Qwen2-VL-shaped model config ([] for others)."""
    names = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
    return [int(v) for v in (getattr(config, k, None) for k in names) if v is not None]


def mask_vision_logits(logits: Any, config: Any) -> Any:
    """`logits` with the vision token ids of `config` at a large negative value: the policy's distribution never
    puts mass on placeholders (a sampled `<|image_pad|>` would be read as an image slot). Unchanged for text-only
    models.

    The value is finite (-1e9; -1e4 in float16), not -inf: its probability is still exactly 0 in float32, but an
    entropy term `-(p * log p)` stays 0 there instead of `0 * -inf = nan` (which would poison the gradients)."""
    ids = vision_token_ids(config)
    ids = [i for i in ids if i < logits.shape[-1]]
    if not ids:
        return logits
    import torch

    fill = -1e4 if logits.dtype == torch.float16 else -1e9
    return logits.index_fill(-1, torch.tensor(ids, dtype=torch.long, device=logits.device), fill)


def load_processor(folder: str | os.PathLike) -> Any:
    """`AutoProcessor.from_pretrained(folder)`, or (when that needs torchvision, absent here) the image processor
    and tokenizer of the folder as an images-only Qwen2-VL processor."""
    transformers = require("transformers", extra="train")
    try:
        proc = transformers.AutoProcessor.from_pretrained(str(folder))
        if (
            getattr(proc, "image_processor", None) is not None
            and getattr(proc, "tokenizer", None) is not None
        ):
            return proc
        # a processor class transformers does not know (ours, saved by save_pretrained) loads as a bare tokenizer
        log.info(
            "AutoProcessor gave %s for %s; building an images-only processor", type(proc).__name__, folder
        )
    except (ImportError, AttributeError, ValueError, TypeError, OSError) as exc:
        log.info("AutoProcessor failed for %s (%s); building an images-only processor", folder, exc)
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    try:
        ip = image_processor_class().from_pretrained(str(folder))
    except OSError as exc:
        raise ConfigError(
            f"VLM checkpoint {str(folder)!r} has no image processor files (preprocessor_config.json); save the "
            "processor with the model (VLMPolicy.save_pretrained does both)"
        ) from exc
    return images_only_processor(ip, tok)


def tiny_vl_policy(
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
    vision_layers: int = 2,
    max_pixels: int = TINY_MAX_PIXELS,
    **kwargs: Any,
) -> VLMPolicy:
    """A `VLMPolicy` over `tiny_qwen2_vl` + `tiny_vl_processor` (kwargs go to VLMPolicy)."""
    proc = tiny_vl_processor(max_pixels=int(max_pixels))
    model = tiny_qwen2_vl(
        proc.tokenizer,
        hidden=int(hidden),
        layers=int(layers),
        vision_layers=int(vision_layers),
        seed=int(seed),
    )
    kwargs.setdefault("spec", f"hf-vlm:tiny-vl-{hidden}x{layers}")
    return VLMPolicy(model, proc, seed=int(seed), **kwargs)

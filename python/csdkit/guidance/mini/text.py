"""Captions, the word-level tokenizer and the small text encoder of the MiniPrior.

The vocabulary is closed: the palette colours, the shapes, the pattern words and a few function
words. Words outside it are dropped by :class:`WordTokenizer` with one warning that lists them.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from .data import COLORS, SHAPES, SceneBatch

PAD, BOS = "<pad>", "<s>"
FUNCTION_WORDS = ("a", "an", "the", "with", "and", "object", "striped", "stripes", "checkered",
                  "checkers", "dotted", "dots", "solid", "colored", "shape")
VOCAB: tuple[str, ...] = (PAD, BOS, *COLORS, *SHAPES, *FUNCTION_WORDS)
MAX_TOKENS = 12


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(shape: str | None, pattern: str, color1: str | None, color2: str | None,
            variant: int) -> str:
    """One caption for a scene; ``variant`` picks the template (any int, taken modulo the count).

    ``shape`` or the colours may be ``None`` for shape-only / colour-only captions.
    """
    s = shape or "object"
    if pattern == "solid" or color1 is None:
        if color1 is None:
            return f"{_article(s)} {s}"
        forms = (f"{_article(color1)} {color1} {s}", f"{color1} {s}", f"the {color1} {s}",
                 f"{_article(s)} {s} colored {color1}")
        return forms[variant % len(forms)]
    c1, c2 = color1, color2 or color1
    if pattern == "stripes":
        forms = (f"{_article(s)} {s} with {c1} and {c2} stripes",
                 f"{_article(c1)} {c1} and {c2} striped {s}", f"a striped {c1} {s}")
    elif pattern == "checkers":
        forms = (f"{_article(c1)} {c1} and {c2} checkered {s}",
                 f"{_article(s)} {s} with {c1} and {c2} checkers", f"{_article(c1)} {c1} checkered {s}")
    else:  # dots: base colour c1, dots c2
        forms = (f"{_article(c1)} {c1} {s} with {c2} dots", f"a dotted {c1} and {c2} {s}",
                 f"{_article(s)} {s} with {c2} dots")
    return forms[variant % len(forms)]


def caption_scenes(scenes: SceneBatch, generator: torch.Generator) -> list[str]:
    """Random captions for a batch of scenes: mostly full descriptions, sometimes colour-only,
    shape-only or pattern-only ones (drawn from ``generator``)."""
    from .data import PATTERNS

    n = len(scenes)
    kind = torch.rand(n, generator=generator)
    variant = torch.randint(0, 12, (n,), generator=generator)
    out = []
    for i in range(n):
        shape = SHAPES[int(scenes.shape[i])]
        pattern = PATTERNS[int(scenes.pattern[i])]
        c1, c2 = COLORS[int(scenes.color1[i])], COLORS[int(scenes.color2[i])]
        k, v = float(kind[i]), int(variant[i])
        if k < 0.75:                       # full description
            out.append(caption(shape, pattern, c1, c2, v))
        elif k < 0.88:                     # colour (and pattern) without the shape
            out.append(caption(None, pattern, c1, c2, v))
        elif pattern != "solid" and k < 0.94:  # pattern and shape without colours
            word = {"stripes": "striped", "checkers": "checkered", "dots": "dotted"}[pattern]
            out.append(f"{_article(word)} {word} {shape}")
        else:                              # shape only
            out.append(caption(shape, "solid", None, None, v))
    return out


class WordTokenizer:
    """Lower-cases, splits on non-letters, maps words to ids of a closed vocabulary.

    ``encode(prompts)`` returns ``ids [P, max_tokens]`` int64: ``<s>``, the known words, then
    ``<pad>``. Unknown words are dropped with a warning that lists them; extra words beyond
    ``max_tokens - 1`` are dropped with a warning too.
    """

    def __init__(self, vocab: tuple[str, ...] | list[str] = VOCAB, max_tokens: int = MAX_TOKENS):
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_tokens = int(max_tokens)

    def __len__(self) -> int:
        return len(self.vocab)

    def words(self, prompt: str) -> tuple[list[str], list[str]]:
        """``(known, unknown)`` words of ``prompt``."""
        if not isinstance(prompt, str):
            raise TypeError(f"WordTokenizer.encode(): prompts must be str, got {type(prompt).__name__}")
        tokens = re.findall(r"[a-z]+", prompt.lower())
        known = [w for w in tokens if w in self.index and w not in (PAD, BOS)]
        unknown = [w for w in tokens if w not in self.index]
        return known, unknown

    def encode(self, prompts: list[str], warn: bool = True) -> torch.Tensor:
        ids = torch.full((len(prompts), self.max_tokens), self.index[PAD], dtype=torch.int64)
        unknown_all: list[str] = []
        truncated = False
        for i, prompt in enumerate(prompts):
            known, unknown = self.words(prompt)
            unknown_all += [w for w in unknown if w not in unknown_all]
            row = [self.index[BOS]] + [self.index[w] for w in known]
            truncated |= len(row) > self.max_tokens
            row = row[: self.max_tokens]
            ids[i, : len(row)] = torch.tensor(row)
        if warn and unknown_all:
            warnings.warn(f"MiniPrior: ignoring words outside its vocabulary: {', '.join(unknown_all)} "
                          f"(it knows colours {', '.join(COLORS)}; shapes {', '.join(SHAPES)}; "
                          "patterns stripes/checkers/dots)", stacklevel=3)
        if warn and truncated:
            warnings.warn(f"MiniPrior: prompts longer than {self.max_tokens - 1} known words were "
                          "truncated", stacklevel=3)
        return ids

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"vocab": self.vocab, "max_tokens": self.max_tokens}, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        data = json.loads(Path(path).read_text())
        return cls(data["vocab"], data["max_tokens"])


class TextEncoder(nn.Module):
    """Learned word + position embeddings and one pre-norm transformer layer.

    ``forward(ids [P, L] int64) -> [P, L, dim]`` float, the U-Net's cross-attention context.
    """

    def __init__(self, vocab_size: int, dim: int = 64, max_tokens: int = MAX_TOKENS, heads: int = 4):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.zeros(max_tokens, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm_out = nn.LayerNorm(dim)
        nn.init.normal_(self.tok.weight, std=0.5)
        nn.init.normal_(self.pos, std=0.1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.tok(ids) + self.pos[: ids.shape[1]]
        a = self.norm1(h)
        h = h + self.attn(a, a, a, need_weights=False)[0]
        h = h + self.ff(self.norm2(h))
        return self.norm_out(h)

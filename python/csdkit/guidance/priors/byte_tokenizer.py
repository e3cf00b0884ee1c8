"""A tokenizer that needs no download: one token per UTF-8 byte (plus start, end and padding).

Random-weight priors (architecture presets for benchmarks, tiny models in tests) need *a*
tokenizer whose ids fit the text encoder's vocabulary; real vocabularies (CLIP's 49408 BPE
tokens, T5's sentencepiece model) come with downloaded weights. Built with the ``tokenizers``
package and wrapped as a ``transformers`` fast tokenizer, so it is called exactly like CLIP's::

    tok = byte_tokenizer(max_length=77)
    tok(["a cat"], padding="max_length", max_length=77, truncation=True, return_tensors="pt")
"""

from __future__ import annotations

from typing import Any

PAD, BOS, EOS = "<|pad|>", "<|startoftext|>", "<|endoftext|>"
#: ids 0, 1, 2 are PAD, BOS, EOS; the 256 byte symbols follow.
VOCAB_SIZE = 259


def byte_tokenizer(max_length: int = 77) -> Any:
    """A ``transformers`` fast tokenizer over bytes with ``VOCAB_SIZE = 259`` ids, BOS/EOS added,
    padding with id 0 and ``model_max_length = max_length``."""
    from tokenizers import Tokenizer, decoders, models, processors
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {PAD: 0, BOS: 1, EOS: 2}
    for symbol in sorted(ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A {EOS}",
                                                       special_tokens=[(BOS, 1), (EOS, 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   model_max_length=max_length)

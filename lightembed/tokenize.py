"""Batch tokenisation to flat id arrays, with a token cap and a cheap character pre-cut."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np
from tokenizers import Encoding, Tokenizer

from .config import ModelConfig

# Characters kept per allowed token before tokenising: a 10 MB string costs no more than a paragraph
# (a text whose cut part does not fill the token cap is cut again, longer, up to READ_CHARS_PER_TOKEN:
# a text is read until the token cap or that many characters per allowed token, whichever comes first).
CHARS_PER_TOKEN = 16
READ_CHARS_PER_TOKEN = 1024


class TokenBatcher:
    """Turns a batch of strings into (flat token ids, tokens per text)."""

    def __init__(self, tokenizer: Tokenizer, config: ModelConfig, max_length: int) -> None:
        """Tokenise as `config` says, at most `max_length` tokens per text; sets `tokenizer`'s truncation."""
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.add_special_tokens = config.add_special_tokens
        self.max_chars = max_length * CHARS_PER_TOKEN
        self.read_chars = max_length * READ_CHARS_PER_TOKEN
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length)
        self._keep: np.ndarray | None = None
        if config.ignore_token_ids:
            self._keep = np.ones(config.vocab_size, dtype=bool)
            self._keep[list(config.ignore_token_ids)] = False

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of all texts concatenated (int64) and the number of ids of each text."""
        cap = self.max_chars
        encodings = self._encode_cut(texts, cap)
        # A cut text that did not fill the token cap lost words the cap allows (long runs of
        # spaces or zero-width characters make few tokens): cut those again, longer.
        short = [i for i, text in enumerate(texts) if len(text) > cap and not encodings[i].overflowing]
        while short and cap < self.read_chars:
            cap = min(4 * cap, self.read_chars)
            for i, encoding in zip(short, self._encode_cut([texts[i] for i in short], cap)):
                encodings[i] = encoding
            short = [i for i in short if len(texts[i]) > cap and not encodings[i].overflowing]
        id_lists = [encoding.ids for encoding in encodings]
        lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
        flat = np.fromiter(chain.from_iterable(id_lists), dtype=np.int64, count=int(lengths.sum()))
        if self._keep is not None:
            flat, lengths = self._drop_ignored(flat, lengths)
        return flat, lengths

    def _encode_cut(self, texts: Sequence[str], cap: int) -> list[Encoding]:
        """Encodings of the texts' first `cap` characters."""
        cut = [text[:cap] for text in texts]
        try:
            return self.tokenizer.encode_batch_fast(cut, add_special_tokens=self.add_special_tokens)
        except TypeError:
            # Lone surrogates cannot cross into Rust; replace them and try again.
            cut = [text.encode("utf-8", "replace").decode("utf-8") for text in cut]
            return self.tokenizer.encode_batch_fast(cut, add_special_tokens=self.add_special_tokens)

    def _drop_ignored(self, flat: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = self._keep[flat]
        text_of_token = np.repeat(np.arange(len(lengths)), lengths)
        kept_lengths = np.bincount(text_of_token[keep], minlength=len(lengths)).astype(np.int64)
        return flat[keep], kept_lengths

"""Tiny, randomly initialised models built offline for the local-model workflows' tests."""

from __future__ import annotations

from pathlib import Path

#: A ChatML template like SmolLM2's.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_level_tokenizer(directory: Path) -> int:
    """Saves a byte-level tokenizer with no merges (one token per byte) plus ChatML special
    tokens to ``directory``; returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: index for index, token in enumerate(specials + alphabet)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(directory)
    return len(vocab)


def tiny_llama(directory: Path, seed: int = 0) -> Path:
    """A 2-layer Llama with a byte-level tokenizer, saved with ``save_pretrained``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    vocab_size = byte_level_tokenizer(directory)
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def tiny_bark(directory: Path, seed: int = 0) -> Path:
    """A 1-layer Bark (semantic, coarse, fine, and a tiny EnCodec codec) with a character-level
    BERT tokenizer, saved as ``BarkModel``/``BarkProcessor`` save it. Random weights: it makes
    noise, at Bark's real 24 kHz and with Bark's real token layout."""
    import json

    import torch
    from transformers import (
        BarkCoarseConfig,
        BarkConfig,
        BarkFineConfig,
        BarkModel,
        BarkProcessor,
        BarkSemanticConfig,
        BertTokenizer,
        EncodecConfig,
    )
    from transformers.models.bark.generation_configuration_bark import (
        BarkCoarseGenerationConfig,
        BarkFineGenerationConfig,
        BarkGenerationConfig,
        BarkSemanticGenerationConfig,
    )

    directory.mkdir(parents=True, exist_ok=True)
    chars = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *("##" + c for c in chars)]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    processor = BarkProcessor(BertTokenizer(str(directory / "vocab.txt"), do_lower_case=False))
    # Bark's token layout is fixed: text ids are offset by 10,048 (semantic input 129,600),
    # 10,000 semantic tokens, 2 x 1,024 coarse codes, 8 codebooks of 1,024.
    common = {"num_layers": 1, "num_heads": 2, "hidden_size": 16, "block_size": 1024}
    config = BarkConfig(
        semantic_config=BarkSemanticConfig(input_vocab_size=129_600, output_vocab_size=10_048, **common).to_dict(),
        coarse_acoustics_config=BarkCoarseConfig(input_vocab_size=12_096, output_vocab_size=12_096, **common).to_dict(),
        fine_acoustics_config=BarkFineConfig(
            input_vocab_size=1056, output_vocab_size=1056, n_codes_total=8, n_codes_given=1, **common
        ).to_dict(),
        codec_config=EncodecConfig(
            target_bandwidths=[1.5, 3.0, 6.0], sampling_rate=24_000, audio_channels=1, num_filters=4,
            hidden_size=16, codebook_size=1024, codebook_dim=16, num_residual_layers=1, num_lstm_layers=1,
            upsampling_ratios=[8, 5, 4, 2],
        ).to_dict(),
    )  # fmt: skip
    torch.manual_seed(seed)
    BarkModel(config).save_pretrained(directory)
    processor.save_pretrained(directory)
    # BarkGenerationConfig cannot save itself (transformers 4.57 validates it as a plain
    # GenerationConfig and fails): write the file that real Bark checkpoints carry.
    generation = BarkGenerationConfig(
        semantic_config=BarkSemanticGenerationConfig(max_new_tokens=40).to_dict(),
        coarse_acoustics_config=BarkCoarseGenerationConfig().to_dict(),
        fine_acoustics_config=BarkFineGenerationConfig().to_dict(),
        sample_rate=24_000,
        codebook_size=1024,
    )
    (directory / "generation_config.json").write_text(json.dumps(generation.to_dict()))
    return directory

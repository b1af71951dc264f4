"""Hugging Face checkpoints (config.json + safetensors, single or sharded) in and out, without PyTorch.

    load_llm(path)              -> Llama;  config.json's model_type (llama, qwen2, qwen3) picks the family;
                                   module(input_ids) == LlamaForCausalLM / Qwen2ForCausalLM / Qwen3ForCausalLM logits
    load_llama(path)            -> the same, for LlamaForCausalLM folders only
    load_blip2_vision(path)     -> VisionTransformer;  == Blip2VisionModel last_hidden_state
    load_qformer(path)          -> QFormer;  == Blip2QFormerModel / InstructBlipQFormerModel last_hidden_state
    load_query_tokens(path)     -> the learned query tokens of a BLIP-2 / InstructBLIP checkpoint
    load_whisper_encoder(path)  -> WhisperEncoder;  == WhisperEncoder last_hidden_state
    load_whisper(path)          -> WhisperSpeechModel (encoder + decoder);  == WhisperForConditionalGeneration
                                   logits, and greedy timestamped generate via models.whisper.transcribe.transcribe
    save_llm(module, path)      -> a folder transformers loads as the module's family (LoRA merged);
                                   export_llama is the same function

Loaders accept the standalone save of a module and the full-model checkpoint that contains it.
"""
from microemo_jax.hf.blip2_vision import load_blip2_vision
from microemo_jax.hf.llama import export_llama, load_llama
from microemo_jax.hf.llm import load_llm, save_llm
from microemo_jax.hf.qformer import load_qformer, load_query_tokens
from microemo_jax.hf.safetensors_io import CheckpointError, HFCheckpoint
from microemo_jax.hf.whisper import load_whisper, load_whisper_encoder, load_whisper_generation_config

__all__ = ['CheckpointError', 'HFCheckpoint', 'export_llama', 'load_blip2_vision', 'load_llama', 'load_llm',
           'load_qformer', 'load_query_tokens', 'load_whisper', 'load_whisper_encoder',
           'load_whisper_generation_config', 'save_llm']

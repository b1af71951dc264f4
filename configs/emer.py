r"""MicroEmo on EMER-style data (big_vision-style config).

    python -m microemo_jax.convert --config configs/emer.py:paper ...
    --config configs/emer.py:demo --config.model.llm.num_layers=2     # any field, from the command line

Variants:
  demo   tiny widths for 2 CPU cores (minutes), same architecture and switches as the paper model.
  tiny   the demo shrunk further for the test suite (4 frames, 32 px, 1-layer video/audio Q-Formers and
         face branch, a 320-token LLM): every switch, seconds to compile.
  paper  EVA ViT-g/14 224 px, BERT-base Q-Formers (InstructBLIP layout), LLaMA-2-7B-chat, Whisper-large-v3
         encoder, T=32 frames (TimeChat goes to 96), K=4 face crops per anchor, U_max=8 utterances.
  paper_qwen2_5_7b   the paper model with Qwen2.5-7B-Instruct as the LLM (AffectGPT's base)
  paper_qwen3_0_6b   the paper model with Qwen3-0.6B as the LLM (Light-MER's)
  demo_qwen3, tiny_qwen3   demo / tiny with a small Qwen3-style LLM (q/k norms, head_dim apart from
         hidden/heads, tied head) and a ChatML demo tokenizer with its chat template (docs/qwen.md)
"""
import ml_collections

VARIANTS = ('demo', 'paper', 'tiny', 'paper_qwen2_5_7b', 'paper_qwen3_0_6b', 'demo_qwen3', 'tiny_qwen3')

# The Qwen LLMs of the field's systems, as their config.json give them (hf.load_llm checks a checkpoint
# against these when `convert --llm` loads it).
QWEN_LLMS = {
    'qwen2_5_7b': dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_layers=28, num_heads=28,
                       num_kv_heads=4, head_dim=128, rms_norm_eps=1e-6, rope_theta=1e6, max_position_embeddings=32768,
                       tie_word_embeddings=False, qkv_bias=True),
    'qwen3_0_6b': dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_layers=28, num_heads=16,
                       num_kv_heads=8, head_dim=128, rms_norm_eps=1e-6, rope_theta=1e6, max_position_embeddings=40960,
                       tie_word_embeddings=True, qk_norm=True),
}


def _vision(hidden, intermediate, layers, heads, patch, image, eps):
    return ml_collections.ConfigDict(dict(hidden_size=hidden, intermediate_size=intermediate, num_layers=layers,
                                          num_heads=heads, patch_size=patch, image_size=image,
                                          layer_norm_eps=eps))


def _qformer(hidden, layers, heads, intermediate, cross_freq, queries, vocab=0, max_pos=512, eps=1e-12,
             dropout=0.1):
    return ml_collections.ConfigDict(dict(hidden_size=hidden, num_layers=layers, num_heads=heads,
                                          intermediate_size=intermediate, cross_attention_frequency=cross_freq,
                                          num_query_tokens=queries, vocab_size=vocab,
                                          max_position_embeddings=max_pos, pad_token_id=0, layer_norm_eps=eps,
                                          dropout=dropout))


def get_config(arg=None):
    variant = arg or 'demo'
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} of configs/emer.py; choose one of {VARIANTS}")
    base, _, llm_name = variant.partition('_')   # 'paper_qwen2_5_7b' -> 'paper' with the LLM 'qwen2_5_7b'
    c = _base_config(base, variant)
    if llm_name in QWEN_LLMS:
        c.model.llm.update(QWEN_LLMS[llm_name])
    elif llm_name == 'qwen3':  # a small Qwen3-style LLM trained from scratch with the demo corpus
        c.model.llm.update(qk_norm=True, tie_word_embeddings=True, rope_theta=1e6,
                           head_dim=2 * c.model.llm.hidden_size // c.model.llm.num_heads)
        c.data.demo_tokenizer = 'qwen'
    return c


def _base_config(variant, name):
    paper = variant == 'paper'
    c = ml_collections.ConfigDict()
    c.variant = name
    c.seed = 0
    c.stage = 1  # 1: alignment (LLM frozen); 2: instruction tuning (+ LoRA on the LLM); 3: GRPO (section rl)
    # demo: at 300 the model answered from the words alone; at 2000 the micro-expression branch carried seed 1's
    # micro clips further than at 1200, but seed 0's not at all (docs/ablations.md)
    c.total_steps = 20000 if paper else 1200
    c.log_every = 50 if paper else 10
    c.checkpoint_every = 1000 if paper else 100

    m = c.model = ml_collections.ConfigDict()
    m.dtype = 'bfloat16' if paper else 'float32'            # compute dtype
    m.param_dtype = 'float32'                               # trained weights (master copy)
    m.frozen_param_dtype = 'bfloat16' if paper else 'float32'  # frozen towers (ViT, Whisper, LLM base)
    m.scan_layers = True
    m.remat_policy = 'nothing_saveable' if paper else 'none'
    m.attention_impl = ''  # '': JAX's choice (on CPU ours: leaner backward); 'cudnn' on GPUs; 'xla'; 'reference'
    # Weight matrices of the parts no checkpoint provides (Q-Formers, face branch, global-local attention):
    # 'bert' N(0, 0.02) (HF practice; the paper's come from checkpoints), 'fan_in' N(0, 1/fan_in), which the
    # demo's width-64 parts trained from scratch need to see their inputs at all (models/scratch_init.py;
    # benchmarks/input_influence.py measures it: other clips' faces move the LLM input 6e-5 vs 17 %).
    m.kernel_init = 'bert' if paper else 'fan_in'

    # 1. Timestamp-bound frame encoder: EVA ViT-g -> image Q-Former reading "This frame is sampled at {t} second."
    m.vision = (_vision(1408, 6144, 39, 16, 14, 224, 1e-6) if paper else _vision(64, 128, 2, 4, 16, 64, 1e-6))
    m.image_qformer = (_qformer(768, 12, 12, 3072, 2, 32, vocab=30523) if paper
                       else _qformer(64, 2, 4, 128, 2, 8, vocab=512, max_pos=64))
    m.frame_encoder = ml_collections.ConfigDict(dict(
        timestamp_text=True,          # feed the timestamp sentence to the image Q-Former (TimeChat)
        timestamp_tokenizer='bert',   # 'llm' reproduces TimeChat's quirk 1: prepare tokenizes the sentence with the
                                      # LLM tokenizer, and the Q-Former's word embedding covers the LLM vocabulary
        keep_text_tokens=False,       # True reproduces TimeChat's quirk 2 (text positions kept in the output;
                                      # padded text positions stay masked)
        max_timestamp_tokens=16,
    ))
    # 2. Micro-expression local branch over face tubelets (K consecutive crops per anchor).
    m.micro_expression = ml_collections.ConfigDict(dict(
        enabled=True,
        face_encoder='shared' if paper else 'separate',  # 'shared': the frozen frame ViT (the paper's);
                                      # 'separate': the smaller trainable ViT below (the demo's: its frame ViT is
                                      # random and frozen, so only a trained face encoder can learn expressions)
        face_input='crops',           # 'crops': the aligned crops; 'residuals': each crop minus its clip's mean crop
                                      # (the expression without the identity: for an encoder trained from scratch)
        face_vision=_vision(64, 128, 2, 4, 16, 64, 1e-6) if not paper else _vision(768, 3072, 12, 12, 16, 224, 1e-6),
        freeze_face_encoder=not paper,  # the separate face ViT stays as init.face_encoder made it (the demo: its
                                      # pretrained action-unit reader; trained, it learned who the clips' speakers are)
        feature_baseline=not paper,   # the branch reads each crop's face features minus its clip's mean features:
                                      # the face's departures from its own state (a micro-expression), no identity
        num_crops=4,                  # K
        use_differences=paper,        # first-order differences f[k+1] - f[k] (micro-expression dynamics);
                                      # False: per-crop appearance only (the demo: its features are already
                                      # departures from the clip's mean face)
        landmarks=False,              # also read each crop's 68 face-mesh landmarks (shape, and its motion between
                                      # crops); off: the paper's branch (and the demo's: the face's shape is who it
                                      # is). Records always carry them (no re-prepare)
        tubelets='apex',              # where the K crops come from: 'apex', each interval between global frames at
                                      # its peak of facial motion (micro-expression spotting, in prepare); 'anchor',
                                      # from each global frame on. Part of prepare's settings (changes the records)
        hidden_size=768 if paper else 64,
        num_layers=2,
        num_heads=12 if paper else 4,
        dropout=0.1,
    ))
    # 3. Gated global-local attention (tanh gates start at 0: the global pipeline is unchanged at init).
    # enabled=False (with the local branch on): the local tokens are projected and appended to each frame's
    # tokens in the video Q-Former instead, so this ablation removes only the attention mechanism.
    # gate_init: the gates' value before tanh (0: a pretrained global pipeline starts unchanged).
    m.global_local = ml_collections.ConfigDict(dict(enabled=True, num_heads=12 if paper else 4, neighbours=0,
                                                    gate_init=0.0 if paper else 0.5))
    # 4. Utterance-aware video Q-Former: once over all frames, once per utterance slot (+ optional windows).
    m.video_qformer = _qformer(768, 2, 12, 3072, 1, 32) if paper else _qformer(64, 2, 4, 128, 1, 8)
    m.video_qformer.max_frames = 96 if paper else 16          # size of the frame-position embedding
    m.num_frames = 32 if paper else 8                         # T
    m.max_utterances = 8 if paper else 3                      # U_max
    m.utterance_scale = True                                  # False: whole-video tokens only (ablation)
    m.window_size = 0                                         # >0 adds TimeChat's fixed windows
    m.window_stride = 0
    # 5. Audio: Whisper encoder -> audio Q-Former (whole clip and per utterance).
    m.audio = ml_collections.ConfigDict(dict(
        enabled=True,
        num_mel_bins=128 if paper else 16,
        d_model=1280 if paper else 64,
        encoder_layers=32 if paper else 2,
        encoder_attention_heads=20 if paper else 4,
        encoder_ffn_dim=5120 if paper else 128,
        max_source_positions=1500 if paper else 400,
        seconds_per_position=0.02,                            # Whisper: 10 ms hop, stride-2 conv
        pad_to_30s=paper,             # pad the log-mel to the encoder's full window (2 * max_source_positions
                                      # frames: 30 s for Whisper) as WhisperFeatureExtractor pads a short clip,
                                      # and run the encoder unmasked over it, as pretrained Whisper saw audio
    ))
    m.audio_qformer = _qformer(768, 2, 12, 3072, 1, 8) if paper else _qformer(64, 2, 4, 128, 1, 4)
    # The video tokens minus their running mean over training clips, times `gain` (models/video_centring.py RunningMean;
    # 0: off, the paper's). The demo's from-scratch LLM reads its video tokens only so: trained, they share ~94 %
    # of their size between clips (docs/ablations.md). momentum: the share of the mean each training batch keeps.
    # marker: a learned vector per video token added after the centring (starts at 0), so the LLM's attention can
    # find the video tokens again. Off: with the video path's dropout off it lifted seed 2's micro clips (1920
    # clips) from chance to 0.58, but left seed 3's (960) and seed 0's (1920) at chance (docs/ablations.md)
    m.video_centring = ml_collections.ConfigDict(dict(gain=0.0 if paper else 3.0, momentum=0.99, marker=False))
    # Answer words (training only): a linear head on the pooled video tokens predicts the words of the answer, and
    # `weight` times its cross-entropy joins the loss (models/answer_words.py; 0: no head, the paper's objective).
    # Off in the demo too: at 1.0 it left seed 2's micro clips at chance, as without it (docs/ablations.md).
    m.answer_words = ml_collections.ConfigDict(dict(weight=0.0))
    # 6. LLM (LLaMA family) + LoRA.
    m.llm = ml_collections.ConfigDict(dict(
        vocab_size=32000 if paper else 512,
        hidden_size=4096 if paper else 128,
        intermediate_size=11008 if paper else 256,
        num_layers=32 if paper else 2,
        num_heads=32 if paper else 4,
        num_kv_heads=32 if paper else 2,
        head_dim=128 if paper else 32,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        rope_type='default',          # 'default', 'llama3' (the four fields below), 'linear' or 'dynamic' (factor),
                                      # 'yarn' (factor, original_max_position_embeddings)
        rope_factor=8.0,
        rope_low_freq_factor=1.0,
        rope_high_freq_factor=4.0,
        rope_original_max_position_embeddings=8192,
        max_position_embeddings=4096 if paper else 1024,
        tie_word_embeddings=False,
        attention_bias=False,         # biases on q, k, v and o (LLaMA's attention_bias)
        qkv_bias=False,               # Qwen2/2.5: biases on q, k and v only
        qk_norm=False,                # Qwen3: RMSNorm over each head of q and k before RoPE
    ))
    # The paper's LLM is pretrained and stays frozen (LoRA in stage 2). The demo's tiny LLM starts from random
    # weights, so the demo trains it too: a frozen random LLM would leave nothing for stage 1 to align to.
    m.train_llm = not paper
    m.lora = ml_collections.ConfigDict(dict(rank=32 if paper else 8, alpha=32.0 if paper else 16.0, dropout=0.1,
                                            targets=('q_proj', 'k_proj', 'v_proj', 'o_proj')))

    # Data: `prepare` writes clips in this shape once; the Grain pipeline pads them to static batches.
    c.data = ml_collections.ConfigDict(dict(
        dir='',                       # prepared dataset (output of `python -m microemo_jax.prepare`); demo: ''
                                      # = generate and prepare the demo corpus under demo_cache (train does it)
        demo_cache='~/.cache/microemo-jax/demo',
        demo_clips=960,               # 202 held-out videos, 51 of them micro-expression clips (seed 0): with 240
                                      # (12) no interval could tell the branch from chance; 1920 did not make the
                                      # branch's effect hold on every seed (docs/ablations.md)
        demo_seed=0,
        demo_tokenizer='llama',       # the LLM tokenizer prepare trains when given no --tokenizer: 'llama' (<s> </s>,
                                      # the LLaMA-2 template) or 'qwen' (ChatML specials and chat template)
        sampling='uniform',           # frame sampling: 'uniform' (segment centres) or 'random' (random in segment)
        max_seq_len=2048 if paper else 512,       # the demo's longest prompt with its answer: ~460 tokens
        max_mel_frames=3000 if paper else 800,   # 2 * model.audio.max_source_positions
        question='description',       # 'description' (EMER explanation) or 'ov' (open-vocabulary labels)
        bench_question='benchmark',   # what the MER-UniBench sources ask every clip: 'benchmark' (its one question,
                                      # verbatim) or 'description' (the EMER explanation; not the benchmark's)
        require_faces=False,          # skip clips where no face is found (else they train without the local branch)
        face_detector='blazeface',    # 'blazeface' (MediaPipe short range, talking heads), 'blazeface_full' (small
                                      # faces too, slower) or 'haar' (OpenCV frontal cascade); all offline
        align_faces=True,             # warp each face crop so the eyes and mouth sit on canonical points (face-mesh
                                      # landmarks): crop differences then show expression, not head motion
        jpeg_quality=90,
        batch_size=8 if paper else 4,  # global batch
        num_workers=4 if paper else 0,  # Grain worker processes per host (0: in-process)
        augment=True,                 # random crop/flip/colour jitter in the workers (training split only)
        # text dropout: the share of training examples whose words (transcribed speech and subtitle) are masked
        # out of the prompt, so that their answers have to come from the faces, frames and voice. 0: MicroEmo
        # does not drop text, and on the demo 0.5 did not make the model read the faces (docs/ablations.md)
        text_dropout=0.0,
        validation_fraction=0.1 if paper else 0.2,  # held-out videos (the demo's: about 50 micro-expression clips)
    ))

    # Optimiser: AdamW, linear warmup from 0 then cosine decay to min_lr at total_steps (LAVIS/TimeChat
    # recipe for the paper: 3e-5 -> 1e-5, weight decay 0.05). Biases, norm scales, embedding/position
    # tables, query tokens and gates are not decayed (microemo_jax/training/optimizer.py).
    c.optim = ml_collections.ConfigDict(dict(
        lr=3e-5 if paper else 1e-3,
        min_lr=1e-5 if paper else 1e-4,
        warmup_steps=1000 if paper else 30,
        weight_decay=0.05,
        b1=0.9,
        b2=0.999,
        eps=1e-8,
        clip_norm=1.0,                # global-norm gradient clipping (0: off)
        gate_lr_multiplier=1.0 if paper else 10.0,  # the tanh gates (global-local attention) learn this many times faster
        grad_accum_steps=1,           # micro-batches per optimiser update (data.batch_size is split)
    ))
    # Where the parameters come from: '' = fresh init; else a folder written by `python -m microemo_jax.convert`
    # or a stage-1 run's exported params (LoRA adapters missing from it start from their fresh init).
    # face_encoder: starting weights of the separate face ViT (micro_expression.face_encoder='separate') when
    # init.params does not hold them: '' its fresh init; 'demo' the demo's, pretrained on first use to read the
    # action units of rendered faces (demo/face_encoder.py: a stand-in for a pretrained face tower, the demo's
    # default, ~2 min on first use); or a folder written by `python -m microemo_jax.runs.face_encoder`.
    # Skipped, with a note, when the model has no separate face ViT.
    c.init = ml_collections.ConfigDict(dict(params='', face_encoder='' if paper else 'demo'))
    if variant == 'tiny':
        _shrink_to_tiny(c)
    c.train = ml_collections.ConfigDict(dict(
        validate_every=1000 if paper else 100,   # steps between validation-loss passes (0: never)
        validation_batches=50 if paper else 4,  # batches per validation pass
        keep_checkpoints=3,                     # Orbax max_to_keep in WORKDIR/checkpoints
        max_steps_per_run=0,                    # >0: save and exit after this many steps (time-limited jobs
                                                # that requeue themselves); 0: run to total_steps
        loss_chunk=0,                           # >0: LM head fused with the loss, this many rows at a time: no
                                                # (B, S, vocab) float32 logits (training/losses.py); 0: plain
    ))

    if variant == 'tiny':
        c.train.validate_every, c.train.validation_batches = 2, 1
    c.rl = _stage3(variant)
    # Device mesh and the one table that maps logical parameter/activation axes to mesh axes.
    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
    c.sharding_rules = (
        ('batch', ('data', 'fsdp')),
        ('embed', 'fsdp'),
        ('mlp', 'tensor'),
        ('heads', 'tensor'),
        ('kv_heads', 'tensor'),
        ('vocab', 'tensor'),
        ('layers', None),
        ('norm', None),
        ('pos', None),
        ('patch', None),
        ('query', None),
    )
    return c


def _stage3(variant: str) -> ml_collections.ConfigDict:
    """Stage 3, reinforcement fine-tuning with GRPO (docs/training.md): with --config.stage=3 these replace
    total_steps, log_every, checkpoint_every, optim.lr (constant after warmup), optim.warmup_steps,
    data.batch_size and data.augment; the stage-2 run's params start it (--config.init.params=S2/params)."""
    paper, tiny = variant == 'paper', variant == 'tiny'
    rl = ml_collections.ConfigDict(dict(
        steps=2 if tiny else (1000 if paper else 60),   # rollout batches (each followed by mu optimiser updates)
        batch_size=4 if tiny else (8 if paper else 4),  # clips per rollout batch (global; over the data axes)
        group_size=2 if tiny else 8,                    # G answers sampled per clip
        mu=1,                                           # optimiser updates per rollout batch (GRPO's mu)
        lr=1e-6 if paper else 5e-5,
        warmup_steps=0 if tiny else (20 if paper else 5),
        loss='grpo',                  # 'grpo': std-normalised advantages, per-answer token mean; 'dr_grpo': neither
        beta=0.04,                    # weight of the k3 KL to the reference (the starting model)
        epsilon=0.2,                  # ratio clip range [1 - epsilon, 1 + epsilon]
        temperature=1.0,              # sampling of the rollouts (the log-probabilities use the same temperature)
        top_p=1.0,
        top_k=0,
        max_new_tokens=8 if tiny else (256 if paper else 48),  # the demo's OV answers are <= 36 tokens
        # the prompts the rollouts answer: 'description' (explanations), 'ov' (label answers) or 'both'. The demo
        # trains on its OV answers (measured: docs/training.md); the paper mixes both, as the explanations are the
        # product and the format reward keeps them explanations
        question='description' if tiny else ('both' if paper else 'ov'),
        rewards=('ov', 'format'),     # registered names (training/rewards.py): ov, wheel, format, length
        weights=ml_collections.ConfigDict(dict(ov=1.0, wheel=1.0, format=0.2, length=0.1)),
        wheel='',                     # MER's wheel_mapping.npz (or its JSON form) for the 'wheel' reward
        synonyms='',                  # synonym groups for 'ov' (as evaluate --synonyms); '': the bundled table
        length_target=0,              # 'length': no penalty up to this many tokens (0: up to max_new_tokens)
        augment=False,                # the rollout batches' clips are not augmented
        log_every=1,
        checkpoint_every=2 if tiny else (100 if paper else 20),
        eval_every=0 if tiny else (200 if paper else 10),  # greedy held-out rewards every N steps and at the end (0: never)
        eval_clips=0 if not paper else 64,                 # held-out clips scored then (0: the whole split)
    ))
    return rl


def _shrink_to_tiny(c) -> None:
    """The ``tiny`` variant: the demo with the fewest frames, layers and widths that still exercise every switch."""
    m, d = c.model, c.data
    m.vision.update(image_size=32, patch_size=16, num_layers=1)
    # The paper's branch (shared frame ViT, no landmarks, closed gates): the tests switch the demo's choices on.
    m.micro_expression.update(num_crops=3, num_layers=1, dropout=0.0, face_encoder='shared', landmarks=False,
                              use_differences=True, feature_baseline=False, freeze_face_encoder=False)
    m.video_centring.gain, c.init.face_encoder = 0.0, ''
    m.global_local.gate_init, c.optim.gate_lr_multiplier, m.kernel_init = 0.0, 1.0, 'bert'
    m.micro_expression.face_vision.update(image_size=32, patch_size=16, num_layers=1)
    m.image_qformer.update(num_query_tokens=4, dropout=0.0)
    m.video_qformer.update(num_query_tokens=4, num_layers=1, dropout=0.0)
    m.audio_qformer.update(num_query_tokens=2, num_layers=1, dropout=0.0)
    m.audio.update(max_source_positions=24, encoder_layers=1)
    m.frame_encoder.max_timestamp_tokens = 16
    m.num_frames, m.max_utterances = 4, 2
    m.llm.update(vocab_size=320, hidden_size=64, intermediate_size=96, num_heads=4, num_kv_heads=2, head_dim=16,
                 num_layers=1, max_position_embeddings=704)
    m.lora.update(rank=4, dropout=0.0)
    # 640 tokens hold the demo corpus's longest prompt with its answer (no subtitle cut), and leave 64 positions
    # for generated tokens; 0.4 leaves videos for validation in a corpus of a handful of clips.
    d.update(demo_clips=8, max_seq_len=640, max_mel_frames=48, batch_size=4, num_workers=0, validation_fraction=0.4)
    c.total_steps, c.log_every, c.checkpoint_every = 4, 1, 2
    c.optim.warmup_steps = 1

"""Training the vocoders (the Gaussian WaveNet teacher and the distilled Gaussian IAF student) and the
text-to-wave model.

One small trainer serves the three commands (``clarinet train-teacher``, ``clarinet train-student``,
``clarinet train-text2wave``):

- AdamW (``lr``, ``betas``, ``weight_decay``); learning rate: linear warm-up over ``warmup_steps``, then
  ``schedule`` = ``"exponential"`` (halved every ``lr_half_life`` steps, ClariNet's annealing),
  ``"cosine"`` (to ``min_lr`` at ``steps``) or ``"constant"``; never below ``min_lr`` after warm-up;
- gradient clipping by global norm (``clip``; 0 disables);
- optional exponential moving average of the parameters (``ema`` = decay; 0 disables), saved in every
  checkpoint; :func:`clarinet.checkpoint.load_model` and ``train-student --teacher`` use those weights;
- bf16 autocast on CUDA (``bf16``; ignored with a warning on the CPU);
- a log line (losses averaged over the interval and over processes, learning rate, gradient norm,
  throughput in audio samples/s and x real time) every ``log_every`` steps, through the
  ``clarinet.train`` logger, and the same record appended to ``<out_dir>/train-log.jsonl``;
- a tqdm progress bar (``progress``);
- checkpoints ``<out_dir>/step-000100.pt`` every ``ckpt_every`` steps and at the end, the newest ``keep``
  kept, each written atomically (:mod:`clarinet.checkpoint`);
- resume: from ``resume`` when given, else from the newest checkpoint in ``out_dir``; model, optimizer,
  schedule, EMA and data position are restored, so an interrupted run continues where its last
  checkpoint left it (and, on the same machine and settings, reproduces the uninterrupted run);
- determinism: ``seed`` fixes the initial weights, the data order (``DistributedSampler`` with the seed,
  epoch by epoch), the dataset's segment choice and the student's noise (drawn per step from a generator
  seeded with ``(seed, step, rank)``);
- DistributedDataParallel when launched by ``torchrun`` (``WORLD_SIZE > 1``): NCCL on GPUs, gloo on the
  CPU; each process reads its share of every epoch; only rank 0 writes checkpoints and logs.
  ``batch_size`` is per process.

``train-text2wave`` trains :class:`clarinet.models.TextToWave` (encoder, decoder, bridge-net, vocoder)
jointly from scratch on an LJSpeech-layout folder (:class:`clarinet.data.TextAudioDataset`): whole
utterances per batch, one random vocoder segment of ``segment_samples`` per utterance
(:func:`clarinet.losses.text2wave_loss`); the segments are drawn from a generator seeded with the
seed and the batch's utterance ids, so resuming draws the same segments.

The configuration is a dataclass per command (:class:`TeacherConfig`, :class:`StudentConfig`,
:class:`Text2WaveConfig`), built
from keywords, a JSON file, or both (:meth:`TrainConfig.from_sources`); invalid values raise
:class:`ConfigError` (a ``ValueError``) naming the field.

The rooms: :mod:`.config` (the settings and their checks), :mod:`.loop` (the shared loop, which
knows no recipe; with :mod:`.optim`, :mod:`.distributed` and :mod:`.inputs`), and one module per
recipe: :mod:`.teacher`, :mod:`.student` (both teachers), :mod:`.text2wave`. ``clarinet.train`` is
the same API under its old name.
"""
from .config import SCHEDULES, ConfigError, StudentConfig, TeacherConfig, Text2WaveConfig, TrainConfig
from .loop import LOG_FILE, TrainResult
from .optim import EMA, lr_factor
from .student import load_teacher, train_student
from .teacher import train_teacher
from .text2wave import train_text2wave
from .watch import TrainingInterrupted

__all__ = [
    "ConfigError",
    "EMA",
    "LOG_FILE",
    "SCHEDULES",
    "StudentConfig",
    "TeacherConfig",
    "Text2WaveConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "load_teacher",
    "lr_factor",
    "train_student",
    "train_teacher",
    "train_text2wave",
]

"""The trainer under its first name: the same API as :mod:`clarinet.training` (configuration, the shared
loop, and the teacher, student and text-to-wave recipes live there, one module each)."""
from .training import (EMA, LOG_FILE, SCHEDULES, ConfigError, StudentConfig, TeacherConfig, Text2WaveConfig,
                       TrainConfig, TrainResult, load_teacher, lr_factor, train_student, train_teacher,
                       train_text2wave)

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
    "load_teacher",
    "lr_factor",
    "train_student",
    "train_teacher",
    "train_text2wave",
]

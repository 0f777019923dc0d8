"""The trainer's building blocks (no DALI here): losses, models, recipes and schedules, metrics,
report pictures, progress lines, checkpoints and the distributed helpers ``train.py`` uses.
"""

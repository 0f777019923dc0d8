"""The trainer (``trainer.Trainer``: fit, resume, score) and its building blocks: its command
line (``arguments``), losses, models, recipes and schedules, metrics, the evaluation, report
pictures, progress lines, checkpoints and the distributed helpers. Only ``arguments`` (the
augmentation names) and ``evaluation`` (its pipeline) touch DALI.
"""

"""The trainer's building blocks: its command line (``arguments``), losses, models, recipes and
schedules, metrics, the evaluation, report pictures, progress lines, checkpoints and the
distributed helpers ``train.py`` uses. Only ``arguments`` (the augmentation names) and
``evaluation`` (its pipeline) touch DALI.
"""

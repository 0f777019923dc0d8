"""DALI pipeline definitions: CMO training, baseline, CIFAR-style and evaluation pipelines."""

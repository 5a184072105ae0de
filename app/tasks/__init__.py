"""Durable tasks: the runner that claims them and the subprocess worker that runs them.

The worker is the only place that may import torch or ultralytics (an import-linter contract).
"""

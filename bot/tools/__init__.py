"""Offline tools: training, evaluation, and scoring recorded test calls."""

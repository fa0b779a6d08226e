"""Thin absl entry points: train, evaluate, compare_losses, inspect_data."""

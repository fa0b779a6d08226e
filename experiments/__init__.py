"""Thin absl entry points: train, evaluate, compare_losses, export, inspect_data."""

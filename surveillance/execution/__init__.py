"""Execution on the engine: a gymnasium environment on forks of a real book, baselines and a learner."""

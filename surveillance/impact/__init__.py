"""Market impact on the engine: metaorders acting inside paired rollouts, impact paths and fits."""

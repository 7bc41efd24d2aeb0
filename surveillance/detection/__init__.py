"""Detection core: stylized facts, overlap, the detection path, calibration, windows."""

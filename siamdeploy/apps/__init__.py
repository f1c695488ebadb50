"""Applications around the runtime: frame sources, drawing, the run loop (generated sequences:
:mod:`siamdeploy.synthetic`)."""

"""Trace harness: runs the original upstream trackers on siamdeploy's seeded random weights and synthetic
frames and records what they output, frame by frame, as ``tests/data/upstream_traces/<case>.json``.

Not part of the installed package and never imported by it. The upstream code is imported from checkout
paths given on the command line (see ``README.md`` next to this file); only shims applied from outside, in
this process, make it run on Python 3 / numpy 2 / OpenCV 5 / CPU.
"""

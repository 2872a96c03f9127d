"""Quality benchmarks run through the public training path (ganforge.api.train).

modes: the PacGAN mode-collapse protocol on the 2-D toy mixtures (toy:ring8, toy:grid25).
"""

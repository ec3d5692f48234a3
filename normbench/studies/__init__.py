"""Studies beside the training runs: the Fig. 2 gradient-ratio grid of Zaeemzadeh et al. (:mod:`.fig2`), the
throughput benchmark (:mod:`.bench`) and the cost estimate of a config (:mod:`.estimate`).

May import training, models, methods, probes, runs and config; nothing of verdicts, outputs or cli.
"""

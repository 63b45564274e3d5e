"""The training study behind ``hjsmooth demo train`` and ``docs/results.md``.

One job per module:

* :mod:`.tasks` — datasets split into train / validation / test, and the models;
* :mod:`.methods` — the optimizers compared, their documented settings, search spaces and costs;
* :mod:`.loop` — one training run at a fixed budget of gradient evaluations;
* :mod:`.search` — hyper-parameter search on validation data, the same number of configurations each;
* :mod:`.width` — the width of a trained minimum (Hessian top eigenvalue and trace, smoothed loss);
* :mod:`.stats` — means, standard deviations and paired comparisons over seeds;
* :mod:`.report` — the JSON record, the tables and the figures.
"""

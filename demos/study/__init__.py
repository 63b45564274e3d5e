"""The training study behind ``hjsmooth demo train`` and ``docs/results.md``.

One job per module:

* :mod:`.tasks` — datasets split into train / validation / test, and the models;
* :mod:`.methods` — the optimizers compared (the library's, SGD, Adam, SAM, ASAM, SWA), their documented
  settings, search spaces and costs;
* :mod:`.loop` — one training run at a fixed budget of gradient evaluations;
* :mod:`.search` — hyper-parameter search on validation data, the same number of configurations each;
* :mod:`.width` — the width of a trained minimum (Hessian top eigenvalue and trace, smoothed loss);
* :mod:`.stats` — means, standard deviations and paired comparisons over seeds;
* :mod:`.report` — the JSON record, the tables and the figures;
* :mod:`.hardware` — Table 5.1 on parallel hardware: its runs, their launch under torchrun, their record;
* :mod:`.distributed` — what each torchrun process of those runs does;
* :mod:`.record` — partial reruns merged into an earlier record;
* :mod:`.page` — docs/results.md written from the record.
"""

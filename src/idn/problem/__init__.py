"""The allocation problem of design page section 7 and the math that the
policies and the bounds share: the objective F(x) = sum_t G_t(x) as stacked
rows (:mod:`.objective`, :mod:`.static_rows`), lazy greedy under knapsacks
(:mod:`.greedy`), mirror ascent and the Bregman projection on the budget
polytopes (:mod:`.mirror`, :mod:`.projection`), and the LP/MILP program
(:mod:`.program`). It depends on :mod:`idn.serving` and the model only."""

"""Experiments on top of the simulator: one run to a directory and the demo
(:mod:`.single`), bounds for a run (:mod:`.bound_run`), sweeps from an
experiment file (:mod:`.config`, :mod:`.sweep`) into a result store
(:mod:`.store`), reports and figures (:mod:`.report`, :mod:`.plots`,
:mod:`.report_tables`, :mod:`.report_headline`), the paper's study
(:mod:`.reproduce`) and the adversarial instance (:mod:`.adversarial`)."""

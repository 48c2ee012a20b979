"""The IDN itself (design page, sections 1-4): scenario files and their
validation (:mod:`.scenario`, :mod:`.scenario_spec`), the model catalog
(:mod:`.catalog`), generated and real topologies (:mod:`.topology`), the
network with its nodes, models and budgets (:mod:`.network`), and the request
types with their paths and cost-sorted candidate lists (:mod:`.request_types`)."""

"""The live IDN's dashboard: one local web page that shows a running IDN
(topology, served shares beside the simulator's, latency, accuracy, cost,
INFIDA's state and messages per node, errors and dead nodes), updated
several times a slot. :mod:`.collect` gathers, :mod:`.server` serves,
:mod:`.process` starts it beside ``idn serve``; ``static/`` is the page."""

"""The live IDN (docs/live.md): real ONNX models (:mod:`.models`, :mod:`.store`),
one HTTP server per node (:mod:`.node`, :mod:`.node_parts`,
:mod:`.node_control`) speaking the Open Inference Protocol (:mod:`.dataplane`,
:mod:`.oip`, :mod:`.forwarding`, :mod:`.batching`), the serving rule live (:mod:`.routing`), the per-node
live policies (:mod:`.live_policies`: INFIDA's and local-greedy's control
plane :mod:`.control`, LFU/LRU's :mod:`.caching`, their shared
:mod:`.plane`), the launcher (:mod:`.launcher`) and the load generator
(:mod:`.load`). It runs the simulator's serving and policy code."""

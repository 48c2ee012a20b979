"""The simulator: the slot loop that runs one policy over a count matrix
(:mod:`.loop`), the inputs it is built from (:mod:`.inputs`: request types
and counts from a trace), the contract checks on a plug-in policy's
allocations (:mod:`.contract`) and checkpoints as data (:mod:`.checkpoint`)."""

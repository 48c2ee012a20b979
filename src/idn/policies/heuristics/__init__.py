"""Online heuristics INFIDA is compared with (design page, section 9): each
node alone with INFIDA's information (:mod:`.local_greedy`, :mod:`.caching`:
lfu, lru), and the centralized :mod:`.online_greedy`."""

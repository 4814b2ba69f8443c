"""The reward for the distributed PPO engines: OpenRLHF's reward-function file
(:mod:`.openrlhf`) and verl's custom reward function (:mod:`.verl`). :mod:`.protocol` reads what
the engines send (OpenRLHF's queries, prompts and labels), for these adapters and the server."""

"""The rollout controller: judges candidates on the workers' paired evidence and promotes or
rolls them back, as events."""

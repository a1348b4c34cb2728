"""What the cogs call: the engine's services, each with its own job."""

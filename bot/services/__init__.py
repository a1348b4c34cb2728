"""What the cogs call: one service per area (sessions, clips, settings, history, usage, privacy).

Each method is one use case; the cogs parse an interaction, call one method and reply.
"""

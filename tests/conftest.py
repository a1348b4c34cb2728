"""Fixtures shared by the whole suite: the loopback fakes and the assembled bot."""

pytest_plugins = ["tests.fakes.discord.fixtures"]

"""VoxcordVoiceClient: discord.py's VoiceClient hooked to the receiver."""

from types import SimpleNamespace

import discord

from bot.voice.client import VoxcordVoiceClient
from tests.fakes.voice.packets import ALICE_ID, RecordingSink


class StubChannel:
    id = 999
    guild = SimpleNamespace(id=500)

    def _get_voice_client_key(self):
        return 500, "guild_id"


async def test_voxcord_voice_client_hooks_the_connection_and_cleans_up():
    client = discord.Client(intents=discord.Intents.none())
    vc = VoxcordVoiceClient(client, StubChannel())
    try:
        assert vc._connection.hook == vc._on_voice_ws_message
        await vc._connection.hook(None, {"op": 5, "d": {"user_id": "222", "ssrc": 2222, "speaking": 1}})
        assert vc.receiver.user_for_ssrc(2222) == ALICE_ID
        sink = RecordingSink()
        vc.start_receiving(sink)
        assert vc.is_receiving()
        vc.cleanup()  # every final disconnect path in discord.py ends here
        assert not vc.is_receiving()
    finally:
        vc._connection._socket_reader.stop()
        await client.close()


def test_the_decode_setting_picks_the_client_s_codecs():
    assert VoxcordVoiceClient.decoding("48k") is VoxcordVoiceClient
    narrow = VoxcordVoiceClient.decoding("16k")
    assert issubclass(narrow, VoxcordVoiceClient)
    decoder = narrow.decoder_factory()
    try:
        assert len(decoder.conceal()) == 640  # 20 ms of 16 kHz mono
    finally:
        decoder.close()
    assert narrow.resampler_factory().process(b"\x01\x00" * 320) == b"\x01\x00" * 320

"""What the bot tells a channel when it starts listening, and the nickname that shows it."""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.services.privacy.consent import OPT_IN
from bot.store.models import ConsentMode

DEFAULT_STT_URL = "https://api.mistral.ai"
LISTENING_SUFFIX = " (listening)"
NICK_LIMIT = 32  # Discord's maximum nickname length


def service_host(server_url: str | None) -> str:
    """The host (and port, if any) audio is sent to: what the notice shows, never credentials."""
    parts = urlsplit(server_url or DEFAULT_STT_URL)
    host = parts.hostname or "api.mistral.ai"
    return f"{host}:{parts.port}" if parts.port else host


def plain_name(display_name: str) -> str:
    """The bot's name without the listening marker (a crash may have left it in the nickname)."""
    return display_name.removesuffix(LISTENING_SUFFIX)


def listening_nick(display_name: str) -> str:
    base = plain_name(display_name)[: NICK_LIMIT - len(LISTENING_SUFFIX)].rstrip()
    return base + LISTENING_SUFFIX


def notice_text(
    *, voice_mention: str, consent_mode: ConsentMode, retention_days: int, stt_host: str,
    captions_channel_id: int | None = None,
) -> str:
    """The message posted when the bot starts listening in a voice channel."""
    if consent_mode == OPT_IN:
        who = (f"only members who opted in with `/privacy optin`; nobody else in {voice_mention} "
               "is heard (their audio is dropped unopened)")
    else:
        who = f"everyone in {voice_mention} except members who opted out"
    captions = (
        [f"- **Captions are on:** what I hear, and my replies, are also posted as text in "
         f"<#{captions_channel_id}>; they are deleted after the retention period, and "
         "`/privacy forget-me` removes your lines from them."]
        if captions_channel_id else []
    )
    return "\n".join([
        f"**I'm listening in {voice_mention}.** Privacy notice:",
        f"- **Who I hear:** {who}.",
        f"- **Where audio goes:** speech is streamed to Mistral (`{stt_host}`) to be transcribed; "
        "the transcript goes to Mistral's chat model for my answer.",
        "- **Audio is never stored**, not on disk and not in my database.",
        f"- **Text I keep:** the transcripts and my replies, for {retention_days} days "
        "(this server's retention period), then they are deleted automatically.",
        "- **Your choices:** `/privacy optout` and I stop hearing you (your audio is dropped before "
        "it is even decoded); `/privacy optin` to come back; `/privacy export` sends you what I "
        "kept from you; `/privacy forget-me` deletes it.",
        *captions,
    ])

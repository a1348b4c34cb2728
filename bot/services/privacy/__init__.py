"""Privacy: consent (who may be heard), the join notice, members' rights (export, erasure) and
retention. ``PrivacyService`` is what cogs and the conversation engine call."""

from bot.services.privacy.captions import (
    CaptionEraser,
    CaptionMessages,
    CaptionsErased,
    DiscordCaptionMessages,
    MessageGoneError,
    MessageUnreadableError,
)
from bot.services.privacy.consent import OPT_IN, OPT_OUT, ConsentStatus, GuildAdmission
from bot.services.privacy.notice import (
    LISTENING_SUFFIX,
    NICK_LIMIT,
    listening_nick,
    notice_text,
    plain_name,
    service_host,
)
from bot.services.privacy.retention import RetentionPurger, purge_captions, purge_guild
from bot.services.privacy.rights import ExportTooLargeError, Forgotten
from bot.services.privacy.service import PrivacyService

__all__ = [
    "LISTENING_SUFFIX", "NICK_LIMIT", "OPT_IN", "OPT_OUT", "CaptionEraser", "CaptionMessages", "CaptionsErased",
    "ConsentStatus", "DiscordCaptionMessages", "ExportTooLargeError", "Forgotten", "GuildAdmission",
    "MessageGoneError", "MessageUnreadableError", "PrivacyService", "RetentionPurger", "listening_nick",
    "notice_text", "plain_name", "purge_captions", "purge_guild", "service_host",
]

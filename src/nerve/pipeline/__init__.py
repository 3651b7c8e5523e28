"""Pure pipeline steps between parsing and the log: enrichment and privacy.

No I/O here: each step takes a message's parts and returns new ones, so the same code
runs in every deployment and is cheap to test.
"""

from nerve.pipeline.enrich import enrich_context, parse_user_agent
from nerve.pipeline.guard import Guard, Protected, withhold_values
from nerve.pipeline.privacy import (
    HASH_PREFIX,
    PrivacyPolicy,
    allow_sensitive_problems,
    consent_allows,
    protect_context,
    protect_ip,
    protect_payload,
    protect_urls,
    pseudonymise,
    treatment,
    truncate_ip,
)

__all__ = [
    "HASH_PREFIX",
    "Guard",
    "PrivacyPolicy",
    "Protected",
    "allow_sensitive_problems",
    "consent_allows",
    "enrich_context",
    "parse_user_agent",
    "protect_context",
    "protect_ip",
    "protect_payload",
    "protect_urls",
    "pseudonymise",
    "treatment",
    "truncate_ip",
    "withhold_values",
]

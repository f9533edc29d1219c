"""The 8 classic RFM segments (R, F, M each high or low) with stable slugs and en/zh labels."""

from __future__ import annotations

import pandas as pd

# (r_high, f_high, m_high) -> (slug, English label, Chinese label)
SEGMENTS: dict[tuple[bool, bool, bool], tuple[str, str, str]] = {
    (True, True, True): ("champions", "Champions", "重要价值客户"),
    (False, True, True): ("at_risk_loyal", "Loyal high spenders slipping away", "重要保持客户"),
    (True, False, True): ("promising_big_spender", "Recent big spenders to develop", "重要发展客户"),
    (False, False, True): ("win_back_big_spender", "Lapsed big spenders to win back", "重要挽留客户"),
    (True, True, False): ("loyal_low_spend", "Loyal low spenders", "一般价值客户"),
    (False, True, False): ("at_risk_low_spend", "Frequent low spenders slipping away", "一般保持客户"),
    (True, False, False): ("new_low_spend", "Recent low spenders", "一般发展客户"),
    (False, False, False): ("lost", "Lost", "一般挽留客户"),
}
LOCALES = ("en", "zh")


def segment_table(locale: str) -> pd.DataFrame:
    """The 8 segments as a frame (r_high, f_high, m_high, slug, label) in the given locale."""
    if locale not in LOCALES:
        raise ValueError(f"features.segment_locale must be one of {LOCALES}, got {locale!r}")
    column = 1 if locale == "en" else 2
    rows = [(*flags, names[0], names[column]) for flags, names in SEGMENTS.items()]
    return pd.DataFrame(rows, columns=["r_high", "f_high", "m_high", "slug", "label"])

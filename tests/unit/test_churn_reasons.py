"""Plain-language reason templates: what each feature really is, en / zh, stable codes for joins."""

from __future__ import annotations

import pandas as pd
import pytest

from models.churn.reasons import code, fact, localised_reasons, parse_code, sentence


@pytest.mark.parametrize(("feature", "value", "sign", "en", "zh"), [
    ("days_since_last_purchase", "511", 1, "no purchase for 511 days raises risk", "已511天未购买，流失风险上升"),
    ("orders_last_90d", "3", -1, "3 orders in the last 90 days lowers risk", "近90天3笔订单，流失风险下降"),
    ("recency_days", "200", -1, "200 days between first and last purchase lowers risk",
     "首次与最近一次购买相隔200天，流失风险下降"),
    ("email_open_30d", "4", -1, "4 e-mails opened in the last 30 days lowers risk", "近30天打开邮件4次，流失风险下降"),
    ("cart_abandonment_rate_90d", "0.25", 1, "25% of carts abandoned in the last 90 days raises risk",
     "近90天购物车放弃率25%，流失风险上升"),
    ("rfm_segment", "champions", -1, "RFM segment Champions lowers risk", "RFM分群：重要价值客户，流失风险下降"),
    ("shoe_size", "42", 1, "shoe_size = 42 raises risk", "shoe_size = 42，流失风险上升"),
    ("avg_order_value", "missing", 1, "avg_order_value unknown raises risk", "avg_order_value未知，流失风险上升"),
    ("days_since_last_over_mean_gap", "missing", -1, "only one purchase day so far (no gap between purchases yet) "
     "lowers risk", "仅有一个购买日（尚无购买间隔），流失风险下降"),
])
def test_sentences_in_both_locales(feature: str, value: str, sign: int, en: str, zh: str) -> None:
    assert sentence(feature, value, sign, "en") == en
    assert sentence(feature, value, sign, "zh") == zh


def test_lifetimes_recency_is_worded_as_first_to_last_purchase_in_days() -> None:
    # lifetimes' recency: time between the first and the last purchase, in features.freq units (here weeks)
    assert fact("recency", "10", "en", unit_days=7.0) == "70 days between first and last purchase"
    assert "since" not in fact("recency", "10", "en") and "未购买" not in fact("recency", "10", "zh")


def test_prior_names_the_horizon_when_known() -> None:
    assert fact("btyd_p_no_purchase", "0.964", "en", horizon_days=181) == \
        "purchase pattern: 96% chance of no purchase in the next 181 days"
    assert fact("btyd_p_no_purchase", "0.964", "zh", horizon_days=181) == "购买规律：未来181天不购买的概率为96%"


def test_codes_are_stable_and_round_trip() -> None:
    assert code("orders_last_90d", -1) == "orders_last_90d:lowers"
    assert code("x", 0) == "" and sentence("x", "1", 0, "en") == ""
    assert parse_code("orders_last_90d:lowers") == ("orders_last_90d", -1) and parse_code("") == ("", 0)
    with pytest.raises(ValueError, match="not a reason code"):
        parse_code("orders_last_90d=3")


def test_localised_reasons_keep_codes_and_change_only_the_text() -> None:
    churn = pd.DataFrame({"reason_code_1": ["days_since_last_purchase:raises", "orders_last_90d:lowers", ""],
                          "reason_value_1": ["511", "3", ""], "reason_code_2": [""] * 3, "reason_value_2": [""] * 3})
    en, zh = (localised_reasons(churn, 2, loc, horizon_days=181) for loc in ("en", "zh"))
    assert en["reason_1"].tolist() == ["no purchase for 511 days raises risk",
                                       "3 orders in the last 90 days lowers risk", ""]
    assert zh["reason_1"].tolist() == ["已511天未购买，流失风险上升", "近90天3笔订单，流失风险下降", ""]
    assert en["reason_code_1"].tolist() == zh["reason_code_1"].tolist() == churn["reason_code_1"].tolist()
    assert (en["reason_2"] == "").all() and list(en.columns) == ["reason_1", "reason_code_1", "reason_2",
                                                                "reason_code_2"]


def test_unknown_locale_is_named() -> None:
    with pytest.raises(ValueError, match="segment_locale.*fr"):
        fact("orders_total", "3", "fr")

"""Reason codes in plain language (en / zh): one template per feature, stable `<feature>:raises|lowers` codes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from features.segments import LOCALES, SEGMENTS

VERBS = {"en": {1: "{fact} raises risk", -1: "{fact} lowers risk"},
         "zh": {1: "{fact}，流失风险上升", -1: "{fact}，流失风险下降"}}
CODE_VERBS = {1: "raises", -1: "lowers"}
# feature -> (en, zh). {v}: the value; {pct}: the value as a percentage; {d}: lifetimes time units as days;
# {h}: the churn horizon in days. lifetimes' `recency` is the time from FIRST to LAST purchase, not the time since
# the last purchase (that is days_since_last_purchase): the texts say so.
TEMPLATES: dict[str, tuple[str, str]] = {
    "days_since_last_purchase": ("no purchase for {v} days", "已{v}天未购买"),
    "recency": ("{d} days between first and last purchase", "首次与最近一次购买相隔{d}天"),
    "recency_days": ("{v} days between first and last purchase", "首次与最近一次购买相隔{v}天"),
    "T": ("first purchase {d} days ago", "首次购买于{d}天前"),
    "tenure_days": ("first purchase {v} days ago", "首次购买于{v}天前"),
    "frequency": ("{v} repeat purchases (time periods with a purchase after the first)",
                  "{v}次复购（首购后有购买的时间段数）"),
    "monetary_value": ("average repeat order value {v}", "复购平均客单价{v}"),
    "orders_total": ("{v} orders in total", "累计{v}笔订单"),
    "purchase_days_total": ("{v} days with a purchase", "{v}个有购买的日子"),
    "revenue_gross_total": ("total spend {v}", "累计消费{v}"),
    "revenue_net_total": ("total spend after returns {v}", "扣除退货后累计消费{v}"),
    "avg_order_value": ("average order value {v}", "平均客单价{v}"),
    "max_order_value": ("largest order {v}", "最大单笔订单{v}"),
    "returns_total": ("{v} returns", "{v}次退货"),
    "returned_amount_total": ("returned amount {v}", "退货金额{v}"),
    "return_rate": ("return rate {pct}", "退货率{pct}"),
    "mean_gap_days": ("{v} days between purchases on average", "平均购买间隔{v}天"),
    "std_gap_days": ("gaps between purchases vary by {v} days (std. dev.)", "购买间隔标准差{v}天"),
    "days_since_last_over_mean_gap": ("time since the last purchase is {v} x the usual gap",
                                      "距上次购买的时间是平均间隔的{v}倍"),
    "n_channels": ("bought through {v} channels", "通过{v}个渠道购买"),
    "main_channel": ("buys mostly via {v}", "主要购买渠道：{v}"),
    "main_channel_share": ("{pct} of orders via the main channel", "主渠道订单占比{pct}"),
    "n_categories": ("bought in {v} categories", "购买过{v}个品类"),
    "main_category": ("buys mostly {v}", "主要购买品类：{v}"),
    "main_category_share": ("{pct} of orders in the main category", "主品类订单占比{pct}"),
    "days_since_last_event": ("no activity for {v} days", "已{v}天无任何行为"),
    "days_since_signup": ("signed up {v} days ago", "注册于{v}天前"),
    "support_tickets_total": ("{v} support tickets in total", "累计{v}个客服工单"),
    "support_ticket_rating_mean": ("average support rating {v}", "客服评分均值{v}"),
    "review_rating_mean": ("average review rating {v}", "评价均分{v}"),
    "cart_abandonment_rate_90d": ("{pct} of carts abandoned in the last 90 days", "近90天购物车放弃率{pct}"),
    "email_open_rate_90d": ("{pct} of e-mails opened in the last 90 days", "近90天邮件打开率{pct}"),
    "email_click_rate_90d": ("{pct} of e-mails clicked in the last 90 days", "近90天邮件点击率{pct}"),
    "region": ("region {v}", "地区：{v}"),
    "gender": ("gender {v}", "性别：{v}"),
    "age_band": ("age band {v}", "年龄段：{v}"),
    "acquisition_channel": ("acquired via {v}", "获客渠道：{v}"),
    "rfm_r": ("recency score {v} of 5 (5 = bought most recently)", "R评分{v}/5（5=最近购买）"),
    "rfm_f": ("frequency score {v} of 5", "F评分{v}/5"),
    "rfm_m": ("spend score {v} of 5", "M评分{v}/5"),
    "rfm_segment": ("RFM segment {v}", "RFM分群：{v}"),
    "btyd_p_no_purchase": ("purchase pattern: {pct} chance of no purchase in the next {h} days",
                           "购买规律：未来{h}天不购买的概率为{pct}"),
}
WINDOWED = {  # <prefix>_<N>d -> (en, zh) with {n} the window in days
    "orders_last": ("{v} orders in the last {n} days", "近{n}天{v}笔订单"),
    "orders_prev": ("{v} orders in the {n} days before the last {n}", "再往前{n}天{v}笔订单"),
    "revenue_last": ("spend {v} in the last {n} days", "近{n}天消费{v}"),
    "revenue_prev": ("spend {v} in the {n} days before the last {n}", "再往前{n}天消费{v}"),
}
EVENTS = {
    "page_view": ("page views", "页面浏览"), "product_view": ("product views", "商品浏览"),
    "add_to_cart": ("add-to-carts", "加购"), "checkout_start": ("checkouts started", "发起结账"),
    "email_sent": ("e-mails received", "收到邮件"), "email_open": ("e-mails opened", "打开邮件"),
    "email_click": ("e-mail clicks", "邮件点击"), "support_ticket": ("support tickets", "客服工单"),
    "review": ("reviews", "评价"), "app_open": ("app opens", "打开App"), "search": ("searches", "搜索"),
}
WINDOW = re.compile(r"^(?P<prefix>[a-z_]+?)_(?P<n>\d+)d$")
UNKNOWN = ("{name} unknown", "{name}未知")
NO_GAP = ("only one purchase day so far (no gap between purchases yet)", "仅有一个购买日（尚无购买间隔）")
MISSING = {"mean_gap_days": NO_GAP, "std_gap_days": NO_GAP, "days_since_last_over_mean_gap": NO_GAP,
           "monetary_value": ("no repeat purchase yet", "尚无复购")}  # what a missing value means, where known


def _number(x: float) -> str:
    """A number for text: whole numbers without decimals, else up to 3 significant digits."""
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.3g}"


def template(feature: str, locale: str) -> str:
    """The fact template of a feature in a locale (a generic `feature = value` when none is known)."""
    i = LOCALES.index(locale)
    if feature in TEMPLATES:
        return TEMPLATES[feature][i]
    match = WINDOW.match(feature)
    if match:
        prefix, n = match["prefix"], match["n"]
        if prefix in WINDOWED:
            return WINDOWED[prefix][i].replace("{n}", n)
        if prefix in EVENTS:
            return (f"{{v}} {EVENTS[prefix][0]} in the last {n} days", f"近{n}天{EVENTS[prefix][1]}{{v}}次")[i]
    return f"{feature} = {{v}}"


def fact(feature: str, value: str, locale: str, horizon_days: int | None = None, unit_days: float = 1.0) -> str:
    """The plain-language fact for one feature value (value as shown text, 'missing' for none)."""
    if locale not in LOCALES:
        raise ValueError(f"features.segment_locale must be one of {LOCALES}, got {locale!r}")
    if value in ("", "missing"):
        return MISSING.get(feature, UNKNOWN)[LOCALES.index(locale)].format(name=feature)
    text = template(feature, locale)
    if feature == "rfm_segment":
        labels = {names[0]: names[1 + LOCALES.index(locale)] for names in SEGMENTS.values()}
        value = labels.get(value, value)
    if not horizon_days:  # horizon not known to the caller
        text = text.replace("in the next {h} days", "in the churn horizon").replace("未来{h}天", "流失窗口内")
    fields = {"v": value, "h": str(horizon_days)}
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        fields["v"] = _number(number)
        fields["pct"] = f"{number:.0%}"
        fields["d"] = _number(round(number * unit_days))
    for key, val in fields.items():
        text = text.replace("{" + key + "}", val)
    return text


def sentence(feature: str, value: str, sign: int, locale: str, horizon_days: int | None = None,
             unit_days: float = 1.0) -> str:
    """'<fact> raises risk' / '<fact> lowers risk' (zh: '<fact>，流失风险上升/下降'); '' for sign 0."""
    if sign == 0:
        return ""
    return VERBS[locale][int(np.sign(sign))].format(fact=fact(feature, value, locale, horizon_days, unit_days))


def code(feature: str, sign: int) -> str:
    """The stable machine code `<feature>:raises|lowers` ('' for sign 0); the same in every locale."""
    return "" if sign == 0 else f"{feature}:{CODE_VERBS[int(np.sign(sign))]}"


def parse_code(text: str) -> tuple[str, int]:
    """(feature, sign) of a machine code ('' -> ('', 0))."""
    if not text:
        return "", 0
    feature, _, verb = text.rpartition(":")
    if verb not in CODE_VERBS.values() or not feature:
        raise ValueError(f"not a reason code: {text!r}")
    return feature, 1 if verb == "raises" else -1


def localised_reasons(churn: pd.DataFrame, k: int, locale: str, horizon_days: int | None = None,
                      unit_days: float = 1.0) -> pd.DataFrame:
    """reason_1..k in the locale and reason_code_1..k, from score_with_reasons' reason_code_i / reason_value_i."""
    out = {}
    for i in range(1, k + 1):
        codes = churn.get(f"reason_code_{i}", pd.Series("", index=churn.index)).fillna("").astype(str)
        values = churn.get(f"reason_value_{i}", pd.Series("", index=churn.index)).fillna("").astype(str)
        index, pairs = pd.factorize(codes + "\x1f" + values)
        words = []
        for pair in pairs:
            c, _, v = pair.partition("\x1f")
            feature, sign = parse_code(c)
            words.append(sentence(feature, v, sign, locale, horizon_days, unit_days))
        out[f"reason_{i}"] = np.array(words + [""], dtype=object)[index]
        out[f"reason_code_{i}"] = codes.to_numpy(dtype=object)
    return pd.DataFrame(out, index=churn.index)

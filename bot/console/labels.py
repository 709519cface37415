"""Vietnamese names of routes, outcomes, transports and turn kinds, for the console's pages
(the trainers' pages pick a route from the same list)."""

from __future__ import annotations

from bot.vocabulary import BRANCHES, OPERATOR_NAME, CallEnd, RedFlagRule, Route, Transport

FAQ_TOPICS: dict[str, str] = {
    "lao_dong_tu_do": "Lao động tự do",
    "cham_dut_hdld": "Chấm dứt HĐLĐ, không được hưởng BHTN",
    "giao_duc_tu_thuc": "Trường mầm non, tiểu học tư thục",
    "tam_hoan_hdld": "Tạm hoãn HĐLĐ, nghỉ không lương",
    "ho_ngheo": "Hộ nghèo, hộ cận nghèo",
    "nguoi_co_cong": "Người có công",
    "chi_tra": "Cách nhận tiền hỗ trợ",
    "f0_cach_ly_tai_nha": "F0 cách ly, điều trị tại nhà",
    "f0_dau_hieu_nguy_hiem": "Dấu hiệu nguy hiểm của F0",
    "f0_spo2": "Đo SpO2, nhiệt độ, nhịp thở",
    "f0_thuoc": "Thuốc điều trị tại nhà",
    "f0_ket_thuc_cach_ly": "Kết thúc cách ly",
    "f0_dinh_duong": "Dinh dưỡng, sinh hoạt của F0",
}
RED_FLAG_RULES: dict[str, str] = {
    RedFlagRule.SPO2: "SpO2 thấp",
    RedFlagRule.BREATHING_RATE: "thở nhanh",
    RedFlagRule.PULSE: "mạch bất thường",
    RedFlagRule.BLOOD_PRESSURE: "huyết áp thấp",
    RedFlagRule.DANGER_SIGN: "dấu hiệu nguy hiểm",
    RedFlagRule.ACUTE_EVENT: "tai nạn, ngộ độc, đột quỵ",
}
OUTCOMES: dict[str, str] = {
    Route.OPERATOR: OPERATOR_NAME,
    Route.FALLBACK: "Không hiểu",
    CallEnd.GOODBYE: "Chào kết thúc",
    CallEnd.HANGUP: "Người gọi gác máy",
    CallEnd.ERROR: "Lỗi",
}
OUTCOME_FILTERS: dict[str, str] = {
    "settled": "Bot trả lời xong",
    "transfer": "Chuyển nhánh 1–6",
    "operator": "Tổng đài viên",
    "hangup": "Người gọi gác máy",
    "error": "Lỗi",
    "fallback": "Không hiểu",
    "unfinished": "Chưa kết thúc",
}
TRANSPORTS: dict[str, str] = {
    Transport.AUDIOSOCKET: "Điện thoại (Asterisk)",
    Transport.WEBSOCKET: "Trình duyệt",
    Transport.SIMULATED: "Mô phỏng",
}
KINDS: dict[str, str] = {
    "utterance": "Người gọi nói",
    "heard": "Bot nghe được",
    "routed": "Bot hiểu là",
    "digit": "Bấm phím",
    "say": "Bot nói",
    "barge_in": "Người gọi ngắt lời",
    "transfer": "Chuyển máy",
    "call_started": "Bắt đầu cuộc gọi",
    "call_ended": "Kết thúc cuộc gọi",
    "error": "Lỗi",
    "silence": "Im lặng",
    "response_latency": "Độ trễ phản hồi",
    "early_end": "Kết thúc lượt sớm",
    "emergency_from_partial": "Khẩn cấp (nghe dở)",
    "backchannel_ignored": "Tiếng đệm (bỏ qua)",
    "final_dropped": "Bỏ qua câu nói",
    "overflow": "Quá tải",
}
GROUPS: dict[str, str] = {
    "settled": "Bot trả lời xong",
    "branch": "Chuyển nhánh",
    "operator": "Tổng đài viên",
    "abandoned": "Gác máy",
    "other": "Khác",
}


def route_name(route: str | None) -> str:
    """'transfer:2' -> 'Nhánh 2 – Trung tâm Kiểm soát bệnh tật (CDC) Hà Nội'."""
    if not route:
        return "Đang gọi / bị ngắt"
    try:
        known = Route(route)
    except ValueError:
        return OUTCOMES.get(route, route)
    if known.branch is not None:
        return f"Nhánh {known.branch} – {BRANCHES[known.branch]}"
    if known.faq_key is not None:
        return f"Hỏi đáp: {FAQ_TOPICS.get(known.faq_key, known.faq_key)}"
    return OUTCOMES.get(known, route)


ROUTE_CHOICES: list[tuple[str, str]] = [(str(r), route_name(r)) for r in Route]

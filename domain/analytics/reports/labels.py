"""The reports' words in Arabic and English: titles, KPI names, column headers and chart titles, looked
up by key (`label`) so that a report's structure is written once for both languages."""

from __future__ import annotations

LABELS: dict[str, dict[str, str]] = {
    "report.content": {"en": "Content performance report", "ar": "تقرير أداء المحتوى"},
    "report.user": {"en": "User engagement report", "ar": "تقرير تفاعل المستخدمين"},
    "report.search": {"en": "Search analytics report", "ar": "تقرير تحليلات البحث"},
    "report.system": {"en": "System health report", "ar": "تقرير صحة النظام"},
    "report.custom": {"en": "Content and search report", "ar": "تقرير المحتوى والبحث"},
    "period": {"en": "Period: {start} to {end} (UTC)", "ar": "الفترة: من {start} إلى {end} (UTC)"},
    "key_figures": {"en": "Key figures", "ar": "المؤشرات الرئيسية"},
    "metric": {"en": "Metric", "ar": "المؤشر"},
    "value": {"en": "Value", "ar": "القيمة"},
    "chart_data": {"en": "Chart data", "ar": "بيانات الرسوم"},
    "page": {"en": "Page {page} of {pages}", "ar": "صفحة {page} من {pages}"},
    "date": {"en": "Date", "ar": "التاريخ"},
    # content
    "content": {"en": "Content", "ar": "المحتوى"},
    "views": {"en": "Views", "ar": "المشاهدات"},
    "unique_viewers": {"en": "Unique viewers (daily, summed)", "ar": "المشاهدون الفريدون (مجموع يومي)"},
    "avg_watch_time": {"en": "Avg watch time (s)", "ar": "متوسط مدة المشاهدة (ث)"},
    "completion_rate": {"en": "Completion rate", "ar": "معدل الإكمال"},
    "shares": {"en": "Shares", "ar": "المشاركات"},
    "favorites": {"en": "Favorites", "ar": "الإضافات إلى المفضلة"},
    "comments": {"en": "Comments", "ar": "التعليقات"},
    "engagement": {"en": "Engagement score", "ar": "درجة التفاعل"},
    "chart.daily_views": {"en": "Daily views", "ar": "المشاهدات اليومية"},
    "chart.top_content": {"en": "Top content by views", "ar": "المحتوى الأكثر مشاهدة"},
    "table.top_content": {"en": "Top content", "ar": "المحتوى الأبرز"},
    # users
    "active_users": {"en": "Active users", "ar": "المستخدمون النشطون"},
    "sessions": {"en": "Sessions", "ar": "الجلسات"},
    "avg_session_time": {"en": "Avg session time (s)", "ar": "متوسط مدة الجلسة (ث)"},
    "total_session_time": {"en": "Total session time (s)", "ar": "إجمالي مدة الجلسات (ث)"},
    "page_views": {"en": "Page views", "ar": "مشاهدات الصفحات"},
    "interactions": {"en": "Interactions", "ar": "التفاعلات"},
    "searches": {"en": "Searches", "ar": "عمليات البحث"},
    "downloads": {"en": "Downloads", "ar": "التنزيلات"},
    "active_days": {"en": "Active days", "ar": "أيام النشاط"},
    "last_activity": {"en": "Last activity (UTC)", "ar": "آخر نشاط (UTC)"},
    "username": {"en": "Username", "ar": "اسم المستخدم"},
    "chart.daily_users": {"en": "Daily active users and sessions", "ar": "المستخدمون النشطون والجلسات يوميًا"},
    "table.top_users": {"en": "Top users by session time", "ar": "المستخدمون الأطول جلسات"},
    # search
    "zero_result_rate": {"en": "Zero-result rate", "ar": "معدل البحث بلا نتائج"},
    "zero_result_searches": {"en": "Zero-result searches", "ar": "عمليات بحث بلا نتائج"},
    "ctr": {"en": "Click-through rate", "ar": "نسبة النقر"},
    "clicks": {"en": "Clicks", "ar": "النقرات"},
    "avg_position": {"en": "Avg clicked position", "ar": "متوسط ترتيب النتيجة المختارة"},
    "avg_results": {"en": "Avg results", "ar": "متوسط عدد النتائج"},
    "query": {"en": "Query", "ar": "عبارة البحث"},
    "language": {"en": "Language", "ar": "اللغة"},
    "chart.daily_searches": {"en": "Daily searches", "ar": "عمليات البحث اليومية"},
    "table.popular_queries": {"en": "Popular queries", "ar": "عبارات البحث الأكثر شيوعًا"},
    "table.zero_result_queries": {"en": "Zero-result queries", "ar": "عبارات بحث بلا نتائج"},
    # system
    "requests": {"en": "Requests", "ar": "الطلبات"},
    "client_error_rate": {"en": "4xx error rate", "ar": "معدل أخطاء 4xx"},
    "server_error_rate": {"en": "5xx error rate", "ar": "معدل أخطاء 5xx"},
    "p50": {"en": "p50 latency (ms)", "ar": "زمن الاستجابة p50 (مللي ثانية)"},
    "p95": {"en": "p95 latency (ms)", "ar": "زمن الاستجابة p95 (مللي ثانية)"},
    "avg_latency": {"en": "Avg latency (ms)", "ar": "متوسط زمن الاستجابة (مللي ثانية)"},
    "max_latency": {"en": "Max latency (ms)", "ar": "أقصى زمن استجابة (مللي ثانية)"},
    "route": {"en": "Route", "ar": "المسار"},
    "chart.daily_requests": {"en": "Requests per day", "ar": "الطلبات يوميًا"},
    "table.routes": {"en": "Requests by route", "ar": "الطلبات حسب المسار"},
}


def label(key: str, language: str) -> str:
    """The text for label `key` in `language` ("ar" or "en")."""
    return LABELS[key][language]
